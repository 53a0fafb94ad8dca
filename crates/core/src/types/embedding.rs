use serde::{Deserialize, Serialize};

use super::{JsonObject, is_empty_object};

/// `POST /v1/embeddings` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// The model (group) name.
    pub model: String,
    /// What to embed.
    pub input: EmbeddingInput,
    /// `"float"` (default) or `"base64"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    /// Output dimensions, for models that support shortening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// End-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Fields llmux does not model (passed through to OpenAI-shaped upstreams).
    #[serde(flatten, skip_serializing_if = "is_empty_object")]
    pub extra: JsonObject,
}

/// The `input` of an embedding request: text(s) or token array(s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One string.
    Text(String),
    /// Several strings.
    Texts(Vec<String>),
    /// One token array.
    Tokens(Vec<u32>),
    /// Several token arrays.
    TokenArrays(Vec<Vec<u32>>),
}

impl EmbeddingInput {
    /// Number of inputs (each gets one embedding).
    pub fn len(&self) -> usize {
        match self {
            Self::Text(_) | Self::Tokens(_) => 1,
            Self::Texts(v) => v.len(),
            Self::TokenArrays(v) => v.len(),
        }
    }

    /// True when there is nothing to embed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `POST /v1/embeddings` response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// Always `"list"`.
    #[serde(default = "list")]
    pub object: String,
    /// One embedding per input, by index.
    pub data: Vec<Embedding>,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// Tokens consumed.
    #[serde(default)]
    pub usage: EmbeddingUsage,
    /// Fields llmux does not model.
    #[serde(flatten, skip_serializing_if = "is_empty_object")]
    pub extra: JsonObject,
}

fn list() -> String {
    "list".to_owned()
}

fn embedding() -> String {
    "embedding".to_owned()
}

/// One vector of an [`EmbeddingResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Always `"embedding"`.
    #[serde(default = "embedding")]
    pub object: String,
    /// Position of the input this embeds.
    pub index: u32,
    /// The vector.
    pub embedding: EmbeddingVector,
}

/// A vector as floats, or base64 of little-endian f32 when `encoding_format` was `base64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// Floats.
    Float(Vec<f32>),
    /// Base64 string.
    Base64(String),
}

/// `usage` of an embedding response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    /// Input tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Same as `prompt_tokens`.
    #[serde(default)]
    pub total_tokens: u64,
}

impl Embedding {
    /// A float embedding at `index`.
    pub fn new(index: u32, vector: Vec<f32>) -> Self {
        Self {
            object: embedding(),
            index,
            embedding: EmbeddingVector::Float(vector),
        }
    }
}

impl EmbeddingResponse {
    /// A response holding `data`.
    pub fn new(model: impl Into<String>, data: Vec<Embedding>, usage: EmbeddingUsage) -> Self {
        Self {
            object: list(),
            data,
            model: model.into(),
            usage,
            extra: JsonObject::new(),
        }
    }
}
