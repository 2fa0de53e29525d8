//! Products and their provisioning options: blueprint, provider (automatic
//! or explicit), static or dynamic deployment (strategy and attributes),
//! setup function, provision fields, and automation rules (the blueprint's
//! defaults shown, overrides editable).

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use provisio_engine::catalog::Strategy;
use provisio_engine::rules;
use provisio_sdk::{BlueprintDescriptor, FunctionKind};
use provisio_store::models::{Product, Scope};
use serde_json::{Map, Value, json};

use crate::session::StaffSession;
use crate::staff::cell;
use crate::{Console, layout};

type Pairs = Vec<(String, String)>;

/// `GET /products`.
pub async fn list(State(console): State<Console>, session: StaffSession) -> Response {
    let products = match console.engine.queries().products().await {
        Ok(products) => products,
        Err(err) => return crate::failure(err),
    };
    let body = html! {
        @if session.scope >= Scope::Admin { p { a.button href="/products/new" { "Add a product" } } }
        div.scroll { table {
            thead { tr { th scope="col" { "Product" } th scope="col" { "Blueprint" } th scope="col" { "Provider" } th scope="col" { "Deployment" } th scope="col" { "Setup" } } }
            tbody { @for p in &products { tr {
                td { a href=(format!("/products/{}", p.slug)) { (p.name) } br; span.muted { (p.slug) } }
                td { (p.blueprint) }
                td { (p.provider.as_deref().unwrap_or("automatic")) }
                td { (deployment_text(p)) }
                td { (p.setup_function) }
            } } }
        } }
    };
    layout::respond(StatusCode::OK, layout::staff("Products", &session, body))
}

fn deployment_text(p: &Product) -> String {
    match (p.deployment.as_str(), p.configuration_id) {
        ("static", Some(id)) => format!("static: configuration {id}"),
        _ => format!("dynamic: {} {}", p.strategy.as_deref().unwrap_or("least_used"), p.attribute_filters),
    }
}

/// `GET /products/new[?blueprint=B]`.
pub async fn new(
    State(console): State<Console>,
    session: StaffSession,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(refused) = session.require(Scope::Admin) {
        return refused.into_response();
    }
    let registry = console.engine.registry();
    let Some(blueprint) = query.get("blueprint").and_then(|b| registry.blueprint(b).ok()) else {
        let body = html! {
            p { "Choose the blueprint: the kind of product it is." }
            ul { @for b in registry.blueprints() {
                li { a href=(format!("/products/new?blueprint={}", b.id)) { (b.name) } " — " (b.description) }
            } }
        };
        return layout::respond(StatusCode::OK, layout::staff("Add a product", &session, body));
    };
    editor(&console, &session, blueprint, None, None, &BTreeMap::new(), StatusCode::OK).await
}

/// What the form shows: a stored product or what was submitted.
#[derive(Default)]
struct Shown {
    slug: String,
    name: String,
    provider: String,
    deployment: String,
    configuration_id: String,
    strategy: String,
    attributes: String,
    setup_function: String,
    provision_fields: String,
    rules: String,
}

impl Shown {
    fn of(product: &Product) -> Shown {
        Shown {
            slug: product.slug.clone(),
            name: product.name.clone(),
            provider: product.provider.clone().unwrap_or_default(),
            deployment: product.deployment.clone(),
            configuration_id: product.configuration_id.map(|id| id.to_string()).unwrap_or_default(),
            strategy: product.strategy.clone().unwrap_or_default(),
            attributes: pretty(&product.attribute_filters),
            setup_function: product.setup_function.clone(),
            provision_fields: pretty(&product.provision_fields),
            rules: if product.rules.as_array().is_some_and(|r| !r.is_empty()) {
                pretty(&product.rules)
            } else {
                String::new()
            },
        }
    }

    fn submitted(pairs: &Pairs) -> Shown {
        let field = |name: &str| crate::form::field(pairs, name).to_owned();
        Shown {
            slug: field("slug"),
            name: field("name"),
            provider: field("provider"),
            deployment: field("deployment"),
            configuration_id: field("configuration_id"),
            strategy: field("strategy"),
            attributes: field("attributes"),
            setup_function: field("setup_function"),
            provision_fields: field("provision_fields"),
            rules: field("rules"),
        }
    }
}

fn pretty(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => String::new(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// A JSON text area's value (empty: `empty`), or the error by field.
fn json_field(text: &str, pointer: &str, empty: Value, errors: &mut BTreeMap<String, String>) -> Value {
    if text.trim().is_empty() {
        return empty;
    }
    serde_json::from_str(text).unwrap_or_else(|err| {
        errors.insert(pointer.to_owned(), format!("{} is not valid JSON: {err}", pointer.trim_start_matches('/')));
        empty
    })
}

/// The request body of a submitted form.
fn read_body(blueprint: &BlueprintDescriptor, shown: &Shown) -> Result<Value, BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    let deployment = if shown.deployment == "static" {
        match shown.configuration_id.parse::<i64>() {
            Ok(id) => json!({"type": "static", "configuration_id": id}),
            Err(_) => {
                errors.insert("/deployment/configuration_id".into(), "choose the configuration".into());
                Value::Null
            }
        }
    } else {
        let attributes = json_field(&shown.attributes, "/deployment/attributes", json!({}), &mut errors);
        json!({"type": "dynamic", "strategy": if shown.strategy.is_empty() { "least_used" } else { &shown.strategy }, "attributes": attributes})
    };
    let mut body = Map::new();
    body.insert("slug".into(), json!(shown.slug.trim()));
    body.insert("name".into(), json!(shown.name.trim()));
    body.insert("blueprint".into(), json!(blueprint.id));
    if !shown.provider.is_empty() {
        body.insert("provider".into(), json!(shown.provider));
    }
    body.insert("deployment".into(), deployment);
    if !shown.setup_function.is_empty() {
        body.insert("setup_function".into(), json!(shown.setup_function));
    }
    body.insert(
        "provision_fields".into(),
        json_field(&shown.provision_fields, "/provision_fields", json!({}), &mut errors),
    );
    body.insert("rules".into(), json_field(&shown.rules, "/rules", json!([]), &mut errors));
    if errors.is_empty() { Ok(Value::Object(body)) } else { Err(errors) }
}

async fn editor(
    console: &Console,
    session: &StaffSession,
    blueprint: &'static BlueprintDescriptor,
    stored: Option<&Product>,
    submitted: Option<Shown>,
    errors: &BTreeMap<String, String>,
    status: StatusCode,
) -> Response {
    let configurations = match console.engine.queries().configurations(Some(blueprint.id.to_owned())).await {
        Ok(list) => list,
        Err(err) => return crate::failure(err),
    };
    let shown = submitted.unwrap_or_else(|| {
        stored.map(Shown::of).unwrap_or_else(|| Shown { deployment: "dynamic".into(), ..Shown::default() })
    });
    let providers = console.engine.registry().providers(Some(blueprint.id));
    let setup_functions: Vec<&str> =
        blueprint.functions.iter().filter(|f| f.kind == FunctionKind::Lifecycle).map(|f| f.name).collect();
    let error = |pointer: &str| errors.iter().find(|(p, _)| p.starts_with(pointer)).map(|(_, m)| m.clone());
    let (action, title) = match stored {
        Some(p) => (format!("/products/{}", p.slug), p.name.clone()),
        None => ("/products".to_owned(), format!("Add a {} product", blueprint.name)),
    };
    let body = html! {
        @if !errors.is_empty() {
            div.notice.bad role="alert" { p { "Please correct the fields below." } ul { @for (_, m) in errors { li { (m) } } } }
        }
        form method="post" action=(action) {
            input type="hidden" name="_csrf" value=(session.csrf);
            input type="hidden" name="blueprint" value=(blueprint.id);
            fieldset {
                legend { "Product" }
                (text_field("slug", "Slug", &shown.slug, "Unique, lower case: demo-hosting-eu.", error("/slug")))
                (text_field("name", "Name", &shown.name, "What clients and staff see.", error("/name")))
            }
            fieldset {
                legend { "Provisioning options" }
                div.field {
                    label for="provider" { "Provider" }
                    select id="provider" name="provider" {
                        option value="" selected[shown.provider.is_empty()] { "automatic (any provider of " (blueprint.name) ")" }
                        @for p in &providers { option value=(p.about().id) selected[shown.provider == p.about().id] { (p.about().name) } }
                    }
                }
                fieldset.group {
                    legend { "Deployment" }
                    label.check { input type="radio" name="deployment" value="dynamic" checked[shown.deployment != "static"]; " Dynamic: picked at setup by strategy, attributes and capacity" }
                    label.check { input type="radio" name="deployment" value="static" checked[shown.deployment == "static"]; " Static: always one configuration" }
                    div.field {
                        label for="strategy" { "Strategy (dynamic)" }
                        select id="strategy" name="strategy" {
                            @for s in Strategy::ALL { option value=(s.as_str()) selected[shown.strategy == s.as_str()] { (s.as_str().replace('_', " ")) } }
                        }
                    }
                    (area_field("attributes", "Attributes a configuration must have (dynamic), JSON", &shown.attributes, r#"{"location": "eu"}"#, error("/deployment/attributes")))
                    div.field.invalid[error("/deployment/configuration_id").is_some()] {
                        label for="configuration_id" { "Configuration (static)" }
                        select id="configuration_id" name="configuration_id" {
                            option value="" { "(choose)" }
                            @for c in &configurations {
                                @let id = c.configuration.id.to_string();
                                option value=(id) selected[shown.configuration_id == id] { (c.configuration.name) }
                            }
                        }
                        @if let Some(e) = error("/deployment/configuration_id") { p.error { (e) } }
                    }
                }
                div.field {
                    label for="setup_function" { "Setup function" }
                    select id="setup_function" name="setup_function" {
                        option value="" selected[shown.setup_function.is_empty()] { "blueprint default (" (blueprint.default_setup_function) ")" }
                        @for f in &setup_functions { option value=(f) selected[shown.setup_function == *f] { (f) } }
                    }
                }
                (area_field("provision_fields", "Provision fields: preset params, JSON", &shown.provision_fields, r#"{"package_name": "basic"}"#, error("/provision_fields")))
            }
            fieldset {
                legend { "Automation rules" }
                p.help { "The blueprint's defaults; rules below replace them for the event types they name." }
                (rules_table(blueprint))
                (area_field("rules", "Overrides, JSON list", &shown.rules, r#"[{"event": "contract.overdue", "function": "suspend", "when_status": ["active"]}]"#, error("/rules")))
            }
            button.primary type="submit" { (if stored.is_some() { "Save" } else { "Add product" }) }
        }
    };
    layout::respond(status, layout::staff(&title, session, body))
}

fn rules_table(blueprint: &BlueprintDescriptor) -> Markup {
    html! {
        div.scroll { table {
            thead { tr { th scope="col" { "Event" } th scope="col" { "Function" } th scope="col" { "When the service is" } } }
            tbody { @for rule in rules::defaults(blueprint) { tr {
                td { (rule.event) } td { (rule.function) }
                td { (rule.when_status.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
            } } }
        } }
    }
}

fn text_field(name: &str, label: &str, value: &str, help: &str, error: Option<String>) -> Markup {
    html! {
        div.field.invalid[error.is_some()] {
            label for=(name) { (label) }
            input type="text" id=(name) name=(name) value=(value) aria-describedby=(format!("{name}-help"));
            @if let Some(e) = error { p.error role="alert" { (e) } }
            p.help id=(format!("{name}-help")) { (help) }
        }
    }
}

fn area_field(name: &str, label: &str, value: &str, example: &str, error: Option<String>) -> Markup {
    html! {
        div.field.invalid[error.is_some()] {
            label for=(name) { (label) }
            textarea.code id=(name) name=(name) rows="3" placeholder=(example) { (value) }
            @if let Some(e) = error { p.error role="alert" { (e) } }
        }
    }
}

/// `POST /products`.
pub async fn create(State(console): State<Console>, session: StaffSession, Form(pairs): Form<Pairs>) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Admin)) {
        return refused.into_response();
    }
    let blueprint_id = crate::form::field(&pairs, "blueprint");
    let Ok(blueprint) = console.engine.registry().blueprint(blueprint_id) else {
        return layout::error_page(StatusCode::UNPROCESSABLE_ENTITY, "Choose a blueprint.");
    };
    let shown = Shown::submitted(&pairs);
    let body = match read_body(blueprint, &shown) {
        Ok(body) => body,
        Err(errors) => {
            return editor(&console, &session, blueprint, None, Some(shown), &errors, StatusCode::UNPROCESSABLE_ENTITY)
                .await;
        }
    };
    match console.engine.catalog().create_product(&session.actor(), &body).await {
        Ok(product) => Redirect::to(&format!("/products/{}", product.slug)).into_response(),
        Err(err) => match crate::field_messages(&err) {
            Some(errors) => {
                editor(&console, &session, blueprint, None, Some(shown), &errors, StatusCode::UNPROCESSABLE_ENTITY)
                    .await
            }
            None => crate::failure(err),
        },
    }
}

/// `GET /products/{slug}`.
pub async fn show(State(console): State<Console>, session: StaffSession, Path(key): Path<String>) -> Response {
    let product = match console.engine.queries().product(&key).await {
        Ok(product) => product,
        Err(err) => return crate::failure(err),
    };
    let Ok(blueprint) = console.engine.registry().blueprint(&product.blueprint) else {
        return layout::error_page(StatusCode::CONFLICT, "This product's blueprint is not compiled in.");
    };
    if session.scope < Scope::Admin {
        let body = html! {
            dl.summary {
                dt { "Blueprint" } dd { (product.blueprint) }
                dt { "Provider" } dd { (product.provider.as_deref().unwrap_or("automatic")) }
                dt { "Deployment" } dd { (deployment_text(&product)) }
                dt { "Setup function" } dd { (product.setup_function) }
                dt { "Provision fields" } dd { (cell(&product.provision_fields)) }
            }
            (rules_table(blueprint))
        };
        return layout::respond(StatusCode::OK, layout::staff(&product.name, &session, body));
    }
    editor(&console, &session, blueprint, Some(&product), None, &BTreeMap::new(), StatusCode::OK).await
}

/// `POST /products/{slug}`.
pub async fn update(
    State(console): State<Console>,
    session: StaffSession,
    Path(key): Path<String>,
    Form(pairs): Form<Pairs>,
) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Admin)) {
        return refused.into_response();
    }
    let product = match console.engine.queries().product(&key).await {
        Ok(product) => product,
        Err(err) => return crate::failure(err),
    };
    let Ok(blueprint) = console.engine.registry().blueprint(&product.blueprint) else {
        return layout::error_page(StatusCode::CONFLICT, "This product's blueprint is not compiled in.");
    };
    let shown = Shown::submitted(&pairs);
    let mut body = match read_body(blueprint, &shown) {
        Ok(body) => body,
        Err(errors) => {
            return editor(
                &console,
                &session,
                blueprint,
                Some(&product),
                Some(shown),
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    // A provider or setup function left automatic clears the stored one.
    body["provider"] = body.get("provider").cloned().unwrap_or(Value::Null);
    body["setup_function"] = body.get("setup_function").cloned().unwrap_or(Value::Null);
    match console.engine.catalog().update_product(&session.actor(), &key, &body).await {
        Ok(product) => Redirect::to(&format!("/products/{}", product.slug)).into_response(),
        Err(err) => match crate::field_messages(&err) {
            Some(errors) => {
                editor(
                    &console,
                    &session,
                    blueprint,
                    Some(&product),
                    Some(shown),
                    &errors,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await
            }
            None => crate::failure(err),
        },
    }
}
