//! The workbench CLI, driven as a user would: the real binary, a fresh
//! working directory (where demo state lands), exit codes and output.

use std::process::{Command, Output};

use serde_json::{Value, json};

struct Workbench {
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| panic!("stdout is not JSON ({err}):\n{}", self.stdout))
    }
}

impl Workbench {
    fn new() -> Self {
        Workbench { dir: tempfile::tempdir().unwrap() }
    }

    fn run(&self, args: &[&str]) -> Run {
        let Output { status, stdout, stderr } = Command::new(env!("CARGO_BIN_EXE_provisio"))
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("provisio runs");
        Run {
            code: status.code().expect("exit code"),
            stdout: String::from_utf8(stdout).unwrap(),
            stderr: String::from_utf8(stderr).unwrap(),
        }
    }

    fn call(&self, provider: &str, function: &str, config: &Value, params: &Value, extra: &[&str]) -> Run {
        let config = config.to_string();
        let params = params.to_string();
        let mut args = vec!["call", provider, function, "--config", &config, "--params", &params];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

fn alice() -> Value {
    json!({"domain": "example.com", "username": "alice", "package_name": "basic", "email": "a@example.com"})
}

#[test]
fn blueprints_json_lists_the_blueprints_with_function_schemas() {
    let run = Workbench::new().run(&["blueprints", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let blueprints = run.json();
    let ids: Vec<&str> = blueprints.as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "shared-hosting",
            "domain-names",
            "dns-hosting",
            "databases",
            "software-licenses",
            "coffee",
            "message-queues",
            "mqtt-hosting",
            "ssl-certificates",
            "physical-goods"
        ]
    );
    for blueprint in blueprints.as_array().unwrap() {
        let functions = blueprint["functions"].as_array().unwrap();
        assert!(!functions.is_empty());
        for function in functions {
            assert_eq!(function["params_schema"]["type"], "object", "{}", function["name"]);
            assert!(function["result_schema"].is_object(), "{}", function["name"]);
            assert!(function["name"].as_str().unwrap().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }
    let hosting = &blueprints[0]["functions"];
    let names: Vec<&str> = hosting.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    for name in [
        "create",
        "get_info",
        "get_usage",
        "get_login_url",
        "change_password",
        "change_package",
        "suspend",
        "unsuspend",
        "terminate",
    ] {
        assert!(names.contains(&name), "shared-hosting lacks {name}");
    }
}

#[test]
fn create_then_duplicate_then_invalid_domain() {
    let bench = Workbench::new();
    let first = bench.call("shared-hosting/demo", "create", &json!({}), &alice(), &["--json"]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let envelope = first.json();
    assert_eq!(envelope["status"], "ok");
    assert_eq!(envelope["data"]["username"], "alice");
    assert_eq!(envelope["data"]["package_name"], "basic");
    assert!(bench.dir.path().join("provisio-demo.sqlite").exists(), "state lives in the current directory");

    // Documented: an identical create adopts the existing account.
    let again = bench.call("shared-hosting/demo", "create", &json!({}), &alice(), &["--json"]);
    assert_eq!(again.code, 0);
    assert_eq!(again.json()["data"]["created_at"], envelope["data"]["created_at"]);
    // A different account under the same username is a conflict, exit 1.
    let mut other = alice();
    other["email"] = json!("other@example.com");
    let conflict = bench.call("shared-hosting/demo", "create", &json!({}), &other, &["--json"]);
    assert_eq!(conflict.code, 1);
    assert_eq!(conflict.json()["error_kind"], "conflict");

    let mut bad = alice();
    bad["domain"] = json!("not a domain");
    let invalid = bench.call("shared-hosting/demo", "create", &json!({}), &bad, &["--json"]);
    assert_eq!(invalid.code, 2);
    let envelope = invalid.json();
    assert_eq!(envelope["error_kind"], "invalid_input");
    assert_eq!(envelope["data"]["errors"][0]["path"], "/domain");
    assert!(envelope["message"].as_str().unwrap().contains("/domain"));
}

#[test]
fn lifecycle_from_the_command_line() {
    let bench = Workbench::new();
    let config = json!({"server": "cli"});
    assert_eq!(bench.call("shared-hosting/demo", "create", &config, &alice(), &[]).code, 0);
    let table = bench.call("shared-hosting/demo", "suspend", &config, &json!({"username": "alice"}), &[]);
    assert_eq!(table.code, 0);
    assert!(table.stdout.contains("status") && table.stdout.contains("\"suspended\""), "{}", table.stdout);
    assert_eq!(bench.call("shared-hosting/demo", "terminate", &config, &json!({"username": "alice"}), &[]).code, 0);
    let gone = bench.call("shared-hosting/demo", "get_info", &config, &json!({"username": "alice"}), &["--json"]);
    assert_eq!(gone.code, 1);
    assert_eq!(gone.json()["error_kind"], "not_found");
}

#[test]
fn usage_errors_exit_2() {
    let bench = Workbench::new();
    let unknown = bench.call("shared-hosting/nope", "create", &json!({}), &alice(), &[]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("unknown provider"), "{}", unknown.stderr);
    let function = bench.call("shared-hosting/demo", "explode", &json!({}), &json!({}), &["--json"]);
    assert_eq!(function.code, 2);
    assert!(function.json()["message"].as_str().unwrap().contains("Unknown function"));
    let bad_json = bench.run(&["call", "coffee/demo", "brew", "--config", "{nope", "--params", "{}"]);
    assert_eq!(bad_json.code, 2);
    assert!(bad_json.stderr.contains("--config"), "{}", bad_json.stderr);
    assert_eq!(bench.run(&["call"]).code, 2);
}

#[test]
fn providers_and_describe() {
    let bench = Workbench::new();
    let run = bench.run(&["providers", "--blueprint", "coffee", "--json"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.json()[0]["address"], "coffee/demo");
    let run = bench.run(&["describe", "shared-hosting/demo", "--json"]);
    let described = run.json();
    assert_eq!(described["secret_fields"], json!(["/api_key"]));
    assert_eq!(described["config_schema"]["properties"]["api_key"]["writeOnly"], true);
    let mut endpoints: Vec<&str> =
        described["endpoint_fields"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    endpoints.sort_unstable();
    assert_eq!(endpoints, ["panel_url", "server", "state_path"]);
    assert!(described["ownership"].as_str().unwrap().contains("owner mark"));
    let text = bench.run(&["describe", "shared-hosting/demo"]);
    assert!(text.stdout.contains("api_key") && text.stdout.contains("secret"), "{}", text.stdout);
    // What ownership means for the blueprint is said, in the table and in the JSON.
    assert!(text.stdout.contains("owner mark"), "{}", text.stdout);
    // Who may run each function, and in which service statuses.
    let hosting = bench.run(&["describe", "shared-hosting/demo"]);
    assert!(
        hosting.stdout.contains("on demand by client, staff") && hosting.stdout.contains("statuses     active"),
        "{}",
        hosting.stdout
    );
    assert!(hosting.stdout.contains("login") && hosting.stdout.contains("get_login_url"), "{}", hosting.stdout);
    let zones = bench.run(&["describe", "dns-hosting/demo"]);
    assert!(zones.stdout.contains("zone (hierarchical)"), "{}", zones.stdout);
    assert!(bench.run(&["blueprints"]).stdout.contains("shared-hosting"));
    assert_eq!(bench.run(&["providers", "--blueprint", "nope"]).code, 2);
}

/// A secret configuration value never appears in any output of
/// `provisio call --verbose` (JSON or table), on success or on any error path.
#[test]
fn a_secret_configuration_value_never_appears_in_output() {
    const SECRET: &str = "Sup3r-S3cret/Key+42";
    const OTHER_SECRET: &str = "0ther-S3cret/Key+43";
    let bench = Workbench::new();
    let config = json!({"server": "vault", "api_key": SECRET});
    let cases: Vec<(Value, &str, Value)> = vec![
        // Success: the secret becomes the simulated server's key.
        (config.clone(), "create", alice()),
        (config.clone(), "get_login_url", json!({"username": "alice"})),
        // Wrong key: the simulator echoes what it received, as vendors do.
        (json!({"server": "vault", "api_key": OTHER_SECRET}), "get_info", json!({"username": "alice"})),
        // Invalid params, with the secret as the offending value.
        (
            config.clone(),
            "create",
            json!({"domain": SECRET, "username": SECRET, "package_name": "basic", "email": SECRET}),
        ),
        // Invalid configuration next to the secret.
        (json!({"server": "vault", "api_key": SECRET, "latency_ms": "slow"}), "get_info", json!({"username": "alice"})),
        (
            json!({"server": "vault", "api_key": SECRET, "unknown_field": SECRET}),
            "get_info",
            json!({"username": "alice"}),
        ),
        // Injected failures.
        (json!({"server": "vault", "api_key": SECRET, "transient_rate": 1.0}), "suspend", json!({"username": "alice"})),
        (
            json!({"server": "vault", "api_key": SECRET, "outcome_unknown_rate": 1.0}),
            "suspend",
            json!({"username": "alice"}),
        ),
        // Not found, unknown function.
        (config.clone(), "get_info", json!({"username": "nobody"})),
        (config.clone(), "no_such_function", json!({})),
    ];
    let mut codes = Vec::new();
    for (config, function, params) in &cases {
        for mode in [&["--json", "--verbose"][..], &["--verbose"][..]] {
            let run = bench.call("shared-hosting/demo", function, config, params, mode);
            for secret in [SECRET, OTHER_SECRET] {
                assert!(!run.stdout.contains(secret), "{function} {mode:?} leaked on stdout:\n{}", run.stdout);
                assert!(!run.stderr.contains(secret), "{function} {mode:?} leaked on stderr:\n{}", run.stderr);
                assert!(!run.stdout.contains("S3cret"), "{function} {mode:?} leaked a part:\n{}", run.stdout);
            }
            codes.push(run.code);
        }
    }
    // The cases really took the paths they name: ok, provider error, invalid input.
    assert_eq!(&codes[0..4], [0, 0, 0, 0]);
    assert_eq!(&codes[4..6], [1, 1]);
    assert_eq!(&codes[6..], [2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 2, 2], "{codes:?}");
    let rejected = bench.call("shared-hosting/demo", "get_info", &cases[2].0, &cases[2].2, &["--json", "--verbose"]);
    assert!(rejected.stdout.contains("[REDACTED]"), "the echoed key is replaced:\n{}", rejected.stdout);

    // The test-connection command too.
    let config = json!({"server": "vault", "api_key": OTHER_SECRET}).to_string();
    let run = bench.run(&["test-connection", "shared-hosting/demo", "--config", &config, "--json", "--verbose"]);
    assert_eq!(run.code, 1);
    assert!(!run.stdout.contains(OTHER_SECRET) && !run.stderr.contains(OTHER_SECRET), "{}", run.stdout);
}

#[test]
fn output_piped_into_a_reader_that_stops_early_is_not_a_panic() {
    let bin = env!("CARGO_BIN_EXE_provisio");
    for args in ["blueprints", "blueprints --json", "providers", "describe shared-hosting/demo"] {
        let status = std::process::Command::new("bash")
            .args(["-c", &format!("set -o pipefail; '{bin}' {args} | head -1 > /dev/null")])
            .status()
            .unwrap();
        assert!(status.success(), "{args}: {status}");
    }
}

#[test]
fn shell_completions_are_printed() {
    for shell in ["bash", "zsh", "fish"] {
        let output =
            std::process::Command::new(env!("CARGO_BIN_EXE_provisio")).args(["completions", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}");
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.contains("provisio") && text.contains("report"), "{shell}");
    }
}

/// An external provider program is listed, described, called and checked
/// by the conformance suite like a compiled-in one; one that cannot
/// describe itself stops the command with why.
#[test]
fn an_external_provider_is_listed_called_and_conforms_from_the_command_line() {
    let bench = Workbench::new();
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/python-licenses/provider.py");
    let run = bench.run(&["providers", "--blueprint", "software-licenses", "--external-provider", program]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("software-licenses/licenses-py"), "{}", run.stdout);
    let run = bench.run(&["describe", "software-licenses/licenses-py", "--json", "--external-provider", program]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["secret_fields"], json!(["/api_key"]));

    let config = json!({"state_path": bench.dir.path().join("vendor.json"), "api_key": "cli-key-0123456"}).to_string();
    let params = json!({"reference": "r-9", "package_identifier": "basic", "customer_name": "Ann",
                        "customer_email": "ann@example.com"})
    .to_string();
    let run = bench.run(&[
        "call",
        "software-licenses/licenses-py",
        "create",
        "--config",
        &config,
        "--params",
        &params,
        "--json",
        "--external-provider",
        program,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.json()["data"]["license_key"].as_str().is_some_and(|k| k.starts_with("LK-")), "{}", run.stdout);
    assert!(!run.stdout.contains("cli-key-0123456"));

    let run = bench.run(&[
        "conformance",
        "software-licenses/licenses-py",
        "--config",
        &config,
        "--external-provider",
        program,
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("passes the conformance suite"), "{}", run.stdout);
    // The wrong key: the vendor refuses, the suite says which check failed.
    let wrong = json!({"state_path": bench.dir.path().join("vendor.json"), "api_key": "another-key-99"}).to_string();
    let run = bench.run(&[
        "conformance",
        "software-licenses/licenses-py",
        "--config",
        &wrong,
        "--external-provider",
        program,
    ]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("fails the conformance suite") && run.stderr.contains("refused the API key"),
        "{}",
        run.stderr
    );

    let run = bench.run(&["providers", "--external-provider", "/nonexistent/provider"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("could not be started"), "{}", run.stderr);
}
