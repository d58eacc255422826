//! Optimistic concurrency: a read-modify-write that lost a race to another writer reads again
//! and writes again, a bounded number of times, under one of the [`ConflictPolicy`]s below.
//!
//! Every caller's attempt reads, decides and writes under a condition on what it read; a
//! failed condition is [`Attempt::Conflict`], and only that is retried. The delays are
//! tokio's (`backon`'s tokio sleeper), so paused-time tests control them.
//!
//! Also: [`counting_attempts`], the requests a call really sent, the SDK's retries included.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};

/// How often, and how far apart, a read-modify-write tries again after losing a race.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConflictPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The delay before the first retry, doubling after each, with a random jitter of up to
    /// as much again; zero retries at once.
    pub first_delay: Duration,
    /// The longest delay before jitter.
    pub max_delay: Duration,
}

impl ConflictPolicy {
    /// `release set`, `pause`, `resume`: an edit of some fields, merged into the spec read.
    /// Concurrent edits of different fields must all land, so an edit outlasts many other
    /// writers, and the jitter spreads their retries apart.
    pub const CLI_EDIT: Self = Self {
        attempts: 25,
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
    };

    /// `apply`: the document's whole spec. It retries with the same spacing as an edit, but
    /// fewer times: a release that keeps changing under `apply` has another writer that
    /// overwrites it anyway (two pipelines applying it), which a person should hear about.
    pub const CLI_APPLY: Self = Self {
        attempts: 5,
        ..Self::CLI_EDIT
    };

    /// The store's spec write without a precondition (it reads the generation and writes
    /// under a condition on it, so that the audit entry names the generation it creates).
    /// A lost race means another write landed, which the next read sees, and each round has
    /// a winner: it retries at once rather than add latency to its caller.
    pub const STORE_UNCONDITIONAL_WRITE: Self = Self {
        attempts: 8,
        first_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    fn backoff(self) -> ExponentialBuilder {
        let backoff = ExponentialBuilder::new()
            .with_min_delay(self.first_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.attempts.saturating_sub(1) as usize);
        if self.first_delay.is_zero() {
            backoff
        } else {
            backoff.with_jitter()
        }
    }
}

/// How one attempt that did not succeed ended.
#[derive(Debug)]
pub enum Attempt<E> {
    /// Another writer got in between the read and the conditional write: try again.
    Conflict,
    /// Anything else: give up with this error.
    Failed(E),
}

impl<E> From<E> for Attempt<E> {
    fn from(error: E) -> Self {
        Attempt::Failed(error)
    }
}

/// Why [`retry_on_conflict`] gave up.
#[derive(Debug)]
pub enum GaveUp<E> {
    /// Every attempt of the policy lost a race.
    Conflicts {
        /// How many attempts were made (the policy's).
        attempts: u32,
    },
    /// An attempt failed otherwise.
    Failed(E),
}

/// Runs `attempt` until it succeeds or fails with something other than a conflict, at most
/// `policy.attempts` times, sleeping (tokio's clock) between attempts as the policy says.
pub async fn retry_on_conflict<T, E, Fut>(
    policy: ConflictPolicy,
    attempt: impl FnMut() -> Fut,
) -> Result<T, GaveUp<E>>
where
    Fut: Future<Output = Result<T, Attempt<E>>>,
{
    attempt
        .retry(policy.backoff())
        .when(|outcome| matches!(outcome, Attempt::Conflict))
        .await
        .map_err(|outcome| match outcome {
            Attempt::Conflict => GaveUp::Conflicts {
                attempts: policy.attempts,
            },
            Attempt::Failed(error) => GaveUp::Failed(error),
        })
}

/// What one port call cost on the wire: the requests it sent (the SDK's own retries and a
/// port call's several operations included) and how many of them AWS throttled. The fleet's
/// API budget charges every request and lowers its rate on a throttle the SDK retried away
/// (`controller/budget.rs`); the AWS adapters (an SDK interceptor) and the simulated AWS note
/// each request they send.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    pub sent: u32,
    pub throttled: u32,
}

tokio::task_local! {
    static ATTEMPTS: std::cell::Cell<Attempts>;
}

/// Runs `work`, counting the requests it sends ([`attempt_sent`]).
pub async fn counting_attempts<F: Future>(work: F) -> (F::Output, Attempts) {
    ATTEMPTS
        .scope(std::cell::Cell::new(Attempts::default()), async move {
            let output = work.await;
            (output, ATTEMPTS.with(std::cell::Cell::get))
        })
        .await
}

/// Notes one request sent to AWS, and whether AWS throttled it (nothing outside
/// [`counting_attempts`]).
pub fn attempt_sent(throttled: bool) {
    let _outside = ATTEMPTS.try_with(|attempts| {
        let mut counted = attempts.get();
        counted.sent += 1;
        counted.throttled += u32::from(throttled);
        attempts.set(counted);
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::time::Instant;

    use super::*;

    /// Runs `retry_on_conflict` with an attempt that conflicts `conflicts` times, then
    /// succeeds; returns the result and the start time of every attempt, from the first.
    async fn run(
        policy: ConflictPolicy,
        conflicts: usize,
    ) -> (Result<usize, GaveUp<&'static str>>, Vec<Duration>) {
        let start = Instant::now();
        let starts = Mutex::new(Vec::new());
        let result = retry_on_conflict(policy, || {
            let mut starts = starts.lock().unwrap();
            starts.push(start.elapsed());
            let number = starts.len();
            async move {
                if number <= conflicts {
                    Err(Attempt::Conflict)
                } else {
                    Ok(number)
                }
            }
        })
        .await;
        (result, starts.into_inner().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn a_conflict_is_retried_after_a_growing_jittered_delay() {
        let (result, starts) = run(ConflictPolicy::CLI_EDIT, 4).await;
        assert_eq!(result.unwrap(), 5);
        let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        for (gap, base) in gaps.iter().zip([10, 20, 40, 80]) {
            let base = Duration::from_millis(base);
            assert!(
                *gap >= base && *gap <= 2 * base,
                "{gap:?} is not within [{base:?}, {:?}]",
                2 * base
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_policy_bounds_the_attempts_and_says_how_many_were_made() {
        let (result, starts) = run(ConflictPolicy::CLI_APPLY, usize::MAX).await;
        assert!(matches!(result, Err(GaveUp::Conflicts { attempts: 5 })));
        assert_eq!(starts.len(), 5);
        let (_, starts) = run(ConflictPolicy::CLI_EDIT, usize::MAX).await;
        assert_eq!(starts.len(), 25);
        let (_, starts) = run(ConflictPolicy::STORE_UNCONDITIONAL_WRITE, usize::MAX).await;
        assert_eq!(starts.len(), 8);
        assert!(
            starts.iter().all(Duration::is_zero),
            "retried at once: {starts:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn any_other_failure_ends_at_once() {
        let attempts = Mutex::new(0);
        let result: Result<(), _> = retry_on_conflict(ConflictPolicy::CLI_EDIT, || {
            *attempts.lock().unwrap() += 1;
            async { Err(Attempt::Failed("not found")) }
        })
        .await;
        assert!(matches!(result, Err(GaveUp::Failed("not found"))));
        assert_eq!(*attempts.lock().unwrap(), 1);
    }
    #[tokio::test]
    async fn counting_attempts_counts_the_requests_its_work_sends_and_nothing_outside() {
        attempt_sent(true);
        let ((), attempts) = counting_attempts(async {
            attempt_sent(false);
            tokio::task::yield_now().await;
            attempt_sent(true);
            attempt_sent(false);
        })
        .await;
        assert_eq!(
            attempts,
            Attempts {
                sent: 3,
                throttled: 1
            }
        );
        let ((), none) = counting_attempts(async {}).await;
        assert_eq!(none, Attempts::default());
    }
}
