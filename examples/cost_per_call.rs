//! Cost per call, two ways: on each answer (`Metered::cost`), and as `CallRecord`s handed
//! to a sink of your own — the same records the gateway emits (spend logs, Langfuse, OTel).
//!
//! `cargo run -p llmux --example cost_per_call`

use std::sync::{Arc, Mutex};

use llmux::{CallRecord, CallSink, ChatRequest, Client, Config, Money};

/// Keeps every record (a real sink would write them somewhere).
#[derive(Debug, Default)]
struct Ledger(Mutex<Vec<Arc<CallRecord>>>);

#[async_trait::async_trait]
impl CallSink for Ledger {
    fn name(&self) -> &str {
        "ledger"
    }

    async fn record(&self, record: Arc<CallRecord>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/llmux.yaml");
    let ledger = Arc::new(Ledger::default());
    let client = Client::builder()
        .config(Config::load(path.as_ref())?)
        .sink(ledger.clone())
        .build()?;

    for question in [
        "What is a token?",
        "And what does one cost at GPT-4o prices?",
    ] {
        let answer = client
            .chat_with_meta(ChatRequest::new("smart").user(question).tag("example"))
            .await?;
        let usage = answer.usage.clone().unwrap_or_default();
        println!(
            "{:>3} + {:>3} tokens: {}",
            usage.prompt_tokens,
            usage.completion_tokens,
            answer
                .cost
                .map_or("unpriced".to_owned(), |c| format!("${c}"))
        );
    }

    // Records reach sinks off the call path; shutting down waits for them.
    client.shutdown().await;
    let records = ledger.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let total: i64 = records.iter().filter_map(|r| r.cost_nano_usd).sum();
    println!(
        "{} records, {} tagged 'example', total ${}",
        records.len(),
        records
            .iter()
            .filter(|r| r.tags.iter().any(|t| t == "example"))
            .count(),
        Money::from_nano_usd(total)
    );
    Ok(())
}
