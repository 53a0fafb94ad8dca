//! Spend visibility: `GET /spend/report` (spend, calls, tokens, error rate and latency per
//! tag/feature, model, model group, provider, key, team, user or day, and any combination,
//! as JSON or CSV), and the attribution rule that decides which tags a call is counted under
//! ([`attributed_tags`]).
//!
//! The report is read from the store's daily aggregates ([`Store::spend_breakdown`]), never
//! from the spend log, so it costs the same over a day or a year. It is an admin endpoint:
//! the master key, or a virtual key whose metadata says `{"role": "admin"}`.
//!
//! Must not: parse inbound call bodies (the request's own tags come from
//! `metering::tags`), or decide admission.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use llmux_core::{Error, ErrorKind};
use llmux_store::{
    Breakdown, BreakdownFilter, BreakdownQuery, BreakdownRow, Day, KeyRecord, SpendDimension,
    SpendTotals, Store, StoreError,
};
use serde_json::{Map, Value, json};

use crate::access::Principal;
use crate::error::ApiError;
use crate::handlers::{Shared, authenticate, json_response, request_id, with_id};

/// The report routes.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/spend/report", get(spend_report))
}

// ------------------------------------------------------------- attribution

/// The tags a call is counted under, by precedence: the request's own tags (already checked
/// by `metering::tags`), then the key's default tags (`metadata.tags`), then the model
/// group's tags. An ordered union: each tag once, at its first (highest-precedence) place;
/// at most `MAX_TAGS` (32), so when the sources together carry more, the model group's go
/// first, then the key's — a request's own tags are never dropped. Default tags that are
/// not valid tags are skipped (the store refuses them on keys; this is the last guard).
///
/// The access phase calls it once the key is known (`handlers::admit`); the model group's
/// tags join when the call is metered (`ModelTable::group_tags`).
pub(crate) fn attributed_tags(
    request: &[String],
    key: Option<&KeyRecord>,
    model_group: &[String],
) -> Vec<String> {
    let key_tags = key.map(|k| llmux_store::key_default_tags(&k.metadata));
    let mut out: Vec<String> = Vec::with_capacity(request.len());
    for source in [
        request,
        key_tags.as_deref().unwrap_or_default(),
        model_group,
    ] {
        llmux_core::tags::merge_tags(&mut out, source);
    }
    out
}

// ------------------------------------------------------------------ report

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Query parameters `/spend/report` knows; anything else is a 400 (a typo would otherwise
/// silently widen the report).
const KNOWN_PARAMS: [&str; 20] = [
    "group_by",
    "from",
    "to",
    "start_date",
    "end_date",
    "format",
    "limit",
    "tag",
    "feature",
    "model",
    "model_group",
    "provider",
    "key",
    "api_key",
    "team",
    "team_id",
    "user",
    "user_id",
    "key_alias",
    "currency",
];

/// Longest range one report may cover.
const MAX_DAYS: i64 = 3_660;

/// What the report was asked for.
#[derive(Debug)]
struct ReportRequest {
    query: BreakdownQuery,
    csv: bool,
    /// A key named by something other than its id (`sk-…`, hash or alias), resolved later.
    key: Option<String>,
}

fn bad(param: &'static str, message: impl Into<String>) -> Error {
    Error::bad_request(message.into()).with_param(param)
}

fn parse_day(name: &'static str, v: &str) -> Result<Day, Error> {
    v.parse::<Day>().map_err(|_| {
        bad(
            name,
            format!("'{name}' must be a date, YYYY-MM-DD (got '{v}')"),
        )
    })
}

/// Check and read the query string.
fn parse_request(pairs: &[(String, String)], today: Day) -> Result<ReportRequest, Error> {
    let mut q: HashMap<&str, &str> = HashMap::new();
    for (k, v) in pairs {
        let Some(known) = KNOWN_PARAMS.iter().find(|p| **p == k.as_str()) else {
            return Err(Error::bad_request(format!(
                "unknown parameter '{k}': expected group_by, from, to, format, limit, tag, \
                 model, model_group, provider, key, team or user"
            )));
        };
        if q.insert(known, v.as_str()).is_some() {
            return Err(bad(known, format!("'{known}' is given more than once")));
        }
    }
    let one_of = |a: &'static str, b: &'static str| -> Result<Option<String>, Error> {
        match (q.get(a), q.get(b)) {
            (Some(_), Some(_)) => Err(bad(a, format!("give '{a}' or '{b}', not both"))),
            (x, y) => Ok(x.or(y).map(|v| (*v).to_owned())),
        }
    };
    let dimensions = SpendDimension::parse_list(q.get("group_by").copied().unwrap_or("tag"))
        .map_err(|e| bad("group_by", store_message(e)))?;
    let to = match one_of("to", "end_date")? {
        Some(v) => parse_day("to", &v)?,
        None => today,
    };
    let from = match one_of("from", "start_date")? {
        Some(v) => parse_day("from", &v)?,
        None => to.plus_days(-29),
    };
    if from > to {
        return Err(bad("from", format!("'from' ({from}) is after 'to' ({to})")));
    }
    if to.days_since_epoch() - from.days_since_epoch() >= MAX_DAYS {
        return Err(bad(
            "from",
            format!("a report covers at most {MAX_DAYS} days"),
        ));
    }
    let csv = match q.get("format").copied().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => {
            return Err(bad(
                "format",
                format!("unknown format '{other}': expected json or csv"),
            ));
        }
    };
    if let Some(c) = q.get("currency").filter(|c| !c.eq_ignore_ascii_case("usd")) {
        return Err(bad(
            "currency",
            format!("unknown currency '{c}': spend is in USD"),
        ));
    }
    let limit = q
        .get("limit")
        .map(|v| {
            v.parse::<u32>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or_else(|| bad("limit", "'limit' must be a number from 1 to 100000"))
        })
        .transpose()?;
    let key = match (one_of("key", "api_key")?, q.get("key_alias")) {
        (Some(_), Some(_)) => return Err(bad("key", "give 'key' or 'key_alias', not both")),
        (k, alias) => k.or_else(|| alias.map(|a| (*a).to_owned())),
    };
    let filter = BreakdownFilter {
        tag: one_of("tag", "feature")?,
        model: q.get("model").map(|v| (*v).to_owned()),
        model_group: q.get("model_group").map(|v| (*v).to_owned()),
        provider: q.get("provider").map(|v| (*v).to_owned()),
        key_id: None,
        team_id: one_of("team", "team_id")?,
        user_id: one_of("user", "user_id")?,
    };
    let mut query = BreakdownQuery::new(dimensions, from, to);
    query.filter = filter;
    query.limit = limit;
    Ok(ReportRequest { query, csv, key })
}

/// A store error's message, for a 400.
fn store_message(e: StoreError) -> String {
    match e {
        StoreError::Invalid(why) => why,
        other => other.to_string(),
    }
}

fn store_err(e: StoreError) -> Error {
    match e {
        StoreError::Invalid(why) => Error::bad_request(why),
        other => {
            tracing::error!(error = %other, "spend report: store error");
            Error::internal("The database failed; see the gateway's log.")
        }
    }
}

/// The key a report filter names: its id, the `sk-…` key, its SHA-256 hash, or its alias.
async fn resolve_key(store: &Store, r: &str) -> Result<String, Error> {
    let found = if r.starts_with(llmux_store::KEY_PREFIX) {
        store.lookup_key(r).await
    } else if r.len() == 64 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
        store.lookup_key_hash(&r.to_ascii_lowercase()).await
    } else {
        match store.get_key(r).await {
            Ok(None) => store.get_key_by_alias(r).await,
            other => other,
        }
    }
    .map_err(store_err)?;
    found.map(|k| k.key_id).ok_or_else(|| {
        Error::new(ErrorKind::NotFound, "No such key.")
            .with_param("key")
            .with_code("key_not_found")
    })
}

/// The store, for an admin caller.
async fn admin_store(shared: &Shared, headers: &HeaderMap) -> Result<Store, Error> {
    let st = shared.load();
    let principal = authenticate(&st, headers).await?;
    let Some(access) = st.access.clone() else {
        return Err(Error::new(
            ErrorKind::NotFound,
            "Spend reports need a database: set settings.database_url.",
        )
        .with_code("store_not_configured"));
    };
    match principal {
        Principal::Master => Ok(access.store.clone()),
        Principal::Key(e) if e.is_admin() => Ok(access.store.clone()),
        Principal::Open => Err(Error::new(
            ErrorKind::Permission,
            "The admin API is disabled until a master key is set (server.master_key or LLMUX_MASTER_KEY).",
        )
        .with_code("admin_disabled")),
        Principal::Key(_) => Err(Error::new(
            ErrorKind::Permission,
            "This key may not read spend reports: it needs the master key or a key with metadata {\"role\": \"admin\"}.",
        )
        .with_code("not_admin")),
    }
}

async fn spend_report(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    q: Params,
) -> Response {
    let id = request_id(&headers);
    let r = async {
        let store = admin_store(&shared, &headers).await?;
        let Query(pairs) =
            q.map_err(|e| Error::bad_request(format!("Invalid query string: {e}")))?;
        let mut req = parse_request(&pairs, Day::today())?;
        if let Some(k) = &req.key {
            req.query.filter.key_id = Some(resolve_key(&store, k).await?);
        }
        let report = store.spend_breakdown(&req.query).await.map_err(store_err)?;
        if req.csv {
            Ok(csv_response(&report))
        } else {
            json_response(&report_json(&req.query, &report))
        }
    }
    .await;
    with_id(r.unwrap_or_else(|e| ApiError(e).into_response()), id)
}

fn usd(nano: i64) -> f64 {
    nano as f64 / 1e9
}

/// Exact decimal USD from nano-USD (`1234567` → `0.001234567`).
fn usd_text(nano: i64) -> String {
    let sign = if nano < 0 { "-" } else { "" };
    let n = nano.unsigned_abs();
    format!("{sign}{}.{:09}", n / 1_000_000_000, n % 1_000_000_000)
}

/// Rounded to 0.1 ms.
fn ms(v: Option<f64>) -> Option<f64> {
    v.map(|v| (v * 10.0).round() / 10.0)
}

/// Rounded to six decimals.
fn ratio(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The figures of one group (or the total), in the order CSV columns use.
fn figures(t: &SpendTotals, total: &SpendTotals) -> Vec<(&'static str, Value)> {
    vec![
        ("spend", json!(usd(t.spend_nano))),
        ("spend_nano", json!(t.spend_nano)),
        ("share", json!(t.share_of(total).map(ratio))),
        ("calls", json!(t.calls)),
        ("errors", json!(t.errors)),
        ("error_rate", json!(ratio(t.error_rate()))),
        ("unpriced_calls", json!(t.unpriced_calls)),
        ("prompt_tokens", json!(t.prompt_tokens)),
        ("completion_tokens", json!(t.completion_tokens)),
        ("cached_tokens", json!(t.cached_tokens)),
        ("cache_creation_tokens", json!(t.cache_creation_tokens)),
        ("reasoning_tokens", json!(t.reasoning_tokens)),
        (
            "total_tokens",
            json!(t.prompt_tokens.saturating_add(t.completion_tokens)),
        ),
        ("avg_latency_ms", json!(ms(t.avg_latency_ms()))),
        ("p95_latency_ms", json!(ms(t.latency_quantile_ms(0.95)))),
    ]
}

fn row_json(dims: &[SpendDimension], row: &BreakdownRow, total: &SpendTotals) -> Value {
    let mut m = Map::new();
    for (d, v) in dims.iter().zip(&row.values) {
        m.insert(d.as_str().to_owned(), json!(v));
    }
    if dims.contains(&SpendDimension::Key) {
        m.insert("key_alias".into(), json!(row.key_alias));
    }
    for (k, v) in figures(&row.totals, total) {
        m.insert(k.to_owned(), v);
    }
    Value::Object(m)
}

fn report_json(q: &BreakdownQuery, r: &Breakdown) -> Value {
    let mut total = Map::new();
    for (k, v) in figures(&r.total, &r.total) {
        total.insert(k.to_owned(), v);
    }
    json!({
        "group_by": r.dimensions.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "from": q.from.to_string(),
        "to": q.to.to_string(),
        "currency": "USD",
        "total": total,
        "data": r.rows.iter().map(|row| row_json(&r.dimensions, row, &r.total)).collect::<Vec<_>>(),
    })
}

/// One CSV cell: quoted when it holds a comma, quote or line break; text a spreadsheet
/// would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a leading `'`.
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

/// The report as CSV: one header line, then one line per group; dimension columns first
/// (`key_alias` after them when grouping by key), then the figures; spend as exact decimal
/// USD; empty cells for missing values.
pub(crate) fn report_csv(r: &Breakdown) -> String {
    let with_alias = r.dimensions.contains(&SpendDimension::Key);
    let mut out = String::new();
    let mut header: Vec<&str> = r.dimensions.iter().map(|d| d.as_str()).collect();
    if with_alias {
        header.push("key_alias");
    }
    header.extend(figures(&r.total, &r.total).iter().map(|(k, _)| *k));
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for row in &r.rows {
        let mut cells: Vec<String> = Vec::with_capacity(header.len());
        let mut text = |v: Option<&str>| {
            let mut c = String::new();
            csv_cell(&mut c, v.unwrap_or(""));
            cells.push(c);
        };
        for v in &row.values {
            text(v.as_deref());
        }
        if with_alias {
            text(row.key_alias.as_deref());
        }
        for (k, v) in figures(&row.totals, &r.total) {
            cells.push(match (k, v) {
                ("spend", _) => usd_text(row.totals.spend_nano),
                (_, Value::Null) => String::new(),
                (_, v) => v.to_string(),
            });
        }
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn csv_response(r: &Breakdown) -> Response {
    let mut resp = report_csv(r).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"spend-report.csv\""),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmux_store::MAX_TAGS;

    fn csv_text(s: &str) -> String {
        let mut out = String::new();
        csv_cell(&mut out, s);
        out
    }

    fn pairs(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn today() -> Day {
        "2025-03-10".parse().unwrap()
    }

    fn key_with(meta: Value) -> KeyRecord {
        KeyRecord {
            key_id: "key_1".into(),
            key_hash: String::new(),
            key_prefix: String::new(),
            alias: None,
            user_id: None,
            team_id: None,
            limits: Default::default(),
            model_aliases: Default::default(),
            budget: Default::default(),
            metadata: serde_json::from_value(meta).unwrap(),
            expires_at_ms: None,
            blocked: false,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn request_tags_come_before_key_tags_before_model_group_tags() {
        let key = key_with(json!({"tags": ["team-a", "summarize", " shared "]}));
        let got = attributed_tags(
            &strings(&["summarize", "checkout"]),
            Some(&key),
            &strings(&["shared", "fast-tier"]),
        );
        assert_eq!(
            got,
            strings(&["summarize", "checkout", "team-a", "shared", "fast-tier"])
        );
        // No key, no model group tags: the request's own, unchanged.
        assert_eq!(
            attributed_tags(&strings(&["a", "b"]), None, &[]),
            strings(&["a", "b"])
        );
        // Only defaults.
        assert_eq!(
            attributed_tags(&[], Some(&key), &strings(&["g"])),
            strings(&["team-a", "summarize", "shared", "g"])
        );
        // Invalid default tags are skipped, not fatal.
        let odd = key_with(json!({"tags": ["ok", "", "x\ny", 7, "z".repeat(65)]}));
        assert_eq!(attributed_tags(&[], Some(&odd), &[]), strings(&["ok"]));
        let not_a_list = key_with(json!({"tags": "a,b"}));
        assert!(attributed_tags(&[], Some(&not_a_list), &[]).is_empty());
    }

    #[test]
    fn the_bound_drops_lower_precedence_tags_first() {
        let request: Vec<String> = (0..30).map(|i| format!("r{i}")).collect();
        let key = key_with(json!({"tags": ["k1", "k2", "k3"]}));
        let got = attributed_tags(&request, Some(&key), &strings(&["g1"]));
        assert_eq!(got.len(), MAX_TAGS);
        assert_eq!(&got[..30], &request[..]);
        assert_eq!(&got[30..], &strings(&["k1", "k2"])[..]);
        // A full request keeps every one of its tags.
        let full: Vec<String> = (0..MAX_TAGS).map(|i| format!("r{i}")).collect();
        assert_eq!(attributed_tags(&full, Some(&key), &strings(&["g"])), full);
    }

    #[test]
    fn tag_bounds_agree_with_the_request_parser() {
        assert_eq!(crate::metering::MAX_TAGS, llmux_store::MAX_TAGS);
        assert_eq!(crate::metering::MAX_TAG_LEN, llmux_store::MAX_TAG_LEN);
    }

    #[test]
    fn parameters_parse_with_defaults_and_aliases() {
        let r = parse_request(&pairs(&[]), today()).unwrap();
        assert_eq!(r.query.dimensions, vec![SpendDimension::Tag]);
        assert_eq!(r.query.to, today());
        assert_eq!(r.query.from.to_string(), "2025-02-09");
        assert!(!r.csv);
        let r = parse_request(
            &pairs(&[
                ("group_by", "feature,model"),
                ("start_date", "2025-01-01"),
                ("end_date", "2025-01-31"),
                ("format", "csv"),
                ("limit", "10"),
                ("feature", "summarize"),
                ("team_id", "t1"),
                ("key_alias", "checkout"),
            ]),
            today(),
        )
        .unwrap();
        assert_eq!(
            r.query.dimensions,
            vec![SpendDimension::Tag, SpendDimension::Model]
        );
        assert_eq!(
            (r.query.from.to_string(), r.query.to.to_string()),
            ("2025-01-01".into(), "2025-01-31".into())
        );
        assert!(r.csv);
        assert_eq!(r.query.limit, Some(10));
        assert_eq!(r.query.filter.tag.as_deref(), Some("summarize"));
        assert_eq!(r.query.filter.team_id.as_deref(), Some("t1"));
        assert_eq!(r.key.as_deref(), Some("checkout"));
    }

    #[test]
    fn bad_parameters_are_400s_naming_the_parameter() {
        for (q, param) in [
            (&[("group_by", "tag,colour")][..], Some("group_by")),
            (&[("group_by", "")][..], Some("group_by")),
            (&[("from", "2025-13-01")][..], Some("from")),
            (&[("to", "yesterday")][..], Some("to")),
            (
                &[("from", "2025-02-01"), ("to", "2025-01-01")][..],
                Some("from"),
            ),
            (
                &[("from", "2000-01-01"), ("to", "2025-01-01")][..],
                Some("from"),
            ),
            (&[("format", "xml")][..], Some("format")),
            (&[("limit", "0")][..], Some("limit")),
            (&[("limit", "ten")][..], Some("limit")),
            (&[("tag", "a"), ("feature", "b")][..], Some("tag")),
            (&[("tag", "a"), ("tag", "b")][..], Some("tag")),
            (&[("currency", "EUR")][..], Some("currency")),
            (&[("group-by", "tag")][..], None),
        ] {
            let e = parse_request(&pairs(q), today()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BadRequest, "{q:?}");
            assert_eq!(e.http_status(), 400);
            assert_eq!(e.param(), param, "{q:?}: {e:?}");
        }
    }

    fn sample() -> Breakdown {
        let mut a = SpendTotals {
            calls: 3,
            errors: 1,
            prompt_tokens: 300,
            completion_tokens: 30,
            cached_tokens: 100,
            spend_nano: 1_500_000_000,
            latency_sum_us: 3_000_000,
            latency_max_us: 1_500_000,
            ..SpendTotals::default()
        };
        a.latency_histogram[7] = 2; // (750 ms, 1 s]
        a.latency_histogram[8] = 1; // (1 s, 1.5 s]
        let mut b = SpendTotals {
            calls: 1,
            spend_nano: 500_000_001,
            latency_sum_us: 100_000,
            latency_max_us: 100_000,
            ..SpendTotals::default()
        };
        b.latency_histogram[2] = 1;
        let mut total = a;
        total.calls += b.calls;
        total.spend_nano += b.spend_nano;
        Breakdown {
            dimensions: vec![SpendDimension::Tag, SpendDimension::Key],
            rows: vec![
                BreakdownRow {
                    values: vec![Some("=sum(a,b)".into()), Some("key_1".into())],
                    key_alias: Some("check\"out".into()),
                    totals: a,
                },
                BreakdownRow {
                    values: vec![None, None],
                    key_alias: None,
                    totals: b,
                },
            ],
            total,
        }
    }

    #[test]
    fn csv_has_a_header_exact_money_and_escaped_cells() {
        let csv = report_csv(&sample());
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "tag,key,key_alias,spend,spend_nano,share,calls,errors,error_rate,unpriced_calls,\
             prompt_tokens,completion_tokens,cached_tokens,cache_creation_tokens,\
             reasoning_tokens,total_tokens,avg_latency_ms,p95_latency_ms"
        );
        assert_eq!(
            lines[1],
            "\"'=sum(a,b)\",key_1,\"check\"\"out\",1.500000000,1500000000,0.75,3,1,0.333333,0,\
             300,30,100,0,0,330,1000.0,1500.0"
        );
        assert_eq!(
            lines[2],
            ",,,0.500000001,500000001,0.25,1,0,0.0,0,0,0,0,0,0,0,100.0,100.0"
        );
        assert_eq!(lines[3], "");
        assert_eq!(lines.len(), 4);
        assert_eq!(csv_text("-1"), "'-1");
        assert_eq!(csv_text("a\nb"), "\"a\nb\"");
        assert_eq!(csv_text("plain"), "plain");
    }

    #[test]
    fn json_rows_are_flat_with_dimension_fields_and_a_total() {
        let r = sample();
        let q = BreakdownQuery::new(r.dimensions.clone(), today(), today());
        let v = report_json(&q, &r);
        assert_eq!(v["group_by"], json!(["tag", "key"]));
        assert_eq!(v["total"]["calls"], json!(4));
        assert_eq!(v["total"]["share"], json!(1.0));
        let row = &v["data"][0];
        assert_eq!(row["tag"], json!("=sum(a,b)"));
        assert_eq!(row["key"], json!("key_1"));
        assert_eq!(row["key_alias"], json!("check\"out"));
        assert_eq!(row["spend"], json!(1.5));
        assert_eq!(row["spend_nano"], json!(1_500_000_000));
        assert_eq!(row["error_rate"], json!(0.333333));
        assert_eq!(row["p95_latency_ms"], json!(1500.0));
        assert_eq!(v["data"][1]["tag"], Value::Null);
        assert_eq!(usd_text(-5), "-0.000000005");
    }
}
