//! Blueprints: the category of product a provider implements, its functions
//! and their typed schemas.
//!
//! A blueprint is declared once with [`blueprint!`](crate::blueprint!), which
//! writes the provider trait (one typed method per function; optional
//! functions default to `unsupported`), the descriptor, and the dispatch from
//! a function name and JSON params to the typed method.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::schema::SchemaDoc;

/// How a function is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FunctionKind {
    /// Changes the service as part of its life (create, suspend, terminate...);
    /// billing events run these.
    Lifecycle,
    /// Run when a client or staff asks (login URL, change password).
    OnDemand,
    /// Reads, changes nothing; safe to repeat.
    Query,
}

/// Who may run a function on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Caller {
    /// The client who owns the service, from the client area.
    Client,
    /// Staff, from the admin area or API.
    Staff,
}

/// The life of a service, as the engine tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    /// Known, not set up yet.
    Pending,
    /// Its setup function is running.
    Provisioning,
    /// Set up and in use.
    Active,
    /// Set up, access blocked.
    Suspended,
    /// Removed at the third party.
    Terminated,
    /// Setup failed; staff must look.
    Failed,
}

impl ServiceStatus {
    /// Every status.
    pub const ALL: [ServiceStatus; 6] = [
        ServiceStatus::Pending,
        ServiceStatus::Provisioning,
        ServiceStatus::Active,
        ServiceStatus::Suspended,
        ServiceStatus::Terminated,
        ServiceStatus::Failed,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Pending => "pending",
            ServiceStatus::Provisioning => "provisioning",
            ServiceStatus::Active => "active",
            ServiceStatus::Suspended => "suspended",
            ServiceStatus::Terminated => "terminated",
            ServiceStatus::Failed => "failed",
        }
    }
}

/// One function of a blueprint.
#[derive(Debug, Clone)]
pub struct FunctionDescriptor {
    /// snake_case name, e.g. `get_login_url`.
    pub name: &'static str,
    /// What it does and what it answers in edge cases.
    pub description: String,
    /// Lifecycle, on demand or query.
    pub kind: FunctionKind,
    /// Who may run it on demand.
    pub callers: &'static [Caller],
    /// Service statuses in which it may run.
    pub statuses: &'static [ServiceStatus],
    /// Whether providers may leave it out (then it answers `unsupported`).
    pub optional: bool,
    /// Schema of the params.
    pub params: SchemaDoc,
    /// Schema of the result data.
    pub result: SchemaDoc,
    /// What a caller may send when the function runs over a service's data
    /// (an on-demand action): any subset of the params, each valid, nothing else.
    pub partial_params: SchemaDoc,
}

impl FunctionDescriptor {
    /// A descriptor whose schemas come from the params and result types.
    pub fn new<P: JsonSchema, R: JsonSchema>(
        name: &'static str,
        description: &str,
        kind: FunctionKind,
        callers: &'static [Caller],
        statuses: &'static [ServiceStatus],
        optional: bool,
    ) -> Self {
        FunctionDescriptor {
            name,
            description: description.trim().to_owned(),
            kind,
            callers,
            statuses,
            optional,
            params: SchemaDoc::of::<P>(),
            result: SchemaDoc::of::<R>(),
            partial_params: partial(SchemaDoc::of::<P>()),
        }
    }

    /// The descriptor as JSON (for `describe`, the API and forms).
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "callers": self.callers,
            "statuses": self.statuses,
            "optional": self.optional,
            "params_schema": self.params.value(),
            "result_schema": self.result.value(),
        })
    }
}

/// How service identifiers of a blueprint relate to each other on one
/// configuration. Either way at most one live service holds an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierScope {
    /// Names are independent (`shop` and `shop2` are unrelated).
    Flat,
    /// Names nest like DNS names: `www.example.com` lies inside
    /// `example.com`, so both must belong to the same client.
    Hierarchical,
}

/// `schema` with nothing required and no other properties allowed.
fn partial(schema: SchemaDoc) -> SchemaDoc {
    let mut value = schema.value().clone();
    if let Some(object) = value.as_object_mut() {
        object.remove("required");
        object.insert("additionalProperties".into(), Value::Bool(false));
    }
    SchemaDoc::from_value(value).expect("a params schema without its required list is still a schema")
}

/// Where an operation a function began stands, as a result of the
/// blueprint says (read by its [`Follow::progress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Finished: the result is the resource as it now is.
    Done,
    /// Still under way at the system (a transfer waiting for the other
    /// registrar, a certificate waiting for validation, a cup brewing), with
    /// when the system expects it done, if it says (the engine looks again
    /// then rather than on its usual schedule).
    Pending(Option<chrono::DateTime<chrono::Utc>>),
    /// The system gave up on it; the reason, for the client.
    Failed(String),
}

/// How the engine follows an operation a blueprint's function leaves
/// pending: it calls `function` on a schedule (backing off) until the
/// result's progress is done or failed, or `deadline` has passed.
#[derive(Debug, Clone, Copy)]
pub struct Follow {
    /// The query function that reports progress (`get_status`, `get_info`).
    pub function: &'static str,
    /// Reads any of the blueprint's results as progress.
    pub progress: fn(&Value) -> Progress,
    /// How long an operation may stay pending before it counts as failed.
    pub deadline: std::time::Duration,
}

/// A difference between a service's record and its system, found by sync.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    /// What differs: `state` (the service's status against the system's),
    /// or a provision data field (`package_name`, `expires_at`, `nameservers`).
    pub field: &'static str,
    /// What the record says.
    pub recorded: Value,
    /// What the system says.
    pub real: Value,
    /// The function, and its params beyond the identifier, that puts the
    /// system back as recorded; `None` when nothing can.
    pub repair: Option<(&'static str, Value)>,
}

/// How sync compares a blueprint's services with their systems.
#[derive(Debug, Clone, Copy)]
pub struct DriftCheck {
    /// The query function that reads the system (`get_info`).
    pub function: &'static str,
    /// The differences between a service (its status and recorded provision
    /// data) and what the function answered.
    pub compare: fn(ServiceStatus, &Value, &Value) -> Vec<Drift>,
}

/// The `state` drift of a service whose system says `real`
/// (`active`/`suspended`), repaired by `suspend` or `unsuspend`.
pub fn state_drift(status: ServiceStatus, real: &Value) -> Option<Drift> {
    let real_state =
        real.get("state").cloned().and_then(|s| serde_json::from_value::<crate::blueprints::State>(s).ok())?;
    let (recorded, repair) = match status {
        ServiceStatus::Active => (crate::blueprints::State::Active, "unsuspend"),
        ServiceStatus::Suspended => (crate::blueprints::State::Suspended, "suspend"),
        _ => return None,
    };
    (recorded != real_state).then(|| Drift {
        field: "state",
        recorded: json!(recorded),
        real: json!(real_state),
        repair: Some((repair, json!({}))),
    })
}

/// How a blueprint's resources made outside Provisio become services:
/// `list` pages through what a configuration holds (with each resource's
/// owner mark); `adopt` writes a new service's owner mark on one that
/// carries none, so later calls recognise it. A service's adopt job leaves
/// it active or suspended as its system says (the result's `state`).
#[derive(Debug, Clone, Copy)]
pub struct Import {
    /// The function that lists (params [`ListParams`](crate::blueprints::ListParams)).
    pub list: &'static str,
    /// The function that marks one resource as a service's.
    pub adopt: &'static str,
}

/// A blueprint: a category of product and the functions its providers implement.
#[derive(Debug, Clone)]
pub struct BlueprintDescriptor {
    /// Stable kebab-case id, e.g. `shared-hosting`.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// What kind of product it covers.
    pub description: String,
    /// Icon name.
    pub icon: &'static str,
    /// The params and result field that names a service on its
    /// configuration (`username`, `domain`, `zone`...).
    pub service_identifier: &'static str,
    /// How identifiers relate on one configuration.
    pub identifiers: IdentifierScope,
    /// What makes an existing resource this service's (adoption, conflicts).
    pub ownership: &'static str,
    /// The function run when a service is activated, unless the product says otherwise.
    pub default_setup_function: &'static str,
    /// The function that answers a single sign-on link for the client area's
    /// login button (result: `login_url`, `expires_at`, optional `post_fields`).
    pub login_function: Option<&'static str>,
    /// The function that sets the password the client logs in with (params:
    /// the identifier and `password`).
    pub password_function: Option<&'static str>,
    /// Its functions, in declaration order.
    pub functions: Vec<FunctionDescriptor>,
    /// How operations its functions leave pending are followed, if any can be.
    pub follow: Option<Follow>,
    /// How sync compares its services with their systems, if it can.
    pub drift: Option<DriftCheck>,
    /// How what a configuration already holds becomes services, if it can.
    pub import: Option<Import>,
}

impl BlueprintDescriptor {
    /// A function by name.
    pub fn function(&self, name: &str) -> Option<&FunctionDescriptor> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// Whether the customer names the service (the setup function takes its
    /// identifier: a domain, a database) rather than the vendor issuing it
    /// (a licence key, a cup's order id). An unknown outcome of a setup is
    /// reconciled with `get_info` by that name; an issued one can only be
    /// deduplicated by the call's idempotency key.
    pub fn customer_names_services(&self) -> bool {
        self.function(self.default_setup_function)
            .is_some_and(|setup| setup.params.property_names().contains(&self.service_identifier))
    }

    /// The descriptor as JSON, functions and schemas included.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "icon": self.icon,
            "service_identifier": self.service_identifier,
            "identifiers": self.identifiers,
            "ownership": self.ownership,
            "default_setup_function": self.default_setup_function,
            "login_function": self.login_function,
            "password_function": self.password_function,
            "follow": self.follow.map(|f| json!({"function": f.function, "deadline_secs": f.deadline.as_secs()})),
            "import": self.import.map(|i| json!({"list": i.list, "adopt": i.adopt})),
            "functions": self.functions.iter().map(FunctionDescriptor::to_json).collect::<Vec<_>>(),
        })
    }
}

/// The result of functions that answer nothing but success.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Empty {}

/// Declares a blueprint: its provider trait, descriptor and dispatch.
///
/// ```text
/// blueprint! {
///     /// Doc of the trait.
///     pub trait Coffee {
///         id: "coffee", name: "Coffee", icon: "coffee", identifier: "order_id", setup: brew,
///         description: "...", identifiers: Flat, ownership: "...",
///         login: get_login_url, password: change_password, // when it has them
///         follow: get_status, progress: progress, within_secs: 864000, // when operations can stay pending
///         sync: get_info, compare: compare, // when sync can compare
///         import: list, adopt: adopt, // when existing resources can be listed and adopted
///     }
///     required {
///         /// Doc of the function.
///         fn brew(BrewParams) -> CoffeeOrder { kind: Lifecycle, callers: [Staff], statuses: [Pending] }
///     }
///     optional { }
/// }
/// ```
#[macro_export]
macro_rules! blueprint {
    (
        $(#[doc = $trait_doc:literal])*
        pub trait $Trait:ident {
            id: $id:literal, name: $name:literal, icon: $icon:literal,
            identifier: $identifier:literal, setup: $setup:ident,
            description: $description:literal,
            identifiers: $scope:ident,
            ownership: $ownership:literal
            $(, login: $login:ident)?
            $(, password: $password:ident)?
            $(, follow: $follow:ident, progress: $progress:path, within_secs: $within:literal)?
            $(, sync: $sync:ident, compare: $compare:path)?
            $(, import: $list:ident, adopt: $adopt:ident)? $(,)?
        }
        required {
            $(
                $(#[doc = $rdoc:literal])*
                fn $rname:ident($RParams:ty) -> $RResult:ty {
                    kind: $rkind:ident, callers: [$($rcaller:ident),*], statuses: [$($rstatus:ident),*]
                }
            )*
        }
        optional {
            $(
                $(#[doc = $odoc:literal])*
                fn $oname:ident($OParams:ty) -> $OResult:ty {
                    kind: $okind:ident, callers: [$($ocaller:ident),*], statuses: [$($ostatus:ident),*]
                }
            )*
        }
    ) => {
        $(#[doc = $trait_doc])*
        pub trait $Trait: $crate::Provider {
            $(
                $(#[doc = $rdoc])*
                fn $rname(
                    &self,
                    cx: &$crate::Context,
                    params: $RParams,
                ) -> impl ::std::future::Future<Output = ::std::result::Result<$RResult, $crate::ProviderError>> + Send;
            )*
            $(
                $(#[doc = $odoc])*
                ///
                /// Optional: a provider that leaves it out answers `unsupported`.
                fn $oname(
                    &self,
                    cx: &$crate::Context,
                    params: $OParams,
                ) -> impl ::std::future::Future<Output = ::std::result::Result<$OResult, $crate::ProviderError>> + Send {
                    let _ = (cx, params);
                    async { Err($crate::ProviderError::unsupported(stringify!($oname))) }
                }
            )*
        }

        /// The blueprint's descriptor, schemas included.
        pub fn descriptor() -> &'static $crate::BlueprintDescriptor {
            static DESCRIPTOR: ::std::sync::OnceLock<$crate::BlueprintDescriptor> = ::std::sync::OnceLock::new();
            DESCRIPTOR.get_or_init(|| $crate::BlueprintDescriptor {
                id: $id,
                name: $name,
                description: $description.to_owned(),
                icon: $icon,
                service_identifier: $identifier,
                identifiers: $crate::blueprint::IdentifierScope::$scope,
                ownership: $ownership,
                default_setup_function: stringify!($setup),
                login_function: None$(.or(Some(stringify!($login))))?,
                password_function: None$(.or(Some(stringify!($password))))?,
                follow: None$(.or(Some($crate::blueprint::Follow {
                    function: stringify!($follow),
                    progress: $progress,
                    deadline: ::std::time::Duration::from_secs($within),
                })))?,
                drift: None$(.or(Some($crate::blueprint::DriftCheck {
                    function: stringify!($sync),
                    compare: $compare,
                })))?,
                import: None$(.or(Some($crate::blueprint::Import {
                    list: stringify!($list),
                    adopt: stringify!($adopt),
                })))?,
                functions: vec![
                    $(
                        $crate::FunctionDescriptor::new::<$RParams, $RResult>(
                            stringify!($rname),
                            concat!($($rdoc, "\n"),*),
                            $crate::FunctionKind::$rkind,
                            &[$($crate::Caller::$rcaller),*],
                            &[$($crate::ServiceStatus::$rstatus),*],
                            false,
                        ),
                    )*
                    $(
                        $crate::FunctionDescriptor::new::<$OParams, $OResult>(
                            stringify!($oname),
                            concat!($($odoc, "\n"),*),
                            $crate::FunctionKind::$okind,
                            &[$($crate::Caller::$ocaller),*],
                            &[$($crate::ServiceStatus::$ostatus),*],
                            true,
                        ),
                    )*
                ],
            })
        }

        fn dispatch<'a, P: $Trait>(
            provider: &'a P,
            cx: &'a $crate::Context,
            function: &'a str,
            params: ::serde_json::Value,
        ) -> $crate::BoxFuture<'a, ::std::result::Result<::serde_json::Value, $crate::ProviderError>> {
            Box::pin(async move {
                match function {
                    $(
                        stringify!($rname) => {
                            let params: $RParams = $crate::invoke::decode_params(params)?;
                            $crate::invoke::encode_result(&provider.$rname(cx, params).await?)
                        }
                    )*
                    $(
                        stringify!($oname) => {
                            let params: $OParams = $crate::invoke::decode_params(params)?;
                            $crate::invoke::encode_result(&provider.$oname(cx, params).await?)
                        }
                    )*
                    other => Err($crate::ProviderError::internal(format!("unknown function `{other}`"))),
                }
            })
        }

        /// The registry entry of a provider of this blueprint.
        pub fn entry<P: $Trait>() -> $crate::ProviderEntry {
            $crate::ProviderEntry::new::<P>(descriptor(), dispatch::<P>)
        }
    };
}
