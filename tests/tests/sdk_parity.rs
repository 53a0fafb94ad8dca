//! One code path: the SDK's `llmux::Client` and the gateway, given the same config and the
//! same router seed, make the same routing decisions (deployment, attempts, fallbacks) and
//! emit the same `CallRecord`s (ids, timestamps and latencies aside) for the same sequence
//! of calls — plain, retried, fallen back, streamed, embedded, unknown model, bad request.
//!
//! Each side gets its own pair of testkit OpenAI upstreams (real wire format) with the same
//! faults queued, and the `mock` provider for a group that always fails.

use std::sync::Arc;
use std::time::Duration;

use llmux::{ChatRequest, Client, ClientError, EmbeddingInput, EmbeddingRequest};
use llmux_config::Config;
use llmux_core::CallRecord;
use llmux_e2e::{Records, UPSTREAM_KEY};
use llmux_testkit::{Fault, OpenAiMock};
use serde_json::{Value, json};

const KEY: &str = "sk-parity-master";

fn config(a: &str, b: &str) -> Config {
    let yaml = format!(
        r#"
server:
  master_key: {KEY}
models:
  - name: duo
    model: openai/gpt-4o-mini
    api_base: {a}
    api_key: os.environ/E2E_UPSTREAM_KEY
    id: duo-a
    weight: 1
  - name: duo
    model: openai/gpt-4o-mini
    api_base: {b}
    api_key: os.environ/E2E_UPSTREAM_KEY
    id: duo-b
    weight: 3
  - name: flaky
    model: mock/flaky
    params:
      mock_response: litellm.ServiceUnavailableError
  - name: backup
    model: openai/gpt-4o
    api_base: {b}
    api_key: os.environ/E2E_UPSTREAM_KEY
  - name: emb
    model: openai/text-embedding-3-small
    api_base: {a}
    api_key: os.environ/E2E_UPSTREAM_KEY
router:
  num_retries: 1
  fallbacks:
    flaky: [backup]
"#
    );
    let env = |k: &str| (k == "E2E_UPSTREAM_KEY").then(|| UPSTREAM_KEY.to_owned());
    Config::from_str(&yaml, "yaml", "parity.yaml", &env).unwrap_or_else(|e| panic!("{e}"))
}

/// The config's router settings with a seed, and pauses short enough for a test.
fn seeded(config: &Config) -> llmux::RouterSettings {
    let mut s = llmux::engine::router_settings(&config.router);
    s.seed = Some(20_240_611);
    s.backoff = llmux::router::Backoff {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(2),
    };
    s.retry_after_cap = Duration::ZERO;
    s
}

/// Two upstreams.
async fn upstreams() -> (OpenAiMock, OpenAiMock) {
    let a = OpenAiMock::with_api_key(UPSTREAM_KEY).await;
    let b = OpenAiMock::with_api_key(UPSTREAM_KEY).await;
    (a, b)
}

/// Queue a 429 on `upstream`: the next call it receives is rate limited.
fn rate_limit_next(upstream: &OpenAiMock) {
    upstream.push_fault(Fault::Status {
        status: 429,
        body: json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
        retry_after: Some(0),
    });
}

/// What the router decided for one call: deployment, attempts, fallback group — or the
/// status of a call that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Answered {
        deployment: String,
        attempts: u32,
        fallback: Option<String>,
    },
    Failed(u16),
}

/// One call of the sequence both sides run.
#[derive(Debug, Clone, Copy)]
enum Call {
    Chat(&'static str),
    Stream(&'static str),
    Embed(&'static str),
    NoMessages(&'static str),
    /// Not a call: the next call upstream `a` receives is rate limited (then retried
    /// elsewhere, and `a` cools down).
    RateLimitA,
}

const CALLS: &[Call] = &[
    Call::Chat("duo"),
    Call::Chat("duo"),
    Call::Chat("duo"),
    Call::Chat("duo"),
    Call::Chat("duo"),
    Call::Chat("duo"),
    Call::Chat("duo"),
    Call::Chat("duo"),
    Call::RateLimitA,
    Call::Chat("duo"),
    Call::Chat("duo"),
    Call::Chat("duo"),
    Call::Chat("flaky"),
    Call::Stream("duo"),
    Call::Stream("duo"),
    Call::Stream("flaky"),
    Call::Embed("emb"),
    Call::Chat("nope"),
    Call::NoMessages("duo"),
    Call::Chat("backup"),
];

/// How many calls the sequence makes.
fn calls() -> usize {
    CALLS
        .iter()
        .filter(|c| !matches!(c, Call::RateLimitA))
        .count()
}

fn chat_request(model: &str) -> ChatRequest {
    ChatRequest::new(model)
        .user("parity, please")
        .tag("parity")
        .end_user("u-1")
}

async fn run_gateway() -> (Vec<Decision>, Vec<Arc<CallRecord>>) {
    let (a, b) = upstreams().await;
    let config = config(&a.base_url(), &b.base_url());
    let records = Arc::new(Records::default());
    let gateway = llmux::gateway()
        .router_settings(seeded(&config))
        .config(config)
        .observability(false)
        .sink(records.clone())
        .build()
        .expect("gateway builds")
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("gateway starts");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut decisions = Vec::new();
    for &call in CALLS {
        let (path, body) = match call {
            Call::RateLimitA => {
                rate_limit_next(&a);
                continue;
            }
            Call::Chat(m) | Call::Stream(m) | Call::NoMessages(m) => {
                let mut body = serde_json::to_value(chat_request(m)).expect("serialises");
                if let Call::Stream(_) = call {
                    body["stream"] = json!(true);
                }
                if let Call::NoMessages(_) = call {
                    body["messages"] = json!([]);
                }
                ("/v1/chat/completions", body)
            }
            Call::Embed(m) => (
                "/v1/embeddings",
                json!({"model": m, "input": ["one", "two"], "user": "u-1", "tags": ["parity"]}),
            ),
        };
        let resp = http
            .post(format!("{}{path}", gateway.url()))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .expect("gateway answers");
        let status = resp.status().as_u16();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let decision = if status == 200 {
            Decision::Answered {
                deployment: header("x-llmux-deployment").expect("deployment header"),
                attempts: header("x-llmux-attempts")
                    .and_then(|a| a.parse().ok())
                    .expect("attempts header"),
                fallback: header("x-llmux-fallback"),
            }
        } else {
            Decision::Failed(status)
        };
        // Read the whole body (a stream to its end).
        let text = resp.text().await.expect("body");
        if let Call::Stream(_) = call {
            assert!(text.contains("[DONE]"), "stream ended: {text}");
        }
        decisions.push(decision);
    }
    let got = records.wait_for(calls()).await;
    gateway.shutdown().await.expect("stops");
    (decisions, got)
}

async fn run_sdk() -> (Vec<Decision>, Vec<Arc<CallRecord>>) {
    let (a, b) = upstreams().await;
    let config = config(&a.base_url(), &b.base_url());
    let records = Arc::new(Records::default());
    let client = Client::builder()
        .router_settings(seeded(&config))
        .config(config)
        .observability(false)
        .sink(records.clone())
        .build()
        .expect("client builds");
    let mut decisions = Vec::new();
    let answered = |t: &llmux::Trace| Decision::Answered {
        deployment: t.deployment_id.clone().expect("a deployment answered"),
        attempts: t.attempts,
        fallback: t
            .fallback_used()
            .then(|| t.final_model_group.clone())
            .flatten(),
    };
    let failed = |e: &ClientError| Decision::Failed(e.error().http_status());
    for &call in CALLS {
        let decision = match call {
            Call::RateLimitA => {
                rate_limit_next(&a);
                continue;
            }
            Call::Chat(m) => match client.chat_with_meta(chat_request(m)).await {
                Ok(r) => answered(&r.trace),
                Err(e) => failed(&e),
            },
            Call::NoMessages(m) => {
                let mut req = chat_request(m);
                req.messages.clear();
                match client.chat_with_meta(req).await {
                    Ok(r) => answered(&r.trace),
                    Err(e) => failed(&e),
                }
            }
            Call::Stream(m) => match client.chat_stream(chat_request(m)).await {
                Ok(s) => match s.collect().await {
                    Ok(r) => answered(&r.trace),
                    Err(e) => failed(&e),
                },
                Err(e) => failed(&e),
            },
            Call::Embed(m) => {
                let mut req = EmbeddingRequest {
                    model: m.to_owned(),
                    input: EmbeddingInput::Texts(vec!["one".into(), "two".into()]),
                    encoding_format: None,
                    dimensions: None,
                    user: Some("u-1".into()),
                    extra: Default::default(),
                };
                req.extra.insert("tags".into(), json!(["parity"]));
                match client.embed_with_meta(req).await {
                    Ok(r) => answered(&r.trace),
                    Err(e) => failed(&e),
                }
            }
        };
        decisions.push(decision);
    }
    let got = records.wait_for(calls()).await;
    client.shutdown().await;
    (decisions, got)
}

/// A record without what differs between two runs by nature: ids, times, latencies.
fn comparable(r: &CallRecord) -> Value {
    let mut r = r.clone();
    r.request_id.clear();
    r.started_at_ms = 0;
    r.latency_us = 0;
    r.ttft_us = r.ttft_us.map(|_| 0);
    serde_json::to_value(&r).expect("serialises")
}

#[tokio::test]
async fn the_sdk_and_the_gateway_route_and_record_alike() {
    llmux::link_providers();
    let (gateway_decisions, gateway_records) = run_gateway().await;
    let (sdk_decisions, sdk_records) = run_sdk().await;

    assert_eq!(sdk_decisions, gateway_decisions);
    // The sequence exercised what it is meant to: both deployments of the weighted group,
    // a retry, a fallback, and failures.
    let answered_by = |d: &str| {
        gateway_decisions
            .iter()
            .any(|x| matches!(x, Decision::Answered { deployment, .. } if deployment == d))
    };
    assert!(
        answered_by("duo-a") && answered_by("duo-b"),
        "{gateway_decisions:?}"
    );
    assert!(
        gateway_decisions
            .iter()
            .any(|d| matches!(d, Decision::Answered { attempts, .. } if *attempts > 1)),
        "no call was retried: {gateway_decisions:?}"
    );
    assert!(
        gateway_decisions
            .iter()
            .any(|d| matches!(d, Decision::Answered { fallback: Some(f), .. } if f == "backup")),
        "{gateway_decisions:?}"
    );
    assert!(gateway_decisions.contains(&Decision::Failed(404)));
    assert!(gateway_decisions.contains(&Decision::Failed(400)));

    // Records reach the sink in the order calls end, which for a stream the gateway
    // forwards is not always the order the next call starts: compare them sorted.
    let sorted = |records: &[Arc<CallRecord>]| {
        let mut v: Vec<String> = records.iter().map(|r| comparable(r).to_string()).collect();
        v.sort();
        v
    };
    let (g, s) = (sorted(&gateway_records), sorted(&sdk_records));
    assert_eq!(s.len(), calls());
    for (sdk, gateway) in s.iter().zip(&g) {
        assert_eq!(sdk, gateway);
    }
    // Every successful call was priced the same (real prices for the OpenAI models).
    assert!(
        sdk_records
            .iter()
            .filter(|r| r.status == 200)
            .all(|r| r.cost_nano_usd.is_some_and(|c| c > 0)),
        "{sdk_records:#?}"
    );
}
