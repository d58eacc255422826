//! The per-release work queue: one entry per release, the earliest due time wins, and a
//! release that is being reconciled is never handed out again until its pass ends.

use std::collections::{BTreeSet, HashMap, HashSet};

use tokio::time::Instant;

/// Releases waiting for a pass, by due time.
#[derive(Debug, Default)]
pub struct WorkQueue {
    by_due: BTreeSet<(Instant, String)>,
    due_of: HashMap<String, Instant>,
    running: HashSet<String>,
    /// Asked for while running: scheduled when the running pass ends.
    deferred: HashMap<String, Instant>,
}

impl WorkQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules a pass for `name` at `at`, keeping the earlier time if one is already due.
    pub fn enqueue(&mut self, name: &str, at: Instant) {
        if self.running.contains(name) {
            let entry = self.deferred.entry(name.to_string()).or_insert(at);
            *entry = (*entry).min(at);
            return;
        }
        match self.due_of.get(name) {
            Some(&existing) if existing <= at => {}
            Some(&existing) => {
                self.by_due.remove(&(existing, name.to_string()));
                self.by_due.insert((at, name.to_string()));
                self.due_of.insert(name.to_string(), at);
            }
            None => {
                self.by_due.insert((at, name.to_string()));
                self.due_of.insert(name.to_string(), at);
            }
        }
    }

    /// Takes the release due earliest, if it is due by `now`, and marks it running.
    pub fn pop_due(&mut self, now: Instant) -> Option<String> {
        let (at, _) = self.by_due.first()?;
        if *at > now {
            return None;
        }
        let (_, name) = self.by_due.pop_first()?;
        self.due_of.remove(&name);
        self.running.insert(name.clone());
        Some(name)
    }

    /// Takes the release due earliest among those due by `now` that `eligible` accepts, and
    /// marks it running. Walks the due releases in order until one is accepted: the loop uses
    /// it only while routine passes are at their limit, to find due work behind routine looks.
    pub fn pop_due_where(
        &mut self,
        now: Instant,
        mut eligible: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let (at, name) = self
            .by_due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .find(|(_, name)| eligible(name))
            .cloned()?;
        self.by_due.remove(&(at, name.clone()));
        self.due_of.remove(&name);
        self.running.insert(name.clone());
        Some(name)
    }

    /// The earliest due time later than `now`: what the loop waits for when every release
    /// due by `now` is one it may not start yet.
    pub fn next_due_after(&self, now: Instant) -> Option<Instant> {
        // Instants count nanoseconds: the first entry from a nanosecond after `now`.
        let after = now + std::time::Duration::from_nanos(1);
        self.by_due
            .range((after, String::new())..)
            .next()
            .map(|(at, _)| *at)
    }

    /// When `name` is due, if it is waiting (not running).
    pub fn due(&self, name: &str) -> Option<Instant> {
        self.due_of.get(name).copied()
    }

    /// The releases waiting for a scheduled pass or in one now.
    pub fn scheduled_or_running(&self) -> HashSet<String> {
        self.due_of.keys().chain(&self.running).cloned().collect()
    }

    /// The earliest due time of a release that is not running.
    pub fn next_due(&self) -> Option<Instant> {
        self.by_due.first().map(|(at, _)| *at)
    }

    /// Ends a pass; a request that arrived meanwhile is scheduled now.
    pub fn finish(&mut self, name: &str) {
        self.running.remove(name);
        if let Some(at) = self.deferred.remove(name) {
            self.enqueue(name, at);
        }
    }

    /// Forgets a release entirely (it was deleted).
    pub fn forget(&mut self, name: &str) {
        if let Some(at) = self.due_of.remove(name) {
            self.by_due.remove(&(at, name.to_string()));
        }
        self.deferred.remove(name);
    }

    pub fn is_running(&self, name: &str) -> bool {
        self.running.contains(name)
    }

    /// Releases waiting (not running).
    pub fn len(&self) -> usize {
        self.due_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due_of.is_empty()
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_earliest_due_time_wins_when_deduplicating() {
        let mut q = WorkQueue::new();
        let now = Instant::now();
        q.enqueue("a", now + Duration::from_secs(10));
        q.enqueue("a", now + Duration::from_secs(1));
        q.enqueue("a", now + Duration::from_secs(20));
        assert_eq!(q.len(), 1);
        assert_eq!(q.next_due(), Some(now + Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_filtered_pop_takes_the_earliest_due_release_accepted_and_nothing_not_due() {
        let mut q = WorkQueue::new();
        let now = Instant::now();
        q.enqueue("routine-1", now);
        q.enqueue("routine-2", now);
        q.enqueue("due", now + Duration::from_secs(1));
        q.enqueue("later", now + Duration::from_secs(60));
        let not_routine = |name: &str| !name.starts_with("routine");
        assert_eq!(
            q.pop_due_where(now, not_routine),
            None,
            "due is not due yet"
        );
        let soon = now + Duration::from_secs(1);
        assert_eq!(q.pop_due_where(soon, not_routine).as_deref(), Some("due"));
        assert!(q.is_running("due"));
        assert_eq!(q.pop_due_where(soon, not_routine), None, "later is not due");
        // The routine looks due now are skipped: the next wake is the later release's.
        let later = now + Duration::from_secs(60);
        assert_eq!(q.next_due_after(now), Some(later));
        assert_eq!(q.next_due_after(later), None);
        assert_eq!(
            q.pop_due(soon).as_deref(),
            Some("routine-1"),
            "the others stay queued"
        );
        assert_eq!(q.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_release_is_not_handed_out_twice() {
        let mut q = WorkQueue::new();
        let now = Instant::now();
        q.enqueue("a", now);
        assert_eq!(q.pop_due(now).as_deref(), Some("a"));
        q.enqueue("a", now);
        assert_eq!(q.pop_due(now), None, "a is running");
        q.finish("a");
        assert_eq!(q.pop_due(now).as_deref(), Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_handed_out_before_it_is_due() {
        let mut q = WorkQueue::new();
        let now = Instant::now();
        q.enqueue("b", now + Duration::from_secs(5));
        assert_eq!(q.pop_due(now), None);
        assert_eq!(
            q.pop_due(now + Duration::from_secs(5)).as_deref(),
            Some("b")
        );
    }
}
