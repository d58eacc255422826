//! The event log of one simulated run: everything the driver did and everything the replicas
//! did that the invariants look at, in the order it happened, with a digest for determinism.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use switchyard::lease::Fence;
use switchyard::model::Phase;

/// Locks a mutex, ignoring poisoning: a replica task that panicked must not hide the log
/// and the gates from the checks.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Something that happened, as the invariant checks need it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The driver wrote a desired version (`put_spec` under the current generation).
    SpecWritten {
        release: String,
        generation: u64,
        tag: String,
    },
    /// A spec write failed and did not take effect.
    SpecWriteFailed {
        release: String,
        cause: String,
    },
    /// The driver wrote an operator request.
    Requested {
        release: String,
        kind: &'static str,
        generation: u64,
        ok: bool,
    },
    AlarmSet {
        alarm: String,
        state: &'static str,
    },
    FaultsInjected {
        description: String,
    },
    FaultsCleared,
    ReplicaStarted {
        replica: String,
    },
    /// The replica's task was aborted: its leases are not released.
    ReplicaCrashed {
        replica: String,
        point: &'static str,
    },
    /// The replica was told to shut down (drain, release its leases).
    ReplicaStopping {
        replica: String,
    },
    ReplicaStopped {
        replica: String,
        passes: u64,
        failed_passes: u64,
    },
    /// Every port call of the replica is held until then (its leases expire under it).
    ReplicaFrozen {
        replica: String,
        for_secs: u64,
    },
    /// The replica will crash right after its next successful CreateDeployment.
    CrashArmed {
        replica: String,
    },
    /// The store committed a status write (observed inside the store, in commit order).
    StatusCommitted {
        release: String,
        fence: Option<Fence>,
        version: u64,
        observed_generation: u64,
        phase: Phase,
        message: String,
        /// The deployment the status says the controller is stopping.
        stop_requested: Option<String>,
    },
    /// A replica heard that its status write succeeded.
    StatusAcknowledged {
        replica: String,
        release: String,
        fence: Option<Fence>,
        version: u64,
    },
    LeaseTaken {
        replica: String,
        shard: u32,
        term: u64,
    },
    LeaseReleased {
        replica: String,
        shard: u32,
    },
    /// A replica issued a mutating AWS call for a release, with the fence of its last
    /// acknowledged status write for that release (`None`: it had none).
    MutationIssued {
        replica: String,
        release: String,
        operation: &'static str,
        detail: String,
        fence: Option<Fence>,
    },
    MutationReturned {
        replica: String,
        release: String,
        operation: &'static str,
        detail: String,
        /// `ok`, or the kind of the error (`throttling`, `ambiguous`, ...).
        outcome: String,
    },
    /// Faults and writes stopped; from here on the releases must settle.
    Quiesced,
    Settled {
        all: bool,
    },
}

/// One entry: its place in the order, when (virtual time since the run started), what.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub at: Duration,
    pub event: Event,
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>9.3}s #{:<6} {:?}",
            self.at.as_secs_f64(),
            self.seq,
            self.event
        )
    }
}

/// The shared, append-only log. Cheap to clone.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    start: Instant,
    entries: Vec<Entry>,
}

impl EventLog {
    /// A log whose times count from now (tokio's clock).
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                start: Instant::now(),
                entries: Vec::new(),
            })),
        }
    }

    /// Appends an event and returns its sequence number.
    pub fn push(&self, event: Event) -> u64 {
        let mut inner = lock(&self.inner);
        let seq = inner.entries.len() as u64;
        let at = Instant::now().saturating_duration_since(inner.start);
        inner.entries.push(Entry { seq, at, event });
        seq
    }

    /// Virtual time since the log started.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(lock(&self.inner).start)
    }

    pub fn entries(&self) -> Vec<Entry> {
        lock(&self.inner).entries.clone()
    }
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

/// A SHA-256 of the lines, hex, cut to 16 digits: equal runs give equal digests.
pub fn digest<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
