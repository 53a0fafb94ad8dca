//! Routing through the real gateway, configured with a LiteLLM `config.yaml`: retries move
//! to a healthy deployment, failing deployments cool down, fallbacks answer when a whole
//! group fails, and the response says what happened.

use std::sync::Arc;
use std::time::Duration;

use llmux_config::Config;
use llmux_e2e::{Records, UPSTREAM_KEY};
use llmux_testkit::{Fault, OpenAiMock};
use serde_json::{Value, json};

const KEY: &str = "sk-routing-master";

fn litellm_yaml(a: &str, b: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: duo
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {a}
      api_key: os.environ/E2E_UPSTREAM_KEY
      order: 1
    model_info:
      id: duo-a
  - model_name: duo
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {b}
      api_key: os.environ/E2E_UPSTREAM_KEY
      order: 2
    model_info:
      id: duo-b
  - model_name: solo
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {a}
      api_key: os.environ/E2E_UPSTREAM_KEY
  - model_name: backup
    litellm_params:
      model: gpt-4o
      api_base: {b}
      api_key: os.environ/E2E_UPSTREAM_KEY
router_settings:
  num_retries: 1
  cooldown_time: 30
  retry_after: 0
litellm_settings:
  fallbacks: [{{"solo": ["backup"]}}]
general_settings:
  master_key: {KEY}
"#
    )
}

struct Setup {
    a: OpenAiMock,
    b: OpenAiMock,
    url: String,
    http: reqwest::Client,
    records: Arc<Records>,
    _gateway: llmux_server::RunningGateway,
}

async fn setup() -> Setup {
    llmux::link_providers();
    let a = OpenAiMock::with_api_key(UPSTREAM_KEY).await;
    let b = OpenAiMock::with_api_key(UPSTREAM_KEY).await;
    let env = |k: &str| (k == "E2E_UPSTREAM_KEY").then(|| UPSTREAM_KEY.to_owned());
    let config = Config::from_str(
        &litellm_yaml(&a.base_url(), &b.base_url()),
        "yaml",
        "litellm.yaml",
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let records = Arc::new(Records::default());
    let gateway = llmux::gateway()
        .config(config)
        .sink(records.clone())
        .build()
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Setup {
        a,
        b,
        url: gateway.url(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        records,
        _gateway: gateway,
    }
}

impl Setup {
    async fn chat(&self, model: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(KEY)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "route me"}]}))
            .send()
            .await
            .unwrap()
    }
}

fn rate_limited() -> Fault {
    Fault::Status {
        status: 429,
        body: json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
        retry_after: None,
    }
}

#[tokio::test]
async fn a_429_moves_the_call_to_the_next_deployment_and_cools_the_first() {
    let s = setup().await;
    s.a.push_fault(rate_limited());
    let resp = s.chat("duo").await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["x-llmux-deployment"], "duo-b");
    assert_eq!(h["x-llmux-attempts"], "2");
    // A LiteLLM config turns on LiteLLM's response headers.
    assert_eq!(h["x-litellm-model-id"], "duo-b");
    assert_eq!(h["x-litellm-model-group"], "duo");
    assert_eq!(h["x-litellm-model-api-base"], s.b.base_url().as_str());
    assert!(h.contains_key("x-litellm-response-cost"));
    assert!(h.contains_key("x-litellm-call-id"));
    assert_eq!(s.a.requests().len(), 1);
    assert_eq!(s.b.requests().len(), 1);

    // A is cooling down: the next call goes straight to B.
    let resp = s.chat("duo").await;
    assert_eq!(resp.headers()["x-llmux-deployment"], "duo-b");
    assert_eq!(resp.headers()["x-llmux-attempts"], "1");
    assert_eq!(
        s.a.requests().len(),
        1,
        "a cooling deployment gets no traffic"
    );

    let recs = s.records.wait_for(2).await;
    assert_eq!(recs[0].attempts, 2);
    assert_eq!(recs[0].deployment.as_deref(), Some("duo-b"));
}

#[tokio::test]
async fn when_a_group_fails_its_fallback_answers() {
    let s = setup().await;
    for _ in 0..2 {
        s.a.push_fault(Fault::Status {
            status: 500,
            body: json!({"error": {"message": "boom", "type": "server_error", "code": null}}),
            retry_after: None,
        });
    }
    let resp = s.chat("solo").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-llmux-fallback"], "backup");
    assert_eq!(resp.headers()["x-llmux-model"], "gpt-4o");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "route me");
    assert_eq!(
        s.a.requests().len(),
        2,
        "solo was tried num_retries + 1 times"
    );
    assert_eq!(s.b.requests()[0].body["model"], "gpt-4o");
    let recs = s.records.wait_for(1).await;
    assert_eq!(recs[0].fallback.as_deref(), Some("backup"));
    assert_eq!(recs[0].model_group, "solo");
    assert_eq!(recs[0].provider_model.as_deref(), Some("gpt-4o"));
}

#[tokio::test]
async fn models_and_model_info_list_the_groups() {
    let s = setup().await;
    let v: Value = s
        .http
        .get(format!("{}/v1/models", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["duo", "solo", "backup"]);
    let info: Value = s
        .http
        .get(format!("{}/model/info", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let duo: Vec<&Value> = info["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["model_name"] == "duo")
        .collect();
    assert_eq!(duo.len(), 2);
    assert_eq!(duo[1]["model_info"]["order"], 2);
}

#[tokio::test]
async fn health_checks_every_deployment() {
    let s = setup().await;
    s.b.push_fault(Fault::Status {
        status: 503,
        body: json!({"error": {"message": "down", "type": "server_error", "code": null}}),
        retry_after: None,
    });
    let v: Value = s
        .http
        .get(format!("{}/health", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["healthy_count"].as_u64().unwrap() + v["unhealthy_count"].as_u64().unwrap(),
        4
    );
    assert_eq!(v["unhealthy_count"], 1, "{v}");
    assert_eq!(
        v["unhealthy_endpoints"][0]["error_kind"],
        "upstream_unavailable"
    );
}

#[tokio::test]
async fn a_catch_all_route_serves_any_name() {
    llmux::link_providers();
    let yaml =
        "models:\n  - name: known\n    model: mock/echo\n  - name: \"*\"\n    model: mock/*\n";
    let config = Config::from_str(yaml, "yaml", "catch-all.yaml", &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let gw = llmux::gateway()
        .config(config)
        .build()
        .unwrap()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/v1/chat/completions", gw.url()))
        .json(&json!({"model": "whatever-you-like", "messages": [{"role": "user", "content": "any"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-llmux-provider"], "mock");
    assert_eq!(resp.headers()["x-llmux-model"], "whatever-you-like");
}
