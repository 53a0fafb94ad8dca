//! The `llmux` command: run the gateway, check a config, manage virtual keys.

/// The allocator of the `llmux` binary with feature `mimalloc` (off by default): 5–15% less
/// CPU per call than glibc's malloc, but 27 MB idle RSS instead of 19 and a higher peak
/// (docs/benchmarks.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use llmux_config::Config;

mod providers_cmd;
mod spend_cmd;

#[derive(Debug, Parser)]
#[command(
    name = "llmux",
    version,
    about = "One OpenAI-compatible API for every LLM provider"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (YAML or TOML). Without one, serves `mock/*` and `PROVIDER/*` for
        /// every provider whose credentials are in the environment.
        #[arg(long, short, env = "LLMUX_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address (overrides the config).
        #[arg(long)]
        host: Option<String>,
        /// Listen port (overrides the config).
        #[arg(long, short)]
        port: Option<u16>,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
        log_format: LogFormat,
        /// Runtime worker threads (default: one per core).
        #[arg(long, env = "LLMUX_WORKERS")]
        workers: Option<usize>,
        /// Database for keys, budgets and the spend log (`sqlite://…` or `postgres://…`).
        /// Default: `settings.database_url`, else `llmux.db` next to the config file (or in
        /// the current directory without one).
        #[arg(long, env = "LLMUX_DATABASE_URL")]
        database_url: Option<String>,
        /// Run without a database: the master key only, no virtual keys, no spend log.
        #[arg(long, conflicts_with = "database_url")]
        no_database: bool,
    },
    /// Manage virtual keys directly in the database.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        /// Database URL (default: as for `serve`).
        #[arg(long, env = "LLMUX_DATABASE_URL", global = true)]
        database_url: Option<String>,
        /// Config file whose `settings.database_url` (or directory) picks the database.
        #[arg(long, short, env = "LLMUX_CONFIG", global = true)]
        config: Option<PathBuf>,
    },
    /// Import a LiteLLM Proxy database (teams, users, budgets, virtual keys, spend log)
    /// into llmux's store; LiteLLM keys keep working unchanged.
    ImportLitellm {
        /// The LiteLLM Proxy database (`postgres://…`), read only.
        #[arg(long = "from", env = "LITELLM_DATABASE_URL")]
        from: String,
        /// llmux's database to write into (default: as for `serve`).
        #[arg(long, env = "LLMUX_DATABASE_URL")]
        database_url: Option<String>,
        /// Config file whose `settings.database_url` (or directory) picks the database.
        #[arg(long, short, env = "LLMUX_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a config and print the resolved model table.
    Check {
        /// Config file (YAML or TOML).
        #[arg(long, short, env = "LLMUX_CONFIG")]
        config: PathBuf,
    },
    /// List the providers compiled into this binary.
    Providers {
        /// Output format.
        #[arg(long, value_enum, default_value_t = providers_cmd::Format::Table)]
        format: providers_cmd::Format,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print what a call would cost, from the embedded price table.
    Cost {
        /// `provider/model`, e.g. `openai/gpt-4o` (a bare name is looked up as is).
        model: String,
        /// Input (prompt) tokens.
        #[arg(long, default_value_t = 1000)]
        input: u64,
        /// Output (completion) tokens.
        #[arg(long, default_value_t = 1000)]
        output: u64,
        /// Of the input tokens, how many are cache reads.
        #[arg(long, default_value_t = 0)]
        cached: u64,
    },
    /// Where the money goes: spend by tag, model, key, team, … (`spend whatif`: re-price
    /// calls at another model).
    Spend(Box<spend_cmd::SpendArgs>),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the native llmux equivalent of a config (e.g. a LiteLLM `config.yaml`);
    /// secrets stay references, never values.
    Convert {
        /// The config file to convert.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print it (shown once).
    Create {
        /// A unique name for the key.
        #[arg(long)]
        alias: Option<String>,
        /// Allowed models (comma-separated; default: all).
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<u64>,
        /// Hard budget in USD.
        #[arg(long)]
        max_budget: Option<f64>,
        /// May use the admin API (metadata `{"role": "admin"}`).
        #[arg(long)]
        admin: bool,
    },
    /// List keys (never their secrets).
    List,
    /// Delete a key, by key id or the key itself.
    Revoke {
        /// `key_…` id or `sk-…` key.
        key: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load(path: Option<&PathBuf>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p).map_err(|e| e.to_string()),
        None => Ok(Config::default()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            host,
            port,
            log_format,
            workers,
            database_url,
            no_database,
        } => {
            init_logging(log_format);
            let mut cfg = match load(config.as_ref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(h) = host {
                cfg.server.host = h;
            }
            if let Some(p) = port {
                cfg.server.port = p;
            }
            if cfg.server.master_key.is_none() {
                cfg.server.master_key = std::env::var("LLMUX_MASTER_KEY")
                    .ok()
                    .filter(|k| !k.is_empty())
                    .map(llmux_core::Secret::new);
            }
            let db = if no_database {
                None
            } else {
                Some(database(database_url, &cfg, config.as_deref()))
            };
            serve(cfg, workers, db)
        }
        Command::Keys {
            command,
            database_url,
            config,
        } => {
            let cfg = match load(config.as_ref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            keys(command, &database(database_url, &cfg, config.as_deref()))
        }
        Command::ImportLitellm {
            from,
            database_url,
            config,
        } => {
            let cfg = match load(config.as_ref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            import_litellm(&from, &database(database_url, &cfg, config.as_deref()))
        }
        Command::Check { config } => check(&config),
        Command::Config {
            command: ConfigCommand::Convert { file },
        } => match Config::load(&file) {
            Ok(cfg) => {
                print!("{}", llmux_config::to_native_yaml(&cfg));
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in &errors.0 {
                    eprintln!("error: {e}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Cost {
            model,
            input,
            output,
            cached,
        } => cost(&model, input, output, cached),
        Command::Spend(args) => spend_cmd::run(*args),
        Command::Providers { format } => providers_cmd::run(format),
    }
}

fn cost(model: &str, input: u64, output: u64, cached: u64) -> ExitCode {
    let table = llmux_cost::PriceTable::embedded();
    let (provider, name) = model.split_once('/').unwrap_or(("", model));
    let Some(price) = table.lookup(provider, name) else {
        eprintln!("no price known for '{model}'");
        return ExitCode::FAILURE;
    };
    let mut usage = llmux_cost::CallUsage::tokens(input, output);
    usage.cached_tokens = cached.min(input);
    let c = price.cost(&usage);
    println!(
        "{model}: {input} input ({} cached) + {output} output tokens",
        usage.cached_tokens
    );
    println!("  input        ${}", c.input);
    println!("  cache read   ${}", c.cache_read);
    println!("  output       ${}", c.output);
    println!("  total        ${}", c.total);
    ExitCode::SUCCESS
}

/// Where the store lives, and where its spend log spills while it is unreachable.
#[derive(Debug)]
struct Database {
    url: String,
    spill: PathBuf,
}

/// The database a command uses: `--database-url`, else `settings.database_url`, else the
/// SQLite file `llmux.db` next to the config file (or in the current directory).
fn database(flag: Option<String>, cfg: &Config, config: Option<&std::path::Path>) -> Database {
    let dir = config
        .and_then(std::path::Path::parent)
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf);
    let url = flag
        .filter(|u| !u.is_empty())
        .or_else(|| {
            cfg.settings
                .database_url
                .as_ref()
                .map(|u| u.expose().to_owned())
        })
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("llmux.db").display()));
    let spill = match url
        .strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p))
    {
        Some(path) if !path.is_empty() => PathBuf::from(format!("{path}.spend-spill.jsonl")),
        _ => dir.join("llmux-spend-spill.jsonl"),
    };
    Database { url, spill }
}

fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers.filter(|n| *n > 0) {
        rt.worker_threads(n);
    }
    rt.enable_all().build().map_err(|e| {
        eprintln!("could not start the runtime: {e}");
        ExitCode::FAILURE
    })
}

fn import_litellm(from: &str, db: &Database) -> ExitCode {
    let rt = match runtime(Some(1)) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let store = match llmux_store::Store::connect(&db.url).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("could not open the database: {e}");
                return ExitCode::FAILURE;
            }
        };
        let r = llmux_store::import_litellm(from, &store).await;
        store.close().await;
        match r {
            Ok(report) => {
                println!(
                    "imported {} teams, {} users, {} team memberships, {} keys, {} spend-log rows",
                    report.teams, report.users, report.members, report.keys, report.spend_logs
                );
                for s in &report.skipped {
                    println!("skipped: {s}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("import failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn keys(command: KeysCommand, db: &Database) -> ExitCode {
    let rt = match runtime(Some(1)) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let store = match llmux_store::Store::connect(&db.url).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("could not open the database: {e}");
                return ExitCode::FAILURE;
            }
        };
        let r = keys_cmd(command, &store).await;
        store.close().await;
        match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn keys_cmd(command: KeysCommand, store: &llmux_store::Store) -> Result<(), String> {
    let err = |e: llmux_store::StoreError| e.to_string();
    match command {
        KeysCommand::Create {
            alias,
            models,
            rpm,
            tpm,
            max_budget,
            admin,
        } => {
            let max_budget_nano = match max_budget {
                Some(v) if v.is_finite() && v >= 0.0 => Some((v * 1e9).round() as i64),
                Some(_) => return Err("--max-budget must be a non-negative number".into()),
                None => None,
            };
            let mut metadata = llmux_core::JsonObject::new();
            if admin {
                metadata.insert("role".into(), "admin".into());
            }
            let g = store
                .create_key(llmux_store::NewKey {
                    alias,
                    limits: llmux_store::Limits {
                        models,
                        rpm_limit: rpm,
                        tpm_limit: tpm,
                        max_parallel: None,
                    },
                    budget: llmux_store::BudgetSettings {
                        max_budget_nano,
                        ..Default::default()
                    },
                    metadata,
                    ..Default::default()
                })
                .await
                .map_err(err)?;
            println!("{}", g.key.expose());
            eprintln!(
                "key id {} ({}): store the key now, it is not shown again",
                g.record.key_id, g.record.key_prefix
            );
        }
        KeysCommand::List => {
            let page = store
                .list_keys(
                    &llmux_store::KeyFilter::default(),
                    llmux_store::Page::new(0, 1000),
                )
                .await
                .map_err(err)?;
            println!(
                "{:<30} {:<10} {:<20} {:>12} {:<8}",
                "KEY ID", "KEY", "ALIAS", "SPEND USD", "STATE"
            );
            for k in &page.items {
                println!(
                    "{:<30} {:<10} {:<20} {:>12.6} {:<8}",
                    k.key_id,
                    k.key_prefix,
                    k.alias.as_deref().unwrap_or("-"),
                    k.budget.spend_nano as f64 / 1e9,
                    if k.blocked { "blocked" } else { "active" }
                );
            }
            if page.total > page.items.len() as u64 {
                println!("… {} keys in all", page.total);
            }
        }
        KeysCommand::Revoke { key } => {
            let found = if key.starts_with(llmux_store::KEY_PREFIX) {
                store.lookup_key(&key).await
            } else {
                store.get_key(&key).await
            }
            .map_err(err)?;
            let Some(k) = found else {
                return Err("no such key".into());
            };
            store.delete_key(&k.key_id).await.map_err(err)?;
            println!("revoked {} ({})", k.key_id, k.key_prefix);
        }
    }
    Ok(())
}

fn serve(cfg: Config, workers: Option<usize>, db: Option<Database>) -> ExitCode {
    let rt = match runtime(workers) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let redis_url = cfg.settings.redis_url.clone();
        let key_cache_ttl = cfg.settings.key_cache_ttl;
        let mut builder = llmux::gateway().config(cfg);
        if let Some(ttl) = key_cache_ttl {
            builder = builder.key_cache_ttl(ttl);
        }
        if let Some(url) = redis_url {
            // Limits, in-flight counts, budget spend and deployment cooldowns shared with
            // every gateway on this Redis; local ones (and a warning) while it is unreachable.
            let cfg = llmux_store::RedisCountersConfig::new(url.expose());
            match llmux_store::RedisCounters::new(cfg) {
                Ok(counters) => {
                    if !counters.ping().await {
                        tracing::warn!("Redis is not reachable: limits and cooldowns hold per gateway until it is");
                    }
                    builder = builder.redis(std::sync::Arc::new(counters));
                }
                Err(e) => {
                    eprintln!("settings.redis_url: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        if let Some(db) = db {
            match llmux_store::Store::connect(&db.url).await {
                Ok(store) => {
                    tracing::info!(backend = ?store.backend(), "database open: virtual keys, budgets and the spend log are on");
                    builder = builder.store(store).spend_spill_path(db.spill);
                }
                Err(e) => {
                    eprintln!("could not open the database: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let gateway = match builder.build() {
            Ok(g) => g,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        run(gateway).await
    })
}

async fn run(gateway: llmux_server::Gateway) -> ExitCode {
    if !gateway.warnings().is_empty() {
        tracing::warn!(
            unsupported = ?gateway.warnings(),
            "the config sets keys llmux does not support; they are ignored"
        );
    }
    if gateway.server_config().master_key.is_none() {
        tracing::warn!("no master key configured: the gateway accepts every caller");
    }
    let (names, wildcards) = gateway.routes();
    for name in names {
        tracing::info!(model = %name, "serving");
    }
    for (route, provider) in wildcards {
        tracing::info!(model = %route, provider, "serving wildcard");
    }
    match gateway.serve_until_signal().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let rows: Vec<[String; 6]> = cfg
        .models
        .iter()
        .map(|m| {
            let d = &m.deployment;
            [
                m.name.clone(),
                d.provider.clone(),
                d.model.clone(),
                d.api_base
                    .clone()
                    .unwrap_or_else(|| "(provider default)".into()),
                if d.api_key.is_some() { "set" } else { "-" }.into(),
                d.timeout
                    .map_or_else(|| "default".into(), |t| format!("{}s", t.as_secs_f64())),
            ]
        })
        .collect();
    let built = llmux::gateway()
        .config(cfg.clone())
        .env_wildcards(false)
        .build();
    if let Err(e) = built {
        eprintln!("error: {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    let header = [
        "MODEL",
        "PROVIDER",
        "PROVIDER MODEL",
        "API BASE",
        "KEY",
        "TIMEOUT",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (c, w) in cells.iter().zip(widths) {
            s.push_str(&format!("{c:<w$}  "));
        }
        println!("{}", s.trim_end());
    };
    println!(
        "{}: ok ({} deployments, {} format)",
        path.display(),
        rows.len(),
        match cfg.format {
            llmux_config::ConfigFormat::Native => "native",
            llmux_config::ConfigFormat::LiteLlm => "LiteLLM",
        }
    );
    if !cfg.warnings.is_empty() {
        println!("not supported by llmux (ignored):");
        for w in &cfg.warnings {
            println!("  - {w}");
        }
    }
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
    }
    let r = &cfg.router;
    println!(
        "router: strategy {}, {} retries, cooldown {}s after {} fails, stream resume {}, {} fallback rules",
        r.strategy.as_str(),
        r.num_retries,
        r.cooldown_time.as_secs_f64(),
        r.allowed_fails,
        if r.stream_resume { "on" } else { "off" },
        r.fallbacks.len() + r.context_window_fallbacks.len() + r.content_policy_fallbacks.len(),
    );
    println!(
        "server: {}:{}  master key: {}",
        cfg.server.host,
        cfg.server.port,
        if cfg.server.master_key.is_some() {
            "set"
        } else {
            "not set (open)"
        }
    );
    ExitCode::SUCCESS
}
