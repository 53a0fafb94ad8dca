//! `llmux-config`: what an llmux deployment is told to do, loaded and checked.
//!
//! Owns: the native configuration (YAML or TOML: `server`, `settings`, `router` and the model
//! list), loading it with figment (file, then `LLMUX_…` environment overrides), resolving
//! values given by reference (`os.environ/NAME`, `env:NAME`) at load time, the LiteLLM
//! Proxy `config.yaml` adapter (a LiteLLM file loads as is and becomes the same [`Config`]),
//! [`to_native_yaml`] for `llmux config convert`, and validation whose messages name the file,
//! the key path and what is wrong — every problem, not just the first.
//!
//! Must not: build providers, open sockets, or print a secret. Which providers exist is the
//! server's business; this crate only checks the shape of what was written.
//!
//! The format is documented in `docs/config.md`.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml, Yaml};
use llmux_core::Secret;

mod convert;
mod litellm;
mod model;
mod native;
mod router;

pub use convert::to_native_yaml;
pub use model::{Decimal, DeploymentPrices, DeploymentRouting, ModelEntry, is_sensitive};
pub use router::{
    BUILTIN_SINK_NAMES, DEFAULT_ALLOWED_FAILS, DEFAULT_COOLDOWN_TIME, DEFAULT_NUM_RETRIES,
    GatewaySettings, ModelGroupAlias, RetryPolicy, RouterSettings, RoutingStrategy,
    is_builtin_sink,
};

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
    /// The model list, in file order. Entries sharing a `name` form a model group.
    pub models: Vec<ModelEntry>,
    /// Routing policy: strategy, retries, cooldowns, timeouts, fallbacks, aliases.
    pub router: RouterSettings,
    /// Gateway-wide knobs.
    pub settings: GatewaySettings,
    /// Which format the file was written in.
    pub format: ConfigFormat,
    /// Things in the file llmux does not support and ignored, one line each, naming the
    /// file and the key path (LiteLLM keys without an llmux equivalent). Never secrets.
    pub warnings: Vec<String>,
    /// Where a value outside `models` was read from the environment: key path
    /// (`server.master_key`, `settings.database_url`) → reference as written
    /// (`os.environ/LITELLM_MASTER_KEY`). Model entries keep their own
    /// ([`ModelEntry::env_refs`]).
    pub env_refs: BTreeMap<String, String>,
    /// Names of the variables a LiteLLM file set for its own references
    /// (`environment_variables`). Only the names are kept.
    pub file_env_vars: Vec<String>,
}

impl Config {
    /// The model groups: each name and its entries, in file order of first appearance.
    pub fn model_groups(&self) -> Vec<(&str, Vec<&ModelEntry>)> {
        let mut groups: Vec<(&str, Vec<&ModelEntry>)> = Vec::new();
        for m in &self.models {
            match groups.iter_mut().find(|(n, _)| *n == m.name) {
                Some((_, entries)) => entries.push(m),
                None => groups.push((&m.name, vec![m])),
            }
        }
        groups
    }
}

/// The format a configuration file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfigFormat {
    /// llmux's own (`server`, `settings`, `router`, `models`).
    #[default]
    Native,
    /// A LiteLLM Proxy `config.yaml` (`model_list`, `litellm_settings`, `router_settings`,
    /// `general_settings`), converted on load.
    LiteLlm,
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

/// The top-level keys that make a file a LiteLLM config.
const LITELLM_KEYS: [&str; 4] = [
    "model_list",
    "litellm_settings",
    "router_settings",
    "general_settings",
];

impl Config {
    /// Load `path` (`.yaml`/`.yml` or `.toml`, native or LiteLLM), apply `LLMUX_…`
    /// environment overrides (`LLMUX_SERVER__PORT=8080`), resolve references from the
    /// process environment, and validate.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        Self::load_with_env(path, &|k| std::env::var(k).ok())
    }

    /// [`Config::load`] with an injected environment lookup for references.
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
        Self::from_figment(figment, &file, env, true, path.parent()).map(|mut c| {
            c.source = Some(path.to_owned());
            c
        })
    }

    /// Parse configuration text in `format` (`yaml` or `toml`); `name` labels errors.
    /// No `LLMUX_…` overrides are applied; relative paths are relative to the working
    /// directory.
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
        Self::from_figment(figment, name, env, false, None)
    }

    fn from_figment(
        figment: Figment,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
        env_overrides: bool,
        base_dir: Option<&Path>,
    ) -> Result<Self, ConfigErrors> {
        let load_errors = |e: figment::Error| {
            ConfigErrors(
                e.into_iter()
                    .map(|e| ConfigError::Load {
                        file: file.to_owned(),
                        message: load_message(&e),
                    })
                    .collect(),
            )
        };
        let tree: serde_json::Value = figment.extract().map_err(load_errors)?;
        let is_litellm = tree
            .as_object()
            .is_some_and(|o| LITELLM_KEYS.iter().any(|k| o.contains_key(*k)));
        let overrides = || {
            Env::prefixed("LLMUX_").split("__").filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                ["server.", "settings.", "router.", "models"]
                    .iter()
                    .any(|p| k.starts_with(p))
            })
        };
        if !is_litellm {
            let figment = if env_overrides {
                figment.merge(overrides())
            } else {
                figment
            };
            let raw: native::RawConfig = figment.extract().map_err(load_errors)?;
            let keys = native::KeyMap::default();
            let cx = native::Context {
                file,
                env,
                keys: &keys,
                base_dir,
            };
            return native::build(raw, &cx).map_err(ConfigErrors);
        }

        let converted = litellm::convert(&tree, file, env);
        let layered = |k: &str| converted.env.get(k).cloned().or_else(|| env(k));
        let mut figment = Figment::from(Serialized::defaults(&converted.raw));
        if env_overrides {
            figment = figment.merge(overrides());
        }
        let raw: native::RawConfig = figment.extract().map_err(load_errors)?;
        let cx = native::Context {
            file,
            env: &layered,
            keys: &converted.keys,
            base_dir,
        };
        let mut errors = converted.errors;
        match native::build(raw, &cx) {
            Ok(mut c) if errors.is_empty() => {
                c.format = ConfigFormat::LiteLlm;
                c.warnings = converted.warnings;
                c.file_env_vars = converted.env.into_keys().collect();
                Ok(c)
            }
            Ok(_) => Err(ConfigErrors(errors)),
            Err(more) => {
                errors.extend(more);
                Err(ConfigErrors(errors))
            }
        }
    }
}

/// figment's messages name the key path; drop the file part we print ourselves. A string
/// found where something else was expected is not echoed: it may be a key in the wrong place.
fn load_message(e: &figment::Error) -> String {
    use figment::error::{Actual, Kind};
    let kind = match &e.kind {
        Kind::InvalidType(Actual::Str(_), expected) => {
            format!("invalid type: found a string, expected {expected}")
        }
        Kind::InvalidValue(Actual::Str(_), expected) => {
            format!("invalid value: a string, expected {expected}")
        }
        k => k.to_string(),
    };
    let path = e.path.join(".");
    if path.is_empty() {
        kind
    } else {
        format!("{path}: {kind}")
    }
}

/// The variable a reference names: `os.environ/NAME` and `env:NAME` → `NAME`.
pub(crate) fn env_ref(value: &str) -> Option<&str> {
    value
        .strip_prefix("os.environ/")
        .or_else(|| value.strip_prefix("env:"))
}

/// `os.environ/NAME` and `env:NAME` read the environment; anything else is the value.
/// The error never contains the value.
pub fn resolve_secret(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, String> {
    match env_ref(value) {
        Some("") => Err(format!("'{value}' names no environment variable")),
        Some(name) => env(name)
            .filter(|v| !v.is_empty())
            .map(Secret::new)
            .ok_or_else(|| format!("environment variable {name} is not set")),
        None => Ok(Secret::new(value)),
    }
}

#[cfg(test)]
mod tests;
