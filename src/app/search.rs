//! Message search, in the sidebar (so it is there on every screen size): a search box, and
//! the results as a list of links, each naming the room, the author, the date and the text
//! (all as text). Choosing one opens its room at that message: the link records the message
//! as [`FoundMessage`], which the room's log reveals once it holds it (`room::jump`).

use super::client::use_chat_client;
use super::local_time::{full_label, use_reader_clock};
use super::nav::{channel_path, direct_path, use_location};
use crate::api::search_messages;
use crate::chat::model::markup::{parse, plain_text};
use crate::chat::model::{ChatError, Room, SearchHit, SearchPage, UserId, MAX_SEARCH_CHARS};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Longest part of a message a result shows, in characters.
const SHOWN_CHARS: usize = 160;

/// The message a search result was chosen for: its room and number, until the room's log
/// has revealed it.
#[derive(Clone, Copy)]
pub struct FoundMessage(pub RwSignal<Option<(Room, u64)>>);

/// Provides the [`FoundMessage`] the search sets and the room's log reads.
pub fn provide_found_message() {
    provide_context(FoundMessage(RwSignal::new(None)));
}

/// The address of the room a result is in, as `me` sees it.
fn room_path(room: &Room, me: Option<UserId>) -> String {
    match room {
        Room::Channel(name) => channel_path(name.as_str()),
        Room::Direct(key) => direct_path(me.map_or(key.users()[0], |me| key.other(me))),
    }
}

/// The start of a message's text, as a result shows it.
fn excerpt(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// The search box and its results.
#[component]
pub fn MessageSearch() -> impl IntoView {
    let client = use_chat_client();
    let query = RwSignal::new(String::new());
    // `None` until a search is answered.
    let page = RwSignal::new(None::<SearchPage>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    // Answers can come back out of order: only the latest search's is shown.
    let asked = StoredValue::new(0u64);
    let run = move |before: Option<u64>| {
        let Some(token) = client.token() else {
            error.set(Some(ChatError::NotIdentified.to_string()));
            return;
        };
        let number = asked.get_value() + 1;
        asked.set_value(number);
        let text = query.get_untracked();
        busy.set(true);
        spawn_local(async move {
            let answer = search_messages(token, text, before).await;
            if asked.try_get_value() != Some(number) {
                return;
            }
            busy.try_set(false);
            match answer {
                Ok(mut found) => {
                    error.try_set(None);
                    if before.is_some() {
                        if let Some(shown) = page.try_get_untracked().flatten() {
                            let mut hits = shown.hits;
                            hits.append(&mut found.hits);
                            found.hits = hits;
                        }
                    }
                    page.try_set(Some(found));
                }
                Err(e) => {
                    error.try_set(Some(e.to_string()));
                }
            }
        });
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        run(None);
    };
    let close = move |_| {
        page.set(None);
        error.set(None);
    };
    let summary = move || {
        page.with(|p| {
            p.as_ref().map(|p| {
                let count = match (p.hits.len(), p.more.is_some()) {
                    (0, _) => "No messages match.".to_owned(),
                    (1, false) => "1 message found.".to_owned(),
                    (n, false) => format!("{n} messages found."),
                    (n, true) => format!("The {n} newest messages found."),
                };
                if p.whole_history {
                    count
                } else {
                    format!("{count} Only recent messages are searched on this server.")
                }
            })
        })
    };
    view! {
        <Show when=move || client.session.with(Option::is_some)>
            <section class="search">
                <form role="search" class="search-form row" on:submit=on_submit>
                    <input
                        type="search"
                        aria-label="Search messages"
                        placeholder="Search messages"
                        autocomplete="off"
                        maxlength=MAX_SEARCH_CHARS
                        prop:value=move || query.get()
                        on:input=move |ev| query.set(event_target_value(&ev))
                    />
                    <button type="submit" class="secondary" disabled=move || busy.get()>"Search"</button>
                </form>
                <p class="form-error" role="alert">{move || error.get()}</p>
                <Show when=move || page.with(Option::is_some)>
                    <div class="search-panel" aria-busy=move || busy.get().to_string()>
                        <p class="hint small" aria-live="polite">{summary}</p>
                        <ul class="search-results" aria-label="Search results">
                            {move || {
                                page.get()
                                    .map(|p| p.hits)
                                    .unwrap_or_default()
                                    .into_iter()
                                    .map(|hit| view! { <SearchResult hit/> })
                                    .collect_view()
                            }}
                        </ul>
                        <div class="row">
                            <Show when=move || page.with(|p| p.as_ref().is_some_and(|p| p.more.is_some()))>
                                <button
                                    type="button"
                                    class="link-button"
                                    disabled=move || busy.get()
                                    on:click=move |_| {
                                        run(page.with_untracked(|p| p.as_ref().and_then(|p| p.more.map(|id| id.0))));
                                    }
                                >
                                    "More results"
                                </button>
                            </Show>
                            <button type="button" class="link-button" on:click=close>"Close search"</button>
                        </div>
                    </div>
                </Show>
            </section>
        </Show>
    }
}

/// One result: a link to its room that opens it at the message.
#[component]
fn SearchResult(hit: SearchHit) -> impl IntoView {
    let client = use_chat_client();
    let location = use_location();
    let clock = use_reader_clock();
    let found = use_context::<FoundMessage>();
    let message = hit.message;
    let href = room_path(&message.room, client.my_id());
    let room = match &message.room {
        Room::Channel(_) => format!("#{}", hit.title),
        Room::Direct(_) => hit.title.clone(),
    };
    let sent_at = message.sent_at;
    let date = move || full_label(sent_at, clock.offset_at(sent_at));
    let target = (message.room.clone(), message.seq);
    let path = href.clone();
    let choose = move |ev: leptos::ev::MouseEvent| {
        let modified = ev.ctrl_key() || ev.meta_key() || ev.shift_key() || ev.alt_key();
        if ev.button() != 0 || modified {
            return;
        }
        ev.prevent_default();
        if let Some(found) = found {
            found.0.set(Some(target.clone()));
        }
        location.navigate(&path, false);
    };
    let text = if message.body.as_str().is_empty() {
        message
            .attachment
            .as_ref()
            .map(|file| file.name.clone())
            .unwrap_or_default()
    } else {
        excerpt(&plain_text(&parse(message.body.as_str())))
    };
    view! {
        <li class="search-result">
            <a href=href on:click=choose>
                <span class="result-meta">
                    <span class="result-room">{room}</span>
                    " · "
                    <span class="result-author">{message.author.name.to_string()}</span>
                    " · "
                    <span class="result-date">{date}</span>
                </span>
                <span class="result-text">{text}</span>
            </a>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result shows at most `SHOWN_CHARS` characters of its message, marking a cut.
    #[test]
    fn long_messages_are_cut_in_results() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(SHOWN_CHARS + 1);
        let shown = excerpt(&long);
        assert_eq!(shown.chars().count(), SHOWN_CHARS + 1);
        assert!(shown.ends_with('…'));
    }
}
