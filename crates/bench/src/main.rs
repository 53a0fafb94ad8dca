//! The `llmux-bench` command: `upstream` (the mock upstream) and `load` (the load
//! generator). See the library docs; `cargo xtask bench` runs both.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http::{HeaderMap, HeaderName, HeaderValue};
use llmux_bench::{load, upstream};

#[derive(Debug, Parser)]
#[command(
    name = "llmux-bench",
    about = "Benchmark tools for llmux: mock upstream and load generator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the mock upstream (OpenAI `/v1/chat/completions`, Anthropic `/v1/messages`)
    /// until SIGTERM or Ctrl-C.
    Upstream {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Listen port (0: any free port, printed on stderr).
        #[arg(long, default_value_t = 18001)]
        port: u16,
        /// Milliseconds before each response head.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Content chunks per stream.
        #[arg(long, default_value_t = 8)]
        chunks: usize,
        /// Milliseconds between stream events.
        #[arg(long, default_value_t = 0)]
        chunk_delay_ms: u64,
        /// Runtime worker threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Offer load to one URL for a bounded time and print the report as JSON.
    Load {
        /// Target, e.g. `http://127.0.0.1:4000/v1/chat/completions`.
        #[arg(long)]
        url: String,
        /// Closed loop with this many connections (the default mode, 1 connection).
        #[arg(long, short = 'c', conflicts_with = "rate")]
        concurrency: Option<usize>,
        /// Open loop at this many requests per second.
        #[arg(long, short = 'q')]
        rate: Option<f64>,
        /// Open loop: most connections at once.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// Seconds during which requests are sent.
        #[arg(long, short = 'z', default_value_t = 10.0)]
        duration: f64,
        /// Seconds requests in flight at the end may still finish (then: aborted).
        #[arg(long, default_value_t = 5.0)]
        grace: f64,
        /// Seconds one request may take once sent.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        /// Ask for a stream (`"stream": true`) and check it ends in `data: [DONE]`.
        #[arg(long)]
        stream: bool,
        /// The `model` of the default body.
        #[arg(long, default_value = "bench-model")]
        model: String,
        /// A request body instead of the default chat request (`--stream` still decides
        /// how the answer is checked).
        #[arg(long)]
        body: Option<String>,
        /// Sent as `Authorization: Bearer KEY`.
        #[arg(long, env = "LLMUX_BENCH_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// Extra header `name: value` (repeatable).
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// Most connections being opened at once.
        #[arg(long, default_value_t = 256)]
        connect_parallelism: usize,
        /// Runtime worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Upstream {
            host,
            port,
            delay_ms,
            chunks,
            chunk_delay_ms,
            threads,
        } => {
            let addr: SocketAddr = match format!("{host}:{port}").parse() {
                Ok(a) => a,
                Err(e) => return fail(&format!("--host/--port: {e}")),
            };
            let settings = upstream::Settings {
                delay: Duration::from_millis(delay_ms),
                chunks,
                chunk_delay: Duration::from_millis(chunk_delay_ms),
            };
            let rt = match runtime(Some(threads)) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let served = rt.block_on(upstream::run(addr, settings, shutdown(), |bound| {
                eprintln!("llmux-bench upstream listening on http://{bound}");
            }));
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("could not listen on {addr}: {e}")),
            }
        }
        Command::Load {
            url,
            concurrency,
            rate,
            max_connections,
            duration,
            grace,
            timeout,
            stream,
            model,
            body,
            api_key,
            headers,
            connect_parallelism,
            threads,
        } => {
            let spec = match load_spec(LoadArgs {
                url: &url,
                concurrency,
                rate,
                max_connections,
                duration,
                grace,
                timeout,
                stream,
                model: &model,
                body,
                api_key,
                headers: &headers,
                connect_parallelism,
            }) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            let rt = match runtime(threads) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let report = rt.block_on(load::run(spec.clone()));
            let mut out = report.to_json(&spec);
            out["url"] = url.into();
            out["loadgen_cpu_s"] = own_cpu_seconds().into();
            println!("{out}");
            ExitCode::SUCCESS
        }
    }
}

#[derive(Debug)]
struct LoadArgs<'a> {
    url: &'a str,
    concurrency: Option<usize>,
    rate: Option<f64>,
    max_connections: usize,
    duration: f64,
    grace: f64,
    timeout: f64,
    stream: bool,
    model: &'a str,
    body: Option<String>,
    api_key: Option<String>,
    headers: &'a [String],
    connect_parallelism: usize,
}

fn seconds(name: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| format!("--{name}: '{v}' is not a duration in seconds"))
}

fn load_spec(a: LoadArgs<'_>) -> Result<load::Spec, String> {
    let uri: http::Uri = a.url.parse().map_err(|e| format!("--url: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("--url: only http:// is supported".into());
    }
    let authority = uri.authority().ok_or("--url: no host")?;
    let port = authority.port_u16().unwrap_or(80);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("--url: {e}"))?
        .next()
        .ok_or("--url: the host resolves to no address")?;
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let mut headers = HeaderMap::new();
    if let Some(key) = a.api_key.filter(|k| !k.is_empty()) {
        let v = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| "--api-key: not a header value")?;
        headers.insert(http::header::AUTHORIZATION, v);
    }
    for h in a.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header '{h}': not `name: value`"))?;
        let name: HeaderName = name
            .trim()
            .parse()
            .map_err(|_| format!("--header '{h}': bad name"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("--header '{h}': bad value"))?;
        headers.insert(name, value);
    }
    let body = match a.body {
        Some(b) => b,
        None => serde_json::json!({
            "model": a.model,
            "messages": [{"role": "user", "content": "Say hello in a few words."}],
            "max_tokens": 32,
            "stream": a.stream,
        })
        .to_string(),
    };
    let mode = match (a.rate, a.concurrency) {
        (Some(rate), _) if rate.is_finite() && rate > 0.0 => load::Mode::Open {
            rate,
            max_connections: a.max_connections.max(1),
        },
        (Some(rate), _) => return Err(format!("--rate: '{rate}' is not a positive number")),
        (None, c) => load::Mode::Closed {
            concurrency: c.unwrap_or(1).max(1),
        },
    };
    Ok(load::Spec {
        addr,
        host: authority.as_str().to_owned(),
        path,
        headers,
        body: Bytes::from(body),
        stream: a.stream,
        mode,
        duration: seconds("duration", a.duration)?,
        grace: seconds("grace", a.grace)?,
        timeout: seconds("timeout", a.timeout)?,
        connect_parallelism: a.connect_parallelism.max(1),
    })
}

fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads.filter(|n| *n > 0) {
        b.worker_threads(n);
    }
    b.enable_all()
        .build()
        .map_err(|e| fail(&format!("could not start the runtime: {e}")))
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// This process's user + system CPU time, from `/proc/self/stat` (Linux; `null` elsewhere).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux the benchmark runs on.
    Some(ticks as f64 / 100.0)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("llmux-bench: {message}");
    ExitCode::FAILURE
}
