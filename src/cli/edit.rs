//! Conditional spec edits (`release set`, `pause`, `resume`) and operator requests (`promote`,
//! `abort`, `retry`).
//!
//! A spec edit reads the release, changes the stored spec, validates the result (nothing is
//! written if it is invalid), and writes it on the condition that the generation is still the
//! one it read. When another writer got in between, it reads again and applies its change to
//! the new spec, a bounded number of times: concurrent edits of different fields all land,
//! each bumping the generation once.

use std::cell::Cell;
use std::io::Write;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{AuditAction, OperatorRequest, Phase, RequestKind, parse_spec_value};
use crate::ports::{ReleaseStore, SpecPrecondition, SpecWrite, StoreError};
use crate::retry::{Attempt, ConflictPolicy, GaveUp, retry_on_conflict};

use super::apply::diff_values;
use super::{Author, CliError, get_release};
use crate::terminal::{escape_controls, write_line};

/// `--image CONTAINER=IMAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArg {
    pub container: String,
    pub image: String,
}

/// `--env CONTAINER:KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvArg {
    pub container: String,
    pub key: String,
    pub value: String,
}

/// Parses `CONTAINER=IMAGE` (the image may itself hold '=' or ':').
pub fn parse_image_arg(value: &str) -> Result<ImageArg, String> {
    match value.split_once('=') {
        Some((container, image)) if !container.is_empty() => Ok(ImageArg {
            container: container.to_string(),
            image: image.to_string(),
        }),
        _ => Err(format!(
            "`{value}` is not CONTAINER=IMAGE (for example web=registry/web:1.4.2)"
        )),
    }
}

/// Parses `CONTAINER:KEY=VALUE` (the value may hold ':' and '=').
pub fn parse_env_arg(value: &str) -> Result<EnvArg, String> {
    let parsed = value.split_once(':').and_then(|(container, assignment)| {
        let (key, env_value) = assignment.split_once('=')?;
        (!container.is_empty() && !key.is_empty()).then(|| EnvArg {
            container: container.to_string(),
            key: key.to_string(),
            value: env_value.to_string(),
        })
    });
    parsed.ok_or_else(|| {
        format!("`{value}` is not CONTAINER:KEY=VALUE (for example web:FEATURE_X=on)")
    })
}

/// The changes of one `release set`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetArgs {
    pub images: Vec<ImageArg>,
    pub env: Vec<EnvArg>,
}

/// What a spec edit did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditOutcome {
    pub name: String,
    /// The new generation, or the current one when nothing changed.
    pub generation: u64,
    /// False when the spec already was as asked (nothing was written).
    pub changed: bool,
    /// The fields that changed (`path: old -> new`, environment values hidden).
    pub diff: Vec<String>,
    /// How many writes lost a race before this one won.
    pub conflicts: u32,
}

/// `release set`: changes the named containers' image and environment in the stored spec of
/// an existing release (a container the spec does not list yet is added). Prints
/// `release/NAME generation N`.
pub async fn release_set(
    store: &dyn ReleaseStore,
    name: &str,
    args: &SetArgs,
    author: &Author,
    out: &mut dyn Write,
) -> Result<EditOutcome, CliError> {
    if args.images.is_empty() && args.env.is_empty() {
        return Err(CliError::Invalid(
            "nothing to set: give --image CONTAINER=IMAGE or --env CONTAINER:KEY=VALUE".into(),
        ));
    }
    let outcome = edit_spec(store, name, AuditAction::ReleaseSet, author, |spec| {
        for arg in &args.images {
            let container = container_at(spec, &arg.container)?;
            container.insert("image".into(), Value::String(arg.image.clone()));
        }
        for arg in &args.env {
            let container = container_at(spec, &arg.container)?;
            let environment = object_in(container, "environment", &arg.container)?;
            environment.insert(arg.key.clone(), Value::String(arg.value.clone()));
        }
        Ok(())
    })
    .await?;
    if outcome.changed {
        write_line(
            out,
            &format!("release/{name} generation {}", outcome.generation),
        )?;
    } else {
        write_line(
            out,
            &format!(
                "release/{name} unchanged (generation {}): the spec already says so",
                outcome.generation
            ),
        )?;
    }
    Ok(outcome)
}

/// `pause` (`paused: true`) and `resume` (`paused: false`): a spec edit of `spec.paused`.
pub async fn set_paused(
    store: &dyn ReleaseStore,
    name: &str,
    paused: bool,
    author: &Author,
    out: &mut dyn Write,
) -> Result<EditOutcome, CliError> {
    let action = if paused {
        AuditAction::Pause
    } else {
        AuditAction::Resume
    };
    let outcome = edit_spec(store, name, action, author, |spec| {
        let spec = spec
            .as_object_mut()
            .ok_or_else(|| CliError::Invalid(format!("release/{name}: spec: is not a map")))?;
        spec.insert("paused".into(), Value::Bool(paused));
        Ok(())
    })
    .await?;
    let generation = outcome.generation;
    match (paused, outcome.changed) {
        (true, true) => {
            write_line(
                out,
                &format!("release/{name} paused (generation {generation})"),
            )?;
            write_line(
                out,
                &format!(
                    "  the controller starts nothing new for it (no deployment, no automatic \
                 promotion); a deployment in flight is still followed and rolled back if an \
                 alarm fires. Resume with `switchyard resume {name}`."
                ),
            )?;
        }
        (true, false) => write_line(
            out,
            &format!("release/{name} already paused (generation {generation})"),
        )?,
        (false, true) => {
            write_line(
                out,
                &format!("release/{name} resumed (generation {generation})"),
            )?;
            write_line(
                out,
                "  the controller converges on the desired version again.",
            )?;
        }
        (false, false) => write_line(
            out,
            &format!("release/{name} is not paused (generation {generation}); nothing to resume"),
        )?,
    }
    Ok(outcome)
}

/// Reads, edits, validates and conditionally writes the spec, again after each lost race.
async fn edit_spec(
    store: &dyn ReleaseStore,
    name: &str,
    action: AuditAction,
    author: &Author,
    edit: impl Fn(&mut Value) -> Result<(), CliError>,
) -> Result<EditOutcome, CliError> {
    let attempts = Cell::new(0);
    let outcome = retry_on_conflict(ConflictPolicy::CLI_EDIT, || {
        // Every attempt but the first follows a lost race.
        let conflicts = attempts.replace(attempts.get() + 1);
        let edit = &edit;
        async move {
            let current = get_release(store, name).await?;
            let current_spec = current.spec.value();
            let mut edited = current_spec.clone();
            edit(&mut edited)?;
            let spec = parse_spec_value(&edited).map_err(|errors| {
                // One problem per line, each escaped: the line breaks are the only control
                // characters of the message.
                let lines: Vec<String> = errors
                    .iter()
                    .map(|e| format!("  {}", escape_controls(&e.to_string())))
                    .collect();
                CliError::Invalid(format!(
                    "release/{}: the resulting spec is invalid; nothing was written:\n{}",
                    escape_controls(name),
                    lines.join("\n")
                ))
            })?;
            // Stored as `apply` stores it, so an `apply` of the same document finds it
            // unchanged.
            let spec = serde_json::to_value(&spec)
                .map_err(|e| CliError::Invalid(format!("release/{name}: cannot encode: {e}")))?;
            let mut diff = Vec::new();
            diff_values("spec", &current_spec, &spec, &mut diff);
            if diff.is_empty() {
                return Ok(EditOutcome {
                    name: name.to_string(),
                    generation: current.generation,
                    changed: false,
                    diff,
                    conflicts,
                });
            }
            let write = SpecWrite {
                name: name.to_string(),
                labels: current.labels.clone(),
                spec,
                precondition: SpecPrecondition::Generation(current.generation),
                written_by: author.by.clone(),
                written_at: author.at,
                action,
                detail: diff.join("; "),
            };
            match store.put_spec(write).await {
                Ok(generation) => Ok(EditOutcome {
                    name: name.to_string(),
                    generation,
                    changed: true,
                    diff,
                    conflicts,
                }),
                Err(StoreError::ConditionFailed { .. }) => {
                    tracing::debug!(release = %name, read_generation = current.generation, conflicts = conflicts + 1, "the release changed since it was read; reading it again");
                    Err(Attempt::Conflict)
                }
                Err(other) => Err(Attempt::Failed(other.into())),
            }
        }
    })
    .await;
    outcome.map_err(|gave_up| match gave_up {
        GaveUp::Conflicts { attempts } => CliError::ConflictOrNotFound(format!(
            "release/{name}: other writers changed it {attempts} times while this command \
             tried to; nothing was written, run it again"
        )),
        GaveUp::Failed(error) => error,
    })
}

/// `spec.taskDefinition.containers.<container>`, created when missing.
fn container_at<'a>(
    spec: &'a mut Value,
    container: &str,
) -> Result<&'a mut Map<String, Value>, CliError> {
    let spec = spec
        .as_object_mut()
        .ok_or_else(|| CliError::Invalid("spec: is not a map".into()))?;
    let task_definition = object_in(spec, "taskDefinition", "spec")?;
    let containers = object_in(task_definition, "containers", "spec.taskDefinition")?;
    object_in(containers, container, "spec.taskDefinition.containers")
}

/// The map under `key` of `parent`, created when missing or null.
fn object_in<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
    parent_path: &str,
) -> Result<&'a mut Map<String, Value>, CliError> {
    let entry = parent
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut().ok_or_else(|| {
        CliError::Invalid(format!(
            "{parent_path}.{key}: the stored value is not a map; fix it with apply"
        ))
    })
}

/// What `promote`, `abort` or `retry` recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestOutcome {
    pub name: String,
    pub kind: RequestKind,
    /// The generation the request applies to (the current one).
    pub generation: u64,
    pub requested_by: String,
    /// The release's phase when the request was recorded, if it has a status.
    pub phase: Option<Phase>,
}

impl RequestOutcome {
    /// What the controller will do with the request.
    pub fn explanation(&self) -> String {
        let generation = self.generation;
        match self.kind {
            RequestKind::Promote => format!(
                "the controller shifts production traffic to generation {generation}'s \
                 deployment (ContinueDeployment) once it is ready and waiting for promotion; \
                 the request is used once and only for generation {generation}"
            ),
            RequestKind::Abort => format!(
                "the controller stops generation {generation}'s deployment in flight and rolls \
                 back to the previous version; with nothing in flight the request is ignored"
            ),
            RequestKind::Retry => format!(
                "if generation {generation} rolled back or failed, the controller deploys it \
                 again as a new attempt; otherwise the request is ignored"
            ),
        }
    }
}

/// Records an operator request for the release's current generation. Never bumps the
/// generation and never calls AWS: the controller acts on it.
pub async fn request(
    store: &dyn ReleaseStore,
    name: &str,
    kind: RequestKind,
    author: &Author,
    out: &mut dyn Write,
) -> Result<RequestOutcome, CliError> {
    request_full(store, name, kind, false, author, out).await
}

/// [`request`], with `full` for `promote --full` (skip every remaining step of a canary).
pub async fn request_full(
    store: &dyn ReleaseStore,
    name: &str,
    kind: RequestKind,
    full: bool,
    author: &Author,
    out: &mut dyn Write,
) -> Result<RequestOutcome, CliError> {
    let current = get_release(store, name).await?;
    let request = OperatorRequest {
        generation: current.generation,
        requested_by: author.by.clone(),
        requested_at: author.at,
        full,
    };
    store.put_request(name, kind, request).await?;
    let outcome = RequestOutcome {
        name: name.to_string(),
        kind,
        generation: current.generation,
        requested_by: author.by.clone(),
        phase: current.status.as_ref().map(|s| s.phase),
    };
    let phase = match (&current.status, outcome.phase) {
        (Some(status), Some(phase)) => format!(
            " (now {phase}, status of generation {})",
            status.observed_generation
        ),
        _ => " (no status yet)".to_string(),
    };
    write_line(
        out,
        &format!(
            "release/{name} {} requested for generation {} by {}{phase}",
            kind.as_str(),
            outcome.generation,
            outcome.requested_by
        ),
    )?;
    write_line(out, &format!("  {}", outcome.explanation()))?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::sim::SimStore;

    fn assert_no_raw_control(text: &str) {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "a raw control character: {text:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn requests_and_edits_print_outside_text_escaped() {
        let store = SimStore::new(Clock::fixed_epoch());
        let name = "web\u{9b}2J";
        store
            .put_spec(SpecWrite {
                name: name.into(),
                labels: Default::default(),
                spec: serde_json::json!({
                    "service": {"cluster": "prod", "name": "web"},
                    "taskDefinition": {"from": "web", "containers": {"web": {"image": "web:1"}}},
                    "strategy": {"codeDeploy": {"application": "web", "deploymentGroup": "web-prod"}}
                }),
                precondition: SpecPrecondition::Any,
                written_by: "test".into(),
                written_at: Clock::fixed_epoch().now(),
                action: AuditAction::Apply,
                detail: String::new(),
            })
            .await
            .unwrap();
        let author = Author {
            by: "arn:aws:sts::111122223333:assumed-role/ci/\u{1b}[8mhidden".into(),
            at: Clock::fixed_epoch().now(),
        };
        let mut out = Vec::new();
        request(&store, name, RequestKind::Retry, &author, &mut out)
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_no_raw_control(&text);
        assert!(
            text.starts_with(r"release/web\u{9b}2J retry requested for generation 1 by arn:aws:sts::111122223333:assumed-role/ci/\u{1b}[8mhidden"),
            "{text}"
        );

        let mut out = Vec::new();
        set_paused(&store, name, true, &author, &mut out)
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_no_raw_control(&text);
        assert_eq!(text.lines().count(), 2, "{text}");

        // A spec made invalid: one line per problem, every value escaped.
        let args = SetArgs {
            images: vec![ImageArg {
                container: "web\u{1b}[1A".into(),
                image: "img\n\u{1b}[2J".into(),
            }],
            env: Vec::new(),
        };
        let error = release_set(&store, name, &args, &author, &mut Vec::new())
            .await
            .unwrap_err();
        let message = error.to_string();
        assert_no_raw_control(&message);
        assert!(message.contains("nothing was written:\n  "), "{message}");
    }

    #[test]
    fn image_and_env_arguments_parse() {
        assert_eq!(
            parse_image_arg("web=registry:5000/web:1.2=x"),
            Ok(ImageArg {
                container: "web".into(),
                image: "registry:5000/web:1.2=x".into()
            })
        );
        assert!(parse_image_arg("web").is_err());
        assert!(parse_image_arg("=img").is_err());
        assert_eq!(
            parse_env_arg("web:URL=http://a:1/?q=2"),
            Ok(EnvArg {
                container: "web".into(),
                key: "URL".into(),
                value: "http://a:1/?q=2".into()
            })
        );
        assert!(parse_env_arg("web:URL").is_err());
        assert!(parse_env_arg("URL=x").is_err());
        assert!(parse_env_arg(":URL=x").is_err());
        assert!(parse_env_arg("web:=x").is_err());
    }
}
