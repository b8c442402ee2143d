//! Names people type: channel names and display names, how new ones are checked (NFC,
//! nothing invisible, no stacked accents) and when two of them look alike.

use super::error::ChatError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest channel name, in characters, after trimming.
pub const MAX_CHANNEL_NAME_CHARS: usize = 40;
/// Longest display name, in characters, after trimming.
pub const MAX_DISPLAY_NAME_CHARS: usize = 32;
/// Characters a channel name cannot contain, because they have meaning in a URL path.
pub const CHANNEL_NAME_FORBIDDEN: &[char] = &['/', '\\', '?', '#', '%'];
/// Most combining marks (accents) a new name may stack on one character, after NFC. Three
/// leaves room for scripts that stack marks (Tibetan's subjoined letters and a vowel sign,
/// Hebrew points, Thai tone marks) and refuses the towers of "Zalgo" text.
pub const MAX_COMBINING_RUN: usize = 3;

/// True for characters that reorder or hide text (bidirectional overrides and isolates,
/// zero-width marks); names may not contain them, so a name always reads as what it is.
pub(super) fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// What a kind of name allows, and the error for each way a name breaks it. Names are
/// trimmed, not empty, at most `max_chars` long, and free of control characters, invisible
/// formatting characters and the kind's `forbidden` characters.
struct NameRules {
    max_chars: usize,
    forbidden: &'static [char],
    empty: ChatError,
    too_long: ChatError,
    invalid: ChatError,
}

impl NameRules {
    /// The trimmed name, or the error for the first rule it breaks. These are the rules every
    /// name read back (from the store, the wire or an address) still meets; a new name must
    /// also pass [`NameRules::check_new`].
    fn check(self, raw: &str) -> Result<&str, ChatError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(self.empty);
        }
        if name.chars().count() > self.max_chars {
            return Err(self.too_long);
        }
        if name
            .chars()
            .any(|c| c.is_control() || is_invisible_format(c) || self.forbidden.contains(&c))
        {
            return Err(self.invalid);
        }
        Ok(name)
    }

    /// A name someone is choosing now (a registration, a rename, a new channel): its NFC form,
    /// which must pass [`NameRules::check`] and have nothing that draws nothing (see
    /// [`looks_blank`]) and no more than [`MAX_COMBINING_RUN`] marks in a row.
    ///
    /// Server only: the tables behind it are too large for the browser's WebAssembly, whose
    /// own check is [`NameRules::check`]; the server's refusal is what the browser shows.
    /// Names stored before these rules still load, through [`NameRules::check`].
    #[cfg(feature = "ssr")]
    fn check_new(self, raw: &str) -> Result<String, ChatError> {
        use icu_properties::props::{GeneralCategory, GeneralCategoryGroup};
        use icu_properties::CodePointMapData;
        use unicode_normalization::UnicodeNormalization;

        let nfc: String = raw.trim().nfc().collect();
        let invalid = self.invalid.clone();
        let name = self.check(&nfc)?;
        if name.chars().any(looks_blank) {
            return Err(invalid);
        }
        let categories = CodePointMapData::<GeneralCategory>::new();
        let mut run = 0;
        for c in name.chars() {
            run = if GeneralCategoryGroup::Mark.contains(categories.get(c)) {
                run + 1
            } else {
                0
            };
            if run > MAX_COMBINING_RUN {
                return Err(invalid);
            }
        }
        Ok(name.to_owned())
    }
}

/// True for a character a new name may not contain because it draws nothing, or nothing a
/// reader can tell from a space: every format character (Cf: joiners, bidirectional and
/// invisible operators, the soft hyphen, tag characters), line and paragraph separators
/// (Zl, Zp), controls, every default-ignorable code point (variation selectors, the combining
/// grapheme joiner, the Hangul fillers) and the blank Braille pattern U+2800, a symbol that
/// prints as an empty cell. The Hangul fillers are default-ignorable already; they are named
/// here too because the issue that asked for this names them.
#[cfg(feature = "ssr")]
fn looks_blank(c: char) -> bool {
    use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
    use icu_properties::{CodePointMapData, CodePointSetData};

    matches!(
        CodePointMapData::<GeneralCategory>::new().get(c),
        GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::Control
    ) || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || matches!(
            c,
            '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}'
        )
}

/// What two names that look alike share: the name case folded, then its UTS #39 confusable
/// skeleton, case folded again. The skeleton decomposes (NFD) and drops default-ignorables
/// itself, so composed and decomposed names meet; the second folding merges the capitals some
/// prototypes are (`0` becomes `O`, so `G0d` meets `God`). Folding comes first, as the
/// standard's case-insensitive comparison does, so a capital `I` is an `i` before the
/// skeleton would make it an `l`: `BiII` (capital i's) still passes beside `Bill`, the price
/// of `ADMIN` meeting `admin`. Only for telling whether a name is free; never shown, stored or
/// sent.
#[cfg(feature = "ssr")]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LookAlike(String);

#[cfg(feature = "ssr")]
impl LookAlike {
    /// The key as text (what a database's unique index holds).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The look-alike key of a name.
    pub fn of(name: &str) -> LookAlike {
        let fold = icu_casemap::CaseMapper::new();
        let folded = fold.fold_string(name);
        let skeleton: String = unicode_security::skeleton(&folded).collect();
        LookAlike(fold.fold_string(&skeleton).into_owned())
    }
}

/// A channel's name as its creator typed it, trimmed; compared without regard to case.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelName(String);

impl ChannelName {
    fn rules() -> NameRules {
        NameRules {
            max_chars: MAX_CHANNEL_NAME_CHARS,
            forbidden: CHANNEL_NAME_FORBIDDEN,
            empty: ChatError::ChannelNameEmpty,
            too_long: ChatError::ChannelNameTooLong {
                max: MAX_CHANNEL_NAME_CHARS,
            },
            invalid: ChatError::ChannelNameInvalid,
        }
    }

    /// Checks and trims the name of a channel that may exist: typed to find one, or read back
    /// from the store or the wire. A channel being created is checked by
    /// [`ChannelName::parse_new`].
    pub fn parse(raw: &str) -> Result<Self, ChatError> {
        Self::rules()
            .check(raw)
            .map(|name| ChannelName(name.to_owned()))
    }

    /// Checks a name for a channel about to be created: the rules for new names (NFC, nothing
    /// invisible, no stacked accents: see [`NameRules::check_new`]), and not `.` or `..`,
    /// which are dot segments a browser resolves away, so no page of such a channel could be
    /// opened. (Only new names: a channel stored under such a name still loads.)
    #[cfg(feature = "ssr")]
    pub fn parse_new(raw: &str) -> Result<Self, ChatError> {
        let name = Self::rules().check_new(raw)?;
        if matches!(name.as_str(), "." | "..") {
            return Err(ChatError::ChannelNameInvalid);
        }
        Ok(ChannelName(name))
    }

    /// What the name looks like: no channel may be created that looks like another one.
    #[cfg(feature = "ssr")]
    pub fn look_alike(&self) -> LookAlike {
        LookAlike::of(&self.0)
    }

    /// The name as it is displayed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The identity of the channel: two names with the same key name the same channel, in
    /// the hub, its addresses and the store. It stays the lower-cased name rather than
    /// becoming [`ChannelName::look_alike`]: stored rooms are filed under it, and two channels
    /// stored before look-alikes were refused must keep loading as two channels.
    pub fn key(&self) -> ChannelKey {
        ChannelKey(self.0.to_lowercase())
    }
}

impl PartialEq for ChannelName {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for ChannelName {}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ChannelName {
    type Error = ChatError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ChannelName::parse(&value)
    }
}

impl From<ChannelName> for String {
    fn from(value: ChannelName) -> Self {
        value.0
    }
}

/// The case-folded form of a channel name, used to look channels up.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey(String);

impl ChannelKey {
    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's display name, trimmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    fn rules() -> NameRules {
        NameRules {
            max_chars: MAX_DISPLAY_NAME_CHARS,
            forbidden: &[],
            empty: ChatError::DisplayNameEmpty,
            too_long: ChatError::DisplayNameTooLong {
                max: MAX_DISPLAY_NAME_CHARS,
            },
            invalid: ChatError::DisplayNameInvalid,
        }
    }

    /// Checks and trims a display name as it is read back (from the store or the wire), or
    /// as the browser checks it before asking the server, which checks it again with
    /// [`DisplayName::parse_new`].
    pub fn parse(raw: &str) -> Result<Self, ChatError> {
        Self::rules()
            .check(raw)
            .map(|name| DisplayName(name.to_owned()))
    }

    /// Checks a display name someone is choosing (registering or renaming): the rules for new
    /// names, see [`NameRules::check_new`].
    #[cfg(feature = "ssr")]
    pub fn parse_new(raw: &str) -> Result<Self, ChatError> {
        Self::rules().check_new(raw).map(DisplayName)
    }

    /// What the name looks like: no two users may hold names that look alike.
    #[cfg(feature = "ssr")]
    pub fn look_alike(&self) -> LookAlike {
        LookAlike::of(&self.0)
    }

    /// The name as it is displayed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without regard to case, which lists sort by. (Whether a name is free is
    /// decided by [`DisplayName::look_alike`].)
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DisplayName {
    type Error = ChatError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        DisplayName::parse(&value)
    }
}

impl From<DisplayName> for String {
    fn from(value: DisplayName) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names are trimmed, and two names that differ only in case or surrounding spaces are the
    /// same channel.
    #[test]
    fn channel_names_trim_and_ignore_case() {
        let a = ChannelName::parse("General").unwrap();
        let b = ChannelName::parse("  general ").unwrap();
        assert_eq!(b.as_str(), "general");
        assert_eq!(a, b);
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), ChannelName::parse("random").unwrap().key());
    }

    /// Empty, over-long and control-character channel names are refused with their own error.
    #[test]
    fn bad_channel_names_are_refused() {
        assert_eq!(ChannelName::parse("   "), Err(ChatError::ChannelNameEmpty));
        let long = "x".repeat(MAX_CHANNEL_NAME_CHARS + 1);
        assert_eq!(
            ChannelName::parse(&long),
            Err(ChatError::ChannelNameTooLong {
                max: MAX_CHANNEL_NAME_CHARS
            })
        );
        assert!(ChannelName::parse(&"x".repeat(MAX_CHANNEL_NAME_CHARS)).is_ok());
        for bad in ["a\u{0}b", "tab\there", "a/b", "rtl\u{202E}x", "q?x"] {
            assert_eq!(
                ChannelName::parse(bad),
                Err(ChatError::ChannelNameInvalid),
                "{bad:?}"
            );
        }
        // A page at `/c/.` or `/c/..` could never be opened: the browser drops dot segments,
        // so no new channel may take those names (one already stored still loads).
        for dots in [".", "..", " .. "] {
            assert_eq!(
                ChannelName::parse_new(dots),
                Err(ChatError::ChannelNameInvalid),
                "{dots:?}"
            );
            assert!(ChannelName::parse(dots).is_ok(), "{dots:?}");
        }
        assert!(ChannelName::parse_new("...").is_ok());
        assert!(ChannelName::parse_new(".hidden").is_ok());
        // Markup is only text: allowed, and rendered as text by the UI.
        assert!(ChannelName::parse("<img src=x onerror=alert(1)>").is_ok());
    }

    /// Every character the look-alike review found accepted in names is refused in a new
    /// display name and a new channel name, inside a name and as the whole name, with each
    /// kind's own "invalid" error: U+2060 WORD JOINER, U+00AD SOFT HYPHEN, U+034F COMBINING
    /// GRAPHEME JOINER, U+061C ARABIC LETTER MARK, U+180E MONGOLIAN VOWEL SEPARATOR, U+2062
    /// INVISIBLE TIMES, U+FE0F VARIATION SELECTOR-16, tag characters, U+2028 LINE SEPARATOR
    /// (and U+2029), the Hangul fillers U+3164, U+FFA0, U+115F and U+1160, the blank Braille
    /// pattern U+2800, and the zero-width joiner. Names read back keep loading: the lenient
    /// `parse` still takes them.
    #[cfg(feature = "ssr")]
    #[test]
    fn new_names_refuse_invisible_and_blank_characters() {
        let hidden = [
            '\u{2060}',
            '\u{00AD}',
            '\u{034F}',
            '\u{061C}',
            '\u{180E}',
            '\u{2062}',
            '\u{FE0F}',
            '\u{E0001}',
            '\u{E0041}',
            '\u{E007F}',
            '\u{2028}',
            '\u{2029}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{115F}',
            '\u{1160}',
            '\u{2800}',
            '\u{200D}',
        ];
        for c in hidden {
            let inside = format!("ad{c}min");
            assert_eq!(
                DisplayName::parse_new(&inside),
                Err(ChatError::DisplayNameInvalid),
                "U+{:04X}",
                c as u32
            );
            assert_eq!(
                ChannelName::parse_new(&inside),
                Err(ChatError::ChannelNameInvalid),
                "U+{:04X}",
                c as u32
            );
            // Alone it is refused too (the line and paragraph separators, being white space,
            // are trimmed away and leave the name empty).
            let alone = c.to_string();
            assert!(
                DisplayName::parse_new(&alone).is_err(),
                "U+{:04X}",
                c as u32
            );
            assert!(
                ChannelName::parse_new(&alone).is_err(),
                "U+{:04X}",
                c as u32
            );
        }
        // Names stored before these rules were read with `parse`, which still accepts them.
        assert!(DisplayName::parse("ad\u{00AD}min").is_ok());
        assert!(ChannelName::parse("gen\u{2060}eral").is_ok());
        // Ordinary names of other scripts, emoji without selectors, and spaces still pass.
        for fine in [
            "Ada Lovelace",
            "José",
            "Зоя",
            "李小龙",
            "Ωmega 🚀",
            "नमस्ते",
            "ไทย",
        ] {
            assert!(DisplayName::parse_new(fine).is_ok(), "{fine:?}");
            assert!(ChannelName::parse_new(fine).is_ok(), "{fine:?}");
        }
    }

    /// New names are stored in NFC: a decomposed `José` (e + U+0301) is kept composed, and
    /// its length counts the composed characters.
    #[cfg(feature = "ssr")]
    #[test]
    fn new_names_are_nfc() {
        let decomposed = "Jose\u{301}";
        assert_eq!(
            DisplayName::parse_new(decomposed).unwrap().as_str(),
            "Jos\u{e9}"
        );
        assert_eq!(
            ChannelName::parse_new(decomposed).unwrap().as_str(),
            "Jos\u{e9}"
        );
        let long = "e\u{301}".repeat(MAX_DISPLAY_NAME_CHARS);
        assert_eq!(
            DisplayName::parse_new(&long)
                .unwrap()
                .as_str()
                .chars()
                .count(),
            MAX_DISPLAY_NAME_CHARS
        );
    }

    /// At most [`MAX_COMBINING_RUN`] combining marks may follow one another: 31 stacked
    /// marks (and 4) are refused, 3 pass, as do Tibetan stacks and Thai tone marks.
    #[cfg(feature = "ssr")]
    #[test]
    fn stacked_combining_marks_are_capped() {
        // No precomposed q with an acute exists, so NFC leaves every mark in place.
        let tower = format!("q{}", "\u{301}".repeat(31));
        assert_eq!(
            DisplayName::parse_new(&tower),
            Err(ChatError::DisplayNameInvalid)
        );
        assert_eq!(
            ChannelName::parse_new(&tower),
            Err(ChatError::ChannelNameInvalid)
        );
        let four = format!("q{}", "\u{301}".repeat(MAX_COMBINING_RUN + 1));
        assert_eq!(
            DisplayName::parse_new(&four),
            Err(ChatError::DisplayNameInvalid)
        );
        let three = format!("q{}", "\u{301}".repeat(MAX_COMBINING_RUN));
        assert!(DisplayName::parse_new(&three).is_ok());
        for script in [
            "\u{F56}\u{F66}\u{F92}\u{FB2}\u{F74}\u{F56}\u{F66}",
            "กี่",
            "בְּרֵאשִׁית",
        ] {
            assert!(DisplayName::parse_new(script).is_ok(), "{script:?}");
        }
    }

    /// Names that look alike share a look-alike key: Cyrillic `аdmin` and `admin`,
    /// full-width and mathematical-bold letters and plain ones, decomposed and composed
    /// `José`, capitals and small letters, `G0d` and `God`; names that look different do not.
    #[cfg(feature = "ssr")]
    #[test]
    fn look_alikes_share_a_key() {
        let look = |raw: &str| DisplayName::parse(raw).unwrap().look_alike();
        let pairs = [
            ("\u{430}dmin", "admin"),
            ("\u{FF41}\u{FF44}\u{FF4D}\u{FF49}\u{FF4E}", "admin"),
            ("\u{FF21}\u{FF24}\u{FF2D}\u{FF29}\u{FF2E}", "admin"),
            ("\u{1D41A}\u{1D41D}\u{1D426}\u{1D422}\u{1D427}", "admin"),
            ("Jose\u{301}", "Jos\u{e9}"),
            ("ADMIN", "admin"),
            ("G0d", "God"),
        ];
        for (a, b) in pairs {
            assert_eq!(look(a), look(b), "{a:?} vs {b:?}");
        }
        for (a, b) in [("admin", "admins"), ("Ada", "Bob"), ("José", "Jose")] {
            assert_ne!(look(a), look(b), "{a:?} vs {b:?}");
        }
        let channel = |raw: &str| ChannelName::parse(raw).unwrap().look_alike();
        assert_eq!(channel("\u{FF27}eneral"), channel("general"));
        assert_ne!(channel("general"), channel("random"));
    }

    /// Display names follow the same trimming and refusal rules.
    #[test]
    fn display_names_are_checked() {
        assert_eq!(DisplayName::parse(" Ada ").unwrap().as_str(), "Ada");
        assert_eq!(DisplayName::parse(""), Err(ChatError::DisplayNameEmpty));
        assert!(matches!(
            DisplayName::parse(&"n".repeat(MAX_DISPLAY_NAME_CHARS + 1)),
            Err(ChatError::DisplayNameTooLong { .. })
        ));
        assert_eq!(
            DisplayName::parse("a\nb"),
            Err(ChatError::DisplayNameInvalid)
        );
    }

    /// Values that arrive as JSON are validated exactly like typed input.
    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<ChannelName>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<ChannelName>("\"\"").is_err());
        assert!(serde_json::from_str::<DisplayName>("\"a\\u0000\"").is_err());
    }
}
