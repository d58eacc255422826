//! How the controller reaches AWS for a release: the ports of the region and account the
//! release lives in, with the credentials of its role. Every AWS call about a release (ECS,
//! ELB, CodeDeploy, CloudWatch; the passes, the resync, the alarm watcher, `diff`) gets its
//! ports here, from [`AwsAccess::ports`]: the one place that knows where a call goes (a
//! [`Placement`]: account and region) before it is made.
//!
//! The release table, the leases and the statuses are not reached through here: they stay
//! in the controller's own region and account, with its own credentials.

mod sessions;

use std::sync::Arc;

pub use sessions::{
    MIN_REMAINING, REFRESH_BEFORE_EXPIRY, REFUSAL_REMEMBERED, REFUSAL_REMEMBERED_MAX,
    SESSION_DURATION, SessionSettings, Sessions,
};

use crate::clock::Clock;
use crate::model::{Home, Placement, ReleaseSpec};
use crate::ports::{AwsError, AwsPorts, AwsProvider};

/// The AWS ports of every place a release lives, and the role sessions that reach them.
pub struct AwsAccess {
    provider: Arc<dyn AwsProvider>,
    home: Home,
    sessions: Sessions,
}

impl AwsAccess {
    /// Access through `provider` (its clients are made per region and identity on first use
    /// and reused), assuming roles as `settings` says.
    pub fn new(provider: Arc<dyn AwsProvider>, clock: Clock, settings: SessionSettings) -> Self {
        let home = provider.home();
        let sessions = Sessions::new(provider.sts(), clock, settings);
        Self {
            provider,
            home,
            sessions,
        }
    }

    /// The same provider, assuming roles as `settings` says (no session carried over).
    pub fn with_settings(&self, clock: &Clock, settings: SessionSettings) -> Self {
        Self::new(self.provider.clone(), clock.clone(), settings)
    }

    /// The controller's own region and account.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Where the release of `spec` lives.
    pub fn place(&self, spec: &ReleaseSpec) -> Placement {
        self.home.place_spec(spec)
    }

    /// The ports of `placement`: its region, as its role when it has one (assumed through
    /// STS, the session cached until shortly before it expires), else as the controller.
    /// A role that cannot be assumed is an `sts:AssumeRole` error naming the role.
    pub async fn ports(&self, placement: &Placement) -> Result<AwsPorts, AwsError> {
        let session = match &placement.role_arn {
            Some(role) => Some(self.sessions.session(role).await?),
            None => None,
        };
        Ok(self.provider.ports_for(&placement.region, session.as_ref()))
    }

    /// The ports of the release of `spec`.
    pub async fn ports_for_spec(&self, spec: &ReleaseSpec) -> Result<AwsPorts, AwsError> {
        self.ports(&self.place(spec)).await
    }
}
