//! A custom gateway binary in a few lines: config from a file (or none), one extra model
//! added in code, served until SIGTERM.
//!
//! `cargo run -p llmux --example custom_gateway -- path/to/llmux.yaml`

use llmux::config::Config;
use llmux::core::DeploymentSettings;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = match std::env::args().nth(1) {
        Some(path) => Config::load(path.as_ref())?,
        None => Config::default(),
    };
    let gateway = llmux::gateway()
        .config(config)
        .model("demo", DeploymentSettings::new("mock", "echo"))
        .build()?;
    gateway.serve_until_signal().await?;
    Ok(())
}
