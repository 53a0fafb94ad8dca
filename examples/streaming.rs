//! Streaming: print chunks as they arrive, assemble a whole answer from a stream, and
//! cancel a stream by dropping it.
//!
//! `cargo run -p llmux --example streaming`

use std::io::Write;

use futures_util::StreamExt;
use llmux::{ChatRequest, Client};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // No config at all: `mock/*` is served (and `openai/*` etc. when their keys are set).
    let client = Client::builder().build()?;

    // 1. Chunk by chunk. `mock_chunks` / `mock_chunk_delay_ms` make the mock stream slowly.
    let request = ChatRequest::new("mock/echo")
        .user("streams arrive a piece at a time")
        .param("mock_chunks", 6)
        .param("mock_chunk_delay_ms", 50);
    let mut stream = client.chat_stream(request).await?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        for choice in &chunk.choices {
            print!("{}", choice.delta.content.as_deref().unwrap_or_default());
            std::io::stdout().flush()?;
        }
        if let Some(usage) = &chunk.usage {
            println!(
                "\n({} prompt + {} completion tokens)",
                usage.prompt_tokens, usage.completion_tokens
            );
        }
    }

    // 2. The whole answer at once (tool-call arguments are assembled the same way).
    let whole = client
        .chat_stream(ChatRequest::new("mock/echo").user("collected into one response"))
        .await?
        .collect()
        .await?;
    println!(
        "collected: {:?} via {:?}",
        whole.text(),
        whole.trace.deployment_id
    );

    // 3. Cancel: dropping the stream drops the upstream call (recorded with status 499).
    let mut stream = client
        .chat_stream(
            ChatRequest::new("mock/echo")
                .user("this answer is never read to the end")
                .param("mock_chunk_delay_ms", 1000),
        )
        .await?;
    let first = stream.next().await.transpose()?;
    println!(
        "first chunk of the cancelled stream: {:?}",
        first.map(|c| c.choices.len())
    );
    drop(stream);

    client.shutdown().await;
    Ok(())
}
