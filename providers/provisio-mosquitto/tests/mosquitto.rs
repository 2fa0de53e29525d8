//! `mqtt-hosting/mosquitto` against a real Mosquitto 2 with the dynamic
//! security plugin: the conformance suite, then the device's side: it
//! publishes and receives under its prefix, its messages elsewhere reach
//! nobody, it is refused while suspended and gone after terminate.
//!
//! The broker comes from `PROVISIO_TEST_MOSQUITTO` (a URL with the dynsec
//! admin's credentials), which `scripts/test-servers start` prints. Without it
//! the tests say so and pass outside CI, and fail in CI.

use std::time::Duration;

use provisio_conformance::Harness;
use provisio_sdk::{CallOptions, ErrorKind, invoke};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

fn server() -> Option<(Value, String, u16)> {
    let [text, tls_port, ca] = provisio_conformance::test_servers([
        "PROVISIO_TEST_MOSQUITTO",
        "PROVISIO_TEST_MOSQUITTO_TLS_PORT",
        "PROVISIO_TEST_CA",
    ])?;
    let url = url::Url::parse(&text).expect("a URL");
    let (host, port) = (url.host_str().unwrap().to_owned(), url.port().unwrap_or(1883));
    // Provisio talks to the broker over verified TLS; the devices here use its plain listener.
    let config = json!({"host": host, "port": tls_port.parse::<u16>().unwrap(), "tls": "verify",
                        "ca_cert_pem": std::fs::read_to_string(ca).unwrap(),
                        "username": url.username(), "password": url.password().unwrap_or_default()});
    Some((config, host, port))
}

/// A device session: connected (or the broker's refusal).
async fn device(host: &str, port: u16, user: &str, password: &str) -> Result<(AsyncClient, EventLoop), String> {
    let mut options = MqttOptions::new(format!("{user}-{}", provisio_conformance::unique(6)), host, port);
    options.set_credentials(user, password);
    let (client, mut events) = AsyncClient::new(options, 10);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok((client, events)),
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(err.to_string()),
            Err(_) => return Err("timed out".into()),
        }
    }
}

/// Subscribes to `filter`, publishes `payload` to `topic` (from `publisher`,
/// or the same session) and answers whether the subscriber received it.
async fn delivered(
    subscriber: (AsyncClient, EventLoop),
    publisher: Option<&AsyncClient>,
    filter: &str,
    topic: &str,
) -> bool {
    let (client, mut events) = subscriber;
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let payload = provisio_conformance::unique(10);
    let mut published = false;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    loop {
        let Ok(event) = tokio::time::timeout_at(deadline, events.poll()).await else { return false };
        match event {
            Ok(Event::Incoming(Packet::SubAck(_))) if !published => {
                let sender = publisher.unwrap_or(&client);
                sender.publish(topic, QoS::AtLeastOnce, false, payload.clone()).await.unwrap();
                published = true;
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.payload == payload.as_bytes() => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

async fn call(config: &Value, function: &str, params: Value) -> provisio_sdk::Envelope {
    let options = CallOptions { timeout: Duration::from_secs(20), ..CallOptions::default() };
    invoke::call(&provisio_mosquitto::entry(), config, function, &params, &options).await.envelope
}

#[tokio::test]
async fn passes_the_mqtt_hosting_conformance_suite() {
    let Some((config, _, _)) = server() else { return };
    provisio_conformance::run(&Harness::new(provisio_mosquitto::entry(), config)).await;
}

#[tokio::test]
async fn the_device_publishes_under_its_prefix_and_nowhere_else() {
    let Some((config, host, port)) = server() else { return };
    let (me, other) =
        (format!("dev_{}", provisio_conformance::unique(6)), format!("dev_{}", provisio_conformance::unique(6)));
    let created = call(&config, "create", json!({"username": me, "topic_prefix": format!("homes/{me}")})).await;
    let password = created.data.unwrap()["password"].as_str().unwrap().to_owned();
    let created = call(&config, "create", json!({"username": other, "topic_prefix": format!("homes/{other}")})).await;
    let other_password = created.data.unwrap()["password"].as_str().unwrap().to_owned();

    let session = device(&host, port, &me, &password).await.expect("the device connects");
    assert!(delivered(session, None, &format!("homes/{me}/#"), &format!("homes/{me}/kitchen")).await, "its own prefix");
    // Its messages to another prefix reach nobody, not even that prefix's owner.
    let watcher = device(&host, port, &other, &other_password).await.unwrap();
    let (intruder, mut intruder_events) = device(&host, port, &me, &password).await.unwrap();
    tokio::spawn(async move { while intruder_events.poll().await.is_ok() {} });
    assert!(!delivered(watcher, Some(&intruder), &format!("homes/{other}/#"), &format!("homes/{other}/door")).await);
    assert!(device(&host, port, &me, "Wrong-Passw0rd").await.is_err());

    assert!(call(&config, "suspend", json!({"username": me})).await.is_ok());
    let Err(refused) = device(&host, port, &me, &password).await else { panic!("a suspended device connected") };
    assert!(refused.contains("NotAuthorized") || refused.contains("BadUserNamePassword"), "{refused}");
    assert!(call(&config, "unsuspend", json!({"username": me})).await.is_ok());
    device(&host, port, &me, &password).await.expect("connects again");

    for username in [&me, &other] {
        assert!(call(&config, "terminate", json!({"username": username})).await.is_ok());
    }
    assert!(device(&host, port, &me, &password).await.is_err(), "gone after terminate");
    assert_eq!(call(&config, "get_info", json!({"username": me})).await.error_kind, Some(ErrorKind::NotFound));
}

#[tokio::test]
async fn test_connection_and_wrong_credentials() {
    let Some((config, _, _)) = server() else { return };
    let report = invoke::test_connection(&provisio_mosquitto::entry(), &config, &CallOptions::default()).await;
    assert!(report.envelope.is_ok(), "{report:?}");
    let mut wrong = config.clone();
    wrong["password"] = json!("not-the-password");
    let report = invoke::test_connection(&provisio_mosquitto::entry(), &wrong, &CallOptions::default()).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::ProviderError), "{report:?}");
    assert!(!serde_json::to_string(&report).unwrap().contains("not-the-password"));
}

#[tokio::test]
async fn tls_to_the_broker_is_verified_never_skipped() {
    let Some((config, _, plain_port)) = server() else { return };
    let mut plain = config.clone();
    plain["port"] = json!(plain_port);
    let harness = Harness::new(provisio_mosquitto::entry(), config);
    provisio_conformance::tls_is_verified(&harness, json!({"username": "nobody_here"}), plain.clone()).await;
    // Verified TLS against the plain listener fails too: never a silent fallback.
    let mut verify_plain = harness.clone();
    verify_plain.config = plain;
    let refused = verify_plain.call("get_info", json!({"username": "nobody_here"})).await;
    assert!(refused.error_kind.is_some(), "{refused:#?}");
}
