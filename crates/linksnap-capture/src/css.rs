//! Finding and rewriting the URLs inside CSS: `url()`, `@import`, `image-set()` strings.
//!
//! Uses cssparser's tokenizer so that comments, strings and escapes are understood exactly
//! as a browser would (a `url(` inside a comment or string is not a reference). Pure.

use std::ops::Range;

use cssparser::{ParseError, Parser, Token};

/// What a CSS reference loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CssRefKind {
    /// `@import`: another stylesheet.
    Import,
    /// `url()` anywhere else: an image, font, cursor, SVG filter…
    Asset,
}

/// One reference found in a stylesheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CssRef {
    /// Byte range of the whole reference (`url(…)` or the `@import` string) in the source.
    pub range: Range<usize>,
    /// The URL as written, unescaped.
    pub url: String,
    /// What it loads.
    pub kind: CssRefKind,
}

/// Lists every reference in `css`, in source order.
pub fn references(css: &str) -> Vec<CssRef> {
    let mut parser = Parser::new(css);
    let mut out = Vec::new();
    walk(&mut parser, &mut out, false);
    out.retain(|r| !r.url.trim().is_empty() && !r.url.trim_start().starts_with('#'));
    out
}

fn walk(p: &mut Parser<'_>, out: &mut Vec<CssRef>, in_image_set: bool) {
    let mut after_import = false;
    loop {
        let start = p.position().byte_index();
        let token = match p.next_including_whitespace_and_comments() {
            Ok(t) => t.clone(),
            Err(_) => break,
        };
        let kind = if after_import {
            CssRefKind::Import
        } else {
            CssRefKind::Asset
        };
        match token {
            Token::WhiteSpace(_) | Token::Comment(_) => continue,
            Token::AtKeyword(ref k) if k.eq_ignore_ascii_case("import") => {
                after_import = true;
                continue;
            }
            Token::UnquotedUrl(u) => out.push(CssRef {
                range: start..p.position().byte_index(),
                url: u.to_string(),
                kind,
            }),
            Token::QuotedString(s) if after_import || in_image_set => out.push(CssRef {
                range: start..p.position().byte_index(),
                url: s.to_string(),
                kind,
            }),
            Token::Function(name) => {
                let name = name.to_ascii_lowercase();
                if name == "url" || name == "src" {
                    let inner = p
                        .parse_nested_block(|p| {
                            Ok::<_, ParseError<()>>(p.expect_string_cloned().ok())
                        })
                        .ok()
                        .flatten();
                    if let Some(u) = inner {
                        out.push(CssRef {
                            range: start..p.position().byte_index(),
                            url: u.to_string(),
                            kind,
                        });
                    }
                } else {
                    let image_set = name.ends_with("image-set");
                    let _ = p.parse_nested_block(|p| {
                        walk(p, out, image_set);
                        Ok::<_, ParseError<()>>(())
                    });
                }
            }
            Token::ParenthesisBlock | Token::SquareBracketBlock | Token::CurlyBracketBlock => {
                let _ = p.parse_nested_block(|p| {
                    walk(p, out, false);
                    Ok::<_, ParseError<()>>(())
                });
            }
            _ => {}
        }
        after_import = false;
    }
}

/// Rewrites every reference in `css`. `replace` receives each reference and returns the
/// URL to put in its place; the result is always written as `url("…")`, which is valid in
/// `@import`, in declarations and inside `image-set()`.
pub fn rewrite(css: &str, mut replace: impl FnMut(&CssRef) -> String) -> String {
    let refs = references(css);
    let mut out = String::with_capacity(css.len());
    let mut last = 0;
    for r in &refs {
        out.push_str(&css[last..r.range.start]);
        out.push_str("url(\"");
        escape_css_string(&replace(r), &mut out);
        out.push_str("\")");
        last = r.range.end;
    }
    out.push_str(&css[last..]);
    out
}

/// Removes a leading `@charset "…";` rule: the text is UTF-8 now, and the rule would only
/// contradict that.
pub fn strip_charset_rule(css: &str) -> &str {
    let trimmed = css.trim_start_matches('\u{feff}');
    if let Some(rest) = trimmed.strip_prefix("@charset \"")
        && let Some(end) = rest.find("\";")
    {
        return &rest[end + 2..];
    }
    trimmed
}

fn escape_css_string(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\a "),
            '\r' => out.push_str("\\d "),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(css: &str) -> Vec<(String, CssRefKind)> {
        references(css)
            .into_iter()
            .map(|r| (r.url, r.kind))
            .collect()
    }

    #[test]
    fn finds_every_form_of_reference() {
        use CssRefKind::*;
        let css = r#"
            @import "a.css" screen;
            @import url(b.css);
            @IMPORT url( "c.css" );
            /* url(comment.png) */
            body { background: url(bg.png) , url( 'q\'uote.png' ); content: "url(str.png)" }
            @font-face { src: url(f.woff2) format("woff2"), local(Foo) }
            .x { background-image: image-set("x1.png" 1x, url(x2.png) 2x) }
            @media (min-width: 1px) { .y { cursor: url(cur.cur), auto } }
            .z { filter: url(#local); mask: url() }
        "#;
        assert_eq!(
            urls(css),
            vec![
                ("a.css".into(), Import),
                ("b.css".into(), Import),
                ("c.css".into(), Import),
                ("bg.png".into(), Asset),
                ("q'uote.png".into(), Asset),
                ("f.woff2".into(), Asset),
                ("x1.png".into(), Asset),
                ("x2.png".into(), Asset),
                ("cur.cur".into(), Asset),
            ]
        );
    }

    #[test]
    fn rewrite_replaces_only_references() {
        let css = "@import 'a.css' print;\np{background:url(a.png) no-repeat;content:\"url(x)\"}";
        let out = rewrite(css, |r| format!("data:,{}", r.url.to_uppercase()));
        assert_eq!(
            out,
            "@import url(\"data:,A.CSS\") print;\np{background:url(\"data:,A.PNG\") no-repeat;content:\"url(x)\"}"
        );
    }

    #[test]
    fn rewritten_urls_are_escaped() {
        let out = rewrite("a{b:url(x)}", |_| "data:,\"quoted\"\n".into());
        assert_eq!(out, "a{b:url(\"data:,\\\"quoted\\\"\\a \")}");
    }

    #[test]
    fn charset_rule_is_stripped() {
        assert_eq!(strip_charset_rule("@charset \"gbk\";p{}"), "p{}");
        assert_eq!(strip_charset_rule("p{}"), "p{}");
    }
}
