//! Provisio provider SDK: the contract between the engine and every integration.
//!
//! - [`blueprint`] and [`blueprints`]: categories of product, their functions and typed schemas;
//! - [`provider`]: the [`Provider`] trait, the [`Registry`] of compiled-in providers;
//! - [`invoke`]: running a function with validation in and out, producing an [`Envelope`];
//! - [`context`] and [`http`]: what a provider receives, including an HTTP client that records
//!   and redacts every exchange;
//! - [`schema`], [`formats`], [`redact`]: schemas, custom formats, secret handling;
//! - [`error`]: error kinds, and the type-level split of client-safe and staff-only text.
//!
//! Invariant: no server, SQL or CLI code lives here.

pub mod blueprint;
pub mod blueprints;
pub mod context;
pub mod error;
pub mod formats;
pub mod http;
pub mod invoke;
pub mod provider;
pub mod redact;
pub mod schema;
pub mod tls;
pub mod xml;

pub use blueprint::{
    BlueprintDescriptor, Caller, Drift, DriftCheck, Empty, Follow, FunctionDescriptor, FunctionKind, IdentifierScope,
    Progress, ServiceStatus,
};
pub use context::{CallOptions, Context, PeerAccess, Peers};
pub use error::{ErrorKind, FieldError, FieldLocation, ProviderError, StaffDebug, UserMessage};
pub use invoke::{CallReport, ClientEnvelope, Envelope, Status};
pub use provider::{
    BoxFuture, ConfigCheck, ConnectionTest, Notice, NoticeKind, Provider, ProviderAbout, ProviderEntry,
    ProviderInstance, Registry,
};
pub use schema::SchemaDoc;
