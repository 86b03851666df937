//! Several daemons on one PostgreSQL schedule: who they are (`nodes`), the lease each
//! holds on the posts it claimed (`posts.claimed_by`, `posts.lease_until`), and the fence
//! every send and settle passes.
//!
//! Leases are read and written on the database's clock (`clock_timestamp()`), so the nodes'
//! own clocks may disagree without one taking another's live claim. A node renews its leases
//! with its heartbeat and, for one post, right before that post's request leaves
//! ([`Store::renew_claim`]); a post whose lease ran out belongs to a node that died or froze,
//! and any live node resolves it as in doubt ([`Store::recover_expired`]). A settle counts
//! only while its try is still open (`settle_one`): a node thawed after another resolved its
//! post changes nothing.
//!
//! SQLite has one daemon (the file lock beside it): there a node is a name and nothing here
//! touches the database.

use chrono::{DateTime, Utc};

use super::db::{params, Dialect, Optional};
use super::{parse_ts, Result, Store, StoreError};

/// This daemon, as the store records its claims.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    /// How long a claim stays this node's without a renewal.
    pub lease: std::time::Duration,
}

/// A row of `nodes`, for `lipost nodes` and `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeRow {
    pub node_id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// The database's clock minus the last heartbeat, in seconds.
    pub silent_for: f64,
    /// Posts it has claimed and not settled.
    pub in_flight: i64,
    /// Whether its leases are still good (silent for less than the lease).
    pub alive: bool,
}

/// The database's clock as stored times are written (RFC 3339 UTC, milliseconds).
const DB_NOW: &str =
    "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";

/// The database's clock plus `?N` seconds.
pub(super) fn db_later(n: usize) -> String {
    format!(
        "to_char((clock_timestamp() + make_interval(secs => CAST(?{n} AS DOUBLE PRECISION))) \
         AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    )
}

/// Keys of the session lock a node holds on its id (`pg_try_advisory_lock(int, int)`).
const NODE_LOCK_CLASS: i32 = 0x6c69_706f;
/// Keys of the lock on refreshing one account's token.
const REFRESH_LOCK_CLASS: i32 = 0x6c69_7072;

impl Store {
    /// The node this store claims for, if it is a daemon on PostgreSQL.
    pub(super) fn claiming_node(&self) -> Option<&Node> {
        self.node
            .as_ref()
            .filter(|_| self.db.dialect() == Dialect::Postgres)
    }

    /// For `lipost run`: records this daemon as `node`, and makes sure no other daemon runs
    /// with the same id. A SQLite file is locked beside it (`daemon::lock_instance`); on
    /// PostgreSQL the connection holds a lock on the node id until the process ends, and the
    /// `nodes` row says who holds it.
    pub fn join(&mut self, node: Node, host: &str, now: DateTime<Utc>) -> Result<()> {
        if self.db.dialect() == Dialect::Sqlite {
            self.node = Some(node);
            return Ok(());
        }
        let got: bool = self.db.query_row(
            "SELECT pg_try_advisory_lock(?1, hashtext(?2))",
            params![NODE_LOCK_CLASS, node.id],
            |r| r.get(0),
        )?;
        if !got {
            let holder: Option<String> = self
                .db
                .query_row(
                    "SELECT 'pid ' || pid || ' on ' || host FROM nodes WHERE node_id = ?1",
                    params![node.id],
                    |r| r.get(0),
                )
                .optional()?;
            return Err(StoreError::NodeRunning {
                node: node.id,
                holder: holder.unwrap_or_else(|| "unknown".to_string()),
            });
        }
        let now_s = super::ts(now);
        let tx = self.db.write()?;
        tx.execute(
            &format!(
                "INSERT INTO nodes (node_id, host, pid, started_at, heartbeat_at, version) \
                 VALUES (?1, ?2, ?3, ?4, {DB_NOW}, ?5) ON CONFLICT (node_id) DO UPDATE SET \
                 host = excluded.host, pid = excluded.pid, started_at = excluded.started_at, \
                 heartbeat_at = excluded.heartbeat_at, version = excluded.version"
            ),
            params![
                node.id,
                host,
                i64::from(std::process::id()),
                now_s,
                env!("CARGO_PKG_VERSION")
            ],
        )?;
        tx.commit()?;
        self.node = Some(node);
        Ok(())
    }

    /// This node is alive: its `nodes` row, and the leases of the posts it is sending.
    pub fn heartbeat(&mut self) -> Result<()> {
        let Some(node) = self.claiming_node().cloned() else {
            return Ok(());
        };
        let tx = self.db.write()?;
        tx.execute(
            &format!("UPDATE nodes SET heartbeat_at = {DB_NOW} WHERE node_id = ?1"),
            params![node.id],
        )?;
        tx.execute(
            &format!(
                "UPDATE posts SET lease_until = {} WHERE state = 'publishing' AND claimed_by = ?1",
                db_later(2)
            ),
            params![node.id, node.lease.as_secs_f64()],
        )?;
        tx.commit()
    }

    /// Right before a post's request leaves: whether the try `attempt` is still this node's
    /// to make (its lease renewed), or another node has taken the post over meanwhile (this
    /// node was stopped past its lease). Always `true` on SQLite, where one daemon runs.
    pub fn renew_claim(&mut self, post_id: &str, attempt: i64) -> Result<bool> {
        let Some(node) = self.claiming_node().cloned() else {
            return Ok(true);
        };
        let tx = self.db.write()?;
        let n = tx.execute(
            &format!(
                "UPDATE posts SET lease_until = {} WHERE id = ?1 AND state = 'publishing' \
                 AND claimed_by = ?2 AND EXISTS (SELECT 1 FROM attempts WHERE id = ?4 \
                 AND post_id = ?1 AND finished_at IS NULL)",
                db_later(3)
            ),
            params![post_id, node.id, node.lease.as_secs_f64(), attempt],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }

    /// Posts other nodes claimed and whose leases ran out (the node died, or froze): in
    /// doubt, scheduled again, resolved before anything is resent. With `own`, also this
    /// node's, left over from before a restart (at start only: while it runs, its posts in
    /// flight are its own business). PostgreSQL only.
    pub fn recover_expired(
        &mut self,
        own: bool,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let Some(node) = self.claiming_node().cloned() else {
            return Ok(Vec::new());
        };
        let now_s = super::ts(now);
        let tx = self.db.write()?;
        let ids: Vec<String> = tx
            .prepare(&format!(
                "SELECT id FROM posts WHERE state = 'publishing' AND (claimed_by IS NULL \
                 OR (claimed_by = ?1 AND ?2 = 1) OR lease_until IS NULL OR lease_until < {DB_NOW}) \
                 ORDER BY id"
            ))?
            .query_map(params![node.id, own], |r| r.get(0))?
            .collect::<Result<_>>()?;
        for id in &ids {
            let started: Option<String> = tx
                .query_row(
                    "SELECT started_at FROM attempts WHERE post_id = ?1 AND finished_at IS NULL ORDER BY id DESC LIMIT 1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            Store::recover_tx(&tx, id, started, why, &now_s)?;
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Takes the lock on refreshing `account`'s token, held by this connection until
    /// [`Store::unlock_refresh`]; `false` while another node holds it. Always `true` on
    /// SQLite (one daemon).
    pub fn lock_refresh(&mut self, account: &str) -> Result<bool> {
        if self.db.dialect() == Dialect::Sqlite {
            return Ok(true);
        }
        self.db.query_row(
            "SELECT pg_try_advisory_lock(?1, hashtext(?2))",
            params![REFRESH_LOCK_CLASS, account],
            |r| r.get(0),
        )
    }

    pub fn unlock_refresh(&mut self, account: &str) -> Result<()> {
        if self.db.dialect() == Dialect::Postgres {
            self.db.query_row(
                "SELECT pg_advisory_unlock(?1, hashtext(?2))",
                params![REFRESH_LOCK_CLASS, account],
                |r| r.get::<_, bool>(0),
            )?;
        }
        Ok(())
    }

    /// For `doctor`: the PostgreSQL server's version and whether this connection is
    /// encrypted. `None` on SQLite.
    pub fn server(&self) -> Result<Option<(String, bool)>> {
        if self.db.dialect() == Dialect::Sqlite {
            return Ok(None);
        }
        Ok(Some(self.db.query_row(
            "SELECT current_setting('server_version'), \
             COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
            params![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?))
    }

    /// Whether another node's heartbeat is within its lease (PostgreSQL; never on SQLite).
    /// Work a stopped daemon left half done without a lease of its own (an upload, a first
    /// comment being sent) is recovered at start only when no other node may be doing it.
    pub fn other_nodes_alive(&self) -> Result<bool> {
        let Some(node) = self.claiming_node() else {
            return Ok(false);
        };
        Ok(self
            .nodes(node.lease)?
            .iter()
            .any(|n| n.alive && n.node_id != node.id))
    }

    /// Every node that has run on this database, with its posts in flight. Empty on SQLite.
    pub fn nodes(&self, lease: std::time::Duration) -> Result<Vec<NodeRow>> {
        if self.db.dialect() == Dialect::Sqlite {
            return Ok(Vec::new());
        }
        let mut stmt = self.db.prepare(&format!(
            "SELECT n.node_id, n.host, n.pid, n.version, n.started_at, n.heartbeat_at, \
             EXTRACT(EPOCH FROM (clock_timestamp() - CAST(n.heartbeat_at AS TIMESTAMPTZ)))::float8, \
             (SELECT COUNT(*) FROM posts p WHERE p.state = 'publishing' AND p.claimed_by = n.node_id), \
             {DB_NOW} FROM nodes n ORDER BY n.node_id"
        ))?;
        let rows = stmt.query_map(params![], |r| {
            let silent_for: f64 = r.get(6)?;
            Ok(NodeRow {
                node_id: r.get(0)?,
                host: r.get(1)?,
                pid: r.get(2)?,
                version: r.get(3)?,
                started_at: parse_ts("nodes", "started_at", &r.get::<_, String>(4)?)?,
                heartbeat_at: parse_ts("nodes", "heartbeat_at", &r.get::<_, String>(5)?)?,
                silent_for,
                in_flight: r.get(7)?,
                alive: silent_for < lease.as_secs_f64(),
            })
        })?;
        rows.collect()
    }

    /// Tells every daemon on the database that a person changed something (a login, a
    /// retry, a cancel): they look at tokens and the schedule again (see [`notify_nodes`]).
    pub fn announce(&self) -> Result<()> {
        notify_nodes(&self.db, Wake::Changed)
    }

    /// Tells every daemon on the database that posts may be due for them: this node stops,
    /// and gave back or settled posts that other nodes, asleep until their own next post,
    /// would not otherwise look at.
    pub fn announce_due(&self) -> Result<()> {
        notify_nodes(&self.db, Wake::Due)
    }
}

/// The channel every daemon on a PostgreSQL database LISTENs on.
pub const CHANNEL: &str = "lipost";

/// What a NOTIFY on [`CHANNEL`] says (its payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Drafts were taken: one may be due now. Only the schedule is looked at again.
    Due,
    /// A person changed something (tokens, a retry): everything is looked at again, as the
    /// wake file does.
    Changed,
}

impl Wake {
    fn payload(self) -> &'static str {
        match self {
            Wake::Due => "due",
            Wake::Changed => "changed",
        }
    }
}

/// PostgreSQL's NOTIFY on [`CHANNEL`], delivered when the transaction commits (at once
/// outside one). Nothing on SQLite: the wake file does it there.
pub(super) fn notify_nodes(db: &super::db::Db, what: Wake) -> Result<()> {
    if db.dialect() == Dialect::Postgres {
        db.execute("SELECT pg_notify('lipost', ?1)", params![what.payload()])?;
    }
    Ok(())
}

/// Listens for [`CHANNEL`] on its own connection, on a thread of its own, and calls `wake`
/// for each notification (several at once count once). Reconnects after a lost connection;
/// a wake-up missed meanwhile is only late, as every node also looks by the clock.
pub fn listen(
    url: crate::secret::Secret,
    wake: impl Fn(Wake) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("lipost-listen".into())
        .spawn(move || loop {
            match listen_once(&url, &wake) {
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "lost the PostgreSQL connection that hears other nodes; reconnecting"),
            }
            // A wake-up may have been missed meanwhile.
            wake(Wake::Changed);
            std::thread::sleep(std::time::Duration::from_secs(1));
        })
        .map(drop)
}

fn listen_once(url: &crate::secret::Secret, wake: &impl Fn(Wake)) -> Result<()> {
    let config: postgres::Config = url
        .expose()
        .parse()
        .map_err(|e| StoreError::Url(format!("the PostgreSQL URL cannot be read ({e})")))?;
    let mut client = config.connect(super::pg::tls())?;
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    loop {
        use postgres::fallible_iterator::FallibleIterator;
        let note = client
            .notifications()
            .timeout_iter(std::time::Duration::from_secs(30))
            .next()?;
        match note {
            Some(note) if note.payload() == Wake::Due.payload() => wake(Wake::Due),
            Some(_) => wake(Wake::Changed),
            // Quiet for a while: a cheap query notices a connection that died silently.
            None => drop(client.simple_query("SELECT 1")?),
        }
    }
}
