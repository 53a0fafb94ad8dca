//! Streams fail over through the real gateway: a testkit upstream that breaks mid-stream,
//! and one that stalls, are continued on the next deployment; the client sees one stream
//! ending in `[DONE]`, and the record notes the resumption. Also: tags and per-deployment
//! prices from the config reach the record and the cost header.

use std::sync::Arc;
use std::time::Duration;

use llmux_config::Config;
use llmux_e2e::{Records, UPSTREAM_KEY, sse_data};
use llmux_testkit::{Fault, OpenAiMock};
use serde_json::{Value, json};

const KEY: &str = "sk-failover-master";

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
    let yaml = format!(
        r#"
server:
  master_key: {KEY}
router:
  num_retries: 1
  stall_timeout: 0.5
  cooldown_time: 30
models:
  - name: resumable
    id: first
    model: openai/gpt-4o-mini
    api_base: {a}
    api_key: {UPSTREAM_KEY}
    order: 1
  - name: resumable
    id: second
    model: openai/gpt-4o-mini
    api_base: {b}
    api_key: {UPSTREAM_KEY}
    order: 2
  - name: custom-priced
    model: openai/my-finetune
    api_base: {b}
    api_key: {UPSTREAM_KEY}
    input_cost_per_token: "0.000001"
    output_cost_per_token: "0.000003"
"#,
        a = a.base_url(),
        b = b.base_url()
    );
    let config = Config::from_str(&yaml, "yaml", "failover.yaml", &|_| None)
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
    async fn stream(&self) -> Vec<String> {
        let text = self
            .http
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(KEY)
            .json(&json!({"model": "resumable", "stream": true,
                "messages": [{"role": "user", "content": "one two three four five six seven eight"}]}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        sse_data(&text)
    }
}

fn streamed_text(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

async fn check_resumed(s: &Setup) {
    let b_req = &s.b.requests()[0].body;
    let msgs = b_req["messages"].as_array().unwrap();
    let prefix = msgs.last().unwrap();
    assert_eq!(
        prefix["role"], "assistant",
        "the continuation carries the text so far: {b_req}"
    );
    let recs = s.records.wait_for(1).await;
    assert_eq!(recs[0].stream_resumptions, 1);
    assert_eq!(recs[0].status, 200);
    assert_eq!(recs[0].deployment.as_deref(), Some("second"));
}

#[tokio::test]
async fn a_stream_that_breaks_is_continued_on_the_next_deployment() {
    let s = setup().await;
    s.a.push_fault(Fault::BrokenStream { after_chunks: 2 });
    let events = s.stream().await;
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| e.contains("\"error\"")),
        "{events:?}"
    );
    let text = streamed_text(&events);
    assert!(text.starts_with("one"), "{text}");
    assert!(
        text.ends_with("eight"),
        "the continuation completes the answer: {text}"
    );
    check_resumed(&s).await;
}

#[tokio::test]
async fn a_stream_that_stalls_is_continued_on_the_next_deployment() {
    let s = setup().await;
    s.a.push_fault(Fault::SlowStream {
        chunks: 4,
        delay: Duration::from_secs(5),
    });
    let started = std::time::Instant::now();
    let events = s.stream().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the stall was cut short"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    check_resumed(&s).await;
}

#[tokio::test]
async fn tags_and_configured_prices_reach_the_record() {
    let s = setup().await;
    let resp = s
        .http
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(KEY)
        .header("x-llmux-tags", "feature:summarize, team-a")
        .json(
            &json!({"model": "custom-priced", "metadata": {"tags": ["batch"]},
            "messages": [{"role": "user", "content": "two words"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // 2 prompt words at $0.000001 + 2 completion words at $0.000003.
    assert_eq!(resp.headers()["x-llmux-response-cost"], "0.000008");
    let recs = s.records.wait_for(1).await;
    assert_eq!(recs[0].tags, ["batch", "feature:summarize", "team-a"]);
    assert_eq!(recs[0].cost_nano_usd, Some(8_000));

    let resp = s
        .http
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(KEY)
        .json(&json!({"model": "custom-priced", "tags": ["x".repeat(65)],
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["param"], "tags");
}
