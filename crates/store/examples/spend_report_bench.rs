//! Spend-report benchmark: N generated call records (default one million) in the spend log
//! and its daily aggregates, then reports over the whole range timed, and for contrast the
//! same question asked of the raw spend log.
//!
//! ```text
//! cargo run --release -p llmux-store --example spend_report_bench -- [ROWS] [DATABASE_URL]
//! ```
//!
//! Loading a million rows one writer batch at a time takes long on a small machine, so the
//! records are loaded the way an upgraded deployment has them: the database is created at
//! schema v1 (migration 0001 only), the records bulk-inserted into the v1 spend log and
//! aggregates, and then [`Store::connect`] applies migration 0002, which builds the v2
//! aggregates from the spend log (timed: that is the upgrade cost). A further 20 000 records
//! then go through [`Store::write_records`] — the spend writer's path — to time it, and the
//! reports include them.
//!
//! Without a URL it uses a SQLite file in a temporary directory (removed at the end). For
//! PostgreSQL pass a URL of an empty database, e.g.
//! `postgres://postgres@127.0.0.1:5432/llmux_bench` (create it first; the tables are left in
//! place). Records are spread over 30 days, 50 keys (10 teams, 50 users), 8 models and 20
//! features (tags), one or two tags per call, as a mid-sized deployment would see them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Connection;

use llmux_core::{CallRecord, ErrorKind};
use llmux_store::{
    BreakdownQuery, Day, SpendDimension, SpendDimension as D, Store, StoreOptions, UsageFilter,
};

const DAY0_MS: u64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
const DAYS: u64 = 30;
const BATCH: usize = 2_000;

const MODELS: [(&str, &str, &str); 8] = [
    ("gpt-4o", "openai", "gpt-4o-2024-08-06"),
    ("gpt-4o-mini", "openai", "gpt-4o-mini-2024-07-18"),
    ("o3-mini", "openai", "o3-mini"),
    ("claude-sonnet", "anthropic", "claude-3-7-sonnet-20250219"),
    ("claude-haiku", "anthropic", "claude-3-5-haiku-20241022"),
    ("gemini-flash", "gemini", "gemini-2.0-flash"),
    ("gemini-pro", "gemini", "gemini-1.5-pro"),
    ("embed", "openai", "text-embedding-3-small"),
];

/// A cheap deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn record(i: u64, rng: &mut Rng) -> CallRecord {
    let key = rng.below(50);
    let feature = (key % 7 + rng.below(3) * 7) % 20; // each key uses a few features
    let (group, provider, model) = MODELS[((key + rng.below(3)) % 8) as usize];
    let prompt = 200 + rng.below(8_000);
    let failed = rng.below(50) == 0;
    let mut tags = vec![format!("feature-{feature:02}")];
    if rng.below(10) == 0 {
        tags.push("batch".to_owned());
    }
    CallRecord {
        request_id: format!("bench-{i:09}"),
        started_at_ms: DAY0_MS + (i % DAYS) * 86_400_000 + rng.below(86_400_000),
        operation: if group == "embed" {
            "embeddings"
        } else {
            "chat"
        }
        .to_owned(),
        key: Some(format!("key_{key:02}")),
        team: Some(format!("team_{}", key % 10)),
        user: Some(format!("user_{key:02}")),
        end_user: None,
        model_group: group.to_owned(),
        deployment: Some(format!("{group}-0")),
        provider: Some(provider.to_owned()),
        provider_model: Some(model.to_owned()),
        prompt_tokens: prompt,
        completion_tokens: if group == "embed" {
            0
        } else {
            20 + rng.below(800)
        },
        cached_tokens: prompt / (1 + rng.below(4)) * rng.below(2),
        cache_creation_tokens: 0,
        reasoning_tokens: if group == "o3-mini" {
            rng.below(500)
        } else {
            0
        },
        usage_estimated: false,
        cost_nano_usd: Some(1_000 + rng.below(5_000_000) as i64),
        latency_us: 50_000 + rng.below(4_000_000),
        ttft_us: None,
        status: if failed { 502 } else { 200 },
        error_kind: failed.then_some(ErrorKind::UpstreamError),
        cache_hit: false,
        tags,
        attempts: 1,
        ..CallRecord::default()
    }
}

/// Rows per bulk INSERT statement (23 parameters each).
const BULK_ROWS: usize = 1_000;

const V1_LOG_COLUMNS: &str = "request_id, started_at_ms, day, operation, key_id, team_id, \
    user_id, model_group, provider, provider_model, prompt_tokens, completion_tokens, \
    cached_tokens, cache_creation_tokens, reasoning_tokens, usage_estimated, cost_nano, \
    latency_us, status, error_kind, cache_hit, tags, attempts";

/// The v1 daily aggregates, as the v1 writer kept them.
const V1_DAILY: &str = "INSERT INTO llmux_spend_daily SELECT day, COALESCE(key_id, ''), \
    COALESCE(team_id, ''), COALESCE(user_id, ''), model_group, COALESCE(provider, ''), \
    COALESCE(provider_model, ''), COUNT(*), \
    SUM(CASE WHEN status >= 400 OR error_kind IS NOT NULL THEN 1 ELSE 0 END), \
    SUM(CASE WHEN cost_nano IS NULL THEN 1 ELSE 0 END), SUM(prompt_tokens), \
    SUM(completion_tokens), SUM(cached_tokens), SUM(cache_creation_tokens), \
    SUM(reasoning_tokens), COALESCE(SUM(cost_nano), 0) FROM llmux_spend_log \
    GROUP BY day, COALESCE(key_id, ''), COALESCE(team_id, ''), COALESCE(user_id, ''), \
    model_group, COALESCE(provider, ''), COALESCE(provider_model, '')";

fn bulk_sql(rows: usize) -> String {
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let marks: Vec<String> = (1..=23).map(|c| format!("${}", r * 23 + c)).collect();
            format!("({})", marks.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO llmux_spend_log ({V1_LOG_COLUMNS}) VALUES {}",
        tuples.join(", ")
    )
}

/// Schema v1, `rows` records in its spend log and aggregates, on one connection.
macro_rules! load_v1 {
    ($conn:expr, $backend:literal, $rows:expr, $rng:expr) => {{
        let dir = std::env::temp_dir().join(format!("llmux-bench-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(
            format!(
                "{}/migrations/{}/0001_init.sql",
                env!("CARGO_MANIFEST_DIR"),
                $backend
            ),
            dir.join("0001_init.sql"),
        )?;
        sqlx::migrate::Migrator::new(dir.as_path())
            .await?
            .run(&mut *$conn)
            .await?;
        let _ = std::fs::remove_dir_all(&dir);
        let mut tx = $conn.begin().await?;
        let mut i = 0u64;
        while i < $rows {
            let n = ($rows - i).min(BULK_ROWS as u64);
            let sql = bulk_sql(n as usize);
            let mut q = sqlx::query(&sql);
            for j in i..i + n {
                let r = record(j, $rng);
                q = q
                    .bind(r.request_id)
                    .bind(r.started_at_ms as i64)
                    .bind(Day::from_unix_ms(r.started_at_ms as i64).to_string())
                    .bind(r.operation)
                    .bind(r.key)
                    .bind(r.team)
                    .bind(r.user)
                    .bind(r.model_group)
                    .bind(r.provider)
                    .bind(r.provider_model)
                    .bind(r.prompt_tokens as i64)
                    .bind(r.completion_tokens as i64)
                    .bind(r.cached_tokens as i64)
                    .bind(r.cache_creation_tokens as i64)
                    .bind(r.reasoning_tokens as i64)
                    .bind(r.usage_estimated)
                    .bind(r.cost_nano_usd)
                    .bind(r.latency_us as i64)
                    .bind(i32::from(r.status))
                    .bind(r.error_kind.map(|k| k.as_str().to_owned()))
                    .bind(r.cache_hit)
                    .bind(serde_json::to_string(&r.tags)?)
                    .bind(r.attempts as i32);
            }
            q.execute(&mut *tx).await?;
            i += n;
        }
        sqlx::query(V1_DAILY).execute(&mut *tx).await?;
        tx.commit().await?;
    }};
}

/// The median of `runs` timings of `f`.
async fn median<F, Fut, T>(runs: usize, mut f: F) -> (Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f().await);
        times.push(t.elapsed());
    }
    times.sort();
    (times[runs / 2], last.expect("at least one run"))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let tmp = std::env::temp_dir().join(format!("llmux-spend-bench-{}", std::process::id()));
    let url = match args.next() {
        Some(u) => u,
        None => {
            std::fs::create_dir_all(&tmp)?;
            format!("sqlite://{}", tmp.join("bench.db").display())
        }
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    if url.starts_with("sqlite:") {
        let rwc = if url.contains('?') {
            url.clone()
        } else {
            format!("{url}?mode=rwc")
        };
        let mut c = sqlx::SqliteConnection::connect(&rwc).await?;
        // A 256 MiB page cache for the load: the spend log's four indexes are filled in
        // random order, and the default 2 MiB cache turns that into disk reads.
        sqlx::query("PRAGMA cache_size = -262144")
            .execute(&mut c)
            .await?;
        load_v1!(&mut c, "sqlite", rows, &mut rng);
        c.close().await?;
    } else {
        let mut c = sqlx::PgConnection::connect(&url).await?;
        load_v1!(&mut c, "postgres", rows, &mut rng);
        c.close().await?;
    }
    println!(
        "bulk load (schema v1): {rows} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let store = Store::connect_with(
        &url,
        &StoreOptions {
            acquire_timeout: Duration::from_secs(60),
            ..StoreOptions::default()
        },
    )
    .await?;
    println!(
        "backend {:?}: migration 0002 (aggregates built from the spend log) in {:.1} s",
        store.backend(),
        started.elapsed().as_secs_f64()
    );

    let extra = 20_000u64;
    let started = Instant::now();
    let mut written = rows;
    while written < rows + extra {
        let batch: Vec<Arc<CallRecord>> = (written..written + BATCH as u64)
            .map(|i| Arc::new(record(i, &mut rng)))
            .collect();
        store.write_records(&batch).await?;
        written += BATCH as u64;
    }
    let write = started.elapsed();
    println!(
        "writer path: {extra} more records in {:.1} s ({:.0} records/s, batches of {BATCH}, \
         log and aggregates in one transaction each)",
        write.as_secs_f64(),
        extra as f64 / write.as_secs_f64()
    );
    let rows = rows + extra;

    let from = Day::from_unix_ms(DAY0_MS as i64);
    let to = from.plus_days(DAYS as i64 - 1);
    println!("\n| report (30 days, {rows} calls) | groups | median ms (5 runs) |");
    println!("|---|---|---|");
    for dims in [
        vec![D::Tag],
        vec![D::Model],
        vec![D::Key],
        vec![D::Tag, D::Model],
        vec![D::Day, D::Team, D::Model],
        SpendDimension::ALL.to_vec(),
    ] {
        let q = BreakdownQuery::new(dims.clone(), from, to);
        let (t, r) = median(5, || store.spend_breakdown(&q)).await;
        let r = r?;
        let names: Vec<&str> = dims.iter().map(|d| d.as_str()).collect();
        println!(
            "| group_by={} | {} | {} |",
            names.join(","),
            r.rows.len(),
            ms(t)
        );
        assert_eq!(r.total.calls as u64, rows, "every call counted once");
    }
    let mut q = BreakdownQuery::new(vec![D::Model], from, to);
    q.filter.tag = Some("feature-03".into());
    let (t, r) = median(5, || store.spend_breakdown(&q)).await;
    println!(
        "| group_by=model&tag=feature-03 | {} | {} |",
        r?.rows.len(),
        ms(t)
    );

    // For contrast: what-if's profile (the only raw-log read) and a report by model asked
    // of the raw log.
    let mut f = UsageFilter::new(to.plus_days(-6), to);
    f.tag = Some("feature-03".into());
    let (t, p) = median(3, || store.usage_profile(&f)).await;
    let p = p?;
    println!(
        "| whatif profile, tag feature-03, 7 days (raw log) | {} usage rows, {} calls | {} |",
        p.len(),
        p.iter().map(|r| r.calls).sum::<i64>(),
        ms(t)
    );
    let raw = "SELECT provider_model, COUNT(*), SUM(cost_nano) FROM llmux_spend_log \
               WHERE started_at_ms >= $1 AND started_at_ms < $2 GROUP BY provider_model";
    let (lo, hi) = (from.start_ms(), to.plus_days(1).start_ms());
    let t = match store.backend() {
        llmux_store::Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&url).await?;
            let (t, r) = median(3, || sqlx::query(raw).bind(lo).bind(hi).fetch_all(&pool)).await;
            r?;
            pool.close().await;
            t
        }
        llmux_store::Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await?;
            let (t, r) = median(3, || sqlx::query(raw).bind(lo).bind(hi).fetch_all(&pool)).await;
            r?;
            pool.close().await;
            t
        }
    };
    println!(
        "| group_by=model from the raw log (contrast) | 8 | {} |",
        ms(t)
    );

    store.close().await;
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}
