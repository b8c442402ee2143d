//! The security headers on pages and other responses. Kept in a test binary of its own:
//! run beside the WebSocket tests of `security.rs`, its page render occasionally never
//! finished (see the closing note of issue 4); alone it has not.

mod common;

use common::{http, start_for_pages};

/// Pages carry a Content-Security-Policy that allows only this site's scripts and inline
/// scripts with this response's nonce (which Leptos's own scripts carry), forbids framing,
/// and the usual hardening headers; other responses get a policy that allows nothing.
#[tokio::test]
async fn pages_carry_security_headers() {
    let server = start_for_pages().await;
    let page = http(&server, "GET", "/c/general", None).await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self' 'nonce-"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce");
    assert!(
        page.body.contains(&format!("nonce=\"{nonce}\"")),
        "inline scripts carry it"
    );
    assert_eq!(
        page.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        page.header("referrer-policy").as_deref(),
        Some("same-origin")
    );
    let again = http(&server, "GET", "/c/general", None).await;
    assert_ne!(
        again.header("content-security-policy").as_deref(),
        Some(csp.as_str()),
        "a new nonce each time"
    );

    let api = http(&server, "POST", "/api/channels", Some("")).await;
    assert_eq!(
        api.header("content-security-policy").as_deref(),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    assert_eq!(
        api.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
}
