//! Redis between instances: publishing each committed change after its commit, and one
//! subscription that receives the other instances' changes this instance follows.
//!
//! Redis pub/sub is at-most-once: a change published while a subscriber is disconnected,
//! or while Redis restarts, is lost for that subscriber. Nothing depends on it for
//! durability: what is lost is read back from PostgreSQL (see [`super::repair`]), and a
//! subscription that is made again asks for a full check at once.
//!
//! A channel's changes go to the channel's topic, a private conversation's to each of its
//! two participants' topics, and directory changes to the directory's; an instance
//! subscribes to the directory and to the topics it follows ([`super::interest`]). Each
//! channel message also goes, as a small [`NewsEnvelope`], to the news topic, which the
//! instances whose connections follow unread counts subscribe to.

use super::interest::{channel_of, directory_channel, Topic};
use super::Node;
use crate::chat::model::{Room, UserId};
use crate::chat::replica::Replicated;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most changes sent to Redis in one pipeline.
const MAX_PIPELINE: usize = 512;

/// How long one pipeline may take before its changes are given up (other instances read
/// them from PostgreSQL).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest wait between attempts to reach Redis again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What goes over Redis: a committed change and who committed it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Envelope {
    /// The instance that committed it (which ignores its own).
    pub(super) from: String,
    /// For a directory change, the directory count it brought the database to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) directory: Option<u64>,
    pub(super) change: Replicated,
}

/// What the news topic carries of a channel's message: enough to tell unread followers
/// that it came and whether it mentions them.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct NewsEnvelope {
    pub(super) from: String,
    pub(super) room: Room,
    pub(super) seq: u64,
    pub(super) author: UserId,
    /// The body, only when it holds an `@` (so it may mention someone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) body: Option<String>,
}

/// The news of a committed change, with its Redis channel, if it is a channel's message.
pub(super) fn news_of(
    prefix: &str,
    from: &str,
    change: &Replicated,
) -> Option<(String, NewsEnvelope)> {
    let Replicated::Message { message } = change else {
        return None;
    };
    if !matches!(message.room, Room::Channel(_)) {
        return None;
    }
    let body = message.body.as_str();
    let news = NewsEnvelope {
        from: from.to_owned(),
        room: message.room.clone(),
        seq: message.seq,
        author: message.author.id,
        body: body.contains('@').then(|| body.to_owned()),
    };
    Some((channel_of(prefix, &Topic::News), news))
}

/// The Redis channels a change goes to: its channel's, both participants' for a private
/// conversation, or the directory's.
pub(super) fn channels_for(prefix: &str, change: &Replicated) -> Vec<String> {
    let room = match change {
        Replicated::Message { message } => &message.room,
        Replicated::Deleted { room, .. } => room,
        Replicated::Edited { message } => &message.room,
        Replicated::Reacted { room, .. } => room,
        Replicated::Typing { room, .. } => room,
        Replicated::Channel { .. } | Replicated::User { .. } | Replicated::Renamed { .. } => {
            return vec![directory_channel(prefix)];
        }
        Replicated::Read { user, .. } => return vec![channel_of(prefix, &Topic::User(*user))],
    };
    match room {
        Room::Channel(_) => vec![channel_of(prefix, &Topic::Channel(room.clone()))],
        Room::Direct(direct) => direct
            .users()
            .iter()
            .map(|user| channel_of(prefix, &Topic::User(*user)))
            .collect(),
    }
}

/// Sends what the sequencer committed to Redis, in order, a pipeline at a time. While
/// Redis is unreachable, changes are dropped (and logged once per outage): the other
/// instances read them back from PostgreSQL.
pub(super) async fn publish(
    client: redis::Client,
    mut queue: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    delay: Duration,
) {
    let mut connection: Option<redis::aio::ConnectionManager> = None;
    let mut reported = false;
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_PIPELINE {
            match queue.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        if !delay.is_zero() {
            // A testing aid (`cluster.publish_delay`): other instances see this one's
            // changes late, after later ones from elsewhere.
            tokio::time::sleep(delay).await;
        }
        if connection.is_none() {
            match redis::aio::ConnectionManager::new(client.clone()).await {
                Ok(made) => connection = Some(made),
                Err(e) => {
                    if !reported {
                        tracing::warn!(error = %e, "Redis is unreachable: other instances will read this one's changes from PostgreSQL");
                        reported = true;
                    }
                    continue;
                }
            }
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        let mut pipe = redis::pipe();
        for (channel, payload) in &batch {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        match super::in_time(PUBLISH_TIMEOUT, pipe.query_async::<()>(conn)).await {
            Ok(()) => {
                if reported {
                    tracing::info!("Redis is reachable again: publishing changes");
                    reported = false;
                }
            }
            Err(e) => {
                if !reported {
                    tracing::warn!(error = %e, "could not publish to Redis: other instances will read this one's changes from PostgreSQL");
                    reported = true;
                }
            }
        }
    }
}

/// Receives the changes of the topics this instance follows, for as long as the node
/// lives: subscribes (to the directory and every followed topic), asks for a full check
/// (whatever was published while it was not subscribed is read back), applies what
/// arrives, and subscribes again when the subscription ends or a command goes unanswered.
pub(super) async fn subscribe(client: redis::Client, node: Arc<Node>) {
    let news_channel = channel_of(&node.prefix, &Topic::News);
    let mut backoff = Duration::from_millis(100);
    let mut reported = false;
    loop {
        let subscribed = async {
            let (sink, stream) = client.get_async_pubsub().await?.split();
            node.interest.attach(sink).await?;
            Ok::<_, redis::RedisError>(stream)
        };
        let mut stream = match subscribed.await {
            Ok(stream) => stream,
            Err(e) => {
                if !reported {
                    tracing::warn!(error = %e, "cannot subscribe to Redis: changes from other instances arrive only by the periodic check");
                    reported = true;
                }
                node.redis_up(false);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if reported {
            tracing::info!("subscribed to Redis again");
        }
        reported = false;
        backoff = Duration::from_millis(100);
        node.redis_up(true);
        node.request_full_check();
        loop {
            let msg = tokio::select! {
                msg = stream.next() => msg,
                () = node.interest.lost.notified() => None,
            };
            let Some(msg) = msg else { break };
            let payload: &[u8] = msg.get_payload_bytes();
            if msg.get_channel_name() == news_channel {
                match serde_json::from_slice::<NewsEnvelope>(payload) {
                    Ok(news) if news.from == node.me => {}
                    Ok(news) => node.hear(&news),
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring news from Redis that do not parse")
                    }
                }
                continue;
            }
            match serde_json::from_slice::<Envelope>(payload) {
                Ok(envelope) if envelope.from == node.me => {}
                Ok(envelope) => node.receive(envelope.change, envelope.directory),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring a change from Redis that does not parse")
                }
            }
        }
        tracing::warn!("the Redis subscription ended; subscribing again");
        node.interest.detach().await;
        node.redis_up(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::model::{
        ChannelName, DisplayName, Message, MessageBody, MessageId, Timestamp, UserInfo,
    };

    fn message(body: &str) -> Replicated {
        Replicated::Message {
            message: Message {
                id: MessageId(41),
                room: Room::Channel(ChannelName::parse("general").expect("a name")),
                seq: 17,
                author: UserInfo {
                    id: UserId(3),
                    name: DisplayName::parse("Ann").expect("a name"),
                },
                body: MessageBody::parse(body, 4000).expect("a body"),
                attachment: None,
                sent_at: Timestamp::from_millis(1_796_000_000_000),
                edited_at: None,
                reactions: Vec::new(),
                reply: None,
            },
        }
    }

    /// The news of a message are what an unread follower needs and no more: its body only
    /// when it holds an `@`, so an instance that follows unread counts but not the channel
    /// receives a small fixed-size frame per message whatever its length, and still judges
    /// mentions exactly. Private conversations and other changes have no news.
    #[test]
    fn news_carry_the_body_only_when_it_may_mention() {
        let long = "word ".repeat(200);
        let change = message(&long);
        let (channel, news) = news_of("p", "me", &change).expect("a channel message");
        assert_eq!(channel, "p:news");
        assert_eq!((news.seq, news.author, news.body), (17, UserId(3), None));
        let whole = serde_json::to_vec(&Envelope {
            from: "me".into(),
            directory: None,
            change: change.clone(),
        })
        .expect("encodes");
        let (_, news) = news_of("p", "me", &change).expect("a channel message");
        let small = serde_json::to_vec(&news).expect("encodes");
        assert!(small.len() < 100, "{} bytes", small.len());
        assert!(whole.len() > 1000, "{} bytes", whole.len());

        let (_, news) = news_of("p", "me", &message("hi @Bob")).expect("a channel message");
        assert_eq!(news.body.as_deref(), Some("hi @Bob"));
        let deleted = Replicated::Deleted {
            room: Room::Channel(ChannelName::parse("general").expect("a name")),
            id: MessageId(41),
        };
        assert!(news_of("p", "me", &deleted).is_none());
    }
}
