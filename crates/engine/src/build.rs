//! Configuration → [`ModelTable`]: every deployment built (a bad one fails here, not on
//! the first call), its price resolved, wildcards and aliases registered, the router
//! checked. The gateway and the SDK client both build their models here, so the same
//! config gives the same deployments, ids, prices and routing settings.
//!
//! Must not: open sockets, start tasks, or read the process environment except through
//! the `env` lookup it is given.

use std::collections::HashMap;
use std::sync::Arc;

use llmux_config::{Config, ModelEntry};
use llmux_core::DeploymentSettings;
use llmux_core::provider::EnvLookup;
use llmux_cost::{Meter, ModelPrice, PriceTable, UnitPrice};
use llmux_router::{Deployment, Router, RouterConfig, RouterSettings, Wildcard};

use crate::models::{ModelTable, Pricing, WildcardTemplate};

/// Why a model table (or the sinks around it) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration file did not load or validate.
    #[error("{0}")]
    Config(#[from] llmux_config::ConfigErrors),
    /// A configured model names a provider this binary was not built with.
    #[error("{key}: unknown provider '{provider}' (compiled-in providers: {available})")]
    UnknownProvider {
        /// Key path, e.g. `models[1].model`.
        key: String,
        /// The provider prefix.
        provider: String,
        /// Comma-separated list of linked providers.
        available: String,
    },
    /// A provider refused its deployment settings.
    #[error("{key}: {source}")]
    Deployment {
        /// Key path.
        key: String,
        /// The provider's error.
        source: llmux_core::Error,
    },
    /// The routing configuration is inconsistent (unknown fallback group, loop, …).
    #[error("router: {0}")]
    Router(#[from] llmux_router::ConfigError),
    /// The price table file or a configured price is unusable.
    #[error("prices: {0}")]
    Prices(String),
    /// A call-record sink's configuration (OTLP, Langfuse, …) is unusable.
    #[error("observability: {0}")]
    Sinks(String),
    /// Sinks start tasks: building with sinks needs a tokio runtime.
    #[error("no tokio runtime: build inside one (e.g. in `#[tokio::main]`), sinks start tasks")]
    NoRuntime,
}

/// What decides a model table besides the configuration.
#[derive(Debug, Clone)]
pub struct TableOptions<'a> {
    /// Models served in addition to the config's (name, settings).
    pub extra: &'a [(String, DeploymentSettings)],
    /// Add a `provider/*` route for every linked provider `env` configures (default, with
    /// `None`: only when no model is configured).
    pub env_wildcards: Option<bool>,
    /// The price table (default: the config's `settings.price_table`, else the embedded one).
    pub prices: Option<&'static PriceTable>,
    /// Router settings replacing the config's `router` section (aliases still come from it).
    pub router_settings: Option<&'a RouterSettings>,
    /// The metering point calls of this table are recorded by.
    pub meter: Meter,
}

impl TableOptions<'_> {
    /// Defaults around `meter`: nothing extra, the config's prices and router settings.
    pub fn new(meter: Meter) -> Self {
        TableOptions {
            extra: &[],
            env_wildcards: None,
            prices: None,
            router_settings: None,
            meter,
        }
    }
}

/// Build everything `config` puts in force: deployments, prices, wildcards, router.
/// `env` supplies provider credentials for wildcard routes (`OPENAI_API_KEY` ⇒ `openai/*`).
pub fn build_models(
    config: &Config,
    options: TableOptions<'_>,
    env: EnvLookup<'_>,
) -> Result<ModelTable, BuildError> {
    let meter = options.meter.clone();
    let table = match (options.prices, &config.settings.price_table) {
        (Some(t), _) => t,
        (None, Some(path)) => {
            let t = PriceTable::from_path(path).map_err(|e| BuildError::Prices(e.to_string()))?;
            &*Box::leak(Box::new(t))
        }
        (None, None) => PriceTable::embedded(),
    };
    let available = || {
        let mut names: Vec<_> = llmux_core::providers().map(|f| f.name).collect();
        names.sort_unstable();
        names.join(", ")
    };
    let extra: Vec<ModelEntry> = options
        .extra
        .iter()
        .map(|(n, s)| ModelEntry::new(n.clone(), s.clone()))
        .collect();
    let entries: Vec<(String, &ModelEntry)> = config
        .models
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("models[{i}]"), m))
        .chain(extra.iter().map(|m| (format!("model '{}'", m.name), m)))
        .collect();
    let settings = options
        .router_settings
        .cloned()
        .unwrap_or_else(|| router_settings(&config.router));
    let mut router = RouterConfig::new(settings);
    for (alias, target) in &config.router.model_group_alias {
        router = router.alias(alias.clone(), target.group.clone());
    }
    let mut overrides = HashMap::new();
    let mut api_bases = HashMap::new();
    let mut groups: Vec<(String, Vec<Deployment>)> = Vec::new();
    let mut wildcards: Vec<WildcardTemplate> = Vec::new();
    let unknown = |key: &str, provider: &str| BuildError::UnknownProvider {
        key: format!("{key}.model"),
        provider: provider.to_owned(),
        available: available(),
    };
    for (key, entry) in &entries {
        let (name, settings) = (entry.name.as_str(), &entry.deployment);
        let factory = llmux_core::find_provider(&settings.provider)
            .ok_or_else(|| unknown(key, &settings.provider))?;
        if let Some(prefix) = name.strip_suffix("/*").or((name == "*").then_some("")) {
            wildcards.push(WildcardTemplate {
                prefix: prefix.to_owned(),
                factory,
                template: (*settings).clone(),
            });
            continue;
        }
        let settings = &with_max_output(table, settings);
        let provider = (factory.build)(settings).map_err(|source| BuildError::Deployment {
            key: key.clone(),
            source,
        })?;
        let index = match groups.iter().position(|(g, _)| g == name) {
            Some(i) => i,
            None => {
                groups.push((name.to_owned(), Vec::new()));
                groups.len() - 1
            }
        };
        let group = &mut groups[index];
        let id = entry
            .id
            .clone()
            .unwrap_or_else(|| format!("{name}#{}", group.1.len()));
        let price = deployment_price(table, entry, key)?;
        let mut d = Deployment::new(id, provider);
        let r = &entry.routing;
        d.weight = r.weight;
        d.rpm = r.rpm;
        d.tpm = r.tpm;
        d.order = r.order.unwrap_or(1);
        d.tags.clone_from(&r.tags);
        d.timeout = settings.timeout;
        d.stream_timeout = r.stream_timeout;
        d.max_input_tokens = entry
            .max_input_tokens
            .or_else(|| price.as_ref().and_then(|p| p.context_window()));
        if let Some(p) = &price {
            d.input_cost_per_token_pico = p.rates.input_per_token.map(|u| u.pico_usd());
            d.output_cost_per_token_pico = p.rates.output_per_token.map(|u| u.pico_usd());
        }
        if let (Some(p), true) = (price, entry.prices.is_some() || entry.base_model.is_some()) {
            overrides.insert(d.id.clone(), Arc::new(p));
        }
        if let Some(base) = &settings.api_base {
            api_bases.insert(d.id.clone(), base.clone());
        }
        group.1.push(d);
    }
    if options.env_wildcards.unwrap_or(entries.is_empty()) {
        for f in llmux_core::providers() {
            if wildcards.iter().any(|w| w.prefix == f.name) {
                continue;
            }
            if let Some(template) = (f.from_env)(env) {
                wildcards.push(WildcardTemplate {
                    prefix: f.name.to_owned(),
                    factory: f,
                    template,
                });
            }
        }
    }
    for (name, deployments) in groups {
        router = router.group(name, deployments);
    }
    for w in &wildcards {
        let (factory, template, prefix) = (w.factory, w.template.clone(), w.prefix.clone());
        let pattern = if prefix.is_empty() {
            "*".to_owned()
        } else {
            format!("{prefix}/*")
        };
        router = router.wildcard(Wildcard::new(pattern, move |model: &str| {
            // `prefix/*` serves `prefix/<model>`; `*` passes the whole name on.
            let own = if prefix.is_empty() {
                model
            } else {
                model
                    .strip_prefix(prefix.as_str())
                    .and_then(|m| m.strip_prefix('/'))
                    .unwrap_or(model)
            };
            (factory.build)(&with_max_output(table, &template.for_model(own)))
        }));
    }
    let router = Router::new(router)?;
    Ok(ModelTable::new(
        router,
        Pricing { table, meter },
        overrides,
        wildcards,
        api_bases,
    )
    .with_group_tags(
        config
            .router
            .model_group_tags
            .iter()
            .map(|(g, t)| (g.clone(), t.clone()))
            .collect(),
    )
    .with_log_prompts(config.settings.log_prompts))
}

/// `settings` with `params.max_output_tokens` filled from the price table when the
/// deployment does not set it: providers that must always send an output limit (Anthropic)
/// use the model's own maximum rather than a fixed default.
fn with_max_output(table: &PriceTable, settings: &DeploymentSettings) -> DeploymentSettings {
    let mut s = settings.clone();
    if !s.params.contains_key("max_output_tokens")
        && let Some(max) = table
            .lookup(&s.provider, &s.model)
            .and_then(ModelPrice::max_output)
    {
        s.params.insert("max_output_tokens".into(), max.into());
    }
    s
}

/// The router settings a config's `router` section asks for.
pub fn router_settings(c: &llmux_config::RouterSettings) -> RouterSettings {
    use llmux_config::RoutingStrategy as C;
    use llmux_router::Strategy as R;
    RouterSettings {
        strategy: match c.strategy {
            C::SimpleShuffle => R::SimpleShuffle,
            C::LeastBusy => R::LeastBusy,
            C::LatencyBased => R::LatencyBased,
            C::UsageBased => R::UsageBased,
            C::CostBased => R::CostBased,
        },
        num_retries: c.num_retries,
        retry_policy: c.retry_policy.iter().collect(),
        allowed_fails: Some(c.allowed_fails),
        cooldown_time: c.cooldown_time,
        timeout: c.timeout,
        stream_first_chunk_timeout: c.stream_timeout,
        stream_stall_timeout: c.stall_timeout,
        fallbacks: c.fallbacks.clone(),
        context_window_fallbacks: c.context_window_fallbacks.clone(),
        content_policy_fallbacks: c.content_policy_fallbacks.clone(),
        default_fallbacks: c.default_fallbacks.clone(),
        stream_resume: c.stream_resume,
        ..RouterSettings::default()
    }
}

/// A deployment's price: the table's entry for its model (or for its `base_model`), with
/// the config's per-token prices laid over it.
fn deployment_price(
    table: &PriceTable,
    entry: &ModelEntry,
    key: &str,
) -> Result<Option<ModelPrice>, BuildError> {
    let d = &entry.deployment;
    let base = table
        .lookup_with_base_model(&d.provider, &d.model, entry.base_model.as_deref())
        .cloned();
    let Some(p) = &entry.prices else {
        return Ok(base);
    };
    let parse = |field: &str, v: &Option<llmux_config::Decimal>| {
        v.as_ref()
            .map(|d| UnitPrice::from_usd_str(d.as_str()))
            .transpose()
            .map_err(|e| BuildError::Prices(format!("{key}.{field}: {e}")))
    };
    let input = parse("input_cost_per_token", &p.input_cost_per_token)?;
    let output = parse("output_cost_per_token", &p.output_cost_per_token)?;
    let mut price = base.unwrap_or_default();
    let top = ModelPrice::per_token(
        input
            .or(price.rates.input_per_token)
            .unwrap_or(UnitPrice::ZERO),
        output
            .or(price.rates.output_per_token)
            .unwrap_or(UnitPrice::ZERO),
    );
    price.apply_override(&top);
    Ok(Some(price))
}

/// The call-record sinks a configuration names (`settings.callbacks` with their
/// `callback_settings`), after the defaults every llmux process has: metrics always,
/// OpenTelemetry and Langfuse when their environment variables configure them. Call
/// inside a tokio runtime (exporters start a task).
pub fn config_sinks(
    config: &Config,
    env: EnvLookup<'_>,
) -> Result<llmux_observe::SinkSet, BuildError> {
    llmux_observe::SinkSet::build_with_defaults(
        &config.settings.callbacks,
        &config.settings.callback_settings,
        env,
    )
    .map_err(|e| BuildError::Sinks(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        llmux_provider_mock::link();
        Config::from_str(yaml, "yaml", "test.yaml", &|_| None).unwrap_or_else(|e| panic!("{e}"))
    }

    fn build(c: &Config) -> Result<ModelTable, BuildError> {
        build_models(c, TableOptions::new(Meter::disabled()), &|_| None)
    }

    #[test]
    fn deployments_get_ids_prices_and_groups_in_config_order() {
        let c = config(
            "models:\n  - name: b\n    model: mock/one\n  - name: a\n    model: mock/two\n    id: own-id\n  - name: b\n    model: mock/three\n    input_cost_per_token: 0.000001\n    output_cost_per_token: 0.000002\n",
        );
        let t = build(&c).expect("builds");
        assert_eq!(t.names(), ["b", "a"]);
        let ids = |g: &str| -> Vec<String> {
            t.router
                .deployments(g)
                .unwrap_or_default()
                .iter()
                .map(|d| d.id.clone())
                .collect()
        };
        assert_eq!(ids("b"), ["b#0", "b#1"]);
        assert_eq!(ids("a"), ["own-id"]);
        let priced = t.price(Some("b#1"), "mock", "three").expect("override");
        assert_eq!(
            priced.rates.input_per_token.map(|u| u.pico_usd()),
            Some(1_000_000)
        );
        assert!(
            t.price(Some("b#0"), "mock", "one").is_none(),
            "no made-up price"
        );
    }

    #[test]
    fn an_unknown_provider_names_its_key_and_the_linked_ones() {
        let c =
            config("models:\n  - name: x\n    model: mock/ok\n  - name: y\n    model: nosuch/m\n");
        let e = build(&c).expect_err("unknown provider");
        let shown = e.to_string();
        assert!(
            shown.starts_with("models[1].model: unknown provider 'nosuch'"),
            "{shown}"
        );
        assert!(shown.contains("mock"), "{shown}");
    }

    #[test]
    fn wildcards_from_the_environment_only_without_models_unless_asked() {
        let empty = config("models: []\n");
        let t = build(&empty).expect("builds");
        assert!(t.wildcards().any(|(p, f)| p == "mock/*" && f == "mock"));
        let some = config("models:\n  - name: x\n    model: mock/ok\n");
        assert_eq!(build(&some).expect("builds").wildcards().count(), 0);
        let opts = TableOptions {
            env_wildcards: Some(true),
            ..TableOptions::new(Meter::disabled())
        };
        let t = build_models(&some, opts, &|_| None).expect("builds");
        assert!(t.wildcards().any(|(p, _)| p == "mock/*"));
    }
}
