//! Integration tests of look-alike names against a real server: new display names and channel
//! names that look like one in use, or hide characters, are refused over HTTP and the
//! WebSocket; names stored before these rules still load, look-alikes and all.

mod common;

use common::{channel, form_value, http, start, Client};
use flack::chat::hub::{hash_token, Hub, HubSettings, Outbox, Store};
use flack::chat::model::{
    ChannelInfo, ChannelName, ChatError, DisplayName, Message, MessageBody, MessageId, Timestamp,
    UserId, UserInfo,
};
use flack::chat::sqlite::SqliteStore;
use flack::protocol::{ClientEvent, ServerEvent};
use std::sync::Arc;

/// Registers `name` through the server function and returns the response body.
async fn register(server: &common::TestServer, name: &str) -> String {
    http(
        server,
        "POST",
        "/api/register",
        Some(&format!("name={}", form_value(name))),
    )
    .await
    .body
}

/// Once `admin` is registered, Cyrillic `аdmin`, full-width `ＡＤＭＩＮ` and mathematical-bold
/// `𝐚𝐝𝐦𝐢𝐧` are refused as taken (naming `admin`), a name hiding a word joiner is refused as
/// invalid, and renaming another user to `аdmin` over the WebSocket is refused too.
#[tokio::test]
async fn look_alike_display_names_are_refused() {
    let server = start().await;
    let first = register(&server, "admin").await;
    assert!(first.contains("\"name\":\"admin\""), "{first}");
    for look_alike in [
        "\u{430}dmin",
        "\u{FF21}\u{FF24}\u{FF2D}\u{FF29}\u{FF2E}",
        "\u{1D41A}\u{1D41D}\u{1D426}\u{1D422}\u{1D427}",
    ] {
        let body = register(&server, look_alike).await;
        assert!(body.contains("display_name_taken"), "{look_alike}: {body}");
        assert!(
            body.contains("\"detail\":\"admin\""),
            "{look_alike}: {body}"
        );
    }
    let hidden = register(&server, "ad\u{2060}min").await;
    assert!(hidden.contains("display_name_invalid"), "{hidden}");

    let mut eve = Client::user(&server, "eve").await;
    eve.send(ClientEvent::Rename {
        name: "\u{430}dmin".into(),
        client_ref: None,
    })
    .await;
    loop {
        if let ServerEvent::Error { code, .. } = eve.next().await {
            assert_eq!(code, "display_name_taken");
            break;
        }
    }
}

/// Beside `general`, a channel `Ｇeneral` (full-width G) is refused as existing (naming
/// `general`); a decomposed `José` is refused beside a composed one; a name with a soft
/// hyphen is invalid; and nothing was created.
#[tokio::test]
async fn look_alike_channel_names_are_refused() {
    let server = start().await;
    let token = server
        .hub
        .register("creator")
        .unwrap()
        .stored()
        .await
        .expect("stored")
        .token;
    let create = |name: &str| {
        let form = format!("token={token}&name={}", form_value(name));
        let server = &server;
        async move {
            http(server, "POST", "/api/create_channel", Some(&form))
                .await
                .body
        }
    };
    let full_width = create("\u{FF27}eneral").await;
    assert!(full_width.contains("channel_exists"), "{full_width}");
    assert!(
        full_width.contains("\"detail\":\"general\""),
        "{full_width}"
    );

    let composed = create("Jos\u{e9}").await;
    assert!(composed.contains("\"name\":\"Jos\u{e9}\""), "{composed}");
    let decomposed = create("Jose\u{301}").await;
    assert!(decomposed.contains("channel_exists"), "{decomposed}");

    let hidden = create("gen\u{AD}eral").await;
    assert!(hidden.contains("channel_name_invalid"), "{hidden}");

    let names = common::channel_names(&server.hub);
    assert_eq!(names, ["general", "Jos\u{e9}"]);
}

/// A SQLite file written before look-alikes were refused, holding users `admin` and
/// Cyrillic `аdmin` and channels `general` and `Ｇeneral` (each with a message), still opens:
/// both users and both channels load with their own histories, and only new names that look
/// like them are refused. When `admin` renames away, `аdmin` still holds the look; then
/// `аdmin` alone may take a variant of it.
#[tokio::test]
async fn stored_look_alikes_still_load() {
    let dir = std::env::temp_dir().join(format!("flack-names-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("flack.db");
    let admin = UserInfo {
        id: UserId(1),
        name: DisplayName::parse("admin").unwrap(),
    };
    let cyrillic = UserInfo {
        id: UserId(2),
        name: DisplayName::parse("\u{430}dmin").unwrap(),
    };
    let general = ChannelName::parse("general").unwrap();
    let wide = ChannelName::parse("\u{FF27}eneral").unwrap();
    {
        let store = SqliteStore::open(&path, 100).unwrap();
        store.load().unwrap();
        for (user, token) in [(&admin, "token-1"), (&cyrillic, "token-2")] {
            store
                .put_user(user, &hash_token(token))
                .wait()
                .await
                .unwrap();
        }
        for (id, (name, author)) in [(&general, &admin), (&wide, &cyrillic)]
            .into_iter()
            .enumerate()
        {
            let info = ChannelInfo {
                name: name.clone(),
                created_at: Timestamp::now(),
            };
            store.put_channel(&info).wait().await.unwrap();
            let message = Message {
                id: MessageId(id as u64 + 1),
                room: flack::chat::model::Room::Channel(name.clone()),
                seq: 1,
                author: author.clone(),
                body: MessageBody::parse(&format!("in {name}"), 100).unwrap(),
                attachment: None,
                sent_at: Timestamp::now(),
                edited_at: None,
                reactions: Vec::new(),
                reply: None,
            };
            store.put_message(&message).wait().await.unwrap();
        }
        store.close();
    }

    let store = Arc::new(SqliteStore::open(&path, 100).unwrap());
    let hub = Hub::open(
        store.clone(),
        HubSettings::default(),
        flack::protocol::encode_hub_event,
    )
    .expect("a file with look-alike names opens");
    let names = common::channel_names(&hub);
    assert_eq!(names, ["general", "\u{FF27}eneral"]);
    for (name, author) in [("general", "admin"), ("\u{FF27}eneral", "\u{430}dmin")] {
        let page = hub.channel_page(name).unwrap();
        assert_eq!(page.messages.len(), 1, "{name}");
        assert_eq!(page.messages[0].author.name.as_str(), author, "{name}");
    }
    assert_eq!(
        hub.channel_page("general").unwrap().room,
        channel("general")
    );

    assert!(matches!(
        hub.register("ADMIN").map(|_| ()),
        Err(ChatError::DisplayNameTaken(_))
    ));
    let token = hub.register("zed").unwrap().stored().await.unwrap().token;
    for look_alike in ["GENERAL", "\u{FF47}eneral", "\u{1D420}eneral"] {
        assert!(
            matches!(
                hub.create_channel(&token, look_alike).map(|_| ()),
                Err(ChatError::ChannelExists(_))
            ),
            "{look_alike}"
        );
    }

    let as_user = |token: &str| {
        let conn = hub.connect(Outbox::new(64).0);
        conn.authenticate(token).unwrap();
        conn
    };
    let first = as_user("token-1");
    first.rename("root").unwrap().stored().await.unwrap();
    assert!(matches!(
        hub.register("admin").map(|_| ()),
        Err(ChatError::DisplayNameTaken(_))
    ));
    let second = as_user("token-2");
    let renamed = second.rename("Admin").unwrap().stored().await.unwrap();
    assert_eq!(renamed.name.as_str(), "Admin");
    drop((first, second));
    store.close();
    let _ = std::fs::remove_dir_all(&dir);
}
