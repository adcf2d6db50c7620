//! SQL on the tag tables shared by the changes that touch tags (adding links, importing,
//! tagging, renaming): find or make a tag row, drop tags no link uses, a tag's subtree.

use sqlx::Row as _;

use crate::domain::TagName;
use crate::library::filter::subtree;

pub(crate) async fn upsert_tag(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    tag: &TagName,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO tags (name, key) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET key = excluded.key RETURNING id")
        .bind(tag.as_str())
        .bind(tag.key())
        .fetch_one(&mut **tx)
        .await
}

/// A tag lives through its links: one that no link carries any more goes.
pub(crate) async fn prune_orphan_tags(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM tags WHERE NOT EXISTS (SELECT 1 FROM link_tags lt WHERE lt.tag_id = tags.id)",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The tag and every tag nested under it: (id, name, key).
pub(crate) async fn tags_under(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    tag: &TagName,
) -> Result<Vec<(i64, String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, key FROM tags WHERE key = ? OR substr(key, 1, ?) = ? ORDER BY key",
    )
    .bind(subtree(tag).0)
    .bind(subtree(tag).1)
    .bind(subtree(tag).2)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get("id"), r.get("name"), r.get("key")))
        .collect())
}
