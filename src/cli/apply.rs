//! `apply` (write documents as desired states, with `--dry-run` and `--prune`) and `delete`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use crate::model::validate::key_path;
use crate::model::{AuditAction, Phase, ReleaseDocument};
use crate::ports::{ReleaseStore, SpecPrecondition, SpecWrite, StoreError, StoredRelease};
use crate::retry::{Attempt, ConflictPolicy, GaveUp, retry_on_conflict};

use super::{Author, CliError};
use crate::terminal::write_line;

/// Which releases `--prune` may delete: those that carry every label of the selector, or all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PruneScope {
    All,
    Selector(BTreeMap<String, String>),
}

impl PruneScope {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            PruneScope::All => true,
            PruneScope::Selector(selector) => selector
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value)),
        }
    }
}

/// A `--selector` value: `KEY=VALUE`.
pub fn parse_selector(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, label)) if !key.is_empty() => Ok((key.to_string(), label.to_string())),
        _ => Err(format!("`{value}` is not KEY=VALUE")),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Write nothing; say what would change.
    pub dry_run: bool,
    /// Delete the releases in scope that none of the documents names.
    pub prune: Option<PruneScope>,
}

/// What `apply` did (or would do) to one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub name: String,
    pub change: Change,
    /// The generation after the write (the current one when unchanged; the one a write
    /// would create in a dry run).
    pub generation: u64,
    /// The fields that differ (`path: old -> new`), for a configured release.
    pub diff: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    Created,
    Configured,
    Unchanged,
}

impl Change {
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Configured => "configured",
            Change::Unchanged => "unchanged",
        }
    }
}

/// A release that `--prune` or `delete` removed (or would remove).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pruned {
    pub name: String,
    /// Its phase when it was deleted, if the controller had written a status.
    pub phase: Option<Phase>,
    pub deployment_id: Option<String>,
    /// True when the phase was not settled: a deployment may still be running, now unfollowed.
    pub in_flight: bool,
}

impl Pruned {
    fn of(release: &StoredRelease) -> Self {
        let status = release.status.as_ref();
        Pruned {
            name: release.name.clone(),
            phase: status.map(|s| s.phase),
            deployment_id: status.and_then(|s| s.deployment_id.clone()),
            in_flight: status.is_some_and(|s| !s.phase.is_settled()),
        }
    }

    /// The warning for a release deleted while something was in flight.
    pub fn warning(&self) -> Option<String> {
        if !self.in_flight {
            return None;
        }
        let phase = self.phase.map_or("unknown", |p| p.as_str());
        let deployment = match &self.deployment_id {
            Some(id) => format!("its deployment {id}"),
            None => "a deployment it may have started".to_string(),
        };
        Some(format!(
            "warning: release/{} was {phase}: {deployment} keeps running under CodeDeploy but \
             switchyard no longer follows it (no promotion, no rollback on alarm); the ECS \
             service is untouched",
            self.name
        ))
    }
}

/// Everything `apply` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    pub dry_run: bool,
    pub applied: Vec<Applied>,
    pub pruned: Vec<Pruned>,
}

impl ApplyReport {
    fn count(&self, change: Change) -> usize {
        self.applied.iter().filter(|a| a.change == change).count()
    }

    /// `2 created, 1 configured, 3 unchanged, 1 pruned`.
    pub fn summary(&self) -> String {
        let mut summary = format!(
            "{} created, {} configured, {} unchanged",
            self.count(Change::Created),
            self.count(Change::Configured),
            self.count(Change::Unchanged)
        );
        if !self.pruned.is_empty() {
            summary.push_str(&format!(", {} pruned", self.pruned.len()));
        }
        if self.dry_run {
            summary.push_str(" (dry run: nothing was written)");
        }
        summary
    }
}

/// Writes each (already validated) document as the desired state of its release, then
/// prunes. Each write is conditional on the generation that was read, so a concurrent writer
/// is never silently overwritten: a conflict re-reads and writes again (the document wins, as
/// `apply` sets the whole spec). Unchanged documents are not written. Prints one line per
/// release to `out` as it goes (so a failure halfway still shows what was done).
pub async fn apply(
    store: &dyn ReleaseStore,
    documents: &[ReleaseDocument],
    options: &ApplyOptions,
    author: &Author,
    out: &mut dyn Write,
) -> Result<ApplyReport, CliError> {
    let mut report = ApplyReport {
        dry_run: options.dry_run,
        ..ApplyReport::default()
    };
    let suffix = if options.dry_run { " (dry run)" } else { "" };
    for document in documents {
        let applied = apply_one(store, document, options.dry_run, author).await?;
        if options.dry_run {
            write_line(
                out,
                &format!(
                    "release/{} {}{suffix}",
                    applied.name,
                    applied.change.as_str()
                ),
            )?;
        } else {
            write_line(
                out,
                &format!(
                    "release/{} {} (generation {})",
                    applied.name,
                    applied.change.as_str(),
                    applied.generation
                ),
            )?;
        }
        if options.dry_run {
            for line in &applied.diff {
                write_line(out, &format!("  {line}"))?;
            }
        }
        report.applied.push(applied);
    }

    if let Some(scope) = &options.prune {
        let keep: BTreeSet<&str> = documents.iter().map(|d| d.metadata.name.as_str()).collect();
        for release in store.list().await? {
            if keep.contains(release.name.as_str()) || !scope.matches(&release.labels) {
                continue;
            }
            if !options.dry_run {
                store.delete(&release.name).await?;
            }
            let pruned = Pruned::of(&release);
            write_line(out, &format!("release/{} pruned{suffix}", pruned.name))?;
            if let Some(warning) = pruned.warning() {
                write_line(out, &format!("  {warning}"))?;
            }
            report.pruned.push(pruned);
        }
    }
    write_line(out, &report.summary())?;
    Ok(report)
}

async fn apply_one(
    store: &dyn ReleaseStore,
    document: &ReleaseDocument,
    dry_run: bool,
    author: &Author,
) -> Result<Applied, CliError> {
    let name = &document.metadata.name;
    let spec = serde_json::to_value(&document.spec)
        .map_err(|e| CliError::Invalid(format!("{name}: cannot encode the spec: {e}")))?;
    // Read again and write again (re-diffed against what is there now) after a lost race.
    let outcome = retry_on_conflict(ConflictPolicy::CLI_APPLY, || async {
        let existing = store.get(name).await.map_err(CliError::from)?;
        let (change, precondition, diff, generation) = match &existing {
            None => (Change::Created, SpecPrecondition::Absent, Vec::new(), 1),
            Some(current) => {
                let diff = document_diff(current, &document.metadata.labels, &spec);
                if diff.is_empty() {
                    return Ok(Applied {
                        name: name.clone(),
                        change: Change::Unchanged,
                        generation: current.generation,
                        diff,
                    });
                }
                (
                    Change::Configured,
                    SpecPrecondition::Generation(current.generation),
                    diff,
                    current.generation + 1,
                )
            }
        };
        if dry_run {
            return Ok(Applied {
                name: name.clone(),
                change,
                generation,
                diff,
            });
        }
        let detail = match change {
            Change::Created => "created".to_string(),
            _ => format!("configured: {}", changed_paths(&diff)),
        };
        let write = SpecWrite {
            name: name.clone(),
            labels: document.metadata.labels.clone(),
            spec: spec.clone(),
            precondition,
            written_by: author.by.clone(),
            written_at: author.at,
            action: AuditAction::Apply,
            detail,
        };
        match store.put_spec(write).await {
            Ok(generation) => Ok(Applied {
                name: name.clone(),
                change,
                generation,
                diff,
            }),
            Err(StoreError::ConditionFailed { .. }) => Err(Attempt::Conflict),
            Err(other) => Err(Attempt::Failed(other.into())),
        }
    })
    .await;
    outcome.map_err(|gave_up| match gave_up {
        GaveUp::Conflicts { attempts } => CliError::ConflictOrNotFound(format!(
            "release/{name}: changed by someone else {attempts} times while applying; nothing \
             was written for it, run apply again"
        )),
        GaveUp::Failed(error) => error,
    })
}

/// The paths of a diff, without values: `spec.a, metadata.labels.b`.
fn changed_paths(diff: &[String]) -> String {
    diff.iter()
        .map(|line| {
            line.split_once(": ")
                .map_or(line.as_str(), |(path, _)| path)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The differences between a stored release and a document: labels and spec, one line per
/// differing leaf, `path: old -> new` (`(none)` for a missing side). Environment values are
/// never shown (they often carry secrets): only that they changed.
pub fn document_diff(
    current: &StoredRelease,
    labels: &BTreeMap<String, String>,
    spec: &Value,
) -> Vec<String> {
    let mut lines = Vec::new();
    let old_labels = serde_json::to_value(&current.labels).unwrap_or(Value::Null);
    let new_labels = serde_json::to_value(labels).unwrap_or(Value::Null);
    diff_values("metadata.labels", &old_labels, &new_labels, &mut lines);
    diff_values("spec", &current.spec.value(), spec, &mut lines);
    lines
}

/// One line per leaf that differs between two JSON values.
pub(crate) fn diff_values(base: &str, old: &Value, new: &Value, lines: &mut Vec<String>) {
    let mut old_leaves = BTreeMap::new();
    let mut new_leaves = BTreeMap::new();
    flatten(base, &[], old, &mut old_leaves);
    flatten(base, &[], new, &mut new_leaves);
    let paths: BTreeSet<&String> = old_leaves.keys().chain(new_leaves.keys()).collect();
    for path in paths {
        let (old, new) = (old_leaves.get(path), new_leaves.get(path));
        if old.map(|l| &l.value) == new.map(|l| &l.value) {
            continue;
        }
        let secret = old.or(new).is_some_and(|l| l.secret);
        let show = |leaf: Option<&Leaf>| match leaf {
            None => "(none)".to_string(),
            Some(_) if secret => "(hidden)".to_string(),
            Some(leaf) => short_json(&leaf.value),
        };
        lines.push(format!("{path}: {} -> {}", show(old), show(new)));
    }
}

struct Leaf {
    value: Value,
    /// An environment variable's value.
    secret: bool,
}

fn flatten(path: &str, segments: &[&str], value: &Value, leaves: &mut BTreeMap<String, Leaf>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let mut child_segments = segments.to_vec();
                child_segments.push(key);
                flatten(&key_path(path, key), &child_segments, child, leaves);
            }
        }
        // An empty map is no leaf: `labels: {}` and no labels are the same.
        Value::Object(_) => {}
        _ => {
            // spec: taskDefinition.containers.<name>.environment.<key>
            let secret = segments.len() == 5
                && segments[..2] == ["taskDefinition", "containers"]
                && segments[3] == "environment";
            leaves.insert(
                path.to_string(),
                Leaf {
                    value: value.clone(),
                    secret,
                },
            );
        }
    }
}

fn short_json(value: &Value) -> String {
    const MAX: usize = 100;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        text
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}...")
    }
}

/// Deletes one release: stops its management; the ECS service and any deployment in flight
/// are untouched. Prints `release/NAME deleted` and, when something was in flight, a warning.
pub async fn delete(
    store: &dyn ReleaseStore,
    name: &str,
    ignore_not_found: bool,
    out: &mut dyn Write,
) -> Result<Option<Pruned>, CliError> {
    let Some(release) = store.get(name).await? else {
        if ignore_not_found {
            return Ok(None);
        }
        return Err(CliError::not_found(name));
    };
    store.delete(name).await?;
    let pruned = Pruned::of(&release);
    write_line(out, &format!("release/{name} deleted"))?;
    if let Some(warning) = pruned.warning() {
        write_line(out, &format!("  {warning}"))?;
    }
    Ok(Some(pruned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_diff_names_each_leaf_and_hides_environment_values() {
        let mut lines = Vec::new();
        diff_values(
            "spec",
            &json!({"taskDefinition": {"containers": {"web": {"image": "a:1", "environment": {"K": "secret1"}}}}, "paused": true}),
            &json!({"taskDefinition": {"containers": {"web": {"image": "a:2", "environment": {"K": "secret2", "N": "x"}}}}}),
            &mut lines,
        );
        assert_eq!(
            lines,
            [
                "spec.paused: true -> (none)",
                "spec.taskDefinition.containers.web.environment.K: (hidden) -> (hidden)",
                "spec.taskDefinition.containers.web.environment.N: (none) -> (hidden)",
                "spec.taskDefinition.containers.web.image: \"a:1\" -> \"a:2\"",
            ]
        );
        assert_eq!(
            changed_paths(&lines),
            "spec.paused, spec.taskDefinition.containers.web.environment.K, \
             spec.taskDefinition.containers.web.environment.N, \
             spec.taskDefinition.containers.web.image"
        );
    }

    /// A release written into the store by something other than `apply` (names are not
    /// checked there), in flight under a deployment id with control characters.
    async fn hostile_release(store: &crate::sim::SimStore, name: &str) {
        use crate::model::ReleaseStatus;
        store
            .put_spec(SpecWrite {
                name: name.into(),
                labels: BTreeMap::new(),
                spec: json!({}),
                precondition: SpecPrecondition::Any,
                written_by: "test".into(),
                written_at: crate::clock::Clock::fixed_epoch().now(),
                action: AuditAction::Apply,
                detail: String::new(),
            })
            .await
            .unwrap();
        let version = store.peek(name).unwrap().status_version;
        let status = ReleaseStatus {
            observed_generation: 1,
            phase: Phase::Progressing,
            deployment_id: Some("d-1\n\u{1b}[2K".into()),
            ..ReleaseStatus::default()
        };
        store
            .write_status(name, &status, version, None)
            .await
            .unwrap();
    }

    fn assert_no_raw_control(text: &str) {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "a raw control character: {text:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn prune_and_delete_print_names_and_warnings_escaped() {
        let store = crate::sim::SimStore::new(crate::clock::Clock::fixed_epoch());
        let name = "web\u{1b}]0;x\u{7}";
        hostile_release(&store, name).await;
        let author = Author {
            by: "test".into(),
            at: crate::clock::Clock::fixed_epoch().now(),
        };
        let options = ApplyOptions {
            dry_run: true,
            prune: Some(PruneScope::All),
        };
        let mut out = Vec::new();
        apply(&store, &[], &options, &author, &mut out)
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_no_raw_control(&text);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.starts_with(r"release/web\u{1b}]0;x\u{7} pruned (dry run)"),
            "{text}"
        );
        assert!(
            text.contains(r"its deployment d-1\n\u{1b}[2K keeps running"),
            "{text}"
        );

        let mut out = Vec::new();
        delete(&store, name, false, &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_no_raw_control(&text);
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn a_selector_needs_every_label() {
        let labels = BTreeMap::from([
            ("team".to_string(), "a".to_string()),
            ("env".to_string(), "prod".to_string()),
        ]);
        let selector = |pairs: &[(&str, &str)]| {
            PruneScope::Selector(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        assert!(selector(&[("team", "a")]).matches(&labels));
        assert!(selector(&[("team", "a"), ("env", "prod")]).matches(&labels));
        assert!(!selector(&[("team", "a"), ("env", "dev")]).matches(&labels));
        assert!(!selector(&[("owner", "")]).matches(&labels));
        assert!(PruneScope::All.matches(&BTreeMap::new()));
        assert_eq!(parse_selector("team=a"), Ok(("team".into(), "a".into())));
        assert!(parse_selector("team").is_err());
        assert!(parse_selector("=a").is_err());
    }
}
