//! Staff users: people who sign in with a username and password and get a
//! session with their scope (for the console to come, and for people who
//! would rather not hold a long-lived token).
//!
//! Passwords are hashed with argon2id (the `argon2` crate's defaults, the
//! OWASP minimum: 19 MiB, 2 passes) on a blocking thread, at most
//! [`HASHES_AT_ONCE`] at a time (a flood of sign-ins gets 503, not the
//! server's memory). Each attempt is counted before its password is
//! checked, so concurrent guesses cannot slip past the lock: five failures
//! in a row lock the account for fifteen minutes. An unknown username costs
//! the same hash as a known one and gets the same answer.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use provisio_sdk::SchemaDoc;
use provisio_store::models::{Scope, StaffUser};
use provisio_store::{audit, now_ms, staff};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::catalog::decode;
use crate::{Access, EngineError};

/// Prefix of staff session tokens.
pub const STAFF_SESSION_PREFIX: &str = "pst_";
/// Failed sign-ins in a row that lock an account.
pub const MAX_FAILURES: i64 = 5;
/// How long a locked account stays locked.
pub const LOCK_MS: i64 = 15 * 60 * 1000;
/// How long a staff session lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// Password hashes computed at once (each takes 19 MiB and a core for a while).
pub const HASHES_AT_ONCE: usize = 2;
/// How long a sign-in waits for a hashing slot before answering busy.
const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs a password hash or check on a blocking thread, within the limit.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, EngineError> {
    static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHES_AT_ONCE);
    let _slot = tokio::time::timeout(HASH_WAIT, SLOTS.acquire())
        .await
        .map_err(|_| EngineError::Busy("Too many sign-ins at once; try again shortly".into()))?
        .expect("the semaphore is never closed");
    tokio::task::spawn_blocking(work).await.map_err(|err| EngineError::Config(err.to_string()))
}

/// A staff user as an admin describes them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffUserInput {
    /// Their sign-in name.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9][a-z0-9._@-]*$"))]
    pub username: String,
    /// What they may do.
    pub scope: Scope,
    /// Their password (12 characters or more); generated and shown once when absent.
    #[serde(default)]
    #[schemars(length(min = 12, max = 256), extend("writeOnly" = true))]
    pub password: Option<String>,
}

/// A change to a staff user (it ends their sessions).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffUserPatch {
    #[serde(default)]
    pub scope: Option<Scope>,
    /// A disabled user cannot sign in and their sessions end.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// A sign-in.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    #[schemars(length(min = 1, max = 64))]
    pub username: String,
    #[schemars(length(min = 1, max = 256), extend("writeOnly" = true))]
    pub password: String,
}

/// A user just made; a generated password is shown this once.
#[derive(Debug, Clone)]
pub struct NewStaffUser {
    pub user: StaffUser,
    pub generated_password: Option<String>,
}

/// A session just opened.
#[derive(Debug, Clone, Serialize)]
pub struct StaffLogin {
    /// Bearer token for `/api/v1` with the user's scope.
    pub token: String,
    pub username: String,
    pub scope: Scope,
    #[serde(serialize_with = "provisio_store::models::timestamp")]
    pub expires_at: i64,
}

fn hash(password: String) -> Result<String, EngineError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|err| EngineError::Config(format!("cannot hash a password: {err}")))
}

/// Checks a password against a PHC string; a bad string never matches.
fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A hash to check unknown usernames against, so they cost the same time.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash("provisio decoy password".into()).expect("hashing works"))
}

impl Access {
    /// Adds a staff user.
    pub async fn create_staff_user(&self, actor: &str, body: &Value) -> Result<NewStaffUser, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let input: StaffUserInput = decode(body, &SCHEMA)?;
        let generated_password = input.password.is_none().then(|| provisio_sdk::formats::generate_password(20));
        let password = input.password.clone().or_else(|| generated_password.clone()).expect("one of them");
        let password_hash = hashing(move || hash(password)).await??;
        let actor = actor.to_owned();
        let user = self
            .engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let user = staff::insert(conn, &input.username, &password_hash, input.scope)
                        .await
                        .map_err(|err| crate::catalog::unique(err, "/username", "is taken"))?;
                    audit::record(
                        conn,
                        &actor,
                        "staff_user.create",
                        &format!("staff_user:{}", user.id),
                        &json!({"username": user.username, "scope": user.scope}),
                    )
                    .await?;
                    Ok::<_, EngineError>(user)
                })
            })
            .await?;
        Ok(NewStaffUser { user, generated_password })
    }

    /// Changes a staff user's scope or switches them off; their sessions end at once.
    pub async fn update_staff_user(&self, actor: &str, id: i64, body: &Value) -> Result<StaffUser, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let patch: StaffUserPatch = decode(body, &SCHEMA)?;
        let actor = actor.to_owned();
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    let user = staff::update(conn, id, patch.scope, patch.disabled)
                        .await?
                        .ok_or_else(|| EngineError::NotFound(format!("no staff user {id}")))?;
                    audit::record(
                        conn,
                        &actor,
                        "staff_user.update",
                        &format!("staff_user:{id}"),
                        &json!({"scope": patch.scope, "disabled": patch.disabled}),
                    )
                    .await?;
                    Ok(user)
                })
            })
            .await
    }

    /// Counts one sign-in attempt from `address` against its allowance;
    /// every door calls this before it reads the attempt.
    pub fn count_sign_in(&self, address: std::net::IpAddr) -> Result<(), EngineError> {
        self.engine.inner.sign_ins.attempt(address).map_err(|wait| {
            EngineError::TooMany("too many sign-in attempts from this address; try again later".into(), wait)
        })
    }

    /// Signs a staff user in: a session token with their scope.
    pub async fn staff_login(&self, body: &Value) -> Result<StaffLogin, EngineError> {
        static SCHEMA: OnceLock<SchemaDoc> = OnceLock::new();
        let input: LoginInput = decode(body, &SCHEMA)?;
        let username = input.username.clone();
        let user = self
            .engine
            .store()
            .read(move |conn| Box::pin(async move { staff::by_username(conn, &username).await }))
            .await?;
        // One answer for every refusal: it tells nobody which usernames exist.
        let refused = || {
            EngineError::Unauthorized(
                "wrong username or password (after five failures in a row the account is locked for fifteen minutes)"
                    .into(),
            )
        };
        let user = user.filter(|u| !u.disabled);
        // The attempt is counted before the password is checked (and the
        // count cleared on success), so concurrent guesses all count.
        let counted = match &user {
            Some(user) => {
                let id = user.id;
                self.engine
                    .store()
                    .write(move |conn| {
                        Box::pin(async move { staff::count_attempt(conn, id, MAX_FAILURES, now_ms() + LOCK_MS).await })
                    })
                    .await?
            }
            None => false,
        };
        let phc = user.as_ref().filter(|_| counted).map(|u| u.password_hash.clone());
        let password = input.password.clone();
        let matches = hashing(move || match phc {
            Some(phc) => verify(&password, &phc),
            None => {
                verify(&password, decoy());
                false
            }
        })
        .await?;
        let Some(user) = user.filter(|_| counted) else { return Err(refused()) };
        if !matches {
            let (id, actor) = (user.id, format!("user:{}", user.username));
            self.engine.record_audit(actor, "staff_user.login_failed", format!("staff_user:{id}"), json!({})).await?;
            return Err(refused());
        }
        let token = crate::vault::random_token(STAFF_SESSION_PREFIX);
        let digest = self.engine.vault().digest(&token);
        let expires_at = now_ms() + SESSION_TTL_MS;
        let (id, username) = (user.id, user.username.clone());
        self.engine
            .store()
            .write(move |conn| {
                Box::pin(async move {
                    staff::good_login(conn, id).await?;
                    let session = staff::open_session(conn, id, &digest, expires_at).await?;
                    audit::record(
                        conn,
                        &format!("user:{username}"),
                        "staff_user.login",
                        &format!("staff_user:{id}"),
                        &json!({"session": session}),
                    )
                    .await
                })
            })
            .await?;
        Ok(StaffLogin { token, username: user.username, scope: user.scope, expires_at })
    }

    /// Ends the staff session of `token`.
    pub async fn staff_logout(&self, token: &str) -> Result<(), EngineError> {
        if !token.starts_with(STAFF_SESSION_PREFIX) {
            return Err(EngineError::Conflict("staff tokens are revoked with DELETE /api/v1/tokens/{id}".into()));
        }
        let digest = self.engine.vault().digest(token);
        self.engine.store().write(move |conn| Box::pin(async move { staff::end_session(conn, &digest).await })).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_and_are_salted() {
        let one = hash("correct horse battery".into()).unwrap();
        let two = hash("correct horse battery".into()).unwrap();
        assert!(one.starts_with("$argon2id$"));
        assert_ne!(one, two);
        assert!(verify("correct horse battery", &one));
        assert!(!verify("correct horse batterz", &one));
        assert!(!verify("anything", "not a hash"));
    }
}
