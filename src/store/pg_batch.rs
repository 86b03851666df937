//! Claims and settles on PostgreSQL, a batch at a time. Every statement is a round trip to
//! the server, so the per-post path that SQLite runs in-process (three statements to claim a
//! post, six to record it published) made a burst of 1,000 due posts wait half a second for
//! the database alone. Here a claim batch is one statement, and the posts of a settle batch
//! that were plainly published are recorded by one statement (two when some have a first
//! comment).
//!
//! Owns no rule of its own: each statement is the per-post path's (`Store::claim_many`,
//! `Store::settle_one`) written for a set, and whatever is not plain (a fenced try, a URN
//! already recorded for another post, a post no longer `publishing`, any outcome but
//! published) is left to that path, which decides and explains it. Must not touch SQLite.

use std::collections::{HashMap, HashSet};

use super::db::{params, Db};
use super::{nodes, outbox, post_from_row, Node, Post, Result, Settle, Settled, POST_COLUMNS};
use crate::notify::Kind;

/// The Claim transition (scheduled → publishing) for every post of `ids` still scheduled and
/// not being claimed by another node this instant (SKIP LOCKED), with its attempt row, in
/// `ids` order.
pub(super) fn claim(
    tx: &Db,
    ids: &[String],
    now_s: &str,
    started_s: &str,
    node: &Node,
) -> Result<Vec<(Post, i64)>> {
    // The attempt id is drawn in the claim's RETURNING, so the attempt rows need no join
    // back to the claimed rows (a join of two CTEs is a nested loop: quadratic in the batch).
    let sql = format!(
        "WITH c AS (UPDATE posts SET state = 'publishing', updated_at = ?2, hold_reason = NULL, \
           hold_until = NULL, hold_since = NULL, hold_report_at = NULL, claimed_by = ?3, lease_until = {lease} \
           WHERE id IN (SELECT id FROM posts WHERE id IN ({ids}) AND state = 'scheduled' \
             FOR UPDATE SKIP LOCKED) \
           RETURNING {POST_COLUMNS}, nextval(pg_get_serial_sequence('attempts', 'id')) AS attempt), \
         a AS (INSERT INTO attempts (id, post_id, started_at) SELECT attempt, id, ?5 FROM c) \
         SELECT * FROM c",
        lease = nodes::db_later(4),
        ids = json_texts(1),
    );
    let list = serde_json::to_string(ids).expect("strings serialize");
    let mut rows = tx
        .prepare_cached(&sql)?
        .query_map(
            params![list, now_s, node.id, node.lease.as_secs_f64(), started_s],
            |r| Ok((post_from_row(r)?, r.get::<_, i64>(POST_COLUMNS_COUNT)?)),
        )?
        .collect::<Result<Vec<_>>>()?;
    let order: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    rows.sort_by_key(|(p, _)| order.get(p.id.as_str()).copied());
    Ok(rows)
}

/// Records the plainly published items of `items`: the try still open (the fence), a URN
/// no other post holds, the post still `publishing`. Their indexes in `items`; the caller
/// settles the rest one by one.
pub(super) fn settle_published(tx: &Db, items: &[Settled], now_s: &str) -> Result<HashSet<usize>> {
    let plain = plain_published(items);
    if plain.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<serde_json::Value> = plain
        .iter()
        .map(|&i| {
            let it = &items[i];
            let Settle::Published { urn } = &it.outcome else {
                unreachable!("plain_published keeps published items only")
            };
            let r = &it.result;
            serde_json::json!({
                "post_id": it.post_id,
                "attempt": it.attempt,
                "urn": urn,
                "http_status": r.http_status,
                "error_code": r.error_code,
                "service_error_code": r.service_error_code,
                "message": r.message,
                "outcome": r.outcome.as_str(),
            })
        })
        .collect();
    let rows = serde_json::Value::Array(rows).to_string();
    // The same checks and writes as `settle_one` for a published try, for the set. The
    // statement's parts see one snapshot, taken under the write lock. `moved` returns the
    // try's fields with the post, so the attempts are found by their key, not by joining
    // two CTEs (a nested loop: quadratic in the batch).
    let sql = "WITH x AS (SELECT * FROM jsonb_to_recordset(CAST(CAST(?1 AS TEXT) AS jsonb)) AS x(\
           post_id TEXT, attempt BIGINT, urn TEXT, http_status BIGINT, error_code TEXT, \
           service_error_code BIGINT, message TEXT, outcome TEXT)), \
         ok AS (SELECT x.* FROM x \
           WHERE EXISTS (SELECT 1 FROM attempts a WHERE a.id = x.attempt AND a.post_id = x.post_id \
               AND a.finished_at IS NULL) \
             AND NOT EXISTS (SELECT 1 FROM posts o WHERE o.post_urn = x.urn AND o.id <> x.post_id)), \
         moved AS (UPDATE posts p SET state = 'published', updated_at = ?2, post_urn = ok.urn, \
             published_at = ?2, in_doubt_since = NULL, last_error = NULL \
           FROM ok WHERE p.id = ok.post_id AND p.state = 'publishing' \
           RETURNING p.id, p.first_comment IS NOT NULL AS commented, ok.attempt, ok.http_status, \
             ok.error_code, ok.service_error_code, ok.message, ok.outcome), \
         att AS (UPDATE attempts a SET finished_at = ?2, http_status = m.http_status, \
             error_code = m.error_code, service_error_code = m.service_error_code, \
             message = m.message, outcome = m.outcome, next_attempt_at = NULL \
           FROM moved m WHERE a.id = m.attempt) \
         SELECT id, commented FROM moved";
    let done: Vec<(String, bool)> = tx
        .prepare_cached(sql)?
        .query_map(params![rows, now_s], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_>>()?;
    let commented: Vec<&str> = done
        .iter()
        .filter(|(_, c)| *c)
        .map(|(id, _)| id.as_str())
        .collect();
    if !commented.is_empty() {
        queue_first_comments(tx, &commented, now_s)?;
    }
    let by_id: HashMap<&str, usize> = plain
        .iter()
        .map(|&i| (items[i].post_id.as_str(), i))
        .collect();
    let settled: HashSet<usize> = done
        .iter()
        .filter_map(|(id, _)| by_id.get(id.as_str()).copied())
        .collect();
    if outbox::routed(tx, Kind::PostPublished)? {
        let mut ids: Vec<usize> = settled.iter().copied().collect();
        ids.sort_unstable();
        for i in ids {
            if let Settle::Published { urn } = &items[i].outcome {
                outbox::published(tx, &items[i].post_id, urn, now_s)?;
            }
        }
    }
    Ok(settled)
}

/// `Store::account_activity` for each of `accounts`: its last publish and how many it
/// published since `since`. Each account is still two ranges of the (account, published_at)
/// index, all in one statement.
pub(super) fn activity(
    db: &Db,
    accounts: &[&str],
    since: &str,
) -> Result<Vec<(String, Option<String>, u32)>> {
    let list = serde_json::to_string(accounts).expect("strings serialize");
    let sql = "SELECT a.account, \
           (SELECT MAX(published_at) FROM posts WHERE account = a.account), \
           (SELECT COUNT(*) FROM posts WHERE account = a.account AND published_at >= ?2) \
         FROM jsonb_array_elements_text(CAST(CAST(?1 AS TEXT) AS jsonb)) AS a(account)";
    db.prepare_cached(sql)?
        .query_map(params![list, since], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect()
}

/// The published items that need no judgement between them: a post or a URN named twice
/// in one batch is left to the one-by-one path, which settles them in order (the second of
/// one URN is a duplicate).
fn plain_published(items: &[Settled]) -> Vec<usize> {
    let mut posts: HashMap<&str, usize> = HashMap::new();
    let mut urns: HashMap<&str, usize> = HashMap::new();
    for it in items {
        *posts.entry(it.post_id.as_str()).or_default() += 1;
        if let Settle::Published { urn } = &it.outcome {
            *urns.entry(urn.as_str()).or_default() += 1;
        }
    }
    items
        .iter()
        .enumerate()
        .filter(|(_, it)| match &it.outcome {
            Settle::Published { urn } => posts[it.post_id.as_str()] == 1 && urns[urn.as_str()] == 1,
            _ => false,
        })
        .map(|(i, _)| i)
        .collect()
}

/// `Store::queue_first_comment` for several posts.
fn queue_first_comments(tx: &Db, ids: &[&str], now_s: &str) -> Result<()> {
    let list = serde_json::to_string(ids).expect("strings serialize");
    let n = tx
        .prepare_cached(&format!(
            "INSERT INTO comments (post_id, text, status, next_attempt_at, created_at, updated_at) \
             SELECT id, first_comment, 'waiting', ?2, ?2, ?2 FROM posts \
             WHERE id IN ({}) AND first_comment IS NOT NULL ON CONFLICT (post_id) DO NOTHING",
            json_texts(1)
        ))?
        .execute(params![list, now_s])?;
    if n > 0 {
        crate::comments::wake().notify_one();
    }
    Ok(())
}

/// The strings of a JSON array bound as parameter `n`, as a subquery.
fn json_texts(n: usize) -> String {
    format!("SELECT jsonb_array_elements_text(CAST(CAST(?{n} AS TEXT) AS jsonb))")
}

/// Where a claim's row puts the attempt id: after the post's columns.
const POST_COLUMNS_COUNT: usize = 22;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_id_follows_every_post_column() {
        assert_eq!(POST_COLUMNS.split(',').count(), POST_COLUMNS_COUNT);
    }
}
