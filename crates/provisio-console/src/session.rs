//! Staff sign-in for the console: a session cookie, a CSRF token bound to
//! it, and sign-out.
//!
//! - The cookie holds a staff session token (`pst_…`, made by the engine's
//!   `staff_login`); it is `HttpOnly`, `SameSite=Strict`, and `Secure` when
//!   the public URL is https. A sign-in always makes a new session, so a
//!   token planted before sign-in is never promoted (no fixation).
//! - Every form carries `_csrf`: a keyed digest of the session token, so it
//!   needs no storage and dies with the session. A POST without the right
//!   one changes nothing; a POST whose `Origin` is another site is refused
//!   before that (`crate::same_origin_only`).

use std::net::SocketAddr;

use axum::Extension;
use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use provisio_engine::EngineError;
use provisio_engine::principal::Principal;
use provisio_store::models::Scope;
use serde_json::json;

use crate::Console;
use crate::layout::{self, Refusal};

/// The staff session cookie; behind https it is `__Host-` prefixed, which
/// browsers accept only from this host, `Secure` and on `/` (a sibling
/// subdomain cannot plant one).
pub const STAFF_COOKIE: &str = "provisio_staff";
const STAFF_COOKIE_SECURE: &str = "__Host-provisio_staff";

fn cookie_name(console: &Console) -> &'static str {
    if console.secure_cookies { STAFF_COOKIE_SECURE } else { STAFF_COOKIE }
}

/// A signed-in staff member.
#[derive(Clone)]
pub struct StaffSession {
    pub principal: Principal,
    /// The session token (the cookie's value).
    token: String,
    /// Their name, as the audit log shows it.
    pub name: String,
    pub scope: Scope,
    /// The token every form of this session carries.
    pub csrf: String,
}

impl std::fmt::Debug for StaffSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token or the CSRF value.
        f.debug_struct("StaffSession").field("name", &self.name).field("scope", &self.scope).finish_non_exhaustive()
    }
}

impl StaffSession {
    /// The audit log's name for them.
    pub fn actor(&self) -> String {
        self.principal.actor()
    }

    /// Refuses what needs more than their scope.
    pub fn require(&self, scope: Scope) -> Result<(), Refusal> {
        if self.scope >= scope {
            Ok(())
        } else {
            Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!("This needs the {} scope; you have {}.", scope.as_str(), self.scope.as_str()),
            ))
        }
    }

    /// Refuses a form without this session's CSRF token.
    pub fn check(&self, console: &Console, pairs: &[(String, String)]) -> Result<(), Refusal> {
        if carries_token(console, pairs, &self.csrf) {
            Ok(())
        } else {
            Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this console; reload the page and try again.",
            ))
        }
    }
}

/// Whether a form carries `expected` as its `_csrf` (compared as digests,
/// so the comparison's time says nothing).
pub(crate) fn carries_token(console: &Console, pairs: &[(String, String)], expected: &str) -> bool {
    let vault = console.engine.vault();
    vault.digest(crate::form::field(pairs, "_csrf")) == vault.digest(expected)
}

fn csrf_of(console: &Console, token: &str) -> String {
    console.engine.vault().digest(&format!("console-csrf:{token}"))
}

/// A cookie's value from the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

impl FromRequestParts<Console> for StaffSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Self::Rejection> {
        let to_sign_in = || Redirect::to("/login").into_response();
        let Some(token) = cookie(&parts.headers, cookie_name(console)).filter(|t| t.starts_with("pst_")) else {
            return Err(to_sign_in());
        };
        match console.engine.access().identify(token).await {
            Ok(Some(principal @ Principal::Staff { .. })) => {
                let Principal::Staff { name, scope, .. } = &principal else { unreachable!() };
                let (name, scope) = (name.clone(), *scope);
                Ok(StaffSession { csrf: csrf_of(console, token), token: token.to_owned(), name, scope, principal })
            }
            Ok(_) => Err(to_sign_in()),
            Err(err) => Err(crate::failure(err)),
        }
    }
}

fn sign_in_form(message: Option<&str>, username: &str) -> maud::Markup {
    layout::bare(
        "Sign in",
        html! {
            @if let Some(message) = message { p.notice.bad role="alert" { (message) } }
            form.narrow method="post" action="/login" {
                div.field {
                    label for="username" { "Username" }
                    input type="text" id="username" name="username" autocomplete="username" required value=(username);
                }
                div.field {
                    label for="password" { "Password" }
                    input type="password" id="password" name="password" autocomplete="current-password" required;
                }
                button.primary type="submit" { "Sign in" }
            }
        },
    )
}

/// `GET /login`.
pub async fn login_page() -> Response {
    layout::respond(StatusCode::OK, sign_in_form(None, ""))
}

/// `POST /login`: a new session in a new cookie, or the form again.
pub async fn login(
    State(console): State<Console>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| crate::form::field(&pairs, name).to_owned();
    let username = field("username");
    let access = console.engine.access();
    if let Some(Extension(ConnectInfo(peer))) = peer
        && let Err(err) = access.count_sign_in(peer.ip())
    {
        return layout::respond(StatusCode::TOO_MANY_REQUESTS, sign_in_form(Some(&err.to_string()), &username));
    }
    match access.staff_login(&json!({"username": username, "password": field("password")})).await {
        Ok(login) => {
            let max_age = ((login.expires_at - provisio_store::now_ms()) / 1000).max(0);
            let cookie = format!(
                "{}={}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
                cookie_name(&console),
                login.token,
                if console.secure_cookies { "; Secure" } else { "" }
            );
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("token is plain"));
            response
        }
        Err(EngineError::Invalid(_)) => layout::respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            sign_in_form(Some("Enter your username and password."), &username),
        ),
        Err(err @ (EngineError::Unauthorized(_) | EngineError::Busy(_))) => {
            layout::respond(StatusCode::UNAUTHORIZED, sign_in_form(Some(&err.to_string()), &username))
        }
        Err(err) => crate::failure(err),
    }
}

/// `POST /logout`: ends the session everywhere and clears the cookie.
pub async fn logout(
    State(console): State<Console>,
    session: StaffSession,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(refused) = session.check(&console, &pairs) {
        return refused.into_response();
    }
    if let Err(err) = console.engine.access().staff_logout(&session.token).await {
        return crate::failure(err);
    }
    let mut response = Redirect::to("/login").into_response();
    let secure = if console.secure_cookies { "; Secure" } else { "" };
    let cleared = format!("{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}", cookie_name(&console));
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cleared).expect("plain"));
    response
}
