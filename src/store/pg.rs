//! The PostgreSQL engine: connecting (the URL is never printed, see [`describe`]), and the
//! numbered migrations of `pg_migrations`, recorded in `lipost_schema.version`.
//!
//! A daemon creates the schema in an empty database, and migrates nothing else: other nodes
//! may be using it, so an upgrade is `lipost migrate`'s, run by a person (issue: "a daemon
//! never migrates a database other nodes use unless told to"). Nothing here knows a post.

use super::db::{outside_runtime, Db, Optional, PgConn};
use super::{params, pg_migrations, Result, StoreError};
use crate::secret::Secret;

/// What the caller will do with the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Write: create the schema in an empty database; refuse an older one.
    Write,
    /// Look only: the schema must be there and current.
    ReadOnly,
    /// `lipost migrate`: bring the schema up to date.
    Migrate,
}

/// The URL's server and database, without user, password or options: what logs and errors
/// may show.
pub fn describe(url: &str) -> String {
    // By hand: `url::Url` refuses libpq's `postgresql://user@/db?host=/socket/dir`.
    let decode = |s: &str| -> String {
        url::form_urlencoded::parse(s.as_bytes())
            .next()
            .map(|(k, _)| k.into_owned())
            .unwrap_or_default()
    };
    let rest = url.split_once("://").map_or("", |x| x.1);
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let hostport = authority.rsplit_once('@').map_or(authority, |x| x.1);
    let (db, query) = tail.split_once('?').unwrap_or((tail, ""));
    let socket = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.into_owned());
    let host = match (hostport.is_empty(), socket) {
        (false, _) => decode(hostport),
        (true, Some(s)) => s,
        (true, None) => "localhost".to_string(),
    };
    format!("PostgreSQL database {:?} on {host}", decode(db))
}

/// TLS for connections that ask for it (`sslmode=require`, or `prefer`, the default, when
/// the server offers it): rustls, with the web's root certificates (webpki-roots).
pub fn tls() -> tokio_postgres_rustls::MakeRustlsConnect {
    tokio_postgres_rustls::MakeRustlsConnect::with_webpki_roots()
}

/// A PostgreSQL error with the server's own words (its `Display` alone says "db error").
pub fn explain(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", db.message(), db.code().code());
            // Not `detail()`: for a refused row it holds the row's values ("Failing row
            // contains ..."), which may include a token.
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => match std::error::Error::source(e) {
            Some(src) => format!("{e}: {src}"),
            None => e.to_string(),
        },
    }
}

pub(super) fn connect(url: &Secret, open: Open) -> Result<Db> {
    let mut config: postgres::Config = url.expose().parse().map_err(|e| {
        StoreError::Url(format!(
            "the PostgreSQL URL cannot be read ({e}); write it as postgresql://USER@HOST/DATABASE"
        ))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    config.application_name("lipost");
    let client = outside_runtime(|| config.connect(tls())).map_err(|e| {
        StoreError::Url(format!("cannot connect to {}: {e}", describe(url.expose())))
    })?;
    let mut db = Db::Postgres(Box::new(PgConn::new(client)));
    let target = describe(url.expose());
    schema(&mut db, open, &target)?;
    Ok(db)
}

/// The schema version recorded in the database; `None` when it has no lipost schema.
fn version(db: &Db) -> Result<Option<usize>> {
    let exists: bool = db.query_row(
        "SELECT to_regclass('lipost_schema') IS NOT NULL",
        params![],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    Ok(Some(
        db.query_row("SELECT MAX(version) FROM lipost_schema", params![], |r| {
            r.get::<_, Option<usize>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or(0),
    ))
}

fn schema(db: &mut Db, open: Open, target: &str) -> Result<()> {
    let known = pg_migrations::MIGRATIONS.len();
    let found = version(db)?;
    match (found, open) {
        (Some(v), _) if v == known => return Ok(()),
        (Some(v), _) if v > known => {
            return Err(StoreError::TooNew {
                path: target.to_string(),
                found: v,
                known,
            })
        }
        (None, Open::ReadOnly) => {
            return Err(StoreError::Missing {
                path: target.to_string(),
            })
        }
        (Some(v), Open::ReadOnly) => {
            return Err(StoreError::TooOld {
                path: target.to_string(),
                found: v,
                known,
            })
        }
        (Some(v), Open::Write) if v > 0 => {
            return Err(StoreError::NeedsMigrate {
                target: target.to_string(),
                found: v,
                known,
            })
        }
        _ => {}
    }
    let tx = db.write()?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS lipost_schema (version BIGINT NOT NULL)")?;
    // Read again under the write lock: another node may have migrated meanwhile.
    let done: usize = tx
        .query_row("SELECT MAX(version) FROM lipost_schema", params![], |r| {
            r.get::<_, Option<usize>>(0)
        })?
        .unwrap_or(0);
    if done > known {
        return Err(StoreError::TooNew {
            path: target.to_string(),
            found: done,
            known,
        });
    }
    for (i, sql) in pg_migrations::MIGRATIONS.iter().enumerate().skip(done) {
        tx.execute_batch(sql)?;
        tx.execute("DELETE FROM lipost_schema", params![])?;
        tx.execute(
            "INSERT INTO lipost_schema (version) VALUES (?1)",
            params![i + 1],
        )?;
    }
    tx.commit()
}

/// The version this lipost writes.
pub fn schema_version_known() -> usize {
    pg_migrations::MIGRATIONS.len()
}

/// The schema version of the database, for `doctor` and `migrate`: (found, known).
pub fn schema_version(db: &Db) -> Result<(usize, usize)> {
    Ok((version(db)?.unwrap_or(0), pg_migrations::MIGRATIONS.len()))
}
