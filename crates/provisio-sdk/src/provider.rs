//! Providers: one integration implementing one blueprint, its typed
//! configuration, and the registry of every compiled-in provider.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::blueprint::BlueprintDescriptor;
use crate::context::Context;
use crate::error::{FieldError, FieldLocation, ProviderError};
use crate::schema::SchemaDoc;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who a provider is, for listings: written in the code of a compiled-in
/// provider, read from its description for one registered at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderAbout {
    /// Stable kebab-case id, unique within its blueprint, e.g. `demo`.
    pub id: Cow<'static, str>,
    /// Display name.
    pub name: Cow<'static, str>,
    /// One or two sentences.
    pub description: Cow<'static, str>,
    /// Logo address, if any.
    pub logo_url: Option<Cow<'static, str>>,
}

/// What `test_connection` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionTest {
    /// What was checked, for staff.
    pub message: String,
    /// Facts learnt (versions, limits), if any.
    #[serde(default)]
    pub details: Value,
}

/// Something a provider's system announced on its own, about one of the
/// account's resources (a registry's poll message): read with
/// [`Provider::next_notice`], removed with [`Provider::acknowledge`] once
/// the engine has stored what it means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Notice {
    /// The system's id for it (what `acknowledge` takes).
    pub id: String,
    /// The resource it is about, as the blueprint's service identifier names it.
    pub identifier: String,
    /// Further resources the same notice is about (a registry message that
    /// lists several domains); each becomes its own event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// What happened.
    pub kind: NoticeKind,
    /// The system's words.
    pub message: String,
}

/// What a notice says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The resource moved to this account (a transfer in completed).
    TransferredIn,
    /// The resource moved to another account (a transfer away completed).
    TransferredAway,
    /// Another account asked to take the resource away.
    TransferRequested,
    /// A transfer in was refused or cancelled.
    TransferRefused,
    /// The resource was deleted at the system.
    Deleted,
    /// Anything else, for the record.
    Other,
}

impl NoticeKind {
    /// The event type the engine records it as.
    pub fn event_type(self) -> &'static str {
        match self {
            NoticeKind::TransferredIn => "registry.transferred_in",
            NoticeKind::TransferredAway => "registry.transferred_away",
            NoticeKind::TransferRequested => "registry.transfer_requested",
            NoticeKind::TransferRefused => "registry.transfer_refused",
            NoticeKind::Deleted => "registry.deleted",
            NoticeKind::Other => "registry.notice",
        }
    }
}

/// A provider: implemented once per vendor and blueprint, together with the
/// blueprint's trait (e.g. `SharedHosting`).
pub trait Provider: Sized + Send + Sync + 'static {
    /// The typed configuration; mark credentials with
    /// `#[schemars(extend("x-secret" = true, "writeOnly" = true))]` or use a
    /// secret type, so they are encrypted, write-only and redacted.
    type Config: DeserializeOwned + JsonSchema + Send;

    /// Id, name, description and logo.
    fn about() -> ProviderAbout;

    /// Builds the provider for one configuration. Cheap: connections are
    /// opened lazily or pooled.
    fn new(config: Self::Config) -> impl Future<Output = Result<Self, ProviderError>> + Send;

    /// Checks that the configured system answers and the credentials work;
    /// says precisely what is wrong otherwise.
    fn test_connection(&self, cx: &Context) -> impl Future<Output = Result<ConnectionTest, ProviderError>> + Send;

    /// The oldest notice the system holds for this account, if any; it stays
    /// until [`Provider::acknowledge`]. Providers whose systems announce
    /// nothing keep the default (`unsupported`).
    fn next_notice(&self, _cx: &Context) -> impl Future<Output = Result<Option<Notice>, ProviderError>> + Send {
        async { Err(ProviderError::unsupported("next_notice")) }
    }

    /// Removes a notice read with [`Provider::next_notice`].
    fn acknowledge(&self, _cx: &Context, _id: &str) -> impl Future<Output = Result<(), ProviderError>> + Send {
        async { Err(ProviderError::unsupported("acknowledge")) }
    }
}

/// A built provider, type-erased, as the engine and the CLI hold it.
pub trait ProviderInstance: Send + Sync {
    /// Runs a function with params already validated against its schema.
    fn call<'a>(
        &'a self,
        cx: &'a Context,
        function: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Value, ProviderError>>;

    /// Runs `test_connection`.
    fn test_connection<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Result<ConnectionTest, ProviderError>>;

    /// Runs `next_notice`; instances whose systems announce nothing keep
    /// the default (`unsupported`).
    fn next_notice<'a>(&'a self, _cx: &'a Context) -> BoxFuture<'a, Result<Option<Notice>, ProviderError>> {
        Box::pin(async { Err(ProviderError::unsupported("next_notice")) })
    }

    /// Runs `acknowledge` (by default `unsupported`, like `next_notice`).
    fn acknowledge<'a>(&'a self, _cx: &'a Context, _id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Err(ProviderError::unsupported("acknowledge")) })
    }
}

type Dispatch<P> = for<'a> fn(&'a P, &'a Context, &'a str, Value) -> BoxFuture<'a, Result<Value, ProviderError>>;
type Build = Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Arc<dyn ProviderInstance>, ProviderError>> + Send + Sync>;
/// Checks a configuration beyond its schema (the generic HTTP provider's
/// templates against the blueprint's schemas); paths are JSON pointers into it.
pub type ConfigCheck = Arc<dyn Fn(&Value) -> Result<(), Vec<FieldError>> + Send + Sync>;

struct Instance<P> {
    provider: P,
    dispatch: Dispatch<P>,
}

impl<P: Provider> ProviderInstance for Instance<P> {
    fn call<'a>(
        &'a self,
        cx: &'a Context,
        function: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Value, ProviderError>> {
        (self.dispatch)(&self.provider, cx, function, params)
    }

    fn test_connection<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Result<ConnectionTest, ProviderError>> {
        Box::pin(self.provider.test_connection(cx))
    }

    fn next_notice<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Result<Option<Notice>, ProviderError>> {
        Box::pin(self.provider.next_notice(cx))
    }

    fn acknowledge<'a>(&'a self, cx: &'a Context, id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(self.provider.acknowledge(cx, id))
    }
}

/// A provider in the registry: its blueprint, identity, configuration schema
/// and how to build it.
#[derive(Clone)]
pub struct ProviderEntry {
    blueprint: &'static BlueprintDescriptor,
    about: ProviderAbout,
    config_schema: SchemaDoc,
    build: Build,
    /// The optional functions it implements; `None`: it answers
    /// `unsupported` itself for those it lacks (compiled-in providers).
    optional: Option<BTreeSet<String>>,
    check: Option<ConfigCheck>,
}

impl std::fmt::Debug for ProviderEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderEntry").field("address", &self.address()).finish_non_exhaustive()
    }
}

impl ProviderEntry {
    /// An entry for provider `P` of `blueprint`; written by the `blueprint!` macro.
    pub fn new<P: Provider>(blueprint: &'static BlueprintDescriptor, dispatch: Dispatch<P>) -> Self {
        let build: Build = Arc::new(move |config: Value| {
            Box::pin(async move {
                let config: P::Config = serde_json::from_value(config)
                    .map_err(|err| ProviderError::internal(format!("configuration does not decode: {err}")))?;
                let provider = P::new(config).await?;
                Ok(Arc::new(Instance { provider, dispatch }) as Arc<dyn ProviderInstance>)
            })
        });
        ProviderEntry {
            blueprint,
            about: P::about(),
            config_schema: SchemaDoc::of::<P::Config>(),
            build,
            optional: None,
            check: None,
        }
    }

    /// An entry built from a description rather than a Rust type: a provider
    /// registered at run time (an external program) or one generic over
    /// blueprints (the HTTP provider). `build` makes an instance from
    /// configuration values already validated against `config_schema`.
    pub fn dynamic<F>(
        blueprint: &'static BlueprintDescriptor,
        about: ProviderAbout,
        config_schema: SchemaDoc,
        build: F,
    ) -> Self
    where
        F: Fn(Value) -> BoxFuture<'static, Result<Arc<dyn ProviderInstance>, ProviderError>> + Send + Sync + 'static,
    {
        ProviderEntry { blueprint, about, config_schema, build: Arc::new(build), optional: None, check: None }
    }

    /// Says which of the blueprint's optional functions it implements; the
    /// others answer `unsupported` without reaching it, and listings leave
    /// them out. Names the blueprint does not declare are ignored.
    pub fn with_optional<I: IntoIterator<Item = S>, S: Into<String>>(mut self, functions: I) -> Self {
        self.optional = Some(functions.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a check of configurations beyond their schema, run when one is
    /// saved and before every call.
    pub fn with_config_check(mut self, check: ConfigCheck) -> Self {
        self.check = Some(check);
        self
    }

    /// Whether it implements `function` (every required one does).
    pub fn implements(&self, function: &str) -> bool {
        match (self.blueprint.function(function), &self.optional) {
            (None, _) => false,
            (Some(f), Some(optional)) if f.optional => optional.contains(function),
            (Some(_), _) => true,
        }
    }

    /// Checks configuration values: the schema first, then the provider's own
    /// check. Paths are JSON pointers into the values.
    pub fn validate_config(&self, config: &Value) -> Result<(), Vec<FieldError>> {
        self.config_schema.validate(config, FieldLocation::Config)?;
        match &self.check {
            Some(check) => check(config),
            None => Ok(()),
        }
    }

    /// `BLUEPRINT/PROVIDER`, e.g. `shared-hosting/demo`.
    pub fn address(&self) -> String {
        format!("{}/{}", self.blueprint.id, self.about.id)
    }

    /// The blueprint it implements.
    pub fn blueprint(&self) -> &'static BlueprintDescriptor {
        self.blueprint
    }

    /// Id, name, description, logo.
    pub fn about(&self) -> &ProviderAbout {
        &self.about
    }

    /// The configuration schema (secrets marked).
    pub fn config_schema(&self) -> &SchemaDoc {
        &self.config_schema
    }

    /// Builds an instance from configuration values already validated
    /// against [`ProviderEntry::config_schema`].
    pub async fn build(&self, config: Value) -> Result<Arc<dyn ProviderInstance>, ProviderError> {
        (self.build)(config).await
    }

    /// The entry as JSON: identity, configuration schema, functions.
    pub fn to_json(&self) -> Value {
        json!({
            "address": self.address(),
            "blueprint": self.blueprint.id,
            "id": self.about.id,
            "name": self.about.name,
            "description": self.about.description,
            "logo_url": self.about.logo_url,
            "config_schema": self.config_schema.value(),
            "secret_fields": self.config_schema.secret_paths(),
            "endpoint_fields": self.config_schema.endpoint_names(),
            "service_identifier": self.blueprint.service_identifier,
            "identifiers": self.blueprint.identifiers,
            "ownership": self.blueprint.ownership,
            "functions": self
                .blueprint
                .functions
                .iter()
                .filter(|f| self.implements(f.name))
                .map(|f| f.to_json())
                .collect::<Vec<_>>(),
        })
    }
}

/// Every blueprint and every compiled-in provider.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    blueprints: Vec<&'static BlueprintDescriptor>,
    providers: Vec<ProviderEntry>,
}

/// A registry lookup that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No such blueprint.
    #[error("unknown blueprint `{0}`")]
    UnknownBlueprint(String),
    /// No such provider.
    #[error("unknown provider `{0}` (expected BLUEPRINT/PROVIDER, e.g. shared-hosting/demo)")]
    UnknownProvider(String),
    /// Another provider has this address.
    #[error("provider `{0}` is registered twice")]
    Taken(String),
}

impl Registry {
    /// A registry of these blueprints and no providers yet.
    pub fn new(blueprints: Vec<&'static BlueprintDescriptor>) -> Self {
        Registry { blueprints, providers: Vec::new() }
    }

    /// Adds a compiled-in provider.
    ///
    /// # Panics
    /// If its address is taken or its blueprint is not registered: both are
    /// programming errors found by the first test that builds the registry.
    pub fn register(&mut self, entry: ProviderEntry) {
        if let Err(err) = self.try_register(entry) {
            panic!("{err}");
        }
    }

    /// Adds a provider found at run time (an external program): a taken
    /// address or an unknown blueprint is an error to report, not a bug.
    pub fn try_register(&mut self, entry: ProviderEntry) -> Result<(), RegistryError> {
        if !self.blueprints.iter().any(|b| b.id == entry.blueprint.id) {
            return Err(RegistryError::UnknownBlueprint(entry.blueprint.id.into()));
        }
        if self.provider(&entry.address()).is_ok() {
            return Err(RegistryError::Taken(entry.address()));
        }
        self.providers.push(entry);
        Ok(())
    }

    /// Every blueprint.
    pub fn blueprints(&self) -> &[&'static BlueprintDescriptor] {
        &self.blueprints
    }

    /// A blueprint by id.
    pub fn blueprint(&self, id: &str) -> Result<&'static BlueprintDescriptor, RegistryError> {
        self.blueprints.iter().copied().find(|b| b.id == id).ok_or_else(|| RegistryError::UnknownBlueprint(id.into()))
    }

    /// Every provider, or those of one blueprint.
    pub fn providers(&self, blueprint: Option<&str>) -> Vec<&ProviderEntry> {
        self.providers.iter().filter(|p| blueprint.is_none_or(|id| p.blueprint.id == id)).collect()
    }

    /// A provider by `BLUEPRINT/PROVIDER` address.
    pub fn provider(&self, address: &str) -> Result<&ProviderEntry, RegistryError> {
        self.providers
            .iter()
            .find(|p| p.address() == address)
            .ok_or_else(|| RegistryError::UnknownProvider(address.into()))
    }
}
