//! The display-name prompt: a modal shown on the first visit, until a name is registered.

use super::client::use_chat_client;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Asks for a display name and registers it; while it is open, the rest of the page is inert.
#[component]
pub fn NamePrompt() -> impl IntoView {
    let client = use_chat_client();
    let draft = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        pending.set(true);
        let raw = draft.get_untracked();
        spawn_local(async move {
            match client.register(raw).await {
                Ok(()) => error.set(None),
                Err(e) => error.set(Some(e.to_string())),
            }
            pending.set(false);
        });
    };
    view! {
        <Show when=move || client.needs_name()>
            <div class="modal-backdrop">
                <div class="modal" role="dialog" aria-modal="true" aria-labelledby="name-prompt-title">
                    <h2 id="name-prompt-title">"Welcome to Flack"</h2>
                    <p>"Choose the name others will see next to your messages."</p>
                    <form on:submit=on_submit>
                        <label for="display-name">"Display name"</label>
                        <input
                            id="display-name"
                            type="text"
                            autocomplete="nickname"
                            autofocus
                            prop:value=move || draft.get()
                            on:input=move |ev| draft.set(event_target_value(&ev))
                        />
                        <button type="submit" disabled=move || pending.get()>"Start chatting"</button>
                        <p class="form-error" role="alert">{move || error.get()}</p>
                    </form>
                </div>
            </div>
        </Show>
    }
}
