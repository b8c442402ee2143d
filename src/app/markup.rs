//! A message body on screen: the blocks and styled spans of [`crate::chat::model::markup`]
//! written as elements, the same on the server's first paint and in the browser. One walk
//! over the tree writes to either of two sinks: HTML text on the server (every piece of the
//! body escaped) and DOM nodes in the browser (every piece of the body a text node, never
//! parsed as HTML). Links open in a new tab without handing it this page, and mentions of
//! the reader are marked.
//!
//! The body is not a Leptos view tree: each combination of nested elements would bring its
//! own render, hydrate and rebuild code into the WebAssembly (about 15 KB brotli for this
//! subset), and hydrating a page of formatted messages would walk every node. The view is one
//! `<div class="body">` that the server fills and the browser hydrates without touching.

use crate::chat::model::markup::{parse, Block, Inline, Leaf, Span};
use crate::chat::model::split_mentions;
use leptos::prelude::*;

/// Where the walk writes: elements opened and closed around text.
trait Sink {
    /// Opens `tag` with `attributes` (names and values the walk chose; values may come from
    /// the body and are escaped by the sink).
    fn open(&mut self, tag: &'static str, attributes: &[(&'static str, &str)]);
    /// Text inside the innermost open element, as text.
    fn text(&mut self, text: &str);
    /// Closes the innermost open element, `tag`.
    fn close(&mut self, tag: &'static str);
}

/// Writes `blocks` to `sink`, marking mentions of `me` (`""`: nobody).
fn write_blocks(blocks: &[Block], me: &str, sink: &mut impl Sink) {
    for block in blocks {
        match block {
            Block::Leaf(leaf) => write_leaf(leaf, me, sink),
            Block::Quote(leaves) => {
                sink.open("blockquote", &[]);
                for leaf in leaves {
                    write_leaf(leaf, me, sink);
                }
                sink.close("blockquote");
            }
        }
    }
}

fn write_leaf(leaf: &Leaf, me: &str, sink: &mut impl Sink) {
    match leaf {
        Leaf::Paragraph(inlines) => {
            sink.open("p", &[]);
            write_inlines(inlines, me, sink);
            sink.close("p");
        }
        // Focusable, so a keyboard can scroll a code block's long lines too.
        Leaf::Code(code) => {
            sink.open("pre", &[("tabindex", "0")]);
            sink.open("code", &[]);
            sink.text(code);
            sink.close("code");
            sink.close("pre");
        }
        Leaf::List { start, items } => {
            let start = start.map(|n| n.to_string());
            let tag = match &start {
                Some(n) => {
                    sink.open("ol", &[("start", n)]);
                    "ol"
                }
                None => {
                    sink.open("ul", &[]);
                    "ul"
                }
            };
            for item in items {
                sink.open("li", &[]);
                write_inlines(item, me, sink);
                sink.close("li");
            }
            sink.close(tag);
        }
    }
}

fn write_inlines(inlines: &[Inline], me: &str, sink: &mut impl Sink) {
    for inline in inlines {
        match inline {
            Inline::Text(span) => write_span(span, me, sink),
            Inline::Link { href, label } => {
                sink.open(
                    "a",
                    &[
                        ("href", href),
                        ("target", "_blank"),
                        ("rel", "noopener noreferrer nofollow"),
                    ],
                );
                for span in label {
                    write_span(span, me, sink);
                }
                sink.close("a");
            }
        }
    }
}

/// One span: its text (mentions in `<mark>`) inside `<strong>`, `<em>`, `<s>` and `<code>`
/// (outermost first) as its style says.
fn write_span(span: &Span, me: &str, sink: &mut impl Sink) {
    let style = span.style;
    let tags = [
        (style.strong, "strong"),
        (style.emphasis, "em"),
        (style.strike, "s"),
        (style.code, "code"),
    ];
    for (_, tag) in tags.iter().filter(|(on, _)| *on) {
        sink.open(tag, &[]);
    }
    for (piece, mention) in split_mentions(&span.text, me) {
        if mention {
            sink.open("mark", &[("class", "mention")]);
            sink.text(piece);
            sink.close("mark");
        } else {
            sink.text(piece);
        }
    }
    for (_, tag) in tags.iter().rev().filter(|(on, _)| *on) {
        sink.close(tag);
    }
}

/// HTML text: what the server sends for a body.
#[cfg(feature = "ssr")]
#[derive(Default)]
struct Html(String);

/// The HTML the server writes for `blocks`, marking mentions of `me`.
#[cfg(feature = "ssr")]
pub fn blocks_html(blocks: &[Block], me: &str) -> String {
    let mut page = Html::default();
    write_blocks(blocks, me, &mut page);
    page.0
}

#[cfg(feature = "ssr")]
impl Html {
    /// `text` with every character that could start markup or end an attribute escaped.
    fn escaped(&mut self, text: &str) {
        for c in text.chars() {
            match c {
                '&' => self.0.push_str("&amp;"),
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&#39;"),
                c => self.0.push(c),
            }
        }
    }
}

#[cfg(feature = "ssr")]
impl Sink for Html {
    fn open(&mut self, tag: &'static str, attributes: &[(&'static str, &str)]) {
        self.0.push('<');
        self.0.push_str(tag);
        for (name, value) in attributes {
            self.0.push(' ');
            self.0.push_str(name);
            self.0.push_str("=\"");
            self.escaped(value);
            self.0.push('"');
        }
        self.0.push('>');
    }

    fn text(&mut self, text: &str) {
        self.escaped(text);
    }

    fn close(&mut self, tag: &'static str) {
        self.0.push_str("</");
        self.0.push_str(tag);
        self.0.push('>');
    }
}

/// DOM nodes under an element: what the browser builds for a body. The stack holds the open
/// elements, the body's own `<div>` at the bottom. A node the document refuses to create is
/// left out (it cannot happen for these fixed tag and attribute names).
#[cfg(feature = "hydrate")]
struct Dom {
    document: web_sys::Document,
    open: Vec<web_sys::Element>,
}

#[cfg(feature = "hydrate")]
impl Sink for Dom {
    fn open(&mut self, tag: &'static str, attributes: &[(&'static str, &str)]) {
        let (Ok(element), Some(parent)) = (self.document.create_element(tag), self.open.last())
        else {
            return;
        };
        for (name, value) in attributes {
            let _ = element.set_attribute(name, value);
        }
        let _ = parent.append_child(&element);
        self.open.push(element);
    }

    fn text(&mut self, text: &str) {
        if let Some(parent) = self.open.last() {
            // `append` with a string adds a text node: the browser never reads it as HTML.
            let _ = parent.append_with_str_1(text);
        }
    }

    fn close(&mut self, _tag: &'static str) {
        if self.open.len() > 1 {
            self.open.pop();
        }
    }
}

/// A message's text, formatted, with each mention of `reader()` (the reader's current name,
/// `""` while unknown) in a `<mark>`. The server writes it as HTML (marking nothing: it does
/// not know who reads); the browser keeps those nodes when it hydrates (`from_server`),
/// builds them itself for a message drawn later, and draws them again only when a change of
/// the reader's name changes which mentions are marked. The body is parsed only to be
/// written: a hydrated message that mentions nobody is never parsed in the browser.
pub fn body_view(
    body: &str,
    from_server: bool,
    reader: impl Fn() -> String + Send + Sync + 'static,
) -> impl IntoView {
    let node = NodeRef::<leptos::html::Div>::new();
    #[cfg(feature = "ssr")]
    let html = blocks_html(&parse(body), &reader());
    #[cfg(not(feature = "ssr"))]
    let html = String::new();
    #[cfg(feature = "hydrate")]
    {
        use crate::chat::model::mentions_name;
        let body = body.to_owned();
        // The state is the name the nodes were drawn for (`None`: not drawn yet).
        Effect::new(move |drawn: Option<Option<String>>| {
            let me = reader();
            let element = node.get()?;
            let redraw = match drawn.flatten() {
                // From the server (drawn for nobody), or still to be drawn in the browser.
                None => !from_server || mentions_name(&body, &me),
                Some(before) => {
                    before != me && (mentions_name(&body, &before) || mentions_name(&body, &me))
                }
            };
            if redraw {
                element.set_text_content(None);
                let document = element.owner_document().unwrap_or_else(document);
                let mut dom = Dom {
                    document,
                    open: vec![element.into()],
                };
                write_blocks(&parse(&body), &me, &mut dom);
            }
            Some(me)
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (reader, from_server);
    view! { <div class="body" node_ref=node inner_html=html></div> }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;
    use crate::chat::model::markup::parse;
    use crate::chat::model::markup::tests::injection_corpus;

    /// The server's HTML for `body`.
    fn html(body: &str, me: &str) -> String {
        blocks_html(&parse(body), me)
    }

    /// The server's HTML has the elements of each construct, links carry the attributes
    /// that keep the opened page from reaching this one, and mentions are marked.
    #[test]
    fn constructs_become_elements() {
        let page = html(
            "**b** *i* ~~s~~ `c` @Ada [x](https://x.org/?a=1&b=2)\n> q\n- l\n3. n\n```\n<pre>\n```",
            "ada",
        );
        for part in [
            "<strong>b</strong>",
            "<em>i</em>",
            "<s>s</s>",
            "<code>c</code>",
            "<mark class=\"mention\">@Ada</mark>",
            "<a href=\"https://x.org/?a=1&amp;b=2\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">x</a>",
            "<blockquote><p>q</p></blockquote>",
            "<ul><li>l</li></ul>",
            "<ol start=\"3\"><li>n</li></ol>",
            "<pre tabindex=\"0\"><code>&lt;pre&gt;</code></pre>",
        ] {
            assert!(page.contains(part), "{part} missing from {page}");
        }
    }

    /// Every tag in `page` is one the renderer writes, with only the attributes it writes;
    /// a link's address is one of the allowed schemes.
    fn assert_only_our_tags(page: &str) {
        let plain = [
            "p",
            "strong",
            "em",
            "s",
            "code",
            "blockquote",
            "ul",
            "ol",
            "li",
            "pre",
        ];
        for tag in page
            .split('<')
            .skip(1)
            .map(|t| t.split('>').next().unwrap_or_default())
        {
            let name = tag.trim_start_matches('/');
            let ours = plain.contains(&name)
                || name == "mark class=\"mention\""
                || name == "pre tabindex=\"0\""
                || name
                    .strip_prefix("ol start=\"")
                    .is_some_and(|n| n.trim_end_matches('"').bytes().all(|b| b.is_ascii_digit()))
                || name == "a"
                || name.strip_prefix("a href=\"").is_some_and(|rest| {
                    let (href, after) = rest.split_once('"').unwrap_or_default();
                    let scheme = ["http://", "https://", "mailto:"]
                        .iter()
                        .any(|s| href.to_ascii_lowercase().starts_with(s));
                    scheme && after == " target=\"_blank\" rel=\"noopener noreferrer nofollow\""
                });
            assert!(ours, "unexpected tag <{tag}> in {page}");
        }
    }

    /// Markup in a body reaches the page as text: every tag and attribute is the
    /// renderer's own, and no `javascript:` (or other) address becomes a link.
    #[test]
    fn html_in_bodies_stays_text() {
        let markdown = [
            "**<b>x</b>** `<i>` [<svg onload=pwn()>](https://x.org)",
            "[x](JAVASCRIPT:pwn()) [y](data:text/html,<script>)",
            "[x](https://x.org\" onclick=\"pwn())",
            "> <iframe src=https://evil.example>",
            "```\n</code></pre><script>pwn()</script>\n```",
            "- <style>*{display:none}</style>\n1. &lt;b&gt;",
        ];
        for body in injection_corpus()
            .iter()
            .map(String::as_str)
            .chain(markdown)
        {
            assert_only_our_tags(&html(body, ""));
        }
        let page = html("<b>x</b> & [y](javascript:z)", "");
        assert!(
            page.contains("&lt;b&gt;x&lt;/b&gt; &amp; [y](javascript:z)"),
            "{page}"
        );
    }
}
