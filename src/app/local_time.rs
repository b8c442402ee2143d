//! Times and dates as the reader's own clock shows them, on the first paint as well as after.
//!
//! # Why a cookie
//! The server renders a channel's first paint, and nothing in a plain page request says which
//! time zone the reader is in. So the browser tells it: once hydrated, it stores its current
//! offset from UTC in the [`ZONE_COOKIE`] cookie, and every later page request carries it;
//! the server renders times and day separators at that offset, so the first paint already
//! shows the times hydration would show, and nothing switches. (The offset is the one in
//! force now: a message from the other side of a daylight-saving change is shown an hour off
//! until hydration corrects it, a rare and small change. A zone name would avoid even that,
//! at the cost of a time-zone database in the server.)
//!
//! On a first visit there is no cookie yet. The server then renders the times in UTC, marked
//! `zone-unknown`, which the stylesheet hides until hydration replaces them with local ones:
//! the reader sees the times appear once, never change. With JavaScript off no cookie is ever
//! set and hydration never comes, so a `<noscript>` stylesheet (`public/noscript.css`) shows
//! the UTC times, labelled "UTC".
//!
//! The channel-page cache (`server::page_cache`) keeps one page per offset and local day,
//! since both change what a page says.

use crate::chat::model::{LocalTime, Timestamp};
use leptos::prelude::*;

/// The cookie holding the reader's offset from UTC, in whole minutes east ("120" in Paris in
/// summer, "-300" in New York in winter).
pub const ZONE_COOKIE: &str = "flack_tz";

/// Offsets beyond this many minutes either way do not exist; a cookie claiming one is ignored.
const MAX_OFFSET_MINUTES: i32 = 18 * 60;

/// The reader's clock, shared with every component through context.
#[derive(Clone, Copy)]
pub struct ReaderClock {
    /// True once the app has hydrated: from then on the browser's own clock and zone are used.
    hydrated: RwSignal<bool>,
    /// The offset from the [`ZONE_COOKIE`] the page was requested with, if it had a valid
    /// one: what the server rendered with, and what the browser uses until hydrated.
    server_offset: Option<i32>,
    /// When the server rendered the page: "now" until hydrated.
    server_now: Timestamp,
    /// Moves on at each local midnight in the browser, so what reads [`ReaderClock::now`]
    /// ("Today", "Yesterday") is read again when the day changes.
    day: RwSignal<u32>,
}

/// Provides the reader's clock to the component tree. The server's offset (from the request's
/// zone cookie) and its "now" travel with the page, so that while hydrating the browser lays
/// out days and groups, and names today, exactly as the server did; only then does it switch
/// to its own clock.
pub fn provide_reader_clock(hydrated: RwSignal<bool>) {
    let (server_offset, server_now) =
        SharedValue::new(|| (request_offset(), server_now())).into_inner();
    let day = RwSignal::new(0);
    #[cfg(feature = "hydrate")]
    at_next_midnight(day);
    provide_context(ReaderClock {
        hydrated,
        server_offset,
        server_now,
        day,
    });
}

/// Moves `day` on at the browser's next local midnight, and again at each one after.
#[cfg(feature = "hydrate")]
fn at_next_midnight(day: RwSignal<u32>) {
    let now = js_sys::Date::new_0();
    let midnight = js_sys::Date::new(&now);
    midnight.set_hours(24);
    midnight.set_minutes(0);
    midnight.set_seconds(0);
    midnight.set_milliseconds(0);
    // A moment past midnight, so the new day has surely begun when the labels are read.
    let wait = (midnight.get_time() - now.get_time()).max(0.0) as u64 + 500;
    set_timeout(
        move || {
            if day.try_update(|n| *n += 1).is_some() {
                at_next_midnight(day);
            }
        },
        std::time::Duration::from_millis(wait),
    );
}

/// The offset in the zone cookie of the request being rendered.
#[cfg(feature = "ssr")]
fn request_offset() -> Option<i32> {
    let parts = use_context::<axum::http::request::Parts>()?;
    let headers = parts.headers.get_all(axum::http::header::COOKIE);
    offset_from_cookies(headers.iter().filter_map(|value| value.to_str().ok()))
}

/// In the browser there is no request: the app hydrates with the server's value.
#[cfg(not(feature = "ssr"))]
fn request_offset() -> Option<i32> {
    None
}

/// The server's clock (in the browser, only used when nothing came from the server).
fn server_now() -> Timestamp {
    #[cfg(feature = "ssr")]
    return Timestamp::now();
    #[cfg(not(feature = "ssr"))]
    Timestamp::from_millis(0)
}

/// The clock provided by [`provide_reader_clock`].
pub fn use_reader_clock() -> ReaderClock {
    expect_context::<ReaderClock>()
}

impl ReaderClock {
    /// The reader's offset from UTC at `at`, in minutes east, if known (tracked: it changes
    /// when the page hydrates). In the browser it is the zone's offset at that moment, so
    /// daylight-saving changes are followed.
    pub fn offset_at(&self, at: Timestamp) -> Option<i32> {
        #[cfg(feature = "hydrate")]
        if self.hydrated.get() {
            let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at.millis() as f64));
            return Some(-(date.get_timezone_offset() as i32));
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (at, self.hydrated);
        self.server_offset
    }

    /// The current moment (tracked): the browser's clock once hydrated, the server's before.
    pub fn now(&self) -> Timestamp {
        self.day.track();
        #[cfg(feature = "hydrate")]
        if self.hydrated.get() {
            return Timestamp::from_millis(js_sys::Date::now() as i64);
        }
        self.server_now
    }

    /// Today's day number on the reader's clock (see [`LocalTime::day`]).
    pub fn today(&self) -> i64 {
        let now = self.now();
        now.local(self.offset_at(now).unwrap_or(0)).day
    }
}

/// Hours and minutes, "09:05", or "09:05 UTC" when the reader's zone is not known.
pub fn clock_label(at: Timestamp, offset: Option<i32>) -> String {
    let local = at.local(offset.unwrap_or(0));
    let zone = if offset.is_some() { "" } else { " UTC" };
    format!("{:02}:{:02}{zone}", local.hour, local.minute)
}

/// The full date and time, "Monday 30 November 2026 at 09:05", for hover and for assistive
/// technology.
pub fn full_label(at: Timestamp, offset: Option<i32>) -> String {
    let local = at.local(offset.unwrap_or(0));
    format!("{} at {}", date_label(&local), clock_label(at, offset))
}

/// What a day separator says: "Today", "Yesterday", or the date.
pub fn day_label(day: &LocalTime, today: i64) -> String {
    match today - day.day {
        0 => "Today".to_owned(),
        1 => "Yesterday".to_owned(),
        _ => date_label(day),
    }
}

/// "Monday 30 November 2026".
fn date_label(day: &LocalTime) -> String {
    const WEEKDAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let weekday = WEEKDAYS[day.weekday.clamp(0, 6) as usize];
    let month = MONTHS[(day.month - 1).clamp(0, 11) as usize];
    format!("{weekday} {} {month} {}", day.date, day.year)
}

/// The offset in a request's `Cookie` header values, if one of them sets [`ZONE_COOKIE`] to
/// a whole number of minutes within the range real zones use.
pub fn offset_from_cookies<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<i32> {
    headers
        .into_iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == ZONE_COOKIE)
        .and_then(|(_, value)| value.trim().parse::<i32>().ok())
        .filter(|minutes| minutes.abs() <= MAX_OFFSET_MINUTES)
}

/// Stores the browser's current offset in [`ZONE_COOKIE`] for the server's next render.
#[cfg(feature = "hydrate")]
pub fn remember_zone() {
    let offset = -(js_sys::Date::new_0().get_timezone_offset() as i32);
    let cookie = format!("{ZONE_COOKIE}={offset}; path=/; max-age=31536000; samesite=lax");
    let stored = js_sys::Reflect::set(
        document().as_ref(),
        &wasm_bindgen::JsValue::from_str("cookie"),
        &wasm_bindgen::JsValue::from_str(&cookie),
    );
    if stored.is_err() {
        leptos::logging::warn!("cannot store the time zone cookie");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels use the reader's offset, say "UTC" when it is unknown, and name today,
    /// yesterday and older days as a reader expects.
    #[test]
    fn labels_follow_the_readers_clock() {
        let at = Timestamp::parse("2026-11-30T23:05:00Z").unwrap();
        assert_eq!(clock_label(at, Some(60)), "00:05");
        assert_eq!(clock_label(at, None), "23:05 UTC");
        assert_eq!(full_label(at, Some(60)), "Tuesday 1 December 2026 at 00:05");
        assert_eq!(full_label(at, None), "Monday 30 November 2026 at 23:05 UTC");
        let day = at.local(0);
        assert_eq!(day_label(&day, day.day), "Today");
        assert_eq!(day_label(&day, day.day + 1), "Yesterday");
        assert_eq!(day_label(&day, day.day + 2), "Monday 30 November 2026");
    }

    /// The zone cookie is found among others and in any `Cookie` header; a missing,
    /// malformed or impossible offset counts as unknown.
    #[test]
    fn reads_the_zone_cookie() {
        assert_eq!(offset_from_cookies(["a=b; flack_tz=-300; c=d"]), Some(-300));
        assert_eq!(offset_from_cookies(["a=b", "flack_tz=120"]), Some(120));
        assert_eq!(offset_from_cookies(["flack_tz=0"]), Some(0));
        for header in [
            "",
            "flack_tz=",
            "flack_tz=east",
            "flack_tz=1500",
            "xflack_tz=60",
        ] {
            assert_eq!(offset_from_cookies([header]), None, "{header}");
        }
    }
}
