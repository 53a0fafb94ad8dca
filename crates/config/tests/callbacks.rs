//! `settings.callbacks` and `settings.callback_settings`: written natively, or mapped from
//! a LiteLLM file's `litellm_settings` callbacks.

use llmux_config::{BUILTIN_SINK_NAMES, Config, ConfigFormat, is_builtin_sink, to_native_yaml};
use serde_json::json;

fn env(k: &str) -> Option<String> {
    Some(
        match k {
            "LANGFUSE_SK" => "sk-lf-from-env",
            "HOOK_TOKEN" => "hook-token-from-env",
            _ => return None,
        }
        .into(),
    )
}

fn native(text: &str) -> Config {
    Config::from_str(text, "yaml", "llmux.yaml", &env).unwrap_or_else(|e| panic!("{e}"))
}

fn litellm(text: &str) -> Config {
    let c = Config::from_str(text, "yaml", "litellm.yaml", &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.format, ConfigFormat::LiteLlm);
    c
}

fn error(text: &str, format: &str) -> String {
    Config::from_str(text, format, "bad.yaml", &env)
        .unwrap_err()
        .to_string()
}

#[test]
fn native_callbacks_and_their_settings_load_with_references_resolved() {
    let c = native(
        r#"
settings:
  callbacks: [langfuse, jsonl, audit]
  callback_settings:
    langfuse:
      public_key: pk-lf-1
      secret_key: os.environ/LANGFUSE_SK
      batch_size: 50
    jsonl: {path: /var/log/llmux/calls.jsonl}
    audit:
      type: webhook
      url: https://hooks.example/llmux
      headers: {authorization: "env:HOOK_TOKEN"}
"#,
    );
    let s = &c.settings;
    assert_eq!(s.callbacks, ["langfuse", "jsonl", "audit"]);
    assert_eq!(
        serde_json::Value::Object(s.callback_settings["langfuse"].clone()),
        json!({"public_key": "pk-lf-1", "secret_key": "sk-lf-from-env", "batch_size": 50})
    );
    assert_eq!(
        s.callback_settings["audit"]["headers"]["authorization"],
        "hook-token-from-env"
    );
    assert_eq!(
        s.callback_settings["jsonl"]["path"],
        "/var/log/llmux/calls.jsonl"
    );
    assert_eq!(
        c.env_refs["settings.callback_settings.langfuse.secret_key"],
        "os.environ/LANGFUSE_SK"
    );
    assert_eq!(
        c.env_refs["settings.callback_settings.audit.headers.authorization"],
        "env:HOOK_TOKEN"
    );
    // Debug shows the keys of sink settings, never their values.
    let dbg = format!("{c:?}");
    assert!(dbg.contains("\"secret_key\""), "{dbg}");
    for secret in ["sk-lf-from-env", "hook-token-from-env", "hooks.example"] {
        assert!(!dbg.contains(secret), "{secret} in {dbg}");
    }
    assert!(c.warnings.is_empty());
}

#[test]
fn toml_and_defaults() {
    let c = Config::from_str(
        r#"
[settings]
callbacks = ["otel"]

[settings.callback_settings.otel]
endpoint = "http://collector:4318/v1/traces"
headers = { "api-key" = "k" }
"#,
        "toml",
        "llmux.toml",
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.settings.callbacks, ["otel"]);
    assert_eq!(
        c.settings.callback_settings["otel"]["headers"]["api-key"],
        "k"
    );

    let empty = native("models: []\n");
    assert!(empty.settings.callbacks.is_empty());
    assert!(empty.settings.callback_settings.is_empty());
}

#[test]
fn native_errors_name_the_key() {
    let msg = error(
        r#"
settings:
  callbacks: [otel, " ", OTEL]
  callback_settings:
    langfuse: {secret_key: os.environ/NOT_SET, extra: {deep: ["env:ALSO_NOT_SET"]}}
"#,
        "yaml",
    );
    for want in [
        "bad.yaml: settings.callbacks[1]: must not be empty",
        "bad.yaml: settings.callbacks[2]: 'OTEL' is listed twice",
        "bad.yaml: settings.callback_settings.langfuse.secret_key: environment variable NOT_SET is not set",
        "bad.yaml: settings.callback_settings.langfuse.extra.deep[0]: environment variable ALSO_NOT_SET is not set",
    ] {
        assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
    }
    let msg = error("settings:\n  callback_settings: {jsonl: [a]}\n", "yaml");
    assert!(msg.contains("settings.callback_settings.jsonl"), "{msg}");
}

#[test]
fn native_callbacks_round_trip_through_the_converted_yaml() {
    let c = native(
        r#"
settings:
  callbacks: [langfuse, webhook]
  callback_settings:
    langfuse: {public_key: pk-lf-1, secret_key: os.environ/LANGFUSE_SK, host: "https://lf.example"}
    webhook:
      url: https://hooks.example/in
      batch_size: 10
      headers: {authorization: Bearer inline-hook-secret, x-team: a}
    jsonl: {}
"#,
    );
    let yaml = to_native_yaml(&c);
    for want in [
        "  callbacks: [langfuse, webhook]",
        "    langfuse:",
        "      secret_key: os.environ/LANGFUSE_SK",
        "      host: \"https://lf.example\"",
        "      batch_size: 10",
        "        authorization: os.environ/WEBHOOK_AUTHORIZATION",
        "        x-team: a",
        "    jsonl: {}",
        "#   WEBHOOK_AUTHORIZATION  (settings.callback_settings.webhook.headers.authorization)",
        // Anything named like a key is treated as a credential, public or not.
        "      public_key: os.environ/LANGFUSE_PUBLIC_KEY",
    ] {
        assert!(yaml.contains(want), "missing {want:?} in:\n{yaml}");
    }
    assert!(!yaml.contains("inline-hook-secret"));
    assert!(!yaml.contains("sk-lf-from-env"));
    let env2 = |k: &str| match k {
        "WEBHOOK_AUTHORIZATION" => Some("Bearer inline-hook-secret".to_owned()),
        "LANGFUSE_PUBLIC_KEY" => Some("pk-lf-1".to_owned()),
        _ => env(k),
    };
    let again = Config::from_str(&yaml, "yaml", "converted.yaml", &env2)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(again.settings.callbacks, c.settings.callbacks);
    assert_eq!(
        again.settings.callback_settings,
        c.settings.callback_settings
    );
}

#[test]
fn litellm_callback_lists_become_one_list_of_sinks() {
    let c = litellm(
        r#"
model_list: []
litellm_settings:
  success_callback: ["langfuse", "Prometheus", "datadog"]
  failure_callback: ["langfuse", "sentry", "otel"]
  callbacks: ["otel", "custom_callbacks.proxy_handler_instance", "my_hook"]
  service_callbacks: ["datadog"]
  callback_settings:
    datadog: {api_key: x}
    langfuse: {callback_type: s3}
callback_settings:
  my_hook:
    callback_type: generic_api
    endpoint: https://hooks.example/litellm
    headers: {Authorization: "os.environ/HOOK_TOKEN"}
"#,
    );
    // callbacks first, then success_callback, then failure_callback; each name once, as
    // written. (`langfuse` is set up as an s3 callback here: not kept.)
    assert_eq!(c.settings.callbacks, ["otel", "my_hook", "Prometheus"]);
    assert_eq!(
        c.settings.callback_settings["my_hook"]["headers"]["Authorization"],
        "hook-token-from-env"
    );
    assert_eq!(
        c.env_refs["settings.callback_settings.my_hook.headers.Authorization"],
        "os.environ/HOOK_TOKEN"
    );
    assert!(!c.settings.callback_settings.contains_key("datadog"));

    let warned = |key: &str, text: &str| {
        c.warnings
            .iter()
            .any(|w| w.starts_with(&format!("litellm.yaml: {key}: ")) && w.contains(text))
    };
    for (key, text) in [
        (
            "litellm_settings.success_callback[2]",
            "llmux has no sink named 'datadog' (built in: metrics, prometheus, otel,",
        ),
        (
            "litellm_settings.failure_callback[1]",
            "no sink named 'sentry'",
        ),
        (
            "litellm_settings.callbacks[1]",
            "a Python callback object is not supported",
        ),
        (
            "litellm_settings.service_callbacks",
            "LiteLLM service callbacks are not supported",
        ),
        (
            "litellm_settings.callback_settings.datadog",
            "settings of a callback llmux does not run",
        ),
        (
            "litellm_settings.success_callback[0]",
            "llmux has no sink of type 's3'",
        ),
        (
            "litellm_settings.failure_callback[0]",
            "llmux has no sink of type 's3'",
        ),
        (
            "litellm_settings.callback_settings.langfuse",
            "settings of a callback llmux does not run",
        ),
    ] {
        assert!(
            warned(key, text),
            "no warning {key}: {text} in {:#?}",
            c.warnings
        );
    }
    // `otel` is a failure callback too, but `callbacks` already sends it every call; only
    // a name listed for failures alone is reported.
    assert!(!c.warnings.iter().any(|w| w.contains("failure_callback[2]")));
    assert_eq!(c.warnings.len(), 8, "{:#?}", c.warnings);
    assert!(c.warnings.iter().all(|w| w.ends_with("; ignored")));
    assert!(!format!("{c:?}").contains("hook-token-from-env"));
}

#[test]
fn a_failures_only_litellm_callback_is_kept_and_reported() {
    let c = litellm(
        r#"
litellm_settings:
  failure_callback: "langfuse"
"#,
    );
    assert_eq!(c.settings.callbacks, ["langfuse"]);
    assert_eq!(
        c.warnings,
        [
            "litellm.yaml: litellm_settings.failure_callback: failures-only delivery is not \
             supported (llmux sends 'langfuse' every call record); ignored"
        ]
    );
}

#[test]
fn litellm_callback_errors_name_litellm_keys() {
    let msg = Config::from_str(
        r#"
litellm_settings:
  success_callback: {langfuse: true}
  callbacks: ["hook"]
callback_settings:
  hook: {callback_type: generic_api, endpoint: os.environ/NOT_SET}
"#,
        "yaml",
        "l.yaml",
        &env,
    )
    .unwrap_err()
    .to_string();
    for want in [
        "l.yaml: litellm_settings.success_callback: must be a list of callback names, not a map",
        "l.yaml: callback_settings.hook.endpoint: environment variable NOT_SET is not set",
    ] {
        assert!(msg.contains(want), "missing {want:?} in:\n{msg}");
    }
    let msg = Config::from_str(
        "litellm_settings:\n  callback_settings: [a]\n",
        "yaml",
        "l.yaml",
        &env,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        msg,
        "l.yaml: litellm_settings.callback_settings: must be a map of callback names to their settings"
    );
}

#[test]
fn litellm_settings_callback_settings_win_over_top_level_ones_per_name() {
    let c = litellm(
        r#"
litellm_settings:
  callbacks: ["otel", "jsonl"]
  callback_settings:
    otel: {service_name: from-litellm-settings}
callback_settings:
  otel: {service_name: top-level}
  jsonl: {path: /tmp/calls.jsonl}
"#,
    );
    assert_eq!(
        c.settings.callback_settings["otel"]["service_name"],
        "from-litellm-settings"
    );
    assert_eq!(
        c.settings.callback_settings["jsonl"]["path"],
        "/tmp/calls.jsonl"
    );
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
}

#[test]
fn a_converted_litellm_file_keeps_its_callbacks() {
    let c = litellm(
        r#"
litellm_settings:
  success_callback: ["langfuse"]
  callbacks: ["hook"]
callback_settings:
  hook: {callback_type: generic_api, endpoint: "https://hooks.example/x", batch_size: 5}
  langfuse: {environment: staging}
"#,
    );
    let yaml = to_native_yaml(&c);
    for want in [
        "  callbacks: [hook, langfuse]",
        "    hook:",
        "      callback_type: generic_api",
        "      endpoint: \"https://hooks.example/x\"",
        "      batch_size: 5",
        "    langfuse:",
        "      environment: staging",
    ] {
        assert!(yaml.contains(want), "missing {want:?} in:\n{yaml}");
    }
    let again = Config::from_str(&yaml, "yaml", "converted.yaml", &env)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(again.settings.callbacks, c.settings.callbacks);
    assert_eq!(
        again.settings.callback_settings,
        c.settings.callback_settings
    );
}

#[test]
fn builtin_names_are_matched_without_case() {
    assert!(BUILTIN_SINK_NAMES.contains(&"generic_api"));
    assert!(is_builtin_sink("OTel"));
    assert!(is_builtin_sink(" langfuse "));
    assert!(!is_builtin_sink("datadog"));
}
