//! The SQLite engine: opening the file (mode 0600, WAL, `synchronous=FULL`, foreign keys) and
//! its numbered migrations, recorded in `PRAGMA user_version`. Nothing here knows a post.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::db::Db;
use super::{migrations, Result, StoreError};

/// Opens (creating it mode 0600 if needed) and migrates the database file.
pub(super) fn open(path: &Path) -> Result<Db> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Create {
            path: dir.display().to_string(),
            source,
        })?;
    }
    if !path.exists() {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::Create {
                path: path.display().to_string(),
                source,
            })?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut conn, path)?;
    Ok(Db::Sqlite(conn))
}

/// Opens an existing database for reading only: nothing is created or migrated.
pub(super) fn open_read_only(path: &Path) -> Result<Db> {
    if !path.is_file() {
        return Err(StoreError::Missing {
            path: path.display().to_string(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let found: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = migrations::MIGRATIONS.len();
    let path = path.display().to_string();
    if found > known {
        return Err(StoreError::TooNew { path, found, known });
    }
    if found < known {
        return Err(StoreError::TooOld { path, found, known });
    }
    Ok(Db::Sqlite(conn))
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let done: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if done == migrations::MIGRATIONS.len() {
        return Ok(());
    }
    // A migration that rebuilds a table (SQLite's 12-step procedure) drops a table other
    // tables reference: foreign keys are off while they run (the pragma is a no-op inside
    // a transaction), and checked before the commit instead.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let r = migrate_tx(conn, path);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    r
}

fn migrate_tx(conn: &mut Connection, path: &Path) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let done: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = migrations::MIGRATIONS.len();
    if done > known {
        // Written by a newer lipost: its rows may mean things this one cannot read.
        return Err(StoreError::TooNew {
            path: path.display().to_string(),
            found: done,
            known,
        });
    }
    for (i, sql) in migrations::MIGRATIONS.iter().enumerate().skip(done) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
    }
    let broken: Option<String> = tx
        .query_row("PRAGMA foreign_key_check", [], |r| {
            Ok(format!(
                "{} row {} references a missing {} row",
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?.unwrap_or_default(),
                r.get::<_, String>(2)?
            ))
        })
        .optional()?;
    if let Some(broken) = broken {
        // Rolled back: the database stays as it was.
        return Err(StoreError::Migration {
            path: path.display().to_string(),
            detail: broken,
        });
    }
    tx.commit()?;
    Ok(())
}

/// `PRAGMA synchronous` FULL or NORMAL, from a cached statement: settles switch it twice
/// per batch.
pub(super) fn synchronous(conn: &Connection, full: bool) -> Result<()> {
    let sql = if full {
        "PRAGMA synchronous = FULL"
    } else {
        "PRAGMA synchronous = NORMAL"
    };
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}
