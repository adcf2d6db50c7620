//! What a mailed message asks for: its links (from text and HTML parts, forwarded
//! messages included), the sender, and the tags in its subject. Pure.

use lol_html::{RewriteStrSettings, element, rewrite_str, text};
use mail_parser::{Message, MessageParser, PartType};

/// How deep forwarded messages inside messages are followed.
const MAX_NESTING: usize = 4;

/// A parsed message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mail {
    /// The decoded subject (RFC 2047 words in any charset).
    pub subject: String,
    /// The `From` address, lower-cased.
    pub sender: String,
    /// http and https links, first appearance first, each once.
    pub links: Vec<String>,
    /// The `Authentication-Results` values, topmost first (unfolded).
    pub auth_results: Vec<String>,
    /// Recipient addresses, lower-cased: `To`, `Cc`, `Delivered-To`, `X-Original-To`.
    pub recipients: Vec<String>,
}

/// Parses a message as RETR gave it. `None` when it is not a message at all.
#[must_use]
pub fn parse(raw: &[u8]) -> Option<Mail> {
    let message = MessageParser::default().parse(raw)?;
    // mail-parser takes any bytes as a body; a message names at least one of these.
    if message.from().is_none()
        && message.subject().is_none()
        && message.date().is_none()
        && message.message_id().is_none()
    {
        return None;
    }
    let mut links = Links::default();
    collect(&message, &mut links, 0);
    Some(Mail {
        subject: message.subject().unwrap_or("").trim().to_owned(),
        sender: message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or("")
            .to_lowercase(),
        links: links.list,
        auth_results: raw_values(&message, "authentication-results"),
        recipients: recipients(&message),
    })
}

/// A header's values as written (unfolded), topmost first.
fn raw_values(message: &Message<'_>, name: &str) -> Vec<String> {
    let raw = message.raw_message();
    message
        .headers()
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .filter_map(|h| raw.get(h.offset_start as usize..h.offset_end as usize))
        .map(|v| {
            String::from_utf8_lossy(v)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn recipients(message: &Message<'_>) -> Vec<String> {
    let mut out: Vec<String> = message
        .to()
        .into_iter()
        .chain(message.cc())
        .flat_map(|a| a.iter())
        .filter_map(|a| a.address())
        .map(str::to_lowercase)
        .collect();
    for name in ["delivered-to", "x-original-to"] {
        for v in raw_values(message, name) {
            out.push(v.trim().trim_matches(['<', '>']).to_lowercase());
        }
    }
    out
}

#[derive(Default)]
struct Links {
    list: Vec<String>,
    seen: std::collections::HashSet<String>,
}

impl Links {
    fn push(&mut self, candidate: &str) {
        let Ok(mut url) = url::Url::parse(candidate.trim()) else {
            return;
        };
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return;
        }
        url.set_fragment(None);
        let s = String::from(url);
        if self.seen.insert(s.clone()) {
            self.list.push(s);
        }
    }

    fn scan_text(&mut self, text: &str) {
        let mut finder = linkify::LinkFinder::new();
        finder.kinds(&[linkify::LinkKind::Url]);
        for link in finder.links(text) {
            self.push(link.as_str());
        }
    }

    fn scan_html(&mut self, html: &str) {
        let mut hrefs = Vec::new();
        let mut texts = String::new();
        let settings = RewriteStrSettings::new()
            .append_element_content_handler(element!("a[href]", |el| {
                if let Some(h) = el.get_attribute("href") {
                    hrefs.push(h);
                }
                Ok(())
            }))
            // Words in the text that look like links.
            .append_element_content_handler(text!("body", |t| {
                texts.push_str(t.as_str());
                if t.last_in_text_node() {
                    texts.push(' ');
                }
                Ok(())
            }));
        let _ = rewrite_str(html, settings);
        for h in &hrefs {
            self.push(&html_escape::decode_html_entities(h));
        }
        self.scan_text(&html_escape::decode_html_entities(&texts));
    }
}

fn collect(message: &Message<'_>, links: &mut Links, depth: usize) {
    for part in message.text_bodies().chain(message.html_bodies()) {
        match &part.body {
            PartType::Text(t) => links.scan_text(t),
            PartType::Html(h) => links.scan_html(h),
            _ => {}
        }
    }
    if depth >= MAX_NESTING {
        return;
    }
    for part in message.attachments() {
        if let PartType::Message(inner) = &part.body {
            collect(inner, links, depth + 1);
        }
    }
}

/// The `#word` tags of a subject (`Look #rust #中文` → `rust`, `中文`), each once.
#[must_use]
pub fn subject_tags(subject: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in subject.split_whitespace() {
        let Some(rest) = word.strip_prefix('#') else {
            continue;
        };
        let tag: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '/' | '.'))
            .collect();
        let tag = tag.trim_end_matches(['.', '/', '-']);
        if !tag.is_empty() && !out.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
            out.push(tag.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_come_from_text_and_html_parts_once_each() {
        let raw = "From: Ann <Ann@Example.test>\r\nTo: in@box.test\r\nSubject: two #reading\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
See https://a.test/one?x=3D1, and (https://b.test/two). mailto:x@y.test ftp://c.test/\r\n\
--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p>Also <a href=\"https://c.test/three#frag\">this</a> and https://a.test/one?x=1\r\n\
<a href=\"javascript:alert(1)\">no</a><script>var u='https://evil.test/'</script></p>\r\n\
--b--\r\n";
        let mail = parse(raw.as_bytes()).unwrap();
        assert_eq!(mail.sender, "ann@example.test");
        assert_eq!(mail.subject, "two #reading");
        assert_eq!(
            mail.links,
            [
                "https://a.test/one?x=1",
                "https://b.test/two",
                "https://c.test/three"
            ]
        );
    }

    #[test]
    fn encoded_subjects_in_any_charset_and_base64_bodies() {
        // "看看 #中文" in GBK, as an RFC 2047 B-word; the body base64 of a link.
        let (gbk, _, _) = encoding_rs::GBK.encode("看看 #中文");
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw = format!(
            "From: x@y.test\r\nSubject: =?GBK?B?{}?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            b64.encode(&gbk),
            b64.encode("读 https://news.test/文章")
        );
        let mail = parse(raw.as_bytes()).unwrap();
        assert_eq!(mail.subject, "看看 #中文");
        assert_eq!(subject_tags(&mail.subject), ["中文"]);
        assert_eq!(mail.links, ["https://news.test/%E6%96%87%E7%AB%A0"]);
    }

    #[test]
    fn forwarded_messages_are_read_too() {
        let raw = "From: me@x.test\r\nSubject: Fwd\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n\
--m\r\nContent-Type: text/plain\r\n\r\nforwarding\r\n\
--m\r\nContent-Type: message/rfc822\r\n\r\nFrom: a@b.test\r\nSubject: inner\r\n\r\nread https://inner.test/x\r\n\
--m--\r\n";
        assert_eq!(
            parse(raw.as_bytes()).unwrap().links,
            ["https://inner.test/x"]
        );
    }

    #[test]
    fn subject_tags_take_words_after_a_hash() {
        assert_eq!(
            subject_tags("Re: #Rust, #lang/go. #a #RUST # #-"),
            ["Rust", "lang/go", "a"]
        );
        assert!(subject_tags("issue #").is_empty());
    }

    #[test]
    fn garbage_is_not_a_message() {
        assert!(parse(b"").is_none());
        assert!(parse(b"\xff\xfe not a mail at all").is_none());
    }
}
