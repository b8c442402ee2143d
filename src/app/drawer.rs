//! The sidebar as a drawer on narrow screens (issue 18, item 7): below 900 px the sidebar is
//! off screen until the header's "Open sidebar" button opens it over the room; a tap outside
//! it, Escape, its "Close sidebar" button or opening a room closes it, and focus goes back
//! to the button. On wider screens the sidebar is always shown and these controls are not.

use leptos::prelude::*;

/// Whether the drawer is open (only narrow screens show the difference).
#[derive(Clone, Copy)]
pub struct Drawer {
    pub open: RwSignal<bool>,
}

/// The id of the sidebar element, which the header's button controls.
pub const SIDEBAR_ID: &str = "sidebar";

/// The id of the button that opens the drawer, where focus returns when it closes.
const OPEN_BUTTON_ID: &str = "open-sidebar";

/// Provides the drawer's state to the component tree, closed, and closes it whenever the
/// page changes (a room was opened from it).
pub fn provide_drawer(route: Memo<crate::app::nav::Route>) -> Drawer {
    let drawer = Drawer {
        open: RwSignal::new(false),
    };
    Effect::new(move |previous: Option<crate::app::nav::Route>| {
        let now = route.get();
        if previous.is_some_and(|before| before != now) {
            drawer.open.set(false);
        }
        now
    });
    provide_context(drawer);
    drawer
}

/// The drawer the app provided.
pub fn use_drawer() -> Drawer {
    expect_context::<Drawer>()
}

impl Drawer {
    /// Closes the drawer, if open, and returns focus to the button that opens it.
    pub fn close(&self) {
        if !self.open.get_untracked() {
            return;
        }
        self.open.set(false);
        focus_by_id(OPEN_BUTTON_ID);
    }
}

/// Gives the focus to the element `id` once what is being drawn now is on the page.
pub fn focus_soon(_id: String) {
    #[cfg(feature = "hydrate")]
    request_animation_frame(move || focus_by_id(&_id));
}

/// Moves focus to the element with `id`, if there is one (in the browser).
pub fn focus_by_id(_id: &str) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Some(element) = document()
            .get_element_by_id(_id)
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = element.focus();
        }
    }
}

/// The header's button that opens the drawer (shown on narrow screens only).
#[component]
pub fn OpenSidebarButton() -> impl IntoView {
    let drawer = use_drawer();
    view! {
        <button
            type="button"
            id=OPEN_BUTTON_ID
            class="menu-button"
            aria-controls=SIDEBAR_ID
            aria-expanded=move || drawer.open.get().to_string()
            on:click=move |_| {
                drawer.open.set(true);
                focus_by_id("close-sidebar");
            }
        >
            <span aria-hidden="true">"☰"</span>
            <span class="visually-hidden">"Open sidebar"</span>
        </button>
    }
}

/// The drawer's own close button, first in the sidebar (shown on narrow screens only).
#[component]
pub fn CloseSidebarButton() -> impl IntoView {
    let drawer = use_drawer();
    view! {
        <button type="button" id="close-sidebar" class="close-drawer" on:click=move |_| drawer.close()>
            <span aria-hidden="true">"×"</span>
            <span class="visually-hidden">"Close sidebar"</span>
        </button>
    }
}

/// What covers the room while the drawer is open; a tap on it closes the drawer.
#[component]
pub fn DrawerBackdrop() -> impl IntoView {
    let drawer = use_drawer();
    view! {
        <div class="drawer-backdrop" class:open=move || drawer.open.get() on:click=move |_| drawer.close()></div>
    }
}
