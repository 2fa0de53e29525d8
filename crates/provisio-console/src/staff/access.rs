//! Staff users and staff tokens (`admin`): add a user (a password given or
//! generated and shown once), switch one off or on, make a token (its
//! secret shown once), revoke one.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use provisio_engine::EngineError;
use provisio_store::models::Scope;
use serde_json::{Value, json};

use crate::session::StaffSession;
use crate::staff::when;
use crate::{Console, layout};

type Pairs = Vec<(String, String)>;

/// `GET /access`.
pub async fn page(State(console): State<Console>, session: StaffSession) -> Response {
    if let Err(refused) = session.require(Scope::Admin) {
        return refused.into_response();
    }
    render(&console, &session, None, StatusCode::OK).await
}

async fn render(
    console: &Console,
    session: &StaffSession,
    notice: Option<(bool, String)>,
    status: StatusCode,
) -> Response {
    let queries = console.engine.queries();
    let (users, tokens) = match (queries.staff_users().await, queries.tokens(200, None).await) {
        (Ok(users), Ok(tokens)) => (users, tokens),
        (Err(err), _) | (_, Err(err)) => return crate::failure(err),
    };
    let scopes = || html! { @for s in Scope::ALL { option value=(s.as_str()) { (s.as_str()) } } };
    let body = html! {
        @if let Some((good, text)) = &notice { div.notice.good[*good].bad[!*good] role="status" { p { (text) } } }
        h2 { "Staff users" }
        div.scroll { table {
            thead { tr { th scope="col" { "User" } th scope="col" { "Scope" } th scope="col" { "State" } th scope="col" { "" } } }
            tbody { @for user in &users { tr {
                td { (user.username) } td { (user.scope.as_str()) }
                td { @if user.disabled { "switched off" } @else if let Some(until) = user.locked_until { "locked until " (when(until)) } @else { "active" } }
                td { form method="post" action=(format!("/access/users/{}", user.id)) {
                    input type="hidden" name="_csrf" value=(session.csrf);
                    input type="hidden" name="disabled" value=(if user.disabled { "false" } else { "true" });
                    button type="submit" { (if user.disabled { "Switch on" } else { "Switch off" }) }
                } }
            } } }
        } }
        form method="post" action="/access/users" {
            input type="hidden" name="_csrf" value=(session.csrf);
            fieldset { legend { "Add a staff user" }
                div.field { label for="username" { "Username" } input type="text" id="username" name="username" required; }
                div.field { label for="scope" { "Scope" } select id="scope" name="scope" { (scopes()) } }
                div.field {
                    label for="new-password" { "Password" }
                    input type="password" id="new-password" name="password" autocomplete="new-password" aria-describedby="new-password-help";
                    p.help id="new-password-help" { "Leave empty to generate one, shown once." }
                }
                button.primary type="submit" { "Add user" }
            }
        }
        h2 { "Staff tokens" }
        div.scroll { table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Scope" } th scope="col" { "Made" } th scope="col" { "" } } }
            tbody { @for token in &tokens { tr {
                td { (token.name) } td { (token.scope.as_str()) } td { (when(token.created_at)) }
                td { @if let Some(at) = token.revoked_at { "revoked " (when(at)) } @else {
                    form method="post" action=(format!("/access/tokens/{}/revoke", token.id)) {
                        input type="hidden" name="_csrf" value=(session.csrf);
                        button type="submit" aria-label=(format!("Revoke {}", token.name)) { "Revoke" }
                    }
                } }
            } } }
        } }
        form method="post" action="/access/tokens" {
            input type="hidden" name="_csrf" value=(session.csrf);
            fieldset { legend { "Make a token" }
                div.field { label for="token-name" { "Name" } input type="text" id="token-name" name="name" required; }
                div.field { label for="token-scope" { "Scope" } select id="token-scope" name="scope" { (scopes()) } }
                button.primary type="submit" { "Make token" }
            }
        }
    };
    layout::respond(status, layout::staff("Staff access", session, body))
}

/// What a refused change says on the page.
fn refusal_text(err: &EngineError) -> Option<String> {
    match err {
        EngineError::Conflict(detail) => Some(detail.clone()),
        other => crate::field_messages(other).map(|m| m.into_values().collect::<Vec<_>>().join("; ")),
    }
}

async fn after(console: &Console, session: &StaffSession, result: Result<Option<String>, EngineError>) -> Response {
    match result {
        Ok(None) => Redirect::to("/access").into_response(),
        Ok(Some(shown_once)) => render(console, session, Some((true, shown_once)), StatusCode::OK).await,
        Err(err) => match refusal_text(&err) {
            Some(text) => render(console, session, Some((false, text)), StatusCode::UNPROCESSABLE_ENTITY).await,
            None => crate::failure(err),
        },
    }
}

/// `POST /access/users`.
pub async fn add_user(State(console): State<Console>, session: StaffSession, Form(pairs): Form<Pairs>) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Admin)) {
        return refused.into_response();
    }
    let mut body =
        json!({"username": crate::form::field(&pairs, "username"), "scope": crate::form::field(&pairs, "scope")});
    if !crate::form::field(&pairs, "password").is_empty() {
        body["password"] = Value::from(crate::form::field(&pairs, "password"));
    }
    let result = console.engine.access().create_staff_user(&session.actor(), &body).await.map(|made| {
        made.generated_password
            .map(|p| format!("{} was added. Their password, shown this once: {p}", made.user.username))
    });
    after(&console, &session, result).await
}

/// `POST /access/users/{id}`: switches a user off (ending their sessions) or on.
pub async fn switch_user(
    State(console): State<Console>,
    session: StaffSession,
    Path(id): Path<i64>,
    Form(pairs): Form<Pairs>,
) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Admin)) {
        return refused.into_response();
    }
    let body = json!({"disabled": crate::form::field(&pairs, "disabled") == "true"});
    let result = console.engine.access().update_staff_user(&session.actor(), id, &body).await.map(|_| None);
    after(&console, &session, result).await
}

/// `POST /access/tokens`.
pub async fn make_token(State(console): State<Console>, session: StaffSession, Form(pairs): Form<Pairs>) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Admin)) {
        return refused.into_response();
    }
    let body = json!({"name": crate::form::field(&pairs, "name"), "scope": crate::form::field(&pairs, "scope")});
    let result = console
        .engine
        .access()
        .create_token(&session.actor(), &body)
        .await
        .map(|made| Some(format!("Token {} made. Its secret, shown this once: {}", made.token.name, made.secret)));
    after(&console, &session, result).await
}

/// `POST /access/tokens/{id}/revoke`.
pub async fn revoke_token(
    State(console): State<Console>,
    session: StaffSession,
    Path(id): Path<i64>,
    Form(pairs): Form<Pairs>,
) -> Response {
    if let Err(refused) = session.check(&console, &pairs).and_then(|()| session.require(Scope::Admin)) {
        return refused.into_response();
    }
    let result = console.engine.access().revoke_token(&session.actor(), id).await.map(|_| None);
    after(&console, &session, result).await
}
