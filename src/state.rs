//! What the controller shares with its readers (the HTTP server, the demo): readiness, the
//! latest view of every release, and the metrics.
//!
//! The controller writes it after each pass and each resync; readers never call the store or
//! AWS, so a dashboard refreshing every two seconds costs nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::model::{Outcome, Phase};
use crate::ports::StoredRelease;

/// The controller's shared state. Cheap to clone (an `Arc` inside).
#[derive(Clone, Default)]
pub struct ControllerState {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The first full resync has completed.
    synced: AtomicBool,
    /// The last store call succeeded.
    store_reachable: AtomicBool,
    releases: RwLock<BTreeMap<String, StoredRelease>>,
    metrics: Metrics,
}

impl ControllerState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ready: the first sync is done and the store answered its last call.
    pub fn is_ready(&self) -> bool {
        self.inner.synced.load(Ordering::Relaxed)
            && self.inner.store_reachable.load(Ordering::Relaxed)
    }

    pub fn mark_synced(&self) {
        self.inner.synced.store(true, Ordering::Relaxed);
    }

    pub fn set_store_reachable(&self, reachable: bool) {
        self.inner
            .store_reachable
            .store(reachable, Ordering::Relaxed);
    }

    /// Records the latest known record of a release (after a pass or a resync).
    pub fn update_release(&self, release: StoredRelease) {
        let mut releases = self
            .inner
            .releases
            .write()
            .unwrap_or_else(|e| e.into_inner());
        releases.insert(release.name.clone(), release);
        self.refresh_phase_gauge(&releases);
    }

    /// Replaces the whole view after a full resync (releases deleted since are dropped).
    pub fn replace_releases(&self, listed: Vec<StoredRelease>) {
        let mut releases = self
            .inner
            .releases
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *releases = listed.into_iter().map(|r| (r.name.clone(), r)).collect();
        self.refresh_phase_gauge(&releases);
    }

    pub fn remove_release(&self, name: &str) {
        let mut releases = self
            .inner
            .releases
            .write()
            .unwrap_or_else(|e| e.into_inner());
        releases.remove(name);
        self.refresh_phase_gauge(&releases);
    }

    /// Every release, sorted by name.
    pub fn releases(&self) -> Vec<StoredRelease> {
        let releases = self
            .inner
            .releases
            .read()
            .unwrap_or_else(|e| e.into_inner());
        releases.values().cloned().collect()
    }

    pub fn release(&self, name: &str) -> Option<StoredRelease> {
        let releases = self
            .inner
            .releases
            .read()
            .unwrap_or_else(|e| e.into_inner());
        releases.get(name).cloned()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    fn refresh_phase_gauge(&self, releases: &BTreeMap<String, StoredRelease>) {
        let mut counts: BTreeMap<Phase, i64> = Phase::ALL.iter().map(|p| (*p, 0)).collect();
        for release in releases.values() {
            // A release the controller has not looked at yet is Pending.
            let phase = release.status.as_ref().map(|s| s.phase).unwrap_or_default();
            *counts.entry(phase).or_default() += 1;
        }
        for (phase, count) in counts {
            self.inner
                .metrics
                .releases
                .get_or_create(&PhaseLabels {
                    phase: PhaseLabel(phase),
                })
                .set(count);
        }
    }
}

/// A release phase as a metric label value.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct PhaseLabel(pub Phase);

impl EncodeLabelValue for PhaseLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_str(), encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: PhaseLabel,
}

/// One AWS API call: which service and operation, and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// `ecs`, `codedeploy`, `elasticloadbalancing`, `cloudwatch`, `dynamodb`.
    pub service: String,
    pub operation: String,
    /// `ok`, or the error kind (`throttling`, `transient`, `not_found`, ...).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub service: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok` or `error`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeploymentLabels {
    /// `started`, `succeeded`, `rolled_back`, `failed`.
    pub event: String,
}

/// The controller's Prometheus metrics. Names are stable: dashboards depend on them.
pub struct Metrics {
    registry: Registry,
    /// `switchyard_releases{phase}`: releases by phase.
    pub releases: Family<PhaseLabels, Gauge>,
    /// `switchyard_reconcile_duration_seconds`: the wall time of one pass.
    pub reconcile_duration: Family<OutcomeLabels, Histogram>,
    /// `switchyard_aws_calls_total{service,operation,outcome}`.
    pub aws_calls: Family<CallLabels, Counter>,
    /// `switchyard_aws_throttles_total{service,operation}`.
    pub aws_throttles: Family<OperationLabels, Counter>,
    /// `switchyard_deployments_total{event}`.
    pub deployments: Family<DeploymentLabels, Counter>,
    /// `switchyard_queue_depth`: releases waiting for a pass.
    pub queue_depth: Gauge,
    /// `switchyard_passes_in_flight`: passes running now.
    pub passes_in_flight: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("switchyard");
        let releases = Family::<PhaseLabels, Gauge>::default();
        registry.register("releases", "Releases by phase", releases.clone());
        let reconcile_duration = Family::<OutcomeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
        });
        registry.register_with_unit(
            "reconcile_duration",
            "Duration of one reconcile pass",
            prometheus_client::registry::Unit::Seconds,
            reconcile_duration.clone(),
        );
        let aws_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "aws_calls",
            "AWS API calls by service, operation and outcome",
            aws_calls.clone(),
        );
        let aws_throttles = Family::<OperationLabels, Counter>::default();
        registry.register(
            "aws_throttles",
            "AWS API calls that were throttled",
            aws_throttles.clone(),
        );
        let deployments = Family::<DeploymentLabels, Counter>::default();
        registry.register(
            "deployments",
            "Deployments started, succeeded, rolled back and failed",
            deployments.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Releases waiting for a reconcile pass",
            queue_depth.clone(),
        );
        let passes_in_flight = Gauge::default();
        registry.register(
            "passes_in_flight",
            "Reconcile passes running now",
            passes_in_flight.clone(),
        );
        Self {
            registry,
            releases,
            reconcile_duration,
            aws_calls,
            aws_throttles,
            deployments,
            queue_depth,
            passes_in_flight,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition (OpenMetrics text format).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts one AWS call.
    pub fn record_call(&self, service: &str, operation: &str, outcome: &str) {
        self.aws_calls
            .get_or_create(&CallLabels {
                service: service.to_string(),
                operation: operation.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        if outcome == "throttling" {
            self.aws_throttles
                .get_or_create(&OperationLabels {
                    service: service.to_string(),
                    operation: operation.to_string(),
                })
                .inc();
        }
    }

    pub fn record_pass(&self, duration: Duration, ok: bool) {
        self.reconcile_duration
            .get_or_create(&OutcomeLabels {
                outcome: if ok { "ok" } else { "error" }.to_string(),
            })
            .observe(duration.as_secs_f64());
    }

    pub fn record_deployment(&self, event: &str) {
        self.deployments
            .get_or_create(&DeploymentLabels {
                event: event.to_string(),
            })
            .inc();
    }

    /// Counts the deployment events that a pass's new history entries represent.
    pub fn record_outcomes(&self, new_outcomes: impl IntoIterator<Item = Outcome>) {
        for outcome in new_outcomes {
            match outcome {
                Outcome::Succeeded => self.record_deployment("succeeded"),
                Outcome::RolledBack => self.record_deployment("rolled_back"),
                Outcome::Failed => self.record_deployment("failed"),
                _ => {}
            }
        }
    }
}
