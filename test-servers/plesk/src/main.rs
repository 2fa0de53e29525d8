//! `provisio-plesk-test-server`: a Plesk XML API test server on its own.
//!
//! ```text
//! cargo run -p provisio-plesk-test-server -- --listen 127.0.0.1:8443
//! ```
//!
//! It prints where it listens, its credentials and the path of its CA
//! certificate as shell assignments, then serves until stopped.

use std::time::Duration;

use clap::Parser;
use provisio_plesk_test_server::{Options, Plesk};

/// A Plesk test server (the XML API, in memory).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: String,
    /// Serve plain HTTP (as Plesk does on 8880) instead of HTTPS.
    #[arg(long)]
    plain: bool,
    /// The administrator's password (random when absent).
    #[arg(long, env = "PLESK_TEST_PASSWORD")]
    password: Option<String>,
    /// The secret key for the `KEY` header (random when absent).
    #[arg(long, env = "PLESK_TEST_KEY")]
    key: Option<String>,
    /// The service plans the server offers.
    #[arg(long, value_delimiter = ',', default_value = "basic,standard,premium")]
    plans: Vec<String>,
    /// Milliseconds `webspace/add` takes to answer (the subscription exists at once).
    #[arg(long, default_value_t = 0)]
    add_delay_ms: u64,
    /// Where to write the CA certificate (PEM) clients must trust.
    #[arg(long, default_value = "plesk-test-server-ca.pem")]
    ca_out: std::path::PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut options = Options::default();
    if let Some(password) = args.password {
        options.password = password;
    }
    if let Some(key) = args.key {
        options.secret_key = key;
    }
    options.plans = args.plans;
    options.add_delay = Duration::from_millis(args.add_delay_ms);
    let plesk = Plesk::new(options.clone());
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let tls = (!args.plain).then(|| provisio_test_server_kit::Tls::generate(&[]));
    let running = provisio_test_server_kit::serve(listener, plesk.router(), tls);
    println!("PLESK_URL={}", running.url());
    println!("PLESK_LOGIN={}", options.login);
    println!("PLESK_PASSWORD={}", options.password);
    println!("PLESK_KEY={}", options.secret_key);
    if let Some(ca) = &running.ca_pem {
        std::fs::write(&args.ca_out, ca)?;
        println!("PLESK_CA={}", std::fs::canonicalize(&args.ca_out)?.display());
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    drop(running);
    Ok(())
}
