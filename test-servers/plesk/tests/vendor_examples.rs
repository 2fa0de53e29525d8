//! The test server against the packets Plesk publishes in its XML API
//! reference (docs.plesk.com, "api-rpc"): the published requests are
//! accepted, and each answer is compared with the published response,
//! element by element: every element of the sample is in ours, in the same
//! order, numbers where the sample has numbers. Ours may have more.
//!
//! Three samples carry typos in the original (`3/id>`, `MyClient/filter-id>`,
//! `<maillists>4<maillists>`); they are corrected here, as
//! docs/research/plesk-xml-api.md notes.

use provisio_plesk_test_server::{Options, Plesk};
use roxmltree::{Document, Node};

const DOCS: &str = "https://docs.plesk.com/en-US/obsidian/api-rpc";

fn elements<'a, 'i>(node: Node<'a, 'i>) -> Vec<Node<'a, 'i>> {
    node.children().filter(Node::is_element).collect()
}

fn assert_same_shape(what: &str, source: &str, vendor: &str, ours: &str) {
    let out = provisio_test_server_kit::xml_differences(vendor, ours).unwrap();
    assert!(out.is_empty(), "{what} differs from {source}:\n{}\nours: {ours}", out.join("\n"));
}

struct Client {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Client {
    async fn send(&self, packet: &str) -> String {
        let response = self
            .http
            .post(format!("{}/enterprise/control/agent.php", self.url))
            .header("KEY", &self.key)
            .header("Content-Type", "text/xml")
            .header("HTTP_PRETTY_PRINT", "TRUE")
            .body(packet.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }
}

async fn start() -> (Plesk, provisio_test_server_kit::Running, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plesk = Plesk::new(Options { ips: vec![("192.0.2.48".into(), true)], ..Options::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = provisio_test_server_kit::serve(listener, plesk.router(), None);
    let client = Client { http: reqwest::Client::new(), url: running.url(), key: plesk.options().secret_key.clone() };
    (plesk, running, client)
}

fn text_at(xml: &str, path: &[&str]) -> String {
    let document = Document::parse(xml).unwrap();
    let mut node = document.root_element();
    for name in path {
        node = elements(node).into_iter().find(|n| n.has_tag_name(*name)).unwrap_or_else(|| panic!("{name} in {xml}"));
    }
    node.text().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn published_requests_are_accepted_and_answers_match_published_responses() {
    let (_plesk, _running, c) = start().await;

    // Creating customer accounts (request and response published).
    let added = c
        .send(r#"<packet version="1.6.7.0"><customer><add><gen_info><cname>LogicSoft Ltd.</cname><pname>Stephen Lowell</pname><login>stevelow</login><passwd>Jhtr66fBB</passwd><status>0</status><phone>416 907 9944</phone><fax>928 752 3905</fax><email>host@logicsoft.net</email><address>105 Brisbane Road, Unit 2</address><city>Toronto</city><state/><pcode/><country>CA</country></gen_info></add></customer></packet>"#)
        .await;
    assert_same_shape(
        "customer/add",
        &format!("{DOCS}/28789/"),
        r#"<packet version="1.6.7.0"><customer><add><result><status>ok</status><id>3</id><guid>d7914f79-d089-4db1-b506-4fac617ebd60</guid></result></add></customer></packet>"#,
        &added,
    );
    let id = text_at(&added, &["customer", "add", "result", "id"]);

    // Getting information about customer accounts (published; response cut after guid by the source).
    let got = c
        .send(&format!(r#"<packet version="1.6.7.0"><customer><get><filter><id>{id}</id></filter><dataset><gen_info/><stat/></dataset></get></customer></packet>"#))
        .await;
    assert_same_shape(
        "customer/get",
        &format!("{DOCS}/28790/"),
        r#"<packet version="1.6.7.0"><customer><get><result><status>ok</status><filter-id>3</filter-id><id>3</id><data><gen_info><cr_date>2015-12-02</cr_date><cname>LogicSoft Ltd.</cname><pname>Stephen Lowell</pname><login>stevelow</login><status>0</status><phone>416 907 9944</phone><fax>928 752 3905</fax><email>host@logicsoft.net</email><address>105 Brisbane Road, Unit 2</address><city>Toronto</city><state/><pcode/><country>CA</country><locale>en-US</locale><guid>ebad04d7-f762-4360-bedc-0812384538ca</guid></gen_info></data></result></get></customer></packet>"#,
        &got,
    );
    assert_eq!(text_at(&got, &["customer", "get", "result", "data", "gen_info", "cname"]), "LogicSoft Ltd.");

    // Setting customer account properties (published response).
    let set = c
        .send(r#"<packet version="1.6.7.0"><customer><set><filter><login>stevelow</login></filter><values><gen_info><passwd>N3w-Passw0rd</passwd></gen_info></values></set></customer></packet>"#)
        .await;
    assert_same_shape(
        "customer/set",
        &format!("{DOCS}/28792/"),
        r#"<packet version="1.6.7.0"><customer><set><result><status>ok</status><filter-id>MyClient</filter-id><id>4</id></result></set></customer></packet>"#,
        &set,
    );

    // Creating a subscription: the published ICP sample's gen_setup and hosting.
    let webspace = c
        .send(r#"<packet version="1.6.7.0"><webspace><add><gen_setup><name>example.com</name><owner-login>stevelow</owner-login><htype>vrt_hst</htype><ip_address>192.0.2.48</ip_address></gen_setup><hosting><vrt_hst><property><name>ftp_login</name><value>ftp16se4fdf0</value></property><property><name>ftp_password</name><value>qweqwe</value></property><ip_address>192.0.2.48</ip_address></vrt_hst></hosting><plan-name>basic</plan-name></add></webspace></packet>"#)
        .await;
    assert_same_shape(
        "webspace/add",
        &format!("{DOCS}/75381/"),
        r#"<packet version="1.6.7.0"><webspace><add><result><status>ok</status><id>2</id><guid>A3246F55-E12E-4536-9A4A-6F559AD9A185</guid></result></add></webspace></packet>"#,
        &webspace,
    );
    let webspace_id = text_at(&webspace, &["webspace", "add", "result", "id"]);

    // Subscription gen_info (published).
    let info = c
        .send(&format!(r#"<packet><webspace><get><filter><id>{webspace_id}</id></filter><dataset><gen_info/></dataset></get></webspace></packet>"#))
        .await;
    assert_same_shape(
        "webspace/get gen_info",
        &format!("{DOCS}/33856/"),
        r#"<packet><webspace><get><result><status>ok</status><filter-id>1234</filter-id><id>1234</id><data><gen_info><cr_date>2010-11-15</cr_date><name>example.com</name><ascii-name>example.com</ascii-name><status>0</status><real_size>0</real_size><owner-id>3</owner-id><dns_ip_address>192.168.0.2</dns_ip_address><htype>vrt_hst</htype><guid>3848dc2e-ac6c-4420-ba51-2c0ae0f2b9a7</guid><vendor-guid>cc982f71-48c3-479d-bc7b-59b97547e092</vendor-guid><external-id/></gen_info></data></result></get></webspace></packet>"#,
        &info,
    );

    // Subscription statistics (published).
    let stat = c
        .send(&format!(r#"<packet version="1.6.3.0"><webspace><get><filter><id>{webspace_id}</id></filter><dataset><stat/></dataset></get></webspace></packet>"#))
        .await;
    assert_same_shape(
        "webspace/get stat",
        &format!(
            "{DOCS}/about-xml-api/reference/managing-subscriptions/subscription-settings/statistics-settings.33885/"
        ),
        r#"<packet version="1.6.3.0"><webspace><get><result><status>ok</status><filter-id>2435</filter-id><id>2435</id><data><stat><traffic>12458966221478885</traffic><subdom>12</subdom><wu>134</wu><box>1024</box><redir>2</redir><mg>16</mg><resp>124</resp><maillists>4</maillists><db></db><webapps>8</webapps><traffic_prevday>15241632184739856</traffic_prevday></stat></data></result></get></webspace></packet>"#,
        &stat,
    );

    // Suspending a subscription (published set response).
    let suspended = c
        .send(&format!(r#"<packet><webspace><set><filter><id>{webspace_id}</id></filter><values><gen_setup><status>16</status></gen_setup></values></set></webspace></packet>"#))
        .await;
    assert_same_shape(
        "webspace/set",
        &format!("{DOCS}/33907/"),
        r#"<packet version="1.6.7.0"><webspace><set><result><status>ok</status><filter-id>1</filter-id><id>1</id></result></set></webspace></packet>"#,
        &suspended,
    );

    // Automatic logging in (request and response published).
    let session = c
        .send(r#"<packet version="1.6.3.3"><server><create_session><login>admin</login><data><user_ip>MTAuNTAuMS43MQ==</user_ip><source_server></source_server></data></create_session></server></packet>"#)
        .await;
    assert_same_shape(
        "server/create_session",
        "https://docs.plesk.com/en-US/onyx/advanced-administration-guide-linux/automatic-logging-in-to-plesk.73873",
        r#"<packet version="1.6.3.3"><server><create_session><result><status>ok</status><id>ede520d0fc93ae7aa0524076d631fba2</id></result></create_session></server></packet>"#,
        &session,
    );
    assert_eq!(text_at(&session, &["server", "create_session", "result", "id"]).len(), 32);

    // Server statistics (published; cut by the source inside `mem`).
    let server = c.send(r#"<packet><server><get><gen_info/><stat/></get></server></packet>"#).await;
    assert_same_shape(
        "server/get stat",
        &format!(
            "{DOCS}/reference/managing-plesk-server/getting-server-information/response-packet-structure-and-samples/server-statistics/response-samples.37041"
        ),
        r#"<packet version="1.4.2.0"><server><get><result><status>ok</status><stat><objects><clients>32</clients><domains>214</domains><active_domains>198</active_domains><mail_boxes>482</mail_boxes><mail_redirects>53</mail_redirects><mail_groups>27</mail_groups><mail_responders>16</mail_responders><web_users>327</web_users><databases>265</databases><database_users>265</database_users><problem_clients>0</problem_clients><problem_domains>0</problem_domains></objects><version><plesk_name>psa</plesk_name><plesk_version>8.1.0</plesk_version><plesk_os>Debian</plesk_os><plesk_os_version>3.1</plesk_os_version><plesk_build>81061120.18</plesk_build><os_release>2.4.27-2-686</os_release></version></stat></result></get></server></packet>"#,
        &server,
    );

    // Service plans: fields sit directly in <result>, as in the published
    // sibling sample (service-plan-addon/get).
    let plans =
        c.send(r#"<packet><service-plan><get><filter><name>basic</name></filter></get></service-plan></packet>"#).await;
    assert_same_shape(
        "service-plan/get",
        &format!("{DOCS}/about-xml-api/reference/managing-service-plans/getting-information-on-service-plans.32915"),
        r#"<packet version="1.6.7.0"><service-plan><get><result><status>ok</status><id>11</id><name>base_plan</name><guid>befbe7ca-1c78-cfbb-2eaf-debf4cce4896</guid><external-id/><owner-login>admin</owner-login></result></get></service-plan></packet>"#,
        &plans,
    );

    // Deleting subscriptions by name, then customers (published).
    let deleted =
        c.send(r#"<packet><webspace><del><filter><name>example.com</name></filter></del></webspace></packet>"#).await;
    assert_same_shape(
        "webspace/del",
        &format!("{DOCS}/33914/"),
        r#"<packet version="1.6.7.0"><webspace><del><result><status>ok</status><filter-id>example.com</filter-id><id>2</id></result></del></webspace></packet>"#,
        &deleted,
    );
    let gone = c
        .send(&format!(
            r#"<packet version="1.6.3.0"><customer><del><filter><id>{id}</id></filter></del></customer></packet>"#
        ))
        .await;
    assert_same_shape(
        "customer/del",
        &format!("{DOCS}/28791/"),
        r#"<packet version="1.6.3.0"><customer><del><result><status>ok</status><id>1324</id></result></del></customer></packet>"#,
        &gone,
    );

    // Object not found (the published generic error example).
    let missing = c.send(r#"<packet><webspace><get><filter><id>1234</id></filter><dataset><gen_info/></dataset></get></webspace></packet>"#).await;
    assert_same_shape(
        "webspace/get of nothing",
        &format!("{DOCS}/about-xml-api/error-codes.33764"),
        r#"<packet><webspace><get><result><status>error</status><errcode>1013</errcode><errtext>Object not found.</errtext><id>1234</id></result></get></webspace></packet>"#,
        &missing,
    );
    assert_eq!(text_at(&missing, &["webspace", "get", "result", "errtext"]), "Object not found.");
}

#[tokio::test]
async fn checkup_errors_stop_the_packet_in_system() {
    let (plesk, _running, c) = start().await;
    // The published 1005 sample (12.5 "Handling Errors").
    let old = c.send(r#"<packet version="100.0.0"><server><get_protos/></server></packet>"#).await;
    assert_same_shape(
        "1005",
        "https://docs.plesk.com/en-US/12.5/zip/api-rpc.zip",
        r#"<packet><system><status>error</status><errcode>1005</errcode><errtext>XML API protocol version not supported.</errtext></system></packet>"#,
        &old,
    );
    // Unparsable, unknown, and an entity bomb (a DTD is refused before any expansion).
    let bomb = r#"<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><packet>&b;</packet>"#;
    for broken in ["<packet><customer><get>", "<packet><unknown/></packet>", "not xml", "<other/>", bomb] {
        let answer = c.send(broken).await;
        assert_eq!(text_at(&answer, &["system", "errcode"]), "1014", "{broken}: {answer}");
    }
    // Packets the schema refuses fail whole, before anything runs: elements
    // out of order, unknown ones, a filter key the operator lacks, a missing part.
    for invalid in [
        "<packet><customer><add><gen_info><login>p3</login><pname>P3</pname><passwd>Passw0rd1</passwd></gen_info></add></customer></packet>",
        "<packet><webspace><add><plan-name>basic</plan-name><gen_setup><name>a.example</name><ip_address>192.0.2.48</ip_address></gen_setup></add></webspace></packet>",
        "<packet><webspace><get><filter><name>a.example</name></filter><datasets><gen_info/></datasets></get></webspace></packet>",
        "<packet><webspace><get><filter><bogus>x</bogus></filter><dataset><gen_info/></dataset></get></webspace></packet>",
        "<packet><customer><set><filter><login>p</login></filter><gen_info><passwd>x</passwd></gen_info></set></customer></packet>",
        "<packet><server><get_protos/></server><customer><add><gen_info><pname>P</pname><login>late</login></gen_info></add></customer></packet>",
    ] {
        let answer = c.send(invalid).await;
        assert_eq!(text_at(&answer, &["system", "errcode"]), "1014", "{invalid}: {answer}");
    }
    let response = c
        .http
        .post(format!("{}/enterprise/control/agent.php", c.url))
        .header("KEY", "not-the-key")
        .body(r#"<packet><customer><add><gen_info><pname>x</pname><login>sneaky</login><passwd>Passw0rd1</passwd></gen_info></add></customer></packet>"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // A live 11003 (captured from Plesk 18.0.33+).
    assert_same_shape(
        "11003",
        "Patchman FAQ capture (docs/research/plesk-xml-api.md §1)",
        r#"<packet version="1.6.6.0"><system><status>error</status><errcode>11003</errcode><errtext>PleskAPIInvalidSecretKeyException : key is not found</errtext></system></packet>"#,
        &response,
    );
    for (login, password) in [("admin", "wrong"), ("root", plesk.options().password.as_str()), ("", "")] {
        let answer = c
            .http
            .post(format!("{}/enterprise/control/agent.php", c.url))
            .header("HTTP_AUTH_LOGIN", login)
            .header("HTTP_AUTH_PASSWD", password)
            .body("<packet><server><get_protos/></server></packet>")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text_at(&answer, &["system", "errcode"]), "1001", "{answer}");
    }
    assert!(plesk.customers().is_empty(), "nothing was made");
}

#[test]
fn the_binary_runs_on_its_own_and_prints_where_and_how() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("plesk-test-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_provisio-plesk-test-server"))
        .args(["--listen", "127.0.0.1:0", "--key", "STANDALONE-KEY", "--ca-out"])
        .arg(dir.join("ca.pem"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap()).lines().take(5).map(Result::unwrap).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(lines[0].starts_with("PLESK_URL=https://127.0.0.1:"), "{lines:?}");
    assert_eq!(lines[3], "PLESK_KEY=STANDALONE-KEY");
    assert!(std::fs::read_to_string(dir.join("ca.pem")).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    std::fs::remove_dir_all(dir).unwrap();
}
