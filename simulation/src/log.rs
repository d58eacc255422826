//! The event log of one simulated run: everything the driver did and everything the replicas
//! did that the invariants look at, in the order it happened, with a digest for determinism.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use switchyard::lease::Fence;
use switchyard::model::{Outcome, Phase};

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
        /// The image the spec asks for (the candidate's only change to the base).
        image: String,
        /// What this write changed (`image 1.3.0`, `revert to 1.2.0`, `labels`, `paused`,
        /// `resumed`, `alarms on`, `promotion manual`, `onDrift converge`, `cluster as ARN`).
        edit: String,
        /// The image is the previous generation's: the candidate and the target are kept.
        keeps_candidate: bool,
        /// `rollback.alarms` names the release's alarm.
        alarms: bool,
        paused: bool,
        /// A deployment of the release that was active when the write committed.
        in_flight: Option<String>,
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
        requested_at: Timestamp,
        ok: bool,
    },
    AlarmSet {
        alarm: String,
        state: &'static str,
    },
    FaultsInjected {
        description: String,
    },
    /// AWS refuses every call of `operation` (`AccessDeniedException`) from now on
    /// (`on`), or no longer.
    Refusals {
        operation: &'static str,
        on: bool,
    },
    /// The next `writes` status writes of the replica after its next successful mutation
    /// fail (`lost`: they take effect, but the reply is lost).
    WriteFaultArmed {
        replica: String,
        writes: u32,
        lost: bool,
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
    /// The replica will crash right after its next successful call of `operation`.
    CrashArmed {
        replica: String,
        operation: &'static str,
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
        /// The stop was sent (a StopDeployment call succeeded) as the status records it.
        stop_sent: bool,
        /// The stop is because the rollout was superseded (not an alarm or an abort).
        stop_superseded: bool,
        /// The rollout the status records last.
        rollout: Option<RolloutSeen>,
        /// The requests the status records as handled, with their history entries.
        handled: Vec<HandledRequest>,
    },
    /// A replica's status write failed (or it heard so: a lost reply).
    StatusWriteFailed {
        replica: String,
        release: String,
        /// `injected` (a write the driver armed to fail), or the store's error.
        cause: String,
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
        /// `ok`, the kind of the error (`throttling`, `ambiguous`, ...), or `panicked`.
        outcome: String,
    },
    /// Faults and writes stopped; from here on the releases must settle.
    Quiesced,
    Settled {
        all: bool,
    },
}

/// A rollout as a committed status records it.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutSeen {
    pub serial: u32,
    /// The generation that started it.
    pub generation: u64,
    /// The candidate task definition.
    pub candidate: String,
    pub outcome: Option<Outcome>,
}

/// A request a committed status records as handled.
#[derive(Debug, Clone, PartialEq)]
pub struct HandledRequest {
    pub kind: &'static str,
    pub requested_at: Timestamp,
    /// Its history entry (outcome and message), if the status's history still holds it.
    pub entry: Option<(Outcome, String)>,
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
