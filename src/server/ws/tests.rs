//! Unit tests of the WebSocket endpoint's parts: origins, client addresses and settings.

use super::*;

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
