-- llmux-store schema v2: spend attribution reports (see docs/spend.md).
--
-- Every daily aggregate row also carries the sum and maximum of the calls' latency and a
-- latency histogram over fixed buckets, so average and approximate p95 latency of any group
-- come from the aggregates. The buckets (microseconds, upper bound inclusive) are fixed here
-- and in `crates/store/src/report.rs` (LATENCY_BUCKET_BOUNDS_US); changing them needs a new
-- migration:
--   lat_b00: [0, 25] ms
--   lat_b01: (25, 50] ms
--   lat_b02: (50, 100] ms
--   lat_b03: (100, 200] ms
--   lat_b04: (200, 300] ms
--   lat_b05: (300, 500] ms
--   lat_b06: (500, 750] ms
--   lat_b07: (750, 1000] ms
--   lat_b08: (1000, 1500] ms
--   lat_b09: (1500, 2000] ms
--   lat_b10: (2000, 3000] ms
--   lat_b11: (3000, 4000] ms
--   lat_b12: (4000, 5000] ms
--   lat_b13: (5000, 7500] ms
--   lat_b14: (7500, 10000] ms
--   lat_b15: (10000, 15000] ms
--   lat_b16: (15000, 20000] ms
--   lat_b17: (20000, 30000] ms
--   lat_b18: (30000, 60000] ms
--   lat_b19: > 60000 ms
--
-- `llmux_spend_daily` counts every call once (no tag dimension): reports that do not group or
-- filter by tag read it. `llmux_spend_daily_by_tag` counts every call once per distinct tag
-- (and once under tag '' when it has none), with every other dimension too, so reports by tag
-- combined with any other key read it. It replaces `llmux_spend_daily_tags` (no provider, no
-- provider model, no untagged calls, no latency), which is rebuilt from the spend log here.

ALTER TABLE llmux_spend_daily ADD COLUMN latency_sum_us BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN latency_max_us BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b00 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b01 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b02 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b03 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b04 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b05 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b06 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b07 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b08 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b09 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b10 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b11 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b12 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b13 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b14 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b15 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b16 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b17 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b18 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE llmux_spend_daily ADD COLUMN lat_b19 BIGINT NOT NULL DEFAULT 0;

CREATE TABLE llmux_spend_daily_by_tag (
    day                   TEXT NOT NULL,
    tag                   TEXT NOT NULL,
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
    latency_sum_us        BIGINT NOT NULL DEFAULT 0,
    latency_max_us        BIGINT NOT NULL DEFAULT 0,
    lat_b00               BIGINT NOT NULL DEFAULT 0,
    lat_b01               BIGINT NOT NULL DEFAULT 0,
    lat_b02               BIGINT NOT NULL DEFAULT 0,
    lat_b03               BIGINT NOT NULL DEFAULT 0,
    lat_b04               BIGINT NOT NULL DEFAULT 0,
    lat_b05               BIGINT NOT NULL DEFAULT 0,
    lat_b06               BIGINT NOT NULL DEFAULT 0,
    lat_b07               BIGINT NOT NULL DEFAULT 0,
    lat_b08               BIGINT NOT NULL DEFAULT 0,
    lat_b09               BIGINT NOT NULL DEFAULT 0,
    lat_b10               BIGINT NOT NULL DEFAULT 0,
    lat_b11               BIGINT NOT NULL DEFAULT 0,
    lat_b12               BIGINT NOT NULL DEFAULT 0,
    lat_b13               BIGINT NOT NULL DEFAULT 0,
    lat_b14               BIGINT NOT NULL DEFAULT 0,
    lat_b15               BIGINT NOT NULL DEFAULT 0,
    lat_b16               BIGINT NOT NULL DEFAULT 0,
    lat_b17               BIGINT NOT NULL DEFAULT 0,
    lat_b18               BIGINT NOT NULL DEFAULT 0,
    lat_b19               BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tag, key_id, team_id, user_id, model_group, provider, provider_model)
);

-- The latency of the calls already aggregated, from the spend log.
UPDATE llmux_spend_daily SET
    latency_sum_us = s.latency_sum_us,
    latency_max_us = s.latency_max_us,
    lat_b00 = s.lat_b00,
    lat_b01 = s.lat_b01,
    lat_b02 = s.lat_b02,
    lat_b03 = s.lat_b03,
    lat_b04 = s.lat_b04,
    lat_b05 = s.lat_b05,
    lat_b06 = s.lat_b06,
    lat_b07 = s.lat_b07,
    lat_b08 = s.lat_b08,
    lat_b09 = s.lat_b09,
    lat_b10 = s.lat_b10,
    lat_b11 = s.lat_b11,
    lat_b12 = s.lat_b12,
    lat_b13 = s.lat_b13,
    lat_b14 = s.lat_b14,
    lat_b15 = s.lat_b15,
    lat_b16 = s.lat_b16,
    lat_b17 = s.lat_b17,
    lat_b18 = s.lat_b18,
    lat_b19 = s.lat_b19
FROM (
SELECT l.day, COALESCE(l.key_id, '') AS key_id, COALESCE(l.team_id, '') AS team_id, COALESCE(l.user_id, '') AS user_id,
       l.model_group, COALESCE(l.provider, '') AS provider, COALESCE(l.provider_model, '') AS provider_model,
       CAST(COALESCE(SUM(l.latency_us), 0) AS BIGINT) AS latency_sum_us,
       CAST(COALESCE(MAX(l.latency_us), 0) AS BIGINT) AS latency_max_us,
       CAST(SUM(CASE WHEN l.latency_us <= 25000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b00,
       CAST(SUM(CASE WHEN l.latency_us > 25000 AND l.latency_us <= 50000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b01,
       CAST(SUM(CASE WHEN l.latency_us > 50000 AND l.latency_us <= 100000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b02,
       CAST(SUM(CASE WHEN l.latency_us > 100000 AND l.latency_us <= 200000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b03,
       CAST(SUM(CASE WHEN l.latency_us > 200000 AND l.latency_us <= 300000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b04,
       CAST(SUM(CASE WHEN l.latency_us > 300000 AND l.latency_us <= 500000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b05,
       CAST(SUM(CASE WHEN l.latency_us > 500000 AND l.latency_us <= 750000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b06,
       CAST(SUM(CASE WHEN l.latency_us > 750000 AND l.latency_us <= 1000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b07,
       CAST(SUM(CASE WHEN l.latency_us > 1000000 AND l.latency_us <= 1500000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b08,
       CAST(SUM(CASE WHEN l.latency_us > 1500000 AND l.latency_us <= 2000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b09,
       CAST(SUM(CASE WHEN l.latency_us > 2000000 AND l.latency_us <= 3000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b10,
       CAST(SUM(CASE WHEN l.latency_us > 3000000 AND l.latency_us <= 4000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b11,
       CAST(SUM(CASE WHEN l.latency_us > 4000000 AND l.latency_us <= 5000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b12,
       CAST(SUM(CASE WHEN l.latency_us > 5000000 AND l.latency_us <= 7500000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b13,
       CAST(SUM(CASE WHEN l.latency_us > 7500000 AND l.latency_us <= 10000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b14,
       CAST(SUM(CASE WHEN l.latency_us > 10000000 AND l.latency_us <= 15000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b15,
       CAST(SUM(CASE WHEN l.latency_us > 15000000 AND l.latency_us <= 20000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b16,
       CAST(SUM(CASE WHEN l.latency_us > 20000000 AND l.latency_us <= 30000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b17,
       CAST(SUM(CASE WHEN l.latency_us > 30000000 AND l.latency_us <= 60000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b18,
       CAST(SUM(CASE WHEN l.latency_us > 60000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b19
FROM llmux_spend_log l
GROUP BY l.day, COALESCE(l.key_id, ''), COALESCE(l.team_id, ''), COALESCE(l.user_id, ''), l.model_group,
         COALESCE(l.provider, ''), COALESCE(l.provider_model, '')
) AS s
WHERE llmux_spend_daily.day = s.day AND llmux_spend_daily.key_id = s.key_id
  AND llmux_spend_daily.team_id = s.team_id AND llmux_spend_daily.user_id = s.user_id
  AND llmux_spend_daily.model_group = s.model_group AND llmux_spend_daily.provider = s.provider
  AND llmux_spend_daily.provider_model = s.provider_model;

-- Every call already logged, once per distinct tag (or once untagged).
INSERT INTO llmux_spend_daily_by_tag (day, tag, key_id, team_id, user_id, model_group, provider,
    provider_model, calls, errors, unpriced_calls, prompt_tokens, completion_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens, spend_nano, latency_sum_us, latency_max_us, lat_b00, lat_b01, lat_b02, lat_b03, lat_b04, lat_b05, lat_b06, lat_b07, lat_b08, lat_b09, lat_b10, lat_b11, lat_b12, lat_b13, lat_b14, lat_b15, lat_b16, lat_b17, lat_b18, lat_b19)
SELECT l.day, t.tag, COALESCE(l.key_id, ''), COALESCE(l.team_id, ''), COALESCE(l.user_id, ''),
       l.model_group, COALESCE(l.provider, ''), COALESCE(l.provider_model, ''),
       CAST(COUNT(*) AS BIGINT),
       CAST(SUM(CASE WHEN l.status >= 400 OR l.error_kind IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT),
       CAST(SUM(CASE WHEN l.cost_nano IS NULL THEN 1 ELSE 0 END) AS BIGINT),
       CAST(SUM(l.prompt_tokens) AS BIGINT),
       CAST(SUM(l.completion_tokens) AS BIGINT),
       CAST(SUM(l.cached_tokens) AS BIGINT),
       CAST(SUM(l.cache_creation_tokens) AS BIGINT),
       CAST(SUM(l.reasoning_tokens) AS BIGINT),
       CAST(COALESCE(SUM(l.cost_nano), 0) AS BIGINT),
       CAST(COALESCE(SUM(l.latency_us), 0) AS BIGINT),
       CAST(COALESCE(MAX(l.latency_us), 0) AS BIGINT),
       CAST(SUM(CASE WHEN l.latency_us <= 25000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b00,
       CAST(SUM(CASE WHEN l.latency_us > 25000 AND l.latency_us <= 50000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b01,
       CAST(SUM(CASE WHEN l.latency_us > 50000 AND l.latency_us <= 100000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b02,
       CAST(SUM(CASE WHEN l.latency_us > 100000 AND l.latency_us <= 200000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b03,
       CAST(SUM(CASE WHEN l.latency_us > 200000 AND l.latency_us <= 300000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b04,
       CAST(SUM(CASE WHEN l.latency_us > 300000 AND l.latency_us <= 500000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b05,
       CAST(SUM(CASE WHEN l.latency_us > 500000 AND l.latency_us <= 750000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b06,
       CAST(SUM(CASE WHEN l.latency_us > 750000 AND l.latency_us <= 1000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b07,
       CAST(SUM(CASE WHEN l.latency_us > 1000000 AND l.latency_us <= 1500000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b08,
       CAST(SUM(CASE WHEN l.latency_us > 1500000 AND l.latency_us <= 2000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b09,
       CAST(SUM(CASE WHEN l.latency_us > 2000000 AND l.latency_us <= 3000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b10,
       CAST(SUM(CASE WHEN l.latency_us > 3000000 AND l.latency_us <= 4000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b11,
       CAST(SUM(CASE WHEN l.latency_us > 4000000 AND l.latency_us <= 5000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b12,
       CAST(SUM(CASE WHEN l.latency_us > 5000000 AND l.latency_us <= 7500000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b13,
       CAST(SUM(CASE WHEN l.latency_us > 7500000 AND l.latency_us <= 10000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b14,
       CAST(SUM(CASE WHEN l.latency_us > 10000000 AND l.latency_us <= 15000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b15,
       CAST(SUM(CASE WHEN l.latency_us > 15000000 AND l.latency_us <= 20000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b16,
       CAST(SUM(CASE WHEN l.latency_us > 20000000 AND l.latency_us <= 30000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b17,
       CAST(SUM(CASE WHEN l.latency_us > 30000000 AND l.latency_us <= 60000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b18,
       CAST(SUM(CASE WHEN l.latency_us > 60000000 THEN 1 ELSE 0 END) AS BIGINT) AS lat_b19
FROM llmux_spend_log l
JOIN (
    SELECT DISTINCT l2.request_id, e.value AS tag
    FROM llmux_spend_log l2, jsonb_array_elements_text(CAST(l2.tags AS JSONB)) AS e(value)
    WHERE e.value <> ''
    UNION ALL
    SELECT l3.request_id, '' AS tag FROM llmux_spend_log l3
    WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(CAST(l3.tags AS JSONB)) AS e3(value) WHERE e3.value <> '')
) AS t ON t.request_id = l.request_id
GROUP BY l.day, t.tag, COALESCE(l.key_id, ''), COALESCE(l.team_id, ''), COALESCE(l.user_id, ''),
         l.model_group, COALESCE(l.provider, ''), COALESCE(l.provider_model, '');

DROP TABLE llmux_spend_daily_tags;
