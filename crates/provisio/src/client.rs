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
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Sends one event (JSON, a file, or - for standard input).
    Emit {
        /// The event.
        event: String,
        /// Follow the jobs it made to their end, with a progress line on
        /// standard error; exit 1 if one failed.
        #[arg(long)]
        wait: bool,
    },
    /// What an event would do (the service, the rules that match and why,
    /// the jobs and their params, where a setup would run); nothing is
    /// written.
    Plan {
        /// The event (JSON, a file, or -).
        event: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Lists clients.
    List,
    /// Shows a client and its services.
    Show { id: i64 },
    /// Adds a client: JSON (`{"external_id", "name", "email"}`), a file, or -.
    Create { client: String },
    /// Opens a session for the client: a token for /client/v1 and a one-time hand-off URL.
    Session {
        id: i64,
        /// How long it lasts, seconds (60 to 86400).
        #[arg(long)]
        ttl_secs: Option<i64>,
    },
    /// Ends every session of the client.
    EndSessions { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum ConfigurationsCommand {
    /// Lists provision configurations (secrets never shown).
    List {
        #[arg(long)]
        blueprint: Option<String>,
    },
    /// Shows one.
    Show { id: i64 },
    /// Adds one: JSON, a file, or -.
    Create { configuration: String },
    /// Changes one: JSON (what changes), a file, or -.
    Update { id: i64, change: String },
    /// Runs its connection test.
    Test { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum ProductsCommand {
    /// Lists products.
    List,
    /// Shows one (id or slug).
    Show { key: String },
    /// Adds one: JSON, a file, or -.
    Create { product: String },
    /// Changes one: JSON (what changes), a file, or -.
    Update { key: String, change: String },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Lists staff users.
    List,
    /// Adds a staff user; without a password one is generated and printed once.
    Create {
        username: String,
        #[arg(long, value_parser = ["read", "operate", "admin"])]
        scope: String,
        /// Read the password from standard input (never from the command line).
        #[arg(long)]
        password_stdin: bool,
    },
}

pub fn users(command: UsersCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        UsersCommand::List => request(server, Method::GET, "/users", &[], None),
        UsersCommand::Create { username, scope, password_stdin } => {
            let mut body = serde_json::json!({"username": username, "scope": scope});
            if password_stdin {
                let mut password = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut password)?;
                body["password"] = serde_json::json!(password.trim_end_matches(['\r', '\n']));
            }
            request(server, Method::POST, "/users", &[], Some(body))
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Lists them.
    List,
    /// Adds one: JSON, a file, or -; a generated secret is printed once.
    Create { body: String },
    /// Changes one: JSON, a file, or -.
    Update { id: i64, change: String },
    /// Deletes one.
    Delete { id: i64 },
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
    /// The help desk's summary: latest jobs and live answers.
    Summary { id: i64 },
    /// Runs a function of the service's blueprint on demand.
    Action {
        id: i64,
        function: String,
        /// Params: JSON, a file, or -.
        #[arg(long, default_value = "{}")]
        params: String,
    },
    /// Reveals the credentials the setup answered (audited).
    Credentials { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// Lists drift, newest first: open only, unless --all.
    List {
        /// Resolved drift too.
        #[arg(long)]
        all: bool,
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// `provisio drift ...`.
pub fn drift(command: DriftCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        DriftCommand::List { all, limit } => {
            let query = vec![("limit", limit.to_string()), ("open", (!all).to_string())];
            request(server, Method::GET, "/drift", &query, None)
        }
    }
}

/// What `provisio import` imports, and into what.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The configuration's id.
    configuration: i64,
    /// The product new services belong to (id or slug).
    #[arg(long)]
    product: String,
    /// The client new services belong to (when --match-email finds none).
    #[arg(long)]
    client: Option<i64>,
    /// Find each resource's client by the contact e-mail its system holds.
    #[arg(long)]
    match_email: bool,
    /// Only resources whose identifier starts with this.
    #[arg(long)]
    prefix: Option<String>,
    /// Say what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Go on from here: the cursor a stopped import printed.
    #[arg(long)]
    cursor: Option<String>,
    /// Resources per request (1 to 500).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=500))]
    page_size: u32,
}

/// `provisio import`: every page of the configuration, with a progress
/// line on standard error; prints what became of each resource.
pub fn import(args: ImportArgs, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    let token = server.token.as_deref().context("a staff token is needed: --token or PROVISIO_TOKEN")?.to_owned();
    let url = format!("{}/api/v1/configurations/{}/import", server.server.trim_end_matches('/'), args.configuration);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let client = reqwest::Client::new();
        let mut body = serde_json::json!({"product": args.product, "match_email": args.match_email,
                                          "dry_run": args.dry_run, "limit": args.page_size});
        if let Some(id) = args.client {
            body["client_id"] = serde_json::json!(id);
        }
        if let Some(prefix) = &args.prefix {
            body["prefix"] = serde_json::json!(prefix);
        }
        if let Some(cursor) = &args.cursor {
            body["cursor"] = serde_json::json!(cursor);
        }
        let mut lines: Vec<Value> = Vec::new();
        let (mut created, mut matched, mut skipped) = (0, 0, 0);
        loop {
            let response = client
                .post(&url)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .with_context(|| format!("cannot reach {url}"))?;
            let status = response.status();
            let page: Value = response.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                if !lines.is_empty() {
                    eprintln!();
                }
                eprintln!("{}", serde_json::to_string_pretty(&page)?);
                if let Some(cursor) = body["cursor"].as_str() {
                    eprintln!("to go on from this page: --cursor '{cursor}'");
                }
                return Ok(ExitCode::from(if status.as_u16() == 422 { 2 } else { 1 }));
            }
            created += page["created"].as_u64().unwrap_or(0);
            matched += page["matched"].as_u64().unwrap_or(0);
            skipped += page["skipped"].as_u64().unwrap_or(0);
            lines.extend(page["resources"].as_array().cloned().unwrap_or_default());
            let of = page["total"].as_u64().map(|t| format!(" of {t}")).unwrap_or_default();
            let verb = if args.dry_run { "would create" } else { "created" };
            eprint!("\r{}{of} listed: {created} {verb}, {matched} matched, {skipped} skipped   ", lines.len());
            match page["next_cursor"].as_str() {
                // A system answering the same cursor again would loop forever.
                Some(cursor) if body["cursor"].as_str() == Some(cursor) => {
                    eprintln!();
                    anyhow::bail!("the configuration answered the same page twice (cursor {cursor}); stopped");
                }
                Some(cursor) => body["cursor"] = serde_json::json!(cursor),
                None => break,
            }
        }
        eprintln!();
        let answer = serde_json::json!({"configuration_id": args.configuration, "dry_run": args.dry_run,
            "created": created, "matched": matched, "skipped": skipped, "resources": lines});
        if server.json {
            crate::render::json(&answer);
        } else {
            crate::render::value_table(&answer["resources"]);
        }
        Ok(ExitCode::SUCCESS)
    })
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
        let parsed = serde_json::from_str::<Value>(&text).ok();
        let pretty = parsed.as_ref().map(|v| serde_json::to_string_pretty(v).expect("JSON serialises")).unwrap_or(text);
        if status.is_success() {
            match parsed {
                Some(value) if !server.json => crate::render::value_table(&value),
                _ => out!("{pretty}"),
            }
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("{pretty}");
            Ok(ExitCode::from(if status.as_u16() == 422 { 2 } else { 1 }))
        }
    })
}

pub fn events(command: EventsCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        EventsCommand::Emit { event, wait: false } => {
            let body = crate::read_json("EVENT", &event)?;
            request(server, Method::POST, "/events", &[], Some(body))
        }
        EventsCommand::Emit { event, wait: true } => {
            let body = crate::read_json("EVENT", &event)?;
            follow(server, body)
        }
        EventsCommand::Plan { event } => {
            let body = crate::read_json("EVENT", &event)?;
            request(server, Method::POST, "/events", &[("dry_run", "true".to_owned())], Some(body))
        }
    }
}

/// Sends an event, then follows the jobs it made until each has ended,
/// with a progress line on standard error.
fn follow(server: &ServerArgs, event: Value) -> anyhow::Result<ExitCode> {
    let token = server.token.as_deref().context("a staff token is needed: --token or PROVISIO_TOKEN")?.to_owned();
    let base = format!("{}/api/v1", server.server.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let client = reqwest::Client::new();
        let response = client
            .post(format!("{base}/events"))
            .bearer_auth(&token)
            .json(&event)
            .send()
            .await
            .with_context(|| format!("cannot reach {base}"))?;
        let status = response.status();
        let accepted: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            eprintln!("{}", serde_json::to_string_pretty(&accepted)?);
            return Ok(ExitCode::from(if status.as_u16() == 422 { 2 } else { 1 }));
        }
        let ids: Vec<i64> =
            accepted["jobs"].as_array().into_iter().flatten().filter_map(|j| j["id"].as_i64()).collect();
        let mut ended: std::collections::BTreeMap<i64, Value> = std::collections::BTreeMap::new();
        loop {
            for id in &ids {
                if ended.contains_key(id) {
                    continue;
                }
                let job: Value =
                    client.get(format!("{base}/jobs/{id}")).bearer_auth(&token).send().await?.json().await?;
                let state = job["job"]["state"].as_str().unwrap_or_default().to_owned();
                if matches!(state.as_str(), "succeeded" | "failed" | "skipped") {
                    ended.insert(*id, job["job"].clone());
                }
            }
            let latest = ended
                .values()
                .last()
                .map(|j| {
                    format!(" (last: {} {})", j["function"].as_str().unwrap_or("?"), j["state"].as_str().unwrap_or("?"))
                })
                .unwrap_or_default();
            eprint!("\r{}/{} jobs ended{latest}   ", ended.len(), ids.len());
            if ended.len() == ids.len() {
                eprintln!();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let jobs: Vec<Value> = ended.into_values().collect();
        let failed = jobs.iter().any(|j| j["state"] == "failed");
        let answer = serde_json::json!({"event_id": accepted["event_id"], "service_id": accepted["service_id"],
                                        "duplicate": accepted["duplicate"], "jobs": jobs});
        if server.json {
            crate::render::json(&answer);
        } else {
            crate::render::value_table(&answer["jobs"]);
        }
        Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
    })
}

pub fn clients(command: ClientsCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        ClientsCommand::List => request(server, Method::GET, "/clients", &[], None),
        ClientsCommand::Show { id } => request(server, Method::GET, &format!("/clients/{id}"), &[], None),
        ClientsCommand::Create { client } => {
            request(server, Method::POST, "/clients", &[], Some(crate::read_json("CLIENT", &client)?))
        }
        ClientsCommand::Session { id, ttl_secs } => {
            let body = match ttl_secs {
                Some(ttl) => serde_json::json!({"ttl_secs": ttl}),
                None => serde_json::json!({}),
            };
            request(server, Method::POST, &format!("/clients/{id}/sessions"), &[], Some(body))
        }
        ClientsCommand::EndSessions { id } => {
            request(server, Method::DELETE, &format!("/clients/{id}/sessions"), &[], None)
        }
    }
}

pub fn configurations(command: ConfigurationsCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        ConfigurationsCommand::List { blueprint } => {
            let query: Vec<(&str, String)> = blueprint.map(|b| ("blueprint", b)).into_iter().collect();
            request(server, Method::GET, "/configurations", &query, None)
        }
        ConfigurationsCommand::Show { id } => request(server, Method::GET, &format!("/configurations/{id}"), &[], None),
        ConfigurationsCommand::Create { configuration } => request(
            server,
            Method::POST,
            "/configurations",
            &[],
            Some(crate::read_json("CONFIGURATION", &configuration)?),
        ),
        ConfigurationsCommand::Update { id, change } => request(
            server,
            Method::PATCH,
            &format!("/configurations/{id}"),
            &[],
            Some(crate::read_json("CHANGE", &change)?),
        ),
        ConfigurationsCommand::Test { id } => {
            request(server, Method::POST, &format!("/configurations/{id}/test"), &[], None)
        }
    }
}

pub fn products(command: ProductsCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        ProductsCommand::List => request(server, Method::GET, "/products", &[], None),
        ProductsCommand::Show { key } => request(server, Method::GET, &format!("/products/{key}"), &[], None),
        ProductsCommand::Create { product } => {
            request(server, Method::POST, "/products", &[], Some(crate::read_json("PRODUCT", &product)?))
        }
        ProductsCommand::Update { key, change } => {
            request(server, Method::PATCH, &format!("/products/{key}"), &[], Some(crate::read_json("CHANGE", &change)?))
        }
    }
}

/// Event sources (`sources`) and webhook subscribers (`webhooks`).
pub fn access(path: &str, command: AccessCommand, server: &ServerArgs) -> anyhow::Result<ExitCode> {
    match command {
        AccessCommand::List => request(server, Method::GET, path, &[], None),
        AccessCommand::Create { body } => {
            request(server, Method::POST, path, &[], Some(crate::read_json("BODY", &body)?))
        }
        AccessCommand::Update { id, change } => {
            request(server, Method::PATCH, &format!("{path}/{id}"), &[], Some(crate::read_json("CHANGE", &change)?))
        }
        AccessCommand::Delete { id } => request(server, Method::DELETE, &format!("{path}/{id}"), &[], None),
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
        ServicesCommand::Summary { id } => request(server, Method::GET, &format!("/services/{id}/summary"), &[], None),
        ServicesCommand::Action { id, function, params } => request(
            server,
            Method::POST,
            &format!("/services/{id}/actions/{function}"),
            &[],
            Some(crate::read_json("--params", &params)?),
        ),
        ServicesCommand::Credentials { id } => {
            request(server, Method::POST, &format!("/services/{id}/credentials"), &[], None)
        }
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
