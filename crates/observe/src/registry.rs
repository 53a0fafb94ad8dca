//! Sinks as plugins: the [`SinkFactory`] registry and building the sinks a configuration
//! names.
//!
//! A sink crate implements [`CallSink`] and registers a [`SinkFactory`] with
//! `llmux_observe::inventory::submit!`; whoever links the crate can name the sink in
//! `settings.callbacks`. The built-in sinks (`metrics`, `otel`, `langfuse`, `webhook`,
//! `jsonl`) are always present and come first, so a plugin cannot shadow them.
//!
//! A configuration names sinks in `callbacks` and gives each its own settings in
//! `callback_settings` (a JSON object per name). [`SinkSet::build`] resolves the names
//! (case-insensitive, aliases included), hands each factory a [`SinkContext`] (its
//! settings and the environment), and collects what the factories started, along with the
//! sinks to flush at shutdown ([`Flush`]) and warnings (unknown setting keys, sinks listed
//! but left unconfigured).
//!
//! A `callback_settings` entry with a `type` (or LiteLLM's `callback_type`) names a sink
//! *instance*: `audit: {type: webhook, url: …}` listed as `audit` builds a webhook sink
//! named `audit`, so one kind of sink can run several times.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use llmux_core::{CallSink, JsonObject, Secret};
use serde_json::Value;

use crate::{BatchConfig, ConfigError};

/// Reads an environment variable; injected so factories can be tested without the process
/// environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What a [`SinkFactory`] returns: the sink, `None` when nothing configures it, or why its
/// configuration is unusable.
pub type BuiltSink = Result<Option<Arc<dyn CallSink>>, ConfigError>;

/// A sink that holds records back (in a batch or a buffer) and can be told to deliver
/// them now, e.g. at shutdown once the meter's queues drained.
#[async_trait]
pub trait Flush: Send + Sync + fmt::Debug {
    /// Deliver everything received so far, and wait until that is done.
    async fn flush(&self);
}

/// A sink plugin: how to build its [`CallSink`] from settings and the environment.
pub struct SinkFactory {
    /// The name used in `callbacks` (`jsonl`). Lower case.
    pub name: &'static str,
    /// Other names it answers to (LiteLLM's callback names, e.g. `generic_api`).
    pub aliases: &'static [&'static str],
    /// One line for listings and docs.
    pub description: &'static str,
    /// The `callback_settings` keys it reads; any other key is reported as a warning.
    pub settings: &'static [&'static str],
    /// Build the sink. `Ok(None)` when its required settings or environment are absent
    /// (nothing to send to); an error when they are present but unusable. A sink that
    /// buffers registers itself with [`SinkContext::flush_at_shutdown`].
    pub build: fn(&SinkContext<'_>) -> BuiltSink,
}

impl fmt::Debug for SinkFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkFactory")
            .field("name", &self.name)
            .field("aliases", &self.aliases)
            .finish_non_exhaustive()
    }
}

impl SinkFactory {
    /// True when `name` is this factory's name or one of its aliases (ASCII case ignored).
    pub fn answers_to(&self, name: &str) -> bool {
        let name = name.trim();
        self.name.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

inventory::collect!(SinkFactory);

/// Every sink this binary can build: the built-ins, then every linked plugin.
pub fn sinks() -> impl Iterator<Item = &'static SinkFactory> {
    crate::builtin::FACTORIES
        .iter()
        .chain(inventory::iter::<SinkFactory>)
}

/// The sink answering to `name` (case-insensitive, aliases included).
pub fn find_sink(name: &str) -> Option<&'static SinkFactory> {
    sinks().find(|f| f.answers_to(name))
}

/// Every name and alias, for messages: `jsonl, otel (opentelemetry, otlp), …`.
fn known_names() -> String {
    let mut names: Vec<String> = sinks()
        .map(|f| {
            if f.aliases.is_empty() {
                f.name.to_owned()
            } else {
                format!("{} ({})", f.name, f.aliases.join(", "))
            }
        })
        .collect();
    names.sort();
    names.dedup();
    names.join(", ")
}

/// The sinks [`SinkSet::build_with_defaults`] adds to those listed: metrics always, and
/// OpenTelemetry and Langfuse whenever their settings or environment configure them.
pub const DEFAULT_SINKS: [&str; 3] = ["metrics", "otel", "langfuse"];

/// The settings keys that name a sink instance's kind instead of configuring it.
const TYPE_KEYS: [&str; 2] = ["type", "callback_type"];

/// What one factory gets: the sink's name, its settings, the environment, and where to
/// register for flushing at shutdown.
pub struct SinkContext<'a> {
    name: &'a str,
    prefix: String,
    settings: &'a JsonObject,
    env: EnvLookup<'a>,
    flush: RefCell<Vec<Arc<dyn Flush>>>,
    warnings: RefCell<Vec<String>>,
}

impl fmt::Debug for SinkContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.settings.keys().map(String::as_str).collect();
        f.debug_struct("SinkContext")
            .field("name", &self.name)
            .field("settings", &keys)
            .finish_non_exhaustive()
    }
}

impl<'a> SinkContext<'a> {
    /// A context for the sink `name` with `settings` (messages call them
    /// `callback_settings.{name}.…`) and the environment `env`.
    pub fn new(name: &'a str, settings: &'a JsonObject, env: EnvLookup<'a>) -> Self {
        Self::with_prefix(name, format!("callback_settings.{name}"), settings, env)
    }

    fn with_prefix(
        name: &'a str,
        prefix: String,
        settings: &'a JsonObject,
        env: EnvLookup<'a>,
    ) -> Self {
        Self {
            name,
            prefix,
            settings,
            env,
            flush: RefCell::new(Vec::new()),
            warnings: RefCell::new(Vec::new()),
        }
    }

    /// The sink's name for logs and metrics: the factory's name, or the instance name for
    /// a `callback_settings` entry with a `type`.
    pub fn name(&self) -> &str {
        self.name
    }

    /// The sink's own settings (empty when the configuration gives none).
    pub fn settings(&self) -> &JsonObject {
        self.settings
    }

    /// A variable's value, trimmed; unset and blank are both `None`.
    pub fn env(&self, var: &str) -> Option<String> {
        crate::env::var(self.env, var)
    }

    /// The environment lookup itself (for `OtlpConfig::from_env_with` and the like).
    pub fn env_lookup(&self) -> EnvLookup<'a> {
        self.env
    }

    /// How messages name the setting `key`: `callback_settings.jsonl.path`.
    pub fn setting_name(&self, key: &str) -> String {
        format!("{}.{key}", self.prefix)
    }

    fn invalid(&self, key: &str, message: &str) -> ConfigError {
        ConfigError::InvalidSetting {
            setting: self.setting_name(key),
            message: message.to_owned(),
        }
    }

    /// A string setting, trimmed. Absent or null: `None`; another type or blank: an error.
    pub fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.settings.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            Some(Value::String(_)) => Err(self.invalid(key, "must not be empty")),
            Some(_) => Err(self.invalid(key, "must be a string")),
        }
    }

    /// A positive whole number, written as a number or a string of digits.
    pub fn number(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        let n = match self.settings.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        n.filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| self.invalid(key, "must be a positive whole number"))
    }

    /// `true` or `false` (also as strings).
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.settings.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(self.invalid(key, "must be true or false")),
        }
    }

    /// A map of header names to values (`{authorization: "Bearer …"}`), names in lower
    /// case, values held as secrets.
    pub fn headers(&self, key: &str) -> Result<Vec<(String, Secret)>, ConfigError> {
        match self.settings.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(name, value)| match value {
                    Value::String(v) if !name.trim().is_empty() => {
                        Ok((name.trim().to_ascii_lowercase(), Secret::new(v.as_str())))
                    }
                    _ => Err(self.invalid(
                        &format!("{key}.{name}"),
                        "must be a header name with a string value",
                    )),
                })
                .collect(),
            Some(_) => Err(self.invalid(key, "must be a map of header names to values")),
        }
    }

    /// `default` with the batching settings applied: `batch_size` (records per export),
    /// `flush_interval_ms`, `queue_size` and `timeout_ms`.
    pub fn batch(&self, default: BatchConfig) -> Result<BatchConfig, ConfigError> {
        let mut b = default;
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        if let Some(n) = self.number("batch_size")? {
            b.max_batch = size(n);
        }
        if let Some(n) = self.number("flush_interval_ms")? {
            b.interval = Duration::from_millis(n);
        }
        if let Some(n) = self.number("queue_size")? {
            b.queue = size(n);
        }
        if let Some(n) = self.number("timeout_ms")? {
            b.timeout = Duration::from_millis(n);
        }
        Ok(b)
    }

    /// Flush `sink` when the gateway shuts down ([`SinkSet::flush`]).
    pub fn flush_at_shutdown(&self, sink: Arc<dyn Flush>) {
        self.flush.borrow_mut().push(sink);
    }

    /// Report something the operator should know (it is logged when the sinks are built).
    pub fn warn(&self, message: impl Into<String>) {
        self.warnings.borrow_mut().push(message.into());
    }
}

/// The sinks a configuration names, built: hand [`SinkSet::sinks`] to the meter, keep the
/// set, and call [`SinkSet::flush`] at shutdown after the meter's queues drained.
#[derive(Debug, Clone, Default)]
pub struct SinkSet {
    sinks: Vec<Arc<dyn CallSink>>,
    flush: Vec<Arc<dyn Flush>>,
    warnings: Vec<String>,
}

/// One sink to build, resolved.
struct Plan<'s> {
    /// The name as listed.
    written: &'s str,
    factory: &'static SinkFactory,
    /// The instance name, for a settings entry with a `type`.
    instance: Option<&'s str>,
    /// The settings entry used, and its key.
    settings: Option<(&'s str, &'s JsonObject)>,
    /// Listed by the configuration (not only a default).
    explicit: bool,
}

impl SinkSet {
    /// Build the sinks `names` lists, with `settings` (`callback_settings`) and the
    /// environment `env`. Names are matched case-insensitively, aliases included; a name
    /// no sink answers to is an error naming the known ones. A sink listed twice (under
    /// two of its names, say `otel` and `otlp`) is built once. Every name is resolved
    /// before any sink starts. Warnings are logged and kept in [`SinkSet::warnings`].
    ///
    /// Call inside a tokio runtime: exporting sinks start a task.
    pub fn build(
        names: &[String],
        settings: &BTreeMap<String, JsonObject>,
        env: EnvLookup<'_>,
    ) -> Result<Self, ConfigError> {
        Self::assemble(&[], names, settings, env)
    }

    /// [`SinkSet::build`], with the [`DEFAULT_SINKS`] first: metrics always, OpenTelemetry
    /// and Langfuse when configured (silently left out when not). This is what llmux did
    /// before sinks were configurable.
    pub fn build_with_defaults(
        names: &[String],
        settings: &BTreeMap<String, JsonObject>,
        env: EnvLookup<'_>,
    ) -> Result<Self, ConfigError> {
        Self::assemble(&DEFAULT_SINKS, names, settings, env)
    }

    fn assemble(
        defaults: &[&str],
        names: &[String],
        settings: &BTreeMap<String, JsonObject>,
        env: EnvLookup<'_>,
    ) -> Result<Self, ConfigError> {
        let mut warnings = Vec::new();
        let listed = defaults
            .iter()
            .map(|n| (*n, false))
            .chain(names.iter().map(|n| (n.as_str(), true)));
        let mut plans: Vec<Plan<'_>> = Vec::new();
        for (written, explicit) in listed {
            let plan = resolve(written.trim(), settings, explicit)?;
            match plans.iter_mut().find(|p| same_sink(p, &plan)) {
                Some(p) => p.explicit |= plan.explicit,
                None => plans.push(plan),
            }
        }
        for key in settings.keys() {
            let used = plans
                .iter()
                .any(|p| p.settings.is_some_and(|(k, _)| k == key));
            if !used {
                warnings.push(format!(
                    "callback_settings.{key}: no sink of that name is listed in callbacks; ignored"
                ));
            }
        }

        let empty = JsonObject::new();
        let mut set = SinkSet::default();
        for plan in &plans {
            let (prefix_key, sink_settings) = plan.settings.unwrap_or((plan.written, &empty));
            let name = plan.instance.unwrap_or(plan.factory.name);
            let cx = SinkContext::with_prefix(
                name,
                format!("callback_settings.{prefix_key}"),
                sink_settings,
                env,
            );
            for key in sink_settings.keys() {
                let known = plan.factory.settings.contains(&key.as_str())
                    || TYPE_KEYS.contains(&key.as_str());
                if !known {
                    let takes = if plan.factory.settings.is_empty() {
                        "none".to_owned()
                    } else {
                        plan.factory.settings.join(", ")
                    };
                    cx.warn(format!(
                        "callback_settings.{prefix_key}.{key}: not a setting of the '{}' sink \
                         (it takes: {takes}); ignored",
                        plan.factory.name
                    ));
                }
            }
            let built = (plan.factory.build)(&cx)?;
            match built {
                Some(sink) => set.sinks.push(sink),
                None if plan.explicit => cx.warn(format!(
                    "sink '{}' is listed in callbacks, but neither its settings nor the \
                     environment configure it; skipped",
                    plan.written
                )),
                None => {}
            }
            set.flush.extend(cx.flush.into_inner());
            warnings.extend(cx.warnings.into_inner());
        }
        for w in &warnings {
            tracing::warn!("{w}");
        }
        set.warnings = warnings;
        Ok(set)
    }

    /// The sinks, in order: defaults first, then as listed.
    pub fn sinks(&self) -> &[Arc<dyn CallSink>] {
        &self.sinks
    }

    /// The sinks, without the means to flush them.
    pub fn into_sinks(self) -> Vec<Arc<dyn CallSink>> {
        self.sinks
    }

    /// The sinks' names ([`CallSink::name`]).
    pub fn names(&self) -> Vec<&str> {
        self.sinks.iter().map(|s| s.name()).collect()
    }

    /// What was reported while building (already logged).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Deliver what every buffering sink holds, one after the other, and wait for it.
    pub async fn flush(&self) {
        for sink in &self.flush {
            sink.flush().await;
        }
    }
}

/// Two plans build the same sink: the same instance, or the same factory without one.
fn same_sink(a: &Plan<'_>, b: &Plan<'_>) -> bool {
    match (a.instance, b.instance) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        (None, None) => std::ptr::eq(a.factory, b.factory),
        _ => false,
    }
}

/// The type a settings entry names (`type`, or LiteLLM's `callback_type`), if any.
fn instance_type<'s>(key: &str, entry: &'s JsonObject) -> Result<Option<&'s str>, ConfigError> {
    for k in TYPE_KEYS {
        match entry.get(k) {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) if !t.trim().is_empty() => return Ok(Some(t.trim())),
            Some(_) => {
                return Err(ConfigError::InvalidSetting {
                    setting: format!("callback_settings.{key}.{k}"),
                    message: "must be the name of a sink".into(),
                });
            }
        }
    }
    Ok(None)
}

/// Which factory builds `name`, and with which settings entry.
fn resolve<'s>(
    name: &'s str,
    settings: &'s BTreeMap<String, JsonObject>,
    explicit: bool,
) -> Result<Plan<'s>, ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::InvalidSetting {
            setting: "callbacks".into(),
            message: "has an empty sink name".into(),
        });
    }
    let direct = find_sink(name);
    // Settings under the name as listed, or (for a sink found by name) under another of
    // its names: `otel` may be configured under `callback_settings.otlp`.
    let mut candidates: Vec<(&'s str, &'s JsonObject)> = Vec::new();
    for (k, v) in settings {
        let same_name = k.trim().eq_ignore_ascii_case(name);
        let same_factory = direct.is_some_and(|f| f.answers_to(k))
            && !v.keys().any(|x| TYPE_KEYS.contains(&x.as_str()));
        if same_name || same_factory {
            candidates.push((k.as_str(), v));
        }
    }
    if candidates.len() > 1 {
        let keys: Vec<&str> = candidates.iter().map(|(k, _)| *k).collect();
        return Err(ConfigError::InvalidSetting {
            setting: "callback_settings".into(),
            message: format!(
                "configures the sink '{name}' under several names ({}): keep one",
                keys.join(", ")
            ),
        });
    }
    let entry = candidates.pop();
    if let Some((key, obj)) = entry
        && let Some(kind) = instance_type(key, obj)?
    {
        let factory = find_sink(kind).ok_or_else(|| ConfigError::UnknownSink {
            name: kind.to_owned(),
            known: known_names(),
        })?;
        return Ok(Plan {
            written: name,
            factory,
            instance: Some(name),
            settings: entry,
            explicit,
        });
    }
    let factory = direct.ok_or_else(|| ConfigError::UnknownSink {
        name: name.to_owned(),
        known: known_names(),
    })?;
    Ok(Plan {
        written: name,
        factory,
        instance: None,
        settings: entry,
        explicit,
    })
}

/// Build the sinks `names` lists (see [`SinkSet::build`]), for a caller that does not
/// flush at shutdown. Exporting sinks still send what they hold once every handle to
/// them is dropped, while the runtime runs.
pub fn build_sinks(
    names: &[String],
    settings: &BTreeMap<String, JsonObject>,
    env: EnvLookup<'_>,
) -> Result<Vec<Arc<dyn CallSink>>, ConfigError> {
    SinkSet::build(names, settings, env).map(SinkSet::into_sinks)
}

#[async_trait]
impl Flush for crate::OtlpSink {
    async fn flush(&self) {
        crate::OtlpSink::flush(self).await;
    }
}

#[async_trait]
impl Flush for crate::LangfuseSink {
    async fn flush(&self) {
        crate::LangfuseSink::flush(self).await;
    }
}

#[async_trait]
impl Flush for crate::WebhookSink {
    async fn flush(&self) {
        crate::WebhookSink::flush(self).await;
    }
}

#[async_trait]
impl Flush for crate::JsonlSink {
    async fn flush(&self) {
        crate::JsonlSink::flush(self).await;
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    use llmux_core::CallRecord;
    use serde_json::json;

    use super::*;

    /// A plugin, registered the way a sink crate does it.
    #[derive(Debug, Default)]
    struct Counting {
        seen: AtomicU64,
        flushed: AtomicU64,
    }

    #[async_trait]
    impl CallSink for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        async fn record(&self, _record: Arc<CallRecord>) {
            self.seen.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[async_trait]
    impl Flush for Counting {
        async fn flush(&self) {
            self.flushed.fetch_add(1, Ordering::Relaxed);
        }
    }

    static LAST_COUNTING: std::sync::Mutex<Option<Arc<Counting>>> = std::sync::Mutex::new(None);

    fn build_counting(cx: &SinkContext<'_>) -> BuiltSink {
        if cx.boolean("off")? == Some(true) {
            return Ok(None);
        }
        let sink = Arc::new(Counting::default());
        cx.flush_at_shutdown(sink.clone());
        *LAST_COUNTING.lock().unwrap() = Some(sink.clone());
        Ok(Some(sink))
    }

    crate::inventory::submit! {
        SinkFactory {
            name: "counting",
            aliases: &["tally"],
            description: "counts records (test plugin)",
            settings: &["off"],
            build: build_counting,
        }
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn settings(v: serde_json::Value) -> BTreeMap<String, JsonObject> {
        serde_json::from_value(v).unwrap()
    }

    fn temp_file(tag: &str) -> PathBuf {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "llmux-observe-registry-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("calls.jsonl")
    }

    #[test]
    fn builtins_answer_to_every_name_and_alias_in_any_case() {
        for (name, want) in [
            ("metrics", "metrics"),
            ("Prometheus", "metrics"),
            ("otel", "otel"),
            ("OpenTelemetry", "otel"),
            ("OTLP", "otel"),
            ("langfuse", "langfuse"),
            ("webhook", "webhook"),
            ("generic_api", "webhook"),
            ("generic", "webhook"),
            (" jsonl ", "jsonl"),
            ("tally", "counting"),
        ] {
            assert_eq!(find_sink(name).map(|f| f.name), Some(want), "{name}");
        }
        assert!(find_sink("datadog").is_none());
        assert!(find_sink("").is_none());
        // The built-ins come first, so a plugin cannot shadow them.
        let first: Vec<&str> = sinks().take(5).map(|f| f.name).collect();
        assert_eq!(first, ["metrics", "otel", "langfuse", "webhook", "jsonl"]);
    }

    #[test]
    fn the_config_crate_knows_exactly_the_builtin_names() {
        let mut ours: Vec<&str> = crate::builtin::FACTORIES
            .iter()
            .flat_map(|f| std::iter::once(f.name).chain(f.aliases.iter().copied()))
            .collect();
        let mut theirs = llmux_config::BUILTIN_SINK_NAMES.to_vec();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn an_unknown_name_is_an_error_listing_the_known_ones() {
        let err =
            build_sinks(&names(&["langfuse", "datadog"]), &BTreeMap::new(), &no_env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("unknown sink 'datadog' (known: "), "{msg}");
        for part in [
            "jsonl",
            "langfuse",
            "metrics (prometheus)",
            "otel (opentelemetry, otlp)",
            "webhook (generic_api, generic)",
            "counting (tally)",
        ] {
            assert!(msg.contains(part), "{part} missing from {msg}");
        }
        let err = build_sinks(&names(&[" "]), &BTreeMap::new(), &no_env).unwrap_err();
        assert_eq!(err.to_string(), "callbacks has an empty sink name");
    }

    #[test]
    fn defaults_are_metrics_and_whatever_the_environment_configures() {
        let set = SinkSet::build(&[], &BTreeMap::new(), &no_env).unwrap();
        assert!(set.sinks().is_empty());
        let set = SinkSet::build_with_defaults(&[], &BTreeMap::new(), &no_env).unwrap();
        assert_eq!(set.names(), ["metrics"]);
        assert!(set.warnings().is_empty(), "{:?}", set.warnings());
        // Listing a default again builds it once, under any of its names.
        let set = SinkSet::build_with_defaults(&names(&["Prometheus"]), &BTreeMap::new(), &no_env)
            .unwrap();
        assert_eq!(set.names(), ["metrics"]);
    }

    #[tokio::test]
    async fn the_environment_turns_on_otel_and_langfuse_by_default() {
        let env = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/"),
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
            ("LANGFUSE_SECRET_KEY", "sk-lf-1"),
        ]);
        let set = SinkSet::build_with_defaults(&names(&["otlp"]), &BTreeMap::new(), &env).unwrap();
        assert_eq!(set.names(), ["metrics", "otlp", "langfuse"]);
        assert!(set.warnings().is_empty(), "{:?}", set.warnings());
    }

    #[test]
    fn a_listed_sink_nothing_configures_is_skipped_with_a_warning() {
        let set = SinkSet::build(
            &names(&["langfuse", "jsonl", "webhook", "otel"]),
            &BTreeMap::new(),
            &no_env,
        )
        .unwrap();
        assert!(set.sinks().is_empty());
        assert_eq!(set.warnings().len(), 4, "{:?}", set.warnings());
        assert!(
            set.warnings()[0].starts_with("sink 'langfuse' is listed in callbacks, but neither"),
            "{}",
            set.warnings()[0]
        );
        assert!(set.warnings().iter().all(|w| w.ends_with("skipped")));
    }

    #[test]
    fn langfuse_needs_both_keys_from_settings_or_environment() {
        let s = settings(json!({"langfuse": {"public_key": "pk-lf-1"}}));
        let err = build_sinks(&names(&["langfuse"]), &s, &no_env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "callback_settings.langfuse.public_key is set but \
             callback_settings.langfuse.secret_key (or LANGFUSE_SECRET_KEY) is not"
        );
        let env = env_of(&[("LANGFUSE_SECRET_KEY", "sk-lf-secret")]);
        let err = build_sinks(&names(&["langfuse"]), &BTreeMap::new(), &env).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("LANGFUSE_SECRET_KEY is set but"),
            "{err}"
        );
        assert!(!err.to_string().contains("sk-lf-secret"));
        let s = settings(json!({"langfuse": {"public_key": "pk", "host": "cloud.langfuse.com"}}));
        let err = build_sinks(&names(&["langfuse"]), &s, &env).unwrap_err();
        assert_eq!(
            err,
            ConfigError::InvalidUrl {
                setting: "callback_settings.langfuse.host".into()
            }
        );
    }

    #[tokio::test]
    async fn langfuse_mixes_settings_and_environment() {
        let env = env_of(&[("LANGFUSE_SECRET_KEY", "sk-lf-secret")]);
        let s = settings(json!({"langfuse": {"public_key": "pk-lf-1", "batch_size": 10}}));
        let set = SinkSet::build(&names(&["langfuse"]), &s, &env).unwrap();
        assert_eq!(set.names(), ["langfuse"]);
        assert!(!format!("{set:?}").contains("sk-lf-secret"));
    }

    #[tokio::test]
    async fn one_sink_per_kind_whatever_name_lists_it_and_settings_under_an_alias() {
        let s = settings(json!({"otlp": {"endpoint": "http://127.0.0.1:9/v1/traces",
                                         "headers": {"api-key": "k"}}}));
        let set = SinkSet::build(&names(&["otel", "OTLP", "opentelemetry"]), &s, &no_env).unwrap();
        assert_eq!(set.names(), ["otlp"]);
        assert!(set.warnings().is_empty(), "{:?}", set.warnings());

        let twice = settings(json!({"otel": {}, "otlp": {}}));
        let err = build_sinks(&names(&["otel"]), &twice, &no_env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "callback_settings configures the sink 'otel' under several names (otel, otlp): \
             keep one"
        );
    }

    #[tokio::test]
    async fn a_typed_settings_entry_is_a_named_instance() {
        let s = settings(json!({
            "audit": {"type": "webhook", "url": "http://127.0.0.1:9/audit"},
            "billing": {"callback_type": "generic_api", "endpoint": "http://127.0.0.1:9/b",
                        "headers": {"authorization": "Bearer t"}},
        }));
        let set = SinkSet::build(
            &names(&["audit", "billing", "Audit", "webhook"]),
            &s,
            &no_env,
        )
        .unwrap();
        // `webhook` itself has no URL: skipped, with a warning.
        assert_eq!(set.names(), ["audit", "billing"]);
        assert_eq!(set.warnings().len(), 1, "{:?}", set.warnings());

        let bad = settings(json!({"audit": {"type": "s3"}}));
        let err = build_sinks(&names(&["audit"]), &bad, &no_env).unwrap_err();
        assert!(err.to_string().starts_with("unknown sink 's3'"), "{err}");
        let bad = settings(json!({"audit": {"type": 3}}));
        let err = build_sinks(&names(&["audit"]), &bad, &no_env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "callback_settings.audit.type must be the name of a sink"
        );
    }

    #[test]
    fn settings_are_type_checked_and_unknown_keys_reported() {
        let cases = [
            (
                json!({"jsonl": {"path": 3}}),
                "jsonl",
                "callback_settings.jsonl.path must be a string",
            ),
            (
                json!({"jsonl": {"path": " "}}),
                "jsonl",
                "callback_settings.jsonl.path must not be empty",
            ),
            (
                json!({"webhook": {"url": "http://x/", "batch_size": 0}}),
                "webhook",
                "callback_settings.webhook.batch_size must be a positive whole number",
            ),
            (
                json!({"webhook": {"url": "not a url"}}),
                "webhook",
                "callback_settings.webhook.url is not an absolute http:// or https:// URL",
            ),
            (
                json!({"generic_api": {"endpoint": "http://x/", "headers": ["a"]}}),
                "generic_api",
                "callback_settings.generic_api.headers must be a map of header names to values",
            ),
            (
                json!({"otel": {"endpoint": "http://x/", "headers": {"a": 1}}}),
                "otel",
                "callback_settings.otel.headers.a must be a header name with a string value",
            ),
        ];
        for (s, name, want) in cases {
            let err = build_sinks(&names(&[name]), &settings(s), &no_env).unwrap_err();
            assert_eq!(err.to_string(), want);
        }

        let s = settings(json!({
            "tally": {"colour": "red"},
            "jsonl": {"path": "/tmp/x"},
        }));
        let set = SinkSet::build(&names(&["counting"]), &s, &no_env).unwrap();
        assert_eq!(
            set.warnings(),
            [
                "callback_settings.jsonl: no sink of that name is listed in callbacks; ignored",
                "callback_settings.tally.colour: not a setting of the 'counting' sink \
                 (it takes: off); ignored",
            ]
        );
    }

    #[tokio::test]
    async fn a_plugin_is_built_fed_and_flushed() {
        let s = settings(json!({"counting": {"off": false}}));
        let set = SinkSet::build(&names(&["Tally"]), &s, &no_env).unwrap();
        assert_eq!(set.names(), ["counting"]);
        let counting = LAST_COUNTING.lock().unwrap().clone().unwrap();
        for sink in set.sinks() {
            sink.record(Arc::new(CallRecord::default())).await;
        }
        set.flush().await;
        assert_eq!(counting.seen.load(Ordering::Relaxed), 1);
        assert_eq!(counting.flushed.load(Ordering::Relaxed), 1);

        let off = settings(json!({"counting": {"off": "true"}}));
        let set = SinkSet::build(&names(&["counting"]), &off, &no_env).unwrap();
        assert!(set.sinks().is_empty());
    }

    #[tokio::test]
    async fn jsonl_from_settings_or_environment_writes_on_flush() {
        let path = temp_file("settings");
        let s = settings(json!({"jsonl": {"path": path.display().to_string(),
                                          "flush_interval_ms": 3_600_000}}));
        let set = SinkSet::build(&names(&["jsonl"]), &s, &no_env).unwrap();
        for id in ["a", "b", "c"] {
            let r = CallRecord {
                request_id: id.into(),
                ..CallRecord::default()
            };
            set.sinks()[0].record(Arc::new(r)).await;
        }
        set.flush().await;
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<CallRecord>(l).unwrap().request_id)
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);

        let path = temp_file("env");
        let leaked: &'static str = Box::leak(path.display().to_string().into_boxed_str());
        let env = move |k: &str| (k == "LLMUX_JSONL_PATH").then(|| leaked.to_owned());
        let set = SinkSet::build(&names(&["JSONL"]), &BTreeMap::new(), &env).unwrap();
        assert_eq!(set.names(), ["jsonl"]);
        assert!(path.is_file());

        let missing = temp_file("missing").with_file_name("no/dir/calls.jsonl");
        let s = settings(json!({"jsonl": {"path": missing.display().to_string()}}));
        let err = build_sinks(&names(&["jsonl"]), &s, &no_env).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("callback_settings.jsonl.path: cannot open "),
            "{err}"
        );
    }
}
