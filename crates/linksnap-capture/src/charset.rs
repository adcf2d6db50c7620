//! Deciding a document's encoding the way a browser does, and decoding it to UTF-8.
//!
//! Order: byte-order mark, then bytes that are valid UTF-8 with non-ASCII content (a page
//! whose label lies — meta says gb2312, the bytes are UTF-8 — is the common case on the real
//! web, and multi-byte UTF-8 sequences are vanishingly unlikely in legacy encodings), then
//! the HTTP `Content-Type` charset, then the `<meta>` prescan, then statistical detection
//! with chardetng over the whole document, with the URL's top-level domain as a hint.
//!
//! Pure: bytes in, text out.

use encoding_rs::{Encoding, UTF_8, WINDOWS_1252};

/// How many bytes the `<meta>` prescan looks at. The HTML standard says 1024; real pages
/// put long scripts and comments first, so we look further (detection would catch most of
/// them anyway, but a declared label is better evidence than statistics).
pub const META_PRESCAN_BYTES: usize = 4096;

/// Where the decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingSource {
    /// A byte-order mark.
    Bom,
    /// The bytes are valid UTF-8 containing non-ASCII text.
    Utf8Content,
    /// The HTTP `Content-Type` charset parameter.
    HttpHeader,
    /// A `<meta charset>` or `<meta http-equiv=content-type>` in the document.
    Meta,
    /// The `@charset` rule of a stylesheet.
    CssCharset,
    /// Inherited from the document that referenced this resource.
    Referrer,
    /// chardetng's guess.
    Detected,
}

impl EncodingSource {
    /// Stable lower-case name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bom => "bom",
            Self::Utf8Content => "utf-8-content",
            Self::HttpHeader => "http-header",
            Self::Meta => "meta",
            Self::CssCharset => "css-charset",
            Self::Referrer => "referrer",
            Self::Detected => "detected",
        }
    }
}

/// A decoded text resource.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The text, always UTF-8.
    pub text: String,
    /// The encoding the bytes were in.
    pub encoding: &'static Encoding,
    /// How that encoding was decided.
    pub source: EncodingSource,
    /// Whether any byte sequence was malformed for that encoding (replaced by U+FFFD).
    pub had_errors: bool,
}

/// Extracts the `charset` parameter from a `Content-Type` value.
pub fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches(['"', '\'']))
    })
}

/// Decodes an HTML document.
///
/// `content_type` is the HTTP header value, if any; `host` (the page's host name) gives
/// chardetng its top-level-domain hint.
pub fn decode_html(bytes: &[u8], content_type: Option<&str>, host: Option<&str>) -> Decoded {
    let (encoding, source) = sniff_html(bytes, content_type, host);
    decode_with(bytes, encoding, source)
}

/// The encoding [`decode_html`] reads an HTML document in, and how it was decided
/// (without decoding it): the browser engine tells Chromium the same.
pub fn sniff_html(
    bytes: &[u8],
    content_type: Option<&str>,
    host: Option<&str>,
) -> (&'static Encoding, EncodingSource) {
    if let Some((enc, _)) = Encoding::for_bom(bytes) {
        return (enc, EncodingSource::Bom);
    }
    if is_utf8_with_non_ascii(bytes) {
        return (UTF_8, EncodingSource::Utf8Content);
    }
    if let Some(enc) = content_type
        .and_then(charset_param)
        .and_then(|l| Encoding::for_label(l.as_bytes()))
    {
        return (html_label_fixup(enc), EncodingSource::HttpHeader);
    }
    if let Some(enc) = prescan_meta(&bytes[..bytes.len().min(META_PRESCAN_BYTES)]) {
        return (html_label_fixup(enc), EncodingSource::Meta);
    }
    (detect(bytes, host), EncodingSource::Detected)
}

/// Decodes a stylesheet: BOM, HTTP charset, `@charset`, then the referring document's
/// encoding (the CSS Syntax "environment encoding"), with the UTF-8 content check first.
pub fn decode_css(
    bytes: &[u8],
    content_type: Option<&str>,
    referrer: &'static Encoding,
) -> Decoded {
    if let Some((enc, _)) = Encoding::for_bom(bytes) {
        return decode_with(bytes, enc, EncodingSource::Bom);
    }
    if is_utf8_with_non_ascii(bytes) {
        return decode_with(bytes, UTF_8, EncodingSource::Utf8Content);
    }
    if let Some(enc) = content_type
        .and_then(charset_param)
        .and_then(|l| Encoding::for_label(l.as_bytes()))
    {
        return decode_with(bytes, enc, EncodingSource::HttpHeader);
    }
    if let Some(rest) = bytes.strip_prefix(b"@charset \"")
        && let Some(end) = rest.iter().position(|&b| b == b'"')
        && let Some(enc) = Encoding::for_label(&rest[..end])
    {
        return decode_with(bytes, html_label_fixup(enc), EncodingSource::CssCharset);
    }
    decode_with(bytes, referrer, EncodingSource::Referrer)
}

/// Decodes a script or other text resource: BOM, HTTP charset, an explicit label (the
/// `<script charset>` attribute), then the referring document's encoding.
pub fn decode_text(
    bytes: &[u8],
    content_type: Option<&str>,
    label: Option<&str>,
    referrer: &'static Encoding,
) -> Decoded {
    if let Some((enc, _)) = Encoding::for_bom(bytes) {
        return decode_with(bytes, enc, EncodingSource::Bom);
    }
    if is_utf8_with_non_ascii(bytes) {
        return decode_with(bytes, UTF_8, EncodingSource::Utf8Content);
    }
    let declared = content_type
        .and_then(charset_param)
        .or(label)
        .and_then(|l| Encoding::for_label(l.as_bytes()));
    match declared {
        Some(enc) => decode_with(bytes, enc, EncodingSource::HttpHeader),
        None => decode_with(bytes, referrer, EncodingSource::Referrer),
    }
}

fn decode_with(bytes: &[u8], encoding: &'static Encoding, source: EncodingSource) -> Decoded {
    let (text, had_errors) = encoding.decode_with_bom_removal(bytes);
    Decoded {
        text: text.into_owned(),
        encoding,
        source,
        had_errors,
    }
}

/// Per the HTML standard, a document cannot declare itself UTF-16 in a meta tag (it would
/// be unreadable as ASCII) and `x-user-defined` means windows-1252.
fn html_label_fixup(enc: &'static Encoding) -> &'static Encoding {
    if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
        UTF_8
    } else if enc == encoding_rs::X_USER_DEFINED {
        WINDOWS_1252
    } else {
        enc
    }
}

/// Valid UTF-8 (allowing a sequence cut off at the very end, as a byte limit may do) that
/// contains at least one multi-byte character.
fn is_utf8_with_non_ascii(bytes: &[u8]) -> bool {
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() && bytes.len() - e.valid_up_to() < 4 => {
            // Only an incomplete sequence at the end: the rest is valid.
            match std::str::from_utf8(&bytes[..e.valid_up_to()]) {
                Ok(s) => s,
                Err(_) => return false,
            }
        }
        Err(_) => return false,
    };
    !valid.is_ascii()
}

fn detect(bytes: &[u8], host: Option<&str>) -> &'static Encoding {
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(bytes, true);
    let tld = host
        .and_then(|h| h.rsplit('.').next())
        .map(|t| t.as_bytes());
    det.guess(tld, chardetng::Utf8Detection::Allow)
}

/// The HTML standard's "prescan a byte stream to determine its encoding", simplified to
/// what matters: comments are skipped, `<meta charset=…>` and
/// `<meta http-equiv="content-type" content="…charset=…">` are honoured, first one wins.
pub fn prescan_meta(bytes: &[u8]) -> Option<&'static Encoding> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"<!--") {
            i = find(bytes, i + 4, b"-->").map_or(bytes.len(), |p| p + 3);
            continue;
        }
        if bytes[i] == b'<'
            && bytes.len() > i + 5
            && bytes[i + 1..i + 5].eq_ignore_ascii_case(b"meta")
            && matches!(bytes[i + 5], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'/')
        {
            let (attrs, end) = parse_attributes(bytes, i + 5);
            i = end;
            let mut charset = None;
            let mut content = None;
            let mut http_equiv_ct = false;
            for (name, value) in attrs {
                match name.as_slice() {
                    b"charset" if charset.is_none() => charset = Some(value),
                    b"content" if content.is_none() => content = Some(value),
                    b"http-equiv" => {
                        http_equiv_ct |= value.eq_ignore_ascii_case(b"content-type");
                    }
                    _ => {}
                }
            }
            let label = charset.or_else(|| {
                http_equiv_ct
                    .then(|| content.as_deref().and_then(charset_from_content))
                    .flatten()
            });
            if let Some(enc) = label.and_then(|l| Encoding::for_label(l.trim_ascii())) {
                return Some(enc);
            }
            continue;
        }
        i += 1;
    }
    None
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn charset_from_content(content: &[u8]) -> Option<Vec<u8>> {
    let lower = content.to_ascii_lowercase();
    let at = find(&lower, 0, b"charset")?;
    let rest = content[at + 7..].trim_ascii_start();
    let rest = rest.strip_prefix(b"=")?.trim_ascii_start();
    let value: Vec<u8> = match rest.first() {
        Some(q @ (b'"' | b'\'')) => rest[1..].iter().take_while(|&b| b != q).copied().collect(),
        _ => rest
            .iter()
            .take_while(|b| !b.is_ascii_whitespace() && **b != b';')
            .copied()
            .collect(),
    };
    (!value.is_empty()).then_some(value)
}

/// Parses `name=value` attributes up to the closing `>`; returns lower-cased names,
/// raw values and the index after the tag.
/// Lower-cased attribute names with their raw values.
type Attributes = Vec<(Vec<u8>, Vec<u8>)>;

fn parse_attributes(bytes: &[u8], mut i: usize) -> (Attributes, usize) {
    let mut attrs = Vec::new();
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b'>' {
            return (attrs, i + 1);
        }
        let start = i;
        while i < bytes.len()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
            && !bytes[i].is_ascii_whitespace()
        {
            i += 1;
        }
        let name = bytes[start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = Vec::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            match bytes.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != q {
                        value.push(bytes[i]);
                        i += 1;
                    }
                    i += 1;
                }
                _ => {
                    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                        value.push(bytes[i]);
                        i += 1;
                    }
                }
            }
        }
        if !name.is_empty() {
            attrs.push((name, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], ct: Option<&str>, enc: &str, source: EncodingSource, text: &str) {
        let d = decode_html(bytes, ct, None);
        assert_eq!(d.encoding.name(), enc);
        assert_eq!(d.source, source);
        assert!(d.text.contains(text), "{:?} lacks {text:?}", d.text);
    }

    #[test]
    fn encodings_are_decided_like_a_browser() {
        let (gbk, _, _) = encoding_rs::GBK.encode("<p>近七成人减少线下需求</p>");
        let page = [b"<meta charset=gbk>".as_slice(), &gbk].concat();
        check(&page, None, "GBK", EncodingSource::Meta, "近七成人");
        check(
            &gbk,
            Some("text/html; charset=GB2312"),
            "GBK",
            EncodingSource::HttpHeader,
            "减少",
        );

        let (sjis, _, _) =
            encoding_rs::SHIFT_JIS.encode("<p>日本語のテキストです。これはテストです。</p>");
        let meta = [
            b"<meta http-equiv='Content-Type' content='text/html; charset=Shift_JIS'>".as_slice(),
            &sjis,
        ]
        .concat();
        check(&meta, None, "Shift_JIS", EncodingSource::Meta, "日本語");

        let (big5, _, _) = encoding_rs::BIG5.encode("<p>繁體中文的網頁內容，這是一個測試。</p>");
        check(
            &big5,
            Some("text/html;charset=big5"),
            "Big5",
            EncodingSource::HttpHeader,
            "繁體",
        );

        let bom = [b"\xEF\xBB\xBF".as_slice(), "<p>é</p>".as_bytes()].concat();
        check(
            &bom,
            Some("text/html; charset=iso-8859-1"),
            "UTF-8",
            EncodingSource::Bom,
            "é",
        );
    }

    #[test]
    fn a_lying_meta_loses_to_valid_utf8() {
        let page = "<meta charset=gb2312><title>腾讯网</title>".as_bytes();
        check(page, None, "UTF-8", EncodingSource::Utf8Content, "腾讯网");
    }

    #[test]
    fn undeclared_legacy_text_is_detected() {
        let text = "<html><body><p>한국어 웹 페이지입니다. 이것은 인코딩 감지 테스트를 위한 충분히 긴 문장입니다. 대한민국의 수도는 서울입니다.</p></body></html>";
        let (euckr, _, _) = encoding_rs::EUC_KR.encode(text);
        check(&euckr, None, "EUC-KR", EncodingSource::Detected, "한국어");
        let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode("<p>Привет, мир! Это проверка определения кодировки для русского текста на странице.</p>");
        check(
            &cp1251,
            None,
            "windows-1251",
            EncodingSource::Detected,
            "Привет",
        );
    }

    #[test]
    fn meta_prescan_skips_comments_and_reads_http_equiv() {
        assert_eq!(
            prescan_meta(b"<!-- <meta charset=big5> --><meta charset=\"euc-jp\">"),
            Some(encoding_rs::EUC_JP)
        );
        assert_eq!(
            prescan_meta(
                b"<META HTTP-EQUIV=content-type CONTENT=\"text/html;charset=windows-1250\">"
            ),
            Some(encoding_rs::WINDOWS_1250)
        );
        assert_eq!(prescan_meta(b"<metadata charset=big5>"), None);
        assert_eq!(
            prescan_meta(b"<meta charset=utf-16>").map(html_label_fixup),
            Some(UTF_8)
        );
    }

    #[test]
    fn stylesheets_fall_back_to_the_referring_encoding() {
        let (css, _, _) = encoding_rs::WINDOWS_1252.encode("p::before{content:\"café\"}");
        let d = decode_css(&css, None, encoding_rs::WINDOWS_1252);
        assert!(d.text.contains("café"));
        let charset = [b"@charset \"iso-8859-1\";".as_slice(), &css].concat();
        assert_eq!(
            decode_css(&charset, None, UTF_8).source,
            EncodingSource::CssCharset
        );
    }
}
