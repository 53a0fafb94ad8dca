//! Backend plumbing: one enum over a SQLite and a PostgreSQL pool, statements written once.
//!
//! Every statement in this crate is plain SQL that both backends accept, with `$1, $2, …`
//! placeholders (SQLite reads `$N` as the N-th argument, PostgreSQL natively) and arguments
//! from the small [`Arg`] set, so each query is written once and run on either pool. Rows
//! decode into `#[derive(sqlx::FromRow)]` structs, which implement `FromRow` for both row types.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{FromRow, PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::{Result, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a [`crate::Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (WAL mode) or in-memory database.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// `sql` as this backend runs it. Statements are written with PostgreSQL's `$N`
    /// placeholders, which SQLite accepts too — but SQLite keeps named and numbered
    /// parameters in a list it searches linearly, once per parameter when the statement is
    /// prepared and again when each one is bound, so a bulk insert of a few thousand
    /// parameters costs quadratic time (it was 41% of the gateway's CPU under load, all in
    /// `sqlite3VListNumToName`). When the placeholders appear exactly once each and in
    /// order (`$1`, `$2`, …, `$n` for `n` arguments), SQLite gets anonymous `?`s instead,
    /// which bind by position with no list at all; anything else is left as written.
    pub(crate) fn placeholders(self, sql: &str, args: usize) -> std::borrow::Cow<'_, str> {
        if self == Backend::Postgres || args == 0 {
            return sql.into();
        }
        let mut out = String::with_capacity(sql.len());
        let mut next = 1usize;
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            out.push_str(&rest[..at]);
            if digits == 0 {
                out.push('$');
                rest = &rest[at + 1..];
                continue;
            }
            if rest[at + 1..at + 1 + digits].parse::<usize>().ok() != Some(next) {
                return sql.into();
            }
            out.push('?');
            next += 1;
            rest = &rest[at + 1 + digits..];
        }
        out.push_str(rest);
        if next == args + 1 {
            out.into()
        } else {
            sql.into()
        }
    }
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Largest pool size (SQLite in-memory databases always use one connection).
    pub max_connections: u32,
    /// How long to wait for a pooled connection, including connecting, before failing. This is
    /// also how quickly the spend writer notices an unreachable database.
    pub acquire_timeout: Duration,
    /// SQLite: how long a statement waits on a locked database before failing.
    pub sqlite_busy_timeout: Duration,
    /// SQLite: page cache per pooled connection, in KiB (`PRAGMA cache_size = -N`).
    /// SQLite's default is 2,000 KiB per connection; with 8 connections that let a
    /// gateway's memory creep up by ~16 MB as the spend log grows. Spend rows are appended
    /// and keys are cached in memory, so a small cache costs nothing measurable; the
    /// operating system's page cache holds the file anyway.
    pub sqlite_cache_kib: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
            sqlite_cache_kib: 512,
        }
    }
}

/// One argument of a statement.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Self::Text(Some(v))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Self::Text(Some(v.to_owned()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Self::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Self::Text(v.map(str::to_owned))
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

/// Collects arguments and hands out their `$N` placeholders.
#[derive(Debug, Default)]
pub(crate) struct Args(pub(crate) Vec<Arg>);

impl Args {
    /// Add an argument; returns its placeholder (`$N`).
    pub(crate) fn push(&mut self, a: impl Into<Arg>) -> String {
        self.0.push(a.into());
        format!("${}", self.0.len())
    }
}

/// A row type readable from both backends.
pub(crate) trait AnyRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> AnyRow for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// Statements with more parameters than this are not kept in a connection's statement cache.
/// They are the spend writer's multi-row statements, whose text changes with the number of
/// rows: cached, every pooled connection kept up to 100 compiled programs of up to ~50 KB each
/// (heaptrack: 28 MB after a few minutes at 400 calls/s, the soak's RSS creep). Preparing
/// one per batch costs far less than a batch's inserts.
const MAX_CACHED_STATEMENT_PARAMS: usize = 100;

macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let args = $args;
        let mut q = $q.persistent(args.len() <= MAX_CACHED_STATEMENT_PARAMS);
        for a in args {
            q = match a {
                Arg::Int(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
            };
        }
        q
    }};
}

/// The pools.
#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open transaction on either backend.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Db {
    pub(crate) async fn connect(url: &str, opts: &StoreOptions) -> Result<Self> {
        if url.starts_with("sqlite:") {
            let mut co = SqliteConnectOptions::from_str(url)?
                .busy_timeout(opts.sqlite_busy_timeout)
                .foreign_keys(true)
                .pragma("cache_size", format!("-{}", opts.sqlite_cache_kib.max(64)));
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            if !url.contains("mode=") {
                // `sqlite://llmux.db` creates the file; an explicit `mode=` is respected.
                co = co.create_if_missing(true);
            }
            if !in_memory {
                co = co
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal);
            }
            let mut po = SqlitePoolOptions::new().acquire_timeout(opts.acquire_timeout);
            po = if in_memory {
                // Every connection to `:memory:` is its own database: keep exactly one, forever.
                po.max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
            } else {
                po.max_connections(opts.max_connections.max(1))
            };
            let pool = po.connect_with(co).await?;
            SQLITE_MIGRATIONS.run(&pool).await?;
            Ok(Self::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let co = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections.max(1))
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(co)
                .await?;
            POSTGRES_MIGRATIONS.run(&pool).await?;
            Ok(Self::Postgres(pool))
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    pub(crate) async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Self::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Self::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite(p) => p.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }

    pub(crate) async fn execute(&self, sql: &str, args: Args) -> Result<u64> {
        let sql = self.backend().placeholders(sql, args.0.len());
        let sql = &*sql;
        Ok(match self {
            Self::Sqlite(p) => bind_args!(sqlx::query(sql), args.0)
                .execute(p)
                .await?
                .rows_affected(),
            Self::Postgres(p) => bind_args!(sqlx::query(sql), args.0)
                .execute(p)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn fetch_all<T: AnyRow>(&self, sql: &str, args: Args) -> Result<Vec<T>> {
        let sql = self.backend().placeholders(sql, args.0.len());
        let sql = &*sql;
        Ok(match self {
            Self::Sqlite(p) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args.0)
                    .fetch_all(p)
                    .await?
            }
            Self::Postgres(p) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args.0)
                    .fetch_all(p)
                    .await?
            }
        })
    }

    pub(crate) async fn fetch_optional<T: AnyRow>(
        &self,
        sql: &str,
        args: Args,
    ) -> Result<Option<T>> {
        let sql = self.backend().placeholders(sql, args.0.len());
        let sql = &*sql;
        Ok(match self {
            Self::Sqlite(p) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args.0)
                    .fetch_optional(p)
                    .await?
            }
            Self::Postgres(p) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args.0)
                    .fetch_optional(p)
                    .await?
            }
        })
    }
}

impl Tx {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Self::Sqlite(t) => t.commit().await?,
            Self::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub(crate) async fn execute(&mut self, sql: &str, args: Args) -> Result<u64> {
        let sql = self.backend().placeholders(sql, args.0.len());
        let sql = &*sql;
        Ok(match self {
            Self::Sqlite(t) => bind_args!(sqlx::query(sql), args.0)
                .execute(&mut **t)
                .await?
                .rows_affected(),
            Self::Postgres(t) => bind_args!(sqlx::query(sql), args.0)
                .execute(&mut **t)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn fetch_all<T: AnyRow>(&mut self, sql: &str, args: Args) -> Result<Vec<T>> {
        let sql = self.backend().placeholders(sql, args.0.len());
        let sql = &*sql;
        Ok(match self {
            Self::Sqlite(t) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args.0)
                    .fetch_all(&mut **t)
                    .await?
            }
            Self::Postgres(t) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args.0)
                    .fetch_all(&mut **t)
                    .await?
            }
        })
    }

    pub(crate) async fn fetch_optional<T: AnyRow>(
        &mut self,
        sql: &str,
        args: Args,
    ) -> Result<Option<T>> {
        let sql = self.backend().placeholders(sql, args.0.len());
        let sql = &*sql;
        Ok(match self {
            Self::Sqlite(t) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args.0)
                    .fetch_optional(&mut **t)
                    .await?
            }
            Self::Postgres(t) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args.0)
                    .fetch_optional(&mut **t)
                    .await?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Arg, Args, Backend, Db, StoreOptions};
    use sqlx::Connection;

    fn temp_sqlite_url(what: &str) -> (String, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "llmux-{what}-{}-{}.db",
            std::process::id(),
            rand::random::<u32>()
        ));
        (format!("sqlite://{}", path.display()), path)
    }

    fn remove_sqlite(path: &std::path::Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[tokio::test]
    async fn batch_statements_of_every_size_are_not_cached_per_connection() {
        let (url, path) = temp_sqlite_url("stmt-cache");
        let opts = StoreOptions {
            max_connections: 1,
            ..StoreOptions::default()
        };
        let db = Db::connect(&url, &opts).await.unwrap();
        db.execute("CREATE TABLE t (a BIGINT, b TEXT)", Args::default())
            .await
            .unwrap();
        let Db::Sqlite(pool) = &db else {
            panic!("not a SQLite pool")
        };
        let cached = async || pool.acquire().await.unwrap().cached_statements_size();
        let before = cached().await;
        // A small statement is cached once however often it runs.
        for i in 0..3 {
            let mut a = Args::default();
            let m = a.push(Arg::Int(Some(i)));
            db.execute(&format!("INSERT INTO t (a) VALUES ({m})"), a)
                .await
                .unwrap();
        }
        assert_eq!(cached().await, before + 1);
        // Multi-row inserts of 51..=90 rows (102..=180 parameters): one text per size.
        for rows in 51..=90_i64 {
            let mut a = Args::default();
            let tuples: Vec<String> = (0..rows)
                .map(|i| {
                    format!(
                        "({}, {})",
                        a.push(Arg::Int(Some(i))),
                        a.push(Arg::Text(None))
                    )
                })
                .collect();
            let sql = format!("INSERT INTO t (a, b) VALUES {}", tuples.join(", "));
            assert_eq!(db.execute(&sql, a).await.unwrap(), rows as u64);
        }
        assert_eq!(cached().await, before + 1, "batch statements were cached");
        db.close().await;
        remove_sqlite(&path);
    }

    #[tokio::test]
    async fn every_pooled_sqlite_connection_gets_the_small_page_cache() {
        let (url, path) = temp_sqlite_url("cache-size");
        let opts = StoreOptions {
            sqlite_cache_kib: 300,
            ..StoreOptions::default()
        };
        let db = Db::connect(&url, &opts).await.unwrap();
        let Db::Sqlite(pool) = &db else {
            panic!("not a SQLite pool")
        };
        // Two connections at once: the setting is per connection, not per file.
        let mut a = pool.acquire().await.unwrap();
        let mut b = pool.acquire().await.unwrap();
        for conn in [&mut a, &mut b] {
            let n: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(n, -300);
        }
        drop((a, b));
        db.close().await;
        remove_sqlite(&path);
    }

    #[test]
    fn sqlite_gets_anonymous_placeholders_only_when_they_bind_by_position() {
        let sqlite = Backend::Sqlite;
        assert_eq!(
            sqlite.placeholders("INSERT INTO t VALUES ($1, $2), ($3, '$x')", 3),
            "INSERT INTO t VALUES (?, ?), (?, '$x')"
        );
        assert_eq!(sqlite.placeholders("SELECT $10", 1), "SELECT $10");
        // Out of order, repeated, or not matching the argument count: left as written.
        for (sql, n) in [
            ("SELECT $2, $1", 2),
            ("UPDATE t SET a = $1 WHERE b = $1", 1),
            ("SELECT $1", 2),
        ] {
            assert_eq!(sqlite.placeholders(sql, n), sql);
        }
        assert_eq!(Backend::Postgres.placeholders("SELECT $1", 1), "SELECT $1");
        let many: Vec<String> = (1..=5000).map(|i| format!("${i}")).collect();
        let sql = format!("VALUES ({})", many.join(", "));
        assert_eq!(sqlite.placeholders(&sql, 5000).matches('?').count(), 5000);
    }
}
