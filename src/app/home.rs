//! The site's root: sends the user back to the channel they were last in (or "general").

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use leptos_router::NavigateOptions;

/// The root page. Without JavaScript it invites the user to pick a channel from the list; in
/// the browser it goes straight to the remembered channel.
#[component]
pub fn Home() -> impl IntoView {
    let navigate = use_navigate();
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        let remembered = super::client::browser::stored_channel();
        #[cfg(not(feature = "hydrate"))]
        let remembered: Option<crate::chat::model::ChannelName> = None;
        let target = remembered
            .map(|c| c.path())
            .unwrap_or_else(|| "/c/general".to_owned());
        navigate(
            &target,
            NavigateOptions {
                replace: true,
                ..Default::default()
            },
        );
    });
    view! {
        <h1>"Flack"</h1>
        <p class="hint">"Pick a channel from the list to start chatting."</p>
    }
}
