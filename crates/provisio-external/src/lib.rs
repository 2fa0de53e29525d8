//! Providers in any language: a provider is a program Provisio runs and
//! talks to over the external provider protocol (JSON lines on standard
//! input and output, `docs/provider-protocol.md`).
//!
//! [`load`] asks a program what it is (`describe`) when Provisio starts and
//! makes a registry entry of it, listed and called like a compiled-in
//! provider. Calls run in a pool of copies of the program, supervised: at
//! most `processes` copies, each taking `concurrency` calls at once; a copy
//! that exits, hangs past a call's deadline, writes what the protocol does
//! not allow or floods its output is stopped and replaced, and only its own
//! calls fail, each with why (after a change, `outcome_unknown`, so it is
//! reconciled before any retry; after a read, `transient`). Its standard
//! error goes to the call's record for staff, redacted, never to the logs.

mod process;
pub mod protocol;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use provisio_sdk::http::HttpExchange;
use provisio_sdk::redact::{REDACTED, is_secret_key};
use provisio_sdk::{
    BlueprintDescriptor, ConnectionTest, Context, ErrorKind, FieldError, FieldLocation, FunctionKind, ProviderAbout,
    ProviderEntry, ProviderError, ProviderInstance, Registry, SchemaDoc, UserMessage,
};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::process::{Broken, Process};
use crate::protocol::{CallRequest, Description, Outcome, PROTOCOL, Response, TestConnectionRequest};

/// How long a program may take to answer `describe` when Provisio starts.
const DESCRIBE_WITHIN: Duration = Duration::from_secs(10);

/// How much sooner than the call's deadline a copy is given up on.
const OWN_DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// Why a provider program could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// It could not be run or did not answer `describe` in time.
    #[error("external provider {program}: {why}")]
    Start {
        /// The program.
        program: String,
        /// What happened.
        why: String,
    },
    /// Its description breaks the protocol or names what does not exist.
    #[error("external provider {program}: its description {why}")]
    Description {
        /// The program.
        program: String,
        /// What is wrong.
        why: String,
    },
}

/// Asks `program` what it is and makes its registry entry.
pub fn load(program: &Path, registry: &Registry) -> Result<ProviderEntry, LoadError> {
    let name = program.display().to_string();
    let invalid = |why: String| LoadError::Description { program: name.clone(), why };
    let answer = describe(program).map_err(|why| LoadError::Start { program: name.clone(), why })?;
    let response = read_response(&answer).map_err(|why| invalid(format!("answer {why}")))?;
    if response.id != 1 {
        return Err(invalid(format!("answer has id {}, not the request's 1", response.id)));
    }
    if response.status != Outcome::Ok {
        return Err(invalid(format!("answer is an error: {}", response.message.unwrap_or_default())));
    }
    let data = response.data.unwrap_or(Value::Null);
    schema("description.schema.json")
        .validate(&data, FieldLocation::Result)
        .map_err(|errors| invalid(format!("breaks the protocol: {}", describe_errors(&errors))))?;
    let description: Description =
        serde_json::from_value(data).map_err(|err| invalid(format!("does not decode: {err}")))?;
    let blueprint = registry.blueprint(&description.blueprint).map_err(|err| invalid(err.to_string()))?;
    for function in &description.functions {
        if blueprint.function(function).is_none() {
            return Err(invalid(format!("lists `{function}`, which is not a function of {}", blueprint.id)));
        }
    }
    if let Some(missing) =
        blueprint.functions.iter().find(|f| !f.optional && !description.functions.iter().any(|n| n == f.name))
    {
        return Err(invalid(format!(
            "leaves out `{}`, which every {} provider implements",
            missing.name, blueprint.id
        )));
    }
    if description.config_schema.get("type") != Some(&json!("object")) {
        return Err(invalid("has a config_schema that is not an object schema (`\"type\": \"object\"`)".into()));
    }
    let config_schema = SchemaDoc::from_value(Value::Object(description.config_schema.clone()))
        .map_err(|err| invalid(format!("has a config_schema that is not a JSON Schema: {err}")))?;
    let about = ProviderAbout {
        id: description.id.clone().into(),
        name: description.name.clone().into(),
        description: description.description.clone().into(),
        logo_url: None,
    };
    let pool = Arc::new(Pool::new(program.to_path_buf(), blueprint, &description));
    let optional: Vec<String> = description.functions.clone();
    let schema = config_schema.clone();
    Ok(ProviderEntry::dynamic(blueprint, about, config_schema, move |config| {
        let pool = pool.clone();
        let secrets = schema.secret_values(&config);
        Box::pin(async move { Ok(Arc::new(External { pool, config, secrets }) as Arc<dyn ProviderInstance>) })
    })
    .with_optional(optional))
}

/// Runs `program`, asks `describe`, answers the line it wrote.
fn describe(program: &Path) -> Result<String, String> {
    use std::io::{BufRead, Read, Write};
    let mut child = process::command(program)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|err| format!("could not be started: {err}"))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let request = json!({"protocol": PROTOCOL, "id": 1, "method": "describe"});
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The first line that is not empty (empty lines are ignored, as later).
        let mut reader = std::io::BufReader::new(stdout);
        let read = loop {
            let mut line = Vec::new();
            match (&mut reader).take(protocol::MAX_LINE as u64 + 1).read_until(b'\n', &mut line) {
                Ok(_) if !line.is_empty() && line.iter().all(u8::is_ascii_whitespace) => continue,
                other => break other.map(|_| line),
            }
        };
        let _ = sender.send(read);
    });
    let written = writeln!(stdin, "{request}").and_then(|()| stdin.flush());
    let answer = receiver.recv_timeout(DESCRIBE_WITHIN);
    let _ = child.kill();
    let _ = child.wait();
    written.map_err(|err| format!("did not read its input: {err}"))?;
    match answer {
        Ok(Ok(line)) if line.is_empty() => Err("exited without answering describe".into()),
        Ok(Ok(line)) if line.len() > protocol::MAX_LINE => {
            Err(format!("answered describe with a line over {} bytes", protocol::MAX_LINE))
        }
        Ok(Ok(line)) => String::from_utf8(line).map_err(|_| "answered describe with a line that is not UTF-8".into()),
        Ok(Err(err)) => Err(format!("its output failed: {err}")),
        Err(_) => Err(format!("did not answer describe within {} s", DESCRIBE_WITHIN.as_secs())),
    }
}

/// A schema of `docs/protocol/`, by file name.
fn schema(name: &str) -> SchemaDoc {
    static SCHEMAS: std::sync::OnceLock<Vec<(&'static str, SchemaDoc)>> = std::sync::OnceLock::new();
    SCHEMAS
        .get_or_init(|| {
            protocol::schemas()
                .into_iter()
                .map(|(name, value)| (name, SchemaDoc::from_value(value).expect("the protocol's schemas compile")))
                .collect()
        })
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, schema)| schema.clone())
        .expect("a schema of the protocol")
}

fn describe_errors(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{} {}", e.path, e.message)).collect::<Vec<_>>().join("; ")
}

/// An answer line, checked against the response schema, decoded.
fn read_response(line: &str) -> Result<Response, String> {
    let value: Value = serde_json::from_str(line.trim()).map_err(|err| format!("is not JSON: {err}"))?;
    read_value(value)
}

fn read_value(value: Value) -> Result<Response, String> {
    schema("response.schema.json")
        .validate(&value, FieldLocation::Result)
        .map_err(|errors| format!("breaks the protocol: {}", describe_errors(&errors)))?;
    serde_json::from_value(value).map_err(|err| format!("does not decode: {err}"))
}

/// The copies of one provider program.
struct Pool {
    program: PathBuf,
    blueprint: &'static BlueprintDescriptor,
    /// One permit per call that may run at once (processes × concurrency).
    slots: Semaphore,
    concurrency: usize,
    copies: Mutex<Vec<Option<Arc<Process>>>>,
}

impl Pool {
    fn new(program: PathBuf, blueprint: &'static BlueprintDescriptor, description: &Description) -> Pool {
        let processes = description.processes.unwrap_or(2).clamp(1, 16) as usize;
        let concurrency = description.concurrency.unwrap_or(1).clamp(1, 64) as usize;
        Pool {
            program,
            blueprint,
            slots: Semaphore::new(processes * concurrency),
            concurrency,
            copies: Mutex::new(vec![None; processes]),
        }
    }

    fn name(&self) -> String {
        self.program.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// A running copy with room for one more call (started if need be),
    /// with that call counted.
    fn checkout(&self) -> Result<Arc<Process>, Broken> {
        let mut copies = self.copies.lock().expect("copies lock");
        let room = copies
            .iter()
            .flatten()
            .filter(|p| p.alive() && p.in_flight.load(std::sync::atomic::Ordering::Acquire) < self.concurrency)
            .min_by_key(|p| p.in_flight.load(std::sync::atomic::Ordering::Acquire))
            .cloned();
        let process = match room {
            Some(process) => process,
            None => {
                // A permit means a copy has room or a slot is free; should the
                // count ever be off, the call is refused, not the process.
                let free = copies
                    .iter()
                    .position(|p| p.as_ref().is_none_or(|p| !p.alive()))
                    .ok_or_else(|| Broken::Spawn("every copy is busy".into()))?;
                let process = Process::spawn(&self.program)?;
                copies[free] = Some(process.clone());
                process
            }
        };
        process.in_flight.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(process)
    }

    /// Sends the request `build` makes for an id and reads its answer.
    /// `changes`: whether the request may change something (then an answer
    /// lost after it was sent is `outcome_unknown`, not `transient`).
    async fn request(
        &self,
        cx: &Context,
        secrets: &[String],
        build: impl FnOnce(u64) -> Value,
        changes: bool,
    ) -> Result<Response, ProviderError> {
        let name = self.name();
        let Ok(Ok(_permit)) = tokio::time::timeout(cx.remaining(), self.slots.acquire()).await else {
            return Err(ProviderError::transient(UserMessage::new(format!(
                "Every copy of the provider {name} is busy; try again later"
            ))));
        };
        let process = self.checkout().map_err(|broken| {
            ProviderError::transient(UserMessage::new(format!("The provider {name} could not be started")))
                .with_debug("cause", broken.to_string())
        })?;
        process.note_secrets(secrets);
        let id = process.next_id();
        let started = Instant::now();
        // Give up a little before the call's own deadline, so a copy that
        // does not answer is stopped here, with its standard error kept.
        let within = cx.remaining().saturating_sub(OWN_DEADLINE_MARGIN);
        let answer = match tokio::time::timeout(within, process.request(id, &build(id))).await {
            Ok(answer) => answer,
            Err(_) => Err(Broken::Stopped("it did not answer before the deadline".into())),
        };
        let stderr = process.take_stderr();
        if !stderr.is_empty() {
            let mut exchange = HttpExchange::other("STDERR", &name, started);
            exchange.response_body = Some(stderr.join("\n"));
            cx.record(exchange);
        }
        let lost = |why: String| {
            let err = if changes {
                ProviderError::outcome_unknown(UserMessage::new(format!(
                    "The provider {name} gave no usable answer ({why}); the operation may have taken effect"
                )))
            } else {
                ProviderError::transient(UserMessage::new(format!("The provider {name} gave no usable answer ({why})")))
            };
            err.with_debug("stderr", stderr.iter().rev().take(20).rev().cloned().collect::<Vec<_>>())
        };
        let value = match answer {
            Ok(value) => value,
            // Nothing reached the program.
            Err(broken @ (Broken::Spawn(_) | Broken::Unwritable)) => {
                return Err(ProviderError::transient(UserMessage::new(format!(
                    "The provider {name} could not take the call; try again later"
                )))
                .with_debug("cause", broken.to_string()));
            }
            Err(broken) => return Err(lost(broken.to_string())),
        };
        let response = match read_value(value) {
            Ok(response) => response,
            Err(why) => {
                let why = format!("its answer {why}");
                process.stop(Broken::Protocol(why.clone()));
                return Err(lost(why));
            }
        };
        for mut exchange in response.http_log.iter().cloned() {
            exchange.redact(cx.redactor());
            for (key, value) in &mut exchange.request_headers {
                if is_secret_key(key) {
                    *value = REDACTED.into();
                }
            }
            cx.record(exchange);
        }
        Ok(response)
    }
}

/// A provider program's answer as the SDK's result.
fn result_of(response: Response) -> Result<Value, ProviderError> {
    match response.status {
        Outcome::Ok => Ok(response.data.unwrap_or(Value::Null)),
        Outcome::Error => {
            let kind = response.error_kind.unwrap_or(ErrorKind::Internal);
            let message = response.message.filter(|m| !m.trim().is_empty()).unwrap_or_else(|| kind.to_string());
            let mut err = if kind == ErrorKind::Internal {
                // A bug's words are for staff; the client gets the generic message.
                ProviderError::internal(message)
            } else if kind == ErrorKind::InvalidInput && !response.fields.is_empty() {
                ProviderError::invalid_input(
                    response
                        .fields
                        .into_iter()
                        .map(|f| FieldError { location: FieldLocation::Params, path: f.path, message: f.message })
                        .collect(),
                )
            } else {
                ProviderError::new(kind, UserMessage::new(message))
            };
            for (key, value) in response.debug.unwrap_or_default() {
                err = err.with_debug(&key, value);
            }
            Err(err)
        }
    }
}

/// A provider program for one configuration.
struct External {
    pool: Arc<Pool>,
    config: Value,
    /// The configuration's secret values (what a copy's standard error is redacted of).
    secrets: Vec<String>,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl ProviderInstance for External {
    fn call<'a>(
        &'a self,
        cx: &'a Context,
        function: &'a str,
        params: Value,
    ) -> provisio_sdk::BoxFuture<'a, Result<Value, ProviderError>> {
        Box::pin(async move {
            let changes = self.pool.blueprint.function(function).is_none_or(|f| f.kind != FunctionKind::Query);
            let build = |id| {
                serde_json::to_value(CallRequest {
                    protocol: PROTOCOL,
                    id,
                    method: "call".into(),
                    function: function.into(),
                    config: self.config.clone(),
                    params,
                    idempotency_key: cx.idempotency_key().map(str::to_owned),
                    deadline_ms: millis(cx.remaining()),
                    provision_data: cx.provision_data().clone(),
                    owner: cx.owner().map(str::to_owned),
                })
                .expect("a request serialises")
            };
            result_of(self.pool.request(cx, &self.secrets, build, changes).await?)
        })
    }

    fn test_connection<'a>(
        &'a self,
        cx: &'a Context,
    ) -> provisio_sdk::BoxFuture<'a, Result<ConnectionTest, ProviderError>> {
        Box::pin(async move {
            let build = |id| {
                serde_json::to_value(TestConnectionRequest {
                    protocol: PROTOCOL,
                    id,
                    method: "test_connection".into(),
                    config: self.config.clone(),
                    deadline_ms: millis(cx.remaining()),
                })
                .expect("a request serialises")
            };
            let data = result_of(self.pool.request(cx, &self.secrets, build, false).await?)?;
            serde_json::from_value(data).map_err(|err| {
                ProviderError::internal(format!(
                    "test_connection answered data that is not {{message, details}}: {err}"
                ))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schemas in `docs/protocol/` are the ones these types make.
    /// `PROVISIO_WRITE_SCHEMAS=1 cargo test -p provisio-external` rewrites them.
    #[test]
    fn the_published_schemas_are_current() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol");
        for (name, schema) in protocol::schemas() {
            let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            let path = dir.join(name);
            if std::env::var_os("PROVISIO_WRITE_SCHEMAS").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            }
            let published = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(published, text, "{} is stale: run with PROVISIO_WRITE_SCHEMAS=1", path.display());
        }
    }

    #[test]
    fn an_answer_that_breaks_the_schema_names_the_field() {
        let why = read_response(r#"{"id": 1, "status": "fine"}"#).unwrap_err();
        assert!(why.contains("/status"), "{why}");
        let why = read_response(r#"{"id": 1, "status": "ok", "dta": {}}"#).unwrap_err();
        assert!(why.contains("/dta"), "{why}");
        assert!(read_response(r#"{"id": 1, "status": "error", "error_kind": "not_found", "message": "gone"}"#).is_ok());
    }
}
