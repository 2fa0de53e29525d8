//! The test server's answers against the examples Hexonet publishes for
//! each command (`centralnicgroup-public/hexonet-api-documentation`,
//! API/DOMAIN/*.md, "Example"), field by field after parsing: the same
//! CODE and DESCRIPTION, `PENDING` where the example has it, and every
//! PROPERTY the example has. Ours may have more. Quoted from
//! docs/research/hexonet-api.md, which cites each page.

use std::collections::BTreeMap;

use provisio_hexonet_test_server::{Hexonet, Options};

const DOCS: &str = "https://github.com/centralnicgroup-public/hexonet-api-documentation/blob/master/API/DOMAIN";

/// A response as Hexonet's SDKs read it: `KEY = value` lines, spaces optional.
#[derive(Debug, Default)]
struct Parsed {
    top: BTreeMap<String, String>,
    properties: BTreeMap<String, Vec<String>>,
}

fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for line in text.lines().map(str::trim) {
        let Some((key, value)) = line.split_once('=') else { continue };
        let (key, value) = (key.trim(), value.trim().to_owned());
        match key.strip_prefix("PROPERTY[").and_then(|rest| rest.split_once(']')) {
            Some((name, _)) => parsed.properties.entry(name.to_uppercase()).or_default().push(value),
            None => {
                parsed.top.insert(key.to_uppercase(), value);
            }
        }
    }
    parsed
}

fn assert_same_shape(command: &str, page: &str, published: &str, ours: &str) {
    let (vendor, ours_parsed) = (parse(published), parse(ours));
    for key in ["CODE", "DESCRIPTION", "PENDING"] {
        if let Some(value) = vendor.top.get(key) {
            assert_eq!(ours_parsed.top.get(key), Some(value), "{command} ({DOCS}/{page}): {key}\nours:\n{ours}");
        }
    }
    for name in vendor.properties.keys() {
        assert!(
            ours_parsed.properties.contains_key(name),
            "{command} ({DOCS}/{page}) lacks PROPERTY[{name}]\nours:\n{ours}"
        );
    }
    assert!(ours.starts_with("[RESPONSE]\r\n") && ours.ends_with("EOF\r\n"), "{ours}");
}

struct Client {
    http: reqwest::Client,
    url: String,
    login: String,
    password: String,
}

impl Client {
    async fn call(&self, lines: &[(&str, &str)]) -> String {
        let command: String = lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        let form = [("s_entity", "1234"), ("s_login", &self.login), ("s_pw", &self.password), ("s_command", &command)];
        let response = self.http.post(&self.url).form(&form).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }
}

async fn start() -> (Hexonet, provisio_test_server_kit::Running, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let hexonet = Hexonet::new(Options::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = provisio_test_server_kit::serve(listener, hexonet.router(), None);
    let (login, password) = hexonet.options().accounts[0].clone();
    let client =
        Client { http: reqwest::Client::new(), url: format!("{}/api/call.cgi", running.url()), login, password };
    (hexonet, running, client)
}

#[tokio::test]
async fn every_command_answers_like_hexonets_published_examples() {
    let (hexonet, _running, c) = start().await;

    let check =
        c.call(&[("COMMAND", "CheckDomains"), ("DOMAIN0", "hexonet-free.com"), ("DOMAIN1", "other-free.net")]).await;
    assert_same_shape(
        "CheckDomains",
        "CHECKDOMAINS.md",
        "[RESPONSE]\nCODE = 200\nDESCRIPTION = Command completed successfully\nPROPERTY[CLASS][0] = PREMIUM_DONUTS_Price Category A\nPROPERTY[CLASS][1] =\nPROPERTY[CURRENCY][0] = USD\nPROPERTY[CURRENCY][1] =\nPROPERTY[DOMAINCHECK][0] = 211 Premium Domain name available [PREMIUM]\nPROPERTY[DOMAINCHECK][1] = 210 Available\nPROPERTY[DOMAINCHECKTIME][0] = 0.173\nPROPERTY[DOMAINCHECKTIME][1] = 0.173\nPROPERTY[PREMIUMCHANNEL][0] = DONUTS\nPROPERTY[PREMIUMCHANNEL][1] =\nPROPERTY[PRICE][0] = 999.99\nPROPERTY[PRICE][1] =\nPROPERTY[REASON][0] = Premium Domain Name\nPROPERTY[REASON][1] =\nEOF",
        &check,
    );
    assert_eq!(parse(&check).properties["DOMAINCHECK"], ["210 Available", "210 Available"]);

    let contact = c
        .call(&[
            ("COMMAND", "AddContact"),
            ("FIRSTNAME", "Test"),
            ("LASTNAME", "Contact"),
            ("STREET", "Teststreet 1"),
            ("CITY", "Testcity"),
            ("ZIP", "123456"),
            ("COUNTRY", "DE"),
            ("PHONE", "+49.1234567890"),
            ("EMAIL", "test@example.com"),
        ])
        .await;
    assert_same_shape(
        "AddContact",
        "CONTACT/ADDCONTACT.md",
        "[RESPONSE]\nCODE = 200\nDESCRIPTION = Command completed successfully\nPROPERTY[CONTACT][0] = P-TCN1378880\nPROPERTY[NEW][0] = 1\nPROPERTY[STATUS][0] = ACTIVE\nEOF",
        &contact,
    );
    let handle = parse(&contact).properties["CONTACT"][0].clone();
    let status_contact = c.call(&[("COMMAND", "StatusContact"), ("CONTACT", &handle)]).await;
    assert_same_shape(
        "StatusContact",
        "CONTACT/STATUSCONTACT.md",
        "[RESPONSE]\nCODE = 200\nDESCRIPTION = Command completed successfully\nPROPERTY[AUTH][0] =\nPROPERTY[CITY][0] = Testcity\nPROPERTY[CLASS][0] = CONTACT\nPROPERTY[COUNTRY][0] = DE\nPROPERTY[CREATEDBY][0] = test.user\nPROPERTY[CREATEDDATE][0] = 2018-09-21 14:53:20\nPROPERTY[DESCRIPTION][0] =\nPROPERTY[EMAIL][0] = test@example.com\nPROPERTY[FAX][0] =\nPROPERTY[FIRSTNAME][0] = Test\nPROPERTY[ID][0] = P-TCN1378880\nPROPERTY[LASTNAME][0] = Contact\nPROPERTY[NAME][0] = Test Contact\nPROPERTY[ORGANIZATION][0] =\nPROPERTY[PEERUSER][0] = test.user\nPROPERTY[PHONE][0] = +49.1234567890\nPROPERTY[REGISTRAR][0] =\nPROPERTY[STATE][0] =\nPROPERTY[STATUS][0] = ACTIVE\nPROPERTY[STREET][0] = Teststreet 1\nPROPERTY[TRANSFERDATE][0] = 0000-00-00 00:00:00\nPROPERTY[UPDATEDBY][0] = test.user\nPROPERTY[UPDATEDDATE][0] = 2018-09-21 14:53:20\nPROPERTY[USER][0] = test.user\nPROPERTY[ZIP][0] = 123456\nEOF",
        &status_contact,
    );
    // The same data again is the same contact (NEW=1 forces another).
    assert_eq!(
        parse(
            &c.call(&[
                ("COMMAND", "AddContact"),
                ("FIRSTNAME", "Test"),
                ("LASTNAME", "Contact"),
                ("STREET", "Teststreet 1"),
                ("CITY", "Testcity"),
                ("ZIP", "123456"),
                ("COUNTRY", "DE"),
                ("PHONE", "+49.1234567890"),
                ("EMAIL", "test@example.com")
            ])
            .await
        )
        .properties["CONTACT"][0],
        handle
    );

    let roles = [
        ("OWNERCONTACT0", handle.as_str()),
        ("ADMINCONTACT0", &handle),
        ("TECHCONTACT0", &handle),
        ("BILLINGCONTACT0", &handle),
    ];
    let mut add = vec![
        ("COMMAND", "AddDomain"),
        ("DOMAIN", "hexonet-domain.com"),
        ("PERIOD", "1Y"),
        ("NAMESERVER0", "ns1.hexonet.net"),
        ("NAMESERVER1", "ns2.hexonet.net"),
    ];
    add.extend(roles);
    let added = c.call(&add).await;
    assert_same_shape(
        "AddDomain",
        "ADDDOMAIN.md",
        "[RESPONSE]\nCODE = 200\nDESCRIPTION = Command completed successfully\nPROPERTY[ACCOUNTINGDATE][0] = 2018-11-15 11:35:15\nPROPERTY[FAILUREDATE][0] = 2019-01-03 11:35:15\nPROPERTY[FINALIZATIONDATE][0] = 2018-11-21 11:35:15\nPROPERTY[PAIDUNTILDATE][0] = 2018-11-20 11:35:15\nPROPERTY[REGISTRATIONEXPIRATIONDATE][0] = 2018-11-20 11:35:15\nPROPERTY[STATUS][0] = ACTIVE\nEOF",
        &added,
    );

    let status = c.call(&[("COMMAND", "StatusDomain"), ("DOMAIN", "hexonet-domain.com")]).await;
    assert_same_shape(
        "StatusDomain",
        "STATUSDOMAIN.md",
        "[RESPONSE]\nCODE = 200\nDESCRIPTION = Command completed successfully\nPROPERTY[ACCOUNTINGDATE][0] = 2018-09-21 14:53:20\nPROPERTY[ACCOUNTINGPERIOD][0] = -5d\nPROPERTY[ADMINCONTACT][0] = P-TUE1378025\nPROPERTY[AUTH][0] = *OkHRSf/3-xs\nPROPERTY[BILLINGCONTACT][0] = P-TUE1378025\nPROPERTY[CLASS][0] = DOMAIN\nPROPERTY[CREATEDBY][0] = SYSTEM\nPROPERTY[CREATEDDATE][0] = 2016-09-26 14:53:20\nPROPERTY[EXPIRATIONDATE][0] = 2017-09-26 14:53:20\nPROPERTY[NAMESERVER][0] = ns1.hexonet.net\nPROPERTY[NAMESERVER][1] = ns2.hexonet.net\nPROPERTY[PAIDUNTILDATE][0] = 2018-09-26 14:53:20\nPROPERTY[RENEWALMODE][0] = AUTORENEW\nPROPERTY[STATUS][0] = ACTIVE\nPROPERTY[TRANSFERLOCK][0] = 0\nPROPERTY[USER][0] = test.user\nEOF",
        &status,
    );
    let expiry_year = hexonet.domain("hexonet-domain.com").unwrap().1.format("%Y").to_string();

    let modified =
        c.call(&[("COMMAND", "ModifyDomain"), ("DOMAIN", "hexonet-domain.com"), ("TRANSFERLOCK", "1")]).await;
    assert_same_shape(
        "ModifyDomain",
        "MODIFYDOMAIN.md",
        "[RESPONSE]\nCODE = 200\nDESCRIPTION = Command completed successfully\nEOF",
        &modified,
    );

    let renewed = c
        .call(&[
            ("COMMAND", "RenewDomain"),
            ("DOMAIN", "hexonet-domain.com"),
            ("PERIOD", "1"),
            ("EXPIRATION", &expiry_year),
        ])
        .await;
    assert_same_shape(
        "RenewDomain",
        "RENEWDOMAIN.md",
        "[RESPONSE]\nCODE = 200\nDESCRIPTION = Command completed successfully\nPROPERTY[DOMAIN][0] = hexonet-domain.com\nPROPERTY[EXPIRATIONDATE][0] = 2018-09-26 14:53:20\nPROPERTY[REGISTRATIONEXPIRATIONDATE][0] = 2018-09-26 14:53:20\nEOF",
        &renewed,
    );
    // A replay names a stale year: refused, renewed once.
    let replay = c
        .call(&[
            ("COMMAND", "RenewDomain"),
            ("DOMAIN", "hexonet-domain.com"),
            ("PERIOD", "1"),
            ("EXPIRATION", &expiry_year),
        ])
        .await;
    assert_eq!(parse(&replay).top["CODE"], "555", "{replay}");

    let mode = c
        .call(&[("COMMAND", "SetDomainRenewalMode"), ("DOMAIN", "hexonet-domain.com"), ("RENEWALMODE", "AUTOEXPIRE")])
        .await;
    assert_same_shape(
        "SetDomainRenewalMode",
        "SETDOMAINRENEWALMODE.md",
        "[RESPONSE]\nCODE = 200\nDESCRIPTION = Command completed successfully\nPROPERTY[UNRENEW][0] = 0\nEOF",
        &mode,
    );

    hexonet.add_domain("other.user", "incoming-domain.com", "Xfer-Code-9");
    let transfer =
        c.call(&[("COMMAND", "TransferDomain"), ("DOMAIN", "incoming-domain.com"), ("AUTH", "Xfer-Code-9")]).await;
    assert_same_shape(
        "TransferDomain",
        "TRANSFERDOMAIN.md",
        "[RESPONSE]\nCODE = 200\nDESCRIPTION = Command completed successfully; domain transfer initiated\nPENDING = 1\nEOF",
        &transfer,
    );
    let progress = c.call(&[("COMMAND", "StatusDomainTransfer"), ("DOMAIN", "incoming-domain.com")]).await;
    assert_same_shape(
        "StatusDomainTransfer",
        "TRANSFER/STATUSDOMAINTRANSFER.md",
        "[RESPONSE]\nCODE = 200\nDESCRIPTION = Command completed successfully\nPROPERTY[CREATEDDATE][0] = 2017-03-27 12:22:04\nPROPERTY[REPOSITORY][0] = COM-OTE-1API1\nPROPERTY[TRANSFERLOG][0] = 2017-03-27 12:22:04 [INITIATED] domain transfer initiated\nPROPERTY[TRANSFERSTATUS][0] = INITIATED\nPROPERTY[TRANSFERTYPE][0] = INCOMING\nPROPERTY[UPDATEDDATE][0] = 2017-03-27 12:22:04\nEOF",
        &progress,
    );
}

#[tokio::test]
async fn failures_use_the_documented_codes_and_the_live_form() {
    let (_hexonet, _running, c) = start().await;
    // The live not-found body (rtldev-middleware-whmcs #289).
    let missing = c.call(&[("COMMAND", "StatusDomain"), ("DOMAIN", "nowhere-at-all.com")]).await;
    assert_eq!(
        missing,
        "[RESPONSE]\r\nCODE=545\r\nDESCRIPTION=Object not found; DOMAIN NAME NOT FOUND\r\nQUEUETIME=0\r\nRUNTIME=0.001\r\nEOF\r\n"
    );
    assert_eq!(parse(&c.call(&[("COMMAND", "NoSuchCommand")]).await).top["CODE"], "500");
    assert_eq!(parse(&c.call(&[("COMMAND", "AddDomain")]).await).top["CODE"], "504");
    let wrong = Client { password: "wrong".into(), ..c };
    assert_eq!(
        parse(&wrong.call(&[("COMMAND", "CheckDomains"), ("DOMAIN0", "a.com")]).await).top["DESCRIPTION"],
        "Authentication failed"
    );
}

#[test]
fn the_binary_runs_on_its_own_and_prints_where_and_how() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("hexonet-test-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_provisio-hexonet-test-server"))
        .args(["--listen", "127.0.0.1:0", "--account", "test.user:Secret-123", "--ca-out"])
        .arg(dir.join("ca.pem"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap()).lines().take(5).map(Result::unwrap).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(lines[0].starts_with("HEXONET_URL=https://127.0.0.1:") && lines[0].ends_with("/api/call.cgi"), "{lines:?}");
    assert_eq!(&lines[1..4], ["HEXONET_ENTITY=1234", "HEXONET_LOGIN=test.user", "HEXONET_PASSWORD=Secret-123"]);
    assert!(std::fs::read_to_string(dir.join("ca.pem")).unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    std::fs::remove_dir_all(dir).unwrap();
}
