//! Snapshots on an origin of their own (optional): with `snapshot_origin` set, a snapshot
//! is never served on the app's origin. `/snapshots/…` there answers a redirect to a
//! signed, expiring address on the snapshot origin (`/v/LIB/ID/VERSION?e=…&s=…`), which
//! needs no cookie; the snapshot origin serves nothing else. Even a page that escaped the
//! sandbox would be on another site than the app: no cookies, no same-origin requests.

use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

/// How long a signed snapshot address works.
pub const SNAPSHOT_URL_LIFETIME: Duration = Duration::from_secs(3600);

/// The snapshot origin and the key its addresses are signed with.
pub struct SnapshotOrigin {
    /// `scheme://host[:port]`, no trailing slash.
    origin: String,
    /// `host[:port]` as browsers send it in `Host`, lower-case.
    authority: String,
    key: [u8; 32],
}

impl std::fmt::Debug for SnapshotOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotOrigin")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl SnapshotOrigin {
    #[must_use]
    pub fn new(origin: &str, key: [u8; 32]) -> Self {
        let authority = origin
            .split_once("://")
            .map_or(origin, |(_, a)| a)
            .to_ascii_lowercase();
        Self {
            origin: origin.to_owned(),
            authority,
            key,
        }
    }

    /// `scheme://host[:port]`.
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn mac(&self, lib: &str, id: i64, version: &str, expires: i64) -> String {
        let msg = format!("{lib}/{id}/{version}/{expires}");
        blake3::keyed_hash(&self.key, msg.as_bytes())
            .to_hex()
            .to_string()
    }

    /// The signed address of a snapshot, valid for [`SNAPSHOT_URL_LIFETIME`].
    #[must_use]
    pub fn url(&self, lib: &str, id: i64, version: &str) -> String {
        let expires = linksnap_store::now_ms() / 1000
            + i64::try_from(SNAPSHOT_URL_LIFETIME.as_secs()).unwrap_or(3600);
        format!(
            "{}/v/{lib}/{id}/{version}?e={expires}&s={}",
            self.origin,
            self.mac(lib, id, version, expires)
        )
    }

    fn valid(&self, lib: &str, id: i64, version: &str, expires: i64, sig: &str) -> bool {
        let expected = self.mac(lib, id, version, expires);
        let same = expected.len() == sig.len()
            && expected
                .bytes()
                .zip(sig.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        same && expires >= linksnap_store::now_ms() / 1000
    }

    /// Whether a request is addressed to the snapshot origin.
    #[must_use]
    pub fn is_mine(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h.eq_ignore_ascii_case(&self.authority))
    }
}

/// The name of a library in snapshot addresses: `main`, or `u` + the user's id.
#[must_use]
pub fn library_name(s: &AppState) -> String {
    let main = &s.accounts.data_dir().path;
    s.library
        .data_dir()
        .path
        .strip_prefix(main)
        .ok()
        .and_then(|rel| rel.to_str())
        .and_then(|rel| rel.strip_prefix("users/"))
        .map_or_else(|| "main".to_owned(), |id| format!("u{id}"))
}

/// Keeps the two origins apart: on the snapshot origin only `/v/…` exists; on the app's,
/// `/v/…` does not.
pub(crate) async fn separate(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(origin) = &s.snapshot_origin else {
        return next.run(req).await;
    };
    let snapshot_path = req.uri().path().starts_with("/v/");
    if origin.is_mine(req.headers()) != snapshot_path {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response();
    }
    next.run(req).await
}

#[derive(Deserialize)]
pub(crate) struct Signed {
    e: i64,
    s: String,
}

/// `/v/{lib}/{id}/{version}` on the snapshot origin: the snapshot, if the signature holds.
pub(crate) async fn signed_snapshot(
    State(st): State<AppState>,
    Path((lib, id, version)): Path<(String, i64, String)>,
    Query(q): Query<Signed>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let gone = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such snapshot, or the address expired",
        )
    };
    let origin = st.snapshot_origin.as_ref().ok_or_else(gone)?;
    if !origin.valid(&lib, id, &version, q.e, &q.s) {
        return Err(gone());
    }
    let library = match lib.as_str() {
        "main" => st.accounts.clone(),
        u => {
            let uid: i64 = u
                .strip_prefix('u')
                .and_then(|n| n.parse().ok())
                .ok_or_else(gone)?;
            st.libs.of_user_id(uid).await.map_err(|_| gone())?
        }
    };
    let v = match version.as_str() {
        "latest" => None,
        v => Some(v.parse::<i64>().map_err(|_| gone())?),
    };
    let id = linksnap_store::LinkId(id);
    let title = library.get(id).await.map_err(|_| gone())?.title;
    let (bytes, media_type) = library.render(id, v).await.map_err(|_| gone())?;
    // Framed by its own framing page, and by the app's link pages.
    let mut ancestors = String::from("'self'");
    for o in st.names.app_origins() {
        ancestors.push(' ');
        ancestors.push_str(o);
    }
    let view = crate::snapview::View {
        title: &title,
        frame_ancestors: &ancestors,
        public: true,
    };
    Ok(crate::snapview::answer(&headers, &uri, &view, || {
        (bytes, media_type)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::parse_origin;

    #[test]
    fn signatures_bind_every_part_and_expire() {
        let o = SnapshotOrigin::new("http://snap.example:8081", [7; 32]);
        let url = o.url("u5", 12, "latest");
        let (path, query) = url.split_once('?').unwrap();
        assert!(
            path.starts_with("http://snap.example:8081/v/u5/12/latest"),
            "{url}"
        );
        let e: i64 = query.split('&').next().unwrap()[2..].parse().unwrap();
        let sig = &query.split("&s=").nth(1).unwrap();
        assert!(o.valid("u5", 12, "latest", e, sig));
        assert!(!o.valid("u6", 12, "latest", e, sig));
        assert!(!o.valid("u5", 13, "latest", e, sig));
        assert!(!o.valid("u5", 12, "1", e, sig));
        assert!(!o.valid("u5", 12, "latest", e + 1, sig));
        let old = linksnap_store::now_ms() / 1000 - 1;
        assert!(!o.valid("main", 1, "latest", old, &o.mac("main", 1, "latest", old)));
        let other = SnapshotOrigin::new("http://snap.example:8081", [8; 32]);
        assert!(!other.valid("u5", 12, "latest", e, sig));
    }

    #[test]
    fn origins_are_checked() {
        assert_eq!(
            parse_origin("http://Snap.Example:8081").unwrap(),
            "http://snap.example:8081"
        );
        assert_eq!(
            parse_origin("https://snap.example/").unwrap(),
            "https://snap.example"
        );
        assert!(parse_origin("https://snap.example/x").is_err());
        assert!(parse_origin("ftp://snap.example").is_err());
        let o = SnapshotOrigin::new("http://snap.example:8081", [0; 32]);
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "SNAP.example:8081".parse().unwrap());
        assert!(o.is_mine(&h));
        h.insert(header::HOST, "app.example:8081".parse().unwrap());
        assert!(!o.is_mine(&h));
    }
}
