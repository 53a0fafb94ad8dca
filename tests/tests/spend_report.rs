//! Spend reports end to end: tagged calls (body `metadata.tags`, top-level `tags`, the
//! `x-llmux-tags` header; plain and streamed; chat and embeddings) through the real gateway
//! to the OpenAI mock, the spend writer flushed by a graceful shutdown, then
//! `GET /spend/report` (JSON and CSV) from a gateway on the same SQLite store, checked
//! against sums computed here from the spend-log rows of those calls.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use llmux_config::Config;
use llmux_core::CallRecord;
use llmux_e2e::{MASTER_KEY, UPSTREAM_KEY, config_yaml};
use llmux_server::RunningGateway;
use llmux_store::{LogPage, SpendLogFilter, Store};
use llmux_testkit::OpenAiMock;
use serde_json::{Value, json};

const BOUND: Duration = Duration::from_secs(90);

static N: AtomicUsize = AtomicUsize::new(0);

fn temp_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "llmux-spend-e2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn gateway(store: Store, openai: &OpenAiMock) -> RunningGateway {
    gateway_with(store, openai, "").await
}

/// A gateway on `store` whose config is the e2e one plus `extra` YAML.
async fn gateway_with(store: Store, openai: &OpenAiMock, extra: &str) -> RunningGateway {
    llmux::link_providers();
    let env = |k: &str| (k == "E2E_UPSTREAM_KEY").then(|| UPSTREAM_KEY.to_owned());
    let yaml = format!("{}{extra}", config_yaml(&openai.base_url()));
    let config = Config::from_str(&yaml, "yaml", "e2e.yaml", &env).expect("valid config");
    llmux::gateway()
        .config(config)
        .router_settings(llmux_router::RouterSettings {
            num_retries: 0,
            ..llmux_router::RouterSettings::default()
        })
        .observability(false)
        .store(store)
        .build()
        .expect("gateway builds")
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("gateway starts")
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(gw: &RunningGateway) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            base: gw.url(),
        }
    }

    async fn post(&self, auth: &str, path: &str, body: &Value, tags: Option<&str>) -> (u16, Value) {
        let mut rq = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(auth)
            .json(body);
        if let Some(t) = tags {
            rq = rq.header("x-llmux-tags", t);
        }
        let r = rq.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, auth: Option<&str>, path: &str) -> (u16, String, String) {
        let mut rq = self.http.get(format!("{}{path}", self.base));
        if let Some(a) = auth {
            rq = rq.bearer_auth(a);
        }
        let r = rq.send().await.expect("request");
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, ctype, r.text().await.expect("body"))
    }

    async fn report(&self, query: &str) -> Value {
        let (status, ctype, body) = self
            .get(Some(MASTER_KEY), &format!("/spend/report?{query}"))
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(ctype.starts_with("application/json"), "{ctype}");
        serde_json::from_str(&body).expect("json report")
    }
}

fn chat(tags_in_metadata: Option<&[&str]>, top_level_tags: Option<&[&str]>, stream: bool) -> Value {
    let mut body = json!({
        "model": "gpt",
        "messages": [{"role": "user", "content": "summarize the quarterly numbers, please"}],
    });
    if let Some(t) = tags_in_metadata {
        body["metadata"] = json!({ "tags": t });
    }
    if let Some(t) = top_level_tags {
        body["tags"] = json!(t);
    }
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// What one group must add up to, from the spend-log rows.
#[derive(Debug, Default, PartialEq)]
struct Sums {
    calls: i64,
    errors: i64,
    spend_nano: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cached_tokens: i64,
}

fn add(s: &mut Sums, r: &CallRecord) {
    s.calls += 1;
    s.errors += i64::from(r.status >= 400 || r.error_kind.is_some());
    s.spend_nano += r.cost_nano_usd.unwrap_or(0);
    s.prompt_tokens += r.prompt_tokens as i64;
    s.completion_tokens += r.completion_tokens as i64;
    s.cached_tokens += r.cached_tokens as i64;
}

fn sums_of(row: &Value) -> Sums {
    let n = |k: &str| row[k].as_i64().unwrap_or_else(|| panic!("{k} in {row}"));
    Sums {
        calls: n("calls"),
        errors: n("errors"),
        spend_nano: n("spend_nano"),
        prompt_tokens: n("prompt_tokens"),
        completion_tokens: n("completion_tokens"),
        cached_tokens: n("cached_tokens"),
    }
}

fn tags_of(r: &CallRecord) -> Vec<Option<String>> {
    let mut t: Vec<String> = r.tags.clone();
    t.sort();
    t.dedup();
    if t.is_empty() {
        vec![None]
    } else {
        t.into_iter().map(Some).collect()
    }
}

#[tokio::test]
async fn spend_report_sums_tagged_calls_through_the_gateway_as_json_and_csv() {
    tokio::time::timeout(BOUND, async {
        let dir = TempDir(temp_dir());
        let url = format!("sqlite://{}", dir.0.join("llmux.db").display());
        let openai = OpenAiMock::with_api_key(UPSTREAM_KEY).await;

        // 1. Calls through a gateway, which is then shut down (flushing the spend writer).
        let first = gateway(Store::connect(&url).await.expect("store"), &openai).await;
        let c = Client::new(&first);
        let (status, v) = c
            .post(
                MASTER_KEY,
                "/key/generate",
                &json!({"key_alias": "checkout-svc"}),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        let key = v["key"].as_str().expect("key").to_owned();
        let key_id = v["key_id"].as_str().expect("key_id").to_owned();
        // A key's default tags must be valid tags.
        let (status, v) = c
            .post(
                MASTER_KEY,
                "/key/generate",
                &json!({"metadata": {"tags": ["ok", "x".repeat(65)]}}),
                None,
            )
            .await;
        assert_eq!(status, 400, "{v}");
        assert!(v["error"]["message"].as_str().unwrap_or_default().contains("metadata.tags"), "{v}");

        let calls: Vec<(String, String, Value, Option<&str>)> = vec![
            (key.clone(), "/v1/chat/completions".into(), chat(Some(&["summarize"]), None, false), None),
            (key.clone(), "/v1/chat/completions".into(), chat(None, None, true), Some("summarize, eu")),
            (MASTER_KEY.into(), "/v1/chat/completions".into(), chat(None, Some(&["chat"]), false), None),
            (MASTER_KEY.into(), "/v1/chat/completions".into(), chat(Some(&["summarize"]), Some(&["eu"]), false), None),
            (MASTER_KEY.into(), "/v1/embeddings".into(), json!({"model": "emb", "input": "hello world"}), None),
        ];
        for (auth, path, body, header) in &calls {
            let (status, v) = c.post(auth, path, body, *header).await;
            assert_eq!(status, 200, "{path} {body}: {v}");
        }
        // Tags out of bounds are a 400 naming `tags`.
        let too_many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
        let too_long = "x".repeat(65);
        for body in [
            json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "metadata": {"tags": too_many}}),
            json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "tags": [too_long]}),
            json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "tags": "a,b"}),
        ] {
            let (status, v) = c.post(MASTER_KEY, "/v1/chat/completions", &body, None).await;
            assert_eq!(status, 400, "{v}");
            assert_eq!(v["error"]["param"], json!("tags"), "{v}");
        }
        first.shutdown().await.expect("clean shutdown");

        // What the report must say, from the spend log itself.
        let store = Store::connect(&url).await.expect("store");
        let logged = store
            .spend_logs(&SpendLogFilter::default(), &LogPage { limit: 1000, cursor: None })
            .await
            .expect("spend logs")
            .records;
        let ok: Vec<&CallRecord> = logged.iter().filter(|r| r.status == 200).collect();
        assert_eq!(ok.len(), calls.len(), "{logged:#?}");
        assert!(ok.iter().all(|r| r.cost_nano_usd.is_some_and(|c| c > 0)), "priced: {ok:#?}");
        let mut by_tag: BTreeMap<Option<String>, Sums> = BTreeMap::new();
        let mut by_model: BTreeMap<(Option<String>, String), Sums> = BTreeMap::new();
        let mut total = Sums::default();
        for r in &logged {
            add(&mut total, r);
            for t in tags_of(r) {
                add(by_tag.entry(t).or_default(), r);
            }
            add(
                by_model
                    .entry((r.provider_model.clone(), r.model_group.clone()))
                    .or_default(),
                r,
            );
        }
        assert_eq!(by_tag[&Some("summarize".to_owned())].calls, 3);
        assert_eq!(by_tag[&Some("eu".to_owned())].calls, 2);

        // 2. A second gateway on the same store serves the report.
        let second = gateway(store.clone(), &openai).await;
        let c = Client::new(&second);
        let from_to = {
            let day = |ms: u64| llmux_store::Day::from_unix_ms(ms as i64).to_string();
            let first_day = logged.iter().map(|r| r.started_at_ms).min().expect("rows");
            let last_day = logged.iter().map(|r| r.started_at_ms).max().expect("rows");
            format!("from={}&to={}", day(first_day), day(last_day))
        };

        let v = c.report(&format!("group_by=feature&{from_to}")).await;
        assert_eq!(v["group_by"], json!(["tag"]));
        assert_eq!(v["currency"], json!("USD"));
        assert_eq!(sums_of(&v["total"]), total);
        let data = v["data"].as_array().expect("data");
        let got: BTreeMap<Option<String>, Sums> = data
            .iter()
            .map(|row| (row["tag"].as_str().map(str::to_owned), sums_of(row)))
            .collect();
        assert_eq!(got, by_tag);
        // Sorted by spend, most first; shares of the total (overlapping: several tags).
        let spends: Vec<i64> = data.iter().map(|r| r["spend_nano"].as_i64().unwrap()).collect();
        assert!(spends.windows(2).all(|w| w[0] >= w[1]), "{spends:?}");
        for row in data {
            let share = row["share"].as_f64().expect("share");
            let want = row["spend_nano"].as_f64().unwrap() / total.spend_nano as f64;
            assert!((share - want).abs() < 1e-6, "{row}");
            let spend = row["spend"].as_f64().expect("spend");
            assert!((spend - row["spend_nano"].as_f64().unwrap() / 1e9).abs() < 1e-12);
            assert!(row["avg_latency_ms"].as_f64().expect("avg") >= 0.0);
            assert!(row["p95_latency_ms"].as_f64().expect("p95") >= 0.0);
            let rate = row["errors"].as_f64().unwrap() / row["calls"].as_f64().unwrap();
            assert!((row["error_rate"].as_f64().expect("error_rate") - rate).abs() < 1e-6);
        }

        // Two dimensions at once.
        let v = c.report(&format!("group_by=model,model_group&{from_to}")).await;
        let got: BTreeMap<(Option<String>, String), Sums> = v["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|row| {
                (
                    (
                        row["model"].as_str().map(str::to_owned),
                        row["model_group"].as_str().expect("group").to_owned(),
                    ),
                    sums_of(row),
                )
            })
            .collect();
        assert_eq!(got, by_model);
        assert!(got.keys().any(|(_, g)| g == "emb"));

        // By key, narrowed to one tag: the key's alias rides along; calls without a key are
        // the `null` group.
        let v = c.report(&format!("group_by=key&tag=summarize&{from_to}")).await;
        let data = v["data"].as_array().expect("data");
        assert_eq!(data.len(), 2, "{v}");
        let keyed = data.iter().find(|r| r["key"] == json!(key_id)).expect("key group");
        assert_eq!(keyed["key_alias"], json!("checkout-svc"));
        assert_eq!(keyed["calls"], json!(2));
        let unkeyed = data.iter().find(|r| r["key"].is_null()).expect("master-key group");
        assert_eq!(unkeyed["calls"], json!(1));
        assert_eq!(v["total"]["calls"], json!(3));
        // A key filter by alias.
        let v = c.report(&format!("group_by=tag&key=checkout-svc&{from_to}")).await;
        assert_eq!(v["total"]["calls"], json!(2));

        // CSV: a header, one line per group, the same figures.
        let (status, ctype, csv) = c
            .get(Some(MASTER_KEY), &format!("/spend/report?group_by=tag&format=csv&{from_to}"))
            .await;
        assert_eq!(status, 200, "{csv}");
        assert!(ctype.starts_with("text/csv"), "{ctype}");
        let lines: Vec<&str> = csv.lines().collect();
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(header[..4], ["tag", "spend", "spend_nano", "share"]);
        let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
        assert_eq!(lines.len(), 1 + by_tag.len(), "{csv}");
        for line in &lines[1..] {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), header.len(), "{line}");
            let tag = (!cells[0].is_empty()).then(|| cells[0].to_owned());
            let want = &by_tag[&tag];
            assert_eq!(cells[col("calls")].parse::<i64>().unwrap(), want.calls);
            assert_eq!(cells[col("spend_nano")].parse::<i64>().unwrap(), want.spend_nano);
            assert_eq!(
                cells[col("prompt_tokens")].parse::<i64>().unwrap(),
                want.prompt_tokens
            );
            let spend = cells[col("spend")];
            let nano = want.spend_nano;
            assert_eq!(spend, format!("{}.{:09}", nano / 1_000_000_000, nano % 1_000_000_000));
        }

        // Refusals, in OpenAI's error shape.
        let (status, _, body) = c.get(None, "/spend/report").await;
        assert_eq!(status, 401, "{body}");
        let (status, _, body) = c.get(Some(&key), "/spend/report").await;
        assert_eq!(status, 403, "{body}");
        for (query, param) in [
            ("group_by=tag,colour", "group_by"),
            ("from=2025-02-30", "from"),
            ("from=2025-03-02&to=2025-03-01", "from"),
            ("format=xml", "format"),
            ("limit=-1", "limit"),
        ] {
            let (status, ctype, body) = c
                .get(Some(MASTER_KEY), &format!("/spend/report?{query}"))
                .await;
            assert_eq!(status, 400, "{query}: {body}");
            assert!(ctype.starts_with("application/json"));
            let v: Value = serde_json::from_str(&body).expect("json error");
            assert_eq!(v["error"]["type"], json!("invalid_request_error"), "{v}");
            assert_eq!(v["error"]["param"], json!(param), "{v}");
        }
        let (status, _, body) = c
            .get(Some(MASTER_KEY), "/spend/report?key=no-such-key")
            .await;
        assert_eq!(status, 404, "{body}");
        second.shutdown().await.expect("clean shutdown");
    })
    .await
    .expect("bounded");
}

/// Attribution precedence, end to end: a call is counted under the request's own tags,
/// then its key's default tags, then its model group's tags (`router.model_group_tags`),
/// each tag once and at most 32; when the sources together carry more, the model group's
/// go first, then the key's, never the request's.
#[tokio::test]
async fn tags_come_from_the_request_then_the_key_then_the_model_group() {
    tokio::time::timeout(BOUND, async {
        let dir = TempDir(temp_dir());
        let url = format!("sqlite://{}", dir.0.join("llmux.db").display());
        let openai = OpenAiMock::with_api_key(UPSTREAM_KEY).await;
        let extra = "router:\n  model_group_tags: {gpt: [grp, shared]}\n";
        let gw = gateway_with(Store::connect(&url).await.expect("store"), &openai, extra).await;
        let c = Client::new(&gw);
        let (status, v) = c
            .post(
                MASTER_KEY,
                "/key/generate",
                &json!({"key_alias": "tagged", "metadata": {"tags": ["key-feature", "shared"]}}),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        let key = v["key"].as_str().expect("key").to_owned();
        let many: Vec<String> = (0..31).map(|i| format!("r{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let calls: Vec<(&str, &str, Value)> = vec![
            (
                "all-three",
                &key,
                chat(Some(&["req-feature", "shared"]), None, false),
            ),
            ("group-only", MASTER_KEY, chat(None, None, true)),
            ("capped", &key, chat(Some(&many), None, false)),
            (
                "no-group-tags",
                &key,
                json!({"model": "emb", "input": "hello"}),
            ),
        ];
        for (name, auth, body) in &calls {
            let path = if body.get("input").is_some() {
                "/v1/embeddings"
            } else {
                "/v1/chat/completions"
            };
            let mut body = body.clone();
            body["user"] = json!(name);
            let (status, v) = c.post(auth, path, &body, None).await;
            assert_eq!(status, 200, "{name}: {v}");
        }
        gw.shutdown().await.expect("clean shutdown");

        let store = Store::connect(&url).await.expect("store");
        let logged = store
            .spend_logs(
                &SpendLogFilter::default(),
                &LogPage {
                    limit: 100,
                    cursor: None,
                },
            )
            .await
            .expect("spend logs")
            .records;
        let tags = |name: &str| -> Vec<String> {
            let r = logged
                .iter()
                .find(|r| r.end_user.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("no record for {name}: {logged:#?}"));
            r.tags.clone()
        };
        assert_eq!(
            tags("all-three"),
            ["req-feature", "shared", "key-feature", "grp"]
        );
        assert_eq!(tags("group-only"), ["grp", "shared"]);
        let capped = tags("capped");
        assert_eq!(capped.len(), 32, "{capped:?}");
        assert_eq!(capped[..31], many[..]);
        assert_eq!(capped[31], "key-feature");
        assert_eq!(tags("no-group-tags"), ["key-feature", "shared"]);
        // The key's alias at call time is in the record (and the spend log).
        let keyed: Vec<_> = logged.iter().filter(|r| r.key.is_some()).collect();
        assert_eq!(keyed.len(), 3, "{logged:#?}");
        assert!(
            keyed
                .iter()
                .all(|r| r.key_alias.as_deref() == Some("tagged")),
            "{keyed:#?}"
        );
    })
    .await
    .expect("test finished in time");
}
