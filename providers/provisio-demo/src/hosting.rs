//! `shared-hosting/demo`: a simulated control panel server.

use chrono::Utc;
use provisio_sdk::blueprints::shared_hosting::*;
use provisio_sdk::blueprints::{State, Units};
use provisio_sdk::formats::{DomainName, IpAddress, Url, Username};
use provisio_sdk::{Context, Empty, ProviderError, UserMessage};
use serde_json::{Value, json};

use crate::{Effect, demo_provider, key_of, token, typed};

demo_provider!(
    DemoHosting,
    "shared-hosting",
    "Demo hosting server",
    "A simulated control panel server: accounts, packages, usage and single sign-on, kept in a local file."
);

fn missing(username: &str) -> String {
    format!("Account {username} does not exist on this server")
}

/// Package limits in MiB of disk; unknown packages are unlimited.
fn disk_limit(package: &str) -> Option<f64> {
    match package {
        "basic" => Some(1024.0),
        "standard" => Some(5120.0),
        "premium" => Some(20480.0),
        _ => None,
    }
}

/// The first candidate username that is free, or that an account for the
/// same domain holds (a retried create finds its own account).
async fn free_username(demo: &crate::Demo, domain: &DomainName) -> Result<Username, ProviderError> {
    for candidate in username_candidates(domain, 8) {
        match demo.state.get(candidate.as_str()).await? {
            None => return Ok(candidate),
            Some(existing) if existing.data["domain"] == json!(domain) => return Ok(candidate),
            Some(_) => {}
        }
    }
    Err(ProviderError::conflict(UserMessage::new(format!("No free username for {domain} on this server; give one"))))
}

impl SharedHosting for DemoHosting {
    async fn create(&self, cx: &Context, params: CreateParams) -> Result<AccountInfo, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Changes, async {
            demo.check_package(&params.package_name)?;
            let username = match &params.username {
                Some(username) => username.clone(),
                None => free_username(demo, &params.domain).await?,
            };
            let username = username.as_str();
            if demo.state.field_taken("domain", params.domain.as_str(), username).await? {
                return Err(ProviderError::conflict(UserMessage::new(format!(
                    "Domain {} is already hosted by another account on this server",
                    params.domain
                ))));
            }
            let account = AccountInfo {
                username: Username::parse(username).expect("a valid username"),
                domain: params.domain.clone(),
                package_name: params.package_name.clone(),
                email: params.email.clone(),
                state: State::Active,
                suspend_reason: None,
                server_hostname: demo.hostname(),
                ip: Some(IpAddress::parse("192.0.2.10").expect("valid address")),
                created_at: Utc::now(),
            };
            let keys: Vec<&str> = key_of(cx).into_iter().collect();
            let created = demo
                .state
                .create(
                    cx,
                    username,
                    json!(account),
                    &keys,
                    |existing| {
                        existing["domain"] == json!(params.domain)
                            && existing["package_name"] == json!(params.package_name)
                            && existing["email"] == json!(params.email)
                    },
                    &format!("Username {username} is taken by a different account on this server"),
                )
                .await?;
            typed(created.into_data())
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

    async fn adopt(&self, cx: &Context, params: AccountRef) -> Result<AccountInfo, ProviderError> {
        self.0.adopt(cx, params.username.as_str(), &missing(params.username.as_str())).await
    }

    async fn get_info(&self, cx: &Context, params: AccountRef) -> Result<AccountInfo, ProviderError> {
        let username = params.username.as_str();
        self.0.read(cx, username, &missing(username)).await
    }

    async fn suspend(&self, cx: &Context, params: SuspendParams) -> Result<AccountInfo, ProviderError> {
        let username = params.username.as_str();
        self.0
            .change(cx, username, &missing(username), |data, _| {
                data["state"] = json!(State::Suspended);
                data["suspend_reason"] = json!(params.reason);
                Ok(())
            })
            .await
    }

    async fn unsuspend(&self, cx: &Context, params: AccountRef) -> Result<AccountInfo, ProviderError> {
        let username = params.username.as_str();
        self.0
            .change(cx, username, &missing(username), |data, _| {
                data["state"] = json!(State::Active);
                data["suspend_reason"] = Value::Null;
                Ok(())
            })
            .await
    }

    async fn change_package(&self, cx: &Context, params: ChangePackageParams) -> Result<AccountInfo, ProviderError> {
        self.0.check_package(&params.package_name)?;
        let username = params.username.as_str();
        self.0
            .change(cx, username, &missing(username), |data, _| {
                data["package_name"] = json!(params.package_name);
                Ok(())
            })
            .await
    }

    async fn terminate(&self, cx: &Context, params: AccountRef) -> Result<Empty, ProviderError> {
        let username = params.username.as_str();
        self.0.remove(cx, username, &missing(username)).await
    }

    async fn get_usage(&self, cx: &Context, params: AccountRef) -> Result<AccountUsage, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Reads, async {
            let username = params.username.as_str();
            let Some(record) = demo.state.get_owned(cx, username).await? else {
                return Err(ProviderError::not_found(UserMessage::new(missing(username))));
            };
            let package = record.data["package_name"].as_str().unwrap_or_default().to_owned();
            // Usage grows with the account's age, with a little noise, like a real site.
            let minutes = (Utc::now() - record.created_at).num_seconds().max(0) as f64 / 60.0;
            let disk = (5.0 + minutes * 0.5 + fastrand::f64()).min(disk_limit(&package).unwrap_or(f64::MAX));
            Ok(AccountUsage {
                disk_mb: Units { used: round(disk), limit: disk_limit(&package) },
                bandwidth_mb: Units { used: round(minutes * 2.0 + fastrand::f64() * 3.0), limit: None },
                inodes: Some(Units { used: (120.0 + minutes).floor(), limit: Some(250_000.0) }),
                mailboxes: Some(Units { used: 1.0, limit: Some(100.0) }),
                databases: Some(Units { used: 1.0, limit: Some(10.0) }),
            })
        })
        .await
    }

    async fn get_login_url(&self, cx: &Context, params: GetLoginUrlParams) -> Result<LoginUrl, ProviderError> {
        let demo = &self.0;
        demo.around(cx, Effect::Changes, async {
            let username = params.username.as_str();
            let session = token(32);
            let expires_at = Utc::now() + chrono::Duration::seconds(i64::from(demo.config.login_ttl_secs));
            let data = demo
                .state
                .update(cx, username, &missing(username), |data, _| {
                    if data["state"] == json!(State::Suspended) {
                        return Err(ProviderError::provider("The account is suspended; logging in is not possible"));
                    }
                    data["login_session"] = json!({ "token": session, "expires_at": expires_at });
                    Ok(())
                })
                .await?;
            let base = match &demo.config.panel_url {
                Some(panel) => panel.clone(),
                None => format!("https://{}:2083/login/", data["server_hostname"].as_str().unwrap_or_default()),
            };
            let mut login_url = url::Url::parse(&base).map_err(ProviderError::internal)?;
            login_url.query_pairs_mut().append_pair("server", &demo.config.server).append_pair("session", &session);
            Ok(LoginUrl {
                login_url: Url::parse(login_url.as_str()).map_err(ProviderError::internal)?,
                expires_at,
                for_ip: params.client_ip.clone(),
                post_fields: None,
            })
        })
        .await
    }

    async fn change_password(&self, cx: &Context, params: ChangePasswordParams) -> Result<Empty, ProviderError> {
        let username = params.username.as_str();
        // Only the time is kept; the simulator, like a panel, never stores the password.
        let _: Value = self
            .0
            .change(cx, username, &missing(username), |data, _| {
                data["password_changed_at"] = json!(Utc::now());
                Ok(())
            })
            .await?;
        Ok(Empty {})
    }
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Why the simulated panel refused a login link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// Never issued, or already used: a link works once.
    Unknown,
    /// Issued, but past its `expires_at`.
    Expired,
}

/// What the simulated panel's login page does with a link's `session`:
/// logs the account in once, within the link's life. `state_path` and
/// `server` are the configuration's. Answers the account's username.
pub async fn redeem_login(
    state_path: &str,
    server: &str,
    session: &str,
) -> Result<Result<String, LoginRefused>, ProviderError> {
    let state = crate::state::State::open(state_path, "shared-hosting", server).await?;
    let Some((username, expires_at)) = state.take_login_session(session).await? else {
        return Ok(Err(LoginRefused::Unknown));
    };
    let expired = chrono::DateTime::parse_from_rfc3339(&expires_at).map_or(true, |at| at < Utc::now());
    Ok(if expired { Err(LoginRefused::Expired) } else { Ok(username) })
}
