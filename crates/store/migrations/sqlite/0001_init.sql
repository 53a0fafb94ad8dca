-- llmux-store schema v1 (SQLite). Money is INTEGER nano-USD; times are INTEGER unix
-- milliseconds; JSON is TEXT. Dimension columns of the daily aggregates use '' for "none"
-- so that they can be part of the primary key.

CREATE TABLE llmux_users (
    user_id            TEXT PRIMARY KEY NOT NULL,
    user_alias         TEXT,
    user_email         TEXT,
    user_role          TEXT,
    models             TEXT NOT NULL DEFAULT '[]',
    rpm_limit          BIGINT,
    tpm_limit          BIGINT,
    max_parallel       BIGINT,
    max_budget_nano    BIGINT,
    soft_budget_nano   BIGINT,
    budget_duration    TEXT,
    budget_reset_at_ms BIGINT,
    spend_nano         BIGINT NOT NULL DEFAULT 0,
    metadata           TEXT NOT NULL DEFAULT '{}',
    blocked            BOOLEAN NOT NULL DEFAULT 0,
    created_at_ms      BIGINT NOT NULL,
    updated_at_ms      BIGINT NOT NULL
);
CREATE INDEX llmux_users_reset ON llmux_users (budget_reset_at_ms);

CREATE TABLE llmux_teams (
    team_id            TEXT PRIMARY KEY NOT NULL,
    team_alias         TEXT,
    models             TEXT NOT NULL DEFAULT '[]',
    rpm_limit          BIGINT,
    tpm_limit          BIGINT,
    max_parallel       BIGINT,
    max_budget_nano    BIGINT,
    soft_budget_nano   BIGINT,
    budget_duration    TEXT,
    budget_reset_at_ms BIGINT,
    spend_nano         BIGINT NOT NULL DEFAULT 0,
    metadata           TEXT NOT NULL DEFAULT '{}',
    blocked            BOOLEAN NOT NULL DEFAULT 0,
    created_at_ms      BIGINT NOT NULL,
    updated_at_ms      BIGINT NOT NULL
);
CREATE INDEX llmux_teams_reset ON llmux_teams (budget_reset_at_ms);

CREATE TABLE llmux_team_members (
    team_id     TEXT NOT NULL REFERENCES llmux_teams (team_id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES llmux_users (user_id) ON DELETE CASCADE,
    role        TEXT NOT NULL,
    added_at_ms BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX llmux_team_members_user ON llmux_team_members (user_id);

CREATE TABLE llmux_keys (
    key_id             TEXT PRIMARY KEY NOT NULL,
    key_hash           TEXT NOT NULL UNIQUE,
    key_prefix         TEXT NOT NULL,
    key_alias          TEXT UNIQUE,
    user_id            TEXT,
    team_id            TEXT,
    models             TEXT NOT NULL DEFAULT '[]',
    model_aliases      TEXT NOT NULL DEFAULT '{}',
    rpm_limit          BIGINT,
    tpm_limit          BIGINT,
    max_parallel       BIGINT,
    max_budget_nano    BIGINT,
    soft_budget_nano   BIGINT,
    budget_duration    TEXT,
    budget_reset_at_ms BIGINT,
    spend_nano         BIGINT NOT NULL DEFAULT 0,
    metadata           TEXT NOT NULL DEFAULT '{}',
    expires_at_ms      BIGINT,
    blocked            BOOLEAN NOT NULL DEFAULT 0,
    created_at_ms      BIGINT NOT NULL,
    updated_at_ms      BIGINT NOT NULL
);
CREATE INDEX llmux_keys_user ON llmux_keys (user_id);
CREATE INDEX llmux_keys_team ON llmux_keys (team_id);
CREATE INDEX llmux_keys_reset ON llmux_keys (budget_reset_at_ms);

CREATE TABLE llmux_spend_log (
    request_id            TEXT PRIMARY KEY NOT NULL,
    started_at_ms         BIGINT NOT NULL,
    day                   TEXT NOT NULL,
    operation             TEXT NOT NULL,
    key_id                TEXT,
    team_id               TEXT,
    user_id               TEXT,
    end_user              TEXT,
    model_group           TEXT NOT NULL,
    deployment            TEXT,
    provider              TEXT,
    provider_model        TEXT,
    prompt_tokens         BIGINT NOT NULL,
    completion_tokens     BIGINT NOT NULL,
    cached_tokens         BIGINT NOT NULL,
    cache_creation_tokens BIGINT NOT NULL,
    reasoning_tokens      BIGINT NOT NULL,
    usage_estimated       BOOLEAN NOT NULL,
    cost_nano             BIGINT,
    latency_us            BIGINT NOT NULL,
    ttft_us               BIGINT,
    status                INTEGER NOT NULL,
    error_kind            TEXT,
    cache_hit             BOOLEAN NOT NULL,
    tags                  TEXT NOT NULL DEFAULT '[]',
    attempts              INTEGER NOT NULL,
    fallback              TEXT,
    stream_resumptions    INTEGER NOT NULL DEFAULT 0,
    trace_id              TEXT,
    parent_span_id        TEXT,
    finish_reason         TEXT
);
CREATE INDEX llmux_spend_log_time ON llmux_spend_log (started_at_ms, request_id);
CREATE INDEX llmux_spend_log_key ON llmux_spend_log (key_id, started_at_ms);
CREATE INDEX llmux_spend_log_team ON llmux_spend_log (team_id, started_at_ms);
CREATE INDEX llmux_spend_log_user ON llmux_spend_log (user_id, started_at_ms);

CREATE TABLE llmux_spend_daily (
    day                   TEXT NOT NULL,
    key_id                TEXT NOT NULL,
    team_id               TEXT NOT NULL,
    user_id               TEXT NOT NULL,
    model_group           TEXT NOT NULL,
    provider              TEXT NOT NULL,
    provider_model        TEXT NOT NULL,
    calls                 BIGINT NOT NULL DEFAULT 0,
    errors                BIGINT NOT NULL DEFAULT 0,
    unpriced_calls        BIGINT NOT NULL DEFAULT 0,
    prompt_tokens         BIGINT NOT NULL DEFAULT 0,
    completion_tokens     BIGINT NOT NULL DEFAULT 0,
    cached_tokens         BIGINT NOT NULL DEFAULT 0,
    cache_creation_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens      BIGINT NOT NULL DEFAULT 0,
    spend_nano            BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, key_id, team_id, user_id, model_group, provider, provider_model)
);

CREATE TABLE llmux_spend_daily_tags (
    day                   TEXT NOT NULL,
    tag                   TEXT NOT NULL,
    key_id                TEXT NOT NULL,
    team_id               TEXT NOT NULL,
    user_id               TEXT NOT NULL,
    model_group           TEXT NOT NULL,
    calls                 BIGINT NOT NULL DEFAULT 0,
    errors                BIGINT NOT NULL DEFAULT 0,
    unpriced_calls        BIGINT NOT NULL DEFAULT 0,
    prompt_tokens         BIGINT NOT NULL DEFAULT 0,
    completion_tokens     BIGINT NOT NULL DEFAULT 0,
    cached_tokens         BIGINT NOT NULL DEFAULT 0,
    cache_creation_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens      BIGINT NOT NULL DEFAULT 0,
    spend_nano            BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tag, key_id, team_id, user_id, model_group)
);
