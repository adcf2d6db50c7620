//! Turning a page and its fetched resources into one self-contained HTML document.
//!
//! [`Inliner`] walks a document with lol_html (streaming, no DOM) and, for every reference
//! it meets, asks the [`ResourceMap`] for the bytes. The same walk serves two purposes:
//! with an empty or partial map it *discovers* what must be fetched
//! ([`Inliner::references`]); with the full map its output is the snapshot. Because both
//! are one code path, discovery and rewriting can never disagree about what a reference is.
//!
//! Pure: no IO. Everything here is unit-tested on strings.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use encoding_rs::Encoding;
use lol_html::html_content::{ContentType, Element};
use lol_html::{RewriteStrSettings, element, end, rewrite_str, text};
use url::Url;

use crate::charset;
use crate::css::{self, CssRefKind};
use crate::resource::{Fetched, ResourceKind, ResourceMap};
use crate::template::{Kind, PartHash, SnapshotParts, placeholder};

/// The Content-Security-Policy every snapshot document carries in a `<meta>` at its top
/// (see [`SNAPSHOT_CSP`]).
macro_rules! snapshot_csp {
    () => {
        "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval' data: blob:; \
         style-src 'unsafe-inline' data: blob:; img-src data: blob:; font-src data: blob:; \
         media-src data: blob:; frame-src data: blob:; worker-src data: blob:; \
         connect-src 'none'; object-src 'none'; manifest-src 'none'; form-action 'none'; \
         base-uri 'none'"
    };
}

/// What a snapshot may load, wherever it is opened (from disk too, outside linksnap's
/// viewer): only what it carries inside itself (inline, `data:` and `blob:`); nothing
/// from the network, and no connection at all (`connect-src 'none'`: fetch, XHR,
/// WebSocket, EventSource, beacons). Kept scripts still run; what they reach for does
/// not load.
pub const SNAPSHOT_CSP: &str = snapshot_csp!();

/// Options that change the snapshot's content.
#[derive(Debug, Clone)]
pub struct InlineOptions {
    /// Keep scripts (inlined). When false: scripts and `on*` handlers are removed,
    /// `javascript:` links disarmed and `<noscript>` content shown.
    pub keep_scripts: bool,
    /// How deep frames inside frames are inlined.
    pub max_frame_depth: usize,
    /// How long an `@import` chain may be.
    pub max_import_depth: usize,
}

/// Default for [`InlineOptions::max_frame_depth`].
pub const DEFAULT_MAX_FRAME_DEPTH: usize = 5;
/// Default for [`InlineOptions::max_import_depth`].
pub const DEFAULT_MAX_IMPORT_DEPTH: usize = 10;

impl Default for InlineOptions {
    fn default() -> Self {
        Self {
            keep_scripts: true,
            max_frame_depth: DEFAULT_MAX_FRAME_DEPTH,
            max_import_depth: DEFAULT_MAX_IMPORT_DEPTH,
        }
    }
}

/// `rel` values whose only effect is to reach out to the network early.
const NETWORK_HINT_RELS: &[&str] = &[
    "preconnect",
    "dns-prefetch",
    "prefetch",
    "prerender",
    "preload",
    "modulepreload",
    "manifest",
    "pingback",
];

/// `rel` values that name an icon the browser fetches.
const ICON_RELS: &[&str] = &[
    "icon",
    "apple-touch-icon",
    "apple-touch-icon-precomposed",
    "mask-icon",
    "apple-touch-startup-image",
];

/// Lazy-loading attributes, in the order they are preferred, and what they stand for.
const LAZY_SRC: &[&str] = &["data-src", "data-lazy-src", "data-original", "data-lazy"];
const LAZY_SRCSET: &[&str] = &["data-srcset", "data-lazy-srcset"];

/// The snapshot's wrapper for external SVG sprites: present in layout (so gradients and
/// filters inside still work, which `display:none` would break) but invisible.
const SPRITE_WRAPPER: &str =
    "<div style=\"position:absolute;width:0;height:0;overflow:hidden\" aria-hidden=\"true\">";

/// Walks documents and inlines what they reference. See the module docs.
pub struct Inliner<'a> {
    /// What has been fetched so far; borrowed for the inliner's lifetime.
    resources: &'a ResourceMap,
    /// Content options, borrowed.
    opts: &'a InlineOptions,
    /// Every reference met, in first-seen order; read by [`Inliner::references`].
    found: RefCell<Found>,
    /// References not followed because they are nested deeper than a depth limit.
    skipped: RefCell<Vec<(Url, ResourceKind)>>,
    /// Every part the placeholders written so far name.
    parts: RefCell<SnapshotParts>,
    /// Stylesheets already processed, by URL. An entry is inserted empty before
    /// processing starts, which breaks `@import` cycles.
    css_cache: RefCell<HashMap<Url, Rc<str>>>,
}

/// References in first-seen order (with stylesheet depth), and the set of their URLs.
type Found = (Vec<(Url, ResourceKind, usize)>, HashSet<Url>);

/// Per-document state shared between the lol_html handlers of one walk.
#[derive(Default)]
struct DocState {
    charset_meta_inserted: bool,
    style_buf: String,
    noscript_buf: String,
    sprites: Vec<Url>,
}

impl<'a> Inliner<'a> {
    /// An inliner over `resources`.
    pub fn new(resources: &'a ResourceMap, opts: &'a InlineOptions) -> Self {
        Self {
            resources,
            opts,
            found: RefCell::default(),
            skipped: RefCell::default(),
            parts: RefCell::default(),
            css_cache: RefCell::default(),
        }
    }

    /// Every http(s) reference met by the walks so far, fragment removed, first-seen order.
    pub fn references(&self) -> Vec<(Url, ResourceKind)> {
        self.found
            .borrow()
            .0
            .iter()
            .map(|(u, k, _)| (u.clone(), *k))
            .collect()
    }

    /// Like [`Inliner::references`], with each stylesheet's `@import` depth (1 for a
    /// stylesheet the document links; 0 for everything that is not a stylesheet).
    pub fn references_with_depth(&self) -> Vec<(Url, ResourceKind, usize)> {
        self.found.borrow().0.clone()
    }

    /// References left out because a depth limit was reached; never fetched.
    pub fn skipped(&self) -> Vec<(Url, ResourceKind)> {
        self.skipped.borrow().clone()
    }

    fn skip(&self, url: &Url, kind: ResourceKind) {
        let key = ResourceMap::key(url);
        let mut skipped = self.skipped.borrow_mut();
        if !skipped.iter().any(|(u, _)| *u == key) {
            skipped.push((key, kind));
        }
    }

    /// The snapshot: `root` (what [`Inliner::inline_document`] returned) and every part
    /// its placeholders name.
    pub fn into_parts(self, root: String) -> SnapshotParts {
        let mut parts = self.parts.into_inner();
        parts.root = root;
        parts
    }

    fn text_part(&self, text: &str) -> PartHash {
        self.parts.borrow_mut().add_text(text.to_owned())
    }

    /// Rewrites a whole document fetched from `url` (whose bytes were in `encoding`) into
    /// the template of a self-contained UTF-8 document (see [`crate::template`]).
    pub fn inline_document(&self, html: &str, url: &Url, encoding: &'static Encoding) -> String {
        let base = document_base(html, url);
        self.rewrite_html(html, &base, url, encoding, 0, true)
    }

    fn record(&self, url: &Url, kind: ResourceKind) {
        self.record_at(url, kind, 0);
    }

    fn record_at(&self, url: &Url, kind: ResourceKind, depth: usize) {
        let key = ResourceMap::key(url);
        let mut found = self.found.borrow_mut();
        if found.1.insert(key.clone()) {
            found.0.push((key, kind, depth));
        }
    }

    /// Records `url` and returns its successful fetch, if there is one.
    fn fetched(&self, url: &Url, kind: ResourceKind) -> Option<&'a Fetched> {
        self.record(url, kind);
        self.resources.get(url)
    }

    /// A placeholder for the `data:` URI of `url`'s bytes, if it was fetched.
    fn data_uri(&self, url: &Url, kind: ResourceKind) -> Option<String> {
        let f = self.fetched(url, kind)?;
        let hash = self.parts.borrow_mut().add_binary(&f.bytes);
        Some(placeholder(Kind::BinaryData, &hash, &f.media_type))
    }

    fn rewrite_html(
        &self,
        html: &str,
        base: &Url,
        doc_url: &Url,
        encoding: &'static Encoding,
        depth: usize,
        is_document: bool,
    ) -> String {
        let state = RefCell::new(DocState::default());
        let settings = RewriteStrSettings::new()
            .append_element_content_handler(element!("*", |el| {
                if is_document && !state.borrow().charset_meta_inserted {
                    state.borrow_mut().charset_meta_inserted = true;
                    // The top document carries the policy; frames (`srcdoc`) inherit it.
                    let meta = if depth == 0 {
                        concat!(
                            "<meta charset=\"utf-8\">",
                            "<meta http-equiv=\"Content-Security-Policy\" content=\"",
                            snapshot_csp!(),
                            "\">"
                        )
                    } else {
                        "<meta charset=\"utf-8\">"
                    };
                    if el.tag_name().eq_ignore_ascii_case("html") {
                        el.prepend(meta, ContentType::Html);
                    } else {
                        el.before(meta, ContentType::Html);
                    }
                }
                self.rewrite_element(el, base, doc_url, encoding, depth, &state);
                Ok(())
            }))
            .append_element_content_handler(text!("style", |chunk| {
                let mut st = state.borrow_mut();
                st.style_buf.push_str(chunk.as_str());
                if chunk.last_in_text_node() {
                    let css = std::mem::take(&mut st.style_buf);
                    drop(st);
                    let out = escape_raw_text(&self.process_css(&css, base, encoding, 0), "style");
                    chunk.replace(&out, ContentType::Html);
                } else {
                    chunk.remove();
                }
                Ok(())
            }))
            .append_element_content_handler(text!("noscript", |chunk| {
                let mut st = state.borrow_mut();
                st.noscript_buf.push_str(chunk.as_str());
                if chunk.last_in_text_node() {
                    let inner = std::mem::take(&mut st.noscript_buf);
                    drop(st);
                    let out = self.rewrite_html(&inner, base, doc_url, encoding, depth, false);
                    chunk.replace(&out, ContentType::Html);
                } else {
                    chunk.remove();
                }
                Ok(())
            }))
            .append_document_content_handler(end!(|end| {
                let sprites = std::mem::take(&mut state.borrow_mut().sprites);
                for sprite in sprites {
                    if let Some(markup) = self.sprite_markup(&sprite, encoding, depth) {
                        let part = self.text_part(&markup);
                        end.append(&placeholder(Kind::Raw, &part, ""), ContentType::Html);
                    }
                }
                Ok(())
            }));
        match rewrite_str(html, settings) {
            Ok(out) => out,
            // lol_html fails only on memory limits or handler errors, and our handlers
            // return no errors; the unmodified text is the most faithful fallback.
            Err(e) => {
                tracing::warn!(error = %e, "HTML rewriting failed; keeping the document as is");
                html.to_owned()
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rewrite_element(
        &self,
        el: &mut Element<'_, '_>,
        base: &Url,
        doc_url: &Url,
        encoding: &'static Encoding,
        depth: usize,
        state: &RefCell<DocState>,
    ) {
        let tag = el.tag_name().to_ascii_lowercase();
        if let Some(style) = attr(el, "style") {
            let out = self.process_css(&style, base, encoding, 0);
            set_attr(el, "style", &out);
        }
        if !self.opts.keep_scripts {
            let handlers: Vec<String> = el
                .attributes()
                .iter()
                .map(|a| a.name())
                .filter(|n| n.starts_with("on"))
                .collect();
            for h in handlers {
                el.remove_attribute(&h);
            }
        }
        match tag.as_str() {
            "base" => el.remove(),
            "meta" => self.rewrite_meta(el),
            "link" => self.rewrite_link(el, base, encoding),
            "script" => self.rewrite_script(el, base, encoding),
            "noscript" if !self.opts.keep_scripts => el.remove_and_keep_content(),
            // srcset first: choosing its candidate needs the original src.
            "img" => {
                promote_lazy(el);
                self.inline_srcset(el, base);
                self.inline_attr(el, "src", base, ResourceKind::Image);
            }
            "source" => {
                promote_lazy(el);
                self.inline_srcset(el, base);
                self.inline_attr(el, "src", base, ResourceKind::Media);
            }
            "input" => {
                if attr(el, "type").is_some_and(|t| t.eq_ignore_ascii_case("image")) {
                    self.inline_attr(el, "src", base, ResourceKind::Image);
                }
                self.absolutize_attr(el, "formaction", base);
            }
            "video" | "audio" => {
                self.inline_attr(el, "poster", base, ResourceKind::Image);
                self.inline_attr(el, "src", base, ResourceKind::Media);
            }
            "track" => self.inline_attr(el, "src", base, ResourceKind::Media),
            "iframe" | "frame" => self.rewrite_frame(el, &tag, base, encoding, depth),
            "embed" => self.inline_attr(el, "src", base, ResourceKind::Embed),
            "object" => self.inline_attr(el, "data", base, ResourceKind::Embed),
            "body" | "table" | "td" | "th" | "tr" => {
                self.inline_attr(el, "background", base, ResourceKind::Image)
            }
            "image" | "feimage" => {
                self.inline_attr(el, "href", base, ResourceKind::Image);
                self.inline_attr(el, "xlink:href", base, ResourceKind::Image);
            }
            "use" => self.rewrite_use(el, base, doc_url, state),
            "a" | "area" => {
                el.remove_attribute("ping");
                self.rewrite_anchor(el, base, doc_url);
            }
            "form" => self.absolutize_attr(el, "action", base),
            "button" => self.absolutize_attr(el, "formaction", base),
            _ => {}
        }
    }

    fn rewrite_meta(&self, el: &mut Element<'_, '_>) {
        if el.has_attribute("charset") {
            // Replaced by the `<meta charset="utf-8">` inserted at the top.
            el.remove();
            return;
        }
        let Some(equiv) = attr(el, "http-equiv") else {
            return;
        };
        match equiv.trim().to_ascii_lowercase().as_str() {
            // The text is UTF-8 now; a CSP would block the inlined data; a refresh would
            // navigate away from the snapshot to the live site.
            "content-type"
            | "content-security-policy"
            | "content-security-policy-report-only"
            | "refresh" => el.remove(),
            _ => {}
        }
    }

    fn rewrite_link(&self, el: &mut Element<'_, '_>, base: &Url, encoding: &'static Encoding) {
        let rel = attr(el, "rel").unwrap_or_default().to_ascii_lowercase();
        let rels: Vec<&str> = rel.split_ascii_whitespace().collect();
        let loads_as_stylesheet = rels.contains(&"preload")
            && attr(el, "as").is_some_and(|a| a.eq_ignore_ascii_case("style"))
            && attr(el, "onload").is_some_and(|o| o.contains("stylesheet"));
        if rels.contains(&"stylesheet") || loads_as_stylesheet {
            el.remove_attribute("integrity");
            let Some(url) = attr(el, "href").and_then(|h| resolve(base, &h)) else {
                return;
            };
            match self.stylesheet(&url, encoding, 1) {
                Some(css) => {
                    let alternate = rels.contains(&"alternate");
                    let part = self.text_part(&css);
                    if alternate || contains_ignore_case(&css, "</style") {
                        set_attr(el, "href", &placeholder(Kind::TextData, &part, "text/css"));
                    } else {
                        let mut tag = String::from("<style");
                        for name in ["media", "title", "id", "class"] {
                            if let Some(v) = el.get_attribute(name) {
                                tag.push_str(&format!(" {name}=\"{}\"", v.replace('"', "&quot;")));
                            }
                        }
                        tag.push('>');
                        tag.push_str(&placeholder(Kind::Raw, &part, ""));
                        tag.push_str("</style>");
                        el.replace(&tag, ContentType::Html);
                    }
                }
                None => disarm(el, "href", &url),
            }
        } else if rels.iter().any(|r| ICON_RELS.contains(r)) {
            self.inline_attr(el, "href", base, ResourceKind::Image);
        } else if rels.iter().any(|r| NETWORK_HINT_RELS.contains(r)) {
            el.remove();
        } else {
            self.absolutize_attr(el, "href", base);
        }
    }

    fn rewrite_script(&self, el: &mut Element<'_, '_>, base: &Url, encoding: &'static Encoding) {
        let ty = attr(el, "type").unwrap_or_default();
        let is_module = ty.trim().eq_ignore_ascii_case("module");
        if !is_executable_script_type(&ty) {
            // JSON-LD, templates and other data blocks are inert: keep them.
            return;
        }
        if !self.opts.keep_scripts {
            el.remove();
            return;
        }
        el.remove_attribute("integrity");
        el.remove_attribute("nonce");
        let Some(url) = attr(el, "src").and_then(|s| resolve(base, &s)) else {
            return;
        };
        let Some(f) = self.fetched(&url, ResourceKind::Script) else {
            disarm(el, "src", &url);
            return;
        };
        let label = attr(el, "charset");
        let js = charset::decode_text(
            &f.bytes,
            f.content_type.as_deref(),
            label.as_deref(),
            encoding,
        )
        .text;
        el.remove_attribute("charset");
        let deferred = is_module || el.has_attribute("async") || el.has_attribute("defer");
        // An inline script runs at once and is parsed as HTML script data, where
        // `</script` and `<!--` change the parse; a `data:` URI keeps both the
        // execution order of async/defer/module scripts and the text exactly.
        let unsafe_inline = ["</script", "<!--", "<script"]
            .iter()
            .any(|s| contains_ignore_case(&js, s));
        let part = self.text_part(&js);
        if deferred || unsafe_inline {
            set_attr(
                el,
                "src",
                &placeholder(Kind::TextData, &part, "text/javascript"),
            );
        } else {
            el.remove_attribute("src");
            el.set_inner_content(&placeholder(Kind::Raw, &part, ""), ContentType::Html);
        }
    }

    fn rewrite_frame(
        &self,
        el: &mut Element<'_, '_>,
        tag: &str,
        base: &Url,
        encoding: &'static Encoding,
        depth: usize,
    ) {
        promote_lazy(el);
        // An iframe shows its `srcdoc` when it has one, whatever its `src` says (the
        // browser engine writes a frame it rendered so).
        if tag == "iframe" && el.has_attribute("srcdoc") {
            el.remove_attribute("src");
        }
        if let Some(url) = attr(el, "src").and_then(|s| resolve(base, &s)) {
            if depth + 1 > self.opts.max_frame_depth {
                self.skip(&url, ResourceKind::Frame);
                disarm(el, "src", &url);
                return;
            }
            let Some(f) = self.fetched(&url, ResourceKind::Frame) else {
                disarm(el, "src", &url);
                return;
            };
            if f.media_type != "text/html" && f.media_type != "application/xhtml+xml" {
                let part = self.parts.borrow_mut().add_binary(&f.bytes);
                set_attr(
                    el,
                    "src",
                    &placeholder(Kind::BinaryData, &part, &f.media_type),
                );
                return;
            }
            let host = f.final_url.host_str();
            let decoded = charset::decode_html(&f.bytes, f.content_type.as_deref(), host);
            let frame_base = document_base(&decoded.text, &f.final_url);
            let html = self.rewrite_html(
                &decoded.text,
                &frame_base,
                &f.final_url,
                decoded.encoding,
                depth + 1,
                true,
            );
            let part = self.text_part(&html);
            if tag == "iframe" {
                el.remove_attribute("src");
                set_attr(el, "srcdoc", &placeholder(Kind::Attribute, &part, ""));
            } else {
                // <frame> has no srcdoc; a data: URI is the only way to embed it.
                set_attr(el, "src", &placeholder(Kind::TextData, &part, "text/html"));
            }
        } else if let Some(srcdoc) = attr(el, "srcdoc") {
            // A part, not inline text: its own parts expand raw, and must be escaped with it.
            let html = self.rewrite_html(&srcdoc, base, base, encoding, depth + 1, true);
            let part = self.text_part(&html);
            set_attr(el, "srcdoc", &placeholder(Kind::Attribute, &part, ""));
        }
    }

    fn rewrite_use(
        &self,
        el: &mut Element<'_, '_>,
        base: &Url,
        doc_url: &Url,
        state: &RefCell<DocState>,
    ) {
        for name in ["href", "xlink:href"] {
            let Some(raw) = attr(el, name) else { continue };
            if raw.trim_start().starts_with('#') {
                continue;
            }
            let Some(url) = resolve(base, &raw) else {
                continue;
            };
            if same_document(&url, doc_url) {
                set_attr(el, name, &format!("#{}", url.fragment().unwrap_or("")));
                continue;
            }
            match self.fetched(&url, ResourceKind::SvgSprite) {
                Some(_) => {
                    let key = ResourceMap::key(&url);
                    let mut st = state.borrow_mut();
                    if !st.sprites.contains(&key) {
                        st.sprites.push(key);
                    }
                    set_attr(el, name, &format!("#{}", url.fragment().unwrap_or("")));
                }
                None => disarm(el, name, &url),
            }
        }
    }

    /// The markup that brings an external sprite's symbols into the document.
    fn sprite_markup(
        &self,
        url: &Url,
        encoding: &'static Encoding,
        depth: usize,
    ) -> Option<String> {
        let f = self.resources.get(url)?;
        let text = charset::decode_text(&f.bytes, f.content_type.as_deref(), None, encoding).text;
        let svg_start = find_ignore_case(&text, "<svg")?;
        let svg = self.rewrite_html(
            &text[svg_start..],
            &f.final_url,
            &f.final_url,
            encoding,
            depth,
            false,
        );
        Some(format!("{SPRITE_WRAPPER}{svg}</div>"))
    }

    fn rewrite_anchor(&self, el: &mut Element<'_, '_>, base: &Url, doc_url: &Url) {
        let Some(raw) = attr(el, "href") else { return };
        let trimmed = raw.trim();
        if trimmed.starts_with('#') {
            return;
        }
        if trimmed.len() >= 11 && trimmed[..11].eq_ignore_ascii_case("javascript:") {
            if !self.opts.keep_scripts {
                el.remove_attribute("href");
            }
            return;
        }
        if let Ok(url) = base.join(trimmed) {
            if same_document(&url, doc_url) && url.fragment().is_some() {
                set_attr(el, "href", &format!("#{}", url.fragment().unwrap_or("")));
            } else {
                set_attr(el, "href", url.as_str());
            }
        }
    }

    fn absolutize_attr(&self, el: &mut Element<'_, '_>, name: &str, base: &Url) {
        if let Some(raw) = attr(el, name)
            && let Ok(url) = base.join(raw.trim())
        {
            set_attr(el, name, url.as_str());
        }
    }

    /// Replaces a URL attribute by a `data:` URI of what it references.
    fn inline_attr(&self, el: &mut Element<'_, '_>, name: &str, base: &Url, kind: ResourceKind) {
        let Some(url) = attr(el, name).and_then(|v| resolve(base, &v)) else {
            return;
        };
        match self.data_uri(&url, kind) {
            Some(data) => set_attr(el, name, &data),
            None => disarm(el, name, &url),
        }
    }

    /// Keeps the one `srcset` candidate a browser at device-pixel-ratio 1 would show.
    ///
    /// Keeping every candidate is not faithful: Chromium treats `data:` candidates as
    /// already cached and shows the densest one, so a 2x image would replace the 1x image
    /// the live page showed. One candidate is also smaller and fetches less.
    fn inline_srcset(&self, el: &mut Element<'_, '_>, base: &Url) {
        let Some(srcset) = attr(el, "srcset") else {
            return;
        };
        let candidates = parse_srcset(&srcset);
        let src = attr(el, "src");
        let sizes = attr(el, "sizes");
        let Some((raw, descriptor)) =
            choose_candidate(&candidates, src.as_deref(), sizes.as_deref())
        else {
            el.remove_attribute("srcset");
            return;
        };
        if raw.starts_with("data:") {
            set_attr(el, "srcset", &format!("{raw}{descriptor}"));
            return;
        }
        let chosen = resolve(base, raw);
        let same_as_src =
            chosen.is_some() && src.as_deref().and_then(|s| resolve(base, s)) == chosen;
        match chosen.and_then(|url| self.data_uri(&url, ResourceKind::Image)) {
            // The src already holds this image: one copy is enough.
            Some(_) if same_as_src && (descriptor.is_empty() || descriptor == " 1x") => {
                el.remove_attribute("srcset");
            }
            Some(data) => set_attr(el, "srcset", &format!("{data}{descriptor}")),
            None => {
                el.remove_attribute("srcset");
                set_attr(el, "data-linksnap-srcset", &srcset);
            }
        }
    }

    /// Rewrites every reference in a stylesheet's text.
    fn process_css(
        &self,
        css: &str,
        base: &Url,
        encoding: &'static Encoding,
        depth: usize,
    ) -> String {
        css::rewrite(css::strip_charset_rule(css), |r| {
            let Some(url) = resolve(base, &r.url) else {
                return r.url.clone();
            };
            match r.kind {
                CssRefKind::Import => match self.stylesheet(&url, encoding, depth + 1) {
                    Some(text) => placeholder(Kind::TextData, &self.text_part(&text), "text/css"),
                    None => "data:text/css,".to_owned(),
                },
                CssRefKind::Asset => self
                    .data_uri(&url, ResourceKind::CssAsset)
                    .unwrap_or_else(|| "data:,".to_owned()),
            }
        })
    }

    /// The processed text of the stylesheet at `url`, if it was fetched.
    fn stylesheet(&self, url: &Url, encoding: &'static Encoding, depth: usize) -> Option<Rc<str>> {
        if depth > self.opts.max_import_depth {
            self.skip(url, ResourceKind::Stylesheet);
            return None;
        }
        self.record_at(url, ResourceKind::Stylesheet, depth);
        let key = ResourceMap::key(url);
        if let Some(done) = self.css_cache.borrow().get(&key) {
            return Some(done.clone());
        }
        let f = self.resources.get(url)?;
        self.css_cache
            .borrow_mut()
            .insert(key.clone(), Rc::from(""));
        let decoded = charset::decode_css(&f.bytes, f.content_type.as_deref(), encoding);
        let out: Rc<str> =
            Rc::from(self.process_css(&decoded.text, &f.final_url, decoded.encoding, depth));
        self.css_cache.borrow_mut().insert(key, out.clone());
        Some(out)
    }
}

/// The URL relative references in `html` resolve against: the first `<base href>`, else
/// the document's own URL.
pub fn document_base(html: &str, url: &Url) -> Url {
    let found: RefCell<Option<Url>> = RefCell::new(None);
    let settings =
        RewriteStrSettings::new().append_element_content_handler(element!("base[href]", |el| {
            let mut f = found.borrow_mut();
            if f.is_none()
                && let Some(href) = attr(el, "href")
            {
                *f = url.join(href.trim()).ok();
            }
            Ok(())
        }));
    // Only the side effect matters; a rewriting failure just means no base was found.
    let _ = rewrite_str(html, settings);
    found.into_inner().unwrap_or_else(|| url.clone())
}

/// An attribute's value with character references decoded.
fn attr(el: &Element<'_, '_>, name: &str) -> Option<String> {
    el.get_attribute(name)
        .map(|v| html_escape::decode_html_entities(&v).into_owned())
}

/// Sets an attribute; lol_html escapes only `"`, so `&` is escaped here.
fn set_attr(el: &mut Element<'_, '_>, name: &str, value: &str) {
    let escaped = value.replace('&', "&amp;");
    if let Err(e) = el.set_attribute(name, &escaped) {
        tracing::debug!(error = %e, name, "attribute not set");
    }
}

/// Removes a reference that could not be inlined, so that opening the snapshot never
/// reaches the network, and keeps the original URL for the record.
fn disarm(el: &mut Element<'_, '_>, name: &str, url: &Url) {
    el.remove_attribute(name);
    let keep = format!("data-linksnap-{}", name.replace(':', "-"));
    set_attr(el, &keep, url.as_str());
}

/// Resolves a reference to an http(s) URL worth fetching.
fn resolve(base: &Url, raw: &str) -> Option<Url> {
    let raw = raw.trim();
    if raw.is_empty() || raw.starts_with('#') {
        return None;
    }
    let url = base.join(raw).ok()?;
    matches!(url.scheme(), "http" | "https").then_some(url)
}

fn same_document(a: &Url, b: &Url) -> bool {
    a.as_str().split('#').next() == b.as_str().split('#').next()
}

/// Makes lazy-loading attributes real: `data-src` becomes `src`, `data-srcset` becomes
/// `srcset`; the lazy attributes go so no script swaps the network URL back in.
fn promote_lazy(el: &mut Element<'_, '_>) {
    for (lazy, real) in [(LAZY_SRC, "src"), (LAZY_SRCSET, "srcset")] {
        if let Some((name, value)) = lazy.iter().find_map(|n| {
            el.get_attribute(n)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (*n, v))
        }) {
            if let Err(e) = el.set_attribute(real, &value) {
                tracing::debug!(error = %e, "lazy attribute not promoted");
            }
            el.remove_attribute(name);
        }
    }
}

fn is_executable_script_type(ty: &str) -> bool {
    let t = ty.trim().to_ascii_lowercase();
    t.is_empty()
        || t == "module"
        || t.contains("javascript")
        || t.contains("ecmascript")
        || t.contains("jscript")
        || t.contains("livescript")
}

/// Splits a `srcset` into (URL, rest-of-candidate including the leading separator).
fn parse_srcset(srcset: &str) -> Vec<(&str, String)> {
    let mut out = Vec::new();
    let mut rest = srcset;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
        if rest.is_empty() {
            break;
        }
        let url_end = rest
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let mut url = &rest[..url_end];
        rest = &rest[url_end..];
        let mut descriptor = String::new();
        if url.ends_with(',') {
            url = url.trim_end_matches(',');
        } else {
            let mut depth = 0usize;
            let end = rest
                .char_indices()
                .find(|&(_, c)| match c {
                    '(' => {
                        depth += 1;
                        false
                    }
                    ')' => {
                        depth = depth.saturating_sub(1);
                        false
                    }
                    ',' => depth == 0,
                    _ => false,
                })
                .map_or(rest.len(), |(i, _)| i);
            let d = rest[..end].trim();
            if !d.is_empty() {
                descriptor = format!(" {d}");
            }
            rest = &rest[end..];
        }
        if !url.is_empty() {
            out.push((url, descriptor));
        }
    }
    out
}

/// The viewport width assumed when choosing among width-described candidates.
const ASSUMED_VIEWPORT_PX: f64 = 1280.0;

/// The candidate a browser at device-pixel-ratio 1 picks, per the HTML standard's
/// selection: for density descriptors the lowest density of at least 1x (`src` counting as
/// 1x when no candidate says 1x); for width descriptors the narrowest image at least as
/// wide as the slot `sizes` gives on a desktop-wide viewport.
fn choose_candidate<'s>(
    candidates: &[(&'s str, String)],
    src: Option<&'s str>,
    sizes: Option<&str>,
) -> Option<(&'s str, String)> {
    let mut dense: Vec<(f64, &str, &str)> = Vec::new();
    let mut wide: Vec<(f64, &str, &str)> = Vec::new();
    for (url, d) in candidates {
        let d_trim = d.trim();
        if let Some(w) = d_trim.strip_suffix('w').and_then(|n| n.parse::<f64>().ok()) {
            wide.push((w, url, d));
        } else {
            let x = d_trim
                .strip_suffix('x')
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(1.0);
            dense.push((x, url, d));
        }
    }
    if !wide.is_empty() {
        let slot = slot_width(sizes);
        wide.sort_by(|a, b| a.0.total_cmp(&b.0));
        let pick = wide.iter().find(|(w, _, _)| *w >= slot).or(wide.last())?;
        return Some((pick.1, pick.2.to_owned()));
    }
    if let Some(src) = src.filter(|s| !s.trim().is_empty())
        && !dense.iter().any(|(x, _, _)| *x == 1.0)
    {
        dense.push((1.0, src, ""));
    }
    dense.sort_by(|a, b| a.0.total_cmp(&b.0));
    let pick = dense.iter().find(|(x, _, _)| *x >= 1.0).or(dense.last())?;
    Some((pick.1, pick.2.to_owned()))
}

/// The width in CSS pixels that `sizes` gives the image: its last (unconditional) entry
/// when that is in `px` or `vw`, else the whole assumed viewport.
fn slot_width(sizes: Option<&str>) -> f64 {
    let last = sizes
        .and_then(|s| s.rsplit(',').next())
        .map(str::trim)
        .unwrap_or("100vw");
    let last = last.rsplit(' ').next().unwrap_or(last);
    if let Some(px) = last.strip_suffix("px").and_then(|n| n.parse::<f64>().ok()) {
        px
    } else if let Some(vw) = last.strip_suffix("vw").and_then(|n| n.parse::<f64>().ok()) {
        vw / 100.0 * ASSUMED_VIEWPORT_PX
    } else {
        ASSUMED_VIEWPORT_PX
    }
}

fn find_ignore_case(hay: &str, needle: &str) -> Option<usize> {
    hay.as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    find_ignore_case(hay, needle).is_some()
}

/// Makes text safe inside a raw-text element: a closing tag inside it is escaped with a
/// CSS escape, which means the same in CSS (`\/` is `/`).
fn escape_raw_text(text: &str, tag: &str) -> String {
    let needle = format!("</{tag}");
    if !contains_ignore_case(text, &needle) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(i) = find_ignore_case(rest, &needle) {
        out.push_str(&rest[..i]);
        out.push_str("<\\/");
        out.push_str(&rest[i + 2..i + needle.len()]);
        rest = &rest[i + needle.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn site() -> Url {
        Url::parse("http://site.test/dir/page.html").unwrap()
    }

    fn fetched(url: &str, ct: &str, body: &[u8]) -> (Url, Fetched) {
        let u = Url::parse(url).unwrap();
        (
            u.clone(),
            Fetched {
                final_url: u,
                status: 200,
                headers: vec![],
                content_type: Some(ct.to_owned()),
                media_type: crate::resource::media_type_of(Some(ct), body),
                bytes: Bytes::copy_from_slice(body),
                wire: crate::resource::Wire::default(),
                redirects: Vec::new(),
            },
        )
    }

    fn map(items: &[(&str, &str, &[u8])]) -> ResourceMap {
        let mut m = ResourceMap::default();
        for (u, ct, b) in items {
            let (url, f) = fetched(u, ct, b);
            m.insert(&url, Ok(f));
        }
        m
    }

    fn check(
        html: &str,
        resources: &ResourceMap,
        opts: &InlineOptions,
        expect: &[&str],
        absent: &[&str],
    ) -> String {
        let inliner = Inliner::new(resources, opts);
        let root = inliner.inline_document(html, &site(), encoding_rs::UTF_8);
        let out = inliner.into_parts(root).expand();
        for e in expect {
            assert!(out.contains(e), "expected {e:?} in:\n{out}");
        }
        for a in absent {
            assert!(!out.contains(a), "did not expect {a:?} in:\n{out}");
        }
        out
    }

    #[test]
    fn discovery_lists_every_reference_kind() {
        let html = r#"<html><head><base href="/base/"><link rel=stylesheet href="s.css"><link rel=icon href="/fav.ico">
            <script src="a.js"></script><style>p{background:url(bg.png)}</style></head>
            <body style="background:url('body.png')"><img src="i.png" srcset="i2.png 2x, i3.png 3x"><img data-src="lazy.png" src="data:,">
            <picture><source srcset="p.webp"></picture><video poster="poster.jpg"></video>
            <iframe src="frame.html"></iframe><svg><use href="sprite.svg#a"/></svg>
            <noscript><img src="ns.png"></noscript><a href="other.html">x</a></body></html>"#;
        let empty = ResourceMap::default();
        let opts = InlineOptions::default();
        let inliner = Inliner::new(&empty, &opts);
        inliner.inline_document(html, &site(), encoding_rs::UTF_8);
        let refs: Vec<String> = inliner
            .references()
            .iter()
            .map(|(u, k)| format!("{} {}", k.as_str(), u.path()))
            .collect();
        assert_eq!(
            refs,
            vec![
                "stylesheet /base/s.css",
                "image /fav.ico",
                "script /base/a.js",
                "css-asset /base/bg.png",
                "css-asset /base/body.png",
                "image /base/i.png",
                "image /base/lazy.png",
                "image /base/p.webp",
                "image /base/poster.jpg",
                "frame /base/frame.html",
                "svg-sprite /base/sprite.svg",
                "image /base/ns.png",
            ]
        );
    }

    #[test]
    fn stylesheets_become_style_elements_with_imports_and_assets_inlined() {
        let r = map(&[
            (
                "http://site.test/dir/s.css",
                "text/css",
                b"@import 'sub/i.css';body{background:url(bg.png)}",
            ),
            (
                "http://site.test/dir/sub/i.css",
                "text/css",
                b"h1{background:url(../f.woff2)}",
            ),
            (
                "http://site.test/dir/bg.png",
                "image/png",
                b"\x89PNG\r\n\x1a\n",
            ),
            ("http://site.test/dir/f.woff2", "font/woff2", b"wOF2"),
        ]);
        let out = check(
            r#"<link rel="stylesheet" media="screen" href="s.css" integrity="sha384-x">"#,
            &r,
            &InlineOptions::default(),
            &[
                "<style media=\"screen\">@import url(\"data:text/css;charset=utf-8,h1%7Bbackground:url(%22data:font/woff2;base64,d09GMg==%22)%7D\");body{background:url(\"data:image/png;base64,iVBORw0KGgo=\")}</style>",
            ],
            &["integrity", "<link"],
        );
        assert!(out.starts_with("<meta charset=\"utf-8\">"), "{out}");
    }

    #[test]
    fn pages_of_one_site_share_their_stylesheet_and_image_parts() {
        let r = map(&[
            (
                "http://site.test/dir/s.css",
                "text/css",
                b"body{background:url(bg.png)} h1{font-family:x}",
            ),
            (
                "http://site.test/dir/bg.png",
                "image/png",
                b"\x89PNG\r\n\x1a\nbg",
            ),
            (
                "http://site.test/dir/logo.png",
                "image/png",
                b"\x89PNG\r\n\x1a\nlogo",
            ),
        ]);
        let opts = InlineOptions::default();
        let snapshot = |html: &str, url: &str| {
            let inliner = Inliner::new(&r, &opts);
            let root = inliner.inline_document(html, &Url::parse(url).unwrap(), encoding_rs::UTF_8);
            inliner.into_parts(root)
        };
        let a = snapshot(
            r#"<link rel=stylesheet href=s.css><img src=logo.png><p>first article</p>"#,
            "http://site.test/dir/a.html",
        );
        let b = snapshot(
            r#"<link rel=stylesheet href="/dir/s.css"><img src="/dir/logo.png"><p>second</p>"#,
            "http://site.test/dir/b.html",
        );
        assert_ne!(a.root, b.root);
        assert_eq!(
            a.texts.keys().collect::<Vec<_>>(),
            b.texts.keys().collect::<Vec<_>>()
        );
        assert_eq!(
            a.binaries.keys().collect::<Vec<_>>(),
            b.binaries.keys().collect::<Vec<_>>()
        );
        assert_eq!((a.texts.len(), a.binaries.len()), (1, 2));
        // The page's own template is small: the shared bytes live in the parts.
        assert!(a.root.len() < 300 + SNAPSHOT_CSP.len(), "{}", a.root);
        assert!(
            a.expand().contains("first article") && a.expand().contains("data:image/png;base64,")
        );
    }

    #[test]
    fn import_cycles_terminate() {
        let r = map(&[
            (
                "http://site.test/dir/a.css",
                "text/css",
                b"@import 'b.css';a{}",
            ),
            (
                "http://site.test/dir/b.css",
                "text/css",
                b"@import 'a.css';b{}",
            ),
        ]);
        check(
            r#"<link rel=stylesheet href=a.css>"#,
            &r,
            &InlineOptions::default(),
            &["a{}", "b%7B%7D"],
            &[],
        );
    }

    #[test]
    fn unfetched_references_are_disarmed_never_left_pointing_at_the_network() {
        let empty = ResourceMap::default();
        check(
            r#"<img src="gone.png"><script src="gone.js"></script><link rel=stylesheet href=gone.css><iframe src="f.html"></iframe><style>p{background:url(x.png)}</style>"#,
            &empty,
            &InlineOptions::default(),
            &[
                r#"data-linksnap-src="http://site.test/dir/gone.png""#,
                r#"url("data:,")"#,
            ],
            &[r#" src="#, r#" href="#, "srcdoc"],
        );
    }

    #[test]
    fn network_hints_csp_refresh_base_and_ping_are_removed() {
        // The page's own policy goes (it would block the inlined data); ours, which
        // forbids the network, is the only one left, at the top.
        let out = check(
            r##"<head><base href="http://other.test/"><meta http-equiv="Content-Security-Policy" content="default-src 'none'"><meta http-equiv=refresh content="5;url=/x">
            <link rel=preconnect href="https://cdn.test"><link rel=dns-prefetch href="//cdn.test"><link rel=prefetch href=/n><link rel=canonical href="/canon">
            <meta charset="gb2312"></head><a href="x.html" ping="/track">x</a><a href="#top">t</a><a href="/dir/page.html#sec">s</a>"##,
            &ResourceMap::default(),
            &InlineOptions::default(),
            &[
                r#"<link rel=canonical href="http://other.test/canon">"#,
                r#"<a href="http://other.test/x.html">"#,
                r##"<a href="#top">"##,
                r#"<meta charset="utf-8">"#,
            ],
            &[
                "<base",
                "content=\"default-src 'none'\"",
                "refresh",
                "preconnect",
                "dns-prefetch",
                "prefetch",
                "ping=",
                "gb2312",
            ],
        );
        assert_eq!(out.matches("Content-Security-Policy").count(), 1, "{out}");
        let ours = format!(
            "<meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"{SNAPSHOT_CSP}\">"
        );
        assert!(out.starts_with(&ours), "{out}");
    }

    #[test]
    fn scripts_are_inlined_or_removed() {
        let r = map(&[
            (
                "http://site.test/dir/a.js",
                "text/javascript",
                b"document.title='a'",
            ),
            (
                "http://site.test/dir/d.js",
                "text/javascript",
                b"var s='</script>'",
            ),
        ]);
        check(
            r#"<script src="a.js" integrity="x"></script><script src="d.js"></script><script defer src="a.js"></script><script type="application/ld+json">{}</script><button onclick="go()">b</button>"#,
            &r,
            &InlineOptions::default(),
            &[
                "<script>document.title='a'</script>",
                "<script src=\"data:text/javascript;charset=utf-8,var%20s=%27%3C/script%3E%27\"></script>",
                "<script defer src=\"data:text/javascript;",
                "onclick",
            ],
            &["integrity"],
        );
        let no_js = InlineOptions {
            keep_scripts: false,
            ..InlineOptions::default()
        };
        check(
            r#"<script src="a.js"></script><script>alert(1)</script><script type="application/ld+json">{"a":1}</script><body onload="x()"><a href="javascript:void(0)">j</a><noscript><img src="n.png"><p>no js</p></noscript>"#,
            &map(&[(
                "http://site.test/dir/n.png",
                "image/png",
                b"\x89PNG\r\n\x1a\n",
            )]),
            &no_js,
            &[
                r#"{"a":1}"#,
                "<p>no js</p>",
                r#"<img src="data:image/png;base64,"#,
                "<a>j</a>",
            ],
            &[
                "alert",
                "onload",
                "javascript:",
                "<noscript",
                "document.title",
            ],
        );
    }

    #[test]
    fn frames_are_inlined_recursively_up_to_the_depth_limit() {
        let r = map(&[
            (
                "http://site.test/dir/f1.html",
                "text/html",
                br#"<p>frame one & "quoted"</p><iframe src="f2.html"></iframe>"#,
            ),
            (
                "http://site.test/dir/f2.html",
                "text/html",
                br#"<img src="i.png"><iframe src="f3.html"></iframe>"#,
            ),
            ("http://site.test/dir/f3.html", "text/html", b"<p>deep</p>"),
            (
                "http://site.test/dir/i.png",
                "image/png",
                b"\x89PNG\r\n\x1a\n",
            ),
        ]);
        let opts = InlineOptions {
            max_frame_depth: 2,
            ..InlineOptions::default()
        };
        let out = check(
            r#"<iframe src="f1.html"></iframe><frameset><frame src="f3.html"></frameset>"#,
            &r,
            &opts,
            &[
                "<iframe srcdoc=\"<meta charset=&quot;utf-8&quot;><p>frame one &amp; &quot;quoted&quot;</p><iframe srcdoc=&quot;",
                "data:image/png;base64",
                "<iframe data-linksnap-src=&amp;quot;http://site.test/dir/f3.html&amp;quot;>",
                "<frame src=\"data:text/html;charset=utf-8,%3Cmeta%20charset=%22utf-8%22%3E%3Cp%3Edeep",
            ],
            &[],
        );
        assert_eq!(
            out.matches("deep").count(),
            1,
            "the depth-3 iframe is not inlined"
        );
    }

    #[test]
    fn lazy_images_and_srcset_are_made_real() {
        let r = map(&[
            (
                "http://site.test/dir/real.png",
                "image/png",
                b"\x89PNG\r\n\x1a\nA",
            ),
            (
                "http://site.test/dir/a.png",
                "image/png",
                b"\x89PNG\r\n\x1a\nB",
            ),
            (
                "http://site.test/dir/b,c.png",
                "image/png",
                b"\x89PNG\r\n\x1a\nC",
            ),
        ]);
        check(
            r#"<img src="data:image/gif;base64,R0lGOD" data-src="real.png" data-srcset="a.png 1x, b,c.png 2x">"#,
            &r,
            &InlineOptions::default(),
            &[
                "src=\"data:image/png;base64,iVBORw0KGgpB\"",
                "srcset=\"data:image/png;base64,iVBORw0KGgpC 1x\"",
            ],
            &["data-src", "R0lGOD", "iVBORw0KGgpD"],
        );
    }

    #[test]
    fn external_svg_sprites_are_brought_into_the_document() {
        let r = map(&[(
            "http://site.test/dir/icons.svg",
            "image/svg+xml",
            br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><symbol id="icon-1"><path d="M0 0"/></symbol></svg>"#,
        )]);
        check(
            r#"<body><svg><use xlink:href="icons.svg#icon-1"></use></svg></body>"#,
            &r,
            &InlineOptions::default(),
            &[
                r##"<use xlink:href="#icon-1">"##,
                r#"<symbol id="icon-1">"#,
                SPRITE_WRAPPER,
            ],
            &["<?xml", "icons.svg"],
        );
    }

    #[test]
    fn entities_in_attributes_are_decoded_before_resolving() {
        let r = map(&[("http://site.test/dir/i.php?a=1&b=2", "image/gif", b"GIF89a")]);
        check(
            r#"<img src="i.php?a=1&amp;b=2">"#,
            &r,
            &InlineOptions::default(),
            &["data:image/gif;base64,R0lGODlh"],
            &["i.php"],
        );
    }

    #[test]
    fn srcset_parsing_follows_the_standard() {
        let parsed = parse_srcset(
            " a.png 1x,b.png  2x , data:image/png;base64,AAA= 3x, c.png, d.png 100w,e,f.png",
        );
        let urls: Vec<_> = parsed.iter().map(|(u, d)| format!("{u}|{d}")).collect();
        assert_eq!(
            urls,
            vec![
                "a.png| 1x",
                "b.png| 2x",
                "data:image/png;base64,AAA=| 3x",
                "c.png|",
                "d.png| 100w",
                "e,f.png|"
            ]
        );
    }

    #[test]
    fn the_candidate_a_dpr1_browser_shows_is_chosen() {
        let pick = |srcset: &str, src: Option<&str>, sizes: Option<&str>| {
            let c = parse_srcset(srcset);
            choose_candidate(&c, src, sizes).map(|(u, d)| format!("{u}{d}"))
        };
        assert_eq!(
            pick("a.png 2x, b.png 1x, c.png 3x", None, None).as_deref(),
            Some("b.png 1x")
        );
        assert_eq!(
            pick("a.png 2x, c.png 3x", Some("s.png"), None).as_deref(),
            Some("s.png")
        );
        assert_eq!(
            pick("a.png 2x, c.png 3x", None, None).as_deref(),
            Some("a.png 2x")
        );
        assert_eq!(
            pick("a.png 0.5x", None, None).as_deref(),
            Some("a.png 0.5x")
        );
        assert_eq!(
            pick(
                "s.png 400w, m.png 800w, l.png 1600w",
                None,
                Some("(max-width: 600px) 100vw, 600px")
            )
            .as_deref(),
            Some("m.png 800w")
        );
        assert_eq!(
            pick("s.png 400w, m.png 800w, l.png 1600w", None, None).as_deref(),
            Some("l.png 1600w")
        );
        assert_eq!(
            pick("s.png 400w, m.png 800w", None, Some("50vw")).as_deref(),
            Some("m.png 800w")
        );
        assert_eq!(pick("", None, None), None);
    }

    #[test]
    fn raw_text_closing_tags_are_escaped() {
        assert_eq!(
            escape_raw_text("a{content:'</STYLE>'}", "style"),
            "a{content:'<\\/STYLE>'}"
        );
    }
}
