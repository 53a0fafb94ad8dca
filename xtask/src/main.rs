//! Project automation. `cargo xtask <task>`:
//!
//! - `ci` — everything CI checks: formatting, clippy with `-D warnings`, all tests (also
//!   the facade built with only the mock provider), the official OpenAI Python client
//!   against a running gateway, and `cargo deny check` when cargo-deny is installed.
//! - `bench` — the side-by-side overhead benchmark (see `docs/benchmarks.md`).
//! - `prices` — regenerate `crates/cost/data/prices.json` from LiteLLM's price file.
//! - `docs` — regenerate the provider table of `docs/providers.md` from the compiled-in
//!   providers (`--check`: fail when it is stale).

mod bench;
mod bench_proc;
mod bench_report;
mod prices;
mod provider_docs;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("prices") => prices::run(&args[1..]),
        Some("docs") => provider_docs::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci [--no-python] | bench [--quick | --soak | --streams N] | prices [--source FILE] | docs [--check]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Where cargo puts build output (`CARGO_TARGET_DIR` is honoured).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(step: &str, mut cmd: Command) -> Result<(), String> {
    eprintln!("\n==> {step}");
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: could not start: {e}"))?;
    eprintln!("<== {step}: {:.1}s", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

fn ci(args: &[String]) -> Result<(), String> {
    let python = !args.iter().any(|a| a == "--no-python");
    let mut c = cargo();
    c.args(["fmt", "--all", "--", "--check"]);
    run("cargo fmt --check", c)?;

    let mut c = cargo();
    c.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy -D warnings", c)?;

    let mut c = cargo();
    c.args(["test", "--workspace"]);
    run("cargo test --workspace", c)?;

    let mut c = cargo();
    c.args([
        "test",
        "-p",
        "llmux",
        "--no-default-features",
        "--features",
        "mock",
        "--lib",
    ]);
    run("facade with only the mock provider", c)?;

    // docs/providers.md's provider table is generated from the compiled-in registry.
    provider_docs::run(&["--check".to_owned()])?;

    if python {
        python_client_check()?;
    }

    let deny = cargo()
        .args(["deny", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if deny {
        let mut c = cargo();
        c.args(["deny", "check"]);
        run("cargo deny check", c)?;
    } else {
        eprintln!("\n(cargo-deny is not installed: skipping `cargo deny check`)");
    }
    eprintln!("\nxtask ci: every step passed");
    Ok(())
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Kills the child on drop, so a failed step never leaves a gateway running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ready(port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("the gateway did not listen on port {port} in time"))
}

fn python_client_check() -> Result<(), String> {
    let root = root();
    let venv = target_dir().join("py-venv");
    let py = venv.join("bin/python");
    if !py.exists() {
        let mut c = Command::new("python3");
        c.args(["-m", "venv"]).arg(&venv);
        run("python venv", c)?;
    }
    let mut c = Command::new(&py);
    c.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-r",
    ])
    .arg(root.join("tests/python/requirements.txt"));
    run("pip install the official openai and anthropic clients", c)?;

    let mut c = cargo();
    c.args(["build", "-p", "llmux", "--bin", "llmux"]);
    run("build the llmux binary", c)?;

    let port = free_port()?;
    let key = "sk-xtask-python-check";
    let child = Command::new(target_dir().join("debug/llmux"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env("LLMUX_MASTER_KEY", key)
        .env_remove("LLMUX_CONFIG")
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("could not start the gateway: {e}"))?;
    let _gateway = Guard(child);
    wait_ready(port, Duration::from_secs(20))?;
    let mut c = Command::new(&py);
    c.arg(root.join("tests/python/openai_client_check.py"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(key);
    run("official openai Python client against the gateway", c)?;

    let mut c = cargo();
    // Every ignored end-to-end test is a Python-client test (`tests/tests/python_*.rs`).
    c.args(["test", "-p", "llmux-e2e", "--tests", "--", "--ignored"])
        .env("LLMUX_PYTHON", &py);
    run(
        "official openai and anthropic Python clients against the gateway and every provider's mock",
        c,
    )
}
