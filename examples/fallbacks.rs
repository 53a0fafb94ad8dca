//! Fallbacks and typed errors: a group that is always rate limited falls back to another;
//! a group without fallbacks surfaces `ClientError::RateLimited { retry_after }`.
//!
//! `cargo run -p llmux --example fallbacks`

use llmux::{ChatRequest, Client, ClientError, DeploymentSettings, RouterSettings};

fn rate_limited(model: &str) -> DeploymentSettings {
    let mut d = DeploymentSettings::new("mock", model);
    d.params
        .insert("mock_response".into(), "litellm.RateLimitError".into());
    d
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::builder()
        .model_group("primary", [rate_limited("primary")])
        .model_group("backup", [DeploymentSettings::new("mock", "backup")])
        .model_group("lonely", [rate_limited("lonely")])
        .fallbacks("primary", ["backup"])
        .router_settings(RouterSettings {
            num_retries: 1,
            // Deterministic choices (the same seed gives the gateway the same choices).
            seed: Some(7),
            ..RouterSettings::default()
        })
        .build()?;

    let answer = client
        .chat_with_meta(ChatRequest::new("primary").user("who answers?"))
        .await?;
    let hops: Vec<String> = answer
        .trace
        .fallbacks
        .iter()
        .map(|h| format!("{} -> {}", h.from, h.to))
        .collect();
    println!(
        "answered by {:?} after {} attempts, fallbacks: {hops:?}",
        answer.trace.deployment_id, answer.trace.attempts
    );
    assert_eq!(answer.trace.final_model_group.as_deref(), Some("backup"));

    match client
        .chat(ChatRequest::new("lonely").user("anyone?"))
        .await
    {
        Err(ClientError::RateLimited { retry_after, .. }) => {
            println!("rate limited; the upstream asks to wait {retry_after:?}");
        }
        Err(other) => println!("failed otherwise: {other}"),
        Ok(_) => println!("unexpected answer"),
    }
    match client
        .chat(ChatRequest::new("no-such-model").user("hi"))
        .await
    {
        Err(e @ ClientError::ModelNotFound { .. }) => println!("{e}"),
        other => println!("unexpected: {other:?}"),
    }

    client.shutdown().await;
    Ok(())
}
