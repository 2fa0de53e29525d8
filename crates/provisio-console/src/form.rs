//! Forms generated from JSON Schema: the schema that validates a provider's
//! configuration (or a function's params) also draws its form and reads
//! the submitted fields back into JSON. Field names are JSON pointers into
//! the request body, so the engine's errors (`/values/server is too long`)
//! land beside the field they name.

use std::collections::BTreeMap;

use maud::{Markup, html};
use serde_json::{Map, Value};

/// What a field is, read off its schema node.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Text,
    Integer,
    Number,
    Boolean,
    /// One of these values.
    Choice(Vec<Value>),
    /// A list of strings, one per line.
    Lines,
    /// Anything else, as JSON.
    Json,
    /// Fields of their own.
    Group,
}

/// One field of a form.
#[derive(Debug, Clone)]
pub struct Field {
    /// JSON pointer of the value in the request body (also the input's name).
    pub pointer: String,
    label: String,
    help: Option<String>,
    kind: Kind,
    required: bool,
    secret: bool,
    default: Option<Value>,
    children: Vec<Field>,
}

/// The fields of an object schema, named under `prefix` (`/values`).
pub fn fields(schema: &Value, prefix: &str) -> Vec<Field> {
    object_fields(schema, schema, prefix, 0)
}

fn object_fields(root: &Value, node: &Value, prefix: &str, depth: usize) -> Vec<Field> {
    let node = resolve(root, node);
    let required: Vec<&str> = node
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = node.get("properties").and_then(Value::as_object) else { return Vec::new() };
    properties
        .iter()
        .map(|(name, property)| {
            schema_field(root, property, &format!("{prefix}/{name}"), name, required.contains(&name.as_str()), depth)
        })
        .collect()
}

fn schema_field(root: &Value, node: &Value, pointer: &str, name: &str, required: bool, depth: usize) -> Field {
    let resolved = resolve(root, node);
    let help = node
        .get("description")
        .or_else(|| resolved.get("description"))
        .and_then(Value::as_str)
        .map(|d| d.split("\n\n").next().unwrap_or(d).replace('\n', " "));
    let secret = flag(node, "x-secret") || flag(resolved, "x-secret") || flag(node, "writeOnly");
    let kind = kind_of(root, resolved);
    let children =
        if kind == Kind::Group && depth < 4 { object_fields(root, resolved, pointer, depth + 1) } else { Vec::new() };
    let kind = if kind == Kind::Group && children.is_empty() { Kind::Json } else { kind };
    Field {
        pointer: pointer.to_owned(),
        label: name.replace('_', " "),
        help,
        kind,
        required,
        secret,
        default: node.get("default").or_else(|| resolved.get("default")).filter(|d| !d.is_null()).cloned(),
        children,
    }
}

fn flag(node: &Value, name: &str) -> bool {
    node.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Follows `$ref`, and the one non-null branch of an optional (`anyOf: [X, null]`).
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let mut node = node;
    for _ in 0..8 {
        if let Some(target) = node.get("$ref").and_then(Value::as_str) {
            match target.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(found) => node = found,
                None => return node,
            }
            continue;
        }
        let branches = node.get("anyOf").or_else(|| node.get("allOf")).and_then(Value::as_array);
        if let Some(branches) = branches {
            let real: Vec<&Value> = branches.iter().filter(|b| b.get("type") != Some(&Value::from("null"))).collect();
            if let [one] = real.as_slice() {
                node = one;
                continue;
            }
        }
        return node;
    }
    node
}

fn kind_of(root: &Value, node: &Value) -> Kind {
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return Kind::Choice(values.iter().filter(|v| !v.is_null()).cloned().collect());
    }
    if let Some(branches) = node.get("oneOf").and_then(Value::as_array) {
        let consts: Vec<Value> = branches.iter().filter_map(|b| resolve(root, b).get("const").cloned()).collect();
        if consts.len() == branches.len() {
            return Kind::Choice(consts);
        }
    }
    let types: Vec<&str> = match node.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
        _ => Vec::new(),
    };
    match types.as_slice() {
        ["string"] => Kind::Text,
        ["integer"] => Kind::Integer,
        ["number"] => Kind::Number,
        ["boolean"] => Kind::Boolean,
        ["array"] if node.pointer("/items/type") == Some(&Value::from("string")) => Kind::Lines,
        ["object"] if node.get("properties").is_some() => Kind::Group,
        _ => Kind::Json,
    }
}

/// What a form shows: stored values (secrets never among them), which
/// secrets hold a value, and errors by pointer.
#[derive(Debug)]
pub struct Filled<'a> {
    /// The request body as stored or as submitted (secret values absent).
    pub values: Option<&'a Value>,
    /// Pointers of secret fields that hold a value.
    pub secrets_set: &'a [String],
    /// Errors by pointer.
    pub errors: &'a BTreeMap<String, String>,
}

/// The inputs of `fields`.
pub fn render(fields: &[Field], filled: &Filled<'_>) -> Markup {
    html! {
        @for field in fields {
            (render_field(field, filled))
        }
    }
}

fn render_field(field: &Field, filled: &Filled<'_>) -> Markup {
    let id = input_id(&field.pointer);
    let current = filled.values.and_then(|v| v.pointer(&field.pointer)).filter(|v| !v.is_null());
    let shown = current.or(if filled.values.is_none() { field.default.as_ref() } else { None });
    let error = filled.errors.get(&field.pointer);
    let help_id = format!("{id}-help");
    if field.kind == Kind::Group {
        return html! {
            fieldset.group {
                legend { (field.label) }
                @if let Some(help) = &field.help { p.help { (help) } }
                @for child in &field.children { (render_field(child, filled)) }
            }
        };
    }
    html! {
        div.field.invalid[error.is_some()] {
            @match &field.kind {
                Kind::Boolean => {
                    input type="hidden" name=(field.pointer) value="false";
                    label.check for=(id) {
                        input type="checkbox" id=(id) name=(field.pointer) value="true"
                            checked[shown == Some(&Value::Bool(true))] aria-describedby=(help_id);
                        " " (field.label)
                    }
                }
                _ => {
                    label for=(id) {
                        (field.label)
                        @if field.required { span.required aria-hidden="true" { " *" } }
                        @if field.secret { " " span.badge { "secret" } }
                    }
                    (input(field, &id, &help_id, shown, filled))
                }
            }
            @if let Some(error) = error { p.error id=(format!("{id}-error")) role="alert" { (error) } }
            @if let Some(help) = &field.help { p.help id=(help_id) { (help) } }
        }
    }
}

fn input(field: &Field, id: &str, help_id: &str, shown: Option<&Value>, filled: &Filled<'_>) -> Markup {
    if field.secret {
        let set = filled.secrets_set.contains(&field.pointer);
        // A secret is never written into the page: the field says whether
        // one is set, and a value typed here replaces it.
        return html! {
            input type="password" id=(id) name=(field.pointer) autocomplete="new-password" aria-describedby=(help_id)
                placeholder=(if set { "set: leave empty to keep, type to replace" } else { "not set" });
            @if set { span.secret-state { "set" } }
        };
    }
    match &field.kind {
        Kind::Choice(choices) => html! {
            select id=(id) name=(field.pointer) aria-describedby=(help_id) {
                @if !field.required { option value="" { "(default)" } }
                @for choice in choices {
                    @let text = plain(choice);
                    option value=(text) selected[shown == Some(choice)] { (text) }
                }
            }
        },
        Kind::Integer | Kind::Number => html! {
            input type="number" id=(id) name=(field.pointer) required[field.required] aria-describedby=(help_id)
                step=(if field.kind == Kind::Integer { "1" } else { "any" }) value=[shown.map(plain)];
        },
        Kind::Lines => html! {
            textarea id=(id) name=(field.pointer) rows="3" aria-describedby=(help_id) {
                (shown.and_then(Value::as_array).map(|items| items.iter().map(plain).collect::<Vec<_>>().join("\n")).unwrap_or_default())
            }
        },
        Kind::Json => html! {
            textarea.code id=(id) name=(field.pointer) rows="3" aria-describedby=(help_id) { (shown.map(|v| v.to_string()).unwrap_or_default()) }
        },
        _ => html! {
            input type="text" id=(id) name=(field.pointer) required[field.required] aria-describedby=(help_id) value=[shown.map(plain)];
        },
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn input_id(pointer: &str) -> String {
    format!("f{}", pointer.replace('/', "-"))
}

/// Reads submitted pairs back into JSON under the fields' pointers: typed
/// by the schema, empty inputs left out (defaults apply; an empty secret
/// keeps the stored one). Unparseable numbers and JSON are errors by pointer.
pub fn read(fields: &[Field], pairs: &[(String, String)]) -> Result<Value, (Value, BTreeMap<String, String>)> {
    let mut body = Value::Object(Map::new());
    let mut errors = BTreeMap::new();
    let mut flat = Vec::new();
    flatten(fields, &mut flat);
    for field in flat {
        // The last value wins (a checkbox after its hidden `false`).
        let Some(raw) = pairs.iter().rev().find(|(name, _)| *name == field.pointer).map(|(_, v)| v.trim()) else {
            continue;
        };
        if raw.is_empty() {
            continue;
        }
        let value = match &field.kind {
            Kind::Boolean => Ok(Value::Bool(raw == "true")),
            Kind::Integer => raw.parse::<i64>().map(Value::from).map_err(|_| "must be a whole number".to_owned()),
            Kind::Number => raw
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| "must be a number".to_owned()),
            Kind::Choice(choices) => {
                choices.iter().find(|c| plain(c) == raw).cloned().ok_or_else(|| "is not one of the choices".to_owned())
            }
            Kind::Lines => Ok(Value::Array(
                raw.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| Value::String(l.to_owned())).collect(),
            )),
            Kind::Json => serde_json::from_str(raw).map_err(|e| format!("is not valid JSON: {e}")),
            Kind::Text | Kind::Group => Ok(Value::String(raw.to_owned())),
        };
        match value {
            Ok(value) => set(&mut body, &field.pointer, value),
            Err(message) => {
                errors.insert(field.pointer.clone(), format!("{} {message}", field.label));
            }
        }
    }
    if errors.is_empty() { Ok(body) } else { Err((body, errors)) }
}

fn flatten<'a>(fields: &'a [Field], out: &mut Vec<&'a Field>) {
    for field in fields {
        if field.kind == Kind::Group {
            flatten(&field.children, out);
        } else {
            out.push(field);
        }
    }
}

/// A submitted field's value (the last one sent under that name), or "".
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str()).unwrap_or_default()
}

/// Blanks (nulls) every secret field that holds a value, wherever it is
/// (inside arrays too), so a value never goes back into a page.
pub fn blank_secrets(value: &mut Value, schema: &provisio_sdk::SchemaDoc) {
    for (pointer, _) in schema.secret_entries(value) {
        if let Some(slot) = value.pointer_mut(&pointer) {
            *slot = Value::Null;
        }
    }
}

/// Sets `value` at `pointer`, making objects on the way.
pub fn set(body: &mut Value, pointer: &str, value: Value) {
    let mut node = body;
    let mut parts = pointer.trim_start_matches('/').split('/').peekable();
    while let Some(part) = parts.next() {
        let key = part.replace("~1", "/").replace("~0", "~");
        let object = match node {
            Value::Object(map) => map,
            other => {
                *other = Value::Object(Map::new());
                other.as_object_mut().expect("just made")
            }
        };
        if parts.peek().is_none() {
            object.insert(key, value);
            return;
        }
        node = object.entry(key).or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["host"],
            "properties": {
                "host": {"type": "string", "description": "Where it is.\n\nMore."},
                "port": {"type": "integer", "default": 5432},
                "password": {"type": ["string", "null"], "x-secret": true, "writeOnly": true},
                "tls": {"$ref": "#/$defs/Tls"},
                "verbose": {"type": "boolean"},
                "packages": {"type": "array", "items": {"type": "string"}},
                "limits": {"type": "object", "properties": {"disk": {"type": "number"}}}
            },
            "$defs": {"Tls": {"oneOf": [{"const": "verify"}, {"const": "disabled"}]}}
        })
    }

    #[test]
    fn fields_are_typed_from_the_schema_and_named_by_pointer() {
        let fields = fields(&schema(), "/values");
        let kinds: Vec<(String, Kind)> = fields.iter().map(|f| (f.pointer.clone(), f.kind.clone())).collect();
        assert!(kinds.contains(&("/values/tls".into(), Kind::Choice(vec![json!("verify"), json!("disabled")]))));
        assert!(kinds.contains(&("/values/limits".into(), Kind::Group)));
        assert!(fields.iter().find(|f| f.pointer == "/values/password").unwrap().secret);
        assert_eq!(fields.iter().find(|f| f.pointer == "/values/host").unwrap().help.as_deref(), Some("Where it is."));
    }

    #[test]
    fn submitted_pairs_become_typed_json_and_bad_numbers_are_named() {
        let fields = fields(&schema(), "/values");
        let pairs =
            |list: &[(&str, &str)]| list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        let body = read(
            &fields,
            &pairs(&[
                ("/values/host", " db.example "),
                ("/values/port", "6432"),
                ("/values/password", ""),
                ("/values/tls", "disabled"),
                ("/values/verbose", "false"),
                ("/values/verbose", "true"),
                ("/values/packages", "a\n\nb\n"),
                ("/values/limits/disk", "1.5"),
            ]),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"values": {"host": "db.example", "port": 6432, "tls": "disabled", "verbose": true,
                              "packages": ["a", "b"], "limits": {"disk": 1.5}}})
        );
        let (kept, errors) =
            read(&fields, &pairs(&[("/values/host", "h"), ("/values/port", "12x"), ("/values/tls", "maybe")]))
                .unwrap_err();
        assert_eq!(kept, json!({"values": {"host": "h"}}), "what was valid is kept for the form");
        assert_eq!(errors.keys().collect::<Vec<_>>(), ["/values/port", "/values/tls"]);
    }

    #[test]
    fn a_secret_is_never_written_into_the_page() {
        let fields = fields(&schema(), "/values");
        let stored = json!({"values": {"host": "h", "password": "hunter2-secret"}});
        let set = vec!["/values/password".to_owned()];
        let errors = BTreeMap::new();
        let page = render(&fields, &Filled { values: Some(&stored), secrets_set: &set, errors: &errors }).into_string();
        assert!(!page.contains("hunter2-secret"), "{page}");
        assert!(page.contains("set: leave empty to keep"));
        assert!(page.contains(r#"value="h""#));
    }
}
