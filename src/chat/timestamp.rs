//! Moments in UTC, to the millisecond, written on the wire and in the store as RFC 3339 text
//! ("2026-11-22T09:30:05.482Z").
//!
//! The calendar arithmetic is done here rather than with a date library: the browser needs
//! only this much of one, and a general date library adds tens of kilobytes to the
//! WebAssembly every visitor downloads.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// A moment in UTC, counted in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The moment `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Timestamp {
        Timestamp(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Now, by the server's clock.
    #[cfg(feature = "ssr")]
    pub fn now() -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    /// This moment as a clock `offset_minutes` east of UTC shows it.
    pub fn local(self, offset_minutes: i32) -> LocalTime {
        let shifted = self.0 + i64::from(offset_minutes) * 60_000;
        let day = shifted.div_euclid(DAY_MS);
        let minutes = shifted.rem_euclid(DAY_MS) / 60_000;
        let (year, month, date) = civil_from_days(day);
        LocalTime {
            day,
            year,
            month,
            date,
            // 1970-01-01 was a Thursday.
            weekday: (day + 3).rem_euclid(7),
            hour: minutes / 60,
            minute: minutes % 60,
        }
    }

    /// Reads RFC 3339 text: a date, `T` (or `t` or a space), a time with optional fraction
    /// of a second, and `Z` or an offset such as `+02:00`. Digits past the millisecond are
    /// dropped.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let b = text.as_bytes();
        let digits = |from: usize, len: usize| -> Option<i64> {
            let part = b.get(from..from + len)?;
            part.iter().try_fold(0i64, |n, &d| {
                d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
            })
        };
        let separator =
            |at: usize, expected: &[u8]| b.get(at).is_some_and(|c| expected.contains(c));
        if !(separator(4, b"-") && separator(7, b"-") && separator(10, b"Tt ")) {
            return None;
        }
        if !(separator(13, b":") && separator(16, b":")) {
            return None;
        }
        let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
        let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut at = 19;
        let mut millis = 0;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let start = at;
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                if at - start < 3 {
                    millis = millis * 10 + i64::from(b[at] - b'0');
                }
                at += 1;
            }
            if at == start {
                return None;
            }
            for _ in (at - start)..3 {
                millis *= 10;
            }
        }
        let offset_minutes = match b.get(at)? {
            b'Z' | b'z' if at + 1 == b.len() => 0,
            sign @ (b'+' | b'-') if at + 6 == b.len() && separator(at + 3, b":") => {
                let minutes = digits(at + 1, 2)? * 60 + digits(at + 4, 2)?;
                if *sign == b'+' {
                    minutes
                } else {
                    -minutes
                }
            }
            _ => return None,
        };
        // A leap second is read as the last millisecond's successor: the next minute.
        let seconds = days_from_civil(year, month, day) * 86_400
            + hour * 3_600
            + (minute - offset_minutes) * 60
            + second;
        Some(Timestamp(seconds * 1_000 + millis))
    }
}

/// A moment on a local clock, to the minute: what [`Timestamp::local`] gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    /// Days since 1970-01-01 on that clock: two moments fall on the same local day exactly
    /// when their `day`s are equal, and yesterday is `day - 1`.
    pub day: i64,
    pub year: i64,
    /// 1 (January) to 12.
    pub month: i64,
    /// Day of the month, from 1.
    pub date: i64,
    /// 0 (Monday) to 6 (Sunday).
    pub weekday: i64,
    pub hour: i64,
    pub minute: i64,
}

/// RFC 3339 in UTC with milliseconds: "2026-11-22T09:30:05.482Z".
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = self.0.div_euclid(DAY_MS);
        let in_day = self.0.rem_euclid(DAY_MS);
        let (year, month, date) = civil_from_days(day);
        let (seconds, millis) = (in_day / 1_000, in_day % 1_000);
        write!(
            f,
            "{year:04}-{month:02}-{date:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            seconds / 3_600,
            seconds / 60 % 60,
            seconds % 60
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 date and time")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
                Timestamp::parse(text)
                    .ok_or_else(|| E::custom(format!("not an RFC 3339 date and time: {text:?}")))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian calendar. Counts in
/// 400-year eras (146,097 days each) of years that begin on 1 March, so that the leap day
/// falls at the end of a year.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date (year, month, day) a number of days after 1970-01-01: the inverse of
/// [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known moments are written as RFC 3339 in UTC with milliseconds, and read back.
    #[test]
    fn writes_and_reads_known_moments() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_795_338_000_123, "2026-11-22T09:00:00.123Z"),
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
        ];
        for (millis, text) in cases {
            let at = Timestamp::from_millis(millis);
            assert_eq!(at.to_string(), text);
            assert_eq!(Timestamp::parse(text), Some(at), "{text}");
        }
    }

    /// Every day over four centuries survives the round trip through text, so month and
    /// leap-year boundaries are right.
    #[test]
    fn every_day_round_trips() {
        let start = Timestamp::parse("1900-01-01T12:34:56.789Z")
            .unwrap()
            .millis();
        let mut previous = String::new();
        for day in 0..146_097 + 366 {
            let at = Timestamp::from_millis(start + day * DAY_MS);
            let text = at.to_string();
            assert!(text > previous, "{text} after {previous}");
            assert_eq!(Timestamp::parse(&text), Some(at));
            previous = text;
        }
    }

    /// Text written by other programs is read too: nanoseconds (as earlier versions of
    /// Flack stored), offsets, and the other separators RFC 3339 allows.
    #[test]
    fn reads_other_rfc3339_forms() {
        let at = Timestamp::from_millis(1_795_338_000_281);
        for text in [
            "2026-11-22T09:00:00.281734512Z",
            "2026-11-22t09:00:00.281z",
            "2026-11-22 10:30:00.281+01:30",
            "2026-11-22T07:00:00.281-02:00",
        ] {
            assert_eq!(Timestamp::parse(text), Some(at), "{text}");
        }
        assert_eq!(
            Timestamp::parse("2026-11-22T09:00:00Z"),
            Some(Timestamp::from_millis(1_795_338_000_000))
        );
        assert_eq!(
            Timestamp::parse("2026-11-22T09:00:00.5Z"),
            Some(Timestamp::from_millis(1_795_338_000_500))
        );
    }

    /// Anything that is not a valid RFC 3339 moment is refused.
    #[test]
    fn refuses_malformed_text() {
        for text in [
            "",
            "2026-11-22",
            "2026-11-22T09:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T09:00:00.Z",
            "2026-11-22T09:00:00+0100",
            "2026-11-22T09:00:00Zjunk",
            "20x6-11-22T09:00:00Z",
            "2026-11-22T09:00:00Ü",
        ] {
            assert_eq!(Timestamp::parse(text), None, "{text}");
        }
    }

    /// A moment on a local clock: the offset moves the hour, and across midnight the date,
    /// the weekday and the day number with it.
    #[test]
    fn shows_moments_on_local_clocks() {
        // A Sunday, 22:30 in UTC.
        let at = Timestamp::parse("2026-11-22T22:30:00Z").unwrap();
        let utc = at.local(0);
        assert_eq!((utc.year, utc.month, utc.date), (2026, 11, 22));
        assert_eq!((utc.weekday, utc.hour, utc.minute), (6, 22, 30));
        let east = at.local(120);
        assert_eq!((east.month, east.date, east.weekday), (11, 23, 0));
        assert_eq!((east.hour, east.minute, east.day), (0, 30, utc.day + 1));
        let west = at.local(-5 * 60 - 30);
        assert_eq!(
            (west.date, west.hour, west.minute, west.day),
            (22, 17, 0, utc.day)
        );
        let epoch = Timestamp::from_millis(0).local(-60);
        assert_eq!((epoch.year, epoch.month, epoch.date), (1969, 12, 31));
        assert_eq!((epoch.weekday, epoch.hour, epoch.day), (2, 23, -1));
    }

    /// On the wire a moment is a JSON string.
    #[test]
    fn serialises_as_a_string() {
        let at = Timestamp::from_millis(1_795_338_000_123);
        let json = serde_json::to_string(&at).unwrap();
        assert_eq!(json, "\"2026-11-22T09:00:00.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), at);
        assert!(serde_json::from_str::<Timestamp>("12").is_err());
    }
}
