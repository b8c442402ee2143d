//! Desktop notifications, browser only: asking for permission (only ever from a click) and
//! showing one for a mention or a private message while the page is hidden.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsValue;
use web_sys::{Notification, NotificationOptions, NotificationPermission};

/// What the reader has decided about notifications: `None` where the browser has none.
pub fn permission() -> Option<NotificationPermission> {
    let supported =
        js_sys::Reflect::has(&leptos::prelude::window(), &"Notification".into()).unwrap_or(false);
    supported.then(Notification::permission)
}

/// Asks the reader for permission; `then` runs once they answered. Call only from a click:
/// browsers refuse (or hold against the site) a request made without one.
pub fn ask(then: impl FnOnce() + 'static) {
    match Notification::request_permission() {
        Ok(promise) => {
            let answered = Closure::once(move |_: JsValue| then());
            let _ = promise.then(&answered);
            // Runs once, when the reader answers; the browser holds it until then.
            answered.forget();
        }
        Err(e) => leptos::logging::warn!("cannot ask for notifications: {e:?}"),
    }
}

/// True when the page is not shown (another tab, a minimised window).
pub fn page_hidden() -> bool {
    leptos::prelude::document().hidden()
}

/// Shows a notification (text only) if the reader allowed them and the page is hidden.
pub fn notify(title: &str, body: &str) {
    if !page_hidden() || permission() != Some(NotificationPermission::Granted) {
        return;
    }
    let options = NotificationOptions::new();
    options.set_body(body);
    if let Err(e) = Notification::new_with_options(title, &options) {
        leptos::logging::warn!("cannot show a notification: {e:?}");
    }
}
