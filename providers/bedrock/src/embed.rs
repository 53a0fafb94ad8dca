//! Embeddings over InvokeModel (`POST /model/{id}/invoke`): the model's own body format,
//! pure encode/decode.
//!
//! Two families:
//! - Amazon Titan text embeddings (`amazon.titan-embed-text-v1`, `-v2:0`): one input per
//!   call, `{"inputText", "dimensions"?}` → `{"embedding", "inputTextTokenCount"}`;
//! - Cohere on Bedrock (`cohere.embed-*`): up to [`COHERE_MAX_TEXTS`] inputs per call,
//!   `{"texts", "input_type"}` → `{"embeddings"}` (a list of vectors, or
//!   `{"float": [...]}` when `embedding_types` was asked). Cohere reports no token count
//!   in the body; the `x-amzn-bedrock-input-token-count` header does.

use base64::Engine;
use llmux_core::{
    Embedding, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage,
    EmbeddingVector, Error, JsonObject,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::codec::invalid_body;

/// Texts per Cohere InvokeModel call (Bedrock's limit).
pub const COHERE_MAX_TEXTS: usize = 96;

/// The `input_type` sent to Cohere unless the request names one.
pub const COHERE_DEFAULT_INPUT_TYPE: &str = "search_document";

const PROVIDER: &str = "bedrock";

/// Which body format an embedding model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedFamily {
    /// Amazon Titan text embeddings; `v2` takes `dimensions`.
    Titan {
        /// `amazon.titan-embed-text-v2…` (accepts `dimensions`).
        v2: bool,
    },
    /// Cohere Embed.
    Cohere,
}

/// The family of `model` (an id, inference profile or ARN), if it is an embedding model
/// this provider speaks.
pub fn family(model: &str) -> Option<EmbedFamily> {
    if model.contains("amazon.titan-embed-text") {
        Some(EmbedFamily::Titan {
            v2: model.contains("titan-embed-text-v2"),
        })
    } else if model.contains("cohere.embed") {
        Some(EmbedFamily::Cohere)
    } else {
        None
    }
}

fn bad(param: &str, message: impl Into<String>) -> Error {
    Error::bad_request(format!("{PROVIDER}: {}", message.into()))
        .with_param(param)
        .with_provider(PROVIDER)
}

/// The InvokeModel bodies for `req`, in input order (one per Titan input; one per batch of
/// Cohere inputs).
pub fn encode(req: &EmbeddingRequest, family: EmbedFamily) -> Result<Vec<Value>, Error> {
    let texts: Vec<&str> = match &req.input {
        EmbeddingInput::Text(t) => vec![t.as_str()],
        EmbeddingInput::Texts(ts) => ts.iter().map(String::as_str).collect(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::TokenArrays(_) => {
            return Err(bad(
                "input",
                "token-array input is not supported; send text",
            ));
        }
    };
    if texts.is_empty() {
        return Err(bad("input", "input must not be empty"));
    }
    if let Some(f) = req.encoding_format.as_deref()
        && f != "float"
        && f != "base64"
    {
        return Err(bad(
            "encoding_format",
            format!("unknown encoding_format '{f}'"),
        ));
    }
    match family {
        EmbedFamily::Titan { v2 } => {
            if req.dimensions.is_some() && !v2 {
                return Err(bad(
                    "dimensions",
                    "dimensions needs amazon.titan-embed-text-v2",
                ));
            }
            Ok(texts
                .into_iter()
                .map(|t| {
                    let mut b = JsonObject::new();
                    b.insert("inputText".into(), t.into());
                    if let Some(d) = req.dimensions {
                        b.insert("dimensions".into(), d.into());
                    }
                    if let Some(n) = req.extra.get("normalize") {
                        b.insert("normalize".into(), n.clone());
                    }
                    Value::Object(b)
                })
                .collect())
        }
        EmbedFamily::Cohere => {
            let input_type = req
                .extra
                .get("input_type")
                .and_then(Value::as_str)
                .unwrap_or(COHERE_DEFAULT_INPUT_TYPE);
            Ok(texts
                .chunks(COHERE_MAX_TEXTS)
                .map(|batch| {
                    let mut b = JsonObject::new();
                    b.insert("texts".into(), json!(batch));
                    b.insert("input_type".into(), input_type.into());
                    if let Some(t) = req.extra.get("truncate") {
                        b.insert("truncate".into(), t.clone());
                    }
                    if let Some(d) = req.dimensions {
                        b.insert("output_dimension".into(), d.into());
                    }
                    Value::Object(b)
                })
                .collect())
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanResponse {
    embedding: Vec<f32>,
    #[serde(default)]
    input_text_token_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CohereEmbeddings {
    Floats(Vec<Vec<f32>>),
    ByType {
        #[serde(default)]
        float: Option<Vec<Vec<f32>>>,
    },
}

#[derive(Debug, Deserialize)]
struct CohereResponse {
    embeddings: CohereEmbeddings,
}

/// The vectors and input-token count of one InvokeModel answer. `header_tokens` is the
/// `x-amzn-bedrock-input-token-count` header, used when the body has no count.
pub fn decode(
    family: EmbedFamily,
    body: &[u8],
    header_tokens: Option<u64>,
) -> Result<(Vec<Vec<f32>>, u64), Error> {
    match family {
        EmbedFamily::Titan { .. } => {
            let r: TitanResponse =
                serde_json::from_slice(body).map_err(|e| invalid_body("Titan embedding", e))?;
            Ok((
                vec![r.embedding],
                r.input_text_token_count.or(header_tokens).unwrap_or(0),
            ))
        }
        EmbedFamily::Cohere => {
            let r: CohereResponse =
                serde_json::from_slice(body).map_err(|e| invalid_body("Cohere embedding", e))?;
            let vectors = match r.embeddings {
                CohereEmbeddings::Floats(v) => v,
                CohereEmbeddings::ByType { float: Some(v) } => v,
                CohereEmbeddings::ByType { float: None } => {
                    return Err(invalid_body(
                        "Cohere embedding",
                        "no float embeddings in the answer",
                    ));
                }
            };
            Ok((vectors, header_tokens.unwrap_or(0)))
        }
    }
}

/// The canonical response: vectors in input order, as floats or (`base64`) base64 of
/// little-endian f32.
pub fn response(
    model: &str,
    vectors: Vec<Vec<f32>>,
    tokens: u64,
    base64: bool,
) -> EmbeddingResponse {
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let mut e = Embedding::new(u32::try_from(i).unwrap_or(u32::MAX), Vec::new());
            e.embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                EmbeddingVector::Float(v)
            };
            e
        })
        .collect();
    EmbeddingResponse::new(
        model,
        data,
        EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    )
}
