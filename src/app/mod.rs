//! The user interface: the HTML shell, the root component with its routes, and one component
//! per file. Components read the [`client::ChatClient`] signals and call its methods; they hold
//! no chat logic of their own.

pub mod client;
pub mod drawer;
pub mod home;
pub mod local_time;
pub mod markup;
pub mod message_item;
pub mod name_prompt;
pub mod nav;
pub mod notifications;
pub mod percent;
pub mod room;
pub mod search;
pub mod shortcuts;
pub mod sidebar;
pub mod switcher;

use client::provide_chat_client;
use home::Home;
use leptos::either::EitherOf4;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use name_prompt::NamePrompt;
use nav::{provide_location, Route};
use room::{ChannelPage, DirectPage};
use sidebar::Sidebar;

/// The HTML document every page is rendered into.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <HashedStylesheet options=options.clone() id="leptos"/>
                // Without JavaScript, times in an unknown zone are shown (in UTC, so labelled);
                // see `local_time`.
                <noscript><link rel="stylesheet" href="/noscript.css"/></noscript>
                <HydrationScripts options/>
                // Opens the socket while the WebAssembly downloads (see `client::socket`).
                <script nonce=leptos::nonce::use_nonce()>{client::early_socket_script()}</script>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: sidebar, the page the address names, and the display-name prompt.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    #[cfg(feature = "ssr")]
    page_policy();
    let location = provide_location();
    let client = provide_chat_client();
    local_time::provide_reader_clock(client.hydrated);
    search::provide_found_message();
    // Effects run only in the browser, after hydration.
    Effect::new(move |_| client.start());
    let route = Memo::new(move |_| location.route());
    let drawer = drawer::provide_drawer(route);
    let switcher = switcher::provide_switcher();
    shortcuts::listen(client, drawer, switcher, location);
    // An enum of the four views, not a type-erased view: erasing would also compile an
    // asynchronous hydration path for each page, which Flack never uses.
    let page = move || match route.get() {
        Route::Home => EitherOf4::A(view! { <Home/> }),
        Route::Channel(name) => EitherOf4::B(view! { <ChannelPage name/> }),
        Route::Direct(peer) => EitherOf4::C(view! { <DirectPage peer/> }),
        Route::NotFound => EitherOf4::D(view! { <NotFound/> }),
    };

    view! {
        <Title text="Flack"/>
        <a
            class="skip-link"
            href="#message-input"
            on:click=move |ev| {
                ev.prevent_default();
                drawer::focus_by_id("message-input");
            }
        >
            "Skip to message box"
        </a>
        <div class="app" class:drawer-open=move || drawer.open.get() inert=move || client.needs_name()>
            <Sidebar/>
            <drawer::DrawerBackdrop/>
            <main class="main">{page}</main>
        </div>
        <NamePrompt/>
        <switcher::QuickSwitcher/>
    }
}

/// Sets the page's Content-Security-Policy: scripts only from this site or carrying this
/// response's nonce (Leptos puts it on its own inline scripts), WebAssembly allowed, nothing
/// from elsewhere, never framed.
#[cfg(feature = "ssr")]
fn page_policy() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    if let Ok(value) = axum::http::HeaderValue::from_str(&page_csp(&nonce)) {
        response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The Content-Security-Policy of a page whose inline scripts carry `nonce`.
#[cfg(feature = "ssr")]
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Shown for any address that is not a page.
#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <h1>"Page not found"</h1>
        <p><a href="/">"Back to Flack"</a></p>
    }
}
