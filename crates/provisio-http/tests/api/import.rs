//! Import: what a configuration already holds becomes services, through the
//! API with the demo providers and a real PostgreSQL. A resource made outside
//! Provisio becomes a service of the chosen (or e-mail-matched) client and
//! is marked as it; a second import changes nothing; a resource that carries
//! another service's mark is never a second service; a dry run writes
//! nothing; concurrent imports make each service once; bad requests name
//! their field and change nothing.

use provisio_engine::workbench::WorkbenchTarget;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::helpers::*;

/// A configuration's id and stored values, by name.
async fn configuration(app: &TestApp, name: &str) -> (i64, Value) {
    let listed = app.get("/api/v1/configurations").await;
    let found = listed.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("{name}"));
    (found["id"].as_i64().unwrap(), found["config_values"].clone())
}

/// Runs a function on a configuration's system by hand, outside any
/// service (no owner mark): how a resource "made outside Provisio" appears.
async fn by_hand(app: &TestApp, provider: &str, values: &Value, function: &str, params: Value) -> Value {
    let target = WorkbenchTarget::AdHoc(values.clone());
    let report = app.engine.catalog().workbench_call("operator", provider, target, function, &params).await.unwrap();
    assert!(report.envelope.is_ok(), "{:#?}", report.envelope);
    report.envelope.data.unwrap_or_default()
}

async fn import(app: &TestApp, configuration: i64, body: Value) -> Value {
    let (status, page) = app.post(&format!("/api/v1/configurations/{configuration}/import"), body).await;
    assert_eq!(status, StatusCode::OK, "{page:#}");
    page
}

fn line<'a>(page: &'a Value, identifier: &str) -> &'a Value {
    page["resources"].as_array().unwrap().iter().find(|l| l["identifier"] == identifier).unwrap_or_else(|| {
        panic!("{identifier} not in {page:#}");
    })
}

async fn client(app: &TestApp, name: &str) -> i64 {
    let body = json!({"external_id": name, "name": name, "email": format!("{name}@example.com")});
    let (status, created) = app.post("/api/v1/clients", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_i64().unwrap()
}

#[tokio::test]
async fn accounts_made_outside_provisio_become_services_of_their_clients_once() {
    let app = spawn_app().await;
    let (eu, values) = configuration(&app, "demo-hosting-eu").await;
    let alice = client(&app, "alice").await;
    let bob = client(&app, "bob").await;
    let account = |name: &str, email: &str| json!({"username": name, "domain": format!("{name}.example.net"), "package_name": "basic", "email": email});
    let provider = "shared-hosting/demo";
    by_hand(&app, provider, &values, "create", account("legacya", "Alice@Example.com")).await;
    by_hand(&app, provider, &values, "create", account("legacyb", "stranger@example.com")).await;
    by_hand(&app, provider, &values, "create", account("legacyc", "alice@example.com")).await;
    by_hand(&app, provider, &values, "suspend", json!({"username": "legacyc"})).await;
    // One ordered through Provisio: a service already.
    let ordered = app.event(order("o1", "ordered-1", "demo-hosting", fields_for("demo-hosting", 1))).await;
    let ordered = ordered["service_id"].as_i64().unwrap();
    assert_eq!(app.settled(ordered).await["service"]["status"], "active");
    let before = app.count_services("active").await;

    // A dry run says what would happen and writes nothing.
    let request = json!({"product": "demo-hosting", "match_email": true, "dry_run": true});
    let plan = import(&app, eu, request).await;
    assert_eq!(plan["dry_run"], true);
    assert_eq!(line(&plan, "legacya")["outcome"], "would_create", "{plan:#}");
    assert_eq!(line(&plan, "legacya")["client_id"], alice, "matched by e-mail, letter case aside");
    assert_eq!(line(&plan, "legacyb")["outcome"], "skipped");
    assert!(line(&plan, "legacyb")["reason"].as_str().unwrap().contains("stranger@example.com"), "{plan:#}");
    assert_eq!(line(&plan, "user1")["outcome"], "matched");
    assert_eq!(line(&plan, "user1")["service_id"], ordered);
    assert_eq!(app.count_services("provisioning").await + app.count_services("active").await, before);

    // The import: each made outside becomes a service, marked by its adopt job.
    let page = import(&app, eu, json!({"product": "demo-hosting", "match_email": true})).await;
    assert_eq!(
        (page["created"].as_u64(), page["matched"].as_u64(), page["skipped"].as_u64()),
        (Some(2), Some(1), Some(1))
    );
    let a = line(&page, "legacya")["service_id"].as_i64().unwrap();
    let c = line(&page, "legacyc")["service_id"].as_i64().unwrap();
    let detail = app.settled(a).await;
    assert_eq!(detail["service"]["status"], "active", "{detail:#}");
    assert_eq!(detail["service"]["client_id"], alice);
    assert_eq!(detail["service"]["identifier"], "legacya");
    let adopt = &detail["jobs"][0];
    assert_eq!((adopt["function"].as_str(), adopt["origin"].as_str()), (Some("adopt"), Some("import")), "{detail:#}");
    assert_eq!(app.settled(c).await["service"]["status"], "suspended", "as found at the panel");
    // Marked: the service's own calls now reach it; a hand-made adopt by another mark would not.
    let (status, info) = app.post(&format!("/api/v1/services/{a}/actions/get_info"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["envelope"]["status"], "ok", "{info:#}");

    // A second import changes nothing.
    let again = import(&app, eu, json!({"product": "demo-hosting", "match_email": true})).await;
    assert_eq!((again["created"].as_u64(), again["matched"].as_u64()), (Some(0), Some(3)), "{again:#}");
    // Told where the rest go, the stranger's account goes to Bob; the rest stay as they are.
    let rest = import(&app, eu, json!({"product": "demo-hosting", "match_email": true, "client_id": bob})).await;
    assert_eq!(rest["created"], 1, "{rest:#}");
    assert_eq!(line(&rest, "legacyb")["client_id"], bob);
    assert_eq!(line(&rest, "legacya")["outcome"], "matched");
    assert_invariants(&app).await;

    // The audit names who imported.
    let audit = app.get("/api/v1/audit").await;
    assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == "configuration.import"), "{audit:#}");
    // Billing's lifecycle works on an imported service: cancelled, it is removed at the panel.
    app.event(later("c-a", "contract.cancelled", a, json!({}))).await;
    assert_eq!(app.settled(a).await["service"]["status"], "terminated");
}

#[tokio::test]
async fn concurrent_imports_in_pages_make_each_service_once() {
    let app = spawn_app().await;
    let (db, values) = configuration(&app, "demo-database").await;
    let owner = client(&app, "owner").await;
    for n in 0..23 {
        by_hand(&app, "databases/demo", &values, "create", json!({"database": format!("old{n:02}")})).await;
    }
    let runs = futures::future::join_all((0..4).map(|_| import_all(&app, db, owner))).await;
    assert_eq!(runs.iter().sum::<u64>(), 23, "each database made a service once: {runs:?}");
    app.drained(std::time::Duration::from_secs(20)).await;
    assert_eq!(app.count_services("active").await, 23);
    assert_invariants(&app).await;
}

#[tokio::test]
async fn a_bad_import_request_names_its_field_and_changes_nothing() {
    let app = spawn_app().await;
    let (eu, _) = configuration(&app, "demo-hosting-eu").await;
    let (us, _) = configuration(&app, "demo-hosting-us").await;
    let (licensing, _) = configuration(&app, "demo-licensing").await;
    let alice = client(&app, "alice").await;
    let cases = [
        (eu, json!({"product": "demo-hosting"}), StatusCode::UNPROCESSABLE_ENTITY, "/client_id"),
        (eu, json!({"product": "nope", "client_id": alice}), StatusCode::UNPROCESSABLE_ENTITY, "/product"),
        (eu, json!({"product": "demo-database", "client_id": alice}), StatusCode::UNPROCESSABLE_ENTITY, "/product"),
        // demo-hosting deploys to the eu servers only.
        (us, json!({"product": "demo-hosting", "client_id": alice}), StatusCode::UNPROCESSABLE_ENTITY, "/product"),
        (eu, json!({"product": "demo-hosting", "client_id": 999_999}), StatusCode::UNPROCESSABLE_ENTITY, "/client_id"),
        (
            eu,
            json!({"product": "demo-hosting", "client_id": alice, "limit": 501}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/limit",
        ),
        (
            eu,
            json!({"product": "demo-hosting", "client_id": alice, "limit": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/limit",
        ),
        (
            eu,
            json!({"product": "demo-hosting", "client_id": alice, "cursor": "x".repeat(1001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "/cursor",
        ),
        (
            eu,
            json!({"product": "demo-hosting", "client_id": alice, "owner": "me"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "owner",
        ),
        (licensing, json!({"product": "demo-license", "client_id": alice}), StatusCode::CONFLICT, "cannot be imported"),
        (987_654, json!({"product": "demo-hosting", "client_id": alice}), StatusCode::NOT_FOUND, "987654"),
    ];
    for (configuration, body, expected, named) in cases {
        let (status, problem) = app.post(&format!("/api/v1/configurations/{configuration}/import"), body.clone()).await;
        assert_eq!(status, expected, "{body} → {problem:#}");
        assert!(problem.to_string().contains(named), "{body} → {problem:#} should name {named}");
    }
    let audit = app.get("/api/v1/audit").await;
    assert!(!audit.as_array().unwrap().iter().any(|e| e["action"] == "configuration.import"), "{audit:#}");
    // A hostile cursor is only ever a bound value to the system.
    let page = import(
        &app,
        eu,
        json!({"product": "demo-hosting", "client_id": alice,
                                       "cursor": "'; DROP TABLE services; --", "dry_run": true}),
    )
    .await;
    assert!(page["resources"].is_array(), "{page:#}");
}

/// Imports every page of `db`, five at a time; answers how many it created.
async fn import_all(app: &TestApp, db: i64, owner: i64) -> u64 {
    let mut cursor: Option<String> = None;
    let mut created = 0;
    loop {
        let mut body = json!({"product": "demo-database", "client_id": owner, "limit": 5});
        if let Some(cursor) = &cursor {
            body["cursor"] = json!(cursor);
        }
        let page = import(app, db, body).await;
        created += page["created"].as_u64().unwrap();
        assert_eq!(page["total"], 23, "{page:#}");
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return created,
        }
    }
}

/// A PostgreSQL test server's configuration values and an admin connection.
async fn postgres() -> Option<(Value, PgConnection)> {
    let [text, ca] = provisio_conformance::test_servers(["PROVISIO_TEST_POSTGRES", "PROVISIO_TEST_CA"])?;
    let url = url::Url::parse(&text).unwrap();
    let values = json!({"host": url.host_str().unwrap(), "port": url.port().unwrap_or(5432),
                        "username": url.username(), "password": url.password().unwrap_or_default(),
                        "ca_cert_pem": std::fs::read_to_string(ca).unwrap()});
    let options: sqlx::postgres::PgConnectOptions = text.parse().unwrap();
    let conn = PgConnection::connect_with(&options.ssl_mode(sqlx::postgres::PgSslMode::Prefer)).await.unwrap();
    Some((values, conn))
}

async fn sql(conn: &mut PgConnection, statement: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned())).execute(&mut *conn).await.unwrap();
}

#[tokio::test]
async fn databases_made_outside_provisio_on_a_real_postgresql_become_services_once() {
    let Some((values, mut admin)) = postgres().await else { return };
    let app = spawn_app().await;
    let first = crate::real::product_on(&app, "pg-import-1", "databases/postgresql", &values).await;
    let second = crate::real::product_on(&app, "pg-import-2", "databases/postgresql", &values).await;
    let (one, _) = configuration(&app, "pg-import-1").await;
    let (two, _) = configuration(&app, "pg-import-2").await;
    let alice = client(&app, "alice").await;
    let prefix = format!("legacy_{}_", provisio_conformance::unique(6));
    let name = |tail: &str| format!("{prefix}{tail}");

    // Made outside Provisio, by plain SQL: two with logins of their own (one
    // that cannot log in), two sharing one login, one owned by the administrator.
    for (role, login) in
        [(name("a"), "LOGIN"), (name("b"), "NOLOGIN"), (name("shared"), "LOGIN"), (name("p"), "LOGIN CREATEDB")]
    {
        sql(&mut admin, &format!("CREATE ROLE \"{role}\" {login} PASSWORD 'Outside-Passw0rd'")).await;
        sql(&mut admin, &format!("GRANT \"{role}\" TO CURRENT_USER")).await;
    }
    for (database, owner) in [("a", "a"), ("b", "b"), ("c", "shared"), ("d", "shared"), ("p", "p")] {
        sql(&mut admin, &format!("CREATE DATABASE \"{}\" OWNER \"{}\"", name(database), name(owner))).await;
    }
    sql(&mut admin, &format!("CREATE DATABASE \"{}\"", name("e"))).await;
    // And one ordered through Provisio.
    let ordered = app.event(order_for("alice", "pg-o1", "pg-c1", &first, json!({"database": name("f")}))).await;
    let ordered = ordered["service_id"].as_i64().unwrap();
    assert_eq!(app.settled(ordered).await["service"]["status"], "active");

    let request = json!({"product": first, "client_id": alice, "prefix": prefix});
    let page = import(&app, one, request.clone()).await;
    assert_eq!(line(&page, &name("a"))["outcome"], "created", "{page:#}");
    assert_eq!(line(&page, &name("b"))["outcome"], "created");
    assert_eq!(line(&page, &name("f"))["outcome"], "matched");
    for (refused, why) in
        [("c", "owns 2 databases"), ("d", "owns 2 databases"), ("e", "rights beyond"), ("p", "CREATEDB")]
    {
        let l = line(&page, &name(refused));
        assert_eq!(l["outcome"], "skipped", "{page:#}");
        assert!(l["reason"].as_str().unwrap().contains(why), "{l}");
    }
    let a = line(&page, &name("a"))["service_id"].as_i64().unwrap();
    let b = line(&page, &name("b"))["service_id"].as_i64().unwrap();
    assert_eq!(app.settled(a).await["service"]["status"], "active");
    let detail = app.settled(b).await;
    assert_eq!(detail["service"]["status"], "suspended", "{detail:#}");
    assert_eq!(detail["service"]["provision_data"]["username"], name("b"));
    // The mark is on the owner role, as for databases Provisio made.
    let comment: Option<String> =
        sqlx::query_scalar("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1")
            .bind(name("a"))
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert!(comment.unwrap_or_default().starts_with("provisio owner: prv-"));
    // And kept as Provisio keeps its own: no other login may connect.
    let public: bool = sqlx::query_scalar("SELECT has_database_privilege('public', $1, 'CONNECT')")
        .bind(name("a"))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(!public, "PUBLIC keeps no right on an adopted database");

    // A second import changes nothing.
    let again = import(&app, one, request).await;
    assert_eq!(
        (again["created"].as_u64(), again["matched"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(3), Some(4))
    );
    // Through a second configuration of the same server: each database
    // carries a service's mark, so none is imported twice.
    let other = import(&app, two, json!({"product": second, "client_id": alice, "prefix": prefix})).await;
    assert_eq!(other["created"], 0, "{other:#}");
    for taken in ["a", "b", "f"] {
        let l = line(&other, &name(taken));
        assert_eq!(l["outcome"], "skipped");
        assert!(l["reason"].as_str().unwrap().contains("owner mark of service"), "{l}");
    }
    assert_invariants(&app).await;

    // Billing's lifecycle reaches an imported database: suspended, then cancelled and dropped.
    app.event(later("pg-s", "contract.overdue", a, json!({}))).await;
    assert_eq!(app.settled(a).await["service"]["status"], "suspended");
    app.event(later("pg-x", "contract.cancelled", a, json!({}))).await;
    assert_eq!(app.settled(a).await["service"]["status"], "terminated");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(name("a"))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(left, 0);
    for database in ["b", "c", "d", "e", "f", "p"] {
        sql(&mut admin, &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", name(database))).await;
    }
    for role in ["b", "shared", "f", "p"] {
        sql(&mut admin, &format!("DROP ROLE IF EXISTS \"{}\"", name(role))).await;
    }
}
