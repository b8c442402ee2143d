//! The quick switcher (issue 18, item 8): Ctrl+K (Cmd+K on a Mac) opens a dialog "Jump to"
//! whose combobox filters the channels, the user's conversations and the people registered
//! on the server; Up and Down choose, Enter opens, Escape closes and gives focus back.

use crate::api::find_people;
use crate::app::client::use_chat_client;
use crate::app::drawer::focus_by_id;
use crate::app::nav::{channel_path, direct_path, use_location};
use crate::chat::model::UserInfo;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Most choices shown at once.
const MAX_CHOICES: usize = 12;

/// One place the switcher can open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// What is shown ("#design", "Ann").
    pub label: String,
    /// The page it opens.
    pub path: String,
}

/// The choices for `query` (case-insensitive, anywhere in the name): channels first, then
/// conversations, then other people, each place once, at most [`MAX_CHOICES`].
pub fn choices(query: &str, channels: &[String], people: &[UserInfo]) -> Vec<Choice> {
    let query = query.trim().to_lowercase();
    let matches = |name: &str| name.to_lowercase().contains(&query);
    let mut list: Vec<Choice> = channels
        .iter()
        .filter(|name| matches(name))
        .map(|name| Choice {
            label: format!("#{name}"),
            path: channel_path(name),
        })
        .collect();
    for person in people {
        let path = direct_path(person.id);
        if matches(person.name.as_str()) && list.iter().all(|c| c.path != path) {
            list.push(Choice {
                label: person.name.to_string(),
                path,
            });
        }
    }
    list.truncate(MAX_CHOICES);
    list
}

/// Whether the switcher is open, shared with the page-wide keys.
#[derive(Clone, Copy)]
pub struct Switcher {
    pub open: RwSignal<bool>,
}

/// Provides the switcher's state, closed.
pub fn provide_switcher() -> Switcher {
    let switcher = Switcher {
        open: RwSignal::new(false),
    };
    provide_context(switcher);
    switcher
}

/// The dialog, while open.
#[component]
pub fn QuickSwitcher() -> impl IntoView {
    let switcher = expect_context::<Switcher>();
    view! {
        <Show when=move || switcher.open.get()>
            <SwitcherDialog switcher/>
        </Show>
    }
}

#[component]
fn SwitcherDialog(switcher: Switcher) -> impl IntoView {
    let client = use_chat_client();
    let location = use_location();
    let query = RwSignal::new(String::new());
    let found = RwSignal::new(Vec::<UserInfo>::new());
    let active = RwSignal::new(0usize);
    // Answers can come back out of order: only the latest search's is used.
    let asked = StoredValue::new(0u64);
    let search = move |text: String| {
        let Some(token) = client.token() else {
            return;
        };
        let number = asked.get_value() + 1;
        asked.set_value(number);
        spawn_local(async move {
            if let Ok(people) = find_people(token, text).await {
                if asked.get_value() == number {
                    found.set(people);
                }
            }
        });
    };
    search(String::new());
    let list = Memo::new(move |_| {
        let channels: Vec<String> = client
            .channels
            .with(|list| list.iter().map(|c| c.name.to_string()).collect());
        let mut people: Vec<UserInfo> = client
            .directs
            .with(|list| list.iter().map(|entry| entry.peer.clone()).collect());
        let me = client.me().map(|u| u.id);
        people.extend(found.get().into_iter().filter(|p| Some(p.id) != me));
        choices(&query.get(), &channels, &people)
    });
    let close = move || {
        switcher.open.set(false);
        focus_by_id("message-input");
    };
    let go = move |path: String| {
        switcher.open.set(false);
        location.navigate(&path, false);
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        let count = list.with_untracked(Vec::len);
        match ev.key().as_str() {
            "Escape" => {
                ev.prevent_default();
                close();
            }
            "ArrowDown" if count > 0 => {
                ev.prevent_default();
                active.update(|i| *i = (*i + 1) % count);
            }
            "ArrowUp" if count > 0 => {
                ev.prevent_default();
                active.update(|i| *i = (*i + count - 1) % count);
            }
            "Enter" => {
                ev.prevent_default();
                let chosen = list.with_untracked(|l| l.get(active.get_untracked()).cloned());
                if let Some(choice) = chosen {
                    go(choice.path);
                }
            }
            _ => {}
        }
    };
    let options = move || {
        list.get()
            .into_iter()
            .enumerate()
            .map(|(i, choice)| {
                let path = choice.path.clone();
                view! {
                    <li
                        role="option"
                        id=format!("switcher-option-{i}")
                        class="switcher-option"
                        aria-selected=move || (active.get() == i).to_string()
                        on:mousedown=move |ev| {
                            ev.prevent_default();
                            go(path.clone());
                        }
                    >
                        {choice.label}
                    </li>
                }
            })
            .collect_view()
    };
    Effect::new(move |_| focus_by_id("switcher-input"));
    view! {
        <div class="modal-backdrop" on:click=move |_| close()>
            <div
                class="modal switcher"
                role="dialog"
                aria-modal="true"
                aria-label="Jump to"
                on:click=|ev| ev.stop_propagation()
            >
                <input
                    id="switcher-input"
                    type="text"
                    role="combobox"
                    autocomplete="off"
                    aria-label="Jump to"
                    aria-expanded="true"
                    aria-controls="switcher-list"
                    aria-autocomplete="list"
                    aria-activedescendant=move || format!("switcher-option-{}", active.get())
                    placeholder="Jump to a channel or person"
                    prop:value=move || query.get()
                    on:input=move |ev| {
                        let text = event_target_value(&ev);
                        active.set(0);
                        query.set(text.clone());
                        search(text);
                    }
                    on:keydown=on_keydown
                />
                <ul id="switcher-list" role="listbox" aria-label="Places">{options}</ul>
            </div>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::model::{DisplayName, UserId};

    fn person(id: u64, name: &str) -> UserInfo {
        UserInfo {
            id: UserId(id),
            name: DisplayName::parse(name).expect("a name"),
        }
    }

    /// Channels come first, then people, matched anywhere in the name in any case; a person
    /// listed twice (a conversation and a search result) is offered once.
    #[test]
    fn choices_match_channels_then_people_once() {
        let channels = ["design".to_string(), "general".to_string()];
        let people = [person(2, "Desmond"), person(3, "Ann"), person(2, "Desmond")];
        let labels: Vec<String> = choices("DES", &channels, &people)
            .into_iter()
            .map(|c| c.label)
            .collect();
        assert_eq!(labels, ["#design", "Desmond"]);
        assert_eq!(choices("", &channels, &people).len(), 4);
        assert!(choices("zzz", &channels, &people).is_empty());
    }
}
