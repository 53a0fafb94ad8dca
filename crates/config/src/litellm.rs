//! The LiteLLM Proxy `config.yaml` adapter: walks the file as loose JSON and writes the
//! native `Raw*` values, a key map (so later messages name the LiteLLM key path), one
//! warning per key llmux does not support, and errors for what cannot be read at all.
//!
//! References (`os.environ/NAME`) in credential and URL fields are passed through to the
//! native checks, which resolve them and remember them; in numeric fields they are
//! resolved here. `environment_variables` are layered over the injected lookup; the
//! process environment is never modified.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::native::{KeyMap, RawAlias, RawConfig, RawDecimal, RawModel, float_text};
use crate::router::{BUILTIN_SINK_NAMES, RoutingStrategy, is_builtin_sink};
use crate::{ConfigError, LITELLM_KEYS, env_ref};

/// What the adapter made of a LiteLLM file.
#[derive(Debug, Default)]
pub(crate) struct Converted {
    pub raw: RawConfig,
    pub keys: KeyMap,
    pub warnings: Vec<String>,
    pub errors: Vec<ConfigError>,
    /// `environment_variables`.
    pub env: BTreeMap<String, String>,
}

/// Top-level sections of the native format; mixing them into a LiteLLM file is an error.
const NATIVE_KEYS: [&str; 4] = ["server", "settings", "router", "models"];

/// `litellm_params` keys passed to the provider through `DeploymentSettings.params`.
const PARAM_KEYS: [&str; 9] = [
    "vertex_project",
    "vertex_location",
    "vertex_credentials",
    "region_name",
    "azure_ad_token",
    "tenant_id",
    "client_id",
    "client_secret",
    "mock_response",
];

/// LiteLLM's `retry_policy` names → llmux error kinds.
const RETRY_POLICY: [(&str, &str); 8] = [
    ("BadRequestErrorRetries", "bad_request"),
    ("AuthenticationErrorRetries", "auth"),
    ("TimeoutErrorRetries", "timeout"),
    ("RateLimitErrorRetries", "rate_limited"),
    ("ContentPolicyViolationErrorRetries", "content_policy"),
    ("InternalServerErrorRetries", "upstream_error"),
    ("ServiceUnavailableErrorRetries", "upstream_unavailable"),
    ("NotFoundErrorRetries", "not_found"),
];

/// The provider LiteLLM infers for a model name written without a `provider/` prefix.
/// Only families whose names are unambiguous are inferred; anything else must be written
/// as `provider/model`.
pub(crate) fn infer_provider(model: &str) -> Option<&'static str> {
    const OPENAI: [&str; 14] = [
        "gpt-",
        "chatgpt-",
        "ft:gpt-",
        "o1",
        "o3",
        "o4",
        "text-embedding-",
        "dall-e-",
        "gpt-image-",
        "whisper-",
        "tts-",
        "omni-moderation",
        "text-moderation",
        "davinci-",
    ];
    if OPENAI.iter().any(|p| model.starts_with(p)) || model.starts_with("babbage-") {
        Some("openai")
    } else if model.starts_with("claude-") {
        Some("anthropic")
    } else if model.starts_with("gemini-") {
        Some("vertex_ai")
    } else {
        None
    }
}

struct Walk<'a> {
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    out: Converted,
    /// `litellm_settings` callback lists: (key, list).
    callback_lists: Vec<(&'static str, Value)>,
    /// `callback_settings` maps, top-level first: (key path, map).
    callback_settings: Vec<(&'static str, Value)>,
    /// `router_settings.redis_{url,host,port,password}`, resolved, composed into
    /// `settings.redis_url` at the end.
    redis: BTreeMap<String, String>,
}

pub(crate) fn convert(tree: &Value, file: &str, env: &dyn Fn(&str) -> Option<String>) -> Converted {
    let empty = Map::new();
    let top = tree.as_object().unwrap_or(&empty);
    let mut vars = BTreeMap::new();
    let mut var_errors = Vec::new();
    match top.get("environment_variables") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) => {
            for (k, v) in o {
                match v {
                    Value::String(s) => {
                        vars.insert(k.clone(), s.clone());
                    }
                    Value::Number(n) => {
                        vars.insert(k.clone(), n.to_string());
                    }
                    Value::Bool(b) => {
                        vars.insert(k.clone(), b.to_string());
                    }
                    Value::Null => {}
                    _ => var_errors.push(ConfigError::Invalid {
                        file: file.to_owned(),
                        key: format!("environment_variables.{k}"),
                        message: "must be a string".into(),
                    }),
                }
            }
        }
        Some(_) => var_errors.push(ConfigError::Invalid {
            file: file.to_owned(),
            key: "environment_variables".into(),
            message: "must be a map of variable names to values".into(),
        }),
    }
    let layered = |k: &str| vars.get(k).cloned().or_else(|| env(k));
    let mut w = Walk {
        file,
        env: &layered,
        out: Converted::default(),
        callback_lists: Vec::new(),
        callback_settings: Vec::new(),
        redis: BTreeMap::new(),
    };
    w.out.errors = var_errors;

    let native: Vec<&str> = NATIVE_KEYS
        .into_iter()
        .filter(|k| top.contains_key(*k))
        .collect();
    if !native.is_empty() {
        let litellm: Vec<&str> = LITELLM_KEYS
            .into_iter()
            .filter(|k| top.contains_key(*k))
            .collect();
        w.err(
            &native.join(", "),
            format!(
                "llmux keys mixed with LiteLLM keys ({}): write the file in one format \
                 (`llmux config convert` turns a LiteLLM file into the native one)",
                litellm.join(", ")
            ),
        );
    }
    for key in top.keys() {
        let known = LITELLM_KEYS.contains(&key.as_str())
            || NATIVE_KEYS.contains(&key.as_str())
            || key == "environment_variables"
            || key == "callback_settings";
        if !known {
            w.warn(key, None);
        }
    }
    w.out.raw.settings.litellm_compat_headers = Some(true);
    if let Some(v) = w.section(top, "general_settings") {
        w.general_settings(&v);
    }
    if let Some(v) = top.get("callback_settings").filter(|v| !v.is_null()) {
        w.callback_settings.push(("callback_settings", v.clone()));
    }
    if let Some(v) = w.section(top, "litellm_settings") {
        w.litellm_settings(&v);
    }
    w.callbacks();
    if let Some(v) = w.section(top, "router_settings") {
        w.router_settings(&v);
    }
    w.redis_url();
    match top.get("model_list") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for (i, entry) in list.iter().enumerate() {
                w.model(i, entry);
            }
        }
        Some(_) => w.err("model_list", "must be a list of model entries"),
    }
    let mut out = w.out;
    out.env = vars;
    out
}

/// What a scalar holds, for the typed readers.
enum Scalar {
    Text(String),
    /// Read from the environment: the variable's name and value.
    FromEnv(String, String),
}

impl Walk<'_> {
    fn err(&mut self, key: &str, message: impl Into<String>) {
        self.out.errors.push(ConfigError::Invalid {
            file: self.file.to_owned(),
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn warn(&mut self, key: &str, hint: Option<&str>) {
        let what = hint.unwrap_or("not supported by llmux");
        self.out
            .warnings
            .push(format!("{}: {key}: {what}; ignored", self.file));
    }

    fn map(&mut self, native: impl Into<String>, source: impl Into<String>) {
        self.out.keys.insert(native, source);
    }

    /// A top-level section that must be a map (`None` for a missing or empty one).
    fn section(&mut self, top: &Map<String, Value>, name: &str) -> Option<Map<String, Value>> {
        match top.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o.clone()),
            Some(_) => {
                self.err(name, "must be a map");
                None
            }
        }
    }

    fn string(&mut self, key: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.err(key, format!("must be a string, not {}", kind(v)));
                None
            }
        }
    }

    /// A scalar for a typed field; a reference is resolved here.
    fn scalar(&mut self, key: &str, v: &Value) -> Option<Scalar> {
        match v {
            Value::String(s) => match env_ref(s) {
                Some(name) => match (self.env)(name).filter(|v| !v.is_empty()) {
                    Some(val) => Some(Scalar::FromEnv(name.to_owned(), val)),
                    None => {
                        self.err(key, format!("environment variable {name} is not set"));
                        None
                    }
                },
                None => Some(Scalar::Text(s.trim().to_owned())),
            },
            Value::Number(n) => Some(Scalar::Text(n.to_string())),
            Value::Bool(b) => Some(Scalar::Text(b.to_string())),
            _ => {
                self.err(key, format!("must be a single value, not {}", kind(v)));
                None
            }
        }
    }

    /// Parse a scalar; the message names the variable, never its value.
    fn parsed<T: std::str::FromStr>(&mut self, key: &str, v: &Value, what: &str) -> Option<T> {
        if let Value::Number(n) = v {
            // Whole floats (`3.0`) count as integers.
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0)
                && let Ok(t) = format!("{f:.0}").parse()
            {
                return Some(t);
            }
        }
        match self.scalar(key, v)? {
            Scalar::Text(t) => match t.parse() {
                Ok(x) => Some(x),
                Err(_) => {
                    self.err(key, format!("must be {what}, not '{t}'"));
                    None
                }
            },
            Scalar::FromEnv(name, val) => match val.trim().parse() {
                Ok(x) => Some(x),
                Err(_) => {
                    self.err(key, format!("environment variable {name} must hold {what}"));
                    None
                }
            },
        }
    }

    fn count<T: std::str::FromStr>(&mut self, key: &str, v: &Value) -> Option<T> {
        self.parsed(key, v, "a whole number")
    }

    fn seconds(&mut self, key: &str, v: &Value) -> Option<f64> {
        self.parsed(key, v, "a number of seconds")
    }

    fn boolean(&mut self, key: &str, v: &Value) -> Option<bool> {
        let text = match self.scalar(key, v)? {
            Scalar::Text(t) | Scalar::FromEnv(_, t) => t,
        };
        match text.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.err(key, "must be true or false");
                None
            }
        }
    }

    fn decimal(&mut self, key: &str, v: &Value) -> Option<RawDecimal> {
        if let Value::Number(n) = v {
            return Some(RawDecimal(match n.as_f64() {
                Some(f) if n.is_f64() => float_text(f),
                _ => n.to_string(),
            }));
        }
        match self.scalar(key, v)? {
            Scalar::Text(t) | Scalar::FromEnv(_, t) => Some(RawDecimal(t)),
        }
    }

    fn string_list(&mut self, key: &str, v: &Value) -> Option<Vec<String>> {
        let Value::Array(items) = v else {
            self.err(key, format!("must be a list of strings, not {}", kind(v)));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (j, item) in items.iter().enumerate() {
            out.push(self.string(&format!("{key}[{j}]"), item)?);
        }
        Some(out)
    }

    fn general_settings(&mut self, s: &Map<String, Value>) {
        for (k, v) in s {
            let key = format!("general_settings.{k}");
            if v.is_null() {
                continue;
            }
            match k.as_str() {
                "master_key" => {
                    self.out.raw.server.master_key = self.string(&key, v);
                    self.map("server.master_key", key);
                }
                "database_url" => {
                    self.out.raw.settings.database_url = self.string(&key, v);
                    self.map("settings.database_url", key);
                }
                "store_prompts_in_spend_logs" => {
                    if let Some(b) = self.boolean(&key, v) {
                        self.out.raw.settings.log_prompts = Some(b);
                    }
                }
                "max_request_size_mb" => {
                    let mb: Option<f64> = self.parsed(&key, v, "a number of megabytes");
                    match mb {
                        Some(mb) if mb > 0.0 && mb < 1e9 => {
                            self.out.raw.server.max_body_bytes =
                                Some((mb * 1024.0 * 1024.0).round() as usize);
                        }
                        Some(_) => self.err(&key, "must be a positive number of megabytes"),
                        None => {}
                    }
                }
                _ => self.warn(&key, None),
            }
        }
    }

    fn litellm_settings(&mut self, s: &Map<String, Value>) {
        for (k, v) in s {
            let key = format!("litellm_settings.{k}");
            if v.is_null() {
                continue;
            }
            match k.as_str() {
                "drop_params" => self.out.raw.settings.drop_params = self.boolean(&key, v),
                "turn_off_message_logging" => {
                    if self.boolean(&key, v) == Some(true) {
                        self.out.raw.settings.log_prompts = Some(false);
                    }
                }
                "num_retries"
                | "request_timeout"
                | "allowed_fails"
                | "fallbacks"
                | "context_window_fallbacks"
                | "content_policy_fallbacks"
                | "default_fallbacks" => self.router_key("litellm_settings", k, v),
                "cache" | "cache_params" => {
                    self.warn(
                        &key,
                        Some("response caching is not configured here in llmux"),
                    );
                }
                // Read once every key is seen (`Walk::callbacks`): which names llmux
                // keeps depends on `callback_settings`.
                "callbacks" => self.callback_lists.push(("callbacks", v.clone())),
                "success_callback" => self.callback_lists.push(("success_callback", v.clone())),
                "failure_callback" => self.callback_lists.push(("failure_callback", v.clone())),
                "callback_settings" => self
                    .callback_settings
                    .push(("litellm_settings.callback_settings", v.clone())),
                "service_callbacks" => {
                    self.warn(
                        &key,
                        Some("LiteLLM service callbacks are not supported (llmux has its own metrics)"),
                    );
                }
                _ => self.warn(&key, None),
            }
        }
    }

    /// `litellm_settings.callbacks`, `success_callback` and `failure_callback` →
    /// `settings.callbacks` (in that order, each name once, as written), for the names
    /// llmux has a sink for; `callback_settings` (top-level, as LiteLLM's proxy reads it,
    /// or under `litellm_settings`, which wins per name) → `settings.callback_settings`
    /// for the names kept. llmux sinks see every call: a failures-only callback is
    /// reported.
    fn callbacks(&mut self) {
        let lists = std::mem::take(&mut self.callback_lists);
        // name → (source key, settings)
        let mut entries: BTreeMap<String, (String, Map<String, Value>)> = BTreeMap::new();
        for (at, settings) in std::mem::take(&mut self.callback_settings) {
            let Value::Object(o) = settings else {
                self.err(at, "must be a map of callback names to their settings");
                continue;
            };
            for (name, v) in o {
                let key = format!("{at}.{name}");
                match v {
                    Value::Object(m) => {
                        entries.insert(name, (key, m));
                    }
                    Value::Null => {}
                    _ => self.err(&key, "must be a map of settings"),
                }
            }
        }
        let settings_of: BTreeMap<String, Map<String, Value>> = entries
            .iter()
            .map(|(k, (_, m))| (k.clone(), m.clone()))
            .collect();
        let mut kept: Vec<String> = Vec::new();
        // Names that get successful calls in LiteLLM too.
        let mut every_call: Vec<String> = Vec::new();
        for section in ["callbacks", "success_callback", "failure_callback"] {
            let Some((_, v)) = lists.iter().find(|(k, _)| *k == section) else {
                continue;
            };
            let key = format!("litellm_settings.{section}");
            let items: Vec<(String, &Value)> = match v {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(j, item)| (format!("{key}[{j}]"), item))
                    .collect(),
                Value::String(_) => vec![(key.clone(), v)],
                _ => {
                    self.err(
                        &key,
                        format!("must be a list of callback names, not {}", kind(v)),
                    );
                    continue;
                }
            };
            for (item_key, item) in items {
                let Value::String(name) = item else {
                    self.warn(&item_key, Some("not a callback name"));
                    continue;
                };
                let name = name.trim();
                if name.is_empty() {
                    continue;
                }
                if let Err(why) = sink_for(name, &settings_of) {
                    self.warn(&item_key, Some(&why));
                    continue;
                }
                let seen = |list: &[String]| list.iter().any(|n| n.eq_ignore_ascii_case(name));
                if section == "failure_callback" {
                    if !seen(&every_call) {
                        self.warn(
                            &item_key,
                            Some(&format!(
                                "failures-only delivery is not supported (llmux sends \
                                 '{name}' every call record)"
                            )),
                        );
                    }
                } else if !seen(&every_call) {
                    every_call.push(name.to_owned());
                }
                if !seen(&kept) {
                    self.map(
                        format!("settings.callbacks[{}]", kept.len()),
                        item_key.clone(),
                    );
                    kept.push(name.to_owned());
                }
            }
        }
        for (name, (key, entry)) in entries {
            if kept.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
                self.map(format!("settings.callback_settings.{name}"), key);
                self.out.raw.settings.callback_settings.insert(name, entry);
            } else {
                self.warn(&key, Some("settings of a callback llmux does not run"));
            }
        }
        self.out.raw.settings.callbacks = kept;
    }

    /// LiteLLM's Redis settings as one `settings.redis_url` (an explicit `redis_url` wins).
    fn redis_url(&mut self) {
        let url = match (self.redis.get("redis_url"), self.redis.get("redis_host")) {
            (Some(url), _) => url.clone(),
            (None, Some(host)) => {
                let port = self.redis.get("redis_port").map_or("6379", String::as_str);
                let auth = self
                    .redis
                    .get("redis_password")
                    .map(|p| format!(":{}@", percent_encode(p)))
                    .unwrap_or_default();
                format!("redis://{auth}{host}:{port}")
            }
            (None, None) => {
                if !self.redis.is_empty() {
                    self.err(
                        "router_settings.redis_host",
                        "redis_port/redis_password need redis_host (or set redis_url)",
                    );
                }
                return;
            }
        };
        self.out.raw.settings.redis_url = Some(url);
    }

    fn router_settings(&mut self, s: &Map<String, Value>) {
        for (k, v) in s {
            if v.is_null() {
                continue;
            }
            self.router_key("router_settings", k, v);
        }
    }

    /// One key of `router_settings` (or a router key in `litellm_settings`; router_settings
    /// is read last, so it wins, as in LiteLLM).
    fn router_key(&mut self, section: &str, k: &str, v: &Value) {
        let key = format!("{section}.{k}");
        let native = match k {
            "routing_strategy" => {
                let Some(s) = self.string(&key, v) else {
                    return;
                };
                match s.parse::<RoutingStrategy>() {
                    Ok(st) => self.out.raw.router.strategy = Some(st.as_str().into()),
                    Err(_) => {
                        let msg = format!(
                            "routing strategy '{s}' is not supported by llmux \
                             (simple-shuffle is used)"
                        );
                        self.warn(&key, Some(&msg));
                        return;
                    }
                }
                "router.strategy"
            }
            "num_retries" => {
                self.out.raw.router.num_retries = self.count(&key, v);
                "router.num_retries"
            }
            "allowed_fails" => {
                self.out.raw.router.allowed_fails = self.count(&key, v);
                "router.allowed_fails"
            }
            "cooldown_time" => {
                self.out.raw.router.cooldown_time = self.seconds(&key, v);
                "router.cooldown_time"
            }
            "timeout" | "request_timeout" => {
                self.out.raw.router.timeout = self.seconds(&key, v);
                "router.timeout"
            }
            "stream_timeout" => {
                self.out.raw.router.stream_timeout = self.seconds(&key, v);
                "router.stream_timeout"
            }
            "retry_policy" => {
                self.retry_policy(&key, v);
                return;
            }
            "model_group_alias" => {
                self.model_group_alias(&key, v);
                return;
            }
            // llmux's own: attribution tags per model group.
            "model_group_tags" => {
                let Value::Object(o) = v else {
                    self.err(&key, "must be a map of model groups to lists of tags");
                    return;
                };
                for (group, tags) in o {
                    let k = format!("{key}.{group}");
                    if let Some(list) = self.string_list(&k, tags) {
                        self.out
                            .raw
                            .router
                            .model_group_tags
                            .insert(group.clone(), list);
                        self.map(format!("router.model_group_tags.{group}"), k);
                    }
                }
                return;
            }
            "fallbacks" | "context_window_fallbacks" | "content_policy_fallbacks" => {
                self.fallbacks(k, &key, v);
                return;
            }
            "default_fallbacks" => {
                if let Some(list) = self.string_list(&key, v) {
                    self.out.raw.router.default_fallbacks = list;
                }
                "router.default_fallbacks"
            }
            "redis_host" | "redis_port" | "redis_password" | "redis_url" => {
                if let Some(Scalar::Text(v) | Scalar::FromEnv(_, v)) = self.scalar(&key, v) {
                    self.redis.insert(k.to_owned(), v);
                }
                self.map("settings.redis_url", key);
                return;
            }
            _ => {
                self.warn(&key, None);
                return;
            }
        };
        self.map(native, key);
    }

    fn retry_policy(&mut self, key: &str, v: &Value) {
        let Value::Object(o) = v else {
            self.err(key, "must be a map of error names to retries");
            return;
        };
        for (name, n) in o {
            let k = format!("{key}.{name}");
            if n.is_null() {
                continue;
            }
            match RETRY_POLICY.iter().find(|(l, _)| l == name) {
                Some((_, kind)) => {
                    if let Some(n) = self.count(&k, n) {
                        self.out.raw.router.retry_policy.insert((*kind).into(), n);
                        self.map(format!("router.retry_policy.{kind}"), k);
                    }
                }
                None => self.warn(&k, None),
            }
        }
    }

    fn model_group_alias(&mut self, key: &str, v: &Value) {
        let Value::Object(o) = v else {
            self.err(key, "must be a map of alias names to model groups");
            return;
        };
        for (alias, target) in o {
            let k = format!("{key}.{alias}");
            let raw = match target {
                Value::String(g) => RawAlias::Group(g.clone()),
                Value::Object(t) => {
                    let Some(model) = t.get("model").and_then(Value::as_str) else {
                        self.err(&k, "needs `model`: the model group the alias stands for");
                        continue;
                    };
                    let hidden = match t.get("hidden") {
                        None | Some(Value::Null) => false,
                        Some(h) => self.boolean(&format!("{k}.hidden"), h).unwrap_or(false),
                    };
                    for extra in t.keys().filter(|x| *x != "model" && *x != "hidden") {
                        self.warn(&format!("{k}.{extra}"), None);
                    }
                    RawAlias::Full {
                        model: model.to_owned(),
                        hidden,
                    }
                }
                _ => {
                    self.err(&k, "must be a model group name or {model: …, hidden: …}");
                    continue;
                }
            };
            self.out
                .raw
                .router
                .model_group_alias
                .insert(alias.clone(), raw);
            self.map(format!("router.model_group_alias.{alias}"), k);
        }
    }

    /// LiteLLM's shape: a list of maps, `[{"gpt-4o": ["claude"]}, …]`.
    fn fallbacks(&mut self, what: &str, key: &str, v: &Value) {
        let shape = "must be a list of maps like [{\"gpt-4o\": [\"claude\"]}]";
        let Value::Array(items) = v else {
            self.err(key, shape);
            return;
        };
        let mut map = BTreeMap::new();
        let mut star = None;
        for (j, item) in items.iter().enumerate() {
            let Value::Object(o) = item else {
                self.err(&format!("{key}[{j}]"), shape);
                continue;
            };
            for (group, targets) in o {
                let k = format!("{key}[{j}].{group}");
                let targets = match targets {
                    Value::String(s) => vec![s.clone()],
                    other => match self.string_list(&k, other) {
                        Some(t) => t,
                        None => continue,
                    },
                };
                if group == "*" && what == "fallbacks" {
                    star = Some((targets, k));
                } else if group == "*" {
                    self.warn(
                        &k,
                        Some("a fallback for every group is only supported in `fallbacks`"),
                    );
                } else if map.contains_key(group) {
                    self.warn(
                        &k,
                        Some("a second fallback list for the same model group (the first is used)"),
                    );
                } else {
                    self.map(format!("router.{what}.{group}"), k);
                    map.insert(group.clone(), targets);
                }
            }
        }
        let r = &mut self.out.raw.router;
        match what {
            "fallbacks" => r.fallbacks = map,
            "context_window_fallbacks" => r.context_window_fallbacks = map,
            _ => r.content_policy_fallbacks = map,
        }
        self.map(format!("router.{what}"), key);
        if let Some((targets, k)) = star {
            // `{"*": [...]}` is LiteLLM's fallback for every group: default_fallbacks here.
            if self.out.raw.router.default_fallbacks.is_empty() {
                self.out.raw.router.default_fallbacks = targets;
                self.map("router.default_fallbacks", k);
            } else {
                self.warn(&k, Some("default_fallbacks is set as well (it is used)"));
            }
        }
    }

    fn model(&mut self, i: usize, entry: &Value) {
        let base = format!("model_list[{i}]");
        let Value::Object(entry) = entry else {
            self.err(&base, "must be a map with model_name and litellm_params");
            return;
        };
        let name = match entry.get("model_name") {
            None | Some(Value::Null) => {
                self.err(&format!("{base}.model_name"), "missing");
                None
            }
            Some(v) => self.string(&format!("{base}.model_name"), v),
        };
        let empty = Map::new();
        let params = match entry.get("litellm_params") {
            Some(Value::Object(p)) => p,
            None | Some(Value::Null) => {
                self.err(&format!("{base}.litellm_params"), "missing");
                &empty
            }
            Some(_) => {
                self.err(&format!("{base}.litellm_params"), "must be a map");
                &empty
            }
        };
        let lp = format!("{base}.litellm_params");
        let model = match params.get("model") {
            None | Some(Value::Null) => {
                if entry.get("litellm_params").is_some_and(Value::is_object) {
                    self.err(&format!("{lp}.model"), "missing");
                }
                None
            }
            Some(v) => match self.scalar(&format!("{lp}.model"), v) {
                Some(Scalar::Text(t) | Scalar::FromEnv(_, t)) => Some(t),
                None => None,
            },
        };
        let (Some(name), Some(model)) = (name, model) else {
            return;
        };
        if name == "*" || model == "*" {
            self.warn(
                &base,
                Some(
                    "a route for every model of every provider is not supported \
                     (write one `provider/*` entry per provider)",
                ),
            );
            return;
        }
        let provider = match params.get("custom_llm_provider") {
            None | Some(Value::Null) => None,
            Some(v) => self.string(&format!("{lp}.custom_llm_provider"), v),
        };
        let model = match provider {
            Some(p) if model.starts_with(&format!("{p}/")) => model,
            Some(p) => format!("{p}/{model}"),
            None if model.contains('/') => model,
            None => match infer_provider(&model) {
                Some(p) => format!("{p}/{model}"),
                None => {
                    self.err(
                        &format!("{lp}.model"),
                        format!(
                            "cannot tell the provider of '{model}': write it as provider/model \
                             (e.g. openai/{model}); only gpt-*, o1*/o3*/o4*, text-embedding-*, \
                             claude-* and gemini-* are inferred"
                        ),
                    );
                    return;
                }
            },
        };

        let k = self.out.raw.models.len();
        let nat = |f: &str| format!("models[{k}].{f}");
        self.map(format!("models[{k}]"), base.clone());
        self.map(nat("name"), format!("{base}.model_name"));
        self.map(nat("model"), format!("{lp}.model"));
        self.map(nat("params"), lp.clone());
        let mut m = RawModel {
            name,
            model,
            ..RawModel::default()
        };
        for (pk, v) in params {
            let key = format!("{lp}.{pk}");
            if v.is_null() {
                continue;
            }
            let native = match pk.as_str() {
                "model" | "custom_llm_provider" => continue,
                "api_base" => {
                    m.api_base = self.string(&key, v);
                    "api_base"
                }
                "api_key" => {
                    m.api_key = self.string(&key, v);
                    "api_key"
                }
                "api_version" => {
                    m.api_version = self.scalar(&key, v).map(|s| match s {
                        Scalar::Text(t) => t,
                        // Keep the reference so the native checks remember it.
                        Scalar::FromEnv(name, _) => format!("os.environ/{name}"),
                    });
                    "api_version"
                }
                "organization" => {
                    m.organization = self.string(&key, v);
                    "organization"
                }
                "rpm" => {
                    m.rpm = self.count(&key, v);
                    "rpm"
                }
                "tpm" => {
                    m.tpm = self.count(&key, v);
                    "tpm"
                }
                "weight" => {
                    m.weight = self.count(&key, v);
                    "weight"
                }
                "order" => {
                    m.order = self.count(&key, v);
                    "order"
                }
                "max_retries" => {
                    m.max_retries = self.count(&key, v);
                    "max_retries"
                }
                "timeout" => {
                    m.timeout = self.seconds(&key, v);
                    "timeout"
                }
                "stream_timeout" => {
                    m.stream_timeout = self.seconds(&key, v);
                    "stream_timeout"
                }
                "input_cost_per_token" => {
                    m.input_cost_per_token = self.decimal(&key, v);
                    "input_cost_per_token"
                }
                "output_cost_per_token" => {
                    m.output_cost_per_token = self.decimal(&key, v);
                    "output_cost_per_token"
                }
                "tags" => {
                    m.tags = self.string_list(&key, v).unwrap_or_default();
                    "tags"
                }
                "extra_headers" | "headers" => {
                    let Value::Object(h) = v else {
                        self.err(&key, "must be a map of header names to values");
                        continue;
                    };
                    for (hn, hv) in h {
                        if let Some(s) = self.string(&format!("{key}.{hn}"), hv) {
                            m.headers.insert(hn.clone(), s);
                            self.map(nat(&format!("headers.{hn}")), format!("{key}.{hn}"));
                        }
                    }
                    continue;
                }
                p if PARAM_KEYS.contains(&p) || p.starts_with("aws_") => {
                    m.params.insert(pk.clone(), v.clone());
                    continue;
                }
                "drop_params" => {
                    self.warn(
                        &key,
                        Some("drop_params is gateway-wide in llmux (settings.drop_params)"),
                    );
                    continue;
                }
                _ => {
                    self.warn(&key, None);
                    continue;
                }
            };
            self.map(nat(native), key);
        }

        match entry.get("model_info") {
            None | Some(Value::Null) => {}
            Some(Value::Object(info)) => {
                for (ik, v) in info {
                    let key = format!("{base}.model_info.{ik}");
                    if v.is_null() {
                        continue;
                    }
                    let native = match ik.as_str() {
                        "id" => {
                            m.id = match v {
                                Value::Number(n) => Some(n.to_string()),
                                other => self.string(&key, other),
                            };
                            "id"
                        }
                        "base_model" => {
                            m.base_model = self.string(&key, v);
                            "base_model"
                        }
                        "max_input_tokens" => {
                            m.max_input_tokens = self.count(&key, v);
                            "max_input_tokens"
                        }
                        // litellm_params wins when both set a price, as in LiteLLM.
                        "input_cost_per_token" if m.input_cost_per_token.is_none() => {
                            m.input_cost_per_token = self.decimal(&key, v);
                            "input_cost_per_token"
                        }
                        "output_cost_per_token" if m.output_cost_per_token.is_none() => {
                            m.output_cost_per_token = self.decimal(&key, v);
                            "output_cost_per_token"
                        }
                        "input_cost_per_token" | "output_cost_per_token" => continue,
                        _ => {
                            self.warn(&key, None);
                            continue;
                        }
                    };
                    self.map(nat(native), key);
                }
            }
            Some(_) => self.err(&format!("{base}.model_info"), "must be a map"),
        }

        for (ek, v) in entry {
            let key = format!("{base}.{ek}");
            match ek.as_str() {
                "model_name" | "litellm_params" | "model_info" => {}
                _ if v.is_null() => {}
                // Older configs put rpm/tpm next to model_name; litellm_params wins.
                "rpm" if m.rpm.is_none() => {
                    m.rpm = self.count(&key, v);
                    self.map(nat("rpm"), key);
                }
                "tpm" if m.tpm.is_none() => {
                    m.tpm = self.count(&key, v);
                    self.map(nat("tpm"), key);
                }
                "rpm" | "tpm" => {}
                _ => self.warn(&key, None),
            }
        }
        self.out.raw.models.push(m);
    }
}

/// Whether llmux has a sink for the LiteLLM callback `name`: a built-in name, or a
/// `callback_settings` entry whose `callback_type` is one (`generic_api`). The error says
/// why not.
fn sink_for(name: &str, settings: &BTreeMap<String, Map<String, Value>>) -> Result<(), String> {
    let entry = settings
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v);
    let kind = entry.and_then(|e| {
        ["callback_type", "type"]
            .iter()
            .find_map(|k| e.get(*k).and_then(Value::as_str))
    });
    match kind {
        Some(t) if is_builtin_sink(t) => Ok(()),
        Some(t) => Err(format!(
            "llmux has no sink of type '{t}' (built in: {})",
            BUILTIN_SINK_NAMES.join(", ")
        )),
        None if is_builtin_sink(name) => Ok(()),
        None if name.contains('.') => Err(
            "a Python callback object is not supported (llmux sinks are Rust plugins, see \
             docs/observability.md)"
                .into(),
        ),
        None => Err(format!(
            "llmux has no sink named '{name}' (built in: {})",
            BUILTIN_SINK_NAMES.join(", ")
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Percent-encode everything but unreserved characters (for a password inside a URL).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_covers_the_unambiguous_families() {
        for (m, p) in [
            ("gpt-4o", Some("openai")),
            ("gpt-4o-mini", Some("openai")),
            ("o3-mini", Some("openai")),
            ("text-embedding-3-small", Some("openai")),
            ("claude-3-5-sonnet-20241022", Some("anthropic")),
            ("gemini-1.5-pro", Some("vertex_ai")),
            ("llama3", None),
            ("mistral-large", None),
        ] {
            assert_eq!(infer_provider(m), p, "{m}");
        }
    }
}
