//! Conformance suites: one per blueprint, run by every provider of it.
//!
//! A provider crate calls, from a test, the suite of its blueprint with a
//! [`Harness`] holding its registry entry and a working configuration. Each
//! suite drives the full life of a service through the SDK's `invoke::call`
//! (so params and results are validated against the blueprint's schemas),
//! checks the documented duplicate behaviour, `not_found` after terminate,
//! and that bad params are rejected naming the field.

use provisio_sdk::invoke::{self, Status};
use provisio_sdk::{CallOptions, Envelope, ErrorKind, FieldLocation, ProviderEntry};
use serde_json::{Value, json};

/// A provider under test.
#[derive(Debug, Clone)]
pub struct Harness {
    /// The provider's registry entry.
    pub entry: ProviderEntry,
    /// A working configuration.
    pub config: Value,
    /// Call options (timeout, provision data).
    pub options: CallOptions,
    /// Two packages the configured system offers (for `change_package`).
    pub packages: (String, String),
    /// A zone the provider may prove control of (`ssl-certificates`): the
    /// suite certifies fresh names under it.
    pub domain: String,
    /// A domain another registrar holds and its transfer code
    /// (`domain-names`): the suite transfers it in. `None`: any fresh name
    /// (for registrars that accept those, like the demo).
    pub incoming: Option<(String, String)>,
}

impl Harness {
    /// A harness acting for the service marked [`OWNER_A`], with the packages
    /// `basic` and `standard`.
    pub fn new(entry: ProviderEntry, config: Value) -> Self {
        Harness {
            entry,
            config,
            // Like the engine: every call acts for one service.
            options: CallOptions { owner: Some(OWNER_A.into()), ..CallOptions::default() },
            packages: ("basic".into(), "standard".into()),
            domain: "provisio-test.net".into(),
            incoming: None,
        }
    }

    /// Runs a function; checks that the envelope is well formed and that ok
    /// data validates against the result schema.
    pub async fn call(&self, function: &str, params: Value) -> Envelope {
        let report = invoke::call(&self.entry, &self.config, function, &params, &self.options).await;
        let envelope = report.envelope;
        let descriptor = self.entry.blueprint().function(function).expect("function exists");
        match envelope.status {
            Status::Ok => {
                assert!(envelope.error_kind.is_none(), "{function}: ok envelope with an error kind: {envelope:?}");
                let data = envelope.data.as_ref().expect("ok envelope has data");
                if let Err(errors) = descriptor.result.validate(data, FieldLocation::Result) {
                    panic!("{function}: result breaks the schema: {errors:?}\n{data:#}");
                }
            }
            Status::Error => {
                assert!(envelope.error_kind.is_some(), "{function}: error envelope without a kind: {envelope:?}");
                assert!(!envelope.message.as_str().is_empty(), "{function}: error without a message");
            }
        }
        envelope
    }

    /// Runs a function that must succeed; answers its data.
    pub async fn ok(&self, function: &str, params: Value) -> Value {
        let envelope = self.call(function, params).await;
        assert!(envelope.is_ok(), "{function} failed: {envelope:#?}");
        envelope.data.expect("ok data")
    }

    /// Runs a function that must fail with `kind`.
    pub async fn fails(&self, function: &str, params: Value, kind: ErrorKind) -> Envelope {
        let envelope = self.call(function, params).await;
        assert_eq!(envelope.error_kind, Some(kind), "{function}: expected {kind}, got {envelope:#?}");
        envelope
    }

    /// Runs a function that must be rejected before reaching the provider,
    /// naming `path` among the invalid fields.
    pub async fn rejects(&self, function: &str, params: Value, path: &str) {
        let envelope = self.fails(function, params, ErrorKind::InvalidInput).await;
        let paths: Vec<String> = envelope.field_errors().into_iter().map(|e| e.path).collect();
        assert!(paths.iter().any(|p| p == path), "{function}: expected an error at {path}, got {paths:?}");
    }

    /// Runs an optional function: ok data, or `None` if the provider lacks it.
    pub async fn optional(&self, function: &str, params: Value) -> Option<Value> {
        let envelope = self.call(function, params).await;
        match envelope.error_kind {
            None => envelope.data,
            Some(ErrorKind::Unsupported) => None,
            Some(_) => panic!("{function} failed: {envelope:#?}"),
        }
    }
}

/// The values of the environment variables `vars` that name a test server
/// (`scripts/test-servers start` prints them), or `None` when one is unset:
/// outside CI the test says so and passes; in CI it fails, since `.ci/run`
/// starts every server.
pub fn test_servers<const N: usize>(vars: [&str; N]) -> Option<[String; N]> {
    let values = vars.map(|v| std::env::var(v).ok());
    if values.iter().all(Option::is_some) {
        return Some(values.map(Option::unwrap));
    }
    assert!(std::env::var("CI").is_err(), "{vars:?} are not set in CI: .ci/run starts their servers");
    eprintln!("skipped: {vars:?} are not set (run `eval \"$(scripts/test-servers start)\"`)");
    None
}

/// A fresh lowercase name: a letter, then `len - 1` letters or digits.
pub fn unique(len: usize) -> String {
    let mut name = String::from(fastrand::lowercase());
    name.extend(std::iter::repeat_with(|| fastrand::alphanumeric().to_ascii_lowercase()).take(len - 1));
    name
}

/// Asks a DNS server at `server` (`host:port`) with `dig`; answers the
/// records (`+short` form, comma-separated), or the status (`REFUSED`...)
/// when there are none. Proves from the customer's side what a DNS provider did.
pub fn dig(server: &str, name: &str, record_type: &str) -> String {
    let (host, port) = server.split_once(':').expect("host:port");
    let run = |extra: &[&str]| {
        let output = std::process::Command::new("dig")
            .args([&format!("@{host}"), "-p", port, name, record_type, "+tries=1", "+time=2", "+norecurse"])
            .args(extra)
            .output()
            .expect("dig runs (apt-get install dnsutils)");
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let answers: Vec<String> = run(&["+short"]).lines().map(str::to_owned).collect();
    if !answers.is_empty() {
        return answers.join(",");
    }
    let full = run(&[]);
    full.split("status: ").nth(1).and_then(|s| s.split(',').next()).unwrap_or("NONE").to_owned()
}

/// Runs the suite of the entry's blueprint.
pub async fn run(harness: &Harness) {
    match harness.entry.blueprint().id {
        "shared-hosting" => shared_hosting(harness).await,
        "domain-names" => domain_names(harness).await,
        "dns-hosting" => dns_hosting(harness).await,
        "databases" => databases(harness).await,
        "software-licenses" => software_licenses(harness).await,
        "coffee" => coffee(harness).await,
        "message-queues" => message_queues(harness).await,
        "mqtt-hosting" => mqtt_hosting(harness).await,
        "ssl-certificates" => {
            ssl_certificates(harness).await;
        }
        "physical-goods" => physical_goods(harness).await,
        other => panic!("no conformance suite for blueprint {other}"),
    }
    ownership(harness).await;
    import(harness).await;
    suspend_and_unsuspend_twice(harness).await;
}

/// The owner marks every test call carries unless a test says otherwise.
pub const OWNER_A: &str = "prv-conformance-owner-a";
/// Another service's owner mark.
pub const OWNER_B: &str = "prv-conformance-owner-b";

impl Harness {
    /// The same harness acting for the service with owner mark `owner`
    /// (`None`: an operator by hand).
    pub fn with_owner(&self, owner: Option<&str>) -> Harness {
        let mut harness = self.clone();
        harness.options.owner = owner.map(str::to_owned);
        harness
    }
}

/// A create of a fresh resource and the params naming it, for blueprints
/// whose identifier the customer chooses; `None` for the others.
fn ownership_case(h: &Harness) -> Option<(&'static str, Value, Value)> {
    let name = unique(10);
    Some(match h.entry.blueprint().id {
        "shared-hosting" => (
            "create",
            json!({"domain": format!("{name}.provisio-test.com"), "username": name, "package_name": h.packages.0,
                   "email": "owner@provisio-test.com"}),
            json!({"username": name}),
        ),
        "dns-hosting" => {
            ("create_zone", json!({"zone": format!("{name}.com")}), json!({"zone": format!("{name}.com")}))
        }
        "databases" => ("create", json!({"database": format!("db_{name}")}), json!({"database": format!("db_{name}")})),
        "message-queues" => ("create", json!({"vhost": format!("vh_{name}")}), json!({"vhost": format!("vh_{name}")})),
        "mqtt-hosting" => (
            "create",
            json!({"username": format!("dev_{name}"), "topic_prefix": format!("owners/{name}")}),
            json!({"username": format!("dev_{name}")}),
        ),
        _ => return None,
    })
}

/// Ownership, as every blueprint with customer-chosen identifiers documents
/// it: a resource is adopted, read, changed or removed only by the service
/// whose owner mark it carries; another service's, or one made without a
/// mark (outside Provisio), is `conflict` and stays as it was.
pub async fn ownership(h: &Harness) {
    let Some((setup, create, named)) = ownership_case(h) else {
        return;
    };
    let (a, b, operator) = (h.with_owner(Some(OWNER_A)), h.with_owner(Some(OWNER_B)), h.with_owner(None));
    a.ok(setup, create.clone()).await;
    a.ok(setup, create.clone()).await;
    b.fails(setup, create.clone(), ErrorKind::Conflict).await;
    b.fails("get_info", named.clone(), ErrorKind::Conflict).await;
    if h.entry.blueprint().function("suspend").is_some() {
        b.fails("suspend", named.clone(), ErrorKind::Conflict).await;
        assert_eq!(a.ok("get_info", named.clone()).await["state"], "active", "another service's suspend changed it");
    }
    b.fails("terminate", named.clone(), ErrorKind::Conflict).await;
    a.ok("get_info", named.clone()).await;
    a.ok("terminate", named.clone()).await;
    a.fails("get_info", named.clone(), ErrorKind::NotFound).await;

    // Made by hand (no mark): no service adopts or touches it.
    operator.ok(setup, create.clone()).await;
    a.fails(setup, create.clone(), ErrorKind::Conflict).await;
    a.fails("terminate", named.clone(), ErrorKind::Conflict).await;
    operator.ok("get_info", named.clone()).await;
    operator.ok("terminate", named.clone()).await;
}

/// Every resource `list` answers, page after page (`limit` each), until
/// the last page; each page at most `limit` long, no identifier twice.
pub async fn list_all(h: &Harness, limit: u32) -> Vec<Value> {
    let function = h.entry.blueprint().import.expect("the blueprint lists").list;
    let mut all: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    for _page in 0..10_000 {
        let mut params = json!({"limit": limit});
        if let Some(cursor) = &cursor {
            params["cursor"] = json!(cursor);
        }
        let page = h.ok(function, params).await;
        let resources = page["resources"].as_array().expect("resources").clone();
        assert!(resources.len() <= limit as usize, "a page of {limit} answered {}", resources.len());
        for resource in resources {
            let identifier = &resource["identifier"];
            assert!(!all.iter().any(|r| &r["identifier"] == identifier), "{identifier} listed twice");
            all.push(resource);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
    panic!("list never reached its last page");
}

/// Import, where the provider lists: `list` pages through what the
/// configuration holds, each resource with the owner mark it carries (none
/// for one made by hand); `adopt` writes a service's mark on a resource that
/// carries none, is idempotent for that service, and `conflict` for any
/// other; once adopted, only that service's calls reach it.
pub async fn import(h: &Harness) {
    let blueprint = h.entry.blueprint();
    let Some(import) = blueprint.import else { return };
    let Some((setup, made, made_named)) = ownership_case(h) else { return };
    if h.optional(import.list, json!({"limit": 1})).await.is_none() {
        return;
    }
    let (_, outside, outside_named) = ownership_case(h).expect("the same blueprint");
    let (a, b, operator) = (h.with_owner(Some(OWNER_A)), h.with_owner(Some(OWNER_B)), h.with_owner(None));
    a.ok(setup, made).await;
    operator.ok(setup, outside).await;
    let name = |named: &Value| {
        let name = named[blueprint.service_identifier].as_str().expect("an identifier").to_owned();
        match blueprint.identifiers {
            provisio_sdk::IdentifierScope::Hierarchical => name.trim_end_matches('.').to_ascii_lowercase(),
            provisio_sdk::IdentifierScope::Flat => name,
        }
    };
    // Small pages, so the cursor is crossed.
    let listed = list_all(h, 2).await;
    let find = |listed: &[Value], named: &Value| {
        let wanted = name(named);
        listed.iter().find(|r| r["identifier"] == wanted.as_str()).cloned().unwrap_or_else(|| {
            panic!("{wanted} is not listed among {} resources", listed.len());
        })
    };
    assert_eq!(find(&listed, &made_named)["owner_mark"], OWNER_A, "the mark of the service that made it");
    let found = find(&listed, &outside_named);
    assert!(found["owner_mark"].is_null(), "made by hand, it carries no mark: {found}");
    assert!(found["refused"].is_null(), "made by this provider, it can be adopted: {found}");

    b.fails(import.adopt, made_named.clone(), ErrorKind::Conflict).await;
    a.ok(import.adopt, made_named.clone()).await;
    b.ok(import.adopt, outside_named.clone()).await;
    b.ok(import.adopt, outside_named.clone()).await;
    a.fails(import.adopt, outside_named.clone(), ErrorKind::Conflict).await;
    b.ok("get_info", outside_named.clone()).await;
    a.fails("get_info", outside_named.clone(), ErrorKind::Conflict).await;
    assert_eq!(find(&list_all(h, 3).await, &outside_named)["owner_mark"], OWNER_B, "adopted by B");

    a.ok("terminate", made_named).await;
    b.ok("terminate", outside_named).await;
}

/// Suspend and unsuspend, as every blueprint documents them, are idempotent:
/// twice each leaves the same state and no error.
pub async fn suspend_and_unsuspend_twice(h: &Harness) {
    let blueprint = h.entry.blueprint();
    if blueprint.function("suspend").is_none() {
        return;
    }
    let Some((setup, create, named)) = ownership_case(h) else { return };
    h.ok(setup, create).await;
    for _ in 0..2 {
        assert_eq!(h.ok("suspend", named.clone()).await["state"], "suspended", "suspend twice");
    }
    for _ in 0..2 {
        assert_eq!(h.ok("unsuspend", named.clone()).await["state"], "active", "unsuspend twice");
    }
    h.ok("terminate", named).await;
}

/// TLS to a server the provider speaks its own protocol to (`tls` and
/// `ca_cert_pem` in its configuration; the harness's has both): with the CA
/// the connection is made (`absent` names nothing, so `get_info` answers
/// `not_found`); without it the certificate is not trusted and the call is a
/// provider error saying TLS, never a fallback to plain; a CA that is not a
/// certificate is named; `plain` (the configuration with `tls: disabled`,
/// pointed at a plain listener) still works.
pub async fn tls_is_verified(h: &Harness, absent: Value, plain: Value) {
    h.fails("get_info", absent.clone(), ErrorKind::NotFound).await;
    let mut untrusted = h.clone();
    untrusted.config.as_object_mut().expect("a configuration object").remove("ca_cert_pem");
    let refused = untrusted.fails("get_info", absent.clone(), ErrorKind::ProviderError).await;
    assert!(refused.message.as_str().contains("TLS"), "{refused:#?}");
    let mut broken = h.clone();
    broken.config["ca_cert_pem"] = json!("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----");
    let refused = broken.call("get_info", absent.clone()).await;
    assert!(refused.message.as_str().contains("ca_cert_pem"), "{refused:#?}");
    let mut clear = h.clone();
    clear.config = plain;
    clear.config["tls"] = json!("disabled");
    clear.fails("get_info", absent, ErrorKind::NotFound).await;
}

/// `databases`, for a configuration whose administrative password
/// (`admin_password`) is part of `database`'s name: create, adopt, suspend,
/// unsuspend and get_info answer the name intact (redaction is for logs,
/// never for data), terminate removes it, and the logs still hide the
/// password.
pub async fn database_named_after_the_secret(h: &Harness, admin_password: &str, database: &str) {
    assert!(database.contains(admin_password), "the case needs the password inside the name");
    let created = h.ok("create", json!({"database": database, "package_name": h.packages.0})).await;
    assert_eq!(created["database"], json!(database), "{created:#}");
    // The package is read back beside the owner mark.
    assert_eq!(created["package_name"], json!(h.packages.0), "{created:#}");
    for function in ["create", "suspend", "unsuspend", "get_info"] {
        let data = h.ok(function, json!({"database": database})).await;
        assert_eq!(data["database"], json!(database), "{function}: {data:#}");
        assert_eq!(data["username"], json!(database), "{function}: {data:#}");
    }
    let report = invoke::call(&h.entry, &h.config, "terminate", &json!({"database": database}), &h.options).await;
    assert!(report.envelope.is_ok(), "{:#?}", report.envelope);
    assert!(!serde_json::to_string(&report.http_log).unwrap().contains(admin_password), "{:?}", report.http_log);
    h.fails("get_info", json!({"database": database}), ErrorKind::NotFound).await;
}

/// `shared-hosting`: create, duplicate, get_info, suspend, unsuspend,
/// change_package, usage and login, terminate, then `not_found`.
pub async fn shared_hosting(h: &Harness) {
    let (basic, other) = (&h.packages.0, &h.packages.1);
    let username = unique(8);
    let domain = format!("{username}.provisio-test.com");
    let create =
        json!({"domain": domain, "username": username, "package_name": basic, "email": "owner@provisio-test.com"});

    let account = h.ok("create", create.clone()).await;
    assert_eq!(account["username"], json!(username));
    assert_eq!(account["package_name"], json!(basic));
    assert_eq!(account["state"], "active");
    // Documented: an identical create adopts the account; a different one conflicts.
    let again = h.ok("create", create.clone()).await;
    assert_eq!(again["username"], json!(username));
    let mut different = create.clone();
    different["email"] = json!("someone-else@provisio-test.com");
    h.fails("create", different, ErrorKind::Conflict).await;

    let info = h.ok("get_info", json!({"username": username})).await;
    assert_eq!(info["domain"], json!(domain));
    let suspended = h.ok("suspend", json!({"username": username, "reason": "overdue"})).await;
    assert_eq!(suspended["state"], "suspended");
    assert_eq!(h.ok("get_info", json!({"username": username})).await["state"], "suspended");
    assert_eq!(h.ok("unsuspend", json!({"username": username})).await["state"], "active");
    assert_eq!(
        h.ok("change_package", json!({"username": username, "package_name": other})).await["package_name"],
        json!(other)
    );
    if let Some(usage) = h.optional("get_usage", json!({"username": username})).await {
        assert!(usage["disk_mb"]["used"].as_f64().unwrap() >= 0.0);
    }
    if let Some(login) = h.optional("get_login_url", json!({"username": username})).await {
        assert!(login["login_url"].as_str().unwrap().starts_with("http"));
    }
    h.optional("change_password", json!({"username": username, "password": "N3w-Passw0rd"})).await;

    h.rejects(
        "create",
        json!({"domain": "not a domain", "username": username, "package_name": basic, "email": "a@provisio-test.com"}),
        "/domain",
    )
    .await;
    // Without a username the provider makes one from the domain, and a
    // retry answers the same account.
    let named_by_domain = format!("{}.provisio-test.com", unique(6));
    let generated = json!({"domain": named_by_domain, "package_name": basic, "email": "a@provisio-test.com"});
    let account = h.ok("create", generated.clone()).await;
    let made = account["username"].as_str().expect("a username").to_owned();
    assert!(named_by_domain.starts_with(&made[..made.len().min(5)]), "{made} is not made from {named_by_domain}");
    assert_eq!(h.ok("create", generated).await["username"], json!(made), "a retried create names the same account");
    h.ok("terminate", json!({"username": made})).await;
    h.rejects(
        "create",
        json!({"domain": domain, "username": "Bad Name", "package_name": basic, "email": "nope"}),
        "/email",
    )
    .await;

    h.ok("terminate", json!({"username": username})).await;
    h.fails("get_info", json!({"username": username}), ErrorKind::NotFound).await;
    h.fails("terminate", json!({"username": username}), ErrorKind::NotFound).await;
    h.fails("suspend", json!({"username": unique(8)}), ErrorKind::NotFound).await;
}

fn contact(email: &str) -> Value {
    json!({"name": "Ann Lee", "email": email, "phone": "+442071234567", "address1": "1 High Street",
           "city": "London", "postcode": "N1 1AA", "country_code": "GB"})
}

/// `domain-names`: availability, register, duplicate, get_info, changes,
/// renew, EPP code, transfer progress (followed with its stored result, as
/// the engine does); bad contacts named by path.
pub async fn domain_names(h: &Harness) {
    let domain = format!("{}.com", unique(10));
    let ns = json!(["ns1.provisio-test.com", "ns2.provisio-test.com"]);
    let register = json!({"domain": domain, "years": 1, "contacts": {"registrant": contact("ann@provisio-test.com")}, "nameservers": ns});

    let check = h.ok("check_availability", json!({"domains": [domain]})).await;
    assert_eq!(check["domains"][0]["available"], true);
    let info = h.ok("register", register.clone()).await;
    assert_eq!(info["domain"], json!(domain));
    let expires = info["expires_at"].clone();
    // Documented: same registrant adopts, another registrant conflicts.
    h.ok("register", register.clone()).await;
    let mut other = register.clone();
    other["contacts"]["registrant"] = contact("bob@provisio-test.com");
    h.fails("register", other, ErrorKind::Conflict).await;
    let check = h.ok("check_availability", json!({"domains": [domain]})).await;
    assert_eq!(check["domains"][0]["available"], false);

    assert_eq!(h.ok("get_info", json!({"domain": domain})).await["domain"], json!(domain));
    let new_ns = json!(["ns1.provisio-test.net", "ns2.provisio-test.net", "ns3.provisio-test.net"]);
    assert_eq!(
        h.ok("update_nameservers", json!({"domain": domain, "nameservers": new_ns})).await["nameservers"],
        new_ns
    );
    // Renew moves the expiry by exactly the years asked, and once per idempotency key.
    let mut keyed = h.clone();
    keyed.options.idempotency_key = Some(format!("renew-{}", unique(8)));
    // As the engine does: every attempt of the job sees what the service knew before it.
    keyed.options.provision_data = info.as_object().cloned().unwrap_or_default();
    let renewed = keyed.ok("renew", json!({"domain": domain, "years": 2})).await;
    let (before, after) = (date_of(&expires), date_of(&renewed["expires_at"]));
    assert_eq!(after, add_years(&before, 2), "renewed by two years: {before} -> {after}");
    let again = keyed.ok("renew", json!({"domain": domain, "years": 2})).await;
    assert_eq!(again["expires_at"], renewed["expires_at"], "a retried renew is done once");
    assert_eq!(h.ok("get_status", json!({"domain": domain})).await["status"], "active");
    if let Some(locked) = h.optional("set_lock", json!({"domain": domain, "locked": false})).await {
        assert_eq!(locked["locked"], false);
    }
    if let Some(code) = h.optional("get_epp_code", json!({"domain": domain})).await {
        assert!(!code["epp_code"].as_str().unwrap().is_empty());
    }
    if let Some(changed) = h.optional("set_auto_renew", json!({"domain": domain, "auto_renew": true})).await {
        assert_eq!(changed["auto_renew"], true, "{changed}");
    }
    let registrant = json!({"domain": domain, "contacts": {"registrant": contact("owner2@provisio-test.com")}});
    if let Some(changed) = h.optional("update_contacts", registrant).await {
        assert_eq!(changed["registrant"]["email"], "owner2@provisio-test.com", "{changed}");
    }

    // A transfer reports progress instead of failing.
    let (incoming, code) =
        h.incoming.clone().unwrap_or_else(|| (format!("{}.net", unique(10)), "Xfer-Code-123".into()));
    // The registrant is named: where no code proves the client's right (.uk),
    // the domain is the service's only if it arrives with that registrant.
    let transfer =
        json!({"domain": incoming, "epp_code": code, "contacts": {"registrant": contact("someone@example.net")}});
    if let Some(status) = h.optional("transfer", transfer).await {
        assert!(matches!(status["status"].as_str(), Some("pending_transfer" | "active")), "{status}");
        // Followed as the engine follows it: with the transfer's stored result.
        let mut following = h.clone();
        following.options.provision_data = status.as_object().cloned().unwrap_or_default();
        let status = following.ok("get_status", json!({"domain": incoming})).await;
        assert!(matches!(status["status"].as_str(), Some("pending_transfer" | "active")), "{status}");
    }

    let mut bad = register.clone();
    bad["contacts"]["registrant"]["email"] = json!("not-an-email");
    h.rejects("register", bad, "/contacts/registrant/email").await;
    let mut bad = register.clone();
    bad["contacts"]["registrant"]["country_code"] = json!("UK");
    h.rejects("register", bad, "/contacts/registrant/country_code").await;
    h.rejects(
        "register",
        json!({"domain": "bad domain", "contacts": {"registrant": contact("a@provisio-test.com")}, "nameservers": ns}),
        "/domain",
    )
    .await;
    h.fails("get_info", json!({"domain": format!("{}.com", unique(10))}), ErrorKind::NotFound).await;
}

/// `dns-hosting`: create_zone, duplicate, records, suspend, unsuspend,
/// terminate, then `not_found`.
pub async fn dns_hosting(h: &Harness) {
    let zone = format!("{}.com", unique(10));
    let www = json!({"name": "www", "type": "A", "ttl": 300, "records": ["192.0.2.1"]});
    let create = json!({"zone": zone, "records": [www]});

    let info = h.ok("create_zone", create.clone()).await;
    assert_eq!(info["zone"], json!(zone));
    h.ok("create_zone", create.clone()).await;
    let different = json!({"zone": zone, "records": [{"name": "www", "type": "A", "records": ["192.0.2.99"]}]});
    h.fails("create_zone", different, ErrorKind::Conflict).await;

    let mail = json!({"name": "@", "type": "MX", "ttl": 3600, "records": ["10 mail.provisio-test.com."]});
    let info = h.ok("set_records", json!({"zone": zone, "records": [mail]})).await;
    let records = info["records"].as_array().unwrap();
    assert!(records.iter().any(|r| r["type"] == "MX") && records.iter().any(|r| r["type"] == "A"), "{info}");
    // Deleting records that are not there is not an error (documented).
    h.ok("delete_records", json!({"zone": zone, "records": [{"name": "absent", "type": "TXT"}]})).await;
    let info = h.ok("delete_records", json!({"zone": zone, "records": [{"name": "www", "type": "A"}]})).await;
    assert!(!info["records"].as_array().unwrap().iter().any(|r| r["type"] == "A"), "{info}");
    assert_eq!(h.ok("suspend", json!({"zone": zone})).await["state"], "suspended");
    assert_eq!(h.ok("get_info", json!({"zone": zone})).await["state"], "suspended");
    assert_eq!(h.ok("unsuspend", json!({"zone": zone})).await["state"], "active");

    h.rejects(
        "set_records",
        json!({"zone": zone, "records": [{"name": "www", "type": "BOGUS", "records": ["x"]}]}),
        "/records/0/type",
    )
    .await;
    h.rejects("create_zone", json!({"zone": "not a zone"}), "/zone").await;

    h.ok("terminate", json!({"zone": zone})).await;
    h.fails("get_info", json!({"zone": zone}), ErrorKind::NotFound).await;
    h.fails("terminate", json!({"zone": zone}), ErrorKind::NotFound).await;
}

/// `databases`: create (password once), duplicate, get_info, suspend,
/// unsuspend, usage, change_password, terminate, then `not_found`.
pub async fn databases(h: &Harness) {
    let database = format!("db_{}", unique(8));
    let info = h.ok("create", json!({"database": database})).await;
    assert_eq!(info["database"], json!(database));
    assert!(info["password"].as_str().is_some_and(|p| p.len() >= 12), "a generated password is returned once: {info}");
    let again = h.ok("create", json!({"database": database})).await;
    assert!(again.get("password").is_none_or(Value::is_null), "an adopted database answers no password: {again}");
    h.fails("create", json!({"database": database, "username": format!("u_{}", unique(8))}), ErrorKind::Conflict).await;

    assert!(h.ok("get_info", json!({"database": database})).await.get("password").is_none_or(Value::is_null));
    assert_eq!(h.ok("suspend", json!({"database": database})).await["state"], "suspended");
    assert_eq!(h.ok("unsuspend", json!({"database": database})).await["state"], "active");
    if let Some(usage) = h.optional("get_usage", json!({"database": database})).await {
        assert!(usage["size_mb"]["used"].as_f64().unwrap() >= 0.0);
    }
    if let Some(credentials) = h.optional("change_password", json!({"database": database})).await {
        assert!(!credentials["password"].as_str().unwrap().is_empty());
    }

    h.rejects("create", json!({"database": "x\"; DROP TABLE users; --"}), "/database").await;
    h.rejects("create", json!({"database": database, "password": "weak"}), "/password").await;

    h.ok("terminate", json!({"database": database})).await;
    h.fails("get_info", json!({"database": database}), ErrorKind::NotFound).await;
    h.fails("terminate", json!({"database": database}), ErrorKind::NotFound).await;
}

/// `software-licenses`: create, idempotent create by reference, get_info,
/// suspend, unsuspend, change_package, reissue, terminate, then `not_found`.
pub async fn software_licenses(h: &Harness) {
    let (basic, other) = (&h.packages.0, &h.packages.1);
    let reference = format!("contract-{}", unique(8));
    let create = json!({"reference": reference, "package_identifier": basic, "customer_name": "Ann Lee",
                        "customer_email": "ann@provisio-test.com", "ip": "192.0.2.7"});
    let license = h.ok("create", create.clone()).await;
    let key = license["license_key"].as_str().unwrap().to_owned();
    assert_eq!(h.ok("create", create.clone()).await["license_key"], json!(key), "same reference, same licence");

    assert_eq!(h.ok("get_info", json!({"license_key": key})).await["reference"], json!(reference));
    assert_eq!(h.ok("suspend", json!({"license_key": key})).await["state"], "suspended");
    assert_eq!(h.ok("unsuspend", json!({"license_key": key})).await["state"], "active");
    assert_eq!(
        h.ok("change_package", json!({"license_key": key, "package_identifier": other})).await["package_identifier"],
        json!(other)
    );
    if let Some(reissued) = h.optional("reissue", json!({"license_key": key, "ip": "192.0.2.8"})).await {
        assert_eq!(reissued["ip"], "192.0.2.8");
    }

    h.rejects(
        "create",
        json!({"reference": reference, "package_identifier": basic, "customer_name": "Ann",
                              "customer_email": "ann@provisio-test.com", "ip": "999.1.1.1"}),
        "/ip",
    )
    .await;

    h.ok("terminate", json!({"license_key": key})).await;
    h.fails("get_info", json!({"license_key": key}), ErrorKind::NotFound).await;
    h.fails("terminate", json!({"license_key": key}), ErrorKind::NotFound).await;
}

/// `coffee`: brew, the same idempotency key answers the same cup, get_info;
/// bad sugar named by path.
pub async fn coffee(h: &Harness) {
    let cup = h.ok("brew", json!({"name": "Joe's coffee", "size": "small", "sugar": 1, "milk": "oat"})).await;
    let order_id = cup["order_id"].as_str().unwrap().to_owned();
    assert_eq!(h.ok("get_info", json!({"order_id": order_id})).await["name"], "Joe's coffee");

    let mut keyed = h.clone();
    keyed.options.idempotency_key = Some(format!("brew-{}", unique(8)));
    let first = keyed.ok("brew", json!({"name": "Ann", "size": "large"})).await;
    let second = keyed.ok("brew", json!({"name": "Ann", "size": "large"})).await;
    assert_eq!(first["order_id"], second["order_id"], "same idempotency key, same cup");
    let other = h.ok("brew", json!({"name": "Ann", "size": "large"})).await;
    assert_ne!(first["order_id"], other["order_id"], "every brew without a key is a new cup");

    h.rejects("brew", json!({"name": "Joe", "size": "small", "sugar": 9}), "/sugar").await;
    h.rejects("brew", json!({"name": "Joe", "size": "bucket"}), "/size").await;
    h.fails("get_info", json!({"order_id": "cup_unknown"}), ErrorKind::NotFound).await;
}

/// `physical-goods`: an order placed twice under one idempotency key is one
/// order; read back; cancelled, and cancelled again answers the same; one
/// left to ship cannot be cancelled (`conflict`); bad params named by path;
/// unknown orders `not_found`. The configured shipper ships within 10 s.
pub async fn physical_goods(h: &Harness) {
    let reference = format!("contract-{}", unique(8));
    let order = json!({"reference": reference, "sku": "MUG-RED", "quantity": 2,
                       "ship_to": {"name": "Ann Lee", "line1": "1 High St", "city": "York", "postcode": "YO1 7HH", "country": "GB"}});
    let mut keyed = h.clone();
    keyed.options.idempotency_key = Some(format!("order-{}", unique(8)));
    let first = keyed.ok("place_order", order.clone()).await;
    let again = keyed.ok("place_order", order.clone()).await;
    assert_eq!(first["order_id"], again["order_id"], "same idempotency key, same order");
    assert_eq!((first["sku"].as_str(), first["quantity"].as_u64()), (Some("MUG-RED"), Some(2)));
    let order_id = first["order_id"].as_str().unwrap().to_owned();
    let named = json!({"order_id": order_id});
    assert_eq!(h.ok("get_info", named.clone()).await["order_id"], json!(order_id));

    let cancelled = h.ok("terminate", named.clone()).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(h.ok("terminate", named.clone()).await["status"], "cancelled", "cancelling twice answers the same");
    assert_eq!(h.ok("get_info", named.clone()).await["status"], "cancelled");

    let mut other = h.clone();
    other.options.idempotency_key = Some(format!("order-{}", unique(8)));
    let second = other.ok("place_order", order.clone()).await;
    assert_ne!(second["order_id"], first["order_id"], "another key is another order");
    let second = json!({"order_id": second["order_id"]});
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let shipped = loop {
        let info = h.ok("get_info", second.clone()).await;
        if info["status"] == "shipped" {
            break info;
        }
        assert!(std::time::Instant::now() < deadline, "the order never shipped: {info}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(shipped["tracking"].as_str().is_some_and(|t| !t.is_empty()), "a shipped order has tracking: {shipped}");
    h.fails("terminate", second.clone(), ErrorKind::Conflict).await;

    let mut bad = order.clone();
    bad["quantity"] = json!(0);
    h.rejects("place_order", bad, "/quantity").await;
    let mut bad = order.clone();
    bad["ship_to"]["country"] = json!("gb");
    h.rejects("place_order", bad, "/ship_to/country").await;
    h.fails("get_info", json!({"order_id": "ord_unknown"}), ErrorKind::NotFound).await;
    h.fails("terminate", json!({"order_id": "ord_unknown"}), ErrorKind::NotFound).await;
}

/// `message-queues`: create (password once), duplicate, get_info, suspend,
/// unsuspend, usage, change_password, terminate, then `not_found`.
pub async fn message_queues(h: &Harness) {
    let vhost = format!("vh_{}", unique(8));
    let info = h.ok("create", json!({"vhost": vhost, "package_name": h.packages.0})).await;
    assert_eq!(info["vhost"], json!(vhost));
    assert!(info["password"].as_str().is_some_and(|p| p.len() >= 12), "a generated password is returned once: {info}");
    let again = h.ok("create", json!({"vhost": vhost})).await;
    assert!(again.get("password").is_none_or(Value::is_null), "an adopted account answers no password: {again}");
    h.fails("create", json!({"vhost": vhost, "username": format!("u_{}", unique(8))}), ErrorKind::Conflict).await;

    assert_eq!(h.ok("get_info", json!({"vhost": vhost})).await["state"], "active");
    assert_eq!(h.ok("suspend", json!({"vhost": vhost})).await["state"], "suspended");
    assert_eq!(h.ok("get_info", json!({"vhost": vhost})).await["state"], "suspended");
    assert_eq!(h.ok("unsuspend", json!({"vhost": vhost})).await["state"], "active");
    if let Some(usage) = h.optional("get_usage", json!({"vhost": vhost})).await {
        assert!(usage["queues"]["used"].as_f64().unwrap() >= 0.0);
    }
    if let Some(credentials) = h.optional("change_password", json!({"vhost": vhost})).await {
        assert!(!credentials["password"].as_str().unwrap().is_empty());
    }

    h.rejects("create", json!({"vhost": "bad/vhost"}), "/vhost").await;
    h.rejects("create", json!({"vhost": vhost, "max_connections": 0}), "/max_connections").await;

    h.ok("terminate", json!({"vhost": vhost})).await;
    h.fails("get_info", json!({"vhost": vhost}), ErrorKind::NotFound).await;
    h.fails("terminate", json!({"vhost": vhost}), ErrorKind::NotFound).await;
}

/// `mqtt-hosting`: create (password once), duplicate, get_info, suspend,
/// unsuspend, change_password, overlapping and reserved prefixes refused,
/// terminate, then `not_found`.
pub async fn mqtt_hosting(h: &Harness) {
    let username = format!("dev_{}", unique(8));
    let prefix = format!("devices/{username}");
    let info = h.ok("create", json!({"username": username, "topic_prefix": prefix})).await;
    assert_eq!(info["topic_prefix"], json!(prefix));
    assert!(info["password"].as_str().is_some_and(|p| p.len() >= 12), "a generated password is returned once: {info}");
    let again = h.ok("create", json!({"username": username, "topic_prefix": prefix})).await;
    assert!(again.get("password").is_none_or(Value::is_null), "an adopted account answers no password: {again}");
    h.fails("create", json!({"username": username, "topic_prefix": "elsewhere"}), ErrorKind::Conflict).await;

    assert_eq!(h.ok("get_info", json!({"username": username})).await["state"], "active");
    assert_eq!(h.ok("suspend", json!({"username": username})).await["state"], "suspended");
    assert_eq!(h.ok("get_info", json!({"username": username})).await["state"], "suspended");
    assert_eq!(h.ok("unsuspend", json!({"username": username})).await["state"], "active");
    if let Some(credentials) = h.optional("change_password", json!({"username": username})).await {
        assert!(!credentials["password"].as_str().unwrap().is_empty());
    }

    h.rejects("create", json!({"username": username, "topic_prefix": "a/#"}), "/topic_prefix").await;
    h.rejects("create", json!({"username": "Bad Name"}), "/username").await;
    // No account may reach another's topics, or the coffee machines'.
    for overlapping in
        ["devices".to_owned(), format!("{prefix}/sub"), prefix.clone(), "coffee".into(), "coffee/kitchen".into()]
    {
        let other = format!("dev_{}", unique(8));
        h.fails("create", json!({"username": other, "topic_prefix": overlapping}), ErrorKind::Conflict).await;
        h.fails("get_info", json!({"username": other}), ErrorKind::NotFound).await;
    }
    let neighbour = format!("dev_{}", unique(8));
    h.ok("create", json!({"username": neighbour, "topic_prefix": format!("devices/{neighbour}")})).await;
    h.ok("terminate", json!({"username": neighbour})).await;

    h.ok("terminate", json!({"username": username})).await;
    h.fails("get_info", json!({"username": username}), ErrorKind::NotFound).await;
    h.fails("terminate", json!({"username": username}), ErrorKind::NotFound).await;
}

/// Follows a certificate order with `get_info` (given the signing request
/// `create` answered) until it leaves validation: issuance is long, and
/// create may answer `pending_validation`.
async fn until_settled(h: &Harness, created: &Value) -> Value {
    let mut info = created.clone();
    for _ in 0..60 {
        if !matches!(info["status"].as_str(), Some("pending_validation" | "processing")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let query = json!({"certificate_id": created["certificate_id"], "csr_pem": created["csr_pem"]});
        info = h.ok("get_info", query).await;
    }
    info
}

/// `ssl-certificates`: create (the private key answered once, by create),
/// issued at once or through get_info, get_info, download, renew (a new
/// order), revoke, bad names rejected, unknown orders `not_found`. Answers
/// the first certificate's info, with its key, so provider tests can check
/// the chain further.
pub async fn ssl_certificates(h: &Harness) -> Value {
    let common_name = format!("{}.{}", unique(8), h.domain);
    let alt_name = format!("www.{common_name}");
    let created = h.ok("create", json!({"common_name": common_name, "alt_names": [alt_name]})).await;
    assert_eq!(created["common_name"], json!(common_name));
    let key = created["private_key_pem"].as_str().expect("create answers the private key, once").to_owned();
    assert!(key.contains("PRIVATE KEY-----"));
    // Documented: nothing to download before issuance (a `provider_error`, not an empty chain).
    if created["status"] != "issued" {
        h.fails("download", json!({"certificate_id": created["certificate_id"]}), ErrorKind::ProviderError).await;
    }
    let mut issued = until_settled(h, &created).await;
    assert_eq!(issued["status"], "issued", "{issued:#}");
    let id = issued["certificate_id"].as_str().expect("certificate_id").to_owned();
    let chain = issued["certificate_pem"].as_str().expect("an issued certificate has its chain");
    assert!(chain.starts_with("-----BEGIN CERTIFICATE-----"), "{chain}");
    assert!(issued["not_after"].as_str().is_some(), "an issued certificate says when it expires: {issued}");

    let info = h.ok("get_info", json!({"certificate_id": id})).await;
    assert_eq!(info["status"], "issued");
    assert!(info.get("private_key_pem").is_none_or(Value::is_null), "the key is not answered twice: {info}");
    // An authority may not keep the names in the order asked: compare the sets.
    let mut names: Vec<Value> = info["alt_names"].as_array().cloned().unwrap_or_default();
    names.push(info["common_name"].clone());
    names.sort_by_key(|n| n.to_string());
    let mut asked = vec![json!(common_name), json!(alt_name)];
    asked.sort_by_key(|n| n.to_string());
    assert_eq!(names, asked, "{info}");
    let download = h.ok("download", json!({"certificate_id": id})).await;
    assert_eq!(download["certificate_pem"], issued["certificate_pem"]);

    let renewed =
        h.ok("renew", json!({"certificate_id": id, "common_name": common_name, "alt_names": [alt_name]})).await;
    assert!(renewed["private_key_pem"].as_str().is_some(), "a renewal has a new key: {renewed}");
    assert_ne!(renewed["private_key_pem"], json!(key));
    let renewed = until_settled(h, &renewed).await;
    assert_eq!(renewed["status"], "issued", "{renewed:#}");
    assert_ne!(renewed["certificate_id"], json!(id), "renew is a new order");
    assert_ne!(renewed["certificate_pem"], issued["certificate_pem"]);

    h.ok("revoke", json!({"certificate_id": renewed["certificate_id"]})).await;

    h.rejects("create", json!({"common_name": "not a name"}), "/common_name").await;
    h.rejects("download", json!({"certificate_id": ""}), "/certificate_id").await;
    h.fails("get_info", json!({"certificate_id": "no-such-order"}), ErrorKind::NotFound).await;
    h.fails("get_info", json!({}), ErrorKind::NotFound).await;
    issued["private_key_pem"] = json!(key);
    issued
}

/// The `YYYY-MM-DD` of an RFC 3339 timestamp.
fn date_of(value: &Value) -> String {
    value.as_str().and_then(|t| t.get(..10)).unwrap_or_else(|| panic!("not a timestamp: {value}")).to_owned()
}

/// `YYYY-MM-DD` plus whole years (29 February becomes 28 February).
fn add_years(date: &str, years: i32) -> String {
    let (year, rest) = date.split_once('-').expect("YYYY-MM-DD");
    let year: i32 = year.parse().expect("a year");
    let shifted = format!("{}-{rest}", year + years);
    if rest == "02-29" { format!("{}-02-28", year + years) } else { shifted }
}
