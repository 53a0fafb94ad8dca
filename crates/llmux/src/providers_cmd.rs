//! `llmux providers`: every provider compiled into this binary — name, capabilities,
//! default base URL, the environment variables that serve it without a config, notes —
//! as a table or as JSON (`--format json`, read by `cargo xtask docs`).
//!
//! Everything comes from the registry (`ProviderFactory`): the environment variables are
//! found by calling each factory's `from_env` with a recording lookup that answers every
//! variable with its own name, then seeing which name became the key and which the base
//! URL. So the output cannot drift from what `llmux serve` does. Catalogue rows of the
//! OpenAI-compatible crate add their notes (key style, quirks).
//!
//! Must not: read the real environment or print a secret.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use clap::ValueEnum;
use llmux_core::ProviderFactory;

/// Output format of `llmux providers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// A JSON array, one object per provider.
    Json,
}

/// One provider as `llmux providers` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRow {
    /// The prefix in `prefix/model`.
    pub name: &'static str,
    /// `chat`, `embeddings`, `rerank`, `models`.
    pub capabilities: Vec<&'static str>,
    /// `""` when there is none (`api_base` required, or per-resource endpoints).
    pub default_api_base: &'static str,
    /// The variable whose value becomes the key in the `name/*` template.
    pub key_env: Option<String>,
    /// The variable whose value becomes the base URL in the `name/*` template.
    pub base_env: Option<String>,
    /// Every variable the `name/*` template reads, in the order it reads them.
    pub env: Vec<String>,
    /// One line.
    pub description: &'static str,
    /// Key style and request quirks (OpenAI-compatible catalogue rows).
    pub notes: Vec<String>,
}

/// Every linked provider, sorted by name.
pub fn rows() -> Vec<ProviderRow> {
    llmux::link_providers();
    let mut all: Vec<_> = llmux_core::providers().map(row).collect();
    all.sort_by_key(|r| r.name);
    all
}

fn row(f: &'static ProviderFactory) -> ProviderRow {
    let asked = RefCell::new(Vec::<String>::new());
    let lookup = |name: &str| {
        let mut asked = asked.borrow_mut();
        if !asked.iter().any(|n| n == name) {
            asked.push(name.to_owned());
        }
        Some(name.to_owned())
    };
    let template = (f.from_env)(&lookup);
    let env = asked.into_inner();
    let named = |value: Option<&str>| {
        value
            .filter(|v| env.iter().any(|n| n == v))
            .map(str::to_owned)
    };
    let (key_env, base_env) = match &template {
        Some(t) => (
            named(t.api_key.as_ref().map(|k| k.expose())),
            named(t.api_base.as_deref()),
        ),
        None => (None, None),
    };
    ProviderRow {
        name: f.name,
        capabilities: f.capabilities.iter().map(|c| c.as_str()).collect(),
        default_api_base: f.default_api_base,
        key_env,
        base_env,
        env,
        description: f.description,
        notes: notes(f.name),
    }
}

#[cfg(feature = "compat")]
fn notes(name: &str) -> Vec<String> {
    llmux::compat::catalogue::find(name).map_or_else(Vec::new, |e| e.notes())
}

#[cfg(not(feature = "compat"))]
fn notes(_name: &str) -> Vec<String> {
    Vec::new()
}

/// Print the rows in `format` (a closed pipe, as with `| head`, ends the output quietly).
pub fn run(format: Format) -> ExitCode {
    let rows = rows();
    let text = match format {
        Format::Table => table(&rows),
        Format::Json => json(&rows) + "\n",
    };
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("could not write the provider list: {e}");
            ExitCode::FAILURE
        }
    }
}

fn table(rows: &[ProviderRow]) -> String {
    let header = [
        "NAME",
        "CAPABILITIES",
        "DEFAULT BASE URL",
        "KEY ENV",
        "DESCRIPTION",
    ];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let mut description = r.description.to_owned();
            if !r.notes.is_empty() {
                let _ = write!(description, " [{}]", r.notes.join("; ").replace('`', ""));
            }
            [
                r.name.to_owned(),
                r.capabilities.join(","),
                if r.default_api_base.is_empty() {
                    "-".to_owned()
                } else {
                    r.default_api_base.to_owned()
                },
                r.key_env.clone().unwrap_or_else(|| "-".to_owned()),
                description,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (c, w) in cells.iter().zip(widths) {
            let _ = write!(s, "{c:<w$}  ");
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header);
    for r in &cells {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    out
}

fn json(rows: &[ProviderRow]) -> String {
    let mut out = String::from("[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("\n  {");
        let fields = [
            ("name", json_str(r.name)),
            ("description", json_str(r.description)),
            ("capabilities", json_list(&r.capabilities)),
            ("default_api_base", json_str(r.default_api_base)),
            (
                "key_env",
                r.key_env.as_deref().map_or_else(|| "null".into(), json_str),
            ),
            (
                "base_env",
                r.base_env
                    .as_deref()
                    .map_or_else(|| "null".into(), json_str),
            ),
            ("env", json_list(&r.env)),
            ("notes", json_list(&r.notes)),
        ];
        for (j, (k, v)) in fields.iter().enumerate() {
            let sep = if j == 0 { "" } else { ", " };
            let _ = write!(out, "{sep}\"{k}\": {v}");
        }
        out.push('}');
    }
    out.push_str("\n]");
    out
}

fn json_list<S: AsRef<str>>(items: &[S]) -> String {
    let inner: Vec<String> = items.iter().map(|s| json_str(s.as_ref())).collect();
    format!("[{}]", inner.join(", "))
}

/// A JSON string literal (RFC 8259 escaping).
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(rows: &'a [ProviderRow], name: &str) -> &'a ProviderRow {
        rows.iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name} is listed"))
    }

    #[test]
    fn lists_every_linked_provider_once_sorted() {
        let rows = rows();
        let names: Vec<_> = rows.iter().map(|r| r.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert_eq!(names, llmux::provider_names());
    }

    #[cfg(all(feature = "openai", feature = "compat", feature = "mock"))]
    #[test]
    fn environment_variables_come_from_the_factories() {
        let rows = rows();
        let openai = find(&rows, "openai");
        assert_eq!(openai.key_env.as_deref(), Some("OPENAI_API_KEY"));
        assert_eq!(openai.base_env.as_deref(), Some("OPENAI_BASE_URL"));
        assert_eq!(openai.capabilities, ["chat", "embeddings", "models"]);
        let groq = find(&rows, "groq");
        assert_eq!(groq.key_env.as_deref(), Some("GROQ_API_KEY"));
        assert_eq!(groq.base_env.as_deref(), Some("GROQ_API_BASE"));
        assert_eq!(groq.default_api_base, "https://api.groq.com/openai/v1");
        assert!(
            groq.notes.iter().any(|n| n.contains("logprobs")),
            "{:?}",
            groq.notes
        );
        let vllm = find(&rows, "hosted_vllm");
        assert_eq!(vllm.default_api_base, "");
        assert_eq!(vllm.base_env.as_deref(), Some("HOSTED_VLLM_API_BASE"));
        assert!(vllm.notes.contains(&"key optional".to_owned()));
        let mock = find(&rows, "mock");
        assert_eq!((mock.key_env.as_ref(), mock.env.len()), (None, 0));
        assert!(find(&rows, "openai_like").env.is_empty());
    }

    #[test]
    fn json_output_parses_and_matches_the_rows() {
        let rows = rows();
        let v: serde_json::Value = serde_json::from_str(&json(&rows)).expect("valid JSON");
        let list = v.as_array().expect("an array");
        assert_eq!(list.len(), rows.len());
        for (o, r) in list.iter().zip(&rows) {
            assert_eq!(o["name"], r.name);
            assert_eq!(o["description"], r.description);
            assert_eq!(o["default_api_base"], r.default_api_base);
            assert_eq!(
                o["capabilities"].as_array().unwrap().len(),
                r.capabilities.len()
            );
            assert_eq!(o["key_env"].as_str(), r.key_env.as_deref());
            assert_eq!(o["notes"].as_array().unwrap().len(), r.notes.len());
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        let s = json_str("a \"b\" \\ c\nd\u{1}é");
        assert_eq!(
            serde_json::from_str::<String>(&s).unwrap(),
            "a \"b\" \\ c\nd\u{1}é"
        );
    }

    #[test]
    fn the_table_has_a_line_per_provider_and_aligned_columns() {
        let rows = rows();
        let t = table(&rows);
        let lines: Vec<_> = t.lines().collect();
        assert_eq!(lines.len(), rows.len() + 1);
        assert!(lines[0].starts_with("NAME"));
        let col = lines[0].find("CAPABILITIES").unwrap();
        for (line, r) in lines[1..].iter().zip(&rows) {
            assert!(line.starts_with(r.name), "{line}");
            assert_eq!(
                &line[col..col + r.capabilities[0].len()],
                r.capabilities[0],
                "{line}"
            );
        }
    }
}
