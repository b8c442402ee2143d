//! The emoji shortcodes messages may use (`:tada:`): common names from GitHub and Slack,
//! listed here rather than taken from a crate so the browser's WebAssembly carries only these
//! (174 of them). A name that is not here stays as typed.

/// Longest name in [`TABLE`], so a reader of `:...:` knows when to stop looking.
pub const MAX_NAME: usize = 26;

/// Names and their emoji, sorted by name (in byte order) for a binary search.
const TABLE: &[(&str, &str)] = &[
    ("+1", "👍"),
    ("-1", "👎"),
    ("100", "💯"),
    ("1st_place_medal", "🥇"),
    ("airplane", "✈️"),
    ("alarm_clock", "⏰"),
    ("alien", "👽"),
    ("angry", "😠"),
    ("apple", "🍎"),
    ("arrow_down", "⬇️"),
    ("arrow_left", "⬅️"),
    ("arrow_right", "➡️"),
    ("arrow_up", "⬆️"),
    ("balloon", "🎈"),
    ("battery", "🔋"),
    ("bear", "🐻"),
    ("bee", "🐝"),
    ("beer", "🍺"),
    ("beers", "🍻"),
    ("bell", "🔔"),
    ("bike", "🚲"),
    ("birthday", "🎂"),
    ("blue_heart", "💙"),
    ("blush", "😊"),
    ("book", "📖"),
    ("books", "📚"),
    ("boom", "💥"),
    ("broken_heart", "💔"),
    ("bug", "🐛"),
    ("bulb", "💡"),
    ("butterfly", "🦋"),
    ("cake", "🍰"),
    ("calendar", "📅"),
    ("camera", "📷"),
    ("car", "🚗"),
    ("cat", "🐱"),
    ("champagne", "🍾"),
    ("chart_with_downwards_trend", "📉"),
    ("chart_with_upwards_trend", "📈"),
    ("checkered_flag", "🏁"),
    ("clap", "👏"),
    ("cloud", "☁️"),
    ("clown_face", "🤡"),
    ("coffee", "☕"),
    ("computer", "💻"),
    ("confused", "😕"),
    ("construction", "🚧"),
    ("cookie", "🍪"),
    ("cool", "🆒"),
    ("crab", "🦀"),
    ("crossed_fingers", "🤞"),
    ("crown", "👑"),
    ("cry", "😢"),
    ("dog", "🐶"),
    ("doughnut", "🍩"),
    ("email", "📧"),
    ("exclamation", "❗"),
    ("exploding_head", "🤯"),
    ("eyes", "👀"),
    ("facepalm", "🤦"),
    ("fire", "🔥"),
    ("flushed", "😳"),
    ("four_leaf_clover", "🍀"),
    ("gear", "⚙️"),
    ("gem", "💎"),
    ("ghost", "👻"),
    ("gift", "🎁"),
    ("green_heart", "💚"),
    ("grimacing", "😬"),
    ("grin", "😁"),
    ("grinning", "😀"),
    ("hamburger", "🍔"),
    ("hammer", "🔨"),
    ("handshake", "🤝"),
    ("headphones", "🎧"),
    ("heart", "❤️"),
    ("heart_eyes", "😍"),
    ("heavy_check_mark", "✔️"),
    ("heavy_minus_sign", "➖"),
    ("heavy_plus_sign", "➕"),
    ("hourglass", "⌛"),
    ("house", "🏠"),
    ("hugs", "🤗"),
    ("innocent", "😇"),
    ("joy", "😂"),
    ("key", "🔑"),
    ("kiss", "😘"),
    ("laughing", "😆"),
    ("link", "🔗"),
    ("lock", "🔒"),
    ("mag", "🔍"),
    ("mask", "😷"),
    ("memo", "📝"),
    ("moneybag", "💰"),
    ("muscle", "💪"),
    ("nerd_face", "🤓"),
    ("neutral_face", "😐"),
    ("no_entry", "⛔"),
    ("ok", "🆗"),
    ("ok_hand", "👌"),
    ("open_mouth", "😮"),
    ("package", "📦"),
    ("paperclip", "📎"),
    ("partying_face", "🥳"),
    ("pencil2", "✏️"),
    ("pensive", "😔"),
    ("pizza", "🍕"),
    ("pleading_face", "🥺"),
    ("point_down", "👇"),
    ("point_left", "👈"),
    ("point_right", "👉"),
    ("point_up", "👆"),
    ("poop", "💩"),
    ("pray", "🙏"),
    ("purple_heart", "💜"),
    ("pushpin", "📌"),
    ("question", "❓"),
    ("rage", "😡"),
    ("rainbow", "🌈"),
    ("raised_hands", "🙌"),
    ("recycle", "♻️"),
    ("relieved", "😌"),
    ("robot", "🤖"),
    ("rocket", "🚀"),
    ("rofl", "🤣"),
    ("roll_eyes", "🙄"),
    ("rose", "🌹"),
    ("rotating_light", "🚨"),
    ("scream", "😱"),
    ("see_no_evil", "🙈"),
    ("seedling", "🌱"),
    ("shrug", "🤷"),
    ("skull", "💀"),
    ("sleeping", "😴"),
    ("slightly_frowning_face", "🙁"),
    ("slightly_smiling_face", "🙂"),
    ("smile", "😄"),
    ("smiley", "😃"),
    ("smirk", "😏"),
    ("snail", "🐌"),
    ("snowflake", "❄️"),
    ("sob", "😭"),
    ("sparkles", "✨"),
    ("speech_balloon", "💬"),
    ("star", "⭐"),
    ("star_struck", "🤩"),
    ("stuck_out_tongue", "😛"),
    ("sunglasses", "😎"),
    ("sunny", "☀️"),
    ("sweat_smile", "😅"),
    ("tada", "🎉"),
    ("tea", "🍵"),
    ("thinking", "🤔"),
    ("thumbsdown", "👎"),
    ("thumbsup", "👍"),
    ("trophy", "🏆"),
    ("turtle", "🐢"),
    ("umbrella", "☔"),
    ("unamused", "😒"),
    ("unicorn", "🦄"),
    ("unlock", "🔓"),
    ("upside_down_face", "🙃"),
    ("v", "✌️"),
    ("warning", "⚠️"),
    ("wave", "👋"),
    ("white_check_mark", "✅"),
    ("wink", "😉"),
    ("worried", "😟"),
    ("wrench", "🔧"),
    ("x", "❌"),
    ("yellow_heart", "💛"),
    ("yum", "😋"),
    ("zap", "⚡"),
    ("zzz", "💤"),
];

/// Every name and its emoji, sorted by name: the emoji a message may be reacted with too
/// (see `reaction`), and what the reaction picker's search looks through.
pub fn all() -> &'static [(&'static str, &'static str)] {
    TABLE
}

/// The emoji called `name` (without its colons).
pub fn lookup(name: &str) -> Option<&'static str> {
    let found = TABLE.binary_search_by(|(n, _)| n.cmp(&name)).ok()?;
    Some(TABLE[found].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is sorted, without repeats, every name is one a shortcode can spell and no
    /// longer than [`MAX_NAME`], and every name (and no other) finds its emoji.
    #[test]
    fn the_table_is_well_formed() {
        assert!(
            TABLE.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no repeats"
        );
        assert!(TABLE.len() >= 100);
        for (name, emoji) in TABLE {
            assert!(name.len() <= MAX_NAME);
            assert!(name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_+-".contains(&b)));
            assert_eq!(lookup(name), Some(*emoji));
        }
        assert_eq!(lookup("tada"), Some("🎉"));
        assert_eq!(lookup("+1"), Some("👍"));
        assert_eq!(lookup("tad"), None);
        assert_eq!(lookup(""), None);
    }
}
