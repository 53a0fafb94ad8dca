//! Reranking: a query and documents in, the documents' relevance scores out.
//!
//! The canonical shape is Cohere's (`POST /v2/rerank`), which is also what LiteLLM's
//! `/rerank` accepts and returns; providers with another rerank format translate to and
//! from it.

use serde::{Deserialize, Serialize};

use super::{JsonObject, is_empty_object};

/// `POST /v1/rerank` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RerankRequest {
    /// The model (group) name.
    pub model: String,
    /// What the documents are ranked against.
    pub query: String,
    /// The documents to rank: strings, or objects with a `text` field.
    pub documents: Vec<RerankDocument>,
    /// Return only the best `top_n` results (all when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_n: Option<u32>,
    /// Echo each ranked document's text in its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_documents: Option<bool>,
    /// Chunks per document (Cohere v1; kept for LiteLLM compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_chunks_per_doc: Option<u32>,
    /// Longer documents are truncated to this many tokens (Cohere v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_per_doc: Option<u32>,
    /// For object documents: the fields to rank on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_fields: Option<Vec<String>>,
    /// Fields llmux does not model.
    #[serde(flatten, skip_serializing_if = "is_empty_object")]
    pub extra: JsonObject,
}

impl RerankRequest {
    /// A request ranking `documents` (plain texts) against `query`.
    pub fn new(
        model: impl Into<String>,
        query: impl Into<String>,
        documents: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            model: model.into(),
            query: query.into(),
            documents: documents
                .into_iter()
                .map(|d| RerankDocument::Text(d.into()))
                .collect(),
            top_n: None,
            return_documents: None,
            max_chunks_per_doc: None,
            max_tokens_per_doc: None,
            rank_fields: None,
            extra: JsonObject::new(),
        }
    }
}

/// One document of a [`RerankRequest`]: a string, or an object (`{"text": …}` or any
/// structured record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RerankDocument {
    /// A plain text.
    Text(String),
    /// An object; its `text` field when it has one, else the whole record.
    Object(JsonObject),
}

impl RerankDocument {
    /// The text to rank: the string, the object's `text` field, or else the object as
    /// compact JSON (which is also valid YAML, the form Cohere suggests for records).
    pub fn text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Object(o) => match o.get("text").and_then(serde_json::Value::as_str) {
                Some(t) => t.to_owned(),
                None => serde_json::Value::Object(o.clone()).to_string(),
            },
        }
    }
}

/// `POST /v1/rerank` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RerankResponse {
    /// Response id.
    #[serde(default)]
    pub id: String,
    /// The ranked documents, most relevant first.
    pub results: Vec<RerankResult>,
    /// Billing and version facts.
    #[serde(default)]
    pub meta: RerankMeta,
    /// Fields llmux does not model.
    #[serde(flatten, skip_serializing_if = "is_empty_object")]
    pub extra: JsonObject,
}

/// One ranked document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RerankResult {
    /// Position of the document in the request's `documents`.
    pub index: u32,
    /// How relevant it is to the query (higher is more relevant).
    pub relevance_score: f64,
    /// The document, when `return_documents` was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<RerankResultDocument>,
}

/// The document echoed in a [`RerankResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RerankResultDocument {
    /// Its text.
    pub text: String,
}

/// `meta` of a [`RerankResponse`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RerankMeta {
    /// What the call was billed (`search_units`, or tokens for token-billed rerankers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_units: Option<RerankBilledUnits>,
    /// Tokens processed, when the upstream reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<RerankTokens>,
    /// Other fields (`api_version`, `warnings`, …).
    #[serde(flatten, skip_serializing_if = "is_empty_object")]
    pub extra: JsonObject,
}

/// `meta.billed_units`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RerankBilledUnits {
    /// Search units (Cohere: one per query of up to 100 documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_units: Option<u64>,
    /// Tokens billed, for token-billed rerankers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// Other units.
    #[serde(flatten, skip_serializing_if = "is_empty_object")]
    pub extra: JsonObject,
}

/// `meta.tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerankTokens {
    /// Input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
}

impl RerankResponse {
    /// A response with `results` and nothing billed yet.
    pub fn new(id: impl Into<String>, results: Vec<RerankResult>) -> Self {
        Self {
            id: id.into(),
            results,
            meta: RerankMeta::default(),
            extra: JsonObject::new(),
        }
    }

    /// The input tokens the upstream reported (`meta.tokens.input_tokens`, else
    /// `meta.billed_units.total_tokens`); `None` when it reported none (e.g. only search
    /// units).
    pub fn reported_tokens(&self) -> Option<u64> {
        self.meta
            .tokens
            .and_then(|t| t.input_tokens)
            .or_else(|| self.meta.billed_units.as_ref()?.total_tokens)
    }

    /// The search units billed, when reported.
    pub fn search_units(&self) -> Option<u64> {
        self.meta.billed_units.as_ref()?.search_units
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_are_strings_or_objects() {
        let req: RerankRequest = serde_json::from_value(json!({
            "model": "rr", "query": "q",
            "documents": ["plain", {"text": "with text"}, {"title": "T", "n": 1}],
            "top_n": 2, "return_documents": true, "custom": 1
        }))
        .unwrap();
        let texts: Vec<String> = req.documents.iter().map(RerankDocument::text).collect();
        assert_eq!(texts, ["plain", "with text", r#"{"n":1,"title":"T"}"#]);
        assert_eq!((req.top_n, req.return_documents), (Some(2), Some(true)));
        assert_eq!(req.extra["custom"], 1);
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(back["documents"][1], json!({"text": "with text"}));
        assert!(back.get("max_chunks_per_doc").is_none());
    }

    #[test]
    fn response_reads_units_and_tokens() {
        let r: RerankResponse = serde_json::from_value(json!({
            "id": "x",
            "results": [{"index": 1, "relevance_score": 0.9}],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
        }))
        .unwrap();
        assert_eq!((r.search_units(), r.reported_tokens()), (Some(1), None));
        assert_eq!(r.meta.extra["api_version"]["version"], "2");
        let r: RerankResponse = serde_json::from_value(json!({
            "results": [], "meta": {"billed_units": {"total_tokens": 12}}
        }))
        .unwrap();
        assert_eq!(r.reported_tokens(), Some(12));
        let v = serde_json::to_value(RerankResponse::new("id", vec![])).unwrap();
        assert_eq!(v, json!({"id": "id", "results": [], "meta": {}}));
    }
}
