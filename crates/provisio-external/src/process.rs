//! One running copy of a provider program: requests written to its standard
//! input, answers read from its standard output and matched by id, standard
//! error kept (the last lines only) for staff.
//!
//! A copy that breaks the protocol (a line that is not an answer, an answer
//! to nothing asked, a line over the limit), exits, or misses a deadline is
//! stopped; every call it still had fails with why, and the pool starts
//! another copy for the next call.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use provisio_sdk::redact::Redactor;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use crate::protocol::MAX_LINE;

/// Lines of standard error kept per copy.
const STDERR_LINES: usize = 200;
/// The longest standard error line kept, in bytes (longer ones are cut).
const STDERR_LINE: usize = 4096;

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// The program could not be started.
    #[error("the provider program could not be started: {0}")]
    Spawn(String),
    /// Its standard input was closed before the request was written.
    #[error("the provider program stopped reading its input")]
    Unwritable,
    /// It exited.
    #[error("the provider program exited ({0})")]
    Exited(String),
    /// It wrote something the protocol does not allow.
    #[error("the provider program broke the protocol: {0}")]
    Protocol(String),
    /// It was stopped (a deadline passed, or another call's answer broke the protocol).
    #[error("the provider program was stopped: {0}")]
    Stopped(String),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, Broken>>>>>;

/// A running copy.
pub struct Process {
    stdin: tokio::sync::Mutex<ChildStdin>,
    child: Mutex<Option<Child>>,
    pending: Pending,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// The secrets of every configuration this copy has been given: what it
    /// writes on standard error may quote any of them, whichever call's
    /// record it lands in.
    secrets: Mutex<Vec<String>>,
    alive: Arc<AtomicBool>,
    /// Calls written and not answered yet.
    pub in_flight: AtomicUsize,
    next_id: AtomicU64,
}

impl Process {
    /// Starts `program` (see [`command`]).
    pub fn spawn(program: &Path) -> Result<Arc<Process>, Broken> {
        let mut child = Command::from(command(program))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| Broken::Spawn(format!("{}: {err}", program.display())))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let process = Arc::new(Process {
            stdin: tokio::sync::Mutex::new(stdin),
            child: Mutex::new(Some(child)),
            pending: Pending::default(),
            stderr: Arc::default(),
            secrets: Mutex::default(),
            alive: Arc::new(AtomicBool::new(true)),
            in_flight: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        });
        // The readers hold no strong reference: a copy nobody uses any more
        // is dropped, which kills it.
        let reader = Arc::downgrade(&process);
        tokio::spawn(async move {
            let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_LINE));
            let why = loop {
                let line = match lines.next().await {
                    None => break None,
                    Some(Ok(line)) => line,
                    Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                        break Some(Broken::Protocol(format!("it wrote a line over {MAX_LINE} bytes")));
                    }
                    Some(Err(LinesCodecError::Io(err))) => {
                        break Some(Broken::Protocol(format!("its output failed: {err}")));
                    }
                };
                let Some(process) = reader.upgrade() else { return };
                if line.trim().is_empty() {
                    continue;
                }
                if let Err(why) = process.answer(&line) {
                    break Some(why);
                }
            };
            if let Some(process) = reader.upgrade() {
                // No new call may choose it while its exit is read.
                process.alive.store(false, Ordering::Release);
                let why = match why {
                    Some(why) => why,
                    None => Broken::Exited(process.exit_status().await),
                };
                process.stop(why);
            }
        });
        let kept = process.stderr.clone();
        tokio::spawn(drain_stderr(stderr, kept));
        Ok(process)
    }

    /// Whether it is still running and speaking the protocol.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// A fresh request id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands one answer line to the call waiting for it.
    fn answer(&self, line: &str) -> Result<(), Broken> {
        let value: Value = serde_json::from_str(line)
            .map_err(|err| Broken::Protocol(format!("it wrote a line that is not JSON ({err}): {}", preview(line))))?;
        let Some(id) = value.get("id").and_then(Value::as_u64) else {
            return Err(Broken::Protocol(format!("it wrote an answer without a numeric id: {}", preview(line))));
        };
        let waiting = self.pending.lock().expect("pending lock").remove(&id);
        match waiting {
            Some(waiting) => {
                let _ = waiting.send(Ok(value));
                Ok(())
            }
            None => Err(Broken::Protocol(format!("it answered request {id}, which is not waiting for an answer"))),
        }
    }

    /// Writes `request` (which carries `id`) and waits for its answer. The
    /// caller bounds the wait; if it gives up, dropping the future stops
    /// the copy (it may be stuck) through [`Call`]'s drop.
    pub async fn request(self: &Arc<Self>, id: u64, request: &Value) -> Result<Value, Broken> {
        // The pool counted the call in `in_flight` when it chose this copy;
        // `Call` uncounts it however this ends.
        let mut call = Call { process: self.clone(), id, done: true };
        let (sender, receiver) = oneshot::channel();
        {
            // `stop` marks the copy dead before it fails what is pending, under
            // this lock: a call is either failed by it or never added.
            let mut pending = self.pending.lock().expect("pending lock");
            if !self.alive() {
                return Err(Broken::Unwritable);
            }
            pending.insert(id, sender);
        }
        call.done = false;
        let mut line = serde_json::to_vec(request).expect("a request serialises");
        line.push(b'\n');
        let written = {
            let mut stdin = self.stdin.lock().await;
            match stdin.write_all(&line).await {
                Ok(()) => stdin.flush().await,
                Err(err) => Err(err),
            }
        };
        if written.is_err() {
            // No whole request reached it; a copy that stopped reading is of no more use.
            call.done = true;
            self.pending.lock().expect("pending lock").remove(&id);
            self.stop(Broken::Unwritable);
            return Err(Broken::Unwritable);
        }
        let answer = receiver.await.unwrap_or_else(|_| Err(Broken::Stopped("it was dropped".into())));
        call.done = true;
        answer
    }

    /// Stops the copy and fails every call it still has with `why`.
    pub fn stop(&self, why: Broken) {
        let waiting: Vec<_> = {
            let mut pending = self.pending.lock().expect("pending lock");
            self.alive.store(false, Ordering::Release);
            pending.drain().collect()
        };
        if let Some(mut child) = self.child.lock().expect("child lock").take() {
            let _ = child.start_kill();
            // Reap it so no zombie is left.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = child.wait().await;
                });
            }
        }
        for (_, sender) in waiting {
            let _ = sender.send(Err(why.clone()));
        }
    }

    async fn exit_status(&self) -> String {
        let child = self.child.lock().expect("child lock").take();
        match child {
            Some(mut child) => {
                let status = tokio::time::timeout(std::time::Duration::from_secs(1), child.wait()).await;
                match status {
                    Ok(Ok(status)) => status.to_string(),
                    _ => {
                        let _ = child.start_kill();
                        "it closed its output".into()
                    }
                }
            }
            None => "it was stopped".into(),
        }
    }

    /// Adds the secrets of a configuration this copy is given.
    pub fn note_secrets(&self, secrets: &[String]) {
        let mut known = self.secrets.lock().expect("secrets lock");
        for secret in secrets {
            if !known.contains(secret) {
                known.push(secret.clone());
            }
        }
    }

    /// The standard error lines written since the last time this was read,
    /// redacted of every secret this copy has been given.
    pub fn take_stderr(&self) -> Vec<String> {
        let lines: Vec<String> = self.stderr.lock().expect("stderr lock").drain(..).collect();
        if lines.is_empty() {
            return lines;
        }
        let redactor = Redactor::new(self.secrets.lock().expect("secrets lock").iter());
        lines.iter().map(|line| redactor.text(line)).collect()
    }
}

/// How a provider program is run: in its own directory (not Provisio's,
/// where the database and key file may lie), with a bare environment (only
/// `PATH`, `LANG`, `HOME` and `TMPDIR` pass: Provisio's own token and keys
/// never reach it by accident).
pub fn command(program: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    let home = match program.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    command.env_clear().current_dir(home);
    for name in ["PATH", "LANG", "HOME", "TMPDIR"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
}

/// A call in flight; dropped before its answer (its deadline passed), it
/// stops the copy, which may be stuck in it.
struct Call {
    process: Arc<Process>,
    id: u64,
    done: bool,
}

impl Drop for Call {
    fn drop(&mut self) {
        self.process.in_flight.fetch_sub(1, Ordering::AcqRel);
        if !self.done {
            self.process.pending.lock().expect("pending lock").remove(&self.id);
            self.process.stop(Broken::Stopped("it did not answer before the deadline".into()));
        }
    }
}

/// The start of a line, for messages.
fn preview(line: &str) -> String {
    let mut cut: String = line.chars().take(200).collect();
    if cut.len() < line.len() {
        cut.push('…');
    }
    cut
}

/// Keeps the last lines of a copy's standard error, whatever it writes
/// (bytes that are not UTF-8 are replaced, over-long lines cut): it is read
/// to its end, so a copy never blocks on a full pipe.
async fn drain_stderr(stderr: tokio::process::ChildStderr, kept: Arc<Mutex<VecDeque<String>>>) {
    let mut reader = tokio::io::BufReader::new(stderr);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let (taken, ended) = match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (chunk.len(), false),
        };
        let room = STDERR_LINE.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..taken.min(room)]);
        reader.consume(taken);
        if ended {
            let text = String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']).to_owned();
            line.clear();
            let mut kept = kept.lock().expect("stderr lock");
            if kept.len() == STDERR_LINES {
                kept.pop_front();
            }
            kept.push_back(text);
        }
    }
}
