//! The sequencer: commits this instance's proposals in PostgreSQL, in batches, then applies
//! each committed change here, publishes it, and answers its proposer.
//!
//! Whatever queued up while a batch was committed forms the next one: directory changes,
//! edits, reactions and deletions one transaction each (they are rare, and each may be refused on its own), then
//! each room's posts in one transaction per room ([`sql::post_batch`]). A change is
//! answered only after its commit: "acknowledged" means committed. If PostgreSQL cannot be
//! reached, each proposal of the batch is answered `unavailable` and nothing of it is kept;
//! the connection is made again for the next batch.

use super::sql::{self, Posted, Refused};
use super::{ClusterSettings, Node};
use crate::chat::model::{ChatError, RoomKey};
use crate::chat::postgres::{connect_as, Owner};
use crate::chat::replica::{Proposal, Replicated, Submitted};
use crate::chat::store::StoreError;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Client;

/// Most proposals taken into one batch.
const MAX_BATCH: usize = 1024;

type Reply = oneshot::Sender<Result<Replicated, ChatError>>;

/// One room's posts of a batch, each with who hears how it went.
struct RoomPosts {
    key: RoomKey,
    room: crate::chat::model::Room,
    posts: Vec<(sql::Post, Reply)>,
}

/// Commits proposals until every proposer is gone.
pub(super) async fn run(
    config: tokio_postgres::Config,
    settings: ClusterSettings,
    node: Arc<Node>,
    mut proposals: mpsc::UnboundedReceiver<Submitted>,
) {
    let mut client: Option<Client> = None;
    // The post statements prepared on `client` (made again with it).
    let mut prepared = sql::Prepared::default();
    while let Some(first) = proposals.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match proposals.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        if client.as_ref().is_none_or(Client::is_closed) {
            match connect_as(&config, false, Owner::Cluster).await {
                Ok(made) => {
                    client = Some(made);
                    prepared = sql::Prepared::default();
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot reach PostgreSQL: refusing this batch of changes");
                    for submitted in batch {
                        let what = what(&submitted.proposal);
                        let _ = submitted.reply.send(Err(unavailable(what)));
                    }
                    continue;
                }
            }
        }
        let Some(connected) = client.as_mut() else {
            continue;
        };
        commit(connected, &mut prepared, &settings, &node, batch).await;
    }
}

/// What a proposal is, for the error a failed commit becomes.
fn what(proposal: &Proposal) -> &'static str {
    match proposal {
        Proposal::Post { .. } => "message",
        Proposal::Delete { .. } => "deletion",
        Proposal::Edit { .. } => "edit",
        Proposal::React { .. } => "reaction",
        Proposal::Channel(_) => "channel",
        Proposal::User(..) => "user",
        Proposal::Rename(_) => "name",
    }
}

fn unavailable(what: &str) -> ChatError {
    ChatError::Unavailable(format!(
        "the {what} could not be saved: the database is unreachable"
    ))
}

/// The answer for a refused commit.
fn refusal(what: &str, refused: Refused) -> ChatError {
    match refused {
        Refused::Chat(e) => e,
        Refused::Store(StoreError(e)) => {
            tracing::error!(error = %e, what, "a change could not be committed");
            unavailable(what)
        }
    }
}

/// Commits one batch and answers each proposal.
async fn commit(
    client: &mut Client,
    prepared: &mut sql::Prepared,
    settings: &ClusterSettings,
    node: &Node,
    batch: Vec<Submitted>,
) {
    let mut rooms: Vec<RoomPosts> = Vec::new();
    for Submitted { proposal, reply } in batch {
        let what = what(&proposal);
        match proposal {
            Proposal::Post {
                message,
                client_ref,
            } => {
                let key = message.room.key();
                let post = sql::Post {
                    message,
                    client_ref,
                };
                match rooms.iter_mut().find(|r| r.key == key) {
                    Some(room) => room.posts.push((post, reply)),
                    None => {
                        let room = post.message.room.clone();
                        rooms.push(RoomPosts {
                            key,
                            room,
                            posts: vec![(post, reply)],
                        });
                    }
                }
            }
            Proposal::User(info, token_hash) => {
                let done = sql::register(client, &info.name, &token_hash, settings.max_users).await;
                let answer = match done {
                    Ok((user, count)) => {
                        let change = Replicated::User { user, token_hash };
                        node.committed(change.clone(), Some(count));
                        Ok(change)
                    }
                    Err(e) => Err(refusal(what, e)),
                };
                let _ = reply.send(answer);
            }
            Proposal::Rename(user) => {
                let answer = match sql::rename(client, &user).await {
                    Ok(count) => {
                        let change = Replicated::Renamed { user };
                        node.committed(change.clone(), Some(count));
                        Ok(change)
                    }
                    Err(e) => Err(refusal(what, e)),
                };
                let _ = reply.send(answer);
            }
            Proposal::Channel(channel) => {
                let done = sql::create_channel(client, &channel, settings.max_channels).await;
                let answer = match done {
                    Ok(count) => {
                        let change = Replicated::Channel { channel };
                        node.committed(change.clone(), Some(count));
                        Ok(change)
                    }
                    Err(e) => Err(refusal(what, e)),
                };
                let _ = reply.send(answer);
            }
            Proposal::Edit { message } => {
                let answer = match sql::edit(client, &message).await {
                    Ok(true) => {
                        let change = Replicated::Edited { message };
                        node.committed(change.clone(), None);
                        Ok(change)
                    }
                    // Deleted (or gone from the ring) since the proposer looked.
                    Ok(false) => Err(ChatError::NoSuchMessage),
                    Err(e) => Err(refusal(what, Refused::Store(e))),
                };
                let _ = reply.send(answer);
            }
            Proposal::React {
                room,
                id,
                emoji,
                user,
                on,
            } => {
                let answer = match sql::react(client, &room, id, emoji, &user, on).await {
                    Ok(changed) => {
                        let change = Replicated::Reacted {
                            room,
                            id,
                            emoji,
                            user,
                            on,
                        };
                        // One that changed nothing is not told (nor counted); its
                        // proposer is answered all the same.
                        if changed {
                            node.committed(change.clone(), None);
                        }
                        Ok(change)
                    }
                    Err(e) => Err(refusal(what, e)),
                };
                let _ = reply.send(answer);
            }
            Proposal::Delete { room, id } => {
                let answer = match sql::delete(client, &room, id).await {
                    Ok(deleted) => {
                        let change = Replicated::Deleted { room, id };
                        if deleted {
                            node.committed(change.clone(), None);
                        }
                        Ok(change)
                    }
                    Err(e) => Err(refusal(what, Refused::Store(e))),
                };
                let _ = reply.send(answer);
            }
        }
    }
    for RoomPosts { room, posts, .. } in rooms {
        let (posts, replies): (Vec<sql::Post>, Vec<Reply>) = posts.into_iter().unzip();
        let posted = sql::post_batch(
            client,
            prepared,
            &room,
            posts,
            settings.retain,
            settings.retention,
        );
        match posted.await {
            Ok(outcomes) => {
                for (outcome, reply) in outcomes.into_iter().zip(replies) {
                    let message = match outcome {
                        Posted::New(message) => {
                            node.committed(
                                Replicated::Message {
                                    message: message.clone(),
                                },
                                None,
                            );
                            message
                        }
                        // Stored before: delivered then, answered again now.
                        Posted::Again(message) => message,
                    };
                    let _ = reply.send(Ok(Replicated::Message { message }));
                }
            }
            Err(refused) => {
                let error = refusal("message", refused);
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}
