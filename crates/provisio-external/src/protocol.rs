//! The messages of the external provider protocol, version 1.
//!
//! One JSON object per line (UTF-8, `\n`-terminated, at most
//! [`MAX_LINE`] bytes): Provisio writes requests to the provider's standard
//! input, the provider answers each on its standard output with the
//! request's `id`. Standard error is the provider's own: captured for staff,
//! never parsed. These types are the protocol's definition: the JSON Schemas
//! in `docs/protocol/` are generated from them (see [`schemas`]) and every
//! answer is checked against its schema before it is read.

use provisio_sdk::ErrorKind;
use provisio_sdk::http::HttpExchange;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol version this Provisio speaks.
pub const PROTOCOL: u32 = 1;

/// The longest line either side may write, in bytes.
pub const MAX_LINE: usize = 1024 * 1024;

/// `describe`: what the provider is. Sent once when Provisio starts; the
/// answer's `data` is a [`Description`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DescribeRequest {
    /// The protocol version Provisio speaks (1).
    #[schemars(extend("const" = 1))]
    pub protocol: u32,
    /// The request's id; the answer carries the same.
    pub id: u64,
    /// Always `describe`.
    #[schemars(extend("const" = "describe"))]
    pub method: String,
}

/// `call`: run one function of the blueprint. The answer's `data` is the
/// function's result, valid against its result schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// The protocol version Provisio speaks (1).
    #[schemars(extend("const" = 1))]
    pub protocol: u32,
    /// The request's id; the answer carries the same.
    pub id: u64,
    /// Always `call`.
    #[schemars(extend("const" = "call"))]
    pub method: String,
    /// The function, one the description lists (`create`, `get_info`...).
    pub function: String,
    /// The provision configuration's values, valid against the description's
    /// `config_schema`, secrets included: never print or log them.
    pub config: Value,
    /// The function's params, already valid against the blueprint's params schema.
    pub params: Value,
    /// The same on every retry of one operation: send it to the vendor
    /// (an `Idempotency-Key` header) or use it so a retried create answers
    /// what the first one made instead of making a second.
    pub idempotency_key: Option<String>,
    /// Milliseconds left before Provisio gives up on the answer. After that
    /// the call's outcome counts as unknown (a change is reconciled with
    /// `get_info` before any retry) and the process is stopped.
    pub deadline_ms: u64,
    /// The service's provision data (earlier results, chosen fields).
    pub provision_data: Map<String, Value>,
    /// The service's owner mark, to write on what it creates and check on
    /// what it touches (a resource with another mark is `conflict`); null
    /// when an operator calls by hand.
    pub owner: Option<String>,
}

/// `test_connection`: check that the configured system answers and the
/// credentials work. The answer's `data` is `{"message": "...", "details": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestConnectionRequest {
    /// The protocol version Provisio speaks (1).
    #[schemars(extend("const" = 1))]
    pub protocol: u32,
    /// The request's id; the answer carries the same.
    pub id: u64,
    /// Always `test_connection`.
    #[schemars(extend("const" = "test_connection"))]
    pub method: String,
    /// The configuration's values, secrets included.
    pub config: Value,
    /// Milliseconds left before Provisio gives up on the answer.
    pub deadline_ms: u64,
}

/// Whether a request succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `data` holds the result.
    Ok,
    /// `error_kind` and `message` say what went wrong.
    Error,
}

/// A field an `invalid_input` error names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldProblem {
    /// A JSON pointer into the params (`/ip`, `/ship_to/country`).
    #[schemars(length(max = 500))]
    pub path: String,
    /// What is wrong with it, for the client.
    #[schemars(length(min = 1, max = 500))]
    pub message: String,
}

/// The answer to any request, one line on standard output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// The id of the request it answers.
    pub id: u64,
    /// `ok` or `error`.
    pub status: Outcome,
    /// The result when ok: the function's result, a [`Description`] for
    /// `describe`, `{"message", "details"}` for `test_connection`.
    #[serde(default)]
    pub data: Option<Value>,
    /// When an error: what kind. `transient` (nothing was done, try again
    /// later), `outcome_unknown` (it may have happened: Provisio checks
    /// before any retry), `not_found`, `conflict` (it exists and is not this
    /// service's, or it cannot be done in its state), `invalid_input` (with
    /// `fields`), `provider_error` (the vendor refused; `message` says why),
    /// `unsupported`, `internal` (a bug).
    #[serde(default)]
    pub error_kind: Option<ErrorKind>,
    /// When an error: what happened, in words fit for the client.
    #[serde(default)]
    #[schemars(length(max = 2000))]
    pub message: Option<String>,
    /// Anything for staff only (vendor codes, raw answers); shown in the
    /// job's record, redacted of the configuration's secrets.
    #[serde(default)]
    pub debug: Option<Map<String, Value>>,
    /// For `invalid_input`: the fields at fault.
    #[serde(default)]
    pub fields: Vec<FieldProblem>,
    /// The provider's calls to its vendor, for the job's record (redacted of
    /// the configuration's secrets before it is stored).
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub http_log: Vec<HttpExchange>,
}

/// What a provider is: the `data` of its answer to `describe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// The protocol version the provider speaks (1).
    #[schemars(extend("const" = 1))]
    pub protocol: u32,
    /// The blueprint it implements (`software-licenses`); `provisio blueprints` lists them.
    #[schemars(length(min = 1, max = 64))]
    pub blueprint: String,
    /// Its id, unique within the blueprint: lower-case letters, digits and dashes.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,39}$"))]
    pub id: String,
    /// Display name.
    #[schemars(length(min = 1, max = 80))]
    pub name: String,
    /// One or two sentences.
    #[schemars(length(min = 1, max = 400))]
    pub description: String,
    /// The JSON Schema of its configuration. Mark credentials
    /// `"x-secret": true` (or `"writeOnly": true`): they are then encrypted
    /// at rest, never answered by the API, and redacted everywhere; mark the
    /// fields that say where the credentials go (a URL, a host)
    /// `"x-endpoint": true`, so changing one needs the secrets again.
    pub config_schema: Map<String, Value>,
    /// The functions it implements: every required function of the
    /// blueprint, and the optional ones it has.
    #[schemars(length(min = 1, max = 100))]
    pub functions: Vec<String>,
    /// How many copies of the program may run at once (default 2).
    #[serde(default)]
    #[schemars(range(min = 1, max = 16))]
    pub processes: Option<u32>,
    /// How many calls one copy takes at once, answered in any order by id (default 1).
    #[serde(default)]
    #[schemars(range(min = 1, max = 64))]
    pub concurrency: Option<u32>,
}

/// Every message's JSON Schema, by the file name it has in `docs/protocol/`.
pub fn schemas() -> Vec<(&'static str, Value)> {
    let schema = |s: schemars::Schema| s.to_value();
    vec![
        ("describe-request.schema.json", schema(schemars::schema_for!(DescribeRequest))),
        ("call-request.schema.json", schema(schemars::schema_for!(CallRequest))),
        ("test-connection-request.schema.json", schema(schemars::schema_for!(TestConnectionRequest))),
        ("response.schema.json", schema(schemars::schema_for!(Response))),
        ("description.schema.json", schema(schemars::schema_for!(Description))),
    ]
}
