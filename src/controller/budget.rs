//! The fleet's shared API budget: one token bucket per place (account and Region) and AWS
//! service, whose rate is the fleet's configured rate times this replica's share of the
//! lease shards, lowered by AWS's throttling (AIMD) and served due calls first.
//!
//! 1. Every AWS call about a release (`MeteredPorts`) takes a token from the bucket of its
//!    place and service before it is made; a service with no configured budget is not held.
//! 2. The bucket refills at `fleet rate × share × factor` per second up to
//!    `fleet burst × share × factor` (at least one token): `share` is the fraction of the lease shards
//!    this replica holds (1 without leases; never below one shard's, so a replica between
//!    leases can still finish a call), so the replicas together stay under the fleet's rate
//!    however many there are.
//! 3. A call that finds no token waits in the bucket's queue on tokio's clock: actions and
//!    the looks that read them back first, then due calls (a step whose time has come, an
//!    operator's request, an alarm, a release's own scheduled look), then routine ones
//!    (resyncs, leases taken), first come first served within each. Only the head of the
//!    queue sleeps, until its token is due; the others wait to be woken. A wait holds up only
//!    its own bucket: other places and services go on.
//! 4. A port call that turned out to send several requests (ELB's routes: DescribeListeners
//!    and DescribeRules per listener; forward weights: a read, then a modify; the SDK's own
//!    retries) is charged the requests beyond the first after it returns, as counted on the
//!    wire (`crate::retry::counting_attempts`): the bucket goes into debt, and the next call
//!    waits for it to be repaid. A throttled attempt counts as a throttle even when the
//!    SDK's retry then succeeded.
//! 5. A call AWS throttled halves the bucket's `factor` (its rate and its burst; at most
//!    once a second, never below `MIN_FACTOR`) and empties the bucket; every call that succeeds adds back
//!    `INCREASE_PER_SECOND` of the configured rate per second since the last change, up to the
//!    configured rate. Other places' buckets are untouched.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::model::Place;
use crate::state::ControllerState;

/// How urgent a call is: a rollout's action and the look that reads it back go ahead of due
/// calls, and due calls ahead of routine ones, when a bucket is short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// An action (a mutation whose intent is written: a step's weight at the end of its
    /// pause, a switch, a rollback), and the look that reads back the action of the pass
    /// before: a rollout in the middle of a step. Each is one of a bounded few per rollout
    /// (one look per action), so they cannot starve the looks behind them.
    Action,
    /// A step whose time has come, an operator's request, a rollback alarm, a release's own
    /// scheduled look.
    Due,
    /// A routine look: the resync, a pass for shards just taken.
    Routine,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Action => "action",
            Priority::Due => "due",
            Priority::Routine => "routine",
        }
    }
}

tokio::task_local! {
    static PRIORITY: Priority;
}

/// Runs `work` with its AWS calls at `priority` (calls made outside any are routine).
pub async fn with_priority<F: Future>(priority: Priority, work: F) -> F::Output {
    PRIORITY.scope(priority, work).await
}

/// The priority of the calls made now.
pub fn current_priority() -> Priority {
    PRIORITY.try_with(|p| *p).unwrap_or(Priority::Routine)
}

/// What must still hold when a call's token comes, right before the call is made: the pass's
/// lease (a wait for the budget must not stretch the time between the lease check and a
/// mutation).
pub type BeforeCall = Arc<dyn Fn() -> bool + Send + Sync>;

tokio::task_local! {
    static BEFORE_CALL: BeforeCall;
}

/// Runs `work` with `check` asked after every budget wait, before its call is made.
pub async fn with_check<F: Future>(check: BeforeCall, work: F) -> F::Output {
    BEFORE_CALL.scope(check, work).await
}

/// Whether the call whose token just came may still be made (true outside any check).
pub fn may_call() -> bool {
    BEFORE_CALL.try_with(|check| check()).unwrap_or(true)
}

tokio::task_local! {
    /// The service whose next call already has its token (taken before the intent write).
    static PREPAID: std::cell::Cell<Option<&'static str>>;
}

/// Runs `work` whose first call of `service` already has its token ([`ApiBudgets::prepay`]).
pub async fn with_prepaid<F: Future>(service: Option<&'static str>, work: F) -> F::Output {
    PREPAID.scope(std::cell::Cell::new(service), work).await
}

/// Takes the prepaid token of `service`, if the work running now has one.
fn take_prepaid(service: &'static str) -> bool {
    PREPAID
        .try_with(|prepaid| {
            let is_it = prepaid.get() == Some(service);
            if is_it {
                prepaid.set(None);
            }
            is_it
        })
        .unwrap_or(false)
}

/// The budget an action's (first) call is held to: the service of `service:Operation`.
pub fn service_of_operation(operation: &str) -> Option<&'static str> {
    let service = operation.split(':').next()?;
    let service = if service == "elbv2" {
        "elasticloadbalancing"
    } else {
        service
    };
    BUDGET_SERVICES.into_iter().find(|s| *s == service)
}

/// A token bucket's rate: `per_second` sustained, `burst` at most at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// The fleet-wide budgets, per AWS service (the SDK's service names: `ecs`, `codedeploy`,
/// `elasticloadbalancing`, `cloudwatch`), each for every account and Region alike.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSettings {
    pub by_service: BTreeMap<String, Rate>,
}

/// The services a budget can name.
pub const BUDGET_SERVICES: [&str; 4] = ["ecs", "codedeploy", "elasticloadbalancing", "cloudwatch"];

impl Default for BudgetSettings {
    /// Below AWS's published rates per account and Region: ECS's service and task-set
    /// actions (sustained 20/s and more), ELB's `Describe*` (10/s, bucket of 40),
    /// CloudWatch's `DescribeAlarms` (9/s); CodeDeploy publishes none, so as ELB's.
    fn default() -> Self {
        let rate = |per_second, burst| Rate { per_second, burst };
        Self {
            by_service: BTreeMap::from([
                ("ecs".to_string(), rate(10.0, 25.0)),
                ("codedeploy".to_string(), rate(8.0, 20.0)),
                ("elasticloadbalancing".to_string(), rate(8.0, 20.0)),
                ("cloudwatch".to_string(), rate(6.0, 15.0)),
            ]),
        }
    }
}

/// The lowest factor throttling takes a bucket's rate to.
pub const MIN_FACTOR: f64 = 0.05;
/// How much of the configured rate a bucket gets back per second of successful calls.
pub const INCREASE_PER_SECOND: f64 = 0.05;
/// Throttles closer together than this lower a bucket once (a burst in flight is one signal).
const DECREASE_SPACING: Duration = Duration::from_secs(1);
/// The head of a queue looks again at least this often (its rate may have recovered).
const LONGEST_SLEEP: Duration = Duration::from_secs(1);

/// This replica's buckets, one per place and budgeted service.
pub struct ApiBudgets {
    settings: BudgetSettings,
    state: ControllerState,
    /// How much faster than tokio's clock the controller's runs (the demo's): rates are per
    /// second of the controller's clock, as the simulated AWS it talks to counts them.
    speed: f64,
    /// This replica's share of the fleet's rates (1: all of it).
    share: Mutex<f64>,
    buckets: Mutex<HashMap<(Place, &'static str), Arc<Bucket>>>,
    /// Calls waiting for a token now (the loop starts other passes meanwhile).
    waiting: AtomicUsize,
    /// Notified when a call starts waiting.
    waiting_started: Notify,
}

impl ApiBudgets {
    pub fn new(settings: BudgetSettings, state: ControllerState) -> Self {
        Self::at_speed(settings, state, 1.0)
    }

    /// Budgets whose seconds are those of a clock `speed` times faster than tokio's.
    pub fn at_speed(settings: BudgetSettings, state: ControllerState, speed: f64) -> Self {
        Self {
            settings,
            state,
            speed,
            share: Mutex::new(1.0),
            buckets: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            waiting_started: Notify::new(),
        }
    }

    /// Sets this replica's share from the shards it holds: `held / shards`, never below one
    /// shard's.
    pub fn set_share(&self, held: usize, shards: u32) {
        let shards = f64::from(shards.max(1));
        let share = (held.max(1) as f64 / shards).min(1.0);
        *lock(&self.share) = share;
        for bucket in lock(&self.buckets).values() {
            bucket.publish(&self.state, share);
        }
    }

    /// This replica's share of the fleet's rates.
    pub fn share(&self) -> f64 {
        *lock(&self.share)
    }

    /// How many calls wait for a token now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Resolves when a call starts waiting for a token.
    pub async fn wait_started(&self) {
        self.waiting_started.notified().await;
    }

    /// The bucket of `place` and `service`, if that service has a budget.
    fn bucket(&self, place: &Place, service: &'static str) -> Option<Arc<Bucket>> {
        let rate = *self.settings.by_service.get(service)?;
        let mut buckets = lock(&self.buckets);
        let bucket = buckets
            .entry((place.clone(), service))
            .or_insert_with(|| {
                let share = self.share();
                let bucket = Arc::new(Bucket::new(place.clone(), service, rate, share, self.speed));
                bucket.publish(&self.state, share);
                bucket
            })
            .clone();
        Some(bucket)
    }

    /// Waits for a token of `place`'s `service` at `priority`, counting the call and the
    /// time waited in the metrics.
    pub async fn acquire(&self, place: &Place, service: &'static str, priority: Priority) {
        if take_prepaid(service) {
            return;
        }
        let Some(bucket) = self.bucket(place, service) else {
            return;
        };
        let started = Instant::now();
        let waited = bucket.acquire(self, priority).await;
        let metrics = self.state.metrics();
        let labels = bucket.labels();
        metrics.api_budget_admitted.get_or_create(&labels).inc();
        if waited {
            metrics
                .api_budget_wait
                .get_or_create(&labels)
                .inc_by(started.elapsed().as_secs_f64() * self.speed);
        }
    }

    /// Takes the token of an action's first call before its intent is written, so that no
    /// wait for the budget comes between the intent and the call (a lease can move in a
    /// wait, and another replica's steal is not seen before the next lease round): the call
    /// then runs under [`with_prepaid`].
    pub async fn prepay(&self, place: &Place, operation: &str) -> Option<&'static str> {
        let service = service_of_operation(operation)?;
        self.acquire(place, service, Priority::Action).await;
        Some(service)
    }

    /// Charges `extra` calls made beyond the one acquired (the bucket may go into debt).
    pub fn charge(&self, place: &Place, service: &'static str, extra: u32) {
        if extra == 0 {
            return;
        }
        if let Some(bucket) = self.bucket(place, service) {
            let limits = bucket.limits(self.share());
            bucket
                .lock()
                .charge(f64::from(extra), Instant::now(), &limits);
            self.state
                .metrics()
                .api_budget_admitted
                .get_or_create(&bucket.labels())
                .inc_by(u64::from(extra));
        }
    }

    /// Takes in a call's outcome: throttled lowers the bucket's rate, success raises it.
    pub fn record(&self, place: &Place, service: &'static str, throttled: bool) {
        let Some(bucket) = self.bucket(place, service) else {
            return;
        };
        let now = Instant::now();
        let changed = {
            let mut state = bucket.lock();
            if throttled {
                state.throttled(now)
            } else {
                state.succeeded(now)
            }
        };
        if changed {
            bucket.publish(&self.state, self.share());
        }
    }

    /// The rate `place`'s `service` bucket refills at now (this replica's), if budgeted.
    pub fn current_rate(&self, place: &Place, service: &'static str) -> Option<f64> {
        let bucket = self.bucket(place, service)?;
        Some(bucket.limits(self.share()).per_second)
    }

    fn started_waiting(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.waiting_started.notify_waiters();
    }

    fn stopped_waiting(&self) {
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One place's bucket for one service.
struct Bucket {
    place: Place,
    service: &'static str,
    fleet: Rate,
    speed: f64,
    state: Mutex<BucketState>,
}

struct BucketState {
    /// As `ApiBudgets::speed`.
    speed: f64,
    tokens: f64,
    last_refill: Instant,
    /// AIMD's factor on the configured rate, in `[MIN_FACTOR, 1]`.
    factor: f64,
    last_change: Instant,
    last_decrease: Option<Instant>,
    /// Calls waiting, due before routine, in arrival order within each.
    queue: VecDeque<Waiter>,
    next_ticket: u64,
}

struct Waiter {
    ticket: u64,
    priority: Priority,
    wake: Arc<Notify>,
}

impl Bucket {
    fn new(place: Place, service: &'static str, fleet: Rate, share: f64, speed: f64) -> Self {
        let now = Instant::now();
        let burst = (fleet.burst * share).max(1.0);
        Self {
            place,
            service,
            fleet,
            speed,
            state: Mutex::new(BucketState {
                speed,
                tokens: burst,
                last_refill: now,
                factor: 1.0,
                last_change: now,
                last_decrease: None,
                queue: VecDeque::new(),
                next_ticket: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BucketState> {
        lock(&self.state)
    }

    /// This replica's rate and burst now.
    fn limits(&self, share: f64) -> Rate {
        let factor = self.lock().factor;
        self.limits_with(share, factor)
    }

    fn limits_with(&self, share: f64, factor: f64) -> Rate {
        Rate {
            per_second: (self.fleet.per_second * share * factor).max(1e-3),
            burst: (self.fleet.burst * share * factor).max(1.0),
        }
    }

    fn labels(&self) -> crate::state::BudgetLabels {
        crate::state::BudgetLabels {
            service: self.service.to_string(),
            region: self.place.region.clone(),
            account: self.place.account.clone(),
        }
    }

    fn publish(&self, state: &ControllerState, share: f64) {
        let limits = self.limits(share);
        let labels = self.labels();
        let metrics = state.metrics();
        metrics
            .api_budget_rate
            .get_or_create(&labels)
            .set(limits.per_second);
        metrics
            .api_budget_fleet_rate
            .get_or_create(&labels)
            .set(self.fleet.per_second);
        metrics.api_budget_share.get_or_create(&labels).set(share);
    }

    /// Takes a token, waiting in the queue at `priority` when there is none; `true` when it
    /// waited.
    async fn acquire(self: &Arc<Self>, budgets: &ApiBudgets, priority: Priority) -> bool {
        let (ticket, wake) = {
            let limits = self.limits(budgets.share());
            let mut state = self.lock();
            state.refill(Instant::now(), &limits);
            if state.queue.is_empty() && state.tokens >= 1.0 {
                state.tokens -= 1.0;
                return false;
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            let wake = Arc::new(Notify::new());
            let at = state
                .queue
                .iter()
                .position(|w| w.priority > priority)
                .unwrap_or(state.queue.len());
            state.queue.insert(
                at,
                Waiter {
                    ticket,
                    priority,
                    wake: wake.clone(),
                },
            );
            (ticket, wake)
        };
        budgets.started_waiting();
        let mut guard = WaitGuard {
            bucket: self,
            budgets,
            ticket,
            done: false,
        };
        loop {
            let sleep = {
                let limits = self.limits(budgets.share());
                let mut state = self.lock();
                let now = Instant::now();
                state.refill(now, &limits);
                if state.queue.front().map(|w| w.ticket) == Some(ticket) {
                    if state.tokens >= 1.0 {
                        state.tokens -= 1.0;
                        state.queue.pop_front();
                        if let Some(next) = state.queue.front() {
                            next.wake.notify_one();
                        }
                        guard.done = true;
                        break;
                    }
                    let short = 1.0 - state.tokens;
                    Some(
                        Duration::from_secs_f64(short / limits.per_second / self.speed)
                            .min(LONGEST_SLEEP)
                            .max(Duration::from_millis(1)),
                    )
                } else {
                    None
                }
            };
            match sleep {
                Some(sleep) => {
                    tokio::select! {
                        _ = tokio::time::sleep(sleep) => {}
                        _ = wake.notified() => {}
                    }
                }
                None => wake.notified().await,
            }
        }
        true
    }
}

/// Leaves the queue when a waiting call ends (served, or cancelled: its pass was dropped),
/// waking the next head.
struct WaitGuard<'a> {
    bucket: &'a Arc<Bucket>,
    budgets: &'a ApiBudgets,
    ticket: u64,
    done: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.budgets.stopped_waiting();
        if self.done {
            return;
        }
        let mut state = self.bucket.lock();
        if let Some(at) = state.queue.iter().position(|w| w.ticket == self.ticket) {
            state.queue.remove(at);
            if at == 0
                && let Some(next) = state.queue.front()
            {
                next.wake.notify_one();
            }
        }
    }
}

impl BucketState {
    /// Seconds of the controller's clock in `tokio` time.
    fn seconds(&self, tokio: Duration) -> f64 {
        tokio.as_secs_f64() * self.speed
    }

    fn refill(&mut self, now: Instant, limits: &Rate) {
        let elapsed = self.seconds(now.saturating_duration_since(self.last_refill));
        self.tokens = (self.tokens + elapsed * limits.per_second).min(limits.burst);
        self.last_refill = now;
    }

    fn charge(&mut self, calls: f64, now: Instant, limits: &Rate) {
        self.refill(now, limits);
        self.tokens -= calls;
    }

    /// AWS throttled a call: halve the factor (once per `DECREASE_SPACING`) and empty the
    /// bucket. `true` when the rate changed.
    fn throttled(&mut self, now: Instant) -> bool {
        self.tokens = self.tokens.min(0.0);
        if self.last_decrease.is_some_and(|at| {
            self.seconds(now.saturating_duration_since(at)) < DECREASE_SPACING.as_secs_f64()
        }) {
            return false;
        }
        self.last_decrease = Some(now);
        self.last_change = now;
        let before = self.factor;
        self.factor = (self.factor * 0.5).max(MIN_FACTOR);
        self.factor != before
    }

    /// A call succeeded: add back `INCREASE_PER_SECOND` per second since the last change.
    fn succeeded(&mut self, now: Instant) -> bool {
        if self.factor >= 1.0 {
            self.last_change = now;
            return false;
        }
        let elapsed = self.seconds(now.saturating_duration_since(self.last_change));
        self.factor = (self.factor + INCREASE_PER_SECOND * elapsed).min(1.0);
        self.last_change = now;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(per_second: f64, burst: f64) -> Arc<ApiBudgets> {
        let settings = BudgetSettings {
            by_service: BTreeMap::from([("ecs".to_string(), Rate { per_second, burst })]),
        };
        Arc::new(ApiBudgets::new(settings, ControllerState::default()))
    }

    fn place(account: &str) -> Place {
        Place::new(Some(account), "us-east-1")
    }

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_burst_wait_for_the_rate() {
        let budgets = budgets(10.0, 5.0);
        let start = Instant::now();
        for _ in 0..25 {
            budgets.acquire(&place("1"), "ecs", Priority::Routine).await;
        }
        // 5 at once, then 20 at 10 per second.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_without_a_budget_never_waits() {
        let budgets = budgets(1.0, 1.0);
        let start = Instant::now();
        for _ in 0..100 {
            budgets.acquire(&place("1"), "sts", Priority::Routine).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn due_calls_are_served_before_routine_calls_that_waited_longer() {
        let budgets = budgets(1.0, 1.0);
        budgets.acquire(&place("1"), "ecs", Priority::Routine).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, priority) in [Priority::Routine, Priority::Routine, Priority::Due]
            .into_iter()
            .enumerate()
        {
            let budgets = budgets.clone();
            let order = order.clone();
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
                budgets.acquire(&place("1"), "ecs", priority).await;
                lock(&order).push((i, priority));
            });
        }
        while tasks.join_next().await.is_some() {}
        assert_eq!(
            *lock(&order),
            vec![
                (2, Priority::Due),
                (0, Priority::Routine),
                (1, Priority::Routine)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn actions_are_served_before_due_and_routine_calls_that_waited_longer() {
        let budgets = budgets(1.0, 1.0);
        budgets.acquire(&place("1"), "ecs", Priority::Routine).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, priority) in [
            Priority::Routine,
            Priority::Due,
            Priority::Due,
            Priority::Action,
        ]
        .into_iter()
        .enumerate()
        {
            let budgets = budgets.clone();
            let order = order.clone();
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
                budgets.acquire(&place("1"), "ecs", priority).await;
                lock(&order).push(i);
            });
        }
        while tasks.join_next().await.is_some() {}
        assert_eq!(*lock(&order), vec![3, 1, 2, 0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_leaves_the_queue_and_wakes_the_next() {
        let budgets = budgets(1.0, 1.0);
        budgets.acquire(&place("1"), "ecs", Priority::Routine).await;
        let first = {
            let budgets = budgets.clone();
            tokio::spawn(async move { budgets.acquire(&place("1"), "ecs", Priority::Due).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let second = {
            let budgets = budgets.clone();
            tokio::spawn(async move {
                budgets.acquire(&place("1"), "ecs", Priority::Due).await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let start = Instant::now();
        first.abort();
        let served = second.await.expect("served");
        assert!(served - start <= Duration::from_secs(1));
        assert_eq!(budgets.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_halves_its_place_rate_only_and_successes_restore_it_additively() {
        let budgets = budgets(10.0, 10.0);
        let (a, b) = (place("1"), place("2"));
        assert_eq!(budgets.current_rate(&a, "ecs"), Some(10.0));
        budgets.record(&a, "ecs", true);
        assert_eq!(budgets.current_rate(&a, "ecs"), Some(5.0));
        assert_eq!(budgets.current_rate(&b, "ecs"), Some(10.0));
        // A second throttle of the same burst does not lower it again.
        budgets.record(&a, "ecs", true);
        assert_eq!(budgets.current_rate(&a, "ecs"), Some(5.0));
        tokio::time::sleep(Duration::from_secs(2)).await;
        budgets.record(&a, "ecs", false);
        let after_two = budgets.current_rate(&a, "ecs").unwrap();
        assert!((after_two - 6.0).abs() < 1e-9, "{after_two}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        budgets.record(&a, "ecs", false);
        let after_four = budgets.current_rate(&a, "ecs").unwrap();
        assert!((after_four - 7.0).abs() < 1e-9, "{after_four}");
        tokio::time::sleep(Duration::from_secs(60)).await;
        budgets.record(&a, "ecs", false);
        assert_eq!(budgets.current_rate(&a, "ecs"), Some(10.0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_share_divides_the_fleet_rate_by_the_shards_held() {
        let budgets = budgets(16.0, 16.0);
        budgets.set_share(4, 16);
        assert_eq!(budgets.current_rate(&place("1"), "ecs"), Some(4.0));
        budgets.set_share(0, 16);
        assert_eq!(budgets.current_rate(&place("1"), "ecs"), Some(1.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_debt_delays_the_next_call() {
        let budgets = budgets(1.0, 1.0);
        budgets.acquire(&place("1"), "ecs", Priority::Due).await;
        budgets.charge(&place("1"), "ecs", 2);
        let start = Instant::now();
        budgets.acquire(&place("1"), "ecs", Priority::Due).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }
}
