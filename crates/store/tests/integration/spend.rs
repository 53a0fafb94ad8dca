//! The spend log, its aggregates and reports, written directly (no writer), on both backends.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use llmux_core::CallRecord;
use llmux_store::*;
use sqlx::Connection;

use crate::common::{TestDb, records, unique};
use crate::on_both_backends;

on_both_backends!(spend_log_round_trips_and_replays_are_idempotent);

/// What the aggregates must say, computed from the records themselves.
pub fn expected_report(
    recs: &[Arc<CallRecord>],
    group: GroupBy,
) -> BTreeMap<Option<String>, ReportRow> {
    let mut out: BTreeMap<Option<String>, ReportRow> = BTreeMap::new();
    for r in recs {
        let day = Day::from_unix_ms(r.started_at_ms as i64).to_string();
        let groups: Vec<Option<String>> = match group {
            GroupBy::Day => vec![Some(day)],
            GroupBy::Model => vec![Some(r.model_group.clone())],
            GroupBy::ProviderModel => vec![r.provider_model.clone()],
            GroupBy::Provider => vec![r.provider.clone()],
            GroupBy::Key => vec![r.key.clone()],
            GroupBy::Team => vec![r.team.clone()],
            GroupBy::User => vec![r.user.clone()],
            GroupBy::Tag => {
                let mut t: Vec<_> = r.tags.iter().cloned().map(Some).collect();
                t.sort();
                t.dedup();
                t
            }
        };
        for g in groups {
            let row = out.entry(g.clone()).or_default();
            row.group = g;
            row.calls += 1;
            row.errors += i64::from(r.status >= 400 || r.error_kind.is_some());
            row.unpriced_calls += i64::from(r.cost_nano_usd.is_none());
            row.prompt_tokens += r.prompt_tokens as i64;
            row.completion_tokens += r.completion_tokens as i64;
            row.cached_tokens += r.cached_tokens as i64;
            row.cache_creation_tokens += r.cache_creation_tokens as i64;
            row.reasoning_tokens += r.reasoning_tokens as i64;
            row.spend_nano += r.cost_nano_usd.unwrap_or(0);
        }
    }
    out
}

/// Check every grouping of the report against the records.
pub async fn check_reports(store: &Store, recs: &[Arc<CallRecord>]) {
    let from: Day = "2025-01-01".parse().unwrap();
    let to: Day = "2025-01-03".parse().unwrap();
    for g in [
        GroupBy::Day,
        GroupBy::Model,
        GroupBy::ProviderModel,
        GroupBy::Provider,
        GroupBy::Key,
        GroupBy::Team,
        GroupBy::User,
        GroupBy::Tag,
    ] {
        let got: BTreeMap<_, _> = store
            .spend_report(&ReportQuery::new(g, from, to))
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.group.clone(), r))
            .collect();
        assert_eq!(got, expected_report(recs, g), "report by {g:?}");
    }
}

/// Every request id in the spend log, read page by page.
pub async fn all_request_ids(store: &Store) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page = LogPage {
        limit: 500,
        cursor: None,
    };
    loop {
        let p = store
            .spend_logs(&SpendLogFilter::default(), &page)
            .await
            .unwrap();
        ids.extend(p.records.into_iter().map(|r| r.request_id));
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => return ids,
        }
    }
}

async fn spend_log_round_trips_and_replays_are_idempotent(db: &TestDb) {
    let store = db.store().await;
    let run = unique();
    // Keys, teams and users that the records' spend lands on.
    let mut key_ids = Vec::new();
    for _ in 0..2 {
        key_ids.push(
            store
                .create_key(NewKey::default())
                .await
                .unwrap()
                .record
                .key_id,
        );
    }
    for t in ["team_0", "team_1"] {
        store
            .create_team(NewTeam {
                team_id: Some(t.into()),
                ..NewTeam::default()
            })
            .await
            .unwrap();
    }
    for u in ["user_0", "user_1", "user_2"] {
        store
            .create_user(NewUser {
                user_id: u.into(),
                ..NewUser::default()
            })
            .await
            .unwrap();
    }
    let recs: Vec<Arc<CallRecord>> = records(1_000, &run)
        .into_iter()
        .map(|r| {
            let mut r = (*r).clone();
            // Point `key` at real key ids.
            let k = r.key.as_deref() == Some("key_1");
            r.key = Some(key_ids[usize::from(k)].clone());
            Arc::new(r)
        })
        .collect();

    // Written in uneven batches, one with an in-batch duplicate.
    let mut written = 0;
    for chunk in recs.chunks(333) {
        let mut batch = chunk.to_vec();
        batch.push(chunk[0].clone());
        let out = store.write_records(&batch).await.unwrap();
        assert_eq!(out.duplicates, 1);
        written += out.inserted;
    }
    assert_eq!(written, 1_000);

    // A replay changes nothing.
    let again = store.write_records(&recs[..500]).await.unwrap();
    assert_eq!(
        again,
        BatchOutcome {
            inserted: 0,
            duplicates: 500
        }
    );

    // Rows = records, each exactly as written.
    let ids = all_request_ids(&store).await;
    assert_eq!(ids.len(), 1_000);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1_000);
    for r in recs.iter().step_by(37) {
        let back = store.spend_log(&r.request_id).await.unwrap().unwrap();
        assert_eq!(&back, r.as_ref());
    }
    check_reports(&store, &recs).await;

    // Filters and narrowed reports.
    let errors = store
        .spend_logs(
            &SpendLogFilter {
                errors_only: true,
                ..SpendLogFilter::default()
            },
            &LogPage {
                limit: 1000,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        errors.records.len(),
        recs.iter().filter(|r| r.status >= 400).count()
    );
    assert!(errors.next_cursor.is_none());
    let day2 = Day::from_unix_ms(1_735_689_600_000 + 86_400_000);
    let in_day2 = store
        .spend_logs(
            &SpendLogFilter {
                key_id: Some(key_ids[0].clone()),
                from_ms: Some(day2.start_ms()),
                to_ms: Some(day2.plus_days(1).start_ms()),
                ..SpendLogFilter::default()
            },
            &LogPage {
                limit: 1000,
                cursor: None,
            },
        )
        .await
        .unwrap();
    let want = recs
        .iter()
        .filter(|r| {
            r.key.as_deref() == Some(&key_ids[0])
                && Day::from_unix_ms(r.started_at_ms as i64) == day2
        })
        .count();
    assert_eq!(in_day2.records.len(), want);
    assert!(
        in_day2
            .records
            .windows(2)
            .all(|w| w[0].started_at_ms >= w[1].started_at_ms),
        "newest first"
    );
    let mut q = ReportQuery::new(GroupBy::Model, day2, day2);
    q.team_id = Some("team_1".into());
    let narrowed: i64 = store
        .spend_report(&q)
        .await
        .unwrap()
        .iter()
        .map(|r| r.calls)
        .sum();
    let want = recs
        .iter()
        .filter(|r| {
            r.team.as_deref() == Some("team_1") && Day::from_unix_ms(r.started_at_ms as i64) == day2
        })
        .count();
    assert_eq!(narrowed, want as i64);
    assert!(matches!(
        store
            .spend_report(&ReportQuery::new(GroupBy::Day, day2, day2.plus_days(-1)))
            .await
            .unwrap_err(),
        StoreError::Invalid(_)
    ));
    assert!(matches!(
        store
            .spend_logs(
                &SpendLogFilter::default(),
                &LogPage {
                    limit: 1,
                    cursor: Some("garbage".into())
                }
            )
            .await
            .unwrap_err(),
        StoreError::Invalid(_)
    ));

    // Spend landed on keys, teams and users exactly once.
    let sum = |f: &dyn Fn(&CallRecord) -> bool| -> i64 {
        recs.iter()
            .filter(|r| f(r))
            .filter_map(|r| r.cost_nano_usd)
            .sum()
    };
    for id in &key_ids {
        let k = store.get_key(id).await.unwrap().unwrap();
        assert_eq!(k.budget.spend_nano, sum(&|r| r.key.as_deref() == Some(id)));
    }
    for t in ["team_0", "team_1"] {
        let team = store.get_team(t).await.unwrap().unwrap();
        assert_eq!(
            team.budget.spend_nano,
            sum(&|r| r.team.as_deref() == Some(t))
        );
    }
    for u in ["user_0", "user_1", "user_2"] {
        let user = store.get_user(u).await.unwrap().unwrap();
        assert_eq!(
            user.budget.spend_nano,
            sum(&|r| r.user.as_deref() == Some(u))
        );
    }

    // Text PostgreSQL cannot store (NUL) is cleaned, not fatal.
    let mut odd = CallRecord {
        request_id: format!("{run}-nul"),
        model_group: "bad\0model".into(),
        ..CallRecord::default()
    };
    odd.tags = vec!["t\0".into()];
    let out = store.write_records(&[Arc::new(odd)]).await.unwrap();
    assert_eq!(out.inserted, 1);
    let back = store
        .spend_log(&format!("{run}-nul"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.model_group, "badmodel");
    assert_eq!(back.tags, vec!["t".to_owned()]);
    store.close().await;
}

on_both_backends!(session_and_request_metadata_columns_round_trip);

/// Migration 0004 adds `session_id` and `request_metadata` to the spend log; a record's
/// session and metadata are written and read back, and its prompt and completion are not
/// stored.
async fn session_and_request_metadata_columns_round_trip(db: &TestDb) {
    let store = db.store().await;
    // The columns exist after migration (the statement fails on a missing column).
    let probe = "SELECT session_id, request_metadata FROM llmux_spend_log WHERE 1 = 0";
    match db {
        TestDb::Sqlite(d) => {
            let mut c = sqlx::SqliteConnection::connect(&d.url).await.unwrap();
            sqlx::query(probe)
                .execute(&mut c)
                .await
                .expect("sqlite columns");
        }
        TestDb::Postgres(d) => {
            let mut c = sqlx::PgConnection::connect(&d.url).await.unwrap();
            sqlx::query(probe)
                .execute(&mut c)
                .await
                .expect("postgres columns");
        }
    }

    let run = unique();
    let metadata: llmux_core::JsonObject = serde_json::from_value(serde_json::json!({
        "session_id": "sess-42",
        "trace_name": "checkout",
        "nested": {"a": [1, 2, "x"]}
    }))
    .unwrap();
    let with_session = CallRecord {
        session_id: Some("sess-42".into()),
        request_metadata: Some(Arc::new(metadata.clone())),
        prompt: Some(Arc::new(
            serde_json::json!([{"role": "user", "content": "secret plan"}]),
        )),
        completion: Some(Arc::new(
            serde_json::json!({"role": "assistant", "content": "ok"}),
        )),
        ..crate::common::record(1, &run)
    };
    let plain = crate::common::record(2, &run);
    let outcome = store
        .write_records(&[Arc::new(with_session.clone()), Arc::new(plain.clone())])
        .await
        .unwrap();
    assert_eq!(outcome.inserted, 2);

    let back = store
        .spend_log(&with_session.request_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(back.session_id.as_deref(), Some("sess-42"));
    assert_eq!(back.request_metadata.as_deref(), Some(&metadata));
    assert!(
        back.prompt.is_none() && back.completion.is_none(),
        "prompts and completions are never stored"
    );
    let without = CallRecord {
        prompt: None,
        completion: None,
        ..with_session
    };
    assert_eq!(back, without, "everything else round-trips too");

    let back = store.spend_log(&plain.request_id).await.unwrap().unwrap();
    assert_eq!((back.session_id, back.request_metadata), (None, None));
}
