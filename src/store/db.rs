//! One connection, two engines: the small surface of SQL the store uses (statements,
//! parameters, rows, write transactions), over SQLite (rusqlite) or PostgreSQL (the
//! `postgres` crate's blocking client).
//!
//! The store writes a statement once when both engines read it alike (`?1` placeholders,
//! which the PostgreSQL side rewrites to `$1`); where they differ, the store asks
//! [`Db::dialect`] and each engine's text lives in that engine's module (`sqlite`,
//! `postgres`). Values cross as [`Value`]s: integers, reals, text, blobs, NULL; a flag is an
//! integer 0/1 on both (the PostgreSQL schema has no BOOLEAN columns), and a boolean an
//! expression yields on PostgreSQL reads as 0/1.
//!
//! A write transaction serializes with every other writer of the database, as SQLite's
//! `BEGIN IMMEDIATE` does (PostgreSQL: a transaction-scoped advisory lock taken first, then
//! every statement reads the newest committed rows). So the store's read-then-write steps
//! keep their meaning on both engines. This module knows no table.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;

use super::{Result, StoreError};

/// Which SQL an engine speaks, for the few statements written twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A parameter's value, borrowed from the Rust side.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// Something that can be bound as a parameter.
pub trait Arg {
    fn value(&self) -> Result<Value<'_>>;
}

impl<T: Arg + ?Sized> Arg for &T {
    fn value(&self) -> Result<Value<'_>> {
        (**self).value()
    }
}

impl Arg for str {
    fn value(&self) -> Result<Value<'_>> {
        Ok(Value::Text(self))
    }
}

impl Arg for String {
    fn value(&self) -> Result<Value<'_>> {
        Ok(Value::Text(self))
    }
}

impl Arg for [u8] {
    fn value(&self) -> Result<Value<'_>> {
        Ok(Value::Blob(self))
    }
}

impl Arg for Vec<u8> {
    fn value(&self) -> Result<Value<'_>> {
        Ok(Value::Blob(self))
    }
}

impl Arg for bool {
    fn value(&self) -> Result<Value<'_>> {
        Ok(Value::Int(i64::from(*self)))
    }
}

impl Arg for f64 {
    fn value(&self) -> Result<Value<'_>> {
        Ok(Value::Real(*self))
    }
}

macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn value(&self) -> Result<Value<'_>> {
                i64::try_from(*self)
                    .map(Value::Int)
                    .map_err(|_| StoreError::Type(format!("{self} does not fit a 64-bit integer")))
            }
        }
    )*};
}
int_arg!(i64, i32, u32, u16, u8, usize, u64);

impl<T: Arg> Arg for Option<T> {
    fn value(&self) -> Result<Value<'_>> {
        match self {
            None => Ok(Value::Null),
            Some(v) => v.value(),
        }
    }
}

/// A statement's parameters: `params![a, b]`, an array of one type (`[id]`), or none (`[]`
/// is ambiguous; write `params![]`).
pub trait Params {
    fn with_args<R>(&self, f: impl FnOnce(&[&dyn Arg]) -> R) -> R;
}

impl Params for &[&dyn Arg] {
    fn with_args<R>(&self, f: impl FnOnce(&[&dyn Arg]) -> R) -> R {
        f(self)
    }
}

impl<T: Arg, const N: usize> Params for [T; N] {
    fn with_args<R>(&self, f: impl FnOnce(&[&dyn Arg]) -> R) -> R {
        f(&self.each_ref().map(|a| a as &dyn Arg))
    }
}

/// `params![a, b, c]`: a list of differently typed parameters, as rusqlite's macro.
#[macro_export]
macro_rules! params {
    () => { &[] as &[&dyn $crate::store::db::Arg] };
    ($($x:expr),+ $(,)?) => { &[$(&$x as &dyn $crate::store::db::Arg),+] as &[&dyn $crate::store::db::Arg] };
}
pub use crate::params;

/// A column's value, borrowed from the row.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl ValueRef<'_> {
    fn kind(&self) -> &'static str {
        match self {
            ValueRef::Null => "NULL",
            ValueRef::Int(_) => "an integer",
            ValueRef::Real(_) => "a real",
            ValueRef::Text(_) => "text",
            ValueRef::Blob(_) => "a blob",
        }
    }
}

/// A Rust type a column can be read as.
pub trait FromCol: Sized {
    fn from_col(v: ValueRef<'_>) -> std::result::Result<Self, String>;
}

fn wrong<T>(v: ValueRef<'_>, want: &str) -> std::result::Result<T, String> {
    Err(format!("{} where {want} was expected", v.kind()))
}

impl FromCol for String {
    fn from_col(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Text(s) => Ok(s.to_string()),
            v => wrong(v, "text"),
        }
    }
}

impl FromCol for Vec<u8> {
    fn from_col(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            ValueRef::Text(s) => Ok(s.as_bytes().to_vec()),
            v => wrong(v, "a blob"),
        }
    }
}

impl FromCol for f64 {
    fn from_col(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Real(f) => Ok(f),
            ValueRef::Int(i) => Ok(i as f64),
            v => wrong(v, "a number"),
        }
    }
}

impl FromCol for bool {
    fn from_col(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Int(i) => Ok(i != 0),
            v => wrong(v, "a flag"),
        }
    }
}

macro_rules! int_col {
    ($($t:ty),*) => {$(
        impl FromCol for $t {
            fn from_col(v: ValueRef<'_>) -> std::result::Result<Self, String> {
                match v {
                    ValueRef::Int(i) => <$t>::try_from(i).map_err(|_| format!("{i} is out of range")),
                    v => wrong(v, "an integer"),
                }
            }
        }
    )*};
}
int_col!(i64, i32, i16, u32, u16, u64, usize);

impl<T: FromCol> FromCol for Option<T> {
    fn from_col(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Null => Ok(None),
            v => T::from_col(v).map(Some),
        }
    }
}

/// One row of a result, on either engine.
pub enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

/// A column index (rusqlite's `get::<_, T>(i)` shape is kept).
pub trait ColIndex {
    fn index(&self) -> usize;
}

impl ColIndex for usize {
    fn index(&self) -> usize {
        *self
    }
}

impl Row<'_> {
    /// Column `i` as it is stored, whatever its type.
    pub fn value(&self, i: usize) -> Result<ValueRef<'_>> {
        match self {
            Row::Sqlite(r) => Ok(sqlite_ref(r.get_ref(i)?)),
            Row::Postgres(r) => postgres_ref(r, i),
        }
    }

    pub fn get<I: ColIndex, T: FromCol>(&self, i: I) -> Result<T> {
        let i = i.index();
        let v = match self {
            Row::Sqlite(r) => sqlite_ref(r.get_ref(i)?),
            Row::Postgres(r) => postgres_ref(r, i)?,
        };
        T::from_col(v).map_err(|e| StoreError::Type(format!("column {i}: {e}")))
    }
}

fn sqlite_ref(v: rusqlite::types::ValueRef<'_>) -> ValueRef<'_> {
    use rusqlite::types::ValueRef as V;
    match v {
        V::Null => ValueRef::Null,
        V::Integer(i) => ValueRef::Int(i),
        V::Real(f) => ValueRef::Real(f),
        V::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => ValueRef::Text(s),
            Err(_) => ValueRef::Blob(t),
        },
        V::Blob(b) => ValueRef::Blob(b),
    }
}

fn postgres_ref(r: &postgres::Row, i: usize) -> Result<ValueRef<'_>> {
    use postgres::types::Type;
    let col = r
        .columns()
        .get(i)
        .ok_or_else(|| StoreError::Type(format!("no column {i}")))?;
    let ty = col.type_();
    Ok(match *ty {
        Type::INT8 => r
            .try_get::<_, Option<i64>>(i)?
            .map_or(ValueRef::Null, ValueRef::Int),
        Type::INT4 => r
            .try_get::<_, Option<i32>>(i)?
            .map_or(ValueRef::Null, |v| ValueRef::Int(v.into())),
        Type::INT2 => r
            .try_get::<_, Option<i16>>(i)?
            .map_or(ValueRef::Null, |v| ValueRef::Int(v.into())),
        Type::BOOL => r
            .try_get::<_, Option<bool>>(i)?
            .map_or(ValueRef::Null, |v| ValueRef::Int(v.into())),
        Type::FLOAT8 => r
            .try_get::<_, Option<f64>>(i)?
            .map_or(ValueRef::Null, ValueRef::Real),
        Type::FLOAT4 => r
            .try_get::<_, Option<f32>>(i)?
            .map_or(ValueRef::Null, |v| ValueRef::Real(v.into())),
        Type::BYTEA => r
            .try_get::<_, Option<&[u8]>>(i)?
            .map_or(ValueRef::Null, ValueRef::Blob),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => r
            .try_get::<_, Option<&str>>(i)?
            .map_or(ValueRef::Null, ValueRef::Text),
        _ => {
            return Err(StoreError::Type(format!(
                "column {} has PostgreSQL type {ty}, which the store does not read (cast it)",
                col.name()
            )))
        }
    })
}

/// Turns "no row" into `None`, as rusqlite's `OptionalExtension`.
pub trait Optional<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> Optional<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NoRow) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A PostgreSQL connection with its prepared statements.
pub struct PgConn {
    /// `None` only while being dropped (see `Drop`).
    client: RefCell<Option<postgres::Client>>,
    /// Inside [`Db::begin_outer`]: transactions opened meanwhile are savepoints in it, and
    /// this counts them.
    outer: Option<u32>,
    /// Statement text (as the store wrote it) → prepared statement; cleared when it grows
    /// past [`PG_CACHE`] (statements built with `format!` vary).
    cache: RefCell<HashMap<String, postgres::Statement>>,
}

const PG_CACHE: usize = 512;

/// The key of the advisory lock every write transaction takes first (PostgreSQL): "lipost"
/// in ASCII, so it does not collide with another application's small numbers.
pub const WRITE_LOCK: i64 = 0x6c69_706f_7374;

/// Begins a write transaction and takes [`WRITE_LOCK`], in one round trip (the lock is taken
/// once per transaction, and on PostgreSQL each trip is what a burst of posts waits on).
fn begin_write() -> String {
    format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")
}

impl PgConn {
    pub fn new(client: postgres::Client) -> PgConn {
        PgConn {
            client: RefCell::new(Some(client)),
            cache: RefCell::new(HashMap::new()),
            outer: None,
        }
    }

    fn client(&self) -> std::cell::RefMut<'_, postgres::Client> {
        std::cell::RefMut::map(self.client.borrow_mut(), |c| {
            c.as_mut()
                .expect("the client lives as long as the connection")
        })
    }

    /// Runs `f` on the client, outside tokio's runtime (see [`outside_runtime`]).
    pub fn with<R>(&self, f: impl FnOnce(&mut postgres::Client) -> R) -> R {
        outside_runtime(|| f(&mut self.client()))
    }

    fn statement(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.cache.borrow().get(sql) {
            return Ok(s.clone());
        }
        let prepared = self.with(|c| c.prepare(&to_dollars(sql))).inspect_err(|e| {
            // A statement PostgreSQL cannot prepare is a bug in the store's SQL: say which.
            tracing::error!(error = %super::pg::explain(e), sql, "PostgreSQL refused a statement");
        })?;
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= PG_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_string(), prepared.clone());
        Ok(prepared)
    }

    fn query(&self, sql: &str, args: &[&dyn Arg]) -> Result<Vec<postgres::Row>> {
        let st = self.statement(sql)?;
        let values = pg_values(args)?;
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn postgres::types::ToSql + Sync))
            .collect();
        Ok(self.with(|c| c.query(&st, &refs))?)
    }

    fn execute(&self, sql: &str, args: &[&dyn Arg]) -> Result<usize> {
        let st = self.statement(sql)?;
        let values = pg_values(args)?;
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let n = self.with(|c| c.execute(&st, &refs))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

impl Drop for PgConn {
    /// Closing the client blocks on its runtime: outside tokio's, as every call.
    fn drop(&mut self) {
        if let Some(c) = self.client.get_mut().take() {
            outside_runtime(move || drop(c));
        }
    }
}

/// Runs `f` where the blocking PostgreSQL client may block on its own runtime: on a tokio
/// worker (or a `block_on` thread, as `main` is) it must first leave tokio's, or tokio
/// panics.
pub fn outside_runtime<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Owned parameter values for one PostgreSQL call (the borrowed `Value`s point into the
/// caller's arguments, which outlive the call).
fn pg_values<'a>(args: &'a [&'a dyn Arg]) -> Result<Vec<PgArg<'a>>> {
    args.iter().map(|a| a.value().map(PgArg)).collect()
}

/// A [`Value`] bound as whatever type PostgreSQL inferred for its placeholder.
struct PgArg<'a>(Value<'a>);

/// tokio-postgres logs a statement's parameters at debug level: a value may be a token, so
/// only its kind and size are shown.
impl std::fmt::Debug for PgArg<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Value::Null => f.write_str("NULL"),
            Value::Int(_) => f.write_str("integer"),
            Value::Real(_) => f.write_str("real"),
            Value::Text(s) => write!(f, "text ({} bytes)", s.len()),
            Value::Blob(b) => write!(f, "blob ({} bytes)", b.len()),
        }
    }
}

impl postgres::types::ToSql for PgArg<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use postgres::types::Type;
        match (self.0, ty) {
            (Value::Null, _) => Ok(postgres::types::IsNull::Yes),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(i)?.to_sql(ty, out),
            (Value::Int(i), &Type::BOOL) => (i != 0).to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (i as f64).to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT4) => (f as f32).to_sql(ty, out),
            (
                Value::Text(s),
                &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME | &Type::UNKNOWN,
            ) => s.to_sql(ty, out),
            (Value::Blob(b), &Type::BYTEA) => b.to_sql(ty, out),
            (v, ty) => Err(format!("cannot bind {:?} as PostgreSQL type {ty}", PgArg(v)).into()),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// `?N` → `$N`, and a bare `?` → the next number, outside quoted text.
pub fn to_dollars(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut next = 1;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                out.push('$');
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str(&next.to_string());
                    next += 1;
                } else {
                    next = digits.parse::<usize>().unwrap_or(0) + 1;
                    out.push_str(&digits);
                }
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// A connection to either engine.
pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PgConn>),
}

impl Db {
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas). `None` on PostgreSQL.
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Db::Sqlite(c) => Some(c),
            Db::Postgres(_) => None,
        }
    }

    pub fn postgres(&self) -> Option<&PgConn> {
        match self {
            Db::Sqlite(_) => None,
            Db::Postgres(c) => Some(c),
        }
    }

    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(match self {
            Db::Sqlite(c) => Stmt::Sqlite(LiteStmt::Cached(c.prepare_cached(sql)?)),
            Db::Postgres(c) => Stmt::Postgres {
                conn: c,
                sql: sql.to_string(),
            },
        })
    }

    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        Ok(match self {
            Db::Sqlite(c) => Stmt::Sqlite(LiteStmt::Plain(c.prepare(sql)?)),
            Db::Postgres(c) => Stmt::Postgres {
                conn: c,
                sql: sql.to_string(),
            },
        })
    }

    pub fn execute<P: Params>(&self, sql: &str, p: P) -> Result<usize> {
        self.prepare_cached(sql)?.execute(p)
    }

    pub fn query_row<T, P: Params>(
        &self,
        sql: &str,
        p: P,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.prepare_cached(sql)?.query_row(p, f)
    }

    /// Runs statements without parameters (schema changes).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(c) => c.execute_batch(sql)?,
            Db::Postgres(c) => c.with(|c| c.batch_execute(sql))?,
        }
        Ok(())
    }

    /// A write transaction: no other writer of the database runs until it ends (see the
    /// module comment). Rolled back if dropped without [`Tx::commit`].
    pub fn write(&mut self) -> Result<Tx<'_>> {
        if self.in_outer() {
            return self.savepoint();
        }
        match self {
            Db::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Db::Postgres(c) => c.with(|client| {
                if let Err(e) = client.batch_execute(&begin_write()) {
                    let _ = client.batch_execute("ROLLBACK");
                    return Err(e);
                }
                Ok(())
            })?,
        }
        Ok(Tx {
            db: self,
            open: true,
            savepoint: None,
        })
    }

    fn in_outer(&self) -> bool {
        matches!(self, Db::Postgres(c) if c.outer.is_some())
    }

    /// Inside an outer transaction: a savepoint in it instead of a transaction of its own.
    fn savepoint(&mut self) -> Result<Tx<'_>> {
        let name = match self {
            Db::Postgres(c) => {
                let n = c.outer.get_or_insert(0);
                *n += 1;
                let name = *n;
                c.with(|c| c.batch_execute(&format!("SAVEPOINT s{name}")))?;
                name
            }
            Db::Sqlite(_) => unreachable!("only PostgreSQL has an outer transaction"),
        };
        Ok(Tx {
            db: self,
            open: true,
            savepoint: Some(name),
        })
    }

    /// PostgreSQL: opens a write transaction that the store's own transactions join (as
    /// savepoints) until [`Db::end_outer`], so several steps share one view and one lock.
    /// Nothing on SQLite.
    pub fn begin_outer(&mut self) -> Result<()> {
        if let Db::Postgres(c) = self {
            c.with(|client| client.batch_execute(&begin_write()))
                .inspect_err(|_| {
                    let _ = c.with(|client| client.batch_execute("ROLLBACK"));
                })?;
            c.outer = Some(0);
        }
        Ok(())
    }

    /// Ends [`Db::begin_outer`]'s transaction: committed, or rolled back.
    pub fn end_outer(&mut self, commit: bool) -> Result<()> {
        if let Db::Postgres(c) = self {
            if c.outer.take().is_some() {
                c.with(|client| client.batch_execute(if commit { "COMMIT" } else { "ROLLBACK" }))?;
            }
        }
        Ok(())
    }

    /// A read transaction: one consistent view for several statements.
    pub fn read(&mut self) -> Result<Tx<'_>> {
        if self.in_outer() {
            return self.savepoint();
        }
        match self {
            Db::Sqlite(c) => c.execute_batch("BEGIN DEFERRED")?,
            Db::Postgres(c) => {
                c.with(|c| c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))?
            }
        }
        Ok(Tx {
            db: self,
            open: true,
            savepoint: None,
        })
    }
}

/// An open transaction (or a savepoint in an outer one); reads and writes through it as
/// through the [`Db`].
pub struct Tx<'a> {
    db: &'a mut Db,
    open: bool,
    savepoint: Option<u32>,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.open = false;
        match self.savepoint {
            None => self.db.execute_batch("COMMIT"),
            Some(n) => self.db.execute_batch(&format!("RELEASE SAVEPOINT s{n}")),
        }
    }
}

impl Deref for Tx<'_> {
    type Target = Db;

    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Fails only if the connection is gone, which ends the transaction anyway.
            let _ = match self.savepoint {
                None => self.db.execute_batch("ROLLBACK"),
                Some(n) => self.db.execute_batch(&format!(
                    "ROLLBACK TO SAVEPOINT s{n}; RELEASE SAVEPOINT s{n}"
                )),
            };
        }
    }
}

pub enum LiteStmt<'a> {
    Cached(rusqlite::CachedStatement<'a>),
    Plain(rusqlite::Statement<'a>),
}

impl<'a> std::ops::DerefMut for LiteStmt<'a> {
    fn deref_mut(&mut self) -> &mut rusqlite::Statement<'a> {
        match self {
            LiteStmt::Cached(s) => s,
            LiteStmt::Plain(s) => s,
        }
    }
}

impl<'a> Deref for LiteStmt<'a> {
    type Target = rusqlite::Statement<'a>;

    fn deref(&self) -> &rusqlite::Statement<'a> {
        match self {
            LiteStmt::Cached(s) => s,
            LiteStmt::Plain(s) => s,
        }
    }
}

/// A statement ready to run, possibly several times.
pub enum Stmt<'a> {
    Sqlite(LiteStmt<'a>),
    Postgres { conn: &'a PgConn, sql: String },
}

/// rusqlite's view of a [`Value`].
struct LiteArg<'a>(Value<'a>);

impl rusqlite::ToSql for LiteArg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef as V};
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => V::Null,
            Value::Int(i) => V::Integer(i),
            Value::Real(f) => V::Real(f),
            Value::Text(s) => V::Text(s.as_bytes()),
            Value::Blob(b) => V::Blob(b),
        }))
    }
}

fn lite_args<'a>(args: &'a [&'a dyn Arg]) -> Result<Vec<LiteArg<'a>>> {
    args.iter().map(|a| a.value().map(LiteArg)).collect()
}

impl Stmt<'_> {
    pub fn execute<P: Params>(&mut self, p: P) -> Result<usize> {
        p.with_args(|args| match self {
            Stmt::Sqlite(s) => Ok(s.execute(rusqlite::params_from_iter(lite_args(args)?))?),
            Stmt::Postgres { conn, sql } => conn.execute(sql, args),
        })
    }

    /// Runs an INSERT and returns the new row's `id`.
    pub fn insert<P: Params>(&mut self, p: P) -> Result<i64> {
        p.with_args(|args| match self {
            Stmt::Sqlite(s) => Ok(s.insert(rusqlite::params_from_iter(lite_args(args)?))?),
            Stmt::Postgres { conn, sql } => {
                let rows = conn.query(&format!("{sql} RETURNING id"), args)?;
                let row = rows.first().ok_or(StoreError::NoRow)?;
                Row::Postgres(row).get(0)
            }
        })
    }

    pub fn query_row<T, P: Params>(
        &mut self,
        p: P,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        p.with_args(|args| match self {
            Stmt::Sqlite(s) => {
                let mut rows = s.query(rusqlite::params_from_iter(lite_args(args)?))?;
                match rows.next()? {
                    Some(r) => f(&Row::Sqlite(r)),
                    None => Err(StoreError::NoRow),
                }
            }
            Stmt::Postgres { conn, sql } => {
                let rows = conn.query(sql, args)?;
                match rows.first() {
                    Some(r) => f(&Row::Postgres(r)),
                    None => Err(StoreError::NoRow),
                }
            }
        })
    }

    /// Every row mapped by `f`, read to the end before returning.
    pub fn query_map<T, P: Params>(
        &mut self,
        p: P,
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        p.with_args(|args| {
            let mut out = Vec::new();
            match self {
                Stmt::Sqlite(s) => {
                    let mut rows = s.query(rusqlite::params_from_iter(lite_args(args)?))?;
                    while let Some(r) = rows.next()? {
                        out.push(f(&Row::Sqlite(r)));
                    }
                }
                Stmt::Postgres { conn, sql } => {
                    for r in conn.query(sql, args)? {
                        out.push(f(&Row::Postgres(&r)));
                    }
                }
            }
            Ok(out.into_iter())
        })
    }

    pub fn exists<P: Params>(&mut self, p: P) -> Result<bool> {
        self.query_row(p, |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
    }
}
