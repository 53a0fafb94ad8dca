//! One model's prices and limits ([`ModelPrice`]), read from LiteLLM's entry format.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::money::UnitPrice;

macro_rules! rates {
    ($( $(#[$doc:meta])* $field:ident => $variant:ident = $name:literal, )*) => {
        /// Per-unit prices of one model (or one long-context tier of it). `None` means the
        /// table does not give the price; see `docs/cost.md` for the fallbacks.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Rates {
            $( $(#[$doc])* pub $field: Option<UnitPrice>, )*
        }

        /// Names one field of [`Rates`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RateField {
            $( $(#[$doc])* $variant, )*
        }

        impl RateField {
            /// Every field, in declaration order.
            pub const ALL: &'static [RateField] = &[ $( RateField::$variant, )* ];

            /// The LiteLLM field name (`input_cost_per_token`, ...).
            pub const fn litellm_name(self) -> &'static str {
                match self { $( RateField::$variant => $name, )* }
            }

            /// The field with this LiteLLM name.
            pub fn from_litellm_name(name: &str) -> Option<RateField> {
                match name { $( $name => Some(RateField::$variant), )* _ => None }
            }
        }

        impl Rates {
            /// The price in `field`.
            pub const fn get(&self, field: RateField) -> Option<UnitPrice> {
                match field { $( RateField::$variant => self.$field, )* }
            }

            /// The slot of `field`.
            pub fn slot_mut(&mut self, field: RateField) -> &mut Option<UnitPrice> {
                match field { $( RateField::$variant => &mut self.$field, )* }
            }
        }
    };
}

rates! {
    /// `input_cost_per_token`: input (prompt) text tokens.
    input_per_token => InputPerToken = "input_cost_per_token",
    /// `output_cost_per_token`: output (completion) text tokens.
    output_per_token => OutputPerToken = "output_cost_per_token",
    /// `cache_read_input_token_cost`: input tokens read from the prompt cache.
    cache_read_per_token => CacheReadPerToken = "cache_read_input_token_cost",
    /// `cache_creation_input_token_cost`: input tokens written to the prompt cache
    /// (Anthropic's 5-minute tier).
    cache_creation_per_token => CacheCreationPerToken = "cache_creation_input_token_cost",
    /// `cache_creation_input_token_cost_above_1hr`: cache writes with a 1-hour lifetime.
    cache_creation_1h_per_token => CacheCreation1hPerToken = "cache_creation_input_token_cost_above_1hr",
    /// `output_cost_per_reasoning_token`: reasoning (thinking) output tokens.
    reasoning_per_token => ReasoningPerToken = "output_cost_per_reasoning_token",
    /// `input_cost_per_audio_token`: input audio tokens.
    input_audio_per_token => InputAudioPerToken = "input_cost_per_audio_token",
    /// `output_cost_per_audio_token`: output audio tokens.
    output_audio_per_token => OutputAudioPerToken = "output_cost_per_audio_token",
    /// `input_cost_per_image_token`: input image tokens.
    input_image_per_token => InputImagePerToken = "input_cost_per_image_token",
    /// `output_cost_per_image_token`: output image tokens.
    output_image_per_token => OutputImagePerToken = "output_cost_per_image_token",
    /// `input_cost_per_image`: each input image.
    input_per_image => InputPerImage = "input_cost_per_image",
    /// `output_cost_per_image`: each generated image.
    output_per_image => OutputPerImage = "output_cost_per_image",
    /// `input_cost_per_second`: each second of input audio or video.
    input_per_second => InputPerSecond = "input_cost_per_second",
    /// `output_cost_per_second`: each second of output audio or video.
    output_per_second => OutputPerSecond = "output_cost_per_second",
    /// `input_cost_per_audio_per_second`: each second of input audio.
    input_audio_per_second => InputAudioPerSecond = "input_cost_per_audio_per_second",
    /// `input_cost_per_video_per_second`: each second of input video.
    input_video_per_second => InputVideoPerSecond = "input_cost_per_video_per_second",
    /// `output_cost_per_video_per_second`: each second of generated video.
    output_video_per_second => OutputVideoPerSecond = "output_cost_per_video_per_second",
    /// `input_cost_per_character`: each input character (speech synthesis).
    input_per_character => InputPerCharacter = "input_cost_per_character",
    /// `output_cost_per_character`: each output character.
    output_per_character => OutputPerCharacter = "output_cost_per_character",
}

impl Rates {
    /// True when no price is set.
    pub fn is_empty(&self) -> bool {
        RateField::ALL.iter().all(|f| self.get(*f).is_none())
    }

    /// `self` with every price `top` sets replaced by `top`'s.
    #[must_use]
    pub fn overlay(&self, top: &Rates) -> Rates {
        let mut out = *self;
        for f in RateField::ALL {
            if let Some(p) = top.get(*f) {
                *out.slot_mut(*f) = Some(p);
            }
        }
        out
    }
}

/// A long-context tier: when a call's input tokens (`prompt_tokens`, cached ones included)
/// exceed `above_input_tokens`, the tier's prices apply to the **whole** call; prices the
/// tier does not set stay at the model's base price.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PriceTier {
    /// The threshold in tokens (`_above_200k_tokens` → 200 000). Strictly more input tokens
    /// than this selects the tier.
    pub above_input_tokens: u64,
    /// The tier's prices.
    pub rates: Rates,
}

macro_rules! capabilities {
    ($( $(#[$doc:meta])* $field:ident = $name:literal, )*) => {
        /// Capability flags copied from LiteLLM's `supports_*` fields; `None` when the table
        /// does not say.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Capabilities {
            $( $(#[$doc])* pub $field: Option<bool>, )*
        }

        impl Capabilities {
            /// The LiteLLM field names of the flags, in declaration order.
            pub const LITELLM_NAMES: &'static [&'static str] = &[ $( $name, )* ];

            fn slot_mut(&mut self, name: &str) -> Option<&mut Option<bool>> {
                match name { $( $name => Some(&mut self.$field), )* _ => None }
            }

            fn overlay(&mut self, top: &Capabilities) {
                $( if top.$field.is_some() { self.$field = top.$field; } )*
            }
        }
    };
}

capabilities! {
    /// `supports_function_calling`.
    function_calling = "supports_function_calling",
    /// `supports_parallel_function_calling`.
    parallel_function_calling = "supports_parallel_function_calling",
    /// `supports_tool_choice`.
    tool_choice = "supports_tool_choice",
    /// `supports_vision`.
    vision = "supports_vision",
    /// `supports_reasoning`.
    reasoning = "supports_reasoning",
    /// `supports_prompt_caching`.
    prompt_caching = "supports_prompt_caching",
    /// `supports_response_schema`.
    response_schema = "supports_response_schema",
    /// `supports_pdf_input`.
    pdf_input = "supports_pdf_input",
    /// `supports_audio_input`.
    audio_input = "supports_audio_input",
    /// `supports_audio_output`.
    audio_output = "supports_audio_output",
    /// `supports_web_search`.
    web_search = "supports_web_search",
}

/// The prices and limits of one model, as one entry of LiteLLM's price file describes it.
///
/// Deserialises from such an entry (LiteLLM field names, numbers or numeric strings for
/// prices; unknown fields are ignored), which is also the shape of per-deployment price
/// overrides in config. Construct one directly for prices known only to the caller:
///
/// ```
/// use llmux_cost::{ModelPrice, UnitPrice};
/// let price = ModelPrice::per_token(
///     UnitPrice::from_usd_str("0.0000025").unwrap(),
///     UnitPrice::from_usd_str("1e-5").unwrap(),
/// );
/// assert_eq!(price.rates.input_per_token, Some(UnitPrice::from_pico_usd(2_500_000)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelPrice {
    /// `litellm_provider`: LiteLLM's provider name (`openai`, `bedrock_converse`, ...).
    pub provider: Option<String>,
    /// `mode`: `chat`, `embedding`, `completion`, `image_generation`, ...
    pub mode: Option<String>,
    /// `max_input_tokens`: the context window.
    pub max_input_tokens: Option<u64>,
    /// `max_output_tokens`.
    pub max_output_tokens: Option<u64>,
    /// `max_tokens`: LiteLLM's legacy limit, used when the two above are missing.
    pub max_tokens: Option<u64>,
    /// Base prices.
    pub rates: Rates,
    /// Long-context tiers, ascending by threshold.
    pub tiers: Vec<PriceTier>,
    /// `supports_*` flags.
    pub capabilities: Capabilities,
}

impl ModelPrice {
    /// A model priced per input and output token only.
    pub fn per_token(input: UnitPrice, output: UnitPrice) -> Self {
        ModelPrice {
            rates: Rates {
                input_per_token: Some(input),
                output_per_token: Some(output),
                ..Rates::default()
            },
            ..ModelPrice::default()
        }
    }

    /// True when the entry sets at least one price (base or tier).
    pub fn has_price(&self) -> bool {
        !self.rates.is_empty() || self.tiers.iter().any(|t| !t.rates.is_empty())
    }

    /// The context window: `max_input_tokens`, else `max_tokens`.
    pub fn context_window(&self) -> Option<u64> {
        self.max_input_tokens.or(self.max_tokens)
    }

    /// The output limit: `max_output_tokens`, else `max_tokens`.
    pub fn max_output(&self) -> Option<u64> {
        self.max_output_tokens.or(self.max_tokens)
    }

    /// The prices in force for a call with `input_tokens` input tokens: the base prices
    /// overlaid with the highest tier whose threshold is exceeded, and that threshold.
    pub fn rates_for(&self, input_tokens: u64) -> (Rates, Option<u64>) {
        match self
            .tiers
            .iter()
            .filter(|t| input_tokens > t.above_input_tokens)
            .max_by_key(|t| t.above_input_tokens)
        {
            Some(tier) => (
                self.rates.overlay(&tier.rates),
                Some(tier.above_input_tokens),
            ),
            None => (self.rates, None),
        }
    }

    /// Apply an override: every value `top` sets replaces this one's; `top`'s tiers, when it
    /// has any, replace these.
    pub fn apply_override(&mut self, top: &ModelPrice) {
        if top.provider.is_some() {
            self.provider.clone_from(&top.provider);
        }
        if top.mode.is_some() {
            self.mode.clone_from(&top.mode);
        }
        self.max_input_tokens = top.max_input_tokens.or(self.max_input_tokens);
        self.max_output_tokens = top.max_output_tokens.or(self.max_output_tokens);
        self.max_tokens = top.max_tokens.or(self.max_tokens);
        self.rates = self.rates.overlay(&top.rates);
        if !top.tiers.is_empty() {
            self.tiers.clone_from(&top.tiers);
        }
        self.capabilities.overlay(&top.capabilities);
    }
}

/// What a field name of a LiteLLM entry means to llmux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Provider,
    Mode,
    MaxInputTokens,
    MaxOutputTokens,
    MaxTokens,
    Rate(RateField),
    /// `<rate>_above_<N>k_tokens`.
    Tier(u64, RateField),
    TieredPricing,
    Capability,
    /// Not read by llmux.
    Other,
}

impl Field {
    pub(crate) fn classify(name: &str) -> Field {
        match name {
            "litellm_provider" => Field::Provider,
            "mode" => Field::Mode,
            "max_input_tokens" => Field::MaxInputTokens,
            "max_output_tokens" => Field::MaxOutputTokens,
            "max_tokens" => Field::MaxTokens,
            "tiered_pricing" => Field::TieredPricing,
            _ if name.starts_with("supports_") => {
                if Capabilities::LITELLM_NAMES.contains(&name) {
                    Field::Capability
                } else {
                    Field::Other
                }
            }
            _ => {
                if let Some(f) = RateField::from_litellm_name(name) {
                    return Field::Rate(f);
                }
                let Some((base, rest)) = name.rsplit_once("_above_") else {
                    return Field::Other;
                };
                match (RateField::from_litellm_name(base), parse_threshold(rest)) {
                    (Some(f), Some(n)) => Field::Tier(n, f),
                    _ => Field::Other,
                }
            }
        }
    }
}

/// `200k_tokens` → 200 000 (LiteLLM's `k` is 1000), `128_tokens` → 128.
fn parse_threshold(rest: &str) -> Option<u64> {
    let n = rest.strip_suffix("_tokens")?;
    let (digits, scale) = match n.strip_suffix('k') {
        Some(d) => (d, 1000),
        None => (n, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// Deserialises a field name straight to a [`Field`], without allocating.
struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = (Field, Option<String>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldSeed {
    type Value = (Field, Option<String>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let field = Field::classify(v);
        // Capability flags need their name to find the slot; nothing else does.
        let name = (field == Field::Capability).then(|| v.to_owned());
        Ok((field, name))
    }
}

/// A `tiered_pricing` item: prices for calls whose input tokens fall in `range`.
#[derive(Deserialize)]
struct RangeTier {
    #[serde(default)]
    range: Option<Vec<Value>>,
    #[serde(default)]
    input_cost_per_token: Option<UnitPrice>,
    #[serde(default)]
    output_cost_per_token: Option<UnitPrice>,
    #[serde(default)]
    cache_read_input_token_cost: Option<UnitPrice>,
    #[serde(default)]
    cache_creation_input_token_cost: Option<UnitPrice>,
    #[serde(default)]
    cache_creation_input_token_cost_above_1hr: Option<UnitPrice>,
    #[serde(default)]
    output_cost_per_reasoning_token: Option<UnitPrice>,
}

impl RangeTier {
    /// The tier as a threshold and rates, with LiteLLM's fallbacks inside a tier: cache
    /// reads and writes at the tier's input price, reasoning at the tier's output price.
    fn to_tier(&self) -> Option<PriceTier> {
        let input = self.input_cost_per_token?;
        let low = self.range.as_ref()?.first()?.as_f64()?;
        if low.is_nan() || low < 0.0 {
            return None;
        }
        let cache_creation = self.cache_creation_input_token_cost.or(Some(input));
        Some(PriceTier {
            // Token counts: an f64 is exact far beyond any context window.
            above_input_tokens: low as u64,
            rates: Rates {
                input_per_token: Some(input),
                output_per_token: self.output_cost_per_token,
                cache_read_per_token: self.cache_read_input_token_cost.or(Some(input)),
                cache_creation_per_token: cache_creation,
                cache_creation_1h_per_token: self
                    .cache_creation_input_token_cost_above_1hr
                    .or(cache_creation),
                reasoning_per_token: self
                    .output_cost_per_reasoning_token
                    .or(self.output_cost_per_token),
                ..Rates::default()
            },
        })
    }
}

impl<'de> Deserialize<'de> for ModelPrice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ModelPriceVisitor)
    }
}

struct ModelPriceVisitor;

impl<'de> Visitor<'de> for ModelPriceVisitor {
    type Value = ModelPrice;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a LiteLLM model price entry (an object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ModelPrice, A::Error> {
        let mut p = ModelPrice::default();
        let mut tiers: Vec<PriceTier> = Vec::new();
        let mut ranged: Vec<PriceTier> = Vec::new();
        while let Some((field, name)) = map.next_key_seed(FieldSeed)? {
            match field {
                Field::Provider => p.provider = lenient_string(map.next_value()?),
                Field::Mode => p.mode = lenient_string(map.next_value()?),
                Field::MaxInputTokens => p.max_input_tokens = lenient_u64(&map.next_value()?),
                Field::MaxOutputTokens => p.max_output_tokens = lenient_u64(&map.next_value()?),
                Field::MaxTokens => p.max_tokens = lenient_u64(&map.next_value()?),
                Field::Rate(f) => *p.rates.slot_mut(f) = map.next_value()?,
                Field::Tier(threshold, f) => {
                    if let Some(price) = map.next_value::<Option<UnitPrice>>()? {
                        let i = match tiers.iter().position(|t| t.above_input_tokens == threshold) {
                            Some(i) => i,
                            None => {
                                tiers.push(PriceTier {
                                    above_input_tokens: threshold,
                                    rates: Rates::default(),
                                });
                                tiers.len() - 1
                            }
                        };
                        *tiers[i].rates.slot_mut(f) = Some(price);
                    }
                }
                Field::TieredPricing => {
                    if let Value::Array(items) = map.next_value::<Value>()? {
                        for item in items.into_iter().filter(Value::is_object) {
                            let tier = RangeTier::deserialize(item).map_err(de::Error::custom)?;
                            ranged.extend(tier.to_tier());
                        }
                    }
                }
                Field::Capability => {
                    let value = map.next_value::<Value>()?;
                    if let (Some(slot), Some(b)) = (
                        name.as_deref().and_then(|n| p.capabilities.slot_mut(n)),
                        value.as_bool(),
                    ) {
                        *slot = Some(b);
                    }
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // LiteLLM selects an `_above_` tier by its input price; a tier without one is inert.
        tiers.retain(|t| t.rates.input_per_token.is_some());
        // `tiered_pricing` ranges win over `_above_` fields at the same threshold; a range
        // starting at 0 sets the base prices.
        for r in ranged {
            if r.above_input_tokens == 0 {
                p.rates = p.rates.overlay(&r.rates);
            } else if let Some(t) = tiers
                .iter_mut()
                .find(|t| t.above_input_tokens == r.above_input_tokens)
            {
                t.rates = t.rates.overlay(&r.rates);
            } else {
                tiers.push(r);
            }
        }
        tiers.sort_by_key(|t| t.above_input_tokens);
        p.tiers = tiers;
        Ok(p)
    }
}

fn lenient_string(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// A token limit: a non-negative integer, an integral float or a numeric string; anything
/// else (LiteLLM's `sample_spec` puts prose here) is ignored.
fn lenient_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 1.8e19)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pico(p: u64) -> Option<UnitPrice> {
        Some(UnitPrice::from_pico_usd(p))
    }

    #[test]
    fn classifies_fields() {
        use RateField::*;
        assert_eq!(
            Field::classify("input_cost_per_token"),
            Field::Rate(InputPerToken)
        );
        assert_eq!(
            Field::classify("cache_creation_input_token_cost_above_1hr"),
            Field::Rate(CacheCreation1hPerToken)
        );
        assert_eq!(
            Field::classify("cache_creation_input_token_cost_above_1hr_above_200k_tokens"),
            Field::Tier(200_000, CacheCreation1hPerToken)
        );
        assert_eq!(
            Field::classify("input_cost_per_token_above_128_tokens"),
            Field::Tier(128, InputPerToken)
        );
        assert_eq!(
            Field::classify("input_cost_per_token_above_200k_tokens_priority"),
            Field::Other
        );
        assert_eq!(
            Field::classify("input_cost_per_token_batches"),
            Field::Other
        );
        assert_eq!(Field::classify("supports_vision"), Field::Capability);
        assert_eq!(Field::classify("supports_computer_use"), Field::Other);
        for f in RateField::ALL {
            assert_eq!(RateField::from_litellm_name(f.litellm_name()), Some(*f));
        }
    }

    #[test]
    fn parses_an_entry() {
        let p: ModelPrice = serde_json::from_str(
            r#"{
                "litellm_provider": "gemini", "mode": "chat",
                "max_input_tokens": 1048576, "max_output_tokens": 65536.0,
                "input_cost_per_token": 1.25e-06, "output_cost_per_token": "1e-05",
                "input_cost_per_token_above_200k_tokens": 2.5e-06,
                "output_cost_per_token_above_200k_tokens": 1.5e-05,
                "cache_read_input_token_cost_above_300k_tokens": 1e-06,
                "supports_vision": true, "supports_reasoning": "yes",
                "search_context_cost_per_query": {"search_context_size_low": 0.035},
                "supported_regions": ["global"], "deprecation_date": "2026-06-17"
            }"#,
        )
        .unwrap();
        assert_eq!(p.provider.as_deref(), Some("gemini"));
        assert_eq!(p.context_window(), Some(1_048_576));
        assert_eq!(p.max_output(), Some(65_536));
        assert_eq!(p.rates.input_per_token, pico(1_250_000));
        assert_eq!(p.rates.output_per_token, pico(10_000_000));
        // The 300k tier has no input price, so LiteLLM never selects it.
        assert_eq!(p.tiers.len(), 1);
        assert_eq!(p.tiers[0].above_input_tokens, 200_000);
        assert_eq!(p.tiers[0].rates.output_per_token, pico(15_000_000));
        assert_eq!(p.capabilities.vision, Some(true));
        assert_eq!(p.capabilities.reasoning, None);
        let (rates, tier) = p.rates_for(200_001);
        assert_eq!(tier, Some(200_000));
        assert_eq!(rates.input_per_token, pico(2_500_000));
        assert_eq!(p.rates_for(200_000).1, None);
    }

    #[test]
    fn parses_range_tiers() {
        let p: ModelPrice = serde_json::from_str(
            r#"{"litellm_provider": "dashscope", "cache_read_input_token_cost": 1e-8,
                "tiered_pricing": [
                  {"input_cost_per_token": 5e-08, "output_cost_per_token": 4e-07, "range": [0, 256000.0]},
                  {"input_cost_per_token": 2.5e-07, "output_cost_per_token": 2e-06, "range": [256000.0, 1000000.0]},
                  {"input_cost_per_query": 0.005, "max_results_range": [0, 25]}
                ]}"#,
        )
        .unwrap();
        // The range starting at 0 sets the base; cache reads fall back to its input price.
        assert_eq!(p.rates.input_per_token, pico(50_000));
        assert_eq!(p.rates.cache_read_per_token, pico(50_000));
        assert_eq!(p.tiers.len(), 1);
        assert_eq!(p.tiers[0].above_input_tokens, 256_000);
        assert_eq!(p.tiers[0].rates.reasoning_per_token, pico(2_000_000));
    }

    #[test]
    fn rejects_bad_prices() {
        assert!(serde_json::from_str::<ModelPrice>(r#"{"input_cost_per_token": -1}"#).is_err());
        assert!(serde_json::from_str::<ModelPrice>(r#"{"input_cost_per_token": "x"}"#).is_err());
        assert!(serde_json::from_str::<ModelPrice>(r#"[1]"#).is_err());
        let p: ModelPrice =
            serde_json::from_str(r#"{"input_cost_per_token": null, "max_tokens": "docs"}"#)
                .unwrap();
        assert!(!p.has_price());
    }

    #[test]
    fn overrides_apply_field_by_field() {
        let mut base: ModelPrice = serde_json::from_str(
            r#"{"litellm_provider": "azure", "input_cost_per_token": 2.5e-6,
                "output_cost_per_token": 1e-5, "max_input_tokens": 128000}"#,
        )
        .unwrap();
        let top: ModelPrice = serde_json::from_str(r#"{"output_cost_per_token": "8e-6"}"#).unwrap();
        base.apply_override(&top);
        assert_eq!(base.rates.input_per_token, pico(2_500_000));
        assert_eq!(base.rates.output_per_token, pico(8_000_000));
        assert_eq!(base.max_input_tokens, Some(128_000));
        assert_eq!(base.provider.as_deref(), Some("azure"));
    }
}
