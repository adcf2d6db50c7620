//! Readable text: the article a page carries, without navigation and boilerplate.
//!
//! The extractor was chosen by measurement on the 130 real pages of
//! `shared/corpus/readability` (word-level F1 against each page's expected text, see the
//! `readability_corpus` integration test): dom_smoothie 0.998 mean F1 at 2–4 ms a page,
//! rs-trafilatura 0.932 at 15–20 ms a page (and it prints debug lines to stderr). The
//! public scrapinghub benchmark favours trafilatura, but it could not be verified here.

use std::cell::RefCell;

use dom_smoothie::{Config, Readability, TextMode};
use lol_html::{RewriteStrSettings, rewrite_str, text};
use url::Url;

use crate::depth::{MAX_DOM_DEPTH, max_depth};

/// The readable view of a page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readable {
    /// The article title (or the document title when no article was found).
    pub title: String,
    /// Author line.
    pub byline: Option<String>,
    /// A short summary.
    pub excerpt: Option<String>,
    /// Language tag, from `<html lang>` or metadata.
    pub lang: Option<String>,
    /// The site's name.
    pub site_name: Option<String>,
    /// Publication time as the page states it.
    pub published_time: Option<String>,
    /// The main text, paragraphs separated by blank lines.
    pub text: String,
}

/// Stack of the thread extraction runs on: the extractor walks the tree recursively, and
/// the depth bound keeps it far inside this (only the pages it touches are committed).
pub const EXTRACT_STACK_BYTES: usize = 64 << 20;

/// [`extract`] on a thread of its own with [`EXTRACT_STACK_BYTES`] of stack, so that no
/// page can overflow the caller's (a runtime's worker threads have 2 MiB). `None` when
/// the thread cannot be started or the extractor panicked: the snapshot is kept without
/// readable text.
pub fn extract_isolated(html: String, url: Url) -> Option<Readable> {
    std::thread::Builder::new()
        .name("extract".into())
        .stack_size(EXTRACT_STACK_BYTES)
        .spawn(move || extract(&html, &url))
        .ok()?
        .join()
        .ok()
}

/// Extracts the readable text of `html` (UTF-8) fetched from `url`. Never fails: a page
/// without an article yields its title and no text, and so does a page nested deeper than
/// [`MAX_DOM_DEPTH`] (checked first, without recursion).
pub fn extract(html: &str, url: &Url) -> Readable {
    let depth = max_depth(html, MAX_DOM_DEPTH);
    if depth > MAX_DOM_DEPTH {
        tracing::warn!(%url, depth, limit = MAX_DOM_DEPTH, "the page is nested too deeply to extract readable text; kept without it");
        return Readable {
            title: document_title(html),
            ..Readable::default()
        };
    }
    let cfg = Config {
        text_mode: TextMode::Formatted,
        ..Config::default()
    };
    let article = Readability::new(html, Some(url.as_str()), Some(cfg))
        .ok()
        .and_then(|mut r| r.parse().ok());
    match article {
        Some(a) => Readable {
            title: if a.title.trim().is_empty() {
                document_title(html)
            } else {
                a.title.trim().to_owned()
            },
            byline: nonempty(a.byline),
            excerpt: nonempty(a.excerpt),
            lang: nonempty(a.lang),
            site_name: nonempty(a.site_name),
            published_time: nonempty(a.published_time),
            text: tidy(&a.text_content),
        },
        None => Readable {
            title: document_title(html),
            ..Readable::default()
        },
    }
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Trims each line and collapses runs of blank lines to one.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if blank {
            out.push_str("\n\n");
        } else if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
        blank = false;
    }
    out
}

/// The text of the first `<title>`, whitespace collapsed.
pub fn document_title(html: &str) -> String {
    let title = RefCell::new(String::new());
    let done = RefCell::new(false);
    let settings = RewriteStrSettings::new().append_element_content_handler(text!("title", |t| {
        if !*done.borrow() {
            title.borrow_mut().push_str(t.as_str());
            if t.last_in_text_node() {
                *done.borrow_mut() = true;
            }
        }
        Ok(())
    }));
    // Only the side effect matters.
    let _ = rewrite_str(html, settings);
    let raw = title.into_inner();
    let decoded = html_escape::decode_html_entities(&raw);
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_article_yields_title_byline_and_paragraphs() {
        let para = "This paragraph is long enough to count as article content for the extractor. "
            .repeat(4);
        let html = format!(
            r#"<html lang="en"><head><title>Site | The Title</title><meta name="author" content="Ada"></head>
            <body><nav><a href="/">Home</a><a href="/x">Menu item</a></nav><article><h1>The Title</h1><p>{para}</p><p>Second {para}</p></article>
            <footer>Copyright footer text</footer></body></html>"#
        );
        let r = extract(&html, &Url::parse("http://a.test/").unwrap());
        assert_eq!(r.byline.as_deref(), Some("Ada"));
        assert_eq!(r.lang.as_deref(), Some("en"));
        assert!(r.text.contains("This paragraph is long enough"), "{r:?}");
        assert!(r.text.contains("\n\nSecond"), "{:?}", r.text);
        assert!(!r.text.contains("Copyright footer"), "{:?}", r.text);
        assert!(!r.text.contains("Menu item"), "{:?}", r.text);
    }

    #[test]
    fn a_page_nested_past_the_limit_keeps_its_title_and_has_no_text() {
        let url = Url::parse("https://a.test/").unwrap();
        let at = format!(
            "<title>Deep</title>{}<p>inside enough words to be an article here</p>",
            "<div>".repeat(MAX_DOM_DEPTH - 3)
        );
        assert!(max_depth(&at, usize::MAX) <= MAX_DOM_DEPTH);
        assert!(
            !extract(&at, &url).text.is_empty(),
            "at the limit: extracted"
        );
        // 100,000 levels of several shapes, on the small stack of a test thread.
        for shape in ["<div>", "<span>", "<table><tr><td>", "<ul><li>", "<svg><g>"] {
            let deep = format!(
                "<title>Deep</title>{}x",
                shape.repeat(100_000 / shape.len() * 5)
            );
            let r = extract(&deep, &url);
            assert_eq!(r.title, "Deep", "{shape}");
            assert!(r.text.is_empty(), "{shape}");
        }
    }

    #[test]
    fn a_page_without_an_article_still_has_its_title() {
        let r = extract(
            "<title> A &amp; B </title><body></body>",
            &Url::parse("http://a.test/").unwrap(),
        );
        assert_eq!(r.title, "A & B");
    }
}
