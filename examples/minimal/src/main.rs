//! The minimal mode: `llmux-core` and one provider crate (here the mock; swap in
//! `llmux-provider-anthropic` or any other the same way). No router, no metering, no
//! config file, no server — the canonical types and one `Provider`, on your own runtime.
//!
//! `cargo run -p llmux-example-minimal`

use llmux_core::{CallContext, ChatRequest, DeploymentSettings, StreamAccumulator};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), llmux_core::Error> {
    // A provider crate registers a factory; linking it and looking it up by name builds a
    // provider from settings, as the router does. (`llmux_provider_mock::Mock::new` builds
    // one directly.)
    llmux_provider_mock::link();
    let factory = llmux_core::find_provider("mock")
        .ok_or_else(|| llmux_core::Error::internal("the mock provider is not linked"))?;
    let mut settings = DeploymentSettings::new("mock", "echo");
    settings.timeout = Some(std::time::Duration::from_secs(30));
    let provider = (factory.build)(&settings)?;

    let cx = CallContext::default();
    let answer = provider
        .chat(
            ChatRequest::new("echo").user("hello from the minimal mode"),
            &cx,
        )
        .await?;
    println!("chat:   {}", answer.text().unwrap_or_default());

    let stream = provider
        .chat_stream(
            ChatRequest::new("echo")
                .user("streamed, then collected")
                .streaming(),
            &cx,
        )
        .await?;
    let whole = StreamAccumulator::collect(stream).await?;
    println!("stream: {}", whole.text().unwrap_or_default());
    assert_eq!(whole.text(), Some("streamed, then collected"));
    Ok(())
}
