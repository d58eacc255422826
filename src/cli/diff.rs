//! `switchyard diff`: what `apply` would change, per release, reading the table and AWS and
//! writing nothing.
//!
//! For each release of the documents:
//!
//! 1. The spec fields that would change, exactly as `apply --dry-run` lists them
//!    ([`document_diff`]); a release the table does not hold is created, and every field of
//!    its document is listed as new.
//! 2. The candidate task definition the controller would deploy once `apply` wrote the
//!    document, resolved exactly as the controller resolves it: the service's live task
//!    definition (`DescribeServices` in the release's region), the base and the revisions
//!    registered for the release (the controller's own scan,
//!    [`TaskDefinitionReader::resolve_inputs`]), then the pure
//!    [`candidate::resolve`]. Content equal to the live revision: nothing would change; equal
//!    to the base or to a revision registered for the release: that one is reused.
//! 3. The candidate's `RegisterTaskDefinition` input ([`Ecs::registration_input`], built by
//!    the very code that registers, never sent), against the live revision rendered the same
//!    way (a registration of itself), so the two compare field by field.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};

use super::CliError;
use super::apply::{Change, diff_values, document_diff};
use super::files::SourceDocument;
use crate::access::AwsAccess;
use crate::controller::{TaskDefinitionReader, describe_service};
use crate::model::ReleaseSpec;
use crate::ports::{AwsError, Ecs, ReleaseStore, task_definition_short_name};
use crate::reconcile::Lookup;
use crate::reconcile::candidate::{self, Resolution};
use crate::reconcile::plan::resolve_lookups;
use crate::terminal::{escape_json_controls, write_line};

/// What stands in for an environment variable's value unless `--show-values`.
pub const HIDDEN: &str = "(hidden)";

/// Lines of context around each changed hunk of a task definition diff.
const CONTEXT_LINES: usize = 3;

/// What `apply` would do to one release.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseDiff {
    pub name: String,
    pub change: Change,
    /// The fields that differ, `path: old -> new` (environment values hidden), as `apply
    /// --dry-run` lists them; for a created release, every field of the document.
    pub changes: Vec<String>,
    /// The service's live task definition; `None` when the service does not exist or runs
    /// none.
    pub live_task_definition_arn: Option<String>,
    /// The live revision as a registration of itself.
    pub live: Option<Value>,
    pub candidate: CandidateDiff,
}

impl ReleaseDiff {
    /// Whether `apply` would change this release (its spec or labels).
    pub fn would_change(&self) -> bool {
        self.change != Change::Unchanged
    }
}

/// The candidate task definition and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateDiff {
    pub source: CandidateSource,
    /// `RegisterTaskDefinition`'s input for the candidate (for a revision that exists, a
    /// registration of itself).
    pub input: Value,
}

/// Where the candidate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateSource {
    /// The live revision: nothing would be deployed.
    Live { arn: String },
    /// A revision that exists is reused, nothing registered.
    Reused { arn: String, reason: ReuseReason },
    /// A new revision of `family` would be registered, copied from `base`.
    Registered { family: String, base: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReuseReason {
    /// The base itself has the candidate's content.
    Base,
    /// switchyard registered a revision with this content for the release before.
    RegisteredBefore,
    /// `spec.taskDefinition` is unchanged: the candidate the controller recorded for it.
    Recorded,
}

/// Why `diff` could not say what would change.
#[derive(Debug)]
pub enum DiffError {
    /// Documents that cannot be resolved against AWS (a container the base does not have, a
    /// `from` that names nothing): one line per error, `FILE: document N: PATH: MESSAGE`.
    Invalid(Vec<String>),
    Failed(CliError),
}

impl From<CliError> for DiffError {
    fn from(error: CliError) -> Self {
        DiffError::Failed(error)
    }
}

fn aws_failed(name: &str, error: AwsError) -> DiffError {
    DiffError::Failed(CliError::Aws(format!("release/{name}: {error}")))
}

/// Computes what `apply` would change for each (already validated) document, reading the
/// store and AWS, writing nothing.
pub async fn diff(
    store: &dyn ReleaseStore,
    aws: &AwsAccess,
    documents: &[SourceDocument],
    now: Timestamp,
) -> Result<Vec<ReleaseDiff>, DiffError> {
    let mut diffs = Vec::with_capacity(documents.len());
    let mut invalid = Vec::new();
    for source in documents {
        match diff_one(store, aws, source, now).await? {
            Ok(diff) => diffs.push(diff),
            Err(lines) => invalid.extend(lines),
        }
    }
    if invalid.is_empty() {
        Ok(diffs)
    } else {
        Err(DiffError::Invalid(invalid))
    }
}

async fn diff_one(
    store: &dyn ReleaseStore,
    aws: &AwsAccess,
    source: &SourceDocument,
    now: Timestamp,
) -> Result<Result<ReleaseDiff, Vec<String>>, DiffError> {
    let document = &source.document;
    let name = &document.metadata.name;
    let spec: &ReleaseSpec = &document.spec;
    let spec_json = serde_json::to_value(spec)
        .map_err(|e| CliError::Invalid(format!("{name}: cannot encode the spec: {e}")))?;
    let stored = store.get(name).await.map_err(CliError::from)?;
    let (change, changes) = match &stored {
        None => {
            let mut lines = Vec::new();
            let labels = serde_json::to_value(&document.metadata.labels).unwrap_or(Value::Null);
            let nothing = Value::Object(Map::new());
            diff_values("metadata.labels", &nothing, &labels, &mut lines);
            diff_values("spec", &nothing, &spec_json, &mut lines);
            (Change::Created, lines)
        }
        Some(current) => {
            let lines = document_diff(current, &document.metadata.labels, &spec_json);
            let change = if lines.is_empty() {
                Change::Unchanged
            } else {
                Change::Configured
            };
            (change, lines)
        }
    };

    // Where the controller would deploy it: its region and account, as its role.
    let home_errors = aws.home().check(spec);
    if !home_errors.is_empty() {
        return Ok(Err(home_errors
            .iter()
            .map(|e| {
                format!(
                    "{}: document {}: {}: {}",
                    source.file.display(),
                    source.number,
                    e.path,
                    e.message
                )
            })
            .collect()));
    }
    let ports = aws
        .ports_for_spec(spec)
        .await
        .map_err(|e| aws_failed(name, e))?;
    let ecs: &dyn Ecs = ports.ecs.as_ref();
    let service = describe_service(&ports, spec)
        .await
        .map_err(|e| aws_failed(name, e))?;
    let live_arn = service
        .as_ref()
        .and_then(|s| s.live_task_definition())
        .map(str::to_string);
    // As the controller: the base recorded for this `spec.taskDefinition`, else `from`.
    // A registration the controller has in flight is, for a diff, one still to be made.
    let recorded = stored
        .as_ref()
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.candidate.clone())
        .map(|mut c| {
            c.registering_since = None;
            c
        });
    let recorded = recorded.as_ref();
    let lookups = resolve_lookups(spec, recorded, false, live_arn.as_deref());
    let reader = TaskDefinitionReader::direct(ecs);
    let found = reader
        .resolve_inputs(name, &lookups)
        .await
        .map_err(|e| aws_failed(name, e))?;
    let no_tags = BTreeMap::new();
    let live = match found.live.found() {
        Some(live) => Some(
            ecs.registration_input(live, &[], &no_tags)
                .await
                .map_err(|e| aws_failed(name, e))?,
        ),
        None => None,
    };

    let candidate = match candidate::resolve(name, spec, recorded, false, &found, now) {
        Resolution::Invalid(errors) => {
            return Ok(Err(errors
                .iter()
                .map(|e| {
                    format!(
                        "{}: document {}: {}: {}",
                        source.file.display(),
                        source.number,
                        e.path,
                        e.message
                    )
                })
                .collect()));
        }
        Resolution::NeedsLookup | Resolution::Registering(..) => {
            return Err(CliError::Aws(format!(
                "release/{name}: the candidate could not be resolved from what ECS answered"
            ))
            .into());
        }
        Resolution::NeedsRegistration(_, registration) => CandidateDiff {
            source: CandidateSource::Registered {
                family: registration.base.family.clone(),
                base: registration.base.arn.clone(),
            },
            input: ecs
                .registration_input(
                    &registration.base,
                    &registration.containers,
                    &registration.tags,
                )
                .await
                .map_err(|e| aws_failed(name, e))?,
        },
        Resolution::Ready(resolved) => {
            let arn = resolved.arn.clone().unwrap_or_default();
            let revision = reader
                .describe(&arn)
                .await
                .map_err(|e| aws_failed(name, e))?;
            let Lookup::Found(revision) = revision else {
                return Err(CliError::Aws(format!(
                    "release/{name}: the candidate {arn} does not exist any more"
                ))
                .into());
            };
            let input = match (&live, live_arn.as_deref() == Some(arn.as_str())) {
                (Some(live), true) => live.clone(),
                _ => ecs
                    .registration_input(&revision, &[], &no_tags)
                    .await
                    .map_err(|e| aws_failed(name, e))?,
            };
            let source = if live_arn.as_deref() == Some(arn.as_str()) {
                CandidateSource::Live { arn }
            } else {
                let is_recorded = recorded.is_some_and(|r| {
                    candidate::is_current(Some(r), spec) && r.arn.as_deref() == Some(arn.as_str())
                });
                let reason = if found.base.found().is_some_and(|b| b.arn == arn) {
                    ReuseReason::Base
                } else if is_recorded {
                    ReuseReason::Recorded
                } else {
                    ReuseReason::RegisteredBefore
                };
                CandidateSource::Reused { arn, reason }
            };
            CandidateDiff { source, input }
        }
    };
    Ok(Ok(ReleaseDiff {
        name: name.clone(),
        change,
        changes,
        live_task_definition_arn: live_arn,
        live,
        candidate,
    }))
}

// ----- JSON ---------------------------------------------------------------------------------

#[derive(Serialize)]
struct DiffView<'a> {
    releases: Vec<ReleaseDiffView<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReleaseDiffView<'a> {
    name: &'a str,
    changes: &'a [String],
    live_task_definition_arn: Option<&'a str>,
    candidate_task_definition: Value,
}

/// `-o json`: `{"releases": [{"name", "changes", "liveTaskDefinitionArn",
/// "candidateTaskDefinition"}]}`, environment values hidden unless `show_values`.
pub fn render_json(diffs: &[ReleaseDiff], show_values: bool) -> String {
    let view = DiffView {
        releases: diffs
            .iter()
            .map(|d| ReleaseDiffView {
                name: &d.name,
                changes: &d.changes,
                live_task_definition_arn: d.live_task_definition_arn.as_deref(),
                candidate_task_definition: if show_values {
                    d.candidate.input.clone()
                } else {
                    hide_environment_values(&d.candidate.input)
                },
            })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&view).unwrap_or_default();
    escape_json_controls(text) + "\n"
}

/// The input with every container's environment values replaced by [`HIDDEN`].
pub fn hide_environment_values(input: &Value) -> Value {
    let mut hidden = input.clone();
    for container in containers_mut(&mut hidden) {
        if let Some(Value::Array(variables)) = container.get_mut("environment") {
            for variable in variables {
                if let Some(value) = variable.get_mut("value") {
                    *value = Value::String(HIDDEN.into());
                }
            }
        }
    }
    hidden
}

fn containers_mut(input: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    input
        .get_mut("containerDefinitions")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

// ----- text ---------------------------------------------------------------------------------

/// The text output: per release, the spec changes, where the candidate comes from, which
/// environment keys change, and a unified diff of the live and candidate task definitions
/// (sorted keys, unchanged fields left out). Environment values appear only with
/// `show_values`. Every line goes through `escape_controls`.
pub fn write_text(
    out: &mut dyn Write,
    diffs: &[ReleaseDiff],
    show_values: bool,
) -> std::io::Result<()> {
    for (index, diff) in diffs.iter().enumerate() {
        if index > 0 {
            write_line(out, "")?;
        }
        write_line(
            out,
            &format!("release/{} {}", diff.name, diff.change.as_str()),
        )?;
        for line in &diff.changes {
            write_line(out, &format!("  {line}"))?;
        }
        write_line(out, &format!("  task definition: {}", source_line(diff)))?;
        for line in environment_lines(diff.live.as_ref(), &diff.candidate.input) {
            write_line(out, &format!("  {line}"))?;
        }
        if let CandidateSource::Live { .. } = diff.candidate.source {
            continue;
        }
        let live_label = match &diff.live_task_definition_arn {
            Some(arn) => format!("live {}", task_definition_short_name(arn)),
            None => "live (none)".to_string(),
        };
        let candidate_label = match &diff.candidate.source {
            CandidateSource::Registered { family, .. } => format!("candidate (new {family})"),
            CandidateSource::Reused { arn, .. } | CandidateSource::Live { arn } => {
                format!("candidate {}", task_definition_short_name(arn))
            }
        };
        let unified = unified_diff(
            diff.live.as_ref(),
            &diff.candidate.input,
            show_values,
            (&live_label, &candidate_label),
        );
        for line in unified.lines() {
            write_line(out, line)?;
        }
    }
    Ok(())
}

/// Where the candidate comes from, in words.
fn source_line(diff: &ReleaseDiff) -> String {
    let live = diff
        .live_task_definition_arn
        .as_deref()
        .map(task_definition_short_name);
    let against = match live {
        Some(live) => format!("live {live}"),
        None => "no live task definition (the service does not exist or runs none)".into(),
    };
    match &diff.candidate.source {
        CandidateSource::Live { arn } => format!(
            "{} is live and stays: nothing to deploy",
            task_definition_short_name(arn)
        ),
        CandidateSource::Reused { arn, reason } => {
            let why = match reason {
                ReuseReason::Base => "the base has the candidate's content",
                ReuseReason::RegisteredBefore => "registered for this release before",
                ReuseReason::Recorded => "spec.taskDefinition is unchanged",
            };
            format!(
                "{} reused ({why}), nothing registered; {against}",
                task_definition_short_name(arn)
            )
        }
        CandidateSource::Registered { family, base } => format!(
            "a new revision of {family} would be registered, copied from {}; {against}",
            task_definition_short_name(base)
        ),
    }
}

/// Each container's environment as a map, by container name.
fn environments(input: &Value) -> BTreeMap<String, BTreeMap<String, Value>> {
    input["containerDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let name = c["name"].as_str()?.to_string();
            let variables = c["environment"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| Some((v["name"].as_str()?.to_string(), v["value"].clone())))
                .collect();
            Some((name, variables))
        })
        .collect()
}

/// Which environment keys each container adds, removes or changes, live to candidate:
/// names only, never values.
pub fn environment_lines(live: Option<&Value>, candidate: &Value) -> Vec<String> {
    let before = live.map(environments).unwrap_or_default();
    let after = environments(candidate);
    let empty = BTreeMap::new();
    let containers: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut lines = Vec::new();
    for container in containers {
        let old = before.get(container).unwrap_or(&empty);
        let new = after.get(container).unwrap_or(&empty);
        let keys = |pick: &dyn Fn(&String) -> bool| -> Vec<&str> {
            old.keys()
                .chain(new.keys())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|k| pick(k))
                .map(String::as_str)
                .collect()
        };
        let added = keys(&|k| !old.contains_key(k) && new.contains_key(k));
        let removed = keys(&|k| old.contains_key(k) && !new.contains_key(k));
        let changed = keys(&|k| {
            old.get(k)
                .is_some_and(|v| new.get(k).is_some_and(|w| v != w))
        });
        let mut parts = Vec::new();
        for (word, keys) in [("added", added), ("removed", removed), ("changed", changed)] {
            if !keys.is_empty() {
                parts.push(format!("{word} {}", keys.join(", ")));
            }
        }
        if !parts.is_empty() {
            lines.push(format!(
                "environment of container {container}: {}",
                parts.join("; ")
            ));
        }
    }
    lines
}

/// The task definition as the text diff shows it: keys sorted; environment sorted by name
/// with `show_values`, left out otherwise (its keys are listed on their own).
fn for_display(input: &Value, show_values: bool) -> Value {
    let mut shown = input.clone();
    for container in containers_mut(&mut shown) {
        if !show_values {
            container.remove("environment");
        } else if let Some(Value::Array(variables)) = container.get_mut("environment") {
            variables.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        }
    }
    sorted(shown)
}

/// `value` with the keys of every object in sorted order (serde_json keeps insertion order).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let entries: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// A unified diff of the two task definitions, pretty-printed with sorted keys: only the
/// hunks that differ, with a few lines of context. Empty when they do not differ.
pub fn unified_diff(
    live: Option<&Value>,
    candidate: &Value,
    show_values: bool,
    labels: (&str, &str),
) -> String {
    let render = |value: &Value| {
        let mut text =
            serde_json::to_string_pretty(&for_display(value, show_values)).unwrap_or_default();
        text.push('\n');
        text
    };
    let old = live.map(render).unwrap_or_default();
    let new = render(candidate);
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(CONTEXT_LINES)
        .header(labels.0, labels.1)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(image: &str, environment: &[(&str, &str)], cpu: &str) -> Value {
        json!({
            "family": "web",
            "cpu": cpu,
            "containerDefinitions": [
                {
                    "name": "web",
                    "image": image,
                    "essential": true,
                    "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
                    "environment": environment
                        .iter()
                        .map(|(k, v)| json!({"name": k, "value": v}))
                        .collect::<Vec<_>>(),
                },
                {"name": "log-router", "image": "fluent-bit:stable", "environment": []}
            ],
            "tags": [{"key": "team", "value": "storefront"}]
        })
    }

    fn release(change: Change, live: Value, candidate: Value) -> ReleaseDiff {
        ReleaseDiff {
            name: "web".into(),
            change,
            changes: vec![
                "spec.taskDefinition.containers.web.image: \"web:1\" -> \"web:2\"".into(),
            ],
            live_task_definition_arn: Some(
                "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2".into(),
            ),
            live: Some(live),
            candidate: CandidateDiff {
                source: CandidateSource::Registered {
                    family: "web".into(),
                    base: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1".into(),
                },
                input: candidate,
            },
        }
    }

    fn text(diffs: &[ReleaseDiff], show_values: bool) -> String {
        let mut out = Vec::new();
        write_text(&mut out, diffs, show_values).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_text_diff_shows_only_the_changed_fields_with_context_and_environment_keys_only() {
        let live = input(
            "web:1",
            &[("MODE", "prod"), ("FEATURE_X", "on"), ("LEVEL", "debug")],
            "256",
        );
        let candidate = input(
            "web:2",
            &[("LEVEL", "info"), ("MODE", "prod"), ("NEW", "secret-value")],
            "256",
        );
        let shown = text(&[release(Change::Configured, live, candidate)], false);
        assert!(
            shown.starts_with("release/web configured\n  spec.taskDefinition"),
            "{shown}"
        );
        assert!(
            shown.contains(
                "  task definition: a new revision of web would be registered, copied from \
                 web:1; live web:2\n"
            ),
            "{shown}"
        );
        assert!(
            shown.contains(
                "  environment of container web: added NEW; removed FEATURE_X; changed LEVEL\n"
            ),
            "{shown}"
        );
        assert!(
            shown.contains("--- live web:2\n+++ candidate (new web)\n"),
            "{shown}"
        );
        assert!(
            shown.contains("\n-      \"image\": \"web:1\",\n"),
            "{shown}"
        );
        assert!(
            shown.contains("\n+      \"image\": \"web:2\",\n"),
            "{shown}"
        );
        for absent in [
            "secret-value",
            "prod",
            "debug",
            "\"info\"",
            "\"tags\"",
            "fluent-bit",
        ] {
            assert!(!shown.contains(absent), "{absent} shown:\n{shown}");
        }
        // Only the changed hunk: the unchanged task-level fields far from it are left out.
        assert!(!shown.contains("\"family\""), "{shown}");
        let changed = shown.lines().filter(|l| l.starts_with(['-', '+'])).count();
        assert_eq!(
            changed, 4,
            "two header lines and one changed line each way:\n{shown}"
        );
    }

    #[test]
    fn show_values_puts_the_environment_in_the_diff_sorted_by_name() {
        let live = input("web:1", &[("MODE", "prod"), ("FEATURE_X", "on")], "256");
        let candidate = input("web:1", &[("MODE", "prod")], "256");
        let shown = text(&[release(Change::Configured, live, candidate)], true);
        assert!(
            shown.contains("-          \"name\": \"FEATURE_X\",\n-          \"value\": \"on\"\n"),
            "{shown}"
        );
        assert!(shown.contains("  environment of container web: removed FEATURE_X\n"));
        assert!(!shown.contains("\"image\""), "unchanged: {shown}");
    }

    #[test]
    fn a_candidate_equal_to_the_live_revision_shows_no_diff() {
        let live = input("web:1", &[("MODE", "prod")], "256");
        let mut diff = release(Change::Unchanged, live.clone(), live);
        diff.changes.clear();
        diff.candidate.source = CandidateSource::Live {
            arn: diff.live_task_definition_arn.clone().unwrap(),
        };
        assert_eq!(
            text(&[diff.clone()], false),
            "release/web unchanged\n  task definition: web:2 is live and stays: nothing to deploy\n"
        );
        assert!(!diff.would_change());
        diff.candidate.source = CandidateSource::Reused {
            arn: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1".into(),
            reason: ReuseReason::Base,
        };
        assert!(text(&[diff], false).contains(
            "task definition: web:1 reused (the base has the candidate's content), nothing \
             registered; live web:2"
        ));
    }

    #[test]
    fn json_hides_environment_values_unless_asked_and_has_exactly_the_contract_fields() {
        let live = input("web:1", &[("MODE", "prod")], "256");
        let candidate = input("web:2", &[("MODE", "prod"), ("TOKEN", "s3cret")], "512");
        let diffs = [release(Change::Configured, live, candidate)];
        let hidden: Value = serde_json::from_str(&render_json(&diffs, false)).unwrap();
        let entry = &hidden["releases"][0];
        let mut keys: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "candidateTaskDefinition",
                "changes",
                "liveTaskDefinitionArn",
                "name"
            ]
        );
        assert_eq!(
            entry["liveTaskDefinitionArn"],
            "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2"
        );
        assert_eq!(
            entry["candidateTaskDefinition"]["containerDefinitions"][0]["environment"],
            json!([{"name": "MODE", "value": "(hidden)"}, {"name": "TOKEN", "value": "(hidden)"}])
        );
        assert_eq!(entry["candidateTaskDefinition"]["cpu"], "512");
        assert!(!render_json(&diffs, false).contains("s3cret"));
        let shown: Value = serde_json::from_str(&render_json(&diffs, true)).unwrap();
        assert_eq!(
            shown["releases"][0]["candidateTaskDefinition"]["containerDefinitions"][0]["environment"]
                [1]["value"],
            "s3cret"
        );
    }

    // ----- resolving against the simulated AWS ------------------------------------------

    use crate::clock::Clock;
    use crate::reconcile::candidate::{TAG_BASE, TAG_FINGERPRINT, TAG_RELEASE};
    use crate::sim::{BlueGreenSetup, SimAws, SimStore};

    const IMAGE: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com/web";

    fn document(containers: &str) -> SourceDocument {
        let text = format!(
            "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata: {{name: web}}\nspec:\n  \
             service: {{cluster: prod, name: web}}\n  taskDefinition:\n    from: web\n    \
             containers:\n{containers}  strategy:\n    codeDeploy: {{application: web, \
             deploymentGroup: web-prod}}\n"
        );
        let (_, document) = crate::model::parse_documents_indexed(&text)
            .unwrap_or_else(|e| panic!("{e:?}\n{text}"))
            .remove(0);
        SourceDocument {
            file: "releases/web.yaml".into(),
            number: 1,
            document,
        }
    }

    fn web(image: &str, environment: &str) -> SourceDocument {
        document(&format!(
            "      web: {{image: \"{IMAGE}:{image}\", environment: {{{environment}}}}}\n"
        ))
    }

    /// The simulated AWS as `diff` reaches it.
    fn access(aws: &SimAws) -> crate::access::AwsAccess {
        crate::access::AwsAccess::new(
            std::sync::Arc::new(aws.clone()),
            Clock::fixed_epoch(),
            crate::access::SessionSettings::default(),
        )
    }

    async fn diff_of(store: &SimStore, aws: &SimAws, source: &SourceDocument) -> ReleaseDiff {
        match diff(
            store,
            &access(aws),
            std::slice::from_ref(source),
            Clock::fixed_epoch().now(),
        )
        .await
        {
            Ok(mut diffs) => diffs.remove(0),
            Err(DiffError::Invalid(lines)) => panic!("invalid: {lines:?}"),
            Err(DiffError::Failed(error)) => panic!("failed: {error}"),
        }
    }

    fn env_of(input: &Value) -> Value {
        input["containerDefinitions"][0]["environment"].clone()
    }

    #[tokio::test(start_paused = true)]
    async fn the_candidate_is_resolved_as_the_controller_resolves_it_and_nothing_is_written() {
        let aws = SimAws::new(Clock::fixed_epoch());
        let mut setup = BlueGreenSetup::new("prod", "web");
        setup.environment = BTreeMap::from([("MODE".into(), "prod".into())]);
        let base = aws.add_bluegreen_service(setup).task_definition;
        let store = SimStore::new(Clock::fixed_epoch());

        // The live revision's own content: created, nothing to deploy.
        let same = diff_of(&store, &aws, &web("1.0.0", "")).await;
        assert_eq!(same.change, Change::Created);
        assert!(same.changes.contains(&format!(
            "spec.taskDefinition.containers.web.image: (none) -> \"{IMAGE}:1.0.0\""
        )));
        assert_eq!(
            same.candidate.source,
            CandidateSource::Live {
                arn: base.arn.clone()
            }
        );
        assert_eq!(
            same.live_task_definition_arn.as_deref(),
            Some(base.arn.as_str())
        );

        // A new image and a variable: a new revision copied from the base, not registered.
        let featured = web("2.0.0", "FEATURE_X: \"on\"");
        let new = diff_of(&store, &aws, &featured).await;
        assert_eq!(
            new.candidate.source,
            CandidateSource::Registered {
                family: "web".into(),
                base: base.arn.clone()
            }
        );
        let input = &new.candidate.input;
        assert_eq!(
            input["containerDefinitions"][0]["image"],
            format!("{IMAGE}:2.0.0")
        );
        assert_eq!(
            env_of(input),
            json!([{"name": "FEATURE_X", "value": "on"}, {"name": "MODE", "value": "prod"}])
        );
        assert_eq!(input["tags"][0]["key"], TAG_BASE);
        assert_eq!(aws.task_definitions("web").len(), 1, "nothing registered");
        assert!(!aws.call_counts().contains_key("ecs:RegisterTaskDefinition"));
        assert!(store.peek("web").is_none(), "nothing written");
        // Only reads, and exactly the ones the GitOps pull request role is granted for diff.
        let called: BTreeSet<String> = aws
            .call_counts()
            .into_keys()
            .chain(store.call_counts().into_keys())
            .collect();
        let granted: BTreeSet<String> = crate::aws::actions::DIFF_ACTIONS
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(called, granted);

        // Registered by the controller before (tagged with its fingerprint): reused.
        let content = candidate::candidate_content(&base, &featured.document.spec);
        let tags = BTreeMap::from([
            (TAG_RELEASE.to_string(), "web".to_string()),
            (TAG_BASE.to_string(), base.arn.clone()),
            (
                TAG_FINGERPRINT.to_string(),
                candidate::fingerprint(&content),
            ),
        ]);
        let registered = aws
            .register_task_definition(&base, &content.containers, &tags)
            .await
            .unwrap();
        let reused = diff_of(&store, &aws, &featured).await;
        assert_eq!(
            reused.candidate.source,
            CandidateSource::Reused {
                arn: registered.arn.clone(),
                reason: ReuseReason::RegisteredBefore
            }
        );

        // Without the variable: copied from the base again, never from switchyard's own
        // revision, so the variable is gone.
        let without = diff_of(&store, &aws, &web("3.0.0", "")).await;
        assert_eq!(
            without.candidate.source,
            CandidateSource::Registered {
                family: "web".into(),
                base: base.arn.clone()
            }
        );
        assert_eq!(
            env_of(&without.candidate.input),
            json!([{"name": "MODE", "value": "prod"}])
        );
        assert_eq!(aws.task_definitions("web").len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_the_base_does_not_have_is_an_error_naming_the_file_and_field() {
        let aws = SimAws::new(Clock::fixed_epoch());
        aws.add_bluegreen_service(BlueGreenSetup::new("prod", "web"));
        let store = SimStore::new(Clock::fixed_epoch());
        let source = document("      sidecar: {image: busybox}\n");
        let Err(DiffError::Invalid(lines)) =
            diff(&store, &access(&aws), &[source], Clock::fixed_epoch().now()).await
        else {
            panic!("a container the base lacks must be invalid");
        };
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with(
                "releases/web.yaml: document 1: spec.taskDefinition.containers.sidecar: task \
                 definition web:1 has no container sidecar"
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn text_from_outside_is_escaped() {
        let live = input("web:1", &[], "256");
        let candidate = input("web:2\u{1b}[2J", &[("K\nEY", "v")], "256");
        let mut diff = release(Change::Configured, live, candidate);
        diff.changes = vec!["spec.x: \"\u{1b}]0;title\u{7}\" -> (none)".into()];
        let shown = text(&[diff], false);
        assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n'),
            "a raw control character: {shown:?}"
        );
        assert!(
            shown.contains(r"environment of container web: added K\nEY"),
            "{shown}"
        );
        let json = render_json(
            &[release(
                Change::Configured,
                json!({}),
                json!({"x": "\u{9b}"}),
            )],
            true,
        );
        assert!(
            !json.chars().any(|c| c.is_control() && c != '\n'),
            "{json:?}"
        );
    }
}
