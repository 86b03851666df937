//! `lipost export` and `lipost import`: every row of the schedule, as JSON lines, between
//! SQLite and PostgreSQL in either direction (or a backup of either).
//!
//! The tables and columns are the same on both engines, and every value is an integer, a
//! text or NULL, so a row crosses as a JSON object. What belongs to one running node only
//! (`nodes`, a post's lease, the `daemon` marker) is left out. An import goes only into a
//! database with no posts, so it can never mix two schedules.

use std::io::{BufRead, Write};

use super::db::{params, Db, Dialect, ValueRef};
use super::{Result, Store, StoreError};

/// The tables, parents before children (foreign keys).
const TABLES: &[&str] = &[
    "posts",
    "attempts",
    "dead_letters",
    "tokens",
    "meta",
    "media",
    "media_attempts",
    "comments",
    "edits",
    "notifications",
];

/// Columns only PostgreSQL has (a node's claim): not exported.
const NODE_COLUMNS: &[&str] = &["claimed_by", "lease_until"];

/// Tables whose `id` PostgreSQL numbers itself: moved past the imported ids.
const NUMBERED: &[&str] = &["attempts", "dead_letters", "media_attempts", "edits"];

/// The first line of an export.
#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    lipost_export: u32,
    from: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    table: String,
    row: serde_json::Map<String, serde_json::Value>,
}

/// Rows written or read, per table.
pub type Counts = Vec<(String, usize)>;

fn json_of(v: ValueRef<'_>) -> Result<serde_json::Value> {
    Ok(match v {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Int(i) => i.into(),
        ValueRef::Text(s) => s.into(),
        ValueRef::Real(_) | ValueRef::Blob(_) => {
            return Err(StoreError::Type(
                "a real or blob column, which lipost's schema does not have".into(),
            ))
        }
    })
}

impl Store {
    /// Writes every row to `out`, one JSON object per line, in one read transaction.
    pub fn export(&mut self, out: &mut impl Write) -> Result<Counts> {
        let from = match self.db.dialect() {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgresql",
        };
        let io = |e: std::io::Error| StoreError::Type(format!("writing the export: {e}"));
        let header = Header {
            lipost_export: 1,
            from: from.into(),
        };
        writeln!(out, "{}", serde_json::to_string(&header).expect("plain")).map_err(io)?;
        let tx = self.db.read()?;
        let mut counts = Vec::new();
        for table in TABLES {
            let columns = tx.columns(table)?;
            let wanted: Vec<&String> = columns
                .iter()
                .filter(|c| !NODE_COLUMNS.contains(&c.as_str()))
                .collect();
            let list = wanted
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let filter = if *table == "meta" {
                " WHERE key <> 'daemon'"
            } else {
                ""
            };
            let mut stmt = tx.prepare(&format!("SELECT {list} FROM {table}{filter}"))?;
            let rows = stmt.query_map(params![], |r| {
                let mut row = serde_json::Map::new();
                for (i, c) in wanted.iter().enumerate() {
                    row.insert((*c).clone(), json_of(r.value(i)?)?);
                }
                Ok(row)
            })?;
            let mut n = 0;
            for row in rows {
                let line = Line {
                    table: table.to_string(),
                    row: row?,
                };
                writeln!(out, "{}", serde_json::to_string(&line).expect("plain")).map_err(io)?;
                n += 1;
            }
            counts.push((table.to_string(), n));
        }
        tx.commit()?;
        out.flush().map_err(io)?;
        Ok(counts)
    }

    /// Reads an export into this database, which must hold no posts, in one transaction.
    pub fn import(&mut self, input: impl BufRead) -> Result<Counts> {
        let bad =
            |n: usize, why: String| StoreError::Type(format!("line {n} of the export: {why}"));
        let mut lines = input.lines();
        let first = lines
            .next()
            .ok_or_else(|| bad(1, "empty file".into()))?
            .map_err(|e| bad(1, e.to_string()))?;
        let header: Header = serde_json::from_str(&first)
            .map_err(|e| bad(1, format!("not a lipost export ({e})")))?;
        if header.lipost_export != 1 {
            return Err(bad(
                1,
                format!(
                    "export format {} is newer than this lipost knows",
                    header.lipost_export
                ),
            ));
        }
        let dialect = self.db.dialect();
        let tx = self.db.write()?;
        let posts: i64 = tx.query_row("SELECT COUNT(*) FROM posts", params![], |r| r.get(0))?;
        if posts > 0 {
            return Err(StoreError::Type(format!(
                "this database already holds {posts} posts; import only into a new, empty one (two schedules are never mixed)"
            )));
        }
        // A fresh database may hold its own `meta` rows (the world it was made for): the
        // export's replace them.
        tx.execute("DELETE FROM meta WHERE key <> 'daemon'", params![])?;
        let mut columns: std::collections::HashMap<String, Vec<String>> = Default::default();
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            let line = line.map_err(|e| bad(n, e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(&line).map_err(|e| bad(n, e.to_string()))?;
            if !TABLES.contains(&line.table.as_str()) {
                return Err(bad(n, format!("unknown table {:?}", line.table)));
            }
            if !columns.contains_key(&line.table) {
                let c = tx.columns(&line.table)?;
                columns.insert(line.table.clone(), c);
            }
            let known = &columns[&line.table];
            let mut names = Vec::new();
            let mut values: Vec<Option<Owned>> = Vec::new();
            for (k, v) in &line.row {
                if !known.contains(k) {
                    return Err(bad(
                        n,
                        format!("{}.{k} is not a column this lipost knows", line.table),
                    ));
                }
                names.push(k.as_str());
                values.push(match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::Number(x) => {
                        Some(Owned::Int(x.as_i64().ok_or_else(|| {
                            bad(n, format!("{k}: {x} is not an integer"))
                        })?))
                    }
                    serde_json::Value::String(s) => Some(Owned::Text(s.clone())),
                    other => return Err(bad(n, format!("{k}: {other} is not a stored value"))),
                });
            }
            let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                line.table,
                names.join(", "),
                marks.join(", ")
            );
            let args: Vec<&dyn super::db::Arg> =
                values.iter().map(|v| v as &dyn super::db::Arg).collect();
            tx.execute(&sql, args.as_slice())?;
            *counts.entry(line.table).or_default() += 1;
        }
        if dialect == Dialect::Postgres {
            for table in NUMBERED {
                tx.query_row(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                         COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                    ),
                    params![],
                    |r| r.get::<_, i64>(0),
                )?;
            }
        }
        tx.commit()?;
        Ok(counts.into_iter().collect())
    }
}

/// A value read from an export.
enum Owned {
    Int(i64),
    Text(String),
}

impl super::db::Arg for Owned {
    fn value(&self) -> Result<super::db::Value<'_>> {
        Ok(match self {
            Owned::Int(i) => super::db::Value::Int(*i),
            Owned::Text(s) => super::db::Value::Text(s),
        })
    }
}

impl Db {
    /// The columns of `table`, in order.
    pub fn columns(&self, table: &str) -> Result<Vec<String>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
            Dialect::Postgres => {
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position"
            }
        };
        self.prepare(sql)?
            .query_map(params![table], |r| r.get(0))?
            .collect()
    }
}
