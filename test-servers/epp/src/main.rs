//! `provisio-epp-test-server`: an EPP test registry on its own.
//!
//! ```text
//! cargo run -p provisio-epp-test-server -- --listen 127.0.0.1:7000
//! ```
//!
//! With `--nominet` it is Nominet's .uk registry (tags, release and
//! handshake, Nominet's notifications). It prints where it listens, the registrars' credentials and the path of
//! its CA certificate as shell assignments, then serves until stopped.

use std::time::Duration;

use clap::Parser;
use provisio_epp_test_server::{Options, Registry};

/// An EPP test registry (RFC 5730-5734 over TLS, frames validated against the XSDs).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: String,
    /// A registrar, as CLID:PASSWORD (repeatable; two random ones when absent).
    #[arg(long = "registrar")]
    registrars: Vec<String>,
    /// Seconds before the registry approves a pending transfer.
    #[arg(long, default_value_t = 5)]
    transfer_after_secs: u64,
    /// Milliseconds each command takes to answer.
    #[arg(long, default_value_t = 0)]
    command_delay_ms: u64,
    /// Behave as Nominet's .uk registry (tags, its extensions, release and handshake).
    #[arg(long)]
    nominet: bool,
    /// Nominet: a tag that answers releases to it by handshake (repeatable).
    #[arg(long = "handshake-tag")]
    handshake_tags: Vec<String>,
    /// Where to write the CA certificate (PEM) clients must trust.
    #[arg(long, default_value = "epp-test-server-ca.pem")]
    ca_out: std::path::PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut options = if args.nominet { Options::nominet() } else { Options::default() };
    options.handshake_tags = args.handshake_tags.clone();
    if !args.registrars.is_empty() {
        options.registrars = args
            .registrars
            .iter()
            .map(|r| r.split_once(':').map(|(id, pw)| (id.to_owned(), pw.to_owned())))
            .collect::<Option<Vec<_>>>()
            .ok_or("--registrar takes CLID:PASSWORD")?;
    }
    options.transfer_after = Duration::from_secs(args.transfer_after_secs);
    options.command_delay = Duration::from_millis(args.command_delay_ms);
    let registry = Registry::new(options.clone());
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let address = listener.local_addr()?;
    let tls = provisio_test_server_kit::Tls::generate(&[]);
    let _task = registry.serve(listener, &tls);
    std::fs::write(&args.ca_out, &tls.ca_pem)?;
    println!("EPP_HOST={}", address.ip());
    println!("EPP_PORT={}", address.port());
    for (n, (id, pw)) in options.registrars.iter().enumerate() {
        let suffix = if n == 0 { String::new() } else { format!("_{n}") };
        println!("EPP_CLID{suffix}={id}");
        println!("EPP_PW{suffix}={pw}");
    }
    println!("EPP_CA={}", std::fs::canonicalize(&args.ca_out)?.display());
    use std::io::Write;
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    Ok(())
}
