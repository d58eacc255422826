//! `get` and `history`: tables for people, JSON and YAML for programs.

use jiff::Timestamp;
use serde::Serialize;

use crate::model::{API_VERSION, AuditEntry, HistoryEntry, Outcome};
use crate::ports::StoredRelease;
use crate::ports::task_definition_short_name;

use super::{CliError, ReleaseView};
use crate::terminal::{escape_controls, escape_json_controls};

/// `-o table|json|yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Pretty JSON, with a final newline; control characters in strings are escaped (the data
/// stays exact).
pub fn to_json(value: &impl Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map(|text| escape_json_controls(text) + "\n")
        .map_err(|e| CliError::Invalid(format!("cannot encode the output as JSON: {e}")))
}

/// Block-style YAML, ending with a newline.
pub fn to_yaml(value: &impl Serialize) -> Result<String, CliError> {
    // Through JSON first: one representation of every value (timestamps as RFC 3339 text).
    let value = serde_json::to_value(value)
        .map_err(|e| CliError::Invalid(format!("cannot encode the output: {e}")))?;
    let mut text = serde_saphyr::to_string(&value)
        .map_err(|e| CliError::Invalid(format!("cannot encode the output as YAML: {e}")))?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// `get` without a name, as JSON or YAML: a list in the Kubernetes style.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListView {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub items: Vec<ReleaseView>,
}

impl ListView {
    pub fn new(releases: Vec<StoredRelease>) -> Self {
        Self {
            api_version: API_VERSION,
            kind: "ReleaseList",
            items: releases.into_iter().map(ReleaseView::from).collect(),
        }
    }
}

/// How long ago, in the style of `kubectl get`: `45s`, `12m`, `5h`, `3d`.
pub fn format_age(since: Timestamp, now: Timestamp) -> String {
    let seconds = now.as_second().saturating_sub(since.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// An RFC 3339 time to the second, in UTC.
fn format_time(at: Timestamp) -> String {
    Timestamp::from_second(at.as_second())
        .unwrap_or(at)
        .to_string()
}

/// `text` cut to `max` characters, ending with `...` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    if max <= 3 {
        return text.chars().take(max).collect();
    }
    let head: String = text.chars().take(max - 3).collect();
    format!("{head}...")
}

/// Aligned columns separated by three spaces; the last column is cut so that each line fits
/// in `width` characters when a width is given (a terminal), and never below 20 characters.
/// Every cell's control characters are escaped (cells hold text from AWS and documents).
fn render_table(header: &[&str], rows: &[Vec<String>], width: Option<usize>) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| escape_controls(cell).into_owned())
                .collect()
        })
        .collect();
    let rows = rows.as_slice();
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns - 1) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let fixed: usize = widths[..columns - 1].iter().map(|w| w + 3).sum();
    let last_max = width.map(|w| w.saturating_sub(fixed).max(20));
    let mut text = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == columns {
                match last_max {
                    Some(max) => line.push_str(&truncate(cell, max)),
                    None => line.push_str(cell),
                }
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `get` as a table: NAME, PHASE, GEN/OBSERVED, LIVE, DESIRED, TRAFFIC (live/candidate
/// percent), UPDATED (how long ago the spec was written), MESSAGE (cut to `width`); after
/// NAME, REGION and ACCOUNT (where the controller found each release to live) when the
/// releases listed span several.
pub fn render_list(releases: &[StoredRelease], now: Timestamp, width: Option<usize>) -> String {
    let place = |release: &StoredRelease| {
        let status = release.status.as_ref();
        (
            status.and_then(|s| s.region.clone()),
            status.and_then(|s| s.account.clone()),
        )
    };
    let spans = |values: Vec<Option<String>>| {
        values
            .into_iter()
            .flatten()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1
    };
    let (regions, accounts): (Vec<_>, Vec<_>) = releases.iter().map(place).unzip();
    let (show_region, show_account) = (spans(regions), spans(accounts));
    let rows: Vec<Vec<String>> = releases
        .iter()
        .map(|release| {
            let status = release.status.as_ref();
            let dash = || "-".to_string();
            let (region, account) = place(release);
            let mut row = vec![release.name.clone()];
            if show_region {
                row.push(region.unwrap_or_else(dash));
            }
            if show_account {
                row.push(account.unwrap_or_else(dash));
            }
            row.extend([
                status.map_or_else(|| "<none>".to_string(), |s| s.phase.to_string()),
                format!(
                    "{}/{}",
                    release.generation,
                    status.map_or_else(dash, |s| s.observed_generation.to_string())
                ),
                status
                    .and_then(|s| s.live_task_definition.as_deref())
                    .map_or_else(dash, |arn| task_definition_short_name(arn).to_string()),
                status
                    .and_then(|s| s.desired_task_definition.as_deref())
                    .map_or_else(dash, |arn| task_definition_short_name(arn).to_string()),
                status
                    .and_then(|s| s.traffic_weights)
                    .map_or_else(dash, |t| format!("{}/{}", t.live, t.candidate)),
                release
                    .spec_updated_at
                    .map_or_else(dash, |at| format_age(at, now)),
                status.map_or_else(String::new, |s| s.message.clone()),
            ]);
            row
        })
        .collect();
    let mut header = vec!["NAME"];
    if show_region {
        header.push("REGION");
    }
    if show_account {
        header.push("ACCOUNT");
    }
    header.extend([
        "PHASE",
        "GEN/OBSERVED",
        "LIVE",
        "DESIRED",
        "TRAFFIC",
        "UPDATED",
        "MESSAGE",
    ]);
    render_table(&header, &rows, width)
}

/// One line of `history`: a write recorded in the audit trail (`source: audit`) or a rollout
/// or request the controller finished (`source: controller`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    pub at: Timestamp,
    pub generation: u64,
    pub source: &'static str,
    /// The audit action (`apply`, `release set`, `pause`, `promote`, ...) or the controller's
    /// outcome (`Succeeded`, `RolledBack`, `Promoted`, ...).
    pub action: String,
    /// The writer's AWS identity, or `controller`.
    pub by: String,
    pub detail: String,
}

impl From<&AuditEntry> for HistoryItem {
    fn from(entry: &AuditEntry) -> Self {
        let detail = if entry.detail.is_empty() {
            format!("{} requested", entry.action)
        } else {
            entry.detail.clone()
        };
        HistoryItem {
            at: entry.at,
            generation: entry.generation,
            source: "audit",
            action: entry.action.clone(),
            by: entry.by.clone(),
            detail,
        }
    }
}

fn outcome_name(outcome: Outcome) -> String {
    serde_json::to_value(outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{outcome:?}"))
}

impl From<&HistoryEntry> for HistoryItem {
    fn from(entry: &HistoryEntry) -> Self {
        let mut detail = entry.message.clone();
        let mut facts = vec![format!("rollout {}", entry.rollout)];
        if let Some(id) = &entry.deployment_id {
            facts.push(id.clone());
        }
        if let Some(arn) = &entry.task_definition {
            facts.push(task_definition_short_name(arn).to_string());
        }
        detail.push_str(&format!(" ({})", facts.join(", ")));
        HistoryItem {
            at: entry.finished_at,
            generation: entry.generation,
            source: "controller",
            action: outcome_name(entry.outcome),
            by: "controller".to_string(),
            detail,
        }
    }
}

/// The status history and the audit trail of a release, merged by time, newest first.
pub fn history_items(release: &StoredRelease) -> Vec<HistoryItem> {
    let mut items: Vec<HistoryItem> = release.audit.iter().map(HistoryItem::from).collect();
    if let Some(status) = &release.status {
        items.extend(status.history.iter().map(HistoryItem::from));
    }
    // Stable: at equal times the audit (the cause) stays before the controller's outcome, and
    // reversed that puts the outcome first, as newest-first reads.
    items.sort_by_key(|item| item.at);
    items.reverse();
    items
}

/// `history` as a table: TIME, GEN, ACTION, BY, DETAIL (cut to `width`).
pub fn render_history(items: &[HistoryItem], width: Option<usize>) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            vec![
                format_time(item.at),
                item.generation.to_string(),
                item.action.clone(),
                item.by.clone(),
                item.detail.clone(),
            ]
        })
        .collect();
    render_table(&["TIME", "GEN", "ACTION", "BY", "DETAIL"], &rows, width)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Phase, ReleaseStatus, TrafficWeights};

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + second).unwrap()
    }

    fn release() -> StoredRelease {
        StoredRelease {
            name: "web".into(),
            generation: 7,
            labels: Default::default(),
            spec: serde_json::json!({}).into(),
            requests: Default::default(),
            status: Some(ReleaseStatus {
                observed_generation: 6,
                phase: Phase::Progressing,
                message: "d-1 is shifting traffic to the new version of web, slowly".into(),
                live_task_definition: Some(
                    "arn:aws:ecs:us-east-1:111122223333:task-definition/web:3".into(),
                ),
                desired_task_definition: Some(
                    "arn:aws:ecs:us-east-1:111122223333:task-definition/web:4".into(),
                ),
                traffic_weights: Some(TrafficWeights {
                    live: 90.0,
                    candidate: 10.0,
                }),
                history: vec![HistoryEntry {
                    generation: 6,
                    rollout: 1,
                    outcome: Outcome::RolledBack,
                    task_definition: None,
                    deployment_id: Some("d-0".into()),
                    started_at: Some(at(10)),
                    finished_at: at(20),
                    message: "alarm web-5xx".into(),
                }],
                ..ReleaseStatus::default()
            }),
            status_version: 3,
            spec_updated_by: Some("arn:aws:iam::111122223333:user/alice".into()),
            spec_updated_at: Some(at(0)),
            audit: vec![
                AuditEntry {
                    at: at(0),
                    by: "arn:aws:iam::111122223333:user/alice".into(),
                    action: "apply".into(),
                    generation: 6,
                    detail: "created".into(),
                },
                AuditEntry {
                    at: at(30),
                    by: "arn:aws:iam::111122223333:user/bob".into(),
                    action: "retry".into(),
                    generation: 6,
                    detail: String::new(),
                },
            ],
        }
    }

    #[test]
    fn the_list_shows_one_aligned_row_per_release_with_the_message_cut_to_the_width() {
        let table = render_list(&[release()], at(3 * 60), None);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "NAME   PHASE         GEN/OBSERVED   LIVE    DESIRED   TRAFFIC   UPDATED   MESSAGE"
        );
        assert_eq!(
            lines[1],
            "web    Progressing   7/6            web:3   web:4     90/10     3m        d-1 is shifting traffic to the new version of web, slowly"
        );
        let narrow = render_list(&[release()], at(3 * 60), Some(100));
        for line in narrow.lines() {
            assert!(line.chars().count() <= 100, "{line}");
        }
        assert!(narrow.lines().nth(1).unwrap().ends_with("..."));
    }

    #[test]
    fn region_and_account_columns_show_only_when_the_releases_span_several() {
        let place = |name: &str, region: &str, account: &str| {
            let mut release = release();
            release.name = name.into();
            let status = release.status.as_mut().unwrap();
            status.region = Some(region.into());
            status.account = Some(account.into());
            release
        };
        let one_place = [
            place("web", "us-east-1", "111122223333"),
            place("api", "us-east-1", "111122223333"),
        ];
        let table = render_list(&one_place, at(3 * 60), None);
        assert!(table.starts_with("NAME   PHASE "), "{table}");
        let regions = [
            place("web", "us-east-1", "111122223333"),
            place("api", "eu-west-1", "111122223333"),
        ];
        let table = render_list(&regions, at(3 * 60), None);
        assert!(table.starts_with("NAME   REGION      PHASE "), "{table}");
        assert!(
            table
                .lines()
                .nth(2)
                .unwrap()
                .starts_with("api    eu-west-1   Progressing"),
            "{table}"
        );
        let both = [
            place("web", "us-east-1", "111122223333"),
            place("api", "eu-west-1", "444455556666"),
        ];
        let table = render_list(&both, at(3 * 60), None);
        assert!(
            table
                .lines()
                .nth(2)
                .unwrap()
                .starts_with("api    eu-west-1   444455556666   Progressing"),
            "{table}"
        );
    }

    #[test]
    fn history_merges_the_audit_and_the_rollouts_newest_first() {
        let items = history_items(&release());
        let actions: Vec<&str> = items.iter().map(|i| i.action.as_str()).collect();
        assert_eq!(actions, ["retry", "RolledBack", "apply"]);
        assert_eq!(items[0].detail, "retry requested");
        assert_eq!(items[1].by, "controller");
        assert_eq!(items[1].detail, "alarm web-5xx (rollout 1, d-0)");
        let table = render_history(&items, None);
        assert!(
            table.lines().nth(1).unwrap().starts_with(
                "2026-01-01T00:00:30Z   6     retry        arn:aws:iam::111122223333:user/bob"
            ),
            "{table}"
        );
    }

    /// A status message, history and audit entries carrying newlines and escape sequences,
    /// as AWS error messages and documents can.
    fn hostile_release() -> StoredRelease {
        let mut release = release();
        release.name = "web\u{1b}]0;pwned\u{7}".into();
        let status = release.status.as_mut().unwrap();
        status.message =
            "Deployment failed:\nAccessDenied\r\u{1b}[2J\u{1b}[31mred\u{9b}1A\u{7f}".into();
        status.history[0].message = "line one\nline two\u{1b}[1A".into();
        status.history[0].deployment_id = Some("d-\u{1b}[K".into());
        release.audit[0].by = "arn:aws:iam::111122223333:user/\u{1b}[8malice".into();
        release.audit[0].detail = "created\n2026-01-01T00:00:00Z   6     apply   forged".into();
        release
    }

    /// No control character but the line ends; as many lines as rows.
    fn assert_safe(table: &str, rows: usize) {
        assert_eq!(table.lines().count(), rows + 1, "{table}");
        assert!(
            !table.chars().any(|c| c.is_control() && c != '\n'),
            "a raw control character reached the terminal: {table:?}"
        );
    }

    #[test]
    fn tables_show_control_characters_escaped() {
        let release = hostile_release();
        for width in [None, Some(100)] {
            let table = render_list(std::slice::from_ref(&release), at(180), width);
            assert_safe(&table, 1);
            assert!(table.contains(r"web\u{1b}]0;pwned\u{7}"), "{table}");
        }
        let table = render_list(std::slice::from_ref(&release), at(180), None);
        assert!(
            table.contains(
                r"Deployment failed:\nAccessDenied\r\u{1b}[2J\u{1b}[31mred\u{9b}1A\u{7f}"
            ),
            "{table}"
        );
        let history = render_history(&history_items(&release), None);
        assert_safe(&history, 3);
        assert!(
            history.contains(r"line one\nline two\u{1b}[1A (rollout 1, d-\u{1b}[K)"),
            "{history}"
        );
        assert!(
            history.contains(r"created\n2026-01-01T00:00:00Z"),
            "{history}"
        );
    }

    #[test]
    fn json_and_yaml_carry_the_exact_text_with_no_raw_control_character() {
        let release = hostile_release();
        let view = ListView::new(vec![release.clone()]);
        let message = release.status.as_ref().unwrap().message.clone();

        let json = to_json(&view).unwrap();
        assert!(
            !json.chars().any(|c| c.is_control() && c != '\n'),
            "{json:?}"
        );
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["items"][0]["status"]["message"], message.as_str());

        let yaml = to_yaml(&view).unwrap();
        assert!(
            !yaml.chars().any(|c| c.is_control() && c != '\n'),
            "{yaml:?}"
        );
        let back: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back["items"][0]["status"]["message"], message.as_str());
        assert_eq!(back["items"][0]["metadata"]["name"], release.name.as_str());
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(format_age(at(0), at(59)), "59s");
        assert_eq!(format_age(at(0), at(600)), "10m");
        assert_eq!(format_age(at(0), at(5 * 3600)), "5h");
        assert_eq!(format_age(at(0), at(3 * 86_400)), "3d");
        assert_eq!(format_age(at(10), at(0)), "0s");
    }

    #[test]
    fn yaml_and_json_outputs_end_with_a_newline() {
        let view = ListView::new(vec![release()]);
        let yaml = to_yaml(&view).unwrap();
        assert!(
            yaml.starts_with("apiVersion: switchyard.dev/v1\n"),
            "{yaml}"
        );
        assert!(to_json(&view).unwrap().ends_with("}\n"));
    }
}
