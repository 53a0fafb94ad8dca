//! The price table ([`PriceTable`]): loading, overrides, and model-name lookup.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use crate::PriceError;
use crate::price::ModelPrice;

/// The generated price table compiled into the crate (`crates/cost/data/prices.json`, a
/// subset of LiteLLM's `model_prices_and_context_window.json`; regenerate with
/// `cargo xtask prices`).
pub const EMBEDDED_PRICES_JSON: &str = include_str!("../data/prices.json");

/// LiteLLM's documentation entry, skipped when loading.
const SAMPLE_SPEC: &str = "sample_spec";

/// Model name → [`ModelPrice`], in LiteLLM's keying (`gpt-4o`, `gemini/gemini-2.5-pro`,
/// `us.anthropic.claude-...`). Entries without any price are not kept.
///
/// Entries are boxed and the map is trimmed to its length after loading: the embedded table
/// has ~4,400 entries, and inline values in a hash table with a power-of-two bucket count
/// left almost half of 8,192 slots of ~460 bytes empty (3.7 MB of a gateway's idle memory;
/// with boxed entries and one-word optional prices, ~1.5 MB; `docs/benchmarks.md`).
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    entries: HashMap<Box<str>, Box<ModelPrice>>,
}

/// The result of a lookup: the table key that matched and its prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// The table key that matched (e.g. `claude-haiku-4-5` for
    /// `anthropic` / `claude-haiku-4-5@20251001`).
    pub key: &'a str,
    /// The prices under that key.
    pub price: &'a ModelPrice,
}

impl PriceTable {
    /// An empty table.
    pub fn new() -> Self {
        PriceTable::default()
    }

    /// The embedded table, parsed once on first use and shared for the life of the process.
    ///
    /// The embedded file is checked by this crate's tests; should it ever fail to parse, the
    /// table is empty (every lookup `None`) rather than a panic.
    pub fn embedded() -> &'static PriceTable {
        static EMBEDDED: OnceLock<PriceTable> = OnceLock::new();
        EMBEDDED.get_or_init(|| PriceTable::from_json_str(EMBEDDED_PRICES_JSON).unwrap_or_default())
    }

    /// Parse a table in LiteLLM's `model_prices_and_context_window.json` format. The
    /// `sample_spec` entry and entries without any price are skipped; unknown fields are
    /// ignored; a malformed price is an error naming the model.
    pub fn from_json_str(json: &str) -> Result<Self, PriceError> {
        let mut de = serde_json::Deserializer::from_str(json);
        let table = de.deserialize_map(TableVisitor)?;
        de.end()?;
        Ok(table)
    }

    /// Read and parse a file in LiteLLM's format (see [`PriceTable::from_json_str`]).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, PriceError> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|source| PriceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        PriceTable::from_json_str(&json)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry under exactly `key`, without any normalisation.
    pub fn get(&self, key: &str) -> Option<&ModelPrice> {
        self.entries.get(key).map(|p| &**p)
    }

    /// All entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.entries.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Set the entry under `key`, returning the one it replaces.
    pub fn insert(&mut self, key: impl Into<String>, price: ModelPrice) -> Option<ModelPrice> {
        self.entries
            .insert(key.into().into_boxed_str(), Box::new(price))
            .map(|old| *old)
    }

    /// Apply a per-deployment price override under `key`: when an entry exists, every value
    /// the override sets replaces the entry's (see [`ModelPrice::apply_override`]);
    /// otherwise the override becomes the entry.
    pub fn merge_override(&mut self, key: impl Into<String>, price: &ModelPrice) {
        self.entries
            .entry(key.into().into_boxed_str())
            .and_modify(|p| p.apply_override(price))
            .or_insert_with(|| Box::new(price.clone()));
    }

    /// Add every entry of `newer` (e.g. a newer LiteLLM file named in config), replacing
    /// entries with the same key.
    pub fn extend(&mut self, newer: PriceTable) {
        self.entries.extend(newer.entries);
    }

    /// The prices of `model` served by `provider` (llmux's provider name, e.g. `openai`,
    /// `anthropic`, `bedrock`, `vertex_ai`, `gemini`, `azure`, `groq`), or `None` when the
    /// model is unknown. See [`PriceTable::resolve`] for the normalisations tried.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<&ModelPrice> {
        self.resolve(provider, model).map(|r| r.price)
    }

    /// Like [`PriceTable::lookup`], trying the caller's `base_model` first: an Azure
    /// deployment name is arbitrary, so config names the model behind it.
    pub fn lookup_with_base_model(
        &self,
        provider: &str,
        model: &str,
        base_model: Option<&str>,
    ) -> Option<&ModelPrice> {
        base_model
            .filter(|b| !b.trim().is_empty())
            .and_then(|b| self.resolve(provider, b))
            .or_else(|| self.resolve(provider, model))
            .map(|r| r.price)
    }

    /// Resolve a model name to a table entry, trying in order (each step only when the
    /// previous found nothing):
    ///
    /// 1. the model with every leading `provider/` removed (and for Bedrock, a leading
    ///    `converse/` or `invoke/` route, and an ARN reduced to its last path segment), as
    ///    `provider/model`, then as `model`;
    /// 2. the same without a Bedrock cross-region prefix (`us.`, `eu.`, `apac.`, `global.`,
    ///    `us-gov.`, `jp.`, `au.`, `ca.`, `in.` before `vendor.model`);
    /// 3. both again without a trailing date (`-2024-08-06`, `-20241022`, `@20241022`).
    ///
    /// A bare `model` key counts only when its `litellm_provider` belongs to `provider`
    /// (equal; a LiteLLM sub-provider such as `vertex_ai-language-models` or
    /// `bedrock_converse`; `text-completion-openai` for `openai`; OpenAI's entries for
    /// `azure`). An empty `provider` accepts any entry, and a `provider/model` string in
    /// `model` is also tried as such. Nothing matched: `None`, never a guessed price.
    pub fn resolve(&self, provider: &str, model: &str) -> Option<Resolved<'_>> {
        let provider = canonical_provider(provider.trim());
        let model = model.trim();
        if provider.is_empty() {
            if let Some(found) = self.resolve_name("", model) {
                return Some(found);
            }
            let (p, m) = model.split_once('/')?;
            return self.resolve_name(canonical_provider(p), m);
        }
        self.resolve_name(provider, model)
    }

    /// The context window of a model (`max_input_tokens`, else `max_tokens`).
    pub fn context_window(&self, provider: &str, model: &str) -> Option<u64> {
        self.lookup(provider, model)?.context_window()
    }

    /// The output limit of a model (`max_output_tokens`, else `max_tokens`).
    pub fn max_output_tokens(&self, provider: &str, model: &str) -> Option<u64> {
        self.lookup(provider, model)?.max_output()
    }

    fn resolve_name(&self, provider: &str, model: &str) -> Option<Resolved<'_>> {
        let mut name = model;
        if !provider.is_empty() {
            while let Some(rest) = name
                .strip_prefix(provider)
                .and_then(|r| r.strip_prefix('/'))
            {
                name = rest;
            }
        }
        if provider == "bedrock" {
            name = name
                .strip_prefix("converse/")
                .or_else(|| name.strip_prefix("invoke/"))
                .unwrap_or(name);
        }
        if name.starts_with("arn:") {
            name = name.rsplit('/').next().unwrap_or(name);
        }
        if name.is_empty() {
            return None;
        }
        let names = [Some(name), strip_region(name)];
        names
            .iter()
            .flatten()
            .find_map(|n| self.find(provider, n))
            .or_else(|| {
                names
                    .iter()
                    .flatten()
                    .filter_map(|n| strip_date(n))
                    .find_map(|n| self.find(provider, n))
            })
    }

    /// `provider/name`, then `name` if its entry belongs to `provider`.
    fn find(&self, provider: &str, name: &str) -> Option<Resolved<'_>> {
        if !provider.is_empty() {
            let key = format!("{provider}/{name}");
            if let Some((key, price)) = self.entries.get_key_value(key.as_str()) {
                let (key, price) = (&**key, &**price);
                return Some(Resolved { key, price });
            }
        }
        let (key, price) = self.entries.get_key_value(name)?;
        let (key, price) = (&**key, &**price);
        provider_matches(provider, price.provider.as_deref()).then_some(Resolved { key, price })
    }
}

/// A few common spellings of provider names, mapped to LiteLLM's.
fn canonical_provider(provider: &str) -> &str {
    match provider {
        "vertex" | "vertexai" | "google_vertex" | "google-vertex" => "vertex_ai",
        "google" | "google_ai_studio" | "google-ai-studio" => "gemini",
        "aws_bedrock" | "aws-bedrock" => "bedrock",
        "azure_openai" | "azure-openai" => "azure",
        "together" => "together_ai",
        "fireworks" => "fireworks_ai",
        other => other,
    }
}

/// Does an entry whose `litellm_provider` is `entry` price calls to `requested`?
fn provider_matches(requested: &str, entry: Option<&str>) -> bool {
    let Some(entry) = entry else {
        return true;
    };
    if requested.is_empty() || entry == requested {
        return true;
    }
    // LiteLLM's sub-providers: `vertex_ai-language-models`, `bedrock_converse`, ...
    if let Some(rest) = entry.strip_prefix(requested)
        && (rest.starts_with('-') || rest.starts_with('_'))
    {
        return true;
    }
    if entry.strip_prefix("text-completion-") == Some(requested) {
        return true;
    }
    // Azure OpenAI bills OpenAI's models at OpenAI's prices.
    requested == "azure" && matches!(entry, "openai" | "text-completion-openai")
}

/// Bedrock cross-region inference profile prefixes.
const BEDROCK_REGIONS: &[&str] = &[
    "us", "us-gov", "eu", "apac", "global", "jp", "au", "ca", "in",
];

/// `us.anthropic.claude-...` → `anthropic.claude-...`.
fn strip_region(name: &str) -> Option<&str> {
    let (region, rest) = name.split_once('.')?;
    (BEDROCK_REGIONS.contains(&region) && rest.contains('.') && !rest.contains('/')).then_some(rest)
}

/// `gpt-4o-2024-08-06` → `gpt-4o`, `claude-3-5-haiku-20241022` → `claude-3-5-haiku`,
/// `claude-haiku-4-5@20251001` → `claude-haiku-4-5`.
fn strip_date(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let plausible = |y: &[u8], m: &[u8], d: &[u8]| {
        let num = |s: &[u8]| s.iter().fold(0u32, |a, c| a * 10 + u32::from(c - b'0'));
        (y[0] == b'1' || y[0] == b'2') && (1..=12).contains(&num(m)) && (1..=31).contains(&num(d))
    };
    let n = b.len();
    // `-YYYY-MM-DD`
    if n > 11 {
        let t = &b[n - 11..];
        if t[0] == b'-'
            && t[5] == b'-'
            && t[8] == b'-'
            && digits(&t[1..5])
            && digits(&t[6..8])
            && digits(&t[9..11])
            && plausible(&t[1..5], &t[6..8], &t[9..11])
        {
            return Some(&name[..n - 11]);
        }
    }
    // `-YYYYMMDD` / `@YYYYMMDD`
    if n > 9 {
        let t = &b[n - 9..];
        if (t[0] == b'-' || t[0] == b'@')
            && digits(&t[1..])
            && plausible(&t[1..5], &t[5..7], &t[7..9])
        {
            return Some(&name[..n - 9]);
        }
    }
    None
}

struct TableVisitor;

impl<'de> Visitor<'de> for TableVisitor {
    type Value = PriceTable;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of model name to price entry")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PriceTable, A::Error> {
        let mut entries = HashMap::with_capacity(map.size_hint().unwrap_or(4096));
        while let Some(key) = map.next_key::<String>()? {
            if key == SAMPLE_SPEC {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let price = map.next_value_seed(EntrySeed(&key))?;
            if price.has_price() {
                entries.insert(key.into_boxed_str(), Box::new(price));
            }
        }
        entries.shrink_to_fit();
        Ok(PriceTable { entries })
    }
}

/// Deserialises one entry, naming the model in any error.
struct EntrySeed<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = ModelPrice;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ModelPrice, D::Error> {
        serde::Deserialize::deserialize(d)
            .map_err(|e: D::Error| de::Error::custom(format_args!("model {:?}: {e}", self.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_dates() {
        assert_eq!(strip_date("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(
            strip_date("claude-3-5-haiku-20241022"),
            Some("claude-3-5-haiku")
        );
        assert_eq!(
            strip_date("claude-haiku-4-5@20251001"),
            Some("claude-haiku-4-5")
        );
        assert_eq!(strip_date("gpt-4o"), None);
        assert_eq!(strip_date("gpt-4-0125-preview"), None);
        assert_eq!(strip_date("model-12345678"), None);
        assert_eq!(strip_date("-20241022"), None);
    }

    #[test]
    fn strips_regions() {
        assert_eq!(
            strip_region("us.anthropic.claude-x-v1:0"),
            Some("anthropic.claude-x-v1:0")
        );
        assert_eq!(strip_region("us-gov.meta.llama"), Some("meta.llama"));
        assert_eq!(strip_region("anthropic.claude-x"), None);
        assert_eq!(strip_region("us.model"), None);
        assert_eq!(strip_region("gpt-4.1"), None);
    }

    #[test]
    fn matches_providers() {
        assert!(provider_matches(
            "vertex_ai",
            Some("vertex_ai-language-models")
        ));
        assert!(provider_matches("bedrock", Some("bedrock_converse")));
        assert!(provider_matches("openai", Some("text-completion-openai")));
        assert!(provider_matches("azure", Some("openai")));
        assert!(provider_matches("", Some("openai")));
        assert!(!provider_matches("groq", Some("openai")));
        assert!(!provider_matches("openai", Some("azure")));
    }

    #[test]
    fn skips_sample_spec_and_unpriced_entries() {
        let t = PriceTable::from_json_str(
            r#"{"sample_spec": {"max_input_tokens": "max input tokens", "input_cost_per_token": 0.0},
                "a": {"input_cost_per_token": 1e-6},
                "b": {"max_input_tokens": 10}}"#,
        )
        .unwrap();
        assert_eq!(t.len(), 1);
        assert!(t.get("a").is_some());
    }

    #[test]
    fn errors_name_the_model() {
        let err = PriceTable::from_json_str(r#"{"m1": {"input_cost_per_token": "cheap"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("m1"), "{err}");
        assert!(PriceTable::from_json_str("[]").is_err());
        assert!(PriceTable::from_json_str("{} x").is_err());
        assert!(PriceTable::from_path("/nonexistent/prices.json").is_err());
    }
}
