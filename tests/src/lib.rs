//! End-to-end test harness: the real gateway on an ephemeral 127.0.0.1 port, in front of
//! testkit mock upstreams, talked to over HTTP like any client would.

#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmux_config::Config;
use llmux_core::{CallRecord, CallSink};
use llmux_server::RunningGateway;
use llmux_testkit::OpenAiMock;

/// The master key every harness gateway requires.
pub const MASTER_KEY: &str = "sk-llmux-test-master";
/// The key the OpenAI mock expects from the gateway.
pub const UPSTREAM_KEY: &str = "sk-upstream-test";

/// A gateway and the mock behind it.
#[derive(Debug)]
pub struct Harness {
    /// The OpenAI-format upstream.
    pub openai: OpenAiMock,
    /// The gateway under test.
    pub gateway: RunningGateway,
    /// A client with a bounded timeout.
    pub http: reqwest::Client,
    /// Every call record the gateway emitted.
    pub records: Arc<Records>,
}

/// A sink that keeps every record, for assertions.
#[derive(Debug, Default)]
pub struct Records(Mutex<Vec<Arc<CallRecord>>>);

#[async_trait::async_trait]
impl CallSink for Records {
    fn name(&self) -> &str {
        "test-records"
    }
    async fn record(&self, record: Arc<CallRecord>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }
}

impl Records {
    /// Wait (bounded) until exactly `n` records arrived, then return them.
    pub async fn wait_for(&self, n: usize) -> Vec<Arc<CallRecord>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                // Give a stray extra record the chance to show up before asserting.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let got = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
                assert_eq!(got.len(), n, "records: {got:#?}");
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The config the harness serves, pointed at `mock_base`.
pub fn config_yaml(mock_base: &str) -> String {
    format!(
        r#"
server:
  master_key: {MASTER_KEY}
  max_body_bytes: 65536
  shutdown_grace_secs: 5
models:
  - name: gpt
    model: openai/gpt-4o-mini
    api_base: {mock_base}
    api_key: os.environ/E2E_UPSTREAM_KEY
  - name: emb
    model: openai/text-embedding-3-small
    api_base: {mock_base}
    api_key: os.environ/E2E_UPSTREAM_KEY
  - name: slow
    model: openai/gpt-4o-mini
    api_base: {mock_base}
    api_key: os.environ/E2E_UPSTREAM_KEY
    timeout: 0.3
  - name: mock/*
    model: mock/*
"#
    )
}

impl Harness {
    /// Start a mock and a gateway in front of it.
    pub async fn start() -> Self {
        llmux::link_providers();
        let openai = OpenAiMock::with_api_key(UPSTREAM_KEY).await;
        let env = |k: &str| (k == "E2E_UPSTREAM_KEY").then(|| UPSTREAM_KEY.to_owned());
        let config = Config::from_str(&config_yaml(&openai.base_url()), "yaml", "e2e.yaml", &env)
            .expect("valid config");
        let records = Arc::new(Records::default());
        // No retries, cooldowns or resumption: each fault maps straight to the client, so
        // these tests see the provider's error mapping. Routing has its own tests.
        let settings = llmux_router::RouterSettings {
            num_retries: 0,
            allowed_fails: None,
            cooldown_time: Duration::ZERO,
            retry_after_cap: Duration::ZERO,
            stream_resume: false,
            ..llmux_router::RouterSettings::default()
        };
        let gateway = llmux::gateway()
            .config(config)
            .router_settings(settings)
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
        Self {
            openai,
            gateway,
            http,
            records,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.url())
    }

    /// POST JSON with the master key.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(path))
            .bearer_auth(MASTER_KEY)
            .json(body)
    }
}

/// Read an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    let mut d = llmux_core::sse::SseDecoder::new();
    let mut out = Vec::new();
    d.feed(body.as_bytes(), &mut out).expect("valid SSE");
    out.into_iter().map(|e| e.data).collect()
}
