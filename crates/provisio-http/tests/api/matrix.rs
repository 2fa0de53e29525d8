//! The authorization matrix: every route of the OpenAPI document × every
//! kind of caller gets exactly the access the table says. The table is the
//! documentation of who may do what.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// What a caller gets from a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Let in (whatever the handler then answers, never 401, 403 or a
    /// 404 for the caller's own service).
    Yes,
    /// 401: no valid credential for this route.
    Unauth,
    /// 403: known, but not allowed.
    Forbid,
    /// 404: another client's service, said as for one that does not exist.
    Hidden,
}
use Access::*;

/// Callers, in the table's column order.
const CALLERS: [&str; 7] =
    ["nobody", "client A", "client B", "staff read", "staff operate", "staff admin", "event source"];

//                                   nobody  client A client B read    operate admin   source
const PUBLIC: [Access; 7] = [Yes, Yes, Yes, Yes, Yes, Yes, Yes];
const READ: [Access; 7] = [Unauth, Forbid, Forbid, Yes, Yes, Yes, Unauth];
const OPERATE: [Access; 7] = [Unauth, Forbid, Forbid, Forbid, Yes, Yes, Unauth];
const ADMIN: [Access; 7] = [Unauth, Forbid, Forbid, Forbid, Forbid, Yes, Unauth];
/// Client A's own service; B is told it does not exist.
const MINE: [Access; 7] = [Unauth, Yes, Hidden, Forbid, Forbid, Forbid, Unauth];
/// Billing events: a staff token that may operate, or a source's signature.
const EVENTS: [Access; 7] = [Unauth, Forbid, Forbid, Forbid, Yes, Yes, Yes];
/// Routes whose only credential is in the request itself (a Stripe
/// signature, a hand-off code): none of these callers has one.
const PROOF_ONLY: [Access; 7] = [Unauth; 7];

/// One row: method, path as the OpenAPI document names it, the path and
/// body sent, and the access of each caller.
struct Row {
    method: Method,
    template: &'static str,
    path: String,
    body: Option<Value>,
    access: [Access; 7],
}

fn row(method: Method, template: &'static str, path: String, body: Option<Value>, access: [Access; 7]) -> Row {
    Row { method, template, path, body, access }
}

/// The table. `a`: client A's service; `c`: a client whose sessions may be
/// ended; `t`: a token that may be revoked; `s`: an event source that may
/// be deleted. Ids that exist nowhere (999999) make changes harmless.
fn table(a: i64, c: i64, t: i64, s: i64) -> Vec<Row> {
    use Method as M;
    let none = 999_999;
    vec![
        row(M::GET, "/healthz", "/healthz".into(), None, PUBLIC),
        row(M::GET, "/openapi.json", "/openapi.json".into(), None, PUBLIC),
        row(M::GET, "/metrics", "/metrics".into(), None, READ),
        // Catalog
        row(M::GET, "/api/v1/blueprints", "/api/v1/blueprints".into(), None, READ),
        row(M::GET, "/api/v1/blueprints/{id}", "/api/v1/blueprints/shared-hosting".into(), None, READ),
        row(M::GET, "/api/v1/providers", "/api/v1/providers".into(), None, READ),
        row(
            M::GET,
            "/api/v1/providers/{blueprint}/{provider}",
            "/api/v1/providers/shared-hosting/demo".into(),
            None,
            READ,
        ),
        row(M::GET, "/api/v1/configurations", "/api/v1/configurations".into(), None, READ),
        row(M::POST, "/api/v1/configurations", "/api/v1/configurations".into(), Some(json!({})), ADMIN),
        row(M::GET, "/api/v1/configurations/{id}", "/api/v1/configurations/1".into(), None, READ),
        row(M::PATCH, "/api/v1/configurations/{id}", format!("/api/v1/configurations/{none}"), Some(json!({})), ADMIN),
        row(M::DELETE, "/api/v1/configurations/{id}", format!("/api/v1/configurations/{none}"), None, ADMIN),
        row(M::POST, "/api/v1/configurations/{id}/test", format!("/api/v1/configurations/{none}/test"), None, ADMIN),
        row(
            M::POST,
            "/api/v1/configurations/{id}/import",
            format!("/api/v1/configurations/{none}/import"),
            Some(json!({"product": "none", "client_id": 1, "dry_run": true})),
            ADMIN,
        ),
        row(M::GET, "/api/v1/products", "/api/v1/products".into(), None, READ),
        row(M::POST, "/api/v1/products", "/api/v1/products".into(), Some(json!({})), ADMIN),
        row(M::GET, "/api/v1/products/{key}", "/api/v1/products/demo-hosting".into(), None, READ),
        row(M::PATCH, "/api/v1/products/{key}", "/api/v1/products/no-such-product".into(), Some(json!({})), ADMIN),
        // Clients and their sessions
        row(M::GET, "/api/v1/clients", "/api/v1/clients".into(), None, READ),
        row(M::POST, "/api/v1/clients", "/api/v1/clients".into(), Some(json!({})), OPERATE),
        row(M::GET, "/api/v1/clients/{id}", format!("/api/v1/clients/{c}"), None, READ),
        row(
            M::POST,
            "/api/v1/clients/{id}/sessions",
            format!("/api/v1/clients/{c}/sessions"),
            Some(json!({})),
            OPERATE,
        ),
        row(M::DELETE, "/api/v1/clients/{id}/sessions", format!("/api/v1/clients/{c}/sessions"), None, OPERATE),
        // Services, jobs, actions, events
        row(M::GET, "/api/v1/services", "/api/v1/services".into(), None, READ),
        row(M::GET, "/api/v1/services/{id}", format!("/api/v1/services/{a}"), None, READ),
        row(M::GET, "/api/v1/services/{id}/events", format!("/api/v1/services/{a}/events"), None, READ),
        row(M::GET, "/api/v1/services/{id}/history", format!("/api/v1/services/{a}/history"), None, READ),
        row(
            M::POST,
            "/api/v1/services/{id}/actions/{function}",
            format!("/api/v1/services/{a}/actions/get_info"),
            Some(json!({})),
            OPERATE,
        ),
        row(M::POST, "/api/v1/services/{id}/credentials", format!("/api/v1/services/{a}/credentials"), None, OPERATE),
        row(M::GET, "/api/v1/services/{id}/summary", format!("/api/v1/services/{a}/summary"), None, READ),
        row(M::GET, "/api/v1/reports/{name}", "/api/v1/reports/jobs".into(), None, READ),
        row(M::GET, "/api/v1/jobs", "/api/v1/jobs".into(), None, READ),
        row(M::GET, "/api/v1/drift", "/api/v1/drift".into(), None, READ),
        row(M::GET, "/api/v1/jobs/{id}", "/api/v1/jobs/1".into(), None, READ),
        row(M::POST, "/api/v1/jobs/{id}/retry", format!("/api/v1/jobs/{none}/retry"), None, OPERATE),
        row(M::POST, "/api/v1/events", "/api/v1/events".into(), Some(json!({})), EVENTS),
        row(
            M::POST,
            "/api/v1/sources/{name}/stripe",
            "/api/v1/sources/stripe-live/stripe".into(),
            Some(json!({})),
            PROOF_ONLY,
        ),
        row(M::GET, "/api/v1/audit", "/api/v1/audit".into(), None, READ),
        // Access
        row(M::GET, "/api/v1/tokens", "/api/v1/tokens".into(), None, ADMIN),
        row(M::POST, "/api/v1/tokens", "/api/v1/tokens".into(), Some(json!({})), ADMIN),
        row(M::DELETE, "/api/v1/tokens/{id}", format!("/api/v1/tokens/{t}"), None, ADMIN),
        row(M::GET, "/api/v1/sources", "/api/v1/sources".into(), None, ADMIN),
        row(M::POST, "/api/v1/sources", "/api/v1/sources".into(), Some(json!({})), ADMIN),
        row(M::GET, "/api/v1/sources/{id}", format!("/api/v1/sources/{s}"), None, ADMIN),
        row(M::PATCH, "/api/v1/sources/{id}", format!("/api/v1/sources/{s}"), Some(json!({})), ADMIN),
        row(M::DELETE, "/api/v1/sources/{id}", format!("/api/v1/sources/{none}"), None, ADMIN),
        row(M::GET, "/api/v1/users", "/api/v1/users".into(), None, ADMIN),
        row(M::POST, "/api/v1/users", "/api/v1/users".into(), Some(json!({})), ADMIN),
        row(M::PATCH, "/api/v1/users/{id}", format!("/api/v1/users/{none}"), Some(json!({})), ADMIN),
        row(M::POST, "/api/v1/login", "/api/v1/login".into(), Some(json!({})), PUBLIC),
        row(M::POST, "/api/v1/logout", "/api/v1/logout".into(), None, READ),
        row(M::GET, "/api/v1/webhooks", "/api/v1/webhooks".into(), None, ADMIN),
        row(M::POST, "/api/v1/webhooks", "/api/v1/webhooks".into(), Some(json!({})), ADMIN),
        row(M::GET, "/api/v1/webhooks/{id}", format!("/api/v1/webhooks/{none}"), None, ADMIN),
        row(M::PATCH, "/api/v1/webhooks/{id}", format!("/api/v1/webhooks/{none}"), Some(json!({})), ADMIN),
        row(M::DELETE, "/api/v1/webhooks/{id}", format!("/api/v1/webhooks/{none}"), None, ADMIN),
        row(M::GET, "/api/v1/webhooks/{id}/deliveries", format!("/api/v1/webhooks/{none}/deliveries"), None, ADMIN),
        // The client API
        row(M::GET, "/client/handoff", "/client/handoff".into(), None, PROOF_ONLY),
        row(
            M::GET,
            "/client/v1/services",
            "/client/v1/services".into(),
            None,
            [Unauth, Yes, Yes, Forbid, Forbid, Forbid, Unauth],
        ),
        row(M::GET, "/client/v1/services/{id}", format!("/client/v1/services/{a}"), None, MINE),
        row(M::GET, "/client/v1/services/{id}/info", format!("/client/v1/services/{a}/info"), None, MINE),
        row(M::GET, "/client/v1/services/{id}/usage", format!("/client/v1/services/{a}/usage"), None, MINE),
        row(M::GET, "/client/v1/services/{id}/login", format!("/client/v1/services/{a}/login"), None, MINE),
        row(
            M::POST,
            "/client/v1/services/{id}/password",
            format!("/client/v1/services/{a}/password"),
            Some(json!({})),
            MINE,
        ),
        row(
            M::POST,
            "/client/v1/services/{id}/credentials",
            format!("/client/v1/services/{a}/credentials"),
            None,
            MINE,
        ),
        row(
            M::POST,
            "/client/v1/services/{id}/actions/{function}",
            format!("/client/v1/services/{a}/actions/get_info"),
            Some(json!({})),
            MINE,
        ),
    ]
}

#[tokio::test]
async fn every_route_gives_each_caller_exactly_its_access() {
    let app = spawn_app().await;
    let (a, _) = app.hosting_for("client-a", 1).await;
    let (_, client_b) = app.hosting_for("client-b", 2).await;
    let (_, client_c) = app.hosting_for("client-c", 3).await;
    let client_a = app.service(a).await["service"]["client_id"].as_i64().unwrap();
    let session_a = app.session(client_a).await["token"].as_str().unwrap().to_owned();
    let session_b = app.session(client_b).await["token"].as_str().unwrap().to_owned();
    let read = app.token("reader", "read").await;
    let operate = app.token("operator", "operate").await;
    let admin = app.token("administrator", "admin").await;
    let (_, spare) = app.post("/api/v1/tokens", json!({"name": "spare", "scope": "read"})).await;
    let (_, source) = app.post("/api/v1/sources", json!({"name": "billing", "kind": "provisio"})).await;
    let source_secret = source["secret"].as_str().unwrap().to_owned();
    let rows = table(a, client_c, spare["id"].as_i64().unwrap(), source["id"].as_i64().unwrap());

    // The table covers every operation of the document.
    let document = app.get("/openapi.json").await;
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        let template = match path.split_once("/actions/") {
            Some((head, _)) => format!("{head}/actions/{{function}}"),
            None => path.clone(),
        };
        for method in item.as_object().unwrap().keys().filter(|k| *k != "parameters") {
            documented.insert(format!("{} {template}", method.to_uppercase()));
        }
    }
    let tabled: BTreeSet<String> = rows.iter().map(|r| format!("{} {}", r.method, r.template)).collect();
    assert_eq!(documented, tabled, "the matrix must list exactly the documented routes");

    let mut wrong = Vec::new();
    for row in &rows {
        for (column, expected) in row.access.iter().enumerate() {
            let body = row.body.as_ref().map(|b| serde_json::to_vec(b).unwrap());
            let mut request = no_redirects().request(row.method.clone(), format!("{}{}", app.address, row.path));
            let bearer = match column {
                1 => Some(&session_a),
                2 => Some(&session_b),
                3 => Some(&read),
                4 => Some(&operate),
                5 => Some(&admin),
                _ => None,
            };
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            if column == 6 {
                let signed = body.clone().unwrap_or_default();
                request = request
                    .header("Provisio-Source", "billing")
                    .header("Provisio-Signature", signature(&source_secret, unix_now(), &signed));
            }
            if let Some(body) = body {
                request = request.header("content-type", "application/json").body(body);
            }
            let status = request.send().await.unwrap().status();
            let own_service = row.path.contains(&format!("/services/{a}"));
            let ok = match expected {
                Yes => {
                    status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::FORBIDDEN
                        && !(own_service && status == StatusCode::NOT_FOUND)
                }
                Unauth => status == StatusCode::UNAUTHORIZED,
                Forbid => status == StatusCode::FORBIDDEN,
                Hidden => status == StatusCode::NOT_FOUND,
            };
            if !ok {
                wrong.push(format!(
                    "{} {} as {}: expected {expected:?}, got {status}",
                    row.method, row.path, CALLERS[column]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
