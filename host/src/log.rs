//! Where the host's lines and the guests' output go.
//!
//! The command line writes both to stderr, as `spin up` mirrors guest
//! output there; tests capture them in memory to check what was (and was
//! not) logged. Guest output is split into lines, each prefixed with the
//! component id, so interleaved requests stay readable; like Spin, the host
//! also appends each component's output, unprefixed, to
//! `.spin/logs/<component>_stdout.txt` and `_stderr.txt`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A destination for log lines.
///
/// Hand-written rather than a `tracing` subscriber: tests run many hosts in
/// one process and each reads only its own lines, while `tracing` sends
/// events to a process-wide (or per-thread) dispatcher, so every task the
/// host spawns would have to carry its app's dispatcher along; for lines
/// with no levels or fields, this enum is the simpler of the two.
#[derive(Clone)]
pub enum LogSink {
    /// The process's stderr.
    Stderr,
    /// Kept in memory, for tests.
    Memory(Arc<Mutex<Vec<String>>>),
}

impl LogSink {
    /// Writes one line.
    pub fn line(&self, line: &str) {
        match self {
            LogSink::Stderr => {
                // One write, not `writeln!`'s two: stderr is unbuffered.
                let _ = std::io::stderr()
                    .lock()
                    .write_all(format!("{line}\n").as_bytes());
            }
            LogSink::Memory(lines) => {
                lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.to_owned());
            }
        }
    }
}

/// A guest's stdout or stderr: lines prefixed with `[component]`, and
/// appended to the component's log file when there is one.
#[derive(Clone)]
pub struct GuestOutput {
    prefix: String,
    sink: LogSink,
    file: Option<Arc<Mutex<std::fs::File>>>,
}

impl GuestOutput {
    /// Output of component `id` going to `sink` and, if given, `file`.
    pub fn new(id: &str, sink: LogSink, file: Option<std::fs::File>) -> Self {
        Self {
            prefix: format!("[{id}] "),
            sink,
            file: file.map(|file| Arc::new(Mutex::new(file))),
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter {
            output: self.clone(),
            pending: Vec::new(),
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp3 guests ask for this; they are not served here.
        Box::new(tokio::io::sink())
    }
}

/// Buffers a partial line until its newline arrives (or the stream ends).
struct LineWriter {
    output: GuestOutput,
    pending: Vec<u8>,
}

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        self.output
            .sink
            .line(&format!("{}{text}", self.output.prefix));
        if let Some(file) = &self.output.file {
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(file, "{text}");
        }
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.pending.extend_from_slice(&bytes);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.emit(&pending);
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}
