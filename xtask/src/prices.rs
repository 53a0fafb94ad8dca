//! `cargo xtask prices`: regenerate `crates/cost/data/prices.json` (and its
//! `ATTRIBUTION.md`) from LiteLLM's `model_prices_and_context_window.json`.
//!
//! The output is a subset of LiteLLM's format: the same entry keys and field names, only the
//! fields `llmux-cost` reads, entries without any price dropped, keys sorted, one entry per
//! line. Numbers are copied through `serde_json::Number`, which prints the shortest decimal
//! that round-trips, i.e. the source's own digits for every price in the file.
//!
//! Keep the field lists below in step with `crates/cost/src/price.rs` (a test there fails
//! when the generated file carries a field the crate does not read).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Per-unit prices, by LiteLLM field name. Each may also appear with an
/// `_above_<N>k_tokens` / `_above_<N>_tokens` suffix (a long-context tier).
const PRICE_FIELDS: &[&str] = &[
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
    "output_cost_per_reasoning_token",
    "input_cost_per_audio_token",
    "output_cost_per_audio_token",
    "input_cost_per_image_token",
    "output_cost_per_image_token",
    "input_cost_per_image",
    "output_cost_per_image",
    "input_cost_per_second",
    "output_cost_per_second",
    "input_cost_per_audio_per_second",
    "input_cost_per_video_per_second",
    "output_cost_per_video_per_second",
    "input_cost_per_character",
    "output_cost_per_character",
];

/// Prices allowed inside a `tiered_pricing` range entry.
const RANGE_TIER_FIELDS: &[&str] = &[
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
    "output_cost_per_reasoning_token",
];

/// Context-window limits (integers).
const LIMIT_FIELDS: &[&str] = &["max_input_tokens", "max_output_tokens", "max_tokens"];

/// Free-text fields.
const TEXT_FIELDS: &[&str] = &["litellm_provider", "mode"];

/// Capability flags (booleans).
const FLAG_FIELDS: &[&str] = &[
    "supports_function_calling",
    "supports_parallel_function_calling",
    "supports_tool_choice",
    "supports_vision",
    "supports_reasoning",
    "supports_prompt_caching",
    "supports_response_schema",
    "supports_pdf_input",
    "supports_audio_input",
    "supports_audio_output",
    "supports_web_search",
];

/// The LiteLLM entry that documents the format rather than pricing a model.
const SAMPLE_SPEC: &str = "sample_spec";

const USAGE: &str = "\
usage: cargo xtask prices [--source PATH] [--out DIR]

Regenerate the embedded price table of llmux-cost.

  --source PATH  LiteLLM's model_prices_and_context_window.json
                 (default: ../shared/data/model_prices_and_context_window.json,
                 relative to the workspace root)
  --out DIR      where to write prices.json and ATTRIBUTION.md
                 (default: crates/cost/data under the workspace root)";

/// Entry point of `cargo xtask prices [--source PATH] [--out DIR]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let root = workspace_root();
    let mut source = root.join("../shared/data/model_prices_and_context_window.json");
    let mut out_dir = root.join("crates/cost/data");
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--source" => source = PathBuf::from(it.next().ok_or("--source needs a path")?),
            "--out" => out_dir = PathBuf::from(it.next().ok_or("--out needs a directory")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }

    let text = std::fs::read_to_string(&source)
        .map_err(|e| format!("reading {}: {e}", source.display()))?;
    let parsed: Value =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", source.display()))?;
    let Value::Object(src) = parsed else {
        return Err(format!("{}: top level is not an object", source.display()));
    };
    let (table, stats) = filter_table(&src);
    let json = render(&table)?;

    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    let prices_path = out_dir.join("prices.json");
    std::fs::write(&prices_path, json)
        .map_err(|e| format!("writing {}: {e}", prices_path.display()))?;
    let attribution_path = out_dir.join("ATTRIBUTION.md");
    std::fs::write(&attribution_path, attribution(&stats, &today_utc()))
        .map_err(|e| format!("writing {}: {e}", attribution_path.display()))?;

    println!(
        "prices: kept {} of {} entries ({} without a price dropped, {} malformed fields skipped) -> {}",
        stats.kept,
        stats.source_entries,
        stats.dropped_unpriced,
        stats.skipped_fields,
        prices_path.display()
    );
    Ok(())
}

/// Counts reported by [`filter_table`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FilterStats {
    /// Entries in the source, `sample_spec` excluded.
    pub source_entries: usize,
    /// Entries written.
    pub kept: usize,
    /// Entries dropped because no price field survived.
    pub dropped_unpriced: usize,
    /// Known fields skipped because their value had the wrong type.
    pub skipped_fields: usize,
}

/// Keep only the fields llmux reads, and only entries with at least one price.
pub fn filter_table(src: &Map<String, Value>) -> (Map<String, Value>, FilterStats) {
    let mut stats = FilterStats::default();
    let mut out = Map::new();
    for (name, entry) in src {
        if name == SAMPLE_SPEC {
            continue;
        }
        stats.source_entries += 1;
        let Value::Object(fields) = entry else {
            stats.dropped_unpriced += 1;
            continue;
        };
        let mut kept = Map::new();
        let mut priced = false;
        for (field, value) in fields {
            let keep = if is_price_field(field) {
                let ok = value.is_number();
                priced |= ok;
                ok
            } else if field == "tiered_pricing" {
                if let Some(tiers) = filter_range_tiers(value) {
                    priced = true;
                    kept.insert(field.clone(), tiers);
                }
                continue;
            } else if LIMIT_FIELDS.contains(&field.as_str()) {
                value.is_u64() || value.as_f64().is_some_and(|f| f >= 0.0 && f.fract() == 0.0)
            } else if TEXT_FIELDS.contains(&field.as_str()) {
                value.is_string()
            } else if FLAG_FIELDS.contains(&field.as_str()) {
                value.is_boolean()
            } else {
                continue;
            };
            if keep {
                kept.insert(field.clone(), value.clone());
            } else {
                stats.skipped_fields += 1;
            }
        }
        if priced {
            out.insert(name.clone(), Value::Object(kept));
        } else {
            stats.dropped_unpriced += 1;
        }
    }
    stats.kept = out.len();
    (out, stats)
}

/// `name` is a per-unit price, possibly with a long-context tier suffix.
fn is_price_field(name: &str) -> bool {
    if PRICE_FIELDS.contains(&name) {
        return true;
    }
    let Some((base, rest)) = name.rsplit_once("_above_") else {
        return false;
    };
    PRICE_FIELDS.contains(&base) && parse_threshold(rest).is_some()
}

/// `200k_tokens` → 200000, `128_tokens` → 128.
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

/// Keep the token-range tiers of `tiered_pricing` (dropping e.g. search `max_results_range`
/// tiers) with only their price fields; `None` when nothing is left.
fn filter_range_tiers(value: &Value) -> Option<Value> {
    let tiers = value.as_array()?;
    let mut out = Vec::new();
    for tier in tiers {
        let Some(tier) = tier.as_object() else {
            continue;
        };
        let Some(range) = tier.get("range").filter(|r| {
            r.as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_number))
        }) else {
            continue;
        };
        let mut kept = Map::new();
        kept.insert("range".to_owned(), range.clone());
        for field in RANGE_TIER_FIELDS {
            if let Some(v) = tier.get(*field).filter(|v| v.is_number()) {
                kept.insert((*field).to_owned(), v.clone());
            }
        }
        if kept.contains_key("input_cost_per_token") {
            out.push(Value::Object(kept));
        }
    }
    (!out.is_empty()).then_some(Value::Array(out))
}

/// Sorted keys (serde_json's `Map` is a `BTreeMap`), one entry per line, no other whitespace.
fn render(table: &Map<String, Value>) -> Result<String, String> {
    let mut s = String::with_capacity(table.len() * 300);
    s.push('{');
    for (i, (name, entry)) in table.iter().enumerate() {
        s.push_str(if i == 0 { "\n" } else { ",\n" });
        s.push_str(&serde_json::to_string(name).map_err(|e| e.to_string())?);
        s.push(':');
        s.push_str(&serde_json::to_string(entry).map_err(|e| e.to_string())?);
    }
    s.push_str("\n}\n");
    Ok(s)
}

fn attribution(stats: &FilterStats, date: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "# Price table attribution

`prices.json` in this directory is derived from `model_prices_and_context_window.json` of
[BerriAI/litellm](https://github.com/BerriAI/litellm), which is MIT licensed (notice below).

- generated: {date} (UTC) by `cargo xtask prices`
- entries: {kept} (of {source} in the source; {dropped} without any price dropped; the
  `sample_spec` documentation entry skipped)
- fields kept: `litellm_provider`, `mode`, context-window limits, per-unit prices (with their
  `_above_<N>k_tokens` long-context tiers and token-range `tiered_pricing`), and a few
  `supports_*` flags; service-tier variants (`_batches`, `_priority`, `_flex`, ...) and all
  other fields are dropped.

Regenerate with `cargo xtask prices [--source PATH]`; see `docs/cost.md`.

## LiteLLM license

MIT License

Copyright (c) 2023 Berri AI

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the \"Software\"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
",
        kept = stats.kept,
        source = stats.source_entries,
        dropped = stats.dropped_unpriced,
    );
    s
}

/// The workspace root: xtask's manifest directory's parent.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Today's date (UTC) as `YYYY-MM-DD`; `SOURCE_DATE_EPOCH` overrides the clock for
/// reproducible output.
fn today_utc() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    let (y, m, d) = civil_from_days(secs / 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn fields() {
        assert!(is_price_field("input_cost_per_token_above_200k_tokens"));
        assert!(is_price_field(
            "cache_creation_input_token_cost_above_1hr_above_200k_tokens"
        ));
        assert!(is_price_field("cache_creation_input_token_cost_above_1hr"));
        assert!(!is_price_field("input_cost_per_token_batches"));
        assert!(!is_price_field(
            "input_cost_per_token_above_200k_tokens_priority"
        ));
        assert!(!is_price_field(
            "input_cost_per_video_per_second_above_15s_interval"
        ));
    }

    #[test]
    fn filters_entries() {
        let src: Value = serde_json::json!({
            "sample_spec": {"input_cost_per_token": 0.0, "max_input_tokens": "docs"},
            "a": {"input_cost_per_token": 2.5e-6, "litellm_provider": "openai",
                  "supports_vision": true, "source": "x", "input_cost_per_token_batches": 1e-6},
            "b": {"litellm_provider": "openai", "max_input_tokens": 10},
            "c": {"tiered_pricing": [{"input_cost_per_query": 0.1, "max_results_range": [0, 10]}]},
        });
        let (out, stats) = filter_table(src.as_object().unwrap());
        assert_eq!(stats.source_entries, 3);
        assert_eq!(stats.kept, 1);
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"a":{"input_cost_per_token":2.5e-6,"litellm_provider":"openai","supports_vision":true}}"#
        );
    }
}
