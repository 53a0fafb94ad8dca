//! Reading settings from environment variables (through an injected lookup, so tests need
//! no process environment), and building header maps from configured headers.

use std::time::Duration;

use llmux_core::Secret;
use llmux_http::reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::ConfigError;

/// Looks up one variable; `None` when unset.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as a [`Lookup`].
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A variable's value, trimmed; unset and blank are both `None`.
pub(crate) fn var(get: Lookup<'_>, name: &str) -> Option<String> {
    get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A positive whole number.
pub(crate) fn number(get: Lookup<'_>, name: &str) -> Result<Option<u64>, ConfigError> {
    match var(get, name) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| ConfigError::InvalidNumber {
                setting: name.to_owned(),
            }),
    }
}

/// A duration given in milliseconds.
pub(crate) fn millis(get: Lookup<'_>, name: &str) -> Result<Option<Duration>, ConfigError> {
    Ok(number(get, name)?.map(Duration::from_millis))
}

/// Check that `url` is an absolute http(s) URL.
pub(crate) fn check_url(url: &str, setting: &str) -> Result<(), ConfigError> {
    let ok = llmux_http::reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidUrl {
            setting: setting.to_owned(),
        })
    }
}

/// Parse `name=value,name2=value2` (OpenTelemetry's header list: entries separated by
/// commas, values percent-decoded, blanks around names and values ignored).
pub(crate) fn header_list(list: &str, setting: &str) -> Result<Vec<(String, Secret)>, ConfigError> {
    let mut out = Vec::new();
    for (i, entry) in list.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let bad = || ConfigError::InvalidHeaderList {
            setting: setting.to_owned(),
            entry: i + 1,
        };
        let (name, value) = entry.split_once('=').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad());
        }
        let value = percent_decode(value.trim()).ok_or_else(bad)?;
        out.push((name.to_ascii_lowercase(), Secret::new(value)));
    }
    Ok(out)
}

/// Decode `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Headers as a map, values marked sensitive (kept out of reqwest's `Debug`).
pub(crate) fn header_map(headers: &[(String, Secret)]) -> Result<HeaderMap, ConfigError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let invalid = || ConfigError::InvalidHeader { name: name.clone() };
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let mut v = HeaderValue::from_str(value.expose()).map_err(|_| invalid())?;
        v.set_sensitive(true);
        map.insert(n, v);
    }
    Ok(map)
}

/// `url` without any `user:password@` part, for `Debug` output.
pub(crate) fn display_url(url: &str) -> String {
    match llmux_http::reqwest::Url::parse(url) {
        Ok(mut u) => {
            if !u.username().is_empty() || u.password().is_some() {
                let _ = u.set_username("");
                let _ = u.set_password(None);
            }
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "[invalid url]".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_lists() {
        let h = header_list(
            " api-key = abc%3D%3D , X-Tenant=t1,,authorization=Bearer%20tok",
            "V",
        )
        .unwrap();
        let got: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        assert_eq!(
            got,
            vec![
                ("api-key", "abc=="),
                ("x-tenant", "t1"),
                ("authorization", "Bearer tok")
            ]
        );
        assert_eq!(
            header_list("a=1,novalue", "V"),
            Err(ConfigError::InvalidHeaderList {
                setting: "V".into(),
                entry: 2
            })
        );
        assert!(header_list("=x", "V").is_err());
        assert!(header_list("a=%zz", "V").is_err());
    }

    #[test]
    fn urls_are_checked_and_shown_without_credentials() {
        assert!(check_url("http://127.0.0.1:4318/v1/traces", "E").is_ok());
        assert!(check_url("localhost:4318", "E").is_err());
        assert!(check_url("ftp://x/y", "E").is_err());
        assert_eq!(
            display_url("https://user:pw@collector.example/v1/traces?token=t"),
            "https://collector.example/v1/traces"
        );
    }
}
