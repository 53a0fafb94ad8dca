//! A LiteLLM Proxy `config.yaml` loads as is, converts to the native format, and never
//! shows a secret.

use std::path::{Path, PathBuf};
use std::time::Duration;

use llmux_config::{Config, ConfigFormat, DeploymentRouting, RoutingStrategy, to_native_yaml};
use llmux_core::ErrorKind;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/litellm_config.yaml")
}

const SECRETS: [&str; 9] = [
    "sk-azure-secret",
    "sk-openai-secret",
    "sk-ant-secret",
    "AKIA-secret-id",
    "aws-secret-value",
    "vertex-sa-json-secret",
    "sk-litellm-master",
    "db-password-secret",
    "sk-not-a-real-key-but-inline",
];

fn env(k: &str) -> Option<String> {
    Some(
        match k {
            "AZURE_API_KEY" => "sk-azure-secret",
            "OPENAI_API_KEY" => "sk-openai-secret",
            "ANTHROPIC_API_KEY" => "sk-ant-secret",
            "AWS_ACCESS_KEY_ID" => "AKIA-secret-id",
            "AWS_SECRET_ACCESS_KEY" => "aws-secret-value",
            "VERTEX_CREDENTIALS" => "{\"sa\": \"vertex-sa-json-secret\"}",
            "LITELLM_MASTER_KEY" => "sk-litellm-master",
            "DATABASE_URL" => "postgres://llmux:db-password-secret@db:5432/llmux",
            // The file's environment_variables are layered over this one.
            "AZURE_API_BASE" => "https://overridden-by-the-file.example",
            _ => return None,
        }
        .into(),
    )
}

fn load() -> Config {
    Config::load_with_env(&fixture(), &env).unwrap_or_else(|e| panic!("{e}"))
}

/// Everything about the model table, secrets included (tests only).
fn table(c: &Config) -> Vec<String> {
    c.models
        .iter()
        .map(|m| {
            let d = &m.deployment;
            format!(
                "{} | {}/{} | base={:?} key={:?} org={:?} ver={:?} timeout={:?} headers={:?} \
                 params={:?} | id={:?} routing={:?} prices={:?} base_model={:?} max_in={:?}",
                m.name,
                d.provider,
                d.model,
                d.api_base,
                d.api_key.as_ref().map(|k| k.expose()),
                d.organization,
                d.api_version,
                d.timeout,
                d.headers,
                d.params,
                m.id,
                m.routing,
                m.prices,
                m.base_model,
                m.max_input_tokens,
            )
        })
        .collect()
}

#[test]
fn the_fixture_loads_as_a_litellm_config() {
    let c = load();
    assert_eq!(c.format, ConfigFormat::LiteLlm);
    assert_eq!(c.source.as_deref(), Some(fixture().as_path()));
    let names: Vec<_> = c
        .model_groups()
        .into_iter()
        .map(|(n, e)| (n, e.len()))
        .collect();
    assert_eq!(
        names,
        [
            ("gpt-4o", 2),
            ("gpt-4o-mini", 1),
            ("claude-sonnet", 1),
            ("claude-haiku", 1),
            ("claude-bedrock", 1),
            ("gemini-pro", 1),
            ("test-mock", 1),
        ]
    );
    let routes: Vec<_> = c
        .models
        .iter()
        .map(|m| format!("{}/{}", m.deployment.provider, m.deployment.model))
        .collect();
    assert_eq!(
        routes,
        [
            "azure/gpt-4o-eastus",
            "openai/gpt-4o",
            "openai/gpt-4o-mini",
            "anthropic/claude-3-5-sonnet-20241022",
            "anthropic/claude-3-haiku-20240307",
            "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
            "vertex_ai/gemini-1.5-pro",
            "openai/gpt-4o-mini",
        ]
    );
}

#[test]
fn deployments_carry_credentials_routing_and_prices() {
    let c = load();
    let azure = &c.models[0];
    let d = &azure.deployment;
    assert_eq!(
        d.api_base.as_deref(),
        Some("https://llmux-eastus.openai.azure.com"),
        "environment_variables are layered over the injected lookup"
    );
    assert_eq!(d.api_key.as_ref().unwrap().expose(), "sk-azure-secret");
    assert_eq!(d.api_version.as_deref(), Some("2024-08-01-preview"));
    assert_eq!(d.timeout, Some(Duration::from_secs(45)));
    assert_eq!(azure.id.as_deref(), Some("azure-eastus-gpt-4o"));
    assert_eq!(azure.base_model.as_deref(), Some("azure/gpt-4o-2024-08-06"));
    assert_eq!(azure.max_input_tokens, Some(128_000));
    assert_eq!(
        azure.routing,
        DeploymentRouting {
            weight: Some(2),
            rpm: Some(900),
            tpm: Some(150_000),
            order: Some(1),
            ..DeploymentRouting::default()
        }
    );
    assert_eq!(azure.env_refs["api_key"], "os.environ/AZURE_API_KEY");
    assert_eq!(azure.env_refs["api_base"], "os.environ/AZURE_API_BASE");

    let openai = &c.models[1];
    assert_eq!(
        openai.deployment.organization.as_deref(),
        Some("org-llmux-tests")
    );
    assert_eq!(
        openai.routing,
        DeploymentRouting {
            order: Some(2),
            stream_timeout: Some(Duration::from_secs(10)),
            max_retries: Some(1),
            tags: vec!["default".into(), "paid".into()],
            ..DeploymentRouting::default()
        }
    );

    let mini = &c.models[2];
    assert_eq!(mini.routing.tpm, Some(2_000_000));
    let p = mini.prices.as_ref().unwrap();
    assert_eq!(
        p.input_cost_per_token.as_ref().unwrap().as_str(),
        "0.00000015"
    );
    assert_eq!(
        p.output_cost_per_token.as_ref().unwrap().as_str(),
        "0.0000006"
    );

    let sonnet = &c.models[3];
    assert_eq!(
        sonnet.deployment.headers["anthropic-beta"],
        "prompt-caching-2024-07-31"
    );
    let p = sonnet.prices.as_ref().unwrap();
    assert_eq!(
        p.input_cost_per_token.as_ref().unwrap().as_str(),
        "0.000003"
    );
    assert_eq!(
        p.output_cost_per_token.as_ref().unwrap().as_str(),
        "0.000015"
    );

    let bedrock = &c.models[5].deployment;
    assert_eq!(bedrock.params["aws_access_key_id"], "AKIA-secret-id");
    assert_eq!(bedrock.params["aws_secret_access_key"], "aws-secret-value");
    assert_eq!(bedrock.params["aws_region_name"], "us-west-2");
    assert_eq!(
        c.models[5].env_refs["params.aws_secret_access_key"],
        "os.environ/AWS_SECRET_ACCESS_KEY"
    );

    let vertex = &c.models[6].deployment;
    assert_eq!(vertex.params["vertex_project"], "llmux-test-project");
    assert_eq!(vertex.params["vertex_location"], "us-central1");
    assert!(
        vertex.params["vertex_credentials"]
            .as_str()
            .unwrap()
            .contains("vertex-sa-json-secret")
    );
    assert!(vertex.api_key.is_none());

    let mock = &c.models[7];
    assert_eq!(
        mock.deployment.params["mock_response"],
        "Hello from the mock"
    );
    assert_eq!(
        mock.deployment.api_key.as_ref().unwrap().expose(),
        "sk-not-a-real-key-but-inline"
    );
    assert!(!mock.env_refs.contains_key("api_key"));
}

#[test]
fn router_general_and_litellm_settings_map_onto_native_sections() {
    let c = load();
    let r = &c.router;
    assert_eq!(r.strategy, RoutingStrategy::UsageBased);
    assert_eq!(
        r.num_retries, 2,
        "router_settings wins over litellm_settings"
    );
    assert_eq!(r.timeout, Some(Duration::from_secs(120)));
    assert_eq!(r.allowed_fails, 3);
    assert_eq!(r.cooldown_time, Duration::from_secs(30));
    assert_eq!(r.retry_policy.get(ErrorKind::RateLimited), Some(4));
    assert_eq!(r.retry_policy.get(ErrorKind::Timeout), Some(2));
    assert_eq!(r.retry_policy.get(ErrorKind::Auth), Some(0));
    assert_eq!(r.fallbacks["gpt-4o"], ["claude-sonnet"]);
    assert_eq!(
        r.fallbacks["claude-sonnet"],
        ["claude-bedrock", "gemini-pro"]
    );
    assert_eq!(r.context_window_fallbacks["gpt-4o-mini"], ["gpt-4o"]);
    assert_eq!(r.content_policy_fallbacks["claude-sonnet"], ["gpt-4o"]);
    assert_eq!(r.default_fallbacks, ["gpt-4o-mini"]);
    assert_eq!(r.resolve_alias("gpt-4"), "gpt-4o");
    assert_eq!(r.resolve_alias("claude"), "claude-sonnet");
    assert!(r.model_group_alias["claude"].hidden);
    assert!(r.stream_resume);

    let s = &c.settings;
    assert!(s.drop_params);
    assert!(s.litellm_compat_headers, "on by default for a LiteLLM file");
    assert!(
        s.database_url
            .as_ref()
            .unwrap()
            .expose()
            .contains("db-password-secret")
    );
    assert_eq!(
        c.server.master_key.as_ref().unwrap().expose(),
        "sk-litellm-master"
    );
    assert_eq!(
        c.env_refs["server.master_key"],
        "os.environ/LITELLM_MASTER_KEY"
    );
    assert_eq!(c.file_env_vars, ["AZURE_API_BASE", "REDIS_HOST"]);
    assert_ne!(
        std::env::var("AZURE_API_BASE").ok().as_deref(),
        Some("https://llmux-eastus.openai.azure.com"),
        "the process environment is never modified"
    );
}

#[test]
fn unsupported_keys_are_one_warning_list() {
    let c = load();
    let file = fixture().display().to_string();
    let keys: Vec<&str> = c
        .warnings
        .iter()
        .map(|w| {
            let rest = w
                .strip_prefix(&format!("{file}: "))
                .unwrap_or_else(|| panic!("{w}"));
            rest.split(": ").next().unwrap()
        })
        .collect();
    let mut want = vec![
        "general_settings.alerting",
        "litellm_settings.cache",
        "litellm_settings.cache_params",
        "litellm_settings.failure_callback[1]",
        "router_settings.enable_pre_call_checks",
        "model_list[3].model_info.mode",
        "model_list[6].litellm_params.drop_params",
    ];
    let mut got = keys.clone();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "{:#?}", c.warnings);
    assert!(c.warnings.iter().all(|w| w.ends_with("; ignored")));
    // The callbacks llmux has a sink for are kept, once.
    assert_eq!(c.settings.callbacks, ["langfuse"]);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("failure_callback[1]: llmux has no sink named 'datadog'")),
        "{:#?}",
        c.warnings
    );
}

#[test]
fn secrets_stay_out_of_debug_errors_and_the_converted_yaml() {
    let c = load();
    let dbg = format!("{c:?}");
    let yaml = to_native_yaml(&c);
    for s in SECRETS {
        assert!(!dbg.contains(s), "{s} in Debug");
        assert!(!yaml.contains(s), "{s} in the converted YAML:\n{yaml}");
    }
    // Errors name the variable, never a value.
    let text = std::fs::read_to_string(fixture()).unwrap();
    let partial = |k: &str| if k == "DATABASE_URL" { None } else { env(k) };
    let err = Config::from_str(&text, "yaml", "litellm.yaml", &partial)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "litellm.yaml: general_settings.database_url: environment variable DATABASE_URL is not set"
    );
}

#[test]
fn converting_and_loading_the_output_gives_the_same_model_table() {
    let c = load();
    let yaml = to_native_yaml(&c);
    for want in [
        "api_key: os.environ/AZURE_API_KEY",
        "api_base: os.environ/AZURE_API_BASE",
        "master_key: os.environ/LITELLM_MASTER_KEY",
        "database_url: os.environ/DATABASE_URL",
        "aws_secret_access_key: os.environ/AWS_SECRET_ACCESS_KEY",
        "vertex_credentials: os.environ/VERTEX_CREDENTIALS",
        "api_key: os.environ/TEST_MOCK_API_KEY",
        "litellm_compat_headers: true",
        "strategy: usage-based-routing",
        "#   AZURE_API_BASE, REDIS_HOST",
        "#   TEST_MOCK_API_KEY  (models[7].api_key)",
        "redis_url: os.environ/REDIS_URL",
    ] {
        assert!(yaml.contains(want), "missing {want:?} in:\n{yaml}");
    }
    // What the header comment asks for: the file's variables and the inline secret.
    let env2 = |k: &str| match k {
        "AZURE_API_BASE" => Some("https://llmux-eastus.openai.azure.com".to_owned()),
        "TEST_MOCK_API_KEY" => Some("sk-not-a-real-key-but-inline".to_owned()),
        // router_settings.redis_{host,port} became one URL, asked for as a placeholder.
        "REDIS_URL" => c.settings.redis_url.as_ref().map(|u| u.expose().to_owned()),
        _ => env(k),
    };
    let again = Config::from_str(&yaml, "yaml", "converted.yaml", &env2)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(again.format, ConfigFormat::Native);
    assert!(again.warnings.is_empty());
    assert_eq!(table(&again), table(&c));
    assert_eq!(again.router, c.router);
    assert_eq!(format!("{:?}", again.server), format!("{:?}", c.server));
    assert_eq!(format!("{:?}", again.settings), format!("{:?}", c.settings));
    assert_eq!(
        again.settings.database_url.as_ref().unwrap().expose(),
        c.settings.database_url.as_ref().unwrap().expose()
    );
    // And converting again is stable.
    assert_eq!(
        to_native_yaml(&again).split_once("\n\n").map(|x| x.1),
        yaml.split_once("\n\n").map(|x| x.1)
    );
}

fn litellm_err(text: &str) -> String {
    Config::from_str(text, "yaml", "l.yaml", &env)
        .unwrap_err()
        .to_string()
}

#[test]
fn litellm_errors_name_litellm_key_paths_and_are_all_collected() {
    let msg = litellm_err(
        r#"
model_list:
  - model_name: a
    litellm_params:
      model: llama3
  - model_name: b
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/NOT_SET
      rpm: lots
      weight: 0
      input_cost_per_token: free
  - litellm_params: {model: openai/x}
  - model_name: c
  - model_name: d
    litellm_params: {model: openai/gpt-4o, timeout: -3}
router_settings:
  fallbacks: [{"b": ["zzz"]}, {"c": ["b"]}]
  context_window_fallbacks: [{"b": ["d"]}, {"d": ["b"]}]
  cooldown_time: soon
  model_group_alias: {"b": "d"}
general_settings:
  master_key: os.environ/NO_MASTER
"#,
    );
    for want in [
        "l.yaml: model_list[0].litellm_params.model: cannot tell the provider of 'llama3': write it as provider/model (e.g. openai/llama3)",
        "l.yaml: model_list[1].litellm_params.rpm: must be a whole number, not 'lots'",
        "l.yaml: model_list[2].model_name: missing",
        "l.yaml: model_list[3].litellm_params: missing",
        "l.yaml: router_settings.cooldown_time: must be a number of seconds, not 'soon'",
        "l.yaml: general_settings.master_key: environment variable NO_MASTER is not set",
        "l.yaml: model_list[1].litellm_params.api_key: environment variable NOT_SET is not set",
        "l.yaml: model_list[1].litellm_params.weight: must be at least 1",
        "l.yaml: model_list[1].litellm_params.input_cost_per_token: 'free' is not a decimal number",
        "l.yaml: model_list[4].litellm_params.timeout: must be a positive number of seconds",
        "l.yaml: router_settings.fallbacks[0].b[0]: 'zzz' is not a model group",
        "l.yaml: router_settings.fallbacks[1].c: 'c' is not a model group",
        "l.yaml: router_settings.context_window_fallbacks: fallback loop: b → d → b",
        "l.yaml: router_settings.model_group_alias.b: 'b' is already a model group",
    ] {
        assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
    }
}

#[test]
fn litellm_shapes_star_routes_and_mixed_files() {
    let c = Config::from_str(
        r#"
model_list:
  - model_name: "*"
    litellm_params: {model: "*"}
  - model_name: anthropic/*
    litellm_params: {model: anthropic/*, api_key: os.environ/ANTHROPIC_API_KEY}
  - model_name: fast
    litellm_params: {model: gpt-4o-mini, custom_llm_provider: openai}
  - model_name: local
    litellm_params: {model: llama3, custom_llm_provider: ollama, api_base: "http://localhost:11434"}
router_settings:
  routing_strategy: lar1
  fallbacks: [{"*": ["fast"]}, {"local": ["anthropic/claude-3-haiku-20240307"]}]
  context_window_fallbacks: [{"*": ["fast"]}]
  retry_policy: {DefaultRetries: 1, RateLimitErrorRetries: null}
"#,
        "yaml",
        "l.yaml",
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let routes: Vec<_> = c
        .models
        .iter()
        .map(|m| {
            format!(
                "{} → {}/{}",
                m.name, m.deployment.provider, m.deployment.model
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            "anthropic/* → anthropic/*",
            "fast → openai/gpt-4o-mini",
            "local → ollama/llama3"
        ]
    );
    assert_eq!(c.router.default_fallbacks, ["fast"]);
    assert_eq!(c.router.strategy, RoutingStrategy::SimpleShuffle);
    assert!(c.router.retry_policy.is_empty());
    let w = c.warnings.join("\n");
    for want in [
        "l.yaml: model_list[0]: a route for every model of every provider is not supported",
        "l.yaml: router_settings.routing_strategy: routing strategy 'lar1' is not supported by llmux (simple-shuffle is used); ignored",
        "l.yaml: router_settings.retry_policy.DefaultRetries: not supported by llmux; ignored",
        "l.yaml: router_settings.context_window_fallbacks[0].*: a fallback for every group is only supported in `fallbacks`; ignored",
    ] {
        assert!(w.contains(want), "missing {want:?} in:\n{w}");
    }

    let msg = litellm_err("server: {port: 1}\nmodel_list: []\n");
    assert!(
        msg.contains("l.yaml: server: llmux keys mixed with LiteLLM keys (model_list)"),
        "{msg}"
    );
    // Only the four LiteLLM sections make a LiteLLM file.
    let msg = litellm_err("environment_variables: {A: b}\n");
    assert!(msg.contains("environment_variables"), "{msg}");
}
