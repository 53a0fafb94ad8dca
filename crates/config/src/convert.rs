//! [`to_native_yaml`]: a loaded [`Config`] written back as a native YAML file (what
//! `llmux config convert` prints). Secrets are written as their references, never values.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use crate::model::is_sensitive;
use crate::{Config, ConfigFormat, ModelEntry};

/// The native YAML equivalent of `config`: every setting written out explicitly, so the
/// output loads into the same configuration.
///
/// Secrets (API keys, the master key, the database URL, credential-like `params` and
/// `headers`) are written as the reference they were read through (`os.environ/NAME`).
/// A secret that was written inline in the source file is replaced by a reference to a
/// new variable named after its key (`GPT_4O_API_KEY`), listed in the header comment:
/// its value is never printed. Unsupported keys reported while loading
/// ([`Config::warnings`]) are listed in the header comment too.
pub fn to_native_yaml(config: &Config) -> String {
    let mut w = Writer::default();
    w.server(config);
    w.settings(config);
    w.router(config);
    w.models(&config.models);

    let mut head = String::from("# llmux configuration (native format, see docs/config.md)\n");
    if let Some(src) = &config.source {
        let from = match config.format {
            ConfigFormat::LiteLlm => " (a LiteLLM config)",
            ConfigFormat::Native => "",
        };
        let _ = writeln!(head, "# Converted from {}{from}.", src.display());
    }
    if !config.file_env_vars.is_empty() {
        head.push_str(
            "#\n# The source file set these in `environment_variables`; they are not copied\n\
             # (they may hold secrets). Export them before loading this file:\n",
        );
        let _ = writeln!(head, "#   {}", config.file_env_vars.join(", "));
    }
    if !w.placeholders.is_empty() {
        head.push_str(
            "#\n# These secrets were written inline in the source file. They are not copied;\n\
             # put each in the environment variable named here:\n",
        );
        for (var, key) in &w.placeholders {
            let _ = writeln!(head, "#   {var}  ({key})");
        }
    }
    if !config.warnings.is_empty() {
        head.push_str("#\n# Not converted (not supported by llmux):\n");
        // The warnings name the source file first; the line above already does.
        let prefix = config
            .source
            .as_ref()
            .map(|s| format!("{}: ", s.display()))
            .unwrap_or_default();
        for warning in &config.warnings {
            let w = warning.strip_prefix(&prefix).unwrap_or(warning);
            let _ = writeln!(head, "#   {}", w.replace('\n', " "));
        }
    }
    head.push('\n');
    head + &w.out
}

#[derive(Default)]
struct Writer {
    out: String,
    /// (variable, key path) for secrets that were inline.
    placeholders: Vec<(String, String)>,
    used: BTreeSet<String>,
}

impl Writer {
    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn kv(&mut self, indent: usize, key: &str, value: &str) {
        self.line(indent, &format!("{}: {value}", scalar(key)));
    }

    /// A secret's YAML value: its reference, or a new variable for an inline one.
    fn secret(&mut self, key_path: &str, reference: Option<&String>, name_hint: &[&str]) -> String {
        if let Some(r) = reference {
            return scalar(r);
        }
        let base = env_name(name_hint);
        let mut var = base.clone();
        let mut n = 2;
        while !self.used.insert(var.clone()) {
            var = format!("{base}_{n}");
            n += 1;
        }
        self.placeholders.push((var.clone(), key_path.to_owned()));
        scalar(&format!("os.environ/{var}"))
    }

    fn server(&mut self, c: &Config) {
        let s = &c.server;
        self.line(0, "server:");
        self.kv(1, "host", &scalar(&s.host));
        self.kv(1, "port", &s.port.to_string());
        if s.master_key.is_some() {
            let v = self.secret(
                "server.master_key",
                c.env_refs.get("server.master_key"),
                &["master_key"],
            );
            self.kv(1, "master_key", &v);
        }
        self.kv(1, "max_body_bytes", &s.max_body_bytes.to_string());
        self.kv(1, "shutdown_grace_secs", &secs(s.shutdown_grace));
    }

    fn settings(&mut self, c: &Config) {
        let s = &c.settings;
        self.line(0, "settings:");
        self.kv(1, "drop_params", &s.drop_params.to_string());
        self.kv(
            1,
            "litellm_compat_headers",
            &s.litellm_compat_headers.to_string(),
        );
        self.kv(1, "log_prompts", &s.log_prompts.to_string());
        if let Some(p) = &s.price_table {
            let v = match c.env_refs.get("settings.price_table") {
                Some(r) => scalar(r),
                None => scalar(&p.display().to_string()),
            };
            self.kv(1, "price_table", &v);
        }
        if s.database_url.is_some() {
            let v = self.secret(
                "settings.database_url",
                c.env_refs.get("settings.database_url"),
                &["database_url"],
            );
            self.kv(1, "database_url", &v);
        }
        if s.redis_url.is_some() {
            let v = self.secret(
                "settings.redis_url",
                c.env_refs.get("settings.redis_url"),
                &["redis_url"],
            );
            self.kv(1, "redis_url", &v);
        }
        if let Some(t) = s.key_cache_ttl {
            self.kv(1, "key_cache_ttl", &secs(t));
        }
        if !s.callbacks.is_empty() {
            self.kv(1, "callbacks", &list(&s.callbacks));
        }
        if !s.callback_settings.is_empty() {
            self.line(1, "callback_settings:");
            for (name, entry) in &s.callback_settings {
                let path = format!("settings.callback_settings.{name}");
                self.sink_settings(2, name, &path, name, entry, c);
            }
        }
    }

    /// One map of sink settings, nested maps as blocks. Strings read by reference are
    /// written as the reference; credential-like keys written inline become placeholders.
    fn sink_settings(
        &mut self,
        indent: usize,
        key: &str,
        path: &str,
        sink: &str,
        map: &serde_json::Map<String, Value>,
        c: &Config,
    ) {
        if map.is_empty() {
            self.kv(indent, key, "{}");
            return;
        }
        self.line(indent, &format!("{}:", scalar(key)));
        for (k, v) in map {
            let at = format!("{path}.{k}");
            match v {
                Value::Object(inner) => self.sink_settings(indent + 1, k, &at, sink, inner, c),
                Value::String(text) => {
                    let v = match c.env_refs.get(&at) {
                        Some(r) => scalar(r),
                        None if is_sensitive(k) => self.secret(&at, None, &[sink, k]),
                        None => scalar(text),
                    };
                    self.kv(indent + 1, k, &v);
                }
                other => self.kv(indent + 1, k, &other.to_string()),
            }
        }
    }

    fn router(&mut self, c: &Config) {
        let r = &c.router;
        self.line(0, "router:");
        self.kv(1, "strategy", r.strategy.as_str());
        self.kv(1, "num_retries", &r.num_retries.to_string());
        if !r.retry_policy.is_empty() {
            let items: Vec<String> = r
                .retry_policy
                .iter()
                .map(|(k, n)| format!("{}: {n}", k.as_str()))
                .collect();
            self.kv(1, "retry_policy", &format!("{{{}}}", items.join(", ")));
        }
        self.kv(1, "allowed_fails", &r.allowed_fails.to_string());
        self.kv(1, "cooldown_time", &secs(r.cooldown_time));
        for (key, d) in [
            ("timeout", r.timeout),
            ("stream_timeout", r.stream_timeout),
            ("stall_timeout", r.stall_timeout),
        ] {
            if let Some(d) = d {
                self.kv(1, key, &secs(d));
            }
        }
        self.kv(1, "stream_resume", &r.stream_resume.to_string());
        for (key, map) in [
            ("fallbacks", &r.fallbacks),
            ("context_window_fallbacks", &r.context_window_fallbacks),
            ("content_policy_fallbacks", &r.content_policy_fallbacks),
        ] {
            self.groups(key, map);
        }
        if !r.default_fallbacks.is_empty() {
            self.kv(1, "default_fallbacks", &list(&r.default_fallbacks));
        }
        if !r.model_group_tags.is_empty() {
            self.line(1, "model_group_tags:");
            for (group, tags) in &r.model_group_tags {
                self.kv(2, group, &list(tags));
            }
        }
        if !r.model_group_alias.is_empty() {
            self.line(1, "model_group_alias:");
            for (alias, a) in &r.model_group_alias {
                let v = if a.hidden {
                    format!("{{model: {}, hidden: true}}", scalar(&a.group))
                } else {
                    scalar(&a.group)
                };
                self.kv(2, alias, &v);
            }
        }
    }

    fn groups(&mut self, key: &str, map: &BTreeMap<String, Vec<String>>) {
        if map.is_empty() {
            return;
        }
        self.line(1, &format!("{key}:"));
        for (from, to) in map {
            self.kv(2, from, &list(to));
        }
    }

    fn models(&mut self, models: &[ModelEntry]) {
        if models.is_empty() {
            self.line(0, "models: []");
            return;
        }
        self.line(0, "models:");
        for (i, m) in models.iter().enumerate() {
            let d = &m.deployment;
            let at = |f: &str| format!("models[{i}].{f}");
            self.line(1, &format!("- name: {}", scalar(&m.name)));
            self.kv(2, "model", &scalar(&format!("{}/{}", d.provider, d.model)));
            if let Some(id) = &m.id {
                self.kv(2, "id", &scalar(id));
            }
            for (key, v) in [
                ("api_base", &d.api_base),
                ("api_version", &d.api_version),
                ("organization", &d.organization),
            ] {
                if let Some(v) = v {
                    let v = m.env_refs.get(key).unwrap_or(v);
                    self.kv(2, key, &scalar(v));
                }
            }
            if d.api_key.is_some() {
                let v = self.secret(
                    &at("api_key"),
                    m.env_refs.get("api_key"),
                    &[&m.name, "api_key"],
                );
                self.kv(2, "api_key", &v);
            }
            if let Some(t) = d.timeout {
                self.kv(2, "timeout", &secs(t));
            }
            let r = &m.routing;
            if let Some(t) = r.stream_timeout {
                self.kv(2, "stream_timeout", &secs(t));
            }
            if let Some(n) = r.max_retries {
                self.kv(2, "max_retries", &n.to_string());
            }
            for (key, v) in [
                ("weight", r.weight.map(u64::from)),
                ("rpm", r.rpm),
                ("tpm", r.tpm),
                ("order", r.order.map(u64::from)),
            ] {
                if let Some(v) = v {
                    self.kv(2, key, &v.to_string());
                }
            }
            if !r.tags.is_empty() {
                self.kv(2, "tags", &list(&r.tags));
            }
            if let Some(p) = &m.prices {
                for (key, v) in [
                    ("input_cost_per_token", &p.input_cost_per_token),
                    ("output_cost_per_token", &p.output_cost_per_token),
                ] {
                    if let Some(v) = v {
                        // Quoted: the exact text survives, whatever the YAML parser does.
                        self.kv(2, key, &Value::String(v.to_string()).to_string());
                    }
                }
            }
            if let Some(n) = m.max_input_tokens {
                self.kv(2, "max_input_tokens", &n.to_string());
            }
            if let Some(b) = &m.base_model {
                self.kv(2, "base_model", &scalar(b));
            }
            if !d.headers.is_empty() {
                self.line(2, "headers:");
                for (name, v) in &d.headers {
                    let field = format!("headers.{name}");
                    let v = match m.env_refs.get(&field) {
                        Some(r) => scalar(r),
                        None if is_sensitive(name) => {
                            self.secret(&at(&field), None, &[&m.name, name])
                        }
                        None => scalar(v),
                    };
                    self.kv(3, name, &v);
                }
            }
            if !d.params.is_empty() {
                self.line(2, "params:");
                for (name, v) in &d.params {
                    let field = format!("params.{name}");
                    let v = match m.env_refs.get(&field) {
                        Some(r) => scalar(r),
                        None if is_sensitive(name) => {
                            self.secret(&at(&field), None, &[&m.name, name])
                        }
                        None => v.to_string(),
                    };
                    self.kv(3, name, &v);
                }
            }
        }
    }
}

/// Seconds, as the shortest decimal (`30`, `2.5`).
fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

fn list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| scalar(s)).collect();
    format!("[{}]", items.join(", "))
}

/// A YAML scalar for `s`: plain when that cannot be misread (as a number, a boolean, null
/// or YAML syntax), otherwise double-quoted (JSON string syntax is valid YAML).
fn scalar(s: &str) -> String {
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '@'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true"
                | "false"
                | "null"
                | "yes"
                | "no"
                | "on"
                | "off"
                | "y"
                | "n"
                | "inf"
                | "infinity"
                | "nan"
        );
    if plain {
        s.to_owned()
    } else {
        Value::String(s.to_owned()).to_string()
    }
}

/// `["gpt-4o", "api_key"]` → `GPT_4O_API_KEY`.
fn env_name(parts: &[&str]) -> String {
    let mut out = String::new();
    for c in parts.join("_").chars() {
        let c = if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        };
        if !(c == '_' && (out.is_empty() || out.ends_with('_'))) {
            out.push(c);
        }
    }
    let out = out.trim_end_matches('_').to_owned();
    match out.chars().next() {
        None => "SECRET".into(),
        Some(c) if c.is_ascii_digit() => format!("SECRET_{out}"),
        Some(_) => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_quote_what_yaml_would_misread() {
        for plain in ["gpt-4o", "openai/gpt-4o", "os.environ/KEY", "claude_3.5"] {
            assert_eq!(scalar(plain), plain);
        }
        for quoted in [
            "", "0.0.0.0", "true", "No", "null", "1e5", "a: b", "a,b", "[x]", "#x", "env:X",
            "it's", "x y", "~",
        ] {
            assert!(scalar(quoted).starts_with('"'), "{quoted}");
        }
        assert_eq!(scalar("say \"hi\""), r#""say \"hi\"""#);
    }

    #[test]
    fn env_names() {
        assert_eq!(env_name(&["gpt-4o", "api_key"]), "GPT_4O_API_KEY");
        assert_eq!(env_name(&["master_key"]), "MASTER_KEY");
        assert_eq!(env_name(&["4o", "x-api-key"]), "SECRET_4O_X_API_KEY");
        assert_eq!(env_name(&["--"]), "SECRET");
    }
}
