//! The markdown report of `cargo xtask bench`: a dated section (machine, versions,
//! command) with one table per mode, appended to `docs/benchmarks.md`.
//!
//! Pure formatting of the JSON the runs produced (no measuring here); "added" figures
//! are always gateway minus direct for the same load in the same run.

use std::path::Path;

use serde_json::Value;

/// The whole dated section: heading, facts, then `body`.
pub fn section(meta: &Value, body: &str) -> String {
    let s = |k: &str| meta[k].as_str().unwrap_or("-").to_owned();
    let mut out = format!(
        "\n## {} — `{}`\n\n",
        meta["date"].as_str().unwrap_or("undated"),
        s("command")
    );
    out.push_str("| what | |\n|---|---|\n");
    out.push_str(&format!("| machine | {} |\n", s("machine")));
    out.push_str(&format!("| commit | {} |\n", s("commit")));
    out.push_str(&format!(
        "| llmux | {} (release build, {} runtime worker(s)) |\n",
        s("llmux"),
        meta["workers"]
    ));
    out.push_str(&format!("| toolchain | {} |\n", s("rustc")));
    out.push_str("| load generator / upstream | `llmux-bench load` / `llmux-bench upstream` (1 thread, 8 content chunks per stream) |\n");
    out.push_str(&format!(
        "| peers | nginx: {}; LiteLLM: {} |\n",
        meta["nginx"].as_str().unwrap_or("not installed"),
        meta["litellm"].as_str().unwrap_or("no venv")
    ));
    out.push_str(&format!(
        "| run | {} s of load per row; whole run {} s (build excluded) |\n\n",
        meta["duration_s"], meta["wall_s"]
    ));
    out.push_str(body);
    out
}

/// Append `md` to the doc at `path`.
pub fn append(path: &Path, md: &str) -> Result<(), String> {
    let mut doc = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !doc.ends_with('\n') {
        doc.push('\n');
    }
    doc.push_str(md);
    std::fs::write(path, doc).map_err(|e| format!("{}: {e}", path.display()))
}

/// Milliseconds for a table: µs precision below 10 ms.
fn ms(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.abs() < 10.0 => format!("{x:.3}"),
        Some(x) if x.abs() < 100.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

fn num(v: &Value, decimals: usize) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |x| format!("{x:.decimals$}"))
}

fn diff(a: &Value, b: &Value) -> Value {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => Value::from(((a - b) * 1000.0).round() / 1000.0),
        _ => Value::Null,
    }
}

/// The matrix: one row per (upstream delay, stream, load, target).
pub fn matrix(summary: &Value) -> String {
    let mut out = String::new();
    out.push_str(
        "Latency in ms (a stream's: to its last byte; TTFT: to its first event); \"+\" = this row \
         minus `direct` for the same load in the same run (for `→ anthropic` rows, direct is the \
         OpenAI-format endpoint: the client's view without translation). Open-loop rows (`N/s`) \
         time each request from its scheduled send. `err/abort`: failed requests / requests still \
         in flight at the end of the grace period. `CPU ms/req`, `cores`, `RSS`: the gateway's \
         process tree (`/proc` utime+stime, VmRSS sampled every 100 ms). `other`: busy cores \
         not used by the gateway, the upstream or the load generator (other tenants).\n\n",
    );
    out.push_str("| delay ms | stream | load | target | rps | p50 | p90 | p99 | p99.9 | +p50 | +p99 | TTFT p50 | +TTFT p50 | err/abort | CPU ms/req | cores | RSS MB | other |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let rows = summary["rows"].as_array().cloned().unwrap_or_default();
    for r in &rows {
        let direct = rows.iter().find(|d| {
            d["target"] == "direct"
                && d["delay_ms"] == r["delay_ms"]
                && d["stream"] == r["stream"]
                && d["load"] == r["load"]
        });
        let is_direct = r["target"] == "direct";
        let added = |k: &str, p: &str| match direct {
            Some(d) if !is_direct => ms(&diff(&r[k][p], &d[k][p])),
            _ => String::new(),
        };
        let stream = r["stream"].as_bool().unwrap_or(false);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {} | {} | {} | {} |\n",
            r["delay_ms"],
            if stream { "yes" } else { "no" },
            r["load"].as_str().unwrap_or("-"),
            r["target"].as_str().unwrap_or("-"),
            num(&r["rps"], 0),
            ms(&r["latency_ms"]["p50"]),
            ms(&r["latency_ms"]["p90"]),
            ms(&r["latency_ms"]["p99"]),
            ms(&r["latency_ms"]["p99.9"]),
            added("latency_ms", "p50"),
            added("latency_ms", "p99"),
            if stream { ms(&r["ttft_ms"]["p50"]) } else { String::new() },
            if stream { added("ttft_ms", "p50") } else { String::new() },
            r["errors"],
            r["aborted"],
            if is_direct { String::new() } else { num(&r["gw_cpu_ms_per_req"], 3) },
            if is_direct { String::new() } else { num(&r["gw_cores"], 2) },
            if is_direct { String::new() } else { num(&r["gw_rss_peak_mb"], 1) },
            num(&r["other_cores"], 2),
        ));
    }
    out.push_str("\nStart-up to ready (spawn of the release binary, full embedded price table, to the first 200 on `/health/readiness`) and memory:\n\n");
    out.push_str("| gateway | ready ms (min / median / max) | idle RSS MB | VmHWM after the run MB |\n|---|---|---|---|\n");
    let hwm = &summary["final_hwm_mb"];
    if let Some(m) = summary["startup"].as_object() {
        for (name, s) in m {
            let proc_name = name.replace(' ', "-");
            out.push_str(&format!(
                "| {name} | {} / {} / {} | {} | {} |\n",
                num(&s["ready_ms_min"], 1),
                num(&s["ready_ms_median"], 1),
                num(&s["ready_ms_max"], 1),
                num(&s["idle_rss_mb"], 1),
                num(&hwm[&proc_name], 1),
            ));
        }
    }
    if let Some(m) = summary["gateways"].as_object() {
        for (name, g) in m.iter().filter(|(n, _)| !n.starts_with("llmux")) {
            out.push_str(&format!(
                "| {name} | {} (first chat answer) | {} | {} |\n",
                num(&g["ready_ms"], 0),
                num(&g["idle_rss_mb"], 1),
                num(&hwm[name.as_str()], 1),
            ));
        }
    }
    let others: Vec<f64> = rows
        .iter()
        .filter_map(|r| r["other_cores"].as_f64())
        .collect();
    if !others.is_empty() {
        let mean = others.iter().sum::<f64>() / others.len() as f64;
        let max = others.iter().copied().fold(0.0, f64::max);
        out.push_str(&format!(
            "\nCPU taken by other tenants during the rows: mean {mean:.2}, max {max:.2} cores of {}.\n",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ));
    }
    out
}

/// The soak: RSS over time and the two loads' figures.
pub fn soak(summary: &Value) -> String {
    let mut out = format!(
        "Soak: {} minutes at {} req/s through {} (half plain, half streamed, open loop).\n\n",
        summary["minutes"],
        summary["rate"],
        summary["target"].as_str().unwrap_or("-")
    );
    let samples: Vec<(f64, f64)> = summary["rss_samples"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let (after_warmup, since) = match samples.iter().find(|(t, _)| *t >= 60.0) {
            Some(s) => (s, "after the first minute"),
            None => (first, "from the first sample"),
        };
        let max = samples.iter().map(|s| s.1).fold(0.0, f64::max);
        out.push_str(&format!(
            "RSS: {:.1} MB at {:.0} s, {:.1} MB at {:.0} s, {:.1} MB at the end ({:.0} s), max {max:.1} MB; \
             growth {since}: {:+.1} MB.\n\n",
            first.1, first.0, after_warmup.1, after_warmup.0, last.1, last.0, last.1 - after_warmup.1
        ));
        out.push_str("RSS every 10 s (MB): ");
        out.push_str(
            &samples
                .iter()
                .map(|s| format!("{:.1}", s.1))
                .collect::<Vec<_>>()
                .join(" "),
        );
        out.push_str("\n\n");
    }
    out.push_str("| stream | rps | p50 | p99 | p99.9 | errors | aborted | gw cores | VmHWM MB |\n|---|---|---|---|---|---|---|---|---|\n");
    for l in summary["loads"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            if l["stream"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
            num(&l["rps"], 0),
            ms(&l["latency_ms"]["p50"]),
            ms(&l["latency_ms"]["p99"]),
            ms(&l["latency_ms"]["p99.9"]),
            l["errors"],
            l["aborted"],
            num(&l["gw_cores"], 2),
            num(&l["gw_hwm_mb"], 1),
        ));
    }
    out
}

/// The many-streams mode: peak concurrent streams and memory.
pub fn streams(summary: &Value) -> String {
    let mut out = format!(
        "{} client connections, each one slow stream ({} events {} ms apart), through the gateway.\n\n",
        summary["streams"], summary["chunks"], summary["chunk_delay_ms"]
    );
    out.push_str("| gateway | streams open at once (peak) | completed | errors | aborted | idle RSS MB | peak RSS MB | VmHWM MB | TTFT p50 | TTFT p99 |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for r in summary["runs"].as_array().into_iter().flatten() {
        let name = r["target"].as_str().unwrap_or("-");
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r["peak_streaming"],
            r["ok"],
            r["errors"],
            r["aborted"],
            num(&summary["gateways"][name]["idle_rss_mb"], 1),
            num(&r["gw_rss_peak_mb"], 1),
            num(&r["gw_hwm_mb"], 1),
            ms(&r["ttft_ms"]["p50"]),
            ms(&r["ttft_ms"]["p99"]),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn added_latency_is_gateway_minus_direct_of_the_same_cell() {
        let row = |target: &str, load: &str, p50: f64| {
            json!({"target": target, "delay_ms": 0, "stream": false, "load": load, "rps": 100.0,
                "latency_ms": {"p50": p50, "p90": p50, "p99": p50, "p99.9": p50},
                "errors": 0, "aborted": 0, "gw_cpu_ms_per_req": 0.1, "gw_cores": 0.5,
                "gw_rss_peak_mb": 20.0, "other_cores": 0.0})
        };
        let summary = json!({"rows": [
            row("direct", "c=1", 0.1), row("llmux prod", "c=1", 0.35),
            row("direct", "c=64", 2.0), row("llmux prod", "c=64", 2.5)
        ]});
        let md = matrix(&summary);
        let lines: Vec<&str> = md.lines().filter(|l| l.contains("llmux prod")).collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("| 0.250 |"), "{}", lines[0]);
        assert!(lines[1].contains("| 0.500 |"), "{}", lines[1]);
    }

    #[test]
    fn soak_reports_growth_after_the_first_minute() {
        let summary = json!({"minutes": 2, "rate": 100, "target": "llmux prod",
            "rss_samples": [[10, 20.0], [60, 25.0], [120, 26.5]], "loads": []});
        let md = soak(&summary);
        assert!(
            md.contains("growth after the first minute: +1.5 MB"),
            "{md}"
        );
    }
}
