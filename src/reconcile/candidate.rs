//! The candidate: a task definition that is a pure function of the base revision and the
//! spec, never of the controller's own history.
//!
//! 1. `spec.taskDefinition.from` names a family (its latest ACTIVE revision that switchyard did
//!    not register: the shell skips revisions tagged [`TAG_RELEASE`]) or a revision ARN: that
//!    is the **base**. It is resolved when `spec.taskDefinition` changes (its digest) or on
//!    `retry`, and recorded; other edits keep it.
//! 2. The candidate's content is the base's, with each container of the spec taking its
//!    image and environment (merged over the base's own). Its **fingerprint** is a digest of
//!    that content.
//! 3. Content equal to the live revision's: the live revision is the candidate (nothing to
//!    deploy). Equal to the base's: the base is. A revision registered for this release with
//!    that fingerprint (its [`TAG_FINGERPRINT`] tag) is reused. Otherwise the controller
//!    records the intent and registers it, tagged with the release, the base and the
//!    fingerprint, so that after a crash it finds the registration instead of repeating it.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::model::validate::FieldError;
use crate::model::{Candidate, ReleaseSpec, TaskDefinitionSpec};
use crate::ports::{ContainerDefinition, TaskDefinition};

use super::Lookup;

/// The tag that marks a revision switchyard registered, with the release's name.
pub const TAG_RELEASE: &str = "switchyard.dev/release";
/// The tag naming the revision a registered candidate was copied from.
pub const TAG_BASE: &str = "switchyard.dev/base";
/// The tag carrying a registered candidate's content fingerprint.
pub const TAG_FINGERPRINT: &str = "switchyard.dev/fingerprint";

/// How long after its intent a registration that is not found yet may still land: longer
/// than a call of the AWS adapters may take, retries included (30 s), so that a new owner
/// does not register a second revision for one candidate while the old owner's call is on
/// its way.
pub const REGISTRATION_IN_FLIGHT: Duration = Duration::from_secs(40);

/// What the shell looked up to resolve the candidate.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskDefinitions {
    /// The base: `from` resolved.
    pub base: Lookup<TaskDefinition>,
    /// The live revision's content.
    pub live: Lookup<TaskDefinition>,
    /// Revisions of the base's family registered for this release, newest first.
    pub registered: Vec<TaskDefinition>,
    /// The recorded candidate's content, when a strategy needs it (CodeDeploy's AppSpec).
    pub candidate: Lookup<TaskDefinition>,
}

/// The registration to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub base: TaskDefinition,
    pub containers: Vec<ContainerDefinition>,
    pub tags: BTreeMap<String, String>,
}

/// Where resolving the candidate stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The candidate revision exists.
    Ready(Candidate),
    /// The content is known (its fingerprint), the revision must be registered.
    NeedsRegistration(Candidate, Box<Registration>),
    /// An earlier pass asked for this registration and it is not found yet: look again
    /// (within this long) before asking again.
    Registering(Candidate, Duration),
    /// The shell did not look up what resolving needs: look next pass.
    NeedsLookup,
    /// The spec cannot be resolved against the base (a container the base does not have).
    Invalid(Vec<FieldError>),
}

/// The digest of `spec.taskDefinition`: when it changes, the base is resolved again.
pub fn spec_digest(spec: &TaskDefinitionSpec) -> String {
    let rendering = serde_json::to_string(spec).unwrap_or_default();
    short_hex(&Sha256::digest(rendering.as_bytes()))
}

/// The fingerprint of a task definition's content (its family, every task-level field and
/// its containers): equal fingerprints register the same revision.
pub fn fingerprint(content: &TaskDefinition) -> String {
    let rendering = serde_json::to_string(&(
        &content.family,
        &content.other_fields_digest,
        &content.containers,
    ))
    .unwrap_or_default();
    short_hex(&Sha256::digest(rendering.as_bytes()))
}

fn short_hex(digest: &[u8]) -> String {
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the recorded candidate still answers `spec` (same `spec.taskDefinition`), so
/// nothing needs resolving. A `retry` resolves again regardless.
pub fn is_current(recorded: Option<&Candidate>, spec: &ReleaseSpec) -> bool {
    recorded.is_some_and(|c| c.spec_digest == spec_digest(&spec.task_definition))
}

/// Resolves the candidate for `spec` from what was recorded and what the shell looked up.
pub fn resolve(
    release: &str,
    spec: &ReleaseSpec,
    recorded: Option<&Candidate>,
    re_resolve: bool,
    looked_up: &TaskDefinitions,
    now: Timestamp,
) -> Resolution {
    if let Some(recorded) = recorded.filter(|_| !re_resolve && is_current(recorded, spec)) {
        if recorded.arn.is_some() {
            return Resolution::Ready(recorded.clone());
        }
        // A registration was asked for: find it before asking again.
        if let Some(found) = registered_with(looked_up, &recorded.fingerprint) {
            return Resolution::Ready(Candidate {
                arn: Some(found.arn.clone()),
                registering_since: None,
                ..recorded.clone()
            });
        }
    }
    let base = match &looked_up.base {
        Lookup::Found(base) => base,
        Lookup::Missing => {
            return Resolution::Invalid(vec![FieldError::new(
                "spec.taskDefinition.from",
                format!(
                    "task definition {} not found (no ACTIVE revision that switchyard did not register)",
                    spec.task_definition.from
                ),
            )]);
        }
        Lookup::NotLookedUp => return Resolution::NeedsLookup,
    };
    let errors = missing_containers(base, spec);
    if !errors.is_empty() {
        return Resolution::Invalid(errors);
    }
    let content = candidate_content(base, spec);
    let fingerprint = fingerprint(&content);
    let mut candidate = Candidate {
        spec_digest: spec_digest(&spec.task_definition),
        base: base.arn.clone(),
        fingerprint: fingerprint.clone(),
        arn: None,
        registering_since: None,
    };
    let existing = [looked_up.live.found(), Some(base)]
        .into_iter()
        .flatten()
        .find(|t| t.has_same_content(&content))
        .or_else(|| registered_with(looked_up, &fingerprint));
    if let Some(existing) = existing {
        candidate.arn = Some(existing.arn.clone());
        return Resolution::Ready(candidate);
    }
    if matches!(looked_up.live, Lookup::NotLookedUp) {
        // The live revision might already be the candidate: look before registering.
        return Resolution::NeedsLookup;
    }
    // The same registration asked for a moment ago and not found yet: it may still land.
    if let Some(since) = recorded
        .filter(|r| r.fingerprint == candidate.fingerprint && r.arn.is_none())
        .and_then(|r| r.registering_since)
    {
        let waited = crate::clock::elapsed_between(since, now);
        if waited < REGISTRATION_IN_FLIGHT {
            candidate.registering_since = Some(since);
            return Resolution::Registering(candidate, REGISTRATION_IN_FLIGHT - waited);
        }
    }
    candidate.registering_since = Some(now);
    let tags = BTreeMap::from([
        (TAG_RELEASE.to_string(), release.to_string()),
        (TAG_BASE.to_string(), base.arn.clone()),
        (TAG_FINGERPRINT.to_string(), fingerprint),
    ]);
    Resolution::NeedsRegistration(
        candidate,
        Box::new(Registration {
            base: base.clone(),
            containers: content.containers,
            tags,
        }),
    )
}

fn registered_with<'a>(
    looked_up: &'a TaskDefinitions,
    fingerprint: &str,
) -> Option<&'a TaskDefinition> {
    looked_up
        .registered
        .iter()
        .find(|t| t.tags.get(TAG_FINGERPRINT).map(String::as_str) == Some(fingerprint))
}

/// The spec's containers that the base does not define, as field errors.
fn missing_containers(base: &TaskDefinition, spec: &ReleaseSpec) -> Vec<FieldError> {
    spec.task_definition
        .containers
        .keys()
        .filter(|name| base.container(name).is_none())
        .map(|name| {
            let known: Vec<&str> = base.containers.iter().map(|c| c.name.as_str()).collect();
            FieldError::new(
                format!("spec.taskDefinition.containers.{name}"),
                format!(
                    "task definition {} has no container {name} (it has: {})",
                    base.short_name(),
                    known.join(", ")
                ),
            )
        })
        .collect()
}

/// The candidate's content: the base's, with each container of the spec taking its image
/// and its environment merged over the base's own.
pub fn candidate_content(base: &TaskDefinition, spec: &ReleaseSpec) -> TaskDefinition {
    let containers = base
        .containers
        .iter()
        .map(|container| {
            let mut container = container.clone();
            if let Some(change) = spec.task_definition.containers.get(&container.name) {
                if let Some(image) = &change.image {
                    container.image = image.clone();
                }
                for (key, value) in &change.environment {
                    container.environment.insert(key.clone(), value.clone());
                }
            }
            container
        })
        .collect();
    TaskDefinition {
        arn: String::new(),
        family: base.family.clone(),
        revision: 0,
        status: "ACTIVE".into(),
        containers,
        other_fields_digest: base.other_fields_digest.clone(),
        tags: BTreeMap::new(),
    }
}
