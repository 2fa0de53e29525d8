//! The simulated servers' state: one SQLite file shared by every demo
//! provider, so services survive between calls and processes.
//!
//! Each service is a JSON document keyed by blueprint, server and service
//! identifier, with the owner mark of the Provisio service that made it (the
//! simulated vendor's place for it). Every create that really creates
//! something is also appended to `creations`, and every changing call the
//! server receives to `calls`, so tests can count what the "third party" was
//! asked and did.
//!
//! One connection per state file, behind an async mutex: the simulator
//! serialises its writes like a single control panel would, each operation
//! takes microseconds, and several processes may share the file (WAL and a
//! busy timeout).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use provisio_sdk::{Context, ProviderError, UserMessage};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

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
    owner TEXT,
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
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    blueprint TEXT NOT NULL,
    server TEXT NOT NULL,
    function TEXT NOT NULL,
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
    /// The owner mark it was created with, if any.
    pub owner: Option<String>,
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

type Shared = Arc<tokio::sync::Mutex<Connection>>;

/// The state of one blueprint's simulated server inside a state file.
#[derive(Debug, Clone)]
pub struct State {
    connection: Shared,
    path: String,
    blueprint: &'static str,
    server: String,
}

fn connections() -> &'static Mutex<HashMap<String, Shared>> {
    static CONNECTIONS: OnceLock<Mutex<HashMap<String, Shared>>> = OnceLock::new();
    CONNECTIONS.get_or_init(Default::default)
}

fn storage_error(err: rusqlite::Error) -> ProviderError {
    ProviderError::internal(format!("demo state: {err}"))
}

fn open_connection(path: &str) -> Result<Connection, rusqlite::Error> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(30))?;
    connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
    connection.execute_batch(SCHEMA)?;
    // State files from before owner marks gain the column.
    let has_owner: bool =
        connection.prepare("SELECT 1 FROM pragma_table_info('services') WHERE name = 'owner'")?.exists([])?;
    if !has_owner {
        connection.execute_batch("ALTER TABLE services ADD COLUMN owner TEXT")?;
    }
    Ok(connection)
}

impl State {
    /// Opens (creating if needed) the state file; one connection per path.
    pub async fn open(path: &str, blueprint: &'static str, server: &str) -> Result<State, ProviderError> {
        // Opened under the map's lock: two first calls at once must not both
        // switch the file to WAL (the loser would see "database is locked").
        let connection = {
            let mut map = connections().lock().expect("connection map lock");
            match map.get(path) {
                Some(connection) => connection.clone(),
                None => {
                    let connection = open_connection(path)
                        .map_err(|err| ProviderError::internal(format!("cannot open demo state {path}: {err}")))?;
                    let shared = Arc::new(tokio::sync::Mutex::new(connection));
                    map.insert(path.to_owned(), shared.clone());
                    shared
                }
            }
        };
        Ok(State { connection, path: path.to_owned(), blueprint, server: server.to_owned() })
    }

    /// Checks the API key against the server's (the first key presented to a
    /// fresh server becomes its key). Answers whether it was accepted.
    pub async fn check_api_key(&self, api_key: Option<&str>) -> Result<bool, ProviderError> {
        let presented = api_key.map(sha256_hex);
        // Keys accepted before, per state file and server: a real server
        // keeps sessions too, and it saves a write per call.
        static ACCEPTED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
        let accepted_key =
            format!("{}|{}|{}|{}", self.path, self.blueprint, self.server, presented.as_deref().unwrap_or("-"));
        if ACCEPTED.get_or_init(Default::default).lock().expect("accepted keys lock").contains(&accepted_key) {
            return Ok(true);
        }
        let mut connection = self.connection.lock().await;
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage_error)?;
        let stored: Option<Option<String>> = tx
            .query_row(
                "SELECT api_key_sha256 FROM servers WHERE blueprint = ? AND name = ?",
                params![self.blueprint, self.server],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage_error)?;
        let accepted = match stored {
            None => {
                tx.execute(
                    "INSERT INTO servers (blueprint, name, api_key_sha256) VALUES (?, ?, ?)",
                    params![self.blueprint, self.server, presented],
                )
                .map_err(storage_error)?;
                true
            }
            Some(None) => {
                if presented.is_some() {
                    tx.execute(
                        "UPDATE servers SET api_key_sha256 = ? WHERE blueprint = ? AND name = ?",
                        params![presented, self.blueprint, self.server],
                    )
                    .map_err(storage_error)?;
                }
                true
            }
            Some(Some(stored)) => presented.as_deref() == Some(stored.as_str()),
        };
        tx.commit().map_err(storage_error)?;
        if accepted {
            ACCEPTED.get_or_init(Default::default).lock().expect("accepted keys lock").insert(accepted_key);
        }
        Ok(accepted)
    }

    fn fetch(&self, connection: &Connection, identifier: &str) -> Result<Option<Record>, ProviderError> {
        let row: Option<(String, String, Option<String>)> = connection
            .prepare_cached(
                "SELECT data, created_at, owner FROM services WHERE blueprint = ? AND server = ? AND identifier = ?",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![self.blueprint, self.server, identifier], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()
            })
            .map_err(storage_error)?;
        row.map(|(data, created_at, owner)| record(&data, &created_at, owner)).transpose()
    }

    /// Takes the login session `token` off the account that holds it (a
    /// session works once): answers the account's identifier and the
    /// session's `expires_at`, if any account held it.
    pub async fn take_login_session(&self, token: &str) -> Result<Option<(String, String)>, ProviderError> {
        let mut connection = self.connection.lock().await;
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage_error)?;
        let found: Option<(String, String)> = tx
            .query_row(
                "SELECT identifier, data FROM services WHERE blueprint = ? AND server = ?
                   AND json_extract(data, '$.login_session.token') = ?",
                params![self.blueprint, self.server, token],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(storage_error)?;
        let Some((identifier, data)) = found else { return Ok(None) };
        let mut data: Value = serde_json::from_str(&data).map_err(ProviderError::internal)?;
        let expires_at = data["login_session"]["expires_at"].as_str().unwrap_or_default().to_owned();
        data.as_object_mut().map(|o| o.remove("login_session"));
        tx.execute(
            "UPDATE services SET data = ? WHERE blueprint = ? AND server = ? AND identifier = ?",
            params![data.to_string(), self.blueprint, self.server, identifier],
        )
        .map_err(storage_error)?;
        tx.commit().map_err(storage_error)?;
        Ok(Some((identifier, expires_at)))
    }

    /// Counts one changing call the simulated server received.
    pub async fn count_call(&self, function: &str) -> Result<(), ProviderError> {
        let connection = self.connection.lock().await;
        connection
            .prepare_cached("INSERT INTO calls (blueprint, server, function, at) VALUES (?, ?, ?, ?)")
            .and_then(|mut s| s.execute(params![self.blueprint, self.server, function, Utc::now().to_rfc3339()]))
            .map_err(storage_error)?;
        Ok(())
    }

    /// A service by identifier, if this call may see it (its owner mark).
    pub async fn get_owned(&self, cx: &Context, identifier: &str) -> Result<Option<Record>, ProviderError> {
        let record = self.get(identifier).await?;
        if let Some(record) = &record {
            cx.check_owner(identifier, record.owner.as_deref())?;
        }
        Ok(record)
    }

    /// A service by identifier.
    pub async fn get(&self, identifier: &str) -> Result<Option<Record>, ProviderError> {
        let connection = self.connection.lock().await;
        self.fetch(&connection, identifier)
    }

    /// The identifier an idempotency key was used for, if any.
    pub async fn identifier_for_key(&self, key: &str) -> Result<Option<String>, ProviderError> {
        let connection = self.connection.lock().await;
        connection
            .prepare_cached("SELECT identifier FROM idempotency WHERE blueprint = ? AND server = ? AND key = ?")
            .and_then(|mut statement| {
                statement.query_row(params![self.blueprint, self.server, key], |r| r.get(0)).optional()
            })
            .map_err(storage_error)
    }

    /// Creates a service unless it exists. An existing one is adopted when
    /// `same` says it matches, and is a conflict otherwise. Every idempotency
    /// key given is bound to the identifier.
    pub async fn create(
        &self,
        cx: &Context,
        identifier: &str,
        data: Value,
        keys: &[&str],
        same: impl FnOnce(&Value) -> bool,
        conflict_message: &str,
    ) -> Result<Created, ProviderError> {
        let mut connection = self.connection.lock().await;
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage_error)?;
        let created = match self.fetch(&tx, identifier)? {
            Some(existing) => {
                // Adopted only if it is provably this service's.
                cx.check_owner(identifier, existing.owner.as_deref())?;
                if !same(&existing.data) {
                    return Err(ProviderError::conflict(UserMessage::new(conflict_message)));
                }
                Created::Adopted(existing.data)
            }
            None => {
                let now = Utc::now().to_rfc3339();
                tx.execute(
                    "INSERT INTO services (blueprint, server, identifier, data, created_at, owner) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                    params![self.blueprint, self.server, identifier, data.to_string(), now, cx.owner()],
                )
                .map_err(storage_error)?;
                tx.execute(
                    "INSERT INTO creations (blueprint, server, identifier, at) VALUES (?, ?, ?, ?)",
                    params![self.blueprint, self.server, identifier, now],
                )
                .map_err(storage_error)?;
                Created::New(data)
            }
        };
        for key in keys {
            tx.execute(
                "INSERT OR IGNORE INTO idempotency (blueprint, server, key, identifier) VALUES (?, ?, ?, ?)",
                params![self.blueprint, self.server, key, identifier],
            )
            .map_err(storage_error)?;
        }
        tx.commit().map_err(storage_error)?;
        Ok(created)
    }

    /// Changes a service's document; `not_found` with `missing` if absent.
    pub async fn update(
        &self,
        cx: &Context,
        identifier: &str,
        missing: &str,
        change: impl FnOnce(&mut Value, &Record) -> Result<(), ProviderError>,
    ) -> Result<Value, ProviderError> {
        let mut connection = self.connection.lock().await;
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage_error)?;
        let Some(current) = self.fetch(&tx, identifier)? else {
            return Err(ProviderError::not_found(UserMessage::new(missing)));
        };
        cx.check_owner(identifier, current.owner.as_deref())?;
        let mut data = current.data.clone();
        change(&mut data, &current)?;
        if data != current.data {
            tx.execute(
                "UPDATE services SET data = ? WHERE blueprint = ? AND server = ? AND identifier = ?",
                params![data.to_string(), self.blueprint, self.server, identifier],
            )
            .map_err(storage_error)?;
        }
        tx.commit().map_err(storage_error)?;
        Ok(data)
    }

    /// Deletes a service; `not_found` with `missing` if absent.
    pub async fn delete(&self, cx: &Context, identifier: &str, missing: &str) -> Result<(), ProviderError> {
        let mut connection = self.connection.lock().await;
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage_error)?;
        if let Some(current) = self.fetch(&tx, identifier)? {
            cx.check_owner(identifier, current.owner.as_deref())?;
        }
        let deleted = tx
            .execute(
                "DELETE FROM services WHERE blueprint = ? AND server = ? AND identifier = ?",
                params![self.blueprint, self.server, identifier],
            )
            .map_err(storage_error)?;
        tx.execute(
            "DELETE FROM idempotency WHERE blueprint = ? AND server = ? AND identifier = ?",
            params![self.blueprint, self.server, identifier],
        )
        .map_err(storage_error)?;
        tx.commit().map_err(storage_error)?;
        if deleted == 0 {
            return Err(ProviderError::not_found(UserMessage::new(missing)));
        }
        Ok(())
    }

    /// Whether any service of this server has `value` at a top-level `field`
    /// (other than `except`).
    pub async fn field_taken(&self, field: &str, value: &str, except: &str) -> Result<bool, ProviderError> {
        let connection = self.connection.lock().await;
        let count: i64 = connection
            .prepare_cached(
                "SELECT COUNT(*) FROM services WHERE blueprint = ? AND server = ? AND identifier <> ? \
                 AND json_extract(data, '$.' || ?) = ?",
            )
            .and_then(|mut s| s.query_row(params![self.blueprint, self.server, except, field, value], |r| r.get(0)))
            .map_err(storage_error)?;
        Ok(count > 0)
    }

    /// Every service of this server: identifier and document.
    pub async fn documents(&self) -> Result<Vec<(String, Value)>, ProviderError> {
        let connection = self.connection.lock().await;
        let mut statement = connection
            .prepare_cached("SELECT identifier, data FROM services WHERE blueprint = ? AND server = ?")
            .map_err(storage_error)?;
        let rows = statement
            .query_map(params![self.blueprint, self.server], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(storage_error)?;
        rows.map(|row| {
            let (identifier, data) = row.map_err(storage_error)?;
            Ok((identifier, serde_json::from_str(&data).map_err(ProviderError::internal)?))
        })
        .collect()
    }

    /// Services by identifier after `after`, at most `limit`.
    pub async fn page(&self, after: Option<&str>, limit: u32) -> Result<Vec<(String, Record)>, ProviderError> {
        let connection = self.connection.lock().await;
        let mut statement = connection
            .prepare_cached(
                "SELECT identifier, data, created_at, owner FROM services WHERE blueprint = ?1 AND server = ?2 \
                 AND (?3 IS NULL OR identifier > ?3) ORDER BY identifier LIMIT ?4",
            )
            .map_err(storage_error)?;
        let rows = statement
            .query_map(params![self.blueprint, self.server, after, limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(storage_error)?;
        rows.map(|row| {
            let (identifier, data, created_at, owner) = row.map_err(storage_error)?;
            Ok((identifier, record(&data, &created_at, owner)?))
        })
        .collect()
    }

    /// Writes the caller's owner mark on a service that carries none; the
    /// same mark is fine, another is `conflict`. Answers its document.
    pub async fn adopt(&self, cx: &Context, identifier: &str, missing: &str) -> Result<Value, ProviderError> {
        let mut connection = self.connection.lock().await;
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage_error)?;
        let Some(current) = self.fetch(&tx, identifier)? else {
            return Err(ProviderError::not_found(UserMessage::new(missing)));
        };
        if let Some(mark) = cx.adoption(identifier, current.owner.as_deref())? {
            tx.execute(
                "UPDATE services SET owner = ? WHERE blueprint = ? AND server = ? AND identifier = ?",
                params![mark, self.blueprint, self.server, identifier],
            )
            .map_err(storage_error)?;
        }
        tx.commit().map_err(storage_error)?;
        Ok(current.data)
    }

    /// How many services this server holds.
    pub async fn count(&self) -> Result<i64, ProviderError> {
        let connection = self.connection.lock().await;
        connection
            .query_row(
                "SELECT COUNT(*) FROM services WHERE blueprint = ? AND server = ?",
                params![self.blueprint, self.server],
                |r| r.get(0),
            )
            .map_err(storage_error)
    }
}

fn record(data: &str, created_at: &str, owner: Option<String>) -> Result<Record, ProviderError> {
    Ok(Record {
        data: serde_json::from_str(data).map_err(ProviderError::internal)?,
        created_at: DateTime::parse_from_rfc3339(created_at).map_err(ProviderError::internal)?.with_timezone(&Utc),
        owner,
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
    /// Changing calls received, per blueprint and function (whatever they did).
    pub calls: HashMap<(String, String), i64>,
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
    let connection = state.connection.lock().await;
    let mut services = HashMap::new();
    let mut statement = connection
        .prepare("SELECT blueprint, server, COUNT(*) FROM services GROUP BY blueprint, server")
        .map_err(storage_error)?;
    let rows = statement.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?))).map_err(storage_error)?;
    for row in rows {
        let (key, n) = row.map_err(storage_error)?;
        services.insert(key, n);
    }
    let mut creations = HashMap::new();
    let mut statement = connection
        .prepare("SELECT blueprint, server, identifier, COUNT(*) FROM creations GROUP BY 1, 2, 3")
        .map_err(storage_error)?;
    let rows =
        statement.query_map([], |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?))).map_err(storage_error)?;
    for row in rows {
        let (key, n) = row.map_err(storage_error)?;
        creations.insert(key, n);
    }
    let mut calls = HashMap::new();
    let mut statement =
        connection.prepare("SELECT blueprint, function, COUNT(*) FROM calls GROUP BY 1, 2").map_err(storage_error)?;
    let rows = statement.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?))).map_err(storage_error)?;
    for row in rows {
        let (key, n) = row.map_err(storage_error)?;
        calls.insert(key, n);
    }
    Ok(Census { services, creations, calls })
}
