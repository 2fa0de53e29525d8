//! `databases/mariadb`: a database and its owner account on a MariaDB server
//! (10.5 or later), managed with an account that may create users and grant.
//!
//! - create: `CREATE USER … IDENTIFIED BY … WITH MAX_USER_CONNECTIONS n`,
//!   `CREATE DATABASE`, `GRANT ALL ON db.* TO user`;
//! - suspend: `ALTER USER … ACCOUNT LOCK` and its sessions are killed;
//!   unsuspend: `ACCOUNT UNLOCK`;
//! - terminate: `DROP DATABASE`, `DROP USER`.
//!
//! The service's owner mark is in the database comment (`provisio owner: …;
//! package: …`); every function acts only on a database carrying the caller's mark.
//!
//! Names are checked by the blueprint's `db-identifier` format and quoted
//! anyway; passwords are escaped literals. Every statement is recorded in the
//! call's log with any password replaced by `[REDACTED]`.

use std::time::Instant;

use provisio_sdk::blueprints::databases::*;
use provisio_sdk::blueprints::{ListParams, Listed, Listing, State, Units};
use provisio_sdk::formats::{DbIdentifier, generate_password};
use provisio_sdk::http::HttpExchange;
use provisio_sdk::tls::TlsMode;
use provisio_sdk::{ConnectionTest, Context, Empty, Provider, ProviderAbout, ProviderError, UserMessage};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::{ConnectOptions, Connection, MySqlConnection, Row};

/// The registry entry.
pub fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::databases::entry::<MariaDb>()
}

fn default_port() -> u16 {
    3306
}

fn default_connection_limit() -> u32 {
    20
}

fn default_package_limits() -> std::collections::BTreeMap<String, u32> {
    [("basic", 10), ("standard", 50), ("premium", 200)].into_iter().map(|(p, n)| (p.to_owned(), n)).collect()
}

fn default_account_host() -> String {
    "%".into()
}

/// How to reach the server and as whom.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MariaDbConfig {
    /// Server host name or address.
    #[schemars(length(min = 1, max = 253), extend("x-endpoint" = true))]
    pub host: String,
    /// Server port.
    #[serde(default = "default_port")]
    #[schemars(extend("x-endpoint" = true))]
    pub port: u16,
    /// Administrative account (needs CREATE USER and GRANT OPTION).
    #[schemars(length(min = 1, max = 80))]
    pub username: String,
    /// Its password.
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    pub password: String,
    /// Host part of the accounts created for customers (`%` = anywhere).
    #[serde(default = "default_account_host")]
    #[schemars(length(min = 1, max = 255))]
    pub account_host: String,
    /// Host name customers connect to (defaults to `host`).
    #[serde(default)]
    pub client_host: Option<String>,
    /// TLS to the server: `verify` (required; the certificate and host name are
    /// checked against `ca_cert_pem`, or the bundled public roots when absent)
    /// or `disabled` (credentials cross the network in clear).
    #[serde(default)]
    #[schemars(extend("x-endpoint" = true))]
    pub tls: TlsMode,
    /// The certificate (PEM) of the CA that signed the server's certificate.
    #[serde(default)]
    #[schemars(length(min = 1, max = 65536), extend("x-endpoint" = true))]
    pub ca_cert_pem: Option<String>,
    /// Connection limit when neither the params nor the package set one.
    #[serde(default = "default_connection_limit")]
    #[schemars(range(min = 1, max = 10000))]
    pub default_connection_limit: u32,
    /// Connection limit per package name.
    #[serde(default = "default_package_limits")]
    pub package_connection_limits: std::collections::BTreeMap<String, u32>,
}

/// The MariaDB provider for one server.
#[derive(Debug)]
pub struct MariaDb {
    config: MariaDbConfig,
}

/// Quotes an identifier (`` `name` ``, inner backticks doubled).
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Quotes a string literal; backslashes escape by default in MariaDB, so
/// both they and quotes are doubled.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// How the database comment starts.
const COMMENT_MARK: &str = "provisio ";

/// The database comment recording the owner mark and the package, if either is set.
fn comment(owner: Option<&str>, package: Option<&str>) -> Option<String> {
    let parts: Vec<String> = [owner.map(|o| format!("owner: {o}")), package.map(|p| format!("package: {p}"))]
        .into_iter()
        .flatten()
        .collect();
    (!parts.is_empty()).then(|| format!("{COMMENT_MARK}{}", parts.join("; ")))
}

/// The owner mark and package of a database comment (also the older
/// `provisio package: …`). A mark has no `;`; the package is the rest.
fn parse_comment(text: &str) -> (Option<&str>, Option<&str>) {
    let Some(rest) = text.strip_prefix(COMMENT_MARK) else { return (None, None) };
    let (owner, rest) = match rest.strip_prefix("owner: ") {
        Some(marked) => match marked.split_once("; ") {
            Some((owner, rest)) => (Some(owner), rest),
            None => (Some(marked), ""),
        },
        None => (None, rest),
    };
    (owner.filter(|o| !o.is_empty()), rest.strip_prefix("package: "))
}

/// A database name as a GRANT pattern: `_` and `%` are wildcards there, so a
/// grant on `db_a` would also cover `dbXa`; they are escaped.
fn grant_pattern(name: &str) -> String {
    name.replace('\\', "\\\\").replace('_', "\\_").replace('%', "\\%")
}

/// One database as the server holds it.
struct Found {
    /// The owner mark in its comment.
    mark: Option<String>,
    /// The package in its comment.
    package: Option<String>,
    /// Why it is no service's to take (see `list`).
    refused: Option<String>,
    /// As the blueprint reads it.
    info: Result<DatabaseInfo, ProviderError>,
}

/// What a TLS failure tells the client.
const TLS_FAILED: &str = "TLS to the database server failed: it offers no TLS, or its certificate is not trusted or \
                          names another host (see tls and ca_cert_pem)";

/// Maps a driver error to the blueprint's error kinds, with a precise message.
fn classify(err: sqlx::Error, what: &str) -> ProviderError {
    let debug = err.to_string();
    let error = match &err {
        // Retrying cannot make an untrusted certificate trusted.
        sqlx::Error::Tls(_) => ProviderError::provider(TLS_FAILED),
        sqlx::Error::Io(io) if provisio_sdk::tls::is_tls_failure(io) => ProviderError::provider(TLS_FAILED),
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => {
            ProviderError::transient(UserMessage::new(format!("The database server could not be reached ({what})")))
        }
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // ER_ACCESS_DENIED_ERROR and friends.
            Some("28000") => ProviderError::provider("The database server rejected the administrative credentials"),
            Some("42000") if debug.contains("denied") => ProviderError::provider(UserMessage::new(format!(
                "The administrative account lacks a privilege needed to {what}"
            ))),
            Some("HY000") if debug.contains("Operation CREATE USER failed") => {
                ProviderError::conflict(UserMessage::new(format!("It already exists ({what})")))
            }
            Some("08004") => ProviderError::transient("The database server has too many connections; try again later"),
            _ => ProviderError::internal(format!("{what}: {debug}")),
        },
        _ => ProviderError::internal(format!("{what}: {debug}")),
    };
    error.with_debug("mariadb", debug)
}

async fn timeout<T>(cx: &Context, future: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, sqlx::Error> {
    match tokio::time::timeout(cx.remaining(), future).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

fn exchange(method: &str, what: &str, started: Instant, error: Option<String>) -> HttpExchange {
    HttpExchange { error, ..HttpExchange::other(method, what, started) }
}

impl MariaDb {
    fn client_host(&self) -> String {
        self.config.client_host.clone().unwrap_or_else(|| self.config.host.clone())
    }

    fn account(&self, user: &str) -> String {
        format!("{}@{}", literal(user), literal(&self.config.account_host))
    }

    async fn connect(&self, cx: &Context) -> Result<MySqlConnection, ProviderError> {
        let options = MySqlConnectOptions::new()
            .host(&self.config.host)
            .port(self.config.port)
            .username(&self.config.username)
            .password(&self.config.password)
            .disable_statement_logging();
        // Never opportunistic: either verified TLS, or plain by choice.
        let options = match (self.config.tls, &self.config.ca_cert_pem) {
            (TlsMode::Verify, Some(pem)) => {
                provisio_sdk::tls::ca_certificates(pem)?;
                options.ssl_mode(MySqlSslMode::VerifyIdentity).ssl_ca_from_pem(pem.as_bytes().to_vec())
            }
            (TlsMode::Verify, None) => options.ssl_mode(MySqlSslMode::VerifyIdentity),
            (TlsMode::Disabled, _) => options.ssl_mode(MySqlSslMode::Disabled),
        };
        let started = Instant::now();
        let result = timeout(cx, options.connect()).await;
        cx.record(exchange(
            "CONNECT",
            &format!("mysql://{}@{}:{}", self.config.username, self.config.host, self.config.port),
            started,
            result.as_ref().err().map(|e| e.to_string()),
        ));
        result.map_err(|err| classify(err, "connect"))
    }

    async fn execute(
        &self,
        cx: &Context,
        conn: &mut MySqlConnection,
        sql: &str,
        shown: &str,
        what: &str,
    ) -> Result<(), ProviderError> {
        let started = Instant::now();
        let result = timeout(cx, sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut *conn)).await;
        cx.record(exchange("SQL", shown, started, result.as_ref().err().map(|e| e.to_string())));
        result.map(|_| ()).map_err(|err| classify(err, what))
    }

    /// The database and its owner account, if it exists and this call may
    /// act on it: one whose comment carries another owner mark (or none) is
    /// `conflict`.
    async fn info(
        &self,
        cx: &Context,
        conn: &mut MySqlConnection,
        database: &DbIdentifier,
    ) -> Result<Option<DatabaseInfo>, ProviderError> {
        let Some(found) = self.found(cx, conn, database.as_str()).await? else { return Ok(None) };
        cx.check_owner(&format!("Database {database}"), found.mark.as_deref())?;
        found.info.map(Some)
    }

    /// A database as the server holds it, whoever's it is.
    async fn found(
        &self,
        cx: &Context,
        conn: &mut MySqlConnection,
        name: &str,
    ) -> Result<Option<Found>, ProviderError> {
        let started = Instant::now();
        let row = timeout(
            cx,
            sqlx::query(
                "SELECT s.SCHEMA_COMMENT AS comment, d.User AS owner, \
                 JSON_VALUE(g.Priv, '$.account_locked') AS locked, \
                 JSON_VALUE(g.Priv, '$.max_user_connections') AS max_connections, \
                 (SELECT COUNT(*) FROM mysql.db o WHERE o.User = d.User AND o.Host = d.Host) AS owned, \
                 CAST(COALESCE(JSON_VALUE(g.Priv, '$.access'), 0) <> 0 \
                   OR CONCAT(d.User, '@', d.Host) = CURRENT_USER() AS SIGNED) AS privileged, \
                 (SELECT COUNT(*) FROM mysql.db a WHERE ? LIKE a.Db) \
                   + (SELECT COUNT(*) FROM mysql.tables_priv t WHERE t.Db = ?) AS grantees \
                 FROM information_schema.SCHEMATA s \
                 LEFT JOIN mysql.db d ON d.Db = ? AND d.Host = ? \
                 LEFT JOIN mysql.global_priv g ON g.User = d.User AND g.Host = d.Host \
                 WHERE s.SCHEMA_NAME = ? LIMIT 1",
            )
            .bind(name)
            .bind(name)
            .bind(grant_pattern(name))
            .bind(&self.config.account_host)
            .bind(name)
            .fetch_optional(&mut *conn),
        )
        .await;
        cx.record(exchange(
            "SQL",
            &format!("SELECT … FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}", literal(name)),
            started,
            None,
        ));
        let Some(row) = row.map_err(|err| classify(err, "read the database"))? else {
            return Ok(None);
        };
        let comment: Option<String> = row.try_get("comment").ok().flatten();
        let (mark, package) = parse_comment(comment.as_deref().unwrap_or_default());
        let owner: Option<String> = row.try_get("owner").ok().flatten();
        let owned: i64 = row.try_get("owned").unwrap_or(0);
        let privileged = row.try_get::<i64, _>("privileged").unwrap_or(1) != 0;
        let grantees: i64 = row.try_get("grantees").unwrap_or(0);
        let foreign_comment = comment.as_deref().is_some_and(|c| !c.is_empty() && !c.starts_with(COMMENT_MARK));
        // The client will hold this account (its password, its sessions):
        // only one whose reach is this database alone can be adopted.
        let refused = match &owner {
            None => Some("no account on the configured host was granted it".to_owned()),
            // First: with several accounts, which one is "its" is a guess.
            Some(_) if grantees > 1 => Some("other accounts are granted rights on it".to_owned()),
            Some(owner) if privileged => {
                Some(format!("its account {owner} has global privileges, or is the administrative account"))
            }
            Some(owner) if owned > 1 => Some(format!(
                "its account {owner} holds {owned} databases; a service is one database and its own account"
            )),
            Some(_) if foreign_comment => {
                Some("it has a comment of its own, where Provisio would keep its owner mark".to_owned())
            }
            Some(_) => None,
        };
        let info = match (DbIdentifier::parse(name), owner) {
            // A database nobody was granted: not one this provider made.
            (_, None) => Err(ProviderError::conflict(UserMessage::new(format!(
                "Database {name} exists on this server but has no owner account"
            )))),
            (Err(err), _) => Err(ProviderError::internal(format!("database {name}: {err}"))),
            (Ok(database), Some(owner)) => {
                let locked: Option<String> = row.try_get("locked").ok().flatten();
                let max: Option<String> = row.try_get("max_connections").ok().flatten();
                DbIdentifier::parse(&owner).map_err(ProviderError::internal).map(|username| DatabaseInfo {
                    database,
                    username,
                    host: self.client_host(),
                    port: self.config.port,
                    state: if matches!(locked.as_deref(), Some("1" | "true")) {
                        State::Suspended
                    } else {
                        State::Active
                    },
                    package_name: package.map(str::to_owned),
                    connection_limit: max.and_then(|m| m.parse::<u32>().ok()).filter(|m| *m > 0),
                    password: None,
                    created_at: None,
                })
            }
        };
        Ok(Some(Found { mark: mark.map(str::to_owned), package: package.map(str::to_owned), refused, info }))
    }

    async fn require(
        &self,
        cx: &Context,
        conn: &mut MySqlConnection,
        database: &DbIdentifier,
    ) -> Result<DatabaseInfo, ProviderError> {
        self.info(cx, conn, database).await?.ok_or_else(|| {
            ProviderError::not_found(UserMessage::new(format!("Database {database} does not exist on this server")))
        })
    }

    async fn set_lock(&self, cx: &Context, database: &DbIdentifier, lock: bool) -> Result<DatabaseInfo, ProviderError> {
        let mut conn = self.connect(cx).await?;
        let info = self.require(cx, &mut conn, database).await?;
        let sql = format!(
            "ALTER USER {} ACCOUNT {}",
            self.account(info.username.as_str()),
            if lock { "LOCK" } else { "UNLOCK" }
        );
        self.execute(cx, &mut conn, &sql, &sql, "change the login").await?;
        if lock {
            // Sessions already open would outlive the lock.
            let ids: Vec<u64> = sqlx::query_scalar("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?")
                .bind(info.username.as_str())
                .fetch_all(&mut conn)
                .await
                .map_err(|err| classify(err, "list the sessions"))?;
            for id in ids {
                let sql = format!("KILL CONNECTION {id}");
                let _ = self.execute(cx, &mut conn, &sql, &sql, "end a session").await;
            }
        }
        self.require(cx, &mut conn, database).await
    }
}

impl Provider for MariaDb {
    type Config = MariaDbConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "mariadb".into(),
            name: "MariaDB".into(),
            description: "Databases and their owner accounts on a MariaDB server.".into(),
            logo_url: Some(
                "https://mariadb.com/wp-content/uploads/2019/11/mariadb-logo-vert_blue-transparent.png".into(),
            ),
        }
    }

    async fn new(config: MariaDbConfig) -> Result<Self, ProviderError> {
        Ok(MariaDb { config })
    }

    async fn test_connection(&self, cx: &Context) -> Result<ConnectionTest, ProviderError> {
        let mut conn = self.connect(cx).await?;
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&mut conn)
            .await
            .map_err(|err| classify(err, "read the version"))?;
        let grants: Vec<String> = sqlx::query_scalar("SHOW GRANTS")
            .fetch_all(&mut conn)
            .await
            .map_err(|err| classify(err, "read the grants"))?;
        let all = grants.join("\n").to_ascii_uppercase();
        let can_create_users = all.contains("ALL PRIVILEGES ON *.*") || all.contains("CREATE USER");
        let can_grant = all.contains("WITH GRANT OPTION");
        let mut missing = Vec::new();
        if !can_create_users {
            missing.push("CREATE USER");
        }
        if !can_grant {
            missing.push("GRANT OPTION");
        }
        if !missing.is_empty() {
            return Err(ProviderError::provider(UserMessage::new(format!(
                "Connected as {}, but the account lacks {}",
                self.config.username,
                missing.join(" and ")
            ))));
        }
        let _ = conn.close().await;
        Ok(ConnectionTest {
            message: format!("Connected to MariaDB {version} as {} with the privileges needed", self.config.username),
            details: json!({"version": version}),
        })
    }
}

impl Databases for MariaDb {
    async fn create(&self, cx: &Context, params: CreateDatabaseParams) -> Result<DatabaseInfo, ProviderError> {
        let username = params.username.clone().unwrap_or_else(|| params.database.clone());
        let mut conn = self.connect(cx).await?;
        // An existing database is answered only if it carries this call's
        // owner mark (`info` checks it), and adopted only if it matches.
        if let Some(existing) = self.info(cx, &mut conn, &params.database).await? {
            if existing.username == username {
                return Ok(existing);
            }
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "Database {} already exists on this server with another owner",
                params.database
            ))));
        }
        let user_exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mysql.global_priv WHERE User = ? AND Host = ?")
            .bind(username.as_str())
            .bind(&self.config.account_host)
            .fetch_one(&mut conn)
            .await
            .map_err(|err| classify(err, "look up the account"))?;
        if user_exists > 0 {
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "Account {username} already exists on this server"
            ))));
        }
        let generated = params.password.is_none().then(|| generate_password(24));
        let password =
            params.password.as_ref().map(|p| p.expose().to_owned()).or(generated.clone()).expect("one is set");
        let limit = params
            .connection_limit
            .or(params.package_name.as_ref().and_then(|p| self.config.package_connection_limits.get(p).copied()))
            .unwrap_or(self.config.default_connection_limit);
        let account = self.account(username.as_str());
        let database = ident(params.database.as_str());
        let create_user = format!("CREATE USER {account} IDENTIFIED BY ");
        let limits = format!(" WITH MAX_USER_CONNECTIONS {limit}");
        self.execute(
            cx,
            &mut conn,
            &format!("{create_user}{}{limits}", literal(&password)),
            &format!("{create_user}'[REDACTED]'{limits}"),
            "create the account",
        )
        .await?;
        let comment = comment(cx.owner(), params.package_name.as_deref()).map(|c| format!(" COMMENT {}", literal(&c)));
        let create_database = format!("CREATE DATABASE {database}{}", comment.unwrap_or_default());
        let grant =
            format!("GRANT ALL PRIVILEGES ON {}.* TO {account}", ident(&grant_pattern(params.database.as_str())));
        for (sql, what) in [(&create_database, "create the database"), (&grant, "grant the database")] {
            if let Err(err) = self.execute(cx, &mut conn, sql, sql, what).await {
                // Leave nothing half made.
                for cleanup in [format!("DROP DATABASE IF EXISTS {database}"), format!("DROP USER IF EXISTS {account}")]
                {
                    let _ = self.execute(cx, &mut conn, &cleanup, &cleanup, "clean up").await;
                }
                return Err(err);
            }
        }
        let mut info = self.require(cx, &mut conn, &params.database).await?;
        info.password = generated;
        info.created_at = Some(chrono::Utc::now());
        let _ = conn.close().await;
        Ok(info)
    }

    /// Every database but the server's own, by name. Only one granted to an
    /// account that holds no other can be adopted (its comment carries the mark).
    async fn list(&self, cx: &Context, params: ListParams) -> Result<Listing, ProviderError> {
        let mut conn = self.connect(cx).await?;
        let system = "('information_schema', 'mysql', 'performance_schema', 'sys')";
        // Names compare byte for byte (the catalogue's collation ignores case,
        // and `Shop` and `shop` can both exist), so no page skips one.
        let list = format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN {system} \
             AND (? IS NULL OR BINARY SCHEMA_NAME > ?) ORDER BY BINARY SCHEMA_NAME LIMIT ?"
        );
        let started = Instant::now();
        let names = timeout(
            cx,
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(list))
                .bind(params.cursor.as_deref())
                .bind(params.cursor.as_deref())
                .bind(params.fetch())
                .fetch_all(&mut conn),
        )
        .await;
        cx.record(exchange("SQL", "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA …", started, None));
        let names = names.map_err(|err| classify(err, "list the databases"))?;
        let count = format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN {system}");
        let started = Instant::now();
        let total =
            timeout(cx, sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count.clone())).fetch_one(&mut conn)).await;
        cx.record(exchange("SQL", &count, started, None));
        let total = total.map_err(|err| classify(err, "count the databases"))?;
        let (names, next_cursor) = params.cut(names, String::as_str);
        let mut resources = Vec::new();
        for name in &names {
            let Some(found) = self.found(cx, &mut conn, name).await? else { continue };
            let (state, data, refused) = match found.info {
                Ok(info) => (info.state, Listed::data_of(&info), found.refused),
                Err(_) => (
                    State::Active,
                    Default::default(),
                    found.refused.or(Some("its name or its account's is not one Provisio manages".into())),
                ),
            };
            resources.push(Listed {
                identifier: name.clone(),
                state,
                owner_mark: found.mark,
                refused,
                email: None,
                data,
            });
        }
        let _ = conn.close().await;
        Ok(Listing { resources, next_cursor, total: u64::try_from(total).ok() })
    }

    /// Writes the service's mark into the database comment (keeping its
    /// package), under a named lock so two imports cannot both take it; the
    /// refusals of `list` are checked again under it.
    async fn adopt(&self, cx: &Context, params: DatabaseRef) -> Result<DatabaseInfo, ProviderError> {
        let what = format!("Database {}", params.database);
        let mut conn = self.connect(cx).await?;
        let lock = literal(&format!("provisio adopt {}", params.database));
        let started = Instant::now();
        let locked = timeout(
            cx,
            sqlx::query_scalar::<_, Option<i64>>(sqlx::AssertSqlSafe(format!(
                "SELECT CAST(GET_LOCK({lock}, 10) AS SIGNED)"
            )))
            .fetch_one(&mut conn),
        )
        .await;
        cx.record(exchange("SQL", &format!("SELECT GET_LOCK({lock}, 10)"), started, None));
        if locked.map_err(|err| classify(err, "lock the database"))? != Some(1) {
            return Err(ProviderError::transient("Another import is adopting this database; try again"));
        }
        let found = self.found(cx, &mut conn, params.database.as_str()).await?.ok_or_else(|| {
            ProviderError::not_found(UserMessage::new(format!(
                "Database {} does not exist on this server",
                params.database
            )))
        })?;
        if let Some(mark) = cx.adoption(&what, found.mark.as_deref())? {
            if let Some(why) = &found.refused {
                return Err(ProviderError::conflict(UserMessage::new(format!("{what} cannot be adopted: {why}"))));
            }
            let text = comment(Some(mark), found.package.as_deref()).expect("an owner makes a comment");
            let alter = format!("ALTER DATABASE {} COMMENT {}", ident(params.database.as_str()), literal(&text));
            self.execute(cx, &mut conn, &alter, &alter, "mark the database").await?;
        }
        let info = self.require(cx, &mut conn, &params.database).await?;
        let _ = conn.close().await;
        Ok(info)
    }

    async fn get_info(&self, cx: &Context, params: DatabaseRef) -> Result<DatabaseInfo, ProviderError> {
        let mut conn = self.connect(cx).await?;
        self.require(cx, &mut conn, &params.database).await
    }

    async fn suspend(&self, cx: &Context, params: SuspendDatabaseParams) -> Result<DatabaseInfo, ProviderError> {
        self.set_lock(cx, &params.database, true).await
    }

    async fn unsuspend(&self, cx: &Context, params: DatabaseRef) -> Result<DatabaseInfo, ProviderError> {
        self.set_lock(cx, &params.database, false).await
    }

    async fn terminate(&self, cx: &Context, params: DatabaseRef) -> Result<Empty, ProviderError> {
        let mut conn = self.connect(cx).await?;
        let info = self.require(cx, &mut conn, &params.database).await?;
        let drop_database = format!("DROP DATABASE {}", ident(params.database.as_str()));
        self.execute(cx, &mut conn, &drop_database, &drop_database, "drop the database").await?;
        let drop_user = format!("DROP USER IF EXISTS {}", self.account(info.username.as_str()));
        self.execute(cx, &mut conn, &drop_user, &drop_user, "drop the account").await?;
        Ok(Empty {})
    }

    async fn get_usage(&self, cx: &Context, params: DatabaseRef) -> Result<DatabaseUsage, ProviderError> {
        let mut conn = self.connect(cx).await?;
        let info = self.require(cx, &mut conn, &params.database).await?;
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS SIGNED) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
        )
        .bind(params.database.as_str())
        .fetch_one(&mut conn)
        .await
        .map_err(|err| classify(err, "read the size"))?;
        let connections: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?")
            .bind(info.username.as_str())
            .fetch_one(&mut conn)
            .await
            .map_err(|err| classify(err, "count the sessions"))?;
        Ok(DatabaseUsage {
            size_mb: Units { used: (size.unwrap_or(0) as f64 / 1_048_576.0 * 100.0).round() / 100.0, limit: None },
            connections: Units { used: connections as f64, limit: info.connection_limit.map(f64::from) },
        })
    }

    async fn change_password(
        &self,
        cx: &Context,
        params: ChangeDatabasePasswordParams,
    ) -> Result<DatabaseCredentials, ProviderError> {
        let mut conn = self.connect(cx).await?;
        let info = self.require(cx, &mut conn, &params.database).await?;
        let password = match &params.password {
            Some(password) => password.expose().to_owned(),
            None => generate_password(24),
        };
        let alter = format!("ALTER USER {} IDENTIFIED BY ", self.account(info.username.as_str()));
        self.execute(
            cx,
            &mut conn,
            &format!("{alter}{}", literal(&password)),
            &format!("{alter}'[REDACTED]'"),
            "change the password",
        )
        .await?;
        Ok(DatabaseCredentials { username: info.username, password })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_neutralises_hostile_text() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\' OR 1=1 --"), "'a\\\\'' OR 1=1 --'");
        assert_eq!(grant_pattern("shop_db"), "shop\\_db");
    }

    #[test]
    fn comments_carry_the_owner_mark_and_the_package() {
        assert_eq!(comment(None, None), None);
        for (owner, package) in
            [(Some("prv-0123abcd"), Some("basic")), (Some("prv-0123abcd"), None), (None, Some("a; package: b"))]
        {
            let text = comment(owner, package).unwrap();
            assert_eq!(parse_comment(&text), (owner, package), "{text}");
        }
        assert_eq!(comment(Some("prv-1"), Some("basic")).unwrap(), "provisio owner: prv-1; package: basic");
        // Databases labelled before owner marks, and comments Provisio did not write.
        assert_eq!(parse_comment("provisio package: basic"), (None, Some("basic")));
        assert_eq!(parse_comment("made by hand; owner: prv-1"), (None, None));
        assert_eq!(parse_comment(""), (None, None));
    }
}
