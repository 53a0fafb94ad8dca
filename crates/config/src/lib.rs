//! `llmux-config`: what an llmux deployment is told to do, loaded and checked.
//!
//! Owns: the native configuration (YAML or TOML: the server settings and the model list),
//! loading it with figment (file, then `LLMUX_…` environment overrides), resolving secrets
//! given by reference (`os.environ/NAME`, `env:NAME`) at load time, and validation whose
//! messages name the file, the key path and what is wrong.
//!
//! Must not: build providers, open sockets, or print a secret. Which providers exist is the
//! server's business; this crate only checks the shape of what was written.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml, Yaml};
use llmux_core::{DeploymentSettings, JsonObject, ModelRef, Secret};
use serde::Deserialize;

/// Default listen port (LiteLLM's, so clients need no change).
pub const DEFAULT_PORT: u16 = 4000;
/// Default request body limit: 32 MiB (images and PDFs travel inline as base64).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Default time in-flight calls get to finish after SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A loaded, resolved, validated configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where it came from (`None` = built-in defaults only).
    pub source: Option<PathBuf>,
    /// Server settings.
    pub server: ServerConfig,
    /// The model list, in file order.
    pub models: Vec<ModelEntry>,
}

/// `server:`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address.
    pub host: String,
    /// Listen port.
    pub port: u16,
    /// Clients must present this key (`Authorization: Bearer …` or `x-api-key`); `None`
    /// leaves the gateway open (a warning is logged).
    pub master_key: Option<Secret>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long in-flight calls may run after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: DEFAULT_PORT,
            master_key: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// One entry of `models:`: a public name served by one deployment.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    /// What clients put in `model`. `provider/*` makes a wildcard route.
    pub name: String,
    /// Resolved deployment settings (provider, provider model, credentials, …).
    pub deployment: DeploymentSettings,
}

/// What went wrong while loading; every variant names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a value has the wrong type.
    #[error("{file}: {message}")]
    Load {
        /// The file.
        file: String,
        /// figment's message (names the key path).
        message: String,
    },
    /// A value is present but not acceptable.
    #[error("{file}: {key}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// Key path, e.g. `models[2].model`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Every problem found, not just the first.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    models: Vec<RawModel>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    host: Option<String>,
    port: Option<u16>,
    master_key: Option<String>,
    max_body_bytes: Option<usize>,
    shutdown_grace_secs: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: String,
    model: String,
    api_base: Option<String>,
    api_key: Option<String>,
    organization: Option<String>,
    api_version: Option<String>,
    timeout: Option<f64>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    params: JsonObject,
}

impl Config {
    /// Load `path` (`.yaml`/`.yml` or `.toml`), apply `LLMUX_…` environment overrides
    /// (`LLMUX_SERVER__PORT=8080`), resolve secret references from the process environment,
    /// and validate.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        Self::load_with_env(path, &|k| std::env::var(k).ok())
    }

    /// [`Config::load`] with an injected environment lookup for secret references.
    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let file = path.display().to_string();
        if !path.is_file() {
            return Err(ConfigErrors(vec![ConfigError::Load {
                file,
                message: "no such file".into(),
            }]));
        }
        let figment = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Figment::from(Toml::file(path)),
            Some("yaml" | "yml") => Figment::from(Yaml::file(path)),
            _ => {
                return Err(ConfigErrors(vec![ConfigError::Load {
                    file,
                    message: "unknown format: use a .yaml, .yml or .toml file".into(),
                }]));
            }
        };
        let figment = figment.merge(Env::prefixed("LLMUX_").split("__").ignore(&["CONFIG"]));
        Self::from_figment(figment, &file, env).map(|mut c| {
            c.source = Some(path.to_owned());
            c
        })
    }

    /// Parse configuration text in `format` (`yaml` or `toml`); `name` labels errors.
    pub fn from_str(
        text: &str,
        format: &str,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let figment = match format {
            "toml" => Figment::from(Toml::string(text)),
            _ => Figment::from(Yaml::string(text)),
        };
        Self::from_figment(figment, name, env)
    }

    fn from_figment(
        figment: Figment,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let raw: RawConfig = figment.extract().map_err(|e| {
            ConfigErrors(
                e.into_iter()
                    .map(|e| ConfigError::Load {
                        file: file.to_owned(),
                        message: load_message(&e),
                    })
                    .collect(),
            )
        })?;
        let mut errors = Vec::new();
        let mut invalid = |key: String, message: String| {
            errors.push(ConfigError::Invalid {
                file: file.to_owned(),
                key,
                message,
            });
        };
        let mut server = ServerConfig::default();
        if let Some(h) = raw.server.host {
            server.host = h;
        }
        if let Some(p) = raw.server.port {
            server.port = p;
        }
        if let Some(b) = raw.server.max_body_bytes {
            if b == 0 {
                invalid("server.max_body_bytes".into(), "must be positive".into());
            }
            server.max_body_bytes = b;
        }
        if let Some(g) = raw.server.shutdown_grace_secs {
            match Duration::try_from_secs_f64(g) {
                Ok(d) => server.shutdown_grace = d,
                Err(_) => invalid(
                    "server.shutdown_grace_secs".into(),
                    "must be a non-negative number of seconds".into(),
                ),
            }
        }
        if let Some(k) = raw.server.master_key {
            match resolve_secret(&k, env) {
                Ok(s) => server.master_key = Some(s),
                Err(m) => invalid("server.master_key".into(), m),
            }
        }
        let mut models = Vec::with_capacity(raw.models.len());
        for (i, m) in raw.models.into_iter().enumerate() {
            let at = |field: &str| format!("models[{i}].{field}");
            if m.name.trim().is_empty() {
                invalid(at("name"), "must not be empty".into());
            }
            let Some(r) = ModelRef::parse(&m.model) else {
                invalid(
                    at("model"),
                    format!(
                        "'{}' is not of the form provider/model (e.g. openai/gpt-4o)",
                        m.model
                    ),
                );
                continue;
            };
            if r.is_wildcard() && !m.name.ends_with("/*") {
                invalid(
                    at("name"),
                    format!(
                        "a wildcard model '{}' needs a wildcard name like '{}/*'",
                        m.model, r.provider
                    ),
                );
            }
            let mut d = DeploymentSettings::new(r.provider, r.model);
            d.api_base = m.api_base;
            d.organization = m.organization;
            d.api_version = m.api_version;
            d.headers = m.headers;
            d.params = m.params;
            if let Some(t) = m.timeout {
                match Duration::try_from_secs_f64(t) {
                    Ok(t) if !t.is_zero() => d.timeout = Some(t),
                    _ => invalid(at("timeout"), "must be a positive number of seconds".into()),
                }
            }
            if let Some(k) = m.api_key {
                match resolve_secret(&k, env) {
                    Ok(s) => d.api_key = Some(s),
                    Err(msg) => invalid(at("api_key"), msg),
                }
            }
            models.push(ModelEntry {
                name: m.name,
                deployment: d,
            });
        }
        if errors.is_empty() {
            Ok(Self {
                source: None,
                server,
                models,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// figment's messages name the key path; drop the file part we print ourselves.
fn load_message(e: &figment::Error) -> String {
    let path = e.path.join(".");
    if path.is_empty() {
        e.kind.to_string()
    } else {
        format!("{path}: {}", e.kind)
    }
}

/// `os.environ/NAME` and `env:NAME` read the environment; anything else is the value.
/// The error never contains the value.
pub fn resolve_secret(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, String> {
    let var = value
        .strip_prefix("os.environ/")
        .or_else(|| value.strip_prefix("env:"));
    match var {
        Some(name) => env(name)
            .filter(|v| !v.is_empty())
            .map(Secret::new)
            .ok_or_else(|| format!("environment variable {name} is not set")),
        None => Ok(Secret::new(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "OPENAI_KEY" => Some("sk-from-env".into()),
            "MASTER" => Some("sk-master".into()),
            _ => None,
        }
    }

    fn check_ok(yaml: &str) -> Config {
        Config::from_str(yaml, "yaml", "test.yaml", &env).unwrap_or_else(|e| panic!("{e}"))
    }

    fn check_err(text: &str, format: &str) -> String {
        Config::from_str(text, format, "test.yaml", &env)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn loads_models_and_resolves_secrets() {
        let c = check_ok(
            r#"
server:
  port: 8080
  master_key: env:MASTER
models:
  - name: gpt-4o
    model: openai/gpt-4o
    api_key: os.environ/OPENAI_KEY
    api_base: http://127.0.0.1:9/v1
    timeout: 2.5
    headers: {x-team: a}
  - name: llama
    model: openrouter/meta-llama/llama-3-70b-instruct
  - name: mock/*
    model: mock/*
    params: {chunks: 3}
"#,
        );
        assert_eq!(c.server.port, 8080);
        assert_eq!(c.server.master_key.as_ref().unwrap().expose(), "sk-master");
        let d = &c.models[0].deployment;
        assert_eq!(
            (d.provider.as_str(), d.model.as_str()),
            ("openai", "gpt-4o")
        );
        assert_eq!(d.api_key.as_ref().unwrap().expose(), "sk-from-env");
        assert_eq!(d.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(d.headers["x-team"], "a");
        assert_eq!(
            c.models[1].deployment.model,
            "meta-llama/llama-3-70b-instruct"
        );
        assert_eq!(c.models[2].deployment.params["chunks"], 3);
        assert!(!format!("{c:?}").contains("sk-from-env"));
    }

    #[test]
    fn toml_works_too() {
        let c = Config::from_str(
            "[server]\nport = 4001\n[[models]]\nname = \"a\"\nmodel = \"mock/echo\"\n",
            "toml",
            "t.toml",
            &env,
        )
        .unwrap();
        assert_eq!(c.server.port, 4001);
        assert_eq!(c.models[0].deployment.provider, "mock");
    }

    #[test]
    fn every_error_names_file_key_and_problem() {
        let msg = check_err(
            r#"
models:
  - name: a
    model: gpt-4o
  - name: b
    model: openai/gpt-4o
    api_key: os.environ/MISSING_VAR
    timeout: -1
  - name: c
    model: mock/*
"#,
            "yaml",
        );
        for want in [
            "test.yaml: models[0].model: 'gpt-4o' is not of the form provider/model",
            "test.yaml: models[1].api_key: environment variable MISSING_VAR is not set",
            "test.yaml: models[1].timeout: must be a positive number of seconds",
            "test.yaml: models[2].name: a wildcard model 'mock/*' needs a wildcard name",
        ] {
            assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
        }
    }

    #[test]
    fn type_errors_and_unknown_keys_name_the_key() {
        let msg = check_err("server:\n  port: lots\n", "yaml");
        assert!(msg.contains("test.yaml: server.port"), "{msg}");
        let msg = check_err(
            "models:\n  - name: a\n    model: mock/x\n    colour: red\n",
            "yaml",
        );
        assert!(msg.contains("colour"), "{msg}");
    }

    #[test]
    fn missing_file_and_unknown_extension_are_errors() {
        let e = Config::load(Path::new("/nonexistent/llmux.yaml")).unwrap_err();
        assert!(
            e.to_string()
                .contains("/nonexistent/llmux.yaml: no such file")
        );
        let dir = std::env::temp_dir().join(format!("llmux-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.ini");
        std::fs::write(&p, "x").unwrap();
        assert!(
            Config::load(&p)
                .unwrap_err()
                .to_string()
                .contains("unknown format")
        );
        let p = dir.join("c.yaml");
        std::fs::write(&p, "models:\n  - name: m\n    model: mock/echo\n").unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.source.as_deref(), Some(p.as_path()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_resolve_without_leaking() {
        assert_eq!(resolve_secret("plain", &env).unwrap().expose(), "plain");
        assert_eq!(
            resolve_secret("env:MASTER", &env).unwrap().expose(),
            "sk-master"
        );
        let e = resolve_secret("os.environ/NOPE", &env).unwrap_err();
        assert_eq!(e, "environment variable NOPE is not set");
    }
}
