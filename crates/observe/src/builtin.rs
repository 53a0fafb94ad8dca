//! The built-in sink factories: `metrics`, `otel`, `langfuse`, `webhook` and `jsonl`.
//!
//! They sit in a static list rather than in `inventory`, so they are present in every
//! binary that links this crate, whatever the linker keeps.
//!
//! Each reads its `callback_settings` first and the environment second. Where a URL and
//! credentials travel together (an OTLP endpoint and its headers, a webhook URL and its
//! headers), both come from the same place, so credentials meant for one receiver are
//! never sent to another.

use std::sync::Arc;

use llmux_core::Secret;

use crate::registry::{BuiltSink, SinkContext, SinkFactory};
use crate::{
    ConfigError, JsonlConfig, JsonlSink, LangfuseConfig, LangfuseSink, MetricsSink, OtlpConfig,
    OtlpProtocol, OtlpSink, WebhookConfig, WebhookSink, env,
};

/// Every built-in factory.
pub(crate) static FACTORIES: [SinkFactory; 5] = [
    SinkFactory {
        name: "metrics",
        aliases: &["prometheus"],
        description: "Prometheus metrics per call (served on GET /metrics)",
        settings: &[],
        build: metrics,
    },
    SinkFactory {
        name: "otel",
        aliases: &["opentelemetry", "otlp"],
        description: "one OpenTelemetry span per call over OTLP: HTTP JSON or protobuf, or gRPC (GenAI conventions)",
        settings: &[
            "endpoint",
            "protocol",
            "headers",
            "service_name",
            "batch_size",
            "flush_interval_ms",
            "queue_size",
            "timeout_ms",
        ],
        build: otel,
    },
    SinkFactory {
        name: "langfuse",
        aliases: &[],
        description: "a Langfuse trace and generation per call (public ingestion API)",
        settings: &[
            "host",
            "public_key",
            "secret_key",
            "environment",
            "batch_size",
            "flush_interval_ms",
            "queue_size",
            "timeout_ms",
        ],
        build: langfuse,
    },
    SinkFactory {
        name: "webhook",
        aliases: &["generic_api", "generic"],
        description: "batches of call records POSTed as a JSON array to a URL",
        settings: &[
            "url",
            "endpoint",
            "headers",
            "batch_size",
            "flush_interval_ms",
            "queue_size",
            "timeout_ms",
        ],
        build: webhook,
    },
    SinkFactory {
        name: "jsonl",
        aliases: &[],
        description: "one JSON line per call record, appended to a file",
        settings: &[
            "path",
            "batch_size",
            "flush_interval_ms",
            "queue_size",
            "timeout_ms",
        ],
        build: jsonl,
    },
];

fn metrics(_: &SinkContext<'_>) -> BuiltSink {
    Ok(Some(Arc::new(MetricsSink::new())))
}

/// `endpoint` (the full traces URL, or the collector's URL for gRPC), `protocol`
/// (`http/json` unless given) and `headers` from the settings (with `OTEL_SERVICE_NAME`),
/// or else the standard `OTEL_*` variables ([`OtlpConfig::from_env_with`]);
/// `service_name`, `headers` and batching settings apply over either, `protocol` too.
fn otel(cx: &SinkContext<'_>) -> BuiltSink {
    let mut config = match cx.string("endpoint")? {
        Some(endpoint) => {
            env::check_url(&endpoint, &cx.setting_name("endpoint"))?;
            let mut c = OtlpConfig::new(endpoint);
            if let Some(name) = cx.env("OTEL_SERVICE_NAME") {
                c.service_name = name;
            }
            c
        }
        None => match OtlpConfig::from_env_with(cx.env_lookup())? {
            Some(c) => c,
            None => return Ok(None),
        },
    };
    for (name, value) in cx.headers("headers")? {
        config.headers.retain(|(n, _)| *n != name);
        config.headers.push((name, value));
    }
    if let Some(p) = cx.string("protocol")? {
        config.protocol = OtlpProtocol::parse(&p).ok_or_else(|| ConfigError::InvalidSetting {
            setting: cx.setting_name("protocol"),
            message: "must be http/json, http/protobuf or grpc".into(),
        })?;
    }
    if let Some(s) = cx.string("service_name")? {
        config.service_name = s;
    }
    config.batch = cx.batch(config.batch)?;
    let sink = Arc::new(OtlpSink::new(config)?);
    cx.flush_at_shutdown(sink.clone());
    Ok(Some(sink))
}

/// A value from the settings (`key`) or else the environment (`var`), with how to name it.
fn setting_or_env(
    cx: &SinkContext<'_>,
    key: &str,
    var: &str,
) -> Result<Option<(String, String)>, ConfigError> {
    Ok(match cx.string(key)? {
        Some(v) => Some((v, cx.setting_name(key))),
        None => cx.env(var).map(|v| (v, var.to_owned())),
    })
}

/// `public_key`, `secret_key`, `host` and `environment`, each from the settings or else
/// `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY`, `LANGFUSE_HOST`,
/// `LANGFUSE_TRACING_ENVIRONMENT`. No key anywhere: not configured.
fn langfuse(cx: &SinkContext<'_>) -> BuiltSink {
    let public = setting_or_env(cx, "public_key", "LANGFUSE_PUBLIC_KEY")?;
    let secret = setting_or_env(cx, "secret_key", "LANGFUSE_SECRET_KEY")?;
    let either = |key: &str, var: &str| format!("{} (or {var})", cx.setting_name(key));
    let (public, secret) = match (public, secret) {
        (None, None) => return Ok(None),
        (Some((p, _)), Some((s, _))) => (p, s),
        (Some((_, at)), None) => {
            return Err(ConfigError::Incomplete {
                present: at,
                missing: either("secret_key", "LANGFUSE_SECRET_KEY"),
            });
        }
        (None, Some((_, at))) => {
            return Err(ConfigError::Incomplete {
                present: at,
                missing: either("public_key", "LANGFUSE_PUBLIC_KEY"),
            });
        }
    };
    let host = match setting_or_env(cx, "host", "LANGFUSE_HOST")? {
        Some((host, at)) => {
            env::check_url(&host, &at)?;
            host
        }
        None => crate::langfuse::DEFAULT_HOST.to_owned(),
    };
    let mut config = LangfuseConfig::new(host, public, Secret::new(secret));
    config.environment =
        setting_or_env(cx, "environment", "LANGFUSE_TRACING_ENVIRONMENT")?.map(|(v, _)| v);
    config.batch = cx.batch(config.batch)?;
    let sink = Arc::new(LangfuseSink::new(config)?);
    cx.flush_at_shutdown(sink.clone());
    Ok(Some(sink))
}

/// `url` (or LiteLLM's `endpoint`) and `headers` from the settings, or else
/// `GENERIC_LOGGER_ENDPOINT` and `GENERIC_LOGGER_HEADERS` (`name=value,…`, LiteLLM's).
fn webhook(cx: &SinkContext<'_>) -> BuiltSink {
    let from_settings = match cx.string("url")? {
        Some(u) => Some((u, cx.setting_name("url"))),
        None => cx
            .string("endpoint")?
            .map(|u| (u, cx.setting_name("endpoint"))),
    };
    let (url, at, mut headers) = match from_settings {
        Some((url, at)) => (url, at, Vec::new()),
        None => match cx.env("GENERIC_LOGGER_ENDPOINT") {
            Some(url) => {
                let headers = match cx.env("GENERIC_LOGGER_HEADERS") {
                    Some(list) => env::header_list(&list, "GENERIC_LOGGER_HEADERS")?,
                    None => Vec::new(),
                };
                (url, "GENERIC_LOGGER_ENDPOINT".to_owned(), headers)
            }
            None => return Ok(None),
        },
    };
    env::check_url(&url, &at)?;
    for (name, value) in cx.headers("headers")? {
        headers.retain(|(n, _)| *n != name);
        headers.push((name, value));
    }
    let mut config = WebhookConfig::new(Secret::new(url));
    config.name = cx.name().to_owned();
    config.headers = headers;
    config.batch = cx.batch(config.batch)?;
    let sink = Arc::new(WebhookSink::new(config)?);
    cx.flush_at_shutdown(sink.clone());
    Ok(Some(sink))
}

/// `path` from the settings, or else `LLMUX_JSONL_PATH`.
fn jsonl(cx: &SinkContext<'_>) -> BuiltSink {
    let (path, at) = match setting_or_env(cx, "path", crate::jsonl::PATH_VAR)? {
        Some(p) => p,
        None => return Ok(None),
    };
    let mut config = JsonlConfig::new(path);
    config.name = cx.name().to_owned();
    config.batch = cx.batch(config.batch)?;
    let sink = JsonlSink::new(config).map_err(|e| match e {
        ConfigError::File { path, reason, .. } => ConfigError::File {
            setting: at,
            path,
            reason,
        },
        other => other,
    })?;
    let sink = Arc::new(sink);
    cx.flush_at_shutdown(sink.clone());
    Ok(Some(sink))
}
