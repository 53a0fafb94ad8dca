//! `custom-gateway [CONFIG]`: the stock llmux gateway plus `GET /hello`, an `x-served-by`
//! header and the `reverse` provider. Serves on the config's host and port (default
//! 0.0.0.0:4000) until SIGTERM or Ctrl-C.

use llmux::Config;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = match std::env::args().nth(1) {
        Some(path) => Config::load(path.as_ref())?,
        None => Config::default(),
    };
    let gateway = llmux_example_gateway::builder(config).build()?;
    let app = llmux_example_gateway::app(&gateway);
    let server = gateway.server_config();
    let listener = tokio::net::TcpListener::bind((server.host.as_str(), server.port)).await?;
    println!("custom gateway listening on {}", listener.local_addr()?);
    gateway
        .serve_app(app, listener, llmux::server::shutdown_signal())
        .await?;
    Ok(())
}
