//! Snapshots on an origin of their own (optional): with `snapshot_origin` set, a snapshot
//! is never served on the app's origin. `/snapshots/…` there answers a redirect to a
//! signed, expiring address on the snapshot origin (`/v/LIB/ID/VERSION?e=…&s=…`), which
//! needs no cookie; the snapshot origin serves nothing else. Even a page that escaped the
//! sandbox would be on another site than the app: no cookies, no same-origin requests.

use std::time::Duration;

use axum::http::{HeaderMap, header};

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

    pub(crate) fn valid(&self, lib: &str, id: i64, version: &str, expires: i64, sig: &str) -> bool {
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
