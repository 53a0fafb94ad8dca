//! What a router is built from, and the checks [`Router::new`](crate::Router::new) makes.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::{Deployment, FallbackMap, ModelGroup, RouterSettings, Wildcard};

/// Everything a [`Router`](crate::Router) is built from.
#[derive(Debug, Clone, Default)]
pub struct RouterConfig {
    /// The model groups, in the order model listings show them.
    pub groups: Vec<ModelGroup>,
    /// Alias → group name.
    pub aliases: BTreeMap<String, String>,
    /// Wildcard routes (`prefix/*`, `*`).
    pub wildcards: Vec<Wildcard>,
    /// Router-wide settings.
    pub settings: RouterSettings,
}

impl RouterConfig {
    /// A config with `settings` and nothing to route yet.
    pub fn new(settings: RouterSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    /// Add a model group served by `deployments`.
    pub fn group(mut self, name: impl Into<String>, deployments: Vec<Deployment>) -> Self {
        self.groups.push(ModelGroup::new(name, deployments));
        self
    }

    /// Add an alias for a group.
    pub fn alias(mut self, alias: impl Into<String>, group: impl Into<String>) -> Self {
        self.aliases.insert(alias.into(), group.into());
        self
    }

    /// Add a wildcard route.
    pub fn wildcard(mut self, wildcard: Wildcard) -> Self {
        self.wildcards.push(wildcard);
        self
    }
}

/// Why a router could not be built. Every message names the groups involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Two groups share a name.
    #[error("model group '{0}' is defined twice")]
    DuplicateGroup(String),
    /// A group without deployments.
    #[error("model group '{0}' has no deployments")]
    EmptyGroup(String),
    /// Two deployments share an id.
    #[error("deployment id '{0}' is used twice")]
    DuplicateDeployment(String),
    /// A wildcard pattern that is neither `*` nor `prefix/*`, or is given twice.
    #[error("wildcard pattern '{0}' must be '*' or '<prefix>/*', and appear once")]
    BadWildcard(String),
    /// An alias that has a group's name.
    #[error("alias '{0}' has the name of a model group")]
    AliasShadowsGroup(String),
    /// An alias to a name nothing serves.
    #[error("alias '{alias}' points to '{target}', which is not a model group")]
    UnknownAliasTarget {
        /// The alias.
        alias: String,
        /// What it points to.
        target: String,
    },
    /// A fallback list naming a group nothing serves.
    #[error("{list}: '{group}' (in the entry for '{entry}') is not a model group")]
    UnknownFallbackGroup {
        /// Which setting (`fallbacks`, `context_window_fallbacks`, …).
        list: &'static str,
        /// The entry's key.
        entry: String,
        /// The unknown name.
        group: String,
    },
    /// Fallbacks that lead back to where they started.
    #[error("{list}: fallback loop {}", .cycle.join(" -> "))]
    FallbackLoop {
        /// Which setting.
        list: &'static str,
        /// The groups of the loop, first repeated at the end.
        cycle: Vec<String>,
    },
    /// A setting out of range.
    #[error("setting '{name}': {reason}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Check `config`; `known` tells whether a name is served (group, alias or wildcard).
/// Returns the fallback maps with aliases replaced by their groups.
pub(crate) fn check(
    config: &RouterConfig,
    known: impl Fn(&str) -> bool,
) -> Result<[FallbackMap; 3], ConfigError> {
    let s = &config.settings;
    if let Some(rate) = s.failure_rate_threshold
        && !(rate > 0.0 && rate <= 1.0)
    {
        return Err(ConfigError::InvalidSetting {
            name: "failure_rate_threshold",
            reason: format!("{rate} is not within (0, 1]"),
        });
    }
    if s.backoff.initial > s.backoff.max {
        return Err(ConfigError::InvalidSetting {
            name: "backoff",
            reason: "'initial' is longer than 'max'".to_owned(),
        });
    }
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    for g in &config.groups {
        if !names.insert(g.name.as_str()) {
            return Err(ConfigError::DuplicateGroup(g.name.clone()));
        }
        if g.deployments.is_empty() {
            return Err(ConfigError::EmptyGroup(g.name.clone()));
        }
        for d in &g.deployments {
            if !ids.insert(d.id.as_str()) {
                return Err(ConfigError::DuplicateDeployment(d.id.clone()));
            }
        }
    }
    let mut patterns = HashSet::new();
    for w in &config.wildcards {
        let ok = w.pattern == "*" || w.pattern.strip_suffix("/*").is_some_and(|p| !p.is_empty());
        if !ok || !patterns.insert(w.pattern.as_str()) {
            return Err(ConfigError::BadWildcard(w.pattern.clone()));
        }
    }
    for (alias, target) in &config.aliases {
        if names.contains(alias.as_str()) {
            return Err(ConfigError::AliasShadowsGroup(alias.clone()));
        }
        if config.aliases.contains_key(target) || !known(target) {
            return Err(ConfigError::UnknownAliasTarget {
                alias: alias.clone(),
                target: target.clone(),
            });
        }
    }
    let canon = |n: &String| config.aliases.get(n).unwrap_or(n).clone();
    let mut out: [FallbackMap; 3] = Default::default();
    let lists = [
        ("fallbacks", &s.fallbacks),
        ("context_window_fallbacks", &s.context_window_fallbacks),
        ("content_policy_fallbacks", &s.content_policy_fallbacks),
    ];
    for (slot, (list, map)) in out.iter_mut().zip(lists) {
        for (entry, targets) in map {
            for name in std::iter::once(entry).chain(targets) {
                if !known(name) {
                    return Err(ConfigError::UnknownFallbackGroup {
                        list,
                        entry: entry.clone(),
                        group: name.clone(),
                    });
                }
            }
            slot.entry(canon(entry))
                .or_default()
                .extend(targets.iter().map(canon));
        }
        if let Some(cycle) = find_cycle(slot) {
            return Err(ConfigError::FallbackLoop { list, cycle });
        }
    }
    for name in &s.default_fallbacks {
        if !known(name) {
            return Err(ConfigError::UnknownFallbackGroup {
                list: "default_fallbacks",
                entry: "*".to_owned(),
                group: name.clone(),
            });
        }
    }
    Ok(out)
}

/// A loop in `graph`, as the path that closes it (`a -> b -> a`).
fn find_cycle(graph: &FallbackMap) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        graph: &'a FallbackMap,
        marks: &mut HashMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> = path[from..].iter().map(|n| (*n).to_owned()).collect();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node, Mark::Open);
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    for start in graph.keys() {
        if let Some(c) = visit(start, graph, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}
