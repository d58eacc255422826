//! The task definitions that resolve the candidate: the base (a family's latest ACTIVE
//! revision that switchyard did not register, or an ARN), the revisions registered for the
//! release since, and the live revision. One scan, shared by the controller's pass and by
//! `switchyard diff`, so that both resolve the base exactly the same way.

use tracing::debug;

use super::Caches;
use super::lookup::lookup;
use crate::clock::Clock;
use crate::ports::{AwsError, Ecs, TaskDefinition};
use crate::reconcile::Lookup;
use crate::reconcile::candidate::{TAG_RELEASE, TaskDefinitions};
use crate::reconcile::plan::ResolveLookups;

/// How many revisions of a family are looked at, newest first, for the base and for the
/// candidates switchyard registered: beyond that, the family is refused as unresolvable.
pub const FAMILY_SCAN_LIMIT: usize = 50;

/// Reads task definitions from ECS, through the controller's cache when it has one (a
/// revision never changes, so a full ARN is described once).
pub struct TaskDefinitionReader<'a> {
    ecs: &'a dyn Ecs,
    cache: Option<(&'a Caches, &'a Clock)>,
}

impl<'a> TaskDefinitionReader<'a> {
    /// Straight from ECS, nothing cached (a command that runs once).
    pub fn direct(ecs: &'a dyn Ecs) -> Self {
        Self { ecs, cache: None }
    }

    /// Through the controller's cache.
    pub fn cached(ecs: &'a dyn Ecs, caches: &'a Caches, clock: &'a Clock) -> Self {
        Self {
            ecs,
            cache: Some((caches, clock)),
        }
    }

    /// Describes a task definition, from the cache when `reference` is a full ARN it holds;
    /// a family name asks for its latest revision, which only ECS knows.
    pub async fn describe(&self, reference: &str) -> Result<Lookup<TaskDefinition>, AwsError> {
        if let Some((caches, _)) = self.cache
            && let Some(cached) = caches.task_definition(reference)
        {
            return Ok(Lookup::Found(cached));
        }
        let described = lookup(self.ecs.describe_task_definition(reference).await)?;
        if let (Some((caches, clock)), Lookup::Found(task_definition)) = (self.cache, &described) {
            caches.put_task_definition(clock, task_definition);
        }
        Ok(described)
    }

    /// Looks up what resolving the candidate needs: the base (a family's latest revision
    /// that switchyard did not register, or the ARN), the revisions registered for
    /// `release` since, and the live revision.
    pub async fn resolve_inputs(
        &self,
        release: &str,
        lookups: &ResolveLookups,
    ) -> Result<TaskDefinitions, AwsError> {
        let mut found = TaskDefinitions::default();
        let is_arn = lookups.base.starts_with("arn:");
        let base_revision = if is_arn {
            found.base = self.describe(&lookups.base).await?;
            found.base.found().map(|t| t.revision)
        } else {
            None
        };
        let revisions = self
            .ecs
            .list_task_definitions(&lookups.family, FAMILY_SCAN_LIMIT)
            .await?;
        for arn in revisions {
            if base_revision.is_some_and(|base| revision_of(&arn) <= base) {
                break;
            }
            let Lookup::Found(revision) = self.describe(&arn).await? else {
                continue;
            };
            match revision.tags.get(TAG_RELEASE) {
                Some(owner) if owner == release => found.registered.push(revision),
                // Another release's candidate: neither a base nor ours.
                Some(_) => {}
                None if is_arn => {}
                None => {
                    found.base = Lookup::Found(revision);
                    break;
                }
            }
        }
        if !is_arn && found.base == Lookup::NotLookedUp {
            debug!(family = %lookups.family, "no revision that switchyard did not register");
            found.base = Lookup::Missing;
        }
        if let Some(live) = &lookups.live {
            let known = [found.base.found()]
                .into_iter()
                .flatten()
                .chain(found.registered.iter())
                .find(|t| &t.arn == live)
                .cloned();
            found.live = match known {
                Some(t) => Lookup::Found(t),
                None => self.describe(live).await?,
            };
        } else {
            found.live = Lookup::Missing;
        }
        Ok(found)
    }
}

/// The revision number at the end of a task definition ARN.
fn revision_of(arn: &str) -> u32 {
    arn.rsplit_once(':')
        .and_then(|(_, revision)| revision.parse().ok())
        .unwrap_or(0)
}
