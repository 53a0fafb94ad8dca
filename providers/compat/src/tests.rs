//! The catalogue's integrity, its registrations and its environment templates.

use std::collections::{BTreeMap, HashSet};

use llmux_core::{Capability, DeploymentSettings, ErrorKind, Secret};

use super::*;
use crate::quirks::{MODELLED, UNDROPPABLE};

/// Providers other crates register: no catalogue prefix may take one of these names.
const OTHER_PROVIDERS: &[&str] = &[
    "openai",
    "azure",
    "anthropic",
    "gemini",
    "vertex_ai",
    "mock",
    "bedrock",
    "cohere",
    "mistral",
    "ollama",
    "ollama_chat",
];

/// The prefixes the catalogue promises (docs and issue), all present.
const REQUIRED: &[&str] = &[
    "groq",
    "together_ai",
    "fireworks_ai",
    "deepseek",
    "xai",
    "openrouter",
    "perplexity",
    "cerebras",
    "deepinfra",
    "sambanova",
    "nvidia_nim",
    "hyperbolic",
    "novita",
    "nebius",
    "lambda_ai",
    "moonshot",
    "dashscope",
    "volcengine",
    "github",
    "huggingface",
    "featherless_ai",
    "nscale",
    "baseten",
    "vllm",
    "hosted_vllm",
    "lm_studio",
    "llamafile",
    "litellm_proxy",
    "openai_like",
    "custom_openai",
];

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn row(prefix: &str) -> &'static CompatProvider {
    catalogue::find(prefix).unwrap_or_else(|| panic!("{prefix} is in the catalogue"))
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `https://host[:port]/path` (or `http://` for a server on this machine), no trailing
/// slash, no query: `Endpoints::under` appends `/chat/completions` to it.
fn check_base_url(prefix: &str, url: &str) {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| {
            url.strip_prefix("http://")
                .filter(|r| r.starts_with("localhost:") || r.starts_with("127.0.0.1:"))
        })
        .unwrap_or_else(|| panic!("{prefix}: {url} is not https (or a local http server)"));
    let host = rest.split('/').next().unwrap_or("");
    assert!(
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b':'),
        "{prefix}: bad host in {url}"
    );
    assert!(!url.ends_with('/'), "{prefix}: {url} ends with '/'");
    assert!(
        !url.contains(['?', '#', ' ']),
        "{prefix}: {url} has a query or fragment"
    );
}

#[test]
fn prefixes_are_unique_well_formed_and_clash_with_no_other_provider() {
    let mut seen = HashSet::new();
    for e in CATALOGUE {
        assert!(seen.insert(e.prefix), "{}: listed twice", e.prefix);
        assert!(
            !e.prefix.is_empty()
                && e.prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{}: a prefix is lower-case snake case",
            e.prefix
        );
        assert!(
            !OTHER_PROVIDERS.contains(&e.prefix),
            "{}: clashes with another provider crate",
            e.prefix
        );
    }
    for p in REQUIRED {
        assert!(seen.contains(p), "{p}: missing from the catalogue");
    }
}

#[test]
fn rows_are_complete_and_consistent() {
    let mut key_vars = HashSet::new();
    for e in CATALOGUE {
        let p = e.prefix;
        assert!(
            !e.description.is_empty() && !e.description.contains('\n'),
            "{p}: one-line description"
        );
        if e.default_api_base.is_empty() {
            assert!(
                e.description.contains("api_base required"),
                "{p}: a row without a default base says api_base is required"
            );
        } else {
            check_base_url(p, e.default_api_base);
        }
        if !e.auth.key_optional() {
            assert!(
                !e.key_env.is_empty(),
                "{p}: a keyed provider names its key variable"
            );
        }
        for v in e.key_env.iter().chain(e.base_env.iter()) {
            assert!(
                is_env_name(v),
                "{p}: {v} is not an environment variable name"
            );
        }
        for v in e.key_env {
            assert!(
                key_vars.insert(*v),
                "{p}: {v} is another row's key variable"
            );
        }
        if let Auth::Header(h) = e.auth {
            assert!(is_header_name(h), "{p}: header {h} must be lower-case");
        }
        for ph in e.param_headers {
            assert!(
                is_header_name(ph.header),
                "{p}: header {} must be lower-case",
                ph.header
            );
            assert!(
                ph.env.is_none_or(is_env_name),
                "{p}: bad variable for {}",
                ph.param
            );
        }
        assert!(e.serves(Capability::Chat), "{p}: every row serves chat");
        assert!(
            !e.serves(Capability::Rerank),
            "{p}: rerank is not OpenAI's API"
        );
        let caps: HashSet<_> = e.capabilities.iter().collect();
        assert_eq!(
            caps.len(),
            e.capabilities.len(),
            "{p}: duplicate capability"
        );
    }
}

#[test]
fn quirks_are_applicable() {
    for e in CATALOGUE {
        let mut seen = HashSet::new();
        for q in e.quirks {
            assert!(seen.insert(*q), "{}: {q:?} listed twice", e.prefix);
            if let Quirk::Drop(param) = q {
                assert!(
                    !UNDROPPABLE.contains(param),
                    "{}: {param} cannot be dropped (the codec and metering need it)",
                    e.prefix
                );
                assert!(
                    !param.is_empty() && param.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{}: {param} is not a parameter name",
                    e.prefix
                );
            }
        }
        // Renaming needs the new name to survive: no row drops what it renames to.
        if e.quirks.contains(&Quirk::MaxCompletionTokensAsMaxTokens) {
            assert!(
                !e.quirks.contains(&Quirk::Drop("max_tokens")),
                "{}",
                e.prefix
            );
        }
    }
    assert!(MODELLED.iter().all(|p| !UNDROPPABLE.contains(p)));
}

#[test]
fn every_row_is_registered_as_it_is_described() {
    for e in CATALOGUE {
        let f = llmux_core::find_provider(e.prefix)
            .unwrap_or_else(|| panic!("{}: not registered", e.prefix));
        assert_eq!(f.description, e.description, "{}", e.prefix);
        assert_eq!(f.default_api_base, e.default_api_base, "{}", e.prefix);
        assert_eq!(f.capabilities, e.capabilities, "{}", e.prefix);
        let built = (f.build)(&DeploymentSettings {
            api_base: Some("http://127.0.0.1:9/v1".into()),
            ..DeploymentSettings::new(e.prefix, "some-model")
        })
        .unwrap_or_else(|err| panic!("{}: {err}", e.prefix));
        assert_eq!(built.name(), e.prefix);
        assert_eq!(built.model(), "some-model");
    }
    let compat = llmux_core::providers()
        .filter(|f| catalogue::find(f.name).is_some())
        .count();
    assert_eq!(compat, CATALOGUE.len(), "one registration per row");
}

#[test]
fn rows_without_a_default_base_need_one() {
    for e in CATALOGUE.iter().filter(|e| e.default_api_base.is_empty()) {
        let err = Compat::new(e, &DeploymentSettings::new(e.prefix, "m"))
            .expect_err("api_base is required");
        assert_eq!(err.kind(), ErrorKind::BadRequest, "{}", e.prefix);
        assert_eq!(err.param(), Some("api_base"), "{}", e.prefix);
        assert!(
            err.message().contains("api_base"),
            "{}: {}",
            e.prefix,
            err.message()
        );
    }
    assert!(Compat::new(row("groq"), &DeploymentSettings::new("groq", "m")).is_ok());
}

#[test]
fn keys_never_print() {
    let mut s = DeploymentSettings::new("groq", "llama-3.3-70b-versatile");
    s.api_key = Some(Secret::new("gsk-very-secret"));
    let p = Compat::new(row("groq"), &s).unwrap();
    assert!(!format!("{p:?}").contains("gsk-very-secret"));
}

#[test]
fn env_template_needs_the_key_and_honours_the_base_variable() {
    let groq = row("groq");
    assert!(env_template(groq, &env_of(&[])).is_none());
    assert!(env_template(groq, &env_of(&[("GROQ_API_KEY", "")])).is_none());
    let s = env_template(groq, &env_of(&[("GROQ_API_KEY", "gsk-1")])).unwrap();
    assert_eq!((s.provider.as_str(), s.model.as_str()), ("groq", "*"));
    assert_eq!(s.api_key.unwrap().expose(), "gsk-1");
    assert_eq!(s.api_base, None, "the row's default applies");
    let s = env_template(
        groq,
        &env_of(&[
            ("GROQ_API_KEY", "gsk-1"),
            ("GROQ_API_BASE", "http://127.0.0.1:9/v1"),
        ]),
    )
    .unwrap();
    assert_eq!(s.api_base.as_deref(), Some("http://127.0.0.1:9/v1"));
    // A keyed provider is not served on its base variable alone.
    assert!(env_template(groq, &env_of(&[("GROQ_API_BASE", "http://x")])).is_none());
}

#[test]
fn env_template_takes_the_first_key_variable_set() {
    let together = row("together_ai");
    let s = env_template(together, &env_of(&[("TOGETHERAI_API_KEY", "t-2")])).unwrap();
    assert_eq!(s.api_key.unwrap().expose(), "t-2");
    let s = env_template(
        together,
        &env_of(&[("TOGETHERAI_API_KEY", "t-2"), ("TOGETHER_API_KEY", "t-1")]),
    )
    .unwrap();
    assert_eq!(s.api_key.unwrap().expose(), "t-1");
}

#[test]
fn env_template_for_self_hosted_servers() {
    let vllm = row("hosted_vllm");
    assert!(
        env_template(vllm, &env_of(&[("HOSTED_VLLM_API_KEY", "k")])).is_none(),
        "no default base: the base variable is required"
    );
    let s = env_template(
        vllm,
        &env_of(&[("HOSTED_VLLM_API_BASE", "http://gpu:8000/v1")]),
    )
    .unwrap();
    assert_eq!(s.api_base.as_deref(), Some("http://gpu:8000/v1"));
    assert!(s.api_key.is_none(), "keyless");
    let lm = row("lm_studio");
    assert!(env_template(lm, &env_of(&[])).is_none());
    let s = env_template(
        lm,
        &env_of(&[("LM_STUDIO_API_BASE", "http://127.0.0.1:5/v1")]),
    )
    .unwrap();
    assert_eq!(s.api_base.as_deref(), Some("http://127.0.0.1:5/v1"));
    for any in ["openai_like", "custom_openai"] {
        assert!(row(any).key_env.is_empty() && row(any).base_env.is_none());
        assert!(env_template(row(any), &env_of(&[("OPENAI_API_KEY", "sk")])).is_none());
    }
}

#[test]
fn env_template_fills_param_headers() {
    let s = env_template(
        row("openrouter"),
        &env_of(&[
            ("OPENROUTER_API_KEY", "or-1"),
            ("OR_SITE_URL", "https://example.org"),
            ("OR_APP_NAME", "demo"),
        ]),
    )
    .unwrap();
    assert_eq!(s.params["site_url"], "https://example.org");
    assert_eq!(s.params["app_name"], "demo");
}
