//! What a list or a search selects (`Filter`: tag expressions, domain, dates, flags,
//! status, ids), written as SQL.

use crate::domain::{TagExpr, TagName};
use crate::library::{LinkId, LinkStatus};

/// Which links to list. Every set field must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Tag expressions, all of which must hold.
    pub tags: Vec<TagExpr>,
    /// Host equal to this, or a subdomain of it.
    pub domain: Option<String>,
    /// Added at or after (Unix ms).
    pub since: Option<i64>,
    /// Added before (Unix ms).
    pub until: Option<i64>,
    pub favourite: Option<bool>,
    pub unread: Option<bool>,
    pub status: Option<LinkStatus>,
    /// Only these links (a search's hits, or one link).
    pub ids: Option<Vec<LinkId>>,
}

impl Filter {
    pub(crate) fn push_sql(&self, qb: &mut sqlx::QueryBuilder<sqlx::Sqlite>) {
        // With an id list (a page of search hits) a correlated lookup per link is cheapest;
        // over the whole library, the set of matching links is built once.
        let per_link = self.ids.is_some();
        for expr in &self.tags {
            qb.push(" AND ");
            push_tag_expr(qb, expr, per_link);
        }
        if let Some(d) = &self.domain {
            let d = d.trim().trim_start_matches('.').to_ascii_lowercase();
            qb.push(" AND (l.host = ")
                .push_bind(d.clone())
                .push(" OR l.host LIKE ")
                .push_bind(format!("%.{d}"))
                .push(")");
        }
        if let Some(t) = self.since {
            qb.push(" AND l.created_at >= ").push_bind(t);
        }
        if let Some(t) = self.until {
            qb.push(" AND l.created_at < ").push_bind(t);
        }
        if let Some(f) = self.favourite {
            qb.push(" AND l.favourite = ").push_bind(i64::from(f));
        }
        if let Some(u) = self.unread {
            qb.push(" AND l.unread = ").push_bind(i64::from(u));
        }
        if let Some(s) = self.status {
            qb.push(" AND l.status = ").push_bind(s.as_str());
        }
        if let Some(ids) = &self.ids {
            if ids.is_empty() {
                qb.push(" AND 0");
            } else {
                qb.push(" AND l.id IN (");
                let mut sep = qb.separated(", ");
                for id in ids {
                    sep.push_bind(id.0);
                }
                qb.push(")");
            }
        }
    }
}

/// The binds of "this tag or one nested under it": `key = ?1 OR substr(key, 1, ?2) = ?3`,
/// with ?2 in characters, as SQLite's `substr` counts them.
pub(crate) fn subtree(tag: &TagName) -> (String, i64, String) {
    let prefix = format!("{}/", tag.key());
    let len = prefix.chars().count() as i64;
    (tag.key().to_owned(), len, prefix)
}

fn push_tag_expr(qb: &mut sqlx::QueryBuilder<sqlx::Sqlite>, expr: &TagExpr, per_link: bool) {
    match expr {
        TagExpr::Tag(tag) => {
            let (key, len, prefix) = subtree(tag);
            if per_link {
                qb.push("EXISTS (SELECT 1 FROM link_tags lt JOIN tags t ON t.id = lt.tag_id WHERE lt.link_id = l.id AND (t.key = ");
            } else {
                qb.push("l.id IN (SELECT lt.link_id FROM link_tags lt WHERE lt.tag_id IN (SELECT t.id FROM tags t WHERE (t.key = ");
            }
            qb.push_bind(key)
                .push(" OR substr(t.key, 1, ")
                .push_bind(len)
                .push(") = ")
                .push_bind(prefix)
                .push("))");
            if !per_link {
                qb.push(")");
            }
        }
        TagExpr::Untagged => {
            qb.push(if per_link {
                "NOT EXISTS (SELECT 1 FROM link_tags lt WHERE lt.link_id = l.id)"
            } else {
                "l.id NOT IN (SELECT lt.link_id FROM link_tags lt)"
            });
        }
        TagExpr::Not(inner) => {
            qb.push("NOT (");
            push_tag_expr(qb, inner, per_link);
            qb.push(")");
        }
        TagExpr::And(terms) | TagExpr::Or(terms) => {
            let op = if matches!(expr, TagExpr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            qb.push("(");
            for (i, t) in terms.iter().enumerate() {
                if i > 0 {
                    qb.push(op);
                }
                push_tag_expr(qb, t, per_link);
            }
            qb.push(")");
        }
    }
}
