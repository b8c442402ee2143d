//! The desktop-notification control: a button that asks for permission (on its click, never
//! on load), or a line saying what the reader decided.

use leptos::either::EitherOf4;
use leptos::prelude::*;

/// What the browser says about notifications, as shown: nothing on the server, nor where the
/// browser has no notifications. (Only the browser's build learns the other three.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
enum Permission {
    Unknown,
    Ask,
    Granted,
    Denied,
}

#[cfg(feature = "hydrate")]
fn current() -> Permission {
    use web_sys::NotificationPermission;
    match crate::app::client::notify::permission() {
        Some(NotificationPermission::Default) => Permission::Ask,
        Some(NotificationPermission::Granted) => Permission::Granted,
        Some(NotificationPermission::Denied) => Permission::Denied,
        _ => Permission::Unknown,
    }
}

/// Offers desktop notifications for mentions and private messages while the tab is hidden.
#[component]
pub fn Notifications() -> impl IntoView {
    let permission = RwSignal::new(Permission::Unknown);
    // Browser only, after hydration, so the server's HTML and the hydrating page agree.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| permission.set(current()));
    let ask = move |_| {
        #[cfg(feature = "hydrate")]
        crate::app::client::notify::ask(move || permission.set(current()));
    };
    // An enum of the four views, not a type-erased one (see `App`).
    move || match permission.get() {
        Permission::Unknown => EitherOf4::A(()),
        Permission::Ask => EitherOf4::B(view! {
            <button type="button" class="link-button notify" on:click=ask>
                "Enable desktop notifications"
            </button>
        }),
        Permission::Granted => EitherOf4::C(view! {
            <p class="hint small notify">"Desktop notifications are on."</p>
        }),
        Permission::Denied => EitherOf4::D(view! {
            <p class="hint small notify">"Desktop notifications are blocked in this browser."</p>
        }),
    }
}
