//! Full-text search over the library: the index answers, the database fills in the links.

use crate::library::filter::Filter;
use crate::library::indexing::INDEX_CHUNK;
use crate::library::{Library, Link, LinkId, StoreError};
use crate::search::IndexFilter;

/// A filter selecting at most this many links is applied inside the search index.
pub const MAX_SELECTIVE: usize = 1000;
/// Most search hits ranked before a filter is applied.
pub const MAX_FILTERED_CANDIDATES: usize = 30_000;

/// One search result.
#[derive(Debug, Clone)]
pub struct SearchResult {
    pub link: Link,
    pub score: f32,
    /// HTML: matched terms in `<b>`.
    pub snippet: String,
}

impl Library {
    /// Links matching `query` (full text over title, URL, note, tags and readable text;
    /// `"phrases"` in quotes) and `filter`, best first, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn search(
        &self,
        query: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<SearchResult>, StoreError> {
        // Every filter but the capture status (which changes without re-indexing) and an id
        // list is part of the index query: only links that pass are ranked.
        let in_index = filter.status.is_none() && filter.ids.is_none();
        // Otherwise a filter that selects few links (MAX_SELECTIVE) is applied first, inside
        // the index; one that selects many is applied to ranked candidates, eight times more
        // each round until enough survive (MAX_FILTERED_CANDIDATES at most).
        let selected = if in_index {
            None
        } else {
            self.filter_ids(filter, MAX_SELECTIVE + 1).await?
        };
        let selective = selected
            .as_ref()
            .is_some_and(|ids| ids.len() <= MAX_SELECTIVE);
        let mut candidates = if in_index || selective {
            limit
        } else {
            (limit * 20).max(200)
        };
        let (kept, mut links) = loop {
            let hits = match &selected {
                _ if in_index => self.index().search_filtered(
                    query,
                    &IndexFilter {
                        tags: filter.tags.clone(),
                        domain: filter.domain.clone(),
                        since: filter.since,
                        until: filter.until,
                        favourite: filter.favourite,
                        unread: filter.unread,
                    },
                    limit,
                )?,
                Some(ids) if selective => self.index().search_within(query, ids, limit)?,
                _ => self
                    .index()
                    .search(query, candidates.min(MAX_FILTERED_CANDIDATES))?,
            };
            let mut kept: Vec<(i64, f32)> = Vec::with_capacity(limit);
            let mut links: std::collections::HashMap<i64, Link> = std::collections::HashMap::new();
            for chunk in hits.chunks(INDEX_CHUNK) {
                let restricted = Filter {
                    ids: Some(chunk.iter().map(|(id, _)| LinkId(*id)).collect()),
                    ..filter.clone()
                };
                links.extend(
                    self.list(&restricted)
                        .await?
                        .into_iter()
                        .map(|l| (l.id.0, l)),
                );
                let room = limit - kept.len();
                kept.extend(
                    chunk
                        .iter()
                        .filter(|(id, _)| links.contains_key(id))
                        .take(room),
                );
                if kept.len() >= limit {
                    break;
                }
            }
            let exhausted = hits.len() < candidates.min(MAX_FILTERED_CANDIDATES);
            if in_index
                || selective
                || kept.len() >= limit
                || exhausted
                || candidates >= MAX_FILTERED_CANDIDATES
            {
                break (kept, links);
            }
            candidates *= 8;
        };
        let ids: Vec<i64> = kept.iter().map(|(id, _)| *id).collect();
        let mut snippets = self.index().snippets(query, &ids)?;
        Ok(kept
            .into_iter()
            .filter_map(|(id, score)| {
                links.remove(&id).map(|link| SearchResult {
                    link,
                    score,
                    snippet: snippets.remove(&id).unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Ids of the links `filter` selects, at most `max`; `None` when the filter is empty.
    async fn filter_ids(
        &self,
        filter: &Filter,
        max: usize,
    ) -> Result<Option<Vec<i64>>, StoreError> {
        let mut qb =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT l.id FROM links l WHERE 1 = 1");
        filter.push_sql(&mut qb);
        qb.push(" LIMIT ").push_bind(max as i64);
        let ids: Vec<i64> = qb.build_query_scalar().fetch_all(self.db()).await?;
        Ok(Some(ids))
    }
}
