//! `llmux spend`: where the money goes, in the terminal. A report by tag (feature), model,
//! model group, provider, key, team, user or day — any combination — read from the store's
//! daily aggregates (the same database `llmux keys` uses) or from a running gateway's
//! `GET /spend/report` (`--url`), printed as a table with a share-of-total column and a bar
//! per row, or as CSV or JSON; and `llmux spend whatif`, which re-prices the recorded token
//! counts of some calls at another model's prices from the embedded price table.
//!
//! Rendering works on the report's JSON shape (the API's), whichever source it came from.
//! This module formats; the figures come from `llmux-store` (or the gateway) and prices
//! from `llmux-cost`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use llmux_store::{
    Breakdown, BreakdownFilter, BreakdownQuery, Day, SpendDimension, SpendTotals, Store,
    UsageFilter, UsageProfileRow,
};
use serde_json::{Map, Value, json};

/// `llmux spend …`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = false)]
pub(crate) struct SpendArgs {
    #[command(subcommand)]
    command: Option<SpendCommand>,
    /// Group by (comma-separated): tag (or feature), model, model_group, provider, key,
    /// team, user, day.
    #[arg(long, default_value = "tag")]
    by: String,
    /// How far back: a duration (`7d`, `24h`, `2w`) counted back from now and rounded down
    /// to the start of that UTC day, or a day (`2025-01-31`). Reports are per UTC day.
    #[arg(long, default_value = "7d", global = true)]
    since: String,
    /// Last day (inclusive, `YYYY-MM-DD`; default today, UTC).
    #[arg(long, global = true)]
    until: Option<String>,
    /// Only the N most expensive groups.
    #[arg(long)]
    top: Option<u32>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    format: Format,
    /// Only calls with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only calls answered by this provider model.
    #[arg(long)]
    model: Option<String>,
    /// Only calls to this model group.
    #[arg(long, global = true)]
    model_group: Option<String>,
    /// Only this provider.
    #[arg(long)]
    provider: Option<String>,
    /// Only this team.
    #[arg(long, global = true)]
    team: Option<String>,
    /// Only this user.
    #[arg(long)]
    user: Option<String>,
    /// Only this key (key id; with `--url` also an alias or `sk-…` key).
    #[arg(long = "api-key", global = true)]
    api_key: Option<String>,
    /// Read a running gateway's `/spend/report` instead of the database.
    #[arg(long)]
    url: Option<String>,
    /// The gateway's master key (or an admin key), for `--url`.
    #[arg(long, env = "LLMUX_MASTER_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Database URL (default: as for `serve`).
    #[arg(
        long,
        env = "LLMUX_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
    /// Config file whose `settings.database_url` (or directory) picks the database.
    #[arg(long, short, env = "LLMUX_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum SpendCommand {
    /// What some calls would have cost at another model's prices, from their recorded
    /// token counts (cached input priced as cache reads where the model has that price).
    Whatif {
        /// Only calls with this tag (default: every call).
        #[arg(long)]
        tag: Option<String>,
        /// The model to price them at, e.g. `gpt-4o-mini` or `openai/gpt-4o-mini`.
        #[arg(long)]
        model: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

/// Run `llmux spend …`.
pub(crate) fn run(args: SpendArgs) -> ExitCode {
    let rt = match crate::runtime(Some(1)) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(run_async(args)) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_async(args: SpendArgs) -> Result<String, String> {
    let (from, to) = range(&args.since, args.until.as_deref(), llmux_store::now_ms())?;
    if let Some(url) = &args.url {
        if args.command.is_some() {
            return Err(
                "`spend whatif` reads the database (it needs per-call token counts): \
                 drop --url"
                    .into(),
            );
        }
        return report_from_gateway(&args, url, from, to).await;
    }
    let cfg = crate::load(args.config.as_ref())?;
    let db = crate::database(args.database_url.clone(), &cfg, args.config.as_deref());
    let store = Store::connect(&db.url)
        .await
        .map_err(|e| format!("could not open the database: {e}"))?;
    let out = match &args.command {
        None => report(&store, &args, from, to).await,
        Some(SpendCommand::Whatif { tag, model }) => {
            let mut f = UsageFilter::new(from, to);
            f.tag.clone_from(tag);
            f.model_group.clone_from(&args.model_group);
            f.team_id.clone_from(&args.team);
            f.key_id.clone_from(&args.api_key);
            whatif(&store, &f, model, args.format).await
        }
    };
    store.close().await;
    out
}

/// The days a `--since`/`--until` pair covers.
fn range(since: &str, until: Option<&str>, now_ms: i64) -> Result<(Day, Day), String> {
    let to = match until {
        Some(d) => d.parse::<Day>().map_err(|e| format!("--until: {e}"))?,
        None => Day::from_unix_ms(now_ms),
    };
    let from = if let Ok(day) = since.parse::<Day>() {
        day
    } else {
        let d = llmux_store::parse_duration(since).map_err(|_| {
            format!(
                "--since: expected a duration (7d, 24h, 2w) or a day (YYYY-MM-DD), got '{since}'"
            )
        })?;
        let span = d.after(now_ms) - now_ms;
        Day::from_unix_ms(now_ms.saturating_sub(span))
    };
    if from > to {
        return Err(format!("--since ({from}) is after --until ({to})"));
    }
    Ok((from, to))
}

fn query(args: &SpendArgs, from: Day, to: Day) -> Result<BreakdownQuery, String> {
    let dims = SpendDimension::parse_list(&args.by).map_err(|e| format!("--by: {e}"))?;
    let mut q = BreakdownQuery::new(dims, from, to);
    q.limit = args.top;
    q.filter = BreakdownFilter {
        tag: args.tag.clone(),
        model: args.model.clone(),
        model_group: args.model_group.clone(),
        provider: args.provider.clone(),
        key_id: args.api_key.clone(),
        team_id: args.team.clone(),
        user_id: args.user.clone(),
    };
    Ok(q)
}

/// The report from the store, rendered.
async fn report(store: &Store, args: &SpendArgs, from: Day, to: Day) -> Result<String, String> {
    let q = query(args, from, to)?;
    let b = store.spend_breakdown(&q).await.map_err(|e| e.to_string())?;
    let v = report_json(&q, &b);
    Ok(match args.format {
        Format::Json => pretty(&v),
        Format::Csv => render_csv(&v),
        Format::Table => render_table(&v),
    })
}

/// The report from a gateway's `/spend/report`, rendered (CSV as the gateway wrote it).
async fn report_from_gateway(
    args: &SpendArgs,
    url: &str,
    from: Day,
    to: Day,
) -> Result<String, String> {
    let mut params: Vec<(&str, String)> = vec![
        ("group_by", args.by.clone()),
        ("from", from.to_string()),
        ("to", to.to_string()),
    ];
    for (name, v) in [
        ("tag", &args.tag),
        ("model", &args.model),
        ("model_group", &args.model_group),
        ("provider", &args.provider),
        ("key", &args.api_key),
        ("team", &args.team),
        ("user", &args.user),
    ] {
        if let Some(v) = v {
            params.push((name, v.clone()));
        }
    }
    if let Some(n) = args.top {
        params.push(("limit", n.to_string()));
    }
    if args.format == Format::Csv {
        params.push(("format", "csv".into()));
    }
    let endpoint = format!("{}/spend/report", url.trim_end_matches('/'));
    let mut rq = reqwest::Client::new()
        .get(&endpoint)
        .query(&params)
        .timeout(std::time::Duration::from_secs(60));
    if let Some(k) = &args.key {
        rq = rq.bearer_auth(k);
    }
    let resp = rq
        .send()
        .await
        .map_err(|e| format!("could not reach {endpoint}: {}", e.without_url()))?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| format!("reading the report: {}", e.without_url()))?;
    if !status.is_success() {
        let why = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        return Err(format!("the gateway answered {status}: {why}"));
    }
    if args.format == Format::Csv {
        return Ok(body);
    }
    let v: Value = serde_json::from_str(&body)
        .map_err(|e| format!("the gateway's report is not JSON: {e}"))?;
    Ok(match args.format {
        Format::Json => pretty(&v),
        _ => render_table(&v),
    })
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

// ------------------------------------------------------------------ shaping

/// The figures of a group, as `/spend/report` names them (and in its CSV column order).
const FIGURES: [&str; 15] = [
    "spend",
    "spend_nano",
    "share",
    "calls",
    "errors",
    "error_rate",
    "unpriced_calls",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "total_tokens",
    "avg_latency_ms",
    "p95_latency_ms",
];

fn round(v: f64, scale: f64) -> f64 {
    (v * scale).round() / scale
}

fn figures(t: &SpendTotals, total: &SpendTotals, out: &mut Map<String, Value>) {
    let values = [
        json!(t.spend_nano as f64 / 1e9),
        json!(t.spend_nano),
        json!(t.share_of(total).map(|s| round(s, 1e6))),
        json!(t.calls),
        json!(t.errors),
        json!(round(t.error_rate(), 1e6)),
        json!(t.unpriced_calls),
        json!(t.prompt_tokens),
        json!(t.completion_tokens),
        json!(t.cached_tokens),
        json!(t.cache_creation_tokens),
        json!(t.reasoning_tokens),
        json!(t.prompt_tokens.saturating_add(t.completion_tokens)),
        json!(t.avg_latency_ms().map(|v| round(v, 10.0))),
        json!(t.latency_quantile_ms(0.95).map(|v| round(v, 10.0))),
    ];
    for (k, v) in FIGURES.iter().zip(values) {
        out.insert((*k).to_owned(), v);
    }
}

/// A store report in `/spend/report`'s JSON shape.
fn report_json(q: &BreakdownQuery, b: &Breakdown) -> Value {
    let mut total = Map::new();
    figures(&b.total, &b.total, &mut total);
    let data: Vec<Value> = b
        .rows
        .iter()
        .map(|r| {
            let mut m = Map::new();
            for (d, v) in b.dimensions.iter().zip(&r.values) {
                m.insert(d.as_str().to_owned(), json!(v));
            }
            if b.dimensions.contains(&SpendDimension::Key) {
                m.insert("key_alias".into(), json!(r.key_alias));
            }
            figures(&r.totals, &b.total, &mut m);
            Value::Object(m)
        })
        .collect();
    json!({
        "group_by": b.dimensions.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "from": q.from.to_string(),
        "to": q.to.to_string(),
        "currency": "USD",
        "total": total,
        "data": data,
    })
}

fn group_by(v: &Value) -> Vec<String> {
    v["group_by"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Exact decimal USD from nano-USD.
fn usd_text(nano: i64) -> String {
    let sign = if nano < 0 { "-" } else { "" };
    let n = nano.unsigned_abs();
    format!("{sign}{}.{:09}", n / 1_000_000_000, n % 1_000_000_000)
}

fn csv_cell(out: &mut String, text: &str) {
    let guarded;
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        guarded = format!("'{text}");
        guarded.as_str()
    } else {
        text
    };
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// The report as CSV, in the gateway's column order.
fn render_csv(v: &Value) -> String {
    let dims = group_by(v);
    let with_alias = dims.iter().any(|d| d == "key");
    let mut header: Vec<&str> = dims.iter().map(String::as_str).collect();
    if with_alias {
        header.push("key_alias");
    }
    header.extend(FIGURES);
    let mut out = header.join(",");
    out.push_str("\r\n");
    for row in v["data"].as_array().into_iter().flatten() {
        let mut cells = Vec::with_capacity(header.len());
        for (i, col) in header.iter().enumerate() {
            let mut c = String::new();
            if i < dims.len() || (with_alias && i == dims.len()) {
                csv_cell(&mut c, &text_of(&row[*col]));
            } else if *col == "spend" {
                c = usd_text(row["spend_nano"].as_i64().unwrap_or(0));
            } else {
                c = text_of(&row[*col]);
            }
            cells.push(c);
        }
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// `1234567` → `1.2M`.
fn compact(n: i64) -> String {
    let a = n.unsigned_abs() as f64;
    let (v, unit) = if a >= 1e9 {
        (n as f64 / 1e9, "G")
    } else if a >= 1e6 {
        (n as f64 / 1e6, "M")
    } else if a >= 1e4 {
        (n as f64 / 1e3, "k")
    } else {
        return n.to_string();
    };
    format!("{v:.1}{unit}")
}

/// USD for a table: 2 decimals from $100, else 4, else 6.
fn dollars(nano: i64) -> String {
    let usd = nano as f64 / 1e9;
    if usd.abs() >= 100.0 {
        format!("${usd:.2}")
    } else if usd.abs() >= 1.0 {
        format!("${usd:.4}")
    } else {
        format!("${usd:.6}")
    }
}

const BAR_WIDTH: usize = 20;

/// A horizontal bar `share` (0..=1) of [`BAR_WIDTH`] cells, in eighths.
fn bar(share: f64) -> String {
    let eighths = (share.clamp(0.0, 1.0) * (BAR_WIDTH * 8) as f64).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    const PARTIAL: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    s.push_str(PARTIAL[eighths % 8]);
    s
}

/// The report as a terminal table: a title line, then one row per group with its spend,
/// share of the total (with a bar), calls, error rate, tokens and latency.
fn render_table(v: &Value) -> String {
    let dims = group_by(v);
    let total = &v["total"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Spend by {} from {} to {} (UTC days): {} over {} calls",
        dims.join(", "),
        text_of(&v["from"]),
        text_of(&v["to"]),
        dollars(total["spend_nano"].as_i64().unwrap_or(0)),
        total["calls"].as_i64().unwrap_or(0),
    );
    let rows: Vec<&Value> = v["data"].as_array().into_iter().flatten().collect();
    if rows.is_empty() {
        out.push_str("No calls in this range.\n");
        return out;
    }
    let mut header: Vec<String> = dims.iter().map(|d| d.to_uppercase()).collect();
    header.extend(
        [
            "SPEND", "SHARE", "", "CALLS", "ERR%", "IN TOK", "CACHED", "OUT TOK", "AVG MS",
            "P95 MS",
        ]
        .map(str::to_owned),
    );
    let mut table: Vec<Vec<String>> = vec![header];
    for row in &rows {
        let mut cells: Vec<String> = dims
            .iter()
            .map(|d| {
                let value = text_of(&row[d.as_str()]);
                match (d.as_str(), row["key_alias"].as_str()) {
                    ("key", Some(alias)) => alias.to_owned(),
                    _ if value.is_empty() => "(none)".to_owned(),
                    _ => value,
                }
            })
            .collect();
        let share = row["share"].as_f64();
        let ms = |k: &str| {
            row[k]
                .as_f64()
                .map_or("-".to_owned(), |v| format!("{v:.0}"))
        };
        cells.extend([
            dollars(row["spend_nano"].as_i64().unwrap_or(0)),
            share.map_or("-".to_owned(), |s| format!("{:.1}%", s * 100.0)),
            bar(share.unwrap_or(0.0)),
            row["calls"].as_i64().unwrap_or(0).to_string(),
            format!("{:.1}", row["error_rate"].as_f64().unwrap_or(0.0) * 100.0),
            compact(row["prompt_tokens"].as_i64().unwrap_or(0)),
            compact(row["cached_tokens"].as_i64().unwrap_or(0)),
            compact(row["completion_tokens"].as_i64().unwrap_or(0)),
            ms("avg_latency_ms"),
            ms("p95_latency_ms"),
        ]);
        table.push(cells);
    }
    let n = table[0].len();
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    // Dimension columns and the bar are left-aligned; figures right-aligned.
    let bar_col = dims.len() + 2;
    for r in &table {
        let mut line = String::new();
        for (i, (cell, w)) in r.iter().zip(&widths).enumerate() {
            let pad = w - cell.chars().count();
            if i < dims.len() || i == bar_col {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if dims.iter().any(|d| d == "tag") {
        out.push_str(
            "A call with several tags counts under each: shares can add up to more than 100%.\n",
        );
    }
    out
}

// ------------------------------------------------------------------ what-if

/// Calls re-priced at another model.
#[derive(Debug, Clone, PartialEq)]
struct WhatIf {
    model: String,
    calls: i64,
    /// Recorded spend of those calls.
    actual_nano: i64,
    /// Calls recorded without a price (their actual cost is unknown, not zero).
    unpriced_calls: i64,
    /// At the other model's prices.
    whatif_nano: i64,
    prompt_tokens: i64,
    cached_tokens: i64,
    cache_creation_tokens: i64,
    completion_tokens: i64,
    reasoning_tokens: i64,
    /// Calls per provider model that answered them, most first.
    answered_by: Vec<(String, i64)>,
}

fn tokens(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Re-price `rows` at `price`: each distinct usage once, times its calls.
fn reprice(rows: &[UsageProfileRow], model: &str, price: &llmux_cost::ModelPrice) -> WhatIf {
    let mut w = WhatIf {
        model: model.to_owned(),
        calls: 0,
        actual_nano: 0,
        unpriced_calls: 0,
        whatif_nano: 0,
        prompt_tokens: 0,
        cached_tokens: 0,
        cache_creation_tokens: 0,
        completion_tokens: 0,
        reasoning_tokens: 0,
        answered_by: Vec::new(),
    };
    let mut by_model: std::collections::BTreeMap<String, i64> = Default::default();
    for r in rows {
        let usage = llmux_cost::CallUsage {
            prompt_tokens: tokens(r.prompt_tokens),
            completion_tokens: tokens(r.completion_tokens),
            cached_tokens: tokens(r.cached_tokens),
            cache_creation_tokens: tokens(r.cache_creation_tokens),
            reasoning_tokens: tokens(r.reasoning_tokens),
            is_embedding: r.operation == "embeddings",
            ..llmux_cost::CallUsage::default()
        };
        let each = price.cost(&usage).total.nano_usd();
        w.whatif_nano = w.whatif_nano.saturating_add(each.saturating_mul(r.calls));
        w.calls += r.calls;
        w.actual_nano = w.actual_nano.saturating_add(r.spend_nano);
        w.unpriced_calls += r.unpriced_calls;
        w.prompt_tokens += r.prompt_tokens * r.calls;
        w.cached_tokens += r.cached_tokens * r.calls;
        w.cache_creation_tokens += r.cache_creation_tokens * r.calls;
        w.completion_tokens += r.completion_tokens * r.calls;
        w.reasoning_tokens += r.reasoning_tokens * r.calls;
        *by_model
            .entry(
                r.provider_model
                    .clone()
                    .unwrap_or_else(|| "(unknown)".into()),
            )
            .or_default() += r.calls;
    }
    w.answered_by = by_model.into_iter().collect();
    w.answered_by
        .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    w
}

async fn whatif(
    store: &Store,
    filter: &UsageFilter,
    model: &str,
    format: Format,
) -> Result<String, String> {
    let table = llmux_cost::PriceTable::embedded();
    let (provider, name) = model.split_once('/').unwrap_or(("", model));
    let price = table
        .lookup(provider, name)
        .filter(|p| p.has_price())
        .ok_or_else(|| format!("no price known for '{model}' in the embedded price table"))?;
    let rows = store
        .usage_profile(filter)
        .await
        .map_err(|e| e.to_string())?;
    let w = reprice(&rows, model, price);
    Ok(match format {
        Format::Json => pretty(&whatif_json(&w, filter)),
        Format::Csv => whatif_csv(&w),
        Format::Table => whatif_text(&w, filter),
    })
}

fn scope(f: &UsageFilter) -> String {
    let mut s = match f.tag.as_deref() {
        Some("") => "untagged calls".to_owned(),
        Some(t) => format!("calls tagged '{t}'"),
        None => "calls".to_owned(),
    };
    if let Some(g) = &f.model_group {
        let _ = write!(s, " to '{g}'");
    }
    let _ = write!(s, " from {} to {}", f.from, f.to);
    s
}

fn whatif_json(w: &WhatIf, f: &UsageFilter) -> Value {
    json!({
        "tag": f.tag,
        "model_group": f.model_group,
        "from": f.from.to_string(),
        "to": f.to.to_string(),
        "model": w.model,
        "calls": w.calls,
        "unpriced_calls": w.unpriced_calls,
        "actual_spend": w.actual_nano as f64 / 1e9,
        "actual_spend_nano": w.actual_nano,
        "whatif_spend": w.whatif_nano as f64 / 1e9,
        "whatif_spend_nano": w.whatif_nano,
        "difference_nano": w.whatif_nano - w.actual_nano,
        "prompt_tokens": w.prompt_tokens,
        "cached_tokens": w.cached_tokens,
        "cache_creation_tokens": w.cache_creation_tokens,
        "completion_tokens": w.completion_tokens,
        "reasoning_tokens": w.reasoning_tokens,
        "answered_by": w.answered_by.iter().map(|(m, n)| json!({"model": m, "calls": n})).collect::<Vec<_>>(),
    })
}

fn whatif_csv(w: &WhatIf) -> String {
    format!(
        "model,calls,unpriced_calls,actual_spend,whatif_spend,difference\r\n{},{},{},{},{},{}\r\n",
        {
            let mut c = String::new();
            csv_cell(&mut c, &w.model);
            c
        },
        w.calls,
        w.unpriced_calls,
        usd_text(w.actual_nano),
        usd_text(w.whatif_nano),
        usd_text(w.whatif_nano - w.actual_nano),
    )
}

fn whatif_text(w: &WhatIf, f: &UsageFilter) -> String {
    let mut out = String::new();
    if w.calls == 0 {
        let _ = writeln!(out, "No {} in the spend log.", scope(f));
        return out;
    }
    let answered: Vec<String> = w
        .answered_by
        .iter()
        .take(3)
        .map(|(m, n)| format!("{m}: {n}"))
        .collect();
    let more = if w.answered_by.len() > 3 { ", …" } else { "" };
    let _ = writeln!(out, "{} {} re-priced at {}:", w.calls, scope(f), w.model);
    let _ = writeln!(
        out,
        "  actual   {:>14}   ({}{more})",
        dollars(w.actual_nano),
        answered.join(", ")
    );
    let _ = writeln!(out, "  what-if  {:>14}", dollars(w.whatif_nano));
    let diff = w.whatif_nano - w.actual_nano;
    let pct = if w.actual_nano > 0 {
        format!(" ({:+.1}%)", diff as f64 * 100.0 / w.actual_nano as f64)
    } else {
        String::new()
    };
    let sign = if diff < 0 { "-" } else { "+" };
    let _ = writeln!(
        out,
        "  change   {:>14}{pct}",
        format!("{sign}{}", dollars(diff.abs()))
    );
    let _ = writeln!(
        out,
        "  tokens   {} input ({} cached, {} cache writes), {} output ({} reasoning)",
        compact(w.prompt_tokens),
        compact(w.cached_tokens),
        compact(w.cache_creation_tokens),
        compact(w.completion_tokens),
        compact(w.reasoning_tokens),
    );
    if w.unpriced_calls > 0 {
        let _ = writeln!(
            out,
            "  note: {} of these calls had no known price when made; the actual figure leaves them out.",
            w.unpriced_calls
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use llmux_core::CallRecord;

    use super::*;

    const DAY0: u64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z

    fn call(
        i: u64,
        tags: &[&str],
        model: &str,
        // Input, of which cached, output, of which reasoning.
        (prompt, cached, out, reasoning): (u64, u64, u64, u64),
        cost: Option<i64>,
    ) -> Arc<CallRecord> {
        Arc::new(CallRecord {
            request_id: format!("cli-{i}"),
            started_at_ms: DAY0 + i * 3_600_000,
            operation: "chat".into(),
            key: Some(
                if i.is_multiple_of(2) {
                    "key_a"
                } else {
                    "key_b"
                }
                .into(),
            ),
            model_group: "main".into(),
            provider: Some("openai".into()),
            provider_model: Some(model.into()),
            prompt_tokens: prompt,
            cached_tokens: cached,
            completion_tokens: out,
            reasoning_tokens: reasoning,
            cost_nano_usd: cost,
            latency_us: 200_000 + i * 1000,
            status: 200,
            attempts: 1,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..CallRecord::default()
        })
    }

    async fn store_with_calls() -> (Store, Vec<Arc<CallRecord>>, std::path::PathBuf) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "llmux-spend-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.join("llmux.db").display()))
            .await
            .unwrap();
        let recs = vec![
            call(
                0,
                &["summarize"],
                "gpt-4o",
                (10_000, 4_000, 500, 0),
                Some(30_000_000),
            ),
            call(
                1,
                &["summarize"],
                "gpt-4o",
                (20_000, 0, 1_000, 0),
                Some(60_000_000),
            ),
            call(
                2,
                &["chat"],
                "gpt-4o-mini",
                (1_000, 0, 100, 0),
                Some(210_000),
            ),
            call(
                3,
                &["summarize", "eu"],
                "o3-mini",
                (5_000, 1_000, 2_000, 1_500),
                Some(12_000_000),
            ),
            call(4, &[], "gpt-4o", (100, 0, 10, 0), None),
        ];
        store.write_records(&recs).await.unwrap();
        (store, recs, dir)
    }

    fn args(by: &str, format: Format) -> SpendArgs {
        SpendArgs {
            command: None,
            by: by.into(),
            since: "2025-01-01".into(),
            until: Some("2025-01-01".into()),
            top: None,
            format,
            tag: None,
            model: None,
            model_group: None,
            provider: None,
            team: None,
            user: None,
            api_key: None,
            url: None,
            key: None,
            database_url: None,
            config: None,
        }
    }

    fn day() -> Day {
        "2025-01-01".parse().unwrap()
    }

    #[test]
    fn since_is_a_duration_back_from_now_or_a_day() {
        let now = 1_736_000_000_000; // 2025-01-04T14:13:20Z
        let (from, to) = range("7d", None, now).unwrap();
        assert_eq!(
            (from.to_string(), to.to_string()),
            ("2024-12-28".into(), "2025-01-04".into())
        );
        let (from, _) = range("24h", None, now).unwrap();
        assert_eq!(from.to_string(), "2025-01-03");
        let (from, to) = range("2025-01-02", Some("2025-01-03"), now).unwrap();
        assert_eq!(
            (from.to_string(), to.to_string()),
            ("2025-01-02".into(), "2025-01-03".into())
        );
        assert!(range("soon", None, now).is_err());
        assert!(range("2025-01-05", Some("2025-01-03"), now).is_err());
    }

    #[tokio::test]
    async fn the_table_has_shares_bars_and_rows_by_spend() {
        let (store, _recs, dir) = store_with_calls().await;
        let out = report(&store, &args("tag", Format::Table), day(), day())
            .await
            .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        // Total: 102.21 m-USD over 5 calls.
        assert_eq!(
            lines[0],
            "Spend by tag from 2025-01-01 to 2025-01-01 (UTC days): $0.102210 over 5 calls"
        );
        assert!(lines[1].starts_with("TAG "), "{out}");
        // summarize: 102 000 000 of 102 210 000 nano-USD = 99.8%, a full bar less a sliver.
        assert!(lines[2].starts_with("summarize "), "{out}");
        assert!(lines[2].contains("$0.102000"), "{out}");
        assert!(lines[2].contains("99.8%"), "{out}");
        assert!(lines[2].contains(&"█".repeat(19)), "{out}");
        assert!(lines[3].starts_with("eu "), "{out}");
        assert!(lines[3].contains("11.7%"), "{out}");
        assert!(lines[4].starts_with("chat "), "{out}");
        assert!(lines[5].starts_with("(none) "), "{out}");
        assert!(lines[6].contains("more than 100%"), "{out}");
        assert_eq!(bar(0.5), "█".repeat(10));
        assert_eq!(bar(1.0 / 160.0), "▏");
        assert_eq!(bar(0.0), "");
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn top_csv_and_json_carry_the_same_figures() {
        let (store, recs, dir) = store_with_calls().await;
        let mut a = args("model,key", Format::Csv);
        a.top = Some(2);
        let csv = report(&store, &a, day(), day()).await.unwrap();
        let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[0].starts_with("model,key,key_alias,spend,spend_nano,share,calls"));
        // gpt-4o / key_b (call 1: 60 000 000) then gpt-4o / key_a (calls 0 and 4).
        assert!(
            lines[1].starts_with("gpt-4o,key_b,,0.060000000,60000000,"),
            "{csv}"
        );
        assert!(
            lines[2].starts_with("gpt-4o,key_a,,0.030000000,30000000,"),
            "{csv}"
        );

        let a = args("model", Format::Json);
        let v: Value =
            serde_json::from_str(&report(&store, &a, day(), day()).await.unwrap()).unwrap();
        assert_eq!(v["group_by"], json!(["model"]));
        assert_eq!(v["total"]["calls"], json!(recs.len()));
        let gpt4o = &v["data"][0];
        assert_eq!(gpt4o["model"], json!("gpt-4o"));
        assert_eq!(gpt4o["spend_nano"], json!(90_000_000));
        assert_eq!(gpt4o["calls"], json!(3));
        assert_eq!(gpt4o["unpriced_calls"], json!(1));
        assert_eq!(gpt4o["cached_tokens"], json!(4_000));
        assert_eq!(gpt4o["prompt_tokens"], json!(30_100));
        let o3 = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["model"] == json!("o3-mini"))
            .unwrap();
        assert_eq!(o3["reasoning_tokens"], json!(1_500));
        // A bad --by is refused, naming the group.
        let e = report(&store, &args("colour", Format::Table), day(), day())
            .await
            .unwrap_err();
        assert!(e.contains("colour"), "{e}");
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn whatif_reprices_recorded_tokens_at_the_other_model() {
        let (store, recs, dir) = store_with_calls().await;
        let mut f = UsageFilter::new(day(), day());
        f.tag = Some("summarize".into());
        let table = llmux_cost::PriceTable::embedded();
        let mini = table
            .lookup("", "gpt-4o-mini")
            .expect("gpt-4o-mini is priced");
        // By hand: each summarize call at gpt-4o-mini's prices, cached input as cache reads.
        let mut want = 0i64;
        for r in recs
            .iter()
            .filter(|r| r.tags.iter().any(|t| t == "summarize"))
        {
            let u = llmux_cost::CallUsage {
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                cached_tokens: r.cached_tokens,
                reasoning_tokens: r.reasoning_tokens,
                ..llmux_cost::CallUsage::default()
            };
            want += mini.cost(&u).total.nano_usd();
        }
        assert!(want > 0);
        let rows = store.usage_profile(&f).await.unwrap();
        let w = reprice(&rows, "gpt-4o-mini", mini);
        assert_eq!(w.calls, 3);
        assert_eq!(w.actual_nano, 102_000_000);
        assert_eq!(w.whatif_nano, want);
        assert_eq!(
            (w.prompt_tokens, w.cached_tokens, w.reasoning_tokens),
            (35_000, 5_000, 1_500)
        );
        assert_eq!(
            w.answered_by,
            vec![("gpt-4o".to_owned(), 2), ("o3-mini".to_owned(), 1)]
        );
        // Cached input is cheaper than fresh input at gpt-4o-mini: the same calls without
        // cache hits would cost more.
        let uncached: Vec<UsageProfileRow> = rows
            .iter()
            .map(|r| UsageProfileRow {
                cached_tokens: 0,
                ..r.clone()
            })
            .collect();
        assert!(reprice(&uncached, "gpt-4o-mini", mini).whatif_nano > want);

        let text = whatif(&store, &f, "gpt-4o-mini", Format::Table)
            .await
            .unwrap();
        assert!(
            text.starts_with(
                "3 calls tagged 'summarize' from 2025-01-01 to 2025-01-01 re-priced at gpt-4o-mini:"
            ),
            "{text}"
        );
        assert!(text.contains("$0.102000"), "{text}");
        assert!(text.contains(&dollars(want)), "{text}");
        assert!(text.contains("(gpt-4o: 2, o3-mini: 1)"), "{text}");
        let v: Value = serde_json::from_str(
            &whatif(&store, &f, "openai/gpt-4o-mini", Format::Json)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(v["whatif_spend_nano"], json!(want));
        assert_eq!(v["difference_nano"], json!(want - 102_000_000));
        let e = whatif(&store, &f, "no-such-model-xyz", Format::Table)
            .await
            .unwrap_err();
        assert!(e.contains("no price known"), "{e}");
        f.tag = Some("nothing".into());
        let text = whatif(&store, &f, "gpt-4o-mini", Format::Table)
            .await
            .unwrap();
        assert!(text.starts_with("No calls tagged 'nothing'"), "{text}");
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
