//! Rendering requests from templates and results from answers.
//!
//! Templates run in minijinja with a fuel limit (no template loops for
//! ever) and no loader (no template reads a file). Two environments differ
//! only in how a value is written: in a path each value is percent-encoded
//! as one segment, so a param can never add a segment, a query or another
//! host; elsewhere it is written as it is.

use std::collections::BTreeMap;

use minijinja::{Environment, Value as Jinja};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use provisio_sdk::http::HttpResponse;
use provisio_sdk::schema::escape_pointer as escape;
use provisio_sdk::{FieldError, FieldLocation, ProviderError};
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use url::Url;

use crate::{HttpConfig, Mapping, MappingRule, RequestTemplate};

/// Template instructions one rendering may run.
const FUEL: u64 = 50_000;
/// The longest text one template may produce.
const MAX_RENDERED: usize = 256 * 1024;

/// What a path value is encoded as: everything but RFC 3986's unreserved
/// characters (as the redactor's percent-encoded form of a secret is).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Headers no template may set: where the request goes, how its body is
/// framed, and the connection's own.
pub const RESERVED_HEADERS: [&str; 10] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
];

/// The two rendering environments.
pub struct Templates {
    text: Environment<'static>,
    path: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Templates { text: environment(false), path: environment(true) }
    }
}

fn environment(path: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(32);
    env.set_formatter(move |out, _state, value| {
        let absent = value.is_undefined() || value.is_none();
        if path {
            // A missing segment would turn `/orders/{id}` into the collection.
            let text = if absent { String::new() } else { value.to_string() };
            if text == "." || text == ".." || text.is_empty() {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    "a value placed in the path cannot be absent, empty, `.` or `..`",
                ));
            }
        }
        // Elsewhere an absent optional value or a null writes nothing, never "none".
        if absent {
            return Ok(());
        }
        let text = value.to_string();
        let written = if path { utf8_percent_encode(&text, SEGMENT).to_string() } else { text };
        out.write_str(&written).map_err(|_| minijinja::Error::from(minijinja::ErrorKind::WriteFailure))
    });
    env
}

/// What templates see for one call.
pub struct Scope {
    values: Map<String, Value>,
}

impl Scope {
    /// `params`, `secrets`, `idempotency_key` and `function`.
    pub fn new(config: &HttpConfig, function: &str, idempotency_key: Option<&str>, params: &Value) -> Scope {
        let mut values = Map::new();
        values.insert("params".into(), params.clone());
        values.insert("secrets".into(), serde_json::to_value(config.secrets()).unwrap_or_default());
        values.insert("idempotency_key".into(), idempotency_key.map_or(Value::Null, |k| Value::String(k.into())));
        values.insert("function".into(), Value::String(function.into()));
        Scope { values }
    }

    fn context(&self) -> Jinja {
        Jinja::from(minijinja::value::Serde(&self.values))
    }

    /// What result expressions see: no secrets (a result is kept as
    /// provision data and shown to the client), and the answer.
    fn with_response(&self, answer: &Value) -> Jinja {
        let mut values = self.values.clone();
        values.remove("secrets");
        values.insert("response".into(), answer.clone());
        Jinja::from(minijinja::value::Serde(&values))
    }
}

/// A request ready to send.
#[derive(Debug)]
pub struct Rendered {
    pub url: Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<String>,
}

/// A template that failed, as a configuration error at `path`.
pub fn config_error(path: &str, message: impl Into<String>) -> FieldError {
    FieldError { location: FieldLocation::Config, path: path.into(), message: message.into() }
}

fn too_long(text: String) -> Result<String, minijinja::Error> {
    if text.len() > MAX_RENDERED {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("renders over {MAX_RENDERED} bytes"),
        ));
    }
    Ok(text)
}

/// The expression a string is when it is one `{{ … }}` and nothing else.
pub fn sole_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then(|| inner.trim())
}

/// Whether a JSON value stands for nothing (an undefined value).
enum Filled {
    Value(Value),
    Undefined,
}

impl Templates {
    fn text(&self, source: &str, context: &Jinja) -> Result<String, minijinja::Error> {
        too_long(self.text.render_str(source, context.clone())?)
    }

    /// Evaluates one expression, keeping the type of what it finds.
    fn evaluate(&self, expression: &str, context: &Jinja) -> Result<Filled, minijinja::Error> {
        let value = self.text.compile_expression(expression)?.eval(context.clone())?;
        if value.is_undefined() {
            return Ok(Filled::Undefined);
        }
        serde_json::to_value(&value)
            .map(Filled::Value)
            .map_err(|err| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, err.to_string()))
    }

    /// A JSON body whose strings are templates (see the crate's doc).
    fn body(&self, template: &Value, context: &Jinja, at: &str) -> Result<Filled, FieldError> {
        Ok(match template {
            Value::String(text) => match sole_expression(text) {
                Some(expression) => self.evaluate(expression, context).map_err(|e| config_error(at, describe(&e)))?,
                None => {
                    Filled::Value(Value::String(self.text(text, context).map_err(|e| config_error(at, describe(&e)))?))
                }
            },
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, value) in map {
                    if let Filled::Value(value) = self.body(value, context, &format!("{at}/{}", escape(key)))? {
                        out.insert(key.clone(), value);
                    }
                }
                Filled::Value(Value::Object(out))
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match self.body(item, context, &format!("{at}/{i}"))? {
                        Filled::Value(value) => out.push(value),
                        Filled::Undefined => out.push(Value::Null),
                    }
                }
                Filled::Value(Value::Array(out))
            }
            other => Filled::Value(other.clone()),
        })
    }

    /// Renders `template` for `scope` under `base_url`; errors are
    /// configuration errors at `at` (a pointer into the configuration).
    pub fn render(
        &self,
        base_url: &str,
        template: &RequestTemplate,
        scope: &Scope,
        at: &str,
    ) -> Result<Rendered, FieldError> {
        let context = scope.context();
        let base = Url::parse(base_url).map_err(|err| config_error("/base_url", err.to_string()))?;
        let path = self
            .path
            .render_str(&template.path, context.clone())
            .map_err(|e| config_error(&format!("{at}/path"), describe(&e)))?;
        let mut url = within(&base, &path).map_err(|message| config_error(&format!("{at}/path"), message))?;
        for (name, source) in &template.query {
            let value = self
                .text(source, &context)
                .map_err(|e| config_error(&format!("{at}/query/{}", escape(name)), describe(&e)))?;
            if !value.is_empty() {
                url.query_pairs_mut().append_pair(name, &value);
            }
        }
        let mut headers = Vec::new();
        for (name, source) in &template.headers {
            let here = format!("{at}/headers/{}", escape(name));
            let header =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| config_error(&here, "is not a header name"))?;
            if RESERVED_HEADERS.contains(&header.as_str()) {
                return Err(config_error(&here, "is set by the HTTP client; a template may not set it"));
            }
            let value = self.text(source, &context).map_err(|e| config_error(&here, describe(&e)))?;
            if value.is_empty() {
                continue;
            }
            let value = HeaderValue::from_str(&value).map_err(|_| {
                config_error(&here, "renders a value a header cannot carry (a line break or a control character)")
            })?;
            headers.push((header, value));
        }
        let body = match &template.body {
            None => None,
            Some(body) => match self.body(body, &context, &format!("{at}/body"))? {
                Filled::Value(value) => Some(value.to_string()),
                Filled::Undefined => None,
            },
        };
        Ok(Rendered { url, headers, body })
    }

    /// Renders a request at call time: a template that fails is the
    /// configuration's fault, answered as such, and nothing is sent.
    pub fn request(
        &self,
        base_url: &str,
        template: &RequestTemplate,
        scope: &Scope,
        at: &str,
    ) -> Result<Rendered, ProviderError> {
        self.render(base_url, template, scope, at).map_err(|err| ProviderError::invalid_input(vec![err]))
    }

    /// The function's result from the answer, field by field.
    pub fn result(
        &self,
        mappings: &BTreeMap<String, Mapping>,
        answer: &Value,
        scope: &Scope,
        at: &str,
    ) -> Result<Value, ProviderError> {
        let context = scope.with_response(answer);
        let mut result = Map::new();
        for (field, mapping) in mappings {
            let rule = match mapping {
                Mapping::Pointer(pointer) => &MappingRule {
                    pointer: Some(pointer.clone()),
                    expression: None,
                    values: BTreeMap::new(),
                    default: None,
                },
                Mapping::Rule(rule) => rule,
            };
            let found = match (&rule.pointer, &rule.expression) {
                (_, Some(expression)) => match self.evaluate(expression, &context) {
                    Ok(Filled::Value(value)) => Some(value),
                    Ok(Filled::Undefined) => None,
                    Err(err) => {
                        let here = format!("{at}/result/{}/expression", escape(field));
                        return Err(ProviderError::invalid_input(vec![config_error(&here, describe(&err))]));
                    }
                },
                (Some(pointer), None) => answer.pointer(pointer).cloned(),
                (None, None) => None,
            };
            let value = match found.filter(|v| !v.is_null()) {
                Some(Value::String(text)) if rule.values.contains_key(&text) => rule.values[&text].clone(),
                Some(value) => value,
                None => rule.default.clone().unwrap_or(Value::Null),
            };
            result.insert(field.clone(), value);
        }
        Ok(Value::Object(result))
    }
}

/// `path` under `base`: the same origin, and inside its base path.
fn within(base: &Url, path: &str) -> Result<Url, String> {
    if !path.starts_with('/') {
        return Err("must render a path starting with `/`".into());
    }
    let base_path = base.path().trim_end_matches('/');
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.set_path(&format!("{base_path}{path}"));
    let inside = url.path() == base_path || url.path().starts_with(&format!("{base_path}/"));
    if url.origin() != base.origin() || !inside {
        return Err(format!("renders a URL outside {base} (calls go only to the configured origin and base path)"));
    }
    Ok(url)
}

/// A template error in one line, without the template's source.
pub fn describe(err: &minijinja::Error) -> String {
    let mut text = err.kind().to_string();
    if let Some(detail) = err.detail() {
        text = format!("{text}: {detail}");
    }
    if let Some(line) = err.line() {
        text = format!("{text} (line {line})");
    }
    format!("does not render: {text}")
}

/// The answer's body as JSON (an empty body is `{}`). A success that cannot
/// be read after a change may still have done it: `outcome_unknown`, so it
/// is reconciled rather than forgotten.
pub fn answer_json(response: &HttpResponse, changes: bool) -> Result<Value, ProviderError> {
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(&response.body).map_err(|err| {
        let err = if changes {
            ProviderError::outcome_unknown(provisio_sdk::UserMessage::new(format!(
                "The system answered HTTP {} with something that is not JSON; the operation may have taken effect",
                response.status.as_u16()
            )))
            .with_debug("cause", err.to_string())
        } else {
            ProviderError::internal(format!("the system's answer is not JSON: {err}"))
        };
        err.with_debug("status", response.status.as_u16())
            .with_debug("response_body", response.text().chars().take(2000).collect::<String>())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> HttpConfig {
        serde_json::from_value(json!({"base_url": "https://shop.example/v1", "api_key": "k-123456", "functions": {}}))
            .unwrap()
    }

    fn template(path: &str, body: Option<Value>) -> RequestTemplate {
        RequestTemplate {
            method: crate::Method::Post,
            path: path.into(),
            query: BTreeMap::new(),
            headers: BTreeMap::from([("Idempotency-Key".to_owned(), "{{ idempotency_key }}".to_owned())]),
            body,
        }
    }

    #[test]
    fn values_in_a_path_stay_one_segment_and_bodies_keep_types() {
        let templates = Templates::default();
        let params = json!({"order_id": "a/../../admin?x=1#f", "quantity": 2, "ship_to": {"city": "York"}});
        let scope = Scope::new(&config(), "f", Some("key-1"), &params);
        let body = json!({"q": "{{ params.quantity }}", "to": "{{ params.ship_to }}", "note": "n {{ params.quantity }}",
                          "gone": "{{ params.missing }}"});
        let rendered = templates
            .render("https://shop.example/v1", &template("/orders/{{ params.order_id }}", Some(body)), &scope, "/f")
            .unwrap();
        assert_eq!(rendered.url.as_str(), "https://shop.example/v1/orders/a%2F..%2F..%2Fadmin%3Fx%3D1%23f");
        assert_eq!(
            serde_json::from_str::<Value>(rendered.body.as_deref().unwrap()).unwrap(),
            json!({"q": 2, "to": {"city": "York"}, "note": "n 2"})
        );
        assert_eq!(rendered.headers[0].1, "key-1");
        let keyless = Scope::new(&config(), "f", None, &params);
        let rendered = templates.render("https://shop.example/v1", &template("/x", None), &keyless, "/f").unwrap();
        assert!(rendered.headers.is_empty(), "a header that renders empty is left out");
    }

    #[test]
    fn no_template_leaves_the_origin_or_base_path() {
        let templates = Templates::default();
        let scope = Scope::new(&config(), "f", None, &json!({"id": ".."}));
        for path in ["/../admin", "/%2e%2e/admin", "/{{ params.id }}", "/a/../../x", "/o/{{ params.missing }}"] {
            let err = templates.render("https://shop.example/v1", &template(path, None), &scope, "/f");
            assert!(err.is_err(), "{path} was let through: {err:?}");
        }
        // Another host in the path is only a path on this one.
        let rendered = templates.render("https://shop.example/v1", &template("//evil.example/x", None), &scope, "/f");
        assert_eq!(rendered.unwrap().url.as_str(), "https://shop.example/v1//evil.example/x");
    }

    #[test]
    fn a_template_that_runs_for_ever_runs_out_of_fuel() {
        let templates = Templates::default();
        let scope = Scope::new(&config(), "f", None, &json!({}));
        let body = json!("{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}");
        let err = templates.render("https://shop.example/v1", &template("/x", Some(body)), &scope, "/f").unwrap_err();
        assert_eq!(err.path, "/f/body");
    }
}
