//! Staff tokens: named, revocable, stored as keyed digests (see
//! [`crate::Vault::digest`]); the audit log names the token behind every
//! change. The token in `PROVISIO_ADMIN_TOKEN` is the live token named
//! `environment`: a new value replaces the old one.

use std::sync::OnceLock;

use provisio_sdk::SchemaDoc;
use provisio_store::models::{ApiToken, Scope};
use provisio_store::{audit, tokens};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::decode;
use crate::{Access, EngineError};

/// The shortest token accepted from the environment (generated ones are 68 characters).
pub const MIN_TOKEN_LEN: usize = 16;

/// The name of the token given by `PROVISIO_ADMIN_TOKEN`.
pub const ENVIRONMENT: &str = "environment";

/// The setting that holds the secrets key's check value.
const KEY_CHECK: &str = "secrets_key_check";

/// A token as staff ask for it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// Who or what will hold it, e.g. `billing` or `ann`; the audit log names it.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9][a-z0-9._-]*$"))]
    pub name: String,
    /// What it may do: `read`, `operate` (also actions, retries, events,
    /// clients and their sessions) or `admin` (also configurations,
    /// products, tokens, event sources and webhooks).
    pub scope: Scope,
}

/// A token just made: its secret is shown this once.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub token: ApiToken,
    /// The bearer token; only its digest is kept.
    pub secret: String,
}

impl Access {
    /// Makes a token named as `body` says; a live token of that name is a conflict.
    pub async fn create_token(&self, actor: &str, body: &Value) -> Result<NewToken, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let input: TokenInput = decode(body, &SCHEMA)?;
        if input.name == ENVIRONMENT {
            return Err(EngineError::invalid("/name", "is kept for PROVISIO_ADMIN_TOKEN"));
        }
        let secret = crate::vault::random_token("prv_");
        let digest = self.engine.vault().digest(&secret);
        let actor = actor.to_owned();
        let token = self
            .engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let token = tokens::insert(conn, &input.name, input.scope, &digest).await.map_err(|err| {
                        if err.is_unique_violation() {
                            EngineError::Conflict(format!("a live token is already named {}", input.name))
                        } else {
                            EngineError::Store(err)
                        }
                    })?;
                    audit::record(
                        conn,
                        &actor,
                        "token.create",
                        &format!("token:{}", token.id),
                        &json!({"name": token.name, "scope": token.scope}),
                    )
                    .await?;
                    Ok::<_, EngineError>(token)
                })
            })
            .await?;
        Ok(NewToken { token, secret })
    }

    /// Revokes a live token; it stops working within a second everywhere.
    /// The environment token is changed where it is set, not here.
    pub async fn revoke_token(&self, actor: &str, id: i64) -> Result<ApiToken, EngineError> {
        let actor = actor.to_owned();
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    if tokens::live_name(conn, id).await?.as_deref() == Some(ENVIRONMENT) {
                        return Err(EngineError::Conflict(
                            "the environment token is replaced by changing PROVISIO_ADMIN_TOKEN and restarting".into(),
                        ));
                    }
                    let token = tokens::revoke(conn, id)
                        .await?
                        .ok_or_else(|| EngineError::NotFound(format!("no live token {id}")))?;
                    audit::record(conn, &actor, "token.revoke", &format!("token:{id}"), &json!({"name": token.name}))
                        .await?;
                    Ok(token)
                })
            })
            .await
    }

    /// Makes `secret` the live token named `name`, replacing the one of that
    /// name (the environment token on each start). Answers whether it is new.
    pub async fn install_token(&self, name: &str, secret: &str) -> Result<bool, EngineError> {
        if secret.chars().count() < MIN_TOKEN_LEN {
            return Err(EngineError::Config(format!(
                "a staff token must have at least {MIN_TOKEN_LEN} characters (generate one with `openssl rand -hex 24`)"
            )));
        }
        let digest = self.engine.vault().digest(secret);
        let name = name.to_owned();
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    if tokens::find(conn, &digest).await?.is_some_and(|t| t.name == name) {
                        return Ok(false);
                    }
                    tokens::revoke_named(conn, &name).await?;
                    // The environment's and the first start's tokens administer.
                    let token = tokens::insert(conn, &name, Scope::Admin, &digest).await?;
                    audit::record(
                        conn,
                        "system",
                        "token.install",
                        &format!("token:{}", token.id),
                        &json!({"name": name}),
                    )
                    .await?;
                    Ok::<_, EngineError>(true)
                })
            })
            .await
    }

    /// When no token is live, makes one named `initial` and answers its
    /// secret (to print once).
    pub async fn ensure_a_token(&self) -> Result<Option<String>, EngineError> {
        let live = self.engine.store().read(|conn| Box::pin(async move { tokens::count_live(conn).await })).await?;
        if live > 0 {
            return Ok(None);
        }
        let secret = crate::vault::random_token("prv_");
        self.install_token("initial", &secret).await?;
        Ok(Some(secret))
    }

    /// Refuses a secrets key other than the one this database's secrets were
    /// sealed with (a lost key file, another directory), instead of sealing
    /// new secrets with it and failing on every old one later.
    pub async fn check_secrets_key(&self) -> Result<(), EngineError> {
        let ours = self.engine.vault().check_value();
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    // The first process to record its key wins; another
                    // started at the same time with another key is refused.
                    if tokens::setting_or_insert(conn, KEY_CHECK, &ours).await? == ours {
                        Ok(())
                    } else {
                        Err(EngineError::Config(
                            "this database's secrets were sealed with another secrets key: start with the key file \
                             or PROVISIO_SECRET_KEY it was created with"
                                .into(),
                        ))
                    }
                })
            })
            .await
    }
}

/// Whether this database has recorded which secrets key it uses (then a
/// missing key file must not be replaced by a new key).
pub async fn secrets_key_recorded(store: &provisio_store::Store) -> Result<bool, EngineError> {
    Ok(store.read(|conn| Box::pin(async move { tokens::setting(conn, KEY_CHECK).await })).await?.is_some())
}
