//! The OpenAPI 3.1 document of the staff API, generated from the same
//! schemas that validate requests and provider calls: the event format,
//! configuration and product inputs, and every blueprint function's params
//! and result.

use std::collections::BTreeMap;

use provisio_engine::catalog::{ConfigurationInput, ProductInput};
use provisio_engine::events::{EventClient, EventPayload};
use provisio_engine::principal::SessionInput;
use provisio_engine::sources::{SourceInput, SourcePatch};
use provisio_engine::staff::{LoginInput, StaffUserInput, StaffUserPatch};
use provisio_engine::tokens::TokenInput;
use provisio_engine::webhooks::{WebhookInput, WebhookPatch};
use provisio_sdk::{Registry, SchemaDoc};
use serde_json::{Map, Value, json};

/// Collects schemas into `components/schemas`, hoisting each schema's
/// `$defs` (renamed with a prefix) and rewriting its references.
#[derive(Default)]
struct Components(BTreeMap<String, Value>);

impl Components {
    /// Adds `schema` as `name`; answers a reference to it.
    fn add(&mut self, name: &str, schema: &Value) -> Value {
        let mut schema = schema.clone();
        let defs = schema.as_object_mut().and_then(|s| s.remove("$defs")).and_then(|d| d.as_object().cloned());
        if let Some(object) = schema.as_object_mut() {
            object.remove("$schema");
        }
        let prefix = format!("{name}.");
        rewrite_refs(&mut schema, &prefix);
        for (def_name, mut def) in defs.unwrap_or_default() {
            rewrite_refs(&mut def, &prefix);
            self.0.insert(format!("{prefix}{def_name}"), def);
        }
        self.0.insert(name.to_owned(), schema);
        json!({"$ref": format!("#/components/schemas/{name}")})
    }
}

fn rewrite_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref")
                && let Some(name) = reference.strip_prefix("#/$defs/")
            {
                *reference = format!("#/components/schemas/{prefix}{name}");
            }
            map.values_mut().for_each(|v| rewrite_refs(v, prefix));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, prefix)),
        _ => {}
    }
}

fn pascal(text: &str) -> String {
    text.split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

fn problem() -> Value {
    json!({"description": "An RFC 9457 problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// A body that may be left out (an empty change, a function without params).
fn optional_body(schema: Value) -> Value {
    json!({"required": false, "content": {"application/json": {"schema": schema}}})
}

fn answer(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// Per function name: params schemas, result schemas, and the blueprints that have it.
type Action = (Vec<Value>, Vec<Value>, Vec<String>);

/// The whole document.
pub fn document(registry: &Registry) -> Value {
    let mut components = Components::default();
    let event = components.add("EventPayload", SchemaDoc::of::<EventPayload>().value());
    // Names the server checks against what is compiled in are listed, so a
    // request the document allows is one the server takes.
    let addresses: Vec<String> = registry.providers(None).iter().map(|p| p.address()).collect();
    let blueprint_ids: Vec<&str> = registry.blueprints().iter().map(|b| b.id).collect();
    let provider_ids: Vec<&str> = {
        let mut ids: Vec<&str> = registry.providers(None).iter().map(|p| p.about().id.as_ref()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut configuration_schema = SchemaDoc::of::<ConfigurationInput>().value().clone();
    configuration_schema["properties"]["provider"]["enum"] = json!(addresses);
    let mut product_schema = SchemaDoc::of::<ProductInput>().value().clone();
    product_schema["properties"]["blueprint"]["enum"] = json!(blueprint_ids);
    product_schema["properties"]["provider"] = json!({"anyOf": [{"enum": provider_ids}, {"type": "null"}]});
    let configuration = components.add("ConfigurationInput", &configuration_schema);
    let product = components.add("ProductInput", &product_schema);
    // A change names only what it changes.
    // A change names only what it changes; what a configuration or product
    // is (its provider, its blueprint) never changes.
    let optional = |mut schema: Value, fixed: &str| {
        if let Some(object) = schema.as_object_mut() {
            object.remove("required");
        }
        if let Some(properties) = schema["properties"].as_object_mut() {
            properties.remove(fixed);
        }
        schema
    };
    let configuration_patch = components.add("ConfigurationPatch", &optional(configuration_schema.clone(), "provider"));
    let product_patch = components.add("ProductPatch", &optional(product_schema.clone(), "blueprint"));
    let client = components.add("ClientInput", SchemaDoc::of::<EventClient>().value());
    components.0.insert(
        "Problem".into(),
        json!({"type": "object", "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {
                "path": {"type": "string", "description": "JSON pointer to the field"}, "message": {"type": "string"}}}}}}),
    );
    components.0.insert(
        "Accepted".into(),
        json!({"type": "object", "properties": {
            "event_id": {"type": "integer"}, "service_id": {"type": "integer"}, "duplicate": {"type": "boolean"},
            "jobs": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "integer"}, "function": {"type": "string"}, "state": {"type": "string"}}}}}}),
    );
    components.0.insert("Object".into(), json!({"type": "object"}));
    let object = json!({"$ref": "#/components/schemas/Object"});
    let list = json!({"type": "array", "items": {"$ref": "#/components/schemas/Object"}});

    // One action path per function name; its body is any of the blueprints' params for it.
    // Per function name: params schemas, result schemas, and the blueprints that have it.
    let mut actions: BTreeMap<&str, Action> = BTreeMap::new();
    for blueprint in registry.blueprints() {
        for function in &blueprint.functions {
            let base = format!("{}{}", pascal(blueprint.id), pascal(function.name));
            // What a caller sends is merged over the service's data.
            let params = components.add(&format!("{base}Params"), function.partial_params.value());
            let result = components.add(&format!("{base}Result"), function.result.value());
            let entry = actions.entry(function.name).or_default();
            entry.0.push(params);
            entry.1.push(result);
            entry.2.push(blueprint.id.to_owned());
        }
    }

    let id = |name: &str| {
        json!({"name": name, "in": "path", "required": true,
               "schema": {"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX}})
    };
    let integer = |name: &str| {
        json!({"name": name, "in": "query",
               "schema": {"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX}})
    };
    let limit = json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}});
    let paging = json!([limit.clone(), integer("before")]);
    let mut paths = Map::new();
    paths.insert(
        "/healthz".into(),
        json!({"get": {"summary": "Health", "security": [], "responses": {"200": {"description": "ok"}}}}),
    );
    paths.insert("/metrics".into(), json!({"get": {"summary": "Metrics in the OpenMetrics text format (a token with the read scope)",
        "responses": {"200": {"description": "Counters, gauges and histograms", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}}}}));
    paths.insert("/openapi.json".into(), json!({"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1"}}}}));
    paths.insert(
        "/api/v1/events".into(),
        json!({"post": {"summary": "Ingest a billing event",
            "description": "Durable before 202. The same event id twice makes jobs once. Sent with a staff token (operate scope), or signed by an event source: Provisio-Source names it, Provisio-Signature is t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\" under its secret>; a signature is accepted once, within 300 seconds of its time.",
            "security": [{"bearer": []}, {"signature": []}],
            "parameters": [{"name": "Provisio-Source", "in": "header", "schema": {"type": "string"}},
                {"name": "dry_run", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]},
                 "description": "true: answer what the event would do (the service, which rules match and why, the jobs with their params, secrets masked, and where a setup would run); nothing is written. A staff token only."}],
            "requestBody": json_body(event), "responses": {"202": answer("Accepted", json!({"$ref": "#/components/schemas/Accepted"})),
                "200": answer("What the event would do (dry_run=true)", object.clone()), "422": problem()}}}),
    );
    paths.insert(
        "/api/v1/sources/{name}/stripe".into(),
        json!({"parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
            "post": {"summary": "A Stripe webhook endpoint for the stripe event source {name}",
            "description": "Verifies Stripe-Signature as Stripe documents it (t=, one or more v1=, 300 seconds) and maps invoice.paid, invoice.payment_failed, customer.subscription.updated and customer.subscription.deleted to events.",
            "security": [{"stripe": []}],
            "requestBody": json_body(json!({"type": "object"})),
            "responses": {"202": answer("Accepted", json!({"$ref": "#/components/schemas/Accepted"})),
                          "200": answer("Nothing to do for this event", object.clone()), "401": problem(), "422": problem()}}}),
    );
    paths.insert("/api/v1/blueprints".into(), json!({"get": {"summary": "Blueprints with their function schemas", "responses": {"200": answer("Blueprints", list.clone())}}}));
    paths.insert("/api/v1/providers".into(), json!({"get": {"summary": "Compiled-in providers", "parameters": [{"name": "blueprint", "in": "query", "schema": {"type": "string"}}], "responses": {"200": answer("Providers", list.clone())}}}));
    paths.insert("/api/v1/blueprints/{id}".into(), json!({"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}], "get": {"summary": "A blueprint with its function schemas", "responses": {"200": answer("Blueprint", object.clone())}}}));
    paths.insert("/api/v1/providers/{blueprint}/{provider}".into(), json!({"parameters": [
        {"name": "blueprint", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "provider", "in": "path", "required": true, "schema": {"type": "string"}}],
        "get": {"summary": "A provider with its configuration schema", "responses": {"200": answer("Provider", object.clone())}}}));
    paths.insert(
        "/api/v1/configurations".into(),
        json!({"get": {"summary": "Provision configurations (secrets shown as [REDACTED])", "parameters": [{"name": "blueprint", "in": "query", "schema": {"type": "string"}}], "responses": {"200": answer("Configurations", list.clone())}},
               "post": {"summary": "Create a provision configuration", "requestBody": json_body(configuration.clone()),
                        "responses": {"201": answer("Created", object.clone()), "422": problem()}}}),
    );
    paths.insert(
        "/api/v1/configurations/{id}".into(),
        json!({"parameters": [id("id")],
               "get": {"summary": "A configuration", "responses": {"200": answer("Configuration", object.clone()), "404": problem()}},
               "patch": {"summary": "Change a configuration (secrets left out are kept; changing an address needs its secrets again)", "requestBody": optional_body(configuration_patch),
                         "responses": {"200": answer("Changed", object.clone()), "422": problem()}},
               "delete": {"summary": "Delete an unused configuration", "responses": {"204": {"description": "Deleted"}, "409": problem()}}}),
    );
    let import = components.add("ImportInput", SchemaDoc::of::<provisio_engine::import::ImportInput>().value());
    let import_page = components.add("ImportPage", SchemaDoc::of::<provisio_engine::import::ImportPage>().value());
    paths.insert("/api/v1/configurations/{id}/import".into(), json!({"parameters": [id("id")], "post": {
        "summary": "Import one page of what the configuration holds: each resource becomes a service of the product (unless a service has it already, it carries another service's owner mark, or its provider refuses it), its owner mark written by an adopt job; dry_run says what would be done. Send next_cursor back as cursor for the next page.",
        "requestBody": json_body(import),
        "responses": {"200": answer("What became of each resource", import_page), "404": problem(), "409": problem(), "422": problem(), "503": problem()}}}));
    paths.insert("/api/v1/configurations/{id}/test".into(), json!({"parameters": [id("id")], "post": {"summary": "Run the provider's connection test", "responses": {"200": answer("Envelope", object.clone())}}}));
    paths.insert(
        "/api/v1/products".into(),
        json!({"get": {"summary": "Products", "responses": {"200": answer("Products", list.clone())}},
               "post": {"summary": "Create a product", "requestBody": json_body(product), "responses": {"201": answer("Created", object.clone()), "422": problem()}}}),
    );
    paths.insert(
        "/api/v1/products/{key}".into(),
        json!({"parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}, "description": "id or slug"}],
               "get": {"summary": "A product", "responses": {"200": answer("Product", object.clone()), "404": problem()}},
               "patch": {"summary": "Change a product", "requestBody": optional_body(product_patch), "responses": {"200": answer("Changed", object.clone()), "422": problem()}}}),
    );
    paths.insert(
        "/api/v1/clients".into(),
        json!({"get": {"summary": "Clients", "parameters": paging.clone(), "responses": {"200": answer("Clients", list.clone())}},
               "post": {"summary": "Create a client", "requestBody": json_body(client), "responses": {"201": answer("Created", object.clone()), "422": problem()}}}),
    );
    paths.insert("/api/v1/clients/{id}".into(), json!({"parameters": [id("id")], "get": {"summary": "A client and its services", "responses": {"200": answer("Client", object.clone())}}}));
    let session = components.add("SessionInput", SchemaDoc::of::<SessionInput>().value());
    paths.insert(
        "/api/v1/clients/{id}/sessions".into(),
        json!({"parameters": [id("id")],
               "post": {"summary": "Open a session for the client: a bearer token for /client/v1 and a one-time hand-off URL that opens the client area logged in (shown once)",
                        "requestBody": optional_body(session), "responses": {"201": answer("The session, its token and hand-off URL", object.clone())}},
               "delete": {"summary": "End every session of the client", "responses": {"200": answer("How many ended", object.clone())}}}),
    );
    let filters = json!([
        {"name": "status", "in": "query", "schema": {"enum": crate::SERVICE_STATUSES}},
        {"name": "product", "in": "query", "schema": {"type": "string", "minLength": 1}, "description": "id or slug of an existing product"},
        integer("client_id"), integer("configuration_id"), limit.clone(), integer("before"),
    ]);
    paths.insert("/api/v1/services".into(), json!({"get": {"summary": "Services", "parameters": filters, "responses": {"200": answer("Services", list.clone())}}}));
    paths.insert("/api/v1/services/{id}".into(), json!({"parameters": [id("id")], "get": {"summary": "A service with its jobs, history and events", "responses": {"200": answer("Service", object.clone()), "404": problem()}}}));
    let page = |most: i64| {
        json!([{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": most}},
               integer("before")])
    };
    paths.insert("/api/v1/services/{id}/events".into(), json!({"parameters": [id("id")], "get": {"summary": "A service's events with their payloads, newest first", "parameters": page(100), "responses": {"200": answer("Events", list.clone()), "404": problem(), "422": problem()}}}));
    paths.insert("/api/v1/services/{id}/history".into(), json!({"parameters": [id("id")], "get": {"summary": "A service's history, newest first", "parameters": page(1000), "responses": {"200": answer("History", list.clone()), "404": problem(), "422": problem()}}}));
    paths.insert("/api/v1/services/{id}/summary".into(), json!({"parameters": [id("id")], "get": {"summary": "The help desk's view: status, configuration, identifier, latest jobs with their user-safe messages, live get_info and get_usage (reused for 30 seconds)", "responses": {"200": answer("Summary", object.clone())}}}));
    let report_names: Vec<&str> = provisio_engine::reports::ReportKind::ALL.iter().map(|k| k.name()).collect();
    paths.insert("/api/v1/reports/{name}".into(), json!({
        "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"enum": report_names}}],
        "get": {"summary": "A report over a period (default the last 30 days), as JSON or CSV (format=csv or Accept: text/csv)",
            "parameters": [
                {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"}, "description": "first day (UTC)"},
                {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"}, "description": "the day after the last (UTC); a period that ends before it starts is empty"},
                {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}}],
            "responses": {"200": {"description": "The report", "content": {
                "application/json": {"schema": {"type": "object", "properties": {"report": {"type": "string"}, "columns": {"type": "array"}, "rows": {"type": "array"}}}},
                "text/csv": {"schema": {"type": "string"}}}}, "422": problem()}}}));
    paths.insert("/api/v1/services/{id}/credentials".into(), json!({"parameters": [id("id")], "post": {"summary": "Reveal the credentials the provider answered at setup (audited)", "responses": {"200": answer("Credentials by JSON pointer", object.clone())}}}));
    for (function, (params, results, blueprints)) in actions.iter() {
        paths.insert(
            format!("/api/v1/services/{{id}}/actions/{function}"),
            json!({"parameters": [id("id")], "post": {
                "summary": format!("Run {function} on demand"),
                "description": format!("Blueprints: {}. Lifecycle functions go through the queue; the answer holds the job and the provider's envelope.", blueprints.join(", ")),
                "requestBody": optional_body(json!({"anyOf": params})),
                "responses": {"200": answer("The job and the envelope", json!({"type": "object", "properties": {
                    "job": {"$ref": "#/components/schemas/Object"},
                    // Null when a queued job has no attempt yet (skipped, or still waiting at the deadline).
                    "envelope": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"data": {"anyOf": [
                        {"anyOf": results},
                        {"type": "object", "description": "field errors of an invalid_input answer",
                         "properties": {"errors": {"type": "array"}}, "required": ["errors"]},
                        {"type": "null"}]}}}]}}})),
                    "404": problem(), "409": problem(), "503": problem()}}}),
        );
    }
    let job_filters = json!([
        {"name": "status", "in": "query", "schema": {"enum": crate::JOB_STATES}},
        integer("service_id"), integer("event_id"), limit.clone(), integer("before"),
    ]);
    paths.insert("/api/v1/jobs".into(), json!({"get": {"summary": "Jobs", "parameters": job_filters, "responses": {"200": answer("Jobs", list.clone())}}}));
    paths.insert("/api/v1/drift".into(), json!({"get": {"summary": "Differences sync found between services' records and their systems, newest first",
        "parameters": [{"name": "open", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}, "description": "false: resolved ones too"}, limit.clone()],
        "responses": {"200": answer("Drift", list.clone()), "422": problem()}}}));
    paths.insert("/api/v1/jobs/{id}".into(), json!({"parameters": [id("id")], "get": {"summary": "A job and its attempts (redacted logs)", "responses": {"200": answer("Job", object.clone())}}}));
    paths.insert("/api/v1/jobs/{id}/retry".into(), json!({"parameters": [id("id")], "post": {"summary": "Queue a failed job again", "responses": {"200": answer("Job", object.clone()), "409": problem()}}}));
    let token = components.add("TokenInput", SchemaDoc::of::<TokenInput>().value());
    paths.insert(
        "/api/v1/tokens".into(),
        json!({"get": {"summary": "Staff tokens (names and dates, never secrets)", "parameters": page(1000), "responses": {"200": answer("Tokens", list.clone())}},
               "post": {"summary": "Make a named staff token; its secret is answered once", "requestBody": json_body(token),
                        "responses": {"201": answer("The token and its secret", object.clone()), "409": problem(), "422": problem()}}}),
    );
    paths.insert("/api/v1/tokens/{id}".into(), json!({"parameters": [id("id")], "delete": {"summary": "Revoke a token (refused everywhere within a second)", "responses": {"200": answer("The revoked token", object.clone()), "404": problem()}}}));
    paths.insert(
        "/api/v1/audit".into(),
        json!({"get": {"summary": "Who did what", "parameters": paging.clone(), "responses": {"200": answer("Entries", list.clone())}}}),
    );
    let source = components.add("SourceInput", SchemaDoc::of::<SourceInput>().value());
    let source_patch = components.add("SourcePatch", SchemaDoc::of::<SourcePatch>().value());
    paths.insert(
        "/api/v1/sources".into(),
        json!({"get": {"summary": "Event sources (never their secrets)", "responses": {"200": answer("Sources", list.clone())}},
               "post": {"summary": "Add an event source; a generated secret is answered once", "requestBody": json_body(source),
                        "responses": {"201": answer("The source", object.clone()), "409": problem()}}}),
    );
    paths.insert(
        "/api/v1/sources/{id}".into(),
        json!({"parameters": [id("id")],
               "get": {"summary": "An event source", "responses": {"200": answer("Source", object.clone())}},
               "patch": {"summary": "Change an event source (roll its secret, its mapping, switch it off)", "requestBody": optional_body(source_patch),
                         "responses": {"200": answer("Changed", object.clone())}},
               "delete": {"summary": "Delete an event source", "responses": {"204": {"description": "Deleted"}}}}),
    );
    let login = components.add("LoginInput", SchemaDoc::of::<LoginInput>().value());
    let user = components.add("StaffUserInput", SchemaDoc::of::<StaffUserInput>().value());
    paths.insert("/api/v1/login".into(), json!({"post": {"summary": "A staff user signs in: a session token with their scope (five failures in a row lock the account for fifteen minutes; one address gets ten attempts, then one every thirty seconds)",
        "security": [], "requestBody": json_body(login), "responses": {"200": answer("The session token", object.clone()), "401": problem(), "429": problem()}}}));
    let user_patch = components.add("StaffUserPatch", SchemaDoc::of::<StaffUserPatch>().value());
    paths.insert("/api/v1/users/{id}".into(), json!({"parameters": [id("id")], "patch": {"summary": "Change a staff user's scope or switch them off; their sessions end at once",
        "requestBody": optional_body(user_patch), "responses": {"200": answer("The user", object.clone())}}}));
    paths.insert("/api/v1/logout".into(), json!({"post": {"summary": "End the caller's staff session", "responses": {"204": {"description": "Ended"}, "409": problem()}}}));
    paths.insert("/api/v1/users".into(), json!({
        "get": {"summary": "Staff users (never their password hashes)", "responses": {"200": answer("Users", list.clone())}},
        "post": {"summary": "Add a staff user; a generated password is answered once", "requestBody": json_body(user),
                 "responses": {"201": answer("The user", object.clone()), "409": problem()}}}));
    let webhook = components.add("WebhookInput", SchemaDoc::of::<WebhookInput>().value());
    let webhook_patch = components.add("WebhookPatch", SchemaDoc::of::<WebhookPatch>().value());
    paths.insert(
        "/api/v1/webhooks".into(),
        json!({"get": {"summary": "Webhook subscribers (never their secrets)", "responses": {"200": answer("Subscribers", list.clone())}},
               "post": {"summary": "Add a webhook subscriber; a generated secret is answered once", "requestBody": json_body(webhook),
                        "responses": {"201": answer("The subscriber", object.clone()), "409": problem()}}}),
    );
    paths.insert(
        "/api/v1/webhooks/{id}".into(),
        json!({"parameters": [id("id")],
               "get": {"summary": "A webhook subscriber", "responses": {"200": answer("Subscriber", object.clone())}},
               "patch": {"summary": "Change a webhook subscriber", "requestBody": optional_body(webhook_patch),
                         "responses": {"200": answer("Changed", object.clone())}},
               "delete": {"summary": "Delete a webhook subscriber and its deliveries", "responses": {"204": {"description": "Deleted"}}}}),
    );
    paths.insert(
        "/api/v1/webhooks/{id}/deliveries".into(),
        json!({"parameters": [id("id")], "get": {"summary": "A subscriber's deliveries, newest first (state, attempts, last answer)", "parameters": paging.clone(),
               "responses": {"200": answer("Deliveries", list.clone())}}}),
    );
    client_paths(&mut paths, registry, &paging, &actions);

    declare_every_answer(&mut paths);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Provisio API (staff /api/v1, clients /client/v1)", "version": env!("CARGO_PKG_VERSION")},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A staff token (/api/v1) or a client session (/client/v1)"},
                "signature": {"type": "apiKey", "in": "header", "name": "Provisio-Signature"},
                "stripe": {"type": "apiKey", "in": "header", "name": "Stripe-Signature"},
                "client_cookie": {"type": "apiKey", "in": "cookie", "name": "provisio_client", "description": "The client area's session (GET only)"},
            },
            "schemas": components.0,
        },
    })
}

/// The client API: a client's own services and what clients may run.
fn client_paths(paths: &mut Map<String, Value>, registry: &Registry, paging: &Value, actions: &BTreeMap<&str, Action>) {
    let id = json!({"name": "id", "in": "path", "required": true,
                    "schema": {"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX}});
    let object = json!({"$ref": "#/components/schemas/Object"});
    let client_security = json!([{"bearer": []}, {"client_cookie": []}]);
    let outcome = answer("The job, its state and the provider's answer (no staff diagnostics)", object.clone());
    paths.insert("/client/handoff".into(), json!({"get": {"summary": "Redeem a one-time hand-off code: sets the client area's session cookie and redirects there",
        "security": [], "parameters": [{"name": "code", "in": "query", "schema": {"type": "string"}}],
        "responses": {"303": {"description": "Logged in; on to the client area"}, "401": problem(), "422": problem()}}}));
    paths.insert(
        "/client/v1/services".into(),
        json!({"get": {"summary": "My services", "security": client_security, "parameters": paging,
        "responses": {"200": answer("Services", json!({"type": "array", "items": object}))}}}),
    );
    paths.insert("/client/v1/services/{id}".into(), json!({"parameters": [id], "get": {"summary": "One of my services: status, safe provision details, what I may run now", "security": client_security, "responses": {"200": answer("Service", object.clone())}}}));
    paths.insert("/client/v1/services/{id}/info".into(), json!({"parameters": [id], "get": {"summary": "Live information from the provider (get_info)", "security": client_security, "responses": {"200": outcome, "409": problem(), "503": problem()}}}));
    paths.insert("/client/v1/services/{id}/usage".into(), json!({"parameters": [id], "get": {"summary": "Live usage from the provider (get_usage)", "security": client_security, "responses": {"200": outcome, "409": problem(), "503": problem()}}}));
    paths.insert("/client/v1/services/{id}/login".into(), json!({"parameters": [id], "get": {"summary": "Single sign-on: a redirect to the provider's one-time login link (or a page that posts its form)", "security": client_security,
        "responses": {"302": {"description": "To the login link"}, "200": {"description": "A page that posts the panel's sign-on form", "content": {"text/html": {}}}, "409": problem(), "502": problem(), "503": problem()}}}));
    paths.insert("/client/v1/services/{id}/password".into(), json!({"parameters": [id], "post": {"summary": "Set my login password (the one given, or a generated one shown in this answer only)",
        "requestBody": optional_body(json!({"type": "object", "additionalProperties": false, "properties": {"password": {"type": "string", "format": "password", "writeOnly": true}}})),
        "responses": {"200": outcome, "409": problem(), "503": problem()}}}));
    paths.insert("/client/v1/services/{id}/credentials".into(), json!({"parameters": [id], "post": {"summary": "Reveal the credentials the provider answered at setup (audited)", "responses": {"200": answer("Credentials by JSON pointer", object)}}}));
    let client_functions: std::collections::BTreeSet<&str> = registry
        .blueprints()
        .iter()
        .flat_map(|b| b.functions.iter().filter(|f| f.callers.contains(&provisio_sdk::Caller::Client)).map(|f| f.name))
        .collect();
    for function in client_functions {
        let Some((params, _, blueprints)) = actions.get(function) else { continue };
        paths.insert(format!("/client/v1/services/{{id}}/actions/{function}"), json!({"parameters": [id], "post": {
            "summary": format!("Run {function} on my service"),
            "description": format!("Blueprints: {}. Only in the statuses the blueprint allows; what names the service cannot be changed.", blueprints.join(", ")),
            "requestBody": optional_body(json!({"anyOf": params})),
            "responses": {"200": outcome, "404": problem(), "409": problem(), "503": problem()}}}));
    }
}

/// Adds to every operation the answers the server can give besides its own
/// (all RFC 9457 problems): 401 without a valid token, 400/413/415/422 for
/// a body, 422 for query parameters (unknown ones too), 404 for a path
/// naming nothing, 405 for a method the path lacks, and 500/503 for what
/// goes wrong inside (`default`).
fn declare_every_answer(paths: &mut Map<String, Value>) {
    for (path, item) in paths.iter_mut() {
        let has_path_parameters = path.contains('{');
        let Some(item) = item.as_object_mut() else { continue };
        let item_parameters = item.contains_key("parameters");
        for (method, operation) in item.iter_mut() {
            if !matches!(method.as_str(), "get" | "post" | "patch" | "delete" | "put") {
                continue;
            }
            let Some(operation) = operation.as_object_mut() else { continue };
            let public = operation.get("security").is_some_and(|s| s.as_array().is_some_and(Vec::is_empty));
            let has_body = operation.contains_key("requestBody") || matches!(method.as_str(), "post" | "patch");
            let has_query = operation
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|p| p.iter().any(|p| p["in"] == "query"));
            let mut codes: Vec<&str> = Vec::new();
            if !public {
                codes.extend(["401", "403"]);
            }
            if has_body {
                codes.extend(["400", "413", "415", "422"]);
            }
            if has_query {
                codes.push("422");
            }
            if has_path_parameters || item_parameters {
                codes.push("404");
            }
            if path.starts_with("/api/v1") || path.starts_with("/client/v1") {
                codes.extend(["404", "405"]);
            }
            let responses = operation.entry("responses").or_insert_with(|| json!({}));
            let Some(responses) = responses.as_object_mut() else { continue };
            for code in codes {
                responses.entry(code).or_insert_with(problem);
            }
            responses.entry("default").or_insert_with(problem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    found.push(reference);
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_every_function_has_a_path() {
        let document = document(&Registry::new(provisio_sdk::blueprints::all()));
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(found.len() > 50);
        for reference in found {
            let pointer = reference.strip_prefix('#').expect("local reference");
            assert!(document.pointer(pointer).is_some(), "{reference} does not resolve");
        }
        for blueprint in provisio_sdk::blueprints::all() {
            for function in &blueprint.functions {
                let path = format!("/api/v1/services/{{id}}/actions/{}", function.name);
                assert!(document["paths"].get(&path).is_some(), "{path}");
            }
        }
        assert!(document["components"]["schemas"]["EventPayload"]["properties"]["service"].is_object());
    }
}
