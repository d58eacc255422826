//! When each release had a pass: the start of every reconcile pass of every replica, taken
//! from the controller's own `reconcile` tracing span (one per pass, with the release as a
//! field), so the simulation needs no hook in the library.
//!
//! The recording goes to the pass log of the run on the current thread (a run owns its
//! thread: one current-thread runtime per seed). By default [`crate::run`] installs
//! [`PassSubscriber`] as the thread's subscriber for the run; a program that installs a
//! global subscriber of its own (the example's `--trace`) adds [`PassRecorder`] to it
//! instead.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::log::lock;

/// The name of the controller's span around one pass (`controller/pass.rs`).
const PASS_SPAN: &str = "reconcile";

/// Per release, the virtual times (since the run started) at which a pass started.
#[derive(Clone)]
pub struct PassLog {
    start: Instant,
    passes: Arc<Mutex<BTreeMap<String, Vec<Duration>>>>,
}

impl PassLog {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            passes: Arc::default(),
        }
    }

    /// A pass for `release` starts now (also called for a fresh read of the release, which
    /// a pass does before its span opens).
    pub fn record(&self, release: &str) {
        let at = Instant::now().saturating_duration_since(self.start);
        let mut passes = lock(&self.passes);
        let times = passes.entry(release.to_string()).or_default();
        if times.last() != Some(&at) {
            times.push(at);
        }
    }

    pub fn passes(&self) -> BTreeMap<String, Vec<Duration>> {
        lock(&self.passes).clone()
    }
}

impl Default for PassLog {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<PassLog>> = const { RefCell::new(None) };
}

/// Makes `log` the pass log of this thread until the guard is dropped.
pub(crate) fn record_on_this_thread(log: &PassLog) -> CurrentGuard {
    CURRENT.with(|current| *current.borrow_mut() = Some(log.clone()));
    CurrentGuard
}

pub(crate) struct CurrentGuard;

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.with(|current| *current.borrow_mut() = None);
    }
}

/// Set once a [`PassRecorder`] exists: a global subscriber records the passes, so a run
/// does not install its own.
static GLOBAL_RECORDER: AtomicBool = AtomicBool::new(false);

pub(crate) fn global_recorder_installed() -> bool {
    GLOBAL_RECORDER.load(Ordering::SeqCst)
}

fn on_pass_span(attrs: &Attributes<'_>) {
    if attrs.metadata().name() != PASS_SPAN {
        return;
    }
    let mut visitor = ReleaseField(None);
    attrs.record(&mut visitor);
    if let Some(release) = visitor.0 {
        CURRENT.with(|current| {
            if let Some(log) = current.borrow().as_ref() {
                log.record(&release);
            }
        });
    }
}

struct ReleaseField(Option<String>);

impl Visit for ReleaseField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "release" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "release" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// A layer that records pass starts, for a global subscriber of one's own (see the module
/// documentation).
pub struct PassRecorder(());

impl PassRecorder {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        GLOBAL_RECORDER.store(true, Ordering::SeqCst);
        Self(())
    }
}

impl<S: Subscriber> Layer<S> for PassRecorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        on_pass_span(attrs);
    }
}

/// The smallest subscriber that records pass starts: it is interested in the pass span
/// only, so every other span and event of the controller costs nothing.
pub(crate) struct PassSubscriber {
    next_id: AtomicU64,
}

impl PassSubscriber {
    pub fn new() -> Self {
        Self {
            next_id: AtomicU64::new(1),
        }
    }
}

impl Subscriber for PassSubscriber {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.is_span() && metadata.name() == PASS_SPAN {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_span() && metadata.name() == PASS_SPAN
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        on_pass_span(attrs);
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, _event: &Event<'_>) {}

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}
