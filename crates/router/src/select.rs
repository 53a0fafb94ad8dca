//! Picking a deployment: the filters every strategy shares (tags, prompt size, cooldown,
//! rpm/tpm), `order` priority, then the strategy.

use std::time::Duration;

use llmux_core::{
    ChatRequest, EmbeddingInput, EmbeddingRequest, Error, ErrorKind, JsonObject, Message,
    RerankRequest,
};
use tokio::time::Instant;

use crate::router::Group;
use crate::state::{Rng, Snapshot};
use crate::{Deployment, Strategy};

/// The facts about a request that selection needs, computed once per call.
#[derive(Debug, Clone, Default)]
pub(crate) struct Want {
    /// Estimated prompt tokens.
    pub(crate) prompt_tokens: u64,
    /// Output tokens to assume for cost (the request's limit, else the router's guess).
    pub(crate) output_tokens: Option<u64>,
    /// Tags every chosen deployment must carry.
    pub(crate) tags: Vec<String>,
    /// A streamed call (latency-based routing then uses time to first chunk).
    pub(crate) stream: bool,
    /// What must fit a deployment's `max_input_tokens` when it is not the whole prompt
    /// (a reranker reads each document with the query on its own); `None` = the prompt.
    pub(crate) window_tokens: Option<u64>,
}

impl Want {
    /// The facts of a chat request; removes a top-level `tags` field (a routing
    /// directive, not a parameter for the upstream).
    pub(crate) fn chat(req: &mut ChatRequest) -> Self {
        let mut tags = take_tags(&mut req.extra);
        if let Some(meta) = &req.metadata {
            merge_tags(&mut tags, meta);
        }
        Self {
            prompt_tokens: estimate_prompt_tokens(&req.messages),
            output_tokens: req.max_completion_tokens.or(req.max_tokens).map(u64::from),
            tags,
            stream: req.is_stream(),
            window_tokens: None,
        }
    }

    /// The facts of an embeddings request; removes a top-level `tags` field.
    pub(crate) fn embed(req: &mut EmbeddingRequest) -> Self {
        let prompt_tokens = match &req.input {
            EmbeddingInput::Text(s) => estimate_tokens(s),
            EmbeddingInput::Texts(v) => v.iter().map(|s| estimate_tokens(s)).sum(),
            EmbeddingInput::Tokens(t) => t.len() as u64,
            EmbeddingInput::TokenArrays(v) => v.iter().map(|t| t.len() as u64).sum(),
        };
        Self {
            prompt_tokens,
            output_tokens: Some(0),
            tags: take_tags(&mut req.extra),
            stream: false,
            window_tokens: None,
        }
    }

    /// The facts of a rerank request; removes a top-level `tags` field. A reranker reads
    /// the query with each document, so the prompt is the sum of those pairs and the
    /// context window must fit the largest pair.
    pub(crate) fn rerank(req: &mut RerankRequest) -> Self {
        let query = estimate_tokens(&req.query);
        let pairs: Vec<u64> = req
            .documents
            .iter()
            .map(|d| query + estimate_tokens(&d.text()))
            .collect();
        Self {
            prompt_tokens: pairs.iter().sum(),
            output_tokens: Some(0),
            tags: take_tags(&mut req.extra),
            stream: false,
            window_tokens: Some(pairs.iter().copied().max().unwrap_or(query)),
        }
    }

    /// The tokens checked against a deployment's context window.
    fn window(&self) -> u64 {
        self.window_tokens.unwrap_or(self.prompt_tokens)
    }
}

fn take_tags(extra: &mut JsonObject) -> Vec<String> {
    let mut tags = Vec::new();
    merge_tags(&mut tags, extra);
    extra.remove("tags");
    tags
}

/// Add the strings of `obj["tags"]` (when it is an array) to `tags`, without repeats.
fn merge_tags(tags: &mut Vec<String>, obj: &JsonObject) {
    let Some(list) = obj.get("tags").and_then(|v| v.as_array()) else {
        return;
    };
    for t in list.iter().filter_map(|t| t.as_str()) {
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_owned());
        }
    }
}

/// A fast token estimate: one token per four characters (rounded up).
pub(crate) fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// The estimated prompt size of `messages`: their text at four characters a token.
pub(crate) fn estimate_prompt_tokens(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| match &m.content {
            Some(c) => estimate_tokens(&c.joined_text()),
            None => 0,
        })
        .sum()
}

/// Why no deployment could be picked.
#[derive(Debug, Default)]
pub(crate) struct Unavailable {
    /// No deployment carries the requested tags.
    pub(crate) tags_unmatched: bool,
    /// Deployments whose `max_input_tokens` is below the prompt, and the largest limit.
    pub(crate) too_small: u32,
    pub(crate) largest_window: u64,
    /// Deployments cooling down.
    pub(crate) cooling: u32,
    /// Deployments at their rpm or tpm limit.
    pub(crate) at_limit: u32,
    /// When the first of the cooling or limited deployments is back.
    pub(crate) back_at: Option<Instant>,
    /// Deployments left out because this call already tried them.
    pub(crate) excluded: u32,
}

impl Unavailable {
    fn back_at(&mut self, at: Instant) {
        self.back_at = Some(self.back_at.map_or(at, |b| b.min(at)));
    }

    /// The error a caller sees when a group has nothing to offer.
    pub(crate) fn to_error(&self, group: &str, want: &Want, now: Instant) -> Error {
        if self.tags_unmatched {
            return Error::bad_request(format!(
                "No deployment of model '{group}' carries the tags {:?}.",
                want.tags
            ))
            .with_code("no_deployment_for_tags");
        }
        if self.cooling == 0 && self.at_limit == 0 && self.too_small > 0 {
            return Error::new(
                ErrorKind::ContextWindowExceeded,
                format!(
                    "The prompt (about {} tokens) does not fit any deployment of model '{group}' (largest accepts {} tokens).",
                    want.window(), self.largest_window
                ),
            )
            .with_param("messages");
        }
        let wait = self
            .back_at
            .map_or(Duration::ZERO, |b| b.saturating_duration_since(now));
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut e = Error::new(
            ErrorKind::RateLimited,
            format!(
                "No deployment of model '{group}' is available right now ({} cooling down, {} at their rate limit); retry after {secs}s.",
                self.cooling, self.at_limit
            ),
        )
        .with_code("no_healthy_deployment");
        if self.back_at.is_some() {
            e = e.with_retry_after(wait);
        }
        e
    }
}

struct Candidate {
    idx: usize,
    snap: Snapshot,
}

/// Pick a deployment of `group` for `want`, skipping `exclude`.
pub(crate) fn select(
    group: &Group,
    want: &Want,
    exclude: &[usize],
    strategy: Strategy,
    cost_output_tokens: u64,
    rng: &Rng,
    now: Instant,
) -> Result<usize, Unavailable> {
    let mut why = Unavailable::default();
    let deployments = &group.deployments;
    let carries = |d: &Deployment, tags: &[String]| tags.iter().all(|t| d.tags.contains(t));
    // Tags route only within groups that use them: in a group where no deployment carries
    // a tag, request tags are attribution only (spend reports) and filter nothing.
    let routes_by_tag = deployments.iter().any(|d| !d.tags.is_empty());
    let no_tags: &[String] = &[];
    let wanted = if routes_by_tag {
        &want.tags[..]
    } else {
        no_tags
    };
    let mut tagged: Vec<usize> = (0..deployments.len())
        .filter(|i| carries(&deployments[*i], wanted))
        .collect();
    if tagged.is_empty() && !wanted.is_empty() {
        let default = ["default".to_owned()];
        tagged = (0..deployments.len())
            .filter(|i| carries(&deployments[*i], &default))
            .collect();
    }
    if tagged.is_empty() {
        why.tags_unmatched = true;
        return Err(why);
    }
    let mut cands: Vec<Candidate> = Vec::with_capacity(tagged.len());
    for idx in tagged {
        if exclude.contains(&idx) {
            why.excluded += 1;
            continue;
        }
        let d = &deployments[idx];
        if let Some(max) = d.max_input_tokens
            && want.window() > max
        {
            why.too_small += 1;
            why.largest_window = why.largest_window.max(max);
            continue;
        }
        let state = &group.states[idx];
        let snap = state.snapshot(now);
        if let Some(until) = snap.cooldown_until {
            why.cooling += 1;
            why.back_at(until);
            continue;
        }
        let t = snap.totals;
        let over_rpm = d.rpm.is_some_and(|rpm| t.requests >= rpm);
        let over_tpm = d
            .tpm
            .is_some_and(|tpm| t.tokens > 0 && t.tokens + want.prompt_tokens > tpm);
        if over_rpm || over_tpm {
            why.at_limit += 1;
            let sec = t.oldest_use.unwrap_or(state.sec(now)) + 60;
            why.back_at(state.instant_of(sec));
            continue;
        }
        cands.push(Candidate { idx, snap });
    }
    let Some(first) = cands.iter().map(|c| deployments[c.idx].order).min() else {
        return Err(why);
    };
    cands.retain(|c| deployments[c.idx].order == first);
    let pick = match strategy {
        Strategy::SimpleShuffle => shuffle(deployments, &cands, rng),
        Strategy::LeastBusy => lowest(&cands, rng, |c| u128::from(c.snap.in_flight)),
        Strategy::LatencyBased => lowest(&cands, rng, |c| {
            let s = &c.snap;
            let avg = if want.stream {
                s.ttft.or(s.latency)
            } else {
                s.latency.or(s.ttft)
            };
            // Microseconds; no sample yet sorts first so every deployment gets measured.
            (avg.unwrap_or(0.0) * 1e6) as u128
        }),
        Strategy::UsageBased => lowest(&cands, rng, |c| {
            (u128::from(c.snap.totals.tokens) << 64) | u128::from(c.snap.totals.requests)
        }),
        Strategy::CostBased => lowest(&cands, rng, |c| {
            let d = &deployments[c.idx];
            match (d.input_cost_per_token_pico, d.output_cost_per_token_pico) {
                (None, None) => u128::MAX,
                (i, o) => {
                    let out = want.output_tokens.unwrap_or(cost_output_tokens);
                    u128::from(i.unwrap_or(0)) * u128::from(want.prompt_tokens)
                        + u128::from(o.unwrap_or(0)) * u128::from(out)
                }
            }
        }),
    };
    Ok(pick)
}

/// The candidate with the lowest `key`, ties broken at random.
fn lowest(cands: &[Candidate], rng: &Rng, key: impl Fn(&Candidate) -> u128) -> usize {
    let keys: Vec<u128> = cands.iter().map(&key).collect();
    let min = keys.iter().copied().min().unwrap_or(0);
    let ties: Vec<usize> = cands
        .iter()
        .zip(&keys)
        .filter(|(_, k)| **k == min)
        .map(|(c, _)| c.idx)
        .collect();
    ties[rng.below(ties.len() as u64) as usize]
}

/// Weighted random pick: `weight` if any candidate sets one, else `rpm` if all set it,
/// else `tpm` if all set it, else uniform.
fn shuffle(deployments: &[Deployment], cands: &[Candidate], rng: &Rng) -> usize {
    let ds = || cands.iter().map(|c| &deployments[c.idx]);
    let weights: Vec<u64> = if ds().any(|d| d.weight.is_some()) {
        ds().map(|d| u64::from(d.weight.unwrap_or(1))).collect()
    } else if ds().all(|d| d.rpm.is_some()) {
        ds().map(|d| d.rpm.unwrap_or(0)).collect()
    } else if ds().all(|d| d.tpm.is_some()) {
        ds().map(|d| d.tpm.unwrap_or(0)).collect()
    } else {
        vec![1; cands.len()]
    };
    let total: u64 = weights.iter().fold(0u64, |a, w| a.saturating_add(*w));
    if total == 0 {
        return cands[rng.below(cands.len() as u64) as usize].idx;
    }
    let mut r = rng.below(total);
    for (c, w) in cands.iter().zip(&weights) {
        if r < *w {
            return c.idx;
        }
        r -= w;
    }
    cands[cands.len() - 1].idx
}
