//! The test server's answers against the response samples cPanel publishes
//! for each function (api.docs.cpanel.net, "Response samples"), field by
//! field: every field of the vendor's sample is in ours, with the same JSON
//! type, and `metadata` carries the same fixed values. Ours may have more.
//!
//! Samples marked "assembled" were rebuilt from the schema's per-field
//! examples on the same page (docs/research/whm-api-1.md says which).
//! A `null` in a sample accepts any type: cPanel's schemas use it where real
//! servers send a number (`suspendtime`, docs/research/whm-api-1.md §3.3).

use std::time::Duration;

use provisio_whm_test_server::{Options, Whm};
use serde_json::{Value, json};

/// Every place where `ours` lacks a field of `vendor` or has another type.
fn differences(vendor: &Value, ours: &Value, path: &str, out: &mut Vec<String>) {
    match (vendor, ours) {
        (Value::Null, _) => {}
        (Value::Object(expected), Value::Object(found)) => {
            for (key, value) in expected {
                match found.get(key) {
                    Some(theirs) => differences(value, theirs, &format!("{path}/{key}"), out),
                    None => out.push(format!("{path}/{key} is missing")),
                }
            }
        }
        (Value::Array(expected), Value::Array(found)) => {
            if let (Some(first), Some(theirs)) = (expected.first(), found.first()) {
                differences(first, theirs, &format!("{path}/0"), out);
            }
        }
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        (expected, found) => out.push(format!("{path}: the sample has {expected}, ours {found}")),
    }
}

fn assert_same_shape(function: &str, source: &str, vendor: &str, ours: &Value) {
    let vendor: Value = serde_json::from_str(vendor).expect("the sample is JSON");
    let mut out = Vec::new();
    differences(&vendor, ours, "", &mut out);
    assert!(out.is_empty(), "{function} differs from {source}:\n{}\nours: {ours:#}", out.join("\n"));
    for key in ["command", "result", "version"] {
        assert_eq!(vendor["metadata"][key], ours["metadata"][key], "{function}: metadata.{key}");
    }
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    async fn call(&self, function: &str, params: &[(&str, &str)]) -> Value {
        let mut query = vec![("api.version", "1")];
        query.extend_from_slice(params);
        let response = self
            .http
            .get(format!("{}/json-api/{function}", self.url))
            .header("Authorization", format!("whm root:{}", self.token))
            .query(&query)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

async fn start() -> (Whm, provisio_test_server_kit::Running, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let whm = Whm::new(Options::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = provisio_test_server_kit::serve(listener, whm.router(), None);
    let client = Client {
        http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        url: running.url(),
        token: whm.options().root_token.clone(),
    };
    (whm, running, client)
}

const DOCS: &str = "https://api.docs.cpanel.net/openapi/whm/operation";

#[tokio::test]
async fn every_function_answers_like_cpanels_published_samples() {
    let (whm, _running, whm_client) = start().await;
    let c = &whm_client;

    // createacct (assembled from the 11.138 schema's examples).
    let created = c
        .call(
            "createacct",
            &[
                ("username", "username"),
                ("domain", "example.com"),
                ("plan", "basic"),
                ("contactemail", "username@example.com"),
            ],
        )
        .await;
    assert_same_shape(
        "createacct",
        &format!("{DOCS}/createacct/"),
        r#"{"data":{"ip":"192.0.2.0","nameserver":"ns1.example.com","nameserver2":"ns2.example.com","nameserver3":"ns3.example.com","nameserver4":"ns4.example.com","nameservera":"192.0.2.1","nameservera2":"192.0.2.2","nameservera3":"192.0.2.3","nameservera4":"192.0.2.4","nameserverentry":"dnsentry1","nameserverentry2":"dnsentry2","nameserverentry3":"dnsentry3","nameserverentry4":"dnsentry4","package":"my_new_package"},"metadata":{"command":"createacct","output":{"raw":"Checking input data...Account Creation Ok...Done\n"},"reason":"Account Creation Ok","result":1,"version":1}}"#,
        &created,
    );
    assert_eq!(created["metadata"]["reason"], "Account Creation Ok");
    whm.set_usage("username", 14, 1, 352);

    // accountsummary (the rendered sample).
    let summary = c.call("accountsummary", &[("user", "username")]).await;
    assert_same_shape(
        "accountsummary",
        &format!("{DOCS}/accountsummary/"),
        r#"{"data":{"acct":[{"backup":0,"child_nodes":[{"alias":"nodealias","workload":"Mail"}],"disklimit":"unlimited","diskused":"14M","domain":"example.com","email":"username@example.com","inodeslimit":"unlimited","inodesused":1,"ip":"192.168.0.128","ipv6":["0101:ca75:0101:ca75:0101:ca75:0101:ca77"],"is_locked":0,"legacy_backup":0,"mailbox_format":"maildir","max_defer_fail_percentage":"unlimited","max_email_per_hour":"unlimited","max_emailacct_quota":"unlimited","maxaddons":"unlimited","maxftp":"unlimited","maxlst":"unlimited","maxparked":"unlimited","maxpop":"unlimited","maxsql":"unlimited","maxsub":"unlimited","min_defer_fail_to_trigger_protection":"5","outgoing_mail_hold":0,"outgoing_mail_suspended":0,"owner":"root","partition":"home","plan":"packagename","shell":"/bin/bash","startdate":"13 May 22 16:03","suspended":0,"suspendreason":"not suspended","suspendtime":null,"temporary":0,"is_temporary_domain":0,"theme":"jupiter","uid":1001,"unix_startdate":1369256589,"user":"username"}]},"metadata":{"command":"accountsummary","reason":"OK","result":1,"version":1}}"#,
        &summary,
    );
    assert_eq!(summary["data"]["acct"][0]["diskused"], "14M");

    // listaccts begins like accountsummary, with has_backup.
    let listed = c.call("listaccts", &[("search", "username"), ("searchtype", "user")]).await;
    assert_same_shape(
        "listaccts",
        &format!("{DOCS}/listaccts/"),
        r#"{"data":{"acct":[{"backup":0,"disklimit":"unlimited","diskused":"14M","domain":"example.com","email":"username@example.com","has_backup":0,"ip":"192.168.0.128","owner":"root","plan":"packagename","suspended":0,"suspendreason":"not suspended","user":"username"}]},"metadata":{"command":"listaccts","reason":"OK","result":1,"version":1}}"#,
        &listed,
    );

    // listpkgs (the rendered sample, verbatim).
    let packages = c.call("listpkgs", &[]).await;
    assert_same_shape(
        "listpkgs",
        &format!("{DOCS}/listpkgs/"),
        r#"{"data":{"pkg":[{"BWLIMIT":"unlimited","CGI":"y","CPMOD":"jupiter","DIGESTAUTH":"n","FEATURELIST":"myfeaturelist","HASSHELL":"n","IP":"n","LANG":"en","MAXADDON":"unlimited","MAXFTP":"unlimited","MAXLST":"unlimited","MAXPARK":"unlimited","MAXPOP":"unlimited","MAXSQL":"unlimited","MAXSUB":"unlimited","MAX_DEFER_FAIL_PERCENTAGE":"unlimited","MAX_EMAILACCT_QUOTA":"unlimited","MAX_EMAIL_PER_HOUR":"unlimited","MAX_TEAM_USERS":7,"QUOTA":"unlimited","_PACKAGE_EXTENSIONS":"","name":"package1"}]},"metadata":{"command":"listpkgs","reason":"OK","result":1,"version":1}}"#,
        &packages,
    );

    // suspendacct and unsuspendacct (rendered samples; raw shortened).
    let suspended = c.call("suspendacct", &[("user", "username"), ("reason", "Nonpayment")]).await;
    assert_same_shape(
        "suspendacct",
        &format!("{DOCS}/suspendacct/"),
        r#"{"metadata":{"command":"suspendacct","output":{"raw":"Changing Shell to /bin/false...username's account has been suspended\n"},"reason":"OK","result":1,"version":1}}"#,
        &suspended,
    );
    let after = c.call("accountsummary", &[("user", "username")]).await;
    assert_eq!(
        (after["data"]["acct"][0]["suspended"].clone(), after["data"]["acct"][0]["suspendreason"].clone()),
        (json!(1), json!("Nonpayment"))
    );
    let unsuspended = c.call("unsuspendacct", &[("user", "username")]).await;
    assert_same_shape(
        "unsuspendacct",
        &format!("{DOCS}/unsuspendacct/"),
        r#"{"metadata":{"command":"unsuspendacct","reason":"OK","result":1,"version":1}}"#,
        &unsuspended,
    );

    // changepackage (rendered sample; raw shortened).
    let changed = c.call("changepackage", &[("user", "username"), ("pkg", "standard")]).await;
    assert_same_shape(
        "changepackage",
        &format!("{DOCS}/changepackage/"),
        r#"{"metadata":{"command":"changepackage","output":{"raw":"<pre>\nChanging plan from default to boo\n</pre>"},"reason":"OK","result":1,"version":1}}"#,
        &changed,
    );

    // passwd (the rendered sample, verbatim).
    let password = c.call("passwd", &[("user", "username"), ("password", "Str0ng-Passw0rd")]).await;
    assert_same_shape(
        "passwd",
        &format!("{DOCS}/passwd/"),
        r#"{"data":{"app":["ftp"]},"metadata":{"command":"passwd","reason":"Password changed for user “username”.","result":1,"version":1}}"#,
        &password,
    );
    assert_eq!(password["metadata"]["reason"], "Password changed for user “username”.");

    // create_user_session (assembled from the 11.138 schema's examples).
    let session =
        c.call("create_user_session", &[("user", "username"), ("service", "cpaneld"), ("locale", "fr")]).await;
    assert_same_shape(
        "create_user_session",
        &format!("{DOCS}/create_user_session/"),
        r#"{"data":{"cp_security_token":"/cpsess1234567890","expires":1401993893,"locale":"fr","service":"cpaneld","session":"username:RFw6MUp9S8sRwTSgqaUJWUCq8ZQg2Zkopx5KaTHRNQXBfT3n8xvfBEF9JJC3iiwa","url":"https://example.com:2083/cpsess1234567890/login/?session=username:RFw6MUp9S8sRwTSgqaUJWUCq8ZQg2Zkopx5KaTHRNQXBfT3n8xvfBEF9JJC3iiwa&locale=fr"},"metadata":{"command":"create_user_session","reason":"Created session","result":1,"version":1}}"#,
        &session,
    );
    let token = session["data"]["cp_security_token"].as_str().unwrap();
    assert!(token.len() == 17 && token.starts_with("/cpsess"), "{token}");
    let expires = session["data"]["expires"].as_u64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((now + 295..=now + 305).contains(&expires), "a session lasts 300 s");

    // showbw (the rendered sample, verbatim).
    let bandwidth = c.call("showbw", &[("searchtype", "user"), ("search", "^username$")]).await;
    assert_same_shape(
        "showbw",
        &format!("{DOCS}/showbw/"),
        r#"{"data":{"acct":[{"bwusage":[{"deleted":0,"domain":"example.com","usage":0}],"deleted":0,"limit":0,"maindomain":"example.com","owner":"root","reseller":0,"totalbytes":352,"user":"user"}],"month":12,"reseller":"root","totalused":352,"year":2019},"metadata":{"command":"showbw","reason":"OK","result":1,"version":1}}"#,
        &bandwidth,
    );
    assert_eq!(bandwidth["data"]["totalused"], 352);

    // version (the vendor's example inside the batch function's schema).
    let version = c.call("version", &[]).await;
    assert_same_shape(
        "version",
        &format!("{DOCS}/batch/"),
        r#"{"data":{"version":"11.88.0.1"},"metadata":{"command":"version","reason":"OK","result":1,"version":1}}"#,
        &version,
    );

    // myprivs (the rendered sample, cut to the ACLs the provider reads).
    let privileges = c.call("myprivs", &[]).await;
    assert_same_shape(
        "myprivs",
        &format!("{DOCS}/myprivs/"),
        r#"{"data":{"privileges":[{"acct-summary":0,"all":0,"create-acct":0,"create-user-session":0,"kill-acct":0,"list-accts":0,"list-pkgs":0,"passwd":0,"show-bandwidth":0,"suspend-acct":0,"upgrade-account":0}]},"metadata":{"command":"myprivs","reason":"OK","result":1,"version":1}}"#,
        &privileges,
    );

    // verify_new_username (assembled; the shape of verify_new_username_for_restore).
    let free = c.call("verify_new_username", &[("user", "freename")]).await;
    assert_same_shape(
        "verify_new_username",
        &format!("{DOCS}/verify_new_username/"),
        r#"{"metadata":{"command":"verify_new_username","reason":"OK","result":1,"version":1}}"#,
        &free,
    );

    // removeacct (rendered sample; the reason from the schema's example).
    let removed = c.call("removeacct", &[("username", "username")]).await;
    assert_same_shape(
        "removeacct",
        &format!("{DOCS}/removeacct/"),
        r#"{"metadata":{"command":"removeacct","output":{"raw":"Account Removal Complete!!!...example account removed...Done\n"},"reason":"example account removed","result":1,"version":1}}"#,
        &removed,
    );
    assert_eq!(removed["metadata"]["reason"], "username account removed");
}

#[tokio::test]
async fn failures_are_http_200_with_cpanels_own_texts() {
    let (_whm, _running, c) = start().await;
    let missing = c.call("accountsummary", &[("user", "nobody1")]).await;
    assert_eq!(missing["metadata"]["result"], 0);
    assert_eq!(missing["metadata"]["reason"], "Account does not exist.");
    let reserved = c.call("verify_new_username", &[("user", "root")]).await;
    let reason = reserved["metadata"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("API failure: (XID ") && reason.ends_with(") “root” is a reserved username on this system."),
        "{reason}"
    );
    c.call("createacct", &[("username", "shopping1"), ("domain", "shop.example"), ("plan", "basic")]).await;
    let twice =
        c.call("createacct", &[("username", "shopping1"), ("domain", "shop2.example"), ("plan", "basic")]).await;
    let reason = twice["metadata"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("(XID ") && reason.ends_with("This system already has an account named “shopping1”."),
        "{reason}"
    );
    let prefix = c.call("verify_new_username", &[("user", "shoppingx")]).await;
    assert!(prefix["metadata"]["reason"].as_str().unwrap().contains("same initial 8 characters"), "{prefix}");
    let suspend = c.call("suspendacct", &[("user", "ghost")]).await;
    assert!(
        suspend["metadata"]["reason"].as_str().unwrap().ends_with("You do not have a user named “ghost”."),
        "{suspend}"
    );
    let unknown = c.call("no_such_function", &[]).await;
    assert_eq!(unknown["metadata"]["result"], 0);
}

#[tokio::test]
async fn bad_credentials_get_the_403_real_servers_send_and_the_api_never_runs() {
    let (whm, _running, c) = start().await;
    for authorization in ["whm root:WRONG", "whm nobody:x", "Bearer x", "whm root", "Basic cm9vdDp3cm9uZw=="] {
        let response = c
            .http
            .get(format!("{}/json-api/createacct?api.version=1&username=sneaky&domain=s.example", c.url))
            .header("Authorization", authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{authorization}");
        assert_eq!(response.headers()["content-type"], r#"text/plain; charset="utf-8""#);
        let body = response.text().await.unwrap();
        assert_eq!(
            body,
            r#"{"cpanelresult":{"apiversion":"2","error":"Access denied","data":{"reason":"Access denied","result":"0"},"type":"text"}}"#
        );
    }
    let anonymous = c.http.get(format!("{}/json-api/version?api.version=1", c.url)).send().await.unwrap();
    assert_eq!(anonymous.status(), 403);
    assert!(whm.accounts().is_empty(), "nothing was made");
    // The session form of the path takes the same credentials.
    let in_session = c
        .http
        .get(format!("{}/cpsess0123456789/json-api/version?api.version=1", c.url))
        .header("Authorization", format!("WHM root:{}", c.token))
        .send()
        .await
        .unwrap();
    assert_eq!(in_session.json::<Value>().await.unwrap()["data"]["version"], provisio_whm_test_server::VERSION);
}

#[tokio::test]
async fn a_slow_createacct_makes_the_account_before_it_answers() {
    let (whm, _running, c) = start().await;
    whm.set_create_delay(Duration::from_secs(2));
    let slow = tokio::spawn({
        let (http, url, token) = (c.http.clone(), c.url.clone(), c.token.clone());
        async move {
            let client = Client { http, url, token };
            client.call("createacct", &[("username", "slowone"), ("domain", "slow.example"), ("plan", "basic")]).await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let meanwhile = c.call("accountsummary", &[("user", "slowone")]).await;
    assert_eq!(meanwhile["metadata"]["result"], 1, "the account exists while createacct still runs");
    assert_eq!(slow.await.unwrap()["metadata"]["result"], 1);
}

#[test]
fn the_binary_runs_on_its_own_and_prints_where_and_how() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("whm-test-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_provisio-whm-test-server"))
        .args(["--listen", "127.0.0.1:0", "--token", "STANDALONETOKEN", "--ca-out"])
        .arg(dir.join("ca.pem"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap()).lines().take(5).map(Result::unwrap).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(lines[0].starts_with("WHM_URL=https://127.0.0.1:"), "{lines:?}");
    assert_eq!(lines[2], "WHM_TOKEN=STANDALONETOKEN");
    let ca = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_comparison_sees_missing_and_mistyped_fields() {
    let compare = |vendor: Value, ours: Value| {
        let mut out = Vec::new();
        differences(&vendor, &ours, "", &mut out);
        out
    };
    assert!(compare(json!({"a": 1, "b": [{"c": "x"}]}), json!({"a": 2, "b": [{"c": "y", "d": 0}], "e": 1})).is_empty());
    assert_eq!(compare(json!({"a": 1}), json!({})), ["/a is missing"]);
    assert_eq!(compare(json!({"a": 1}), json!({"a": "1"})).len(), 1);
    assert!(compare(json!({"a": null}), json!({"a": 0})).is_empty(), "null in a sample accepts any type");
}
