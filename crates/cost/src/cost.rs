//! The cost of one call: [`CallUsage`] in, [`CostBreakdown`] out.

use llmux_core::Usage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::money::{Money, UnitPrice};
use crate::price::ModelPrice;
use crate::table::PriceTable;

/// What one call consumed, in the units providers bill.
///
/// Token counts follow OpenAI's usage: `prompt_tokens` is **all** input tokens, cached
/// reads and cache writes included; `completion_tokens` is all output tokens, reasoning and
/// audio included. Durations are in milliseconds so they stay integers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallUsage {
    /// All input tokens (cache reads, cache writes and audio included).
    pub prompt_tokens: u64,
    /// All output tokens (reasoning and audio included).
    pub completion_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to the prompt cache with the default (5-minute) lifetime.
    pub cache_creation_tokens: u64,
    /// Input tokens written to the prompt cache with a 1-hour lifetime.
    pub cache_creation_1h_tokens: u64,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// Input audio tokens.
    pub input_audio_tokens: u64,
    /// Output audio tokens.
    pub output_audio_tokens: u64,
    /// Input image tokens.
    pub input_image_tokens: u64,
    /// Output image tokens (image generation billed per token).
    pub output_image_tokens: u64,
    /// Input images (for models priced per image).
    pub input_images: u64,
    /// Images generated.
    pub output_images: u64,
    /// Milliseconds of input audio (transcription, realtime).
    pub input_audio_ms: u64,
    /// Milliseconds of input video.
    pub input_video_ms: u64,
    /// Milliseconds of generated audio.
    pub output_audio_ms: u64,
    /// Milliseconds of generated video.
    pub output_video_ms: u64,
    /// Input characters (speech synthesis priced per character).
    pub input_characters: u64,
    /// Output characters.
    pub output_characters: u64,
    /// An embedding call: only input tokens are billed. Also implied by the price's
    /// `mode: "embedding"`.
    pub is_embedding: bool,
}

impl CallUsage {
    /// A call with only input and output token counts.
    pub fn tokens(prompt_tokens: u64, completion_tokens: u64) -> Self {
        CallUsage {
            prompt_tokens,
            completion_tokens,
            ..CallUsage::default()
        }
    }

    /// Read a canonical [`Usage`]: prompt, completion, cached, reasoning and audio tokens
    /// from OpenAI's fields, image tokens from the details' `image_tokens`; cache writes from the fields Anthropic-shaped usages carry
    /// (`cache_creation_input_tokens`, and `cache_creation.ephemeral_1h_input_tokens` /
    /// `ephemeral_5m_input_tokens` for the split), or `prompt_tokens_details.cache_creation_tokens`;
    /// a top-level `cache_read_input_tokens` when `cached_tokens` is absent.
    pub fn from_usage(usage: &Usage) -> Self {
        let prompt_details = usage.prompt_tokens_details.as_ref();
        let completion_details = usage.completion_tokens_details.as_ref();
        let extra_u64 = |key: &str| usage.extra.get(key).and_then(Value::as_u64);

        let cached_tokens = prompt_details
            .and_then(|d| d.cached_tokens)
            .or_else(|| extra_u64("cache_read_input_tokens"))
            .unwrap_or(0);
        let creation_total = extra_u64("cache_creation_input_tokens")
            .or_else(|| {
                prompt_details
                    .and_then(|d| d.extra.get("cache_creation_tokens"))
                    .and_then(Value::as_u64)
            })
            .unwrap_or(0);
        let split = usage.extra.get("cache_creation");
        let split_u64 = |key: &str| split.and_then(|s| s.get(key)).and_then(Value::as_u64);
        let (cache_creation_tokens, cache_creation_1h_tokens) = match (
            split_u64("ephemeral_5m_input_tokens"),
            split_u64("ephemeral_1h_input_tokens"),
        ) {
            (None, None) => (creation_total, 0),
            (five, one) => {
                let one = one.unwrap_or(0);
                (
                    five.unwrap_or_else(|| creation_total.saturating_sub(one)),
                    one,
                )
            }
        };

        CallUsage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens,
            cache_creation_tokens,
            cache_creation_1h_tokens,
            reasoning_tokens: completion_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            input_audio_tokens: prompt_details.and_then(|d| d.audio_tokens).unwrap_or(0),
            output_audio_tokens: completion_details.and_then(|d| d.audio_tokens).unwrap_or(0),
            input_image_tokens: prompt_details
                .and_then(|d| d.extra.get("image_tokens"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
            output_image_tokens: completion_details
                .and_then(|d| d.extra.get("image_tokens"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
            ..CallUsage::default()
        }
    }
}

impl From<&Usage> for CallUsage {
    fn from(usage: &Usage) -> Self {
        CallUsage::from_usage(usage)
    }
}

/// The cost of one call, by component. Each component is rounded to nano-USD on its own;
/// `total` is the exact sum of the unrounded components rounded once, so it may differ from
/// the sum of the rounded components by a few nano-USD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostBreakdown {
    /// Uncached text input tokens.
    pub input: Money,
    /// Cached input tokens (cache reads).
    pub cache_read: Money,
    /// Cache writes, both lifetimes.
    pub cache_creation: Money,
    /// Text output tokens, reasoning and audio excluded.
    pub output: Money,
    /// Reasoning tokens.
    pub reasoning: Money,
    /// Input audio tokens.
    pub input_audio: Money,
    /// Output audio tokens.
    pub output_audio: Money,
    /// Input and generated images, per image and per image token.
    pub images: Money,
    /// Seconds of audio and video, in and out.
    pub duration: Money,
    /// Characters, in and out.
    pub characters: Money,
    /// The whole call.
    pub total: Money,
    /// The long-context tier applied, by its threshold in input tokens.
    pub tier_above_tokens: Option<u64>,
}

/// femto-USD (10⁻¹⁵) of `count` units at `price` pico-USD each, times `scale`.
fn femto(count: u64, price: Option<UnitPrice>, scale: i128) -> i128 {
    price.map_or(0, |p| {
        i128::from(p.pico_usd())
            .saturating_mul(i128::from(count))
            .saturating_mul(scale)
    })
}

/// Tokens, images and characters: pico-USD × count = pico-USD = 1000 femto-USD.
fn per_unit(count: u64, price: Option<UnitPrice>) -> i128 {
    femto(count, price, 1000)
}

/// Durations: pico-USD per second × milliseconds = femto-USD.
fn per_ms(ms: u64, price: Option<UnitPrice>) -> i128 {
    femto(ms, price, 1)
}

impl ModelPrice {
    /// The cost of a call with this usage.
    ///
    /// - Tier: when `prompt_tokens` exceeds a tier's threshold, the highest such tier's
    ///   prices apply to the whole call (unset ones stay at the base price).
    /// - Input: `prompt_tokens − cached − cache writes − input audio − input image tokens`
    ///   at the input price; cached at the cache-read price (else the input price); 5-minute
    ///   cache writes at the cache-creation price (else the input price); 1-hour writes at
    ///   the 1-hour price (else the 5-minute one); input audio and image tokens at their
    ///   prices (else the input price).
    /// - Output: `completion_tokens − reasoning − output audio − output image tokens` at the
    ///   output price (a model with only an image-token output price uses that); reasoning
    ///   at the reasoning price (else the output price); output audio and image tokens at
    ///   their prices (else the output price).
    /// - Embedding calls (`is_embedding` or `mode: "embedding"`): all `prompt_tokens` at the
    ///   input price, nothing else from tokens.
    /// - Images, durations and characters at their per-unit prices; a duration falls back
    ///   from the audio/video-specific price to `input_cost_per_second` /
    ///   `output_cost_per_second`.
    ///
    /// Counts that exceed what contains them are clamped (cached ≤ prompt, ...), so a
    /// malformed usage never bills a token twice. Everything is computed in femto-USD and
    /// rounded half-up to nano-USD at the end.
    pub fn cost(&self, usage: &CallUsage) -> CostBreakdown {
        let (r, tier) = self.rates_for(usage.prompt_tokens);
        let input_price = r.input_per_token;
        // Image-generation models priced only per image token bill every output token so.
        let output_price = r.output_per_token.or(r.output_image_per_token);
        let mut image_tokens = 0i128;

        let mut f = [0i128; 10];
        let [
            input,
            cache_read,
            cache_creation,
            output,
            reasoning,
            input_audio,
            output_audio,
            images,
            duration,
            characters,
        ] = &mut f;

        let embedding = usage.is_embedding || self.mode.as_deref() == Some("embedding");
        if embedding {
            *input = per_unit(usage.prompt_tokens, input_price);
        } else {
            let mut left = usage.prompt_tokens;
            let mut take = |n: u64| {
                let n = n.min(left);
                left -= n;
                n
            };
            let cached = take(usage.cached_tokens);
            let created_5m = take(usage.cache_creation_tokens);
            let created_1h = take(usage.cache_creation_1h_tokens);
            let audio_in = take(usage.input_audio_tokens);
            let image_in = take(usage.input_image_tokens);
            let text_in = left;

            let creation_price = r.cache_creation_per_token.or(input_price);
            *input = per_unit(text_in, input_price);
            *cache_read = per_unit(cached, r.cache_read_per_token.or(input_price));
            *cache_creation = per_unit(created_5m, creation_price).saturating_add(per_unit(
                created_1h,
                r.cache_creation_1h_per_token.or(creation_price),
            ));
            *input_audio = per_unit(audio_in, r.input_audio_per_token.or(input_price));
            image_tokens = per_unit(image_in, r.input_image_per_token.or(input_price));

            let thinking = usage.reasoning_tokens.min(usage.completion_tokens);
            let audio_out = usage
                .output_audio_tokens
                .min(usage.completion_tokens - thinking);
            let image_out = usage
                .output_image_tokens
                .min(usage.completion_tokens - thinking - audio_out);
            let text_out = usage.completion_tokens - thinking - audio_out - image_out;
            image_tokens = image_tokens.saturating_add(per_unit(
                image_out,
                r.output_image_per_token.or(output_price),
            ));
            *output = per_unit(text_out, output_price);
            *reasoning = per_unit(thinking, r.reasoning_per_token.or(output_price));
            *output_audio = per_unit(audio_out, r.output_audio_per_token.or(output_price));
        }

        *images = per_unit(usage.input_images, r.input_per_image)
            .saturating_add(per_unit(usage.output_images, r.output_per_image))
            .saturating_add(image_tokens);
        *duration = [
            per_ms(
                usage.input_audio_ms,
                r.input_audio_per_second.or(r.input_per_second),
            ),
            per_ms(
                usage.input_video_ms,
                r.input_video_per_second.or(r.input_per_second),
            ),
            per_ms(usage.output_audio_ms, r.output_per_second),
            per_ms(
                usage.output_video_ms,
                r.output_video_per_second.or(r.output_per_second),
            ),
        ]
        .into_iter()
        .fold(0i128, i128::saturating_add);
        *characters = per_unit(usage.input_characters, r.input_per_character)
            .saturating_add(per_unit(usage.output_characters, r.output_per_character));

        let total = f.iter().copied().fold(0i128, i128::saturating_add);
        let m = Money::from_femto_usd;
        CostBreakdown {
            input: m(f[0]),
            cache_read: m(f[1]),
            cache_creation: m(f[2]),
            output: m(f[3]),
            reasoning: m(f[4]),
            input_audio: m(f[5]),
            output_audio: m(f[6]),
            images: m(f[7]),
            duration: m(f[8]),
            characters: m(f[9]),
            total: m(total),
            tier_above_tokens: tier,
        }
    }
}

impl PriceTable {
    /// The cost of a call with `usage` at `price` (see [`ModelPrice::cost`]).
    pub fn cost(&self, price: &ModelPrice, usage: &CallUsage) -> CostBreakdown {
        price.cost(usage)
    }

    /// Look the model up and cost the call; `None` when the model is unknown.
    pub fn cost_of(&self, provider: &str, model: &str, usage: &CallUsage) -> Option<CostBreakdown> {
        self.lookup(provider, model).map(|p| p.cost(usage))
    }
}
