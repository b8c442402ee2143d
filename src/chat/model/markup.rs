//! Flack's Markdown subset: a message body read as blocks of styled text, for the views of
//! both the server and the browser to turn into elements. The result is a typed tree, never
//! HTML: every piece of text stays text, and a link carries only an address whose scheme is
//! `http`, `https` or `mailto`. Bodies stay plain text everywhere else (wire, store, search).
//!
//! The subset (docs/PROTOCOL.md, "Formatting"): `**bold**` / `__bold__`, `*italic*` /
//! `_italic_`, `~~strike~~`, `` `code` ``, fenced code blocks (```` ``` ````; one left open
//! runs to the end of the message), `>` quotes (one level), `-` / `*` / `+` and `1.` lists
//! (one line an item), `[label](url)` links and bare URLs, `\` escapes and `:shortcode:`
//! emoji. Anything else shows as typed.
//!
//! Bounded work: lines are read once (a quote's twice); inline text is read left to right, each
//! look-ahead stops at a character that would start its own scan (`[`, a line break, white
//! space), a code span's search for its closing backticks is made at most once per length
//! that fails, and the delimiter stack keeps a count per kind, so a closer never searches in
//! vain. The time is linear in the body's length; `flack-bench markup` measures it.

pub mod emoji;

/// How a run of text is styled: any mix of the four.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    pub strong: bool,
    pub emphasis: bool,
    pub strike: bool,
    pub code: bool,
}

/// Text in one style.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub text: String,
    pub style: Style,
}

/// A piece of a line: styled text, or a link whose label is styled text (links never nest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inline {
    Text(Span),
    /// `href` starts with `http://`, `https://` or `mailto:` (in any case), and holds no
    /// white space, quotes or angle brackets.
    Link {
        href: String,
        label: Vec<Span>,
    },
}

/// A block that holds no other block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leaf {
    /// Lines of text, line breaks (and blank lines between them) kept.
    Paragraph(Vec<Inline>),
    /// A fenced code block's text, exactly as typed.
    Code(String),
    /// One item a line; `start` is the first number of an ordered list, `None` for bullets.
    List {
        start: Option<u32>,
        items: Vec<Vec<Inline>>,
    },
}

/// A block of a message: a leaf, or a quote of leaves (quotes do not nest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    Leaf(Leaf),
    Quote(Vec<Leaf>),
}

/// Reads a message body as blocks.
pub fn parse(body: &str) -> Vec<Block> {
    let lines: Vec<&str> = body
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect();
    let mut blocks = Vec::new();
    read_blocks(&lines, true, &mut blocks);
    blocks
}

/// The text a reader sees, without the marks that style it: for places that show a message
/// as a line of plain text (search results, notifications).
pub fn plain_text(blocks: &[Block]) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut leaf = |leaf: &Leaf| match leaf {
        Leaf::Paragraph(inlines) => lines.push(inline_text(inlines)),
        Leaf::Code(code) => lines.push(code.clone()),
        Leaf::List { items, .. } => lines.extend(items.iter().map(|item| inline_text(item))),
    };
    for block in blocks {
        match block {
            Block::Leaf(l) => leaf(l),
            Block::Quote(leaves) => leaves.iter().for_each(&mut leaf),
        }
    }
    lines.join("\n")
}

fn inline_text(inlines: &[Inline]) -> String {
    let mut text = String::new();
    for inline in inlines {
        match inline {
            Inline::Text(span) => text.push_str(&span.text),
            Inline::Link { label, .. } => label.iter().for_each(|s| text.push_str(&s.text)),
        }
    }
    text
}

/// Reads `lines` into `out`; `quotes` is false inside a quote, where `>` is text.
fn read_blocks(lines: &[&str], quotes: bool, out: &mut Vec<Block>) {
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some((code, next)) = fenced_code(lines, i) {
            out.push(Block::Leaf(Leaf::Code(code)));
            i = next;
        } else if let Some(first) = quote_line(line).filter(|_| quotes) {
            let mut inner = vec![first];
            i += 1;
            while let Some(more) = lines.get(i).and_then(|l| quote_line(l)) {
                inner.push(more);
                i += 1;
            }
            let mut quoted = Vec::new();
            read_blocks(&inner, false, &mut quoted);
            let leaves = quoted.into_iter().filter_map(|block| match block {
                Block::Leaf(leaf) => Some(leaf),
                Block::Quote(_) => None,
            });
            out.push(Block::Quote(leaves.collect()));
        } else if let Some((start, first)) = list_item(line) {
            let mut items = vec![inlines(first, true)];
            i += 1;
            while let Some((_, more)) = lines
                .get(i)
                .and_then(|l| list_item(l))
                .filter(|(s, _)| s.is_some() == start.is_some())
            {
                items.push(inlines(more, true));
                i += 1;
            }
            out.push(Block::Leaf(Leaf::List { start, items }));
        } else if line.trim().is_empty() {
            i += 1;
        } else {
            let from = i;
            i += 1;
            while i < lines.len() && !starts_block(lines, i, quotes) {
                i += 1;
            }
            let mut to = i;
            while lines[to - 1].trim().is_empty() {
                to -= 1;
            }
            let text = lines[from..to].join("\n");
            out.push(Block::Leaf(Leaf::Paragraph(inlines(&text, true))));
        }
    }
}

/// True when line `i` starts a block other than a paragraph.
fn starts_block(lines: &[&str], i: usize, quotes: bool) -> bool {
    let line = lines[i];
    fence(line).is_some() || (quotes && quote_line(line).is_some()) || list_item(line).is_some()
}

/// The text after a line's `>` (and one space after it).
fn quote_line(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('>')?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// A list item: its number (`None` for a bullet) and its text.
fn list_item(line: &str) -> Option<(Option<u32>, &str)> {
    let t = line.trim_start();
    for bullet in ["- ", "* ", "+ "] {
        if let Some(text) = t.strip_prefix(bullet) {
            return Some((None, text));
        }
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &t[digits..];
    if (1..=9).contains(&digits) && (rest.starts_with(". ") || rest.starts_with(") ")) {
        return Some((t[..digits].parse().ok(), &rest[2..]));
    }
    None
}

/// The text after an opening fence of three or more backticks.
fn fence(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let ticks = t.bytes().take_while(|b| *b == b'`').count();
    (ticks >= 3).then(|| &t[ticks..])
}

/// `line` without three or more backticks that end it, if it ends with them.
fn before_closing_fence(line: &str) -> Option<&str> {
    let t = line.trim_end();
    let kept = t.trim_end_matches('`');
    (t.len() - kept.len() >= 3).then_some(kept)
}

/// The code block opening at line `i`, and the line after it. A fence may close on its own
/// line (```` ```x``` ````), and text may sit before a closing fence; a word right after the
/// opening fence names a language and is dropped; a block never closed takes every line left.
fn fenced_code(lines: &[&str], i: usize) -> Option<(String, usize)> {
    let rest = fence(lines[i])?;
    if let Some(code) = before_closing_fence(rest).filter(|c| !c.trim().is_empty()) {
        return Some((code.to_owned(), i + 1));
    }
    let language = rest
        .trim()
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '#' | '-' | '_' | '.'));
    let mut code: Vec<&str> = Vec::new();
    if !language {
        code.push(rest);
    }
    let mut next = i + 1;
    while next < lines.len() {
        let line = lines[next];
        next += 1;
        if let Some(kept) = before_closing_fence(line) {
            if !kept.trim().is_empty() {
                code.push(kept);
            }
            break;
        }
        code.push(line);
    }
    Some((code.join("\n"), next))
}

/// What inline reading produces before emphasis is matched.
enum Token {
    Text(String),
    Code(String),
    Link {
        href: String,
        label: Vec<Span>,
    },
    /// A run of `*`, `_` or `~` that may open or close `kind`.
    Mark {
        kind: Kind,
        open: bool,
        close: bool,
    },
}

/// The five pairs of marks; a closer matches only an opener of the same kind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    StarStrong,
    StarEmphasis,
    LineStrong,
    LineEmphasis,
    Strike,
}

impl Kind {
    fn text(self) -> &'static str {
        match self {
            Kind::StarStrong => "**",
            Kind::StarEmphasis => "*",
            Kind::LineStrong => "__",
            Kind::LineEmphasis => "_",
            Kind::Strike => "~~",
        }
    }
}

/// Most marks open at once; more show as typed.
const MAX_OPEN: usize = 32;
/// Longest backtick run that opens a code span; longer ones show as typed.
const MAX_TICKS: usize = 16;

/// Reads one paragraph's (or item's, or label's) text; `links`: false inside a link's label.
fn inlines(text: &str, links: bool) -> Vec<Inline> {
    let tokens = tokenize(text, links);
    let roles = match_marks(&tokens);
    let mut out: Vec<Inline> = Vec::new();
    let mut open = [0u32; 5];
    for (token, role) in tokens.into_iter().zip(roles) {
        let style = Style {
            strong: open[Kind::StarStrong as usize] + open[Kind::LineStrong as usize] > 0,
            emphasis: open[Kind::StarEmphasis as usize] + open[Kind::LineEmphasis as usize] > 0,
            strike: open[Kind::Strike as usize] > 0,
            code: false,
        };
        match token {
            Token::Text(text) => push_text(&mut out, &text, style),
            Token::Code(text) => push_text(
                &mut out,
                &text,
                Style {
                    code: true,
                    ..style
                },
            ),
            Token::Link { href, mut label } => {
                for span in &mut label {
                    span.style.strong |= style.strong;
                    span.style.emphasis |= style.emphasis;
                    span.style.strike |= style.strike;
                }
                out.push(Inline::Link { href, label });
            }
            Token::Mark { kind, .. } => match role {
                Role::Opens => open[kind as usize] += 1,
                Role::Closes => open[kind as usize] -= 1,
                Role::Text => push_text(&mut out, kind.text(), style),
            },
        }
    }
    out
}

/// Adds text, joined to the text before it when that has the same style.
fn push_text(out: &mut Vec<Inline>, text: &str, style: Style) {
    if text.is_empty() {
        return;
    }
    if let Some(Inline::Text(last)) = out.last_mut() {
        if last.style == style {
            last.text.push_str(text);
            return;
        }
    }
    let text = text.to_owned();
    out.push(Inline::Text(Span { text, style }));
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Text,
    Opens,
    Closes,
}

/// Pairs the marks: a closer takes the nearest open mark of its kind, and the marks opened
/// after that one stay text (so pairs nest and never cross). The counts per kind mean a
/// closer looks down the stack only when it will find its opener, and every mark is pushed
/// and popped at most once.
fn match_marks(tokens: &[Token]) -> Vec<Role> {
    let mut roles = vec![Role::Text; tokens.len()];
    let mut stack: Vec<(usize, Kind)> = Vec::new();
    let mut counts = [0u32; 5];
    for (i, token) in tokens.iter().enumerate() {
        let Token::Mark { kind, open, close } = *token else {
            continue;
        };
        if close && counts[kind as usize] > 0 {
            while let Some((at, opened)) = stack.pop() {
                counts[opened as usize] -= 1;
                if opened == kind {
                    roles[at] = Role::Opens;
                    roles[i] = Role::Closes;
                    break;
                }
            }
        } else if open && stack.len() < MAX_OPEN {
            stack.push((i, kind));
            counts[kind as usize] += 1;
        }
    }
    roles
}

/// Letters and digits are what a mark of `_`, a bare URL or a shortcode must not touch.
fn is_punctuation(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace()
}

/// Cuts text into tokens: escapes, code spans, links, bare URLs and shortcodes resolved, the
/// runs of `*`, `_` and `~` left as marks for [`match_marks`].
fn tokenize(text: &str, links: bool) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut plain = String::new();
    // A length `n` here found no closing run of `n` backticks after some earlier point.
    let mut no_closer = [false; MAX_TICKS + 1];
    let flush = |plain: &mut String, tokens: &mut Vec<Token>| {
        if !plain.is_empty() {
            tokens.push(Token::Text(std::mem::take(plain)));
        }
    };
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let prev = text[..i].chars().next_back();
        match c {
            '\\' => {
                if let Some(next) = text[i + 1..]
                    .chars()
                    .next()
                    .filter(char::is_ascii_punctuation)
                {
                    plain.push(next);
                    i += 2;
                    continue;
                }
            }
            '`' => {
                let n = run_length(text, i, b'`');
                if n <= MAX_TICKS && !no_closer[n] {
                    if let Some((code, end)) = code_span(text, i + n, n) {
                        flush(&mut plain, &mut tokens);
                        tokens.push(Token::Code(code));
                        i = end;
                        continue;
                    }
                    no_closer[n] = true;
                }
                plain.push_str(&text[i..i + n]);
                i += n;
                continue;
            }
            '*' | '_' | '~' => {
                let n = run_length(text, i, c as u8);
                let (kinds, open, close) = marks(c, n, prev, text[i + n..].chars().next());
                if kinds.is_empty() {
                    plain.push_str(&text[i..i + n]);
                } else {
                    flush(&mut plain, &mut tokens);
                    let marks = kinds.iter().map(|&kind| Token::Mark { kind, open, close });
                    tokens.extend(marks);
                }
                i += n;
                continue;
            }
            '[' if links => {
                if let Some((label, href, end)) = link(text, i) {
                    flush(&mut plain, &mut tokens);
                    let label = if label.is_empty() { href } else { label };
                    let label = inlines(label, false)
                        .into_iter()
                        .filter_map(|inline| match inline {
                            Inline::Text(span) => Some(span),
                            Inline::Link { .. } => None,
                        })
                        .collect();
                    tokens.push(Token::Link {
                        href: href.to_owned(),
                        label,
                    });
                    i = end;
                    continue;
                }
            }
            'h' | 'H' | 'm' | 'M' if links && !prev.is_some_and(char::is_alphanumeric) => {
                if let Some(end) = bare_url(text, i) {
                    flush(&mut plain, &mut tokens);
                    let url = &text[i..end];
                    tokens.push(Token::Link {
                        href: url.to_owned(),
                        label: vec![Span {
                            text: url.to_owned(),
                            style: Style::default(),
                        }],
                    });
                    i = end;
                    continue;
                }
            }
            ':' => {
                if let Some((emoji, end)) = shortcode(text, i) {
                    plain.push_str(emoji);
                    i = end;
                    continue;
                }
            }
            _ => {}
        }
        plain.push(c);
        i += c.len_utf8();
    }
    flush(&mut plain, &mut tokens);
    tokens
}

/// How many `byte`s start at `i`.
fn run_length(text: &str, i: usize, byte: u8) -> usize {
    text.as_bytes()[i..]
        .iter()
        .take_while(|b| **b == byte)
        .count()
}

/// The marks a run of `n` `c`s stands for, between `prev` and `next` (`None`: the text's
/// edge), and whether they may open and close. A run may open when it is followed by
/// something other than white space, and not by punctuation unless white space or
/// punctuation is before it; closing is the mirror image. Runs of `_` inside a word do
/// neither (`snake_case` stays as typed). Runs that are not one, two or three long (two for
/// `~`) stand for no mark and stay text.
fn marks(
    c: char,
    n: usize,
    prev: Option<char>,
    next: Option<char>,
) -> (&'static [Kind], bool, bool) {
    let space = |c: Option<char>| c.is_none_or(char::is_whitespace);
    let punct = |c: Option<char>| c.is_some_and(is_punctuation);
    let left = !space(next) && (!punct(next) || space(prev) || punct(prev));
    let right = !space(prev) && (!punct(prev) || space(next) || punct(next));
    let (open, close) = if c == '_' {
        (
            left && (!right || punct(prev)),
            right && (!left || punct(next)),
        )
    } else {
        (left, right)
    };
    // `***a***`: strong outside emphasis, so a run of three that only closes closes the
    // emphasis first.
    let closing = close && !open;
    let kinds: &'static [Kind] = match (c, n) {
        _ if !open && !close => &[],
        ('~', 2) => &[Kind::Strike],
        ('*', 1) => &[Kind::StarEmphasis],
        ('*', 2) => &[Kind::StarStrong],
        ('*', 3) if closing => &[Kind::StarEmphasis, Kind::StarStrong],
        ('*', 3) => &[Kind::StarStrong, Kind::StarEmphasis],
        ('_', 1) => &[Kind::LineEmphasis],
        ('_', 2) => &[Kind::LineStrong],
        ('_', 3) if closing => &[Kind::LineEmphasis, Kind::LineStrong],
        ('_', 3) => &[Kind::LineStrong, Kind::LineEmphasis],
        _ => &[],
    };
    (kinds, open, close)
}

/// The code span whose text starts at `from`, after an opening run of `n` backticks: the
/// text up to the next run of exactly `n`, and where that run ends. One space is taken off
/// each end when both have one (so `` `` ` `` `` shows a backtick).
fn code_span(text: &str, from: usize, n: usize) -> Option<(String, usize)> {
    let mut at = from;
    while let Some(found) = text[at..].find('`') {
        let start = at + found;
        let m = run_length(text, start, b'`');
        if m == n {
            let code = &text[from..start];
            let code = match (code.strip_prefix(' '), code.trim().is_empty()) {
                (Some(inner), false) => inner.strip_suffix(' ').unwrap_or(code),
                _ => code,
            };
            return Some((code.to_owned(), start + m));
        }
        at = start + m;
    }
    None
}

/// The link `[label](href)` starting at `i`: its label, its address and where it ends. The
/// label holds no brackets or line break and the address no white space, brackets,
/// parentheses, quotes or angle brackets, so no character is looked at by two links' scans.
fn link(text: &str, i: usize) -> Option<(&str, &str, usize)> {
    let rest = &text[i + 1..];
    let close = rest.find(['[', ']', '\n'])?;
    if !rest[close..].starts_with(']') {
        return None;
    }
    let label = &rest[..close];
    let after = rest[close + 1..].strip_prefix('(')?;
    let stop = after.find(|c: char| {
        c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '<' | '>' | '"' | '`')
    })?;
    let href = &after[..stop];
    (after[stop..].starts_with(')') && safe_href(href)).then_some((
        label,
        href,
        i + 1 + close + 2 + stop + 1,
    ))
}

/// The schemes a link may have, lower case.
const SCHEMES: [&str; 3] = ["https://", "http://", "mailto:"];

/// The length of the scheme `text` starts with (in any case), if it is one of [`SCHEMES`].
fn scheme_length(text: &str) -> Option<usize> {
    SCHEMES
        .iter()
        .find(|s| {
            text.get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s))
        })
        .map(|s| s.len())
}

/// True for an address a link may point to: a scheme of [`SCHEMES`] and something after it.
fn safe_href(href: &str) -> bool {
    scheme_length(href).is_some_and(|n| href.len() > n)
}

/// Where the bare URL starting at `i` ends: at white space, a quote or an angle bracket,
/// less the punctuation that ends a sentence and a `)` with no `(` in the URL to match it.
fn bare_url(text: &str, i: usize) -> Option<usize> {
    let rest = &text[i..];
    let scheme = scheme_length(rest)?;
    let length = rest
        .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '`'))
        .unwrap_or(rest.len());
    let mut url = &rest[..length];
    let mut unmatched = url.matches(')').count() as isize - url.matches('(').count() as isize;
    loop {
        match url.chars().next_back() {
            Some('.' | ',' | ':' | ';' | '!' | '?' | '\'' | '*' | '_' | '~' | ']') => {}
            Some(')') if unmatched > 0 => unmatched -= 1,
            _ => break,
        }
        url = &url[..url.len() - 1];
    }
    (url.len() > scheme).then_some(i + url.len())
}

/// The emoji of the shortcode starting at `i` (`:tada:`), and where it ends.
fn shortcode(text: &str, i: usize) -> Option<(&'static str, usize)> {
    let rest = &text.as_bytes()[i + 1..];
    let n = rest
        .iter()
        .take(emoji::MAX_NAME + 1)
        .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_+-".contains(b))
        .count();
    if n == 0 || rest.get(n) != Some(&b':') {
        return None;
    }
    let emoji = emoji::lookup(&text[i + 1..i + 1 + n])?;
    Some((emoji, i + n + 2))
}

#[cfg(test)]
pub(crate) mod tests;
