//! The Markdown subset's reader: each construct, what stays as typed, hostile bodies, and
//! bounded work on large ones.

use super::*;
use std::time::{Duration, Instant};

fn span(text: &str, style: Style) -> Span {
    Span {
        text: text.to_owned(),
        style,
    }
}

fn text(t: &str) -> Inline {
    Inline::Text(span(t, Style::default()))
}

fn styled(t: &str, style: Style) -> Inline {
    Inline::Text(span(t, style))
}

const PLAIN: Style = Style {
    strong: false,
    emphasis: false,
    strike: false,
    code: false,
};
const STRONG: Style = Style {
    strong: true,
    ..PLAIN
};
const EMPHASIS: Style = Style {
    emphasis: true,
    ..PLAIN
};
const STRIKE: Style = Style {
    strike: true,
    ..PLAIN
};
const CODE: Style = Style {
    code: true,
    ..PLAIN
};

/// The inlines of a body that is one paragraph.
fn line(body: &str) -> Vec<Inline> {
    match parse(body).as_slice() {
        [Block::Leaf(Leaf::Paragraph(inlines))] => inlines.clone(),
        other => panic!("{body:?} is not one paragraph: {other:?}"),
    }
}

fn paragraph(inlines: Vec<Inline>) -> Block {
    Block::Leaf(Leaf::Paragraph(inlines))
}

/// A body that is only text comes back as one unstyled span, exactly as typed.
fn assert_as_typed(body: &str) {
    assert_eq!(line(body), [text(body)], "{body:?} should stay as typed");
}

/// Bold, italic, strike and inline code each style their text; both spellings of bold and
/// italic work, and styles combine.
#[test]
fn inline_styles() {
    assert_eq!(
        line("a **b** c"),
        [text("a "), styled("b", STRONG), text(" c")]
    );
    assert_eq!(line("__b__"), [styled("b", STRONG)]);
    assert_eq!(
        line("*i* and _i_"),
        [styled("i", EMPHASIS), text(" and "), styled("i", EMPHASIS)]
    );
    assert_eq!(line("~~gone~~"), [styled("gone", STRIKE)]);
    assert_eq!(
        line("run `cargo test` now"),
        [text("run "), styled("cargo test", CODE), text(" now")]
    );
    let both = Style {
        strong: true,
        emphasis: true,
        ..Style::default()
    };
    assert_eq!(line("***both***"), [styled("both", both)]);
    assert_eq!(
        line("**bold *both* bold**"),
        [
            styled("bold ", STRONG),
            styled("both", both),
            styled(" bold", STRONG)
        ]
    );
    let bold_code = Style {
        strong: true,
        code: true,
        ..Style::default()
    };
    assert_eq!(line("**`x`**"), [styled("x", bold_code)]);
}

/// What only looks like formatting stays as typed: marks inside words made of `_`, marks
/// next to white space, unmatched or crossed marks, single `~`, escaped marks, and markup
/// inside code.
#[test]
fn near_misses_stay_as_typed() {
    for body in [
        "snake_case_name",
        "2 * 3 * 4",
        "a ** b",
        "**unclosed",
        "closed**",
        "~single~",
        "~~~triple~~~",
        "****four****",
        "`unclosed code",
        "# not a heading",
        "[label] (not a link)",
        "10:30:00",
        ":not_an_emoji:",
        "@ada_lovelace",
    ] {
        assert_as_typed(body);
    }
    assert_eq!(line(r"\*not\* \_this\_"), [text("*not* _this_")]);
    assert_eq!(line(r"back\slash"), [text(r"back\slash")]);
    assert_eq!(line("`**raw** <b>`"), [styled("**raw** <b>", CODE)]);
    assert_eq!(line("``a ` b``"), [styled("a ` b", CODE)]);
    assert_eq!(
        line("*a **b* c**"),
        [styled("a **b", EMPHASIS), text(" c**")]
    );
}

/// Fenced code keeps its text exactly (marks, HTML, indentation), drops a language word,
/// may open and close on one line or close after text, and one left open takes the rest of
/// the message.
#[test]
fn code_blocks() {
    let code = |s: &str| Block::Leaf(Leaf::Code(s.to_owned()));
    assert_eq!(
        parse("before\n```rust\nfn main() {\n    **x** <b>\n}\n```\nafter"),
        [
            paragraph(vec![text("before")]),
            code("fn main() {\n    **x** <b>\n}"),
            paragraph(vec![text("after")]),
        ]
    );
    assert_eq!(parse("```let x = 1;```"), [code("let x = 1;")]);
    assert_eq!(parse("```\na\nb```"), [code("a\nb")]);
    assert_eq!(
        parse("```not a language\nb\n```"),
        [code("not a language\nb")]
    );
    assert_eq!(
        parse("x\n```\nopen\n> no quote\n- no list"),
        [
            paragraph(vec![text("x")]),
            code("open\n> no quote\n- no list"),
        ]
    );
}

/// `>` lines make one quote holding blocks of its own; a `>` inside a quote is text.
#[test]
fn quotes() {
    assert_eq!(
        parse("> said **this**\n> and >that\nreply"),
        [
            Block::Quote(vec![Leaf::Paragraph(vec![
                text("said "),
                styled("this", STRONG),
                text("\nand >that"),
            ])]),
            paragraph(vec![text("reply")]),
        ]
    );
    assert_eq!(
        parse(">> deeper"),
        [Block::Quote(vec![Leaf::Paragraph(vec![text("> deeper")])])]
    );
    assert_eq!(
        parse("> ```\n> code\n> ```"),
        [Block::Quote(vec![Leaf::Code("code".into())])]
    );
}

/// Bullet and numbered lines make lists, one item a line; a numbered list keeps its first
/// number; a change of kind starts a new list.
#[test]
fn lists() {
    assert_eq!(
        parse("Plan:\n- one\n* **two**\n+ three\n3. a\n4) b"),
        [
            paragraph(vec![text("Plan:")]),
            Block::Leaf(Leaf::List {
                start: None,
                items: vec![
                    vec![text("one")],
                    vec![styled("two", STRONG)],
                    vec![text("three")]
                ],
            }),
            Block::Leaf(Leaf::List {
                start: Some(3),
                items: vec![vec![text("a")], vec![text("b")]],
            }),
        ]
    );
    assert_as_typed("-not a list");
    assert_as_typed("1.5 million");
}

/// Line breaks and blank lines inside a paragraph are kept; blank lines around blocks are
/// not, and a body of white space has no blocks.
#[test]
fn line_breaks_are_kept() {
    assert_eq!(
        parse("one\ntwo\r\n\n\nthree\n"),
        [paragraph(vec![text("one\ntwo\n\n\nthree")])]
    );
    assert_eq!(parse(" \n\t\n"), []);
}

/// Links with an http, https or mailto address (in any case) become links, their labels
/// styled; bare URLs do too, without the punctuation that ends a sentence.
#[test]
fn links() {
    let link = |href: &str, label: Vec<Span>| Inline::Link {
        href: href.to_owned(),
        label,
    };
    assert_eq!(
        line("see [the **docs**](https://x.org/a?b=1&c#d)!"),
        [
            text("see "),
            link(
                "https://x.org/a?b=1&c#d",
                vec![span("the ", Style::default()), span("docs", STRONG)]
            ),
            text("!"),
        ]
    );
    assert_eq!(
        line("[](HTTP://X.ORG)"),
        [link(
            "HTTP://X.ORG",
            vec![span("HTTP://X.ORG", Style::default())]
        )]
    );
    assert_eq!(
        line("**[b](mailto:a@b.org)**"),
        [link("mailto:a@b.org", vec![span("b", STRONG)])]
    );
    let bare = |url: &str| link(url, vec![span(url, Style::default())]);
    assert_eq!(
        line("go to https://x.org/a_b_c. Now"),
        [text("go to "), bare("https://x.org/a_b_c"), text(". Now"),]
    );
    assert_eq!(
        line("(http://x.org/wiki/A_(b)), ok"),
        [text("("), bare("http://x.org/wiki/A_(b)"), text("), ok"),]
    );
    assert_eq!(
        line("*https://x.org*"),
        [Inline::Link {
            href: "https://x.org".into(),
            label: vec![span("https://x.org", EMPHASIS)],
        }]
    );
    assert_eq!(
        line("[https://x.org](https://y.org)"),
        [link(
            "https://y.org",
            vec![span("https://x.org", Style::default())]
        )]
    );
    assert_as_typed("xhttps://x.org");
    assert_as_typed("https://");
    assert_as_typed("http://...");
}

/// Addresses of any other scheme, or none, never become links: the whole text stays as
/// typed, whatever the letter case or the characters hiding the scheme.
#[test]
fn unsafe_links_stay_text() {
    for body in [
        "[click me](javascript:window.pwn())",
        "[x](JavaScript:alert(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "[x](vbscript:msgbox)",
        "[x](//evil.example)",
        "[x](/relative)",
        "[x]( javascript:alert(1))",
        "[x](java\tscript:alert(1))",
        "[x](file:///etc/passwd)",
        "javascript:window.pwn()",
        "data:text/html;base64,PHNjcmlwdD4=",
    ] {
        let blocks = parse(body);
        assert_eq!(plain_text(&blocks), body);
        assert_eq!(links_of(&blocks), Vec::<String>::new(), "{body:?}");
    }
    // A quote cannot carry an attribute into a link: the address stops before it.
    assert_eq!(
        links_of(&parse("[x](https://x.org\" onclick=\"pwn())")),
        ["https://x.org"]
    );
    assert_eq!(
        links_of(&parse("[x](javascript:alert`1`)")),
        Vec::<String>::new()
    );
}

/// Every link's address, anywhere in `blocks`.
fn links_of(blocks: &[Block]) -> Vec<String> {
    let mut hrefs = Vec::new();
    let mut inlines = |inlines: &[Inline]| {
        for inline in inlines {
            if let Inline::Link { href, .. } = inline {
                hrefs.push(href.clone());
            }
        }
    };
    let mut leaf = |leaf: &Leaf| match leaf {
        Leaf::Paragraph(i) => inlines(i),
        Leaf::Code(_) => {}
        Leaf::List { items, .. } => items.iter().for_each(|i| inlines(i)),
    };
    for block in blocks {
        match block {
            Block::Leaf(l) => leaf(l),
            Block::Quote(leaves) => leaves.iter().for_each(&mut leaf),
        }
    }
    hrefs
}

/// Known shortcodes become their emoji, anywhere but in code; unknown ones stay.
#[test]
fn emoji_shortcodes() {
    assert_eq!(
        line("ship it :tada::+1: :nope:"),
        [text("ship it 🎉👍 :nope:")]
    );
    assert_eq!(
        line("**:fire:** `:fire:`"),
        [styled("🔥", STRONG), text(" "), styled(":fire:", CODE)]
    );
}

/// The injection corpus of the reliability work (end2end/tests/injection.spec.ts, and more
/// markup), for every test that must show it inert. Each body is plain text to the reader:
/// HTML, `javascript:` and direction overrides included.
pub(crate) fn injection_corpus() -> Vec<String> {
    [
        "<script>window.pwn()</script>",
        "<img src=x onerror=\"window.pwn()\">",
        "[click me](javascript:window.pwn())",
        "javascript:window.pwn()",
        "abc\u{202E}gnp.exe",
        "<svg onload=pwn()>.html",
        "<a href=\"javascript:pwn()\">x</a>",
        "<iframe srcdoc=\"<script>pwn()</script>\"></iframe>",
        "<b>M</b> & <i>co</i>",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(["W".repeat(3000)])
    .collect()
}

/// The injection corpus reads as its own text: HTML is text, and nothing in it becomes a
/// link or a style.
#[test]
fn the_injection_corpus_stays_as_typed() {
    for body in injection_corpus() {
        assert_as_typed(&body);
    }
}

/// Hostile shapes of 40,000 characters (ten times the default limit: stored bodies are read
/// with no limit) each read in well under a second even in a debug build: a reader with
/// quadratic work would take minutes on some of them. Each also reads back as a bounded
/// number of pieces.
#[test]
fn hostile_shapes_take_linear_time() {
    let n = 40_000;
    let shapes: Vec<(&str, String)> = vec![
        ("stars", "*".repeat(n)),
        ("emphasis bomb", "*a **b ***c ~~d _e __f ".repeat(n / 24)),
        ("closers", "a* b** c~~ d_ ".repeat(n / 14)),
        (
            "openers then closers",
            format!("{}{}", "*a ".repeat(n / 6), "b* ".repeat(n / 6)),
        ),
        ("ticks", "` `` ``` ```` ".repeat(n / 14)),
        ("open brackets", "[".repeat(n)),
        ("link starts", "[a](b".repeat(n / 5)),
        ("links", "[a](https://x.org/".repeat(n / 18)),
        (
            "bare url parens",
            format!("https://x.org/{}", ")".repeat(n)),
        ),
        ("colons", ":a".repeat(n / 2)),
        (
            "near shortcodes",
            ":aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".repeat(n / 34),
        ),
        ("fences", "```\n".repeat(n / 4)),
        ("quotes", "> - **a\n".repeat(n / 8)),
        ("list", "- *a\n".repeat(n / 5)),
        ("escapes", "\\*".repeat(n / 2)),
        ("code block", format!("```\n{}\n```", "x".repeat(n))),
    ];
    for (name, body) in shapes {
        let started = Instant::now();
        let blocks = parse(&body);
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "{name}: {took:?} for {} bytes",
            body.len()
        );
        // Every character is still there in some form (nothing is dropped silently).
        assert!(!plain_text(&blocks).is_empty(), "{name}");
    }
}

/// Marks nest no deeper than the limit of open marks, however many are opened.
#[test]
fn open_marks_are_capped() {
    let body = format!("{}x{}", "*a ".repeat(100), " b*".repeat(100));
    let inlines = line(&body);
    assert_eq!(plain_text(&parse(&body)).len(), body.len() - 2 * MAX_OPEN);
    assert!(inlines.len() < 3 * MAX_OPEN + 3);
}

/// Plain text drops the marks but keeps the words, link labels and emoji, a line per block.
#[test]
fn plain_text_reads_as_seen() {
    let blocks = parse("**Hi** [docs](https://x.org) :tada:\n> quoted\n- a\n- b\n```\ncode\n```");
    assert_eq!(plain_text(&blocks), "Hi docs 🎉\nquoted\na\nb\ncode");
}
