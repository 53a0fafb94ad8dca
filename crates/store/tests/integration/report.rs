//! Spend reports by any combination of dimensions, checked against sums computed here from
//! the records themselves, on both backends; and proof that they never read the spend log.

use std::collections::BTreeMap;
use std::sync::Arc;

use llmux_core::{CallRecord, ErrorKind};
use llmux_store::*;

use crate::common::{TestDb, record, unique};
use crate::on_both_backends;

on_both_backends!(
    breakdowns_match_sums_computed_from_the_records,
    a_small_report_matches_hand_computed_figures,
    reports_are_answered_from_aggregates_not_the_spend_log,
    usage_profile_folds_identical_usage_per_tag,
    key_metadata_tags_are_checked,
);

/// Varied records over three days: latencies across the histogram, cached and reasoning
/// tokens, errors, unpriced calls, several tags (one repeated), calls without key or team.
fn report_records(run: &str, n: u64) -> Vec<Arc<CallRecord>> {
    (0..n)
        .map(|i| {
            let mut r = record(i, run);
            r.latency_us = (i * 7_919 % 6_000) * 1_000 + i % 1_000;
            if i % 50 == 7 {
                r.latency_us = 75_000_000 + i; // beyond the last bound
            }
            r.cached_tokens = (i * 13) % 90;
            r.reasoning_tokens = i % 9;
            r.completion_tokens += 9;
            if i % 7 == 0 {
                r.tags = vec!["prod".into(), "prod".into(), "summarize".into()];
            }
            if i % 11 == 0 {
                r.key = None;
            }
            if i % 19 == 0 {
                r.error_kind = Some(ErrorKind::RateLimited);
                r.status = 429;
            }
            Arc::new(r)
        })
        .collect()
}

fn distinct_tags(r: &CallRecord) -> Vec<Option<String>> {
    let mut t: Vec<String> = r.tags.iter().filter(|t| !t.is_empty()).cloned().collect();
    t.sort();
    t.dedup();
    if t.is_empty() {
        vec![None]
    } else {
        t.into_iter().map(Some).collect()
    }
}

fn value(r: &CallRecord, d: SpendDimension, tag: &Option<String>) -> Option<String> {
    let v = match d {
        SpendDimension::Day => Some(Day::from_unix_ms(r.started_at_ms as i64).to_string()),
        SpendDimension::Tag => tag.clone(),
        SpendDimension::Model => r.provider_model.clone(),
        SpendDimension::ModelGroup => Some(r.model_group.clone()),
        SpendDimension::Provider => r.provider.clone(),
        SpendDimension::Key => r.key.clone(),
        SpendDimension::Team => r.team.clone(),
        SpendDimension::User => r.user.clone(),
    };
    v.filter(|s| !s.is_empty())
}

fn bucket(latency_us: u64) -> usize {
    LATENCY_BUCKET_BOUNDS_US
        .iter()
        .position(|b| latency_us <= *b)
        .unwrap_or(LATENCY_BUCKET_BOUNDS_US.len())
}

fn add(t: &mut SpendTotals, r: &CallRecord) {
    t.calls += 1;
    t.errors += i64::from(r.status >= 400 || r.error_kind.is_some());
    t.unpriced_calls += i64::from(r.cost_nano_usd.is_none());
    t.prompt_tokens += r.prompt_tokens as i64;
    t.completion_tokens += r.completion_tokens as i64;
    t.cached_tokens += r.cached_tokens as i64;
    t.cache_creation_tokens += r.cache_creation_tokens as i64;
    t.reasoning_tokens += r.reasoning_tokens as i64;
    t.spend_nano += r.cost_nano_usd.unwrap_or(0);
    t.latency_sum_us += r.latency_us as i64;
    t.latency_max_us = t.latency_max_us.max(r.latency_us as i64);
    t.latency_histogram[bucket(r.latency_us)] += 1;
}

fn matches(r: &CallRecord, f: &BreakdownFilter) -> bool {
    let eq = |want: &Option<String>, have: Option<&str>| {
        want.as_deref().is_none_or(|w| have.unwrap_or("") == w)
    };
    let tag_ok = f.tag.as_deref().is_none_or(|want| {
        distinct_tags(r)
            .iter()
            .any(|t| t.as_deref().unwrap_or("") == want)
    });
    tag_ok
        && eq(&f.model, r.provider_model.as_deref())
        && eq(&f.model_group, Some(&r.model_group))
        && eq(&f.provider, r.provider.as_deref())
        && eq(&f.key_id, r.key.as_deref())
        && eq(&f.team_id, r.team.as_deref())
        && eq(&f.user_id, r.user.as_deref())
}

type Groups = BTreeMap<Vec<Option<String>>, SpendTotals>;

/// The report and its total, computed from the records.
fn expected(recs: &[Arc<CallRecord>], q: &BreakdownQuery) -> (Groups, SpendTotals) {
    let by_tag = q.dimensions.contains(&SpendDimension::Tag) || q.filter.tag.is_some();
    let mut groups = Groups::new();
    let mut total = SpendTotals::default();
    for r in recs.iter().filter(|r| matches(r, &q.filter)) {
        add(&mut total, r);
        let units: Vec<Option<String>> = if by_tag {
            distinct_tags(r)
                .into_iter()
                .filter(|t| {
                    q.filter
                        .tag
                        .as_deref()
                        .is_none_or(|want| t.as_deref().unwrap_or("") == want)
                })
                .collect()
        } else {
            vec![None]
        };
        for tag in units {
            let key: Vec<Option<String>> =
                q.dimensions.iter().map(|d| value(r, *d, &tag)).collect();
            add(groups.entry(key).or_default(), r);
        }
    }
    (groups, total)
}

/// Run the query; check it against the records, and that groups are sorted by spend.
async fn check(store: &Store, recs: &[Arc<CallRecord>], q: &BreakdownQuery) -> Breakdown {
    let got = store.spend_breakdown(q).await.unwrap();
    let (want, want_total) = expected(recs, q);
    assert_eq!(got.total, want_total, "total of {:?}", q.dimensions);
    let got_groups: Groups = got
        .rows
        .iter()
        .map(|r| (r.values.clone(), r.totals))
        .collect();
    assert_eq!(got_groups.len(), got.rows.len(), "groups are distinct");
    match q.limit {
        None => assert_eq!(got_groups, want, "report by {:?}", q.dimensions),
        Some(n) => {
            assert_eq!(got.rows.len(), want.len().min(n as usize));
            for (k, v) in &got_groups {
                assert_eq!(want.get(k), Some(v), "group {k:?}");
            }
            // The groups kept are the most expensive ones.
            let mut spends: Vec<i64> = want.values().map(|t| t.spend_nano).collect();
            spends.sort_unstable_by(|a, b| b.cmp(a));
            let kept: Vec<i64> = got.rows.iter().map(|r| r.totals.spend_nano).collect();
            assert_eq!(kept, spends[..kept.len()].to_vec());
        }
    }
    let sort_key = |r: &BreakdownRow| {
        (
            -r.totals.spend_nano,
            -r.totals.calls,
            r.values
                .iter()
                .map(|v| v.clone().unwrap_or_default())
                .collect::<Vec<_>>(),
        )
    };
    assert!(
        got.rows
            .windows(2)
            .all(|w| sort_key(&w[0]) <= sort_key(&w[1])),
        "sorted by spend, then calls, then values"
    );
    got
}

fn days() -> (Day, Day) {
    ("2025-01-01".parse().unwrap(), "2025-01-03".parse().unwrap())
}

async fn write_in_batches(store: &Store, recs: &[Arc<CallRecord>]) {
    // Several batches, so aggregate rows are both inserted and added to.
    for chunk in recs.chunks(97) {
        store.write_records(chunk).await.unwrap();
    }
}

async fn breakdowns_match_sums_computed_from_the_records(db: &TestDb) {
    use SpendDimension::*;
    let store = db.store().await;
    let recs = report_records(&unique(), 600);
    write_in_batches(&store, &recs).await;
    let (from, to) = days();

    let mut combos: Vec<Vec<SpendDimension>> =
        SpendDimension::ALL.iter().map(|d| vec![*d]).collect();
    combos.extend([
        vec![Tag, Model],
        vec![Model, Key],
        vec![Day, Team, Tag],
        vec![Provider, ModelGroup, User],
        SpendDimension::ALL.to_vec(),
    ]);
    for dims in combos {
        check(&store, &recs, &BreakdownQuery::new(dims, from, to)).await;
    }

    // Filters, alone and with a tag grouping; a tag filter counts each call once.
    let filters = [
        BreakdownFilter {
            tag: Some("prod".into()),
            ..BreakdownFilter::default()
        },
        BreakdownFilter {
            tag: Some(String::new()),
            ..BreakdownFilter::default()
        },
        BreakdownFilter {
            key_id: Some("key_1".into()),
            model_group: Some("claude".into()),
            ..BreakdownFilter::default()
        },
        BreakdownFilter {
            provider: Some("openai".into()),
            team_id: Some("team_0".into()),
            user_id: Some("user_2".into()),
            model: Some("pm-0".into()),
            ..BreakdownFilter::default()
        },
    ];
    for filter in filters {
        for dims in [vec![Model], vec![Tag, Day]] {
            let mut q = BreakdownQuery::new(dims, from, to);
            q.filter = filter.clone();
            check(&store, &recs, &q).await;
        }
    }

    // The top groups only.
    let mut q = BreakdownQuery::new(vec![Tag, Model], from, to);
    q.limit = Some(3);
    let top = check(&store, &recs, &q).await;
    assert_eq!(top.rows.len(), 3);

    // One day only.
    let mut q = BreakdownQuery::new(vec![Key], to, to);
    q.filter.tag = Some("summarize".into());
    let got = store.spend_breakdown(&q).await.unwrap();
    let on_day: Vec<Arc<CallRecord>> = recs
        .iter()
        .filter(|r| llmux_store::Day::from_unix_ms(r.started_at_ms as i64) == to)
        .cloned()
        .collect();
    assert_eq!(got.total, expected(&on_day, &q).1);

    // A call with several tags counts once per tag, and once in the total: the shares of a
    // report by tag add up to more than 1.
    let by_tag = store
        .spend_breakdown(&BreakdownQuery::new(vec![Tag], from, to))
        .await
        .unwrap();
    let by_model = store
        .spend_breakdown(&BreakdownQuery::new(vec![Model], from, to))
        .await
        .unwrap();
    assert_eq!(by_tag.total, by_model.total);
    assert_eq!(
        by_model.rows.iter().map(|r| r.totals.calls).sum::<i64>(),
        recs.len() as i64
    );
    assert!(by_tag.rows.iter().map(|r| r.totals.calls).sum::<i64>() > recs.len() as i64);
    let shares: f64 = by_model
        .rows
        .iter()
        .filter_map(|r| r.totals.share_of(&by_model.total))
        .sum();
    assert!((shares - 1.0).abs() < 1e-9, "{shares}");

    // Bad queries.
    assert!(matches!(
        store
            .spend_breakdown(&BreakdownQuery::new(vec![Tag], to, from))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .spend_breakdown(&BreakdownQuery::new(vec![], from, to))
            .await,
        Err(StoreError::Invalid(_))
    ));
    // The existing report by tag still lists tagged calls only.
    let old = store
        .spend_report(&ReportQuery::new(GroupBy::Tag, from, to))
        .await
        .unwrap();
    assert!(old.iter().all(|r| r.group.is_some()));
    store.close().await;
}

async fn a_small_report_matches_hand_computed_figures(db: &TestDb) {
    let store = db.store().await;
    let key = store
        .create_key(NewKey {
            alias: Some(format!("checkout-{}", unique())),
            ..NewKey::default()
        })
        .await
        .unwrap()
        .record;
    let run = unique();
    let at = 1_735_776_000_000u64; // 2025-01-02T00:00:00Z
    let call = |i: u64, tags: &[&str], prompt, cached, completion, reasoning, cost, ms: u64| {
        Arc::new(CallRecord {
            request_id: format!("{run}-{i}"),
            started_at_ms: at + i,
            operation: "chat".into(),
            key: Some(key.key_id.clone()),
            model_group: "fast".into(),
            provider: Some("openai".into()),
            provider_model: Some("gpt-4o-mini".into()),
            prompt_tokens: prompt,
            cached_tokens: cached,
            completion_tokens: completion,
            reasoning_tokens: reasoning,
            cost_nano_usd: cost,
            latency_us: ms * 1000,
            status: 200,
            attempts: 1,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..CallRecord::default()
        })
    };
    let recs = vec![
        call(1, &["summarize"], 1000, 400, 200, 50, Some(3_000), 120),
        call(2, &["summarize", "eu"], 2000, 0, 100, 0, Some(5_000), 900),
        call(3, &["chat"], 500, 100, 50, 10, None, 40),
        call(4, &[], 100, 0, 10, 0, Some(1_000), 2_500),
    ];
    store.write_records(&recs).await.unwrap();
    let day: Day = "2025-01-02".parse().unwrap();
    let r = store
        .spend_breakdown(&BreakdownQuery::new(
            vec![SpendDimension::Tag, SpendDimension::Key],
            day,
            day,
        ))
        .await
        .unwrap();
    let groups: Vec<(Option<&str>, i64, i64)> = r
        .rows
        .iter()
        .map(|g| (g.values[0].as_deref(), g.totals.spend_nano, g.totals.calls))
        .collect();
    assert_eq!(
        groups,
        vec![
            (Some("summarize"), 8_000, 2),
            (Some("eu"), 5_000, 1),
            (None, 1_000, 1),
            (Some("chat"), 0, 1),
        ]
    );
    let summarize = &r.rows[0];
    assert_eq!(summarize.values[1].as_deref(), Some(key.key_id.as_str()));
    assert_eq!(summarize.key_alias, key.alias);
    let t = summarize.totals;
    assert_eq!(
        (
            t.prompt_tokens,
            t.cached_tokens,
            t.completion_tokens,
            t.reasoning_tokens
        ),
        (3000, 400, 300, 50)
    );
    assert_eq!(t.avg_latency_ms(), Some(510.0));
    // 120 ms is in (100, 200], 900 ms in (750, 1000]: p95 (rank 2) is 900 ms capped at the
    // slowest call.
    assert_eq!(t.latency_quantile_ms(0.95), Some(900.0));
    assert_eq!(r.rows[3].totals.unpriced_calls, 1);
    // Total: four calls once each, 9 000 nano-USD; "summarize" is 8/9 of it.
    assert_eq!((r.total.calls, r.total.spend_nano), (4, 9_000));
    assert_eq!(r.total.cached_tokens, 500);
    assert_eq!(r.total.reasoning_tokens, 60);
    assert_eq!(t.share_of(&r.total), Some(8.0 / 9.0));
    store.close().await;
}

/// Delete every row of the spend log behind the store's back.
async fn empty_the_spend_log(db: &TestDb) {
    use sqlx::Connection;
    match db {
        TestDb::Sqlite(d) => {
            let mut c = sqlx::SqliteConnection::connect(&d.url).await.unwrap();
            sqlx::query("DELETE FROM llmux_spend_log")
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
        }
        TestDb::Postgres(d) => {
            let mut c = sqlx::PgConnection::connect(&d.url).await.unwrap();
            sqlx::query("TRUNCATE llmux_spend_log")
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.unwrap();
        }
    }
}

async fn reports_are_answered_from_aggregates_not_the_spend_log(db: &TestDb) {
    use SpendDimension::*;
    let store = db.store().await;
    let recs = report_records(&unique(), 300);
    write_in_batches(&store, &recs).await;
    // A ten-year range around the data.
    let from: llmux_store::Day = "2020-01-01".parse().unwrap();
    let to: llmux_store::Day = "2029-12-31".parse().unwrap();
    let queries: Vec<BreakdownQuery> = [vec![Tag, Model], vec![Key, Day], vec![Provider]]
        .into_iter()
        .map(|d| BreakdownQuery::new(d, from, to))
        .collect();
    let mut before = Vec::new();
    for q in &queries {
        before.push(check(&store, &recs, q).await);
    }
    let profile = store
        .usage_profile(&UsageFilter::new(from, to))
        .await
        .unwrap();
    assert_eq!(
        profile.iter().map(|p| p.calls).sum::<i64>(),
        recs.len() as i64
    );

    empty_the_spend_log(db).await;
    assert!(
        store
            .spend_logs(
                &SpendLogFilter::default(),
                &LogPage {
                    limit: 10,
                    cursor: None
                }
            )
            .await
            .unwrap()
            .records
            .is_empty()
    );
    for (q, b) in queries.iter().zip(&before) {
        assert_eq!(&store.spend_breakdown(q).await.unwrap(), b);
    }
    // The what-if profile does read the log: now empty.
    assert!(
        store
            .usage_profile(&UsageFilter::new(from, to))
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;
}

async fn usage_profile_folds_identical_usage_per_tag(db: &TestDb) {
    let store = db.store().await;
    let recs = report_records(&unique(), 400);
    write_in_batches(&store, &recs).await;
    let (from, to) = days();
    for tag in ["prod", "summarize", ""] {
        let mut f = UsageFilter::new(from, to);
        f.tag = Some(tag.to_owned());
        f.model_group = Some("gpt-4o".into());
        let got = store.usage_profile(&f).await.unwrap();
        let want: Vec<&Arc<CallRecord>> = recs
            .iter()
            .filter(|r| r.model_group == "gpt-4o")
            .filter(|r| {
                distinct_tags(r)
                    .iter()
                    .any(|t| t.as_deref().unwrap_or("") == tag)
            })
            .collect();
        assert!(!want.is_empty());
        // Folded: same sums, fewer or as many rows as calls.
        assert_eq!(
            got.iter().map(|p| p.calls).sum::<i64>(),
            want.len() as i64,
            "{tag}"
        );
        assert_eq!(
            got.iter().map(|p| p.spend_nano).sum::<i64>(),
            want.iter()
                .map(|r| r.cost_nano_usd.unwrap_or(0))
                .sum::<i64>()
        );
        assert_eq!(
            got.iter().map(|p| p.cached_tokens * p.calls).sum::<i64>(),
            want.iter().map(|r| r.cached_tokens as i64).sum::<i64>()
        );
        assert_eq!(
            got.iter()
                .map(|p| p.reasoning_tokens * p.calls)
                .sum::<i64>(),
            want.iter().map(|r| r.reasoning_tokens as i64).sum::<i64>()
        );
        assert_eq!(
            got.iter().map(|p| p.unpriced_calls).sum::<i64>(),
            want.iter().filter(|r| r.cost_nano_usd.is_none()).count() as i64
        );
    }
    // Identical usage folds into one row.
    let run = unique();
    let same: Vec<Arc<CallRecord>> = (0..5)
        .map(|i| {
            Arc::new(CallRecord {
                request_id: format!("{run}-same-{i}"),
                started_at_ms: 1_735_689_600_000,
                operation: "chat".into(),
                model_group: "folded".into(),
                provider_model: Some("m".into()),
                prompt_tokens: 10,
                completion_tokens: 5,
                cost_nano_usd: Some(7),
                tags: vec!["fold".into()],
                status: 200,
                ..CallRecord::default()
            })
        })
        .collect();
    store.write_records(&same).await.unwrap();
    let mut f = UsageFilter::new(from, to);
    f.tag = Some("fold".into());
    let got = store.usage_profile(&f).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].calls, got[0].spend_nano), (5, 35));
    store.close().await;
}

async fn key_metadata_tags_are_checked(db: &TestDb) {
    let store = db.store().await;
    let meta = |v: serde_json::Value| -> llmux_core::JsonObject {
        serde_json::from_value(serde_json::json!({ "tags": v })).unwrap()
    };
    let ok = store
        .create_key(NewKey {
            metadata: meta(serde_json::json!(["summarize", "team-a"])),
            ..NewKey::default()
        })
        .await
        .unwrap()
        .record;
    assert_eq!(key_default_tags(&ok.metadata), vec!["summarize", "team-a"]);
    for bad in [
        serde_json::json!("summarize"),
        serde_json::json!([1]),
        serde_json::json!(["x".repeat(MAX_TAG_LEN + 1)]),
        serde_json::json!(["bad\ntag"]),
    ] {
        let e = store
            .create_key(NewKey {
                metadata: meta(bad.clone()),
                ..NewKey::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{bad}: {e:?}");
        let e = store
            .update_key(
                &ok.key_id,
                KeyUpdate {
                    metadata: Some(meta(bad.clone())),
                    ..KeyUpdate::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{bad}: {e:?}");
    }
    store.close().await;
}

on_both_backends!(migration_0002_rolls_up_spend_logged_before_it);

/// Runs only migration 0001 on `pool`, from a copy of its file (same checksum, so the
/// store's migrator later applies 0002 on top).
macro_rules! schema_v1_with_log {
    ($pool:expr, $backend:literal, $recs:expr) => {{
        let dir = crate::common::TempDir::new();
        let src = format!(
            "{}/migrations/{}/0001_init.sql",
            env!("CARGO_MANIFEST_DIR"),
            $backend
        );
        std::fs::copy(&src, dir.path("0001_init.sql")).unwrap();
        sqlx::migrate::Migrator::new(dir.0.as_path())
            .await
            .unwrap()
            .run($pool)
            .await
            .unwrap();
        for r in $recs {
            sqlx::query(
                "INSERT INTO llmux_spend_log (request_id, started_at_ms, day, operation, key_id, \
                 team_id, user_id, model_group, provider, provider_model, prompt_tokens, \
                 completion_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens, \
                 usage_estimated, cost_nano, latency_us, status, error_kind, cache_hit, tags, \
                 attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                 $15, $16, $17, $18, $19, $20, $21, $22, $23)",
            )
            .bind(&r.request_id)
            .bind(r.started_at_ms as i64)
            .bind(llmux_store::Day::from_unix_ms(r.started_at_ms as i64).to_string())
            .bind(&r.operation)
            .bind(&r.key)
            .bind(&r.team)
            .bind(&r.user)
            .bind(&r.model_group)
            .bind(&r.provider)
            .bind(&r.provider_model)
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
            .bind(serde_json::to_string(&r.tags).unwrap())
            .bind(r.attempts as i32)
            .execute($pool)
            .await
            .unwrap();
        }
        // The daily aggregates as the v1 writer kept them.
        sqlx::query(
            "INSERT INTO llmux_spend_daily SELECT day, COALESCE(key_id, ''), \
             COALESCE(team_id, ''), COALESCE(user_id, ''), model_group, COALESCE(provider, ''), \
             COALESCE(provider_model, ''), COUNT(*), \
             SUM(CASE WHEN status >= 400 OR error_kind IS NOT NULL THEN 1 ELSE 0 END), \
             SUM(CASE WHEN cost_nano IS NULL THEN 1 ELSE 0 END), SUM(prompt_tokens), \
             SUM(completion_tokens), SUM(cached_tokens), SUM(cache_creation_tokens), \
             SUM(reasoning_tokens), COALESCE(SUM(cost_nano), 0) FROM llmux_spend_log \
             GROUP BY day, COALESCE(key_id, ''), COALESCE(team_id, ''), COALESCE(user_id, ''), \
             model_group, COALESCE(provider, ''), COALESCE(provider_model, '')",
        )
        .execute($pool)
        .await
        .unwrap();
    }};
}

async fn migration_0002_rolls_up_spend_logged_before_it(db: &TestDb) {
    use SpendDimension::*;
    let recs = report_records(&unique(), 250);
    match db {
        TestDb::Sqlite(d) => {
            let pool = sqlx::SqlitePool::connect(&d.url).await.unwrap();
            schema_v1_with_log!(&pool, "sqlite", &recs);
            pool.close().await;
        }
        TestDb::Postgres(d) => {
            let pool = sqlx::PgPool::connect(&d.url).await.unwrap();
            schema_v1_with_log!(&pool, "postgres", &recs);
            pool.close().await;
        }
    }
    let store = db.store().await;
    let (from, to) = days();
    for dims in [
        vec![Model],
        vec![Tag],
        vec![Tag, Key, Day],
        SpendDimension::ALL.to_vec(),
    ] {
        check(&store, &recs, &BreakdownQuery::new(dims, from, to)).await;
    }
    // New calls add to the rolled-up rows.
    let more = report_records(&unique(), 120);
    store.write_records(&more).await.unwrap();
    let all: Vec<Arc<CallRecord>> = recs.iter().chain(&more).cloned().collect();
    check(
        &store,
        &all,
        &BreakdownQuery::new(vec![Tag, Model], from, to),
    )
    .await;
    store.close().await;
}
