//! Sending notifications: the shell around `reconcile::events` and `reconcile::outbox`.
//!
//! 1. Every status a pass writes first goes through [`Notifier::prepare`]: the outcomes of
//!    this replica's finished attempts are applied, the events between the stored status
//!    and the new one are recorded in its outbox, and the due deliveries are claimed (their
//!    intents, `sendingSince`, written with it). All in the pass's one conditional write,
//!    fenced by the lease: an event is recorded once, whichever replica writes it.
//! 2. Once that write succeeded (and the lease still holds), [`Notifier::dispatch`] hands the
//!    claims to the delivery task the controller loop runs (`deliveries`): each attempt is
//!    its own task, bounded by [`SEND_TIMEOUT`], so a slow or failing destination never
//!    holds a pass, and never the rollout.
//! 3. An attempt's outcome is kept in memory (`Book`) and wakes its release: the next pass
//!    applies it (marked sent, or failed with its backoff) and writes it. An outcome is
//!    forgotten only once a write carried it; a replica that stops first leaves the intent
//!    without an outcome, and whoever owns the release then sends it again after
//!    `outbox::UNCONFIRMED_WAIT` (counted in `resent`): at least once, and twice only when an
//!    outcome was lost. Receivers drop the rare duplicate by `id`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::model::notifications::{Destination, NotificationDestination, NotificationMessage};
use crate::model::{ReleaseSpec, ReleaseStatus};
use crate::ports::{AwsErrorKind, NotificationProvider, Publication};
use crate::reconcile::events::{self, Recording};
use crate::reconcile::outbox::{self, Attempt, Claim, DeliveryOutcome};
use crate::state::ControllerState;

/// The longest one delivery attempt may take (connecting, TLS, the request, the answer);
/// shorter than `outbox::UNCONFIRMED_WAIT`, so an attempt has ended before another replica
/// sends the same delivery again.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const _: () = assert!(SEND_TIMEOUT.as_secs() * 2 < outbox::UNCONFIRMED_WAIT.as_secs());

/// The notification side of a pass: what the write it prepared carries, for after it.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Outcomes applied to the status: forgotten once it is written.
    applied: Vec<(String, String, u64)>,
    /// Deliveries claimed in the status: made once it is written.
    claims: Vec<Claim>,
    /// Where the release's events go now (to resolve a claim's destination key).
    destinations: Vec<NotificationDestination>,
    /// Deliveries this write gives up, by destination kind (counted once it is written).
    dropped: BTreeMap<String, u64>,
}

/// One delivery attempt to make.
struct Dispatch {
    release: String,
    destination: Destination,
    key: String,
    message: NotificationMessage,
}

/// What this replica knows of its attempts that the store may not say yet.
#[derive(Default)]
struct Book {
    /// `(release, id, destination key)` of attempts on their way.
    in_flight: BTreeSet<(String, String, String)>,
    /// Finished attempts per release, not yet written, each with a serial.
    finished: BTreeMap<String, Vec<(u64, DeliveryOutcome)>>,
    serial: u64,
}

/// Sends a release's notifications (see the module comment). One per controller.
pub struct Notifier {
    provider: Option<Arc<dyn NotificationProvider>>,
    /// The fleet-wide destinations, for releases whose spec names none.
    defaults: Vec<NotificationDestination>,
    book: Mutex<Book>,
    tx: mpsc::UnboundedSender<Dispatch>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Dispatch>>>,
    /// The controller's own account and region: SNS topics are published to in their own
    /// region, EventBridge in this one (the `region` and `account` labels of the call metrics).
    home: crate::model::Place,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new(None, Vec::new())
    }
}

impl Notifier {
    /// A notifier sending through `provider` (`None`: events are recorded in the status,
    /// and every delivery fails as not configured), with these fleet-wide defaults.
    pub fn new(
        provider: Option<Arc<dyn NotificationProvider>>,
        defaults: Vec<NotificationDestination>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            provider,
            defaults,
            book: Mutex::new(Book::default()),
            tx,
            rx: Arc::new(tokio::sync::Mutex::new(rx)),
            home: crate::model::Place::new(None, ""),
        }
    }

    /// Labels the notification calls with the controller's own account and region.
    pub fn at_home(mut self, home: crate::model::Place) -> Self {
        self.home = home;
        self
    }

    /// Where a release's events go: its spec's `notifications`, or the defaults.
    pub fn destinations_for(&self, spec: &ReleaseSpec) -> Vec<NotificationDestination> {
        spec.notifications
            .clone()
            .unwrap_or_else(|| self.defaults.clone())
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies finished attempts, records the events between `before` and `status`, and
    /// claims the due deliveries, all in `status` (which the pass then writes).
    pub fn prepare(
        &self,
        release: &str,
        generation: u64,
        spec: Option<&ReleaseSpec>,
        before: Option<&ReleaseStatus>,
        status: &mut ReleaseStatus,
        now: Timestamp,
    ) -> Prepared {
        let mut pending = pending_deliveries(status);
        let finished: Vec<(u64, DeliveryOutcome)> = self
            .book()
            .finished
            .get(release)
            .cloned()
            .unwrap_or_default();
        let outcomes: Vec<DeliveryOutcome> = finished.iter().map(|(_, o)| o.clone()).collect();
        outbox::apply(status, &outcomes);
        let delivered: BTreeSet<(String, String)> = outcomes
            .iter()
            .filter(|o| o.attempt == Attempt::Delivered)
            .map(|o| (o.id.clone(), o.destination.clone()))
            .collect();
        let applied = finished
            .into_iter()
            .map(|(serial, o)| (o.id, o.destination, serial))
            .collect();
        let destinations = spec.map(|s| self.destinations_for(s)).unwrap_or_default();
        if let Some(spec) = spec {
            let recording = Recording {
                release,
                generation,
                spec,
                destinations: &destinations,
            };
            for event in events::record(&recording, before, status, now) {
                debug!(event = %event.event, id = %event.id, "notification recorded");
                pending.extend(
                    destinations
                        .iter()
                        .filter(|d| d.wants(event.event))
                        .filter_map(NotificationDestination::destination)
                        .map(|d| (event.id.clone(), d.key())),
                );
            }
        }
        // Without a valid spec, where the events go is unknown: nothing is claimed (nor given
        // up) until the spec is valid again.
        let claims = if spec.is_none() {
            Vec::new()
        } else {
            let book = self.book();
            outbox::claim(status, now, |id, destination| {
                book.in_flight.contains(&(
                    release.to_string(),
                    id.to_string(),
                    destination.to_string(),
                ))
            })
        };
        // Pending before, or recorded now, and neither pending nor delivered after: given up.
        let left = pending_deliveries(status);
        let mut dropped = BTreeMap::new();
        for (_, destination) in pending
            .difference(&left)
            .filter(|delivery| !delivered.contains(*delivery))
        {
            *dropped.entry(kind_of(destination).to_string()).or_insert(0) += 1;
        }
        Prepared {
            applied,
            claims,
            destinations,
            dropped,
        }
    }

    /// After the write that carried `prepared` succeeded: forgets the outcomes it wrote and,
    /// when `send` (the lease still holds), starts the deliveries it claimed (otherwise their
    /// intents wait for whoever owns the release, as after a crash).
    pub fn dispatch(&self, state: &ControllerState, release: &str, prepared: Prepared, send: bool) {
        {
            let mut book = self.book();
            if let Some(finished) = book.finished.get_mut(release) {
                finished
                    .retain(|(serial, _)| !prepared.applied.iter().any(|(_, _, s)| s == serial));
                if finished.is_empty() {
                    book.finished.remove(release);
                }
            }
        }
        let metrics = state.metrics();
        for (kind, count) in &prepared.dropped {
            metrics.record_notifications(kind, "dropped", *count);
        }
        if !send {
            return;
        }
        for claim in prepared.claims {
            let destination = prepared
                .destinations
                .iter()
                .filter_map(NotificationDestination::destination)
                .find(|d| d.key() == claim.destination);
            let Some(destination) = destination else {
                // The spec no longer names it: give it up, said in the status.
                self.finish(
                    release,
                    DeliveryOutcome {
                        id: claim.message.id.clone(),
                        destination: claim.destination.clone(),
                        attempt: Attempt::Failed {
                            error: "the destination is no longer configured".into(),
                            permanent: true,
                        },
                        at: claim.message.time,
                    },
                );
                continue;
            };
            if claim.resend {
                metrics.record_notifications(kind_of(&claim.destination), "resent", 1);
                warn!(release, id = %claim.message.id, destination = %claim.destination,
                    "sending a notification again: an earlier attempt's outcome was never recorded");
            }
            self.book().in_flight.insert((
                release.to_string(),
                claim.message.id.clone(),
                claim.destination.clone(),
            ));
            let _ = self.tx.send(Dispatch {
                release: release.to_string(),
                destination,
                key: claim.destination,
                message: claim.message,
            });
        }
    }

    /// When the release needs a pass for its notifications (a retry, an unconfirmed
    /// attempt); attempts on their way wake it themselves.
    pub fn next_due(&self, release: &str, status: &ReleaseStatus) -> Option<Timestamp> {
        let book = self.book();
        outbox::next_due(status, |id, destination| {
            book.in_flight
                .contains(&(release.to_string(), id.to_string(), destination.to_string()))
        })
    }

    /// Forgets a deleted release's outcomes (its status is gone with it).
    pub fn forget(&self, release: &str) {
        let mut book = self.book();
        book.finished.remove(release);
        book.in_flight.retain(|(r, _, _)| r != release);
    }

    fn finish(&self, release: &str, outcome: DeliveryOutcome) {
        let mut book = self.book();
        book.in_flight.remove(&(
            release.to_string(),
            outcome.id.clone(),
            outcome.destination.clone(),
        ));
        book.serial += 1;
        let serial = book.serial;
        book.finished
            .entry(release.to_string())
            .or_default()
            .push((serial, outcome));
    }

    /// Runs the deliveries until dropped (the controller loop owns this task: dropping it
    /// aborts the attempts on their way, as a dying process would). `wake` is told the
    /// release of each finished attempt.
    pub(super) async fn deliveries(
        self: Arc<Self>,
        state: ControllerState,
        clock: crate::clock::Clock,
        wake: impl Fn(String) + Send + Sync + 'static,
    ) {
        let rx = Arc::clone(&self.rx);
        let mut rx = rx.lock().await;
        let wake = Arc::new(wake);
        let mut attempts: JoinSet<()> = JoinSet::new();
        loop {
            tokio::select! {
                dispatch = rx.recv() => {
                    let Some(dispatch) = dispatch else { return };
                    let notifier = Arc::clone(&self);
                    let state = state.clone();
                    let clock = clock.clone();
                    let wake = Arc::clone(&wake);
                    attempts.spawn(async move {
                        let release = dispatch.release.clone();
                        let outcome = notifier.attempt(&state, &clock, dispatch).await;
                        notifier.finish(&release, outcome);
                        wake(release);
                    });
                }
                Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
            }
        }
    }

    /// One attempt, bounded by [`SEND_TIMEOUT`], counted in the metrics.
    async fn attempt(
        &self,
        state: &ControllerState,
        clock: &crate::clock::Clock,
        dispatch: Dispatch,
    ) -> DeliveryOutcome {
        let kind = dispatch.destination.kind().as_str();
        let attempt = match tokio::time::timeout(SEND_TIMEOUT, self.send(state, &dispatch)).await {
            Ok(attempt) => attempt,
            Err(_) => Attempt::Failed {
                error: format!("no answer within {}s", SEND_TIMEOUT.as_secs()),
                permanent: false,
            },
        };
        match &attempt {
            Attempt::Delivered => {
                debug!(release = %dispatch.release, id = %dispatch.message.id, destination = %dispatch.key, "notification delivered");
                state.metrics().record_notifications(kind, "delivered", 1);
            }
            Attempt::Failed { error, permanent } => {
                warn!(release = %dispatch.release, id = %dispatch.message.id, destination = %dispatch.key,
                    error = %error, permanent, "a notification delivery failed");
                state.metrics().record_notifications(kind, "failed", 1);
            }
        }
        DeliveryOutcome {
            id: dispatch.message.id,
            destination: dispatch.key,
            attempt,
            at: clock.now(),
        }
    }

    async fn send(&self, state: &ControllerState, dispatch: &Dispatch) -> Attempt {
        let Some(provider) = self.provider.as_ref() else {
            return Attempt::Failed {
                error: "this controller has no notification clients configured".into(),
                permanent: false,
            };
        };
        let message = &dispatch.message;
        let publication = || Publication::of(message);
        let aws = |result: Result<(), crate::ports::AwsError>, service, operation, region: &str| {
            let place = crate::model::Place::new(Some(&self.home.account), region);
            state.metrics().record_call(
                service,
                operation,
                result.as_ref().map_or_else(|e| e.kind.as_str(), |_| "ok"),
                &place,
            );
            match result {
                Ok(()) => Attempt::Delivered,
                Err(error) => Attempt::Failed {
                    permanent: error.kind == AwsErrorKind::InvalidRequest,
                    error: error.to_string(),
                },
            }
        };
        match &dispatch.destination {
            Destination::Sns { topic_arn } => {
                let region = crate::model::notifications::topic_region(topic_arn).unwrap_or("");
                let result = provider
                    .sns(region)
                    .publish(topic_arn, &publication())
                    .await;
                aws(result, "sns", "Publish", region)
            }
            Destination::EventBridge { bus } => {
                let result = provider.event_bridge().put_event(bus, &publication()).await;
                aws(result, "events", "PutEvents", &self.home.region)
            }
            Destination::Webhook { url, format } => {
                match provider
                    .webhooks()
                    .post(url, &message.webhook_body(*format))
                    .await
                {
                    Ok(()) => Attempt::Delivered,
                    Err(error) => Attempt::Failed {
                        permanent: error.is_permanent(),
                        error: error.to_string(),
                    },
                }
            }
        }
    }
}

/// `(id, destination)` of every delivery waiting in the outbox.
fn pending_deliveries(status: &ReleaseStatus) -> BTreeSet<(String, String)> {
    status
        .notifications
        .iter()
        .flat_map(|n| &n.outbox)
        .flat_map(|entry| {
            entry
                .pending
                .iter()
                .map(|p| (entry.message.id.clone(), p.destination.clone()))
        })
        .collect()
}

/// A destination key's kind (`sns`, `eventBridge`, `webhook`), for the metrics.
fn kind_of(key: &str) -> &str {
    key.split(':').next().unwrap_or("")
}
