//! The per-release work queue: one entry per release, the earliest due time wins, and a
//! release that is being reconciled is never handed out again until its pass ends.
//!
//! An entry is routine (a resync's look, a lease taken) or due (anything else: its own
//! scheduled look, a change, an alarm, a retry); due entries are also kept in an order of
//! their own, so that while routine passes are at their limit the loop finds the due work
//! behind a fleet's routine looks in one step, not by walking them (a walk per wake of the
//! loop made a resync quadratic in the fleet: `BENCHMARKS.md` 2).

use std::collections::{BTreeSet, HashMap, HashSet};

use tokio::time::Instant;

/// Releases waiting for a pass, by due time.
#[derive(Debug, Default)]
pub struct WorkQueue {
    /// Every waiting release.
    by_due: BTreeSet<(Instant, String)>,
    /// The waiting releases that are not routine.
    due_work: BTreeSet<(Instant, String)>,
    due_of: HashMap<String, Instant>,
    /// The waiting releases whose entry is routine.
    routine: HashSet<String>,
    running: HashSet<String>,
    /// Asked for while running: scheduled (as due) when the running pass ends.
    deferred: HashMap<String, Instant>,
}

impl WorkQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules a due pass for `name` at `at`, keeping the earlier time if one is already
    /// scheduled; a routine entry becomes due.
    pub fn enqueue(&mut self, name: &str, at: Instant) {
        self.schedule(name, at, false);
    }

    /// Schedules a routine pass for `name` at `at`, unless it has one scheduled anyway (which
    /// stays as it is, due or routine, at the earlier of the two times) or is running.
    pub fn enqueue_routine(&mut self, name: &str, at: Instant) {
        self.schedule(name, at, true);
    }

    fn schedule(&mut self, name: &str, at: Instant, routine: bool) {
        if self.running.contains(name) {
            let entry = self.deferred.entry(name.to_string()).or_insert(at);
            *entry = (*entry).min(at);
            return;
        }
        let was_routine = self.routine.contains(name);
        let routine = match self.due_of.get(name) {
            Some(_) => was_routine && routine,
            None => routine,
        };
        let at = match self.due_of.get(name) {
            Some(&existing) => {
                if existing <= at && routine == was_routine {
                    return;
                }
                self.remove_waiting(name, existing);
                existing.min(at)
            }
            None => at,
        };
        self.by_due.insert((at, name.to_string()));
        if routine {
            self.routine.insert(name.to_string());
        } else {
            self.due_work.insert((at, name.to_string()));
        }
        self.due_of.insert(name.to_string(), at);
    }

    fn remove_waiting(&mut self, name: &str, at: Instant) {
        let key = (at, name.to_string());
        self.by_due.remove(&key);
        if !self.routine.remove(name) {
            self.due_work.remove(&key);
        }
        self.due_of.remove(name);
    }

    /// Takes the release due earliest, if it is due by `now`, among every entry or (without
    /// `routine_too`) the due ones only, and marks it running; with whether it was routine.
    pub fn pop_due(&mut self, now: Instant, routine_too: bool) -> Option<(String, bool)> {
        let order = if routine_too {
            &self.by_due
        } else {
            &self.due_work
        };
        let (at, name) = order.first().filter(|(at, _)| *at <= now)?.clone();
        let routine = self.routine.contains(&name);
        self.remove_waiting(&name, at);
        self.running.insert(name.clone());
        Some((name, routine))
    }

    /// The earliest due time of a waiting release, among every entry or (without
    /// `routine_too`) the due ones only.
    pub fn next_due(&self, routine_too: bool) -> Option<Instant> {
        let order = if routine_too {
            &self.by_due
        } else {
            &self.due_work
        };
        order.first().map(|(at, _)| *at)
    }

    /// When `name` is due, if it is waiting (not running).
    pub fn due(&self, name: &str) -> Option<Instant> {
        self.due_of.get(name).copied()
    }

    /// The releases waiting for a scheduled pass or in one now.
    pub fn scheduled_or_running(&self) -> HashSet<String> {
        self.due_of.keys().chain(&self.running).cloned().collect()
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
        if let Some(at) = self.due_of.get(name).copied() {
            self.remove_waiting(name, at);
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
        assert_eq!(q.next_due(true), Some(now + Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn without_routine_a_pop_takes_the_earliest_due_entry_and_nothing_not_due() {
        let mut q = WorkQueue::new();
        let now = Instant::now();
        q.enqueue_routine("routine-1", now);
        q.enqueue_routine("routine-2", now);
        q.enqueue("due", now + Duration::from_secs(1));
        q.enqueue("later", now + Duration::from_secs(60));
        assert_eq!(q.pop_due(now, false), None, "due is not due yet");
        let soon = now + Duration::from_secs(1);
        assert_eq!(q.pop_due(soon, false), Some(("due".into(), false)));
        assert!(q.is_running("due"));
        assert_eq!(q.pop_due(soon, false), None, "later is not due");
        // The routine looks due now are not waited for: the next wake is the later release's.
        let later = now + Duration::from_secs(60);
        assert_eq!(q.next_due(false), Some(later));
        assert_eq!(q.next_due(true), Some(now));
        assert_eq!(
            q.pop_due(soon, true),
            Some(("routine-1".into(), true)),
            "the others stay queued"
        );
        assert_eq!(q.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_routine_look_leaves_a_scheduled_one_due_and_a_due_one_makes_it_due() {
        let mut q = WorkQueue::new();
        let now = Instant::now();
        q.enqueue("step", now + Duration::from_secs(30));
        q.enqueue_routine("step", now);
        assert_eq!(q.due("step"), Some(now), "at the earlier time");
        assert_eq!(
            q.pop_due(now, false),
            Some(("step".into(), false)),
            "still due"
        );

        q.enqueue_routine("look", now + Duration::from_secs(5));
        q.enqueue("look", now + Duration::from_secs(10));
        assert_eq!(q.due("look"), Some(now + Duration::from_secs(5)));
        assert_eq!(
            q.pop_due(now + Duration::from_secs(5), false),
            Some(("look".into(), false)),
            "a change made it due"
        );

        // Asked for while running: due when the pass ends.
        q.enqueue_routine("step", now);
        q.finish("step");
        assert_eq!(q.pop_due(now, false), Some(("step".into(), false)));
        q.enqueue_routine("gone", now);
        q.forget("gone");
        assert!(q.is_empty());
        assert_eq!((q.next_due(true), q.next_due(false)), (None, None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_release_is_not_handed_out_twice() {
        let mut q = WorkQueue::new();
        let now = Instant::now();
        q.enqueue("a", now);
        assert_eq!(q.pop_due(now, true), Some(("a".into(), false)));
        q.enqueue("a", now);
        assert_eq!(q.pop_due(now, true), None, "a is running");
        q.finish("a");
        assert_eq!(q.pop_due(now, true), Some(("a".into(), false)));
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_handed_out_before_it_is_due() {
        let mut q = WorkQueue::new();
        let now = Instant::now();
        q.enqueue("b", now + Duration::from_secs(5));
        assert_eq!(q.pop_due(now, true), None);
        assert_eq!(
            q.pop_due(now + Duration::from_secs(5), true),
            Some(("b".into(), false))
        );
    }
}
