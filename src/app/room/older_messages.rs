//! The top of a room's message log: loads the previous page from the server's store when the
//! reader scrolls up to it (keeping their place), or says where the history begins, or that
//! older messages are not kept.

use crate::app::client::{use_chat_client, Feed};
use crate::chat::model::HistoryTop;
use leptos::either::EitherOf3;
use leptos::html::Div;
use leptos::prelude::*;

/// How close to the top of the log (in CSS pixels) the reader must scroll for the previous
/// page to load.
#[cfg(feature = "hydrate")]
const NEAR_TOP_PX: i32 = 200;

/// The top of the log inside `scroller` (the log's scrolling box): a button that loads older
/// messages (pressed by itself when the reader scrolls near it), or where the room begins, or
/// that older messages are not kept.
#[component]
pub fn OlderMessages(feed: Feed, scroller: NodeRef<Div>) -> impl IntoView {
    let client = use_chat_client();
    let loading = RwSignal::new(false);
    let failed = RwSignal::new(None::<String>);
    let load = move || {
        if loading.get_untracked() || feed.top.try_get_untracked() != Some(HistoryTop::More) {
            return;
        }
        loading.set(true);
        // Where the reader is, counted from the bottom (the log scrolls from the bottom:
        // `scroll_top` is 0 there and negative above): older messages go in above, so the
        // same distance from the bottom is the same place.
        let from_bottom = scroller.get_untracked().map(|el| el.scroll_top());
        leptos::task::spawn_local(async move {
            let result = client.load_older(feed).await;
            match result {
                Ok(()) => {
                    failed.try_set(None);
                    // Still loading until the place is back: the browser's own scroll event
                    // for the taller log comes first, and must not start another load.
                    keep_place(scroller, from_bottom, loading);
                }
                Err(e) => {
                    loading.try_set(false);
                    failed.try_set(Some(e.to_string()));
                }
            }
        });
    };
    #[cfg(feature = "hydrate")]
    watch_scrolling(scroller, load);
    let is_channel = feed.peer.is_none();
    let top = move || match feed.top.get() {
        HistoryTop::Beginning => {
            let name = feed.title.get();
            let text = if is_channel {
                format!("This is the beginning of #{name}")
            } else {
                format!("This is the beginning of your conversation with {name}")
            };
            EitherOf3::A(view! { <p class="log-top">{text}</p> })
        }
        HistoryTop::NotKept => EitherOf3::B(view! {
            <p class="log-top">"Older messages are not kept on this server"</p>
        }),
        HistoryTop::More => EitherOf3::C(view! {
            <p class="log-top">
                <button
                    type="button"
                    class="link-button"
                    disabled=move || loading.get() || !client.hydrated.get()
                    on:click=move |_| load()
                >
                    {move || if loading.get() { "Loading older messages…" } else { "Load older messages" }}
                </button>
            </p>
        }),
    };
    view! {
        {top}
        {move || failed.get().map(|e| view! { <p class="form-error log-top" role="alert">{e}</p> })}
    }
}

/// Once the older page is drawn, puts the reader back where they were (`from_bottom`, the
/// log's `scroll_top` before: the same distance from the bottom is the same place; the
/// browser keeps it by itself except near the very top, where it keeps the top) unless a
/// jump to a message moved them meanwhile, ends the
/// load (`loading`), and says so with a scroll event, so the next page loads if that place
/// is still near the top (a tall window).
fn keep_place(scroller: NodeRef<Div>, from_bottom: Option<i32>, loading: RwSignal<bool>) {
    #[cfg(feature = "hydrate")]
    request_animation_frame(move || {
        loading.try_set(false);
        let Some(el) = scroller.get_untracked() else {
            return;
        };
        // A jump to a message made meanwhile (`room::jump`: a search result, a reply's quote)
        // put the reader where they asked to be, with the focus on it: they stay there.
        let jumped = document()
            .active_element()
            .is_some_and(|e| e.has_attribute("data-found"));
        if let (Some(from_bottom), false) = (from_bottom, jumped) {
            el.set_scroll_top(from_bottom);
        }
        if let Ok(scrolled) = web_sys::Event::new("scroll") {
            let _ = el.dispatch_event(&scrolled);
        }
    });
    #[cfg(not(feature = "hydrate"))]
    {
        loading.try_set(false);
        let _ = (scroller, from_bottom);
    }
}

/// Calls `load` whenever the reader scrolls near the top of `scroller`, and once after the
/// log is first drawn (a short log never scrolls). The listener goes with the view.
#[cfg(feature = "hydrate")]
fn watch_scrolling(scroller: NodeRef<Div>, load: impl Fn() + Copy + 'static) {
    use leptos::__reexports::send_wrapper::SendWrapper;
    use wasm_bindgen::{closure::Closure, JsCast};
    // The log scrolls from the bottom: `scroll_top` is 0 there and negative above it, so
    // the distance from the top is what is left of the scrollable range.
    let near_top = move || {
        scroller.get_untracked().is_some_and(|el| {
            el.scroll_top() + el.scroll_height() - el.client_height() < NEAR_TOP_PX
        })
    };
    Effect::new(move |_| {
        let Some(el) = scroller.get() else {
            return;
        };
        let on_scroll = Closure::<dyn FnMut()>::new(move || {
            if near_top() {
                load();
            }
        });
        let _ = el.add_event_listener_with_callback("scroll", on_scroll.as_ref().unchecked_ref());
        let kept = SendWrapper::new((el, on_scroll));
        on_cleanup(move || {
            let (el, on_scroll) = kept.take();
            let _ = el
                .remove_event_listener_with_callback("scroll", on_scroll.as_ref().unchecked_ref());
        });
        // Once the log is painted: reading its size any earlier would lay the page out
        // before the first paint, once more than the paint itself does.
        request_animation_frame(move || {
            set_timeout(
                move || {
                    if near_top() {
                        load();
                    }
                },
                std::time::Duration::ZERO,
            );
        });
    });
}
