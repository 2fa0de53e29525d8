//! `BLUEPRINT/http`: the generic HTTP provider, one for every blueprint.
//!
//! Most systems a business sells through (a drop shipper, a licence vendor,
//! an in-house tool) have a small REST API and no provider. This one is
//! configured, not written: per function of the blueprint, a request
//! template (method, path, query, headers, JSON body, rendered by minijinja)
//! and a response mapping (a JSON pointer per result field), with status
//! rules for error kinds. The configuration is checked when it is saved (see
//! [`check`]): every template renders with the function's params schema and
//! the mapping yields every field its result schema requires. Calls go only
//! to the configured origin and base path.
//!
//! What a template sees: `params` (the function's params, validated),
//! `secrets` (`api_key`, `password`, `signing_secret`: those configured),
//! `idempotency_key` (the call's; the same on every retry of one job) and
//! `function`. A body is JSON whose strings are templates; a string that is
//! one expression alone (`"{{ params.quantity }}"`) keeps its type (a
//! number stays a number, an object an object), and one whose value is
//! undefined (an optional param left out) removes its key.

mod check;
mod render;

use std::collections::BTreeMap;
use std::sync::Arc;

use provisio_sdk::http::HttpResponse;
use provisio_sdk::{
    BlueprintDescriptor, ConnectionTest, Context, ErrorKind, ProviderAbout, ProviderEntry, ProviderError,
    ProviderInstance, SchemaDoc, UserMessage,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use check::check;

/// How each call proves who is calling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// Nothing beyond what the templates add.
    #[default]
    None,
    /// `Authorization: Bearer <api_key>`.
    Bearer,
    /// `Authorization: Basic` with `username` and `password`.
    Basic,
    /// A signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of
    /// "<t>.<METHOD>.<path and query>.<body>" keyed with signing_secret>`.
    Hmac,
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// Reads.
    Get,
    /// Creates or acts.
    Post,
    /// Replaces.
    Put,
    /// Changes part.
    Patch,
    /// Removes.
    Delete,
}

impl Method {
    fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

/// One request, as templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestTemplate {
    /// The method.
    pub method: Method,
    /// The path under `base_url`, starting with `/` (`/orders/{{ params.order_id }}`);
    /// each value placed in it is percent-encoded as one path segment.
    #[schemars(length(min = 1, max = 2000), regex(pattern = r"^/"))]
    pub path: String,
    /// Query parameters: name to template (encoded for you).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Headers: name to template (`Idempotency-Key: {{ idempotency_key }}`);
    /// one that renders empty is left out.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The JSON body, whose strings are templates; none for no body.
    #[serde(default)]
    pub body: Option<Value>,
}

/// Where a result field comes from, in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingRule {
    /// A JSON pointer into the answer (`/order/id`).
    #[serde(default)]
    pub pointer: Option<String>,
    /// Instead of a pointer, an expression over `params` and `response`
    /// (`params.reference`).
    #[serde(default)]
    pub expression: Option<String>,
    /// Translations of the value found (`{"in_transit": "shipped"}`); a
    /// value not listed is kept as it is.
    #[serde(default)]
    pub values: BTreeMap<String, Value>,
    /// The value when nothing is found (absent or null).
    #[serde(default)]
    pub default: Option<Value>,
}

/// Where a result field comes from: a JSON pointer into the answer, or a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Mapping {
    /// A JSON pointer into the answer (`/id`; empty for the whole answer).
    Pointer(String),
    /// A pointer or expression with translations and a default.
    Rule(MappingRule),
}

/// One function of the blueprint, as a request and a mapping of its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionTemplate {
    /// The request.
    pub request: RequestTemplate,
    /// Result field to where it comes from in the answer.
    #[serde(default)]
    pub result: BTreeMap<String, Mapping>,
    /// Status code (`"409"`) to the error kind it means, over the defaults
    /// (404 not_found, 409 conflict, 400 and 422 invalid_input, 401 and 403
    /// provider_error, 408 and 429 transient, 5xx transient after a read
    /// and outcome_unknown after a change).
    #[serde(default)]
    pub statuses: BTreeMap<String, ErrorKind>,
}

/// The configuration of a `BLUEPRINT/http` provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where every call goes: scheme, host, port and a base path
    /// (`https://api.shop.example/v1`). HTTPS, or plain HTTP to a loopback
    /// address only.
    #[schemars(length(min = 1, max = 2000), extend("format" = "url", "x-endpoint" = true))]
    pub base_url: String,
    /// A CA certificate (PEM) to trust instead of the public ones.
    #[serde(default)]
    #[schemars(extend("x-endpoint" = true))]
    pub ca_cert_pem: Option<String>,
    /// How calls authenticate.
    #[serde(default)]
    pub auth: Auth,
    /// The user of basic auth.
    #[serde(default)]
    #[schemars(length(max = 255))]
    pub username: Option<String>,
    /// The bearer token (and `secrets.api_key` in templates).
    #[serde(default)]
    #[schemars(length(max = 4096), extend("x-secret" = true, "writeOnly" = true))]
    pub api_key: Option<String>,
    /// The password of basic auth (and `secrets.password`).
    #[serde(default)]
    #[schemars(length(max = 4096), extend("x-secret" = true, "writeOnly" = true))]
    pub password: Option<String>,
    /// The HMAC key (and `secrets.signing_secret`).
    #[serde(default)]
    #[schemars(length(max = 4096), extend("x-secret" = true, "writeOnly" = true))]
    pub signing_secret: Option<String>,
    /// The header that carries an HMAC signature.
    #[serde(default = "default_signature_header")]
    #[schemars(length(min = 1, max = 64))]
    pub signature_header: String,
    /// Function name to its request and mapping; every required function
    /// of the blueprint, and the optional ones it implements. Changing them
    /// needs the secrets again, like changing `base_url`: a template decides
    /// what is sent where.
    #[schemars(extend("x-endpoint" = true))]
    pub functions: BTreeMap<String, FunctionTemplate>,
    /// The request `test_connection` sends (any 2xx passes); without one, a GET of `base_url`.
    #[serde(default)]
    #[schemars(extend("x-endpoint" = true))]
    pub test_connection: Option<RequestTemplate>,
    /// A JSON pointer to the message in an error answer (`/error/message`).
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub error_message: Option<String>,
    /// A JSON pointer to the field an error answer names (`/error/field`),
    /// for `invalid_input`.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub error_field: Option<String>,
}

fn default_signature_header() -> String {
    "X-Signature".into()
}

impl HttpConfig {
    /// The secrets a template may use, by name: those configured.
    fn secrets(&self) -> BTreeMap<&'static str, &str> {
        [("api_key", &self.api_key), ("password", &self.password), ("signing_secret", &self.signing_secret)]
            .into_iter()
            .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
            .collect()
    }
}

/// The registry entry of the generic HTTP provider of `blueprint`
/// (`BLUEPRINT/http`).
pub fn entry(blueprint: &'static BlueprintDescriptor) -> ProviderEntry {
    let about = ProviderAbout {
        id: "http".into(),
        name: "Generic HTTP".into(),
        description: "Any REST API, configured with a request template and a response mapping per function; \
                      no code."
            .into(),
        logo_url: None,
    };
    ProviderEntry::dynamic(blueprint, about, SchemaDoc::of::<HttpConfig>(), move |config| {
        Box::pin(async move {
            let config: HttpConfig = serde_json::from_value(config)
                .map_err(|err| ProviderError::internal(format!("configuration does not decode: {err}")))?;
            Ok(Arc::new(GenericHttp { blueprint, config, templates: render::Templates::default() })
                as Arc<dyn ProviderInstance>)
        })
    })
    // Which optional functions it has depends on each configuration: those
    // it leaves out answer `unsupported` from `call`.
    .with_config_check(Arc::new(move |values| check(blueprint, values)))
}

/// One `BLUEPRINT/http` entry per blueprint.
pub fn entries(blueprints: &[&'static BlueprintDescriptor]) -> Vec<ProviderEntry> {
    blueprints.iter().map(|b| entry(b)).collect()
}

struct GenericHttp {
    blueprint: &'static BlueprintDescriptor,
    config: HttpConfig,
    templates: render::Templates,
}

impl ProviderInstance for GenericHttp {
    fn call<'a>(
        &'a self,
        cx: &'a Context,
        function: &'a str,
        params: Value,
    ) -> provisio_sdk::BoxFuture<'a, Result<Value, ProviderError>> {
        Box::pin(async move {
            let Some(template) = self.config.functions.get(function) else {
                return Err(ProviderError::unsupported(function));
            };
            let descriptor = self.blueprint.function(function).ok_or_else(|| ProviderError::unsupported(function))?;
            let scope = render::Scope::new(&self.config, function, cx.idempotency_key(), &params);
            let changes = descriptor.kind != provisio_sdk::FunctionKind::Query;
            let at = format!("/functions/{}", provisio_sdk::schema::escape_pointer(function));
            let response = self.send(cx, &template.request, &scope, &format!("{at}/request")).await?;
            if let Some(err) = self.failure(&response, &template.statuses, changes) {
                return Err(err);
            }
            let answer = render::answer_json(&response, changes)?;
            self.templates.result(&template.result, &answer, &scope, &at)
        })
    }

    fn test_connection<'a>(
        &'a self,
        cx: &'a Context,
    ) -> provisio_sdk::BoxFuture<'a, Result<ConnectionTest, ProviderError>> {
        Box::pin(async move {
            let fallback = RequestTemplate {
                method: Method::Get,
                path: "/".into(),
                query: BTreeMap::new(),
                headers: BTreeMap::new(),
                body: None,
            };
            let request = self.config.test_connection.as_ref().unwrap_or(&fallback);
            let scope = render::Scope::new(&self.config, "test_connection", None, &Value::Object(Default::default()));
            let response = self.send(cx, request, &scope, "/test_connection").await?;
            if let Some(err) = self.failure(&response, &BTreeMap::new(), false) {
                return Err(err);
            }
            Ok(ConnectionTest {
                message: format!("{} {} answered HTTP {}", request.method.as_reqwest(), request.path, response.status),
                details: Value::Null,
            })
        })
    }
}

impl GenericHttp {
    /// Renders and sends one request, signed as configured.
    async fn send(
        &self,
        cx: &Context,
        template: &RequestTemplate,
        scope: &render::Scope,
        at: &str,
    ) -> Result<HttpResponse, ProviderError> {
        let rendered = self.templates.request(&self.config.base_url, template, scope, at)?;
        let mut request = cx.http().request(template.method.as_reqwest(), rendered.url.as_str());
        request = request.header(reqwest::header::ACCEPT, "application/json");
        for (name, value) in rendered.headers {
            request = request.header(name, value);
        }
        match self.config.auth {
            Auth::None => {}
            Auth::Bearer => request = request.bearer_auth(self.config.api_key.as_deref().unwrap_or_default()),
            Auth::Basic => {
                request = request
                    .basic_auth(self.config.username.as_deref().unwrap_or_default(), self.config.password.as_deref())
            }
            Auth::Hmac => {
                let timestamp = chrono::Utc::now().timestamp();
                let signature = sign(
                    self.config.signing_secret.as_deref().unwrap_or_default(),
                    timestamp,
                    template.method.as_reqwest().as_str(),
                    &path_and_query(&rendered.url),
                    rendered.body.as_deref().unwrap_or_default(),
                );
                request = request.header(self.config.signature_header.as_str(), signature);
            }
        }
        if let Some(body) = rendered.body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        cx.http().send(request).await
    }

    /// The error a response stands for, if it is not a success.
    fn failure(
        &self,
        response: &HttpResponse,
        overrides: &BTreeMap<String, ErrorKind>,
        changes: bool,
    ) -> Option<ProviderError> {
        let status = response.status.as_u16();
        let kind = overrides.get(&status.to_string()).copied().or_else(|| default_kind(status));
        let kind = match kind {
            None if response.status.is_success() => return None,
            Some(kind) => kind,
            None if response.status.is_server_error() => return response.server_error(changes),
            None => ErrorKind::ProviderError,
        };
        let answer: Option<Value> = serde_json::from_slice(&response.body).ok();
        let said = |pointer: &Option<String>| {
            pointer.as_deref().and_then(|p| answer.as_ref()?.pointer(p)?.as_str().map(str::to_owned))
        };
        let vendor = said(&self.config.error_message).map(|m| m.chars().take(300).collect::<String>());
        let message = match &vendor {
            Some(said) => format!("The system answered HTTP {status}: {said}"),
            None => format!("The system answered HTTP {status}"),
        };
        let err = match kind {
            ErrorKind::InvalidInput => {
                let field = said(&self.config.error_field).unwrap_or_default();
                ProviderError::invalid_input(vec![provisio_sdk::FieldError {
                    location: provisio_sdk::FieldLocation::Params,
                    path: format!("/{}", field.trim_start_matches('/')),
                    message: vendor.unwrap_or_else(|| format!("refused by the system (HTTP {status})")),
                }])
            }
            kind => ProviderError::new(kind, UserMessage::new(message)),
        };
        Some(
            err.with_debug("status", status)
                .with_debug("response_body", response.text().chars().take(2000).collect::<String>()),
        )
    }
}

/// The error kind a status means unless the function says otherwise; `None`
/// for successes and server errors (which depend on the call).
fn default_kind(status: u16) -> Option<ErrorKind> {
    match status {
        200..=299 => None,
        404 => Some(ErrorKind::NotFound),
        409 => Some(ErrorKind::Conflict),
        400 | 422 => Some(ErrorKind::InvalidInput),
        408 | 429 => Some(ErrorKind::Transient),
        500..=599 => None,
        _ => Some(ErrorKind::ProviderError),
    }
}

fn path_and_query(url: &url::Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The signature header value of [`Auth::Hmac`].
pub fn sign(secret: &str, timestamp: i64, method: &str, path_and_query: &str, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.{method}.{path_and_query}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_openssl() {
        // printf '%s' '1700000000.POST./v1/orders.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            sign("whsec_test", 1_700_000_000, "POST", "/v1/orders", r#"{"a":1}"#),
            "t=1700000000,v1=6c00920f08dac8cf0e398e183f05a8780d01e7461444c3631784128c13547f56"
        );
    }

    #[test]
    fn statuses_default_to_kinds() {
        assert_eq!(default_kind(404), Some(ErrorKind::NotFound));
        assert_eq!(default_kind(409), Some(ErrorKind::Conflict));
        assert_eq!(default_kind(422), Some(ErrorKind::InvalidInput));
        assert_eq!(default_kind(429), Some(ErrorKind::Transient));
        assert_eq!(default_kind(503), None);
        assert_eq!(default_kind(201), None);
        assert_eq!(default_kind(401), Some(ErrorKind::ProviderError));
    }
}
