//! The model table: which deployment serves a requested model name.
//!
//! Built once at start-up from the config: exact names map to deployments (several
//! entries with the same name are served in turn), and `prefix/*` entries are wildcard
//! routes that build a deployment for `prefix/<model>` on first use. Routing strategies,
//! retries and fallbacks belong to the router crate; this table only resolves names.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use axum::http::HeaderValue;
use llmux_core::{
    CallContext, DeploymentSettings, Error, ErrorKind, ModelCard, ModelRef, Provider,
    ProviderFactory,
};
use llmux_cost::{Meter, ModelPrice, PriceTable};

/// Where deployments find their prices.
#[derive(Debug, Clone)]
pub struct Pricing {
    /// The price table in force (the embedded one, or a file loaded once at start-up).
    pub table: &'static PriceTable,
    /// The metering point (counts and warns about unknown models).
    pub meter: Meter,
}

/// Wildcard deployments built on demand are cached up to this many names; past it they
/// are built per call, so clients cannot grow memory by inventing model names.
const WILDCARD_CACHE_LIMIT: usize = 4096;

/// One deployment: a provider bound to credentials and a model, with what the response
/// headers need prepared in advance.
#[derive(Debug)]
pub struct Deployment {
    /// The provider instance.
    pub provider: Arc<dyn Provider>,
    /// `x-llmux-provider` value.
    pub provider_header: HeaderValue,
    /// `x-llmux-model` value when the upstream does not name its model.
    pub model_header: HeaderValue,
    /// Its price, resolved once at start-up (`None`: unknown model, calls are unpriced).
    pub price: Option<Arc<ModelPrice>>,
}

impl Deployment {
    fn new(provider: Arc<dyn Provider>, pricing: &Pricing) -> Self {
        let provider_header = HeaderValue::from_static(provider.name());
        let model_header =
            HeaderValue::from_str(provider.model()).unwrap_or(HeaderValue::from_static("unknown"));
        let price = pricing
            .meter
            .price_for(pricing.table, provider.name(), provider.model())
            .cloned()
            .map(Arc::new);
        Self {
            provider,
            provider_header,
            model_header,
            price,
        }
    }
}

#[derive(Debug)]
struct ModelGroup {
    deployments: Vec<Arc<Deployment>>,
    next: AtomicUsize,
}

#[derive(Debug)]
struct Wildcard {
    factory: &'static ProviderFactory,
    template: DeploymentSettings,
}

/// Resolves model names to deployments.
#[derive(Debug)]
pub struct ModelTable {
    pricing: Pricing,
    groups: HashMap<String, ModelGroup>,
    order: Vec<String>,
    wildcards: HashMap<String, Wildcard>,
    wildcard_cache: RwLock<HashMap<String, Arc<Deployment>>>,
}

impl ModelTable {
    /// An empty table pricing its deployments from `pricing`.
    pub fn new(pricing: Pricing) -> Self {
        Self {
            pricing,
            groups: HashMap::new(),
            order: Vec::new(),
            wildcards: HashMap::new(),
            wildcard_cache: RwLock::new(HashMap::new()),
        }
    }

    /// Serve `name` with `settings` (an exact name, or `prefix/*` for a wildcard).
    pub fn add(&mut self, name: &str, settings: &DeploymentSettings) -> Result<(), AddError> {
        let factory =
            llmux_core::find_provider(&settings.provider).ok_or(AddError::UnknownProvider)?;
        if let Some(prefix) = name.strip_suffix("/*") {
            self.wildcards.insert(
                prefix.to_owned(),
                Wildcard {
                    factory,
                    template: settings.clone(),
                },
            );
            return Ok(());
        }
        let provider = (factory.build)(settings).map_err(AddError::Build)?;
        let d = Arc::new(Deployment::new(provider, &self.pricing));
        match self.groups.get_mut(name) {
            Some(g) => g.deployments.push(d),
            None => {
                self.order.push(name.to_owned());
                self.groups.insert(
                    name.to_owned(),
                    ModelGroup {
                        deployments: vec![d],
                        next: AtomicUsize::new(0),
                    },
                );
            }
        }
        Ok(())
    }

    /// Whether nothing is served.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.wildcards.is_empty()
    }

    /// The deployments serving the exact name `name`.
    pub fn deployments(&self, name: &str) -> &[Arc<Deployment>] {
        self.groups.get(name).map_or(&[], |g| &g.deployments)
    }

    /// Exact names, in configuration order.
    pub fn names(&self) -> &[String] {
        &self.order
    }

    /// Wildcard prefixes and their provider names.
    pub fn wildcards(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.wildcards
            .iter()
            .map(|(p, w)| (p.as_str(), w.factory.name))
    }

    /// The deployment that serves `model` now.
    pub fn resolve(&self, model: &str) -> Result<Arc<Deployment>, Error> {
        if let Some(g) = self.groups.get(model) {
            let i = if g.deployments.len() == 1 {
                0
            } else {
                g.next.fetch_add(1, Ordering::Relaxed) % g.deployments.len()
            };
            return Ok(g.deployments[i].clone());
        }
        if let Some(r) = ModelRef::parse(model)
            && let Some(w) = self.wildcards.get(r.provider)
        {
            return self.wildcard(model, r.model, w);
        }
        Err(not_found(model))
    }

    fn wildcard(&self, name: &str, model: &str, w: &Wildcard) -> Result<Arc<Deployment>, Error> {
        if let Some(d) = self
            .wildcard_cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(d.clone());
        }
        let provider = (w.factory.build)(&w.template.for_model(model))?;
        let d = Arc::new(Deployment::new(provider, &self.pricing));
        let mut cache = self
            .wildcard_cache
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if cache.len() < WILDCARD_CACHE_LIMIT {
            cache.insert(name.to_owned(), d.clone());
        }
        Ok(d)
    }

    /// The model list for `GET /v1/models`: every exact name, plus what each wildcard's
    /// upstream lists (a wildcard whose upstream cannot list is skipped).
    pub async fn list(&self, cx: &CallContext) -> Vec<ModelCard> {
        let mut cards: Vec<ModelCard> = self
            .order
            .iter()
            .map(|n| ModelCard::new(n.clone(), self.groups[n].deployments[0].provider.name()))
            .collect();
        let mut prefixes: Vec<_> = self.wildcards.iter().collect();
        prefixes.sort_by(|a, b| a.0.cmp(b.0));
        for (prefix, w) in prefixes {
            let Ok(p) = (w.factory.build)(&w.template) else {
                continue;
            };
            let listing =
                tokio::time::timeout(std::time::Duration::from_secs(5), p.list_models(cx)).await;
            match listing {
                Ok(Ok(list)) => cards.extend(
                    list.data
                        .into_iter()
                        .map(|m| ModelCard::new(format!("{prefix}/{}", m.id), w.factory.name)),
                ),
                Ok(Err(e)) => tracing::debug!(prefix, error = %e, "wildcard model listing failed"),
                Err(_) => tracing::debug!(prefix, "wildcard model listing timed out"),
            }
        }
        cards
    }
}

fn not_found(model: &str) -> Error {
    let shown: String = model.chars().take(200).collect();
    Error::new(
        ErrorKind::NotFound,
        format!("The model '{shown}' does not exist on this gateway. GET /v1/models lists the models it serves."),
    )
    .with_code("model_not_found")
    .with_param("model")
}

/// Why [`ModelTable::add`] failed.
#[derive(Debug)]
pub enum AddError {
    /// No linked provider has that name.
    UnknownProvider,
    /// The provider refused the settings.
    Build(Error),
}
