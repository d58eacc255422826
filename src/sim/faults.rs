//! Fault injection and call counting, shared by the simulated AWS and the simulated store.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::lock;

/// What an injected fault does to a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The call is refused as throttled and does not take effect (AWS: `ThrottlingException`,
    /// store: `StoreError::Unavailable { throttled: true }`).
    Throttle,
    /// The call fails with a server error and does not take effect (AWS: `InternalFailure`,
    /// store: `StoreError::Unavailable { throttled: false }`).
    ServerError,
    /// The call is delayed by this virtual duration (slept through the clock), then proceeds.
    Latency(Duration),
    /// The call takes effect, but its response is lost: the caller sees an error of kind
    /// `Ambiguous` (store: `StoreError::Unavailable`).
    LostResponse,
    /// The call is refused for a missing permission and does not take effect (AWS:
    /// `AccessDeniedException`, store: `StoreError::Other`).
    AccessDenied,
    /// The caller panics before the call is made: a bug in the controller, injected where
    /// it calls out.
    Panic,
}

/// One fault rule: which calls it hits, what it does, how often and how many times.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// The exact `"<service>:<Operation>"` (e.g. `"codedeploy:CreateDeployment"`), or `"*"`.
    pub operation: String,
    /// What the rule does to a call it hits.
    pub fault: Fault,
    /// How many more times the rule may fire; `None` = forever.
    pub remaining: Option<u32>,
    /// The chance that a matching call is hit, 0.0..=1.0 (1.0 = always).
    pub probability: f64,
}

impl FaultRule {
    /// A rule that hits every matching call, forever.
    pub fn always(operation: impl Into<String>, fault: Fault) -> Self {
        Self {
            operation: operation.into(),
            fault,
            remaining: None,
            probability: 1.0,
        }
    }

    /// A rule that hits the next `times` matching calls.
    pub fn times(operation: impl Into<String>, fault: Fault, times: u32) -> Self {
        Self {
            remaining: Some(times),
            ..Self::always(operation, fault)
        }
    }

    /// The same rule, firing with probability `probability` per matching call.
    pub fn with_probability(mut self, probability: f64) -> Self {
        self.probability = probability;
        self
    }

    fn matches(&self, operation: &str) -> bool {
        self.operation == "*" || self.operation == operation
    }
}

/// The faults that apply to one call, decided before it runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Decision {
    /// Total injected latency, slept before the call runs.
    pub latency: Duration,
    /// The first error-like fault that fired (`Throttle`, `ServerError` or `LostResponse`).
    pub failure: Option<Fault>,
}

struct State {
    rules: Vec<FaultRule>,
    rng: fastrand::Rng,
    counts: BTreeMap<String, u64>,
}

/// Rules, a seeded random source and per-operation call counts behind one lock (never held
/// across an `.await`).
pub(crate) struct FaultInjector {
    state: Mutex<State>,
}

/// The seed used until `with_seed` says otherwise, so runs are reproducible by default.
const DEFAULT_SEED: u64 = 0x5157_C4A2_D00D_F00D;

impl FaultInjector {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                rules: Vec::new(),
                rng: fastrand::Rng::with_seed(DEFAULT_SEED),
                counts: BTreeMap::new(),
            }),
        }
    }

    pub fn reseed(&self, seed: u64) {
        lock(&self.state).rng = fastrand::Rng::with_seed(seed);
    }

    pub fn inject(&self, rule: FaultRule) {
        lock(&self.state).rules.push(rule);
    }

    pub fn clear(&self) {
        lock(&self.state).rules.clear();
    }

    /// Removes the first rule equal to `rule`; whether there was one.
    pub fn remove(&self, rule: &FaultRule) -> bool {
        let mut state = lock(&self.state);
        match state.rules.iter().position(|r| r == rule) {
            Some(index) => {
                state.rules.remove(index);
                true
            }
            None => false,
        }
    }

    pub fn counts(&self) -> BTreeMap<String, u64> {
        lock(&self.state).counts.clone()
    }

    /// Counts the call and decides its faults. Rules are tried in insertion order: every
    /// firing `Latency` rule adds its delay, and the first firing error-like rule decides the
    /// outcome (later error-like rules are not consulted, so they keep their `remaining`).
    pub fn on_call(&self, operation: &str) -> Decision {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        *state.counts.entry(operation.to_string()).or_default() += 1;

        let mut decision = Decision::default();
        for rule in state.rules.iter_mut() {
            if !rule.matches(operation) || rule.remaining == Some(0) {
                continue;
            }
            let is_failure = !matches!(rule.fault, Fault::Latency(_));
            if is_failure && decision.failure.is_some() {
                continue;
            }
            // Draw only for fractional probabilities, so adding an always-rule does not shift
            // the random sequence seen by the others.
            let fires = if rule.probability >= 1.0 {
                true
            } else if rule.probability <= 0.0 {
                false
            } else {
                state.rng.f64() < rule.probability
            };
            if !fires {
                continue;
            }
            if let Some(remaining) = rule.remaining.as_mut() {
                *remaining -= 1;
            }
            match &rule.fault {
                Fault::Latency(delay) => decision.latency += *delay,
                other => decision.failure = Some(other.clone()),
            }
        }
        state.rules.retain(|r| r.remaining != Some(0));
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fire_in_order_and_run_out() {
        let faults = FaultInjector::new();
        faults.inject(FaultRule::times("ecs:DescribeServices", Fault::Throttle, 1));
        faults.inject(FaultRule::always("*", Fault::ServerError));
        faults.inject(FaultRule::times(
            "*",
            Fault::Latency(Duration::from_secs(2)),
            2,
        ));

        let first = faults.on_call("ecs:DescribeServices");
        assert_eq!(first.failure, Some(Fault::Throttle));
        assert_eq!(first.latency, Duration::from_secs(2));

        let second = faults.on_call("ecs:DescribeServices");
        assert_eq!(second.failure, Some(Fault::ServerError));
        assert_eq!(second.latency, Duration::from_secs(2));

        let third = faults.on_call("elbv2:DescribeListeners");
        assert_eq!(third.failure, Some(Fault::ServerError));
        assert_eq!(third.latency, Duration::ZERO);

        faults.clear();
        assert_eq!(faults.on_call("ecs:DescribeServices"), Decision::default());
        assert_eq!(faults.counts()["ecs:DescribeServices"], 3);
    }

    #[test]
    fn a_rule_can_be_removed_alone() {
        let faults = FaultInjector::new();
        let refusal = FaultRule::always("ecs:RegisterTaskDefinition", Fault::AccessDenied);
        faults.inject(FaultRule::always(
            "*",
            Fault::Latency(Duration::from_secs(1)),
        ));
        faults.inject(refusal.clone());
        assert_eq!(
            faults.on_call("ecs:RegisterTaskDefinition").failure,
            Some(Fault::AccessDenied)
        );
        assert!(faults.remove(&refusal));
        assert!(!faults.remove(&refusal), "removed once");
        let after = faults.on_call("ecs:RegisterTaskDefinition");
        assert_eq!(after.failure, None);
        assert_eq!(
            after.latency,
            Duration::from_secs(1),
            "the other rule stays"
        );
    }

    #[test]
    fn probabilistic_rules_are_reproducible_by_seed() {
        let draw = |seed: u64| {
            let faults = FaultInjector::new();
            faults.reseed(seed);
            faults.inject(FaultRule::always("*", Fault::Throttle).with_probability(0.5));
            (0..64)
                .map(|_| faults.on_call("x:Y").failure.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        let hits = draw(7).into_iter().filter(|h| *h).count();
        assert!(
            (10..=54).contains(&hits),
            "about half should fire, got {hits}"
        );
    }
}
