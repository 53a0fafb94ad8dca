//! `POST /v1/rerank` (also `/rerank`, and `/v2/rerank`, Cohere's own path): rank documents
//! against a query, in Cohere's request/response shape (what LiteLLM's `/rerank` speaks
//! too).
//!
//! The call takes the shared accounting path: authentication, attribution and tags, access
//! (limits and budgets), routing (model groups, retries, fallbacks, cooldowns) and one
//! `CallRecord` with operation `rerank`. The record's `prompt_tokens` are the tokens the
//! upstream reported, else an estimate (query and documents at four characters a token,
//! `usage_estimated`). The cost is computed only when the upstream reported tokens and the
//! deployment's price sets a non-zero per-token input price; a call billed in search units
//! (Cohere) is recorded unpriced, because the price table carries no per-search price.
//!
//! Must not: know any provider's rerank format (providers translate to and from the
//! canonical [`RerankRequest`]).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use llmux_core::{Error, RerankRequest, RerankResponse, Usage};
use llmux_cost::Money;
use llmux_router::Trace;
use tracing::Instrument;

use crate::call::{Failed, begin, end, record_failure, route_failure};
use crate::handlers::{
    AppState, Shared, admit, authenticate, context, error_response, json_response, parse,
    route_headers,
};
use crate::metering::{Outcome, estimate_tokens, price};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/rerank", post(rerank))
        .route("/rerank", post(rerank))
        .route("/v2/rerank", post(rerank))
}

/// The request's size at four characters a token (the query counted once per document,
/// as a reranker reads it).
fn estimated_tokens(req: &RerankRequest) -> u64 {
    let query = req.query.len() as u64;
    req.documents
        .iter()
        .map(|d| estimate_tokens(query + d.text().len() as u64))
        .sum()
}

/// The call's cost: priced per token only when tokens were reported and the price has a
/// non-zero input rate; `None` (unpriced) otherwise.
fn rerank_cost(st: &AppState, trace: &Trace, reported: Option<u64>) -> Option<Money> {
    let tokens = reported?;
    let provider = trace.provider?;
    let model = trace.provider_model.as_deref()?;
    let p = st
        .models
        .price(trace.deployment_id.as_deref(), provider, model)?;
    if p.rates.input_per_token.is_none_or(|r| r.pico_usd() == 0) {
        return None;
    }
    price(&st.models, Some(trace), Some(&Usage::new(tokens, 0)), true)
}

fn check(req: &RerankRequest) -> Result<(), Error> {
    if req.query.trim().is_empty() {
        return Err(Error::bad_request("'query' must not be empty").with_param("query"));
    }
    if req.documents.is_empty() {
        return Err(Error::bad_request("'documents' must not be empty").with_param("documents"));
    }
    if req.top_n == Some(0) {
        return Err(Error::bad_request("'top_n' must be at least 1").with_param("top_n"));
    }
    Ok(())
}

async fn rerank(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (st, id, mut meta) = begin(&shared, &headers, "rerank");
    let span = tracing::info_span!("call", request_id = %meta.request_id);
    let resp = async {
        let principal = authenticate(&st, &headers).await.map_err(|e| (e, None))?;
        let mut req: RerankRequest = parse(body).map_err(|e| (e, None))?;
        meta.model_group.clone_from(&req.model);
        meta.tags = crate::metering::tags(
            &req.extra,
            None,
            headers.get("x-llmux-tags").and_then(|v| v.to_str().ok()),
        )
        .map_err(|e| (e, None))?;
        check(&req).map_err(|e| (e, None))?;
        if let Some(group) = admit(&st, &principal, &req.model, &mut meta)
            .await
            .map_err(|e| (e, None))?
        {
            req.model = group;
        }
        let estimate = estimated_tokens(&req);
        let routed = st
            .models
            .router
            .rerank(req, &context(&id))
            .await
            .map_err(route_failure)?;
        let trace = routed.trace.snapshot();
        let out: RerankResponse = routed.value;
        let reported = out.reported_tokens();
        let usage = Usage::new(reported.unwrap_or(estimate), 0);
        let cost = meta.finish(
            &st.models,
            &st.meter,
            Outcome {
                trace: Some(&trace),
                usage: Some(&usage),
                usage_estimated: reported.is_none(),
                status: 200,
                cost: Some(rerank_cost(&st, &trace, reported)),
                ..Outcome::default()
            },
        );
        let mut resp = json_response(&out).map_err(|e| (e, Some(trace.clone())))?;
        resp.headers_mut()
            .extend(route_headers(&st, &meta, &trace, None, cost));
        Ok::<_, Failed>(resp)
    }
    .instrument(span)
    .await;
    let resp = resp.unwrap_or_else(|(e, trace)| {
        record_failure(&st, &meta, &e, trace.as_ref(), false);
        error_response(e, trace.as_ref())
    });
    end(&mut meta, resp, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_and_estimated() {
        let ok = RerankRequest::new("m", "abcd", ["abcdefgh", "abcd"]);
        assert!(check(&ok).is_ok());
        // (4 + 8) / 4 + (4 + 4) / 4
        assert_eq!(estimated_tokens(&ok), 5);
        let mut empty = RerankRequest::new("m", "q", Vec::<String>::new());
        assert_eq!(check(&empty).unwrap_err().param(), Some("documents"));
        empty.query = " ".into();
        assert_eq!(check(&empty).unwrap_err().param(), Some("query"));
        let mut zero = RerankRequest::new("m", "q", ["d"]);
        zero.top_n = Some(0);
        assert_eq!(check(&zero).unwrap_err().param(), Some("top_n"));
    }
}
