//! Processes for `cargo xtask bench`: starting children with a raised open-files limit,
//! stopping them (and what they started), reading their CPU time and memory from
//! `/proc`, tiny HTTP/1.1 calls to 127.0.0.1, and facts about the machine.
//!
//! Std only, Linux only (`/proc`). It never signals a process it did not start: a
//! [`Proc`] stops its own child and that child's descendants when dropped. Children stay
//! in the caller's process group, so Ctrl-C in a terminal stops them too.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Open files allowed to every child (the 10,000-stream mode needs two per stream in the
/// gateway). Raised with `ulimit -n` in the child's shell; if that is refused, the hard
/// limit is used.
pub const NOFILE: u32 = 65_536;

/// `USER_HZ`: the unit of `utime`/`stime` in `/proc/<pid>/stat` on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// A child process started by the benchmark; stopped (SIGTERM, then SIGKILL) on
/// [`Proc::stop`] or drop.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub pid: u32,
}

impl Proc {
    /// Start `program args…`, through `bash` to raise `ulimit -n`
    /// first when `raise_nofile` (else directly, e.g. to time a start-up); stdout and
    /// stderr go to `log` (appended).
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log: &Path,
        raise_nofile: bool,
    ) -> Result<Proc, String> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = if raise_nofile {
            wrapped(program, args, envs)
        } else {
            let mut c = Command::new(program);
            c.args(args);
            scrub(&mut c, envs);
            c
        };
        let child = cmd
            .stdout(out)
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start {name}: {e}"))?;
        let pid = child.id();
        Ok(Proc {
            name: name.to_owned(),
            child: Some(child),
            pid,
        })
    }

    /// Start like [`Proc::spawn`] but with stdout captured (read it with
    /// [`Proc::wait_output`]).
    pub fn spawn_captured(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log: &Path,
    ) -> Result<Proc, String> {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let child = wrapped(program, args, envs)
            .stdout(Stdio::piped())
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start {name}: {e}"))?;
        let pid = child.id();
        Ok(Proc {
            name: name.to_owned(),
            child: Some(child),
            pid,
        })
    }

    /// Whether the process has ended.
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Wait for the end; its whole stdout (for [`Proc::spawn_captured`]).
    pub fn wait_output(mut self) -> Result<String, String> {
        let child = self.child.take().ok_or("already waited")?;
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{}: {e}", self.name))?;
        if !out.status.success() {
            return Err(format!("{} failed ({})", self.name, out.status));
        }
        String::from_utf8(out.stdout).map_err(|_| format!("{}: output is not UTF-8", self.name))
    }

    /// SIGTERM, then SIGKILL after 5 s to it and to whatever it started that is still
    /// there (nginx or uvicorn workers).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let family = tree(self.pid);
        if matches!(child.try_wait(), Ok(None)) {
            signal(&family[..1], "TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let left: Vec<u32> = family[1..]
            .iter()
            .copied()
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
            .collect();
        if !left.is_empty() {
            signal(&left, "KILL");
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wrapped(program: &Path, args: &[String], envs: &[(String, String)]) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!(
            "ulimit -n {NOFILE} 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; exec \"$@\""
        ))
        .arg("bench-child")
        .arg(program)
        .args(args);
    scrub(&mut c, envs);
    c
}

/// Remove a developer's llmux settings and keys from a child's environment; add `envs`.
fn scrub(c: &mut Command, envs: &[(String, String)]) {
    for var in [
        "LLMUX_CONFIG",
        "LLMUX_MASTER_KEY",
        "LLMUX_DATABASE_URL",
        "LLMUX_WORKERS",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    for (k, v) in envs {
        c.env(k, v);
    }
}

/// `kill -SIGNAL pids…` (processes this benchmark started, by id).
fn signal(pids: &[u32], signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `pid` and every descendant, from `/proc/*/stat` parent links.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(fields) = stat_fields(p)
                && let Some(ppid) = fields.get(1).and_then(|f| f.parse::<u32>().ok())
            {
                parents.push((p, ppid));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// The fields of `/proc/<pid>/stat` after the command name: index 0 is the state, 1 the
/// parent pid, 11 `utime`, 12 `stime`.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU seconds (user + system) used so far by `pids`.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    let ticks: u64 = pids
        .iter()
        .filter_map(|&p| {
            let f = stat_fields(p)?;
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    ticks as f64 / TICKS_PER_SECOND
}

/// A `/proc/<pid>/status` field in kB (`VmRSS`, `VmHWM`), summed over `pids`, in MB.
pub fn status_mb(pids: &[u32], field: &str) -> f64 {
    let kb: u64 = pids
        .iter()
        .filter_map(|&p| {
            let s = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            let line = s.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum();
    kb as f64 / 1024.0
}

/// Busy and total CPU seconds of the whole machine since boot (`/proc/stat`).
pub fn machine_cpu() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0.0, 0.0);
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0.0, 0.0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (
        (total - idle) as f64 / TICKS_PER_SECOND,
        total as f64 / TICKS_PER_SECOND,
    )
}

/// One HTTP/1.1 request to `127.0.0.1:port` with `Connection: close`: (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout)
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("content-type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("no status line")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Poll until `ready` is true or `timeout`; the time it took.
pub fn wait_until(
    timeout: Duration,
    every: Duration,
    mut ready: impl FnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ready() {
            return Some(start.elapsed());
        }
        std::thread::sleep(every);
    }
    None
}

/// Wait until `pids` use less than 2 % of a core over 200 ms (work left over from a run
/// finishing), at most `max`.
pub fn settle(pids: &[u32], max: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < max {
        let before = cpu_seconds(pids);
        std::thread::sleep(Duration::from_millis(200));
        if cpu_seconds(pids) - before < 0.004 + 1e-9 {
            break;
        }
    }
    start.elapsed()
}

/// What the machine is, for the report: CPU model and count, memory, kernel, OS.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, v)| v.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_default();
    format!(
        "{cores} × {model}, {mem_gib:.0} GiB, {os}, kernel {}",
        kernel.trim()
    )
}

/// The first line a command prints (stdout, else stderr), trimmed; `None` if it cannot run.
pub fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
}
