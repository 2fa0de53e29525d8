//! `invoke::call` against a deliberately careless provider talking real HTTP
//! to a loopback server: secrets are redacted everywhere, failures are
//! classified, results are checked against the blueprint, optional functions
//! answer `unsupported`, and a panic becomes an `internal` envelope.

use std::time::Duration;

use provisio_sdk::blueprints::shared_hosting::*;
use provisio_sdk::{
    CallOptions, ConnectionTest, Context, Empty, ErrorKind, Provider, ProviderAbout, ProviderError, UserMessage, invoke,
};
use reqwest::Method;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "tok-7Hq/x+Zz9";

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CarelessConfig {
    endpoint: String,
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    token: String,
}

/// Leaks its token in every way a provider author might.
struct Careless {
    config: CarelessConfig,
}

impl Provider for Careless {
    type Config = CarelessConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "careless".into(),
            name: "Careless".into(),
            description: "Leaks secrets on purpose.".into(),
            logo_url: None,
        }
    }

    async fn new(config: CarelessConfig) -> Result<Self, ProviderError> {
        Ok(Careless { config })
    }

    async fn test_connection(&self, _cx: &Context) -> Result<ConnectionTest, ProviderError> {
        Ok(ConnectionTest { message: format!("connected with {}", self.config.token), details: Value::Null })
    }
}

impl SharedHosting for Careless {
    async fn create(&self, cx: &Context, params: CreateParams) -> Result<AccountInfo, ProviderError> {
        let token = &self.config.token;
        let url = format!(
            "{}/accounts?api_key={}&user={}",
            self.config.endpoint,
            token,
            params.username.as_ref().map(|u| u.as_str()).unwrap_or_default()
        );
        let request =
            cx.http().request(Method::POST, &url).bearer_auth(token).header("X-Custom", format!("key={token}")).json(
                &json!({"username": params.username, "password": params.password, "note": format!("token {token}")}),
            );
        let response = cx.http().send(request).await?;
        Err(ProviderError::provider(UserMessage::new(format!("Vendor answered: {}", response.text())))
            .with_debug("token", token.clone())
            .with_debug("raw", json!({"echo": response.text()})))
    }

    async fn get_info(&self, _cx: &Context, _params: AccountRef) -> Result<AccountInfo, ProviderError> {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Err(ProviderError::internal("unreachable"))
    }

    async fn suspend(&self, _cx: &Context, _params: SuspendParams) -> Result<AccountInfo, ProviderError> {
        panic!("suspend is broken, token {}", self.config.token);
    }

    async fn unsuspend(&self, _cx: &Context, _params: AccountRef) -> Result<AccountInfo, ProviderError> {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Err(ProviderError::internal("unreachable"))
    }

    async fn change_package(&self, _cx: &Context, params: ChangePackageParams) -> Result<AccountInfo, ProviderError> {
        // Out of contract: a domain that is not a domain.
        let mut info: Value = json!({"username": params.username, "domain": "example.com", "package_name": params.package_name,
            "email": "a@example.com", "state": "active", "suspend_reason": null, "server_hostname": "h", "ip": null,
            "created_at": "2026-01-01T00:00:00Z"});
        info["domain"] = json!("not a domain");
        serde_json::from_value(info).map_err(ProviderError::internal)
    }

    async fn get_login_url(&self, cx: &Context, _params: GetLoginUrlParams) -> Result<LoginUrl, ProviderError> {
        // The vendor answers a one-time link; the echo server answers our own request, so send the link out first.
        let link = "https://panel.example.com/login?session=one-time-7f3a9c";
        let url = format!("{}/sessions?next={link}", self.config.endpoint);
        cx.http().send(cx.http().request(Method::POST, &url)).await?;
        Ok(LoginUrl {
            login_url: provisio_sdk::formats::Url::parse(link).unwrap(),
            expires_at: chrono::Utc::now(),
            for_ip: None,
            post_fields: None,
        })
    }

    async fn terminate(&self, cx: &Context, _params: AccountRef) -> Result<Empty, ProviderError> {
        // Nothing listens on port 9 (discard) of loopback here: connection refused.
        cx.http().send(cx.http().request(Method::DELETE, "http://127.0.0.1:9/accounts/x")).await?;
        Ok(Empty {})
    }
}

/// A loopback HTTP server that answers every request with its own request text.
async fn echo_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                let mut received = 0;
                // Read until the headers and the announced body are in.
                loop {
                    let n = socket.read(&mut buffer[received..]).await.unwrap_or(0);
                    received += n;
                    let text = String::from_utf8_lossy(&buffer[..received]).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if received >= end + 4 + length || n == 0 {
                            break;
                        }
                    } else if n == 0 {
                        break;
                    }
                }
                let body = json!({"echo": String::from_utf8_lossy(&buffer[..received])}).to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nset-cookie: session={SECRET}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{address}")
}

fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::shared_hosting::entry::<Careless>()
}

async fn call(function: &str, params: Value, timeout: Duration) -> (provisio_sdk::CallReport, String) {
    let config = json!({"endpoint": echo_server().await, "token": SECRET});
    let options = CallOptions { timeout, ..CallOptions::default() };
    let report = invoke::call(&entry(), &config, function, &params, &options).await;
    let printed = serde_json::to_string(&report).unwrap();
    assert!(!printed.contains(SECRET), "{function} leaked the secret:\n{printed}");
    assert!(!printed.contains("7Hq"), "{function} leaked part of the secret:\n{printed}");
    (report, printed)
}

fn create_params() -> Value {
    json!({"domain": "example.com", "username": "alice", "package_name": "basic", "email": "a@example.com", "password": "Hunter2-Hunter2"})
}

#[tokio::test]
async fn secrets_are_redacted_from_the_envelope_and_the_http_log() {
    let (report, printed) = call("create", create_params(), Duration::from_secs(10)).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::ProviderError));
    assert!(!printed.contains("Hunter2-Hunter2"), "a secret param leaked:\n{printed}");
    let exchange = &report.http_log[0];
    assert_eq!(exchange.method, "POST");
    assert_eq!(exchange.status, Some(200));
    assert!(exchange.url.contains("api_key=[REDACTED]") && exchange.url.contains("user=alice"), "{}", exchange.url);
    let header = |name: &str| exchange.request_headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(header("authorization").as_deref(), Some("[REDACTED]"));
    assert_eq!(header("x-custom").as_deref(), Some("key=[REDACTED]"));
    let body: Value = serde_json::from_str(exchange.request_body.as_ref().unwrap()).unwrap();
    assert_eq!(body["password"], "[REDACTED]");
    assert_eq!(body["username"], "alice");
    assert!(exchange.response_headers.iter().any(|(n, v)| n == "set-cookie" && v == "[REDACTED]"));
    assert!(report.envelope.message.as_str().contains("[REDACTED]"));
    assert_eq!(report.envelope.debug.as_ref().unwrap().as_map()["token"], "[REDACTED]");
}

#[tokio::test]
async fn a_change_past_the_deadline_is_outcome_unknown_and_a_query_transient() {
    let (report, _) = call("unsuspend", json!({"username": "alice"}), Duration::from_millis(100)).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::OutcomeUnknown));
    let (report, _) = call("get_info", json!({"username": "alice"}), Duration::from_millis(100)).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::Transient));
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let (report, _) = call("terminate", json!({"username": "alice"}), Duration::from_secs(10)).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::Transient), "{report:?}");
    assert!(report.http_log[0].error.is_some());
}

#[tokio::test]
async fn a_result_outside_the_schema_is_internal() {
    let (report, _) =
        call("change_package", json!({"username": "alice", "package_name": "gold"}), Duration::from_secs(10)).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::Internal), "{report:?}");
    assert_eq!(report.envelope.message.as_str(), "Internal provider error");
}

#[tokio::test]
async fn a_panic_is_internal_and_redacted() {
    let (report, printed) = call("suspend", json!({"username": "alice"}), Duration::from_secs(10)).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::Internal));
    assert!(printed.contains("suspend is broken"), "{printed}");
}

#[tokio::test]
async fn a_missing_optional_function_is_unsupported() {
    let (report, _) = call("get_usage", json!({"username": "alice"}), Duration::from_secs(10)).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::Unsupported));
}

#[tokio::test]
async fn invalid_configuration_names_the_field_and_never_quotes_a_secret() {
    let options = CallOptions::default();
    let config = json!({"endpoint": 42, "token": SECRET});
    let report = invoke::call(&entry(), &config, "create", &create_params(), &options).await;
    assert_eq!(report.envelope.error_kind, Some(ErrorKind::InvalidInput));
    let errors = report.envelope.field_errors();
    assert_eq!(errors[0].path, "/endpoint");
    assert_eq!(errors[0].location, provisio_sdk::FieldLocation::Config);
    let config = json!({"endpoint": "http://x", "token": 12345678});
    let report = invoke::call(&entry(), &config, "create", &create_params(), &options).await;
    assert!(!serde_json::to_string(&report).unwrap().contains("12345678"));
}

#[tokio::test]
async fn test_connection_is_redacted() {
    let config = json!({"endpoint": "http://127.0.0.1:9", "token": SECRET});
    let report = invoke::test_connection(&entry(), &config, &CallOptions::default()).await;
    assert!(report.envelope.is_ok());
    assert!(!serde_json::to_string(&report).unwrap().contains(SECRET));
}

#[tokio::test]
async fn secret_result_fields_are_shown_to_the_caller_but_not_logged() {
    let (report, _) = call("get_login_url", json!({"username": "alice"}), Duration::from_secs(10)).await;
    assert!(report.envelope.is_ok(), "{report:?}");
    assert!(report.envelope.data.as_ref().unwrap()["login_url"].as_str().unwrap().contains("one-time-7f3a9c"));
    let log = serde_json::to_string(&report.http_log).unwrap();
    assert!(!log.contains("one-time-7f3a9c"), "{log}");
}

/// A loopback server that answers every request with `response` and keeps what it received.
async fn fixed_server(response: String) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (seen, response) = (kept.clone(), response.replace("{self}", &format!("http://{address}")));
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                let mut received = 0;
                while !String::from_utf8_lossy(&buffer[..received]).contains("\r\n\r\n") {
                    match socket.read(&mut buffer[received..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => received += n,
                    }
                }
                seen.lock().unwrap().push(String::from_utf8_lossy(&buffer[..received]).into_owned());
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (format!("http://{address}"), seen)
}

fn redirect_to(location: &str) -> String {
    format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
}

#[tokio::test]
async fn a_redirect_never_carries_a_credential_to_another_origin() {
    let (elsewhere, elsewhere_seen) = fixed_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".into(),
    )
    .await;
    let (vendor, vendor_seen) = fixed_server(redirect_to(&format!("{elsewhere}/steal"))).await;
    let cx = Context::new(
        &CallOptions::default(),
        std::sync::Arc::new(provisio_sdk::redact::Redactor::new([SECRET])),
        tracing::Span::none(),
    );
    let http = cx.http();
    // Plain send: the 307 is the answer; nothing goes to the other server.
    let answer = http.send(http.request(Method::GET, &format!("{vendor}/zones")).header("X-API-Key", SECRET)).await;
    assert_eq!(answer.unwrap().status.as_u16(), 307);
    // Even when a provider opts in to redirects, another origin is not followed.
    let answer = http
        .send_following_redirects(http.request(Method::GET, &format!("{vendor}/zones")).header("X-API-Key", SECRET), 5)
        .await;
    assert_eq!(answer.unwrap().status.as_u16(), 307);
    assert_eq!(vendor_seen.lock().unwrap().len(), 2);
    assert!(elsewhere_seen.lock().unwrap().is_empty(), "the other origin was called: {:?}", elsewhere_seen);

    // A same-origin redirect is followed when asked for.
    let (target, target_seen) = fixed_server(redirect_to("/final")).await;
    let answer =
        http.send_following_redirects(http.request(Method::GET, &format!("{target}/start")), 1).await.unwrap_err();
    assert_eq!(answer.kind(), ErrorKind::ProviderError, "too many redirects");
    let seen = target_seen.lock().unwrap();
    assert!(seen[0].starts_with("GET /start") && seen[1].starts_with("GET /final"), "{seen:?}");
    assert!(!serde_json::to_string(&cx.http_log()).unwrap().contains(SECRET));
}
