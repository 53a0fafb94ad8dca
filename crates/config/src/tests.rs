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
    // A string in the wrong place is not echoed: it may be a secret.
    let msg = check_err("server:\n  port: sk-misplaced-secret\n", "yaml");
    assert!(
        msg.contains("server.port: invalid type: found a string, expected u16"),
        "{msg}"
    );
    assert!(!msg.contains("sk-misplaced-secret"), "{msg}");
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

const ROUTED: &str = r#"
server:
  master_key: os.environ/MASTER
settings:
  drop_params: true
  log_prompts: true
  database_url: env:DB_URL
router:
  strategy: latency-based-routing
  num_retries: 4
  retry_policy: {rate_limited: 5, auth: 0}
  allowed_fails: 1
  cooldown_time: 60
  timeout: 90
  stream_timeout: 15
  stall_timeout: 20.5
  stream_resume: false
  fallbacks:
    gpt-4o: [claude, gemini]
    fast: [gpt-4o]
  context_window_fallbacks:
    gpt-4o: [gemini]
  content_policy_fallbacks:
    claude: [gpt-4o]
  default_fallbacks: [gemini]
  model_group_alias:
    gpt-4: gpt-4o
    secret-name: {model: claude, hidden: true}
models:
  - name: gpt-4o
    model: openai/gpt-4o
    id: oai-1
    api_key: os.environ/OPENAI_KEY
    api_base: env:OPENAI_BASE
    weight: 3
    rpm: 600
    tpm: 100000
    order: 1
    stream_timeout: 5
    max_retries: 1
    tags: [paid, eu]
    input_cost_per_token: 0.0000025
    output_cost_per_token: "0.00001"
    max_input_tokens: 128000
    headers: {x-api-key: os.environ/OPENAI_KEY, x-team: blue}
    params: {aws_secret_access_key: env:OPENAI_KEY, region: eu}
  - name: gpt-4o
    model: azure/my-gpt4o
    base_model: azure/gpt-4o-2024-08-06
    input_cost_per_token: 2.5e-6
  - name: claude
    model: anthropic/claude-3-5-sonnet-latest
  - name: gemini
    model: gemini/gemini-1.5-pro
  - name: fast
    model: mock/echo
  - name: openrouter/*
    model: openrouter/*
"#;

fn env2(k: &str) -> Option<String> {
    match k {
        "OPENAI_BASE" => Some("http://127.0.0.1:9/v1".into()),
        "DB_URL" => Some("postgres://u:pw-db-secret@db/llmux".into()),
        _ => env(k),
    }
}

#[test]
fn routing_prices_router_and_settings_load() {
    let c = Config::from_str(ROUTED, "yaml", "r.yaml", &env2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.format, ConfigFormat::Native);
    assert!(c.warnings.is_empty());
    let m = &c.models[0];
    assert_eq!(m.id.as_deref(), Some("oai-1"));
    assert_eq!(
        m.routing,
        DeploymentRouting {
            weight: Some(3),
            rpm: Some(600),
            tpm: Some(100_000),
            order: Some(1),
            stream_timeout: Some(Duration::from_secs(5)),
            max_retries: Some(1),
            tags: vec!["paid".into(), "eu".into()],
        }
    );
    let p = m.prices.as_ref().unwrap();
    assert_eq!(
        p.input_cost_per_token.as_ref().unwrap().as_str(),
        "0.0000025"
    );
    assert_eq!(
        p.output_cost_per_token.as_ref().unwrap().as_str(),
        "0.00001"
    );
    assert_eq!(m.max_input_tokens, Some(128_000));
    assert_eq!(
        m.deployment.api_base.as_deref(),
        Some("http://127.0.0.1:9/v1")
    );
    assert_eq!(m.deployment.headers["x-api-key"], "sk-from-env");
    assert_eq!(m.deployment.params["aws_secret_access_key"], "sk-from-env");
    assert_eq!(m.env_refs["api_key"], "os.environ/OPENAI_KEY");
    assert_eq!(m.env_refs["api_base"], "env:OPENAI_BASE");
    assert_eq!(m.env_refs["headers.x-api-key"], "os.environ/OPENAI_KEY");
    assert_eq!(m.env_refs["params.aws_secret_access_key"], "env:OPENAI_KEY");
    assert!(!m.env_refs.contains_key("params.region"));
    let azure = &c.models[1];
    assert_eq!(azure.base_model.as_deref(), Some("azure/gpt-4o-2024-08-06"));
    assert_eq!(
        azure
            .prices
            .as_ref()
            .unwrap()
            .input_cost_per_token
            .as_ref()
            .unwrap()
            .as_str(),
        "0.0000025",
        "a bare float comes back as its shortest decimal"
    );
    assert_eq!(azure.routing, DeploymentRouting::default());
    assert!(c.models[2].prices.is_none());

    let groups = c.model_groups();
    assert_eq!(groups.len(), 5);
    assert_eq!((groups[0].0, groups[0].1.len()), ("gpt-4o", 2));

    let r = &c.router;
    assert_eq!(r.strategy, RoutingStrategy::LatencyBased);
    assert_eq!(r.num_retries, 4);
    assert_eq!(
        r.retry_policy.get(llmux_core::ErrorKind::RateLimited),
        Some(5)
    );
    assert_eq!(r.retry_policy.get(llmux_core::ErrorKind::Auth), Some(0));
    assert_eq!(r.allowed_fails, 1);
    assert_eq!(r.cooldown_time, Duration::from_secs(60));
    assert_eq!(r.timeout, Some(Duration::from_secs(90)));
    assert_eq!(r.stream_timeout, Some(Duration::from_secs(15)));
    assert_eq!(r.stall_timeout, Some(Duration::from_millis(20_500)));
    assert!(!r.stream_resume);
    assert_eq!(r.fallbacks["gpt-4o"], ["claude", "gemini"]);
    assert_eq!(r.context_window_fallbacks["gpt-4o"], ["gemini"]);
    assert_eq!(r.content_policy_fallbacks["claude"], ["gpt-4o"]);
    assert_eq!(r.default_fallbacks, ["gemini"]);
    assert_eq!(r.resolve_alias("gpt-4"), "gpt-4o");
    assert_eq!(r.resolve_alias("gpt-4o"), "gpt-4o");
    assert!(r.model_group_alias["secret-name"].hidden);

    let s = &c.settings;
    assert!(s.drop_params && s.log_prompts && !s.litellm_compat_headers);
    assert_eq!(
        s.database_url.as_ref().unwrap().expose(),
        "postgres://u:pw-db-secret@db/llmux"
    );
    assert_eq!(c.env_refs["settings.database_url"], "env:DB_URL");
    assert_eq!(c.env_refs["server.master_key"], "os.environ/MASTER");

    let dbg = format!("{c:?}");
    for leak in ["sk-from-env", "sk-master", "pw-db-secret"] {
        assert!(!dbg.contains(leak), "{leak} leaked into Debug");
    }
}

#[test]
fn defaults_when_sections_are_missing() {
    let c = check_ok("models:\n  - name: a\n    model: mock/echo\n");
    let r = &c.router;
    assert_eq!(r.strategy, RoutingStrategy::SimpleShuffle);
    assert_eq!(r.num_retries, DEFAULT_NUM_RETRIES);
    assert_eq!(r.allowed_fails, DEFAULT_ALLOWED_FAILS);
    assert_eq!(r.cooldown_time, DEFAULT_COOLDOWN_TIME);
    assert!(r.stream_resume && r.timeout.is_none() && r.fallbacks.is_empty());
    let s = &c.settings;
    assert!(!s.drop_params && !s.litellm_compat_headers && !s.log_prompts);
    assert!(s.price_table.is_none() && s.database_url.is_none());
    assert_eq!(c.models[0].routing, DeploymentRouting::default());
}

#[test]
fn toml_carries_the_new_sections() {
    let c = Config::from_str(
        r#"
[router]
strategy = "usage-based-routing-v2"
default_fallbacks = ["b"]
[router.fallbacks]
a = ["b"]
[settings]
drop_params = true
[[models]]
name = "a"
model = "mock/a"
rpm = 10
input_cost_per_token = "0.000001"
tags = ["x"]
[[models]]
name = "b"
model = "mock/b"
"#,
        "toml",
        "t.toml",
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.router.strategy, RoutingStrategy::UsageBased);
    assert_eq!(c.router.fallbacks["a"], ["b"]);
    assert!(c.settings.drop_params);
    assert_eq!(c.models[0].routing.rpm, Some(10));
    assert_eq!(
        c.models[0]
            .prices
            .as_ref()
            .unwrap()
            .input_cost_per_token
            .as_ref()
            .unwrap()
            .as_str(),
        "0.000001"
    );
}

#[test]
fn routing_errors_are_all_reported_with_key_paths() {
    let msg = check_err(
        r#"
router:
  strategy: fastest
  retry_policy: {RateLimitErrorRetries: 2}
  timeout: 0
  cooldown_time: -1
  fallbacks:
    a: [b, nope, b]
    ghost: [a]
    "*": [a]
  default_fallbacks: [missing]
  model_group_alias:
    a: b
    x: nothing
settings:
  price_table: /nonexistent/prices.json
  database_url: os.environ/NO_DB
models:
  - name: a
    model: mock/a
    id: same
    weight: 0
    rpm: 0
    order: 0
    max_input_tokens: 0
    input_cost_per_token: -0.1
    output_cost_per_token: cheap
    tags: [""]
    stream_timeout: 0
  - name: b
    model: mock/b
    id: same
    base_model: ""
"#,
        "yaml",
    );
    for want in [
        "test.yaml: router.strategy: unknown routing strategy 'fastest' (expected one of: simple-shuffle,",
        "test.yaml: router.retry_policy.RateLimitErrorRetries: unknown error kind 'RateLimitErrorRetries'",
        "test.yaml: router.timeout: must be a positive number of seconds",
        "test.yaml: router.cooldown_time: must be a non-negative number of seconds",
        "test.yaml: router.fallbacks.a[1]: 'nope' is not a model group (known: a, b)",
        "test.yaml: router.fallbacks.a[2]: 'b' is listed twice",
        "test.yaml: router.fallbacks.ghost: 'ghost' is not a model group",
        "test.yaml: router.fallbacks.*: use router.default_fallbacks",
        "test.yaml: router.default_fallbacks[0]: 'missing' is not a model group",
        "test.yaml: router.model_group_alias.a: 'a' is already a model group",
        "test.yaml: router.model_group_alias.x: 'nothing' is not a model group",
        "test.yaml: settings.price_table: no such file: /nonexistent/prices.json",
        "test.yaml: settings.database_url: environment variable NO_DB is not set",
        "test.yaml: models[0].weight: must be at least 1",
        "test.yaml: models[0].rpm: must be positive",
        "test.yaml: models[0].order: must be at least 1",
        "test.yaml: models[0].max_input_tokens: must be positive",
        "test.yaml: models[0].input_cost_per_token: '-0.1' must not be negative",
        "test.yaml: models[0].output_cost_per_token: 'cheap' is not a decimal number",
        "test.yaml: models[0].tags[0]: must not be empty",
        "test.yaml: models[0].stream_timeout: must be a positive number of seconds",
        "test.yaml: models[1].id: duplicate id 'same' (also models[0].id)",
        "test.yaml: models[1].base_model: must not be empty",
    ] {
        assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
    }
}

#[test]
fn fallback_loops_are_errors_naming_the_cycle() {
    let models = "models:\n  - {name: a, model: mock/a}\n  - {name: b, model: mock/b}\n  - {name: c, model: mock/c}\n";
    let msg = check_err(
        &format!(
            "{models}router:\n  fallbacks: {{a: [b], b: [c], c: [a]}}\n  context_window_fallbacks: {{c: [c]}}\n"
        ),
        "yaml",
    );
    assert!(
        msg.contains("test.yaml: router.fallbacks: fallback loop: a → b → c → a"),
        "{msg}"
    );
    assert!(
        msg.contains("test.yaml: router.context_window_fallbacks: fallback loop: c → c"),
        "{msg}"
    );
    // Through an alias, too.
    let msg = check_err(
        &format!(
            "{models}router:\n  model_group_alias: {{big: b}}\n  fallbacks: {{a: [big], b: [a]}}\n"
        ),
        "yaml",
    );
    assert!(msg.contains("fallback loop: a → b → a"), "{msg}");
    // Different kinds do not combine into a loop; a chain is fine.
    check_ok(&format!(
        "{models}router:\n  fallbacks: {{a: [b], b: [c]}}\n  context_window_fallbacks: {{c: [a]}}\n"
    ));
}

#[test]
fn fallbacks_may_name_wildcard_routes_and_aliases() {
    let c = check_ok(
        r#"
models:
  - {name: a, model: mock/a}
  - {name: openrouter/*, model: openrouter/*}
router:
  model_group_alias: {best: a}
  fallbacks:
    best: [openrouter/meta-llama/llama-3-70b-instruct]
    openrouter/x: [a]
"#,
    );
    assert_eq!(c.router.fallbacks.len(), 2);
    let msg = check_err(
        "models:\n  - {name: openrouter/*, model: openrouter/*}\nrouter:\n  fallbacks: {openrouter: [openrouter/]}\n",
        "yaml",
    );
    assert!(
        msg.contains("router.fallbacks.openrouter: 'openrouter' is not a model group"),
        "{msg}"
    );
}

#[test]
fn price_table_is_relative_to_the_config_file() {
    let dir = std::env::temp_dir().join(format!("llmux-config-pt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("prices.json"), "{}").unwrap();
    let p = dir.join("c.yaml");
    std::fs::write(&p, "settings:\n  price_table: prices.json\n").unwrap();
    let c = Config::load_with_env(&p, &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.settings.price_table.as_deref(),
        Some(dir.join("prices.json").as_path())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail closure returns figment::Error
fn env_overrides_reach_new_sections_and_ignore_other_llmux_vars() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("c.yaml", "models:\n  - name: m\n    model: mock/echo\n")?;
        jail.set_env("LLMUX_ROUTER__NUM_RETRIES", "7");
        jail.set_env("LLMUX_SETTINGS__DROP_PARAMS", "true");
        // Read by the CLI, not the file: must not be taken for config keys.
        jail.set_env("LLMUX_WORKERS", "4");
        jail.set_env("LLMUX_MASTER_KEY", "sk-cli");
        let c = Config::load_with_env(Path::new("c.yaml"), &env).map_err(|e| e.to_string())?;
        assert_eq!(c.router.num_retries, 7);
        assert!(c.settings.drop_params);
        Ok(())
    });
}

#[test]
fn native_round_trips_through_to_native_yaml() {
    let c = Config::from_str(ROUTED, "yaml", "r.yaml", &env2).unwrap();
    let yaml = to_native_yaml(&c);
    for leak in ["sk-from-env", "sk-master", "pw-db-secret"] {
        assert!(!yaml.contains(leak), "{leak} leaked into:\n{yaml}");
    }
    let again = Config::from_str(&yaml, "yaml", "out.yaml", &env2)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(format!("{:?}", again.models), format!("{:?}", c.models));
    assert_eq!(again.router, c.router);
    assert_eq!(format!("{:?}", again.server), format!("{:?}", c.server));
    assert_eq!(format!("{:?}", again.settings), format!("{:?}", c.settings));
}

#[test]
fn inline_secrets_become_named_variables_in_the_converted_yaml() {
    let c = check_ok(
        r#"
server:
  master_key: sk-inline-master
models:
  - name: gpt-4o
    model: openai/gpt-4o
    api_key: sk-inline-openai
    headers: {Authorization: Bearer inline-header-secret}
    params: {aws_secret_access_key: inline-aws-secret, region: eu}
"#,
    );
    let yaml = to_native_yaml(&c);
    for leak in ["sk-inline", "inline-header-secret", "inline-aws-secret"] {
        assert!(!yaml.contains(leak), "{leak} leaked into:\n{yaml}");
    }
    for want in [
        "master_key: os.environ/MASTER_KEY",
        "api_key: os.environ/GPT_4O_API_KEY",
        "Authorization: os.environ/GPT_4O_AUTHORIZATION",
        "aws_secret_access_key: os.environ/GPT_4O_AWS_SECRET_ACCESS_KEY",
        "region: \"eu\"",
        "#   GPT_4O_API_KEY  (models[0].api_key)",
    ] {
        assert!(yaml.contains(want), "missing {want:?} in:\n{yaml}");
    }
}

#[test]
fn redis_and_key_cache_settings_load_natively_and_from_litellm() {
    let c = check_ok(
        r#"
settings:
  redis_url: redis://127.0.0.1:6379/2
  key_cache_ttl: 0.5
"#,
    );
    assert_eq!(
        c.settings.redis_url.as_ref().map(|s| s.expose()),
        Some("redis://127.0.0.1:6379/2")
    );
    assert_eq!(
        c.settings.key_cache_ttl,
        Some(std::time::Duration::from_millis(500))
    );
    assert!(!format!("{:?}", c.settings).contains("6379"), "redacted");

    let e = check_err("settings:\n  redis_url: http://nope\n", "yaml");
    assert!(e.contains("settings.redis_url"), "{e}");
    let e = check_err("settings:\n  key_cache_ttl: -1\n", "yaml");
    assert!(e.contains("settings.key_cache_ttl"), "{e}");

    // LiteLLM's router_settings host/port/password become one URL (password encoded and
    // read from the environment); `llmux config convert` never prints it.
    let litellm = r#"
model_list:
  - model_name: m
    litellm_params: {model: openai/gpt-4o}
router_settings:
  redis_host: 10.0.0.5
  redis_port: 6380
  redis_password: os.environ/MASTER
"#;
    let c = Config::from_str(litellm, "yaml", "config.yaml", &|k: &str| match k {
        "MASTER" => Some("p@ss:word".into()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.settings.redis_url.as_ref().map(|s| s.expose()),
        Some("redis://:p%40ss%3Aword@10.0.0.5:6380")
    );
    assert!(
        c.warnings.iter().all(|w| !w.contains("redis")),
        "{:?}",
        c.warnings
    );
    assert!(!crate::to_native_yaml(&c).contains("p%40ss"));

    let c = Config::from_str(
        "model_list: []\nrouter_settings:\n  redis_url: redis://cache:6379\n  redis_host: ignored\n",
        "yaml",
        "config.yaml",
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.settings.redis_url.as_ref().map(|s| s.expose()),
        Some("redis://cache:6379")
    );
}

#[test]
fn model_group_tags_load_from_both_formats_and_bad_ones_are_named() {
    let native = check_ok(
        r#"
models:
  - {name: summarizer, model: mock/echo}
router:
  model_group_tags: {summarizer: [summarize, " batch "]}
"#,
    );
    assert_eq!(
        native.router.model_group_tags["summarizer"],
        ["summarize", " batch "]
    );
    let litellm = check_ok(
        r#"
model_list:
  - model_name: summarizer
    litellm_params: {model: mock/echo}
router_settings:
  model_group_tags: {summarizer: [summarize]}
"#,
    );
    assert_eq!(litellm.router.model_group_tags["summarizer"], ["summarize"]);
    let err = check_err(
        r#"
models:
  - {name: summarizer, model: mock/echo}
router:
  model_group_tags: {nope: [a], summarizer: ["", ok]}
"#,
        "yaml",
    );
    assert!(err.contains("router.model_group_tags.nope"), "{err}");
    assert!(
        err.contains("router.model_group_tags.summarizer[0]"),
        "{err}"
    );
}
