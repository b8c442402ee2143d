//! How settings that are not plain serde values are written in the file: durations as
//! seconds, lists as comma-separated text, and counts with a minimum.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};
use std::fmt::{self, Display};
use std::str::FromStr;

/// Reads a count, refusing one under `MIN` (a limit of 0 would shut a feature off silently).
/// Out-of-range values are already refused by the count's own type.
pub fn at_least<'de, const MIN: u64, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy,
    u64: TryFrom<T>,
{
    let count = T::deserialize(deserializer)?;
    match u64::try_from(count) {
        Ok(n) if n >= MIN => Ok(count),
        _ => Err(de::Error::custom(format!("must be at least {MIN}"))),
    }
}

/// A duration written as a positive number of seconds: whole (`10`) or not (`0.5`).
pub mod seconds {
    use super::*;
    use std::time::Duration;

    /// Whole seconds as an integer (as the committed files have them), others as a float.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        if duration.subsec_nanos() == 0 {
            serializer.serialize_u64(duration.as_secs())
        } else {
            serializer.serialize_f64(duration.as_secs_f64())
        }
    }

    /// Refuses zero (a zero heartbeat period cannot tick), negatives and overflows.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(Seconds)
    }

    struct Seconds;

    impl Visitor<'_> for Seconds {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a positive number of seconds")
        }

        fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
            match secs {
                0 => Err(E::invalid_value(de::Unexpected::Unsigned(0), &self)),
                secs => Ok(Duration::from_secs(secs)),
            }
        }

        fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Duration, E> {
            let whole = u64::try_from(secs)
                .map_err(|_| E::invalid_value(de::Unexpected::Signed(secs), &self))?;
            self.visit_u64(whole)
        }

        fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Duration, E> {
            match Duration::try_from_secs_f64(secs) {
                Ok(duration) if !duration.is_zero() => Ok(duration),
                _ => Err(E::invalid_value(de::Unexpected::Float(secs), &self)),
            }
        }
    }
}

/// A list written as one comma-separated string (`"a, b"`); blank entries are skipped, so
/// `""` is the empty list. An entry that does not parse is named in the error.
pub mod comma_list {
    use super::*;

    pub fn serialize<S: Serializer, T: Display>(
        items: &[T],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = items.iter().map(ToString::to_string).collect();
        serializer.serialize_str(&text.join(", "))
    }

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        let text = String::deserialize(deserializer)?;
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse()
                    .map_err(|e| de::Error::custom(format!("{entry}: {e}")))
            })
            .collect()
    }
}
