//! Costs of real calls against the embedded table, computed by hand.
//!
//! Arithmetic in the comments: a price of `2.5e-6` USD/token is 2 500 000 pico-USD/token;
//! tokens × pico-USD = pico-USD; 1 000 pico-USD = 1 nano-USD, the unit of [`Money`].

use llmux_core::Usage;
use llmux_core::types::{CompletionTokensDetails, PromptTokensDetails};
use serde_json::{Value, json};

use crate::price::Field;
use crate::{
    CallUsage, CostBreakdown, EMBEDDED_PRICES_JSON, ModelPrice, Money, PriceTable, UnitPrice,
};

fn table() -> &'static PriceTable {
    PriceTable::embedded()
}

fn nano(n: i64) -> Money {
    Money::from_nano_usd(n)
}

/// Look up, cost, and check the matched key.
fn cost(provider: &str, model: &str, want_key: &str, usage: &CallUsage) -> CostBreakdown {
    let resolved = table()
        .resolve(provider, model)
        .unwrap_or_else(|| panic!("{provider} / {model} not found"));
    assert_eq!(resolved.key, want_key, "{provider} / {model}");
    table().cost(resolved.price, usage)
}

#[test]
fn embedded_table_parses_and_is_complete() {
    let parsed = PriceTable::from_json_str(EMBEDDED_PRICES_JSON).unwrap();
    // ATTRIBUTION.md: 4388 priced entries out of 4552.
    assert_eq!(parsed.len(), 4388);
    assert_eq!(table().len(), parsed.len());
    assert!(table().iter().all(|(_, p)| p.has_price()));
}

#[test]
fn embedded_file_has_only_fields_the_crate_reads() {
    // Fails when xtask/src/prices.rs keeps a field this crate would ignore.
    let v: Value = serde_json::from_str(EMBEDDED_PRICES_JSON).unwrap();
    for (model, entry) in v.as_object().unwrap() {
        for field in entry.as_object().unwrap().keys() {
            assert_ne!(Field::classify(field), Field::Other, "{model}: {field}");
        }
    }
}

#[test]
fn gpt_4o_with_cached_prompt() {
    // gpt-4o: input 2.5e-6, cache read 1.25e-6, output 1e-5 USD/token.
    let usage = CallUsage {
        cached_tokens: 200,
        ..CallUsage::tokens(1_000, 500)
    };
    let c = cost("openai", "gpt-4o", "gpt-4o", &usage);
    // input: (1000 − 200) × 2 500 000 = 2 000 000 000 pico = 2 000 000 nano
    assert_eq!(c.input, nano(2_000_000));
    // cache: 200 × 1 250 000 = 250 000 000 pico = 250 000 nano
    assert_eq!(c.cache_read, nano(250_000));
    // output: 500 × 10 000 000 = 5 000 000 000 pico = 5 000 000 nano
    assert_eq!(c.output, nano(5_000_000));
    // total: 7 250 000 nano = $0.00725
    assert_eq!(c.total, nano(7_250_000));
    assert_eq!(c.total.to_string(), "0.00725");
    assert_eq!(c.tier_above_tokens, None);
}

#[test]
fn gpt_4o_mini() {
    // gpt-4o-mini: input 1.5e-7, output 6e-7 USD/token.
    let c = cost(
        "openai",
        "gpt-4o-mini",
        "gpt-4o-mini",
        &CallUsage::tokens(12_345, 678),
    );
    // 12 345 × 150 000 = 1 851 750 000 pico = 1 851 750 nano
    assert_eq!(c.input, nano(1_851_750));
    // 678 × 600 000 = 406 800 000 pico = 406 800 nano
    assert_eq!(c.output, nano(406_800));
    assert_eq!(c.total, nano(2_258_550));
}

#[test]
fn o3_reasoning_at_output_price_without_double_count() {
    // o3: input 2e-6, cache read 5e-7, output 8e-6; no reasoning price.
    let usage = CallUsage {
        cached_tokens: 1_024,
        reasoning_tokens: 2_500,
        ..CallUsage::tokens(2_000, 3_000)
    };
    let c = cost("openai", "o3", "o3", &usage);
    // input: 976 × 2 000 000 = 1 952 000 000 pico = 1 952 000 nano
    assert_eq!(c.input, nano(1_952_000));
    // cache: 1024 × 500 000 = 512 000 000 pico = 512 000 nano
    assert_eq!(c.cache_read, nano(512_000));
    // output: (3000 − 2500) × 8 000 000 = 4 000 000 000 pico = 4 000 000 nano
    assert_eq!(c.output, nano(4_000_000));
    // reasoning: 2500 × 8 000 000 = 20 000 000 000 pico = 20 000 000 nano
    assert_eq!(c.reasoning, nano(20_000_000));
    // total: 26 464 000 nano; the same as 3000 completion tokens at the output price.
    assert_eq!(c.total, nano(26_464_000));
}

#[test]
fn reasoning_price_when_the_model_has_one() {
    // perplexity/sonar-deep-research: input 2e-6, output 8e-6, reasoning 3e-6 USD/token.
    let usage = CallUsage {
        reasoning_tokens: 10_000,
        ..CallUsage::tokens(1_000, 12_000)
    };
    let c = cost(
        "perplexity",
        "sonar-deep-research",
        "perplexity/sonar-deep-research",
        &usage,
    );
    // input: 1000 × 2 000 000 = 2 000 000 000 pico = 2 000 000 nano
    // output: 2000 × 8 000 000 = 16 000 000 000 pico = 16 000 000 nano
    // reasoning: 10 000 × 3 000 000 = 30 000 000 000 pico = 30 000 000 nano
    assert_eq!(c.input, nano(2_000_000));
    assert_eq!(c.output, nano(16_000_000));
    assert_eq!(c.reasoning, nano(30_000_000));
    assert_eq!(c.total, nano(48_000_000));
}

#[test]
fn claude_sonnet_with_cache_read_and_both_cache_write_tiers() {
    // claude-sonnet-4-5: input 3e-6, output 1.5e-5, cache read 3e-7,
    // cache write 3.75e-6 (5 min), 6e-6 (1 hour).
    let usage = CallUsage {
        cached_tokens: 6_000,
        cache_creation_tokens: 2_000,
        cache_creation_1h_tokens: 1_000,
        ..CallUsage::tokens(10_000, 800)
    };
    let c = cost(
        "anthropic",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5",
        &usage,
    );
    // input: (10 000 − 6000 − 2000 − 1000) × 3 000 000 = 3 000 000 000 pico = 3 000 000 nano
    assert_eq!(c.input, nano(3_000_000));
    // read: 6000 × 300 000 = 1 800 000 000 pico = 1 800 000 nano
    assert_eq!(c.cache_read, nano(1_800_000));
    // write: 2000 × 3 750 000 + 1000 × 6 000 000 = 13 500 000 000 pico = 13 500 000 nano
    assert_eq!(c.cache_creation, nano(13_500_000));
    // output: 800 × 15 000 000 = 12 000 000 000 pico = 12 000 000 nano
    assert_eq!(c.output, nano(12_000_000));
    assert_eq!(c.total, nano(30_300_000));
}

#[test]
fn claude_usage_from_core_usage() {
    // An Anthropic-shaped usage as a provider would hand it over.
    let mut usage = Usage::new(10_000, 800);
    usage.prompt_tokens_details = Some(PromptTokensDetails {
        cached_tokens: Some(6_000),
        ..Default::default()
    });
    usage
        .extra
        .insert("cache_creation_input_tokens".into(), json!(3_000));
    usage.extra.insert(
        "cache_creation".into(),
        json!({"ephemeral_5m_input_tokens": 2_000, "ephemeral_1h_input_tokens": 1_000}),
    );
    let call = CallUsage::from(&usage);
    assert_eq!(
        (
            call.cached_tokens,
            call.cache_creation_tokens,
            call.cache_creation_1h_tokens
        ),
        (6_000, 2_000, 1_000)
    );
    // Same numbers as the test above.
    let c = cost("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", &call);
    assert_eq!(c.total, nano(30_300_000));
}

#[test]
fn gemini_2_5_pro_above_200k_prices_the_whole_call_at_the_tier() {
    // gemini/gemini-2.5-pro above 200k input tokens: input 2.5e-6, cache read 2.5e-7,
    // output 1.5e-5 (no reasoning price: reasoning at the output price).
    let usage = CallUsage {
        cached_tokens: 50_000,
        reasoning_tokens: 1_500,
        ..CallUsage::tokens(250_000, 2_000)
    };
    let c = cost("gemini", "gemini-2.5-pro", "gemini/gemini-2.5-pro", &usage);
    assert_eq!(c.tier_above_tokens, Some(200_000));
    // input: 200 000 × 2 500 000 = 500 000 000 000 pico = 500 000 000 nano
    assert_eq!(c.input, nano(500_000_000));
    // cache: 50 000 × 250 000 = 12 500 000 000 pico = 12 500 000 nano
    assert_eq!(c.cache_read, nano(12_500_000));
    // output: 500 × 15 000 000 = 7 500 000 000 pico = 7 500 000 nano
    assert_eq!(c.output, nano(7_500_000));
    // reasoning: 1500 × 15 000 000 = 22 500 000 000 pico = 22 500 000 nano
    assert_eq!(c.reasoning, nano(22_500_000));
    // total: 542 500 000 nano = $0.5425
    assert_eq!(c.total, nano(542_500_000));

    // Exactly 200 000 input tokens is not above the threshold: base prices
    // 1.25e-6 / 1e-5. 200 000 × 1 250 000 + 2000 × 10 000 000 = 270 000 000 000 pico.
    let c = cost(
        "gemini",
        "gemini-2.5-pro",
        "gemini/gemini-2.5-pro",
        &CallUsage::tokens(200_000, 2_000),
    );
    assert_eq!(c.tier_above_tokens, None);
    assert_eq!(c.total, nano(270_000_000));
}

#[test]
fn text_embedding_3_small() {
    // text-embedding-3-small: input 2e-8 USD/token = 20 000 pico.
    let usage = CallUsage {
        is_embedding: true,
        ..CallUsage::tokens(1_234_567, 0)
    };
    let c = cost(
        "openai",
        "text-embedding-3-small",
        "text-embedding-3-small",
        &usage,
    );
    // 1 234 567 × 20 000 = 24 691 340 000 pico = 24 691 340 nano
    assert_eq!(c.input, nano(24_691_340));
    assert_eq!(c.total, nano(24_691_340));
}

#[test]
fn bedrock_cross_region_ids_and_arns() {
    // us.anthropic.claude-sonnet-4-5-20250929-v1:0 has its own (regional) prices:
    // input 3.3e-6, output 1.65e-5.
    let key = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
    let usage = CallUsage::tokens(1_000, 1_000);
    // 1000 × 3 300 000 + 1000 × 16 500 000 = 19 800 000 000 pico = 19 800 000 nano
    for model in [
        key,
        "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "converse/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ] {
        assert_eq!(cost("bedrock", model, key, &usage).total, nano(19_800_000));
    }
    // A region with no entry of its own falls back to the base model id (3e-6 / 1.5e-5):
    // 1000 × 3 000 000 + 1000 × 15 000 000 = 18 000 000 000 pico = 18 000 000 nano.
    let c = cost(
        "bedrock",
        "ca.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        &usage,
    );
    assert_eq!(c.total, nano(18_000_000));
    // An application inference profile ARN names no model: unknown.
    assert!(
        table()
            .lookup(
                "bedrock",
                "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
            )
            .is_none()
    );
}

#[test]
fn vertex_ai_models() {
    // Claude on Vertex, with Vertex's `@date` version.
    let c = cost(
        "vertex_ai",
        "claude-sonnet-4-5@20250929",
        "vertex_ai/claude-sonnet-4-5@20250929",
        &CallUsage::tokens(1_000, 100),
    );
    // 1000 × 3 000 000 + 100 × 15 000 000 = 4 500 000 000 pico = 4 500 000 nano
    assert_eq!(c.total, nano(4_500_000));

    // Gemini on Vertex: LiteLLM keys it bare, provider `vertex_ai-language-models`.
    // gemini-2.5-flash: input 3e-7, audio in 1e-6, output 2.5e-6, reasoning 2.5e-6.
    let usage = CallUsage {
        input_audio_tokens: 4_000,
        reasoning_tokens: 600,
        ..CallUsage::tokens(10_000, 1_000)
    };
    let c = cost("vertex_ai", "gemini-2.5-flash", "gemini-2.5-flash", &usage);
    // text in: 6000 × 300 000 = 1 800 000 000 pico = 1 800 000 nano
    assert_eq!(c.input, nano(1_800_000));
    // audio in: 4000 × 1 000 000 = 4 000 000 000 pico = 4 000 000 nano
    assert_eq!(c.input_audio, nano(4_000_000));
    // text out: 400 × 2 500 000 = 1 000 000 000 pico = 1 000 000 nano
    assert_eq!(c.output, nano(1_000_000));
    // reasoning: 600 × 2 500 000 = 1 500 000 000 pico = 1 500 000 nano
    assert_eq!(c.reasoning, nano(1_500_000));
    assert_eq!(c.total, nano(8_300_000));
}

#[test]
fn mistral_large() {
    // mistral/mistral-large-latest: input 5e-7, output 1.5e-6.
    let c = cost(
        "mistral",
        "mistral-large-latest",
        "mistral/mistral-large-latest",
        &CallUsage::tokens(4_000, 1_000),
    );
    // 4000 × 500 000 + 1000 × 1 500 000 = 3 500 000 000 pico = 3 500 000 nano
    assert_eq!(c.total, nano(3_500_000));
}

#[test]
fn groq_gpt_oss() {
    // groq/openai/gpt-oss-120b: input 1.5e-7, output 6e-7. The model id has a `/` itself.
    let c = cost(
        "groq",
        "openai/gpt-oss-120b",
        "groq/openai/gpt-oss-120b",
        &CallUsage::tokens(100_000, 20_000),
    );
    // 100 000 × 150 000 + 20 000 × 600 000 = 27 000 000 000 pico = 27 000 000 nano
    assert_eq!(c.total, nano(27_000_000));
}

#[test]
fn date_suffixed_names() {
    // An exact dated entry wins over its base.
    assert_eq!(
        table().resolve("openai", "o3-2025-04-16").unwrap().key,
        "o3-2025-04-16"
    );
    // Missing dated names resolve to the base model.
    assert_eq!(
        table()
            .resolve("anthropic", "claude-haiku-4-5@20251001")
            .unwrap()
            .key,
        "claude-haiku-4-5"
    );
    assert_eq!(
        table()
            .resolve("openai", "gpt-4o-mini-2099-12-31")
            .unwrap()
            .key,
        "gpt-4o-mini"
    );
    // claude-haiku-4-5: input 1e-6, output 5e-6.
    // 2000 × 1 000 000 + 300 × 5 000 000 = 3 500 000 000 pico = 3 500 000 nano
    let c = cost(
        "anthropic",
        "claude-haiku-4-5-20991231",
        "claude-haiku-4-5",
        &CallUsage::tokens(2_000, 300),
    );
    assert_eq!(c.total, nano(3_500_000));
}

#[test]
fn provider_prefixes_are_stripped() {
    assert_eq!(
        table()
            .resolve("openai", "openai/openai/gpt-4o")
            .unwrap()
            .key,
        "gpt-4o"
    );
    assert_eq!(table().resolve("", "gpt-4o").unwrap().key, "gpt-4o");
    assert_eq!(
        table().resolve("", "gemini/gemini-2.5-pro").unwrap().key,
        "gemini/gemini-2.5-pro"
    );
    assert_eq!(
        table()
            .resolve("", "anthropic/claude-sonnet-4-5")
            .unwrap()
            .key,
        "claude-sonnet-4-5"
    );
    assert_eq!(
        table().resolve("vertex", "gemini-2.5-flash").unwrap().key,
        "gemini-2.5-flash"
    );
}

#[test]
fn unknown_models_have_no_price() {
    let usage = CallUsage::tokens(10, 10);
    assert!(table().lookup("openai", "gpt-unknown-9000").is_none());
    assert!(
        table()
            .cost_of("openai", "gpt-unknown-9000", &usage)
            .is_none()
    );
    // Known name, wrong provider: another provider's price is not this one's.
    assert!(table().lookup("groq", "gpt-4o").is_none());
    assert!(table().lookup("openai", "").is_none());
    assert!(table().lookup("", "").is_none());
}

#[test]
fn azure_deployments_use_the_base_model() {
    let t = table();
    assert!(t.lookup("azure", "prod-chat-eu").is_none());
    let p = t
        .lookup_with_base_model("azure", "prod-chat-eu", Some("gpt-4o"))
        .unwrap();
    assert_eq!(Some(p), t.get("azure/gpt-4o"));
    // A deployment named after a model still resolves without a base model; OpenAI's
    // entry stands in when Azure has none.
    assert_eq!(t.resolve("azure", "gpt-4o").unwrap().key, "azure/gpt-4o");
    assert_eq!(
        t.resolve("azure", "gpt-4o-mini-2099-01-01").unwrap().key,
        "azure/gpt-4o-mini"
    );
    assert_eq!(
        t.resolve("azure", "text-embedding-3-small").unwrap().key,
        "azure/text-embedding-3-small"
    );
}

#[test]
fn context_windows() {
    let t = table();
    assert_eq!(t.context_window("openai", "gpt-4o"), Some(128_000));
    assert_eq!(t.max_output_tokens("openai", "gpt-4o"), Some(16_384));
    assert_eq!(
        t.context_window("gemini", "gemini-2.5-pro"),
        Some(1_048_576)
    );
    assert_eq!(t.context_window("openai", "gpt-unknown-9000"), None);
}

#[test]
fn whisper_per_second() {
    // whisper-1: 1e-4 USD per second of input audio = 100 000 000 pico/s.
    let usage = CallUsage {
        input_audio_ms: 61_500,
        ..CallUsage::default()
    };
    let c = cost("openai", "whisper-1", "whisper-1", &usage);
    // 100 000 000 pico/s × 61 500 ms = 6 150 000 000 000 femto = 6 150 000 nano ($0.00615)
    assert_eq!(c.duration, nano(6_150_000));
    assert_eq!(c.total, nano(6_150_000));
}

#[test]
fn gpt_image_1_image_tokens() {
    // gpt-image-1: text input 5e-6, image input 1e-5, image output 4e-5 USD/token; no
    // `output_cost_per_token`, so every output token is billed as an image token.
    let usage = CallUsage {
        input_image_tokens: 1_000,
        ..CallUsage::tokens(1_050, 4_160)
    };
    let c = cost("openai", "gpt-image-1", "gpt-image-1", &usage);
    // text in: 50 × 5 000 000 = 250 000 000 pico = 250 000 nano
    assert_eq!(c.input, nano(250_000));
    // image in: 1000 × 10 000 000 = 10 000 000 000 pico = 10 000 000 nano
    // output: 4160 × 40 000 000 = 166 400 000 000 pico = 166 400 000 nano
    assert_eq!(c.output, nano(166_400_000));
    // total: 176 650 000 nano = $0.17665
    assert_eq!(c.total, nano(176_650_000));
    // Reported as image tokens, the output lands in `images`; the total is the same.
    let c = cost(
        "openai",
        "gpt-image-1",
        "gpt-image-1",
        &CallUsage {
            output_image_tokens: 4_160,
            ..usage
        },
    );
    assert_eq!(c.images, nano(176_400_000));
    assert_eq!(c.total, nano(176_650_000));
}

#[test]
fn summing_a_million_costs_does_not_drift() {
    // One call of 1000 + 500 tokens on gpt-4o: 7 500 000 nano ($0.0075).
    let call = table()
        .cost_of("openai", "gpt-4o", &CallUsage::tokens(1_000, 500))
        .unwrap()
        .total;
    assert_eq!(call, nano(7_500_000));
    let total: Money = std::iter::repeat_n(call, 1_000_000).sum();
    // Exactly $7500; the same sum in f64 is 7499.999999906929.
    assert_eq!(total, nano(7_500_000_000_000));
    assert_eq!(total.to_string(), "7500");

    // One million tokens at gpt-4o-mini's 1.5e-7 USD/token, one token at a time in the
    // fine unit, equals the million-token call: 1 000 000 × 150 000 pico = $0.15 exactly.
    let per_token = table()
        .lookup("openai", "gpt-4o-mini")
        .unwrap()
        .rates
        .input_per_token
        .unwrap()
        .pico_usd();
    let summed: u64 = std::iter::repeat_n(per_token, 1_000_000).sum();
    assert_eq!(summed, 150_000_000_000);
    let c = table()
        .cost_of("openai", "gpt-4o-mini", &CallUsage::tokens(1_000_000, 0))
        .unwrap();
    assert_eq!(c.total, nano(150_000_000));
    assert_eq!(c.total.nano_usd() * 1_000, summed as i64);
}

#[test]
fn rounds_half_up_once_per_call() {
    // 1 pico-USD per token: 499 tokens = 0.499 nano → 0; 500 = 0.5 nano → 1.
    let price = ModelPrice::per_token(UnitPrice::from_pico_usd(1), UnitPrice::from_pico_usd(1));
    assert_eq!(price.cost(&CallUsage::tokens(499, 0)).total, nano(0));
    assert_eq!(price.cost(&CallUsage::tokens(500, 0)).total, nano(1));
    // Components 0.3 + 0.3 nano round to 0 each, the total once: 0.6 → 1.
    let c = price.cost(&CallUsage::tokens(300, 300));
    assert_eq!((c.input, c.output, c.total), (nano(0), nano(0), nano(1)));
}

#[test]
fn overlapping_counts_never_bill_a_token_twice() {
    // cached + cache writes > prompt, reasoning > completion: clamped.
    let price = table().lookup("anthropic", "claude-sonnet-4-5").unwrap();
    let usage = CallUsage {
        cached_tokens: 800,
        cache_creation_tokens: 800,
        reasoning_tokens: 5_000,
        ..CallUsage::tokens(1_000, 100)
    };
    let c = price.cost(&usage);
    // read 800 × 300 000 = 240 000 nano; write 200 × 3 750 000 = 750 000 nano;
    // input 0; reasoning 100 × 15 000 000 = 1 500 000 nano; output 0.
    assert_eq!(c.cache_read, nano(240_000));
    assert_eq!(c.cache_creation, nano(750_000));
    assert_eq!(c.input, nano(0));
    assert_eq!(c.output, nano(0));
    assert_eq!(c.reasoning, nano(1_500_000));
    assert_eq!(c.total, nano(2_490_000));
}

#[test]
fn usage_conversion_reads_openai_fields() {
    let mut usage = Usage::new(1_000, 500);
    usage.prompt_tokens_details = Some(PromptTokensDetails {
        cached_tokens: Some(200),
        audio_tokens: Some(50),
        ..Default::default()
    });
    usage.completion_tokens_details = Some(CompletionTokensDetails {
        reasoning_tokens: Some(300),
        audio_tokens: Some(20),
        ..Default::default()
    });
    let call = CallUsage::from_usage(&usage);
    assert_eq!(call.prompt_tokens, 1_000);
    assert_eq!(call.completion_tokens, 500);
    assert_eq!(call.cached_tokens, 200);
    assert_eq!(call.input_audio_tokens, 50);
    assert_eq!(call.reasoning_tokens, 300);
    assert_eq!(call.output_audio_tokens, 20);
    assert_eq!(call.cache_creation_tokens, 0);
}

#[test]
fn overrides_and_custom_prices() {
    let mut t = PriceTable::embedded().clone();
    // A per-deployment price set in config (LiteLLM's field names, decimal numbers).
    let over: ModelPrice = serde_json::from_value(json!({
        "input_cost_per_token": 0.000001,
        "output_cost_per_token": "2e-6"
    }))
    .unwrap();
    t.merge_override("azure/prod-chat-eu", &over);
    // 1000 × 1 000 000 + 1000 × 2 000 000 = 3 000 000 000 pico = 3 000 000 nano
    let c = t
        .cost_of("azure", "prod-chat-eu", &CallUsage::tokens(1_000, 1_000))
        .unwrap();
    assert_eq!(c.total, nano(3_000_000));

    // Overriding only the output price of a known model keeps the rest.
    let over: ModelPrice = serde_json::from_value(json!({"output_cost_per_token": 2e-5})).unwrap();
    t.merge_override("gpt-4o", &over);
    let p = t.lookup("openai", "gpt-4o").unwrap();
    assert_eq!(
        p.rates.input_per_token,
        Some(UnitPrice::from_pico_usd(2_500_000))
    );
    assert_eq!(
        p.rates.output_per_token,
        Some(UnitPrice::from_pico_usd(20_000_000))
    );
    // The shared embedded table is untouched.
    assert_eq!(
        PriceTable::embedded()
            .lookup("openai", "gpt-4o")
            .unwrap()
            .rates
            .output_per_token,
        Some(UnitPrice::from_pico_usd(10_000_000))
    );
}

#[test]
fn cost_breakdown_serialises_money_as_integers() {
    let c = table()
        .cost_of("openai", "gpt-4o", &CallUsage::tokens(1_000, 500))
        .unwrap();
    let v = serde_json::to_value(c).unwrap();
    assert_eq!(v["total"], json!(7_500_000));
    assert_eq!(v["input"], json!(2_500_000));
}
