//! The simulated servers' state: one SQLite file shared by every demo
//! provider, so services survive between calls and processes.
//!
//! Each service is a JSON document keyed by blueprint, server and service
//! identifier. Every create that really creates something is also appended
//! to `creations`, so tests can count what the "third party" did.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use provisio_sdk::ProviderError;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, Transaction};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS servers (
    blueprint TEXT NOT NULL,
    name TEXT NOT NULL,
    api_key_sha256 TEXT,
    PRIMARY KEY (blueprint, name)
);
CREATE TABLE IF NOT EXISTS services (
    blueprint TEXT NOT NULL,
    server TEXT NOT NULL,
    identifier TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (blueprint, server, identifier)
);
CREATE TABLE IF NOT EXISTS idempotency (
    blueprint TEXT NOT NULL,
    server TEXT NOT NULL,
    key TEXT NOT NULL,
    identifier TEXT NOT NULL,
    PRIMARY KEY (blueprint, server, key)
);
CREATE TABLE IF NOT EXISTS creations (
    id INTEGER PRIMARY KEY,
    blueprint TEXT NOT NULL,
    server TEXT NOT NULL,
    identifier TEXT NOT NULL,
    at TEXT NOT NULL
);
";

/// One stored service.
#[derive(Debug, Clone)]
pub struct Record {
    /// The service's document.
    pub data: Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What a create did.
#[derive(Debug)]
pub enum Created {
    /// A new service was created.
    New(Value),
    /// A matching service existed and is answered instead.
    Adopted(Value),
}

impl Created {
    /// The service document either way.
    pub fn into_data(self) -> Value {
        match self {
            Created::New(data) | Created::Adopted(data) => data,
        }
    }
}

/// The state of one blueprint's simulated server inside a state file.
#[derive(Debug, Clone)]
pub struct State {
    pool: SqlitePool,
    path: String,
    blueprint: &'static str,
    server: String,
}

fn pools() -> &'static Mutex<HashMap<String, SqlitePool>> {
    static POOLS: OnceLock<Mutex<HashMap<String, SqlitePool>>> = OnceLock::new();
    POOLS.get_or_init(Default::default)
}

fn storage_error(err: sqlx::Error) -> ProviderError {
    ProviderError::internal(format!("demo state: {err}"))
}

impl State {
    /// Opens (creating if needed) the state file; pools are shared per path.
    pub async fn open(path: &str, blueprint: &'static str, server: &str) -> Result<State, ProviderError> {
        let existing = pools().lock().expect("pool map lock").get(path).cloned();
        let pool = match existing {
            Some(pool) => pool,
            None => {
                let options = SqliteConnectOptions::from_str("sqlite:")
                    .map_err(storage_error)?
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30));
                // One connection: the simulator serialises its writes like a
                // single control panel would, and never sees SQLITE_BUSY.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(300))
                    .connect_with(options)
                    .await
                    .map_err(|err| ProviderError::internal(format!("cannot open demo state {path}: {err}")))?;
                sqlx::raw_sql(SCHEMA).execute(&pool).await.map_err(storage_error)?;
                pools().lock().expect("pool map lock").entry(path.to_owned()).or_insert(pool).clone()
            }
        };
        Ok(State { pool, path: path.to_owned(), blueprint, server: server.to_owned() })
    }

    /// Checks the API key against the server's (the first key presented to a
    /// fresh server becomes its key). Answers whether it was accepted.
    pub async fn check_api_key(&self, api_key: Option<&str>) -> Result<bool, ProviderError> {
        let presented = api_key.map(sha256_hex);
        // Keys accepted before, per state file and server: a real server
        // keeps sessions too, and it saves a write per call.
        static ACCEPTED: OnceLock<Mutex<std::collections::HashSet<String>>> = OnceLock::new();
        let accepted_key =
            format!("{}|{}|{}|{}", self.path, self.blueprint, self.server, presented.as_deref().unwrap_or("-"));
        if ACCEPTED.get_or_init(Default::default).lock().expect("accepted keys lock").contains(&accepted_key) {
            return Ok(true);
        }
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT api_key_sha256 FROM servers WHERE blueprint = ? AND name = ?")
            .bind(self.blueprint)
            .bind(&self.server)
            .fetch_optional(&mut *tx)
            .await
            .map_err(storage_error)?;
        let accepted = match row {
            None => {
                sqlx::query("INSERT INTO servers (blueprint, name, api_key_sha256) VALUES (?, ?, ?)")
                    .bind(self.blueprint)
                    .bind(&self.server)
                    .bind(&presented)
                    .execute(&mut *tx)
                    .await
                    .map_err(storage_error)?;
                true
            }
            Some(row) => {
                let stored: Option<String> = row.get(0);
                match (stored, presented) {
                    (None, None) => true,
                    (None, Some(presented)) => {
                        sqlx::query("UPDATE servers SET api_key_sha256 = ? WHERE blueprint = ? AND name = ?")
                            .bind(presented)
                            .bind(self.blueprint)
                            .bind(&self.server)
                            .execute(&mut *tx)
                            .await
                            .map_err(storage_error)?;
                        true
                    }
                    (Some(_), None) => false,
                    (Some(stored), Some(presented)) => stored == presented,
                }
            }
        };
        tx.commit().await.map_err(storage_error)?;
        if accepted {
            ACCEPTED.get_or_init(Default::default).lock().expect("accepted keys lock").insert(accepted_key);
        }
        Ok(accepted)
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, ProviderError> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(storage_error)
    }

    /// A service by identifier.
    pub async fn get(&self, identifier: &str) -> Result<Option<Record>, ProviderError> {
        let mut connection = self.pool.acquire().await.map_err(storage_error)?;
        self.fetch(&mut connection, identifier).await
    }

    async fn fetch(
        &self,
        connection: &mut sqlx::SqliteConnection,
        identifier: &str,
    ) -> Result<Option<Record>, ProviderError> {
        let row =
            sqlx::query("SELECT data, created_at FROM services WHERE blueprint = ? AND server = ? AND identifier = ?")
                .bind(self.blueprint)
                .bind(&self.server)
                .bind(identifier)
                .fetch_optional(connection)
                .await
                .map_err(storage_error)?;
        row.map(record).transpose()
    }

    /// The identifier an idempotency key was used for, if any.
    pub async fn identifier_for_key(&self, key: &str) -> Result<Option<String>, ProviderError> {
        sqlx::query_scalar("SELECT identifier FROM idempotency WHERE blueprint = ? AND server = ? AND key = ?")
            .bind(self.blueprint)
            .bind(&self.server)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage_error)
    }

    /// Creates a service unless it exists. An existing one is adopted when
    /// `same` says it matches, and is a conflict otherwise. Every idempotency
    /// key given is bound to the identifier.
    pub async fn create(
        &self,
        identifier: &str,
        data: Value,
        keys: &[&str],
        same: impl FnOnce(&Value) -> bool,
        conflict_message: &str,
    ) -> Result<Created, ProviderError> {
        let mut tx = self.begin().await?;
        let created = match self.fetch(&mut tx, identifier).await? {
            Some(existing) => {
                if !same(&existing.data) {
                    return Err(ProviderError::conflict(provisio_sdk::UserMessage::new(conflict_message)));
                }
                Created::Adopted(existing.data)
            }
            None => {
                let now = Utc::now().to_rfc3339();
                sqlx::query(
                    "INSERT INTO services (blueprint, server, identifier, data, created_at) VALUES (?, ?, ?, ?, ?)",
                )
                .bind(self.blueprint)
                .bind(&self.server)
                .bind(identifier)
                .bind(data.to_string())
                .bind(&now)
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?;
                sqlx::query("INSERT INTO creations (blueprint, server, identifier, at) VALUES (?, ?, ?, ?)")
                    .bind(self.blueprint)
                    .bind(&self.server)
                    .bind(identifier)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await
                    .map_err(storage_error)?;
                Created::New(data)
            }
        };
        for key in keys {
            sqlx::query("INSERT OR IGNORE INTO idempotency (blueprint, server, key, identifier) VALUES (?, ?, ?, ?)")
                .bind(self.blueprint)
                .bind(&self.server)
                .bind(key)
                .bind(identifier)
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?;
        }
        tx.commit().await.map_err(storage_error)?;
        Ok(created)
    }

    /// Changes a service's document; `not_found` with `missing` if absent.
    pub async fn update(
        &self,
        identifier: &str,
        missing: &str,
        change: impl FnOnce(&mut Value, &Record) -> Result<(), ProviderError>,
    ) -> Result<Value, ProviderError> {
        let mut tx = self.begin().await?;
        let Some(current) = self.fetch(&mut tx, identifier).await? else {
            return Err(ProviderError::not_found(provisio_sdk::UserMessage::new(missing)));
        };
        let mut data = current.data.clone();
        change(&mut data, &current)?;
        if data != current.data {
            sqlx::query("UPDATE services SET data = ? WHERE blueprint = ? AND server = ? AND identifier = ?")
                .bind(data.to_string())
                .bind(self.blueprint)
                .bind(&self.server)
                .bind(identifier)
                .execute(&mut *tx)
                .await
                .map_err(storage_error)?;
        }
        tx.commit().await.map_err(storage_error)?;
        Ok(data)
    }

    /// Deletes a service; `not_found` with `missing` if absent.
    pub async fn delete(&self, identifier: &str, missing: &str) -> Result<(), ProviderError> {
        let mut tx = self.begin().await?;
        let deleted = sqlx::query("DELETE FROM services WHERE blueprint = ? AND server = ? AND identifier = ?")
            .bind(self.blueprint)
            .bind(&self.server)
            .bind(identifier)
            .execute(&mut *tx)
            .await
            .map_err(storage_error)?
            .rows_affected();
        sqlx::query("DELETE FROM idempotency WHERE blueprint = ? AND server = ? AND identifier = ?")
            .bind(self.blueprint)
            .bind(&self.server)
            .bind(identifier)
            .execute(&mut *tx)
            .await
            .map_err(storage_error)?;
        tx.commit().await.map_err(storage_error)?;
        if deleted == 0 {
            return Err(ProviderError::not_found(provisio_sdk::UserMessage::new(missing)));
        }
        Ok(())
    }

    /// Whether any service of this server has `value` at a top-level `field`
    /// (other than `except`).
    pub async fn field_taken(&self, field: &str, value: &str, except: &str) -> Result<bool, ProviderError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM services WHERE blueprint = ? AND server = ? AND identifier <> ? \
             AND json_extract(data, '$.' || ?) = ?",
        )
        .bind(self.blueprint)
        .bind(&self.server)
        .bind(except)
        .bind(field)
        .bind(value)
        .fetch_one(&self.pool)
        .await
        .map_err(storage_error)?;
        Ok(count > 0)
    }

    /// How many services this server holds.
    pub async fn count(&self) -> Result<i64, ProviderError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM services WHERE blueprint = ? AND server = ?")
            .bind(self.blueprint)
            .bind(&self.server)
            .fetch_one(&self.pool)
            .await
            .map_err(storage_error)
    }
}

fn record(row: sqlx::sqlite::SqliteRow) -> Result<Record, ProviderError> {
    let data: String = row.get(0);
    let created_at: String = row.get(1);
    Ok(Record {
        data: serde_json::from_str(&data).map_err(ProviderError::internal)?,
        created_at: DateTime::parse_from_rfc3339(&created_at).map_err(ProviderError::internal)?.with_timezone(&Utc),
    })
}

/// Hex SHA-256, so the simulated server never stores a key in clear.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// What the simulated servers in a state file hold, for tests and benchmarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Census {
    /// Services that exist now, per blueprint and server.
    pub services: HashMap<(String, String), i64>,
    /// How many times each identifier was really created (not adopted).
    pub creations: HashMap<(String, String, String), i64>,
}

impl Census {
    /// Identifiers created more than once (a duplicate, unless the service was terminated in between).
    pub fn duplicates(&self) -> Vec<(String, String, String)> {
        self.creations.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k.clone()).collect()
    }
}

/// Reads the census of a state file.
pub async fn census(path: &str) -> Result<Census, ProviderError> {
    let state = State::open(path, "any", "any").await?;
    let services = sqlx::query("SELECT blueprint, server, COUNT(*) FROM services GROUP BY blueprint, server")
        .fetch_all(&state.pool)
        .await
        .map_err(storage_error)?
        .into_iter()
        .map(|row| ((row.get(0), row.get(1)), row.get(2)))
        .collect();
    let creations = sqlx::query("SELECT blueprint, server, identifier, COUNT(*) FROM creations GROUP BY 1, 2, 3")
        .fetch_all(&state.pool)
        .await
        .map_err(storage_error)?
        .into_iter()
        .map(|row| ((row.get(0), row.get(1), row.get(2)), row.get(3)))
        .collect();
    Ok(Census { services, creations })
}
