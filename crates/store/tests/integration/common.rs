//! Test fixtures: throwaway SQLite files and PostgreSQL databases, Redis prefixes, time bounds.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use llmux_core::{CallRecord, ErrorKind};
use llmux_store::{Store, StoreOptions};
use rand::RngCore;
use sqlx::Connection;

/// Every test body runs under this bound.
pub const TEST_BOUND: Duration = Duration::from_secs(90);

/// Run `f`, failing the test if it takes longer than [`TEST_BOUND`].
pub async fn bounded<F: Future>(f: F) -> F::Output {
    match tokio::time::timeout(TEST_BOUND, f).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {TEST_BOUND:?}"),
    }
}

/// A short random hex string for unique names.
pub fn unique() -> String {
    let mut b = [0u8; 6];
    rand::rng().fill_bytes(&mut b);
    format!("{}_{}", std::process::id(), hex::encode(b))
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let p = std::env::temp_dir().join(format!("llmux_store_test_{}", unique()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A SQLite database file in a temporary directory (WAL mode, as in production).
pub struct SqliteDb {
    /// Kept for its `Drop`: the directory goes when the database does.
    _dir: TempDir,
    pub url: String,
}

impl SqliteDb {
    pub fn new() -> Self {
        let dir = TempDir::new();
        let url = format!("sqlite://{}?mode=rwc", dir.path("llmux.db").display());
        Self { _dir: dir, url }
    }
}

fn pg_admin_url() -> String {
    std::env::var("LLMUX_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn pg_url_for(db: &str) -> String {
    let admin = pg_admin_url();
    match admin.rfind('/') {
        Some(i) if i > "postgres://".len() => format!("{}/{db}", &admin[..i]),
        _ => format!("{admin}/{db}"),
    }
}

/// A fresh PostgreSQL database, dropped (WITH FORCE) when this value is dropped, even if the
/// test panicked. `None` when PostgreSQL is unreachable and `LLMUX_SKIP_PG=1`.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub async fn create() -> Option<Self> {
        let mut admin = match sqlx::PgConnection::connect(&pg_admin_url()).await {
            Ok(c) => c,
            Err(e) => {
                if std::env::var("LLMUX_SKIP_PG").as_deref() == Ok("1") {
                    eprintln!("skipped: PostgreSQL unreachable and LLMUX_SKIP_PG=1 ({e})");
                    return None;
                }
                panic!(
                    "PostgreSQL is not reachable (LLMUX_TEST_PG_URL, default 127.0.0.1:5432 as postgres): {e}. \
                     Start it, point LLMUX_TEST_PG_URL at one, or set LLMUX_SKIP_PG=1 to skip \
                     the PostgreSQL tests."
                );
            }
        };
        let name = format!("llmux_store_test_{}", unique());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        Some(Self {
            url: pg_url_for(&name),
            name,
        })
    }

    /// Run one statement on the admin database (`postgres`).
    pub async fn admin(&self, sql: &str) {
        let mut admin = sqlx::PgConnection::connect(&pg_admin_url())
            .await
            .expect("admin connection");
        sqlx::query(sql)
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = admin.close().await;
    }

    /// Make the database unreachable: refuse new connections and end the existing ones.
    pub async fn cut(&self) {
        self.admin(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            self.name
        ))
        .await;
        self.admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        ))
        .await;
    }

    /// Let connections in again.
    pub async fn restore(&self) {
        self.admin(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
            self.name
        ))
        .await;
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A runtime of its own: this may run inside (or after) the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut c)
                                .await;
                        let _ = c.close().await;
                    }
                });
            }
        })
        .join();
    }
}

/// Pool settings for tests: notice an unreachable database quickly.
pub fn quick_options() -> StoreOptions {
    StoreOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(2),
        ..StoreOptions::default()
    }
}

/// A store on a fresh backend: SQLite in a temp file, or a fresh PostgreSQL database.
pub enum TestDb {
    Sqlite(SqliteDb),
    Postgres(PgDb),
}

impl TestDb {
    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite(d) => &d.url,
            Self::Postgres(d) => &d.url,
        }
    }

    pub async fn store(&self) -> Store {
        Store::connect_with(self.url(), &quick_options())
            .await
            .expect("connect test store")
    }

    pub fn scratch(&self) -> TempDir {
        TempDir::new()
    }
}

/// Run `body` against SQLite (temp file) and, as a separate test, PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::common::TestDb::Sqlite($crate::common::SqliteDb::new());
                $crate::common::bounded(super::$name(&db)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(pg) = $crate::common::PgDb::create().await else {
                    return;
                };
                let db = $crate::common::TestDb::Postgres(pg);
                $crate::common::bounded(super::$name(&db)).await;
            }
        }
    )*};
}

/// A varied call record: `i` picks its day, key, team, model, status, tags and cost.
#[allow(clippy::needless_update)]
pub fn record(i: u64, run: &str) -> CallRecord {
    let day0 = 1_735_689_600_000u64; // 2025-01-01T00:00:00Z
    let failed = i.is_multiple_of(17);
    CallRecord {
        request_id: format!("{run}-req-{i}"),
        started_at_ms: day0 + (i % 3) * 86_400_000 + i,
        operation: if i.is_multiple_of(2) {
            "chat"
        } else {
            "chat_stream"
        }
        .to_owned(),
        key: Some(format!("key_{}", i % 2)),
        team: (i % 4 != 3).then(|| format!("team_{}", i % 2)),
        user: Some(format!("user_{}", i % 3)),
        end_user: (i.is_multiple_of(5)).then(|| format!("end-{i}")),
        model_group: ["gpt-4o", "claude", "gemini"][(i % 3) as usize].to_owned(),
        deployment: Some(format!("dep-{}", i % 2)),
        provider: Some(["openai", "anthropic"][(i % 2) as usize].to_owned()),
        provider_model: Some(format!("pm-{}", i % 4)),
        prompt_tokens: 100 + i,
        completion_tokens: 10 + i % 7,
        cached_tokens: i % 5,
        cache_creation_tokens: i % 3,
        reasoning_tokens: i % 2,
        usage_estimated: i.is_multiple_of(11),
        cost_nano_usd: (!i.is_multiple_of(13)).then_some(1_000 + i as i64 * 7),
        latency_us: 1_000 + i,
        ttft_us: (i % 2 == 1).then_some(500 + i),
        status: if failed { 502 } else { 200 },
        error_kind: failed.then_some(ErrorKind::UpstreamError),
        cache_hit: i.is_multiple_of(9),
        tags: match i % 4 {
            0 => vec![],
            1 => vec!["prod".to_owned()],
            2 => vec!["prod".to_owned(), "batch".to_owned()],
            _ => vec!["dev".to_owned()],
        },
        attempts: 1 + (i % 3) as u32,
        fallback: (i.is_multiple_of(10)).then(|| "backup".to_owned()),
        stream_resumptions: (i % 3) as u32,
        trace_id: Some(format!("{:032x}", i + 1)),
        parent_span_id: (i.is_multiple_of(2)).then(|| format!("{:016x}", i + 7)),
        finish_reason: Some("stop".to_owned()),
        // Fields added to `CallRecord` later keep their defaults here; the spend module's
        // `every_call_record_field_has_a_column` test names them.
        ..CallRecord::default()
    }
}

pub fn records(n: u64, run: &str) -> Vec<Arc<CallRecord>> {
    (0..n).map(|i| Arc::new(record(i, run))).collect()
}
