//! The external provider protocol end to end, with real programs: both
//! examples (Python and Node.js, standard library only) pass the
//! software-licenses conformance suite, and a provider that misbehaves in
//! every way the protocol forbids fails only its own calls, each with a
//! clear error, while its pool and other providers go on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use provisio_sdk::{CallOptions, ErrorKind, ProviderEntry, Registry, invoke};
use serde_json::{Value, json};

fn program(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn load(relative: &str) -> ProviderEntry {
    let registry = Registry::new(provisio_sdk::blueprints::all());
    provisio_external::load(&program(relative), &registry).expect("the program describes itself")
}

async fn conforms(relative: &str, address: &str) {
    let entry = load(relative);
    assert_eq!(entry.address(), address);
    let dir = tempfile::tempdir().unwrap();
    let config = json!({"state_path": dir.path().join("vendor.json"), "api_key": "example-key-123"});
    provisio_conformance::run(&provisio_conformance::Harness::new(entry.clone(), config.clone())).await;
    let tested = invoke::test_connection(&entry, &config, &CallOptions::default()).await;
    assert!(tested.envelope.is_ok(), "{tested:?}");
    // The vendor account's key is fixed by its first use: another is refused, clearly.
    let wrong = json!({"state_path": dir.path().join("vendor.json"), "api_key": "another-key-456"});
    let refused = invoke::test_connection(&entry, &wrong, &CallOptions::default()).await;
    assert_eq!(refused.envelope.error_kind, Some(ErrorKind::ProviderError), "{refused:?}");
    // What the program wrote on standard error is in the call's record, for staff.
    let report =
        invoke::call(&entry, &config, "get_info", &json!({"license_key": "LK-NONE"}), &CallOptions::default()).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::NotFound), "{report:?}");
    assert!(report.http_log.iter().any(|e| e.method == "STDERR"), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_conforms() {
    conforms("../../examples/python-licenses/provider.py", "software-licenses/licenses-py").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_example_conforms() {
    conforms("../../examples/node-licenses/provider.js", "software-licenses/licenses-node").await;
}

async fn brew(entry: &ProviderEntry, config: &Value, name: &str, timeout: Duration) -> invoke::CallReport {
    let options = CallOptions { timeout, ..CallOptions::default() };
    invoke::call(entry, config, "brew", &json!({"name": name, "size": "small"}), &options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_provider_fails_only_its_own_calls_each_clearly() {
    let entry = load("tests/misbehaving.py");
    let config = json!({});
    let second = Duration::from_secs(1);
    let cases = [
        ("crash", ErrorKind::OutcomeUnknown, "exited"),
        ("hang", ErrorKind::OutcomeUnknown, "did not answer before the deadline"),
        ("garbage", ErrorKind::OutcomeUnknown, "not JSON"),
        ("flood", ErrorKind::OutcomeUnknown, "over 1048576 bytes"),
        ("wrong-id", ErrorKind::OutcomeUnknown, "not waiting for an answer"),
        ("bad-answer", ErrorKind::OutcomeUnknown, "/status"),
        ("bad-data", ErrorKind::Internal, "outside the blueprint's result schema"),
    ];
    for (how, kind, says) in cases {
        let report = brew(&entry, &config, how, second).await;
        assert_eq!(report.envelope.error_kind, Some(kind), "{how}: {report:?}");
        let text = format!("{} {:?}", report.envelope.message.as_str(), report.envelope.debug);
        assert!(text.contains(says), "{how}: expected `{says}` in {text}");
        // The pool goes on: the next call is brewed by a healthy copy.
        let next = brew(&entry, &config, "Joe", second).await;
        assert!(next.envelope.is_ok(), "after {how}: {next:?}");
    }
    // A query that gets no answer is only transient: nothing changed.
    let options = CallOptions { timeout: second, ..CallOptions::default() };
    let read = invoke::call(&entry, &config, "get_info", &json!({"order_id": "hang"}), &options).await;
    assert!(read.envelope.is_ok() || read.envelope.error_kind == Some(ErrorKind::Transient), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_provider_delays_no_other_provider() {
    let bad = load("tests/misbehaving.py");
    let good = load("../../examples/python-licenses/provider.py");
    let dir = tempfile::tempdir().unwrap();
    let good_config = json!({"state_path": dir.path().join("vendor.json"), "api_key": "example-key-123"});
    // Both copies of the bad provider hang until their 5 s deadline...
    let hanging: Vec<_> = (0..2)
        .map(|_| {
            let bad = bad.clone();
            tokio::spawn(async move { brew(&bad, &json!({}), "hang", Duration::from_secs(5)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...a third call to it finds every copy busy and waits within its own deadline...
    let waiting = brew(&bad, &json!({}), "Joe", Duration::from_millis(500)).await;
    assert_eq!(waiting.envelope.error_kind, Some(ErrorKind::Transient), "{waiting:?}");
    assert!(waiting.envelope.message.as_str().contains("busy"), "{waiting:?}");
    // ...and another provider's calls go on meanwhile.
    let params = json!({"reference": "r-1", "package_identifier": "basic", "customer_name": "Ann",
                        "customer_email": "ann@example.com"});
    let created = invoke::call(&good, &good_config, "create", &params, &CallOptions::default()).await;
    assert!(created.envelope.is_ok(), "{created:?}");
    assert!(hanging.iter().all(|h| !h.is_finished()), "the other provider's call waited for the hanging ones");
    for hung in hanging {
        assert_eq!(hung.await.unwrap().envelope.error_kind, Some(ErrorKind::OutcomeUnknown));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_provider_says_of_its_secrets_is_redacted() {
    let entry = load("tests/misbehaving.py");
    let token = "tok-0123456789-secret";
    let report = brew(&entry, &json!({"token": token}), "secret", Duration::from_secs(5)).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::ProviderError), "{report:?}");
    let everything = format!("{:?} {}", report.envelope, serde_json::to_string(&report.http_log).unwrap());
    assert!(!everything.contains(token), "the configuration's secret was kept: {everything}");
    assert!(everything.contains("STDERR") && everything.contains("vendor.example"), "{everything}");

    // What a copy writes after answering lands in the next call's record,
    // perhaps another configuration's: it is redacted of every secret the
    // copy was given, not only that call's.
    let other = "tok-9876543210-other";
    let first = brew(&entry, &json!({"token": other}), "late-secret", Duration::from_secs(5)).await;
    assert!(first.envelope.is_ok(), "{first:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let next = brew(&entry, &json!({"token": token}), "Joe", Duration::from_secs(5)).await;
    let everything = format!("{:?} {}", next.envelope, serde_json::to_string(&next.http_log).unwrap());
    assert!(!everything.contains(other), "another configuration's secret reached this call's record: {everything}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_error_that_is_not_utf8_is_kept_and_harms_nothing() {
    let entry = load("tests/misbehaving.py");
    for _ in 0..3 {
        let report = brew(&entry, &json!({}), "latin1", Duration::from_secs(5)).await;
        assert!(report.envelope.is_ok(), "{report:?}");
        let stderr: Vec<&str> = report
            .http_log
            .iter()
            .filter(|e| e.method == "STDERR")
            .filter_map(|e| e.response_body.as_deref())
            .collect();
        assert!(stderr.iter().any(|s| s.contains("caf\u{fffd} au lait")), "{stderr:?}");
    }
}

#[test]
fn programs_that_cannot_describe_themselves_stop_the_start_clearly() {
    let registry = Registry::new(provisio_sdk::blueprints::all());
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    };
    let describe = |data: &str| format!(r#"read line; echo '{{"id": 1, "status": "ok", "data": {data}}}'"#);
    let cases = [
        (dir.path().join("absent"), "could not be started"),
        (write("silent", "exit 0"), "exited without answering"),
        (write("garbage", "read line; echo nonsense"), "is not JSON"),
        (
            write(
                "no-blueprint",
                &describe(
                    r#"{"protocol": 1, "blueprint": "teleporters", "id": "x", "name": "X", "description": "X", "config_schema": {}, "functions": ["beam"]}"#,
                ),
            ),
            "unknown blueprint",
        ),
        (
            write(
                "missing",
                &describe(
                    r#"{"protocol": 1, "blueprint": "coffee", "id": "x", "name": "X", "description": "X", "config_schema": {}, "functions": ["brew"]}"#,
                ),
            ),
            "leaves out `get_info`",
        ),
        (
            write(
                "bad-id",
                &describe(
                    r#"{"protocol": 1, "blueprint": "coffee", "id": "X Y", "name": "X", "description": "X", "config_schema": {}, "functions": ["brew", "get_info"]}"#,
                ),
            ),
            "/id",
        ),
        (
            write(
                "version",
                &describe(
                    r#"{"protocol": 2, "blueprint": "coffee", "id": "x", "name": "X", "description": "X", "config_schema": {}, "functions": ["brew", "get_info"]}"#,
                ),
            ),
            "/protocol",
        ),
    ];
    for (path, says) in cases {
        let err = provisio_external::load(&path, &registry).unwrap_err().to_string();
        assert!(err.contains(says), "{}: expected `{says}` in {err}", path.display());
    }
}
