//! Configuration errors. They name the variable or setting at fault, never its value: a
//! value may be a credential.

/// A sink's configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A URL setting is not an absolute `http://` or `https://` URL.
    #[error("{setting} is not an absolute http:// or https:// URL")]
    InvalidUrl {
        /// The variable or setting.
        setting: String,
    },
    /// A header list (`k=v,k2=v2`) has an entry without `=` or with an empty name.
    #[error("{setting}: entry {entry} is not of the form name=value")]
    InvalidHeaderList {
        /// The variable or setting.
        setting: String,
        /// 1-based position of the bad entry.
        entry: usize,
    },
    /// A header name or value cannot be sent over HTTP.
    #[error("header '{name}' has an invalid name or value")]
    InvalidHeader {
        /// The header's name (its value is never shown).
        name: String,
    },
    /// A numeric setting is not a whole number in range.
    #[error("{setting} must be a positive whole number")]
    InvalidNumber {
        /// The variable or setting.
        setting: String,
    },
    /// One half of a pair of settings is set without the other.
    #[error("{present} is set but {missing} is not")]
    Incomplete {
        /// The setting that is present.
        present: String,
        /// The setting that is missing.
        missing: String,
    },
    /// The OTLP protocol asked for is none of `http/json`, `http/protobuf`, `grpc`.
    #[error("{setting}={value}: llmux exports OTLP as http/json, http/protobuf or grpc")]
    UnsupportedProtocol {
        /// The variable.
        setting: String,
        /// The protocol asked for.
        value: String,
    },
    /// A batching sink was created outside a tokio runtime.
    #[error("exporting sinks must be created inside a tokio runtime")]
    NoRuntime,
    /// A sink name that no linked [`SinkFactory`](crate::SinkFactory) answers to.
    #[error("unknown sink '{name}' (known: {known})")]
    UnknownSink {
        /// The name as written.
        name: String,
        /// Every name and alias the binary knows, for the message.
        known: String,
    },
    /// A sink setting has the wrong type or an unusable value.
    #[error("{setting} {message}")]
    InvalidSetting {
        /// The setting (`callback_settings.jsonl.path`) or variable.
        setting: String,
        /// What is wrong (never the value).
        message: String,
    },
    /// A file a sink writes to cannot be opened.
    #[error("{setting}: cannot open {path}: {reason}")]
    File {
        /// The setting or variable that named the file.
        setting: String,
        /// The file.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
}
