//! A message body on screen: the blocks and styled spans of [`crate::chat::model::markup`] as
//! elements, the same on the server's first paint and in the browser. Every piece of text is
//! a text node (never HTML), links open in a new tab without handing it this page, and
//! mentions of the reader are marked.
//!
//! The tree is drawn without type erasure (no `AnyView`, which would carry an asynchronous
//! hydration path into the WebAssembly): quotes hold only leaves, and a span's styles are a
//! fixed stack of optional elements.

use crate::chat::model::markup::{Block, Inline, Leaf, Span};
use crate::chat::model::split_mentions;
use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;

/// The elements of `blocks`, marking mentions of `me` (`""`: nobody).
pub fn markup_view(blocks: &[Block], me: &str) -> impl IntoView {
    blocks
        .iter()
        .map(|block| match block {
            Block::Leaf(leaf) => Either::Left(leaf_view(leaf, me)),
            Block::Quote(leaves) => Either::Right(view! {
                <blockquote>{leaves.iter().map(|leaf| leaf_view(leaf, me)).collect_view()}</blockquote>
            }),
        })
        .collect_view()
}

fn leaf_view(leaf: &Leaf, me: &str) -> impl IntoView {
    match leaf {
        Leaf::Paragraph(inlines) => EitherOf3::A(view! { <p>{inlines_view(inlines, me)}</p> }),
        // Focusable, so a keyboard can scroll a code block's long lines too.
        Leaf::Code(code) => {
            EitherOf3::B(view! { <pre tabindex="0"><code>{code.clone()}</code></pre> })
        }
        Leaf::List { start, items } => {
            let items = items
                .iter()
                .map(|item| view! { <li>{inlines_view(item, me)}</li> })
                .collect_view();
            EitherOf3::C(match start {
                Some(n) => Either::Left(view! { <ol start=n.to_string()>{items}</ol> }),
                None => Either::Right(view! { <ul>{items}</ul> }),
            })
        }
    }
}

fn inlines_view(inlines: &[Inline], me: &str) -> impl IntoView {
    inlines
        .iter()
        .map(|inline| match inline {
            Inline::Text(span) => Either::Left(span_view(span, me)),
            Inline::Link { href, label } => Either::Right(view! {
                <a href=href.clone() target="_blank" rel="noopener noreferrer nofollow">
                    {label.iter().map(|span| span_view(span, me)).collect_view()}
                </a>
            }),
        })
        .collect_view()
}

/// One span: its text (mentions in `<mark>`) inside `<code>`, `<s>`, `<em>` and `<strong>`
/// as its style says.
fn span_view(span: &Span, me: &str) -> impl IntoView {
    let text = split_mentions(&span.text, me)
        .into_iter()
        .map(|(piece, mention)| {
            let piece = piece.to_owned();
            if mention {
                Either::Left(view! { <mark class="mention">{piece}</mark> })
            } else {
                Either::Right(piece)
            }
        })
        .collect_view();
    let style = span.style;
    let text = wrap(style.code, text, |t| view! { <code>{t}</code> });
    let text = wrap(style.strike, text, |t| view! { <s>{t}</s> });
    let text = wrap(style.emphasis, text, |t| view! { <em>{t}</em> });
    wrap(style.strong, text, |t| view! { <strong>{t}</strong> })
}

/// `inner` inside the element `outer` makes, when `yes`.
fn wrap<T, V>(yes: bool, inner: T, outer: impl FnOnce(T) -> V) -> Either<V, T> {
    if yes {
        Either::Left(outer(inner))
    } else {
        Either::Right(inner)
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;
    use crate::chat::model::markup::parse;
    use crate::chat::model::markup::tests::injection_corpus;

    /// The server's HTML for `body`, without the empty comments hydration finds its way by.
    fn html(body: &str, me: &str) -> String {
        markup_view(&parse(body), me).to_html().replace("<!>", "")
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
