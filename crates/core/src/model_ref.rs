//! `provider/model` strings.

use std::fmt;

/// A parsed `provider/model` reference. The provider is everything before the first `/`;
/// the model is the rest and may itself contain `/`
/// (`openrouter/meta-llama/llama-3-70b-instruct` → `openrouter` + `meta-llama/llama-3-70b-instruct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelRef<'a> {
    /// Provider prefix, e.g. `openai`.
    pub provider: &'a str,
    /// The provider's own model id.
    pub model: &'a str,
}

impl<'a> ModelRef<'a> {
    /// Parse `provider/model`; `None` when there is no `/`, or either side is empty.
    pub fn parse(s: &'a str) -> Option<Self> {
        let (provider, model) = s.split_once('/')?;
        if provider.is_empty() || model.is_empty() {
            return None;
        }
        Some(Self { provider, model })
    }

    /// True for `provider/*`, the wildcard form used in model lists.
    pub fn is_wildcard(&self) -> bool {
        self.model == "*"
    }
}

impl fmt::Display for ModelRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::ModelRef;

    #[test]
    fn parses_provider_and_model() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("openai/gpt-4o", Some(("openai", "gpt-4o"))),
            (
                "openrouter/meta-llama/llama-3-70b-instruct",
                Some(("openrouter", "meta-llama/llama-3-70b-instruct")),
            ),
            ("mock/*", Some(("mock", "*"))),
            ("gpt-4o", None),
            ("/gpt-4o", None),
            ("openai/", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = ModelRef::parse(input).map(|r| (r.provider, r.model));
            assert_eq!(got, *want, "{input}");
        }
    }

    #[test]
    fn displays_round_trip() {
        let s = "openrouter/meta-llama/llama-3-70b-instruct";
        assert_eq!(ModelRef::parse(s).unwrap().to_string(), s);
        assert!(ModelRef::parse("mock/*").unwrap().is_wildcard());
    }
}
