//! Unit tests of the hub's invariants, driven through its public API with in-memory outboxes.

use super::*;
use crate::chat::model::{Attachment, Cursor, FileId, Message, MessageId, ONLINE_SHOWN};
use std::collections::HashSet;
use std::time::Duration;

/// The events the test encoder has seen; a test frame is an index into this list. (The wire
/// encoding is the protocol's business and is tested there: these tests look at the events.)
static ENCODED: Mutex<Vec<HubEvent>> = Mutex::new(Vec::new());

/// The encoder the tests hand the hub: it keeps the event and frames its index.
fn keep(event: HubEvent) -> Frame {
    let mut encoded = ENCODED.lock().unwrap_or_else(|e| e.into_inner());
    encoded.push(event);
    Frame::from_text((encoded.len() - 1).to_string())
}

/// The event a test frame stands for.
fn decode(frame: &Frame) -> HubEvent {
    let index: usize = frame.as_str().parse().expect("a test frame");
    ENCODED.lock().unwrap_or_else(|e| e.into_inner())[index].clone()
}

/// Settings without rate limits, for tests that post in bulk.
fn unlimited_settings() -> HubSettings {
    HubSettings {
        messages_per_second: 1_000_000,
        message_burst: 1_000_000,
        ..HubSettings::default()
    }
}

/// A hub without rate limits, for tests that post in bulk.
fn unlimited() -> Hub {
    Hub::open(Arc::new(MemoryStore), unlimited_settings(), keep).unwrap()
}

/// A path for a SQLite file of this test's own, in a fresh folder (returned for removal).
fn fresh_db(test: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("flack-hub-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("flack.db");
    (dir, path)
}

/// Posting as the tests see it: the message as sent out. (With the in-memory store it is
/// stored at once; the wait for a real store is tested in `acks_wait_for_the_store`.)
trait PostNow {
    fn post_now(
        &self,
        room: &Room,
        body: &str,
        attachment: Option<&FileId>,
    ) -> Result<Message, ChatError>;
}

impl PostNow for Connection {
    fn post_now(
        &self,
        room: &Room,
        body: &str,
        attachment: Option<&FileId>,
    ) -> Result<Message, ChatError> {
        self.post(room, body, attachment).applied()
    }
}

/// A registration, channel or rename as the tests see it: what the hub applied. (With the
/// in-memory store it is stored at once.)
trait Applied<T> {
    fn applied(self) -> Result<T, ChatError>;
}

impl<T> Applied<T> for Result<Saved<T>, ChatError> {
    fn applied(self) -> Result<T, ChatError> {
        self.map(|saved| saved.into_applied())
    }
}

fn general() -> Room {
    Room::Channel(ChannelName::parse("general").unwrap())
}

fn drain(rx: &mut OutboxRx) -> Vec<HubEvent> {
    let mut events = Vec::new();
    while let Ok(frame) = rx.try_recv() {
        events.push(decode(&frame));
    }
    events
}

fn seqs(events: &[HubEvent]) -> Vec<u64> {
    let mut out = Vec::new();
    for event in events {
        match event {
            HubEvent::Joined { messages, .. } => out.extend(messages.iter().map(|m| m.seq)),
            HubEvent::Message { message } => out.push(message.seq),
            _ => {}
        }
    }
    out
}

/// A registered user with one authenticated connection.
struct Client {
    session: Session,
    conn: Connection,
    rx: OutboxRx,
}

fn client(hub: &Hub, name: &str, capacity: usize) -> Client {
    let session = hub.register(name).applied().unwrap();
    let (outbox, rx) = Outbox::new(capacity);
    let conn = hub.connect(outbox);
    conn.authenticate(&session.token).unwrap();
    Client { session, conn, rx }
}

/// A new hub has "general", and channel names conflict without regard to case or spaces.
#[test]
fn channel_names_never_conflict() {
    let hub = unlimited();
    let ada = client(&hub, "ada", 16);
    assert_eq!(hub.channels().len(), 1);
    hub.create_channel(&ada.session.token, "Random")
        .applied()
        .unwrap();
    assert_eq!(
        hub.create_channel(&ada.session.token, "  random ")
            .applied(),
        Err(ChatError::ChannelExists("Random".into()))
    );
    assert_eq!(
        hub.create_channel(&ada.session.token, "").applied(),
        Err(ChatError::ChannelNameEmpty)
    );
    assert_eq!(
        hub.create_channel("not-a-token", "other").applied(),
        Err(ChatError::Unauthorized)
    );
    let names: Vec<String> = hub.channels().iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, ["general", "Random"]);
}

/// Display names are unique without regard to case; tokens are long, random, and stored
/// only as hashes.
#[test]
fn registration_gives_unique_names_and_secret_tokens() {
    let hub = unlimited();
    let ada = hub.register("Ada").applied().unwrap();
    assert_eq!(
        hub.register(" ADA ").applied(),
        Err(ChatError::DisplayNameTaken("Ada".into()))
    );
    let bob = hub.register("Bob").applied().unwrap();
    assert_ne!(ada.token, bob.token);
    assert!(ada.token.len() >= 32, "at least 128 bits, hex-encoded");
    assert_eq!(hub.user_for_token(&ada.token).unwrap(), ada.user);
    assert_eq!(hub.user_for_token("guess"), Err(ChatError::Unauthorized));
    let state = hub.lock();
    assert!(state
        .directory
        .by_token
        .contains_key(&hash_token(&ada.token)));
    assert!(
        !format!("{:?}", state.directory.by_token.keys().collect::<Vec<_>>()).contains(&ada.token)
    );
}

/// Every connection hears about a new channel.
#[test]
fn channel_creation_is_broadcast() {
    let hub = unlimited();
    let mut ada = client(&hub, "ada", 16);
    drain(&mut ada.rx);
    hub.create_channel(&ada.session.token, "news")
        .applied()
        .unwrap();
    let events = drain(&mut ada.rx);
    assert!(
        matches!(&events[..], [HubEvent::ChannelCreated { channel }] if channel.name.as_str() == "news")
    );
}

/// The history keeps the last 100 messages.
#[test]
fn history_keeps_the_last_hundred() {
    let hub = unlimited();
    let ada = client(&hub, "a", 1024);
    for i in 1..=150 {
        ada.conn
            .post_now(&general(), &format!("m{i}"), None)
            .unwrap();
    }
    let page = hub.channel_page("GENERAL").unwrap();
    assert_eq!(page.messages.len(), 100);
    assert_eq!(page.messages[0].body.as_str(), "m51");
    assert_eq!(page.messages[99].seq, 150);
    assert_eq!(page.last_seq, 150);
}

/// Joining while others post yields the history and then the live stream with no gap and
/// no duplicate, whatever point the join happens at.
#[test]
fn join_has_no_gap_and_no_duplicate() {
    let hub = unlimited();
    let poster = client(&hub, "poster", 4096);
    let mut receivers = Vec::new();
    for i in 1..=30u64 {
        poster
            .conn
            .post_now(&general(), &format!("m{i}"), None)
            .unwrap();
        if i % 7 == 0 {
            let c = client(&hub, &format!("r{i}"), 4096);
            c.conn.join(&general(), None).unwrap();
            receivers.push(c);
        }
    }
    for c in &mut receivers {
        assert_eq!(seqs(&drain(&mut c.rx)), (1..=30).collect::<Vec<_>>());
    }
}

/// Rejoining with a cursor sends exactly the missed messages; a cursor from another epoch
/// gets a reset snapshot.
#[test]
fn rejoin_sends_only_what_was_missed() {
    let hub = unlimited();
    let poster = client(&hub, "poster", 4096);
    for i in 1..=10 {
        poster
            .conn
            .post_now(&general(), &format!("m{i}"), None)
            .unwrap();
    }
    let mut reader = client(&hub, "reader", 4096);
    drain(&mut reader.rx);
    let epoch = hub.epoch();
    reader
        .conn
        .join(&general(), Some(Cursor { epoch, seq: 7 }))
        .unwrap();
    let events = drain(&mut reader.rx);
    assert!(matches!(
        &events[..],
        [HubEvent::Joined { reset: false, .. }, ..]
    ));
    assert_eq!(seqs(&events), vec![8, 9, 10]);

    reader
        .conn
        .join(
            &general(),
            Some(Cursor {
                epoch: epoch + 1,
                seq: 7,
            }),
        )
        .unwrap();
    let events = drain(&mut reader.rx);
    assert!(matches!(
        &events[..],
        [HubEvent::Joined { reset: true, .. }]
    ));
    assert_eq!(seqs(&events), (1..=10).collect::<Vec<_>>());
}

/// All members of a room see its messages in one order, even with several posters on
/// several threads.
#[test]
fn all_members_see_one_order() {
    let hub = unlimited();
    let mut readers = Vec::new();
    for i in 0..3 {
        let c = client(&hub, &format!("reader{i}"), 4096);
        c.conn.join(&general(), None).unwrap();
        readers.push(c);
    }
    std::thread::scope(|scope| {
        for t in 0..4 {
            let hub = hub.clone();
            scope.spawn(move || {
                let c = client(&hub, &format!("poster{t}"), 1);
                for i in 0..50 {
                    c.conn
                        .post_now(&general(), &format!("t{t} m{i}"), None)
                        .unwrap();
                }
            });
        }
    });
    let mut orders = Vec::new();
    for c in &mut readers {
        let ids: Vec<(u64, MessageId)> = drain(&mut c.rx)
            .iter()
            .filter_map(|e| match e {
                HubEvent::Message { message } => Some((message.seq, message.id)),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 200);
        assert!(
            ids.windows(2).all(|w| w[1].0 == w[0].0 + 1),
            "consecutive seqs"
        );
        orders.push(ids);
    }
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[1], orders[2]);
}

/// A member whose outbox is full is marked behind instead of blocking others; once it
/// drains, a resync sends exactly what it missed and it is live again.
#[test]
fn slow_member_is_resynced_from_history() {
    let hub = unlimited();
    let poster = client(&hub, "poster", 4096);
    let mut fast = client(&hub, "fast", 4096);
    fast.conn.join(&general(), None).unwrap();
    let mut slow = client(&hub, "slow", 5);
    slow.conn.join(&general(), None).unwrap();
    for i in 1..=20 {
        poster
            .conn
            .post_now(&general(), &format!("m{i}"), None)
            .unwrap();
    }
    assert_eq!(seqs(&drain(&mut fast.rx)), (1..=20).collect::<Vec<_>>());
    let first = drain(&mut slow.rx);
    hub.resync(slow.conn.id());
    poster.conn.post_now(&general(), "m21", None).unwrap();
    let mut all = seqs(&first);
    all.extend(seqs(&drain(&mut slow.rx)));
    assert_eq!(all, (1..=21).collect::<Vec<_>>());
}

/// Posting needs an authenticated user, an existing channel and a valid body, and a refused
/// post changes nothing.
#[test]
fn refused_posts_change_nothing() {
    let hub = unlimited();
    let (outbox, _rx) = Outbox::new(8);
    let anon = hub.connect(outbox);
    assert_eq!(
        anon.post_now(&general(), "hi", None),
        Err(ChatError::NotIdentified)
    );
    assert_eq!(anon.authenticate("forged"), Err(ChatError::Unauthorized));
    let session = hub.register("ada").applied().unwrap();
    anon.authenticate(&session.token).unwrap();
    assert_eq!(
        anon.post_now(&general(), "  ", None),
        Err(ChatError::MessageEmpty)
    );
    assert!(matches!(
        anon.post_now(&general(), &"x".repeat(4001), None),
        Err(ChatError::MessageTooLong { max: 4000 })
    ));
    let nowhere = Room::Channel(ChannelName::parse("nowhere").unwrap());
    assert_eq!(
        anon.post_now(&nowhere, "hi", None),
        Err(ChatError::NoSuchChannel("nowhere".into()))
    );
    assert!(hub.channel_page("general").unwrap().messages.is_empty());
    let ok = anon.post_now(&general(), "hi", None).unwrap();
    assert_eq!((ok.seq, ok.author.name.as_str()), (1, "ada"));
}

/// Only a message's author can delete it; the deletion reaches every member and the message
/// is gone from history.
#[test]
fn only_authors_delete_their_messages() {
    let hub = unlimited();
    let ada = client(&hub, "ada", 64);
    let mut bob = client(&hub, "bob", 64);
    bob.conn.join(&general(), None).unwrap();
    let mine = ada.conn.post_now(&general(), "mine", None).unwrap();
    drain(&mut bob.rx);
    assert_eq!(
        bob.conn.delete(&general(), mine.id),
        Err(ChatError::NotYourMessage)
    );
    assert_eq!(
        ada.conn.delete(&general(), MessageId(999)),
        Err(ChatError::NoSuchMessage)
    );
    assert_eq!(hub.channel_page("general").unwrap().messages.len(), 1);
    ada.conn.delete(&general(), mine.id).unwrap();
    assert!(matches!(
        &drain(&mut bob.rx)[..],
        [HubEvent::MessageDeleted { id, .. }] if *id == mine.id
    ));
    assert!(hub.channel_page("general").unwrap().messages.is_empty());
}

/// Renaming changes the name on every retained message and tells everyone; a taken name is
/// refused.
#[test]
fn renaming_updates_history_and_is_announced() {
    let hub = unlimited();
    let ada = client(&hub, "ada", 64);
    let mut bob = client(&hub, "bob", 64);
    ada.conn.post_now(&general(), "hello", None).unwrap();
    assert_eq!(
        ada.conn.rename("BOB").applied(),
        Err(ChatError::DisplayNameTaken("bob".into()))
    );
    drain(&mut bob.rx);
    let renamed = ada.conn.rename("Ada Lovelace").applied().unwrap();
    assert_eq!(renamed.id, ada.session.user.id);
    assert!(matches!(
        &drain(&mut bob.rx)[..],
        [HubEvent::UserRenamed { user }] if user.name.as_str() == "Ada Lovelace"
    ));
    let page = hub.channel_page("general").unwrap();
    assert_eq!(page.messages[0].author.name.as_str(), "Ada Lovelace");
    assert!(
        hub.register("ada").applied().is_ok(),
        "the old name is free again"
    );
}

/// Private conversations reach both participants' connections, and nobody else's; only
/// participants can read or post.
#[test]
fn private_conversations_stay_private() {
    let hub = unlimited();
    let mut ada = client(&hub, "ada", 64);
    let mut bob = client(&hub, "bob", 64);
    let mut eve = client(&hub, "eve", 64);
    eve.conn.join(&general(), None).unwrap();
    let direct =
        Room::Direct(DirectKey::between(ada.session.user.id, bob.session.user.id).unwrap());
    drain(&mut ada.rx);
    drain(&mut bob.rx);
    drain(&mut eve.rx);

    let sent = ada.conn.post_now(&direct, "psst", None).unwrap();
    for c in [&mut ada, &mut bob] {
        assert!(matches!(
            &drain(&mut c.rx)[..],
            [HubEvent::Message { message }] if message.id == sent.id
        ));
    }
    assert!(drain(&mut eve.rx).is_empty());
    assert_eq!(
        eve.conn.post_now(&direct, "me too", None),
        Err(ChatError::Forbidden)
    );
    assert_eq!(eve.conn.join(&direct, None), Err(ChatError::Forbidden));
    assert_eq!(
        hub.direct_page(&eve.session.token, ada.session.user.id)
            .unwrap()
            .messages
            .len(),
        0,
        "eve's own conversation with ada is empty"
    );
    let page = hub
        .direct_page(&bob.session.token, ada.session.user.id)
        .unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.title, "ada");
    let directs = hub.directs(&bob.session.token).unwrap();
    assert_eq!(directs.len(), 1);
    assert_eq!(directs[0].peer.name.as_str(), "ada");
    assert!(hub.directs(&eve.session.token).unwrap().is_empty());
}

/// Presence: joining a channel announces the user once, the joiner sees who the members
/// were last told is online (itself from the next tick, with everyone), and the last
/// connection leaving announces the departure.
#[test]
fn presence_follows_connections() {
    let hub = unlimited();
    let mut ada = client(&hub, "ada", 64);
    ada.conn.join(&general(), None).unwrap();
    hub.flush_presence();
    drain(&mut ada.rx);
    let mut bob = client(&hub, "bob", 64);
    bob.conn.join(&general(), None).unwrap();
    match &drain(&mut bob.rx)[..] {
        [_, HubEvent::Joined {
            online,
            online_count,
            ..
        }, ..] => {
            let names: Vec<&str> = online.iter().map(|u| u.name.as_str()).collect();
            assert_eq!((names, *online_count), (vec!["ada"], 1));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(drain(&mut ada.rx).is_empty(), "told at the next tick");
    hub.flush_presence();
    assert_eq!(presence_news(&mut ada.rx), [("bob".to_owned(), true)]);
    assert_eq!(presence_news(&mut bob.rx), [("bob".to_owned(), true)]);
    drop(bob.conn);
    hub.flush_presence();
    assert_eq!(presence_news(&mut ada.rx), [("bob".to_owned(), false)]);
    hub.flush_presence();
    assert!(
        drain(&mut ada.rx).is_empty(),
        "nothing changed, nothing told"
    );
}

/// The presence events in what a connection received, as (name, online) pairs in order.
fn presence_news(rx: &mut OutboxRx) -> Vec<(String, bool)> {
    drain(rx)
        .into_iter()
        .flat_map(|e| match e {
            HubEvent::Presence { came, went, .. } => {
                let came = came.into_iter().map(|u| (u.name.to_string(), true));
                let went = went.into_iter().map(|u| (u.name.to_string(), false));
                came.chain(went).collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

/// The online list a connection was given by its (last) `joined`, as ids, and the count.
fn joined_online(rx: &mut OutboxRx) -> (HashSet<UserId>, usize) {
    drain(rx)
        .into_iter()
        .rev()
        .find_map(|e| match e {
            HubEvent::Joined {
                online,
                online_count,
                ..
            } => Some((online.iter().map(|u| u.id).collect(), online_count)),
            _ => None,
        })
        .expect("a joined")
}

/// Applies the `presence` events a connection received to its list and count, as a client
/// does (remove who went, then add who came); returns how many there were.
fn apply_news(rx: &mut OutboxRx, list: &mut (HashSet<UserId>, usize)) -> usize {
    let mut frames = 0;
    for event in drain(rx) {
        if let HubEvent::Presence {
            came,
            went,
            online_count,
            ..
        } = event
        {
            frames += 1;
            for user in &went {
                list.0.remove(&user.id);
            }
            list.0.extend(came.iter().map(|u| u.id));
            list.1 = online_count;
        }
    }
    frames
}

/// What every member should see: the first [`ONLINE_SHOWN`] of `users` by name, and how
/// many they are.
fn window_of(users: &[&Client]) -> (HashSet<UserId>, usize) {
    let mut sorted: Vec<&UserInfo> = users.iter().map(|c| &c.session.user).collect();
    sorted.sort_by_key(|u| u.name.key());
    let shown = sorted.iter().take(ONLINE_SHOWN).map(|u| u.id).collect();
    (shown, users.len())
}

/// Presence is bounded and coalesced per channel and tick (invariant 8): when N users join
/// at once, every member gets one `presence` frame, not one per joiner (N frames in all
/// where one per person per member was N²/2), no list holds more than [`ONLINE_SHOWN`]
/// names, and every member's list (its `joined` list with the deltas applied) ends up
/// exactly the first [`ONLINE_SHOWN`] by name with the right count; so does it when half of
/// them leave and others arrive in the same tick. A big channel (more than
/// [`ONLINE_SHOWN`] online) whose changes keep coming is told at most once per
/// [`BIG_ROOM_TICK`].
#[tokio::test(start_paused = true)]
async fn presence_frames_grow_linearly_with_joiners() {
    for n in [10usize, 100, 400] {
        let hub = unlimited();
        let mut members: Vec<Client> = Vec::new();
        let mut lists = Vec::new();
        for i in (0..n).rev() {
            let mut c = client(&hub, &format!("user{i}"), 64);
            c.conn.join(&general(), None).unwrap();
            lists.push(joined_online(&mut c.rx));
            members.push(c);
        }
        hub.flush_presence();
        let mut frames = 0;
        for (member, list) in members.iter_mut().zip(&mut lists) {
            frames += apply_news(&mut member.rx, list);
            assert!(list.0.len() <= ONLINE_SHOWN);
        }
        assert_eq!(frames, n, "one frame per member for {n} joiners");
        let window = window_of(&members.iter().collect::<Vec<_>>());
        assert!(lists.iter().all(|l| *l == window), "{n}: online lists");
        // Half leave (the first by name, so the window changes) while as many new users
        // arrive, all before the next tick.
        let mut pairs: Vec<_> = members.into_iter().zip(lists).collect();
        pairs.sort_by_key(|(m, _)| m.session.user.name.key());
        let (mut members, mut lists): (Vec<Client>, Vec<_>) = pairs.into_iter().skip(n / 2).unzip();
        for i in 0..n / 2 {
            let mut c = client(&hub, &format!("late{i}"), 64);
            c.conn.join(&general(), None).unwrap();
            lists.push(joined_online(&mut c.rx));
            members.push(c);
        }
        hub.flush_presence();
        let big = n > ONLINE_SHOWN;
        let frames: usize = members
            .iter_mut()
            .zip(&mut lists)
            .map(|(m, l)| apply_news(&mut m.rx, l))
            .sum();
        if big {
            assert_eq!(
                frames, 0,
                "{n}: a big channel still busy waits for its turn"
            );
            // Busy again by the next tick, told less than a second ago: it waits again.
            let mut extra = client(&hub, "zz-extra", 64);
            extra.conn.join(&general(), None).unwrap();
            lists.push(joined_online(&mut extra.rx));
            members.push(extra);
            hub.flush_presence();
            assert!(members.iter_mut().all(|m| drain(&mut m.rx).is_empty()));
            // Still busy, but a second has passed since it was last told.
            let mut extra = client(&hub, "zz-extra2", 64);
            extra.conn.join(&general(), None).unwrap();
            lists.push(joined_online(&mut extra.rx));
            members.push(extra);
            tokio::time::advance(BIG_ROOM_TICK).await;
            hub.flush_presence();
        }
        let frames = frames
            + members
                .iter_mut()
                .zip(&mut lists)
                .map(|(m, l)| apply_news(&mut m.rx, l))
                .sum::<usize>();
        assert_eq!(
            frames,
            members.len(),
            "one frame per member, joiners and stayers"
        );
        let window = window_of(&members.iter().collect::<Vec<_>>());
        assert_eq!(window.1, members.len());
        assert!(
            lists.iter().all(|l| *l == window),
            "{n}: lists after the churn"
        );
    }
}

/// A rename moves the user in every channel's window: renamed past the first
/// [`ONLINE_SHOWN`], they leave the members' lists and the next by name comes; a joiner
/// meanwhile is given the told list with the new name; renamed back, they return.
#[tokio::test(start_paused = true)]
async fn renames_move_users_in_and_out_of_the_window() {
    let hub = unlimited();
    let mut members: Vec<Client> = Vec::new();
    let mut lists = Vec::new();
    for i in 0..=ONLINE_SHOWN {
        let mut c = client(&hub, &format!("u{i:03}"), 256);
        c.conn.join(&general(), None).unwrap();
        lists.push(joined_online(&mut c.rx));
        members.push(c);
    }
    hub.flush_presence();
    for (member, list) in members.iter_mut().zip(&mut lists) {
        apply_news(&mut member.rx, list);
    }
    let first = members[0].session.user.id;
    let last = members[ONLINE_SHOWN].session.user.id;
    assert!(lists[0].0.contains(&first) && !lists[0].0.contains(&last));
    assert_eq!(lists[0].1, ONLINE_SHOWN + 1);
    // u001 is renamed within the window: its told name changes with it.
    members[1].conn.rename("u001b").applied().unwrap();
    members[0].conn.rename("zed").applied().unwrap();
    let mut late = client(&hub, "zz-late", 256);
    late.conn.join(&general(), None).unwrap();
    let named: Vec<String> = drain(&mut late.rx)
        .into_iter()
        .find_map(|e| match e {
            HubEvent::Joined { online, .. } => {
                Some(online.iter().map(|u| u.name.to_string()).collect())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(named.len(), ONLINE_SHOWN);
    assert_eq!(named[0], "u001b", "renamed in the told list, in name order");
    assert_eq!(named.last().map(String::as_str), Some("zed"));
    // A joiner and renames: the channel is big and was told less than a second ago, so
    // it waits while busy, and is told at the first tick that finds no new change.
    hub.flush_presence();
    for (member, list) in members.iter_mut().zip(&mut lists) {
        assert_eq!(apply_news(&mut member.rx, list), 0, "busy: not yet");
    }
    hub.flush_presence();
    for (member, list) in members.iter_mut().zip(&mut lists) {
        assert_eq!(apply_news(&mut member.rx, list), 1);
        assert!(!list.0.contains(&first), "renamed past the window");
        assert!(list.0.contains(&last), "the next by name comes");
        assert!(!list.0.contains(&late.session.user.id));
        assert_eq!(list.1, ONLINE_SHOWN + 2);
    }
    members[0].conn.rename("a-first").applied().unwrap();
    tokio::time::advance(BIG_ROOM_TICK).await;
    hub.flush_presence();
    for (member, list) in members.iter_mut().zip(&mut lists) {
        apply_news(&mut member.rx, list);
        assert!(list.0.contains(&first) && !list.0.contains(&last));
        assert_eq!(list.0.len(), ONLINE_SHOWN);
    }
}

/// Cluster presence shares the window: users online only through other instances take
/// their place in it by name and in the count, a local joiner pushes the last of them out,
/// and forgetting them leaves the local users.
#[tokio::test(start_paused = true)]
async fn remote_users_share_the_window_and_count() {
    let hub = unlimited();
    let mut zed = client(&hub, "zed", 256);
    zed.conn.join(&general(), None).unwrap();
    let remote: Vec<UserId> = (0..150)
        .map(|i| hub.register(&format!("r{i:03}")).applied().unwrap().user.id)
        .collect();
    let mut list = joined_online(&mut zed.rx);
    hub.flush_presence();
    apply_news(&mut zed.rx, &mut list);
    hub.set_remote_presence(vec![(general(), remote.iter().copied().collect())]);
    tokio::time::advance(BIG_ROOM_TICK).await;
    hub.flush_presence();
    apply_news(&mut zed.rx, &mut list);
    let window: HashSet<UserId> = remote[..ONLINE_SHOWN].iter().copied().collect();
    assert_eq!(list, (window, 151));
    let mut ada = client(&hub, "ada", 256);
    ada.conn.join(&general(), None).unwrap();
    let mut ada_list = joined_online(&mut ada.rx);
    assert_eq!(ada_list, list, "the joiner starts from the told list");
    tokio::time::advance(BIG_ROOM_TICK).await;
    hub.flush_presence();
    for (rx, list) in [(&mut zed.rx, &mut list), (&mut ada.rx, &mut ada_list)] {
        assert_eq!(apply_news(rx, list), 1);
        assert!(list.0.contains(&ada.session.user.id));
        assert!(!list.0.contains(&remote[ONLINE_SHOWN - 1]));
        assert_eq!(list.1, 152);
    }
    hub.forget_remote_presence();
    tokio::time::advance(BIG_ROOM_TICK).await;
    hub.flush_presence();
    apply_news(&mut zed.rx, &mut list);
    let here: HashSet<UserId> = [zed.session.user.id, ada.session.user.id].into();
    assert_eq!(list, (here, 2));
}

/// A user who comes and goes within one tick is never told: a member who joined in between
/// was given the list as last told (without them), like everyone else, and the tick adds
/// only the joiner that stayed.
#[test]
fn presence_within_one_tick_ends_right_for_everyone() {
    let hub = unlimited();
    let mut ada = client(&hub, "ada", 64);
    ada.conn.join(&general(), None).unwrap();
    hub.flush_presence();
    drain(&mut ada.rx);
    let bob = client(&hub, "bob", 64);
    bob.conn.join(&general(), None).unwrap();
    let mut cat = client(&hub, "cat", 64);
    cat.conn.join(&general(), None).unwrap();
    let joined: Vec<String> = drain(&mut cat.rx)
        .into_iter()
        .find_map(|e| match e {
            HubEvent::Joined { online, .. } => {
                Some(online.iter().map(|u| u.name.to_string()).collect())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(joined, ["ada"]);
    drop(bob);
    hub.flush_presence();
    let told = vec![("cat".to_owned(), true)];
    assert_eq!(presence_news(&mut cat.rx), told);
    assert_eq!(presence_news(&mut ada.rx), told);
}

/// Inside a runtime the hub's own timer tells the room, one tick after the first change.
#[tokio::test(start_paused = true)]
async fn presence_is_told_by_the_tick() {
    let hub = unlimited();
    let mut ada = client(&hub, "ada", 64);
    ada.conn.join(&general(), None).unwrap();
    let bob = client(&hub, "bob", 64);
    bob.conn.join(&general(), None).unwrap();
    drain(&mut ada.rx);
    tokio::time::sleep(PRESENCE_TICK / 2).await;
    assert!(drain(&mut ada.rx).is_empty(), "not before the tick");
    tokio::time::sleep(PRESENCE_TICK).await;
    assert_eq!(
        presence_news(&mut ada.rx),
        [("ada".to_owned(), true), ("bob".to_owned(), true)]
    );
    drop(bob);
    tokio::time::sleep(PRESENCE_TICK * 2).await;
    assert_eq!(presence_news(&mut ada.rx), [("bob".to_owned(), false)]);
}

/// Cluster presence: users other instances have in a channel are announced to its members
/// here as they come and go (once: not while they also have a connection here), and are on
/// a joiner's online list; forgetting them announces who went.
#[test]
fn presence_elsewhere_is_announced_here() {
    let hub = unlimited();
    let mut ada = client(&hub, "ada", 64);
    ada.conn.join(&general(), None).unwrap();
    drain(&mut ada.rx);
    let bob = hub.register("bob").applied().unwrap().user.id;
    let cat = client(&hub, "cat", 64);
    cat.conn.join(&general(), None).unwrap();
    hub.flush_presence();
    drain(&mut ada.rx);
    let elsewhere = |users: &[UserId]| vec![(general(), users.iter().copied().collect())];
    let news = |rx: &mut OutboxRx| -> Vec<(UserId, bool)> {
        hub.flush_presence();
        drain(rx)
            .into_iter()
            .flat_map(|e| match e {
                HubEvent::Presence { came, went, .. } => {
                    let came = came.into_iter().map(|u| (u.id, true));
                    came.chain(went.into_iter().map(|u| (u.id, false)))
                        .collect()
                }
                _ => Vec::new(),
            })
            .collect()
    };
    hub.set_remote_presence(elsewhere(&[bob, cat.session.user.id]));
    assert_eq!(news(&mut ada.rx), [(bob, true)], "cat is here already");
    hub.set_remote_presence(elsewhere(&[bob, cat.session.user.id]));
    assert!(news(&mut ada.rx).is_empty(), "no change, no news");
    let mut dan = client(&hub, "dan", 64);
    dan.conn.join(&general(), None).unwrap();
    let online: Vec<UserId> = drain(&mut dan.rx)
        .into_iter()
        .find_map(|e| match e {
            HubEvent::Joined { online, .. } => Some(online.iter().map(|u| u.id).collect()),
            _ => None,
        })
        .unwrap();
    assert!(online.contains(&bob), "{online:?}");
    hub.flush_presence();
    drain(&mut ada.rx);
    hub.set_remote_presence(elsewhere(&[cat.session.user.id]));
    assert_eq!(news(&mut ada.rx), [(bob, false)]);
    hub.set_remote_presence(elsewhere(&[bob]));
    assert_eq!(news(&mut ada.rx), [(bob, true)]);
    hub.forget_remote_presence();
    assert_eq!(news(&mut ada.rx), [(bob, false)]);
    hub.set_remote_presence(elsewhere(&[bob]));
    hub.forget_remote_presence();
    assert!(news(&mut ada.rx).is_empty(), "came and went in one tick");
}

/// The cluster is woken when a user's first connection joins a channel or their last
/// leaves it, not when another connection of theirs comes or goes, nor when one joins
/// again.
#[tokio::test(start_paused = true)]
async fn presence_moves_wake_the_cluster() {
    let hub = unlimited();
    let moved = |hub: &Hub| {
        let hub = hub.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(1), hub.presence_moved())
                .await
                .is_ok()
        }
    };
    let ada = client(&hub, "ada", 64);
    ada.conn.join(&general(), None).unwrap();
    assert!(moved(&hub).await, "ada's first connection joined");
    ada.conn.join(&general(), None).unwrap();
    assert!(!moved(&hub).await, "the same connection joined again");
    let (outbox, _rx) = Outbox::new(64);
    let second = hub.connect(outbox);
    second.authenticate(&ada.session.token).unwrap();
    second.join(&general(), None).unwrap();
    assert!(!moved(&hub).await, "ada was here already");
    drop(second);
    assert!(!moved(&hub).await, "ada is still here");
    ada.conn.leave(&general()).unwrap();
    assert!(moved(&hub).await, "ada's last connection left");
}

/// Dropping a connection removes its memberships.
#[test]
fn dropped_connections_unsubscribe() {
    let hub = unlimited();
    let c = client(&hub, "gone", 8);
    c.conn.join(&general(), None).unwrap();
    drop(c);
    let state = hub.lock();
    assert!(state.connections.map.is_empty());
    assert!(state.rooms.map.values().all(|r| r.members.is_empty()));
    assert!(state.directory.users.values().all(|u| u.conns.is_empty()));
}

/// A connection that joined a channel before authenticating shows up as online once it
/// authenticates.
#[test]
fn authenticating_after_joining_counts_as_online() {
    let hub = unlimited();
    let mut ada = client(&hub, "ada", 64);
    ada.conn.join(&general(), None).unwrap();
    hub.flush_presence();
    drain(&mut ada.rx);
    let (outbox, _rx) = Outbox::new(64);
    let late = hub.connect(outbox);
    late.join(&general(), None).unwrap();
    assert!(
        drain(&mut ada.rx).is_empty(),
        "anonymous readers are not announced"
    );
    let bob = hub.register("bob").applied().unwrap();
    late.authenticate(&bob.token).unwrap();
    hub.flush_presence();
    assert_eq!(presence_news(&mut ada.rx), [("bob".to_owned(), true)]);
}

/// Posting faster than the limit is refused with `rate_limited` and posts nothing; the
/// limit is per user, so others are unaffected, and it recovers with time.
#[tokio::test(start_paused = true)]
async fn posting_is_rate_limited_per_user() {
    let hub = Hub::in_memory(keep);
    let ada = client(&hub, "ada", 256);
    let bob = client(&hub, "bob", 256);
    let limits = HubSettings::default();
    for i in 0..limits.message_burst {
        ada.conn
            .post_now(&general(), &format!("m{i}"), None)
            .unwrap();
    }
    assert_eq!(
        ada.conn.post_now(&general(), "one too many", None),
        Err(ChatError::RateLimited)
    );
    assert_eq!(
        hub.channel_page("general").unwrap().messages.len(),
        limits.message_burst as usize
    );
    bob.conn
        .post_now(&general(), "I can still talk", None)
        .unwrap();
    tokio::time::advance(Duration::from_millis(250)).await;
    ada.conn
        .post_now(&general(), "after a pause", None)
        .unwrap();
}

/// Creating channels faster than the limit is refused.
#[test]
fn channel_creation_is_rate_limited() {
    let hub = Hub::in_memory(keep);
    let ada = client(&hub, "ada", 256);
    let limit = HubSettings::default().channels_per_minute;
    for i in 0..limit {
        hub.create_channel(&ada.session.token, &format!("c{i}"))
            .applied()
            .unwrap();
    }
    assert_eq!(
        hub.create_channel(&ada.session.token, "one more").applied(),
        Err(ChatError::ChannelRateLimited)
    );
}

/// A post refused for another reason does not use up the user's posting allowance, and a
/// taken channel name does not use up the channel allowance.
#[test]
fn refusals_do_not_use_up_allowances() {
    let hub = Hub::in_memory(keep);
    let ada = client(&hub, "ada", 256);
    let nowhere = Room::Channel(ChannelName::parse("nowhere").unwrap());
    let limits = HubSettings::default();
    for _ in 0..limits.message_burst * 2 {
        assert!(matches!(
            ada.conn.post_now(&nowhere, "hi", None),
            Err(ChatError::NoSuchChannel(_))
        ));
    }
    for i in 0..limits.message_burst {
        ada.conn
            .post_now(&general(), &format!("m{i}"), None)
            .unwrap();
    }
    for _ in 0..limits.channels_per_minute * 2 {
        assert!(matches!(
            hub.create_channel(&ada.session.token, "GENERAL").applied(),
            Err(ChatError::ChannelExists(_))
        ));
    }
    hub.create_channel(&ada.session.token, "fresh")
        .applied()
        .unwrap();
}

/// The page generation moves with every change a page shows (a post, a deletion, a rename, a
/// new channel) and stays put for what pages do not show (joining, a refused post).
#[test]
fn generation_tracks_what_pages_show() {
    let hub = unlimited();
    let ada = client(&hub, "ada", 64);
    let mut seen = hub.generation();
    let mut moved = |hub: &Hub| {
        let now = hub.generation();
        let changed = now != seen;
        seen = now;
        changed
    };
    ada.conn.join(&general(), None).unwrap();
    assert!(!moved(&hub), "joining changes no page");
    let message = ada.conn.post_now(&general(), "hello", None).unwrap();
    assert!(moved(&hub), "a post");
    assert!(ada.conn.post_now(&general(), "", None).is_err());
    assert!(!moved(&hub), "a refused post");
    ada.conn.rename("adeline").applied().unwrap();
    assert!(moved(&hub), "a rename");
    hub.create_channel(&ada.session.token, "news")
        .applied()
        .unwrap();
    assert!(moved(&hub), "a new channel");
    ada.conn.delete(&general(), message.id).unwrap();
    assert!(moved(&hub), "a deletion");
}

/// A hub keeping files in a fresh directory.
fn hub_with_files(name: &str) -> (Hub, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("flack-hub-files-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (open_with_files(&dir), dir)
}

/// Opens a hub (with nothing stored) over an existing files directory.
fn open_with_files(dir: &std::path::Path) -> Hub {
    Hub::open(
        Arc::new(MemoryStore),
        HubSettings {
            files_dir: Some(dir.to_path_buf()),
            ..HubSettings::default()
        },
        keep,
    )
    .unwrap()
}

/// Writes a file into `dir` and describes it as an attachment.
fn upload(dir: &std::path::Path, id: &str) -> Attachment {
    std::fs::write(dir.join(id), b"contents").unwrap();
    Attachment {
        id: FileId::parse(id).unwrap(),
        name: format!("{}.txt", &id[..4]),
        size: 8,
        content_type: "text/plain".into(),
        image: false,
    }
}

/// Uploads that were never sent are deleted by the sweep once old enough; a sent one stays.
#[test]
fn unsent_uploads_are_swept() {
    let (hub, dir) = hub_with_files("sweep");
    let ada = client(&hub, "ada", 16);
    let sent = upload(&dir, &"a".repeat(32));
    let unsent = upload(&dir, &"b".repeat(32));
    hub.add_file(&ada.session.token, &general(), sent.clone())
        .unwrap();
    hub.add_file(&ada.session.token, &general(), unsent.clone())
        .unwrap();
    ada.conn
        .post_now(&general(), "here", Some(&sent.id))
        .unwrap();
    assert_eq!(
        hub.sweep_unsent_files(Duration::from_secs(3600)),
        0,
        "too young"
    );
    assert_eq!(hub.sweep_unsent_files(Duration::ZERO), 1);
    assert!(dir.join(sent.id.as_str()).exists());
    assert!(!dir.join(unsent.id.as_str()).exists());
    assert_eq!(
        ada.conn.post_now(&general(), "late", Some(&unsent.id)),
        Err(ChatError::NoSuchFile)
    );
}

/// On start, files that no stored message carries are deleted; other files are left alone.
#[test]
fn orphan_files_are_removed_on_start() {
    let (_, dir) = hub_with_files("orphans");
    let orphan = upload(&dir, &"c".repeat(32));
    std::fs::write(dir.join("README"), b"not ours").unwrap();
    let _hub = open_with_files(&dir);
    assert!(!dir.join(orphan.id.as_str()).exists());
    assert!(dir.join("README").exists());
}

/// A connection too slow to take a `user_renamed` gets, once it drains, every room it is in
/// again in full, with the new name on the renamed user's messages.
#[test]
fn missed_renames_are_repaired_by_the_resync() {
    let hub = unlimited();
    let poster = client(&hub, "poster", 64);
    let mut slow = client(&hub, "slow", 3);
    slow.conn.join(&general(), None).unwrap();
    drain(&mut slow.rx);
    for i in 1..=3 {
        poster
            .conn
            .post_now(&general(), &format!("m{i}"), None)
            .unwrap();
    }
    poster.conn.rename("renamed").applied().unwrap();
    let before = drain(&mut slow.rx);
    assert_eq!(
        seqs(&before),
        [1, 2, 3],
        "the messages fit, the rename did not"
    );
    assert!(!before
        .iter()
        .any(|e| matches!(e, HubEvent::UserRenamed { .. })));
    hub.resync(slow.conn.id());
    let after = drain(&mut slow.rx);
    assert!(matches!(after.first(), Some(HubEvent::Welcome { .. })));
    let snapshot = after.iter().find_map(|e| match e {
        HubEvent::Joined {
            reset: true,
            messages,
            ..
        } => Some(messages),
        _ => None,
    });
    let names: Vec<&str> = snapshot
        .expect("a full snapshot of general")
        .iter()
        .map(|m| m.author.name.as_str())
        .collect();
    assert_eq!(names, ["renamed"; 3]);
}

/// Invariant 7 with the real SQLite store: a post reaches the room's members when the hub
/// returns, its acknowledgement resolves once the message is committed, and after a clean
/// stop the message and the epoch are both there.
#[test]
fn acks_wait_for_the_store() {
    use crate::chat::sqlite::SqliteStore;
    let (dir, path) = fresh_db("acks");
    let store = Arc::new(SqliteStore::open(&path, 100).unwrap());
    let hub = Hub::open(store.clone(), HubSettings::default(), keep).unwrap();
    let ada = client(&hub, "ada", 16);
    let mut bob = client(&hub, "bob", 16);
    bob.conn.join(&general(), None).unwrap();
    drain(&mut bob.rx);

    let posted = ada.conn.post(&general(), "hello", None).unwrap();
    assert!(
        matches!(&drain(&mut bob.rx)[..], [HubEvent::Message { message }] if message.body.as_str() == "hello"),
        "delivered"
    );
    posted.stored_blocking().expect("stored");

    // A clean stop (what the server does on SIGTERM) keeps the epoch.
    let epoch = hub.epoch();
    store.close();
    drop((ada, bob, hub, store));
    let loaded = SqliteStore::open(&path, 100).unwrap().load().unwrap();
    assert_eq!(loaded.epoch, Some(epoch), "a clean stop keeps the epoch");
    let general_room = loaded.rooms.iter().find(|r| r.channel.is_some()).unwrap();
    assert_eq!(general_room.messages.len(), 1);
    assert_eq!(general_room.messages[0].body.as_str(), "hello");
    let _ = std::fs::remove_dir_all(&dir);
}

/// After deletions, the channel shows the same messages before and after a restart: the
/// hub's window and the SQLite ring both keep the last 5 sequence numbers (here), so a
/// message the hub still showed cannot vanish from the file.
#[test]
fn deletions_leave_the_same_window_in_memory_and_on_disk() {
    use crate::chat::sqlite::SqliteStore;
    let (dir, path) = fresh_db("window");
    let settings = HubSettings {
        history: 5,
        ..unlimited_settings()
    };
    let shown = |hub: &Hub| -> Vec<String> {
        let page = hub.channel_page("general").unwrap();
        page.messages
            .iter()
            .map(|m| m.body.as_str().to_owned())
            .collect()
    };
    let before = {
        let store = Arc::new(SqliteStore::open(&path, 5).unwrap());
        let hub = Hub::open(store.clone(), settings.clone(), keep).unwrap();
        let ada = client(&hub, "ada", 64);
        let mut posted = Vec::new();
        for n in 1..=5 {
            posted.push(ada.conn.post(&general(), &format!("m{n}"), None).unwrap());
        }
        ada.conn.delete(&general(), posted[2].applied().id).unwrap();
        for n in 6..=7 {
            posted.push(ada.conn.post(&general(), &format!("m{n}"), None).unwrap());
        }
        for p in posted {
            p.stored_blocking().expect("stored");
        }
        let before = shown(&hub);
        store.close();
        before
    };
    assert_eq!(before, ["m4", "m5", "m6", "m7"]);
    let store = Arc::new(SqliteStore::open(&path, 5).unwrap());
    let hub = Hub::open(store.clone(), settings, keep).unwrap();
    assert_eq!(shown(&hub), before);
    store.close();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Invariant 7: the hub never waits for the disk. While another connection holds the
/// database's write lock (as a stalled disk holds up the writer), registering, creating a
/// channel and renaming still go through and are announced, and messages still flow; only
/// the answers wait, and they come once the lock is released and the changes are on disk.
#[test]
fn a_stalled_disk_holds_up_answers_not_the_hub() {
    use crate::chat::sqlite::SqliteStore;
    let (dir, path) = fresh_db("stall");
    let store = Arc::new(SqliteStore::open(&path, 100).unwrap());
    let hub = Hub::open(store.clone(), unlimited_settings(), keep).unwrap();
    let mut bob = client(&hub, "bob", 64);
    bob.conn.join(&general(), None).unwrap();
    drain(&mut bob.rx);

    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let ada = hub
        .register("ada")
        .expect("registers while the disk is held");
    let ada_conn = hub.connect(Outbox::new(16).0);
    ada_conn.authenticate(&ada.applied().token).unwrap();
    let design = hub
        .create_channel(&ada.applied().token, "design")
        .expect("creates while the disk is held");
    let renamed = bob.conn.rename("robert").expect("renames while held");
    let posted = ada_conn.post(&general(), "still flowing", None).unwrap();
    let events = drain(&mut bob.rx);
    assert!(events.iter().any(
        |e| matches!(e, HubEvent::ChannelCreated { channel } if channel.name.as_str() == "design")
    ));
    assert!(events
        .iter()
        .any(|e| matches!(e, HubEvent::UserRenamed { user } if user.name.as_str() == "robert")));
    assert!(events.iter().any(
        |e| matches!(e, HubEvent::Message { message } if message.body.as_str() == "still flowing")
    ));

    let (answered, answers) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let results = [
            ada.stored_blocking().map(|_| ()),
            design.stored_blocking().map(|_| ()),
            renamed.stored_blocking().map(|_| ()),
            posted.stored_blocking().map(|_| ()),
        ];
        let _ = answered.send(results);
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        answers.try_recv().is_err(),
        "no answer before the disk is free"
    );
    blocker.execute_batch("COMMIT").unwrap();
    let results = answers
        .recv_timeout(Duration::from_secs(30))
        .expect("answered once the disk is free");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    store.close();
    let _ = std::fs::remove_dir_all(&dir);
}

/// An outbox is bounded in bytes as well as frames: frames that would pass the byte bound
/// are refused (marking the connection behind, which then takes nothing until its resync),
/// taking frames out makes room again, and a frame larger than the whole bound still goes
/// when the queue is empty.
#[test]
fn outboxes_are_bounded_in_bytes() {
    let (outbox, mut rx) = Outbox::bounded(256, 1000);
    let frame = |len: usize| Frame::from_text("x".repeat(len));
    assert!(outbox.offer(frame(400)));
    assert!(outbox.offer(frame(400)));
    assert!(!outbox.offer(frame(400)), "1,200 bytes do not fit in 1,000");
    assert!(outbox.is_behind());
    assert_eq!(outbox.queued_bytes(), 800);
    assert!(!rx.is_half_empty());
    rx.try_recv().unwrap();
    assert!(rx.is_half_empty());
    assert!(
        !outbox.offer(frame(400)),
        "behind, it takes nothing until its resync"
    );
    outbox.clear_behind();
    assert!(outbox.offer(frame(400)));
    rx.try_recv().unwrap();
    rx.try_recv().unwrap();
    assert_eq!(outbox.queued_bytes(), 0);
    assert!(outbox.offer(frame(5000)), "an oversized frame goes alone");
    assert!(!outbox.offer(frame(1)), "and nothing beside it");
}

/// A connection that joins a full room again and again without reading holds at most its
/// byte bound, and every join of the unchanged room shares one encoded snapshot (one encode,
/// not one per join); a new message makes the next snapshot a new one.
#[test]
fn repeated_joins_share_one_snapshot_and_stay_within_the_bound() {
    thread_local! {
        static ENCODES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    /// `keep`, counting the events this test's thread encodes.
    fn counting(event: HubEvent) -> Frame {
        ENCODES.with(|n| n.set(n.get() + 1));
        keep(event)
    }
    let hub = Hub::open(Arc::new(MemoryStore), unlimited_settings(), counting).unwrap();
    let ada = client(&hub, "ada", 256);
    let wide = "😀".repeat(4000);
    for _ in 0..crate::chat::model::HISTORY_LIMIT {
        ada.conn.post_now(&general(), &wide, None).unwrap();
    }
    let (outbox, mut rx) = Outbox::bounded(256, 64 * 1024);
    let reader = hub.connect(outbox.clone());
    drain(&mut rx);
    let (outbox2, mut rx2) = Outbox::new(256);
    let other = hub.connect(outbox2);
    drain(&mut rx2);
    let encoded_before = ENCODES.with(|n| n.get());
    for _ in 0..1000 {
        reader.join(&general(), None).unwrap();
    }
    other.join(&general(), None).unwrap();
    let encoded = ENCODES.with(|n| n.get()) - encoded_before;
    assert_eq!(encoded, 1, "one snapshot for 1,001 joins");
    assert!(outbox.queued_bytes() <= 64 * 1024);
    let first = rx.try_recv().unwrap();
    assert_eq!(rx2.try_recv().unwrap().as_str(), first.as_str());
    ada.conn.post_now(&general(), "news", None).unwrap();
    drain(&mut rx2);
    other.join(&general(), None).unwrap();
    match &drain(&mut rx2)[..] {
        [HubEvent::Joined {
            reset: true,
            messages,
            ..
        }] => assert_eq!(messages.last().unwrap().body.as_str(), "news"),
        other => panic!("expected a fresh snapshot, got {other:?}"),
    }
}

/// A crowd reconnecting from one cursor (a restart) shares one encoded catch-up, holding
/// exactly what each missed; a new message, or a presence tick that changes the list they
/// are given, makes the next one new.
#[test]
fn joins_from_one_cursor_share_one_catch_up() {
    thread_local! {
        static ENCODES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    /// `keep`, counting the events this test's thread encodes.
    fn counting(event: HubEvent) -> Frame {
        ENCODES.with(|n| n.set(n.get() + 1));
        keep(event)
    }
    let hub = Hub::open(Arc::new(MemoryStore), unlimited_settings(), counting).unwrap();
    let ada = client(&hub, "ada", 256);
    for i in 0..20 {
        ada.conn
            .post_now(&general(), &format!("m{i}"), None)
            .unwrap();
    }
    let since = Some(Cursor {
        epoch: hub.shared.epoch,
        seq: 10,
    });
    let mut crowd: Vec<Client> = (0..50)
        .map(|i| client(&hub, &format!("c{i}"), 256))
        .collect();
    let encoded_before = ENCODES.with(|n| n.get());
    for c in &crowd {
        c.conn.join(&general(), since).unwrap();
    }
    assert_eq!(ENCODES.with(|n| n.get()) - encoded_before, 1);
    for c in &mut crowd {
        assert_eq!(seqs(&drain(&mut c.rx)), (11..=20).collect::<Vec<_>>());
    }
    // The tick changes the told list: the next joiner is given the new one.
    hub.flush_presence();
    let late = client(&hub, "late", 256);
    late.conn.join(&general(), since).unwrap();
    let mut late = late;
    let (online, count) = joined_online(&mut late.rx);
    assert_eq!((online.len(), count), (50, 50));
    ada.conn.post_now(&general(), "news", None).unwrap();
    let mut again = client(&hub, "again", 256);
    again.conn.join(&general(), since).unwrap();
    assert_eq!(seqs(&drain(&mut again.rx)), (11..=21).collect::<Vec<_>>());
}

/// Joining is limited per user, across connections: after the burst a join that would
/// announce the user is refused with `join_rate_limited`, so members see a bounded number of
/// presence frames however fast one user joins and leaves; it recovers with time.
#[tokio::test(start_paused = true)]
async fn join_and_leave_floods_are_limited_per_user() {
    let hub = Hub::in_memory(keep);
    let ada = client(&hub, "ada", 256);
    let mut bob = client(&hub, "bob", 4096);
    bob.conn.join(&general(), None).unwrap();
    hub.flush_presence();
    drain(&mut bob.rx);
    let second = hub.connect(Outbox::new(4096).0);
    second.authenticate(&ada.session.token).unwrap();
    let burst = HubSettings::default().join_burst;
    let mut refused = 0;
    for i in 0..200 {
        let conn = if i % 2 == 0 { &ada.conn } else { &second };
        match conn.join(&general(), None) {
            Ok(()) => conn.leave(&general()).unwrap(),
            Err(ChatError::JoinRateLimited) => refused += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(refused, 200 - burst);
    // However many times ada came and went, she is gone at the tick, as she was at the
    // last one: nothing to tell.
    hub.flush_presence();
    assert!(presence_news(&mut bob.rx).is_empty());
    tokio::time::advance(Duration::from_secs(1)).await;
    ada.conn.join(&general(), None).unwrap();
    // Joining a channel one is already in announces nothing, so it is not counted.
    for _ in 0..100 {
        ada.conn.join(&general(), None).unwrap();
    }
}

/// Renames are limited per user: after the allowance a rename is refused with
/// `rename_rate_limited` and nobody hears of it; it recovers after a minute.
#[tokio::test(start_paused = true)]
async fn rename_floods_are_limited_per_user() {
    let hub = Hub::in_memory(keep);
    let ada = client(&hub, "ada", 256);
    let mut bob = client(&hub, "bob", 4096);
    let allowed = HubSettings::default().renames_per_minute;
    let mut refused = 0;
    for i in 0..100 {
        match ada.conn.rename(&format!("ada{i}")).applied() {
            Ok(_) => {}
            Err(ChatError::RenameRateLimited) => refused += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(refused, 100 - allowed);
    let renames = drain(&mut bob.rx)
        .into_iter()
        .filter(|e| matches!(e, HubEvent::UserRenamed { .. }))
        .count();
    assert_eq!(renames, allowed as usize);
    tokio::time::advance(Duration::from_secs(60)).await;
    ada.conn.rename("ada again").applied().unwrap();
}

/// The server's growth has configurable caps: past `max_channels` a new channel is refused
/// with `too_many_channels`, past `max_users` a registration with `too_many_users`, and
/// nothing is created.
#[test]
fn channels_and_users_are_capped() {
    let settings = HubSettings {
        max_channels: 3,
        max_users: 2,
        ..HubSettings::default()
    };
    let hub = Hub::open(Arc::new(MemoryStore), settings, keep).unwrap();
    let ada = client(&hub, "ada", 256);
    hub.create_channel(&ada.session.token, "two")
        .applied()
        .unwrap();
    hub.create_channel(&ada.session.token, "three")
        .applied()
        .unwrap();
    assert_eq!(
        hub.create_channel(&ada.session.token, "four").applied(),
        Err(ChatError::TooManyChannels { max: 3 })
    );
    assert_eq!(hub.channels().len(), 3);
    hub.register("bob").applied().unwrap();
    assert_eq!(
        hub.register("carol").applied().map(|_| ()),
        Err(ChatError::TooManyUsers { max: 2 })
    );
}

/// One account cannot fill everyone's list with private conversations: past the per-user
/// allowance a new conversation is refused with `direct_rate_limited` and does not appear in
/// its peer's list, while conversations already started go on; it recovers after a minute.
#[tokio::test(start_paused = true)]
async fn starting_private_conversations_is_rate_limited() {
    let hub = unlimited();
    let ada = client(&hub, "ada", 4096);
    let allowed = HubSettings::default().directs_per_minute as usize;
    let peers: Vec<Session> = (0..allowed + 5)
        .map(|i| hub.register(&format!("peer{i}")).applied().unwrap())
        .collect();
    let direct = |peer: &Session| {
        Room::Direct(DirectKey::between(ada.session.user.id, peer.user.id).unwrap())
    };
    for peer in &peers[..allowed] {
        ada.conn.post_now(&direct(peer), "hello", None).unwrap();
    }
    let late = &peers[allowed];
    assert_eq!(
        ada.conn.post_now(&direct(late), "hello", None),
        Err(ChatError::DirectRateLimited)
    );
    assert_eq!(
        ada.conn.join(&direct(late), None),
        Err(ChatError::DirectRateLimited)
    );
    assert!(hub.directs(&late.token).unwrap().is_empty());
    ada.conn
        .post_now(&direct(&peers[0]), "still talking", None)
        .unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;
    ada.conn
        .post_now(&direct(late), "hello at last", None)
        .unwrap();
    assert_eq!(hub.directs(&late.token).unwrap().len(), 1);
}

/// Uploads waiting to be sent have a per-user quota, in count and in bytes: past either the
/// upload is refused with `too_many_unsent_files` (and not recorded), another user is not
/// affected, and sending a waiting file frees its place.
#[test]
fn unsent_uploads_have_a_quota_per_user() {
    let hub = unlimited();
    let ada = client(&hub, "ada", 256);
    let bob = client(&hub, "bob", 256);
    let file = |i: usize, size: u64| Attachment {
        id: FileId::parse(&format!("{i:032x}")).unwrap(),
        name: format!("f{i}.bin"),
        size,
        content_type: "application/octet-stream".into(),
        image: false,
    };
    let limits = HubSettings::default();
    for i in 0..limits.unsent_files {
        hub.add_file(&ada.session.token, &general(), file(i, 1))
            .unwrap();
    }
    let one_more = file(100, 1);
    assert_eq!(
        hub.add_file(&ada.session.token, &general(), one_more.clone()),
        Err(ChatError::TooManyUnsentFiles)
    );
    assert_eq!(
        hub.file_for(&one_more.id, None),
        Err(ChatError::NoSuchFile),
        "a refused upload is not recorded"
    );
    hub.add_file(&bob.session.token, &general(), file(200, 1))
        .unwrap();
    ada.conn
        .post_now(&general(), "", Some(&file(0, 1).id))
        .unwrap();
    hub.add_file(&ada.session.token, &general(), one_more)
        .unwrap();
    // Bytes: one upload that would take bob's waiting files past the byte quota.
    assert_eq!(
        hub.add_file(
            &bob.session.token,
            &general(),
            file(201, limits.unsent_file_bytes)
        ),
        Err(ChatError::TooManyUnsentFiles)
    );
}

/// A file disappears only after the change that drops it is stored: while the database is
/// held by someone else, deleting a message leaves its file on disk (a restart then would
/// bring the message back, and it must still have its file); once the deletion is committed
/// the file goes.
#[test]
fn files_outlive_deletions_until_they_are_stored() {
    use crate::chat::sqlite::SqliteStore;
    let (dir, path) = fresh_db("file-order");
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let store = Arc::new(SqliteStore::open(&path, 100).unwrap());
    let settings = HubSettings {
        files_dir: Some(files.clone()),
        ..unlimited_settings()
    };
    let hub = Hub::open(store.clone(), settings, keep).unwrap();
    let ada = client(&hub, "ada", 64);
    let file = upload(&files, &"c".repeat(32));
    hub.add_file(&ada.session.token, &general(), file.clone())
        .unwrap();
    let message = ada
        .conn
        .post(&general(), "see attached", Some(&file.id))
        .unwrap()
        .stored_blocking()
        .unwrap();

    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    ada.conn.delete(&general(), message.id).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        files.join(file.id.as_str()).exists(),
        "the file stays while the deletion is not stored"
    );
    blocker.execute_batch("COMMIT").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while files.join(file.id.as_str()).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the file goes once stored"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    store.close();
    let _ = std::fs::remove_dir_all(&dir);
}

/// With a durable store, a file whose message left the window stays: the start-up sweep
/// of the files folder counts the archive's messages as carriers (a file no stored message
/// carries goes; without a runtime the sweep is done before the hub is returned), and the
/// file is still found, through the store, for its download.
#[test]
fn the_start_up_sweep_keeps_files_the_archive_carries() {
    use crate::chat::sqlite::SqliteStore;
    let (dir, path) = fresh_db("archived-files");
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let settings = || HubSettings {
        files_dir: Some(files.clone()),
        ..unlimited_settings()
    };
    let kept = {
        let store = Arc::new(SqliteStore::open(&path, 100).unwrap());
        let hub = Hub::open(store.clone(), settings(), keep).unwrap();
        let kept = upload(&files, &"d".repeat(32));
        let ada = client(&hub, "ada", 16);
        hub.add_file(&ada.session.token, &general(), kept.clone())
            .unwrap();
        ada.conn
            .post_now(&general(), "old", Some(&kept.id))
            .unwrap();
        let mut last = None;
        for i in 0..100 {
            last = Some(ada.conn.post(&general(), &format!("m{i}"), None).unwrap());
        }
        last.unwrap().stored_blocking().unwrap();
        assert_eq!(
            hub.file_for(&kept.id, None),
            Err(ChatError::NoSuchFile),
            "out of the window"
        );
        assert!(files.join(kept.id.as_str()).exists());
        store.close();
        kept
    };
    let stray = upload(&files, &"e".repeat(32));
    let store = Arc::new(SqliteStore::open(&path, 100).unwrap());
    let hub = Hub::open(store.clone(), settings(), keep).unwrap();
    assert!(!files.join(stray.id.as_str()).exists(), "swept");
    assert!(files.join(kept.id.as_str()).exists(), "kept");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        runtime.block_on(hub.stored_file_for(&kept.id, None)),
        Ok(kept)
    );
    store.close();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A rename touches no held message, yet every way a message leaves the hub carries its
/// author's current name: a snapshot, a catch-up after a cursor, and the channel's page.
#[test]
fn renamed_authors_show_their_new_name_everywhere() {
    let hub = unlimited();
    let ada = client(&hub, "ada", 256);
    let first = ada.conn.post_now(&general(), "one", None).unwrap();
    ada.conn.post_now(&general(), "two", None).unwrap();
    ada.conn.rename("adeline").applied().unwrap();
    let (outbox, mut rx) = Outbox::new(64);
    let reader = hub.connect(outbox);
    drain(&mut rx);
    reader.join(&general(), None).unwrap();
    let cursor = Cursor {
        epoch: hub.epoch(),
        seq: first.seq,
    };
    reader.join(&general(), Some(cursor)).unwrap();
    let mut authors = Vec::new();
    for event in drain(&mut rx) {
        if let HubEvent::Joined { messages, .. } = event {
            authors.extend(messages.into_iter().map(|m| m.author.name.to_string()));
        }
    }
    assert_eq!(authors, ["adeline", "adeline", "adeline"]);
    let page = hub.channel_page("general").unwrap();
    assert!(page
        .messages
        .iter()
        .all(|m| m.author.name.as_str() == "adeline"));
}

/// The hub on the PostgreSQL store: posts are acknowledged once committed, and after a
/// clean stop a new hub on the same database has the user (their token still signs in,
/// under their new name), the channel's history without the deleted message, the same
/// epoch, and numbering that goes on where it stopped.
#[test]
fn the_postgres_store_keeps_history_across_restarts() {
    use crate::chat::postgres::tests::TestDatabase;
    use crate::chat::postgres::PostgresStore;
    let db = TestDatabase::create();
    let shown = |hub: &Hub| -> Vec<String> {
        let page = hub.channel_page("general").unwrap();
        page.messages
            .iter()
            .map(|m| m.body.as_str().to_owned())
            .collect()
    };
    let (token, epoch) = {
        let store = Arc::new(PostgresStore::open(&db.url, 100).unwrap());
        let hub = Hub::open(store.clone(), unlimited_settings(), keep).unwrap();
        let ada = client(&hub, "ada", 64);
        let mut posted = Vec::new();
        for n in 1..=3 {
            posted.push(ada.conn.post(&general(), &format!("m{n}"), None).unwrap());
        }
        ada.conn.delete(&general(), posted[1].applied().id).unwrap();
        ada.conn.rename("adeline").applied().unwrap();
        for p in posted {
            p.stored_blocking().expect("stored");
        }
        assert_eq!(shown(&hub), ["m1", "m3"]);
        store.close();
        (ada.session.token.clone(), hub.epoch())
    };
    let store = Arc::new(PostgresStore::open(&db.url, 100).unwrap());
    let hub = Hub::open(store.clone(), unlimited_settings(), keep).unwrap();
    assert_eq!(hub.epoch(), epoch, "a clean stop keeps the epoch");
    assert_eq!(shown(&hub), ["m1", "m3"]);
    let (outbox, _rx) = Outbox::new(16);
    let conn = hub.connect(outbox);
    let user = conn.authenticate(&token).unwrap();
    assert_eq!(user.name.as_str(), "adeline");
    let next = conn.post(&general(), "m4", None).unwrap();
    assert_eq!(next.applied().seq, 4, "numbers go on where they stopped");
    next.stored_blocking().expect("stored");
    store.close();
}

/// Invariant 7 on the PostgreSQL store: the hub never waits for the database. While another
/// connection holds a write lock on the store's tables (as a stalled database holds up the
/// writer), registering, creating a channel, renaming and posting still go through and are
/// announced; only the answers wait, and they come once the lock is released.
#[test]
fn a_stalled_postgres_holds_up_answers_not_the_hub() {
    use crate::chat::postgres::tests::TestDatabase;
    use crate::chat::postgres::PostgresStore;
    let db = TestDatabase::create();
    let store = Arc::new(PostgresStore::open(&db.url, 100).unwrap());
    let hub = Hub::open(store.clone(), unlimited_settings(), keep).unwrap();
    let mut bob = client(&hub, "bob", 64);
    bob.conn.join(&general(), None).unwrap();
    drain(&mut bob.rx);

    let held = db.hold_writes();
    let ada = hub
        .register("ada")
        .expect("registers while the database is held");
    let ada_conn = hub.connect(Outbox::new(16).0);
    ada_conn.authenticate(&ada.applied().token).unwrap();
    let design = hub
        .create_channel(&ada.applied().token, "design")
        .expect("creates while the database is held");
    let renamed = bob.conn.rename("robert").expect("renames while held");
    let posted = ada_conn.post(&general(), "still flowing", None).unwrap();
    let events = drain(&mut bob.rx);
    assert!(events.iter().any(
        |e| matches!(e, HubEvent::ChannelCreated { channel } if channel.name.as_str() == "design")
    ));
    assert!(events
        .iter()
        .any(|e| matches!(e, HubEvent::UserRenamed { user } if user.name.as_str() == "robert")));
    assert!(events.iter().any(
        |e| matches!(e, HubEvent::Message { message } if message.body.as_str() == "still flowing")
    ));

    let (answered, answers) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let results = [
            ada.stored_blocking().map(|_| ()),
            design.stored_blocking().map(|_| ()),
            renamed.stored_blocking().map(|_| ()),
            posted.stored_blocking().map(|_| ()),
        ];
        let _ = answered.send(results);
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        answers.try_recv().is_err(),
        "no answer before the database is free"
    );
    held.release();
    let results = answers
        .recv_timeout(Duration::from_secs(30))
        .expect("answered once the database is free");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    store.close();
}

/// A connection following unread counts whose outbox could not take some `activity` news
/// is resynced with a fresh summary after its `welcome`, counting what it missed.
#[test]
fn a_follower_that_missed_news_gets_a_fresh_summary() {
    let hub = unlimited();
    let mut ada = client(&hub, "ada", 4);
    let bob = client(&hub, "bob", 64);
    ada.conn.follow_unread().unwrap();
    let first = drain(&mut ada.rx);
    assert!(
        matches!(first.last(), Some(HubEvent::Unread { .. })),
        "{first:?}"
    );
    for n in 0..10 {
        bob.conn
            .post_now(&general(), &format!("@ada {n}"), None)
            .unwrap();
    }
    let live = drain(&mut ada.rx);
    assert_eq!(live.len(), 4, "{live:?}");
    assert!(live
        .iter()
        .all(|e| matches!(e, HubEvent::Activity { mention: true, .. })));
    hub.resync(ada.conn.id());
    let again = drain(&mut ada.rx);
    assert!(
        matches!(again.first(), Some(HubEvent::Welcome { .. })),
        "{again:?}"
    );
    match &again[1] {
        HubEvent::Unread { rooms } => {
            let general = rooms.iter().find(|r| r.room == general()).unwrap();
            assert_eq!(
                (general.unread, general.mentions, general.last_seq),
                (10, 10, 10)
            );
        }
        other => panic!("expected a summary, got {other:?}"),
    }
}
