//! The models a gateway or an SDK client serves: the router (groups, aliases, wildcards)
//! plus what metering and listing need beside it — each deployment's price, and the
//! wildcard templates used to list `provider/*` models.
//!
//! Built from a configuration by [`crate::build_models`]; never changed afterwards (a
//! reload builds a new table).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use llmux_core::{CallContext, DeploymentSettings, ModelCard, ProviderFactory};
use llmux_cost::{Meter, ModelPrice, PriceTable};
use llmux_router::Router;

/// Where deployments find their prices.
#[derive(Debug, Clone)]
pub struct Pricing {
    /// The price table in force (the embedded one, or a file loaded once at start-up).
    pub table: &'static PriceTable,
    /// The metering point (counts and warns about unknown models).
    pub meter: Meter,
}

/// Price look-ups are cached per provider model up to this many entries; past it they
/// are looked up per call, so invented model names cannot grow memory.
const PRICE_CACHE_LIMIT: usize = 4096;

/// Prices by (provider, provider model); `None` caches "unknown".
type PriceCache = HashMap<(&'static str, String), Option<Arc<ModelPrice>>>;

/// A `provider/*` route's template, kept for listing its upstream's models.
#[derive(Debug, Clone)]
pub(crate) struct WildcardTemplate {
    pub(crate) prefix: String,
    pub(crate) factory: &'static ProviderFactory,
    pub(crate) template: DeploymentSettings,
}

/// The router and the facts around it.
#[derive(Debug)]
pub struct ModelTable {
    /// The router every call of this table goes through.
    pub router: Router,
    pricing: Pricing,
    overrides: HashMap<String, Arc<ModelPrice>>,
    prices: RwLock<PriceCache>,
    pub(crate) wildcards: Vec<WildcardTemplate>,
    api_bases: HashMap<String, String>,
    /// Attribution tags per model group (`router.model_group_tags`).
    group_tags: HashMap<String, Vec<String>>,
    /// Records carry prompts and completions (`settings.log_prompts`).
    log_prompts: bool,
}

impl ModelTable {
    pub(crate) fn new(
        router: Router,
        pricing: Pricing,
        overrides: HashMap<String, Arc<ModelPrice>>,
        wildcards: Vec<WildcardTemplate>,
        api_bases: HashMap<String, String>,
    ) -> Self {
        Self {
            router,
            pricing,
            overrides,
            prices: RwLock::new(HashMap::new()),
            wildcards,
            api_bases,
            group_tags: HashMap::new(),
            log_prompts: false,
        }
    }

    /// Whether this table's call records carry the prompt and the completion (the
    /// configuration's `settings.log_prompts`; off by default).
    pub fn log_prompts(&self) -> bool {
        self.log_prompts
    }

    /// Turn prompt and completion logging on or off for this table's calls.
    pub fn with_log_prompts(mut self, on: bool) -> Self {
        self.log_prompts = on;
        self
    }

    /// The attribution tags of model group `group` (empty when it has none).
    pub fn group_tags(&self, group: &str) -> &[String] {
        self.group_tags.get(group).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn with_group_tags(mut self, tags: HashMap<String, Vec<String>>) -> Self {
        self.group_tags = tags;
        self
    }

    /// The configured `api_base` of a deployment, if it set one.
    pub fn api_base(&self, deployment_id: &str) -> Option<&str> {
        self.api_bases.get(deployment_id).map(String::as_str)
    }

    /// The router.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The metering point this table's calls are recorded by.
    pub fn meter(&self) -> &Meter {
        &self.pricing.meter
    }

    /// The price table in force.
    pub fn price_table(&self) -> &'static PriceTable {
        self.pricing.table
    }

    /// Model group names, in configuration order.
    pub fn names(&self) -> Vec<&str> {
        self.router.model_groups().collect()
    }

    /// Wildcard routes (`prefix/*`, or `*` for the catch-all) and their provider names.
    pub fn wildcards(&self) -> impl Iterator<Item = (String, &'static str)> + '_ {
        self.wildcards.iter().map(|w| {
            let pattern = if w.prefix.is_empty() {
                "*".to_owned()
            } else {
                format!("{}/*", w.prefix)
            };
            (pattern, w.factory.name)
        })
    }

    /// The price of a deployment's calls: its own override when configured, else the price
    /// table's entry for its provider model (`None`: unknown, calls are unpriced).
    pub fn price(
        &self,
        deployment_id: Option<&str>,
        provider: &'static str,
        model: &str,
    ) -> Option<Arc<ModelPrice>> {
        if let Some(p) = deployment_id.and_then(|id| self.overrides.get(id)) {
            return Some(p.clone());
        }
        let key = (provider, model.to_owned());
        if let Some(p) = self
            .prices
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return p.clone();
        }
        let found = self
            .pricing
            .meter
            .price_for(self.pricing.table, provider, model)
            .cloned()
            .map(Arc::new);
        if found.is_none() {
            llmux_observe::record_unknown_model_price(provider, model);
        }
        let mut cache = self.prices.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() < PRICE_CACHE_LIMIT {
            cache.insert(key, found.clone());
        }
        found
    }

    /// The model list for `GET /v1/models`: every group and alias, plus what each
    /// wildcard's upstream lists (a wildcard whose upstream cannot list is skipped).
    pub async fn list(&self, cx: &CallContext) -> Vec<ModelCard> {
        let mut cards: Vec<ModelCard> = self
            .router
            .model_groups()
            .map(|n| {
                let owner = self
                    .router
                    .deployments(n)
                    .and_then(|d| d.first())
                    .map_or("llmux", |d| d.provider.name());
                ModelCard::new(n, owner)
            })
            .collect();
        cards.extend(
            self.router
                .aliases()
                .map(|(alias, _)| ModelCard::new(alias, "llmux")),
        );
        for w in &self.wildcards {
            let Ok(p) = (w.factory.build)(&w.template) else {
                continue;
            };
            let listing =
                tokio::time::timeout(std::time::Duration::from_secs(5), p.list_models(cx)).await;
            match listing {
                Ok(Ok(list)) => cards.extend(list.data.into_iter().map(|m| {
                    let id = if w.prefix.is_empty() {
                        m.id
                    } else {
                        format!("{}/{}", w.prefix, m.id)
                    };
                    ModelCard::new(id, w.factory.name)
                })),
                Ok(Err(e)) => {
                    tracing::debug!(prefix = %w.prefix, error = %e, "wildcard model listing failed");
                }
                Err(_) => tracing::debug!(prefix = %w.prefix, "wildcard model listing timed out"),
            }
        }
        cards
    }
}

impl AsRef<ModelTable> for ModelTable {
    fn as_ref(&self) -> &ModelTable {
        self
    }
}
