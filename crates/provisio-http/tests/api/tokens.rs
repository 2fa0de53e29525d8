//! Staff tokens: named, revocable within a second, stored as keyed digests,
//! named in the audit log; the environment token replaces its predecessor;
//! another secrets key is refused.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn status_with(app: &TestApp, token: &str) -> StatusCode {
    app.client.get(format!("{}/api/v1/services", app.address)).bearer_auth(token).send().await.unwrap().status()
}

#[tokio::test]
async fn a_named_token_is_audited_by_name_and_stops_within_a_second_of_revocation() {
    let app = spawn_app().await;
    let (status, created) = app.post("/api/v1/tokens", json!({"name": "billing", "scope": "admin"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 64);
    assert!(created.get("digest").is_none());

    // Its actions are audited under its name, on every request (not only the first).
    for n in 0..3 {
        let response = app
            .client
            .post(format!("{}/api/v1/clients", app.address))
            .bearer_auth(&secret)
            .json(&json!({"external_id": format!("c{n}"), "name": "Ann", "email": "ann@example.com"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let audit = app.get("/api/v1/audit").await;
    // The three newest entries are its three creates.
    let actors: Vec<&str> = audit.as_array().unwrap()[..3].iter().map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(actors, ["token:billing"; 3], "{audit:#}");
    assert!(audit.to_string().contains("token:test"), "the creator is named too");

    // Listed without secrets or digests.
    let listed = app.get("/api/v1/tokens").await;
    assert!(!listed.to_string().contains(&secret));
    assert!(listed.as_array().unwrap().iter().all(|t| t.get("digest").is_none() && t.get("secret").is_none()));

    // Revoked: refused within a second (the server caches a token for at most that long).
    assert_eq!(status_with(&app, &secret).await, StatusCode::OK);
    let (status, _) = app.request(Method::DELETE, &format!("/api/v1/tokens/{}", created["id"]), None).await;
    assert_eq!(status, StatusCode::OK);
    let revoked = Instant::now();
    while status_with(&app, &secret).await != StatusCode::UNAUTHORIZED {
        assert!(revoked.elapsed() < Duration::from_millis(1100), "the revoked token still works");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let audit = app.get("/api/v1/audit?limit=1").await;
    assert_eq!(audit[0]["action"], "token.revoke");
    assert_eq!(audit[0]["actor"], "token:test");
    // Revoking it again, or a token that never was: 404.
    let (status, _) = app.request(Method::DELETE, &format!("/api/v1/tokens/{}", created["id"]), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_names_are_checked_and_tokens_need_a_token() {
    let app = spawn_app().await;
    for (name, expected) in [
        (json!(""), StatusCode::UNPROCESSABLE_ENTITY),
        (json!("../etc"), StatusCode::UNPROCESSABLE_ENTITY),
        (json!("x".repeat(65)), StatusCode::UNPROCESSABLE_ENTITY),
        (json!("Billing Team"), StatusCode::UNPROCESSABLE_ENTITY),
        (json!(42), StatusCode::UNPROCESSABLE_ENTITY),
        (json!("environment"), StatusCode::UNPROCESSABLE_ENTITY),
        (json!("test"), StatusCode::CONFLICT),
    ] {
        let (status, problem) = app.post("/api/v1/tokens", json!({"name": name, "scope": "read"})).await;
        assert_eq!(status, expected, "{name}: {problem}");
    }
    let (status, _) = app.post("/api/v1/tokens", json!({"name": "ops", "admin": true})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for (method, path) in
        [(Method::GET, "/api/v1/tokens"), (Method::POST, "/api/v1/tokens"), (Method::DELETE, "/api/v1/tokens/1")]
    {
        let response = app.client.request(method, format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(status_with(&app, "prv_guessed-but-wrong-0000000000").await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_environment_token_replaces_the_previous_one_and_must_be_long() {
    let app = spawn_app().await;
    let (first, second) = ("first-environment-token", "second-environment-token");
    assert!(app.engine.access().install_token("environment", first).await.unwrap());
    assert!(!app.engine.access().install_token("environment", first).await.unwrap(), "a restart changes nothing");
    assert_eq!(status_with(&app, first).await, StatusCode::OK);
    app.engine.access().install_token("environment", second).await.unwrap();
    let replaced = Instant::now();
    while status_with(&app, first).await != StatusCode::UNAUTHORIZED {
        assert!(replaced.elapsed() < Duration::from_millis(1100), "the old environment token still works");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status_with(&app, second).await, StatusCode::OK);
    assert!(app.engine.access().install_token("environment", "short").await.is_err());
}

#[tokio::test]
async fn tokens_are_stored_as_keyed_digests() {
    let app = spawn_app().await;
    let stored: Vec<String> = app
        .engine
        .store()
        .read(|conn| Box::pin(async move { provisio_store::tokens::digests(conn).await }))
        .await
        .unwrap();
    use sha2::Digest;
    let plain: String = sha2::Sha256::digest(TOKEN.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert!(!stored.is_empty());
    assert!(!stored.contains(&plain), "an unkeyed digest would let a copied database test guesses");
    assert!(stored.iter().all(|d| !d.contains(TOKEN)));
}

#[tokio::test]
async fn another_secrets_key_is_refused() {
    let app = spawn_app().await;
    let other = provisio_engine::Engine::new(
        app.engine.store().clone(),
        provisio_providers::registry(),
        provisio_engine::Vault::new(&[7; 32]),
        provisio_engine::Settings::default(),
    );
    let refused = other.access().check_secrets_key().await.unwrap_err().to_string();
    assert!(refused.contains("another secrets key"), "{refused}");
    app.engine.access().check_secrets_key().await.unwrap();
}

#[tokio::test]
async fn staff_users_sign_in_with_their_scope_and_are_locked_out_after_five_failures() {
    let app = spawn_app().await;
    let (status, made) = app
        .post("/api/v1/users", json!({"username": "ann", "scope": "operate", "password": "long-enough-pass-1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert!(made.get("password_hash").is_none() && made.get("generated_password").is_none());
    let (_, generated) = app.post("/api/v1/users", json!({"username": "bob", "scope": "read"})).await;
    assert_eq!(generated["generated_password"].as_str().unwrap().len(), 20, "{generated}");
    // Too short a password is refused by field.
    let (status, problem) =
        app.post("/api/v1/users", json!({"username": "cy", "scope": "read", "password": "short"})).await;
    assert_eq!((status, problem["errors"][0]["path"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("/password")));

    let app = &app;
    let login = |username: &str, password: &str| {
        let body = json!({"username": username, "password": password});
        async move { app.call(Method::POST, "/api/v1/login", None, Some(body)).await }
    };
    let (status, session) = login("ann", "long-enough-pass-1").await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let token = session["token"].as_str().unwrap().to_owned();
    assert_eq!(session["scope"], "operate");
    // The session has ann's scope: operate, not admin; the audit names her.
    assert_eq!(
        app.call(Method::POST, "/api/v1/clients", Some(&token), Some(json!({"name": "X", "email": "x@example.com"})))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(app.call(Method::GET, "/api/v1/tokens", Some(&token), None).await.0, StatusCode::FORBIDDEN);
    let audit = app.get("/api/v1/audit").await;
    assert_eq!(audit[0]["actor"], "user:ann", "{audit:#}");
    // Logging out ends it (within a second everywhere).
    assert_eq!(app.call(Method::POST, "/api/v1/logout", Some(&token), None).await.0, StatusCode::NO_CONTENT);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(app.call(Method::GET, "/api/v1/services", Some(&token), None).await.0, StatusCode::UNAUTHORIZED);

    // A wrong password and an unknown user get the same answer.
    let (status, wrong) = login("ann", "not-her-password").await;
    let (_, unknown) = login("nobody", "not-her-password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong["detail"], unknown["detail"]);
    // Five failures in a row lock the account, even against the right password.
    for _ in 0..4 {
        assert_eq!(login("ann", "guess-guess-guess").await.0, StatusCode::UNAUTHORIZED);
    }
    let (status, locked) = login("ann", "long-enough-pass-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(locked["detail"].as_str().unwrap().contains("locked"), "{locked}");
    // Other users are not locked.
    let (status, bob) = login("bob", generated["generated_password"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // Switching bob off ends his session at once (within a second) and refuses his sign-in.
    let bob_token = bob["token"].as_str().unwrap();
    let (status, _) = app
        .request(Method::PATCH, &format!("/api/v1/users/{}", generated["id"]), Some(json!({"disabled": true})))
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(app.call(Method::GET, "/api/v1/services", Some(bob_token), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(login("bob", generated["generated_password"].as_str().unwrap()).await.0, StatusCode::UNAUTHORIZED);
    // No password in any answer or in the database.
    let users = app.get("/api/v1/users").await;
    assert!(!users.to_string().contains("argon2") && !users.to_string().contains("long-enough-pass-1"));
    for bytes in app.stored_bytes() {
        assert!(!bytes.windows(18).any(|w| w == b"long-enough-pass-1"));
    }
}

#[tokio::test]
async fn concurrent_guesses_count_before_they_are_checked() {
    let app = spawn_app().await;
    let (status, _) =
        app.post("/api/v1/users", json!({"username": "ann", "scope": "read", "password": "long-enough-pass-1"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let guesses: Vec<_> = (0..12)
        .map(|n| {
            let (client, url) = (app.client.clone(), format!("{}/api/v1/login", app.address));
            tokio::spawn(async move {
                let body = json!({"username": "ann", "password": format!("guess-number-{n}")});
                client.post(url).json(&body).send().await.unwrap().status()
            })
        })
        .collect();
    for guess in guesses {
        // Refused, turned away while the hashing slots are full, or (past
        // ten) by the per-address limit.
        let status = guess.await.unwrap();
        let expected = [StatusCode::UNAUTHORIZED, StatusCode::SERVICE_UNAVAILABLE, StatusCode::TOO_MANY_REQUESTS];
        assert!(expected.contains(&status), "{status}");
    }
    // Twelve guesses at once did not slip past the lock: it holds against
    // the right password, sent from another address.
    let body = json!({"username": "ann", "password": "long-enough-pass-1"});
    let status = from_address("127.0.0.2").post(format!("{}/api/v1/login", app.address)).json(&body).send().await;
    assert_eq!(status.unwrap().status(), StatusCode::UNAUTHORIZED);
    let audit = app.get("/api/v1/audit").await;
    let failures = audit.as_array().unwrap().iter().filter(|e| e["action"] == "staff_user.login_failed").count();
    assert!(failures <= 5, "{failures} passwords were checked while the account should have been locked");
}

/// A client whose requests come from `address` (any of 127.0.0.0/8 is this machine).
fn from_address(address: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(address.parse::<std::net::IpAddr>().unwrap()).build().unwrap()
}

#[tokio::test]
async fn one_address_spraying_passwords_across_accounts_is_slowed_before_any_hash() {
    let app = spawn_app().await;
    for n in 0..3 {
        let body = json!({"username": format!("user{n}"), "scope": "read", "password": "long-enough-pass-1"});
        assert_eq!(app.post("/api/v1/users", body).await.0, StatusCode::CREATED);
    }
    let url = format!("{}/api/v1/login", app.address);
    let sprayer = from_address("127.0.0.3");
    // One wrong guess per account never locks an account, but ten attempts
    // from one address use its allowance.
    for n in 0..10 {
        let body = json!({"username": format!("user{}", n % 3), "password": format!("spring-2026-{n}")});
        assert_eq!(sprayer.post(&url).json(&body).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let right = json!({"username": "user0", "password": "long-enough-pass-1"});
    let refused = sprayer.post(&url).json(&right).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    let problem: Value = refused.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("too many sign-in attempts"), "{problem}");
    // A malformed body counts too (the limit comes before parsing).
    let garbage = sprayer.post(&url).body("{").header("content-type", "application/json").send().await.unwrap();
    assert_eq!(garbage.status(), StatusCode::TOO_MANY_REQUESTS);
    // The refused attempts reached no account: ten failures audited, none locked.
    let audit = app.get("/api/v1/audit").await;
    let failures = audit.as_array().unwrap().iter().filter(|e| e["action"] == "staff_user.login_failed").count();
    assert_eq!(failures, 10);
    // Another address signs in with the same account at once.
    let status = from_address("127.0.0.4").post(&url).json(&right).send().await.unwrap().status();
    assert_eq!(status, StatusCode::OK);
}
