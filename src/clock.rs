//! The controller's only source of time: tokio's clock, optionally running faster than real time.
//!
//! Everything that schedules, sleeps or stamps a time goes through [`Clock`], so tests with
//! paused tokio time are deterministic and the demo can run a ten-minute canary in seconds.
//! This is the one module allowed to read the wall clock (once, at construction).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// A clock derived from tokio's: `now()` is the wall time at construction plus the elapsed
/// tokio time multiplied by `speed`.
#[derive(Clone, Debug)]
pub struct Clock {
    origin_wall: Timestamp,
    origin: tokio::time::Instant,
    speed: f64,
}

impl Clock {
    /// A real-time clock anchored at the current wall time.
    pub fn system() -> Self {
        Self::starting_at(Timestamp::now(), 1.0)
    }

    /// A clock anchored at the current wall time that runs `speed` times faster than real time.
    pub fn system_at_speed(speed: f64) -> Self {
        Self::starting_at(Timestamp::now(), speed)
    }

    /// A clock that starts at `origin_wall` and runs `speed` times faster than tokio's clock.
    /// Must be called inside a tokio runtime.
    pub fn starting_at(origin_wall: Timestamp, speed: f64) -> Self {
        assert!(
            speed.is_finite() && speed > 0.0,
            "clock speed must be positive"
        );
        Self {
            origin_wall,
            origin: tokio::time::Instant::now(),
            speed,
        }
    }

    /// A clock for tests and simulations: a fixed epoch, real speed.
    pub fn fixed_epoch() -> Self {
        Self::starting_at(
            Timestamp::from_second(1_767_225_600).expect("valid epoch"),
            1.0,
        )
    }

    /// How much faster than tokio's clock this clock runs.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The current (virtual) wall time.
    pub fn now(&self) -> Timestamp {
        let elapsed = self.origin.elapsed().mul_f64(self.speed);
        self.origin_wall + SignedDuration::try_from(elapsed).unwrap_or(SignedDuration::MAX)
    }

    /// Converts a virtual duration into the tokio duration that passes while it elapses.
    pub fn to_tokio(&self, virtual_duration: Duration) -> Duration {
        virtual_duration.div_f64(self.speed)
    }

    /// The tokio instant at which `virtual_duration` of this clock will have passed.
    pub fn deadline_after(&self, virtual_duration: Duration) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.to_tokio(virtual_duration)
    }

    /// Sleeps for a virtual duration.
    pub async fn sleep(&self, virtual_duration: Duration) {
        tokio::time::sleep(self.to_tokio(virtual_duration)).await;
    }
}

/// Milliseconds from `earlier` to `later`, saturating at zero; a pure helper for the core.
pub fn elapsed_between(earlier: Timestamp, later: Timestamp) -> Duration {
    let span = later.duration_since(earlier);
    if span.is_negative() {
        Duration::ZERO
    } else {
        span.unsigned_abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_fast_clock_advances_virtual_time_by_its_speed() {
        let clock = Clock::starting_at(Timestamp::from_second(0).unwrap(), 60.0);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(clock.now(), Timestamp::from_second(60).unwrap());
        assert_eq!(
            clock.to_tokio(Duration::from_secs(120)),
            Duration::from_secs(2)
        );
    }
}
