//! Tags of the library: adding and removing them on links, the tree with counts, renaming,
//! merging and deleting (a nested tag moves with its parent).

use std::collections::{BTreeMap, HashSet};

use sqlx::Row as _;

use crate::domain::TagName;
use crate::library::filter::subtree;
use crate::library::tagsql::{prune_orphan_tags, tags_under, upsert_tag};
use crate::library::{Library, LinkId, StoreError, check_tag_count, now_ms};

/// A node of the tag tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagNode {
    /// Full name as written, e.g. `Lang/Rust`.
    pub name: String,
    /// Case-folded key.
    pub key: String,
    /// 0 for a top-level tag.
    pub depth: usize,
    /// Links carrying exactly this tag.
    pub own: i64,
    /// Distinct links carrying it or a tag under it.
    pub total: i64,
}

impl Library {
    /// Adds and removes tags on links.
    ///
    /// # Errors
    /// [`StoreError::NoLink`] (nothing is changed then).
    pub async fn retag(
        &self,
        ids: &[LinkId],
        add: &[TagName],
        remove: &[TagName],
    ) -> Result<(), StoreError> {
        let _pending = self.pending_change();
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        for id in ids {
            let n = sqlx::query("UPDATE links SET updated_at = ? WHERE id = ?")
                .bind(now)
                .bind(id.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NoLink(*id));
            }
            for tag in add {
                let tag_id = upsert_tag(&mut tx, tag).await?;
                sqlx::query("INSERT OR IGNORE INTO link_tags (link_id, tag_id) VALUES (?, ?)")
                    .bind(id.0)
                    .bind(tag_id)
                    .execute(&mut *tx)
                    .await?;
            }
            for tag in remove {
                sqlx::query("DELETE FROM link_tags WHERE link_id = ? AND tag_id = (SELECT id FROM tags WHERE key = ?)")
                    .bind(id.0)
                    .bind(tag.key())
                    .execute(&mut *tx)
                    .await?;
            }
            if !add.is_empty() {
                check_tag_count(&mut tx, id.0).await?;
            }
        }
        prune_orphan_tags(&mut tx).await?;
        tx.commit().await?;
        self.reindex_links(&ids.iter().map(|i| i.0).collect::<Vec<_>>())
            .await?;
        Ok(())
    }

    /// Every tag with the number of links carrying it, sorted by name.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn tags(&self) -> Result<Vec<(TagName, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.name, t.key, count(lt.link_id) AS n FROM tags t LEFT JOIN link_tags lt ON lt.tag_id = t.id \
             GROUP BY t.id ORDER BY t.key",
        )
        .fetch_all(self.db())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    TagName::from_stored(r.get("name"), r.get("key")),
                    r.get("n"),
                )
            })
            .collect())
    }

    /// The tag tree: every tag and every ancestor implied by a nested name (`lang` for
    /// `lang/rust`), in key order, with the links carrying the tag itself (`own`) and the
    /// distinct links in its whole subtree (`total`).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn tag_tree(&self) -> Result<Vec<TagNode>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.name, t.key, lt.link_id FROM tags t LEFT JOIN link_tags lt ON lt.tag_id = t.id",
        )
        .fetch_all(self.db())
        .await?;
        let mut nodes: BTreeMap<String, (String, i64, HashSet<i64>)> = BTreeMap::new();
        for r in rows {
            let (name, key): (String, String) = (r.get("name"), r.get("key"));
            let link: Option<i64> = r.get("link_id");
            let name_parts: Vec<&str> = name.split('/').collect();
            let key_parts: Vec<&str> = key.split('/').collect();
            for depth in 1..=key_parts.len() {
                let k = key_parts[..depth].join("/");
                let node = nodes.entry(k).or_insert_with(|| {
                    (
                        name_parts[..depth.min(name_parts.len())].join("/"),
                        0,
                        HashSet::new(),
                    )
                });
                if let Some(l) = link {
                    node.2.insert(l);
                    if depth == key_parts.len() {
                        node.1 += 1;
                    }
                }
            }
        }
        Ok(nodes
            .into_iter()
            .map(|(key, (name, own, links))| TagNode {
                depth: key.matches('/').count(),
                name,
                key,
                own,
                total: links.len() as i64,
            })
            .collect())
    }

    /// The tags right under `parent` (the top-level ones for `None`), each with the
    /// distinct links in its subtree; for the chips of a list. The names come from the
    /// database, the counts from the search index, where every link carries its tags'
    /// keys with their ancestors: counting one term is counting a subtree's distinct links
    /// (SQLite's `count(DISTINCT)` over every tagging took 12 to 40 ms with 10,000 links).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn tag_children(&self, parent: Option<&TagName>) -> Result<Vec<TagNode>, StoreError> {
        let prefix = parent.map_or_else(String::new, |p| format!("{}/", p.key()));
        let depth = prefix.matches('/').count() + 1;
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT name, key FROM tags")
            .fetch_all(self.db())
            .await?;
        // Each child's key, and the least of its spellings (like `min(name)`).
        let mut children: BTreeMap<String, String> = BTreeMap::new();
        for (name, key) in rows {
            if !key.starts_with(&prefix) {
                continue;
            }
            let child_key = key.split('/').take(depth).collect::<Vec<_>>().join("/");
            let child_name = name.split('/').take(depth).collect::<Vec<_>>().join("/");
            children
                .entry(child_key)
                .and_modify(|n| {
                    if child_name < *n {
                        n.clone_from(&child_name);
                    }
                })
                .or_insert(child_name);
        }
        let keys: Vec<&str> = children.keys().map(String::as_str).collect();
        let counts = self.index().count_tag_keys(&keys)?;
        Ok(children
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|((key, name), total)| TagNode {
                depth: depth - 1,
                name: name.clone(),
                key: key.clone(),
                own: 0,
                total,
            })
            .collect())
    }

    /// [`Library::tag_children`] counted by SQLite: what the index's counts are checked
    /// against in tests.
    #[cfg(test)]
    pub(crate) async fn tag_children_sql(
        &self,
        parent: Option<&TagName>,
    ) -> Result<Vec<TagNode>, StoreError> {
        let prefix = parent.map_or_else(String::new, |p| format!("{}/", p.key()));
        // Lengths in characters: SQLite's substr and instr count characters.
        let plen = prefix.chars().count() as i64;
        let rows = sqlx::query(
            "SELECT x.child AS key, min(x.display) AS name, count(DISTINCT lt.link_id) AS n FROM ( \
               SELECT t.id, \
                 CASE WHEN instr(substr(t.key, ?1 + 1), '/') = 0 THEN t.key \
                      ELSE substr(t.key, 1, ?1 + instr(substr(t.key, ?1 + 1), '/') - 1) END AS child, \
                 CASE WHEN instr(substr(t.name, ?1 + 1), '/') = 0 THEN t.name \
                      ELSE substr(t.name, 1, ?1 + instr(substr(t.name, ?1 + 1), '/') - 1) END AS display \
               FROM tags t WHERE ?1 = 0 OR substr(t.key, 1, ?1) = ?2 \
             ) x JOIN link_tags lt ON lt.tag_id = x.id GROUP BY x.child ORDER BY x.child",
        )
        .bind(plen)
        .bind(&prefix)
        .fetch_all(self.db())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let key: String = r.get("key");
                TagNode {
                    depth: key.matches('/').count(),
                    name: r.get("name"),
                    key,
                    own: 0,
                    total: r.get("n"),
                }
            })
            .collect())
    }

    /// Renames `old` to `new`; tags nested under `old` move with it (`lang/rust` becomes
    /// `code/rust` when `lang` becomes `code`). Changing only the case is a rename too.
    ///
    /// # Errors
    /// [`StoreError::NoTag`] when nothing is named `old`; [`StoreError::TagExists`] when a
    /// tag would collide with an existing one.
    pub async fn rename_tag(&self, old: &TagName, new: &TagName) -> Result<usize, StoreError> {
        let _pending = self.pending_change();
        let touched = self.links_tagged(old).await?;
        let mut tx = self.write_tx().await?;
        let affected = tags_under(&mut tx, old).await?;
        if affected.is_empty() {
            return Err(StoreError::NoTag(old.to_string()));
        }
        for (id, name, _key) in &affected {
            let depth = old.as_str().split('/').count();
            let suffix: Vec<&str> = name.split('/').skip(depth).collect();
            let full = std::iter::once(new.as_str())
                .chain(suffix)
                .collect::<Vec<_>>()
                .join("/");
            let renamed = TagName::parse(&full).map_err(|_| StoreError::NoTag(name.clone()))?;
            let clash: Option<i64> =
                sqlx::query_scalar("SELECT id FROM tags WHERE key = ? AND id != ?")
                    .bind(renamed.key())
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if clash.is_some() && !affected.iter().any(|(a, _, _)| Some(*a) == clash) {
                return Err(StoreError::TagExists(renamed.to_string()));
            }
            sqlx::query("UPDATE tags SET name = ?, key = ? WHERE id = ?")
                .bind(renamed.as_str())
                .bind(format!("\u{1}{}", renamed.key()))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        // Keys were given a temporary prefix (U+0001, which no tag name may contain) so that
        // renames within the subtree cannot clash with each other.
        sqlx::query("UPDATE tags SET key = substr(key, 2) WHERE substr(key, 1, 1) = char(1)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.reindex_links(&touched).await?;
        Ok(affected.len())
    }

    /// Moves every link of each tag in `from` (and the tags nested under them) to `into`,
    /// then deletes the `from` tags.
    ///
    /// # Errors
    /// [`StoreError::NoTag`] when a `from` tag does not exist.
    pub async fn merge_tags(&self, from: &[TagName], into: &TagName) -> Result<usize, StoreError> {
        let _pending = self.pending_change();
        let mut touched = Vec::new();
        for tag in from {
            touched.extend(self.links_tagged(tag).await?);
        }
        let mut tx = self.write_tx().await?;
        let target = upsert_tag(&mut tx, into).await?;
        let mut moved = 0;
        for tag in from {
            let under = tags_under(&mut tx, tag).await?;
            if under.is_empty() {
                return Err(StoreError::NoTag(tag.to_string()));
            }
            for (id, _, _) in under.into_iter().filter(|(id, _, _)| *id != target) {
                moved += sqlx::query("INSERT OR IGNORE INTO link_tags (link_id, tag_id) SELECT link_id, ? FROM link_tags WHERE tag_id = ?")
                    .bind(target)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected() as usize;
                sqlx::query("DELETE FROM tags WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        self.reindex_links(&touched).await?;
        Ok(moved)
    }

    /// Deletes a tag and the tags nested under it from every link.
    ///
    /// # Errors
    /// [`StoreError::NoTag`].
    pub async fn delete_tag(&self, tag: &TagName) -> Result<usize, StoreError> {
        let _pending = self.pending_change();
        let touched = self.links_tagged(tag).await?;
        let mut tx = self.write_tx().await?;
        let under = tags_under(&mut tx, tag).await?;
        if under.is_empty() {
            return Err(StoreError::NoTag(tag.to_string()));
        }
        for (id, _, _) in &under {
            sqlx::query("DELETE FROM tags WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.reindex_links(&touched).await?;
        Ok(under.len())
    }

    /// Ids of the links carrying `tag` or a tag under it.
    async fn links_tagged(&self, tag: &TagName) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT lt.link_id FROM link_tags lt JOIN tags t ON t.id = lt.tag_id WHERE t.key = ? OR substr(t.key, 1, ?) = ?",
        )
        .bind(subtree(tag).0)
        .bind(subtree(tag).1)
        .bind(subtree(tag).2)
        .fetch_all(self.db())
        .await?)
    }
}
