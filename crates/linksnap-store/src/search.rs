//! Full-text search over titles, URLs, notes, tags and the snapshots' readable text.
//!
//! tantivy with BM25. Two analyses of the text, searched together:
//! - `words`: jieba segmentation (so a Chinese word in the middle of a sentence is a term),
//!   lower-cased and stemmed as English (so `running` finds `run`);
//! - `cjk`: overlapping character bigrams of every Han, kana and Hangul run, which finds
//!   Japanese (and anything jieba segments differently) without a dictionary.
//!
//! The index is derived data: `linksnap reindex` rebuilds it from the database.

use std::path::Path;
use std::sync::Mutex;

use crate::fault::Fault;

use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, Stemmer, TextAnalyzer, Token, TokenStream, Tokenizer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

/// Memory the index writer may use before it flushes a segment.
pub const WRITER_HEAP_BYTES: usize = 20 << 20;
/// Longest snippet, in characters.
pub const SNIPPET_CHARS: usize = 200;

const WORDS: &str = "linksnap_words";
const CJK: &str = "linksnap_cjk";

const OUTDATED: &str = "the index was built by another version of linksnap";

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
#[error("search index: {0} (run `linksnap reindex` to rebuild it)")]
pub struct SearchError(String, Option<Fault>);

impl SearchError {
    /// The index is fine but has another schema (an upgrade): rebuild it, nothing is lost.
    pub fn is_outdated(&self) -> bool {
        self.0 == OUTDATED
    }

    /// An error described in words.
    pub(crate) fn message(reason: String) -> Self {
        Self(reason, None)
    }

    /// An IO error on the index's directory.
    pub(crate) fn io(dir: &Path, e: &std::io::Error) -> Self {
        Self(format!("{}: {e}", dir.display()), Fault::of_io(e))
    }

    /// The machine's fault behind this error (a full disk…), when it is one.
    pub fn fault(&self) -> Option<Fault> {
        self.1
    }
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> Self {
        let fault = Fault::of_chain(&e);
        Self(e.to_string(), fault)
    }
}

/// What is indexed for one link.
#[derive(Debug, Clone, Default)]
pub struct SearchDoc {
    pub link_id: i64,
    pub title: String,
    pub url: String,
    pub note: String,
    pub tags: Vec<String>,
    /// The latest snapshot's readable text.
    pub text: String,
    /// What filters match on: the case-folded tag keys, the URL's host, when the link was
    /// added (Unix ms) and its flags.
    pub tag_keys: Vec<String>,
    pub host: String,
    pub created_at: i64,
    pub favourite: bool,
    pub unread: bool,
}

/// The filters a search applies inside the index (every field must hold; `None` and empty
/// are no condition). The index follows tags, flags and removals as they change.
#[derive(Debug, Clone, Default)]
pub struct IndexFilter {
    pub tags: Vec<crate::domain::TagExpr>,
    /// Host equal to this, or a subdomain of it (lower case, no leading dot).
    pub domain: Option<String>,
    /// Added at or after / before (Unix ms).
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub favourite: Option<bool>,
    pub unread: Option<bool>,
}

/// Flag terms of the `flags` field.
const FLAG_UNTAGGED: &str = "untagged";
const FLAG_FAVOURITE: &str = "favourite";
const FLAG_UNREAD: &str = "unread";

#[derive(Debug, Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    url: Field,
    note: Field,
    tags: Field,
    text: Field,
    title_cjk: Field,
    text_cjk: Field,
    /// Every tag key with its ancestors (`lang/rust` → `lang`, `lang/rust`), untokenized.
    tag_keys: Field,
    /// The host and each parent domain (`a.b.org` → `a.b.org`, `b.org`, `org`).
    host_keys: Field,
    created: Field,
    flags: Field,
}

/// The index of a library.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    /// Held for the library's lifetime (the library is the only writer).
    writer: Mutex<Option<IndexWriter>>,
    fields: Fields,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").finish_non_exhaustive()
    }
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let words = |stored: bool| {
        let o = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(WORDS)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        if stored { o.set_stored() } else { o }
    };
    let cjk = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(CJK)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        id: b.add_i64_field(
            "link_id",
            NumericOptions::default()
                .set_indexed()
                .set_stored()
                .set_fast(),
        ),
        title: b.add_text_field("title", words(false)),
        url: b.add_text_field("url", words(false)),
        note: b.add_text_field("note", words(false)),
        tags: b.add_text_field("tags", words(false)),
        text: b.add_text_field("text", words(true)),
        title_cjk: b.add_text_field("title_cjk", cjk.clone()),
        text_cjk: b.add_text_field("text_cjk", cjk),
        tag_keys: b.add_text_field("tag_keys", tantivy::schema::STRING),
        host_keys: b.add_text_field("host_keys", tantivy::schema::STRING),
        created: b.add_i64_field("created", NumericOptions::default().set_indexed()),
        flags: b.add_text_field("flags", tantivy::schema::STRING),
    };
    (b.build(), fields)
}

fn register(index: &Index) {
    index.tokenizers().register(
        WORDS,
        TextAnalyzer::builder(WordTokenizer::default())
            .filter(RemoveLongFilter::limit(64))
            .filter(LowerCaser)
            .filter(Stemmer::new(Language::English))
            .build(),
    );
    index.tokenizers().register(
        CJK,
        TextAnalyzer::builder(CjkBigramTokenizer)
            .filter(LowerCaser)
            .build(),
    );
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it when missing.
    ///
    /// # Errors
    /// [`SearchError`] when the index is unreadable (rebuild it with `reindex`).
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, &e))?;
        let (schema, fields) = schema();
        let index = if dir.join("meta.json").exists() {
            let index = Index::open_in_dir(dir)?;
            if index.schema() != schema {
                return Err(SearchError(OUTDATED.to_owned(), None));
            }
            index
        } else {
            Index::create_in_dir(dir, schema)?
        };
        register(&index);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer_with_num_threads(1, WRITER_HEAP_BYTES)?;
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(Some(writer)),
            fields,
        })
    }

    /// The writer, unless [`SearchIndex::close`] closed it.
    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut IndexWriter) -> Result<T, SearchError>,
    ) -> Result<T, SearchError> {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(w) => f(w),
            None => Err(SearchError("the index writer was closed".to_owned(), None)),
        }
    }

    /// Drops the writer (and its lock on the directory), so that the index can be opened
    /// afresh: after a failed commit the writer's state is unknown, and tantivy's own
    /// rollback cannot recover a writer whose directory is gone. Later writes through this
    /// handle fail.
    pub fn close(&self) {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(writer);
    }

    /// Replaces a link's document. Visible after [`SearchIndex::commit`].
    ///
    /// # Errors
    /// [`SearchError`].
    pub fn upsert(&self, d: &SearchDoc) -> Result<(), SearchError> {
        let f = self.fields;
        let mut doc = doc!(
            f.id => d.link_id,
            f.title => d.title.as_str(),
            f.title_cjk => d.title.as_str(),
            f.url => d.url.as_str(),
            f.note => d.note.as_str(),
            f.tags => d.tags.join(" "),
            f.text => d.text.as_str(),
            f.text_cjk => d.text.as_str(),
            f.created => d.created_at,
        );
        let mut keys = std::collections::BTreeSet::new();
        for key in &d.tag_keys {
            keys.extend(
                key.match_indices('/')
                    .map(|(i, _)| &key[..i])
                    .chain([key.as_str()]),
            );
        }
        for key in keys {
            doc.add_text(f.tag_keys, key);
        }
        let host = d.host.to_ascii_lowercase();
        doc.add_text(f.host_keys, &host);
        for (i, _) in host.match_indices('.') {
            doc.add_text(f.host_keys, &host[i + 1..]);
        }
        for (on, flag) in [
            (d.tag_keys.is_empty(), FLAG_UNTAGGED),
            (d.favourite, FLAG_FAVOURITE),
            (d.unread, FLAG_UNREAD),
        ] {
            if on {
                doc.add_text(f.flags, flag);
            }
        }
        self.with_writer(|w| {
            w.delete_term(Term::from_field_i64(f.id, d.link_id));
            w.add_document(doc)?;
            Ok(())
        })
    }

    /// Removes a link's document.
    ///
    /// # Errors
    /// [`SearchError`] when the writer was closed.
    pub fn delete(&self, link_id: i64) -> Result<(), SearchError> {
        self.with_writer(|w| {
            w.delete_term(Term::from_field_i64(self.fields.id, link_id));
            Ok(())
        })
    }

    /// Removes every document (before a rebuild).
    ///
    /// # Errors
    /// [`SearchError`].
    pub fn clear(&self) -> Result<(), SearchError> {
        self.with_writer(|w| {
            w.delete_all_documents()?;
            Ok(())
        })
    }

    /// Makes the changes durable and visible, recording that every change to the library
    /// up to `watermark` (Unix ms) is in the index.
    ///
    /// # Errors
    /// [`SearchError`].
    pub fn commit(&self, watermark: i64) -> Result<(), SearchError> {
        self.with_writer(|w| {
            let mut prepared = w.prepare_commit()?;
            prepared.set_payload(&watermark.to_string());
            prepared.commit()?;
            Ok(())
        })?;
        self.reader.reload()?;
        Ok(())
    }

    /// The link id of every live document of the committed index, sorted (to check the
    /// index against the database).
    ///
    /// # Errors
    /// [`SearchError`].
    pub fn all_ids(&self) -> Result<Vec<i64>, SearchError> {
        let searcher = self.reader.searcher();
        let mut ids = Vec::new();
        for segment in searcher.segment_readers() {
            let col = segment.fast_fields().i64("link_id")?;
            for doc in segment.doc_ids_alive() {
                if let Some(id) = col.first(doc) {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// The watermark of the last commit: changes after it may be missing from the index.
    pub fn watermark(&self) -> Option<i64> {
        self.index.load_metas().ok()?.payload?.parse().ok()
    }

    fn parse(&self, query: &str) -> Box<dyn tantivy::query::Query> {
        let f = self.fields;
        let mut parser = QueryParser::for_index(
            &self.index,
            vec![
                f.title,
                f.title_cjk,
                f.url,
                f.note,
                f.tags,
                f.text,
                f.text_cjk,
            ],
        );
        // Every word must match somewhere, as people expect of a search box; `OR` widens.
        parser.set_conjunction_by_default();
        parser.set_field_boost(f.title, 2.0);
        parser.set_field_boost(f.title_cjk, 2.0);
        parser.set_field_boost(f.tags, 1.5);
        parser.parse_query_lenient(query).0
    }

    /// The best `limit` links for `query` as (link id, score), best first. Phrases in double
    /// quotes match as phrases; the query is parsed leniently, so any text is a valid query.
    ///
    /// # Errors
    /// [`SearchError`].
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<(i64, f32)>, SearchError> {
        let searcher = self.reader.searcher();
        let q = self.parse(query);
        let top = searcher.search(&*q, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
        link_ids(&searcher, top)
    }

    /// Like [`SearchIndex::search`], among the links `filter` selects: the filter is part
    /// of the query, so only documents that pass it are scored.
    ///
    /// # Errors
    /// [`SearchError`].
    pub fn search_filtered(
        &self,
        query: &str,
        filter: &IndexFilter,
        limit: usize,
    ) -> Result<Vec<(i64, f32)>, SearchError> {
        use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, RangeQuery};
        let f = self.fields;
        let term = |field: Field, v: &str| -> Box<dyn Query> {
            Box::new(tantivy::query::TermQuery::new(
                Term::from_field_text(field, v),
                IndexRecordOption::Basic,
            ))
        };
        let flag = |v: &str, want: bool| -> (Occur, Box<dyn Query>) {
            (
                if want { Occur::Must } else { Occur::MustNot },
                term(f.flags, v),
            )
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, self.parse(query))];
        let mut conditions: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for expr in &filter.tags {
            conditions.push((Occur::Must, self.tag_query(expr)));
        }
        if let Some(d) = &filter.domain {
            let d = d.trim().trim_start_matches('.').to_ascii_lowercase();
            conditions.push((Occur::Must, term(f.host_keys, &d)));
        }
        if filter.since.is_some() || filter.until.is_some() {
            let bound = |v: Option<i64>, inclusive: bool| match v {
                None => std::ops::Bound::Unbounded,
                Some(v) if inclusive => {
                    std::ops::Bound::Included(Term::from_field_i64(f.created, v))
                }
                Some(v) => std::ops::Bound::Excluded(Term::from_field_i64(f.created, v)),
            };
            conditions.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    bound(filter.since, true),
                    bound(filter.until, false),
                )),
            ));
        }
        if let Some(want) = filter.favourite {
            conditions.push(flag(FLAG_FAVOURITE, want));
        }
        if let Some(want) = filter.unread {
            conditions.push(flag(FLAG_UNREAD, want));
        }
        if !conditions.is_empty() {
            if conditions.iter().all(|(o, _)| *o == Occur::MustNot) {
                conditions.push((Occur::Must, Box::new(tantivy::query::AllQuery)));
            }
            // Conditions select; they do not rank.
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(
                    Box::new(BooleanQuery::new(conditions)),
                    0.0,
                )),
            ));
        }
        let searcher = self.reader.searcher();
        let q = BooleanQuery::new(clauses);
        let top = searcher.search(&q, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
        link_ids(&searcher, top)
    }

    fn tag_query(&self, expr: &crate::domain::TagExpr) -> Box<dyn tantivy::query::Query> {
        use crate::domain::TagExpr;
        use tantivy::query::{AllQuery, BooleanQuery, Occur, TermQuery};
        let term = |field: Field, v: &str| -> Box<dyn tantivy::query::Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, v),
                IndexRecordOption::Basic,
            ))
        };
        match expr {
            TagExpr::Tag(t) => term(self.fields.tag_keys, t.key()),
            TagExpr::Untagged => term(self.fields.flags, FLAG_UNTAGGED),
            TagExpr::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery)),
                (Occur::MustNot, self.tag_query(inner)),
            ])),
            TagExpr::And(all) => Box::new(BooleanQuery::new(
                all.iter()
                    .map(|e| (Occur::Must, self.tag_query(e)))
                    .collect(),
            )),
            TagExpr::Or(any) => Box::new(BooleanQuery::new(
                any.iter()
                    .map(|e| (Occur::Should, self.tag_query(e)))
                    .collect(),
            )),
        }
    }

    /// Like [`SearchIndex::search`], among the links `within` only (a filter's matches).
    ///
    /// # Errors
    /// [`SearchError`].
    pub fn search_within(
        &self,
        query: &str,
        within: &[i64],
        limit: usize,
    ) -> Result<Vec<(i64, f32)>, SearchError> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let set = tantivy::query::TermSetQuery::new(
            within.iter().map(|id| Term::from_field_i64(f.id, *id)),
        );
        let q = tantivy::query::BooleanQuery::new(vec![
            (tantivy::query::Occur::Must, self.parse(query)),
            (tantivy::query::Occur::Must, Box::new(set)),
        ]);
        let top = searcher.search(&q, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
        link_ids(&searcher, top)
    }

    /// Snippets of `query` in the text of these links: text around the best match, matched
    /// terms in `<b>…</b>`, HTML-escaped.
    ///
    /// # Errors
    /// [`SearchError`].
    pub fn snippets(
        &self,
        query: &str,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, String>, SearchError> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let q = self.parse(query);
        let mut words = SnippetGenerator::create(&searcher, &*q, f.text)?;
        words.set_max_num_chars(SNIPPET_CHARS);
        let mut cjk = SnippetGenerator::create(&searcher, &*q, f.text_cjk)?;
        cjk.set_max_num_chars(SNIPPET_CHARS);
        let mut out = std::collections::HashMap::new();
        for &id in ids {
            let by_id = tantivy::query::TermQuery::new(
                Term::from_field_i64(f.id, id),
                IndexRecordOption::Basic,
            );
            let Some((_, addr)) = searcher
                .search(&by_id, &TopDocs::with_limit(1).order_by_score())?
                .pop()
            else {
                continue;
            };
            let doc: TantivyDocument = searcher.doc(addr)?;
            let full = doc.get_first(f.text).and_then(|v| v.as_str()).unwrap_or("");
            let text = snippet_window(full, query);
            let mut snippet = words.snippet(text);
            if snippet.highlighted().is_empty() {
                snippet = cjk.snippet(text);
            }
            let html = if snippet.fragment().is_empty() {
                html_escape(&text.chars().take(SNIPPET_CHARS).collect::<String>())
            } else {
                snippet.to_html()
            };
            out.insert(id, html);
        }
        Ok(out)
    }

    /// For each tag key, the documents carrying it or a tag nested under it: each link
    /// once, however many of its tags are under the key.
    ///
    /// # Errors
    /// [`SearchError`].
    pub fn count_tag_keys(&self, keys: &[&str]) -> Result<Vec<i64>, SearchError> {
        use tantivy::query::TermQuery;
        let searcher = self.reader.searcher();
        keys.iter()
            .map(|k| {
                let q = TermQuery::new(
                    Term::from_field_text(self.fields.tag_keys, k),
                    IndexRecordOption::Basic,
                );
                Ok(searcher.search(&q, &tantivy::collector::Count)? as i64)
            })
            .collect()
    }

    /// Documents in the index.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How much text a snippet is looked for in. Snippet generation tokenizes its input, and
/// articles run to tens of kilobytes: a window around the first literal occurrence of a
/// query word (or the start of the text) keeps twenty snippets to a millisecond or two.
pub const SNIPPET_WINDOW_BYTES: usize = 6 << 10;

fn snippet_window<'t>(text: &'t str, query: &str) -> &'t str {
    if text.len() <= SNIPPET_WINDOW_BYTES {
        return text;
    }
    let lower = text.to_lowercase();
    let first = query
        .split(|c: char| c.is_whitespace() || c == '"' || c == '(' || c == ')')
        .filter(|w| !w.is_empty() && !matches!(*w, "AND" | "OR" | "NOT"))
        .filter_map(|w| lower.find(&w.to_lowercase()))
        .min()
        .unwrap_or(0);
    // Lower-casing can change byte lengths; map the position back proportionally and
    // snap to character boundaries.
    let approx = first.min(text.len());
    let floor = |mut i: usize| {
        while i > 0 && !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = floor(approx.saturating_sub(SNIPPET_WINDOW_BYTES / 4));
    let end = floor((start + SNIPPET_WINDOW_BYTES).min(text.len()));
    &text[start..end]
}

/// The link ids of ranked documents, read from the `link_id` fast field (one column per
/// segment, opened once).
fn link_ids(
    searcher: &tantivy::Searcher,
    top: Vec<(f32, tantivy::DocAddress)>,
) -> Result<Vec<(i64, f32)>, SearchError> {
    let mut columns = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(top.len());
    for (score, addr) in top {
        let col = match columns.entry(addr.segment_ord) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                searcher
                    .segment_reader(addr.segment_ord)
                    .fast_fields()
                    .i64("link_id")?,
            ),
        };
        if let Some(id) = col.first(addr.doc_id) {
            out.push((id, score));
        }
    }
    Ok(out)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Words: jieba's segmentation for text with Han characters (without the whitespace and
/// punctuation tokens it also yields), a plain split into letters-and-digits runs for text
/// without. The same words either way for Latin text; and jieba's dictionary, which costs
/// about 150 MB of memory, is only loaded when Chinese text is met.
#[derive(Clone, Default)]
struct WordTokenizer {
    jieba: tantivy_jieba::JiebaTokenizer,
    simple: tantivy::tokenizer::SimpleTokenizer,
}

enum WordStream<'a> {
    Jieba(tantivy_jieba::JiebaTokenStream<'a>),
    Simple(tantivy::tokenizer::SimpleTokenStream<'a>),
}

fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordStream<'a>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream<'a> {
        if text.chars().any(is_han) {
            WordStream::Jieba(self.jieba.token_stream(text))
        } else {
            WordStream::Simple(self.simple.token_stream(text))
        }
    }
}

impl TokenStream for WordStream<'_> {
    fn advance(&mut self) -> bool {
        match self {
            Self::Simple(s) => s.advance(),
            Self::Jieba(j) => {
                while j.advance() {
                    if j.token().text.chars().any(char::is_alphanumeric) {
                        return true;
                    }
                }
                false
            }
        }
    }
    fn token(&self) -> &Token {
        match self {
            Self::Simple(s) => s.token(),
            Self::Jieba(j) => j.token(),
        }
    }
    fn token_mut(&mut self) -> &mut Token {
        match self {
            Self::Simple(s) => s.token_mut(),
            Self::Jieba(j) => j.token_mut(),
        }
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF   // Hiragana, Katakana
        | 0x31F0..=0x31FF // Katakana extensions
        | 0x3400..=0x4DBF // Han extension A
        | 0x4E00..=0x9FFF // Han
        | 0xAC00..=0xD7AF // Hangul syllables
        | 0xF900..=0xFAFF // Han compatibility
        | 0xFF66..=0xFF9F // half-width Katakana
        | 0x20000..=0x2FA1F) // Han extensions B–F, compatibility supplement
}

/// Overlapping bigrams of every CJK run; a run of one character is one token.
#[derive(Clone)]
struct CjkBigramTokenizer;

struct CjkStream<'a> {
    text: &'a str,
    /// Char boundaries of the current run.
    chars: Vec<(usize, char)>,
    /// Byte offset where scanning resumes after the current run.
    next: usize,
    /// Index in `chars` of the next bigram's first char.
    at: usize,
    token: Token,
}

impl Tokenizer for CjkBigramTokenizer {
    type TokenStream<'a> = CjkStream<'a>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> CjkStream<'a> {
        CjkStream {
            text,
            chars: Vec::new(),
            next: 0,
            at: 0,
            token: Token::default(),
        }
    }
}

impl CjkStream<'_> {
    /// Loads the next run of CJK characters; false at the end of the text.
    fn next_run(&mut self) -> bool {
        self.chars.clear();
        self.at = 0;
        let rest = &self.text[self.next..];
        let Some(start) = rest
            .char_indices()
            .find(|(_, c)| is_cjk(*c))
            .map(|(i, _)| i + self.next)
        else {
            self.next = self.text.len();
            return false;
        };
        for (i, c) in self.text[start..].char_indices() {
            if !is_cjk(c) {
                break;
            }
            self.chars.push((start + i, c));
        }
        let (last_i, last_c) = *self.chars.last().unwrap_or(&(start, ' '));
        self.next = last_i + last_c.len_utf8();
        true
    }
}

impl TokenStream for CjkStream<'_> {
    fn advance(&mut self) -> bool {
        loop {
            let n = self.chars.len();
            let single = n == 1 && self.at == 0;
            if single || self.at + 1 < n {
                let (from, _) = self.chars[self.at];
                let end_idx = if single { 0 } else { self.at + 1 };
                let (last_i, last_c) = self.chars[end_idx];
                let to = last_i + last_c.len_utf8();
                self.token.text.clear();
                self.token.text.push_str(&self.text[from..to]);
                self.token.offset_from = from;
                self.token.offset_to = to;
                self.token.position = self.token.position.wrapping_add(1);
                self.at += 1;
                return true;
            }
            if !self.next_run() {
                return false;
            }
            // Runs are not adjacent: a gap in positions keeps phrases from spanning them.
            self.token.position = self.token.position.wrapping_add(1);
        }
    }
    fn token(&self) -> &Token {
        &self.token
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(mut t: impl Tokenizer, text: &str) -> Vec<String> {
        let mut s = t.token_stream(text);
        let mut out = Vec::new();
        while let Some(tok) = s.next() {
            out.push(tok.text.clone());
        }
        out
    }

    #[test]
    fn cjk_runs_become_bigrams_and_everything_else_is_skipped() {
        assert_eq!(
            tokens(CjkBigramTokenizer, "東京タワー is tall。日本"),
            ["東京", "京タ", "タワ", "ワー", "日本"]
        );
        assert_eq!(tokens(CjkBigramTokenizer, "a 中 b"), ["中"]);
        assert!(tokens(CjkBigramTokenizer, "plain English").is_empty());
    }

    #[test]
    fn latin_text_splits_into_the_same_words_without_jieba() {
        assert_eq!(
            tokens(WordTokenizer::default(), "Hello, world! It's 2024."),
            ["Hello", "world", "It", "s", "2024"]
        );
    }

    #[test]
    fn jieba_words_drop_spaces_and_punctuation() {
        assert_eq!(
            tokens(WordTokenizer::default(), "我喜欢学习中文。 Hello, world!"),
            ["我", "喜欢", "学习", "中文", "Hello", "world"]
        );
    }

    fn index_with(docs: &[(i64, &str, &str)]) -> (SearchIndex, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "linksnap-search-{}-{}",
            std::process::id(),
            docs[0].0
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let idx = SearchIndex::open(&dir).unwrap();
        for (id, title, text) in docs {
            idx.upsert(&SearchDoc {
                link_id: *id,
                title: (*title).into(),
                text: (*text).into(),
                ..SearchDoc::default()
            })
            .unwrap();
        }
        idx.commit(1).unwrap();
        (idx, dir)
    }

    fn ids(idx: &SearchIndex, q: &str) -> Vec<i64> {
        idx.search(q, 10)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    #[test]
    fn chinese_japanese_and_stemmed_english_are_found() {
        let (idx, dir) = index_with(&[
            (
                1,
                "学习笔记",
                "我们每天都在学习中文和英语，这是很好的习惯。",
            ),
            (
                2,
                "旅行",
                "東京タワーは高いです。私は昨日そこへ行きました。",
            ),
            (
                3,
                "Running notes",
                "The runners were running through the park every morning.",
            ),
        ]);
        assert_eq!(ids(&idx, "中文"), [1]);
        assert_eq!(ids(&idx, "タワー"), [2]);
        assert_eq!(ids(&idx, "東京"), [2]);
        assert_eq!(ids(&idx, "run"), [3]);
        assert_eq!(ids(&idx, "\"through the park\""), [3]);
        assert_eq!(ids(&idx, "\"park the through\""), Vec::<i64>::new());
        let snippet = &idx.snippets("中文", &[1]).unwrap()[&1];
        assert!(snippet.contains("<b>中文</b>"), "{snippet}");
        let snippet = &idx.snippets("running", &[3]).unwrap()[&3];
        assert!(snippet.contains("<b>running</b>"), "{snippet}");
        // Deleting and replacing documents.
        idx.delete(3).unwrap();
        idx.upsert(&SearchDoc {
            link_id: 1,
            title: "other".into(),
            text: "nothing here".into(),
            ..SearchDoc::default()
        })
        .unwrap();
        idx.commit(2).unwrap();
        assert_eq!(ids(&idx, "running"), Vec::<i64>::new());
        assert_eq!(ids(&idx, "中文"), Vec::<i64>::new());
        assert_eq!(idx.len(), 2);
        // Any text is a query.
        assert!(idx.search("((( AND \" title:", 5).is_ok());
        drop(idx);
        let _ = std::fs::remove_dir_all(dir);
    }
}
