//! The check a configuration passes when it is saved (and before each call):
//! every template compiles, names only what it will be given (params the
//! function's schema declares, configured secrets), and renders with an
//! example of the params inside the configured origin; every mapping names
//! result fields the blueprint declares and covers those it requires.

use std::collections::BTreeSet;

use minijinja::Environment;
use provisio_sdk::schema::escape_pointer as escape;
use provisio_sdk::{BlueprintDescriptor, FieldError, SchemaDoc};
use serde_json::{Value, json};

use crate::render::{Scope, Templates, config_error, describe, sole_expression};
use crate::{Auth, HttpConfig, Mapping, RequestTemplate};

/// Globals minijinja's builtins provide.
const BUILTIN_GLOBALS: [&str; 3] = ["range", "dict", "namespace"];

/// Checks configuration values (already valid against the schema) for `blueprint`.
pub fn check(blueprint: &BlueprintDescriptor, values: &Value) -> Result<(), Vec<FieldError>> {
    let config: HttpConfig = serde_json::from_value(values.clone())
        .map_err(|err| vec![config_error("/", format!("does not decode: {err}"))])?;
    let mut errors = Vec::new();
    check_origin(&config.base_url, &mut errors);
    let needs = match config.auth {
        Auth::None => vec![],
        Auth::Bearer => vec![("api_key", config.api_key.is_some())],
        Auth::Basic => vec![("username", config.username.is_some()), ("password", config.password.is_some())],
        Auth::Hmac => vec![("signing_secret", config.signing_secret.is_some())],
    };
    for (field, present) in needs {
        if !present {
            errors.push(config_error(&format!("/{field}"), format!("is required by auth {:?}", config.auth)));
        }
    }
    for function in blueprint.functions.iter().filter(|f| !f.optional) {
        if !config.functions.contains_key(function.name) {
            errors.push(config_error(
                &format!("/functions/{}", function.name),
                format!("is required: every provider of {} implements it", blueprint.id),
            ));
        }
    }
    let secrets: BTreeSet<&str> = config.secrets().into_keys().collect();
    let templates = Templates::default();
    let env = Environment::new();
    for (name, template) in &config.functions {
        let at = format!("/functions/{}", escape(name));
        let Some(function) = blueprint.function(name) else {
            let known: Vec<&str> = blueprint.functions.iter().map(|f| f.name).collect();
            errors.push(config_error(
                &at,
                format!("is not a function of {}; expected one of {}", blueprint.id, known.join(", ")),
            ));
            continue;
        };
        let names = Names { params: &function.params, secrets: &secrets, response: false };
        let before = errors.len();
        check_request(&env, &template.request, &names, &format!("{at}/request"), &mut errors);
        if errors.len() == before {
            let example = function.params.example();
            let scope = Scope::new(&config, name, Some("example-idempotency-key"), &example);
            if let Err(err) = templates.render(&config.base_url, &template.request, &scope, &format!("{at}/request")) {
                errors.push(FieldError { message: format!("{} (with example params {example})", err.message), ..err });
            }
        }
        check_result(&env, &function.result, template, &Names { response: true, ..names }, &at, &mut errors);
        for status in template.statuses.keys() {
            if !status.parse::<u16>().is_ok_and(|s| (100..=599).contains(&s)) {
                errors.push(config_error(&format!("{at}/statuses/{}", escape(status)), "is not an HTTP status code"));
            }
        }
    }
    if let Some(request) = &config.test_connection {
        let empty = SchemaDoc::from_value(json!({"type": "object"})).expect("an object schema");
        let names = Names { params: &empty, secrets: &secrets, response: false };
        check_request(&env, request, &names, "/test_connection", &mut errors);
    }
    for (field, pointer) in [("error_message", &config.error_message), ("error_field", &config.error_field)] {
        if let Some(pointer) = pointer
            && !is_pointer(pointer)
        {
            errors.push(config_error(&format!("/{field}"), "must be a JSON pointer (empty, or starting with `/`)"));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// HTTPS, or plain HTTP to a loopback address; no credentials, query or fragment in it.
fn check_origin(base_url: &str, errors: &mut Vec<FieldError>) {
    let url = match url::Url::parse(base_url) {
        Ok(url) => url,
        Err(err) => return errors.push(config_error("/base_url", format!("is not a URL: {err}"))),
    };
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    let problem = match url.scheme() {
        _ if url.host().is_none() => Some("must name a host"),
        "https" => None,
        "http" if loopback => None,
        "http" => Some("must be https (plain http only to a loopback address): credentials go with every call"),
        _ => Some("must be an http(s) URL"),
    }
    .or_else(|| {
        (!url.username().is_empty() || url.password().is_some()).then_some("must not carry credentials; use auth")
    })
    .or_else(|| (url.query().is_some() || url.fragment().is_some()).then_some("must not have a query or fragment"));
    if let Some(problem) = problem {
        errors.push(config_error("/base_url", problem));
    }
}

/// What a template may name.
#[derive(Clone, Copy)]
struct Names<'a> {
    params: &'a SchemaDoc,
    secrets: &'a BTreeSet<&'a str>,
    /// Result expressions also see the answer.
    response: bool,
}

impl Names<'_> {
    /// Why `variable` (`params.ship_to.city`) is not something a template is given, if it is not.
    fn refuse(&self, variable: &str) -> Option<String> {
        let mut segments = variable.split('.');
        let root = segments.next().unwrap_or_default();
        let rest: Vec<&str> = segments.collect();
        match root {
            "params" => (!self.params.declares(&rest))
                .then(|| format!("names `{variable}`, which the function's params do not declare")),
            "secrets" if self.response => {
                Some("names `secrets`; a result is kept and shown to the client, so it may not hold one".into())
            }
            "secrets" => match rest.first() {
                None => Some("names `secrets` as a whole; name one secret (`secrets.api_key`)".into()),
                Some(name) if self.secrets.contains(name) => None,
                Some(name) => Some(format!("names `secrets.{name}`, which is not configured")),
            },
            "idempotency_key" | "function" => None,
            "response" if self.response => None,
            _ if BUILTIN_GLOBALS.contains(&root) => None,
            _ => Some(format!(
                "names `{variable}`; templates are given params, secrets, idempotency_key and function{}",
                if self.response { " (and response)" } else { "" }
            )),
        }
    }
}

/// Every template of a request compiles and names only what it is given.
fn check_request(env: &Environment, request: &RequestTemplate, names: &Names, at: &str, errors: &mut Vec<FieldError>) {
    let mut sources = vec![(format!("{at}/path"), request.path.clone())];
    sources.extend(request.query.iter().map(|(k, v)| (format!("{at}/query/{}", escape(k)), v.clone())));
    sources.extend(request.headers.iter().map(|(k, v)| (format!("{at}/headers/{}", escape(k)), v.clone())));
    if let Some(body) = &request.body {
        strings(body, format!("{at}/body"), &mut sources);
    }
    for (here, source) in sources {
        check_source(env, &source, names, &here, errors);
    }
}

fn check_source(env: &Environment, source: &str, names: &Names, at: &str, errors: &mut Vec<FieldError>) {
    let variables = match sole_expression(source) {
        Some(expression) => env.compile_expression(expression).map(|e| e.undeclared_variables(true)),
        None => env.template_from_str(source).map(|t| t.undeclared_variables(true)),
    };
    match variables {
        Err(err) => errors.push(config_error(at, describe(&err))),
        Ok(variables) => {
            let mut variables: Vec<String> = variables.into_iter().collect();
            variables.sort();
            if let Some(why) = variables.iter().find_map(|v| names.refuse(v)) {
                errors.push(config_error(at, why));
            }
        }
    }
}

/// The mapping names only declared result fields and covers the required ones.
fn check_result(
    env: &Environment,
    result: &SchemaDoc,
    template: &crate::FunctionTemplate,
    names: &Names,
    at: &str,
    errors: &mut Vec<FieldError>,
) {
    let declared = result.property_names();
    let required: Vec<&str> = result
        .value()
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for field in &required {
        if !template.result.contains_key(*field) {
            errors.push(config_error(
                &format!("{at}/result/{}", escape(field)),
                "is required by the blueprint's result schema; map it from the answer",
            ));
        }
    }
    for (field, mapping) in &template.result {
        let here = format!("{at}/result/{}", escape(field));
        if !declared.contains(&field.as_str()) {
            errors.push(config_error(
                &here,
                format!("is not a field of the result; expected one of {}", declared.join(", ")),
            ));
            continue;
        }
        let (pointer, expression) = match mapping {
            Mapping::Pointer(pointer) => (Some(pointer), None),
            Mapping::Rule(rule) => (rule.pointer.as_ref(), rule.expression.as_ref()),
        };
        match (pointer, expression) {
            (Some(_), Some(_)) => errors.push(config_error(&here, "takes a pointer or an expression, not both")),
            (None, None) if !matches!(mapping, Mapping::Rule(r) if r.default.is_some()) => {
                errors.push(config_error(&here, "needs a pointer, an expression or a default"))
            }
            (Some(pointer), None) if !is_pointer(pointer) => {
                let path =
                    if matches!(mapping, Mapping::Pointer(_)) { here.clone() } else { format!("{here}/pointer") };
                errors.push(config_error(&path, "must be a JSON pointer (empty, or starting with `/`)"));
            }
            (None, Some(expression)) => {
                check_source(env, &format!("{{{{ {expression} }}}}"), names, &format!("{here}/expression"), errors)
            }
            _ => {}
        }
    }
}

fn is_pointer(text: &str) -> bool {
    text.is_empty() || text.starts_with('/')
}

/// Every string leaf of a body template, with its pointer.
fn strings(value: &Value, at: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(text) => out.push((at, text.clone())),
        Value::Object(map) => map.iter().for_each(|(k, v)| strings(v, format!("{at}/{}", escape(k)), out)),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| strings(v, format!("{at}/{i}"), out)),
        _ => {}
    }
}
