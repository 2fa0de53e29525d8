//! `message-queues/rabbitmq` against a real RabbitMQ: the conformance
//! suite, then the customer's side over AMQP: it publishes in its virtual
//! host, is refused in another, is refused while suspended, and is gone
//! after terminate.
//!
//! The management API comes from `PROVISIO_TEST_RABBITMQ_API` (a URL with
//! the administrator's credentials) and AMQP from `PROVISIO_TEST_RABBITMQ_AMQP`
//! (`host:port`), which `scripts/test-servers start` prints. Without them the
//! tests say so and pass outside CI, and fail in CI.

use std::time::Duration;

use amqprs::BasicProperties;
use amqprs::channel::{BasicPublishArguments, QueueDeclareArguments};
use amqprs::connection::{Connection, OpenConnectionArguments};
use provisio_conformance::Harness;
use provisio_sdk::{CallOptions, ErrorKind, invoke};
use serde_json::{Value, json};

fn server() -> Option<(Value, String, u16)> {
    let [api, amqp] =
        provisio_conformance::test_servers(["PROVISIO_TEST_RABBITMQ_API", "PROVISIO_TEST_RABBITMQ_AMQP"])?;
    let url = reqwest::Url::parse(&api).expect("a URL");
    let (host, port) = amqp.split_once(':').expect("host:port");
    let config = json!({
        "api_url": format!("{}://{}:{}", url.scheme(), url.host_str().unwrap(), url.port().unwrap_or(15672)),
        "username": url.username(), "password": url.password().unwrap_or_default(),
        "amqp_host": host, "amqp_port": port.parse::<u16>().unwrap(),
    });
    Some((config, host.to_owned(), port.parse().unwrap()))
}

/// Connects as the customer and publishes one message; answers the error text if refused.
async fn publish(host: &str, port: u16, user: &str, password: &str, vhost: &str) -> Result<(), String> {
    let mut args = OpenConnectionArguments::new(host, port, user, password);
    args.virtual_host(vhost);
    let connection = tokio::time::timeout(Duration::from_secs(5), Connection::open(&args))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let channel = connection.open_channel(None).await.map_err(|e| e.to_string())?;
    channel.queue_declare(QueueDeclareArguments::new("orders")).await.map_err(|e| e.to_string())?;
    channel
        .basic_publish(BasicProperties::default(), b"hello".to_vec(), BasicPublishArguments::new("", "orders"))
        .await
        .map_err(|e| e.to_string())?;
    let _ = channel.close().await;
    let _ = connection.close().await;
    Ok(())
}

/// A refusal by the broker itself (access or login refused), not a timeout or
/// a connection that never happened.
fn assert_refused(outcome: Result<(), String>, what: &str) {
    let error = outcome.expect_err(what);
    let lower = error.to_lowercase();
    assert!(!lower.contains("timed out") && lower.contains("refused"), "{what}: {error}");
}

/// What the management API answers for `path` (under `/api/`).
async fn management_status(config: &Value, path: &str) -> u16 {
    provisio_sdk::http::install_crypto_provider();
    reqwest::Client::new()
        .get(format!("{}/api/{path}", config["api_url"].as_str().unwrap()))
        .basic_auth(config["username"].as_str().unwrap(), config["password"].as_str())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn call(config: &Value, function: &str, params: Value) -> provisio_sdk::Envelope {
    let options = CallOptions { timeout: Duration::from_secs(20), ..CallOptions::default() };
    invoke::call(&provisio_rabbitmq::entry(), config, function, &params, &options).await.envelope
}

#[tokio::test]
async fn passes_the_message_queues_conformance_suite() {
    let Some((config, _, _)) = server() else { return };
    provisio_conformance::run(&Harness::new(provisio_rabbitmq::entry(), config)).await;
}

#[tokio::test]
async fn the_customer_publishes_in_its_vhost_and_nowhere_else() {
    let Some((config, host, port)) = server() else { return };
    let (mine, other) =
        (format!("shop_{}", provisio_conformance::unique(6)), format!("other_{}", provisio_conformance::unique(6)));
    let created = call(&config, "create", json!({"vhost": mine, "package_name": "basic"})).await;
    assert!(created.is_ok(), "{created:?}");
    let data = created.data.unwrap();
    assert_eq!(data["max_connections"], 10);
    let password = data["password"].as_str().unwrap().to_owned();
    assert!(call(&config, "create", json!({"vhost": other})).await.is_ok());

    publish(&host, port, &mine, &password, &mine).await.expect("publishes in its own virtual host");
    assert_refused(publish(&host, port, &mine, &password, &other).await, "refused in another virtual host");
    let usage = call(&config, "get_usage", json!({"vhost": mine})).await;
    assert!(usage.data.unwrap()["queues"]["used"].as_f64().unwrap() >= 1.0);

    assert!(call(&config, "suspend", json!({"vhost": mine})).await.is_ok());
    assert_refused(publish(&host, port, &mine, &password, &mine).await, "refused while suspended");
    assert!(call(&config, "unsuspend", json!({"vhost": mine})).await.is_ok());
    publish(&host, port, &mine, &password, &mine).await.expect("publishes again");

    for vhost in [&mine, &other] {
        assert!(call(&config, "terminate", json!({"vhost": vhost})).await.is_ok());
    }
    // A login that no longer exists: the broker closes the connection during the handshake.
    let gone = publish(&host, port, &mine, &password, &mine).await.expect_err("gone after terminate");
    assert!(!gone.contains("timed out"), "gone after terminate: {gone}");
    // The broker's own view: neither the user nor the virtual host exist any more.
    assert_eq!(management_status(&config, &format!("users/{}", data["username"].as_str().unwrap())).await, 404);
    assert_eq!(management_status(&config, &format!("vhosts/{mine}")).await, 404);
    assert_eq!(call(&config, "get_info", json!({"vhost": mine})).await.error_kind, Some(ErrorKind::NotFound));
}

#[tokio::test]
async fn test_connection_and_wrong_credentials() {
    let Some((config, _, _)) = server() else { return };
    let report = invoke::test_connection(&provisio_rabbitmq::entry(), &config, &CallOptions::default()).await;
    assert!(report.envelope.is_ok(), "{report:?}");
    let mut wrong = config.clone();
    wrong["password"] = json!("not-the-password");
    let report = invoke::test_connection(&provisio_rabbitmq::entry(), &wrong, &CallOptions::default()).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::ProviderError), "{report:?}");
    assert!(!serde_json::to_string(&report).unwrap().contains("not-the-password"));
}

/// Sends `body` to the management API with the administrator's credentials.
async fn management(config: &Value, method: reqwest::Method, path: &str, body: Value) {
    provisio_sdk::http::install_crypto_provider();
    let response = reqwest::Client::new()
        .request(method, format!("{}/api/{path}", config["api_url"].as_str().unwrap()))
        .basic_auth(config["username"].as_str().unwrap(), config["password"].as_str())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
}

#[tokio::test]
async fn a_virtual_host_made_with_the_management_api_is_listed_with_its_user_and_adopted() {
    let Some((config, host, port)) = server() else { return };
    let vhost = format!("legacy_{}", provisio_conformance::unique(8));
    let shared = format!("shared_{}", provisio_conformance::unique(8));
    let user = format!("{vhost}_app");
    let password = "Outside-Passw0rd";
    let put = reqwest::Method::PUT;
    management(&config, put.clone(), &format!("users/{user}"), json!({"password": password, "tags": ""})).await;
    for v in [&vhost, &shared] {
        management(&config, put.clone(), &format!("vhosts/{v}"), json!({})).await;
        let all = json!({"configure": ".*", "write": ".*", "read": ".*"});
        management(&config, put.clone(), &format!("permissions/{v}/{user}"), all).await;
    }
    let other = format!("{shared}_other");
    management(&config, put.clone(), &format!("users/{other}"), json!({"password": password, "tags": ""})).await;
    let all = json!({"configure": ".*", "write": ".*", "read": ".*"});
    management(&config, put.clone(), &format!("permissions/{shared}/{other}"), all.clone()).await;
    // A user with a management tag, and a virtual host with a description of its own.
    let tagged = format!("tagged_{}", provisio_conformance::unique(8));
    let noted = format!("noted_{}", provisio_conformance::unique(8));
    management(&config, put.clone(), &format!("users/{tagged}"), json!({"password": password, "tags": "management"}))
        .await;
    management(&config, put.clone(), &format!("vhosts/{tagged}"), json!({})).await;
    management(&config, put.clone(), &format!("permissions/{tagged}/{tagged}"), all.clone()).await;
    management(&config, put.clone(), &format!("vhosts/{noted}"), json!({"description": "billing team"})).await;

    let harness = Harness::new(provisio_rabbitmq::entry(), config.clone());
    let listed = provisio_conformance::list_all(&harness, 2).await;
    let find = |name: &str| listed.iter().find(|r| r["identifier"] == name).unwrap_or_else(|| panic!("{name}")).clone();
    // `user` is granted `shared` too: it reaches another virtual host, and `shared` has two users.
    assert!(find(&vhost)["refused"].as_str().unwrap().contains("other virtual hosts"), "{}", find(&vhost));
    assert!(find(&shared)["refused"].as_str().unwrap().contains("other users"), "two users: no owner to adopt");
    assert!(find(&tagged)["refused"].as_str().unwrap().contains("management"), "{}", find(&tagged));
    assert!(find(&noted)["refused"].as_str().unwrap().contains("description of its own"), "{}", find(&noted));
    // Once `user` reaches only its own virtual host, it is its owner.
    management(&config, reqwest::Method::DELETE, &format!("permissions/{shared}/{user}"), json!({})).await;
    let listed = provisio_conformance::list_all(&harness, 2).await;
    let find = |name: &str| listed.iter().find(|r| r["identifier"] == name).unwrap_or_else(|| panic!("{name}")).clone();
    assert!(find("/")["refused"].is_string(), "the default virtual host is never a service");
    let found = find(&vhost);
    assert!(found["refused"].is_null() && found["owner_mark"].is_null(), "{found}");
    assert_eq!(found["data"]["username"], user.as_str(), "its only user is its owner");

    let owner = harness.with_owner(Some("prv-adopted-vhost"));
    let adopted = owner.ok("adopt", json!({"vhost": vhost})).await;
    assert_eq!((adopted["username"].as_str(), adopted["state"].as_str()), (Some(user.as_str()), Some("active")));
    harness.fails("get_info", json!({"vhost": vhost}), ErrorKind::Conflict).await;
    owner.fails("adopt", json!({"vhost": tagged}), ErrorKind::Conflict).await;
    owner.fails("adopt", json!({"vhost": noted}), ErrorKind::Conflict).await;
    // The customer's access is as it was; the service's suspend now reaches it.
    publish(&host, port, &user, password, &vhost).await.expect("publishes as before");
    owner.ok("suspend", json!({"vhost": vhost})).await;
    assert_refused(publish(&host, port, &user, password, &vhost).await, "suspended");
    owner.ok("terminate", json!({"vhost": vhost})).await;
    let delete = reqwest::Method::DELETE;
    management(&config, delete.clone(), &format!("vhosts/{shared}"), json!({})).await;
    management(&config, delete.clone(), &format!("users/{other}"), json!({})).await;
    for v in [&tagged, &noted] {
        management(&config, delete.clone(), &format!("vhosts/{v}"), json!({})).await;
    }
    management(&config, delete.clone(), &format!("users/{tagged}"), json!({})).await;
}
