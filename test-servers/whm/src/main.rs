//! `provisio-whm-test-server`: a WHM API 1 test server on its own.
//!
//! ```text
//! cargo run -p provisio-whm-test-server -- --listen 127.0.0.1:2087
//! ```
//!
//! It prints where it listens, its credentials and the path of its CA
//! certificate as shell assignments, then serves until stopped.

use std::time::Duration;

use clap::Parser;
use provisio_whm_test_server::{Options, Whm};

/// A cPanel & WHM test server (WHM API 1, in memory).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:2087")]
    listen: String,
    /// Serve plain HTTP (as WHM does on 2086) instead of HTTPS.
    #[arg(long)]
    plain: bool,
    /// The root API token (random when absent).
    #[arg(long, env = "WHM_TEST_TOKEN")]
    token: Option<String>,
    /// The root password for HTTP Basic (random when absent).
    #[arg(long, env = "WHM_TEST_PASSWORD")]
    password: Option<String>,
    /// A reseller, as NAME:TOKEN (repeatable).
    #[arg(long = "reseller")]
    resellers: Vec<String>,
    /// The packages the server offers.
    #[arg(long, value_delimiter = ',', default_value = "basic,standard,premium")]
    packages: Vec<String>,
    /// Milliseconds `createacct` takes to answer (the account exists at once).
    #[arg(long, default_value_t = 0)]
    create_delay_ms: u64,
    /// Where to write the CA certificate (PEM) clients must trust.
    #[arg(long, default_value = "whm-test-server-ca.pem")]
    ca_out: std::path::PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut options = Options::default();
    if let Some(token) = args.token {
        options.root_token = token;
    }
    if let Some(password) = args.password {
        options.root_password = password;
    }
    for reseller in &args.resellers {
        let (name, token) = reseller.split_once(':').ok_or("--reseller takes NAME:TOKEN")?;
        options.resellers.push((name.to_owned(), token.to_owned()));
    }
    options.packages = args.packages;
    options.create_delay = Duration::from_millis(args.create_delay_ms);
    if args.plain {
        options.scheme = "http";
    }
    let whm = Whm::new(options.clone());
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let tls = (!args.plain).then(|| provisio_test_server_kit::Tls::generate(&[]));
    let running = provisio_test_server_kit::serve(listener, whm.router(), tls);
    println!("WHM_URL={}", running.url());
    println!("WHM_USER={}", options.root_user);
    println!("WHM_TOKEN={}", options.root_token);
    println!("WHM_PASSWORD={}", options.root_password);
    if let Some(ca) = &running.ca_pem {
        std::fs::write(&args.ca_out, ca)?;
        println!("WHM_CA={}", std::fs::canonicalize(&args.ca_out)?.display());
    }
    // Scripts read the lines above from a pipe: send them now.
    use std::io::Write;
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    drop(running);
    Ok(())
}
