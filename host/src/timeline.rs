//! Where a request's time goes, seen from the host: when the instance was
//! ready, each call the guest made to a host interface, when the response
//! headers were set, and the most linear memory the instance used.
//!
//! Off by default: set `SPIN_AUTH_TIMELINE=1` and the host logs one JSON
//! line per request (`timeline {...}`), which `bench/` turns into the
//! breakdown in the README. Guest work shows as the gaps between host
//! calls.

use std::time::{Duration, Instant};

use serde::Serialize;

/// The environment variable that turns timelines on.
pub const ENV: &str = "SPIN_AUTH_TIMELINE";

/// One request's events, in microseconds from the request's start.
#[derive(Debug, Serialize)]
pub struct Timeline {
    #[serde(skip)]
    start: Instant,
    /// `METHOD path`.
    pub request: String,
    /// Status sent.
    pub status: u16,
    /// When the instance was ready to run.
    pub instantiated_us: u64,
    /// When the guest set the response.
    pub responded_us: u64,
    /// Host calls: name, start, end.
    pub calls: Vec<(&'static str, u64, u64)>,
    /// The largest linear memory the instance grew to, in bytes.
    pub peak_memory_bytes: usize,
    /// How many times the guest grew a linear memory past its initial size
    /// (each growth changes the slot's page protection).
    pub memory_growths: u32,
}

fn micros(duration: Duration) -> u64 {
    duration.as_micros() as u64
}

impl Timeline {
    /// A timeline of a request that started at `start`.
    pub fn new(request: String, start: Instant) -> Self {
        Self {
            start,
            request,
            status: 0,
            instantiated_us: 0,
            responded_us: 0,
            calls: Vec::new(),
            peak_memory_bytes: 0,
            memory_growths: 0,
        }
    }

    /// Microseconds since the request started.
    pub fn now(&self) -> u64 {
        micros(self.start.elapsed())
    }

    /// Records a host call that started at `started` (from [`Timeline::now`]).
    pub fn call(&mut self, name: &'static str, started: u64) {
        let ended = self.now();
        self.calls.push((name, started, ended));
    }
}

/// Tracks the peak linear memory of an instance and its growths.
#[derive(Default)]
pub struct MemoryPeak {
    /// Largest size any memory was allowed to grow to.
    pub peak: usize,
    /// Growths of a memory that already existed (`memory.grow`), not its
    /// creation at its initial size.
    pub growths: u32,
}

impl wasmtime::ResourceLimiter for MemoryPeak {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_none_or(|max| desired <= max) {
            self.peak = self.peak.max(desired);
            if current > 0 && desired > current {
                self.growths += 1;
            }
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}
