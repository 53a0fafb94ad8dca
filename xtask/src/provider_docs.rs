//! `cargo xtask docs [--check]`: regenerate the provider table of `docs/providers.md` from
//! the providers compiled into the `llmux` binary.
//!
//! The table is the output of `llmux providers --format json` (built with the default
//! features, i.e. every provider), rendered as Markdown between [`BEGIN`] and [`END`]; the
//! rest of the file stays hand-written. `--check` changes nothing and fails when the file
//! differs from what would be generated, so a provider added or changed without
//! regenerating the docs is caught.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Opens the generated block (the whole line).
pub const BEGIN: &str = "<!-- BEGIN GENERATED: providers (cargo xtask docs) -->";
/// Closes the generated block.
pub const END: &str = "<!-- END GENERATED -->";

const DOC: &str = "docs/providers.md";

/// Entry point: `args` are what follows `docs`.
pub fn run(args: &[String]) -> Result<(), String> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => return Err("usage: cargo xtask docs [--check]".into()),
    };
    let root = crate::root();
    let mut c = crate::cargo();
    c.args(["build", "--quiet", "-p", "llmux", "--bin", "llmux"]);
    crate::run("build the llmux binary", c)?;
    let bin = crate::target_dir().join("debug/llmux");
    let out = Command::new(&bin)
        .args(["providers", "--format", "json"])
        .output()
        .map_err(|e| format!("could not run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`llmux providers --format json` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let providers: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("`llmux providers --format json` printed invalid JSON: {e}"))?;
    let table = render(&providers)?;
    let path = root.join(DOC);
    let current = std::fs::read_to_string(&path)
        .map_err(|e| format!("could not read {}: {e}", path.display()))?;
    let updated = splice(&current, &table)?;
    if check {
        if updated != current {
            return Err(format!(
                "{DOC} is stale: the provider table differs from the compiled-in providers; run `cargo xtask docs`"
            ));
        }
        eprintln!("{DOC}: the provider table is up to date");
        return Ok(());
    }
    if updated == current {
        eprintln!("{DOC}: already up to date");
    } else {
        write(&path, &updated)?;
        eprintln!("{DOC}: provider table regenerated");
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("could not write {}: {e}", path.display()))
}

/// `doc` with the text between the markers replaced by `table`.
fn splice(doc: &str, table: &str) -> Result<String, String> {
    let missing =
        |m: &str| format!("{DOC} has no `{m}` line: add the two marker lines where the table goes");
    let begin = doc.find(BEGIN).ok_or_else(|| missing(BEGIN))?;
    let after_begin = begin + BEGIN.len();
    let end = doc[after_begin..]
        .find(END)
        .map(|i| after_begin + i)
        .ok_or_else(|| missing(END))?;
    Ok(format!("{}\n{table}{}", &doc[..after_begin], &doc[end..]))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn code(s: &str) -> String {
    format!("`{}`", cell(s))
}

/// The Markdown table for `providers` (the JSON array `llmux providers` prints).
fn render(providers: &Value) -> Result<String, String> {
    let list = providers
        .as_array()
        .ok_or("`llmux providers --format json` did not print an array")?;
    let mut out = String::from(
        "| prefix | serves | default base URL | key variable | also reads | description |\n\
         |---|---|---|---|---|---|\n",
    );
    for p in list {
        let name = p["name"].as_str().ok_or("a provider without a name")?;
        let key = p["key_env"].as_str();
        let base = p["default_api_base"].as_str().unwrap_or("");
        let others: Vec<String> = strings(&p["env"])
            .into_iter()
            .filter(|v| Some(*v) != key)
            .map(code)
            .collect();
        let mut description = cell(p["description"].as_str().unwrap_or(""));
        let notes = strings(&p["notes"]);
        if !notes.is_empty() {
            description.push_str(" — ");
            description.push_str(&cell(&notes.join("; ")));
        }
        let dash = || "—".to_owned();
        out.push_str(&format!(
            "| `{name}/` | {} | {} | {} | {} | {description} |\n",
            strings(&p["capabilities"]).join(", "),
            if base.is_empty() { dash() } else { code(base) },
            key.map_or_else(dash, code),
            if others.is_empty() {
                dash()
            } else {
                others.join(", ")
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renders_one_row_per_provider() {
        let t = render(&json!([
            {"name": "groq", "description": "Groq", "capabilities": ["chat", "models"],
             "default_api_base": "https://api.groq.com/openai/v1", "key_env": "GROQ_API_KEY",
             "env": ["GROQ_API_KEY", "GROQ_API_BASE"], "notes": ["drops `logprobs`"]},
            {"name": "mock", "description": "a | b", "capabilities": ["chat"],
             "default_api_base": "", "key_env": null, "env": [], "notes": []}
        ]))
        .unwrap();
        let lines: Vec<_> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[2],
            "| `groq/` | chat, models | `https://api.groq.com/openai/v1` | `GROQ_API_KEY` | `GROQ_API_BASE` | Groq — drops `logprobs` |"
        );
        assert_eq!(lines[3], "| `mock/` | chat | — | — | — | a \\| b |");
    }

    #[test]
    fn splices_between_the_markers_only() {
        let doc = format!("# T\nbefore\n{BEGIN}\nold\n{END}\nafter\n");
        let new = splice(&doc, "| new |\n").unwrap();
        assert_eq!(
            new,
            format!("# T\nbefore\n{BEGIN}\n| new |\n{END}\nafter\n")
        );
        assert_eq!(splice(&new, "| new |\n").unwrap(), new, "idempotent");
        assert!(splice("no markers", "x").is_err());
        assert!(splice(&format!("{BEGIN}\nno end"), "x").is_err());
    }
}
