//! `cargo xtask bench`: the side-by-side overhead benchmark of issue #10, all in the repo.
//!
//! It builds the release `llmux` and `llmux-bench` binaries, starts on 127.0.0.1 the mock
//! upstream (`llmux-bench upstream`), the gateway in its two configurations (the
//! production path: master key, a virtual key with rate limits, SQLite spend log; and the
//! bare path: `--no-database`, no key) and the peers it finds (nginx `proxy_pass` from
//! `../shared/bench/gateways/nginx` when `nginx` is installed; LiteLLM Proxy when the venv
//! of `../shared/bench/setup.sh` exists), then offers the same load straight to the
//! upstream ("direct") and through each gateway, one after the other, in one run.
//!
//! The load generator is `llmux-bench load` (closed loop at a concurrency, open loop at a
//! fixed rate with latency from the scheduled send time). While each run goes, the
//! gateway's process tree is sampled from `/proc` (CPU time, RSS, VmHWM).
//!
//! Modes: the matrix (default; `--quick` a subset), `--soak` (memory over a long mixed
//! run), `--streams N` (N concurrent slow streams held through the gateway). Output:
//! `target/bench/<label>-<stamp>/` (`results.jsonl`, `report.json`, `report.md`, logs),
//! and the markdown report appended to `docs/benchmarks.md` (unless `--no-doc`).
//!
//! It must not install anything (no `cargo install oha`, no pip), nor send traffic
//! anywhere but 127.0.0.1; every run is bounded in time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bench_proc::{self as bp, Proc};
use crate::bench_report as report;

const USAGE: &str = "usage: cargo xtask bench [--quick | --soak [--soak-minutes M] [--soak-rate R] | --streams N] \
[--duration S] [--workers N] [--no-peers] [--no-doc] [--no-build]";

/// The model names the gateways serve.
const MODEL: &str = "bench-model";
const MODEL_TRANSLATED: &str = "bench-anthropic";
/// Limits of the benchmark's virtual key: real limits (checked on every call), far above
/// what the benchmark offers.
const KEY_RPM: &str = "100000000";
const KEY_TPM: &str = "100000000000";
/// Never run these LiteLLM releases (compromised on PyPI).
const LITELLM_BAD_VERSIONS: [&str; 3] = ["1.82.7", "1.82.8", "1.107.0"];

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Matrix,
    Soak,
    Streams(usize),
}

#[derive(Debug, Clone)]
struct Options {
    mode: Mode,
    quick: bool,
    /// Seconds of load per run.
    duration: f64,
    workers: usize,
    peers: bool,
    doc: bool,
    build: bool,
    soak_minutes: f64,
    soak_rate: f64,
    command: String,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            mode: Mode::Matrix,
            quick: false,
            duration: 0.0,
            workers: 1,
            peers: true,
            doc: true,
            build: true,
            soak_minutes: 10.0,
            soak_rate: 400.0,
            command: std::iter::once("cargo xtask bench".to_owned())
                .chain(args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
        };
        let mut it = args.iter();
        let number = |flag: &str, v: Option<&String>| -> Result<f64, String> {
            v.and_then(|s| s.parse::<f64>().ok())
                .filter(|n| n.is_finite() && *n > 0.0)
                .ok_or_else(|| format!("{flag} needs a positive number\n{USAGE}"))
        };
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--soak" => o.mode = Mode::Soak,
                "--streams" => o.mode = Mode::Streams(number(a, it.next())? as usize),
                "--duration" => o.duration = number(a, it.next())?,
                "--workers" => o.workers = number(a, it.next())? as usize,
                "--soak-minutes" => o.soak_minutes = number(a, it.next())?,
                "--soak-rate" => o.soak_rate = number(a, it.next())?,
                "--no-peers" => o.peers = false,
                "--no-doc" => o.doc = false,
                "--no-build" => o.build = false,
                other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
            }
        }
        if o.duration == 0.0 {
            o.duration = if o.quick { 3.0 } else { 5.0 };
        }
        Ok(o)
    }
}

/// The binaries under test and the tools.
#[derive(Debug)]
struct Bins {
    llmux: PathBuf,
    bench: PathBuf,
}

/// One way to reach the upstream: straight, or through a gateway (and which model).
#[derive(Debug, Clone)]
struct Target {
    /// Row label, e.g. `llmux prod`, `nginx`, `direct`.
    label: String,
    port: u16,
    path: String,
    model: String,
    api_key: Option<String>,
    /// The gateway's root process (none for direct).
    pid: Option<u32>,
    /// Only the cheap shapes (LiteLLM saturates at tens of requests per second).
    light: bool,
}

/// A load shape: closed loop at a concurrency, or open loop at a rate.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Closed(usize),
    Rate(f64),
}

impl Shape {
    fn label(self) -> String {
        match self {
            Shape::Closed(c) => format!("c={c}"),
            Shape::Rate(r) if r >= 1000.0 && r % 1000.0 == 0.0 => format!("{}k/s", r / 1000.0),
            Shape::Rate(r) => format!("{r}/s"),
        }
    }

    fn args(self) -> Vec<String> {
        match self {
            Shape::Closed(c) => vec!["--concurrency".into(), c.to_string()],
            Shape::Rate(r) => vec![
                "--rate".into(),
                r.to_string(),
                "--max-connections".into(),
                "1024".into(),
            ],
        }
    }
}

/// Everything a run needs: where things are, the upstream, the output files.
#[derive(Debug)]
struct Ctx {
    bins: Bins,
    dir: PathBuf,
    upstream: Proc,
    upstream_port: u16,
    results: std::fs::File,
    opts: Options,
    /// Root processes of every running gateway: a row starts when all are idle.
    gateway_pids: Vec<u32>,
}

impl Ctx {
    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    fn upstream_call(&self, method: &str, path: &str) -> Result<Value, String> {
        let (status, body) = bp::http(
            self.upstream_port,
            method,
            path,
            &[],
            "",
            Duration::from_secs(5),
        )?;
        if status != 200 {
            return Err(format!("upstream {path}: status {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("upstream {path}: {e}"))
    }

    fn record(&mut self, v: &Value) -> Result<(), String> {
        writeln!(self.results, "{v}").map_err(|e| e.to_string())
    }
}

/// `cargo xtask bench …`
pub fn run(args: &[String]) -> Result<(), String> {
    let opts = Options::parse(args)?;
    if opts.build {
        let mut c = crate::cargo();
        c.args([
            "build",
            "--release",
            "-p",
            "llmux",
            "--bin",
            "llmux",
            "-p",
            "llmux-bench",
            "--bin",
            "llmux-bench",
        ]);
        crate::run("build the release llmux and llmux-bench binaries", c)?;
    }
    let release = crate::target_dir().join("release");
    let bins = Bins {
        llmux: release.join("llmux"),
        bench: release.join("llmux-bench"),
    };
    for b in [&bins.llmux, &bins.bench] {
        if !b.is_file() {
            return Err(format!(
                "{} not found (build it, or drop --no-build)",
                b.display()
            ));
        }
    }
    let label = match opts.mode {
        Mode::Matrix if opts.quick => "quick".to_owned(),
        Mode::Matrix => "matrix".to_owned(),
        Mode::Soak => "soak".to_owned(),
        Mode::Streams(n) => format!("streams-{n}"),
    };
    let stamp = bp::first_line("date", &["-u", "+%Y%m%dT%H%M%SZ"]).unwrap_or_else(|| "now".into());
    let dir = crate::target_dir()
        .join("bench")
        .join(format!("{label}-{stamp}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("xtask bench: output in {}", dir.display());
    let started = Instant::now();

    let upstream_port = crate::free_port()?;
    let upstream = Proc::spawn(
        "upstream",
        &bins.bench,
        &[
            "upstream".into(),
            "--port".into(),
            upstream_port.to_string(),
            "--threads".into(),
            "1".into(),
        ],
        &[],
        &dir.join("upstream.log"),
        true,
    )?;
    let results = std::fs::File::create(dir.join("results.jsonl")).map_err(|e| e.to_string())?;
    let mut ctx = Ctx {
        bins,
        dir,
        upstream,
        upstream_port,
        results,
        opts,
        gateway_pids: Vec::new(),
    };
    bp::wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        ctx.upstream_call("GET", "/health").is_ok()
    })
    .ok_or("the upstream did not answer in 10 s")?;

    let meta = meta(&ctx);
    let (body, summary) = match ctx.opts.mode.clone() {
        Mode::Matrix => matrix(&mut ctx)?,
        Mode::Soak => soak(&mut ctx)?,
        Mode::Streams(n) => streams(&mut ctx, n)?,
    };
    ctx.upstream.stop();
    let took = started.elapsed().as_secs_f64();
    let mut meta = meta;
    meta["wall_s"] = json!((took * 10.0).round() / 10.0);
    let md = report::section(&meta, &body);
    let report_json = json!({"meta": meta, "summary": summary});
    std::fs::write(
        ctx.dir.join("report.json"),
        serde_json::to_string_pretty(&report_json).unwrap_or_default(),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(ctx.dir.join("report.md"), &md).map_err(|e| e.to_string())?;
    println!("{md}");
    if ctx.opts.doc {
        let doc = crate::root().join("docs/benchmarks.md");
        report::append(&doc, &md)?;
        eprintln!("xtask bench: report appended to {}", doc.display());
    }
    eprintln!(
        "xtask bench: done in {took:.0} s (measurement only, the build excluded); raw results in {}",
        ctx.dir.display()
    );
    Ok(())
}

/// Date, machine, versions, command.
fn meta(ctx: &Ctx) -> Value {
    let root = crate::root();
    let root_s = root.display().to_string();
    let commit = bp::first_line("git", &["-C", &root_s, "rev-parse", "--short", "HEAD"]);
    let dirty = std::process::Command::new("git")
        .args([
            "-C",
            &root_s,
            "status",
            "--porcelain",
            "--untracked-files=no",
        ])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    let llmux = bp::first_line(&ctx.bins.llmux.display().to_string(), &["--version"]);
    json!({
        "date": bp::first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        "command": ctx.opts.command,
        "machine": bp::machine(),
        "commit": commit.map(|c| if dirty { format!("{c} + uncommitted changes") } else { c }),
        "llmux": llmux,
        "rustc": bp::first_line("rustc", &["--version"]),
        "nginx": if ctx.opts.peers { nginx_version() } else { None },
        "litellm": if ctx.opts.peers { litellm_version() } else { None },
        "workers": ctx.opts.workers,
        "duration_s": ctx.opts.duration,
        "quick": ctx.opts.quick,
    })
}

fn nginx_version() -> Option<String> {
    bp::first_line("nginx", &["-v"]).map(|l| l.replace("nginx version: ", ""))
}

fn litellm_venv() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    std::env::var_os("LITELLM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cache/llmux-bench/litellm-venv"))
}

fn litellm_version() -> Option<String> {
    let py = litellm_venv().join("bin/python");
    if !py.is_file() || !litellm_venv().join("bin/litellm").is_file() {
        return None;
    }
    bp::first_line(
        &py.display().to_string(),
        &[
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ],
    )
}

fn shared_bench_dir() -> PathBuf {
    std::env::var_os("LLMUX_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join("../shared/bench"))
}

/// The gateway's config: one OpenAI-format model and one translated to Anthropic's
/// Messages format, both at the mock upstream; no retries (one upstream call per request).
fn write_config(ctx: &Ctx) -> Result<PathBuf, String> {
    let up = ctx.upstream_port;
    let yaml = format!(
        "# written by cargo xtask bench\n\
         router:\n  num_retries: 0\n\
         models:\n\
         \x20 - name: {MODEL}\n    model: openai/gpt-4o-mini\n    api_base: http://127.0.0.1:{up}/v1\n    api_key: sk-bench-upstream\n\
         \x20 - name: {MODEL_TRANSLATED}\n    model: anthropic/claude-3-5-haiku-20241022\n    api_base: http://127.0.0.1:{up}\n    api_key: sk-bench-upstream\n"
    );
    let path = ctx.dir.join("llmux.yaml");
    std::fs::write(&path, yaml).map_err(|e| e.to_string())?;
    Ok(path)
}

/// Which llmux configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
enum GatewayPath {
    /// Master key, virtual key with rpm/tpm limits, SQLite spend log.
    Production,
    /// `--no-database`, no master key.
    Bare,
}

impl GatewayPath {
    fn label(self) -> &'static str {
        match self {
            GatewayPath::Production => "llmux prod",
            GatewayPath::Bare => "llmux bare",
        }
    }
}

/// The master key of the production path, made per run.
fn master_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("sk-bench-master-{nanos:x}-{}", std::process::id())
}

/// `llmux serve` arguments and environment for a path.
fn serve_command(
    ctx: &Ctx,
    config: &Path,
    path: GatewayPath,
    port: u16,
    master: &str,
) -> (Vec<String>, Vec<(String, String)>) {
    let mut args = vec![
        "serve".to_owned(),
        "--config".into(),
        config.display().to_string(),
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
        "--workers".into(),
        ctx.opts.workers.to_string(),
        "--log-format".into(),
        "json".into(),
    ];
    let mut envs = vec![("RUST_LOG".to_owned(), "warn".to_owned())];
    match path {
        GatewayPath::Production => envs.push(("LLMUX_MASTER_KEY".into(), master.to_owned())),
        GatewayPath::Bare => args.push("--no-database".into()),
    }
    (args, envs)
}

/// A running gateway.
#[derive(Debug)]
struct Gateway {
    proc: Proc,
    port: u16,
    /// The key its clients send.
    key: Option<String>,
    /// RSS right after it became ready, before any traffic (MB).
    idle_rss_mb: f64,
    /// Time from spawn to ready (a first 200), ms.
    ready_ms: f64,
}

/// Start llmux on a path; wait for `/health/readiness`.
fn start_llmux(
    ctx: &Ctx,
    config: &Path,
    path: GatewayPath,
    master: &str,
    raise_nofile: bool,
) -> Result<Gateway, String> {
    let port = crate::free_port()?;
    let (args, envs) = serve_command(ctx, config, path, port, master);
    let name = path.label().replace(' ', "-");
    let t0 = Instant::now();
    let proc = Proc::spawn(
        &name,
        &ctx.bins.llmux,
        &args,
        &envs,
        &ctx.log(&name),
        raise_nofile,
    )?;
    let ready = bp::wait_until(Duration::from_secs(30), Duration::from_millis(1), || {
        matches!(
            bp::http(
                port,
                "GET",
                "/health/readiness",
                &[],
                "",
                Duration::from_secs(2)
            ),
            Ok((200, _))
        )
    });
    if ready.is_none() {
        return Err(format!(
            "{} did not get ready in 30 s (see {})",
            path.label(),
            ctx.log(&name).display()
        ));
    }
    let ready_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let idle_rss_mb = bp::status_mb(&[proc.pid], "VmRSS");
    Ok(Gateway {
        proc,
        port,
        key: None,
        idle_rss_mb,
        ready_ms,
    })
}

/// Spawn-to-ready times of the release binary, `n` fresh starts per path (ms).
fn startup(ctx: &Ctx, config: &Path, master: &str, n: usize) -> Result<Value, String> {
    let mut out = serde_json::Map::new();
    for path in [GatewayPath::Production, GatewayPath::Bare] {
        let mut times = Vec::new();
        let mut idle = Vec::new();
        for _ in 0..n {
            let mut g = start_llmux(ctx, config, path, master, false)?;
            times.push(g.ready_ms);
            idle.push(g.idle_rss_mb);
            g.proc.stop();
        }
        times.sort_by(f64::total_cmp);
        out.insert(
            path.label().into(),
            json!({
                "ready_ms_min": round2(times[0]),
                "ready_ms_median": round2(times[times.len() / 2]),
                "ready_ms_max": round2(times[times.len() - 1]),
                "idle_rss_mb": round2(idle.iter().copied().fold(0.0, f64::max)),
                "starts": n,
            }),
        );
    }
    Ok(Value::Object(out))
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Make the production path's virtual key (rpm and tpm limits) in the run's SQLite file.
fn create_key(ctx: &Ctx, config: &Path) -> Result<String, String> {
    let out = std::process::Command::new(&ctx.bins.llmux)
        .args([
            "keys", "create", "--alias", "bench", "--rpm", KEY_RPM, "--tpm", KEY_TPM,
        ])
        .arg("--config")
        .arg(config)
        .env_remove("LLMUX_DATABASE_URL")
        .env_remove("LLMUX_CONFIG")
        .output()
        .map_err(|e| format!("llmux keys create: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "llmux keys create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| "llmux keys create printed no key".into())
}

/// Start a peer from `../shared/bench/gateways/<name>/start.sh`; wait for a chat answer.
fn start_peer(
    ctx: &Ctx,
    name: &str,
    key: Option<&str>,
    timeout: Duration,
) -> Result<Gateway, String> {
    let script = shared_bench_dir().join(format!("gateways/{name}/start.sh"));
    let port = crate::free_port()?;
    let mut envs = vec![
        ("BENCH_PORT".to_owned(), port.to_string()),
        (
            "BENCH_UPSTREAM".to_owned(),
            format!("http://127.0.0.1:{}/v1", ctx.upstream_port),
        ),
        ("BENCH_WORKERS".to_owned(), ctx.opts.workers.to_string()),
        ("LITELLM_WORKERS".to_owned(), ctx.opts.workers.to_string()),
        ("BENCH_RUN_DIR".to_owned(), ctx.dir.display().to_string()),
    ];
    if let Some(k) = key {
        envs.push(("BENCH_API_KEY".into(), k.to_owned()));
    }
    let t0 = Instant::now();
    let proc = Proc::spawn(
        name,
        Path::new("bash"),
        &[script.display().to_string()],
        &envs,
        &ctx.log(name),
        true,
    )?;
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let ready = bp::wait_until(timeout, Duration::from_millis(20), || {
        matches!(
            bp::http(
                port,
                "POST",
                "/v1/chat/completions",
                &headers,
                &body,
                Duration::from_secs(10)
            ),
            Ok((200, _))
        )
    });
    if ready.is_none() {
        return Err(format!(
            "{name} did not answer in {timeout:?} (see {})",
            ctx.log(name).display()
        ));
    }
    let ready_ms = t0.elapsed().as_secs_f64() * 1000.0;
    // Let late workers finish importing before measuring idle memory.
    bp::settle(&bp::tree(proc.pid), Duration::from_secs(20));
    let idle_rss_mb = bp::status_mb(&bp::tree(proc.pid), "VmRSS");
    Ok(Gateway {
        proc,
        port,
        key: key.map(str::to_owned),
        idle_rss_mb,
        ready_ms,
    })
}

/// Start the gateways a mode measures: llmux on each path, and the peers found (matrix
/// only). Returns them with their targets.
fn start_gateways(
    ctx: &Ctx,
    config: &Path,
    master: &str,
    key: &str,
    paths: &[GatewayPath],
    translated: bool,
    peers: bool,
) -> Result<(Vec<Gateway>, Vec<Target>, Value), String> {
    let mut gateways = Vec::new();
    let mut targets = vec![Target {
        label: "direct".into(),
        port: ctx.upstream_port,
        path: "/v1/chat/completions".into(),
        model: MODEL.into(),
        api_key: None,
        pid: None,
        light: false,
    }];
    let mut started = serde_json::Map::new();
    for &path in paths {
        let mut g = start_llmux(ctx, config, path, master, true)?;
        if path == GatewayPath::Production {
            g.key = Some(key.to_owned());
        }
        let mut models = vec![(MODEL, String::new())];
        if translated {
            models.push((MODEL_TRANSLATED, " → anthropic".to_owned()));
        }
        for (model, suffix) in models {
            targets.push(Target {
                label: format!("{}{suffix}", path.label()),
                port: g.port,
                path: "/v1/chat/completions".into(),
                model: model.into(),
                api_key: g.key.clone(),
                pid: Some(g.proc.pid),
                light: false,
            });
        }
        started.insert(
            path.label().into(),
            json!({"idle_rss_mb": round2(g.idle_rss_mb)}),
        );
        gateways.push(g);
    }
    if peers {
        if nginx_version().is_some() && shared_bench_dir().join("gateways/nginx/start.sh").is_file()
        {
            match start_peer(ctx, "nginx", None, Duration::from_secs(10)) {
                Ok(g) => {
                    started.insert("nginx".into(), json!({"idle_rss_mb": round2(g.idle_rss_mb), "ready_ms": round2(g.ready_ms)}));
                    targets.push(peer_target("nginx", &g, false));
                    gateways.push(g);
                }
                Err(e) => eprintln!("xtask bench: nginx left out: {e}"),
            }
        } else {
            eprintln!("xtask bench: nginx is not installed (apt-get install nginx): no nginx peer");
        }
        match litellm_version() {
            Some(v) if LITELLM_BAD_VERSIONS.contains(&v.as_str()) => {
                eprintln!("xtask bench: litellm {v} is a compromised release: refusing to run it");
            }
            Some(v) => {
                let key = "sk-bench-litellm-local";
                match start_peer(ctx, "litellm", Some(key), Duration::from_secs(120)) {
                    Ok(g) => {
                        started.insert(
                            "litellm".into(),
                            json!({"version": v, "idle_rss_mb": round2(g.idle_rss_mb), "ready_ms": round2(g.ready_ms)}),
                        );
                        targets.push(peer_target("litellm", &g, true));
                        gateways.push(g);
                    }
                    Err(e) => eprintln!("xtask bench: litellm left out: {e}"),
                }
            }
            None => eprintln!(
                "xtask bench: no LiteLLM venv at {} (../shared/bench/setup.sh makes it): no LiteLLM peer",
                litellm_venv().display()
            ),
        }
    }
    Ok((gateways, targets, Value::Object(started)))
}

fn peer_target(name: &str, g: &Gateway, light: bool) -> Target {
    Target {
        label: name.into(),
        port: g.port,
        path: "/v1/chat/completions".into(),
        model: MODEL.into(),
        api_key: g.key.clone(),
        pid: Some(g.proc.pid),
        light,
    }
}

/// `llmux-bench load` arguments for one run.
fn load_args(t: &Target, shape: Shape, stream: bool, duration: f64, grace: f64) -> Vec<String> {
    let mut a = vec![
        "load".to_owned(),
        "--url".into(),
        format!("http://127.0.0.1:{}{}", t.port, t.path),
        "--model".into(),
        t.model.clone(),
        "--duration".into(),
        duration.to_string(),
        "--grace".into(),
        grace.to_string(),
    ];
    a.extend(shape.args());
    if stream {
        a.push("--stream".into());
    }
    a
}

/// Run `llmux-bench load` processes at once against targets, sampling the gateway's
/// process tree every `sample_every`; each load's JSON with the gateway figures added.
fn measure(
    ctx: &mut Ctx,
    gateway_pid: Option<u32>,
    loads: &[(Target, Vec<String>)],
    sample_every: Duration,
    mut on_sample: impl FnMut(f64, f64),
) -> Result<Vec<Value>, String> {
    let mut pids = gateway_pid.map(bp::tree).unwrap_or_default();
    let mut everyone: Vec<u32> = ctx.gateway_pids.iter().flat_map(|&p| bp::tree(p)).collect();
    everyone.extend(&pids);
    if !everyone.is_empty() {
        bp::settle(&everyone, Duration::from_secs(10));
    }
    ctx.upstream_call("POST", "/__bench/reset")?;
    let up_pids = [ctx.upstream.pid];
    let gw0 = bp::cpu_seconds(&pids);
    let up0 = bp::cpu_seconds(&up_pids);
    let (busy0, _) = bp::machine_cpu();
    let t0 = Instant::now();
    let mut children = Vec::new();
    for (i, (t, args)) in loads.iter().enumerate() {
        let envs: Vec<(String, String)> = t
            .api_key
            .iter()
            .map(|k| ("LLMUX_BENCH_API_KEY".to_owned(), k.clone()))
            .collect();
        children.push(Proc::spawn_captured(
            &format!("load-{i}"),
            &ctx.bins.bench,
            args,
            &envs,
            &ctx.log("load"),
        )?);
    }
    let mut rss_peak = bp::status_mb(&pids, "VmRSS");
    let mut last_tree = Instant::now();
    while !children.iter_mut().all(Proc::exited) {
        std::thread::sleep(sample_every);
        if gateway_pid.is_some() && last_tree.elapsed() > Duration::from_secs(1) {
            pids = gateway_pid.map(bp::tree).unwrap_or_default();
            last_tree = Instant::now();
        }
        let rss = bp::status_mb(&pids, "VmRSS");
        rss_peak = rss_peak.max(rss);
        on_sample(t0.elapsed().as_secs_f64(), rss);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let gw_cpu = bp::cpu_seconds(&pids) - gw0;
    let up_cpu = bp::cpu_seconds(&up_pids) - up0;
    let (busy1, _) = bp::machine_cpu();
    let hwm = bp::status_mb(&pids, "VmHWM");
    let stats = ctx.upstream_call("GET", "/__bench/stats")?;
    let mut out = Vec::new();
    let mut loadgen_cpu = 0.0;
    let mut ok_all = 0.0;
    for child in children {
        let text = child.wait_output()?;
        let v: Value =
            serde_json::from_str(text.trim()).map_err(|e| format!("load output: {e}: {text}"))?;
        loadgen_cpu += v["loadgen_cpu_s"].as_f64().unwrap_or(0.0);
        ok_all += v["ok"].as_f64().unwrap_or(0.0);
        out.push(v);
    }
    let other = ((busy1 - busy0) - gw_cpu - up_cpu - loadgen_cpu).max(0.0);
    for v in &mut out {
        if gateway_pid.is_some() {
            v["gw_cpu_s"] = json!(round3(gw_cpu));
            v["gw_cores"] = json!(round3(gw_cpu / elapsed));
            v["gw_cpu_ms_per_req"] = json!(round3(gw_cpu * 1000.0 / ok_all.max(1.0)));
            v["gw_rss_peak_mb"] = json!(round2(rss_peak));
            v["gw_hwm_mb"] = json!(round2(hwm));
        }
        v["upstream_calls"] = stats["calls"].clone();
        v["upstream_cores"] = json!(round3(up_cpu / elapsed));
        v["loadgen_cores"] = json!(round3(loadgen_cpu / elapsed));
        v["sys_busy_cores"] = json!(round3((busy1 - busy0) / elapsed));
        v["other_cores"] = json!(round3(other / elapsed));
    }
    Ok(out)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn set_upstream(ctx: &Ctx, query: &str) -> Result<(), String> {
    ctx.upstream_call("POST", &format!("/__bench/config?{query}"))
        .map(|_| ())
}

/// The direct-versus-gateways matrix.
fn matrix(ctx: &mut Ctx) -> Result<(String, Value), String> {
    let quick = ctx.opts.quick;
    let config = write_config(ctx)?;
    let master = master_key();
    let key = create_key(ctx, &config)?;
    let starts = if quick { 3 } else { 5 };
    eprintln!("\n==> start-up to ready, {starts} starts per path");
    let startup = startup(ctx, &config, &master, starts)?;
    let (gateways, targets, started) = start_gateways(
        ctx,
        &config,
        &master,
        &key,
        &[GatewayPath::Production, GatewayPath::Bare],
        !quick,
        ctx.opts.peers,
    )?;
    ctx.gateway_pids = gateways.iter().map(|g| g.proc.pid).collect();

    // Warm-up: connections, pools, caches; discarded.
    let warm = if quick { 0.5 } else { 1.0 };
    for t in targets.iter().filter(|t| t.pid.is_some()) {
        for stream in [false, true] {
            let args = load_args(t, Shape::Closed(8), stream, warm, 2.0);
            measure(
                ctx,
                t.pid,
                &[(t.clone(), args)],
                Duration::from_millis(100),
                |_, _| {},
            )?;
        }
    }

    let delays: &[u64] = if quick { &[0] } else { &[0, 50] };
    let shapes: Vec<Shape> = if quick {
        vec![Shape::Closed(1), Shape::Closed(64), Shape::Rate(1000.0)]
    } else {
        vec![
            Shape::Closed(1),
            Shape::Closed(64),
            Shape::Closed(256),
            Shape::Rate(1000.0),
            Shape::Rate(5000.0),
            Shape::Rate(10000.0),
        ]
    };
    let duration = ctx.opts.duration;
    let grace = if quick { 2.0 } else { 5.0 };
    let mut rows = Vec::new();
    for &delay_ms in delays {
        set_upstream(ctx, &format!("delay_ms={delay_ms}"))?;
        for stream in [false, true] {
            for &shape in &shapes {
                for t in &targets {
                    if t.light && !matches!(shape, Shape::Closed(1 | 64)) {
                        continue;
                    }
                    eprintln!(
                        "==> delay {delay_ms} ms, {}, {}: {}",
                        if stream { "stream" } else { "plain" },
                        shape.label(),
                        t.label
                    );
                    let args = load_args(t, shape, stream, duration, grace);
                    let mut v = measure(
                        ctx,
                        t.pid,
                        &[(t.clone(), args)],
                        Duration::from_millis(100),
                        |_, _| {},
                    )?
                    .pop()
                    .ok_or("no load result")?;
                    v["target"] = json!(t.label);
                    v["delay_ms"] = json!(delay_ms);
                    v["load"] = json!(shape.label());
                    ctx.record(&v)?;
                    rows.push(v);
                }
            }
        }
    }
    let mut hwm = serde_json::Map::new();
    for g in &gateways {
        hwm.insert(
            g.proc.name.clone(),
            json!(round2(bp::status_mb(&bp::tree(g.proc.pid), "VmHWM"))),
        );
    }
    drop(gateways);
    let summary =
        json!({"startup": startup, "gateways": started, "final_hwm_mb": hwm, "rows": rows});
    Ok((report::matrix(&summary), summary))
}

/// Ten minutes (by default) of mixed plain and streamed traffic through the production
/// path at a fixed rate; RSS every 10 s.
fn soak(ctx: &mut Ctx) -> Result<(String, Value), String> {
    let config = write_config(ctx)?;
    let master = master_key();
    let key = create_key(ctx, &config)?;
    let (gateways, targets, started) = start_gateways(
        ctx,
        &config,
        &master,
        &key,
        &[GatewayPath::Production],
        false,
        false,
    )?;
    let t = targets
        .iter()
        .find(|t| t.pid.is_some())
        .ok_or("no gateway")?
        .clone();
    let duration = ctx.opts.soak_minutes * 60.0;
    let half = ctx.opts.soak_rate / 2.0;
    let loads = vec![
        (
            t.clone(),
            load_args(&t, Shape::Rate(half), false, duration, 5.0),
        ),
        (
            t.clone(),
            load_args(&t, Shape::Rate(half), true, duration, 5.0),
        ),
    ];
    eprintln!(
        "\n==> soak: {:.0} s at {} req/s (half streamed) through {}",
        duration, ctx.opts.soak_rate, t.label
    );
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let mut next = 10.0;
    let results = measure(ctx, t.pid, &loads, Duration::from_millis(500), |at, rss| {
        if at >= next {
            samples.push((at.round(), round2(rss)));
            next += 10.0;
        }
    })?;
    for v in &results {
        ctx.record(v)?;
    }
    drop(gateways);
    let summary = json!({"gateways": started, "target": t.label, "rate": ctx.opts.soak_rate,
        "minutes": ctx.opts.soak_minutes, "rss_samples": samples, "loads": results});
    Ok((report::soak(&summary), summary))
}

/// `n` concurrent slow streams held through each llmux path; peak RSS.
fn streams(ctx: &mut Ctx, n: usize) -> Result<(String, Value), String> {
    // 15 events 2 s apart: each stream lasts about 30 s, so all `n` are open at once
    // after the ramp (at most 256 connections opened at a time).
    let (chunks, gap_ms) = (15, 2000);
    set_upstream(ctx, &format!("chunks={chunks}&chunk_delay_ms={gap_ms}"))?;
    let config = write_config(ctx)?;
    let master = master_key();
    let key = create_key(ctx, &config)?;
    let mut runs = Vec::new();
    let mut started_all = serde_json::Map::new();
    for path in [GatewayPath::Production, GatewayPath::Bare] {
        let (gateways, targets, started) =
            start_gateways(ctx, &config, &master, &key, &[path], false, false)?;
        if let Value::Object(m) = started {
            started_all.extend(m);
        }
        let t = targets
            .iter()
            .find(|t| t.pid.is_some())
            .ok_or("no gateway")?
            .clone();
        let mut args = load_args(&t, Shape::Closed(n), true, 20.0, 60.0);
        args.extend([
            "--timeout".into(),
            "120".into(),
            "--connect-parallelism".into(),
            "256".into(),
        ]);
        eprintln!("\n==> {n} concurrent streams through {}", t.label);
        let mut v = measure(
            ctx,
            t.pid,
            &[(t.clone(), args)],
            Duration::from_millis(250),
            |_, _| {},
        )?
        .pop()
        .ok_or("no load result")?;
        v["target"] = json!(t.label);
        ctx.record(&v)?;
        runs.push(v);
        drop(gateways);
    }
    set_upstream(ctx, "chunks=8&chunk_delay_ms=0")?;
    let summary = json!({"streams": n, "chunks": chunks, "chunk_delay_ms": gap_ms,
        "gateways": started_all, "runs": runs});
    Ok((report::streams(&summary), summary))
}
