//! Typing notices in the browser (issue 18, item 5): telling the server, at most every
//! [`TYPING_EVERY`], that the user types in the open room, and showing who else does, for
//! [`TYPING_SHOWN`] after their last notice or until their message arrives.

use super::{ChatClient, Feed};
use crate::chat::model::{Room, UserId, UserInfo};
#[cfg(feature = "hydrate")]
use crate::{chat::model::TYPING_EVERY, protocol::ClientEvent};
use leptos::prelude::*;
use std::time::Duration;

/// How long a notice is shown without another one: a little more than the time between
/// two of them, so a steady typist's notice does not flicker.
pub const TYPING_SHOWN: Duration = Duration::from_secs(5);

impl ChatClient {
    /// The user typed in the open room's box: tells the server, unless it was told less
    /// than [`TYPING_EVERY`] ago for this room (the server would drop it anyway).
    pub fn typed(&self) {
        #[cfg(feature = "hydrate")]
        {
            let Some(room) = self.current() else {
                return;
            };
            if self.status.get_untracked() != super::ConnStatus::Connected {
                return;
            }
            let now = js_sys::Date::now();
            let recent = self.typing_sent.with_value(|sent| {
                sent.as_ref().is_some_and(|(last, at)| {
                    *last == room && now - at < TYPING_EVERY.as_millis() as f64
                })
            });
            if recent {
                return;
            }
            self.typing_sent.set_value(Some((room.clone(), now)));
            self.send_event(&ClientEvent::Typing { room });
        }
    }

    /// Someone is typing in `room`: shown in its feed if it is open (and it is not us).
    pub(super) fn someone_typing(&self, room: &Room, user: UserInfo) {
        let Some(feed) = self.feed_for(room) else {
            return;
        };
        let me = self
            .session
            .with_untracked(|s| s.as_ref().map(|s| s.user.id));
        if me == Some(user.id) {
            return;
        }
        let stamp = self.typing_stamp.get_value() + 1;
        self.typing_stamp.set_value(stamp);
        let id = user.id;
        feed.typing.try_update(|list| {
            list.retain(|(held, _)| held.id != id);
            list.push((user, stamp));
        });
        #[cfg(feature = "hydrate")]
        set_timeout(
            move || {
                feed.typing
                    .try_update(|list| list.retain(|(held, s)| !(held.id == id && *s == stamp)));
            },
            TYPING_SHOWN,
        );
    }

    /// A message of `author`'s arrived in `feed`: they are done typing it.
    pub(super) fn stopped_typing(feed: &Feed, author: UserId) {
        let typing = feed
            .typing
            .try_with_untracked(|list| list.iter().any(|(u, _)| u.id == author));
        if typing == Some(true) {
            feed.typing
                .try_update(|list| list.retain(|(u, _)| u.id != author));
        }
    }
}

/// The line shown under the messages while others type (`None`: nobody does).
pub fn typing_notice(typists: &[(UserInfo, u64)]) -> Option<String> {
    match typists {
        [] => None,
        [(one, _)] => Some(format!("{} is typing…", one.name)),
        [(one, _), (two, _)] => Some(format!("{} and {} are typing…", one.name, two.name)),
        _ => Some("Several people are typing…".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::model::DisplayName;

    fn user(id: u64, name: &str) -> (UserInfo, u64) {
        let name = DisplayName::parse(name).expect("a valid name");
        (
            UserInfo {
                id: UserId(id),
                name,
            },
            0,
        )
    }

    /// The notice names one or two typists, and stops naming beyond that.
    #[test]
    fn the_notice_names_up_to_two_typists() {
        assert_eq!(typing_notice(&[]), None);
        assert_eq!(
            typing_notice(&[user(1, "Ann")]).as_deref(),
            Some("Ann is typing…")
        );
        assert_eq!(
            typing_notice(&[user(1, "Ann"), user(2, "Bob")]).as_deref(),
            Some("Ann and Bob are typing…")
        );
        assert_eq!(
            typing_notice(&[user(1, "Ann"), user(2, "Bob"), user(3, "Cy")]).as_deref(),
            Some("Several people are typing…")
        );
    }
}
