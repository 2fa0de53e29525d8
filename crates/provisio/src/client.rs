//! Operators' commands against a running server: `events emit`,
//! `services list|show`, `jobs list|retry`, `tokens list|create|revoke`. They print the server's JSON.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

/// Where the server is and how to authenticate.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(long, global = true, env = "PROVISIO_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A staff token.
    #[arg(long, global = true, env = "PROVISIO_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Sends one event (JSON, a file, or - for standard input).
    Emit {
        /// The event.
        event: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// Lists services.
    List {
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only this product (slug or id).
        #[arg(long)]
        product: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Shows a service with its jobs and history.
    Show {
        /// The service id.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Lists jobs.
    List {
        /// Only this state.
        #[arg(long)]
        status: Option<String>,
        /// Only this service's jobs.
        #[arg(long)]
        service_id: Option<i64>,
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Shows a job with its attempts.
    Show {
        /// The job id.
        id: i64,
    },
    /// Queues a failed job again.
    Retry {
        /// The job id.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Lists staff tokens (names and dates, never secrets).
    List,
    /// Makes a named token and prints its secret once.
    Create {
        /// Who or what will hold it, e.g. `billing`; the audit log names it.
        name: String,
        /// What it may do: `read`; `operate` (also actions, retries, events,
        /// clients and their sessions); `admin` (also configurations,
        /// products, tokens and event sources).
        #[arg(long, value_parser = ["read", "operate", "admin"])]
        scope: String,
    },
    /// Revokes a token; it stops working within a second.
    Revoke {
        /// The token's id (from `tokens list`).
        id: i64,
    },
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// `provisio report NAME`.
pub fn report(
    name: &str,
    from: Option<String>,
    to: Option<String>,
    format: Format,
    server: &ServerArgs,
) -> anyhow::Result<ExitCode> {
    let token = server.token.as_deref().context("a staff token is needed: --token or PROVISIO_TOKEN")?;
    let url = format!("{}/api/v1/reports/{name}", server.server.trim_end_matches('/'));
    let mut query: Vec<(&str, String)> = Vec::new();
    query.extend(from.map(|f| ("from", f)));
    query.extend(to.map(|t| ("to", t)));
    if format == Format::Csv {
        query.push(("format", "csv".into()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        provisio_sdk::http::install_crypto_provider();
        let response = reqwest::Client::new()
            .get(&url)
            .bearer_auth(token)
            .query(&query)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            eprintln!("{text}");
            return Ok(ExitCode::from(if status.as_u16() == 422 { 2 } else { 1 }));
        }
        match format {
            Format::Csv => text.lines().for_each(|line| out!("{line}")),
            Format::Json => crate::render::json(&serde_json::from_str(&text)?),
            Format::Table => crate::render::report_table(&serde_json::from_str(&text)?),
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn request(
    server: &ServerArgs,
    method: Method,
    path: &str,
    query: &[(&str, String)],
    body: Option<Value>,
) -> anyhow::Result<ExitCode> {
    let token = server.token.as_deref().context("a staff token is needed: --token or PROVISIO_TOKEN")?;
    let url = format!("{}/api/v1{path}", server.server.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let client = reqwest::Client::new();
        let mut builder = client.request(method, &url).bearer_auth(token).query(query);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        let response = builder.send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response.text().await?;
        let pretty = serde_json::from_str::<Value>(&text)
            .map(|v| serde_json::to_string_pretty(&v).expect("JSON serialises"))
            .unwrap_or(text);
        if status.is_success() {
            out!("{pretty}");
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("{pretty}");
            Ok(ExitCode::from(if status.as_u16() == 422 { 2 } else { 1 }))
        }
    })
}

pub fn events(command: EventsCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        EventsCommand::Emit { event } => {
            let body = crate::read_json("EVENT", &event)?;
            request(server, Method::POST, "/events", &[], Some(body))
        }
    }
}

pub fn services(command: ServicesCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        ServicesCommand::List { status, product, limit } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(status.map(|s| ("status", s)));
            query.extend(product.map(|p| ("product", p)));
            request(server, Method::GET, "/services", &query, None)
        }
        ServicesCommand::Show { id } => request(server, Method::GET, &format!("/services/{id}"), &[], None),
    }
}

pub fn jobs(command: JobsCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        JobsCommand::List { status, service_id, limit } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(status.map(|s| ("status", s)));
            query.extend(service_id.map(|s| ("service_id", s.to_string())));
            request(server, Method::GET, "/jobs", &query, None)
        }
        JobsCommand::Show { id } => request(server, Method::GET, &format!("/jobs/{id}"), &[], None),
        JobsCommand::Retry { id } => request(server, Method::POST, &format!("/jobs/{id}/retry"), &[], None),
    }
}

pub fn tokens(command: TokensCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        TokensCommand::List => request(server, Method::GET, "/tokens", &[], None),
        TokensCommand::Create { name, scope } => {
            request(server, Method::POST, "/tokens", &[], Some(serde_json::json!({"name": name, "scope": scope})))
        }
        TokensCommand::Revoke { id } => request(server, Method::DELETE, &format!("/tokens/{id}"), &[], None),
    }
}
