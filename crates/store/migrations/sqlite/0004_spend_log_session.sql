-- llmux-store schema v4: the session and request metadata of each call in the spend log.
--
-- session_id:       the request's metadata.session_id (Langfuse's session), when given.
-- request_metadata: the request's metadata object as JSON text, credentials removed by the
--                   gateway before the record existed. Prompts and completions are never
--                   stored here (or anywhere in the store).
-- key_alias:        the virtual key's alias when the call was made (reports look up the
--                   current alias; this keeps the one in force at the time).

ALTER TABLE llmux_spend_log ADD COLUMN session_id TEXT;
ALTER TABLE llmux_spend_log ADD COLUMN request_metadata TEXT;
ALTER TABLE llmux_spend_log ADD COLUMN key_alias TEXT;
CREATE INDEX llmux_spend_log_session ON llmux_spend_log (session_id, started_at_ms);
