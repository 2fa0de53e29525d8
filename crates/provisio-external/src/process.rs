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
use serde_json::Value;
use tokio::io::AsyncWriteExt;
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
    alive: Arc<AtomicBool>,
    /// Calls written and not answered yet.
    pub in_flight: AtomicUsize,
    next_id: AtomicU64,
}

impl Process {
    /// Starts `program` with a bare environment (only `PATH`, `LANG`, `HOME`
    /// and `TMPDIR` pass: Provisio's own secrets never reach it).
    pub fn spawn(program: &Path) -> Result<Arc<Process>, Broken> {
        let mut command = Command::new(program);
        command.env_clear();
        for name in ["PATH", "LANG", "HOME", "TMPDIR"] {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        let mut child = command
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
                let why = match why {
                    Some(why) => why,
                    None => Broken::Exited(process.exit_status().await),
                };
                process.stop(why);
            }
        });
        let kept = process.stderr.clone();
        tokio::spawn(async move {
            let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(STDERR_LINE));
            while let Some(line) = lines.next().await {
                let line = match line {
                    Ok(line) => line,
                    Err(LinesCodecError::MaxLineLengthExceeded) => "[a line over 4 KiB, left out]".into(),
                    Err(LinesCodecError::Io(_)) => break,
                };
                let mut kept = kept.lock().expect("stderr lock");
                if kept.len() == STDERR_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
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
        let (sender, receiver) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id, sender);
        // The pool counted the call in `in_flight` when it chose this copy; `Call` uncounts it.
        let mut call = Call { process: self.clone(), id, done: false };
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
            call.done = true;
            self.pending.lock().expect("pending lock").remove(&id);
            return Err(if self.alive() { Broken::Unwritable } else { self.why_stopped() });
        }
        let answer = receiver.await.unwrap_or_else(|_| Err(Broken::Stopped("it was dropped".into())));
        call.done = true;
        answer
    }

    fn why_stopped(&self) -> Broken {
        Broken::Stopped("it had already stopped".into())
    }

    /// Stops the copy and fails every call it still has with `why`.
    pub fn stop(&self, why: Broken) {
        self.alive.store(false, Ordering::Release);
        if let Some(mut child) = self.child.lock().expect("child lock").take() {
            let _ = child.start_kill();
            // Reap it so no zombie is left.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = child.wait().await;
                });
            }
        }
        let waiting: Vec<_> = self.pending.lock().expect("pending lock").drain().collect();
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

    /// The standard error lines written since the last time this was read.
    pub fn take_stderr(&self) -> Vec<String> {
        self.stderr.lock().expect("stderr lock").drain(..).collect()
    }
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
