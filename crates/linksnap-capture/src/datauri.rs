//! `data:` URIs for inlined resources, as small as they can be made.
//!
//! Text (CSS, SVG, HTML, JavaScript) is percent-encoded only where a URL parser or an HTML
//! attribute needs it, which is far smaller than base64 for mostly-ASCII text; binary
//! content is base64. This is one of the reasons a linksnap snapshot is smaller than
//! monolith's, which base64-encodes everything.

use base64::Engine as _;

/// Whether a media type is text that is safe to percent-encode rather than base64.
pub fn is_textual(media_type: &str) -> bool {
    let m = media_type.to_ascii_lowercase();
    m.starts_with("text/")
        || m.ends_with("+xml")
        || m.ends_with("/xml")
        || m.ends_with("/javascript")
        || m.ends_with("/json")
        || m.ends_with("/ecmascript")
}

/// Builds a `data:` URI for `bytes` of `media_type`.
///
/// Textual content that is valid UTF-8 is percent-encoded with `;charset=utf-8`; everything
/// else is base64.
pub fn encode(media_type: &str, bytes: &[u8]) -> String {
    let media_type = sanitize_media_type(media_type);
    if is_textual(&media_type)
        && let Ok(text) = std::str::from_utf8(bytes)
    {
        return encode_text(&media_type, text);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(media_type.len() + 13 + b64.len());
    out.push_str("data:");
    out.push_str(&media_type);
    out.push_str(";base64,");
    out.push_str(&b64);
    out
}

/// Builds a percent-encoded `data:` URI for UTF-8 text.
pub fn encode_text(media_type: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8 + 40);
    out.push_str("data:");
    out.push_str(&sanitize_media_type(media_type));
    out.push_str(";charset=utf-8,");
    for c in text.chars() {
        match c {
            // Stripped or misread by URL parsers, or would end an HTML attribute, or would
            // start a fragment.
            '%' | '#' | '"' | '\'' | '<' | '>' | '&' | '\\' | '^' | '`' | '{' | '|' | '}' => {
                push_escape(c as u8, &mut out)
            }
            c if c.is_ascii_control() || c == ' ' => push_escape(c as u8, &mut out),
            c => out.push(c),
        }
    }
    out
}

fn push_escape(b: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[(b >> 4) as usize] as char);
    out.push(HEX[(b & 15) as usize] as char);
}

/// Keeps only `type/subtype` (drops parameters such as a charset that no longer applies)
/// and falls back to `application/octet-stream` for anything malformed.
pub(crate) fn sanitize_media_type(media_type: &str) -> String {
    let essence = media_type.split(';').next().unwrap_or("").trim();
    let valid = essence.split_once('/').is_some_and(|(t, s)| {
        !t.is_empty()
            && !s.is_empty()
            && essence
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/+-.!#$&^_".contains(&b))
    });
    if valid {
        essence.to_ascii_lowercase()
    } else {
        "application/octet-stream".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_percent_encoded_and_binary_is_base64() {
        assert_eq!(
            encode("text/css; charset=iso-8859-1", b"a{b:c} #x"),
            "data:text/css;charset=utf-8,a%7Bb:c%7D%20%23x"
        );
        assert_eq!(
            encode("image/png", &[0x89, b'P', b'N', b'G']),
            "data:image/png;base64,iVBORw=="
        );
        assert_eq!(
            encode("image/svg+xml", "<svg>é</svg>".as_bytes()),
            "data:image/svg+xml;charset=utf-8,%3Csvg%3Eé%3C/svg%3E"
        );
        assert_eq!(
            encode("bogus", b"x"),
            "data:application/octet-stream;base64,eA=="
        );
    }

    #[test]
    fn textual_types_that_are_not_utf8_fall_back_to_base64() {
        assert_eq!(encode("text/plain", &[0xff]), "data:text/plain;base64,/w==");
    }
}
