//! `provisio-shop-test-server`: the drop-shipper test shop on its own.
//!
//! ```text
//! cargo run -p provisio-shop-test-server -- --listen 127.0.0.1:8770 --plain
//! ```
//!
//! It prints its URL, its API key and (over HTTPS) the path of its CA
//! certificate as shell assignments, then serves until stopped.

use std::time::Duration;

use clap::Parser;
use provisio_shop_test_server::{Options, Shop};

/// A drop-shipper test shop (orders in memory).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8770")]
    listen: String,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    plain: bool,
    /// The API key (a random one when absent).
    #[arg(long, env = "SHOP_API_KEY")]
    api_key: Option<String>,
    /// Seconds after which an accepted order ships.
    #[arg(long, default_value_t = 5)]
    ship_after_secs: u64,
    /// Where to write the CA certificate (PEM) clients must trust.
    #[arg(long, default_value = "shop-test-server-ca.pem")]
    ca_out: std::path::PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut options = Options { ship_after: Duration::from_secs(args.ship_after_secs), ..Options::default() };
    if let Some(key) = args.api_key {
        options.api_key = key;
    }
    let shop = Shop::new(options);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let tls = (!args.plain).then(|| provisio_test_server_kit::Tls::generate(&[]));
    let running = provisio_test_server_kit::serve(listener, shop.router(), tls);
    println!("SHOP_URL={}", running.url());
    println!("SHOP_API_KEY={}", shop.api_key());
    if let Some(ca) = &running.ca_pem {
        std::fs::write(&args.ca_out, ca)?;
        println!("SHOP_CA={}", std::fs::canonicalize(&args.ca_out)?.display());
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    drop(running);
    Ok(())
}
