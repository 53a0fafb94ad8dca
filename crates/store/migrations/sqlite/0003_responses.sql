-- llmux-store schema v3: Responses API conversation state (see docs/responses-api.md).
--
-- One row per stored response: the Response object a client reads back with
-- GET /v1/responses/{id}, and the canonical conversation (JSON list of chat messages, the
-- request's instructions excluded) that a later request's previous_response_id continues.
-- `owner` scopes the row to the caller that created it (a virtual key's id, or the
-- master key / open gateway); every read and delete filters on it.

CREATE TABLE llmux_responses (
    response_id   TEXT PRIMARY KEY NOT NULL,
    owner         TEXT NOT NULL,
    model         TEXT NOT NULL,
    response      TEXT NOT NULL,
    conversation  TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX llmux_responses_owner ON llmux_responses (owner, created_at_ms);
