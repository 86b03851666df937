//! [`TestDb`]: the tests' own view of the store, SQLite or PostgreSQL, shaped like the part of
//! rusqlite the tests use (`query_row` with a closure over a row, `prepare` + `query_map`,
//! `execute`, `execute_batch`, `transaction`, `.optional()`), so a test reads the same on
//! both backends.
//!
//! SQL is written once, portably, with `?N` placeholders: on PostgreSQL they become `$N`
//! (outside quotes). Parameters are anything [`ToValue`]; columns are read with [`FromCol`]
//! from either backend's types (PostgreSQL's BOOL reads as 0/1, INT4 and INT8 as integers).
#![allow(dead_code)]

use std::cell::RefCell;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use postgres::types::{IsNull, ToSql as PgToSql, Type};

// ---------------------------------------------------------------- errors

/// What a TestDb call failed with.
#[derive(Debug)]
pub enum DbError {
    /// `query_row` found no row.
    NoRows,
    /// A column's value is not the type asked for.
    Type(String),
    /// The database said no.
    Sql(String),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::NoRows => write!(f, "query returned no rows"),
            DbError::Type(m) | DbError::Sql(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> DbError {
        match e {
            rusqlite::Error::QueryReturnedNoRows => DbError::NoRows,
            e => DbError::Sql(e.to_string()),
        }
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> DbError {
        // The server's own message (with its detail), not just "db error".
        match e.as_db_error() {
            Some(d) => DbError::Sql(format!(
                "{}: {}{}",
                d.severity(),
                d.message(),
                d.detail().map(|x| format!(" ({x})")).unwrap_or_default()
            )),
            None => DbError::Sql(e.to_string()),
        }
    }
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// `.optional()` as in rusqlite: no row is `Ok(None)`.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

// ---------------------------------------------------------------- values

/// One value, in or out, the same on both backends.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}
macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(i64::try_from(*self).expect("integer parameter beyond i64"))
            }
        }
    )*};
}
int_to_value!(i8, i16, i32, i64, u8, u16, u32, u64, usize);
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

/// A statement's parameters: `[]`, an array `[a, b]` of one type, a tuple `(a, b)` of
/// several, or a slice `&[&a as &dyn ToValue, ...]`.
pub trait Params {
    fn values(self) -> Vec<Value>;
}

impl Params for [Value; 0] {
    fn values(self) -> Vec<Value> {
        Vec::new()
    }
}
impl Params for &[&dyn ToValue] {
    fn values(self) -> Vec<Value> {
        self.iter().map(|v| v.to_value()).collect()
    }
}
macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn values(self) -> Vec<Value> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
        impl<T: ToValue> Params for &[T; $n] {
            fn values(self) -> Vec<Value> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
macro_rules! tuple_params {
    ($(($($t:ident $i:tt),+)),*) => {$(
        impl<$($t: ToValue),+> Params for ($($t,)+) {
            fn values(self) -> Vec<Value> {
                vec![$(self.$i.to_value()),+]
            }
        }
    )*};
}
tuple_params!(
    (A 0),
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3),
    (A 0, B 1, C 2, D 3, E 4),
    (A 0, B 1, C 2, D 3, E 4, F 5),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6),
    (A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7)
);

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value as V};
        Ok(ToSqlOutput::Owned(match self {
            Value::Null => V::Null,
            Value::Int(i) => V::Integer(*i),
            Value::Real(x) => V::Real(*x),
            Value::Text(s) => V::Text(s.clone()),
            Value::Blob(b) => V::Blob(b.clone()),
        }))
    }
}

fn is_text(ty: &Type) -> bool {
    [
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
    ]
    .contains(ty)
}

/// Sent as the type the server inferred for the placeholder: an integer as INT8, INT4, INT2,
/// BOOL, FLOAT8 or text; text as TEXT/VARCHAR/UNKNOWN; NULL as anything.
impl PgToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                _ if is_text(ty) => i.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("an integer parameter where PostgreSQL wants {ty}").into()),
            },
            Value::Real(x) => match *ty {
                Type::FLOAT8 => x.to_sql(ty, out),
                Type::FLOAT4 => (*x as f32).to_sql(ty, out),
                _ if is_text(ty) => x.to_string().as_str().to_sql(ty, out),
                _ => Err(format!("a real parameter where PostgreSQL wants {ty}").into()),
            },
            Value::Text(s) => match *ty {
                _ if is_text(ty) => s.as_str().to_sql(ty, out),
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                Type::INT4 => s.parse::<i32>()?.to_sql(ty, out),
                _ => Err(format!("a text parameter where PostgreSQL wants {ty}").into()),
            },
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A column's value read as a Rust type, from either backend.
pub trait FromCol: Sized {
    fn from_col(v: Value) -> Result<Self>;
}

fn wrong<T>(v: &Value) -> Result<T> {
    Err(DbError::Type(format!(
        "cannot read {v:?} as {}",
        std::any::type_name::<T>()
    )))
}

impl FromCol for Value {
    fn from_col(v: Value) -> Result<Self> {
        Ok(v)
    }
}
impl FromCol for String {
    fn from_col(v: Value) -> Result<Self> {
        match v {
            Value::Text(s) => Ok(s),
            v => wrong(&v),
        }
    }
}
impl FromCol for Vec<u8> {
    fn from_col(v: Value) -> Result<Self> {
        match v {
            Value::Blob(b) => Ok(b),
            Value::Text(s) => Ok(s.into_bytes()),
            v => wrong(&v),
        }
    }
}
impl FromCol for bool {
    fn from_col(v: Value) -> Result<Self> {
        match v {
            Value::Int(i) => Ok(i != 0),
            v => wrong(&v),
        }
    }
}
impl FromCol for f64 {
    fn from_col(v: Value) -> Result<Self> {
        match v {
            Value::Real(x) => Ok(x),
            Value::Int(i) => Ok(i as f64),
            v => wrong(&v),
        }
    }
}
macro_rules! int_from_col {
    ($($t:ty),*) => {$(
        impl FromCol for $t {
            fn from_col(v: Value) -> Result<Self> {
                match v {
                    Value::Int(i) => <$t>::try_from(i).map_err(|_| {
                        DbError::Type(format!("{i} does not fit {}", stringify!($t)))
                    }),
                    v => wrong(&v),
                }
            }
        }
    )*};
}
int_from_col!(i8, i16, i32, i64, u8, u16, u32, u64, usize);
impl<T: FromCol> FromCol for Option<T> {
    fn from_col(v: Value) -> Result<Self> {
        match v {
            Value::Null => Ok(None),
            v => T::from_col(v).map(Some),
        }
    }
}

// ---------------------------------------------------------------- rows

/// One result row, read by column index (or name) as in rusqlite: `r.get(0)`,
/// `r.get::<_, Option<String>>(1)`.
pub struct Row {
    names: std::rc::Rc<Vec<String>>,
    values: Vec<Value>,
}

/// A column of a [`Row`]: its index or its name.
pub trait RowIndex {
    fn index(&self, names: &[String]) -> Result<usize>;
}

impl RowIndex for usize {
    fn index(&self, names: &[String]) -> Result<usize> {
        if *self < names.len() {
            Ok(*self)
        } else {
            Err(DbError::Type(format!(
                "column {self} of a row of {}",
                names.len()
            )))
        }
    }
}

impl RowIndex for &str {
    fn index(&self, names: &[String]) -> Result<usize> {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(self))
            .ok_or_else(|| DbError::Type(format!("no column {self:?} in {names:?}")))
    }
}

impl Row {
    pub fn get<I: RowIndex, T: FromCol>(&self, idx: I) -> Result<T> {
        let i = idx.index(&self.names)?;
        T::from_col(self.values[i].clone()).map_err(|e| match e {
            DbError::Type(m) => DbError::Type(format!("column {} ({i}): {m}", self.names[i])),
            e => e,
        })
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

fn pg_value(row: &postgres::Row, i: usize) -> Result<Value> {
    let ty = row.columns()[i].type_().clone();
    let e = |e: postgres::Error| DbError::Type(format!("column {i} ({ty}): {e}"));
    Ok(match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(e)?.map(Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(e)?
            .map(|x| Value::Int(x.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(e)?
            .map(|x| Value::Int(x.into())),
        Type::OID => row
            .try_get::<_, Option<u32>>(i)
            .map_err(e)?
            .map(|x| Value::Int(x.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(e)?
            .map(|x| Value::Int(x.into())),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)
            .map_err(e)?
            .map(Value::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)
            .map_err(e)?
            .map(|x| Value::Real(x.into())),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(e)?
            .map(Value::Blob),
        ref t if is_text(t) => row
            .try_get::<_, Option<String>>(i)
            .map_err(e)?
            .map(Value::Text),
        t => {
            return Err(DbError::Type(format!(
                "column {i} is {t} on PostgreSQL, which the tests do not read: cast it \
                 (e.g. CAST(SUM(x) AS BIGINT))"
            )))
        }
    }
    .unwrap_or(Value::Null))
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef as V;
    match v {
        V::Null => Value::Null,
        V::Integer(i) => Value::Int(i),
        V::Real(x) => Value::Real(x),
        V::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        V::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// `?N` (and a bare `?`) outside quotes become `$N`, PostgreSQL's placeholders.
pub fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut next = 1;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    digits = next.to_string();
                }
                next = digits.parse::<usize>().unwrap() + 1;
                out.push('$');
                out.push_str(&digits);
            }
            None => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------- the connection

/// A connection to the test's store.
pub enum TestDb {
    Sqlite(rusqlite::Connection),
    Postgres(RefCell<postgres::Client>),
}

impl TestDb {
    /// The SQLite file at `path` (made if missing, as rusqlite does), waiting up to 10 s for
    /// its locks.
    pub fn open_sqlite(path: &Path) -> TestDb {
        let c = rusqlite::Connection::open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        TestDb::Sqlite(c)
    }

    pub fn connect_postgres(url: &str) -> TestDb {
        let c = postgres::Client::connect(url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test's PostgreSQL database: {e}"));
        TestDb::Postgres(RefCell::new(c))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDb::Postgres(_))
    }

    /// The rusqlite connection, for tests about the SQLite file itself (built with
    /// `Env::build_sqlite`).
    pub fn sqlite(&self) -> &rusqlite::Connection {
        match self {
            TestDb::Sqlite(c) => c,
            TestDb::Postgres(_) => panic!("a SQLite-only test runs on PostgreSQL"),
        }
    }

    /// Every row of `sql`, each through `f`.
    pub fn query_all<P: Params, T, F>(&self, sql: &str, params: P, mut f: F) -> Result<Vec<T>>
    where
        F: FnMut(&Row) -> Result<T>,
    {
        self.rows(sql, params.values())?
            .iter()
            .map(&mut f)
            .collect()
    }

    /// The first row of `sql` through `f`; [`DbError::NoRows`] if there is none.
    pub fn query_row<P: Params, T, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        F: FnOnce(&Row) -> Result<T>,
    {
        let rows = self.rows(sql, params.values())?;
        f(rows.first().ok_or(DbError::NoRows)?)
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        let values = params.values();
        match self {
            TestDb::Sqlite(c) => Ok(c.execute(sql, rusqlite::params_from_iter(values.iter()))?),
            TestDb::Postgres(c) => {
                let refs: Vec<&(dyn PgToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn PgToSql + Sync)).collect();
                let n = c.borrow_mut().execute(&dollar_placeholders(sql), &refs)?;
                Ok(n as usize)
            }
        }
    }

    /// Runs several statements separated by `;`, without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            TestDb::Sqlite(c) => Ok(c.execute_batch(sql)?),
            TestDb::Postgres(c) => Ok(c.borrow_mut().batch_execute(sql)?),
        }
    }

    /// A statement to run with [`Stmt::query_map`], as rusqlite's `prepare`.
    pub fn prepare<'a>(&'a self, sql: &str) -> Result<Stmt<'a>> {
        Ok(Stmt {
            db: self,
            sql: sql.to_string(),
        })
    }

    /// A transaction (BEGIN), rolled back on drop unless committed.
    pub fn transaction(&mut self) -> Result<Tx<'_>> {
        self.execute_batch("BEGIN")?;
        Ok(Tx {
            db: self,
            done: false,
        })
    }

    /// Holds the store's write lock until the returned transaction ends, so the daemon's
    /// next write waits: SQLite's `BEGIN IMMEDIATE` (the daemon gives up after its busy
    /// timeout); on PostgreSQL `LOCK TABLE posts, meta IN ACCESS EXCLUSIVE MODE`, which
    /// holds its reads of the schedule too.
    pub fn lock_store(&mut self) -> Result<Tx<'_>> {
        match self {
            TestDb::Sqlite(_) => self.execute_batch("BEGIN IMMEDIATE")?,
            TestDb::Postgres(_) => {
                self.execute_batch("BEGIN; LOCK TABLE posts, meta IN ACCESS EXCLUSIVE MODE")?
            }
        }
        Ok(Tx {
            db: self,
            done: false,
        })
    }

    fn rows(&self, sql: &str, values: Vec<Value>) -> Result<Vec<Row>> {
        match self {
            TestDb::Sqlite(c) => {
                let mut stmt = c.prepare(sql)?;
                let names = std::rc::Rc::new(
                    stmt.column_names()
                        .into_iter()
                        .map(str::to_string)
                        .collect::<Vec<_>>(),
                );
                let n = names.len();
                let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut vals = Vec::with_capacity(n);
                    for i in 0..n {
                        vals.push(sqlite_value(r.get_ref(i)?));
                    }
                    out.push(Row {
                        names: names.clone(),
                        values: vals,
                    });
                }
                Ok(out)
            }
            TestDb::Postgres(c) => {
                let refs: Vec<&(dyn PgToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn PgToSql + Sync)).collect();
                let rows = c.borrow_mut().query(&dollar_placeholders(sql), &refs)?;
                let Some(first) = rows.first() else {
                    return Ok(Vec::new());
                };
                let names = std::rc::Rc::new(
                    first
                        .columns()
                        .iter()
                        .map(|c| c.name().to_string())
                        .collect::<Vec<_>>(),
                );
                rows.iter()
                    .map(|r| {
                        Ok(Row {
                            names: names.clone(),
                            values: (0..r.len())
                                .map(|i| pg_value(r, i))
                                .collect::<Result<_>>()?,
                        })
                    })
                    .collect()
            }
        }
    }
}

/// A prepared statement, as far as the tests need one.
pub struct Stmt<'a> {
    db: &'a TestDb,
    sql: String,
}

impl Stmt<'_> {
    /// Every row through `f`, as an iterator of results (rusqlite's shape).
    pub fn query_map<P: Params, T, F>(
        &mut self,
        params: P,
        mut f: F,
    ) -> Result<std::vec::IntoIter<Result<T>>>
    where
        F: FnMut(&Row) -> Result<T>,
    {
        let rows = self.db.rows(&self.sql, params.values())?;
        Ok(rows.iter().map(&mut f).collect::<Vec<_>>().into_iter())
    }

    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        self.db.execute(&self.sql, params)
    }
}

/// An open transaction; derefs to the connection.
pub struct Tx<'a> {
    db: &'a TestDb,
    done: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.db.execute_batch("COMMIT")
    }

    pub fn rollback(mut self) -> Result<()> {
        self.done = true;
        self.db.execute_batch("ROLLBACK")
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = TestDb;
    fn deref(&self) -> &TestDb {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.db.execute_batch("ROLLBACK");
        }
    }
}

// ---------------------------------------------------------------- a database per Env

/// A database made for one Env on the server of `LIPOST_TEST_POSTGRES`, dropped with it.
pub struct PgDatabase {
    /// The server's URL as given (the database to connect to for CREATE/DROP).
    server: String,
    pub name: String,
    /// The URL of this database.
    pub url: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl PgDatabase {
    pub fn create(server: &str) -> PgDatabase {
        let name = format!(
            "lipost_t_{}_{}_{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let url = with_database(server, &name);
        let mut admin = postgres::Client::connect(server, postgres::NoTls).unwrap_or_else(|e| {
            panic!("LIPOST_TEST_POSTGRES: cannot connect to the PostgreSQL server: {e}")
        });
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {}", DbError::from(e)));
        PgDatabase {
            server: server.to_string(),
            name,
            url,
        }
    }
}

impl Drop for PgDatabase {
    /// Best effort: a test that failed leaves no database behind, but a drop that fails
    /// does not fail the test.
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// `server` (a libpq URL) with its database name replaced by `name`. Split by hand: the
/// `url` crate refuses libpq's user without a host (`postgresql://lipost@/postgres?host=/dir`,
/// the Unix-socket form). `postgresql:///db?host=%2Fdir`, `postgres://u:p@h:5432/db` and
/// `postgres://h?sslmode=require` keep all but their database name too.
pub fn with_database(server: &str, name: &str) -> String {
    let (scheme, rest) = server
        .split_once("://")
        .filter(|(s, _)| matches!(*s, "postgres" | "postgresql"))
        .expect("LIPOST_TEST_POSTGRES must start with postgres:// or postgresql://");
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let params = tail.find(['?', '#']).map_or("", |i| &tail[i..]);
    format!("{scheme}://{authority}/{name}{params}")
}
