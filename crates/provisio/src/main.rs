//! `provisio`: one binary that wires the crates together.
//!
//! - `serve` (API + worker) and `worker`: the engine on a store;
//! - `events`, `services`, `jobs`, `tokens`, `report`: operators' commands against a server;
//! - `blueprints`, `providers`, `describe`, `call`, `test-connection`: the
//!   provider workbench, which runs providers in this process.
//!
//! Exit codes: 0 ok, 1 the provider or server answered an error, 2 invalid input or usage.

#[macro_use]
mod render;
mod client;
mod server;

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use provisio_sdk::{CallOptions, ErrorKind, invoke};
use serde_json::{Map, Value};

/// Provisio: billing events in, third-party systems provisioned.
#[derive(Debug, Parser)]
#[command(name = "provisio", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// A provider program speaking the external provider protocol
    /// (docs/provider-protocol.md), registered next to the compiled-in
    /// ones; repeat for more. The environment variable takes a `:`-separated list.
    #[arg(long = "external-provider", global = true, env = "PROVISIO_EXTERNAL_PROVIDERS", value_delimiter = ':')]
    external_providers: Vec<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the staff API and the worker on the store (SQLite by default).
    Serve(server::ServeArgs),
    /// Runs only the worker (jobs from the same store).
    Worker(server::WorkerOnlyArgs),
    /// Billing events, sent to a running server.
    Events {
        #[command(subcommand)]
        command: client::EventsCommand,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Services of a running server.
    Services {
        #[command(subcommand)]
        command: client::ServicesCommand,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Makes services of what a configuration already holds (made outside
    /// Provisio), page by page with a progress line; `--dry-run` says what
    /// it would do. Run again, it changes nothing.
    Import {
        #[command(flatten)]
        import: client::ImportArgs,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Drift sync found between services' records and their systems.
    Drift {
        #[command(subcommand)]
        command: client::DriftCommand,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Jobs of a running server.
    Jobs {
        #[command(subcommand)]
        command: client::JobsCommand,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Clients of a running server, and their sessions.
    Clients {
        #[command(subcommand)]
        command: client::ClientsCommand,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Provision configurations of a running server.
    Configurations {
        #[command(subcommand)]
        command: client::ConfigurationsCommand,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Products of a running server.
    Products {
        #[command(subcommand)]
        command: client::ProductsCommand,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Event sources (billing systems that sign their events).
    Sources {
        #[command(subcommand)]
        command: client::AccessCommand,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Staff users (who sign in with a password).
    Users {
        #[command(subcommand)]
        command: client::UsersCommand,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Webhook subscribers.
    Webhooks {
        #[command(subcommand)]
        command: client::AccessCommand,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Prints a shell completion script: `provisio completions bash > /etc/bash_completion.d/provisio`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Staff tokens of a running server.
    Tokens {
        #[command(subcommand)]
        command: client::TokensCommand,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// A report of a running server, as a table (or `--json`, `--csv`):
    /// capacity, jobs, activation, attention, usage-services, usage-configurations.
    Report {
        /// Which report.
        #[arg(value_parser = ["capacity", "jobs", "activation", "attention", "usage-services", "usage-configurations"])]
        name: String,
        /// First day (YYYY-MM-DD, UTC); default 30 days before --to.
        #[arg(long)]
        from: Option<String>,
        /// The day after the last (YYYY-MM-DD); default tomorrow.
        #[arg(long)]
        to: Option<String>,
        /// Print CSV (`--json` prints the server's JSON).
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Lists the blueprints and their functions.
    Blueprints {
        /// Print JSON, with every function's params and result schemas.
        #[arg(long)]
        json: bool,
    },
    /// Lists the compiled-in providers.
    Providers {
        /// Only providers of this blueprint.
        #[arg(long)]
        blueprint: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Shows a provider's configuration schema and its functions' schemas.
    Describe {
        /// BLUEPRINT/PROVIDER, e.g. shared-hosting/demo.
        provider: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Runs a provider's blueprint conformance suite (the one every
    /// provider in this repository passes) against a working configuration:
    /// it creates, changes and removes real resources there.
    Conformance {
        /// BLUEPRINT/PROVIDER, e.g. software-licenses/licenses-py.
        provider: String,
        #[command(flatten)]
        config: ConfigArg,
        /// Two packages the configured system offers, for change_package.
        #[arg(long, num_args = 2, default_values = ["basic", "standard"])]
        packages: Vec<String>,
    },
    /// Calls a provider function and prints the result envelope.
    Call {
        /// BLUEPRINT/PROVIDER, e.g. shared-hosting/demo.
        provider: String,
        /// The function, e.g. create.
        function: String,
        #[command(flatten)]
        config: ConfigArg,
        /// The params: JSON, a file, or - for standard input.
        #[arg(long, default_value = "{}")]
        params: String,
        /// The service's provision data (JSON), as the engine would pass it.
        #[arg(long)]
        provision_data: Option<String>,
        /// An idempotency key; repeat it to retry one operation safely.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Seconds allowed for the call.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Also print the redacted HTTP log.
        #[arg(long)]
        verbose: bool,
    },
    /// Runs a provider's connection test with a configuration.
    TestConnection {
        /// BLUEPRINT/PROVIDER.
        provider: String,
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Also print the redacted HTTP log.
        #[arg(long)]
        verbose: bool,
    },
}

#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// The provision configuration: JSON, a file, or - for standard input.
    #[arg(long)]
    config: String,
}

fn main() -> ExitCode {
    // A provider's panic message may quote a credential; the payload reaches
    // the (redacted) envelope, so the hook prints only where it happened.
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("internal error: a panic at {at} (details, redacted, are in the result's debug)");
    }));
    provisio_sdk::http::install_crypto_provider();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut registry = provisio_providers::registry();
    for program in &cli.external_providers {
        let entry = provisio_external::load(program, &registry)?;
        registry.try_register(entry)?;
    }
    match cli.command {
        Command::Serve(args) => return server::serve(args, registry),
        Command::Worker(args) => return server::worker(args, registry),
        Command::Events { command, server } => return client::events(command, &server),
        Command::Services { command, server } => return client::services(command, &server),
        Command::Jobs { command, server } => return client::jobs(command, &server),
        Command::Drift { command, server } => return client::drift(command, &server),
        Command::Import { import, server } => return client::import(import, &server),
        Command::Tokens { command, server } => return client::tokens(command, &server),
        Command::Clients { command, server } => return client::clients(command, &server),
        Command::Configurations { command, server } => return client::configurations(command, &server),
        Command::Products { command, server } => return client::products(command, &server),
        Command::Sources { command, server } => return client::access("/sources", command, &server),
        Command::Webhooks { command, server } => return client::access("/webhooks", command, &server),
        Command::Users { command, server } => return client::users(command, &server),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "provisio", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Report { name, from, to, csv, server } => {
            let format = if csv {
                client::Format::Csv
            } else if server.json {
                client::Format::Json
            } else {
                client::Format::Table
            };
            return client::report(&name, from, to, format, &server);
        }
        Command::Blueprints { json } => {
            if json {
                let all: Vec<Value> = registry.blueprints().iter().map(|b| b.to_json()).collect();
                render::json(&Value::Array(all));
            } else {
                render::blueprints(registry.blueprints());
            }
        }
        Command::Providers { blueprint, json } => {
            if let Some(id) = &blueprint {
                registry.blueprint(id)?;
            }
            let providers = registry.providers(blueprint.as_deref());
            if json {
                render::json(&Value::Array(providers.iter().map(|p| p.to_json()).collect()));
            } else {
                render::providers(&providers);
            }
        }
        Command::Describe { provider, json } => {
            let entry = registry.provider(&provider)?;
            if json {
                render::json(&entry.to_json());
            } else {
                render::describe(entry);
            }
        }
        Command::Conformance { provider, config, packages } => {
            let entry = registry.provider(&provider)?.clone();
            let config = read_json("--config", &config.config)?;
            let mut harness = provisio_conformance::Harness::new(entry, config);
            harness.packages = (packages[0].clone(), packages[1].clone());
            // The suite asserts; a failed check is a panic whose message says
            // which (its envelopes are redacted), printed here.
            std::panic::set_hook(Box::new(|_| {}));
            let outcome = std::thread::spawn(move || {
                let runtime = tokio_runtime()?;
                runtime.block_on(provisio_conformance::run(&harness));
                anyhow::Ok(())
            })
            .join();
            return match outcome {
                Ok(result) => {
                    result?;
                    out!("{provider} passes the conformance suite of its blueprint");
                    Ok(ExitCode::SUCCESS)
                }
                Err(panic) => {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    eprintln!("{provider} fails the conformance suite: {why}");
                    Ok(ExitCode::from(1))
                }
            };
        }
        Command::Call {
            provider,
            function,
            config,
            params,
            provision_data,
            idempotency_key,
            timeout,
            json,
            verbose,
        } => {
            let entry = registry.provider(&provider)?;
            let config = read_json("--config", &config.config)?;
            let params = read_json("--params", &params)?;
            let provision_data = match provision_data {
                Some(text) => match read_json("--provision-data", &text)? {
                    Value::Object(map) => map,
                    _ => bail!("--provision-data must be a JSON object"),
                },
                None => Map::new(),
            };
            let options = CallOptions {
                timeout: timeout_from(timeout)?,
                idempotency_key,
                provision_data,
                ..CallOptions::default()
            };
            let report = tokio_runtime()?.block_on(invoke::call(entry, &config, &function, &params, &options));
            render::report(&report, json, verbose);
            return Ok(exit_code(report.envelope.error_kind));
        }
        Command::TestConnection { provider, config, json, verbose } => {
            let entry = registry.provider(&provider)?;
            let config = read_json("--config", &config.config)?;
            let report = tokio_runtime()?.block_on(invoke::test_connection(entry, &config, &CallOptions::default()));
            render::report(&report, json, verbose);
            return Ok(exit_code(report.envelope.error_kind));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn exit_code(kind: Option<ErrorKind>) -> ExitCode {
    match kind {
        None => ExitCode::SUCCESS,
        Some(ErrorKind::InvalidInput) => ExitCode::from(2),
        Some(_) => ExitCode::from(1),
    }
}

fn timeout_from(seconds: f64) -> anyhow::Result<Duration> {
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0) {
        bail!("--timeout must be between 0 and 86400 seconds");
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")
}

/// Reads a JSON argument given inline, as a file path, or as `-` (stdin).
///
/// Parse errors never quote the input: it may hold credentials.
pub(crate) fn read_json(flag: &str, arg: &str) -> anyhow::Result<Value> {
    let text = if arg.trim_start().starts_with(['{', '[']) {
        arg.to_owned()
    } else if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read {flag} from standard input"))?;
        text
    } else {
        std::fs::read_to_string(arg).with_context(|| format!("cannot read {flag} file {arg}"))?
    };
    serde_json::from_str(&text).map_err(|err| {
        anyhow::anyhow!("{flag} is not valid JSON (line {}, column {}: {:?})", err.line(), err.column(), err.classify())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_do_not_quote_the_input() {
        let err = read_json("--config", r#"{"api_key": "hunter2" "#).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("--config"), "{err}");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(None), ExitCode::SUCCESS);
        assert_eq!(exit_code(Some(ErrorKind::InvalidInput)), ExitCode::from(2));
        assert_eq!(exit_code(Some(ErrorKind::Transient)), ExitCode::from(1));
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
