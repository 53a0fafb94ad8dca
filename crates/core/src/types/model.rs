use serde::{Deserialize, Serialize};

use super::{JsonObject, is_empty_object};

/// `GET /v1/models`: `{"object":"list","data":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    /// Always `"list"`.
    #[serde(default = "list")]
    pub object: String,
    /// The models.
    #[serde(default)]
    pub data: Vec<ModelCard>,
}

fn list() -> String {
    "list".to_owned()
}

/// One entry of a [`ModelList`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The name a client puts in `model`.
    pub id: String,
    /// Always `"model"`.
    #[serde(default = "model")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// Who serves it.
    #[serde(default)]
    pub owned_by: String,
    /// Fields llmux does not model.
    #[serde(flatten, skip_serializing_if = "is_empty_object")]
    pub extra: JsonObject,
}

fn model() -> String {
    "model".to_owned()
}

impl ModelList {
    /// A list of the given cards.
    pub fn new(data: Vec<ModelCard>) -> Self {
        Self {
            object: list(),
            data,
        }
    }
}

impl ModelCard {
    /// A card for `id`, owned by `owned_by`.
    pub fn new(id: impl Into<String>, owned_by: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            object: model(),
            created: 0,
            owned_by: owned_by.into(),
            extra: JsonObject::new(),
        }
    }
}
