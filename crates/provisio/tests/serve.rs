//! `provisio serve` as a real process: the quick start, and a crash test
//! that kills it with SIGKILL while provider calls are in flight.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TOKEN: &str = "serve-test-token";
const SECRET: &str = "Crash-Test-S3cret-77";

struct Server {
    child: Child,
    base: String,
    /// What the process prints, read as it comes (a full pipe would stall it).
    printed: Vec<std::thread::JoinHandle<String>>,
}

/// Reads a pipe to its end on a thread of its own.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(dir: &Path, port: u16) -> Server {
    start_with(dir, port, &[])
}

fn start_with(dir: &Path, port: u16, extra: &[&str]) -> Server {
    start_as(dir, port, extra, TOKEN)
}

fn start_as(dir: &Path, port: u16, extra: &[&str], token: &str) -> Server {
    start_env(dir, port, extra, token, &[])
}

fn start_env(dir: &Path, port: u16, extra: &[&str], token: &str, env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisio"))
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .envs(env.iter().copied())
        .current_dir(dir)
        .env("PROVISIO_ADMIN_TOKEN", token)
        .env("PROVISIO_LEASE_SECS", "2")
        .env("PROVISIO_RETRY_BASE_MS", "50")
        .env("PROVISIO_POLL_MS", "50")
        .env("PROVISIO_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("provisio starts");
    // Port 0: the server picks a free port itself (a port picked by the
    // test could be taken by another test's server first) and logs it.
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let printed = vec![
        drain(child.stdout.take().unwrap()),
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut text = String::new();
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("staff API listening")
                    && let Some(address) = listening_address(&line)
                {
                    let _ = address_tx.send(address);
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        }),
    ];
    let address = if port == 0 {
        address_rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| "127.0.0.1:0".into())
    } else {
        format!("127.0.0.1:{port}")
    };
    Server { child, base: format!("http://{address}"), printed }
}

/// The address in a "staff API listening" log line, text or JSON.
fn listening_address(line: &str) -> Option<String> {
    let start = line.find("127.0.0.1:")?;
    let digits: String = line[start + 10..].chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| format!("127.0.0.1:{digits}"))
}

impl Server {
    /// Stops the process and answers everything it printed.
    fn output(mut self, kill: bool) -> String {
        if kill {
            self.child.kill().unwrap(); // SIGKILL
        } else {
            unsafe_free_terminate(self.child.id());
        }
        self.child.wait().unwrap();
        self.printed()
    }

    fn printed(&mut self) -> String {
        self.printed.drain(..).map(|reader| reader.join().unwrap()).collect()
    }
}

impl Server {
    /// Waits for the process to exit by itself (it must, within `limit`);
    /// answers everything it printed.
    fn output_when_exited(mut self, limit: Duration) -> String {
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < limit, "the server kept running");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.printed()
    }
}

/// SIGTERM through the `kill` command (no unsafe code, no extra crate).
fn unsafe_free_terminate(pid: u32) {
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
}

async fn call(client: &reqwest::Client, method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = client.request(method, url).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.map(|r| r.status().is_success()).ok() != Some(true) {
        assert!(started.elapsed() < Duration::from_secs(20), "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn configuration_id(client: &reqwest::Client, base: &str, name: &str) -> i64 {
    let (_, list) = call(client, reqwest::Method::GET, format!("{base}/api/v1/configurations"), None).await;
    list.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["id"].as_i64().unwrap()
}

fn order(n: usize, product: &str) -> Value {
    let fields = match product {
        "demo-hosting" => json!({"domain": format!("crash{n}.example.net"), "username": format!("crash{n}")}),
        "demo-database" => json!({"database": format!("crash{n}")}),
        _ => json!({}),
    };
    json!({"id": format!("evt-{n}"), "type": "order.paid",
           "service": {"external_id": format!("contract-{n}"),
                       "client": {"external_id": "cust-1", "name": "Ann Lee", "email": "ann@example.com"},
                       "product": product, "fields": fields}})
}

/// Polls a service's detail until `check` holds (30 s at most).
async fn wait_for_service(client: &reqwest::Client, base: &str, service: i64, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (_, detail) = call(client, reqwest::Method::GET, format!("{base}/api/v1/services/{service}"), None).await;
        if check(&detail) {
            return detail;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "still waiting: {detail}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn file_contains(path: &Path, needle: &str) -> bool {
    std::fs::read(path).map(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes())).unwrap_or(false)
}

/// SIGTERM while calls run longer than the shutdown grace: the server stops
/// within the grace, not the calls' length, releasing the jobs still
/// running (not leaving them to their leases); the next server checks each
/// before calling again and makes each account once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_jobs_still_running_after_the_grace_and_the_next_server_finishes_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::sqlite(dir.path());
    sigterm_releases(dir, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_jobs_still_running_on_postgres_too() {
    sigterm_releases(tempfile::tempdir().unwrap(), Db::postgres().await).await;
}

async fn sigterm_releases(dir: tempfile::TempDir, db: Db) {
    provisio_sdk::http::install_crypto_provider();
    let client = reqwest::Client::new();
    let db_url = db.url();
    let first = start_with(dir.path(), 0, &["--shutdown-grace-secs", "1", "--db", &db_url]);
    wait_healthy(&client, &first.base).await;
    let base = first.base.clone();
    let hosting = configuration_id(&client, &base, "demo-hosting-eu").await;
    let slow = json!({"values": {"latency_ms": 8000}});
    let url = format!("{base}/api/v1/configurations/{hosting}");
    assert_eq!(call(&client, reqwest::Method::PATCH, url, Some(slow)).await.0, 200);
    for n in 0..3 {
        let (status, body) =
            call(&client, reqwest::Method::POST, format!("{base}/api/v1/events"), Some(order(n, "demo-hosting"))).await;
        assert_eq!(status, 202, "{body}");
    }
    let started = Instant::now();
    loop {
        let (_, running) =
            call(&client, reqwest::Method::GET, format!("{base}/api/v1/jobs?status=running"), None).await;
        if running.as_array().map(Vec::len) == Some(3) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the calls never started: {running}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopping = Instant::now();
    unsafe_free_terminate(first.child.id());
    first.output_when_exited(Duration::from_secs(6));
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "stopped after {:?}, not within the grace",
        stopping.elapsed()
    );

    // Released, each to be checked first: not left running until its lease ran out.
    let store = db.store().await;
    let jobs = store
        .read(|conn| {
            Box::pin(async move {
                let filter = provisio_store::jobs::JobFilter { limit: 100, ..Default::default() };
                provisio_store::jobs::list(conn, &filter).await
            })
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 3);
    for job in &jobs {
        assert_eq!((job.state.as_str(), job.reconcile), ("retrying", true), "{job:?}");
        assert!(job.message.as_deref().unwrap_or_default().contains("was stopped"), "{job:?}");
    }
    drop(store);

    let second = start_with(dir.path(), 0, &["--db", &db_url]);
    wait_healthy(&client, &second.base).await;
    let base = second.base.clone();
    let fast = json!({"values": {"latency_ms": 0}});
    let url = format!("{base}/api/v1/configurations/{hosting}");
    assert_eq!(call(&client, reqwest::Method::PATCH, url, Some(fast)).await.0, 200);
    let started = Instant::now();
    loop {
        let (_, active) =
            call(&client, reqwest::Method::GET, format!("{base}/api/v1/services?status=active"), None).await;
        if active.as_array().map(Vec::len) == Some(3) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{active}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.output(false);
    let census = provisio_demo::state::census(dir.path().join("provisio-demo.sqlite").to_str().unwrap()).await.unwrap();
    assert_eq!(census.services[&("shared-hosting".into(), "hosting-eu1".into())], 3, "one account per order");
    assert!(census.duplicates().is_empty(), "{:?}", census.duplicates());
}

/// Where a test's servers keep their store: SQLite files in the test's
/// directory, or a scratch PostgreSQL database.
enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(String, provisio_store_postgres::testing::Scratch),
}

impl Db {
    fn sqlite(dir: &Path) -> Db {
        Db::Sqlite(dir.join("provisio.db"))
    }

    async fn postgres() -> Db {
        let (url, scratch) = provisio_store_postgres::testing::scratch().await;
        Db::Postgres(url, scratch)
    }

    fn url(&self) -> String {
        match self {
            Db::Sqlite(path) => format!("sqlite://{}", path.display()),
            Db::Postgres(url, _) => url.clone(),
        }
    }

    async fn store(&self) -> provisio_store::Store {
        let options = provisio_store::StoreOptions::new(self.url());
        match self {
            Db::Sqlite(_) => provisio_store_sqlite::open(options).await.unwrap(),
            Db::Postgres(..) => provisio_store_postgres::open(options).await.unwrap(),
        }
    }

    /// Whether `needle` is anywhere in what the store holds (SQLite's
    /// files, a dump of the PostgreSQL database).
    fn holds(&self, needle: &str) -> bool {
        match self {
            Db::Sqlite(path) => std::fs::read_dir(path.parent().unwrap()).unwrap().any(|entry| {
                let path = entry.unwrap().path();
                path.file_name().unwrap().to_string_lossy().starts_with("provisio.db") && file_contains(&path, needle)
            }),
            Db::Postgres(_, scratch) => scratch.dump().windows(needle.len()).any(|w| w == needle.as_bytes()),
        }
    }
}

/// The blueprints whose setup is keyed by the service identifier, for the
/// invariants read back after a crash.
fn keyed_blueprints() -> Vec<&'static str> {
    provisio_providers::registry().blueprints().iter().filter(|b| !b.customer_names_services()).map(|b| b.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_flight_loses_no_event_and_creates_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::sqlite(dir.path());
    sigkill_mid_flight(dir, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_flight_loses_no_event_and_creates_nothing_twice_on_postgres() {
    sigkill_mid_flight(tempfile::tempdir().unwrap(), Db::postgres().await).await;
}

async fn sigkill_mid_flight(dir: tempfile::TempDir, db: Db) {
    provisio_sdk::http::install_crypto_provider();
    let port = free_port();
    let client = reqwest::Client::new();
    let url = db.url();
    let db_args = ["--db", url.as_str()];
    let first = start_with(dir.path(), port, &db_args);
    wait_healthy(&client, &first.base).await;
    let base = first.base.clone();

    // A slow provider (calls in flight for 1.5 s) with a secret credential.
    for name in ["demo-hosting-eu", "demo-coffee-machine"] {
        let id = configuration_id(&client, &base, name).await;
        let patch = json!({"values": {"latency_ms": 1500, "api_key": SECRET}});
        let (status, body) =
            call(&client, reqwest::Method::PATCH, format!("{base}/api/v1/configurations/{id}"), Some(patch)).await;
        assert_eq!(status, 200, "{body}");
    }
    const ORDERS: usize = 40;
    for n in 0..ORDERS {
        let product = if n % 2 == 0 { "demo-hosting" } else { "demo-coffee" };
        let (status, body) =
            call(&client, reqwest::Method::POST, format!("{base}/api/v1/events"), Some(order(n, product))).await;
        assert_eq!(status, 202, "{body}");
    }
    // Wait until calls are in flight, then pull the plug.
    let started = Instant::now();
    loop {
        let (_, running) =
            call(&client, reqwest::Method::GET, format!("{base}/api/v1/jobs?status=running"), None).await;
        if running.as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no job ever ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Orders keep arriving while the plug is pulled.
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let poster = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let mut answered = Vec::new();
            for n in ORDERS.. {
                if *stopped.borrow_and_update() {
                    break;
                }
                let product = if n % 2 == 0 { "demo-hosting" } else { "demo-coffee" };
                let (status, _) =
                    call(&client, reqwest::Method::POST, format!("{base}/api/v1/events"), Some(order(n, product)))
                        .await;
                answered.push((n, status));
                if status == 0 {
                    break;
                }
            }
            answered
        })
    };
    tokio::time::sleep(Duration::from_millis(900)).await;
    let mut logs = first.output(true);
    let _ = stop.send(true);
    let posted = poster.await.unwrap();
    assert!(posted.iter().any(|(_, status)| *status == 202), "orders were accepted while the server ran");

    // Restart on the same store: expired leases are taken back and reconciled.
    let second = start_with(dir.path(), port, &db_args);
    wait_healthy(&client, &second.base).await;
    // Billing sends again what it has no answer for: an accepted order is a
    // duplicate now (never lost), an unanswered one is new or a duplicate.
    for (n, status) in &posted {
        let product = if n % 2 == 0 { "demo-hosting" } else { "demo-coffee" };
        let (again, body) =
            call(&client, reqwest::Method::POST, format!("{base}/api/v1/events"), Some(order(*n, product))).await;
        assert_eq!(again, 202, "{body}");
        if *status == 202 {
            assert_eq!(body["duplicate"], true, "order {n} was accepted before the crash and lost");
        }
    }
    let orders = ORDERS + posted.len();
    let started = Instant::now();
    loop {
        let (_, active) =
            call(&client, reqwest::Method::GET, format!("{base}/api/v1/services?status=active&limit=1000"), None).await;
        let active = active.as_array().map(Vec::len).unwrap_or(0);
        if active == orders {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "only {active} of {orders} services became active");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, failed) = call(&client, reqwest::Method::GET, format!("{base}/api/v1/jobs?status=failed"), None).await;
    assert_eq!(failed, json!([]));
    logs.push_str(&second.output(false));

    // Counted at the provider: exactly one account and one cup per order.
    let census = provisio_demo::state::census(dir.path().join("provisio-demo.sqlite").to_str().unwrap()).await.unwrap();
    let hosting = (0..orders).filter(|n| n % 2 == 0).count() as i64;
    assert_eq!(census.services[&("shared-hosting".into(), "hosting-eu1".into())], hosting);
    assert_eq!(census.services[&("coffee".into(), "kitchen".into())], orders as i64 - hosting);
    assert!(census.duplicates().is_empty(), "{:?}", census.duplicates());
    // And from the database: one holder per name, one running job per
    // service, and every job the dead worker held was checked before it was sent again.
    let store = db.store().await;
    let keyed = keyed_blueprints();
    let violations = store
        .read(move |conn| Box::pin(async move { provisio_store::invariants::violations(conn, &keyed).await }))
        .await
        .unwrap();
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(logs.contains("took back jobs"), "the restart reclaimed the dead worker's jobs");

    // The secret is in no log line and nowhere in the store.
    assert!(!logs.contains(SECRET), "a log line holds the secret");
    assert!(!db.holds(SECRET), "the store holds the secret");
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_order_paid_turns_the_service_active_within_a_second() {
    provisio_sdk::http::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start(dir.path(), 0);
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    let event = json!({"id": "evt_123", "type": "order.paid", "occurred_at": "2026-11-27T12:00:00Z",
        "service": {"id": null, "external_id": "contract-42",
                    "client": {"external_id": "cust-7", "name": "Ann Lee", "email": "ann@example.com"},
                    "product": "demo-hosting", "fields": {"domain": "example.com", "username": "annlee"}},
        "data": {}});
    let sent = Instant::now();
    let (status, accepted) = call(&client, reqwest::Method::POST, format!("{base}/api/v1/events"), Some(event)).await;
    assert_eq!(status, 202, "{accepted}");
    let service = accepted["service_id"].as_i64().unwrap();
    loop {
        let (_, detail) = call(&client, reqwest::Method::GET, format!("{base}/api/v1/services/{service}"), None).await;
        if detail["service"]["status"] == "active" {
            assert_eq!(detail["service"]["provision_data"]["username"], "annlee");
            let job = detail["jobs"][0]["id"].as_i64().unwrap();
            let (_, job) = call(&client, reqwest::Method::GET, format!("{base}/api/v1/jobs/{job}"), None).await;
            assert_eq!(job["attempts"][0]["outcome"], "ok", "{job}");
            break;
        }
        assert!(sent.elapsed() < Duration::from_secs(1), "not active within a second: {detail}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The operator commands, against the same server.
    let cli = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_provisio"))
            .args(args)
            .args(["--server", &base, "--token", TOKEN])
            .output()
            .expect("provisio runs");
        (
            output.status.code().unwrap(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (code, out, err) = cli(&["services", "list", "--status", "active", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("contract-42"), "{out}");
    let overdue = json!({"id": "evt_124", "type": "contract.overdue", "service": {"id": service}}).to_string();
    // Followed to its end: a progress line, then the jobs as a table.
    let (code, out, err) = cli(&["events", "emit", &overdue, "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1/1 jobs ended"), "{err}");
    assert!(
        out.lines().next().unwrap().starts_with("id") && out.contains("suspend") && out.contains("succeeded"),
        "{out}"
    );
    let (code, _, err) = cli(&["events", "emit", r#"{"id": "bad"}"#]);
    assert_eq!(code, 2, "a 422 exits 2: {err}");
    assert!(err.contains("/type"), "{err}");
    let started = Instant::now();
    loop {
        let (_, out, _) = cli(&["services", "show", &service.to_string(), "--json"]);
        if out.contains("\"status\": \"suspended\"") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "not suspended: {out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, out, _) =
        cli(&["jobs", "list", "--service-id", &service.to_string(), "--status", "succeeded", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"suspend\"") && out.contains("\"create\""), "{out}");
    let (code, _, err) = cli(&["jobs", "retry", "1"]);
    assert_eq!(code, 1, "only failed jobs can be retried: {err}");
    assert!(err.contains("only failed jobs"), "{err}");
    // Tokens: made (secret printed once), listed without it, revoked.
    let (code, out, err) = cli(&["tokens", "create", "billing", "--scope", "operate", "--json"]);
    assert_eq!(code, 0, "{err}");
    let made: Value = serde_json::from_str(&out).unwrap();
    let secret = made["secret"].as_str().unwrap();
    let (code, out, _) = cli(&["tokens", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("billing") && !out.contains(secret), "{out}");
    let (code, _, err) = cli(&["tokens", "revoke", &made["id"].to_string()]);
    assert_eq!(code, 0, "{err}");
    // Reports: a table by default, CSV on request, bad input exit 2.
    let (code, out, err) = cli(&["report", "jobs"]);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("day         blueprint"), "{out}");
    assert!(out.contains("shared-hosting") && out.contains("demo-hosting-eu"), "{out}");
    let (code, out, _) = cli(&["report", "capacity", "--csv"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().next().unwrap(),
        "configuration,blueprint,enabled,live_services,all_services,max_services,used_percent"
    );
    let (code, _, err) = cli(&["report", "jobs", "--from", "yesterday"]);
    assert_eq!(code, 2, "{err}");

    // Import: databases made by hand on the demo database server (`provisio
    // call`, no owner mark) become services, page by page with a progress line.
    let database = configuration_id(&client, &base, "demo-database").await;
    let (_, stored) =
        call(&client, reqwest::Method::GET, format!("{base}/api/v1/configurations/{database}"), None).await;
    let values = stored["config_values"].to_string();
    for n in 0..5 {
        let params = json!({"database": format!("legacy{n}")}).to_string();
        let made = Command::new(env!("CARGO_BIN_EXE_provisio"))
            .args(["call", "databases/demo", "create", "--config", &values, "--params", &params])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    }
    let import = |extra: &[&str]| {
        let database = database.to_string();
        let mut args =
            vec!["import", database.as_str(), "--product", "demo-database", "--client", "1", "--page-size", "2"];
        args.extend_from_slice(extra);
        cli(&args)
    };
    let (code, out, err) = import(&["--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("5 of 5 listed: 5 would create, 0 matched, 0 skipped"), "{err}");
    assert!(out.lines().next().unwrap().contains("identifier") && out.contains("would_create"), "{out}");
    let (code, out, err) = import(&["--json"]);
    assert_eq!(code, 0, "{err}");
    let done: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((done["created"].as_u64(), done["resources"].as_array().unwrap().len()), (Some(5), 5), "{done:#}");
    let (code, _, err) = import(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 created, 5 matched"), "a second import changes nothing: {err}");
    let (code, _, err) = cli(&["import", &database.to_string(), "--product", "demo-hosting", "--client", "1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/product"), "{err}");
    server.output(false);
}

/// `order.paid` for a DNS product provisions a real PowerDNS zone,
/// `contract.overdue` suspends it, `contract.cancelled` removes it: checked
/// with DNS queries. Needs the PowerDNS of `scripts/test-servers`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_events_drive_a_real_powerdns_zone() {
    let Some([api, key, dns]) = provisio_conformance::test_servers([
        "PROVISIO_TEST_PDNS_API",
        "PROVISIO_TEST_PDNS_API_KEY",
        "PROVISIO_TEST_PDNS_DNS",
    ]) else {
        return;
    };
    provisio_sdk::http::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start(dir.path(), 0);
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    let post =
        |path: &str, body: Value| call(&client, reqwest::Method::POST, format!("{base}/api/v1{path}"), Some(body));

    let (status, configuration) = post(
        "/configurations",
        json!({"name": "pdns-1", "provider": "dns-hosting/powerdns",
        "values": {"api_url": api, "api_key": key, "nameservers": ["ns1.provisio-test.net", "ns2.provisio-test.net"]}}),
    )
    .await;
    assert_eq!(status, 201, "{configuration}");
    let (status, product) = post(
        "/products",
        json!({"slug": "zone", "name": "DNS zone", "blueprint": "dns-hosting",
        "deployment": {"type": "static", "configuration_id": configuration["id"]},
        "provision_fields": {"records": [{"name": "www", "type": "A", "records": ["192.0.2.80"]}]}}),
    )
    .await;
    assert_eq!(status, 201, "{product}");

    let zone = format!("{}.com", provisio_conformance::unique(10));
    let www = format!("www.{zone}");
    let event = |id: &str, kind: &str, service: Value| json!({"id": id, "type": kind, "service": service});
    let (status, accepted) = post(
        "/events",
        event(
            "z1",
            "order.paid",
            json!({"external_id": "zone-1", "product": "zone",
        "client": {"external_id": "c1", "name": "Ann Lee", "email": "ann@example.com"}, "fields": {"zone": zone}}),
        ),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let service = accepted["service_id"].as_i64().unwrap();
    let wait_for =
        |status: &'static str| wait_for_service(&client, &base, service, move |d| d["service"]["status"] == status);
    let detail = wait_for("active").await;
    assert_eq!(detail["service"]["identifier"], json!(zone));
    assert_eq!(provisio_conformance::dig(&dns, &www, "A"), "192.0.2.80");

    post("/events", event("z2", "contract.overdue", json!({"id": service}))).await;
    wait_for("suspended").await;
    assert_eq!(provisio_conformance::dig(&dns, &www, "A"), "REFUSED");

    // Suspended: not served, but still on the server (REFUSED alone cannot tell the two apart).
    let zone_at_server = |zone: String| {
        let (client, api, key) = (client.clone(), api.clone(), key.clone());
        async move {
            client
                .get(format!("{api}/api/v1/servers/localhost/zones/{zone}."))
                .header("X-API-Key", key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(zone_at_server(zone.clone()).await, 200, "a suspended zone is kept");

    post("/events", event("z3", "contract.cancelled", json!({"id": service}))).await;
    wait_for("terminated").await;
    assert_eq!(provisio_conformance::dig(&dns, &www, "A"), "REFUSED");
    assert_eq!(zone_at_server(zone.clone()).await, 404, "a terminated zone is gone from the server");
    let logs = server.output(false);
    assert!(!logs.contains(&key), "the API key is in no log line");
}

/// What an end-to-end test reads from a panel test server: an account's
/// package, whether it is suspended, its owner mark's home, and a switch for
/// slow account creation.
trait PanelView {
    /// The account's package, suspended flag and contact email; `None` if absent.
    fn account(&self, username: &str) -> Option<(String, bool, String)>;
    /// How many accounts the panel holds for `username`.
    fn count(&self, username: &str) -> usize;
    /// Makes account creation outlive a 1 s call deadline (or not).
    fn slow(&self, slow: bool);
}

impl PanelView for provisio_whm_test_server::Whm {
    fn account(&self, username: &str) -> Option<(String, bool, String)> {
        self.accounts().into_iter().find(|a| a.0 == username).map(|a| (a.1, a.3, a.4))
    }
    fn count(&self, username: &str) -> usize {
        self.accounts().iter().filter(|a| a.0 == username).count()
    }
    fn slow(&self, slow: bool) {
        self.set_create_delay(Duration::from_secs(if slow { 3 } else { 0 }));
    }
}

impl PanelView for provisio_plesk_test_server::Plesk {
    fn account(&self, username: &str) -> Option<(String, bool, String)> {
        let subscription = self.subscriptions().into_iter().find(|s| s.owner_login == username)?;
        Some((subscription.plan.unwrap_or_default(), subscription.status != 0, subscription.owner_external_id))
    }
    fn count(&self, username: &str) -> usize {
        self.subscriptions().iter().filter(|s| s.owner_login == username).count()
    }
    fn slow(&self, slow: bool) {
        self.set_add_delay(Duration::from_secs(if slow { 3 } else { 0 }));
    }
}

/// Through `provisio serve`, a hosting product on a panel test server (over
/// HTTPS, trusted through its CA): order paid makes the account with the
/// package asked for and a username made from the domain; overdue suspends
/// it there; upgraded changes its package; the sign-on link works once;
/// cancelled removes it. A second order whose account creation outlives the
/// call deadline is `outcome_unknown`, reconciled with `get_info`: one
/// account, never two. Nothing of `secret` reaches the logs.
async fn a_panel_account_lives_through_billing_events(
    provider: &str,
    values: Value,
    panel: &impl PanelView,
    ca_pem: &str,
    secret: &str,
) {
    provisio_sdk::http::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start_with(dir.path(), 0, &["--call-timeout-secs", "1"]);
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    let post =
        |path: &str, body: Value| call(&client, reqwest::Method::POST, format!("{base}/api/v1{path}"), Some(body));

    let (status, configuration) =
        post("/configurations", json!({"name": "panel-1", "provider": provider, "values": values})).await;
    assert_eq!(status, 201, "{configuration}");
    let (status, product) = post(
        "/products",
        json!({"slug": "hosting-basic", "name": "Hosting Basic", "blueprint": "shared-hosting",
               "deployment": {"type": "static", "configuration_id": configuration["id"]},
               "provision_fields": {"package_name": "basic"}}),
    )
    .await;
    assert_eq!(status, 201, "{product}");

    let domain = format!("shop{}.example.com", provisio_conformance::unique(5));
    let client_facts = json!({"external_id": "c1", "name": "Ann Lee", "email": "ann@example.com"});
    let (status, accepted) = post(
        "/events",
        json!({"id": "p1", "type": "order.paid", "service": {"external_id": "p-1", "product": "hosting-basic",
               "client": client_facts, "fields": {"domain": domain}}}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let service = accepted["service_id"].as_i64().unwrap();
    let event =
        |id: &str, kind: &str, data: Value| json!({"id": id, "type": kind, "service": {"id": service}, "data": data});
    let wait_for = |check: fn(&Value) -> bool| wait_for_service(&client, &base, service, check);
    let detail = wait_for(|d| d["service"]["status"] == "active").await;
    let username = detail["service"]["identifier"].as_str().unwrap().to_owned();
    assert!(domain.starts_with(&username), "{username} is made from {domain}");
    let (package, suspended, mark) = panel.account(&username).expect("the account exists on the panel");
    assert_eq!((package.as_str(), suspended), ("basic", false));
    assert!(mark.contains("prv-"), "the account carries the service's mark: {mark}");

    post("/events", event("p2", "contract.overdue", json!({}))).await;
    wait_for(|d| d["service"]["status"] == "suspended").await;
    assert!(panel.account(&username).unwrap().1, "suspended on the panel");
    post("/events", event("p3", "contract.upgraded", json!({"package_name": "standard"}))).await;
    wait_for(|d| d["service"]["provision_data"]["package_name"] == "standard").await;
    assert_eq!(panel.account(&username).unwrap().0, "standard");
    post("/events", event("p4", "contract.unsuspended", json!({}))).await;
    wait_for(|d| d["service"]["status"] == "active").await;

    // Single sign-on: the link opens the panel once.
    let (status, login) = post(&format!("/services/{service}/actions/get_login_url"), json!({})).await;
    assert_eq!(status, 200, "{login}");
    let url = login["envelope"]["data"]["login_url"].as_str().expect("a login URL").to_owned();
    let tls = provisio_sdk::tls::client_config(Some(ca_pem)).unwrap();
    let browser = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(browser.get(&url).send().await.unwrap().status(), 302);
    assert_eq!(browser.get(&url).send().await.unwrap().status(), 401, "the link works once");

    post("/events", event("p5", "contract.cancelled", json!({}))).await;
    wait_for(|d| d["service"]["status"] == "terminated").await;
    assert!(panel.account(&username).is_none(), "gone from the panel");

    // Account creation outlives the 1 s call deadline: outcome_unknown, then
    // reconciled by get_info on the retry; one account.
    panel.slow(true);
    let slow_name = format!("slow{}", provisio_conformance::unique(4));
    let (status, accepted) = post(
        "/events",
        json!({"id": "p6", "type": "order.paid", "service": {"external_id": "p-2", "product": "hosting-basic",
               "client": {"external_id": "c1", "name": "Ann Lee", "email": "ann@example.com"},
               "fields": {"domain": format!("{slow_name}.example.com"), "username": slow_name}}}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let slow = accepted["service_id"].as_i64().unwrap();
    let detail = wait_for_service(&client, &base, slow, |d| d["service"]["status"] == "active").await;
    panel.slow(false);
    let job = detail["jobs"].as_array().unwrap().iter().find(|j| j["function"] == "create").unwrap().clone();
    let (_, job) = call(&client, reqwest::Method::GET, format!("{base}/api/v1/jobs/{}", job["id"]), None).await;
    let attempts = job["attempts"].as_array().map(Vec::len).unwrap_or_default();
    assert!(attempts >= 2, "the first attempt's outcome was unknown: {job:#}");
    assert!(job.to_string().contains("outcome_unknown"), "{job:#}");
    assert!(job.to_string().contains("Adopted"), "reconciled, not created again: {job:#}");
    assert_eq!(panel.count(&slow_name), 1);

    let logs = server.output(false);
    assert!(!logs.contains(secret), "the panel's credential is in no log line");
}

/// The seed's drop shipper through `provisio serve`: a product of
/// `physical-goods/http` configured for the test shop (over HTTPS, its CA
/// trusted), as `examples/generic-http/shop.json` gives it. `invoice.paid`
/// places one order even though the shop takes the first call and answers
/// it only after the 1 s deadline (the retry carries the same idempotency
/// key, and the shop answers the order already placed); `contract.cancelled`
/// cancels it at the shop. The shop's key is in no log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_paid_places_one_order_at_the_shop_through_a_timeout_and_cancelled_cancels_it() {
    use provisio_shop_test_server::{FaultRequest, Options, Shop};
    provisio_sdk::http::install_crypto_provider();
    let shop = Shop::new(Options { ship_after: Duration::from_secs(600), ..Options::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = provisio_test_server_kit::Tls::generate(&[]);
    let ca = tls.ca_pem.clone();
    let shop_server = provisio_test_server_kit::serve(listener, shop.router(), Some(tls));
    let mut values: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/generic-http/shop.json"))
            .unwrap(),
    )
    .unwrap();
    values["base_url"] = json!(format!("{}/v1", shop_server.url()));
    values["api_key"] = json!(shop.api_key());
    values["ca_cert_pem"] = json!(ca);

    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start_with(dir.path(), 0, &["--call-timeout-secs", "1"]);
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    let post =
        |path: &str, body: Value| call(&client, reqwest::Method::POST, format!("{base}/api/v1{path}"), Some(body));
    let (status, configuration) =
        post("/configurations", json!({"name": "shop-1", "provider": "physical-goods/http", "values": values})).await;
    assert_eq!(status, 201, "{configuration}");
    let (status, tested) = post(&format!("/configurations/{}/test", configuration["id"]), json!({})).await;
    assert_eq!(status, 200, "{tested}");
    let (status, product) = post(
        "/products",
        json!({"slug": "mug", "name": "Red mug", "blueprint": "physical-goods",
               "deployment": {"type": "static", "configuration_id": configuration["id"]},
               "provision_fields": {"sku": "MUG-RED", "quantity": 2}}),
    )
    .await;
    assert_eq!(status, 201, "{product}");

    // The shop takes the next call, then holds its answer past the deadline.
    let faults =
        shop.set_faults(&FaultRequest { timeout_next: Some(1), hold_ms: Some(2500), ..FaultRequest::default() });
    assert_eq!(faults["timeout_next"], 1);
    let ship_to =
        json!({"name": "Ann Lee", "line1": "1 High St", "city": "York", "postcode": "YO1 7HH", "country": "GB"});
    let (status, accepted) = post(
        "/events",
        json!({"id": "inv-1", "type": "invoice.paid", "service": {"external_id": "mug-1", "product": "mug",
               "client": {"external_id": "c1", "name": "Ann Lee", "email": "ann@example.com"},
               "fields": {"ship_to": ship_to}}}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let service = accepted["service_id"].as_i64().unwrap();
    let detail = wait_for_service(&client, &base, service, |d| d["service"]["status"] == "active").await;
    let orders = shop.orders();
    assert_eq!(orders.len(), 1, "one order, not two: {orders:?}");
    assert_eq!(detail["service"]["identifier"], json!(orders[0].id));
    assert_eq!((orders[0].sku.as_str(), orders[0].quantity, orders[0].reference.as_str()), ("MUG-RED", 2, "mug-1"));
    assert_eq!(orders[0].ship_to.city, "York");
    let job = detail["jobs"].as_array().unwrap().iter().find(|j| j["function"] == "place_order").unwrap().clone();
    let (_, job) = call(&client, reqwest::Method::GET, format!("{base}/api/v1/jobs/{}", job["id"]), None).await;
    assert!(job["attempts"].as_array().map(Vec::len).unwrap_or_default() >= 2, "the first answer was lost: {job:#}");
    assert!(job.to_string().contains("outcome_unknown"), "{job:#}");

    let (status, _) =
        post("/events", json!({"id": "inv-2", "type": "contract.cancelled", "service": {"id": service}})).await;
    assert_eq!(status, 202);
    wait_for_service(&client, &base, service, |d| d["service"]["status"] == "terminated").await;
    assert_eq!(shop.orders()[0].status, "cancelled");
    assert_eq!(shop.orders().len(), 1);
    assert!(!server.output(false).contains(shop.api_key()), "the shop's key is in no log line");
}

/// An external provider that crashes, hangs and writes garbage, through
/// `provisio serve`: each of its jobs records a clear error, the demo
/// coffee machine's orders placed meanwhile are all brewed, and the server
/// answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_external_provider_neither_stops_the_worker_nor_delays_other_providers() {
    provisio_sdk::http::install_crypto_provider();
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/../provisio-external/tests/misbehaving.py");
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start_with(dir.path(), 0, &["--call-timeout-secs", "3", "--external-provider", program]);
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    let post =
        |path: &str, body: Value| call(&client, reqwest::Method::POST, format!("{base}/api/v1{path}"), Some(body));
    // Listed by the API like a compiled-in provider, with only the functions it has.
    let (_, listed) =
        call(&client, reqwest::Method::GET, format!("{base}/api/v1/providers?blueprint=coffee"), None).await;
    let external = listed.as_array().unwrap().iter().find(|p| p["address"] == "coffee/misbehaving").cloned();
    assert!(external.is_some_and(|p| p["functions"].as_array().unwrap().len() == 2), "{listed}");
    let mut products = Vec::new();
    // The demo machine brews at once, so any wait is the hanging provider's.
    for (name, provider, values) in
        [("bad", "coffee/misbehaving", json!({})), ("good", "coffee/demo", json!({"operation_secs": 0}))]
    {
        let (status, configuration) =
            post("/configurations", json!({"name": name, "provider": provider, "values": values})).await;
        assert_eq!(status, 201, "{configuration}");
        let (status, product) = post(
            "/products",
            json!({"slug": name, "name": name, "blueprint": "coffee",
                   "deployment": {"type": "static", "configuration_id": configuration["id"]},
                   "provision_fields": {"size": "small"}}),
        )
        .await;
        assert_eq!(status, 201, "{product}");
        products.push(name);
    }
    let order = |id: &str, product: &str, name: &str| {
        json!({"id": id, "type": "order.paid", "service": {"external_id": id, "product": product,
               "client": {"external_id": "c1", "name": "Ann Lee", "email": "ann@example.com"},
               "fields": {"name": name}}})
    };
    let mut bad = Vec::new();
    for how in ["hang", "crash", "garbage"] {
        let (status, accepted) = post("/events", order(&format!("bad-{how}"), "bad", how)).await;
        assert_eq!(status, 202, "{accepted}");
        bad.push((how, accepted["service_id"].as_i64().unwrap()));
    }
    let started = Instant::now();
    let mut good = Vec::new();
    for n in 0..5 {
        let (status, accepted) = post("/events", order(&format!("good-{n}"), "good", "Joe")).await;
        assert_eq!(status, 202, "{accepted}");
        good.push(accepted["service_id"].as_i64().unwrap());
    }
    for service in good {
        wait_for_service(&client, &base, service, |d| d["service"]["status"] == "active").await;
    }
    assert!(started.elapsed() < Duration::from_secs(3), "the demo's orders waited for the hanging provider");
    for (how, service) in bad {
        let says = match how {
            "hang" => "did not answer before the deadline",
            "crash" => "exited",
            _ => "not JSON",
        };
        let detail = wait_for_service(&client, &base, service, |d| {
            d["jobs"].as_array().is_some_and(|jobs| jobs.iter().any(|j| j["message"].as_str().is_some()))
        })
        .await;
        let job = detail["jobs"].as_array().unwrap().iter().find(|j| j["function"] == "brew").unwrap().clone();
        let (_, job) = call(&client, reqwest::Method::GET, format!("{base}/api/v1/jobs/{}", job["id"]), None).await;
        assert!(job.to_string().contains(says), "{how}: expected `{says}` in {job:#}");
    }
    wait_healthy(&client, &server.base).await;
    let logs = server.output(false);
    assert!(!logs.contains("panicked"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_events_drive_a_cpanel_account_on_the_whm_test_server() {
    let whm = provisio_whm_test_server::Whm::new(provisio_whm_test_server::Options::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let panel =
        provisio_test_server_kit::serve(listener, whm.router(), Some(provisio_test_server_kit::Tls::generate(&[])));
    let token = whm.options().root_token.clone();
    let ca = panel.ca_pem.clone().unwrap();
    let values = json!({"api_url": panel.url(), "username": "root", "api_token": token, "ca_cert_pem": ca});
    a_panel_account_lives_through_billing_events("shared-hosting/cpanel", values, &whm, &ca, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_events_drive_a_plesk_account_on_the_plesk_test_server() {
    let plesk = provisio_plesk_test_server::Plesk::new(provisio_plesk_test_server::Options::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let panel =
        provisio_test_server_kit::serve(listener, plesk.router(), Some(provisio_test_server_kit::Tls::generate(&[])));
    let key = plesk.options().secret_key.clone();
    let ca = panel.ca_pem.clone().unwrap();
    let values = json!({"api_url": panel.url(), "secret_key": key, "ca_cert_pem": ca});
    a_panel_account_lives_through_billing_events("shared-hosting/plesk", values, &plesk, &ca, &key).await;
}

/// Dynamic deployment over two cPanel servers (two WHM test servers), each
/// with room for two accounts (and the demo's hosting server beside them,
/// which the product's attributes leave out): four orders fill both, least
/// used first, and a fifth fails for want of capacity without any call to a
/// panel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpanel_servers_fill_by_their_capacity_in_dynamic_deployment() {
    provisio_sdk::http::install_crypto_provider();
    let mut panels = Vec::new();
    for _ in 0..2 {
        let whm = provisio_whm_test_server::Whm::new(provisio_whm_test_server::Options::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running =
            provisio_test_server_kit::serve(listener, whm.router(), Some(provisio_test_server_kit::Tls::generate(&[])));
        panels.push((whm, running));
    }
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start(dir.path(), 0);
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    let post =
        |path: &str, body: Value| call(&client, reqwest::Method::POST, format!("{base}/api/v1{path}"), Some(body));
    for (n, (whm, running)) in panels.iter().enumerate() {
        let values =
            json!({"api_url": running.url(), "api_token": whm.options().root_token, "ca_cert_pem": running.ca_pem});
        let (status, made) = post(
            "/configurations",
            json!({"name": format!("whm-{n}"), "provider": "shared-hosting/cpanel", "max_services": 2,
                   "attributes": {"panel": "cpanel"}, "values": values}),
        )
        .await;
        assert_eq!(status, 201, "{made}");
    }
    let (status, product) = post(
        "/products",
        json!({"slug": "cp-dyn", "name": "cPanel anywhere", "blueprint": "shared-hosting",
               "deployment": {"type": "dynamic", "strategy": "least_used", "attributes": {"panel": "cpanel"}},
               "provision_fields": {"package_name": "basic"}}),
    )
    .await;
    assert_eq!(status, 201, "{product}");
    let mut services = Vec::new();
    for n in 0..5 {
        let (status, accepted) = post(
            "/events",
            json!({"id": format!("d{n}"), "type": "order.paid", "service": {"external_id": format!("d-{n}"), "product": "cp-dyn",
                   "client": {"external_id": "c1", "name": "Ann Lee", "email": "ann@example.com"},
                   "fields": {"domain": format!("site{n}{}.example.com", provisio_conformance::unique(4))}}}),
        )
        .await;
        assert_eq!(status, 202, "{accepted}");
        services.push(accepted["service_id"].as_i64().unwrap());
    }
    let mut failed = 0;
    for service in services {
        let detail = wait_for_service(&client, &base, service, |d| {
            matches!(d["service"]["status"].as_str(), Some("active" | "failed"))
        })
        .await;
        if detail["service"]["status"] == "failed" {
            failed += 1;
            assert!(detail.to_string().contains("No capacity"), "{detail:#}");
        }
    }
    assert_eq!(failed, 1, "the fifth order finds no room");
    assert_eq!(panels.iter().map(|(whm, _)| whm.accounts().len()).collect::<Vec<_>>(), [2, 2]);
}

/// An EPP test registry on a free loopback port, over TLS with its own CA:
/// the registry, its port, its TLS (the CA clients trust) and its task.
async fn epp_registry(
    options: provisio_epp_test_server::Options,
) -> (provisio_epp_test_server::Registry, u16, provisio_test_server_kit::Tls, tokio::task::JoinHandle<()>) {
    let registry = provisio_epp_test_server::Registry::new(options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = provisio_test_server_kit::Tls::generate(&[]);
    let task = registry.serve(listener, &tls);
    (registry, port, tls, task)
}

/// Through `provisio serve`, a domain product on the EPP test registry:
/// order paid registers the domain with the contacts and name servers
/// asked; contract renewed moves the expiry one year, once, even when the
/// registry's answer to the first renew is lost; staff change the name
/// servers, lock it and read its EPP code. Every frame validates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_events_drive_a_domain_at_the_epp_test_registry() {
    provisio_sdk::http::install_crypto_provider();
    let (registry, port, tls, _registry_task) = epp_registry(provisio_epp_test_server::Options {
        transfer_after: Duration::from_millis(500),
        ..provisio_epp_test_server::Options::default()
    })
    .await;
    let (clid, password) = registry.options().registrars[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start_with(dir.path(), 0, &["--call-timeout-secs", "5", "--notice-interval-secs", "0.2"]);
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    let post =
        |path: &str, body: Value| call(&client, reqwest::Method::POST, format!("{base}/api/v1{path}"), Some(body));
    let values =
        json!({"host": "localhost", "port": port, "username": clid, "password": password, "ca_cert_pem": tls.ca_pem});
    let (status, configuration) =
        post("/configurations", json!({"name": "registry-1", "provider": "domain-names/epp", "values": values})).await;
    assert_eq!(status, 201, "{configuration}");
    let (status, product) = post(
        "/products",
        json!({"slug": "dot-com", "name": ".com domain", "blueprint": "domain-names",
               "deployment": {"type": "static", "configuration_id": configuration["id"]}}),
    )
    .await;
    assert_eq!(status, 201, "{product}");
    let domain = format!("{}.com", provisio_conformance::unique(10));
    let registrant = json!({"name": "Ann Lee", "email": "ann@example.com", "phone": "+442071234567",
                            "address1": "1 High Street", "city": "London", "postcode": "N1 1AA", "country_code": "GB"});
    let (status, accepted) = post(
        "/events",
        json!({"id": "d1", "type": "order.paid", "service": {"external_id": "dom-1", "product": "dot-com",
               "client": {"external_id": "c1", "name": "Ann Lee", "email": "ann@example.com"},
               "fields": {"domain": domain, "years": 1, "contacts": {"registrant": registrant},
                          "nameservers": ["ns1.example.net", "ns2.example.net"]}}}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let service = accepted["service_id"].as_i64().unwrap();
    let wait_for = |check: fn(&Value) -> bool| wait_for_service(&client, &base, service, check);
    wait_for(|d| d["service"]["status"] == "active").await;
    let (ns, registrant_id, _) = registry.domain_details(&domain).expect("registered at the registry");
    assert_eq!(ns, ["ns1.example.net", "ns2.example.net"]);
    assert_eq!(registry.contact_email(&registrant_id).as_deref(), Some("ann@example.com"));
    let (_, registered) = registry.domain(&domain).unwrap();

    // The registry renews, and the answer is lost: the retry must not renew again.
    registry.drop_answer_to("renew");
    post("/events", json!({"id": "d2", "type": "contract.renewed", "service": {"id": service}, "data": {"years": 1}}))
        .await;
    let detail = wait_for_service(&client, &base, service, |d| {
        d["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().any(|j| j["function"] == "renew" && j["state"] == "succeeded"))
    })
    .await;
    let (_, renewed) = registry.domain(&domain).unwrap();
    assert_eq!(renewed, registered.checked_add_months(chrono::Months::new(12)).unwrap(), "renewed exactly once");
    let renew = detail["jobs"].as_array().unwrap().iter().find(|j| j["function"] == "renew").unwrap().clone();
    let (_, renew) = call(&client, reqwest::Method::GET, format!("{base}/api/v1/jobs/{}", renew["id"]), None).await;
    assert!(renew.to_string().contains("outcome_unknown"), "the first answer was lost: {renew:#}");

    let act = |function: &str, args: Value| post(&format!("/services/{service}/actions/{function}"), args);
    let (status, changed) =
        act("update_nameservers", json!({"nameservers": ["ns3.example.net", "ns4.example.net"]})).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(registry.domain_details(&domain).unwrap().0, ["ns3.example.net", "ns4.example.net"]);
    let (status, locked) = act("set_lock", json!({"locked": true})).await;
    assert_eq!(status, 200, "{locked}");
    assert!(registry.domain_details(&domain).unwrap().2.contains(&"clientTransferProhibited".to_owned()));
    let (status, code) = act("get_epp_code", json!({})).await;
    assert_eq!(status, 200, "{code}");
    assert_eq!(code["envelope"]["data"]["epp_code"].as_str(), registry.auth_info(&domain).as_deref());

    // Another registrar takes the domain away; the registry says so by poll
    // message, and the service ends, recorded before the message is acknowledged.
    assert!(registry.request_transfer_away(&domain, "other-registrar"));
    let detail = wait_for(|d| d["service"]["status"] == "terminated").await;
    assert!(detail.to_string().contains("Transferred away"), "{detail:#}");
    let (_, listed) =
        call(&client, reqwest::Method::GET, format!("{base}/api/v1/services/{service}/events"), None).await;
    let away = listed.as_array().unwrap().iter().filter(|e| e["type"] == "registry.transferred_away").count();
    assert_eq!(away, 1, "one event for the transfer away: {listed:#}");
    assert_eq!(registry.queued(&clid), 0, "every message was acknowledged, after it was stored");
    assert_eq!(registry.invalid_commands(), 0, "{:?}", registry.last_invalid());
    assert_eq!(registry.invalid_answers(), 0, "{:?}", registry.last_invalid());
    assert!(!server.output(false).contains(&password), "the registrar's password is in no log line");
}

/// A transfer in through `provisio serve`: the order runs `transfer`, the
/// registry answers pending and the service waits, provisioning; when the
/// registry approves it, its poll message activates the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_in_completes_later_and_its_registry_message_activates_the_service() {
    provisio_sdk::http::install_crypto_provider();
    let (registry, port, tls, _registry_task) = epp_registry(provisio_epp_test_server::Options {
        transfer_after: Duration::from_secs(2),
        ..provisio_epp_test_server::Options::default()
    })
    .await;
    let (clid, password) = registry.options().registrars[0].clone();
    let domain = format!("{}.org", provisio_conformance::unique(10));
    registry.add_domain("other-registrar", &domain, "Move-Me-123");
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start_with(dir.path(), 0, &["--notice-interval-secs", "0.2"]);
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    let post =
        |path: &str, body: Value| call(&client, reqwest::Method::POST, format!("{base}/api/v1{path}"), Some(body));
    let values =
        json!({"host": "localhost", "port": port, "username": clid, "password": password, "ca_cert_pem": tls.ca_pem});
    let (_, configuration) =
        post("/configurations", json!({"name": "registry-1", "provider": "domain-names/epp", "values": values})).await;
    let (status, product) = post(
        "/products",
        json!({"slug": "org-transfer", "name": ".org transfer", "blueprint": "domain-names", "setup_function": "transfer",
               "deployment": {"type": "static", "configuration_id": configuration["id"]}}),
    )
    .await;
    assert_eq!(status, 201, "{product}");
    let (status, accepted) = post(
        "/events",
        json!({"id": "t1", "type": "order.paid", "service": {"external_id": "org-1", "product": "org-transfer",
               "client": {"external_id": "c1", "name": "Ann Lee", "email": "ann@example.com"},
               "fields": {"domain": domain, "epp_code": "Move-Me-123"}}}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let service = accepted["service_id"].as_i64().unwrap();
    // The transfer is requested and pending: the service waits.
    let waiting = wait_for_service(&client, &base, service, |d| {
        d["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().any(|j| j["function"] == "transfer" && j["state"] == "succeeded"))
    })
    .await;
    assert_eq!(waiting["service"]["status"], "provisioning", "{waiting:#}");
    assert_eq!(registry.domain(&domain).unwrap().0, "other-registrar");
    // The registry approves it; its message activates the service.
    let detail = wait_for_service(&client, &base, service, |d| d["service"]["status"] == "active").await;
    assert!(detail.to_string().contains("Transferred in"), "{detail:#}");
    assert_eq!(registry.domain(&domain).unwrap().0, clid);
    assert!(!server.output(false).contains("Move-Me-123"), "the transfer code is in no log line");
}

/// Through `provisio serve`, a domain product on a registrar's test server
/// (`provider` with `values`): order paid registers it with the contacts and
/// name servers asked; contract renewed moves its expiry one year, once,
/// though `slow_renew` makes the first renew's answer come after the call's
/// deadline; staff change the name servers, lock it and ask for its EPP code
/// (`epp_code`: answered, or unsupported where the registrar only e-mails
/// it). `expiry` reads the domain's expiry at the registrar; nothing of
/// `secret` reaches the logs.
async fn a_registrar_domain_lives_through_billing_events(
    provider: &str,
    values: Value,
    secret: &str,
    expiry: impl Fn(&str) -> Option<chrono::DateTime<chrono::Utc>>,
    slow_renew: impl Fn(),
    epp_code: bool,
) {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start_with(dir.path(), 0, &["--call-timeout-secs", "1"]);
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    let post =
        |path: &str, body: Value| call(&client, reqwest::Method::POST, format!("{base}/api/v1{path}"), Some(body));
    let (status, configuration) =
        post("/configurations", json!({"name": "registrar-1", "provider": provider, "values": values})).await;
    assert_eq!(status, 201, "{configuration}");
    post(
        "/products",
        json!({"slug": "dot-com", "name": ".com", "blueprint": "domain-names",
               "deployment": {"type": "static", "configuration_id": configuration["id"]}}),
    )
    .await;
    let domain = format!("{}.com", provisio_conformance::unique(10));
    let registrant = json!({"name": "Ann Lee", "email": "ann@example.com", "phone": "+442071234567",
                            "address1": "1 High Street", "city": "London", "postcode": "N1 1AA", "country_code": "GB"});
    let (status, accepted) = post(
        "/events",
        json!({"id": "r1", "type": "order.paid", "service": {"external_id": "dom-1", "product": "dot-com",
               "client": {"external_id": "c1", "name": "Ann Lee", "email": "ann@example.com"},
               "fields": {"domain": domain, "contacts": {"registrant": registrant},
                          "nameservers": ["ns1.example.net", "ns2.example.net"]}}}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let service = accepted["service_id"].as_i64().unwrap();
    let detail = wait_for_service(&client, &base, service, |d| d["service"]["status"] == "active").await;
    assert_eq!(detail["service"]["provision_data"]["nameservers"], json!(["ns1.example.net", "ns2.example.net"]));
    let registered = expiry(&domain).expect("registered at the registrar");

    // The renew takes effect, but its answer comes after the deadline.
    slow_renew();
    post("/events", json!({"id": "r2", "type": "contract.renewed", "service": {"id": service}, "data": {"years": 1}}))
        .await;
    wait_for_service(&client, &base, service, |d| {
        d["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().any(|j| j["function"] == "renew" && j["state"] == "succeeded"))
    })
    .await;
    let renewed = expiry(&domain).unwrap();
    assert_eq!(renewed, registered.checked_add_months(chrono::Months::new(12)).unwrap(), "renewed exactly once");

    let act = |function: &str, args: Value| post(&format!("/services/{service}/actions/{function}"), args);
    let (status, changed) =
        act("update_nameservers", json!({"nameservers": ["ns3.example.net", "ns4.example.net"]})).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["envelope"]["data"]["nameservers"], json!(["ns3.example.net", "ns4.example.net"]));
    let (_, locked) = act("set_lock", json!({"locked": true})).await;
    assert_eq!(locked["envelope"]["data"]["locked"], true, "{locked}");
    let (_, code) = act("get_epp_code", json!({})).await;
    if epp_code {
        assert!(code["envelope"]["data"]["epp_code"].as_str().is_some_and(|c| c.len() >= 6), "{code}");
    } else {
        assert!(code.to_string().contains("unsupported"), "{code}");
    }
    assert!(!server.output(false).contains(secret), "the account's credential is in no log line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_events_drive_a_domain_in_the_hexonet_test_server() {
    provisio_sdk::http::install_crypto_provider();
    let hexonet = provisio_hexonet_test_server::Hexonet::new(provisio_hexonet_test_server::Options::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway =
        provisio_test_server_kit::serve(listener, hexonet.router(), Some(provisio_test_server_kit::Tls::generate(&[])));
    let (login, password) = hexonet.options().accounts[0].clone();
    let values = json!({"api_url": format!("{}/api/call.cgi", gateway.url()), "entity": "1234", "login": login,
                        "password": password, "ca_cert_pem": gateway.ca_pem});
    a_registrar_domain_lives_through_billing_events(
        "domain-names/hexonet",
        values,
        &password,
        |domain| hexonet.domain(domain).map(|(_, expires)| expires),
        || hexonet.slow_answer_to("RenewDomain", Duration::from_secs(2)),
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_events_drive_a_domain_in_the_enom_test_server() {
    provisio_sdk::http::install_crypto_provider();
    let enom = provisio_enom_test_server::Enom::new(provisio_enom_test_server::Options::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api =
        provisio_test_server_kit::serve(listener, enom.router(), Some(provisio_test_server_kit::Tls::generate(&[])));
    let (uid, token) = enom.options().accounts[0].clone();
    let values = json!({"api_url": format!("{}/interface.asp", api.url()), "uid": uid, "api_token": token,
                        "ca_cert_pem": api.ca_pem});
    // Enom only e-mails the EPP code to the registrant: the API says so.
    a_registrar_domain_lives_through_billing_events(
        "domain-names/enom",
        values,
        &token,
        |domain| enom.domain(domain).map(|(_, expires)| expires),
        || enom.slow_answer_to("Extend", Duration::from_secs(2)),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_events_drive_a_uk_domain_at_the_nominet_test_registry() {
    provisio_sdk::http::install_crypto_provider();
    let (registry, port, tls, _registry_task) = epp_registry(provisio_epp_test_server::Options::nominet()).await;
    let (tag, password) = registry.options().registrars[0].clone();
    let values =
        json!({"host": "localhost", "port": port, "tag": tag, "password": password, "ca_cert_pem": tls.ca_pem});
    // .uk has no EPP code: domains move by release to the new registrar's tag.
    a_registrar_domain_lives_through_billing_events(
        "domain-names/nominet",
        values,
        &password,
        |domain| registry.domain(domain).map(|(_, expires)| expires),
        || registry.drop_answer_to("renew"),
        false,
    )
    .await;
    assert_eq!(registry.invalid_commands(), 0, "{:?}", registry.last_invalid());
    assert_eq!(registry.invalid_answers(), 0, "{:?}", registry.last_invalid());
}

/// A .uk transfer in and out through `provisio serve`: the order waits
/// (provisioning) with what the client must ask of the old registrar; the
/// old registrar releases the domain to our tag and Nominet's message
/// activates the service; later the client releases it to another tag
/// from the client area's action, and the message that it left ends the
/// service, once. Every frame validates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uk_domain_arrives_and_leaves_by_release_through_nominets_messages() {
    provisio_sdk::http::install_crypto_provider();
    let (registry, port, tls, _registry_task) = epp_registry(provisio_epp_test_server::Options::nominet()).await;
    let (tag, password) = registry.options().registrars[0].clone();
    let other = registry.options().registrars[1].0.clone();
    let domain = format!("{}.co.uk", provisio_conformance::unique(10));
    registry.add_domain(&other, &domain, "");
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start_with(dir.path(), 0, &["--notice-interval-secs", "0.2"]);
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    let post =
        |path: &str, body: Value| call(&client, reqwest::Method::POST, format!("{base}/api/v1{path}"), Some(body));
    let values =
        json!({"host": "localhost", "port": port, "tag": tag, "password": password, "ca_cert_pem": tls.ca_pem});
    let (status, configuration) =
        post("/configurations", json!({"name": "nominet", "provider": "domain-names/nominet", "values": values})).await;
    assert_eq!(status, 201, "{configuration}");
    let (status, product) = post(
        "/products",
        json!({"slug": "uk-transfer", "name": ".uk transfer", "blueprint": "domain-names", "setup_function": "transfer",
               "deployment": {"type": "static", "configuration_id": configuration["id"]}}),
    )
    .await;
    assert_eq!(status, 201, "{product}");
    let (status, accepted) = post(
        "/events",
        json!({"id": "u1", "type": "order.paid", "service": {"external_id": "uk-1", "product": "uk-transfer",
               "client": {"external_id": "c1", "name": "Ann Lee", "email": "ann@example.com"},
               "fields": {"domain": domain, "epp_code": "none-in-uk",
                          "contacts": {"registrant": {"name": "Someone Else", "email": "someone@example.net",
                                       "phone": "+441132000000", "address1": "1 Park Row", "city": "Leeds",
                                       "postcode": "LS1 5AB", "country_code": "GB"}}}}}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let service = accepted["service_id"].as_i64().unwrap();
    let waiting = wait_for_service(&client, &base, service, |d| {
        d["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().any(|j| j["function"] == "transfer" && j["state"] == "succeeded"))
    })
    .await;
    assert_eq!(waiting["service"]["status"], "provisioning", "{waiting:#}");
    assert!(waiting["service"]["provision_data"]["message"].as_str().unwrap().contains(&tag), "{waiting:#}");
    // The old registrar releases it to our tag: Nominet's message activates the service.
    assert_eq!(registry.release(&domain, &tag), Some(1000));
    let detail = wait_for_service(&client, &base, service, |d| d["service"]["status"] == "active").await;
    assert!(detail.to_string().contains("Transferred in"), "{detail:#}");
    // The message brought the follow forward: it finds the registrant the order named.
    wait_for_service(&client, &base, service, |d| d["service"]["provision_data"]["transferred_in"] == true).await;
    // Now ours to manage: the name servers change.
    let act = |function: &str, args: Value| post(&format!("/services/{service}/actions/{function}"), args);
    let (status, changed) =
        act("update_nameservers", json!({"nameservers": ["ns3.example.net", "ns4.example.net"]})).await;
    assert_eq!(status, 200, "{changed}");
    // A made-up tag is refused, naming the field; the real one takes it.
    let (status, refused) = act("release", json!({"registrar_tag": "NOT-A-TAG"})).await;
    assert!(refused.to_string().contains("/registrar_tag"), "{status} {refused}");
    assert_eq!(registry.domain(&domain).unwrap().0, tag, "nothing moved");
    let (status, released) = act("release", json!({"registrar_tag": other})).await;
    assert_eq!(status, 200, "{released}");
    assert_eq!(released["envelope"]["data"]["status"], "transferred_away", "{released}");
    let detail = wait_for_service(&client, &base, service, |d| d["service"]["status"] == "terminated").await;
    assert!(detail.to_string().contains("Transferred away"), "{detail:#}");
    let (_, listed) =
        call(&client, reqwest::Method::GET, format!("{base}/api/v1/services/{service}/events"), None).await;
    let away = listed.as_array().unwrap().iter().filter(|e| e["type"] == "registry.transferred_away").count();
    assert_eq!(away, 1, "one event for the release: {listed:#}");
    assert_eq!(registry.queued(&tag), 0, "every message was acknowledged, after it was stored");
    assert_eq!(registry.invalid_commands(), 0, "{:?}", registry.last_invalid());
    assert_eq!(registry.invalid_answers(), 0, "{:?}", registry.last_invalid());
    assert!(!server.output(false).contains(&password), "the tag's password is in no log line");
}

/// A transfer in at a registrar that announces nothing (no message queue):
/// the order runs `transfer`, which answers pending; the engine follows it
/// with `get_status` on its own schedule (a follow job, shown with the
/// service's jobs) and, when the registrar has moved the domain,
/// activates the service, with no new event. `holder` says whose account
/// holds the domain at the registrar.
async fn a_transfer_in_is_followed_until_the_registrar_completes_it(
    provider: &str,
    values: Value,
    domain: &str,
    code: &str,
    ours: &str,
    holder: impl Fn(&str) -> Option<String>,
) {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start_with(dir.path(), 0, &["--follow-interval-secs", "0.3"]);
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    let post =
        |path: &str, body: Value| call(&client, reqwest::Method::POST, format!("{base}/api/v1{path}"), Some(body));
    let (status, configuration) =
        post("/configurations", json!({"name": "registrar-1", "provider": provider, "values": values})).await;
    assert_eq!(status, 201, "{configuration}");
    post(
        "/products",
        json!({"slug": "transfer", "name": "Transfer", "blueprint": "domain-names", "setup_function": "transfer",
               "deployment": {"type": "static", "configuration_id": configuration["id"]}}),
    )
    .await;
    let (status, accepted) = post(
        "/events",
        json!({"id": "x1", "type": "order.paid", "service": {"external_id": "x-1", "product": "transfer",
               "client": {"external_id": "c1", "name": "Ann Lee", "email": "ann@example.com"},
               "fields": {"domain": domain, "epp_code": code}}}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let service = accepted["service_id"].as_i64().unwrap();
    let waiting = wait_for_service(&client, &base, service, |d| {
        d["jobs"]
            .as_array()
            .is_some_and(|jobs| jobs.iter().any(|j| j["function"] == "transfer" && j["state"] == "succeeded"))
    })
    .await;
    assert_eq!(waiting["service"]["status"], "provisioning", "{waiting:#}");
    assert_ne!(holder(domain).as_deref(), Some(ours), "not moved yet");
    let detail = wait_for_service(&client, &base, service, |d| d["service"]["status"] == "active").await;
    assert_eq!(holder(domain).as_deref(), Some(ours));
    let jobs = detail["jobs"].as_array().unwrap();
    assert!(
        jobs.iter().any(|j| j["function"] == "get_status" && j["origin"] == "follow" && j["state"] == "succeeded"),
        "followed by get_status jobs: {detail:#}"
    );
    let (_, listed) =
        call(&client, reqwest::Method::GET, format!("{base}/api/v1/services/{service}/events"), None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "no event but the order: {listed:#}");
    assert!(!server.output(false).contains(code), "the transfer code is in no log line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_in_at_hexonet_is_followed_until_it_completes() {
    provisio_sdk::http::install_crypto_provider();
    let hexonet = provisio_hexonet_test_server::Hexonet::new(provisio_hexonet_test_server::Options {
        transfer_after: Duration::from_secs(2),
        ..provisio_hexonet_test_server::Options::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway =
        provisio_test_server_kit::serve(listener, hexonet.router(), Some(provisio_test_server_kit::Tls::generate(&[])));
    let (login, password) = hexonet.options().accounts[0].clone();
    let other = hexonet.options().accounts[1].0.clone();
    let domain = format!("{}.com", provisio_conformance::unique(10));
    hexonet.add_domain(&other, &domain, "Move-Me-123");
    let values = json!({"api_url": format!("{}/api/call.cgi", gateway.url()), "entity": "1234", "login": login,
                        "password": password, "ca_cert_pem": gateway.ca_pem});
    a_transfer_in_is_followed_until_the_registrar_completes_it(
        "domain-names/hexonet",
        values,
        &domain,
        "Move-Me-123",
        &login,
        |d| hexonet.domain(d).map(|(user, _)| user),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_in_at_enom_is_followed_until_it_completes() {
    provisio_sdk::http::install_crypto_provider();
    let enom = provisio_enom_test_server::Enom::new(provisio_enom_test_server::Options {
        transfer_after: Duration::from_secs(2),
        ..provisio_enom_test_server::Options::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api =
        provisio_test_server_kit::serve(listener, enom.router(), Some(provisio_test_server_kit::Tls::generate(&[])));
    let (uid, token) = enom.options().accounts[0].clone();
    let other = enom.options().accounts[1].0.clone();
    let domain = format!("{}.com", provisio_conformance::unique(10));
    enom.add_domain(&other, &domain, "Move-Me-123");
    let values = json!({"api_url": format!("{}/interface.asp", api.url()), "uid": uid, "api_token": token,
                        "ca_cert_pem": api.ca_pem});
    a_transfer_in_is_followed_until_the_registrar_completes_it(
        "domain-names/enom",
        values,
        &domain,
        "Move-Me-123",
        &uid,
        |d| enom.domain(d).map(|(user, _)| user),
    )
    .await;
}

/// A registry message is acknowledged only once its event is stored: with
/// acknowledgements failing, the transfer request is recorded and its
/// message stays queued (the stand-in for a crash between the two); SIGKILL,
/// restart, and the message, read again, is a duplicate: acknowledged, with
/// exactly one event; then the transfer away ends the service, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_message_survives_a_sigkill_before_its_acknowledgement_without_a_second_event() {
    provisio_sdk::http::install_crypto_provider();
    let (registry, port, tls, _registry_task) = epp_registry(provisio_epp_test_server::Options {
        transfer_after: Duration::from_millis(300),
        ..provisio_epp_test_server::Options::default()
    })
    .await;
    let (clid, password) = registry.options().registrars[0].clone();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let api_port = free_port();
    let fast = ["--notice-interval-secs", "0.2"];
    let first = start_with(dir.path(), api_port, &fast);
    let base = first.base.clone();
    wait_healthy(&client, &base).await;
    let post =
        |path: &str, body: Value| call(&client, reqwest::Method::POST, format!("{base}/api/v1{path}"), Some(body));
    let values =
        json!({"host": "localhost", "port": port, "username": clid, "password": password, "ca_cert_pem": tls.ca_pem});
    let (status, configuration) =
        post("/configurations", json!({"name": "registry-1", "provider": "domain-names/epp", "values": values})).await;
    assert_eq!(status, 201, "{configuration}");
    post(
        "/products",
        json!({"slug": "dot-net", "name": ".net domain", "blueprint": "domain-names",
               "deployment": {"type": "static", "configuration_id": configuration["id"]}}),
    )
    .await;
    let domain = format!("{}.net", provisio_conformance::unique(10));
    let registrant = json!({"name": "Ann Lee", "email": "ann@example.com", "phone": "+442071234567",
                            "address1": "1 High Street", "city": "London", "postcode": "N1 1AA", "country_code": "GB"});
    let (_, accepted) = post(
        "/events",
        json!({"id": "n1", "type": "order.paid", "service": {"external_id": "net-1", "product": "dot-net",
               "client": {"external_id": "c1", "name": "Ann Lee", "email": "ann@example.com"},
               "fields": {"domain": domain, "contacts": {"registrant": registrant},
                          "nameservers": ["ns1.example.net", "ns2.example.net"]}}}),
    )
    .await;
    let service = accepted["service_id"].as_i64().unwrap();
    wait_for_service(&client, &base, service, |d| d["service"]["status"] == "active").await;

    registry.fail("poll:ack");
    assert!(registry.request_transfer_away(&domain, "other-registrar"));
    wait_for_service(&client, &base, service, |d| {
        d["events"].as_array().is_some_and(|events| events.iter().any(|e| e["type"] == "registry.transfer_requested"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(registry.queued(&clid) > 0, "nothing could be acknowledged");
    first.output(true); // SIGKILL

    registry.stop_failing("poll:ack");
    let second = start_with(dir.path(), api_port, &fast);
    wait_healthy(&client, &second.base).await;
    wait_for_service(&client, &second.base, service, |d| d["service"]["status"] == "terminated").await;
    let started = Instant::now();
    while registry.queued(&clid) > 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the messages were never acknowledged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, listed) =
        call(&client, reqwest::Method::GET, format!("{}/api/v1/services/{service}/events", second.base), None).await;
    let count = |kind: &str| listed.as_array().unwrap().iter().filter(|e| e["type"] == kind).count();
    assert_eq!(count("registry.transferred_away"), 1, "{listed:#}");
    assert_eq!(count("registry.transfer_requested"), 1, "{listed:#}");
}

/// Through `provisio serve`: an `order.paid` event for a certificate product
/// runs `ssl-certificates/acme`, which writes its DNS-01 records through the
/// PowerDNS configuration the engine manages (one provider using another by
/// configuration name). pebble issues; the chain lands in provision data and
/// the private key is sealed, in no log or API answer. `contract.renewed`
/// orders a new certificate. Needs the PowerDNS and pebble of `scripts/test-servers`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_issued_through_a_dns_configuration_the_engine_manages() {
    let Some([api, key, directory]) = provisio_conformance::test_servers([
        "PROVISIO_TEST_PDNS_API",
        "PROVISIO_TEST_PDNS_API_KEY",
        "PROVISIO_TEST_ACME_DIRECTORY",
    ]) else {
        return;
    };
    provisio_sdk::http::install_crypto_provider();
    let account_key = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
        .output()
        .expect("openssl runs");
    let account_key = String::from_utf8(account_key.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start_with(dir.path(), 0, &["--follow-interval-secs", "0.3"]);
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    let post =
        |path: &str, body: Value| call(&client, reqwest::Method::POST, format!("{base}/api/v1{path}"), Some(body));

    let (status, dns) = post(
        "/configurations",
        json!({"name": "pdns-acme", "provider": "dns-hosting/powerdns",
        "values": {"api_url": api, "api_key": key, "nameservers": ["ns1.provisio-test.net"]}}),
    )
    .await;
    assert_eq!(status, 201, "{dns}");
    let (status, acme) = post(
        "/configurations",
        json!({"name": "pebble", "provider": "ssl-certificates/acme",
        "values": {"directory_url": directory, "account_key_pem": account_key, "dns_configuration": "pdns-acme",
                   "accept_invalid_certs": true}}),
    )
    .await;
    assert_eq!(status, 201, "{acme}");
    for (slug, blueprint, configuration) in [("zone", "dns-hosting", &dns), ("tls", "ssl-certificates", &acme)] {
        let (status, product) = post(
            "/products",
            json!({"slug": slug, "name": slug, "blueprint": blueprint,
            "deployment": {"type": "static", "configuration_id": configuration["id"]}}),
        )
        .await;
        assert_eq!(status, 201, "{product}");
    }

    let zone = format!("{}.com", provisio_conformance::unique(10));
    let common_name = format!("shop.{zone}");
    let client_of = json!({"external_id": "c9", "name": "Bo Chen", "email": "bo@example.com"});
    let order = |id: &str, external: &str, product: &str, fields: Value| {
        json!({"id": id, "type": "order.paid",
               "service": {"external_id": external, "product": product, "client": client_of, "fields": fields}})
    };
    let wait_for = |service: i64, check: fn(&Value) -> bool| wait_for_service(&client, &base, service, check);
    let (_, accepted) = post("/events", order("t1", "zone-9", "zone", json!({"zone": zone}))).await;
    wait_for(accepted["service_id"].as_i64().unwrap(), |d| d["service"]["status"] == "active").await;

    let (status, accepted) = post("/events", order("t2", "tls-9", "tls", json!({"common_name": common_name}))).await;
    assert_eq!(status, 202, "{accepted}");
    let service = accepted["service_id"].as_i64().unwrap();
    let detail =
        wait_for(service, |d| d["service"]["status"] != "pending" && d["service"]["status"] != "provisioning").await;
    assert_eq!(detail["service"]["status"], "active", "{detail:#}");
    assert_eq!(detail["service"]["identifier"], json!(common_name));
    let data = &detail["service"]["provision_data"];
    assert_eq!(data["status"], "issued", "{detail:#}");
    assert!(data["certificate_pem"].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    let first_order = data["certificate_id"].clone();
    let everything = detail.to_string();
    assert!(!everything.contains("PRIVATE KEY"), "the private key is sealed, not answered: {everything}");

    post("/events", json!({"id": "t3", "type": "contract.renewed", "service": {"id": service}})).await;
    let renewed = wait_for(service, |d| {
        d["service"]["provision_data"]["certificate_id"] != Value::Null
            && d["service"]["provision_data"]["status"] == "issued"
            && d["jobs"]
                .as_array()
                .is_some_and(|jobs| jobs.iter().any(|j| j["function"] == "renew" && j["state"] == "succeeded"))
    })
    .await;
    assert_ne!(renewed["service"]["provision_data"]["certificate_id"], first_order, "renew is a new order");

    // Another client cannot have a certificate for a zone it does not own:
    // the engine refuses the DNS writes, and nothing is ordered.
    let intruder = json!({"id": "t4", "type": "order.paid",
        "service": {"external_id": "tls-10", "product": "tls", "fields": {"common_name": format!("evil.{zone}")},
                    "client": {"external_id": "c10", "name": "Eve", "email": "eve@example.com"}}});
    let (_, accepted) = post("/events", intruder).await;
    let refused = wait_for(accepted["service_id"].as_i64().unwrap(), |d| d["service"]["status"] == "failed").await;
    assert!(refused.to_string().contains("No zone of the DNS configuration pdns-acme holds"), "{refused:#}");

    // An authority slower than the call waits (here it waits not at all):
    // create answers pending_validation, the service waits, provisioning, and
    // the engine follows the order with get_info until it is issued; the key
    // create answered stays sealed.
    let (status, later) = post(
        "/configurations",
        json!({"name": "pebble-later", "provider": "ssl-certificates/acme",
        "values": {"directory_url": directory, "account_key_pem": account_key, "dns_configuration": "pdns-acme",
                   "accept_invalid_certs": true, "issue_wait_secs": 0}}),
    )
    .await;
    assert_eq!(status, 201, "{later}");
    post(
        "/products",
        json!({"slug": "tls-later", "name": "tls-later", "blueprint": "ssl-certificates",
               "deployment": {"type": "static", "configuration_id": later["id"]}}),
    )
    .await;
    let (_, accepted) =
        post("/events", order("t5", "tls-11", "tls-later", json!({"common_name": format!("www.{zone}")}))).await;
    let followed = accepted["service_id"].as_i64().unwrap();
    let detail = wait_for(followed, |d| d["service"]["status"] == "active").await;
    assert_eq!(detail["service"]["provision_data"]["status"], "issued", "{detail:#}");
    let jobs = detail["jobs"].as_array().unwrap();
    assert!(
        jobs.iter().any(|j| j["function"] == "get_info" && j["origin"] == "follow" && j["state"] == "succeeded"),
        "issued by a follow: {detail:#}"
    );
    let history = detail.to_string();
    assert!(history.contains("provisioning") && !history.contains("PRIVATE KEY"), "{detail:#}");
    // Its renewal, answered pending too, is followed the same way; the service stays active.
    let first = detail["service"]["provision_data"]["certificate_id"].clone();
    post("/events", json!({"id": "t6", "type": "contract.renewed", "service": {"id": followed}})).await;
    let renewed = wait_for(followed, |d| {
        let jobs = d["jobs"].as_array().unwrap();
        let renew = jobs.iter().position(|j| j["function"] == "renew" && j["state"] == "succeeded");
        // Jobs are listed oldest first: a follow after the renew has issued it.
        renew.is_some_and(|at| {
            jobs[at + 1..].iter().any(|j| j["origin"] == "follow" && j["state"] == "succeeded")
                && d["service"]["provision_data"]["status"] == "issued"
        })
    })
    .await;
    assert_ne!(renewed["service"]["provision_data"]["certificate_id"], first, "a new order, issued: {renewed:#}");
    assert_eq!(renewed["service"]["status"], "active");

    // Nowhere an operator can read: the jobs' attempts, the audit, the database file.
    let (_, jobs) =
        call(&client, reqwest::Method::GET, format!("{base}/api/v1/jobs?service_id={service}&limit=1000"), None).await;
    for job in jobs.as_array().unwrap() {
        let (_, detail) = call(&client, reqwest::Method::GET, format!("{base}/api/v1/jobs/{}", job["id"]), None).await;
        assert!(!detail.to_string().contains("PRIVATE KEY"), "a job's attempts hold the key: {detail}");
    }
    let (_, audit) = call(&client, reqwest::Method::GET, format!("{base}/api/v1/audit?limit=1000"), None).await;
    assert!(!audit.to_string().contains("PRIVATE KEY"));
    let logs = server.output(false);
    assert!(!logs.contains("PRIVATE KEY"), "no key in any log line");
    assert!(logs.contains("a provider calls another configuration"), "the peer call is logged");
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("provisio.db") {
            assert!(!file_contains(&path, "PRIVATE KEY"), "{} holds a key in clear", path.display());
        }
    }
}

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_half_open_connections_do_not_take_the_api_down() {
    provisio_sdk::http::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let server = start_with(dir.path(), 0, &["--max-connections", "500", "--header-timeout-secs", "5"]);
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    wait_healthy(&client, &server.base).await;
    let base = server.base.clone();
    let before = rss_kib(server.child.id());

    // 3,000 loopback connections that never finish their headers, held for at most 6 s.
    const ATTACKERS: usize = 3000;
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        attackers.push(tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let Ok(mut socket) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return };
            let _ = socket.write_all(b"GET /api/v1/services HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
            tokio::time::sleep_until(deadline.into()).await;
            drop(socket);
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Meanwhile the health check and a staff request still answer within a second, repeatedly.
    for _ in 0..5 {
        let started = Instant::now();
        let health = client.get(format!("{base}/healthz")).timeout(Duration::from_secs(1)).send().await;
        assert!(health.is_ok_and(|r| r.status() == 200), "healthz did not answer within a second");
        let (status, _) = tokio::time::timeout(
            Duration::from_secs(1),
            call(&client, reqwest::Method::GET, format!("{base}/api/v1/services"), None),
        )
        .await
        .expect("an authenticated request answered within a second");
        assert_eq!(status, 200);
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for attacker in attackers {
        attacker.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(server.child.id());
    assert!(after < before + 100 * 1024, "memory grew from {before} KiB to {after} KiB");
    let (status, _) = call(&client, reqwest::Method::GET, format!("{base}/api/v1/services"), None).await;
    assert_eq!(status, 200);
    server.output(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_environment_token_replaces_the_old_and_a_lost_key_file_stops_the_start() {
    provisio_sdk::http::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let client = reqwest::Client::new();
    let services = |token: &'static str| {
        let (client, url) = (client.clone(), format!("http://127.0.0.1:{port}/api/v1/services"));
        async move { client.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() }
    };
    let first = start(dir.path(), port);
    wait_healthy(&client, &first.base).await;
    assert_eq!(services(TOKEN).await, 200);
    first.output(false);

    const NEW: &str = "a-new-environment-token-42";
    let second = start_as(dir.path(), port, &[], NEW);
    wait_healthy(&client, &second.base).await;
    assert_eq!(services(NEW).await, 200);
    assert_eq!(services(TOKEN).await, 401, "the previous environment token still works");
    second.output(false);

    // Too short a token is refused at start.
    let short = start_as(dir.path(), port, &[], "short");
    let output = short.output_when_exited(Duration::from_secs(20));
    assert!(output.contains("at least 16 characters"), "{output}");

    // The key file is gone: the database knows its secrets need it, so no new key is made.
    std::fs::remove_file(dir.path().join("provisio.key")).unwrap();
    let third = start_as(dir.path(), port, &[], NEW);
    let output = third.output_when_exited(Duration::from_secs(20));
    assert!(output.contains("secrets key file") && output.contains("missing"), "{output}");
    assert!(!dir.path().join("provisio.key").exists(), "a new key file was made");
}

/// A scripted session of staff, a client, a billing source and a webhook
/// subscriber, then a scan: no secret, password, token or session is in any
/// answer (but the one that hands it out), any log line (JSON, debug level)
/// or anywhere in the database file. Log lines carry request and job ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_session_leaves_no_secret_in_answers_logs_or_the_database() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let server = start_env(dir.path(), 0, &[], TOKEN, &[("PROVISIO_LOG_FORMAT", "json")]);
    let base = server.base.clone();
    provisio_sdk::http::install_crypto_provider();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    wait_healthy(&http, &base).await;
    let mut secrets: Vec<String> = Vec::new();
    let mut answers: Vec<Value> = Vec::new();
    // Answers that hand a secret out once are kept apart; every other is scanned.
    let staff = |method: Method, path: &str, body: Option<Value>| call(&http, method, format!("{base}{path}"), body);

    // A webhook receiver (its deliveries may carry credentials: that is where they belong).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hooks", listener.local_addr().unwrap());
    let router = axum::Router::new().route("/hooks", axum::routing::post(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let webhook_secret = "Webhook-Secret-5f2a9c71e0";
    secrets.push(webhook_secret.into());
    let (status, _) = staff(
        Method::POST,
        "/api/v1/webhooks",
        Some(json!({"name": "billing", "url": hook, "secret": webhook_secret,
        "allow_private": true, "include_credentials": true, "event_types": ["service.activated", "job.succeeded"]})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, reader) = staff(Method::POST, "/api/v1/tokens", Some(json!({"name": "reader", "scope": "read"}))).await;
    secrets.push(reader["secret"].as_str().unwrap().into());
    let (_, source) = staff(Method::POST, "/api/v1/sources", Some(json!({"name": "whmcs", "kind": "provisio"}))).await;
    let source_secret = source["secret"].as_str().unwrap().to_owned();
    secrets.push(source_secret.clone());
    let config_secret = "Cfg-Api-Key-7731-zz";
    secrets.push(config_secret.into());
    let database = configuration_id(&http, &base, "demo-database").await;
    let (status, _) = staff(
        Method::PATCH,
        &format!("/api/v1/configurations/{database}"),
        Some(json!({"values": {"api_key": config_secret}})),
    )
    .await;
    assert_eq!(status, 200);

    // Orders: one by token, one signed by the billing source.
    let mut db_order = order(1, "demo-database");
    db_order["service"]["fields"] = json!({"database": "shop_db"});
    let (status, accepted) = staff(Method::POST, "/api/v1/events", Some(db_order)).await;
    assert_eq!(status, 202, "{accepted}");
    let db_service = accepted["service_id"].as_i64().unwrap();
    let signed = serde_json::to_vec(&order(2, "demo-hosting")).unwrap();
    let t = chrono_now();
    let response = http
        .post(format!("{base}/api/v1/events"))
        .header("content-type", "application/json")
        .header("Provisio-Source", "whmcs")
        .header(
            "Provisio-Signature",
            format!("t={t},v1={}", provisio_engine::sources::sign(source_secret.as_bytes(), t, &signed)),
        )
        .body(signed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let hosting = response.json::<Value>().await.unwrap()["service_id"].as_i64().unwrap();
    let detail = wait_for_service(&http, &base, db_service, |d| d["service"]["status"] == "active").await;
    wait_for_service(&http, &base, hosting, |d| d["service"]["status"] == "active").await;
    let client = detail["service"]["client_id"].as_i64().unwrap();

    // The client: a session, its hand-off, credentials, a password change, single sign-on.
    let (_, session) = staff(Method::POST, &format!("/api/v1/clients/{client}/sessions"), Some(json!({}))).await;
    let token = session["token"].as_str().unwrap().to_owned();
    let handoff = session["handoff_url"].as_str().unwrap().to_owned();
    secrets.push(token.clone());
    secrets.push(handoff.split("code=").nth(1).unwrap().to_owned());
    let redeemed = http.get(&handoff).send().await.unwrap();
    let cookie = redeemed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    secrets.push(cookie.split_once('=').unwrap().1.to_owned());
    let client_call = |method: Method, path: String, body: Option<Value>| {
        let mut request = http.request(method, format!("{base}{path}")).bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.headers().get("location").map(|l| l.to_str().unwrap().to_owned()),
                response.text().await.unwrap(),
            )
        }
    };
    let (status, _, revealed) =
        client_call(Method::POST, format!("/client/v1/services/{db_service}/credentials"), None).await;
    assert_eq!(status, 200);
    let revealed: Value = serde_json::from_str(&revealed).unwrap();
    for value in revealed["credentials"].as_object().unwrap().values() {
        secrets.push(value.as_str().unwrap().to_owned());
    }
    let chosen = "Chosen-Passw0rd-5521";
    secrets.push(chosen.into());
    let (status, _, _) =
        client_call(Method::POST, format!("/client/v1/services/{hosting}/password"), Some(json!({"password": chosen})))
            .await;
    assert_eq!(status, 200);
    let (status, _, generated) =
        client_call(Method::POST, format!("/client/v1/services/{hosting}/password"), Some(json!({}))).await;
    assert_eq!(status, 200);
    let generated: Value = serde_json::from_str(&generated).unwrap();
    secrets.push(generated["generated_password"].as_str().unwrap().to_owned());
    let (status, location, _) = client_call(Method::GET, format!("/client/v1/services/{hosting}/login"), None).await;
    assert_eq!(status, 302);
    secrets.push(location.unwrap().split("session=").nth(1).unwrap().to_owned());
    for path in [
        "/client/v1/services".to_owned(),
        format!("/client/v1/services/{db_service}"),
        format!("/client/v1/services/{hosting}/info"),
    ] {
        let (status, _, text) = client_call(Method::GET, path, None).await;
        assert_eq!(status, 200);
        answers.push(Value::String(text));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Everything staff can read.
    for path in [
        "/api/v1/services",
        "/api/v1/jobs?limit=1000",
        "/api/v1/audit?limit=1000",
        "/api/v1/configurations",
        "/api/v1/tokens",
        "/api/v1/sources",
        "/api/v1/webhooks",
        "/api/v1/webhooks/1/deliveries",
        "/api/v1/clients",
        &format!("/api/v1/clients/{client}"),
        &format!("/api/v1/services/{db_service}"),
        &format!("/api/v1/services/{hosting}"),
        &format!("/api/v1/services/{hosting}/events"),
        &format!("/api/v1/services/{hosting}/history"),
    ] {
        let (status, answer) = staff(Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}");
        answers.push(answer);
    }
    let (_, jobs) = staff(Method::GET, "/api/v1/jobs?limit=1000", None).await;
    for job in jobs.as_array().unwrap() {
        answers.push(staff(Method::GET, &format!("/api/v1/jobs/{}", job["id"]), None).await.1);
    }
    let metrics = http.get(format!("{base}/metrics")).bearer_auth(TOKEN).send().await.unwrap().text().await.unwrap();
    answers.push(Value::String(metrics));
    let deliveries = staff(Method::GET, "/api/v1/webhooks/1/deliveries", None).await.1;
    assert!(deliveries.as_array().unwrap().iter().any(|d| d["state"] == "delivered"), "{deliveries:#}");

    let log = server.output(false);
    let database = std::fs::read(dir.path().join("provisio.db")).unwrap();
    let wal = std::fs::read(dir.path().join("provisio.db-wal")).unwrap_or_default();
    let answers = answers.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    assert_eq!(secrets.len(), 11, "{secrets:?}");
    for secret in &secrets {
        assert!(secret.len() >= 8, "{secret}");
        assert!(!answers.contains(secret.as_str()), "{secret} in an answer");
        assert!(!log.contains(secret.as_str()), "{secret} in the log");
        for bytes in [&database, &wal] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in the database");
        }
    }
    // The log is JSON lines that name their request and job.
    let lines: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(lines.len() > 10, "{log}");
    let names =
        |key: &str| lines.iter().any(|l| l["spans"].as_array().is_some_and(|s| s.iter().any(|s| s.get(key).is_some())));
    assert!(names("request_id") && names("job_id") && names("service_id"), "{log}");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A `provisio worker` process on the store `db_url`, run from `dir` (the
/// key file is the one `serve` made there).
fn start_worker(dir: &Path, db_url: &str, env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisio"))
        .args(["worker", "--db", db_url])
        .current_dir(dir)
        .env("PROVISIO_LEASE_SECS", "2")
        .env("PROVISIO_RETRY_BASE_MS", "50")
        .env("PROVISIO_POLL_MS", "50")
        .env("PROVISIO_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("provisio worker starts");
    let printed = vec![drain(child.stdout.take().unwrap()), drain(child.stderr.take().unwrap())];
    Server { child, base: String::new(), printed }
}

/// The most attempts that were in flight at once.
fn most_at_once(spans: &[provisio_store::jobs::AttemptSpan]) -> usize {
    spans
        .iter()
        .map(|a| spans.iter().filter(|b| b.started_at <= a.started_at && a.started_at < b.finished_at).count())
        .max()
        .unwrap_or(0)
}

/// The most attempts that started within any `window` ms.
fn busiest_window(spans: &[provisio_store::jobs::AttemptSpan], window: i64) -> usize {
    let times: Vec<i64> = spans.iter().map(|a| a.started_at).collect();
    let mut start = 0;
    let mut most = 0;
    for (end, t) in times.iter().enumerate() {
        while times[start] <= t - window {
            start += 1;
        }
        most = most.max(end + 1 - start);
    }
    most
}

/// Many processes on one PostgreSQL database: an API server and three
/// workers share 2,000 orders of a dynamic product over four
/// configurations (capacities, four calls at once each, and a rate on one);
/// one worker is killed mid-run and the others finish its jobs once its
/// leases expire. Each order makes one database at the demo provider, no
/// limit is ever passed, and every event is processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_on_postgres_share_two_thousand_orders_within_every_limit_and_survive_a_sigkill() {
    const ORDERS: usize = 2000;
    const CAPACITY: [i64; 4] = [650, 650, 650, 100];
    const RATE: i64 = 60;
    const AT_ONCE: i64 = 4;
    provisio_sdk::http::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::postgres().await;
    let db_url = db.url();
    let client = reqwest::Client::new();
    let api = start_with(dir.path(), 0, &["--db", &db_url, "--no-worker"]);
    wait_healthy(&client, &api.base).await;
    let base = api.base.clone();
    let state = dir.path().join("pool-demo.sqlite").display().to_string();
    let mut pools = Vec::new();
    for (i, capacity) in CAPACITY.iter().enumerate() {
        let body = json!({"name": format!("pool{i}"), "provider": "databases/demo",
                          "attributes": {"location": "pool"},
                          "values": {"state_path": state, "server": format!("pool{i}"), "latency_ms": 20},
                          "max_services": capacity, "max_concurrency": AT_ONCE,
                          "rate_per_minute": if i == 3 { Some(RATE) } else { None }});
        let (status, made) =
            call(&client, reqwest::Method::POST, format!("{base}/api/v1/configurations"), Some(body)).await;
        assert_eq!(status, 201, "{made}");
        pools.push(made["id"].as_i64().unwrap());
    }
    let product = json!({"slug": "pooled-db", "name": "Pooled database", "blueprint": "databases", "provider": "demo",
                         "deployment": {"type": "dynamic", "strategy": "least_used", "attributes": {"location": "pool"}},
                         "provision_fields": {"package_name": "basic"}});
    let (status, made) = call(&client, reqwest::Method::POST, format!("{base}/api/v1/products"), Some(product)).await;
    assert_eq!(status, 201, "{made}");

    let mut workers: Vec<Server> = (0..3).map(|_| start_worker(dir.path(), &db_url, &[])).collect();
    let started = Instant::now();
    let mut posting = tokio::task::JoinSet::new();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..16 {
        let (client, base, next) = (client.clone(), base.clone(), next.clone());
        posting.spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= ORDERS {
                    return;
                }
                let event = json!({"id": format!("evt-{n}"), "type": "order.paid",
                    "service": {"external_id": format!("contract-{n}"),
                                "client": {"external_id": format!("cust-{}", n % 50), "name": "Ann Lee", "email": "ann@example.com"},
                                "product": "pooled-db", "fields": {"database": format!("db{n}")}}});
                let (status, body) =
                    call(&client, reqwest::Method::POST, format!("{base}/api/v1/events"), Some(event)).await;
                assert_eq!(status, 202, "{body}");
            }
        });
    }
    while let Some(done) = posting.join_next().await {
        done.unwrap();
    }
    let posted = started.elapsed();

    // Pull the plug on one worker while it holds running jobs.
    let store = db.store().await;
    let victim = workers.remove(0);
    let prefix = format!("worker-{}-", victim.child.id());
    let held = loop {
        let running = store
            .read(|conn| {
                Box::pin(async move {
                    let filter = provisio_store::jobs::JobFilter {
                        state: Some("running".into()),
                        limit: 1000,
                        ..Default::default()
                    };
                    provisio_store::jobs::list(conn, &filter).await
                })
            })
            .await
            .unwrap();
        let held = running.iter().filter(|j| j.locked_by.as_deref().is_some_and(|w| w.starts_with(&prefix))).count();
        if held > 0 {
            break held;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the first worker never held a job");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let mut logs = victim.output(true);

    let active = loop {
        let counts = store.read(|conn| Box::pin(provisio_store::services::count_by_status(conn))).await.unwrap();
        let active = counts.iter().find(|(s, _)| s == "active").map_or(0, |(_, n)| *n);
        if active as usize == ORDERS {
            break active;
        }
        assert!(started.elapsed() < Duration::from_secs(240), "only {active} of {ORDERS} active: {counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let finished = started.elapsed();
    for worker in workers {
        logs.push_str(&worker.output(false));
    }
    logs.push_str(&api.output(false));
    assert!(logs.contains("took back jobs"), "the dead worker's {held} jobs were taken back");

    // At the provider: one database per order, within each capacity.
    let census = provisio_demo::state::census(&state).await.unwrap();
    assert!(census.duplicates().is_empty(), "{:?}", census.duplicates());
    let mut made = 0;
    for (i, capacity) in CAPACITY.iter().enumerate() {
        let on = census.services.get(&("databases".into(), format!("pool{i}"))).copied().unwrap_or(0);
        assert!(on <= *capacity, "pool{i} holds {on} of {capacity}");
        made += on;
    }
    assert_eq!(made, active, "{:?}", census.services);
    // In the store: every event processed, every job done once, no limit passed.
    let keyed = keyed_blueprints();
    let (counts, jobs, violations, spans) = store
        .read(move |conn| {
            Box::pin(async move {
                let mut spans = Vec::new();
                for id in pools {
                    spans.push(provisio_store::jobs::attempt_spans(conn, id, 0).await?);
                }
                Ok::<_, provisio_store::StoreError>((
                    provisio_store::invariants::row_counts(conn).await?,
                    provisio_store::jobs::count_by_state(conn).await?,
                    provisio_store::invariants::violations(conn, &keyed).await?,
                    spans,
                ))
            })
        })
        .await
        .unwrap();
    assert_eq!(counts.events as usize, ORDERS);
    assert_eq!(jobs, [("succeeded".to_owned(), ORDERS as i64)]);
    assert!(violations.is_empty(), "{violations:#?}");
    for (i, spans) in spans.iter().enumerate() {
        assert!(most_at_once(spans) <= AT_ONCE as usize, "pool{i}: {} calls at once", most_at_once(spans));
    }
    assert!(busiest_window(&spans[3], 60_000) <= RATE as usize, "pool3 passed its rate");
    println!(
        "{ORDERS} orders posted in {:.1} s, all active after {:.1} s; the killed worker held {held} running jobs; \
         per pool: {:?}",
        posted.as_secs_f64(),
        finished.as_secs_f64(),
        spans.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

/// On PostgreSQL a worker in another process hears of a new job at once
/// (LISTEN/NOTIFY), not at its next poll: here it polls every 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_in_another_process_starts_a_new_job_at_once_on_postgres() {
    provisio_sdk::http::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::postgres().await;
    let db_url = db.url();
    let client = reqwest::Client::new();
    let api = start_with(dir.path(), 0, &["--db", &db_url, "--no-worker"]);
    wait_healthy(&client, &api.base).await;
    let worker = start_worker(dir.path(), &db_url, &[("PROVISIO_POLL_MS", "30000")]);
    // Let the worker start, claim nothing, and fall asleep on its poll.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let base = api.base.clone();
    let mut waits = Vec::new();
    for n in 0..5 {
        let posted = Instant::now();
        let (status, body) =
            call(&client, reqwest::Method::POST, format!("{base}/api/v1/events"), Some(order(n, "demo-database")))
                .await;
        assert_eq!(status, 202, "{body}");
        let service = body["service_id"].as_i64().unwrap();
        wait_for_service(&client, &base, service, |s| s["service"]["status"] == "active").await;
        waits.push(posted.elapsed());
    }
    let logs = worker.output(false) + &api.output(false);
    assert!(waits.iter().all(|w| *w < Duration::from_secs(3)), "{waits:?}\n{logs}");
}
