//! `databases/demo`: a simulated database server.

use chrono::Utc;
use provisio_sdk::blueprints::databases::*;
use provisio_sdk::blueprints::{State, Units};
use provisio_sdk::formats::DbIdentifier;
use provisio_sdk::{Context, Empty, ProviderError, UserMessage};
use serde_json::json;

use crate::{Effect, demo_provider, generate_password, key_of, typed};

demo_provider!(
    DemoDatabases,
    "databases",
    "Demo database server",
    "A simulated database server: databases, owner logins, connection limits and sizes, kept in a local file."
);

fn missing(database: &DbIdentifier) -> String {
    format!("Database {database} does not exist on this server")
}

fn package_connections(package: Option<&str>) -> Option<u32> {
    match package {
        Some("basic") => Some(10),
        Some("standard") => Some(50),
        Some("premium") => Some(200),
        _ => None,
    }
}

impl Databases for DemoDatabases {
    async fn create(&self, cx: &Context, params: CreateDatabaseParams) -> Result<DatabaseInfo, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Changes, async {
            if let Some(package) = &params.package_name {
                demo.check_package(package)?;
            }
            let username = params.username.clone().unwrap_or_else(|| params.database.clone());
            if demo.state.field_taken("username", username.as_str(), params.database.as_str()).await? {
                return Err(ProviderError::conflict(UserMessage::new(format!(
                    "Login {username} already owns another database on this server"
                ))));
            }
            let generated = params.password.is_none().then(generate_password);
            let info = DatabaseInfo {
                database: params.database.clone(),
                username: username.clone(),
                host: demo.hostname(),
                port: 5432,
                state: State::Active,
                package_name: params.package_name.clone(),
                connection_limit: params.connection_limit.or(package_connections(params.package_name.as_deref())),
                password: None,
                created_at: Some(Utc::now()),
            };
            let keys: Vec<&str> = key_of(cx).into_iter().collect();
            let created = demo
                .state
                .create(
                    cx,
                    params.database.as_str(),
                    json!(info),
                    &keys,
                    |existing| existing["username"] == json!(username),
                    &format!("Database {} already exists on this server with another owner", params.database),
                )
                .await?;
            match created {
                crate::state::Created::New(data) => {
                    let mut info: DatabaseInfo = typed(data)?;
                    // The generated password is handed out once and never stored.
                    info.password = generated;
                    Ok(info)
                }
                crate::state::Created::Adopted(data) => typed(data),
            }
        })
        .await
    }

    async fn list(
        &self,
        cx: &Context,
        params: provisio_sdk::blueprints::ListParams,
    ) -> Result<provisio_sdk::blueprints::Listing, ProviderError> {
        self.0.list(cx, params).await
    }

    async fn adopt(&self, cx: &Context, params: DatabaseRef) -> Result<DatabaseInfo, ProviderError> {
        self.0.adopt(cx, params.database.as_str(), &missing(&params.database)).await
    }

    async fn get_info(&self, cx: &Context, params: DatabaseRef) -> Result<DatabaseInfo, ProviderError> {
        self.0.read(cx, params.database.as_str(), &missing(&params.database)).await
    }

    async fn suspend(&self, cx: &Context, params: SuspendDatabaseParams) -> Result<DatabaseInfo, ProviderError> {
        self.set_state(cx, &params.database, State::Suspended).await
    }

    async fn unsuspend(&self, cx: &Context, params: DatabaseRef) -> Result<DatabaseInfo, ProviderError> {
        self.set_state(cx, &params.database, State::Active).await
    }

    async fn terminate(&self, cx: &Context, params: DatabaseRef) -> Result<Empty, ProviderError> {
        self.0.remove(cx, params.database.as_str(), &missing(&params.database)).await
    }

    async fn get_usage(&self, cx: &Context, params: DatabaseRef) -> Result<DatabaseUsage, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Reads, async {
            let Some(record) = demo.state.get_owned(cx, params.database.as_str()).await? else {
                return Err(ProviderError::not_found(UserMessage::new(missing(&params.database))));
            };
            let info: DatabaseInfo = typed(record.data)?;
            let minutes = (Utc::now() - record.created_at).num_seconds().max(0) as f64 / 60.0;
            let limit = info.connection_limit.map(f64::from);
            let open = if info.state == State::Active {
                fastrand::u32(0..=info.connection_limit.unwrap_or(5).min(5))
            } else {
                0
            };
            Ok(DatabaseUsage {
                size_mb: Units { used: ((8.0 + minutes * 0.25) * 10.0).round() / 10.0, limit: None },
                connections: Units { used: f64::from(open), limit },
            })
        })
        .await
    }

    async fn change_password(
        &self,
        cx: &Context,
        params: ChangeDatabasePasswordParams,
    ) -> Result<DatabaseCredentials, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Changes, async {
            let password = match &params.password {
                Some(password) => password.expose().to_owned(),
                None => generate_password(),
            };
            let data = demo
                .state
                .update(cx, params.database.as_str(), &missing(&params.database), |data, _| {
                    data["password_changed_at"] = json!(Utc::now());
                    Ok(())
                })
                .await?;
            let info: DatabaseInfo = typed(data)?;
            Ok(DatabaseCredentials { username: info.username, password })
        })
        .await
    }
}

impl DemoDatabases {
    async fn set_state(
        &self,
        cx: &Context,
        database: &DbIdentifier,
        state: State,
    ) -> Result<DatabaseInfo, ProviderError> {
        self.0
            .change(cx, database.as_str(), &missing(database), |data, _| {
                data["state"] = json!(state);
                Ok(())
            })
            .await
    }
}
