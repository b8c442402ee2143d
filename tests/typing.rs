//! Typing notices over real WebSockets (issue 18, item 5): who gets them, who may send
//! them, and how few go out however many a client sends.

mod common;

use common::{channel, general, start, Client};
use flack::chat::model::{DirectKey, Room, UserId};
use flack::protocol::{ClientEvent, HubEvent, ServerEvent};
use std::time::Duration;

/// The typing notices `client` receives within `wait`, as (room, typist) pairs.
async fn notices(client: &mut Client, wait: Duration) -> Vec<(Room, UserId)> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
        match client.next_within(left).await {
            Some(ServerEvent::Hub(HubEvent::Typing { room, user })) => seen.push((room, user.id)),
            Some(_) => {}
            None => break,
        }
    }
    seen
}

/// Joins a room, skipping whatever arrives before `joined` (new channels, presence).
async fn enter(client: &mut Client, room: &Room) {
    client
        .send(ClientEvent::Join {
            room: room.clone(),
            since: None,
            client_ref: None,
        })
        .await;
    while !matches!(
        client.next().await,
        ServerEvent::Hub(HubEvent::Joined { .. })
    ) {}
}

/// Waits for the error answering an event, skipping everything else.
async fn error_code(client: &mut Client) -> String {
    loop {
        if let ServerEvent::Error { code, .. } = client.next().await {
            return code;
        }
    }
}

/// A notice reaches the room's other members, named, and nobody else: not the typist's
/// own connections, not members of another room.
#[tokio::test]
async fn typing_reaches_the_rooms_other_members_only() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mut bob = Client::joined(&server, "Bob").await;
    let mut cy = Client::user(&server, "Cy").await;
    server.hub.create_channel(&cy.token(), "design").unwrap();
    enter(&mut cy, &channel("design")).await;

    ada.send(ClientEvent::Typing { room: general() }).await;
    loop {
        if let ServerEvent::Hub(HubEvent::Typing { room, user }) = bob.next().await {
            assert_eq!(room, general());
            assert_eq!((user.id, user.name.as_str()), (ada.id(), "Ada"));
            break;
        }
    }
    assert_eq!(notices(&mut ada, Duration::from_millis(300)).await, []);
    assert_eq!(notices(&mut cy, Duration::from_millis(300)).await, []);
}

/// A notice needs an authenticated connection in the room: an anonymous reader, a user
/// who has not joined the channel, and a stranger to a private conversation are refused
/// with a clear error, and nobody hears anything.
#[tokio::test]
async fn typing_is_refused_outside_the_room() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mut bob = Client::joined(&server, "Bob").await;
    let cy = Client::user(&server, "Cy").await;
    server.hub.create_channel(&ada.token(), "design").unwrap();

    let mut anonymous = Client::connect(&server).await;
    enter(&mut anonymous, &general()).await;
    anonymous
        .send(ClientEvent::Typing { room: general() })
        .await;
    assert_eq!(error_code(&mut anonymous).await, "not_identified");

    ada.send(ClientEvent::Typing {
        room: channel("design"),
    })
    .await;
    assert_eq!(error_code(&mut ada).await, "not_in_room");
    let theirs = Room::Direct(DirectKey::between(bob.id(), cy.id()).unwrap());
    ada.send(ClientEvent::Typing { room: theirs }).await;
    assert_eq!(error_code(&mut ada).await, "not_in_room");
    assert_eq!(notices(&mut bob, Duration::from_millis(300)).await, []);
}

/// A hostile client sending notices as fast as it can gets one relayed per room every few
/// seconds, and at most a burst of three across rooms: 200 notices in one room and 60
/// spread over three rooms cost the other members four frames in all.
#[tokio::test]
async fn a_flood_of_notices_costs_members_a_few_frames() {
    let server = start().await;
    let mut ada = Client::joined(&server, "Ada").await;
    let mut bob = Client::joined(&server, "Bob").await;
    for name in ["one", "two", "three"] {
        server.hub.create_channel(&ada.token(), name).unwrap();
        enter(&mut ada, &channel(name)).await;
        enter(&mut bob, &channel(name)).await;
    }
    for _ in 0..200 {
        ada.send(ClientEvent::Typing { room: general() }).await;
    }
    let heard = notices(&mut bob, Duration::from_millis(500)).await;
    assert_eq!(heard, [(general(), ada.id())]);
    for i in 0..60 {
        let room = channel(["one", "two", "three"][i % 3]);
        ada.send(ClientEvent::Typing { room }).await;
    }
    let heard = notices(&mut bob, Duration::from_millis(500)).await;
    // The burst had two notices left after the first; one a second comes back meanwhile.
    assert!(
        (2..=3).contains(&heard.len()),
        "{} notices went out: {heard:?}",
        heard.len()
    );
    // The connection still works: the flood cost Ada nothing else.
    ada.post(&general(), "still here").await;
    assert_eq!(bob.next_message().await.body.as_str(), "still here");
}

/// Members of a private conversation hear each other type.
#[tokio::test]
async fn typing_reaches_the_other_participant_of_a_private_conversation() {
    let server = start().await;
    let mut ada = Client::user(&server, "Ada").await;
    let mut bob = Client::user(&server, "Bob").await;
    let direct = Room::Direct(DirectKey::between(ada.id(), bob.id()).unwrap());
    ada.post(&direct, "hi").await;
    bob.next_message().await;
    ada.send(ClientEvent::Typing {
        room: direct.clone(),
    })
    .await;
    assert_eq!(
        notices(&mut bob, Duration::from_millis(500)).await,
        [(direct, ada.id())]
    );
}
