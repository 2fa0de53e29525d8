//! How the workbench prints: readable tables by default, JSON with `--json`.

use provisio_sdk::{BlueprintDescriptor, CallReport, ProviderEntry};
use serde_json::{Value, json};

/// `println!` that ends the process quietly once the reader has gone
/// (`provisio blueprints | head`), as Unix tools do, instead of panicking.
macro_rules! out {
    () => { $crate::render::write_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::render::write_line(format_args!($($arg)*)) };
}

/// Writes a line to standard output; a closed pipe ends the process with 0.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n")) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {err}");
        std::process::exit(1);
    }
}

/// Pretty JSON on standard output.
pub fn json(value: &Value) {
    out!("{}", serde_json::to_string_pretty(value).expect("JSON values serialise"));
}

/// Rows of `label  value`, values indented under their label when multi-line.
fn table(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, value) in rows {
        let mut lines = value.lines();
        out!("{label:width$}  {}", lines.next().unwrap_or(""));
        for line in lines {
            out!("{:width$}  {line}", "");
        }
    }
}

pub fn blueprints(blueprints: &[&BlueprintDescriptor]) {
    for (i, blueprint) in blueprints.iter().enumerate() {
        if i > 0 {
            out!();
        }
        out!("{}  ({})", blueprint.id, blueprint.name);
        out!("  {}", blueprint.description);
        for function in &blueprint.functions {
            let optional = if function.optional { ", optional" } else { "" };
            let kind = serde_json::to_value(function.kind).expect("kind serialises");
            out!("  - {:<20} {}{optional}", function.name, kind.as_str().unwrap_or_default());
        }
    }
}

pub fn providers(providers: &[&ProviderEntry]) {
    let width = providers.iter().map(|p| p.address().len()).max().unwrap_or(0);
    for provider in providers {
        out!("{:width$}  {}: {}", provider.address(), provider.about().name, provider.about().description);
    }
}

/// One line per top-level field of a schema: name, type, default, marks.
fn fields(schema: &Value) -> String {
    let required: Vec<&str> =
        schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else {
        return "(none)".into();
    };
    if properties.is_empty() {
        return "(none)".into();
    }
    properties
        .iter()
        .map(|(name, prop)| {
            let prop = match prop.get("$ref").and_then(Value::as_str) {
                Some(reference) => schema.pointer(reference.trim_start_matches('#')).unwrap_or(prop),
                None => prop,
            };
            let mut ty = match &prop["type"] {
                Value::String(t) => t.clone(),
                Value::Array(ts) => {
                    ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect::<Vec<_>>().join("|")
                }
                _ if prop.get("enum").is_some() || prop.get("oneOf").is_some() => "enum".into(),
                _ => "object".into(),
            };
            if let Some(format) = prop["format"].as_str() {
                ty = format!("{ty} ({format})");
            }
            let mut marks = Vec::new();
            if required.contains(&name.as_str()) {
                marks.push("required".to_owned());
            }
            if prop["x-secret"] == json!(true) || prop["writeOnly"] == json!(true) {
                marks.push("secret".to_owned());
            }
            if let Some(default) = prop.get("default") {
                marks.push(format!("default {default}"));
            }
            let description = prop["description"].as_str().unwrap_or_default().lines().next().unwrap_or_default();
            format!("{name}: {ty}  [{}]  {description}", marks.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn describe(entry: &ProviderEntry) {
    let blueprint = entry.blueprint();
    table(&[
        ("provider", entry.address()),
        ("name", entry.about().name.to_string()),
        ("description", entry.about().description.to_string()),
        ("blueprint", format!("{} ({})", blueprint.id, blueprint.name)),
        ("identifier", format!("{} ({:?})", blueprint.service_identifier, blueprint.identifiers).to_lowercase()),
        ("ownership", blueprint.ownership.to_owned()),
        ("login", blueprint.login_function.unwrap_or("-").to_owned()),
        ("password", blueprint.password_function.unwrap_or("-").to_owned()),
        ("configuration", fields(entry.config_schema().value())),
    ]);
    for function in &blueprint.functions {
        out!();
        let kind = serde_json::to_value(function.kind).expect("kind serialises");
        let callers: Vec<String> =
            function.callers.iter().map(|c| serde_json::to_value(c).expect("callers serialise").to_string()).collect();
        let statuses: Vec<&str> = function.statuses.iter().map(|s| s.as_str()).collect();
        table(&[
            ("function", format!("{}{}", function.name, if function.optional { " (optional)" } else { "" })),
            ("description", function.description.clone()),
            (
                "kind",
                format!("{}; on demand by {}", kind.as_str().unwrap_or_default(), callers.join(", ").replace('"', "")),
            ),
            ("statuses", statuses.join(", ")),
            ("params", fields(function.params.value())),
            ("result", fields(function.result.value())),
        ]);
    }
}

pub fn report(report: &CallReport, as_json: bool, verbose: bool) {
    let envelope = &report.envelope;
    if as_json {
        let mut value = serde_json::to_value(envelope).expect("envelopes serialise");
        if verbose {
            value["http_log"] = serde_json::to_value(&report.http_log).expect("logs serialise");
        }
        json(&value);
        return;
    }
    let status = match envelope.error_kind {
        None => "ok".to_owned(),
        Some(kind) => format!("error ({kind})"),
    };
    let mut rows = vec![("status", status), ("message", envelope.message.to_string())];
    for error in envelope.field_errors() {
        rows.push(("field", format!("{} {}", error.path, error.message)));
    }
    if envelope.is_ok()
        && let Some(data) = &envelope.data
    {
        rows.push(("data", serde_json::to_string_pretty(data).expect("data serialises")));
    }
    if let Some(debug) = &envelope.debug {
        rows.push(("debug", serde_json::to_string_pretty(debug).expect("debug serialises")));
    }
    table(&rows);
    if verbose {
        out!();
        if report.http_log.is_empty() {
            out!("(no HTTP requests)");
        }
        for exchange in &report.http_log {
            out!(
                "{} {} -> {} ({} ms)",
                exchange.method,
                exchange.url,
                exchange.status.map(|s| s.to_string()).or(exchange.error.clone()).unwrap_or_default(),
                exchange.duration_ms
            );
            for (name, value) in &exchange.request_headers {
                out!("  > {name}: {value}");
            }
            if let Some(body) = &exchange.request_body {
                out!("  > {body}");
            }
            for (name, value) in &exchange.response_headers {
                out!("  < {name}: {value}");
            }
            if let Some(body) = &exchange.response_body {
                out!("  < {body}");
            }
        }
    }
}

/// A report as an aligned table: a header of its columns, a row per row.
pub fn report_table(report: &Value) {
    let columns: Vec<&str> = report["columns"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let rows: Vec<Vec<String>> = report["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            columns
                .iter()
                .map(|c| match &row[*c] {
                    Value::String(s) => s.clone(),
                    Value::Null => "-".to_owned(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| rows.iter().map(|r| r[i].chars().count()).chain([c.len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    out!("{}", line(columns.clone()));
    for row in &rows {
        out!("{}", line(row.iter().map(String::as_str).collect()));
    }
    if rows.is_empty() {
        out!("(nothing in {} to {})", report["from"].as_str().unwrap_or("?"), report["to"].as_str().unwrap_or("?"));
    }
}

/// A value as a person reads it: a list of objects as a table of their
/// plain fields, an object as `field  value` rows (nested values as
/// compact JSON), anything else as JSON.
pub fn value_table(value: &Value) {
    let plain = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    match value {
        Value::Array(items) if items.iter().all(Value::is_object) => {
            if items.is_empty() {
                out!("(none)");
                return;
            }
            // The first item's scalar fields, at most nine.
            let columns: Vec<&str> = items[0]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, v)| !v.is_object() && !v.is_array())
                .map(|(k, _)| k.as_str())
                .take(9)
                .collect();
            let rows: Vec<Vec<String>> =
                items.iter().map(|item| columns.iter().map(|c| plain(&item[*c])).collect()).collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| rows.iter().map(|r| r[i].chars().count().min(48)).chain([c.len()]).max().unwrap_or(0))
                .collect();
            let line = |cells: Vec<String>| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(cell, width)| {
                        let cell: String = cell.chars().take(48).collect();
                        format!("{cell:width$}")
                    })
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            out!("{}", line(columns.iter().map(|c| (*c).to_owned()).collect()));
            for row in rows {
                out!("{}", line(row));
            }
        }
        Value::Object(map) => {
            let rows: Vec<(&str, String)> = map
                .iter()
                .map(|(k, v)| (k.as_str(), if v.is_object() || v.is_array() { v.to_string() } else { plain(v) }))
                .collect();
            table(&rows);
        }
        other => json(other),
    }
}
