//! `coffee/mqtt` with the test playing the coffee machine: a real MQTT
//! client on a real Mosquitto, which verifies each order's signature, brews
//! each order id once and answers status requests.
//!
//! The broker comes from `PROVISIO_TEST_MOSQUITTO` (its dynamic security
//! admin), which `scripts/test-servers start` prints; the accounts for
//! Provisio and the machine are made with `mqtt-hosting/mosquitto`. Without
//! it the tests say so and pass outside CI, and fail in CI.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use provisio_conformance::{Harness, unique};
use provisio_sdk::{CallOptions, ErrorKind, invoke};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

const KEY: &str = "machine-shared-signing-key";

type Orders = Arc<Mutex<HashMap<String, Value>>>;

/// Makes broker accounts for Provisio and a machine; answers the provider
/// configuration, the machine's orders (as the machine saw them), and starts
/// the machine.
async fn setup(machine: &str) -> Option<(Value, Orders)> {
    let [text, tls_port, ca] = provisio_conformance::test_servers([
        "PROVISIO_TEST_MOSQUITTO",
        "PROVISIO_TEST_MOSQUITTO_TLS_PORT",
        "PROVISIO_TEST_CA",
    ])?;
    let url = url::Url::parse(&text).unwrap();
    let (host, port) = (url.host_str().unwrap().to_owned(), url.port().unwrap_or(1883));
    // Provisio talks to the broker over verified TLS; the machine here uses its plain listener.
    let (tls_port, ca) = (tls_port.parse::<u16>().unwrap(), std::fs::read_to_string(ca).unwrap());
    // The coffee topic space is reserved from customer accounts; the operator
    // lifts that for the one account Provisio and the machine share here.
    let admin = json!({"host": host, "port": tls_port, "ca_cert_pem": ca, "username": url.username(),
                       "password": url.password().unwrap(), "reserved_prefixes": []});
    let username = format!("pv_{machine}");
    let params = json!({"username": username, "topic_prefix": format!("coffee/{machine}")});
    let report = invoke::call(&provisio_mosquitto::entry(), &admin, "create", &params, &CallOptions::default()).await;
    let password = report.envelope.data.as_ref().and_then(|d| d["password"].as_str()).expect("account made").to_owned();
    let passwords = [(username.clone(), password.clone()), (username, password)];
    let orders = Orders::default();
    let (ready, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(play_machine(host.clone(), port, machine.to_owned(), passwords[1].clone(), orders.clone(), ready));
    // The machine listens before the first order goes out.
    tokio::time::timeout(Duration::from_secs(10), subscribed).await.expect("the machine subscribed").unwrap();
    let config = json!({"host": host, "port": tls_port, "ca_cert_pem": ca, "username": passwords[0].0,
                        "password": passwords[0].1, "machine": machine, "signing_key": KEY, "ack_timeout_secs": 3});
    Some((config, orders))
}

async fn play_machine(
    host: String,
    port: u16,
    machine: String,
    (user, password): (String, String),
    orders: Orders,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut options = MqttOptions::new(format!("machine-{machine}"), host, port);
    options.set_credentials(user, password);
    let (client, mut events) = AsyncClient::new(options, 20);
    let (mut ready, mut acknowledged) = (Some(ready), 0);
    while let Ok(event) = events.poll().await {
        let Event::Incoming(packet) = event else { continue };
        match packet {
            Packet::SubAck(_) => {
                acknowledged += 1;
                if acknowledged == 2
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(());
                }
            }
            Packet::ConnAck(_) => {
                client.subscribe(format!("coffee/{machine}/orders"), QoS::AtLeastOnce).await.unwrap();
                client.subscribe(format!("coffee/{machine}/status/request"), QoS::AtLeastOnce).await.unwrap();
            }
            Packet::Publish(publish) => {
                let message: Value = serde_json::from_slice(&publish.payload).unwrap_or(Value::Null);
                let (topic, reply) = if publish.topic.ends_with("/orders") {
                    let order_id = message["order_id"].as_str().unwrap_or_default().to_owned();
                    let signed = provisio_coffee_mqtt::sign(KEY, &message);
                    let reply = if message["signature"].as_str() != Some(signed.as_str()) {
                        json!({"order_id": order_id, "accepted": false, "reason": "the signature does not verify"})
                    } else {
                        let mut known = orders.lock().unwrap();
                        let cup = known.entry(order_id.clone()).or_insert_with(|| {
                            json!({"order_id": order_id, "accepted": true, "status": "queued", "name": message["name"],
                                   "size": message["size"], "sugar": message["sugar"], "milk": message["milk"],
                                   "ready_at": "2026-11-27T12:05:00Z"})
                        });
                        cup.clone()
                    };
                    (format!("coffee/{machine}/acks"), reply)
                } else {
                    let cup = orders.lock().unwrap().get(message["order_id"].as_str().unwrap_or_default()).cloned();
                    let mut reply = cup.unwrap_or(json!({"order_id": message["order_id"], "found": false}));
                    reply["request_id"] = message["request_id"].clone();
                    if reply.get("found").is_none() {
                        reply["found"] = json!(true);
                        reply["status"] = json!("brewing");
                    }
                    (format!("coffee/{machine}/status/response"), reply)
                };
                client.publish(topic, QoS::AtLeastOnce, false, reply.to_string()).await.unwrap();
            }
            _ => {}
        }
    }
}

async fn brew(config: &Value, key: Option<&str>) -> provisio_sdk::Envelope {
    let options = CallOptions {
        idempotency_key: key.map(str::to_owned),
        timeout: Duration::from_secs(10),
        ..CallOptions::default()
    };
    let params = json!({"name": "Joe", "size": "small", "sugar": 1, "milk": "oat"});
    invoke::call(&provisio_coffee_mqtt::entry(), config, "brew", &params, &options).await.envelope
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_coffee_conformance_suite_against_a_real_machine() {
    let Some((config, orders)) = setup(&format!("m{}", unique(6))).await else { return };
    provisio_conformance::run(&Harness::new(provisio_coffee_mqtt::entry(), config)).await;
    assert!(orders.lock().unwrap().len() >= 3, "the machine really received the orders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_brew_is_brewed_once_and_forged_or_unanswered_orders_fail_safely() {
    let Some((config, orders)) = setup(&format!("m{}", unique(6))).await else { return };
    let first = brew(&config, Some("job-42")).await;
    assert!(first.is_ok(), "{first:?}");
    let again = brew(&config, Some("job-42")).await;
    assert_eq!(again.data.unwrap()["order_id"], first.data.unwrap()["order_id"]);
    assert_eq!(orders.lock().unwrap().len(), 1, "the machine brewed one cup");

    // Signed with the wrong key: the machine refuses it.
    let mut forged = config.clone();
    forged["signing_key"] = json!("not-the-machine-key-at-all");
    let refused = brew(&forged, Some("job-43")).await;
    assert_eq!(refused.error_kind, Some(ErrorKind::ProviderError), "{refused:?}");
    assert!(refused.message.as_str().contains("signature"));
    assert_eq!(orders.lock().unwrap().len(), 1);
    let printed = serde_json::to_string(&refused).unwrap();
    assert!(!printed.contains("not-the-machine-key-at-all"));

    // Nobody answers for this machine: the order may still be brewed later.
    let mut silent = config.clone();
    silent["machine"] = json!("nobody-home");
    silent["ack_timeout_secs"] = json!(1);
    assert_eq!(brew(&silent, Some("job-44")).await.error_kind, Some(ErrorKind::OutcomeUnknown));
}
