//! A server-side `Resource` that is created while any other thread of the process is working
//! out a Leptos route list never loads, not even after that work is done.
//!
//! `leptos_router::RouteList::generate` (what `leptos_axum::generate_route_list` calls) holds
//! `leptos::server::SuppressResourceLoad` while it renders the app once. That guard sets one
//! process-wide flag (`IS_SUPPRESSING_RESOURCE_LOAD` in leptos_server's `resource.rs`), and a
//! resource whose fetch starts while the flag is set waits on `pending()` for good. Here a
//! plain thread holds the guard, standing in for a second server in the same process (as in
//! `cargo test`) that builds its router while the first renders a page.
//!
//! Exit status: 1 while the bug is present (the resource made during the window never
//! loads), 0 once it is fixed. Every wait is bounded.

use leptos::prelude::*;
use leptos::server::{ArcResource, SuppressResourceLoad};
use std::future::IntoFuture;
use std::sync::mpsc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(2);

/// Creates a resource under a fresh root owner (kept alive by the caller).
fn make_resource() -> (Owner, ArcResource<u32>) {
    let owner = Owner::new();
    let resource = owner.with(|| ArcResource::new(|| (), |_| async { 42 }));
    (owner, resource)
}

/// The resource's value, or `None` if it has not loaded within [`WAIT`].
async fn value_of(resource: ArcResource<u32>) -> Option<u32> {
    tokio::time::timeout(WAIT, resource.into_future())
        .await
        .ok()
}

#[tokio::main]
async fn main() {
    any_spawner::Executor::init_tokio().expect("the executor is set once");

    let (_owner, before) = make_resource();
    println!(
        "resource made with no route list being worked out: {:?}",
        value_of(before).await
    );

    // Another thread "works out its route list": it holds the guard until told to stop.
    let (entered, has_entered) = mpsc::channel();
    let (stop, should_stop) = mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let _guard = SuppressResourceLoad::new();
        entered.send(()).expect("main thread waits");
        let _ = should_stop.recv_timeout(WAIT);
    });
    has_entered
        .recv()
        .expect("the other thread holds the guard");

    // This thread, meanwhile, renders a page that makes a resource.
    let (_owner, during) = make_resource();

    // The other thread finishes; the flag is clear again before we wait for the value.
    let _ = stop.send(());
    other.join().expect("the other thread ends");

    let during = value_of(during).await;
    println!("resource made while another thread held the guard:  {during:?}");

    let (_owner, after) = make_resource();
    println!(
        "resource made after the guard was dropped:         {:?}",
        value_of(after).await
    );

    if during.is_none() {
        println!(
            "BUG: the resource made during the other thread's route generation never loaded \
             (waited {WAIT:?} after the guard was gone)"
        );
        std::process::exit(1);
    }
    println!("fixed: every resource loaded");
}
