//! Black-box tests of the `linksnap` binary, over real HTTP on loopback.
//! One integration-test binary for the crate (link time matters on two cores).

mod support;

mod browser;
mod charset;
mod corpus;
mod faults;
mod hardening;
mod library;
mod limits;
mod mail;
mod mail_trust;
mod net;
mod policy;
mod readcache;
mod render;
mod sandbox;
mod security;
mod serve;
mod snap;
mod tidy;
mod ui;

use scraper::{Html, Selector};

/// Every reference in `html` that would make a browser reach the network when the
/// snapshot is opened. Links (`<a href>`) are navigation, not loads, and are not counted.
pub fn remote_references(html: &str) -> Vec<String> {
    let doc = Html::parse_document(html);
    let mut out = Vec::new();
    let all = Selector::parse("*").unwrap();
    for el in doc.select(&all) {
        let tag = el.value().name();
        for (name, value) in el.value().attrs() {
            let loads = match name {
                "src" | "srcset" | "poster" | "data" | "background" | "xlink:href" => true,
                "href" => !matches!(tag, "a" | "area"),
                "style" => value.contains("url("),
                "srcdoc" => {
                    out.extend(remote_references(value));
                    false
                }
                _ => false,
            };
            if !loads {
                continue;
            }
            let remote = match name {
                "style" => {
                    value.contains("url(http")
                        || value.contains("url(\"http")
                        || value.contains("url('http")
                }
                "srcset" => value.split(',').any(|c| c.trim().starts_with("http")),
                _ => {
                    let v = value.trim();
                    !(v.starts_with("data:") || v.starts_with('#') || v.is_empty())
                }
            };
            if remote && !(tag == "link" && is_inert_link(&el)) {
                out.push(format!("<{tag} {name}=\"{value}\">"));
            }
        }
        if tag == "style" {
            let css: String = el.text().collect();
            if css.contains("url(http") || css.contains("url(\"http") || css.contains("url('http") {
                out.push("<style> with a remote url()".to_owned());
            }
        }
    }
    out
}

/// `<link>`s a browser does not load: canonical, alternate (non-stylesheet), author…
fn is_inert_link(el: &scraper::ElementRef<'_>) -> bool {
    let rel = el.value().attr("rel").unwrap_or("").to_ascii_lowercase();
    let loads = [
        "stylesheet",
        "icon",
        "preload",
        "prefetch",
        "preconnect",
        "dns-prefetch",
        "modulepreload",
        "manifest",
        "prerender",
    ];
    !rel.split_ascii_whitespace()
        .any(|r| loads.contains(&r) || r.ends_with("icon"))
}
