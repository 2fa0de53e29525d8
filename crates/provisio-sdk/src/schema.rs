//! JSON Schemas generated from the typed structs, and validation against them.
//!
//! One schema per type validates input *and* output, marks secret fields
//! (`"x-secret": true`, also `"writeOnly": true`), and is what `describe`,
//! forms and the OpenAPI document show.

use std::sync::Arc;

use jsonschema::error::ValidationErrorKind;
use schemars::JsonSchema;
use serde_json::{Map, Value, json};

use crate::error::{FieldError, FieldLocation};
use crate::formats;

/// A schema and its compiled validator.
#[derive(Clone)]
pub struct SchemaDoc {
    value: Arc<Value>,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for SchemaDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaDoc").field("value", &self.value).finish_non_exhaustive()
    }
}

impl SchemaDoc {
    /// The schema of a Rust type.
    pub fn of<T: JsonSchema>() -> Self {
        let schema = schemars::schema_for!(T);
        SchemaDoc::from_value(schema.to_value()).expect("generated schemas compile")
    }

    /// A schema given as JSON (checked to compile).
    pub fn from_value(value: Value) -> Result<Self, String> {
        let mut options = jsonschema::options().should_validate_formats(true);
        for (name, check) in formats::FORMATS {
            options = options.with_format(*name, *check);
        }
        let validator = options.build(&value).map_err(|err| err.to_string())?;
        Ok(SchemaDoc { value: Arc::new(value), validator: Arc::new(validator) })
    }

    /// The schema as JSON.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Checks an instance; every broken field is reported with its JSON pointer.
    ///
    /// Messages never repeat the offending value (it may be a secret).
    pub fn validate(&self, instance: &Value, location: FieldLocation) -> Result<(), Vec<FieldError>> {
        let mut errors: Vec<FieldError> = Vec::new();
        for err in self.validator.iter_errors(instance) {
            collect(location, &err, &mut errors);
        }
        if errors.is_empty() {
            return Ok(());
        }
        errors.sort_by(|a, b| a.path.cmp(&b.path));
        errors.dedup();
        Err(errors)
    }

    /// The secret fields present in `instance`: JSON pointer and value.
    pub fn secret_entries(&self, instance: &Value) -> Vec<(String, Value)> {
        let mut found = Vec::new();
        walk_secrets(&self.value, &self.value, instance, String::new(), &mut |pointer, value| {
            if !value.is_null() {
                found.push((pointer.to_owned(), value.clone()));
            }
        });
        found
    }

    /// Values found at fields marked secret, as text, for redaction.
    pub fn secret_values(&self, instance: &Value) -> Vec<String> {
        let mut found = Vec::new();
        walk_secrets(&self.value, &self.value, instance, String::new(), &mut |_, value| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => return,
                other => other.to_string(),
            };
            if !text.is_empty() {
                found.push(text);
            }
        });
        found
    }

    /// A copy of `instance` with the values of secret fields replaced by `"[REDACTED]"`.
    pub fn mask_secrets(&self, instance: &Value) -> Value {
        let mut masked = instance.clone();
        mask(&self.value, &self.value, &mut masked);
        masked
    }

    /// JSON pointers of the secret fields (`*` stands for any array index).
    pub fn secret_paths(&self) -> Vec<String> {
        let mut paths = Vec::new();
        collect_secret_paths(&self.value, &self.value, String::new(), &mut paths, 0);
        paths
    }

    /// Top-level properties marked `"x-endpoint": true`: the fields that say
    /// where the credentials go (a URL, a host, a port, a server). Changing
    /// one of a stored configuration needs its secrets supplied again, so a
    /// stored secret can never be sent somewhere new by whoever edits the
    /// address.
    pub fn endpoint_names(&self) -> Vec<&str> {
        self.value
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .filter(|(_, node)| node.get("x-endpoint").and_then(Value::as_bool).unwrap_or(false))
                    .map(|(name, _)| name.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the schema declares the nested property `path`
    /// (`["ship_to", "city"]`), through references and choices.
    pub fn declares(&self, path: &[&str]) -> bool {
        declares(&self.value, &self.value, path, 0)
    }

    /// An example instance: every property, the first of each choice, the
    /// least of each range (for trying a template out, not for validity).
    pub fn example(&self) -> Value {
        example(&self.value, &self.value, 0)
    }

    /// Top-level property names.
    pub fn property_names(&self) -> Vec<&str> {
        self.value
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| props.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// Turns a validation error into field errors. For `anyOf`/`oneOf` (how an
/// optional or tagged field is written) it reports the inner errors of the
/// branch that came closest, so the path names the real field.
fn collect(location: FieldLocation, err: &jsonschema::ValidationError<'_>, out: &mut Vec<FieldError>) {
    let branches = match err.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => Some(context),
        _ => None,
    };
    let path = err.instance_path().as_str();
    let closest = branches.and_then(|branches| {
        branches
            .iter()
            // A branch that failed only on the type at this very place (the
            // `null` of an Option, another variant) says nothing useful.
            .filter(|errors| {
                !errors
                    .iter()
                    .all(|e| e.instance_path().as_str() == path && matches!(e.kind(), ValidationErrorKind::Type { .. }))
            })
            .max_by_key(|errors| errors.iter().map(|e| e.instance_path().as_str().len()).max().unwrap_or(0))
    });
    match closest {
        Some(errors) if !errors.is_empty() => errors.iter().for_each(|inner| collect(location, inner, out)),
        _ => out.push(field_error(location, path, err.kind())),
    }
}

fn field_error(location: FieldLocation, path: &str, kind: &ValidationErrorKind) -> FieldError {
    let (path, message) = match kind {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            (format!("{path}/{}", escape_pointer(name)), "is required".to_owned())
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let name = unexpected.first().cloned().unwrap_or_default();
            (format!("{path}/{}", escape_pointer(&name)), "is not a known field".to_owned())
        }
        ValidationErrorKind::Format { format } => {
            (path.to_owned(), formats::describe(format).unwrap_or("has the wrong format").to_owned())
        }
        ValidationErrorKind::Type { kind } => (path.to_owned(), format!("must be of type {}", type_name(kind))),
        ValidationErrorKind::Enum { options } => (path.to_owned(), format!("must be one of {options}")),
        ValidationErrorKind::Minimum { limit } => (path.to_owned(), format!("must be at least {limit}")),
        ValidationErrorKind::Maximum { limit } => (path.to_owned(), format!("must be at most {limit}")),
        ValidationErrorKind::MinLength { limit } => {
            (path.to_owned(), format!("must be at least {limit} characters long"))
        }
        ValidationErrorKind::MaxLength { limit } => {
            (path.to_owned(), format!("must be at most {limit} characters long"))
        }
        ValidationErrorKind::MinItems { limit } => (path.to_owned(), format!("must have at least {limit} items")),
        ValidationErrorKind::MaxItems { limit } => (path.to_owned(), format!("must have at most {limit} items")),
        ValidationErrorKind::Pattern { pattern } => (path.to_owned(), format!("must match {pattern}")),
        _ => (path.to_owned(), "is invalid".to_owned()),
    };
    let path = if path.is_empty() { "/".to_owned() } else { path };
    FieldError { location, path, message }
}

fn type_name(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(ts) => {
            ts.iter().map(|t| t.to_string()).filter(|t| t != "null").collect::<Vec<_>>().join(" or ")
        }
    }
}

/// A key as one JSON pointer segment (`~` and `/` escaped, RFC 6901).
pub fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Follows a local `$ref` (`#/$defs/Name`) to its target, at most 32 hops:
/// a schema from outside (an external provider's) may refer in a circle.
fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..32 {
        match node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')).and_then(|p| root.pointer(p)) {
            Some(target) => node = target,
            None => return node,
        }
    }
    node
}

fn is_secret(node: &Value) -> bool {
    node.get("x-secret").and_then(Value::as_bool).unwrap_or(false)
        || node.get("writeOnly").and_then(Value::as_bool).unwrap_or(false)
}

fn branches(node: &Value) -> impl Iterator<Item = &Value> {
    ["anyOf", "oneOf", "allOf"].into_iter().filter_map(|key| node.get(key).and_then(Value::as_array)).flatten()
}

fn walk_secrets(root: &Value, node: &Value, instance: &Value, at: String, found: &mut impl FnMut(&str, &Value)) {
    let node = resolve(root, node);
    if is_secret(node) {
        found(&at, instance);
        return;
    }
    for branch in branches(node) {
        walk_secrets(root, branch, instance, at.clone(), found);
    }
    match instance {
        Value::Object(map) => {
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                for (key, value) in map {
                    if let Some(prop) = props.get(key) {
                        walk_secrets(root, prop, value, format!("{at}/{}", escape_pointer(key)), found);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk_secrets(root, item_schema, item, format!("{at}/{i}"), found);
                }
            }
        }
        _ => {}
    }
}

fn mask(root: &Value, node: &Value, instance: &mut Value) {
    let node = resolve(root, node);
    if is_secret(node) {
        if !instance.is_null() {
            *instance = Value::String(crate::redact::REDACTED.to_owned());
        }
        return;
    }
    for branch in branches(node) {
        mask(root, branch, instance);
    }
    match instance {
        Value::Object(map) => {
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                for (key, value) in map.iter_mut() {
                    if let Some(prop) = props.get(key) {
                        mask(root, prop, value);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.get("items") {
                for item in items {
                    mask(root, item_schema, item);
                }
            }
        }
        _ => {}
    }
}

fn collect_secret_paths(root: &Value, node: &Value, at: String, paths: &mut Vec<String>, depth: usize) {
    if depth > 16 {
        return;
    }
    let node = resolve(root, node);
    if is_secret(node) {
        paths.push(if at.is_empty() { "/".into() } else { at });
        return;
    }
    for branch in branches(node) {
        collect_secret_paths(root, branch, at.clone(), paths, depth + 1);
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (key, prop) in props {
            collect_secret_paths(root, prop, format!("{at}/{}", escape_pointer(key)), paths, depth + 1);
        }
    }
    if let Some(items) = node.get("items") {
        collect_secret_paths(root, items, format!("{at}/*"), paths, depth + 1);
    }
    paths.dedup();
}

/// An empty JSON object, the params of functions that take none.
pub fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Whether the schema declares the property path `segments`.
fn declares(root: &Value, node: &Value, segments: &[&str], depth: usize) -> bool {
    let node = resolve(root, node);
    let Some((first, rest)) = segments.split_first() else { return true };
    if depth > 16 {
        return false;
    }
    if let Some(property) = node.get("properties").and_then(|p| p.get(*first))
        && declares(root, property, rest, depth + 1)
    {
        return true;
    }
    branches(node).any(|branch| declares(root, branch, segments, depth + 1))
}

/// An example instance of a schema: every property, the first of each
/// choice, the least of each range; for rendering templates once on save.
fn example(root: &Value, node: &Value, depth: usize) -> Value {
    let node = resolve(root, node);
    if depth > 16 {
        return Value::Null;
    }
    if let Some(value) = node.get("const").or_else(|| node.get("enum").and_then(|e| e.get(0))) {
        return value.clone();
    }
    if let Some(branch) = branches(node).find(|b| resolve(root, b).get("type") != Some(&json!("null"))) {
        return example(root, branch, depth + 1);
    }
    let kind = match node.get("type") {
        Some(Value::Array(kinds)) => kinds.iter().find(|k| *k != "null").cloned().unwrap_or(Value::Null),
        Some(kind) => kind.clone(),
        None if node.get("properties").is_some() => json!("object"),
        None => Value::Null,
    };
    match kind.as_str() {
        Some("object") => {
            let mut out = Map::new();
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                for (key, prop) in props {
                    out.insert(key.clone(), example(root, prop, depth + 1));
                }
            }
            Value::Object(out)
        }
        Some("array") => Value::Array(vec![example(root, node.get("items").unwrap_or(&Value::Null), depth + 1)]),
        Some("integer") | Some("number") => node.get("minimum").cloned().unwrap_or(json!(1)),
        Some("boolean") => json!(false),
        Some("string") => json!(match node.get("format").and_then(Value::as_str) {
            Some("email") => "client@example.com".to_owned(),
            Some("date-time") => "2026-01-01T00:00:00Z".to_owned(),
            Some("date") => "2026-01-01".to_owned(),
            Some("ipv4") => "192.0.2.1".to_owned(),
            Some("ipv6") => "2001:db8::1".to_owned(),
            Some("uri" | "url") => "https://example.com/".to_owned(),
            Some("hostname" | "domain") => "example.com".to_owned(),
            _ => "x".repeat(node.get("minLength").and_then(Value::as_u64).unwrap_or(1).clamp(1, 64) as usize),
        }),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schema from outside (an external provider's) that refers in a
    /// circle is walked in bounded steps, never for ever.
    #[test]
    fn references_in_a_circle_end() {
        let cyclic = json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}},
                            "$defs": {"x": {"$ref": "#/$defs/y"}, "y": {"$ref": "#/$defs/x"}}});
        let doc = SchemaDoc::from_value(cyclic).expect("a schema of references compiles");
        assert!(doc.secret_values(&json!({"a": "v"})).is_empty());
        assert_eq!(doc.mask_secrets(&json!({"a": "v"})), json!({"a": "v"}));
        assert!(doc.secret_paths().is_empty());
        assert!(doc.declares(&["a"]) && !doc.declares(&["a", "b"]));
        assert_eq!(doc.example(), json!({"a": null}));
    }
    use crate::formats::{DomainName, Email, Password};
    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Contact {
        email: Email,
        #[serde(default)]
        password: Option<Password>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Order {
        domain: DomainName,
        contacts: Vec<Contact>,
        registrant: Contact,
    }

    #[test]
    fn errors_carry_json_pointers() {
        let doc = SchemaDoc::of::<Order>();
        let errors = doc
            .validate(
                &json!({"domain": "not a domain", "contacts": [{"email": "x"}], "registrant": {"email": "a@b"}, "extra": 1}),
                FieldLocation::Params,
            )
            .unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/contacts/0/email", "/domain", "/extra", "/registrant/email"]);
        assert!(errors[1].message.contains("domain name"));
    }

    #[test]
    fn missing_fields_are_named() {
        let doc = SchemaDoc::of::<Order>();
        let errors = doc.validate(&json!({"contacts": []}), FieldLocation::Params).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/domain", "/registrant"]);
    }

    #[test]
    fn idn_domains_validate() {
        let doc = SchemaDoc::of::<Order>();
        let ok = json!({"domain": "bücher.de", "contacts": [], "registrant": {"email": "a@example.com"}});
        assert!(doc.validate(&ok, FieldLocation::Params).is_ok());
        let order: Order = serde_json::from_value(ok).unwrap();
        assert_eq!(order.domain.as_str(), "xn--bcher-kva.de");
    }

    #[test]
    fn secrets_are_found_masked_and_listed() {
        let doc = SchemaDoc::of::<Order>();
        let instance = json!({"domain": "example.com", "contacts": [{"email": "a@example.com", "password": "Abcdefg1x"}],
                              "registrant": {"email": "a@example.com", "password": "Zyxwvut9q"}});
        assert_eq!(doc.secret_values(&instance), ["Abcdefg1x", "Zyxwvut9q"]);
        let entries: Vec<String> = doc.secret_entries(&instance).into_iter().map(|(p, _)| p).collect();
        assert_eq!(entries, ["/contacts/0/password", "/registrant/password"]);
        let masked = doc.mask_secrets(&instance);
        assert_eq!(masked["registrant"]["password"], "[REDACTED]");
        assert_eq!(masked["contacts"][0]["password"], "[REDACTED]");
        assert_eq!(doc.secret_paths(), ["/contacts/*/password", "/registrant/password"]);
    }
}
