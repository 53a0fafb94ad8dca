//! One entry of the model list and the per-deployment knobs it carries.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use llmux_core::DeploymentSettings;
use serde_json::Value;

/// One entry of `models:`: a public name served by one deployment.
///
/// Several entries with the same `name` form a *model group*: the router picks one of
/// them per call (see [`crate::RouterSettings::strategy`]).
#[derive(Clone)]
pub struct ModelEntry {
    /// What clients put in `model`. `provider/*` makes a wildcard route.
    pub name: String,
    /// Resolved deployment settings (provider, provider model, credentials, …).
    pub deployment: DeploymentSettings,
    /// A stable id for this deployment (LiteLLM's `model_info.id`); unique in the file.
    pub id: Option<String>,
    /// How the router treats this deployment inside its group.
    pub routing: DeploymentRouting,
    /// Prices that override the price table for this deployment; `None` = use the table.
    pub prices: Option<DeploymentPrices>,
    /// The model to look prices up under when `deployment.model` is a private name
    /// (Azure deployment names): e.g. `azure/gpt-4o-2024-08-06`.
    pub base_model: Option<String>,
    /// The context window, when the price table does not know it or is wrong.
    pub max_input_tokens: Option<u64>,
    /// Where values were read from the environment: field (`api_key`, `api_base`,
    /// `headers.x-key`, `params.aws_secret_access_key`) → the reference as written
    /// (`os.environ/AZURE_API_KEY`). [`crate::to_native_yaml`] prints these instead of values.
    pub env_refs: BTreeMap<String, String>,
}

impl ModelEntry {
    /// An entry named `name` for `deployment`, everything else defaulted.
    pub fn new(name: impl Into<String>, deployment: DeploymentSettings) -> Self {
        Self {
            name: name.into(),
            deployment,
            id: None,
            routing: DeploymentRouting::default(),
            prices: None,
            base_model: None,
            max_input_tokens: None,
            env_refs: BTreeMap::new(),
        }
    }

    /// True for a `provider/*` route.
    pub fn is_wildcard(&self) -> bool {
        self.deployment.model == "*"
    }
}

impl fmt::Debug for ModelEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelEntry")
            .field("name", &self.name)
            .field("deployment", &redacted(&self.deployment))
            .field("id", &self.id)
            .field("routing", &self.routing)
            .field("prices", &self.prices)
            .field("base_model", &self.base_model)
            .field("max_input_tokens", &self.max_input_tokens)
            .field("env_refs", &self.env_refs)
            .finish()
    }
}

/// A copy of `d` whose credential-like `params` and `headers` values are replaced, for
/// `Debug` (the API key is a [`llmux_core::Secret`] already).
fn redacted(d: &DeploymentSettings) -> DeploymentSettings {
    let mut d = d.clone();
    for (k, v) in d.params.iter_mut() {
        if is_sensitive(k) {
            *v = Value::String(REDACTED.into());
        }
    }
    for (k, v) in d.headers.iter_mut() {
        if is_sensitive(k) {
            *v = REDACTED.into();
        }
    }
    d
}

const REDACTED: &str = "[redacted]";

/// Whether a `params` or `headers` key names a credential (`aws_secret_access_key`,
/// `vertex_credentials`, `Authorization`, `x-api-key`, …). Such values are redacted from
/// `Debug` and never printed by [`crate::to_native_yaml`].
pub fn is_sensitive(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('-', "_");
    n == "key"
        || n == "token"
        || n.ends_with("_key")
        || n.ends_with("_token")
        || n.contains("secret")
        || n.contains("password")
        || n.contains("credential")
        || n.contains("authorization")
        || n == "cookie"
        || n == "aws_access_key_id"
}

/// Per-deployment routing knobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentRouting {
    /// Relative share of traffic in its group (`simple-shuffle`); `None` = not set (1 when
    /// other deployments of the group set a weight; when none does, traffic follows
    /// rpm/tpm, as in LiteLLM).
    pub weight: Option<u32>,
    /// Requests per minute this deployment accepts; `None` = unlimited.
    pub rpm: Option<u64>,
    /// Tokens per minute this deployment accepts; `None` = unlimited.
    pub tpm: Option<u64>,
    /// Priority: deployments with the lowest `order` are tried first, higher ones only
    /// when those are unavailable; `None` = no priority (all alike).
    pub order: Option<u32>,
    /// Time an attempt on this deployment may take to deliver the first streamed chunk;
    /// `None` = `router.stream_timeout`.
    pub stream_timeout: Option<Duration>,
    /// Retries for this deployment; `None` = `router.num_retries`.
    pub max_retries: Option<u32>,
    /// Tags for tag-based routing.
    pub tags: Vec<String>,
}

/// Per-token prices (USD) that override the price table for one deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentPrices {
    /// USD per input (prompt) token.
    pub input_cost_per_token: Option<Decimal>,
    /// USD per output (completion) token.
    pub output_cost_per_token: Option<Decimal>,
}

/// A non-negative decimal number kept as its exact text (`"0.0000025"`, `"2.5e-6"`),
/// never as a binary float: money in llmux is exact, and the cost crate parses this text.
///
/// Written as a YAML/TOML string it is kept verbatim. Written as a bare number, the parser
/// hands over a float, which is rendered back as its shortest round-trip decimal: that is
/// the written text for any number of at most 15 significant digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal(String);

impl Decimal {
    /// Parse and check `text` (surrounding whitespace is dropped).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.starts_with('-') {
            return Err(format!("'{t}' must not be negative"));
        }
        let (mantissa, exponent) = match t.find(['e', 'E']) {
            Some(at) => (&t[..at], Some(&t[at + 1..])),
            None => (t, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
        let exponent_ok = exponent.is_none_or(|e| {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            !e.is_empty() && digits(e)
        });
        if mantissa_ok && exponent_ok {
            Ok(Self(t.to_owned()))
        } else {
            Err(format!(
                "'{t}' is not a decimal number (write it like 0.0000025 or 2.5e-6)"
            ))
        }
    }

    /// The decimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Decimal {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmux_core::Secret;

    #[test]
    fn decimals_keep_their_text() {
        for ok in ["0", "1", "0.0000025", "2.5e-6", "2.5E+6", ".5", "5.", "10"] {
            assert_eq!(Decimal::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(Decimal::parse(" 0.1 ").unwrap().to_string(), "0.1");
        for bad in [
            "", "-1", "abc", "1.2.3", "1e", "e5", ".", "0x10", "NaN", "1,5",
        ] {
            assert!(Decimal::parse(bad).is_err(), "{bad}");
        }
        assert!(Decimal::parse("-0.1").unwrap_err().contains("negative"));
    }

    #[test]
    fn sensitive_names() {
        for s in [
            "aws_secret_access_key",
            "aws_session_token",
            "aws_access_key_id",
            "vertex_credentials",
            "Authorization",
            "x-api-key",
            "api-key",
            "client_secret",
            "azure_ad_token",
        ] {
            assert!(is_sensitive(s), "{s}");
        }
        for s in [
            "aws_region_name",
            "max_tokens",
            "vertex_project",
            "mock_response",
            "anthropic-beta",
        ] {
            assert!(!is_sensitive(s), "{s}");
        }
    }

    #[test]
    fn debug_redacts_credential_params_and_headers() {
        let mut d = DeploymentSettings::new("bedrock", "anthropic.claude");
        d.api_key = Some(Secret::new("sk-top-secret"));
        d.params
            .insert("aws_secret_access_key".into(), "AKIA-very-secret".into());
        d.params
            .insert("aws_region_name".into(), "us-west-2".into());
        d.headers
            .insert("Authorization".into(), "Bearer hidden-value".into());
        let e = ModelEntry::new("m", d);
        let dbg = format!("{e:?}");
        for leak in ["sk-top-secret", "AKIA-very-secret", "hidden-value"] {
            assert!(!dbg.contains(leak), "{leak} in {dbg}");
        }
        assert!(dbg.contains("us-west-2"));
        // The entry itself is untouched.
        assert_eq!(
            e.deployment.params["aws_secret_access_key"],
            "AKIA-very-secret"
        );
    }
}
