//! The native file format as written (`Raw*`, what serde reads), and its validation into a
//! [`Config`]. The LiteLLM adapter produces the same `Raw*` values, so every check lives here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use llmux_core::{DeploymentSettings, JsonObject, ModelRef, Secret};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::model::{Decimal, DeploymentPrices, DeploymentRouting, ModelEntry};
use crate::router::{GatewaySettings, ModelGroupAlias, RouterSettings, parse_error_kind};
use crate::{Config, ConfigError, ServerConfig, env_ref, resolve_secret};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub settings: RawSettings,
    #[serde(default)]
    pub router: RawRouter,
    #[serde(default)]
    pub models: Vec<RawModel>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_secs: Option<f64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_params: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub litellm_compat_headers: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_prompts: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_cache_ttl: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callbacks: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub callback_settings: BTreeMap<String, JsonObject>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retry_policy: BTreeMap<String, u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_fails: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_timeout: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fallbacks: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context_window_fallbacks: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub content_policy_fallbacks: BTreeMap<String, Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_fallbacks: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_resume: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub model_group_alias: BTreeMap<String, RawAlias>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub model_group_tags: BTreeMap<String, Vec<String>>,
}

/// `alias: group` or `alias: {model: group, hidden: true}` (LiteLLM's two shapes).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub(crate) enum RawAlias {
    Group(String),
    Full {
        model: String,
        #[serde(default)]
        hidden: bool,
    },
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModel {
    pub name: String,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_base: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_timeout: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_cost_per_token: Option<RawDecimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_cost_per_token: Option<RawDecimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_model: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: JsonObject,
}

/// A price as written: a string is kept verbatim; a number becomes its shortest round-trip
/// decimal text. Checked later, so the message can name the key.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub(crate) struct RawDecimal(pub String);

impl<'de> Deserialize<'de> for RawDecimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDecimal;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a decimal number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDecimal, E> {
                Ok(RawDecimal(v.to_owned()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDecimal, E> {
                Ok(RawDecimal(float_text(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDecimal, E> {
                Ok(RawDecimal(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDecimal, E> {
                Ok(RawDecimal(v.to_string()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawDecimal, E> {
                Ok(RawDecimal(v.to_string()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawDecimal, E> {
                Ok(RawDecimal(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The shortest decimal text that reads back as `v` (Rust's `Display` for floats never
/// uses exponents and is the shortest round-trip form).
pub(crate) fn float_text(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".into()
    }
}

/// Rewrites native key paths into the key paths of the file actually read (the LiteLLM
/// adapter records `models[0].api_key` → `model_list[0].litellm_params.api_key`). The
/// longest matching prefix wins; an empty map leaves keys as they are.
#[derive(Debug, Default)]
pub(crate) struct KeyMap(BTreeMap<String, String>);

impl KeyMap {
    pub fn insert(&mut self, native: impl Into<String>, source: impl Into<String>) {
        self.0.insert(native.into(), source.into());
    }

    pub fn source_key(&self, key: &str) -> String {
        let mut best: Option<(&str, &str)> = None;
        for (native, source) in &self.0 {
            let matches = key == native
                || (key.starts_with(native.as_str())
                    && matches!(key.as_bytes().get(native.len()), Some(b'.' | b'[')));
            if matches && best.is_none_or(|(n, _)| native.len() > n.len()) {
                best = Some((native, source));
            }
        }
        match best {
            Some((native, source)) => format!("{source}{}", &key[native.len()..]),
            None => key.to_owned(),
        }
    }
}

/// Everything `build` needs besides the raw values.
pub(crate) struct Context<'a> {
    pub file: &'a str,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub keys: &'a KeyMap,
    /// Relative paths (`settings.price_table`) are resolved against this directory.
    pub base_dir: Option<&'a Path>,
}

struct Errors<'a> {
    cx: &'a Context<'a>,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    fn invalid(&mut self, key: &str, message: impl Into<String>) {
        self.list.push(ConfigError::Invalid {
            file: self.cx.file.to_owned(),
            key: self.cx.keys.source_key(key),
            message: message.into(),
        });
    }

    /// A positive number of seconds (`allow_zero`: or zero).
    fn seconds(&mut self, key: &str, v: Option<f64>, allow_zero: bool) -> Option<Duration> {
        let v = v?;
        match Duration::try_from_secs_f64(v) {
            Ok(d) if allow_zero || !d.is_zero() => Some(d),
            _ if allow_zero => {
                self.invalid(key, "must be a non-negative number of seconds");
                None
            }
            _ => {
                self.invalid(key, "must be a positive number of seconds");
                None
            }
        }
    }

    /// A string that may be an environment reference; records the reference in `refs`.
    fn plain(
        &mut self,
        key: &str,
        field: &str,
        v: Option<String>,
        refs: &mut BTreeMap<String, String>,
    ) -> Option<String> {
        let v = v?;
        if env_ref(&v).is_none() {
            return Some(v);
        }
        match resolve_secret(&v, self.cx.env) {
            Ok(s) => {
                refs.insert(field.to_owned(), v);
                Some(s.expose().to_owned())
            }
            Err(m) => {
                self.invalid(key, m);
                None
            }
        }
    }

    /// A secret that may be an environment reference; records the reference in `refs`.
    fn secret(
        &mut self,
        key: &str,
        field: &str,
        v: Option<String>,
        refs: &mut BTreeMap<String, String>,
    ) -> Option<Secret> {
        let v = v?;
        match resolve_secret(&v, self.cx.env) {
            Ok(s) => {
                if env_ref(&v).is_some() {
                    refs.insert(field.to_owned(), v);
                }
                Some(s)
            }
            Err(m) => {
                self.invalid(key, m);
                None
            }
        }
    }
}

/// Validate `raw` into a [`Config`], collecting every problem.
pub(crate) fn build(raw: RawConfig, cx: &Context<'_>) -> Result<Config, Vec<ConfigError>> {
    let mut e = Errors {
        cx,
        list: Vec::new(),
    };
    let mut refs = BTreeMap::new();
    let server = build_server(raw.server, &mut e, &mut refs);
    let settings = build_settings(raw.settings, &mut e, &mut refs);
    let models = build_models(raw.models, &mut e);
    let router = build_router(raw.router, &models, &mut e);
    if e.list.is_empty() {
        Ok(Config {
            server,
            models,
            router,
            settings,
            env_refs: refs,
            ..Config::default()
        })
    } else {
        Err(e.list)
    }
}

fn build_server(
    raw: RawServer,
    e: &mut Errors<'_>,
    refs: &mut BTreeMap<String, String>,
) -> ServerConfig {
    let mut server = ServerConfig::default();
    if let Some(h) = raw.host {
        server.host = h;
    }
    if let Some(p) = raw.port {
        server.port = p;
    }
    if let Some(b) = raw.max_body_bytes {
        if b == 0 {
            e.invalid("server.max_body_bytes", "must be positive");
        }
        server.max_body_bytes = b;
    }
    if let Some(g) = e.seconds("server.shutdown_grace_secs", raw.shutdown_grace_secs, true) {
        server.shutdown_grace = g;
    }
    server.master_key = e.secret(
        "server.master_key",
        "server.master_key",
        raw.master_key,
        refs,
    );
    server
}

fn build_settings(
    raw: RawSettings,
    e: &mut Errors<'_>,
    refs: &mut BTreeMap<String, String>,
) -> GatewaySettings {
    let mut s = GatewaySettings {
        drop_params: raw.drop_params.unwrap_or(false),
        litellm_compat_headers: raw.litellm_compat_headers.unwrap_or(false),
        log_prompts: raw.log_prompts.unwrap_or(false),
        ..GatewaySettings::default()
    };
    if let Some(p) = e.plain(
        "settings.price_table",
        "settings.price_table",
        raw.price_table,
        refs,
    ) {
        let path = match e.cx.base_dir {
            Some(dir) if Path::new(&p).is_relative() => dir.join(&p),
            _ => p.into(),
        };
        if path.is_file() {
            s.price_table = Some(path);
        } else {
            e.invalid(
                "settings.price_table",
                format!("no such file: {}", path.display()),
            );
        }
    }
    s.database_url = e.secret(
        "settings.database_url",
        "settings.database_url",
        raw.database_url,
        refs,
    );
    if s.database_url
        .as_ref()
        .is_some_and(|u| u.expose().trim().is_empty())
    {
        e.invalid("settings.database_url", "must not be empty");
    }
    s.redis_url = e.secret(
        "settings.redis_url",
        "settings.redis_url",
        raw.redis_url,
        refs,
    );
    if let Some(u) = &s.redis_url {
        let u = u.expose().trim();
        if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
            e.invalid("settings.redis_url", "must be a redis:// or rediss:// URL");
        }
    }
    match raw.key_cache_ttl {
        Some(t) if t.is_finite() && (0.0..=3600.0).contains(&t) => {
            s.key_cache_ttl = Some(std::time::Duration::from_secs_f64(t));
        }
        Some(_) => e.invalid(
            "settings.key_cache_ttl",
            "must be a number of seconds between 0 and 3600",
        ),
        None => {}
    }
    for (i, name) in raw.callbacks.iter().enumerate() {
        let key = format!("settings.callbacks[{i}]");
        let name = name.trim();
        if name.is_empty() {
            e.invalid(&key, "must not be empty");
        } else if s.callbacks.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            e.invalid(&key, format!("'{name}' is listed twice"));
        } else {
            s.callbacks.push(name.to_owned());
        }
    }
    for (name, entry) in raw.callback_settings {
        let base = format!("settings.callback_settings.{name}");
        if name.trim().is_empty() {
            e.invalid(&base, "a sink name must not be empty");
            continue;
        }
        let mut resolved = JsonObject::new();
        for (k, v) in entry {
            if let Some(v) = sink_setting(e, &format!("{base}.{k}"), v, refs) {
                resolved.insert(k, v);
            }
        }
        s.callback_settings.insert(name, resolved);
    }
    s
}

/// A sink setting with every string given by reference resolved (in nested maps and lists
/// too); the references are recorded under their key paths.
fn sink_setting(
    e: &mut Errors<'_>,
    key: &str,
    v: Value,
    refs: &mut BTreeMap<String, String>,
) -> Option<Value> {
    Some(match v {
        Value::String(s) => Value::String(e.plain(key, key, Some(s), refs)?),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter_map(|(k, v)| {
                    let v = sink_setting(e, &format!("{key}.{k}"), v, refs)?;
                    Some((k, v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.into_iter()
                .enumerate()
                .filter_map(|(j, v)| sink_setting(e, &format!("{key}[{j}]"), v, refs))
                .collect(),
        ),
        other => other,
    })
}

fn build_models(raw: Vec<RawModel>, e: &mut Errors<'_>) -> Vec<ModelEntry> {
    let mut models = Vec::with_capacity(raw.len());
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for (i, m) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("models[{i}].{field}");
        if m.name.trim().is_empty() {
            e.invalid(&at("name"), "must not be empty");
        }
        let Some(r) = ModelRef::parse(&m.model) else {
            e.invalid(
                &at("model"),
                format!(
                    "'{}' is not of the form provider/model (e.g. openai/gpt-4o)",
                    m.model
                ),
            );
            continue;
        };
        if r.is_wildcard() && !m.name.ends_with("/*") && m.name != "*" {
            e.invalid(
                &at("name"),
                format!(
                    "a wildcard model '{}' needs a wildcard name like '{}/*'",
                    m.model, r.provider
                ),
            );
        }
        let mut refs = BTreeMap::new();
        let mut d = DeploymentSettings::new(r.provider, r.model);
        d.api_base = e.plain(&at("api_base"), "api_base", m.api_base, &mut refs);
        d.organization = e.plain(
            &at("organization"),
            "organization",
            m.organization,
            &mut refs,
        );
        d.api_version = e.plain(&at("api_version"), "api_version", m.api_version, &mut refs);
        d.api_key = e.secret(&at("api_key"), "api_key", m.api_key, &mut refs);
        d.timeout = e.seconds(&at("timeout"), m.timeout, false);
        for (name, value) in m.headers {
            let field = format!("headers.{name}");
            if let Some(v) = e.plain(&at(&field), &field, Some(value), &mut refs) {
                d.headers.insert(name, v);
            }
        }
        for (name, value) in m.params {
            let value = match value {
                Value::String(s) => {
                    let field = format!("params.{name}");
                    match e.plain(&at(&field), &field, Some(s), &mut refs) {
                        Some(v) => Value::String(v),
                        None => continue,
                    }
                }
                other => other,
            };
            d.params.insert(name, value);
        }

        let routing = DeploymentRouting {
            weight: m.weight,
            stream_timeout: e.seconds(&at("stream_timeout"), m.stream_timeout, false),
            max_retries: m.max_retries,
            rpm: m.rpm,
            tpm: m.tpm,
            order: m.order,
            tags: m.tags,
        };
        if m.weight == Some(0) {
            e.invalid(
                &at("weight"),
                "must be at least 1 (remove the entry to send it no traffic)",
            );
        }
        for (field, v) in [("rpm", m.rpm), ("tpm", m.tpm)] {
            if v == Some(0) {
                e.invalid(&at(field), "must be positive (leave it out for no limit)");
            }
        }
        if m.order == Some(0) {
            e.invalid(&at("order"), "must be at least 1 (1 is tried first)");
        }
        for (j, tag) in routing.tags.iter().enumerate() {
            if tag.trim().is_empty() {
                e.invalid(&at(&format!("tags[{j}]")), "must not be empty");
            }
        }

        let mut price = |field: &str, v: Option<RawDecimal>| {
            v.and_then(|RawDecimal(text)| match Decimal::parse(&text) {
                Ok(d) => Some(d),
                Err(msg) => {
                    e.invalid(&at(field), msg);
                    None
                }
            })
        };
        let prices = DeploymentPrices {
            input_cost_per_token: price("input_cost_per_token", m.input_cost_per_token),
            output_cost_per_token: price("output_cost_per_token", m.output_cost_per_token),
        };
        let prices = (prices != DeploymentPrices::default()).then_some(prices);

        if m.max_input_tokens == Some(0) {
            e.invalid(&at("max_input_tokens"), "must be positive");
        }
        if m.base_model.as_deref().is_some_and(|b| b.trim().is_empty()) {
            e.invalid(&at("base_model"), "must not be empty");
        }
        if let Some(id) = &m.id {
            if id.trim().is_empty() {
                e.invalid(&at("id"), "must not be empty");
            } else if let Some(first) = ids.get(id) {
                e.invalid(
                    &at("id"),
                    format!(
                        "duplicate id '{id}' (also {})",
                        e.cx.keys.source_key(&format!("models[{first}].id"))
                    ),
                );
            } else {
                ids.insert(id.clone(), i);
            }
        }
        models.push(ModelEntry {
            name: m.name,
            deployment: d,
            id: m.id,
            routing,
            prices,
            base_model: m.base_model,
            max_input_tokens: m.max_input_tokens,
            env_refs: refs,
        });
    }
    models
}

/// Names the router can serve: groups, aliases and names under a `provider/*` route.
struct Served<'a> {
    /// A `*` entry serves every name.
    catch_all: bool,
    groups: BTreeSet<&'a str>,
    wildcards: Vec<&'a str>,
    aliases: &'a BTreeMap<String, ModelGroupAlias>,
}

impl Served<'_> {
    fn contains(&self, name: &str) -> bool {
        self.catch_all
            || self.groups.contains(name)
            || self.aliases.contains_key(name)
            || self.wildcards.iter().any(|p| {
                name.len() > p.len() + 1 && name.starts_with(p) && name.as_bytes()[p.len()] == b'/'
            })
    }

    fn unknown(&self, name: &str) -> String {
        let mut known: Vec<&str> = self.groups.iter().copied().collect();
        known.extend(self.aliases.keys().map(String::as_str));
        if known.is_empty() {
            format!("'{name}' is not a model group (no models are configured)")
        } else {
            format!(
                "'{name}' is not a model group (known: {})",
                known.join(", ")
            )
        }
    }
}

fn build_router(raw: RawRouter, models: &[ModelEntry], e: &mut Errors<'_>) -> RouterSettings {
    let mut r = RouterSettings::default();
    if let Some(s) = raw.strategy {
        match s.parse() {
            Ok(s) => r.strategy = s,
            Err(m) => e.invalid("router.strategy", m),
        }
    }
    if let Some(n) = raw.num_retries {
        r.num_retries = n;
    }
    for (kind, n) in raw.retry_policy {
        match parse_error_kind(&kind) {
            Ok(k) => r.retry_policy.set(k, n),
            Err(m) => e.invalid(&format!("router.retry_policy.{kind}"), m),
        }
    }
    if let Some(n) = raw.allowed_fails {
        r.allowed_fails = n;
    }
    if let Some(c) = e.seconds("router.cooldown_time", raw.cooldown_time, true) {
        r.cooldown_time = c;
    }
    r.timeout = e.seconds("router.timeout", raw.timeout, false);
    r.stream_timeout = e.seconds("router.stream_timeout", raw.stream_timeout, false);
    r.stall_timeout = e.seconds("router.stall_timeout", raw.stall_timeout, false);
    if let Some(b) = raw.stream_resume {
        r.stream_resume = b;
    }

    let groups: BTreeSet<&str> = models.iter().map(|m| m.name.as_str()).collect();
    for (alias, target) in raw.model_group_alias {
        let key = format!("router.model_group_alias.{alias}");
        let (group, hidden) = match target {
            RawAlias::Group(g) => (g, false),
            RawAlias::Full { model, hidden } => (model, hidden),
        };
        if groups.contains(alias.as_str()) {
            e.invalid(
                &key,
                format!("'{alias}' is already a model group; an alias needs a new name"),
            );
        } else if !groups.contains(group.as_str()) {
            let known: Vec<&str> = groups.iter().copied().collect();
            e.invalid(
                &key,
                format!(
                    "'{group}' is not a model group (known: {})",
                    known.join(", ")
                ),
            );
        } else {
            r.model_group_alias
                .insert(alias, ModelGroupAlias { group, hidden });
        }
    }

    for (group, tags) in raw.model_group_tags {
        let key = format!("router.model_group_tags.{group}");
        if !groups.contains(group.as_str()) && !r.model_group_alias.contains_key(&group) {
            e.invalid(&key, format!("'{group}' is not a model group"));
            continue;
        }
        let mut ok = true;
        for (j, tag) in tags.iter().enumerate() {
            if let Some(why) = llmux_core::tags::tag_problem(tag.trim()) {
                e.invalid(&format!("{key}[{j}]"), why);
                ok = false;
            }
        }
        if ok {
            r.model_group_tags.insert(group, tags);
        }
    }

    let served = Served {
        catch_all: models.iter().any(|m| m.name == "*"),
        groups,
        wildcards: models
            .iter()
            .filter_map(|m| m.name.strip_suffix("/*"))
            .collect(),
        aliases: &r.model_group_alias,
    };
    let mut check_map = |what: &str, map: BTreeMap<String, Vec<String>>| {
        let mut out = BTreeMap::new();
        for (from, to) in map {
            let key = format!("router.{what}.{from}");
            let mut ok = true;
            if from == "*" {
                e.invalid(
                    &key,
                    "use router.default_fallbacks for fallbacks of every model group",
                );
                continue;
            }
            if !served.contains(&from) {
                e.invalid(&key, served.unknown(&from));
                ok = false;
            }
            let mut seen = BTreeSet::new();
            for (j, target) in to.iter().enumerate() {
                if !served.contains(target) {
                    e.invalid(&format!("{key}[{j}]"), served.unknown(target));
                    ok = false;
                } else if !seen.insert(target.as_str()) {
                    e.invalid(
                        &format!("{key}[{j}]"),
                        format!("'{target}' is listed twice"),
                    );
                    ok = false;
                }
            }
            if ok {
                out.insert(from, to);
            }
        }
        for cycle in find_cycles(&out, &served) {
            e.invalid(
                &format!("router.{what}"),
                format!("fallback loop: {}", cycle.join(" → ")),
            );
        }
        out
    };
    let fallbacks = check_map("fallbacks", raw.fallbacks);
    let context_window_fallbacks =
        check_map("context_window_fallbacks", raw.context_window_fallbacks);
    let content_policy_fallbacks =
        check_map("content_policy_fallbacks", raw.content_policy_fallbacks);
    for (j, target) in raw.default_fallbacks.iter().enumerate() {
        if !served.contains(target) {
            e.invalid(
                &format!("router.default_fallbacks[{j}]"),
                served.unknown(target),
            );
        }
    }
    r.fallbacks = fallbacks;
    r.context_window_fallbacks = context_window_fallbacks;
    r.content_policy_fallbacks = content_policy_fallbacks;
    r.default_fallbacks = raw.default_fallbacks;
    r
}

/// Every loop of the fallback graph (aliases followed), each once, starting at its
/// smallest name and ending where it started: `[a, b, a]`.
fn find_cycles(map: &BTreeMap<String, Vec<String>>, served: &Served<'_>) -> Vec<Vec<String>> {
    let resolve = |n: &str| -> String {
        served
            .aliases
            .get(n)
            .map_or_else(|| n.to_owned(), |a| a.group.clone())
    };
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (from, to) in map {
        graph
            .entry(resolve(from))
            .or_default()
            .extend(to.iter().map(|t| resolve(t)));
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, Vec<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        found: &mut BTreeSet<Vec<String>>,
    ) {
        marks.insert(node.to_owned(), Mark::Open);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let start = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[start..].to_vec();
                    let min = (0..cycle.len()).min_by_key(|&k| &cycle[k]).unwrap_or(0);
                    cycle.rotate_left(min);
                    let first = cycle[0].clone();
                    cycle.push(first);
                    found.insert(cycle);
                }
                Some(Mark::Done) => {}
                None => visit(next, graph, marks, stack, found),
            }
        }
        stack.pop();
        marks.insert(node.to_owned(), Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = BTreeSet::new();
    for node in graph.keys() {
        if !marks.contains_key(node) {
            visit(node, &graph, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_map_rewrites_longest_prefix_at_a_boundary() {
        let mut k = KeyMap::default();
        k.insert("models[1]", "model_list[2]");
        k.insert("models[1].api_key", "model_list[2].litellm_params.api_key");
        k.insert("models[1].params", "model_list[2].litellm_params");
        assert_eq!(
            k.source_key("models[1].api_key"),
            "model_list[2].litellm_params.api_key"
        );
        assert_eq!(
            k.source_key("models[1].params.aws_region_name"),
            "model_list[2].litellm_params.aws_region_name"
        );
        assert_eq!(k.source_key("models[1].name"), "model_list[2].name");
        assert_eq!(k.source_key("models[10].name"), "models[10].name");
        assert_eq!(k.source_key("server.port"), "server.port");
    }
}
