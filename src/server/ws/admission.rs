//! Who may open a socket: the client's address (through trusted proxies) and the
//! per-address connection count. (The page's origin is checked by `server::guard`.)

use super::*;
use crate::server::listen::counted_as;

/// The address a connection counts against: the TCP peer's, unless the peer is a trusted
/// proxy. Then it is the nearest address in `X-Forwarded-For` that is not itself a trusted
/// proxy, read from the right, because each proxy appends the address it saw and anything
/// further left came from the client and may be forged. An entry that is not an address
/// stops the walk at the last trusted hop.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        if !trusted.contains(&client) {
            break;
        }
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => client = ip,
            Err(_) => break,
        }
    }
    client
}

/// One of an address's allowed connections; given back when dropped.
pub(super) struct IpSlot {
    ip: IpAddr,
    table: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
}

impl IpSlot {
    /// A place for `ip` (counted as [`counted_as`] says), if its network has one left.
    pub(super) fn take(state: &AppState, ip: IpAddr) -> Option<IpSlot> {
        let ip = counted_as(ip);
        let table = state.connections_by_ip.clone();
        let mut counts = table.lock().unwrap_or_else(|e| e.into_inner());
        // In cluster mode the address's connections on the other instances count too.
        let elsewhere = state
            .cluster
            .as_ref()
            .map_or(0, |cluster| cluster.remote_connections(ip));
        let count = counts.entry(ip).or_insert(0);
        if *count + elsewhere >= state.config.limits.connections_per_ip {
            return None;
        }
        *count += 1;
        drop(counts);
        Some(IpSlot { ip, table })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}
