//! `databases/mariadb` against a real MariaDB server with password
//! authentication: the conformance suite, then the customer's side of
//! every step, and hostile identifiers.
//!
//! The server comes from `PROVISIO_TEST_MARIADB` (a URL with the admin
//! role), which `scripts/test-servers start` prints. Without it the tests say
//! so and pass outside CI, and fail in CI.

use std::time::Duration;

use provisio_conformance::Harness;
use provisio_sdk::{CallOptions, ErrorKind, invoke};
use serde_json::{Value, json};
use sqlx::{Connection, MySqlConnection};

fn server() -> Option<(url::Url, Value)> {
    let [text, ca] = provisio_conformance::test_servers(["PROVISIO_TEST_MARIADB", "PROVISIO_TEST_CA"])?;
    let url = url::Url::parse(&text).expect("PROVISIO_TEST_MARIADB is a URL");
    let config = json!({
        "host": url.host_str().unwrap(), "port": url.port().unwrap_or(3306),
        "username": url.username(), "password": url.password().unwrap_or_default(),
        // Verified TLS, against the test servers' own CA.
        "tls": "verify", "ca_cert_pem": std::fs::read_to_string(ca).expect("the test CA is readable"),
    });
    Some((url, config))
}

async fn login(url: &url::Url, user: &str, password: &str, database: &str) -> Result<(), String> {
    let target = format!("mysql://{user}:{password}@{}:{}/{database}", url.host_str().unwrap(), url.port().unwrap());
    let mut conn = MySqlConnection::connect(&target).await.map_err(|e| e.to_string())?;
    sqlx::query("SELECT 1").execute(&mut conn).await.map_err(|e| e.to_string())?;
    conn.close().await.map_err(|e| e.to_string())
}

async fn call(config: &Value, function: &str, params: Value) -> provisio_sdk::Envelope {
    let options = CallOptions { timeout: Duration::from_secs(20), ..CallOptions::default() };
    invoke::call(&provisio_mariadb::entry(), config, function, &params, &options).await.envelope
}

#[tokio::test]
async fn passes_the_databases_conformance_suite() {
    let Some((_, config)) = server() else { return };
    provisio_conformance::run(&Harness::new(provisio_mariadb::entry(), config)).await;
}

#[tokio::test]
async fn the_customer_logs_in_is_refused_while_suspended_and_is_gone_after_terminate() {
    let Some((url, config)) = server() else { return };
    let database = format!("shop_{}", provisio_conformance::unique(8));
    let created = call(&config, "create", json!({"database": database, "package_name": "basic"})).await;
    assert!(created.is_ok(), "{created:?}");
    let data = created.data.unwrap();
    let password = data["password"].as_str().unwrap().to_owned();
    assert_eq!(data["connection_limit"], 10, "the basic package's limit");
    login(&url, &database, &password, &database).await.expect("the new login works");
    assert!(login(&url, &database, "Wrong-Passw0rd", &database).await.is_err(), "a wrong password is refused");

    assert!(call(&config, "suspend", json!({"database": database})).await.is_ok());
    let refused = login(&url, &database, &password, &database).await.unwrap_err();
    assert!(refused.contains("locked"), "{refused}");
    assert!(call(&config, "unsuspend", json!({"database": database})).await.is_ok());
    login(&url, &database, &password, &database).await.expect("works again");

    let changed = call(&config, "change_password", json!({"database": database})).await;
    let new_password = changed.data.unwrap()["password"].as_str().unwrap().to_owned();
    assert!(login(&url, &database, &password, &database).await.is_err(), "the old password no longer works");
    login(&url, &database, &new_password, &database).await.expect("the new password works");

    let usage = call(&config, "get_usage", json!({"database": database})).await;
    assert!(usage.data.unwrap()["size_mb"]["used"].as_f64().unwrap() >= 0.0);

    assert!(call(&config, "terminate", json!({"database": database})).await.is_ok());
    let gone = login(&url, &database, &new_password, &database).await.unwrap_err();
    assert!(gone.contains("Access denied"), "{gone}");
    assert_eq!(call(&config, "get_info", json!({"database": database})).await.error_kind, Some(ErrorKind::NotFound));
}

#[tokio::test]
async fn hostile_identifiers_are_refused_before_any_sql() {
    let Some((_, config)) = server() else { return };
    for hostile in ["x`; DROP USER root; --", "Robert'); DROP TABLE students;--", "a b", "pg_catalog\"", ""] {
        let envelope = call(&config, "create", json!({"database": hostile})).await;
        assert_eq!(envelope.error_kind, Some(ErrorKind::InvalidInput), "{hostile}");
        let envelope = call(&config, "create", json!({"database": "fine_name", "username": hostile})).await;
        assert_eq!(envelope.error_kind, Some(ErrorKind::InvalidInput), "{hostile}");
    }
    // A password with quotes is a literal, not SQL.
    let database = format!("quote_{}", provisio_conformance::unique(6));
    let created = call(&config, "create", json!({"database": database, "password": "It's-a-\\Test'1;--"})).await;
    assert!(created.is_ok(), "{created:?}");
    assert!(call(&config, "terminate", json!({"database": database})).await.is_ok());
}

#[tokio::test]
async fn test_connection_says_what_is_wrong_and_the_log_hides_passwords() {
    let Some((_, config)) = server() else { return };
    let report = invoke::test_connection(&provisio_mariadb::entry(), &config, &CallOptions::default()).await;
    assert!(report.envelope.is_ok(), "{report:?}");

    let mut wrong = config.clone();
    wrong["password"] = json!("definitely-wrong");
    let report = invoke::test_connection(&provisio_mariadb::entry(), &wrong, &CallOptions::default()).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::ProviderError));
    assert!(report.envelope.message.as_str().contains("credentials"), "{report:?}");
    assert!(!serde_json::to_string(&report).unwrap().contains("definitely-wrong"));

    let mut closed = config.clone();
    closed["port"] = json!(9);
    let report = invoke::test_connection(&provisio_mariadb::entry(), &closed, &CallOptions::default()).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::Transient), "{report:?}");

    // The statements are in the log, the new password is not.
    let database = format!("logged_{}", provisio_conformance::unique(6));
    let options = CallOptions::default();
    let report =
        invoke::call(&provisio_mariadb::entry(), &config, "create", &json!({"database": database}), &options).await;
    let password = report.envelope.data.as_ref().unwrap()["password"].as_str().unwrap().to_owned();
    let log = serde_json::to_string(&report.http_log).unwrap();
    assert!(log.contains("CREATE USER") && log.contains("[REDACTED]"), "{log}");
    assert!(!log.contains(&password) && !log.contains(config["password"].as_str().unwrap()), "{log}");
    assert!(call(&config, "terminate", json!({"database": database})).await.is_ok());
}

#[tokio::test]
async fn an_owner_reaches_its_own_database_and_no_other() {
    let Some((url, config)) = server() else { return };
    let suffix = provisio_conformance::unique(6);
    // With `_` unescaped in the grant, `w_…` would also cover `wx…`.
    let (mine, other) = (format!("w_{suffix}"), format!("wx{suffix}"));
    let created = call(&config, "create", json!({"database": mine})).await;
    let password = created.data.unwrap()["password"].as_str().unwrap().to_owned();
    assert!(call(&config, "create", json!({"database": other})).await.is_ok());
    login(&url, &mine, &password, &mine).await.expect("its own database");
    let refused = login(&url, &mine, &password, &other).await.unwrap_err();
    assert!(refused.contains("Access denied"), "{refused}");
    for database in [mine, other] {
        assert!(call(&config, "terminate", json!({"database": database})).await.is_ok());
    }
}

#[tokio::test]
async fn an_admin_password_inside_a_database_name_leaves_the_results_intact() {
    let Some((url, config)) = server() else { return };
    // A second administrative account whose password is part of the database's name.
    let (admin, password, database) =
        (format!("fan_admin_{}", provisio_conformance::unique(6)), "pgadmin1", "pgadmin1_fan");
    let admin_account = format!("'{admin}'@'{}'", url.host_str().unwrap());
    let mut root = MySqlConnection::connect(url.as_str()).await.expect("the test server's administrator connects");
    let setup = [
        // Whatever an interrupted run left.
        format!("DROP DATABASE IF EXISTS `{database}`"),
        format!("DROP USER IF EXISTS '{database}'@'%'"),
        format!("CREATE USER {admin_account} IDENTIFIED BY '{password}'"),
        format!("GRANT ALL PRIVILEGES ON *.* TO {admin_account} WITH GRANT OPTION"),
    ];
    for sql in setup {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut root).await.unwrap();
    }
    let mut admin_config = config.clone();
    admin_config["username"] = json!(admin);
    admin_config["password"] = json!(password);

    // As a service, with an owner mark, so the mark is written by this admin too.
    let mut harness = provisio_conformance::Harness::new(provisio_mariadb::entry(), admin_config);
    harness.options.timeout = Duration::from_secs(20);
    provisio_conformance::database_named_after_the_secret(&harness, password, database).await;

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP USER {admin_account}"))).execute(&mut root).await.unwrap();
    root.close().await.unwrap();
}

#[tokio::test]
async fn tls_is_verified_never_opportunistic() {
    let Some((_, config)) = server() else { return };
    let harness = Harness::new(provisio_mariadb::entry(), config.clone());
    // The server speaks both on one port: plain by choice still works.
    provisio_conformance::tls_is_verified(&harness, json!({"database": "no_such_database_here"}), config).await;
}

/// Import: a database made by hand with an account of its own is listed
/// adoptable and, once adopted, carries the service's mark in its comment;
/// one whose account has global privileges, one granted to a second account,
/// and one with a comment of its own are refused.
#[tokio::test]
async fn databases_made_by_hand_are_listed_and_only_those_of_an_account_of_their_own_adopted() {
    let Some((url, config)) = server() else { return };
    let mut root = MySqlConnection::connect(url.as_str()).await.expect("the test server's administrator connects");
    let tag = provisio_conformance::unique(6);
    let name = |tail: &str| format!("hand_{tag}_{tail}");
    let sql = |statement: String| sqlx::raw_sql(sqlx::AssertSqlSafe(statement));
    for tail in ["own", "wide", "shared", "noted"] {
        sql(format!("CREATE USER '{}'@'%' IDENTIFIED BY 'Outside-Passw0rd'", name(tail)))
            .execute(&mut root)
            .await
            .unwrap();
        sql(format!("CREATE DATABASE `{}`", name(tail))).execute(&mut root).await.unwrap();
        sql(format!("GRANT ALL ON `{}`.* TO '{}'@'%'", name(tail).replace('_', "\\_"), name(tail)))
            .execute(&mut root)
            .await
            .unwrap();
    }
    sql(format!("GRANT PROCESS ON *.* TO '{}'@'%'", name("wide"))).execute(&mut root).await.unwrap();
    sql(format!("GRANT SELECT ON `{}`.* TO '{}'@'%'", name("shared").replace('_', "\\_"), name("own")))
        .execute(&mut root)
        .await
        .unwrap();
    sql(format!("ALTER DATABASE `{}` COMMENT 'accounting, do not touch'", name("noted")))
        .execute(&mut root)
        .await
        .unwrap();

    let harness = Harness::new(provisio_mariadb::entry(), config.clone());
    let listed = provisio_conformance::list_all(&harness, 3).await;
    let find = |tail: &str| listed.iter().find(|r| r["identifier"] == name(tail)).cloned().expect("listed");
    // `own` is also granted SELECT on `shared`: it holds two databases.
    let own = find("own");
    assert!(own["refused"].as_str().unwrap().contains("holds 2 databases"), "{own}");
    assert!(find("wide")["refused"].as_str().unwrap().contains("global privileges"), "{}", find("wide"));
    assert!(find("shared")["refused"].as_str().unwrap().contains("other accounts"), "{}", find("shared"));
    assert!(find("noted")["refused"].as_str().unwrap().contains("comment of its own"), "{}", find("noted"));

    let owner = harness.with_owner(Some("prv-adopted-db"));
    owner.fails("adopt", json!({"database": name("wide")}), ErrorKind::Conflict).await;
    // Once `own` holds only its database, it is adopted, and the mark is in the comment.
    sql(format!("REVOKE SELECT ON `{}`.* FROM '{}'@'%'", name("shared").replace('_', "\\_"), name("own")))
        .execute(&mut root)
        .await
        .unwrap();
    let adopted = owner.ok("adopt", json!({"database": name("own")})).await;
    assert_eq!(adopted["username"], name("own"));
    let comment: String =
        sqlx::query_scalar("SELECT SCHEMA_COMMENT FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?")
            .bind(name("own"))
            .fetch_one(&mut root)
            .await
            .unwrap();
    assert_eq!(comment, "provisio owner: prv-adopted-db");
    harness
        .with_owner(Some("prv-someone-else"))
        .fails("adopt", json!({"database": name("own")}), ErrorKind::Conflict)
        .await;
    owner.ok("terminate", json!({"database": name("own")})).await;
    for tail in ["wide", "shared", "noted"] {
        sql(format!("DROP DATABASE `{}`", name(tail))).execute(&mut root).await.unwrap();
        sql(format!("DROP USER '{}'@'%'", name(tail))).execute(&mut root).await.unwrap();
    }
}
