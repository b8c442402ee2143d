//! Message search: the words a search asks for (read once from what the user typed, so no
//! character of it ever reaches a store's query language as syntax), and what it finds.

use super::error::ChatError;
use super::message::{Message, MessageId};
use serde::{Deserialize, Serialize};

/// Most results one search call returns.
pub const SEARCH_PAGE: usize = 50;
/// Longest search text read, in characters (the rest is ignored).
pub const MAX_SEARCH_CHARS: usize = 200;
/// Most words a search asks for (further ones are ignored).
pub const MAX_SEARCH_WORDS: usize = 8;

/// The words of a text as search compares them: the runs of letters and digits, in lower
/// case. Everything else (spaces, punctuation, quotes, operators such as `*` or `AND (`)
/// only separates words, in a message as in a search.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// What a search asks for: at least one word, at most [`MAX_SEARCH_WORDS`], each made only
/// of letters and digits. A message matches when it contains every one of them as a word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchTerms(Vec<String>);

impl SearchTerms {
    /// The words of what the user typed (its first [`MAX_SEARCH_CHARS`] characters), each
    /// once; refused when there is none.
    pub fn parse(raw: &str) -> Result<SearchTerms, ChatError> {
        let head: String = raw.chars().take(MAX_SEARCH_CHARS).collect();
        let mut terms: Vec<String> = Vec::new();
        for word in words(&head) {
            if terms.len() == MAX_SEARCH_WORDS {
                break;
            }
            if !terms.contains(&word) {
                terms.push(word);
            }
        }
        if terms.is_empty() {
            return Err(ChatError::SearchEmpty);
        }
        Ok(SearchTerms(terms))
    }

    /// The words, lower case, letters and digits only.
    pub fn words(&self) -> &[String] {
        &self.0
    }

    /// Whether `text` contains every word (the in-memory mode's match).
    pub fn matches(&self, text: &str) -> bool {
        let found: std::collections::HashSet<String> = words(text).collect();
        self.0.iter().all(|w| found.contains(w))
    }
}

/// One message a search found, with what a result shows besides the message itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The message, with its author's current name.
    pub message: Message,
    /// What to call its room: the channel's name, or the other participant's name.
    pub title: String,
}

/// A page of search results, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchPage {
    /// At most [`SEARCH_PAGE`] messages, newest first.
    pub hits: Vec<SearchHit>,
    /// Where the next page starts (ask again with it as `before`); `None` when these are
    /// all.
    pub more: Option<MessageId>,
    /// False when the server keeps no archive (the in-memory mode): then only the messages
    /// it holds in memory (each room's most recent) were searched.
    pub whole_history: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only letters and digits make words: quotes, operators and brackets of any query
    /// language are separators, and text with no word at all is refused.
    #[test]
    fn search_text_is_read_as_plain_words() {
        let words_of = |raw: &str| SearchTerms::parse(raw).map(|t| t.words().to_vec());
        assert_eq!(
            words_of("Deploy AND (rollback*) \"x\""),
            Ok(vec![
                "deploy".into(),
                "and".into(),
                "rollback".into(),
                "x".into()
            ])
        );
        assert_eq!(words_of("Café café"), Ok(vec!["café".into()]));
        for empty in ["", "  ", "\"", "*", "( - ) ^ :", "'\""] {
            assert_eq!(words_of(empty), Err(ChatError::SearchEmpty), "{empty:?}");
        }
        let many = "a b c d e f g h i j k";
        assert_eq!(words_of(many).unwrap().len(), MAX_SEARCH_WORDS);
        let long = "x".repeat(MAX_SEARCH_CHARS + 50);
        assert_eq!(words_of(&long).unwrap()[0].len(), MAX_SEARCH_CHARS);
    }

    /// A message matches when it holds every word, whatever the case and punctuation.
    #[test]
    fn every_word_must_be_in_the_message() {
        let terms = SearchTerms::parse("release NOTES").unwrap();
        assert!(terms.matches("Notes for the release, finally."));
        assert!(!terms.matches("release notebook"));
        assert!(!terms.matches("only the release"));
    }
}
