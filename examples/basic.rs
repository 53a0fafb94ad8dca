//! The SDK in a few lines: load the gateway's config file, ask, print the answer and what
//! the call did.
//!
//! `cargo run -p llmux --example basic`

use llmux::{ChatRequest, Client};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/llmux.yaml");
    let client = Client::from_config(path)?;

    let request = ChatRequest::new("fast")
        .system("You are terse.")
        .user("Say hello to the SDK.")
        .temperature(0.0)
        .max_tokens(50);
    let answer = client.chat_with_meta(request).await?;

    println!("answer:     {}", answer.text().unwrap_or_default());
    println!(
        "deployment: {}",
        answer.trace.deployment_id.as_deref().unwrap_or("?")
    );
    println!("attempts:   {}", answer.trace.attempts);
    println!("request id: {}", answer.request_id);
    assert_eq!(answer.text(), Some("Say hello to the SDK."));

    client.shutdown().await;
    Ok(())
}
