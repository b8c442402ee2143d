//! The open room's messages: a log that follows the newest message while the reader is at
//! the bottom and keeps their place otherwise, with a notice of what arrived below, a "New"
//! divider above what they had not seen when the room opened, and messages grouped by author
//! and day.
//!
//! # Scrolling
//! The scroller is a `column-reverse` flex box around one block holding the list: its scroll
//! origin is the bottom, so the first paint (server-rendered, with or without JavaScript)
//! shows the newest messages with nothing to jump, and a reader at the bottom stays there as
//! messages arrive, by CSS alone. `scrollTop` is 0 at the bottom and negative above it.
//! Anything added above the list (older history) also keeps the reader's place by itself,
//! since the distance from the bottom does not change. Only a message arriving while the
//! reader is scrolled up needs code: before the next paint, the distance from the top is put
//! back to what it was at the last scroll event.

use super::delete_dialog::DeleteDialog;
use super::jump::{entry_id, follow_found};
use super::layout::{find_original, lay_out, Original, Reader, Row};
use super::older_messages::OlderMessages;
use super::reaction_picker::ReactionPicker;
use crate::app::client::{use_chat_client, Feed};
use crate::app::local_time::{day_label, use_reader_clock};
use crate::app::message_item::MessageItem;
use crate::chat::history::window_start;
use crate::chat::model::{Message, HISTORY_LIMIT};
use leptos::prelude::*;

/// How close to the bottom, in CSS pixels, still counts as reading the newest message.
const AT_BOTTOM_PX: i32 = 40;

/// The open room's messages, oldest first, scrolled to the newest.
#[component]
pub fn MessageLog(feed: Feed) -> impl IntoView {
    let client = use_chat_client();
    let clock = use_reader_clock();
    let scroller = NodeRef::<leptos::html::Div>::new();
    let last_seq = move || {
        feed.messages
            .with_untracked(|m| m.last().map_or(0, |m| m.seq))
    };
    // Where the reader had read up to when the room opened, by the server's read position
    // (browser only, once the server said, so the server's HTML and the hydrating browser
    // agree there is no divider).
    let read_at_open = RwSignal::new(None::<u64>);
    // The newest message the reader has had in view.
    let seen = RwSignal::new(last_seq());
    // Whether the reader is at the bottom: only then does the log follow new messages.
    let at_bottom = RwSignal::new(true);
    // The distance from the top of the list to the top of the view at the last scroll event.
    let from_top = StoredValue::new(0);
    // The newest message the log has placed.
    let placed = StoredValue::new(last_seq());

    // The reader has the newest message in view: it counts as read only while the page is
    // shown (a background tab reads nothing).
    let see_newest = move || {
        if let (Some(cursor), Some(room)) = (feed.cursor(), feed.room.try_get_value()) {
            seen.try_set(cursor.seq);
            if page_shown() {
                client.mark_read(room, cursor.seq);
            }
        }
    };
    // Once the server has said how far the reader had read (at once when it already has),
    // draw the divider from there, then count the newest as seen.
    Effect::new(move |drawn: Option<bool>| {
        if drawn == Some(true) || !client.unread_ready.get() {
            return drawn.unwrap_or(false);
        }
        let read = untrack(|| feed.room.with_value(|room| client.unread_of(room)));
        if let (Some(read), Some(now)) = (read.map(|r| r.read), feed.cursor()) {
            // A room never read has no divider: everything in it would be "new".
            if read > 0 && read < now.seq {
                read_at_open.set(Some(read));
            }
        }
        see_newest();
        true
    });
    // Coming back to the page, at the bottom, reads what arrived meanwhile.
    #[cfg(feature = "hydrate")]
    {
        let shown = window_event_listener_untyped("visibilitychange", move |_| {
            if page_shown() && at_bottom.get_untracked() {
                see_newest();
            }
        });
        on_cleanup(move || shown.remove());
    }
    // Runs in an animation frame, outside the view: the view may be gone by then.
    let follow = move || {
        let Some(placed_seq) = placed.try_get_value() else {
            return;
        };
        let (Some(el), Some((seq, author))) = (
            scroller.get_untracked(),
            feed.messages
                .with_untracked(|m| m.last().map(|m| (m.seq, m.author.id))),
        ) else {
            return;
        };
        if seq <= placed_seq {
            // Older history or a deletion: the scroller keeps the distance from the bottom.
            return;
        }
        placed.set_value(seq);
        let mine = client
            .session
            .with_untracked(|s| s.as_ref().map(|s| s.user.id) == Some(author));
        if mine || at_bottom.get_untracked() {
            el.set_scroll_top(0);
            at_bottom.set(true);
            see_newest();
        } else {
            let range = el.scroll_height() - el.client_height();
            el.set_scroll_top(from_top.get_value() - range);
        }
    };
    Effect::new(move |_| {
        feed.messages.track();
        // After the list has been drawn and before it is painted.
        request_animation_frame(follow);
    });
    let on_scroll = move |_| {
        let Some(el) = scroller.get_untracked() else {
            return;
        };
        let top = el.scroll_top();
        from_top.set_value(top + el.scroll_height() - el.client_height());
        let bottom = top >= -AT_BOTTOM_PX;
        if bottom != at_bottom.get_untracked() {
            at_bottom.set(bottom);
        }
        if bottom && seen.get_untracked() < placed.get_value() {
            see_newest();
        }
    };
    // An element of the log that had the focus and was drawn anew (its message edited or
    // reacted to, by anyone) lost the focus to the page's body: the new one takes it back.
    let on_focusout = move |_ev: leptos::ev::FocusEvent| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            if _ev.related_target().is_some() {
                // The focus went to another element.
                return;
            }
            let Some(el) = _ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
            else {
                return;
            };
            // An element without an id (a link in a message) is stood in for by its entry.
            let id = match el.id() {
                id if !id.is_empty() => id,
                _ => match el.closest(".entry").ok().flatten() {
                    Some(entry) => entry.id(),
                    None => return,
                },
            };
            // Still on the page once the drawing is over: the reader put the focus nowhere.
            queue_microtask(move || {
                if !el.is_connected() {
                    feed.keep_focus_on(id);
                }
            });
        }
    };
    let jump = move |_| {
        if let Some(el) = scroller.get_untracked() {
            el.set_scroll_top(0);
            // The button goes away; the log keeps the keyboard focus.
            let _ = el.focus();
        }
        at_bottom.set(true);
        see_newest();
    };
    let unseen = Memo::new(move |_| {
        if at_bottom.get() {
            return 0;
        }
        let (seen, me) = (seen.get(), client.my_id());
        feed.messages.with(|m| {
            m.iter()
                .filter(|m| m.seq > seen && Some(m.author.id) != me)
                .count()
        })
    });
    // The first number the server still holds in memory: only messages from there on can be
    // deleted (older ones are read back from the store).
    let window_from = Memo::new(move |_| {
        let newest = feed.messages.with(|m| m.last().map_or(0, |m| m.seq));
        let room_newest = feed.cursor().map_or(0, |c| c.seq).max(newest);
        window_start(room_newest, HISTORY_LIMIT)
    });
    // Each row, whether its text is being edited (an edit begun or ended draws the message
    // anew: no message watches the edit for itself), and for a reply where its original is
    // (a deletion or an older page that changes it draws the reply anew).
    let rows = Memo::new(move |_| {
        let offset_at = |at| clock.offset_at(at);
        let reader = Reader {
            offset_at: &offset_at,
            read_up_to: read_at_open.get(),
            me: client.my_id(),
        };
        let editing = feed.editing.with(|e| e.map(|(id, _)| id));
        let top = feed.top.get();
        feed.messages.with(|messages| {
            lay_out(messages, &reader)
                .into_iter()
                .map(|row| {
                    let editing = editing == Some(row.message.id);
                    let original = (row.message.reply.as_ref())
                        .map(|reply| find_original(messages, top, reply.seq));
                    (row, editing, original)
                })
                .collect::<Vec<_>>()
        })
    });
    // The focus asked for while entries were drawn anew goes to its element once drawn.
    Effect::new(move |_| {
        rows.track();
        feed.refocus_if_lost();
    });
    follow_found(feed);
    view! {
        <div class="log-frame">
            <div
                class="log-scroll"
                role="log"
                aria-label="Chat history"
                tabindex="0"
                node_ref=scroller
                on:scroll=on_scroll
                on:focusout=on_focusout
            >
                <div class="log-content">
                    <OlderMessages feed scroller/>
                    <Show when=move || feed.messages.with(Vec::is_empty)>
                        <p class="hint">"No messages yet. Say hello!"</p>
                    </Show>
                    <ol class="log">
                        <For
                            each=move || rows.get()
                            // An edited message is drawn anew, with its new text, one
                            // reacted to with its new reactions, and a reply whose original
                            // was found or is gone.
                            key=|(row, editing, original)| {
                                (
                                    row.message.id,
                                    *original,
                                    row.message.reply.as_ref().map(|r| r.author.name.to_string()),
                                    row.message.edited_at,
                                    reactions_key(&row.message),
                                    row.message.author.name.to_string(),
                                    row.starts_group,
                                    row.day.map(|day| day.day),
                                    row.first_unread,
                                    *editing,
                                )
                            }
                            children=move |(row, editing, original)| {
                                row_view(row, editing, original, window_from, feed)
                            }
                        />
                    </ol>
                </div>
            </div>
            <ReactionPicker feed/>
            <Show when=move || { unseen.get() > 0 }>
                <div class="new-messages">
                    <span>
                        {move || match unseen.get() {
                            1 => "1 new message".to_owned(),
                            n => format!("{n} new messages"),
                        }}
                    </span>
                    <button type="button" on:click=jump>"Jump to newest"</button>
                </div>
            </Show>
            <DeleteDialog feed/>
        </div>
    }
}

/// One entry of the list: the day separator and the "New" divider that go above the message,
/// if any, then the message.
fn row_view(
    row: Row,
    editing: bool,
    original: Option<Original>,
    window_from: Memo<u64>,
    feed: Feed,
) -> impl IntoView {
    let clock = use_reader_clock();
    let at = row.message.sent_at;
    let id = entry_id(row.message.seq);
    // "Today" is the reader's, by the browser's clock once hydrated (the server's before).
    let day = row.day.map(|day| {
        let label = move || day_label(&day, clock.today());
        view! {
            <div
                class="day-separator"
                class:zone-unknown=move || clock.offset_at(at).is_none()
                role="separator"
                aria-label=label
            >
                <span>{label}</span>
            </div>
        }
    });
    let divider = row.first_unread.then(|| {
        view! {
            <div class="new-divider" role="separator" aria-label="New">
                <span>"New"</span>
            </div>
        }
    });
    view! {
        // Focusable by script only: the focus lands here after the message before is deleted.
        <li class="entry" id=id tabindex="-1">
            {day}
            {divider}
            <MessageItem
                feed
                deletable=Signal::derive({
                    let seq = row.message.seq;
                    move || seq >= window_from.get()
                })
                message=row.message
                starts_group=row.starts_group
                editing
                quoted=original
            />
        </li>
    }
}

/// What of a message's reactions its drawing shows: each emoji and who gave it.
fn reactions_key(message: &Message) -> Vec<(&'static str, Vec<u64>)> {
    message
        .reactions
        .iter()
        .map(|r| (r.emoji.as_str(), r.users.iter().map(|u| u.id.0).collect()))
        .collect()
}

/// True when the page is on screen (always false on the server, which reads nothing).
fn page_shown() -> bool {
    #[cfg(feature = "hydrate")]
    return !crate::app::client::notify::page_hidden();
    #[cfg(not(feature = "hydrate"))]
    false
}
