//! Who is calling and what they may do.
//!
//! [`identify`] turns the request's credential into a [`Principal`] once
//! (a bearer token: a staff token or a client session; in the client area's
//! browser, the session cookie on safe methods) and leaves it in the
//! request. Handlers say what they need by the extractor they take:
//! [`Staff<Read>`], [`Staff<Operate>`], [`Staff<Admin>`] or [`ClientCaller`].
//! Signed requests from billing systems are checked where their body is
//! read (`billing.rs`).

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
pub use provisio_engine::principal::Principal;
use provisio_store::models::Scope;

use crate::{AppState, Problem};

/// How long a credential found live is trusted before it is looked up again:
/// a revoked token or ended session stops working within this time.
const RECHECK: Duration = Duration::from_secs(1);
/// The client area's session cookie.
pub const CLIENT_COOKIE: &str = "provisio_client";

/// The caller of a request, if it presented a live credential.
#[derive(Clone)]
pub struct Caller(pub Option<Principal>);

/// A bearer token, if the request has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}

/// The client area's session cookie, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CLIENT_COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// Finds the caller of a staff API request (bearer tokens only).
pub async fn identify_staff(state: State<AppState>, request: Request, next: Next) -> Response {
    identify(state, request, next, false).await
}

/// Finds the caller of a client API request (a bearer token, or the client
/// area's cookie on safe methods).
pub async fn identify_client(state: State<AppState>, request: Request, next: Next) -> Response {
    identify(state, request, next, true).await
}

/// Finds the caller. A credential that is presented but not live is refused
/// here; no credential leaves the decision to the handler's extractor.
async fn identify(State(state): State<AppState>, mut request: Request, next: Next, cookie: bool) -> Response {
    // The cookie is the browser's: it counts only on safe methods of the
    // client area, so a page elsewhere cannot make a browser change anything.
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    let credential = bearer(request.headers())
        .or_else(|| (safe && cookie).then(|| session_cookie(request.headers())).flatten())
        .map(str::to_owned);
    let principal = match credential {
        None => None,
        Some(secret) => match lookup(&state, &secret).await {
            Ok(Some(principal)) => Some(principal),
            Ok(None) => return unauthorized("The credential is not valid (unknown, expired or revoked)"),
            Err(problem) => return problem.into_response(),
        },
    };
    request.extensions_mut().insert(Caller(principal));
    next.run(request).await
}

async fn lookup(state: &AppState, secret: &str) -> Result<Option<Principal>, Problem> {
    let digest = state.engine.vault().digest(secret);
    let cached = state
        .principals
        .read()
        .expect("principal cache lock")
        .get(&digest)
        .filter(|(_, checked)| checked.elapsed() < RECHECK)
        .map(|(principal, _)| principal.clone());
    if let Some(principal) = cached {
        return Ok(Some(principal));
    }
    let found = state.engine.access().identify(secret).await?;
    let mut cache = state.principals.write().expect("principal cache lock");
    // Entries of ended or unused credentials do not pile up.
    cache.retain(|_, (_, checked)| checked.elapsed() < RECHECK);
    match &found {
        Some(principal) => {
            cache.insert(digest, (principal.clone(), Instant::now()));
        }
        None => {
            cache.remove(&digest);
        }
    }
    Ok(found)
}

/// A 401 that says how to authenticate.
pub fn unauthorized(detail: &str) -> Response {
    let mut response = Problem::new(axum::http::StatusCode::UNAUTHORIZED, detail).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

fn forbidden(detail: String) -> Response {
    Problem::new(axum::http::StatusCode::FORBIDDEN, detail).into_response()
}

fn caller(parts: &Parts) -> Option<Principal> {
    parts.extensions.get::<Caller>().and_then(|c| c.0.clone())
}

/// A staff scope a route needs.
pub trait Need: Send + Sync + 'static {
    const SCOPE: Scope;
}

/// Reading: `read` and above.
pub struct Read;
/// Running actions, retrying jobs, sending events, adding clients and
/// opening their sessions: `operate` and above.
pub struct Operate;
/// Changing configurations, products, tokens and event sources: `admin`.
pub struct Admin;

impl Need for Read {
    const SCOPE: Scope = Scope::Read;
}
impl Need for Operate {
    const SCOPE: Scope = Scope::Operate;
}
impl Need for Admin {
    const SCOPE: Scope = Scope::Admin;
}

/// A staff caller with at least scope `N`.
pub struct Staff<N: Need> {
    pub principal: Principal,
    need: PhantomData<N>,
}

impl<N: Need> Staff<N> {
    /// How the audit log names the caller.
    pub fn actor(&self) -> String {
        self.principal.actor()
    }
}

impl<N: Need> FromRequestParts<AppState> for Staff<N> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        match caller(parts) {
            None => Err(unauthorized("A staff token is required (Authorization: Bearer TOKEN)")),
            Some(principal @ Principal::Staff { scope, .. }) if scope >= N::SCOPE => {
                Ok(Staff { principal, need: PhantomData })
            }
            Some(Principal::Staff { scope, .. }) => {
                Err(forbidden(format!("This needs a token with the {} scope; this token has {scope}", N::SCOPE)))
            }
            Some(_) => Err(forbidden("This is the staff API; client sessions use /client/v1".into())),
        }
    }
}

/// The client whose session made the request.
pub struct ClientCaller {
    pub client_id: i64,
    pub principal: Principal,
}

impl FromRequestParts<AppState> for ClientCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        match caller(parts) {
            None => Err(unauthorized("A client session is required (Authorization: Bearer TOKEN)")),
            Some(principal @ Principal::Client { client_id, .. }) => Ok(ClientCaller { client_id, principal }),
            Some(_) => Err(forbidden("This is the client API; staff use /api/v1".into())),
        }
    }
}
