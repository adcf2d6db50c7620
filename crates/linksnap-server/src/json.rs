//! The JSON shapes of links, versions, search hits and tags, shared by the CLI's `--json`
//! output and the REST API (documented in the README; fields are only ever added).

use std::time::{Duration, UNIX_EPOCH};

use linksnap_store::{Link, SearchResult, TagName, Version};
use serde::Serialize;
use utoipa::ToSchema;

/// Unix milliseconds as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time, as Unix milliseconds; the date
/// filters of the CLI and the API.
///
/// # Errors
/// A message naming the input.
pub fn parse_date(s: &str) -> Result<i64, String> {
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    humantime::parse_rfc3339_weak(&full)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .ok_or_else(|| format!("`{s}` is not a date (YYYY-MM-DD or RFC 3339)"))
}

/// A link.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkJson {
    pub id: i64,
    pub url: String,
    pub title: String,
    pub tags: Vec<String>,
    pub status: &'static str,
    pub failure: Option<String>,
    pub note: String,
    pub favourite: bool,
    pub unread: bool,
    pub created_at: String,
    pub updated_at: String,
    pub snapshots: i64,
    /// Where the latest snapshot is viewed (API only; absent until one is captured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_url: Option<String>,
}

impl LinkJson {
    pub fn new(l: &Link) -> Self {
        Self {
            id: l.id.0,
            url: l.url.as_str().to_owned(),
            title: l.title.clone(),
            tags: l.tags.iter().map(|t| t.as_str().to_owned()).collect(),
            status: l.status.as_str(),
            failure: l.failure.clone(),
            note: l.note.clone(),
            favourite: l.favourite,
            unread: l.unread,
            created_at: rfc3339(l.created_at),
            updated_at: rfc3339(l.updated_at),
            snapshots: l.snapshots,
            snapshot_url: None,
        }
    }

    /// With `snapshot_url` set when the link has a snapshot.
    pub fn with_snapshot_url(l: &Link) -> Self {
        let mut j = Self::new(l);
        if l.snapshots > 0 {
            j.snapshot_url = Some(format!("/snapshots/{}/latest", l.id));
        }
        j
    }
}

/// A snapshot version.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionJson {
    pub version: i64,
    pub captured_at: String,
    pub final_url: String,
    pub http_status: u16,
    pub media_type: String,
    pub kind: String,
    pub bytes: i64,
    pub title: String,
    pub resources_inlined: i64,
    pub resources_failed: i64,
    /// `static` or `browser`: which engine made it.
    pub engine: String,
    /// What the browser engine kept of it (`screenshot`, `thumbnail`, `pdf`), each at
    /// `/api/v1/links/{id}/versions/{version}/{rendering}`.
    pub renderings: Vec<&'static str>,
}

impl VersionJson {
    pub fn new(v: &Version) -> Self {
        Self {
            version: v.version,
            captured_at: rfc3339(v.captured_at),
            final_url: v.final_url.clone(),
            http_status: v.http_status,
            media_type: v.media_type.clone(),
            kind: v.kind.clone(),
            bytes: v.bytes,
            title: v.title.clone(),
            resources_inlined: v.inlined,
            resources_failed: v.failed,
            engine: v.engine.clone(),
            renderings: [
                (v.screenshot, "screenshot"),
                (v.thumbnail, "thumbnail"),
                (v.pdf, "pdf"),
            ]
            .into_iter()
            .filter_map(|(kept, name)| kept.then_some(name))
            .collect(),
        }
    }
}

/// A link with its versions (`show --json`, `GET /api/v1/links/{id}?versions=true`).
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkWithVersions {
    #[serde(flatten)]
    pub link: LinkJson,
    pub versions: Vec<VersionJson>,
}

/// A search hit: the link, a snippet (HTML, matches in `<b>`) and the score.
#[derive(Debug, Serialize, ToSchema)]
pub struct HitJson {
    #[serde(flatten)]
    pub link: LinkJson,
    pub snippet: String,
    pub score: f32,
}

impl HitJson {
    pub fn new(r: &SearchResult, api: bool) -> Self {
        Self {
            link: if api {
                LinkJson::with_snapshot_url(&r.link)
            } else {
                LinkJson::new(&r.link)
            },
            snippet: r.snippet.clone(),
            score: r.score,
        }
    }
}

/// A tag and how many links carry it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagJson {
    pub name: String,
    pub links: i64,
}

impl TagJson {
    pub fn new(t: &TagName, links: i64) -> Self {
        Self {
            name: t.as_str().to_owned(),
            links,
        }
    }
}
