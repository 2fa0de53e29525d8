//! Who is calling: a staff token with its scope, a client's session, or a
//! billing system that signed its request. One value names the caller to
//! every check and to the audit log.
//!
//! Client sessions are minted by the billing system (a staff token with the
//! `operate` scope) for one client. Each comes with a one-time hand-off code
//! that opens the client area in a browser: redeeming it starts a browser
//! session of its own, so the code is useless once used or after
//! [`HANDOFF_TTL_MS`].

use std::sync::OnceLock;

use provisio_sdk::SchemaDoc;
use provisio_store::models::{ClientSession, Scope};
use provisio_store::{audit, clients, now_ms, sessions, staff, tokens};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::decode;
use crate::{Access, EngineError};

/// Prefix of client session tokens (staff tokens start `prv_`).
pub const CLIENT_SESSION_PREFIX: &str = "pcs_";
/// Prefix of hand-off codes.
const HANDOFF_PREFIX: &str = "pch_";
/// How long a hand-off code can be redeemed.
pub const HANDOFF_TTL_MS: i64 = 120_000;
/// A client session's default and longest life.
pub const SESSION_TTL_DEFAULT_SECS: i64 = 3600;
pub const SESSION_TTL_MAX_SECS: i64 = 86_400;

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A staff token, or a staff user's session (`person`).
    Staff { token_id: i64, name: String, scope: Scope, person: bool },
    /// A client, through one of its sessions.
    Client { client_id: i64, session_id: i64 },
    /// A billing system that signed the request.
    Source { source_id: i64, name: String },
}

impl Principal {
    /// How the audit log names it.
    pub fn actor(&self) -> String {
        match self {
            Principal::Staff { name, person: true, .. } => format!("user:{name}"),
            Principal::Staff { name, .. } => format!("token:{name}"),
            Principal::Client { client_id, session_id } => format!("client:{client_id}/session:{session_id}"),
            Principal::Source { name, .. } => format!("source:{name}"),
        }
    }

    /// The staff scope, if staff.
    pub fn scope(&self) -> Option<Scope> {
        match self {
            Principal::Staff { scope, .. } => Some(*scope),
            _ => None,
        }
    }
}

/// What opening a client session asks for.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionInput {
    /// How long the session lasts, seconds (default 3600).
    #[serde(default)]
    #[schemars(range(min = 60, max = 86400))]
    pub ttl_secs: Option<i64>,
}

/// A client session just opened: its token and hand-off code are shown this once.
#[derive(Debug, Clone)]
pub struct NewClientSession {
    pub session: ClientSession,
    /// Bearer token for `/client/v1`.
    pub token: String,
    /// One-time code for the hand-off URL.
    pub handoff_code: String,
}

impl Access {
    /// The caller behind a bearer token, if it is live.
    pub async fn identify(&self, secret: &str) -> Result<Option<Principal>, EngineError> {
        let digest = self.engine.vault().digest(secret);
        if secret.starts_with(CLIENT_SESSION_PREFIX) {
            let found = self
                .engine
                .store()
                .read(move |conn| Box::pin(async move { sessions::find(conn, &digest).await }))
                .await?;
            return Ok(found.map(|s| Principal::Client { client_id: s.client_id, session_id: s.id }));
        }
        if secret.starts_with(crate::staff::STAFF_SESSION_PREFIX) {
            let found = self
                .engine
                .store()
                .read(move |conn| Box::pin(async move { staff::session(conn, &digest).await }))
                .await?;
            return Ok(found.map(|(session, user)| Principal::Staff {
                token_id: session,
                name: user.username,
                scope: user.scope,
                person: true,
            }));
        }
        let found =
            self.engine.store().read(move |conn| Box::pin(async move { tokens::find(conn, &digest).await })).await?;
        Ok(found.map(|t| Principal::Staff { token_id: t.id, name: t.name, scope: t.scope, person: false }))
    }

    /// Opens a session for a client, as `body` asks.
    pub async fn open_client_session(
        &self,
        actor: &str,
        client_id: i64,
        body: &Value,
    ) -> Result<NewClientSession, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let input: SessionInput = decode(body, &SCHEMA)?;
        let ttl_ms = input.ttl_secs.unwrap_or(SESSION_TTL_DEFAULT_SECS) * 1000;
        let token = crate::vault::random_token(CLIENT_SESSION_PREFIX);
        let handoff_code = crate::vault::random_token(HANDOFF_PREFIX);
        let (digest, handoff_digest) = (self.engine.vault().digest(&token), self.engine.vault().digest(&handoff_code));
        let actor = actor.to_owned();
        let session = self
            .engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    clients::get(conn, client_id)
                        .await?
                        .ok_or_else(|| EngineError::NotFound(format!("no client {client_id}")))?;
                    let now = now_ms();
                    let session = sessions::insert(
                        conn,
                        &sessions::NewSession {
                            client_id,
                            digest: &digest,
                            handoff_digest: Some(&handoff_digest),
                            handoff_expires_at: Some(now + HANDOFF_TTL_MS.min(ttl_ms)),
                            expires_at: now + ttl_ms,
                            created_by: &actor,
                        },
                    )
                    .await?;
                    audit::record(
                        conn,
                        &actor,
                        "client_session.open",
                        &format!("client:{client_id}"),
                        &json!({"session_id": session.id, "expires_at": session.expires_at}),
                    )
                    .await?;
                    Ok::<_, EngineError>(session)
                })
            })
            .await?;
        Ok(NewClientSession { session, token, handoff_code })
    }

    /// Redeems a hand-off code, once: answers a new browser session's token,
    /// lasting as long as the session the code came with.
    pub async fn redeem_handoff(&self, code: &str) -> Result<Option<(String, ClientSession)>, EngineError> {
        if !code.starts_with(HANDOFF_PREFIX) {
            return Ok(None);
        }
        let handoff_digest = self.engine.vault().digest(code);
        let token = crate::vault::random_token(CLIENT_SESSION_PREFIX);
        let digest = self.engine.vault().digest(&token);
        let opened = self
            .engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let Some(minted) = sessions::redeem_handoff(conn, &handoff_digest).await? else {
                        return Ok::<_, EngineError>(None);
                    };
                    let browser = sessions::insert(
                        conn,
                        &sessions::NewSession {
                            client_id: minted.client_id,
                            digest: &digest,
                            handoff_digest: None,
                            handoff_expires_at: None,
                            expires_at: minted.expires_at,
                            created_by: &format!("handoff:{}", minted.id),
                        },
                    )
                    .await?;
                    audit::record(
                        conn,
                        &format!("client:{}/session:{}", minted.client_id, minted.id),
                        "client_session.handoff",
                        &format!("client:{}", minted.client_id),
                        &json!({"session_id": browser.id}),
                    )
                    .await?;
                    Ok(Some(browser))
                })
            })
            .await?;
        Ok(opened.map(|session| (token, session)))
    }

    /// Ends every session of a client at once (within a second everywhere).
    pub async fn end_client_sessions(&self, actor: &str, client_id: i64) -> Result<usize, EngineError> {
        let actor = actor.to_owned();
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    clients::get(conn, client_id)
                        .await?
                        .ok_or_else(|| EngineError::NotFound(format!("no client {client_id}")))?;
                    let ended = sessions::revoke_for_client(conn, client_id).await?;
                    sessions::prune(conn).await?;
                    audit::record(
                        conn,
                        &actor,
                        "client_session.end_all",
                        &format!("client:{client_id}"),
                        &json!({"ended": ended}),
                    )
                    .await?;
                    Ok(ended)
                })
            })
            .await
    }
}
