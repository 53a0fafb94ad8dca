//! Keys, users, teams, memberships and budgets on both backends.

use std::collections::BTreeMap;
use std::time::Duration;

use llmux_store::*;
use serde_json::json;

use crate::common::TestDb;
use crate::on_both_backends;

on_both_backends!(
    keys_lifecycle,
    users_teams_and_members,
    budgets_reset_on_schedule
);

fn obj(v: serde_json::Value) -> llmux_core::JsonObject {
    v.as_object().cloned().unwrap_or_default()
}

async fn keys_lifecycle(db: &TestDb) {
    let store = db.store().await;
    // Connecting again runs the migrations again: a no-op.
    let again = db.store().await;
    again.close().await;

    store
        .create_user(NewUser {
            user_id: "alice@example.com".into(),
            ..NewUser::default()
        })
        .await
        .unwrap();
    let team = store
        .create_team(NewTeam {
            alias: Some("research".into()),
            ..NewTeam::default()
        })
        .await
        .unwrap();
    assert!(team.team_id.starts_with("team_"));

    let made = store
        .create_key(NewKey {
            alias: Some("ci-key".into()),
            user_id: Some("alice@example.com".into()),
            team_id: Some(team.team_id.clone()),
            limits: Limits {
                models: vec!["gpt-4o".into(), "claude".into()],
                rpm_limit: Some(60),
                tpm_limit: Some(100_000),
                max_parallel: Some(4),
            },
            model_aliases: BTreeMap::from([("gpt4".to_owned(), "gpt-4o".to_owned())]),
            budget: BudgetSettings {
                max_budget_nano: Some(10_000_000_000),
                soft_budget_nano: Some(8_000_000_000),
                budget_duration: Some("30d".into()),
            },
            metadata: obj(json!({"owner": "ci", "n": 3})),
            expires_at_ms: Some(now_ms() + 3_600_000),
            blocked: false,
        })
        .await
        .unwrap();
    let clear = made.key.expose().to_owned();
    let rec = &made.record;
    assert!(clear.starts_with("sk-") && clear.len() >= 3 + 32);
    assert_eq!(rec.key_hash, hash_key(&clear));
    assert_eq!(rec.key_prefix, format!("sk-…{}", &clear[clear.len() - 4..]));
    assert_eq!(rec.limits.rpm_limit, Some(60));
    assert_eq!(rec.model_aliases["gpt4"], "gpt-4o");
    assert_eq!(rec.metadata["owner"], "ci");
    assert_eq!(rec.budget.max_budget_nano, Some(10_000_000_000));
    let reset_at = rec.budget.budget_reset_at_ms.unwrap();
    assert!((reset_at - now_ms() - 30 * 86_400_000).abs() < 60_000);
    assert!(rec.is_active_at(now_ms()) && rec.allows_model("claude") && !rec.allows_model("x"));

    // The clear key is stored nowhere and printed nowhere.
    let secret_part = &clear[3..];
    let stored = serde_json::to_string(&store.get_key(&rec.key_id).await.unwrap()).unwrap();
    assert!(!stored.contains(secret_part));
    assert!(!format!("{made:?}").contains(secret_part));
    assert!(!format!("{rec:?}").contains(&rec.key_hash));

    // Lookup by clear key, by hash; wrong keys find nothing.
    let found = store.lookup_key(&clear).await.unwrap().unwrap();
    assert_eq!(&found, rec);
    assert_eq!(
        store.lookup_key_hash(&rec.key_hash).await.unwrap().as_ref(),
        Some(rec)
    );
    assert!(store.lookup_key("sk-wrong").await.unwrap().is_none());
    assert!(
        store
            .lookup_key(&clear[..clear.len() - 1])
            .await
            .unwrap()
            .is_none()
    );

    // Update: change some fields, clear others, leave the rest.
    let updated = store
        .update_key(
            &rec.key_id,
            KeyUpdate {
                alias: Some(None),
                limits: LimitsUpdate {
                    rpm_limit: Some(Some(120)),
                    tpm_limit: Some(None),
                    ..LimitsUpdate::default()
                },
                metadata: Some(obj(json!({"owner": "ops"}))),
                blocked: Some(true),
                ..KeyUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.alias, None);
    assert_eq!(updated.limits.rpm_limit, Some(120));
    assert_eq!(updated.limits.tpm_limit, None);
    assert_eq!(updated.limits.max_parallel, Some(4));
    assert_eq!(updated.metadata["owner"], "ops");
    assert!(updated.blocked && !updated.is_active_at(now_ms()));
    assert_eq!(updated.team_id, rec.team_id);
    assert!(matches!(
        store
            .update_key("key_missing", KeyUpdate::default())
            .await
            .unwrap_err(),
        StoreError::NotFound(_)
    ));
    assert!(matches!(
        store
            .update_key(
                &rec.key_id,
                KeyUpdate {
                    budget: BudgetUpdate {
                        budget_duration: Some(Some("soon".into())),
                        ..BudgetUpdate::default()
                    },
                    ..KeyUpdate::default()
                }
            )
            .await
            .unwrap_err(),
        StoreError::Invalid(_)
    ));

    // Regenerate: same id and settings, new secret; the old one stops working.
    let regen = store.regenerate_key(&rec.key_id).await.unwrap();
    assert_eq!(regen.record.key_id, rec.key_id);
    assert_ne!(regen.key.expose(), clear);
    assert!(store.lookup_key(&clear).await.unwrap().is_none());
    let now_found = store.lookup_key(regen.key.expose()).await.unwrap().unwrap();
    assert_eq!(now_found.limits.rpm_limit, Some(120));

    // Aliases are unique; owners must exist.
    let second = store
        .create_key(NewKey {
            alias: Some("dup".into()),
            user_id: Some("alice@example.com".into()),
            ..NewKey::default()
        })
        .await
        .unwrap();
    let err = store
        .create_key(NewKey {
            alias: Some("dup".into()),
            ..NewKey::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let err = store
        .create_key(NewKey {
            user_id: Some("nobody".into()),
            ..NewKey::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    // Listing: filters and pages.
    for _ in 0..5 {
        store.create_key(NewKey::default()).await.unwrap();
    }
    let all = store
        .list_keys(&KeyFilter::default(), Page::new(0, 3))
        .await
        .unwrap();
    assert_eq!(all.total, 7);
    assert_eq!(all.items.len(), 3);
    let rest = store
        .list_keys(&KeyFilter::default(), Page::new(3, 100))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 4);
    let mut ids: Vec<_> = all
        .items
        .iter()
        .chain(&rest.items)
        .map(|k| &k.key_id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7);
    let alices = store
        .list_keys(
            &KeyFilter {
                user_id: Some("alice@example.com".into()),
                ..KeyFilter::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(alices.total, 2);
    let team_keys = store
        .list_keys(
            &KeyFilter {
                team_id: Some(team.team_id.clone()),
                ..KeyFilter::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(team_keys.total, 1);

    // A LiteLLM key, migrated by its hash: the owner's clear key works unchanged.
    let litellm_key = "sk-1234";
    let imported = store
        .import_key(
            "88DC28D0F030C55ED4AB77ED8FAF098196CB1C05DF778539800C9F1243FE6B4B",
            Some("sk-...1234"),
            NewKey::default(),
        )
        .await
        .unwrap();
    assert_eq!(imported.key_hash, hash_key(litellm_key));
    assert_eq!(
        store.lookup_key(litellm_key).await.unwrap().unwrap().key_id,
        imported.key_id
    );
    assert!(matches!(
        store
            .import_key(&hash_key(litellm_key), None, NewKey::default())
            .await
            .unwrap_err(),
        StoreError::Conflict(_)
    ));
    assert!(matches!(
        store
            .import_key("not-a-hash", None, NewKey::default())
            .await
            .unwrap_err(),
        StoreError::Invalid(_)
    ));
    assert!(store.delete_key(&imported.key_id).await.unwrap());
    // The store's Debug never shows the URL (it may carry a password).
    assert!(!format!("{store:?}").contains("://"));

    // Delete.
    assert!(store.delete_key(&second.record.key_id).await.unwrap());
    assert!(!store.delete_key(&second.record.key_id).await.unwrap());
    assert!(
        store
            .get_key(&second.record.key_id)
            .await
            .unwrap()
            .is_none()
    );
    store.close().await;
}

async fn users_teams_and_members(db: &TestDb) {
    let store = db.store().await;
    for u in ["u1", "u2", "u3"] {
        store
            .create_user(NewUser {
                user_id: u.into(),
                email: Some(format!("{u}@example.com")),
                role: Some("internal_user".into()),
                budget: BudgetSettings {
                    max_budget_nano: Some(5_000_000_000),
                    ..BudgetSettings::default()
                },
                ..NewUser::default()
            })
            .await
            .unwrap();
    }
    let dup = store
        .create_user(NewUser {
            user_id: "u1".into(),
            ..NewUser::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup:?}");
    assert!(matches!(
        store
            .create_user(NewUser {
                user_id: "bad".into(),
                budget: BudgetSettings {
                    budget_duration: Some("1y".into()),
                    ..BudgetSettings::default()
                },
                ..NewUser::default()
            })
            .await
            .unwrap_err(),
        StoreError::Invalid(_)
    ));

    let u2 = store
        .update_user(
            "u2",
            UserUpdate {
                alias: Some(Some("User Two".into())),
                email: Some(None),
                limits: LimitsUpdate {
                    models: Some(vec!["gpt-4o".into()]),
                    ..LimitsUpdate::default()
                },
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u2.alias.as_deref(), Some("User Two"));
    assert_eq!(u2.email, None);
    assert_eq!(u2.role.as_deref(), Some("internal_user"));
    assert_eq!(u2.limits.models, vec!["gpt-4o".to_owned()]);
    assert_eq!(u2.budget.max_budget_nano, Some(5_000_000_000));
    let users = store.list_users(Page::new(1, 10)).await.unwrap();
    assert_eq!(users.total, 3);
    assert_eq!(
        users
            .items
            .iter()
            .map(|u| u.user_id.as_str())
            .collect::<Vec<_>>(),
        ["u2", "u3"]
    );

    let t = store
        .create_team(NewTeam {
            team_id: Some("team-a".into()),
            alias: Some("A".into()),
            limits: Limits {
                rpm_limit: Some(1000),
                ..Limits::default()
            },
            ..NewTeam::default()
        })
        .await
        .unwrap();
    assert_eq!(t.team_id, "team-a");
    assert!(matches!(
        store
            .create_team(NewTeam {
                team_id: Some("team-a".into()),
                ..NewTeam::default()
            })
            .await
            .unwrap_err(),
        StoreError::Conflict(_)
    ));
    let t2 = store.create_team(NewTeam::default()).await.unwrap();
    let t = store
        .update_team(
            "team-a",
            TeamUpdate {
                blocked: Some(true),
                budget: BudgetUpdate {
                    max_budget_nano: Some(Some(1)),
                    ..BudgetUpdate::default()
                },
                ..TeamUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(t.blocked);
    assert_eq!(t.budget.max_budget_nano, Some(1));
    assert_eq!(t.limits.rpm_limit, Some(1000));
    assert_eq!(store.list_teams(Page::default()).await.unwrap().total, 2);

    // Members with roles.
    store
        .add_team_member("team-a", "u1", TeamRole::Admin)
        .await
        .unwrap();
    store
        .add_team_member("team-a", "u2", TeamRole::User)
        .await
        .unwrap();
    store
        .add_team_member(&t2.team_id, "u2", TeamRole::User)
        .await
        .unwrap();
    // Re-adding changes the role.
    let m = store
        .add_team_member("team-a", "u2", TeamRole::Admin)
        .await
        .unwrap();
    assert_eq!(m.role, TeamRole::Admin);
    assert!(matches!(
        store
            .add_team_member("team-a", "ghost", TeamRole::User)
            .await
            .unwrap_err(),
        StoreError::NotFound(_)
    ));
    let members = store.team_members("team-a").await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| (m.user_id.as_str(), m.role))
            .collect::<Vec<_>>(),
        [("u1", TeamRole::Admin), ("u2", TeamRole::Admin)]
    );
    assert_eq!(store.user_teams("u2").await.unwrap().len(), 2);
    assert!(store.remove_team_member("team-a", "u1").await.unwrap());
    assert!(!store.remove_team_member("team-a", "u1").await.unwrap());

    // Deleting a team removes its memberships and keys; deleting a user, theirs.
    let tk = store
        .create_key(NewKey {
            team_id: Some("team-a".into()),
            ..NewKey::default()
        })
        .await
        .unwrap();
    let uk = store
        .create_key(NewKey {
            user_id: Some("u3".into()),
            ..NewKey::default()
        })
        .await
        .unwrap();
    assert!(store.delete_team("team-a").await.unwrap());
    assert!(!store.delete_team("team-a").await.unwrap());
    assert!(store.get_team("team-a").await.unwrap().is_none());
    assert!(store.get_key(&tk.record.key_id).await.unwrap().is_none());
    assert_eq!(store.user_teams("u2").await.unwrap().len(), 1);
    assert!(store.delete_user("u2").await.unwrap());
    assert!(store.team_members(&t2.team_id).await.unwrap().is_empty());
    assert!(store.delete_user("u3").await.unwrap());
    assert!(store.get_key(&uk.record.key_id).await.unwrap().is_none());
    assert!(!store.delete_user("u3").await.unwrap());
    assert!(matches!(
        store
            .update_user("u3", UserUpdate::default())
            .await
            .unwrap_err(),
        StoreError::NotFound(_)
    ));
    store.close().await;
}

async fn budgets_reset_on_schedule(db: &TestDb) {
    let store = db.store().await;
    let key = store
        .create_key(NewKey {
            budget: BudgetSettings {
                max_budget_nano: Some(150),
                soft_budget_nano: Some(100),
                budget_duration: Some("1s".into()),
            },
            ..NewKey::default()
        })
        .await
        .unwrap()
        .record;
    let team = store
        .create_team(NewTeam {
            budget: BudgetSettings {
                budget_duration: Some("1s".into()),
                ..BudgetSettings::default()
            },
            ..NewTeam::default()
        })
        .await
        .unwrap();
    let k = SpendTarget::Key(key.key_id.clone());
    assert_eq!(store.add_spend(&k, 100).await.unwrap(), Some(100));
    assert_eq!(store.add_spend(&k, 60).await.unwrap(), Some(160));
    assert_eq!(
        store
            .add_spend(&SpendTarget::Team(team.team_id.clone()), 50)
            .await
            .unwrap(),
        Some(50)
    );
    assert_eq!(
        store
            .add_spend(&SpendTarget::User("nobody".into()), 5)
            .await
            .unwrap(),
        None
    );
    let now = now_ms();
    let stored = store.get_key(&key.key_id).await.unwrap().unwrap();
    assert!(stored.budget.exceeded_at(now) && stored.budget.soft_exceeded_at(now));

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let now = now_ms();
    let stored = store.get_key(&key.key_id).await.unwrap().unwrap();
    // Due but not yet written: readers already see zero.
    assert_eq!(stored.budget.spend_at(now), 0);
    assert!(!stored.budget.exceeded_at(now));
    // The next increment resets first, then adds, and moves the reset forward.
    assert_eq!(store.add_spend(&k, 7).await.unwrap(), Some(7));
    let stored = store.get_key(&key.key_id).await.unwrap().unwrap();
    assert!(stored.budget.budget_reset_at_ms.unwrap() > now);
    // The sweep resets what nobody spent on (the team), once.
    let n = store.reset_due_budgets(now_ms()).await.unwrap();
    assert!(n >= 1, "{n}");
    let t = store.get_team(&team.team_id).await.unwrap().unwrap();
    assert_eq!(t.budget.spend_nano, 0);
    assert!(t.budget.budget_reset_at_ms.unwrap() > now);
    assert_eq!(store.reset_due_budgets(now_ms()).await.unwrap(), 0);

    // Setting a spend by hand.
    let k2 = store
        .update_key(
            &key.key_id,
            KeyUpdate {
                budget: BudgetUpdate {
                    spend_nano: Some(0),
                    budget_duration: Some(None),
                    ..BudgetUpdate::default()
                },
                ..KeyUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(k2.budget.spend_nano, 0);
    assert_eq!(k2.budget.budget_reset_at_ms, None);
    store.close().await;
}

#[tokio::test]
async fn sqlite_memory_and_wal_files() {
    crate::common::bounded(async {
        let mem = Store::connect("sqlite::memory:").await.unwrap();
        assert_eq!(mem.backend(), Backend::Sqlite);
        let k = mem.create_key(NewKey::default()).await.unwrap();
        // One connection that lives as long as the pool: the data stays.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(mem.lookup_key(k.key.expose()).await.unwrap().is_some());
        mem.close().await;

        // A file database is created on demand and runs in WAL mode.
        let dir = crate::common::TempDir::new();
        let path = dir.path("sub.db");
        let file = Store::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        file.ping().await.unwrap();
        assert!(path.exists());
        assert!(dir.path("sub.db-wal").exists(), "WAL mode");
        file.close().await;

        assert!(matches!(
            Store::connect("mysql://root@localhost/db")
                .await
                .unwrap_err(),
            StoreError::UnsupportedUrl
        ));
    })
    .await;
}
