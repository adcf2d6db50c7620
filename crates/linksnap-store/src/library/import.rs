//! Importing bookmarks: Netscape bookmark files (what browsers, Pocket, Pinboard, linkding
//! and others export), JSON (ours, Pinboard's, linkding's field names) and plain URL lists.
//!
//! Every format is read as it arrives (Netscape files through lol_html over chunks, JSON
//! one array entry at a time, URL lists line by line), so a file of 100,000 bookmarks is
//! read in bounded memory; the whole import is one transaction, so a failed import adds
//! nothing and importing the same file twice adds nothing the second time.

use std::cell::RefCell;
use std::rc::Rc;

use lol_html::{HtmlRewriter, Settings, doc_text, element, end_tag};

mod json;
pub use json::read_json;

use crate::domain::{NormalizedUrl, TagName};
use crate::library::{Library, StoreError, now_ms};

/// One bookmark read from a file, not yet validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportItem {
    pub url: String,
    pub title: Option<String>,
    pub note: Option<String>,
    pub tags: Vec<String>,
    /// Unix milliseconds.
    pub created_at: Option<i64>,
    pub unread: Option<bool>,
    pub favourite: Option<bool>,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// New links.
    pub added: usize,
    /// Links that were already in the library (their tags were added).
    pub existing: usize,
    /// Entries or tags left out, with the reason (the first [`MAX_REPORTED_SKIPS`]).
    pub skipped: Vec<(String, String)>,
    /// How many were left out in all.
    pub skipped_count: usize,
}

/// Bookmarks written per statement (8 bound values each: under SQLite's 32766).
pub const IMPORT_ROWS: usize = 500;

/// How many skip reasons a report keeps.
pub const MAX_REPORTED_SKIPS: usize = 1000;

impl ImportReport {
    fn skip(&mut self, what: &str, why: String) {
        self.skipped_count += 1;
        if self.skipped.len() < MAX_REPORTED_SKIPS {
            let what: String = what.chars().take(200).collect();
            self.skipped.push((what, why));
        }
    }
}

/// Why a file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not in the format.
    #[error("{0}")]
    Format(String),
    /// Recording failed; nothing was imported.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Default)]
struct NetscapeState {
    items: Vec<ImportItem>,
    current: Option<ImportItem>,
    in_anchor: bool,
    in_dd: bool,
    in_h3: bool,
    h3_text: String,
    pending_folder: Option<String>,
    folders: Vec<Option<String>>,
    folders_as_tags: bool,
}

fn decode(s: &str) -> String {
    html_escape::decode_html_entities(s).into_owned()
}

/// Text arrives with its character references; a bookmark is decoded once complete.
fn clean(item: &mut ImportItem) {
    for field in [&mut item.title, &mut item.note] {
        if let Some(t) = field.as_mut() {
            *t = decode(t.trim());
        }
    }
}

/// A streaming Netscape bookmark file parser.
pub struct NetscapeParser {
    state: Rc<RefCell<NetscapeState>>,
    rewriter: HtmlRewriter<'static, fn(&[u8])>,
    offset: usize,
    /// Bytes of an incomplete UTF-8 sequence at the end of the last chunk.
    carry: Vec<u8>,
}

impl NetscapeParser {
    /// A parser; with `folders_as_tags`, each bookmark gets its folder path as a nested
    /// tag (`Bookmarks Bar/Rust/Async` becomes that tag).
    pub fn new(folders_as_tags: bool) -> Self {
        let state = Rc::new(RefCell::new(NetscapeState {
            folders_as_tags,
            ..NetscapeState::default()
        }));
        let (s1, s2, s3, s4, s5) = (
            state.clone(),
            state.clone(),
            state.clone(),
            state.clone(),
            state.clone(),
        );
        let settings = Settings::new()
            .append_element_content_handler(element!("a[href]", move |el| {
                let attr = |n: &str| el.get_attribute(n).map(|v| decode(&v));
                let mut st = s1.borrow_mut();
                let mut tags: Vec<String> = attr("tags")
                    .map(|t| {
                        t.split(',')
                            .map(str::trim)
                            .filter(|t| !t.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                if st.folders_as_tags {
                    let path: Vec<String> = st
                        .folders
                        .iter()
                        .flatten()
                        .map(|f| f.replace('/', "-"))
                        .collect();
                    if !path.is_empty() {
                        tags.push(path.join("/"));
                    }
                }
                st.current = Some(ImportItem {
                    url: attr("href").unwrap_or_default(),
                    title: None,
                    note: None,
                    tags,
                    created_at: attr("add_date")
                        .and_then(|d| d.trim().parse::<i64>().ok())
                        .map(|s| s * 1000),
                    unread: attr("toread").map(|v| v == "1"),
                    favourite: None,
                });
                st.in_anchor = true;
                st.in_dd = false;
                let s = s1.clone();
                el.on_end_tag(end_tag!(move |_end| {
                    let mut st = s.borrow_mut();
                    st.in_anchor = false;
                    if let Some(item) = st.current.take() {
                        st.items.push(item);
                    }
                    Ok(())
                }))?;
                Ok(())
            }))
            .append_element_content_handler(element!("dd", move |_el| {
                s2.borrow_mut().in_dd = true;
                Ok(())
            }))
            .append_element_content_handler(element!("dt, dl", move |el| {
                let mut st = s3.borrow_mut();
                st.in_dd = false;
                if el.tag_name().eq_ignore_ascii_case("dl") {
                    let folder = st.pending_folder.take();
                    st.folders.push(folder);
                    let s = s3.clone();
                    el.on_end_tag(end_tag!(move |_end| {
                        s.borrow_mut().folders.pop();
                        Ok(())
                    }))?;
                }
                Ok(())
            }))
            .append_element_content_handler(element!("h3", move |el| {
                {
                    let mut st = s4.borrow_mut();
                    st.in_h3 = true;
                    st.h3_text.clear();
                }
                let s = s4.clone();
                el.on_end_tag(end_tag!(move |_end| {
                    let mut st = s.borrow_mut();
                    st.in_h3 = false;
                    let name = decode(st.h3_text.trim());
                    st.pending_folder = (!name.is_empty()).then_some(name);
                    Ok(())
                }))?;
                Ok(())
            }))
            .append_document_content_handler(doc_text!(move |t| {
                let mut st = s5.borrow_mut();
                let text = t.as_str();
                if st.in_anchor {
                    if let Some(cur) = st.current.as_mut() {
                        cur.title.get_or_insert_with(String::new).push_str(text);
                    }
                } else if st.in_h3 {
                    st.h3_text.push_str(text);
                } else if st.in_dd
                    && let Some(last) = st.items.last_mut()
                {
                    last.note.get_or_insert_with(String::new).push_str(text);
                }
                Ok(())
            }));
        let rewriter = HtmlRewriter::new(settings, (|_: &[u8]| {}) as fn(&[u8]));
        Self {
            state,
            rewriter,
            offset: 0,
            carry: Vec::new(),
        }
    }

    /// Feeds a chunk; returns the bookmarks completed so far.
    ///
    /// # Errors
    /// [`ImportError::Format`] when the bytes are not UTF-8 (naming the byte offset).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<ImportItem>, ImportError> {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        let valid = match std::str::from_utf8(&data) {
            Ok(_) => data.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(e) => {
                return Err(ImportError::Format(format!(
                    "the file is not UTF-8: invalid bytes at offset {}",
                    self.offset + e.valid_up_to()
                )));
            }
        };
        self.carry = data[valid..].to_vec();
        self.offset += valid;
        self.rewriter
            .write(&data[..valid])
            .map_err(|e| ImportError::Format(format!("bookmark file: {e}")))?;
        Ok(self.drain())
    }

    /// Ends the input; returns the remaining bookmarks.
    ///
    /// # Errors
    /// [`ImportError::Format`] when the file ends inside a UTF-8 sequence.
    pub fn finish(self) -> Result<Vec<ImportItem>, ImportError> {
        if !self.carry.is_empty() {
            return Err(ImportError::Format(format!(
                "the file is not UTF-8: it ends inside a character at offset {}",
                self.offset
            )));
        }
        let state = self.state.clone();
        self.rewriter
            .end()
            .map_err(|e| ImportError::Format(format!("bookmark file: {e}")))?;
        let mut st = state.borrow_mut();
        if let Some(item) = st.current.take() {
            st.items.push(item);
        }
        let mut out = std::mem::take(&mut st.items);
        out.iter_mut().for_each(clean);
        Ok(out)
    }

    /// Completed bookmarks, except the last one: a `<DD>` note may still follow it.
    fn drain(&mut self) -> Vec<ImportItem> {
        let mut st = self.state.borrow_mut();
        let last = st.items.pop();
        let mut out = std::mem::take(&mut st.items);
        st.items.extend(last);
        out.iter_mut().for_each(clean);
        out
    }
}

/// One URL a line; blank lines and lines starting with `#` are skipped.
pub fn parse_url_list(text: &str) -> Vec<ImportItem> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| ImportItem {
            url: l.to_owned(),
            ..ImportItem::default()
        })
        .collect()
}

/// An import in progress: one transaction until [`Import::commit`].
pub struct Import<'l> {
    library: &'l Library,
    pub(crate) tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    report: ImportReport,
    /// Links added or changed, for the search index after commit.
    touched: Vec<i64>,
    queue_captures: bool,
    /// Tag ids met so far: bookmark files repeat a few tags many times.
    tag_ids: std::collections::HashMap<String, i64>,
    /// Until the imported links are handed to the search index.
    _pending: crate::library::indexing::PendingChange,
}

impl Library {
    /// Starts an import. With `queue_captures`, every new link gets a queued capture.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn begin_import(&self, queue_captures: bool) -> Result<Import<'_>, StoreError> {
        let pending = self.pending_change();
        Ok(Import {
            library: self,
            _pending: pending,
            tx: self.write_tx().await?,
            report: ImportReport::default(),
            touched: Vec::new(),
            queue_captures,
            tag_ids: std::collections::HashMap::new(),
        })
    }
}

impl Import<'_> {
    /// New links so far.
    pub(crate) fn report_added(&self) -> usize {
        self.report.added
    }

    /// Records a batch of items, in a handful of statements per [`IMPORT_ROWS`] items.
    ///
    /// # Errors
    /// [`StoreError::Db`]; nothing of the import is kept then.
    pub async fn add(&mut self, items: Vec<ImportItem>) -> Result<(), StoreError> {
        let rules = self.library.url_rules().clone();
        let now = now_ms();
        // Validate; merge repeats of one URL within the batch.
        let mut valid: Vec<(NormalizedUrl, Vec<TagName>, ImportItem)> =
            Vec::with_capacity(items.len());
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for item in items {
            let url = match NormalizedUrl::parse(&item.url, &rules) {
                Ok(u) => u,
                Err(e) => {
                    self.report.skip(&item.url, e.to_string());
                    continue;
                }
            };
            let mut tags = Vec::new();
            for t in &item.tags {
                match TagName::parse(t) {
                    Ok(tag) => tags.push(tag),
                    Err(e) => self
                        .report
                        .skip(&format!("tag of {}", item.url), e.to_string()),
                }
            }
            match seen.get(url.as_str()) {
                Some(&i) => {
                    valid[i].1.extend(tags);
                    self.report.existing += 1;
                }
                None => {
                    seen.insert(url.to_string(), valid.len());
                    valid.push((url, tags, item));
                }
            }
        }
        for chunk in valid.chunks(IMPORT_ROWS) {
            self.add_rows(chunk, now).await?;
        }
        Ok(())
    }

    async fn add_rows(
        &mut self,
        rows: &[(NormalizedUrl, Vec<TagName>, ImportItem)],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut qb =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT url FROM links WHERE url IN (");
        let mut sep = qb.separated(", ");
        for (u, _, _) in rows {
            sep.push_bind(u.as_str());
        }
        qb.push(")");
        let existing: std::collections::HashSet<String> = qb
            .build_query_scalar::<String>()
            .fetch_all(&mut *self.tx)
            .await?
            .into_iter()
            .collect();
        let new: Vec<&(NormalizedUrl, Vec<TagName>, ImportItem)> = rows
            .iter()
            .filter(|(u, _, _)| !existing.contains(u.as_str()))
            .collect();
        self.report.existing += rows.len() - new.len();
        self.report.added += new.len();
        if !new.is_empty() {
            // Ids above every id ever given (never a removed link's).
            let first = crate::datadir::next_id(&mut self.tx, "links").await?;
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO links (id, url, host, title, note, favourite, unread, created_at, updated_at) ",
            );
            qb.push_values(new.iter().zip(first..), |mut b, ((url, _, item), id)| {
                b.push_bind(id)
                    .push_bind(url.as_str())
                    .push_bind(url.host())
                    .push_bind(
                        item.title
                            .as_deref()
                            .map(str::trim)
                            .unwrap_or("")
                            .to_owned(),
                    )
                    .push_bind(item.note.as_deref().map(str::trim).unwrap_or("").to_owned())
                    .push_bind(i64::from(item.favourite.unwrap_or(false)))
                    .push_bind(i64::from(item.unread.unwrap_or(true)))
                    .push_bind(item.created_at.unwrap_or(now))
                    .push_bind(now);
            });
            qb.build().execute(&mut *self.tx).await?;
        }
        let mut qb =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT id, url FROM links WHERE url IN (");
        let mut sep = qb.separated(", ");
        for (u, _, _) in rows {
            sep.push_bind(u.as_str());
        }
        qb.push(")");
        let ids: std::collections::HashMap<String, i64> = qb
            .build_query_as::<(i64, String)>()
            .fetch_all(&mut *self.tx)
            .await?
            .into_iter()
            .map(|(id, url)| (url, id))
            .collect();
        if self.queue_captures && !new.is_empty() {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO jobs (link_id, run_after, created_at) ",
            );
            qb.push_values(
                new.iter().filter_map(|(u, _, _)| ids.get(u.as_str())),
                |mut b, id| {
                    b.push_bind(*id).push_bind(now).push_bind(now);
                },
            );
            qb.build().execute(&mut *self.tx).await?;
        }
        let mut pairs: Vec<(i64, i64)> = Vec::new();
        for (url, tags, _) in rows {
            let Some(&link) = ids.get(url.as_str()) else {
                continue;
            };
            self.touched.push(link);
            for tag in tags {
                let tag_id = match self.tag_ids.get(tag.key()) {
                    Some(id) => *id,
                    None => {
                        let id: i64 = sqlx::query_scalar(
                            "INSERT INTO tags (name, key) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET key = excluded.key RETURNING id",
                        )
                        .bind(tag.as_str())
                        .bind(tag.key())
                        .fetch_one(&mut *self.tx)
                        .await?;
                        self.tag_ids.insert(tag.key().to_owned(), id);
                        id
                    }
                };
                pairs.push((link, tag_id));
            }
        }
        if !pairs.is_empty() {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT OR IGNORE INTO link_tags (link_id, tag_id) ",
            );
            qb.push_values(&pairs, |mut b, (l, t)| {
                b.push_bind(*l).push_bind(*t);
            });
            qb.build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Commits the import and brings the search index up to date.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn commit(self) -> Result<ImportReport, StoreError> {
        self.tx.commit().await?;
        let mut touched = self.touched;
        touched.sort_unstable();
        touched.dedup();
        self.library.reindex_links(&touched).await?;
        Ok(self.report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"<!DOCTYPE NETSCAPE-Bookmark-file-1>
<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=UTF-8">
<TITLE>Bookmarks</TITLE><H1>Bookmarks</H1>
<DL><p>
    <DT><H3 ADD_DATE="1">Rust &amp; Co</H3>
    <DL><p>
        <DT><A HREF="https://a.test/?x=1&amp;y=2" ADD_DATE="1700000000" TAGS="lang/rust,读书" TOREAD="1">A &lt;title&gt;</A>
        <DD>A note
that spans lines
        <DT><H3>Inner</H3>
        <DL><p>
            <DT><A HREF="https://b.test/">B</A>
        </DL><p>
    </DL><p>
    <DT><A HREF="javascript:alert(1)">bookmarklet</A>
</DL><p>"#;

    fn parse(text: &str, chunk: usize, folders: bool) -> Vec<ImportItem> {
        let mut p = NetscapeParser::new(folders);
        let mut out = Vec::new();
        for c in text.as_bytes().chunks(chunk) {
            out.extend(p.feed(c).unwrap());
        }
        out.extend(p.finish().unwrap());
        out
    }

    #[test]
    fn netscape_files_parse_in_any_chunking() {
        for chunk in [1, 7, 64, 100_000] {
            let items = parse(FILE, chunk, false);
            assert_eq!(items.len(), 3, "chunk {chunk}");
            assert_eq!(items[0].url, "https://a.test/?x=1&y=2");
            assert_eq!(items[0].title.as_deref(), Some("A <title>"));
            assert_eq!(items[0].tags, ["lang/rust", "读书"]);
            assert_eq!(items[0].created_at, Some(1_700_000_000_000));
            assert_eq!(items[0].unread, Some(true));
            assert_eq!(
                items[0].note.as_deref().map(str::trim),
                Some("A note\nthat spans lines")
            );
            assert_eq!(items[1].url, "https://b.test/");
            assert_eq!(items[2].url, "javascript:alert(1)");
        }
    }

    #[test]
    fn folders_can_become_nested_tags() {
        let items = parse(FILE, 13, true);
        assert_eq!(items[0].tags, ["lang/rust", "读书", "Rust & Co"]);
        assert_eq!(items[1].tags, ["Rust & Co/Inner"]);
        assert!(items[2].tags.is_empty());
    }

    #[test]
    fn invalid_utf8_is_a_clear_error_with_the_offset() {
        let mut p = NetscapeParser::new(false);
        let err = p.feed(b"<DL><DT><A HREF=\"x\">\xff\xfe</A>").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the file is not UTF-8: invalid bytes at offset 20"
        );
        // A character split across chunks is fine.
        let mut p = NetscapeParser::new(false);
        let bytes = "<DL><DT><A HREF=\"https://a.test/\">é</A>".as_bytes();
        let split = bytes.len() - 5;
        p.feed(&bytes[..split]).unwrap();
        p.feed(&bytes[split..]).unwrap();
        assert_eq!(p.finish().unwrap()[0].title.as_deref(), Some("é"));
    }

    #[test]
    fn url_lists_skip_blanks_and_comments() {
        let items = parse_url_list("https://a.test/\n\n# comment\n  https://b.test/  \n");
        assert_eq!(
            items.iter().map(|i| i.url.as_str()).collect::<Vec<_>>(),
            ["https://a.test/", "https://b.test/"]
        );
    }
}

/// A bookmarks file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Netscape bookmark HTML.
    Netscape,
    /// JSON: ours, Pinboard's or linkding's.
    Json,
    /// One URL a line.
    Urls,
}

impl Format {
    /// `netscape`, `json` or `urls`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "netscape" | "html" => Some(Self::Netscape),
            "json" => Some(Self::Json),
            "urls" | "txt" => Some(Self::Urls),
            _ => None,
        }
    }

    /// Recognised from the first bytes of a file.
    pub fn sniff(head: &[u8]) -> Self {
        let head = String::from_utf8_lossy(&head[..head.len().min(2048)]).to_ascii_lowercase();
        let t = head.trim_start_matches('\u{feff}').trim_start();
        if t.starts_with('[') || t.starts_with('{') {
            Self::Json
        } else if t.contains("netscape-bookmark-file") || t.contains("<dl") || t.contains("<a ") {
            Self::Netscape
        } else {
            Self::Urls
        }
    }
}

/// Bookmarks handed to the library per batch.
const BATCH: usize = 1000;
/// Bytes read at a time.
const CHUNK: usize = 64 << 10;

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(input: &mut dyn std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Library {
    /// Imports a bookmarks file read from `input` (in every format as it arrives, in
    /// bounded memory), in one transaction: a file that does not parse imports nothing.
    /// `format` `None` recognises it; `progress` is told the bytes read so far.
    ///
    /// # Errors
    /// [`ImportError::Format`] naming what is wrong; [`ImportError::Store`].
    pub async fn import_from(
        &self,
        mut input: Box<dyn std::io::Read + Send>,
        format: Option<Format>,
        queue_captures: bool,
        folders_as_tags: bool,
        max_entries: usize,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<ImportReport, ImportError> {
        let io = |e: std::io::Error| ImportError::Format(format!("cannot read the file: {e}"));
        let mut entries = 0usize;
        let mut count = |n: usize| {
            entries += n;
            if entries > max_entries {
                return Err(ImportError::Format(format!(
                    "more than {max_entries} entries (the import limit)"
                )));
            }
            Ok(())
        };
        let mut first = vec![0u8; CHUNK];
        let n = read_full(&mut *input, &mut first).map_err(io)?;
        first.truncate(n);
        let format = format.unwrap_or_else(|| Format::sniff(&first));
        let mut session = self.begin_import(queue_captures).await?;
        match format {
            Format::Netscape => {
                let mut parser = NetscapeParser::new(folders_as_tags);
                let mut batch = Vec::new();
                let mut chunk = first;
                loop {
                    progress(chunk.len() as u64);
                    batch.extend(parser.feed(&chunk)?);
                    if batch.len() >= BATCH {
                        count(batch.len())?;
                        session.add(std::mem::take(&mut batch)).await?;
                    }
                    chunk = vec![0u8; CHUNK];
                    let n = read_full(&mut *input, &mut chunk).map_err(io)?;
                    if n == 0 {
                        break;
                    }
                    chunk.truncate(n);
                }
                batch.extend(parser.finish()?);
                count(batch.len())?;
                session.add(batch).await?;
            }
            Format::Urls => {
                // Line by line as it arrives: a piece ends at its last newline, the rest
                // waits for the next piece.
                let mut pending = first;
                progress(pending.len() as u64);
                loop {
                    let mut chunk = vec![0u8; CHUNK];
                    let n = read_full(&mut *input, &mut chunk).map_err(io)?;
                    chunk.truncate(n);
                    progress(n as u64);
                    let end = n == 0;
                    pending.extend_from_slice(&chunk);
                    // A newline never sits inside a UTF-8 sequence: cutting there is safe.
                    let cut = if end {
                        pending.len()
                    } else {
                        pending
                            .iter()
                            .rposition(|b| *b == b'\n')
                            .map_or(0, |i| i + 1)
                    };
                    let text = std::str::from_utf8(&pending[..cut]).map_err(|e| {
                        ImportError::Format(format!("not UTF-8 at byte {}", e.valid_up_to()))
                    })?;
                    let items = parse_url_list(text);
                    count(items.len())?;
                    for batch in items.chunks(BATCH) {
                        session.add(batch.to_vec()).await?;
                    }
                    pending.drain(..cut);
                    if end {
                        break;
                    }
                }
            }
            Format::Json => {
                // serde's reader is synchronous: the entries are read on a thread of their
                // own and handed over in batches through a bounded channel, so no more than
                // a few batches are held at once.
                let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                let counted = Counted {
                    inner: std::io::Read::chain(std::io::Cursor::new(first), input),
                    read: read.clone(),
                };
                let (tx, mut rx) = tokio::sync::mpsc::channel(2);
                std::thread::Builder::new()
                    .name("import-json".to_owned())
                    .spawn(move || read_json_batches(counted, &tx))
                    .map_err(io)?;
                let mut reported = 0;
                loop {
                    let piece = rx.recv().await;
                    let now = read.load(std::sync::atomic::Ordering::Relaxed);
                    progress(now - reported);
                    reported = now;
                    match piece {
                        Some(JsonPiece::Items(items)) => {
                            count(items.len())?;
                            session.add(items).await?;
                        }
                        Some(JsonPiece::End) => break,
                        Some(JsonPiece::Failed(m)) => return Err(ImportError::Format(m)),
                        None => {
                            return Err(ImportError::Format("the JSON reader stopped".to_owned()));
                        }
                    }
                }
            }
        }
        Ok(session.commit().await?)
    }
}

/// What the JSON reading thread hands over.
enum JsonPiece {
    Items(Vec<ImportItem>),
    End,
    Failed(String),
}

/// Reads a JSON export, sending its entries in batches of [`BATCH`]; stops when the
/// receiving import has gone.
fn read_json_batches(input: impl std::io::Read, tx: &tokio::sync::mpsc::Sender<JsonPiece>) {
    let mut batch = Vec::with_capacity(BATCH);
    let read = read_json(input, &mut |item| {
        batch.push(item);
        batch.len() < BATCH
            || tx
                .blocking_send(JsonPiece::Items(std::mem::take(&mut batch)))
                .is_ok()
    });
    let end = match read {
        Ok(()) if tx.blocking_send(JsonPiece::Items(batch)).is_err() => return,
        Ok(()) => JsonPiece::End,
        Err(e) => JsonPiece::Failed(e.to_string()),
    };
    let _ = tx.blocking_send(end);
}

/// A reader that counts what passes through it, for the progress of the import.
struct Counted<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Entries one import may hold, by default (a browser's bookmarks are thousands).
pub const DEFAULT_MAX_IMPORT_ENTRIES: usize = 1_000_000;

/// Writes links as a Netscape bookmark file (what browsers and other archivers import):
/// tags, dates, the unread flag and notes.
///
/// # Errors
/// The writer's.
pub fn write_netscape(links: &[super::Link], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    write_netscape_head(out)?;
    write_netscape_entries(links, out)?;
    write_netscape_tail(out)
}

/// The head of a Netscape bookmark file (streamed exports write it, then entries in
/// pieces, then the tail).
///
/// # Errors
/// The writer's.
pub fn write_netscape_head(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(out, "<!DOCTYPE NETSCAPE-Bookmark-file-1>")?;
    writeln!(
        out,
        "<META HTTP-EQUIV=\"Content-Type\" CONTENT=\"text/html; charset=UTF-8\">"
    )?;
    writeln!(out, "<TITLE>Bookmarks</TITLE>\n<H1>Bookmarks</H1>\n<DL><p>")
}

/// The tail of a Netscape bookmark file.
///
/// # Errors
/// The writer's.
pub fn write_netscape_tail(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(out, "</DL><p>")
}

/// Entries of a Netscape bookmark file.
///
/// # Errors
/// The writer's.
pub fn write_netscape_entries(
    links: &[super::Link],
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    for l in links {
        let tags: Vec<String> = l
            .tags
            .iter()
            .map(|t| t.as_str().replace(',', " "))
            .collect();
        let title = if l.title.is_empty() {
            l.url.as_str()
        } else {
            &l.title
        };
        writeln!(
            out,
            "    <DT><A HREF=\"{}\" ADD_DATE=\"{}\" LAST_MODIFIED=\"{}\" TAGS=\"{}\" TOREAD=\"{}\">{}</A>",
            esc(l.url.as_str()),
            l.created_at / 1000,
            l.updated_at / 1000,
            esc(&tags.join(",")),
            u8::from(l.unread),
            esc(title)
        )?;
        if !l.note.is_empty() {
            writeln!(out, "    <DD>{}", esc(&l.note))?;
        }
    }
    Ok(())
}
