//! One STS session per role (and external id), assumed on first use, used until shortly
//! before it expires, and refreshed while the one in hand still works: no call ever waits
//! for a refresh that another call is making, and none ever carries expired credentials.
//!
//! 1. A session with more than [`REFRESH_BEFORE_EXPIRY`] left is handed out as it is.
//! 2. Inside that window, one caller assumes the role again (one `AssumeRole` at a time per
//!    role); the others keep using the session in hand while it has more than
//!    [`MIN_REMAINING`] left (longer than one call with its retries may take).
//! 3. A refresh that fails while the session in hand still works keeps it (and says so in
//!    the log); the next call inside the window tries again.
//! 4. A refusal (the role does not trust the controller, the external id does not match) is
//!    remembered, so that the releases of one broken role, the resync and the alarm watcher
//!    do not each ask STS again: for [`REFUSAL_REMEMBERED`] after the first, twice as long
//!    after each further one in a row, at most [`REFUSAL_REMEMBERED_MAX`]. The role's
//!    releases are `Failed` meanwhile, saying so; once the role trusts the controller again,
//!    the next try after the memory ends succeeds by itself.
//! 5. A throttled or failed `AssumeRole` is remembered too, briefly: for
//!    [`THROTTLE_REMEMBERED`], twice as long after each further one in a row, at most
//!    [`THROTTLE_REMEMBERED_MAX`]. Meanwhile the callers use the session in hand if it still
//!    works, or get the remembered error (transient: their passes back off), instead of each
//!    asking a throttled STS again.
//!
//! Time is the controller's [`Clock`] (tokio's): paused-time tests drive expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tracing::{debug, warn};

use crate::clock::Clock;
use crate::ports::{AssumeRoleRequest, AwsError, AwsErrorKind, RoleSession, Sts};

/// How long a session is asked for: one hour, the most STS grants when the controller's own
/// credentials are a role's (role chaining), which they are on ECS.
pub const SESSION_DURATION: Duration = Duration::from_secs(3600);
/// A session with less than this left is refreshed by the next caller.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(600);
/// A session with at least this left is still handed out while another caller refreshes it,
/// or when refreshing it failed: longer than one call with its retries (30 s).
pub const MIN_REMAINING: Duration = Duration::from_secs(60);
/// How long a refused `AssumeRole` is answered from memory, the first time in a row.
pub const REFUSAL_REMEMBERED: Duration = Duration::from_secs(10);
/// The longest a refusal is answered from memory (after several in a row).
pub const REFUSAL_REMEMBERED_MAX: Duration = Duration::from_secs(300);
/// How long a throttled (or failed) `AssumeRole` is answered from memory, the first time.
pub const THROTTLE_REMEMBERED: Duration = Duration::from_secs(1);
/// The longest a throttled `AssumeRole` is answered from memory (after several in a row).
pub const THROTTLE_REMEMBERED_MAX: Duration = Duration::from_secs(30);

/// How the controller names itself to STS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// Given to every `AssumeRole` (the trust policies' `sts:ExternalId`).
    pub external_id: Option<String>,
    /// The role session name: the replica, as CloudTrail shows it in the target account.
    pub session_name: String,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            external_id: None,
            session_name: "switchyard".into(),
        }
    }
}

impl SessionSettings {
    /// Settings for a replica named `replica`: its name made into a valid role session
    /// name (2 to 64 of letters, digits and `+=,.@-_`; anything else becomes `-`).
    pub fn for_replica(replica: &str, external_id: Option<String>) -> Self {
        let mut name: String = format!("switchyard-{replica}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        name.truncate(64);
        Self {
            external_id,
            session_name: name,
        }
    }
}

#[derive(Default)]
struct Entry {
    state: Mutex<State>,
    /// Held by the one caller assuming the role.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    session: Option<RoleSession>,
    /// The last refusal or throttle and until when it is answered from memory.
    remembered: Option<(Timestamp, AwsError)>,
    /// Refusals in a row (since the last session STS issued).
    refusals: u32,
    /// Throttles and transient failures in a row (since the last session STS issued).
    throttles: u32,
}

/// `first`, doubled for each failure in a row after the first, at most `max`.
fn doubling(first: Duration, in_a_row: u32, max: Duration) -> SignedDuration {
    let remembered = first
        .saturating_mul(1 << in_a_row.saturating_sub(1).min(16))
        .min(max);
    SignedDuration::try_from(remembered).unwrap_or(SignedDuration::ZERO)
}

/// A role and the external id it is assumed with.
type SessionKey = (String, Option<String>);

/// The sessions of every role the releases name.
pub struct Sessions {
    sts: Arc<dyn Sts>,
    clock: Clock,
    settings: SessionSettings,
    entries: Mutex<HashMap<SessionKey, Arc<Entry>>>,
}

fn left(session: &RoleSession, now: Timestamp) -> SignedDuration {
    session.expires_at.duration_since(now)
}

fn at_least(remaining: SignedDuration, wanted: Duration) -> bool {
    SignedDuration::try_from(wanted).is_ok_and(|wanted| remaining > wanted)
}

impl Sessions {
    pub fn new(sts: Arc<dyn Sts>, clock: Clock, settings: SessionSettings) -> Self {
        Self {
            sts,
            clock,
            settings,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    fn entry(&self, role_arn: &str) -> Arc<Entry> {
        let key = (role_arn.to_string(), self.settings.external_id.clone());
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.entry(key).or_default().clone()
    }

    /// A session of `role_arn` that works for at least [`MIN_REMAINING`], assuming the role
    /// when there is none or it is due for a refresh. An error names the role.
    pub async fn session(&self, role_arn: &str) -> Result<RoleSession, AwsError> {
        let entry = self.entry(role_arn);
        if let Some(found) = Self::usable(&entry, self.clock.now(), REFRESH_BEFORE_EXPIRY) {
            return found;
        }
        // Due for a refresh: one caller assumes the role, the others use what they have.
        let _refreshing = match entry.refreshing.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                if let Some(Ok(session)) = Self::usable(&entry, self.clock.now(), MIN_REMAINING) {
                    return Ok(session);
                }
                entry.refreshing.lock().await
            }
        };
        // Someone may have refreshed it while this caller waited.
        if let Some(found) = Self::usable(&entry, self.clock.now(), REFRESH_BEFORE_EXPIRY) {
            return found;
        }
        let request = AssumeRoleRequest {
            role_arn: role_arn.to_string(),
            external_id: self.settings.external_id.clone(),
            session_name: self.settings.session_name.clone(),
            duration: SESSION_DURATION,
        };
        let result = self.sts.assume_role(&request).await;
        let now = self.clock.now();
        let mut state = entry.state.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(session) => {
                debug!(role = %role_arn, expires_at = %session.expires_at, "assumed the role");
                state.session = Some(session.clone());
                state.remembered = None;
                state.refusals = 0;
                state.throttles = 0;
                Ok(session)
            }
            Err(error) => {
                let error = naming_role(error, role_arn);
                if crate::reconcile::is_refusal(&error) {
                    state.refusals = state.refusals.saturating_add(1);
                    let remembered =
                        doubling(REFUSAL_REMEMBERED, state.refusals, REFUSAL_REMEMBERED_MAX);
                    state.remembered = Some((now + remembered, error.clone()));
                } else if matches!(
                    error.kind,
                    AwsErrorKind::Throttling | AwsErrorKind::Transient | AwsErrorKind::Ambiguous
                ) {
                    state.throttles = state.throttles.saturating_add(1);
                    let remembered = doubling(
                        THROTTLE_REMEMBERED,
                        state.throttles,
                        THROTTLE_REMEMBERED_MAX,
                    );
                    state.remembered = Some((now + remembered, error.clone()));
                }
                match &state.session {
                    Some(session) if at_least(left(session, now), MIN_REMAINING) => {
                        warn!(role = %role_arn, cause = %error, expires_at = %session.expires_at,
                            "could not refresh the role's session; using the one in hand until it is refreshed");
                        Ok(session.clone())
                    }
                    _ => Err(error),
                }
            }
        }
    }

    /// What the entry holds for a caller that needs `wanted` left: a session, a refusal
    /// still remembered (the session in hand while it works, else the error), or nothing
    /// (assume the role).
    fn usable(
        entry: &Entry,
        now: Timestamp,
        wanted: Duration,
    ) -> Option<Result<RoleSession, AwsError>> {
        let state = entry.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = state.session.as_ref()
            && at_least(left(session, now), wanted)
        {
            return Some(Ok(session.clone()));
        }
        match &state.remembered {
            Some((until, error)) if now < *until => match state.session.as_ref() {
                Some(session) if at_least(left(session, now), MIN_REMAINING) => {
                    Some(Ok(session.clone()))
                }
                _ => Some(Err(error.clone())),
            },
            _ => None,
        }
    }
}

/// The error with the role in its message, so the release's status says which role.
fn naming_role(mut error: AwsError, role_arn: &str) -> AwsError {
    if !error.message.contains(role_arn) {
        error.message = format!("assuming {role_arn}: {}", error.message);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;

    /// An STS that counts its calls, answers after `latency`, and fails while told to.
    struct CountingSts {
        clock: Clock,
        calls: AtomicU32,
        latency: Duration,
        failure: Mutex<Option<AwsErrorKind>>,
    }

    #[async_trait]
    impl Sts for CountingSts {
        async fn assume_role(&self, request: &AssumeRoleRequest) -> Result<RoleSession, AwsError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(self.latency).await;
            if let Some(kind) = self.failure.lock().unwrap().clone() {
                return Err(AwsError::new("sts", "AssumeRole", kind, "no"));
            }
            Ok(RoleSession {
                role_arn: request.role_arn.clone(),
                access_key_id: format!("ASIA{n}"),
                secret_access_key: "s".into(),
                session_token: "t".into(),
                expires_at: self.clock.now() + SignedDuration::try_from(request.duration).unwrap(),
            })
        }
    }

    const ROLE: &str = "arn:aws:iam::444455556666:role/deployer";

    fn sessions(latency: Duration) -> (Arc<CountingSts>, Sessions) {
        let clock = Clock::fixed_epoch();
        let sts = Arc::new(CountingSts {
            clock: clock.clone(),
            calls: AtomicU32::new(0),
            latency,
            failure: Mutex::new(None),
        });
        let sessions = Sessions::new(sts.clone(), clock, SessionSettings::default());
        (sts, sessions)
    }

    #[tokio::test(start_paused = true)]
    async fn a_role_is_assumed_once_and_its_session_reused_until_shortly_before_expiry() {
        let (sts, sessions) = sessions(Duration::ZERO);
        let first = sessions.session(ROLE).await.unwrap();
        for _ in 0..49 {
            tokio::time::advance(Duration::from_secs(60)).await;
            assert_eq!(sessions.session(ROLE).await.unwrap(), first);
        }
        assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
        // 51 minutes in: inside the refresh window, a new session.
        tokio::time::advance(Duration::from_secs(120)).await;
        let second = sessions.session(ROLE).await.unwrap();
        assert_ne!(second, first);
        assert!(
            first.expires_at > sessions.clock.now(),
            "refreshed before it expired"
        );
        assert_eq!(sts.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn over_three_hours_of_calls_every_session_in_hand_works_and_sts_is_asked_four_times() {
        let (sts, sessions) = sessions(Duration::from_millis(200));
        let clock = sessions.clock.clone();
        for _ in 0..(3 * 3600 / 15) {
            let session = sessions.session(ROLE).await.unwrap();
            assert!(at_least(left(&session, clock.now()), MIN_REMAINING));
            tokio::time::advance(Duration::from_secs(15)).await;
        }
        assert_eq!(sts.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn callers_during_a_refresh_keep_the_session_in_hand_and_one_assumes_the_role() {
        let (sts, sessions) = sessions(Duration::from_secs(2));
        let sessions = Arc::new(sessions);
        let first = sessions.session(ROLE).await.unwrap();
        tokio::time::advance(Duration::from_secs(55 * 60)).await;
        let refreshing = {
            let sessions = sessions.clone();
            tokio::spawn(async move { sessions.session(ROLE).await })
        };
        tokio::task::yield_now().await;
        // While the refresh is on its way, others get the session in hand at once.
        let during = tokio::time::timeout(Duration::from_millis(1), sessions.session(ROLE))
            .await
            .expect("no wait")
            .unwrap();
        assert_eq!(during, first);
        let refreshed = refreshing.await.unwrap().unwrap();
        assert_ne!(refreshed, first);
        assert_eq!(sessions.session(ROLE).await.unwrap(), refreshed);
        assert_eq!(sts.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_keeps_the_session_that_still_works() {
        let (sts, sessions) = sessions(Duration::ZERO);
        let first = sessions.session(ROLE).await.unwrap();
        tokio::time::advance(Duration::from_secs(52 * 60)).await;
        *sts.failure.lock().unwrap() = Some(AwsErrorKind::Throttling);
        assert_eq!(sessions.session(ROLE).await.unwrap(), first);
        // Until it has less than a minute left: then the error shows.
        tokio::time::advance(Duration::from_secs(7 * 60 + 30)).await;
        let error = sessions.session(ROLE).await.unwrap_err();
        assert_eq!(error.kind, AwsErrorKind::Throttling);
        *sts.failure.lock().unwrap() = None;
        // The throttle is remembered for a moment; then the next caller refreshes.
        tokio::time::advance(THROTTLE_REMEMBERED_MAX).await;
        assert_ne!(sessions.session(ROLE).await.unwrap(), first);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_assume_role_is_remembered_briefly_so_callers_do_not_pile_on_sts() {
        let (sts, sessions) = sessions(Duration::ZERO);
        *sts.failure.lock().unwrap() = Some(AwsErrorKind::Throttling);
        // A hundred releases of the role, one pass each: STS is asked once.
        for _ in 0..100 {
            let error = sessions.session(ROLE).await.unwrap_err();
            assert_eq!(error.kind, AwsErrorKind::Throttling);
            assert!(error.message.contains(ROLE), "{error}");
        }
        assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
        // Throttled again and again: asked after 1 s, then 2, 4, ... at most 30 s apart.
        let mut asked_at = Vec::new();
        for second in 1..=120 {
            tokio::time::advance(Duration::from_secs(1)).await;
            let before = sts.calls.load(Ordering::SeqCst);
            assert!(sessions.session(ROLE).await.is_err());
            if sts.calls.load(Ordering::SeqCst) > before {
                asked_at.push(second);
            }
        }
        assert_eq!(asked_at[..5], [1, 3, 7, 15, 31], "1 s, then 2, 4, 8, 16 s");
        assert!(
            asked_at.windows(2).all(|w| w[1] - w[0] <= 30),
            "{asked_at:?}"
        );
        // STS answers again: the first caller after the memory gets a session, and the
        // memory is reset.
        *sts.failure.lock().unwrap() = None;
        tokio::time::advance(THROTTLE_REMEMBERED_MAX).await;
        sessions.session(ROLE).await.unwrap();
        let calls = sts.calls.load(Ordering::SeqCst);
        for _ in 0..10 {
            sessions.session(ROLE).await.unwrap();
        }
        assert_eq!(sts.calls.load(Ordering::SeqCst), calls);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_refresh_keeps_the_session_in_hand_without_asking_sts_on_every_call() {
        let (sts, sessions) = sessions(Duration::ZERO);
        let first = sessions.session(ROLE).await.unwrap();
        // In the refresh window, with minutes left.
        tokio::time::advance(Duration::from_secs(52 * 60)).await;
        *sts.failure.lock().unwrap() = Some(AwsErrorKind::Throttling);
        for _ in 0..50 {
            assert_eq!(sessions.session(ROLE).await.unwrap(), first);
        }
        assert_eq!(sts.calls.load(Ordering::SeqCst), 2, "one refresh tried");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_names_the_role_and_is_remembered_for_a_while() {
        let (sts, sessions) = sessions(Duration::ZERO);
        *sts.failure.lock().unwrap() = Some(AwsErrorKind::AccessDenied);
        let error = sessions.session(ROLE).await.unwrap_err();
        assert_eq!(error.kind, AwsErrorKind::AccessDenied);
        assert!(error.message.contains(ROLE), "{error}");
        for _ in 0..5 {
            assert!(sessions.session(ROLE).await.is_err());
        }
        assert_eq!(sts.calls.load(Ordering::SeqCst), 1);
        // Refused again and again: remembered twice as long each time, up to a limit.
        let mut asked_at = Vec::new();
        for second in 1..=3600 {
            tokio::time::advance(Duration::from_secs(1)).await;
            let before = sts.calls.load(Ordering::SeqCst);
            assert!(sessions.session(ROLE).await.is_err());
            if sts.calls.load(Ordering::SeqCst) > before {
                asked_at.push(second);
            }
        }
        assert_eq!(
            asked_at[..6],
            [10, 30, 70, 150, 310, 610],
            "10 s, then 20, 40, 80, 160, 300 s"
        );
        assert!(
            asked_at.windows(2).all(|w| w[1] - w[0] <= 300),
            "{asked_at:?}"
        );
        assert!(asked_at.len() <= 17, "{asked_at:?}");
        // Trusted again: the next try after the memory ends succeeds, and resets it.
        *sts.failure.lock().unwrap() = None;
        tokio::time::advance(REFUSAL_REMEMBERED_MAX).await;
        let calls = sts.calls.load(Ordering::SeqCst);
        sessions.session(ROLE).await.unwrap();
        assert_eq!(sts.calls.load(Ordering::SeqCst), calls + 1);
        // Another role is another session.
        sessions
            .session("arn:aws:iam::444455556666:role/other")
            .await
            .unwrap();
        assert_eq!(sts.calls.load(Ordering::SeqCst), calls + 2);
    }

    #[test]
    fn the_session_name_is_the_replica_made_valid_for_sts() {
        let settings = SessionSettings::for_replica("ip-10-0-1-23.ec2.internal-71-0a1b2c3d", None);
        assert_eq!(
            settings.session_name,
            "switchyard-ip-10-0-1-23.ec2.internal-71-0a1b2c3d"
        );
        let odd = SessionSettings::for_replica(&format!("host name/{}", "x".repeat(80)), None);
        assert_eq!(odd.session_name.len(), 64);
        assert!(odd.session_name.starts_with("switchyard-host-name-x"));
    }
}
