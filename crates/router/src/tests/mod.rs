//! Router tests over scripted fake providers, on tokio's paused clock.

mod config;
mod failover;
mod fake;
mod shared;
mod strategies;
mod streams;

use std::sync::Arc;
use std::time::Duration;

use llmux_core::{CallContext, ChatRequest, Provider};

use crate::{Deployment, Router, RouterConfig, RouterSettings, Trace};
use fake::Fake;

/// Settings for tests: seeded, short backoff, everything else default.
fn settings() -> RouterSettings {
    RouterSettings {
        seed: Some(42),
        backoff: crate::Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
        },
        ..RouterSettings::default()
    }
}

fn dep(id: &str, fake: &Arc<Fake>) -> Deployment {
    let provider: Arc<dyn Provider> = fake.clone();
    Deployment::new(id, provider)
}

fn router(settings: RouterSettings, groups: Vec<(&str, Vec<Deployment>)>) -> Router {
    let mut config = RouterConfig::new(settings);
    for (name, deployments) in groups {
        config = config.group(name, deployments);
    }
    Router::new(config).expect("valid config")
}

fn req(model: &str) -> ChatRequest {
    ChatRequest::new(model).user("hi")
}

fn cx() -> CallContext {
    CallContext::default()
}

/// Make a chat call and return who answered.
async fn answered_by(r: &Router, model: &str) -> String {
    let out = r.chat(req(model), &cx()).await.expect("answered");
    trace_of(&out.trace.snapshot())
}

fn trace_of(t: &Trace) -> String {
    t.deployment_id.clone().unwrap_or_default()
}
