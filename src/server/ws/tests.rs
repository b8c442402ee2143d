//! Unit tests of the WebSocket endpoint's parts: origins, client addresses and settings.

use super::*;
use crate::server::listen::counted_as;

fn forwarded(values: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for v in values {
        headers.append("x-forwarded-for", v.parse().expect("header value"));
    }
    headers
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

/// Without trusted proxies the header is ignored; behind one, the address the proxy saw
/// is used, and addresses the client put further left cannot move it elsewhere.
#[test]
fn the_client_address_comes_from_trusted_proxies_only() {
    let proxy = ip("10.0.0.1");
    let spoofed = forwarded(&["1.2.3.4, 5.6.7.8"]);
    assert_eq!(client_ip(ip("9.9.9.9"), &spoofed, &[]), ip("9.9.9.9"));
    assert_eq!(client_ip(ip("9.9.9.9"), &spoofed, &[proxy]), ip("9.9.9.9"));
    assert_eq!(client_ip(proxy, &spoofed, &[proxy]), ip("5.6.7.8"));
    assert_eq!(client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
    // Two proxies in a row, the second header line appended by the inner one.
    let chain = forwarded(&["1.2.3.4, 5.6.7.8", "10.0.0.2"]);
    let both = [proxy, ip("10.0.0.2")];
    assert_eq!(client_ip(proxy, &chain, &both), ip("5.6.7.8"));
    // Something that is not an address stops at the last proxy.
    let junk = forwarded(&["5.6.7.8, unknown"]);
    assert_eq!(client_ip(proxy, &junk, &[proxy]), proxy);
    assert_eq!(
        client_ip(proxy, &forwarded(&[" 2001:db8::7 "]), &[proxy]),
        ip("2001:db8::7")
    );
}

/// IPv6 clients are counted by their /64 (one host's usual share), IPv4 clients by their
/// address, and an IPv4 address written as IPv6 as that IPv4 address.
#[test]
fn ipv6_clients_are_counted_per_64() {
    assert_eq!(counted_as(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
    assert_eq!(
        counted_as(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
        counted_as(ip("2001:db8:1:2::7"))
    );
    assert_ne!(
        counted_as(ip("2001:db8:1:3::1")),
        counted_as(ip("2001:db8:1:2::1"))
    );
    assert_eq!(counted_as(ip("192.0.2.9")), ip("192.0.2.9"));
    assert_eq!(counted_as(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
}
