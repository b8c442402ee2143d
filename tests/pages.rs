//! Pages over HTTP: their security headers, and the page cache never serving a stale page.
//! (These once lived in a binary of their own because a page render beside `security.rs`'s
//! tests now and then never finished; the cause is in `common::start_with` and is gone.)

mod common;

use common::{general, http, request, start, Client};
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};

/// Pages carry a Content-Security-Policy that allows only this site's scripts and inline
/// scripts with this response's nonce (which Leptos's own scripts carry), forbids framing,
/// and the usual hardening headers; other responses get a policy that allows nothing.
#[tokio::test]
async fn pages_carry_security_headers() {
    let server = start().await;
    let page = http(&server, "GET", "/c/general", None).await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self' 'nonce-"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let nonce = nonce_of(&page);
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

/// Channel pages are served from a cache, yet a page never lags behind the chat: a message
/// posted, a user renamed, a channel created or a message deleted shows on the very next
/// load, and a page served again carries a fresh nonce in its policy and its scripts alike.
#[tokio::test]
async fn repeated_page_loads_are_never_stale() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let load = || async { http(&server, "GET", "/c/general", None).await };
    assert!(!load().await.body.contains("first words"));

    ada.post(&general(), "first words").await;
    let first = ada.next_message().await;
    ada.post(&general(), "second words").await;
    ada.next_message().await;
    let fresh = load().await;
    assert!(fresh.body.contains("first words"), "a posted message shows");
    let again = load().await;
    assert!(again.body.contains("second words"));
    assert_ne!(nonce_of(&fresh), nonce_of(&again));
    assert!(again
        .body
        .contains(&format!("nonce=\"{}\"", nonce_of(&again))));
    assert!(!again.body.contains(&nonce_of(&fresh)));

    ada.send(ClientEvent::Rename {
        name: "Adeline".into(),
        client_ref: None,
    })
    .await;
    while !matches!(
        ada.next().await,
        ServerEvent::Hub(HubEvent::UserRenamed { .. })
    ) {}
    assert!(load().await.body.contains("Adeline"), "a new name shows");

    server
        .hub
        .create_channel(&ada.token(), "fresh-news")
        .expect("creates");
    assert!(
        load().await.body.contains("fresh-news"),
        "a new channel shows"
    );

    ada.send(ClientEvent::Delete {
        room: general(),
        id: first.id,
        client_ref: None,
    })
    .await;
    while !matches!(
        ada.next().await,
        ServerEvent::Hub(HubEvent::MessageDeleted { .. })
    ) {}
    let after = load().await;
    assert!(
        !after.body.contains("first words"),
        "a deleted message is gone"
    );
    assert!(after.body.contains("second words"));
}

/// A channel page shows its times at the offset the zone cookie gives (so the first paint is
/// in the reader's local time), in UTC and marked for the browser to replace without one, and
/// the page cache keeps one page per offset: readers in two zones never get each other's.
#[tokio::test]
async fn pages_show_times_in_the_readers_zone() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    ada.post(&general(), "what time is it").await;
    let sent = ada.next_message().await.sent_at;
    let load = |cookie: &'static str| {
        let server = &server;
        async move {
            let mut headers = vec![("Accept", "text/html")];
            if !cookie.is_empty() {
                headers.push(("Cookie", cookie));
            }
            request(server, "GET", "/c/general", &headers, b"")
                .await
                .body
        }
    };
    let clock = |offset: i32| {
        let local = sent.local(offset);
        format!(">{:02}:{:02}<", local.hour, local.minute)
    };
    // Twice each, so the second of each pair comes from the cache.
    for _ in 0..2 {
        let india = load("theme=x; flack_tz=330").await;
        assert!(india.contains(&clock(330)), "{}", clock(330));
        assert!(!india.contains("zone-unknown"));
        let chile = load("flack_tz=-180").await;
        assert!(chile.contains(&clock(-180)), "{}", clock(-180));
        let unknown = load("").await;
        let utc = format!("{} UTC<", &clock(0)[..6]);
        assert!(unknown.contains(&utc), "{utc}");
        assert!(unknown.contains("zone-unknown"));
    }
}

/// The nonce in a page's Content-Security-Policy.
fn nonce_of(page: &common::HttpResponse) -> String {
    let csp = page.header("content-security-policy").expect("a CSP");
    csp.split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .map(str::to_owned)
        .expect("a nonce")
}

/// A channel has one address: other spellings of it (another case, escapes where none are
/// needed) are permanently redirected there, so a flood of spellings cannot fill the page
/// cache with copies of one page; the redirect leads to the page itself.
#[tokio::test]
async fn other_spellings_of_a_channel_redirect_to_its_address() {
    let server = start().await;
    for spelling in ["/c/GENERAL", "/c/%67eneral", "/c/General"] {
        let page = http(&server, "GET", spelling, None).await;
        assert_eq!(page.status, 308, "{spelling}");
        assert_eq!(page.header("location").as_deref(), Some("/c/general"));
    }
    assert_eq!(http(&server, "GET", "/c/general", None).await.status, 200);
    assert_eq!(http(&server, "GET", "/c/nowhere", None).await.status, 404);
}

/// One user cannot break a channel's page: a hundred messages of 4,000 `<` (each written out
/// as `&lt;`) make a page larger than the page cache keeps, and it is served whole, uncached,
/// instead of failing; the page after a new message is served again and current.
#[tokio::test]
async fn a_page_too_large_to_cache_is_still_served() {
    let server = start().await;
    let mut ada = Client::joined(&server, "ada").await;
    let angles = "<".repeat(4000);
    for _ in 0..100 {
        ada.post(&general(), &angles).await;
    }
    ada.acks(100).await;
    for _ in 0..2 {
        let page = http(&server, "GET", "/c/general", None).await;
        assert_eq!(page.status, 200);
        assert!(
            page.bytes.len() > 4 * 1024 * 1024,
            "{} bytes",
            page.bytes.len()
        );
        let shown = page.body.matches("&lt;").count();
        assert!(
            shown >= 100 * 4000,
            "every message shown whole, as text: {shown}"
        );
    }
    ada.post(&general(), "the newest").await;
    ada.acks(1).await;
    let page = http(&server, "GET", "/c/general", None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("the newest"));
}

/// Loading pages back to back cannot take the server's CPU: past `limits.pages_per_minute`
/// an address gets 429 with a `Retry-After`, built assets do not count, and another address
/// (here, behind a trusted proxy) is served as before.
#[tokio::test]
async fn page_loads_are_limited_per_address() {
    let mut config = common::fast();
    config.limits.pages_per_minute = 3;
    config.server.trusted_proxies = vec!["127.0.0.1".parse().expect("address")];
    let server = common::start_with(config).await;
    let load = |path: &'static str, from: &'static str| {
        let server = &server;
        async move {
            common::request(
                server,
                "GET",
                path,
                &[("Accept", "text/html"), ("X-Forwarded-For", from)],
                b"",
            )
            .await
        }
    };
    for path in ["/", "/c/general", "/c/nowhere"] {
        assert_ne!(load(path, "203.0.113.7").await.status, 429, "{path}");
    }
    let refused = load("/c/general", "203.0.113.7").await;
    assert_eq!(refused.status, 429);
    assert!(refused.header("retry-after").is_some());
    assert_ne!(
        load("/pkg/flack.css", "203.0.113.7").await.status,
        429,
        "assets are not counted"
    );
    assert_eq!(load("/c/general", "198.51.100.1").await.status, 200);
}

/// Reading history or people in a loop costs an address's page allowance too: past
/// `limits.pages_per_minute`, the older-history and people calls answer 429 as pages do.
#[tokio::test]
async fn history_and_people_reads_count_as_page_loads() {
    let mut config = common::fast();
    config.limits.pages_per_minute = 3;
    let server = common::start_with(config).await;
    let read = |path: &'static str, body: &'static str| {
        let server = &server;
        async move {
            common::request(
                server,
                "POST",
                path,
                &[("Content-Type", "application/x-www-form-urlencoded")],
                body.as_bytes(),
            )
            .await
        }
    };
    for _ in 0..3 {
        let answer = read("/api/history_before", "channel=general&before=1").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    assert_eq!(
        read("/api/history_before", "channel=general&before=1")
            .await
            .status,
        429
    );
    assert_eq!(
        read("/api/people", "token=x&query=a").await.status,
        429,
        "the people finder shares the allowance"
    );
    assert_eq!(
        read("/api/channels", "").await.status,
        200,
        "other calls are not counted"
    );
}

/// A channel page shows a message's reactions on the first paint, fresh after each change:
/// each emoji with its count, and who reacted on hover, their names as text (markup in a
/// name stays inert).
#[tokio::test]
async fn reactions_show_on_the_first_paint_as_text() {
    let server = start().await;
    let mut ada = Client::joined(&server, "<b>Ada</b>").await;
    let hers = ada.post_acked(&general(), "pick lunch").await;
    let load = || async { http(&server, "GET", "/c/general", None).await.body };
    assert!(!load().await.contains("class=\"reaction\""));

    ada.react(&general(), hers.id, "🍕", true, None).await;
    ada.next_reaction().await;
    let page = load().await;
    assert!(
        page.contains("class=\"reaction\""),
        "drawn on the first paint"
    );
    assert!(page.contains(">🍕</span>"), "the emoji");
    assert!(page.contains(">1</span>"), "its count");
    assert!(
        page.contains("title=\"&lt;b&gt;Ada&lt;/b&gt; reacted with :pizza:\""),
        "who reacted, as text"
    );

    ada.react(&general(), hers.id, "🍕", false, None).await;
    ada.next_reaction().await;
    assert!(
        !load().await.contains("class=\"reaction\""),
        "gone as soon as taken away"
    );
}
