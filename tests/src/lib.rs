//! End-to-end test harness: the real gateway on an ephemeral 127.0.0.1 port, in front of
//! testkit mock upstreams, talked to over HTTP like any client would.

#![forbid(unsafe_code)]

use std::time::Duration;

use llmux_config::Config;
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
        let gateway = llmux::gateway()
            .config(config)
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
