//! `import_litellm`: a PostgreSQL database with LiteLLM Proxy's tables (same names, columns
//! and types as LiteLLM's Prisma migrations) and sample rows is imported into a fresh store
//! on each backend; the LiteLLM user's `sk-…` key then authenticates unchanged.

use llmux_store::{SpendLogFilter, TeamRole, hash_key, import_litellm};
use sqlx::Connection;

use crate::common::{PgDb, TestDb};

/// LiteLLM's tables, as its migrations create them (the columns the importer reads plus
/// some it ignores, so extra columns are proven harmless).
const LITELLM_SCHEMA: &str = r#"
CREATE TABLE "LiteLLM_BudgetTable" (
    "budget_id" TEXT NOT NULL PRIMARY KEY,
    "max_budget" DOUBLE PRECISION,
    "soft_budget" DOUBLE PRECISION,
    "max_parallel_requests" INTEGER,
    "tpm_limit" BIGINT,
    "rpm_limit" BIGINT,
    "model_max_budget" JSONB,
    "budget_duration" TEXT,
    "budget_reset_at" TIMESTAMP(3),
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "created_by" TEXT NOT NULL,
    "updated_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_by" TEXT NOT NULL
);
CREATE TABLE "LiteLLM_TeamTable" (
    "team_id" TEXT NOT NULL PRIMARY KEY,
    "team_alias" TEXT,
    "organization_id" TEXT,
    "admins" TEXT[],
    "members" TEXT[],
    "members_with_roles" JSONB NOT NULL DEFAULT '{}',
    "metadata" JSONB NOT NULL DEFAULT '{}',
    "max_budget" DOUBLE PRECISION,
    "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    "models" TEXT[],
    "max_parallel_requests" INTEGER,
    "tpm_limit" BIGINT,
    "rpm_limit" BIGINT,
    "budget_duration" TEXT,
    "budget_reset_at" TIMESTAMP(3),
    "blocked" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "model_spend" JSONB NOT NULL DEFAULT '{}',
    "model_max_budget" JSONB NOT NULL DEFAULT '{}'
);
CREATE TABLE "LiteLLM_UserTable" (
    "user_id" TEXT NOT NULL PRIMARY KEY,
    "user_alias" TEXT,
    "team_id" TEXT,
    "teams" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "user_role" TEXT,
    "max_budget" DOUBLE PRECISION,
    "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    "user_email" TEXT,
    "models" TEXT[],
    "metadata" JSONB NOT NULL DEFAULT '{}',
    "max_parallel_requests" INTEGER,
    "tpm_limit" BIGINT,
    "rpm_limit" BIGINT,
    "budget_duration" TEXT,
    "budget_reset_at" TIMESTAMP(3),
    "model_spend" JSONB NOT NULL DEFAULT '{}',
    "model_max_budget" JSONB NOT NULL DEFAULT '{}'
);
CREATE TABLE "LiteLLM_VerificationToken" (
    "token" TEXT NOT NULL PRIMARY KEY,
    "key_name" TEXT,
    "key_alias" TEXT,
    "soft_budget_cooldown" BOOLEAN NOT NULL DEFAULT false,
    "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    "expires" TIMESTAMP(3),
    "models" TEXT[],
    "aliases" JSONB NOT NULL DEFAULT '{}',
    "config" JSONB NOT NULL DEFAULT '{}',
    "user_id" TEXT,
    "team_id" TEXT,
    "permissions" JSONB NOT NULL DEFAULT '{}',
    "max_parallel_requests" INTEGER,
    "metadata" JSONB NOT NULL DEFAULT '{}',
    "blocked" BOOLEAN,
    "tpm_limit" BIGINT,
    "rpm_limit" BIGINT,
    "max_budget" DOUBLE PRECISION,
    "budget_duration" TEXT,
    "budget_reset_at" TIMESTAMP(3),
    "allowed_cache_controls" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "model_spend" JSONB NOT NULL DEFAULT '{}',
    "model_max_budget" JSONB NOT NULL DEFAULT '{}',
    "budget_id" TEXT,
    "organization_id" TEXT,
    "created_at" TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE "LiteLLM_SpendLogs" (
    "request_id" TEXT NOT NULL PRIMARY KEY,
    "call_type" TEXT NOT NULL,
    "api_key" TEXT NOT NULL DEFAULT '',
    "spend" DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    "total_tokens" INTEGER NOT NULL DEFAULT 0,
    "prompt_tokens" INTEGER NOT NULL DEFAULT 0,
    "completion_tokens" INTEGER NOT NULL DEFAULT 0,
    "startTime" TIMESTAMP(3) NOT NULL,
    "endTime" TIMESTAMP(3) NOT NULL,
    "completionStartTime" TIMESTAMP(3),
    "model" TEXT NOT NULL DEFAULT '',
    "model_id" TEXT DEFAULT '',
    "model_group" TEXT DEFAULT '',
    "custom_llm_provider" TEXT DEFAULT '',
    "api_base" TEXT DEFAULT '',
    "user" TEXT DEFAULT '',
    "metadata" JSONB DEFAULT '{}',
    "cache_hit" TEXT DEFAULT '',
    "cache_key" TEXT DEFAULT '',
    "request_tags" JSONB DEFAULT '[]',
    "team_id" TEXT,
    "end_user" TEXT,
    "session_id" TEXT,
    "status" TEXT
);
"#;

const ALICE_KEY: &str = "sk-litellm-alice-0123456789";
const BOT_KEY: &str = "sk-litellm-bot-abcdefghij";

fn rows() -> String {
    let (alice, bot) = (hash_key(ALICE_KEY), hash_key(BOT_KEY));
    format!(
        r#"
INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, soft_budget, rpm_limit, created_by, updated_by)
  VALUES ('b-soft', 50.0, 40.0, 7, 'admin', 'admin');
INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, admins, members, members_with_roles, metadata,
    max_budget, spend, models, tpm_limit, rpm_limit, budget_duration)
  VALUES ('team-ml', 'ML', ARRAY['alice'], ARRAY['alice','bob'],
    '[{{"user_id":"alice","role":"admin"}},{{"user_id":"bob","role":"user"}}]', '{{"cost_center":"42"}}',
    100.0, 12.5, ARRAY['gpt-4o'], 100000, 60, '30d');
INSERT INTO "LiteLLM_UserTable" (user_id, user_alias, user_email, user_role, max_budget, spend, models)
  VALUES ('alice', 'Alice', 'alice@example.com', 'internal_user', 20.0, 3.25, ARRAY[]::TEXT[]),
         ('bob', NULL, 'bob@example.com', 'internal_user', NULL, 0.0, NULL);
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, spend, expires, models, aliases,
    user_id, team_id, max_parallel_requests, metadata, blocked, tpm_limit, rpm_limit, max_budget,
    budget_duration)
  VALUES ('{alice}', 'sk-...6789', 'alice-laptop', 3.25, '2030-01-01 00:00:00', ARRAY['gpt-4o'],
    '{{"fast":"gpt-4o-mini"}}', 'alice', 'team-ml', 4, '{{"tags":["summarize"]}}', false, 5000, 30,
    10.0, '1d');
INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, spend, user_id, budget_id, blocked)
  VALUES ('{bot}', 'sk-...ghij', 'bot', 0.5, NULL, 'b-soft', true);
INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, api_key, spend, total_tokens, prompt_tokens,
    completion_tokens, "startTime", "endTime", model, model_group, custom_llm_provider, "user",
    request_tags, team_id, end_user, status)
  VALUES ('req-1', 'acompletion', '{alice}', 1.25, 1500, 1000, 500, '2025-03-01 10:00:00',
            '2025-03-01 10:00:02', 'gpt-4o-2024-08-06', 'gpt-4o', 'openai', 'alice',
            '["summarize"]', 'team-ml', 'customer-9', 'success'),
         ('req-2', 'acompletion', '{alice}', 0.75, 300, 200, 100, '2025-03-02 10:00:00',
            '2025-03-02 10:00:00.250', 'gpt-4o-2024-08-06', 'gpt-4o', 'openai', 'alice',
            '[]', 'team-ml', NULL, 'failure');
"#
    )
}

async fn import_from_a_litellm_database(db: &TestDb) {
    let Some(source) = PgDb::create().await else {
        return;
    };
    let mut c = sqlx::PgConnection::connect(&source.url).await.unwrap();
    sqlx::raw_sql(LITELLM_SCHEMA).execute(&mut c).await.unwrap();
    sqlx::raw_sql(&rows()).execute(&mut c).await.unwrap();
    let _ = c.close().await;

    let store = db.store().await;
    let report = import_litellm(&source.url, &store).await.unwrap();
    assert_eq!(
        (
            report.teams,
            report.users,
            report.members,
            report.keys,
            report.spend_logs
        ),
        (1, 2, 2, 2, 2),
        "{report:?}"
    );
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);

    // Alice's LiteLLM key authenticates as is, with its limits, aliases and budget.
    let alice = store
        .lookup_key(ALICE_KEY)
        .await
        .unwrap()
        .expect("alice's key works");
    assert_eq!(alice.alias.as_deref(), Some("alice-laptop"));
    assert_eq!(alice.key_prefix, "sk-...6789");
    assert_eq!(alice.user_id.as_deref(), Some("alice"));
    assert_eq!(alice.team_id.as_deref(), Some("team-ml"));
    assert_eq!(alice.limits.models, ["gpt-4o"]);
    assert_eq!(
        (
            alice.limits.rpm_limit,
            alice.limits.tpm_limit,
            alice.limits.max_parallel
        ),
        (Some(30), Some(5000), Some(4))
    );
    assert_eq!(
        alice.model_aliases.get("fast").map(String::as_str),
        Some("gpt-4o-mini")
    );
    assert_eq!(alice.budget.max_budget_nano, Some(10_000_000_000));
    assert_eq!(alice.budget.budget_duration.as_deref(), Some("1d"));
    assert_eq!(alice.expires_at_ms, Some(1_893_456_000_000));
    assert!(!alice.blocked);
    // Spend equals LiteLLM's (the log's 2.00 plus 1.25 of calls whose rows were pruned).
    assert_eq!(alice.budget.spend_nano, 3_250_000_000);

    // The bot's limits and soft budget come from its LiteLLM_BudgetTable row; it stays blocked.
    let bot = store.lookup_key(BOT_KEY).await.unwrap().expect("bot's key");
    assert!(bot.blocked);
    assert_eq!(bot.limits.rpm_limit, Some(7));
    assert_eq!(bot.budget.max_budget_nano, Some(50_000_000_000));
    assert_eq!(bot.budget.soft_budget_nano, Some(40_000_000_000));
    assert_eq!(bot.budget.spend_nano, 500_000_000);

    let team = store.get_team("team-ml").await.unwrap().expect("team");
    assert_eq!(team.alias.as_deref(), Some("ML"));
    assert_eq!(team.budget.spend_nano, 12_500_000_000);
    assert_eq!(team.limits.rpm_limit, Some(60));
    assert_eq!(
        team.metadata.get("cost_center"),
        Some(&serde_json::json!("42"))
    );
    let mut members: Vec<(String, TeamRole)> = store
        .team_members("team-ml")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        members,
        [
            ("alice".into(), TeamRole::Admin),
            ("bob".into(), TeamRole::User)
        ]
    );
    let user = store.get_user("alice").await.unwrap().expect("alice");
    assert_eq!(user.email.as_deref(), Some("alice@example.com"));
    assert_eq!(user.budget.spend_nano, 3_250_000_000);

    // The spend log rows, attributed to the new key id.
    let one = store.spend_log("req-1").await.unwrap().expect("req-1");
    assert_eq!(one.key.as_deref(), Some(alice.key_id.as_str()));
    assert_eq!(one.cost_nano_usd, Some(1_250_000_000));
    assert_eq!((one.prompt_tokens, one.completion_tokens), (1000, 500));
    assert_eq!(one.latency_us, 2_000_000);
    assert_eq!(one.tags, ["summarize"]);
    assert_eq!(one.end_user.as_deref(), Some("customer-9"));
    assert_eq!(one.provider.as_deref(), Some("openai"));
    assert_eq!(one.status, 200);
    let two = store.spend_log("req-2").await.unwrap().expect("req-2");
    assert_eq!(two.status, 500);
    assert_eq!(two.latency_us, 250_000);
    let logs = store
        .spend_logs(&SpendLogFilter::default(), &llmux_store::LogPage::default())
        .await
        .unwrap();
    assert_eq!(logs.records.len(), 2);

    // Running it again changes nothing: everything is reported as already there.
    let again = import_litellm(&source.url, &store).await.unwrap();
    assert_eq!(
        (again.keys, again.users, again.teams, again.spend_logs),
        (0, 0, 0, 0)
    );
    assert!(!again.skipped.is_empty());
    let alice = store.lookup_key(ALICE_KEY).await.unwrap().unwrap();
    assert_eq!(alice.budget.spend_nano, 3_250_000_000);
}

crate::on_both_backends!(import_from_a_litellm_database);
