//! `provisio-enom-test-server`: an Enom reseller API test server on its own.
//!
//! ```text
//! cargo run -p provisio-enom-test-server -- --listen 127.0.0.1:8766
//! ```
//!
//! It prints its URL, the accounts' credentials and the path of its CA
//! certificate as shell assignments, then serves until stopped.

use std::time::Duration;

use clap::Parser;
use provisio_enom_test_server::{Enom, Options};

/// An Enom reseller API test server (domain commands, in memory).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8766")]
    listen: String,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    plain: bool,
    /// An account, as UID:TOKEN (repeatable; two random ones when absent).
    #[arg(long = "account")]
    accounts: Vec<String>,
    /// Seconds a transfer order takes to complete.
    #[arg(long, default_value_t = 5)]
    transfer_after_secs: u64,
    /// Where to write the CA certificate (PEM) clients must trust.
    #[arg(long, default_value = "enom-test-server-ca.pem")]
    ca_out: std::path::PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut options = Options { transfer_after: Duration::from_secs(args.transfer_after_secs), ..Options::default() };
    if !args.accounts.is_empty() {
        options.accounts = args
            .accounts
            .iter()
            .map(|a| a.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
            .collect::<Option<Vec<_>>>()
            .ok_or("--account takes UID:TOKEN")?;
    }
    let enom = Enom::new(options.clone());
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let tls = (!args.plain).then(|| provisio_test_server_kit::Tls::generate(&[]));
    let running = provisio_test_server_kit::serve(listener, enom.router(), tls);
    println!("ENOM_URL={}/interface.asp", running.url());
    for (n, (uid, token)) in options.accounts.iter().enumerate() {
        let suffix = if n == 0 { String::new() } else { format!("_{n}") };
        println!("ENOM_UID{suffix}={uid}");
        println!("ENOM_PW{suffix}={token}");
    }
    if let Some(ca) = &running.ca_pem {
        std::fs::write(&args.ca_out, ca)?;
        println!("ENOM_CA={}", std::fs::canonicalize(&args.ca_out)?.display());
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    drop(running);
    Ok(())
}
