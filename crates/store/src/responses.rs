//! Responses API conversation state: one row per stored response (the Response object and
//! the conversation a `previous_response_id` continues), scoped to the caller that made it.
//!
//! The store keeps JSON it does not interpret: the server decides what a response and a
//! conversation are. Every read and delete is filtered by `owner`, so one virtual key never
//! sees another's responses (a wrong owner looks exactly like an unknown id).

use serde_json::Value;

use crate::admin::{json_text, parse_json};
use crate::db::Args;
use crate::{Result, Store};

/// A stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// The response id (`resp_…`).
    pub response_id: String,
    /// Who may read it: the caller's scope as the server names it (e.g. `key:<key_id>`).
    pub owner: String,
    /// The model the client asked for.
    pub model: String,
    /// The Response object, as returned to the client.
    pub response: Value,
    /// The conversation up to and including this response's output.
    pub conversation: Value,
    /// When it was stored (unix milliseconds).
    pub created_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct ResponseRow {
    response_id: String,
    owner: String,
    model: String,
    response: String,
    conversation: String,
    created_at_ms: i64,
}

impl ResponseRow {
    fn into_stored(self) -> Result<StoredResponse> {
        Ok(StoredResponse {
            response: parse_json("llmux_responses.response", &self.response)?,
            conversation: parse_json("llmux_responses.conversation", &self.conversation)?,
            response_id: self.response_id,
            owner: self.owner,
            model: self.model,
            created_at_ms: self.created_at_ms,
        })
    }
}

impl Store {
    /// Store a response (a response id is stored once: storing it again is a conflict).
    pub async fn put_response(&self, r: &StoredResponse) -> Result<()> {
        let mut a = Args::default();
        let sql = format!(
            "INSERT INTO llmux_responses (response_id, owner, model, response, conversation, \
             created_at_ms) VALUES ({}, {}, {}, {}, {}, {})",
            a.push(r.response_id.as_str()),
            a.push(r.owner.as_str()),
            a.push(r.model.as_str()),
            a.push(json_text(&r.response)),
            a.push(json_text(&r.conversation)),
            a.push(r.created_at_ms),
        );
        self.db.execute(&sql, a).await?;
        Ok(())
    }

    /// The response `response_id` of `owner` (`None`: no such response for this owner).
    pub async fn get_response(
        &self,
        response_id: &str,
        owner: &str,
    ) -> Result<Option<StoredResponse>> {
        let mut a = Args::default();
        let sql = format!(
            "SELECT response_id, owner, model, response, conversation, created_at_ms \
             FROM llmux_responses WHERE response_id = {} AND owner = {}",
            a.push(response_id),
            a.push(owner),
        );
        let row: Option<ResponseRow> = self.db.fetch_optional(&sql, a).await?;
        row.map(ResponseRow::into_stored).transpose()
    }

    /// Delete the response `response_id` of `owner`; whether there was one.
    pub async fn delete_response(&self, response_id: &str, owner: &str) -> Result<bool> {
        let mut a = Args::default();
        let sql = format!(
            "DELETE FROM llmux_responses WHERE response_id = {} AND owner = {}",
            a.push(response_id),
            a.push(owner),
        );
        Ok(self.db.execute(&sql, a).await? > 0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::StoreError;

    fn stored(id: &str, owner: &str) -> StoredResponse {
        StoredResponse {
            response_id: id.to_owned(),
            owner: owner.to_owned(),
            model: "claude".to_owned(),
            response: json!({"id": id, "object": "response", "status": "completed"}),
            conversation: json!([{"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"}]),
            created_at_ms: 1_700_000_000_000,
        }
    }

    #[tokio::test]
    async fn a_response_is_read_and_deleted_only_by_its_owner() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let r = stored("resp_1", "key:a");
        store.put_response(&r).await.unwrap();

        assert_eq!(
            store.get_response("resp_1", "key:a").await.unwrap(),
            Some(r)
        );
        assert_eq!(store.get_response("resp_1", "key:b").await.unwrap(), None);
        assert_eq!(store.get_response("resp_2", "key:a").await.unwrap(), None);

        assert!(!store.delete_response("resp_1", "key:b").await.unwrap());
        assert!(
            store
                .get_response("resp_1", "key:a")
                .await
                .unwrap()
                .is_some()
        );
        assert!(store.delete_response("resp_1", "key:a").await.unwrap());
        assert!(!store.delete_response("resp_1", "key:a").await.unwrap());
        assert_eq!(store.get_response("resp_1", "key:a").await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_id_is_stored_once() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.put_response(&stored("resp_1", "a")).await.unwrap();
        let again = store.put_response(&stored("resp_1", "b")).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    }
}
