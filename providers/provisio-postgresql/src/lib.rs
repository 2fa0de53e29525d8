//! `databases/postgresql`: a database and its owner role on a PostgreSQL
//! server, managed with an administrative role that has CREATEROLE and
//! CREATEDB.
//!
//! - create: `CREATE ROLE … LOGIN PASSWORD … CONNECTION LIMIT n`,
//!   `GRANT role TO CURRENT_USER` (a non-superuser administrator must be a
//!   member to give it a database, drop that database and end its sessions),
//!   `CREATE DATABASE … OWNER`, `REVOKE ALL ON DATABASE … FROM PUBLIC`;
//! - suspend: `ALTER ROLE … NOLOGIN` and its sessions are ended; unsuspend: `LOGIN`;
//! - terminate: `DROP DATABASE … WITH (FORCE)`, `DROP ROLE`.
//!
//! The service's owner mark is the owner role's comment (`provisio owner: …`);
//! every function acts only on a database whose role carries the caller's mark.
//!
//! Names are checked by the blueprint's `db-identifier` format and quoted
//! anyway; passwords are quoted literals (generated ones are letters and
//! digits only). Every statement is recorded in the call's log with any
//! password replaced by `[REDACTED]`.

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
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgConnection, Row};

/// The registry entry.
pub fn entry() -> provisio_sdk::ProviderEntry {
    provisio_sdk::blueprints::databases::entry::<Postgres>()
}

fn default_port() -> u16 {
    5432
}

fn default_database() -> String {
    "postgres".into()
}

fn default_connection_limit() -> u32 {
    20
}

fn default_package_limits() -> std::collections::BTreeMap<String, u32> {
    [("basic", 10), ("standard", 50), ("premium", 200)].into_iter().map(|(p, n)| (p.to_owned(), n)).collect()
}

/// How to reach the server and as whom.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Server host name or address.
    #[schemars(length(min = 1, max = 253), extend("x-endpoint" = true))]
    pub host: String,
    /// Server port.
    #[serde(default = "default_port")]
    #[schemars(extend("x-endpoint" = true))]
    pub port: u16,
    /// Administrative role (needs CREATEROLE and CREATEDB).
    #[schemars(length(min = 1, max = 63))]
    pub username: String,
    /// Its password.
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    pub password: String,
    /// Database to connect to for administration.
    #[serde(default = "default_database")]
    pub database: String,
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

/// One database as the catalogue holds it.
struct Found {
    name: String,
    /// The owner mark on its role's comment.
    mark: Option<String>,
    /// Why it is no service's to take (see `list`).
    refused: Option<String>,
    /// As the blueprint reads it (a name Provisio could not manage is an error).
    info: Result<DatabaseInfo, ProviderError>,
}

/// The PostgreSQL provider for one server.
#[derive(Debug)]
pub struct Postgres {
    config: PostgresConfig,
}

/// How the owner role's comment starts; the owner mark follows.
const OWNER_MARK: &str = "provisio owner: ";
/// How the database's comment starts; the package name follows.
const PACKAGE_MARK: &str = "provisio package: ";

/// Quotes an identifier (`"name"`, inner quotes doubled).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal (`'text'`, inner quotes doubled; backslashes are
/// literal under standard_conforming_strings, which the connection sets).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
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
            Some("28P01" | "28000") => {
                ProviderError::provider("The database server rejected the administrative credentials")
            }
            Some("42501") => ProviderError::provider(UserMessage::new(format!(
                "The administrative role lacks a privilege needed to {what}"
            ))),
            Some("53300") => ProviderError::transient("The database server has too many connections; try again later"),
            Some("57P01" | "57P02" | "57P03") => ProviderError::transient("The database server is restarting"),
            Some("42710" | "42P04") => ProviderError::conflict(UserMessage::new(format!("It already exists ({what})"))),
            _ => ProviderError::internal(format!("{what}: {debug}")),
        },
        _ => ProviderError::internal(format!("{what}: {debug}")),
    };
    error.with_debug("postgres", debug)
}

impl Postgres {
    fn client_host(&self) -> String {
        self.config.client_host.clone().unwrap_or_else(|| self.config.host.clone())
    }

    async fn connect(&self, cx: &Context) -> Result<PgConnection, ProviderError> {
        let options = PgConnectOptions::new()
            .host(&self.config.host)
            .port(self.config.port)
            .username(&self.config.username)
            .password(&self.config.password)
            .database(&self.config.database)
            .options([("standard_conforming_strings", "on")])
            .application_name("provisio")
            .disable_statement_logging();
        // Never opportunistic: either verified TLS, or plain by choice.
        let options = match (self.config.tls, &self.config.ca_cert_pem) {
            (TlsMode::Verify, Some(pem)) => {
                provisio_sdk::tls::ca_certificates(pem)?;
                options.ssl_mode(PgSslMode::VerifyFull).ssl_root_cert_from_pem(pem.as_bytes().to_vec())
            }
            (TlsMode::Verify, None) => options.ssl_mode(PgSslMode::VerifyFull),
            (TlsMode::Disabled, _) => options.ssl_mode(PgSslMode::Disable),
        };
        let started = Instant::now();
        let result = tokio_timeout(cx, options.connect()).await;
        cx.record(exchange(
            "CONNECT",
            &format!(
                "postgres://{}@{}:{}/{}",
                self.config.username, self.config.host, self.config.port, self.config.database
            ),
            started,
            result.as_ref().err().map(|e| e.to_string()),
        ));
        result.map_err(|err| classify(err, "connect"))
    }

    /// Runs one statement; `shown` is what the log records (passwords masked).
    async fn execute(
        &self,
        cx: &Context,
        conn: &mut PgConnection,
        sql: &str,
        shown: &str,
        what: &str,
    ) -> Result<u64, ProviderError> {
        let started = Instant::now();
        let result = tokio_timeout(cx, sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut *conn)).await;
        cx.record(exchange("SQL", shown, started, result.as_ref().err().map(|e| e.to_string())));
        result.map(|done| done.rows_affected()).map_err(|err| classify(err, what))
    }

    /// The database and its owner role, if it exists and this call may act on
    /// it: one whose role carries another owner mark (or none) is `conflict`.
    async fn info(
        &self,
        cx: &Context,
        conn: &mut PgConnection,
        database: &DbIdentifier,
    ) -> Result<Option<DatabaseInfo>, ProviderError> {
        let Some(found) = self.found(cx, conn, Some(database.as_str()), None, 1).await?.pop() else {
            return Ok(None);
        };
        cx.check_owner(&format!("Database {database}"), found.mark.as_deref())?;
        found.info.map(Some)
    }

    /// Databases as the catalogue holds them (templates aside), by name:
    /// `only` one, or those after `after`, at most `limit`.
    async fn found(
        &self,
        cx: &Context,
        conn: &mut PgConnection,
        only: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Found>, ProviderError> {
        let started = Instant::now();
        let rows = tokio_timeout(
            cx,
            sqlx::query(
                "SELECT d.datname, r.rolname, r.rolcanlogin, r.rolconnlimit, \
                 r.rolsuper OR r.rolname = current_user OR r.rolcreaterole OR r.rolcreatedb \
                   OR r.rolreplication OR r.rolbypassrls AS privileged, \
                 EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid) AS member_of_others, \
                 EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles o ON o.oid = m.member \
                   WHERE m.roleid = r.oid AND o.rolname <> current_user) AS has_members, \
                 EXISTS (SELECT 1 FROM aclexplode(d.datacl) a WHERE a.grantee NOT IN (0, d.datdba)) AS shared, \
                 (SELECT count(*) FROM pg_database o WHERE o.datdba = r.oid) AS owned, \
                 shobj_description(d.oid, 'pg_database') AS package, \
                 shobj_description(r.oid, 'pg_authid') AS mark \
                 FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba \
                 WHERE NOT d.datistemplate AND ($1::text IS NULL OR d.datname = $1) \
                 AND ($2::text IS NULL OR d.datname > $2) ORDER BY d.datname LIMIT $3",
            )
            .bind(only)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn),
        )
        .await;
        let shown = match (only, after) {
            (Some(name), _) => format!("SELECT … FROM pg_database WHERE datname = {}", literal(name)),
            (None, Some(after)) => {
                format!("SELECT … FROM pg_database WHERE datname > {} LIMIT {limit}", literal(after))
            }
            (None, None) => format!("SELECT … FROM pg_database LIMIT {limit}"),
        };
        cx.record(exchange("SQL", &shown, started, rows.as_ref().err().map(|e| e.to_string())));
        let rows = rows.map_err(|err| classify(err, "read the databases"))?;
        Ok(rows.iter().map(|row| self.found_row(row)).collect())
    }

    fn found_row(&self, row: &sqlx::postgres::PgRow) -> Found {
        let name: String = row.get("datname");
        let username: String = row.get("rolname");
        let mark: Option<String> = row.get("mark");
        let limit: i32 = row.get("rolconnlimit");
        let package: Option<String> = row.get("package");
        let owned: i64 = row.get("owned");
        // The client will hold this login (its password, its sessions):
        // only one whose reach is this database alone can be adopted.
        let refused = if row.get::<bool, _>("privileged") {
            Some(format!(
                "its owner {username} has rights beyond one database (superuser, CREATEROLE, CREATEDB, \
                 REPLICATION or BYPASSRLS), or is the administrative role"
            ))
        } else if row.get::<bool, _>("member_of_others") {
            Some(format!("its owner {username} belongs to other roles, whose rights it has"))
        } else if row.get::<bool, _>("has_members") {
            Some(format!("other roles belong to its owner {username}, and would reach it"))
        } else if row.get::<bool, _>("shared") {
            Some("other roles are granted rights on it".to_owned())
        } else if owned > 1 {
            Some(format!("its owner {username} owns {owned} databases; a service is one database and its own login"))
        } else {
            None
        };
        let info = DbIdentifier::parse(&name)
            .and_then(|database| Ok((database, DbIdentifier::parse(&username)?)))
            .map(|(database, username)| DatabaseInfo {
                database,
                username,
                host: self.client_host(),
                port: self.config.port,
                state: if row.get::<bool, _>("rolcanlogin") { State::Active } else { State::Suspended },
                package_name: package.and_then(|p| p.strip_prefix(PACKAGE_MARK).map(str::to_owned)),
                connection_limit: u32::try_from(limit).ok(),
                password: None,
                created_at: None,
            })
            .map_err(|err| ProviderError::internal(format!("database {name}: {err}")));
        Found { name, mark: mark.and_then(|m| m.strip_prefix(OWNER_MARK).map(str::to_owned)), refused, info }
    }

    async fn require(
        &self,
        cx: &Context,
        conn: &mut PgConnection,
        database: &DbIdentifier,
    ) -> Result<DatabaseInfo, ProviderError> {
        self.info(cx, conn, database).await?.ok_or_else(|| {
            ProviderError::not_found(UserMessage::new(format!("Database {database} does not exist on this server")))
        })
    }

    async fn set_login(
        &self,
        cx: &Context,
        database: &DbIdentifier,
        login: bool,
    ) -> Result<DatabaseInfo, ProviderError> {
        let mut conn = self.connect(cx).await?;
        let info = self.require(cx, &mut conn, database).await?;
        let role = ident(info.username.as_str());
        let sql = format!("ALTER ROLE {role} {}", if login { "LOGIN" } else { "NOLOGIN" });
        self.execute(cx, &mut conn, &sql, &sql, "change the login").await?;
        if !login {
            // Sessions already open would outlive the suspension.
            let sql = format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {}",
                literal(info.username.as_str())
            );
            self.execute(cx, &mut conn, &sql, &sql, "end the sessions").await?;
        }
        self.require(cx, &mut conn, database).await
    }
}

async fn tokio_timeout<T>(
    cx: &Context,
    future: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    match tokio::time::timeout(cx.remaining(), future).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

fn exchange(method: &str, what: &str, started: Instant, error: Option<String>) -> HttpExchange {
    HttpExchange { error, ..HttpExchange::other(method, what, started) }
}

impl Provider for Postgres {
    type Config = PostgresConfig;

    fn about() -> ProviderAbout {
        ProviderAbout {
            id: "postgresql".into(),
            name: "PostgreSQL".into(),
            description: "Databases and their owner roles on a PostgreSQL server.".into(),
            logo_url: Some("https://www.postgresql.org/media/img/about/press/elephant.png".into()),
        }
    }

    async fn new(config: PostgresConfig) -> Result<Self, ProviderError> {
        Ok(Postgres { config })
    }

    async fn test_connection(&self, cx: &Context) -> Result<ConnectionTest, ProviderError> {
        let mut conn = self.connect(cx).await?;
        let row = sqlx::query(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, current_setting('server_version') AS version \
             FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(|err| classify(err, "read the administrative role"))?;
        let (superuser, create_role, create_db): (bool, bool, bool) =
            (row.get("rolsuper"), row.get("rolcreaterole"), row.get("rolcreatedb"));
        let version: String = row.get("version");
        let mut missing = Vec::new();
        if !superuser && !create_role {
            missing.push("CREATEROLE");
        }
        if !superuser && !create_db {
            missing.push("CREATEDB");
        }
        if !missing.is_empty() {
            return Err(ProviderError::provider(UserMessage::new(format!(
                "Connected as {}, but the role lacks {}",
                self.config.username,
                missing.join(" and ")
            ))));
        }
        let _ = conn.close().await;
        Ok(ConnectionTest {
            message: format!(
                "Connected to PostgreSQL {version} as {} with the privileges needed",
                self.config.username
            ),
            details: json!({"version": version, "superuser": superuser}),
        })
    }
}

impl Databases for Postgres {
    async fn create(&self, cx: &Context, params: CreateDatabaseParams) -> Result<DatabaseInfo, ProviderError> {
        let username = params.username.clone().unwrap_or_else(|| params.database.clone());
        let mut conn = self.connect(cx).await?;
        // An existing database is answered only if it carries this call's
        // owner mark (`info` checks it), and adopted only if it matches.
        if let Some(existing) = self.info(cx, &mut conn, &params.database).await? {
            if existing.username == username {
                // The same database and owner: adopted, no password handed out again.
                return Ok(existing);
            }
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "Database {} already exists on this server with another owner",
                params.database
            ))));
        }
        let role_exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(username.as_str())
            .fetch_one(&mut conn)
            .await
            .map_err(|err| classify(err, "look up the login"))?;
        if role_exists {
            return Err(ProviderError::conflict(UserMessage::new(format!(
                "Login {username} already exists on this server"
            ))));
        }
        let generated = params.password.is_none().then(|| generate_password(24));
        let password =
            params.password.as_ref().map(|p| p.expose().to_owned()).or(generated.clone()).expect("one is set");
        let limit = params
            .connection_limit
            .or(params.package_name.as_ref().and_then(|p| self.config.package_connection_limits.get(p).copied()))
            .unwrap_or(self.config.default_connection_limit);
        let (role, database) = (ident(username.as_str()), ident(params.database.as_str()));
        let create_role = format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT {limit} PASSWORD ");
        self.execute(
            cx,
            &mut conn,
            &format!("{create_role}{}", literal(&password)),
            &format!("{create_role}'[REDACTED]'"),
            "create the login",
        )
        .await?;
        let mut statements = vec![(format!("GRANT {role} TO CURRENT_USER"), "administer the login")];
        if let Some(owner) = cx.owner() {
            let mark = format!("COMMENT ON ROLE {role} IS {}", literal(&format!("{OWNER_MARK}{owner}")));
            statements.push((mark, "mark the login"));
        }
        statements.push((format!("CREATE DATABASE {database} OWNER {role}"), "create the database"));
        for (sql, what) in &statements {
            if let Err(err) = self.execute(cx, &mut conn, sql, sql, what).await {
                // Leave nothing half made.
                let drop = format!("DROP ROLE IF EXISTS {role}");
                let _ = self.execute(cx, &mut conn, &drop, &drop, "clean up").await;
                return Err(err);
            }
        }
        let revoke = format!("REVOKE ALL ON DATABASE {database} FROM PUBLIC");
        self.execute(cx, &mut conn, &revoke, &revoke, "restrict the database").await?;
        if let Some(package) = &params.package_name {
            let comment = format!("COMMENT ON DATABASE {database} IS {}", literal(&format!("{PACKAGE_MARK}{package}")));
            self.execute(cx, &mut conn, &comment, &comment, "label the database").await?;
        }
        let mut info = self.require(cx, &mut conn, &params.database).await?;
        info.password = generated;
        info.created_at = Some(chrono::Utc::now());
        let _ = conn.close().await;
        Ok(info)
    }

    async fn get_info(&self, cx: &Context, params: DatabaseRef) -> Result<DatabaseInfo, ProviderError> {
        let mut conn = self.connect(cx).await?;
        self.require(cx, &mut conn, &params.database).await
    }

    async fn suspend(&self, cx: &Context, params: SuspendDatabaseParams) -> Result<DatabaseInfo, ProviderError> {
        self.set_login(cx, &params.database, false).await
    }

    async fn unsuspend(&self, cx: &Context, params: DatabaseRef) -> Result<DatabaseInfo, ProviderError> {
        self.set_login(cx, &params.database, true).await
    }

    async fn terminate(&self, cx: &Context, params: DatabaseRef) -> Result<Empty, ProviderError> {
        let mut conn = self.connect(cx).await?;
        let info = self.require(cx, &mut conn, &params.database).await?;
        let drop_database = format!("DROP DATABASE {} WITH (FORCE)", ident(params.database.as_str()));
        self.execute(cx, &mut conn, &drop_database, &drop_database, "drop the database").await?;
        let drop_role = format!("DROP ROLE IF EXISTS {}", ident(info.username.as_str()));
        self.execute(cx, &mut conn, &drop_role, &drop_role, "drop the login").await?;
        Ok(Empty {})
    }

    /// Every database but templates, by name. Only one owned by a login of
    /// its own (not a superuser, not the administrative role, owning no other
    /// database) can be adopted: its role is what carries the owner mark.
    async fn list(&self, cx: &Context, params: ListParams) -> Result<Listing, ProviderError> {
        let mut conn = self.connect(cx).await?;
        let fetched = self.found(cx, &mut conn, None, params.cursor.as_deref(), params.fetch()).await?;
        let (found, next_cursor) = params.cut(fetched, |f| f.name.as_str());
        let count = "SELECT count(*) FROM pg_database WHERE NOT datistemplate";
        let started = Instant::now();
        let total = tokio_timeout(cx, sqlx::query_scalar::<_, i64>(count).fetch_one(&mut conn)).await;
        cx.record(exchange("SQL", count, started, total.as_ref().err().map(|e| e.to_string())));
        let total = total.map_err(|err| classify(err, "count the databases"))?;
        let _ = conn.close().await;
        let resources = found
            .into_iter()
            .map(|found| {
                let (state, data, refused) = match found.info {
                    Ok(info) => (info.state, Listed::data_of(&info), found.refused),
                    Err(_) => (
                        State::Active,
                        Default::default(),
                        Some("its name or its owner's is not one Provisio manages".into()),
                    ),
                };
                Listed { identifier: found.name, state, owner_mark: found.mark, refused, email: None, data }
            })
            .collect();
        Ok(Listing { resources, next_cursor, total: u64::try_from(total).ok() })
    }

    /// Writes the service's mark on the owner role's comment, inside a
    /// transaction holding an advisory lock on the database's name, so two
    /// imports of one database (through two configurations of this server)
    /// cannot both take it; the refusals of `list` are checked again under
    /// it. The database is then kept as `create` leaves one: the
    /// administrative role a member of its owner (to end its sessions and
    /// drop it), and no rights for PUBLIC.
    async fn adopt(&self, cx: &Context, params: DatabaseRef) -> Result<DatabaseInfo, ProviderError> {
        let what = format!("Database {}", params.database);
        let mut conn = self.connect(cx).await?;
        let begin = "BEGIN";
        self.execute(cx, &mut conn, begin, begin, "begin").await?;
        let lock = format!(
            "SELECT pg_advisory_xact_lock(hashtext({}))",
            literal(&format!("provisio adopt {}", params.database))
        );
        self.execute(cx, &mut conn, &lock, &lock, "lock the database").await?;
        let Some(found) = self.found(cx, &mut conn, Some(params.database.as_str()), None, 1).await?.pop() else {
            return Err(ProviderError::not_found(UserMessage::new(format!(
                "Database {} does not exist on this server",
                params.database
            ))));
        };
        if let Some(mark) = cx.adoption(&what, found.mark.as_deref())? {
            if let Some(why) = &found.refused {
                return Err(ProviderError::conflict(UserMessage::new(format!("{what} cannot be adopted: {why}"))));
            }
            let info = found.info?;
            let role = ident(info.username.as_str());
            let database = ident(params.database.as_str());
            for (sql, step) in [
                (format!("GRANT {role} TO CURRENT_USER"), "administer the login"),
                (format!("COMMENT ON ROLE {role} IS {}", literal(&format!("{OWNER_MARK}{mark}"))), "mark the login"),
                (format!("REVOKE ALL ON DATABASE {database} FROM PUBLIC"), "restrict the database"),
            ] {
                self.execute(cx, &mut conn, &sql, &sql, step).await?;
            }
        }
        let commit = "COMMIT";
        self.execute(cx, &mut conn, commit, commit, "commit").await?;
        let info = self.require(cx, &mut conn, &params.database).await?;
        let _ = conn.close().await;
        Ok(info)
    }

    async fn get_usage(&self, cx: &Context, params: DatabaseRef) -> Result<DatabaseUsage, ProviderError> {
        let mut conn = self.connect(cx).await?;
        let info = self.require(cx, &mut conn, &params.database).await?;
        let row = sqlx::query(
            "SELECT pg_database_size($1) AS size, \
             (SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1) AS connections",
        )
        .bind(params.database.as_str())
        .fetch_one(&mut conn)
        .await
        .map_err(|err| classify(err, "read the usage"))?;
        let size: i64 = row.get("size");
        let connections: i64 = row.get("connections");
        Ok(DatabaseUsage {
            size_mb: Units { used: (size as f64 / 1_048_576.0 * 100.0).round() / 100.0, limit: None },
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
        let alter = format!("ALTER ROLE {} PASSWORD ", ident(info.username.as_str()));
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
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("x'; DROP ROLE postgres; --"), "'x''; DROP ROLE postgres; --'");
    }
}
