//! `watch`: follow a release until it settles.
//!
//! On a terminal, a small block redrawn in place (phase, lifecycle event, traffic as a
//! progress bar, message, elapsed time); otherwise one line per change, or with `-o json` /
//! `-o yaml` one document per change. Settled means the status describes the current
//! generation and its phase is settled (Healthy, RolledBack, Failed, Invalid, Paused).
//! Text from the status is shown with its control characters escaped.

use std::io::Write;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::{Phase, ReleaseStatus};
use crate::ports::{ReleaseStore, StoredRelease, task_definition_short_name};

use super::{CliError, Format, ReleaseView, to_yaml};
use crate::terminal::{escape_controls, escape_json_controls, write_line};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// How often to read the release.
    pub interval: Duration,
    /// How long to wait for it to settle; `None` waits for ever.
    pub timeout: Option<Duration>,
    pub format: Format,
    /// Redraw in place (stdout is a terminal and the format is a table).
    pub terminal: bool,
    /// The terminal's width: redrawn lines are cut to it, so that none wraps (a wrapped line
    /// would throw off the redraw).
    pub width: Option<usize>,
}

/// What one read of the release shows; a change of any of it is a new line.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    generation: u64,
    observed: Option<u64>,
    phase: Option<Phase>,
    lifecycle_event: Option<String>,
    /// Candidate share of production traffic, in percent.
    candidate: Option<f64>,
    deployment_id: Option<String>,
    desired: Option<String>,
    /// The analysis's one-line summary (its metrics' latest values and counts).
    analysis: Option<String>,
    message: String,
}

impl Snapshot {
    fn of(release: &StoredRelease) -> Self {
        let status: Option<&ReleaseStatus> = release.status.as_ref();
        Snapshot {
            generation: release.generation,
            observed: status.map(|s| s.observed_generation),
            phase: status.map(|s| s.phase),
            lifecycle_event: status.and_then(|s| s.stage()),
            candidate: status.and_then(|s| s.traffic_weights).map(|t| t.candidate),
            deployment_id: status.and_then(|s| s.deployment_id.clone()),
            desired: status
                .and_then(|s| s.desired_task_definition.as_deref())
                .map(|arn| task_definition_short_name(arn).to_string()),
            analysis: status
                .and_then(|s| s.analysis.as_ref())
                .map(|a| a.summary()),
            message: status.map(|s| s.message.clone()).unwrap_or_default(),
        }
    }

    /// The settled phase, if the status describes the current generation and is settled.
    fn settled(&self) -> Option<Phase> {
        match self.phase {
            Some(phase) if self.observed == Some(self.generation) && phase.is_settled() => {
                Some(phase)
            }
            _ => None,
        }
    }

    fn phase_text(&self) -> String {
        match (self.phase, self.observed) {
            (None, _) => "no status yet".to_string(),
            (Some(phase), Some(observed)) if observed != self.generation => {
                format!(
                    "{phase} (of generation {observed}; generation {} not yet observed)",
                    self.generation
                )
            }
            (Some(phase), _) => phase.to_string(),
        }
    }

    /// One line for logs and pipes.
    fn line(&self, name: &str, elapsed: Duration) -> String {
        let mut parts = vec![
            format!("+{}s", elapsed.as_secs()),
            format!("release/{name}"),
            format!("generation {}", self.generation),
            self.phase_text(),
        ];
        if let Some(event) = &self.lifecycle_event {
            parts.push(format!("event {event}"));
        }
        if let Some(candidate) = self.candidate {
            parts.push(format!("traffic {candidate}% new"));
        }
        if let Some(analysis) = &self.analysis {
            parts.push(analysis.clone());
        }
        if !self.message.is_empty() {
            parts.push(self.message.clone());
        }
        parts.join("  ")
    }

    /// The block redrawn on a terminal.
    fn block(&self, name: &str, elapsed: Duration) -> Vec<String> {
        let mut lines = vec![
            format!("release/{name}   generation {}", self.generation),
            format!("  phase:      {}", self.phase_text()),
        ];
        if let Some(id) = &self.deployment_id {
            let desired = self.desired.as_deref().unwrap_or("?");
            lines.push(format!("  deployment: {id} ({desired})"));
        }
        if let Some(event) = &self.lifecycle_event {
            lines.push(format!("  event:      {event}"));
        }
        if let Some(candidate) = self.candidate {
            lines.push(format!("  traffic:    {}", progress_bar(candidate, 30)));
        }
        if let Some(analysis) = &self.analysis {
            lines.push(format!("  analysis:   {analysis}"));
        }
        lines.push(format!("  message:    {}", self.message));
        lines.push(format!("  elapsed:    {}s", elapsed.as_secs()));
        lines
    }
}

/// `line` cut to `max` characters.
fn cut(line: &str, max: usize) -> String {
    line.chars().take(max.max(1)).collect()
}

/// `[#########.....................]  30% new`.
fn progress_bar(percent: f64, width: usize) -> String {
    let percent = if percent.is_finite() {
        percent.clamp(0.0, 100.0)
    } else {
        0.0
    };
    let filled = ((percent / 100.0) * width as f64).round() as usize;
    format!(
        "[{}{}] {percent:>3}% new",
        "#".repeat(filled),
        ".".repeat(width - filled.min(width))
    )
}

/// Follows `name` until it settles: `Ok` when Healthy, [`CliError::NotHealthy`] when it
/// settles otherwise (exit 5), [`CliError::Timeout`] when the timeout passes first (exit 6),
/// `ConflictOrNotFound` when the release does not exist or is deleted meanwhile (exit 3).
/// A store that is briefly unavailable is read again at the next interval.
pub async fn watch(
    store: &dyn ReleaseStore,
    name: &str,
    options: &WatchOptions,
    out: &mut dyn Write,
) -> Result<Phase, CliError> {
    let started = Instant::now();
    let deadline = options
        .timeout
        .filter(|t| !t.is_zero())
        .map(|t| started + t);
    let mut last: Option<Snapshot> = None;
    let mut drawn_lines = 0;
    loop {
        let release = match store.get(name).await {
            Ok(Some(release)) => Some(release),
            Ok(None) if last.is_none() => {
                return Err(CliError::ConflictOrNotFound(format!(
                    "release {name} not found"
                )));
            }
            Ok(None) => {
                return Err(CliError::ConflictOrNotFound(format!(
                    "release {name} was deleted while watching it"
                )));
            }
            Err(error) if error.is_retryable() => {
                tracing::warn!(release = %name, cause = %error, "reading the release failed; trying again");
                None
            }
            Err(error) => return Err(error.into()),
        };
        if let Some(release) = release {
            let snapshot = Snapshot::of(&release);
            let elapsed = started.elapsed();
            match options.format {
                Format::Table if options.terminal => {
                    let block = snapshot.block(name, elapsed);
                    if drawn_lines > 0 {
                        // Up to the block's first line, and clear to the end of the screen.
                        write!(out, "\x1b[{drawn_lines}A\x1b[J")?;
                    }
                    for line in &block {
                        // Escaped first: one line of the block is one line on the screen.
                        let line = escape_controls(line);
                        match options.width {
                            Some(width) => {
                                writeln!(out, "{}", cut(&line, width.saturating_sub(1)))?
                            }
                            None => writeln!(out, "{line}")?,
                        }
                    }
                    drawn_lines = block.len();
                }
                Format::Table if last.as_ref() != Some(&snapshot) => {
                    write_line(out, &snapshot.line(name, elapsed))?;
                }
                Format::Json if last.as_ref() != Some(&snapshot) => {
                    let view = ReleaseView::from(release);
                    let text = serde_json::to_string(&view).map_err(|e| {
                        CliError::Invalid(format!("cannot encode the output as JSON: {e}"))
                    })?;
                    writeln!(out, "{}", escape_json_controls(text))?;
                }
                Format::Yaml if last.as_ref() != Some(&snapshot) => {
                    write!(out, "---\n{}", to_yaml(&ReleaseView::from(release))?)?;
                }
                _ => {}
            }
            out.flush()?;
            let settled = snapshot.settled();
            last = Some(snapshot);
            if let Some(phase) = settled {
                return finish(name, phase, last.as_ref(), options, out);
            }
        }
        let next = Instant::now() + options.interval;
        match deadline {
            Some(deadline) if deadline <= next => {
                tokio::time::sleep_until(deadline).await;
                let message = format!(
                    "release/{name} did not settle within {}s; last: {}",
                    options.timeout.unwrap_or_default().as_secs(),
                    last.as_ref()
                        .map_or_else(|| "not read".to_string(), |s| s.phase_text())
                );
                return Err(CliError::Timeout(escape_controls(&message).into_owned()));
            }
            _ => tokio::time::sleep_until(next).await,
        }
    }
}

fn finish(
    name: &str,
    phase: Phase,
    last: Option<&Snapshot>,
    options: &WatchOptions,
    out: &mut dyn Write,
) -> Result<Phase, CliError> {
    let generation = last.map_or(0, |s| s.generation);
    let message = last.map(|s| s.message.as_str()).unwrap_or_default();
    let summary = format!("release/{name} is {phase} (generation {generation}): {message}");
    let summary = escape_controls(&summary).into_owned();
    if options.format == Format::Table {
        writeln!(out, "{summary}")?;
        out.flush()?;
    }
    if phase == Phase::Healthy {
        Ok(phase)
    } else {
        Err(CliError::NotHealthy(summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::model::AuditAction;
    use crate::ports::{SpecPrecondition, SpecWrite};
    use crate::sim::SimStore;

    async fn put(store: &SimStore, tag: &str) -> u64 {
        store
            .put_spec(SpecWrite {
                name: "web".into(),
                labels: Default::default(),
                spec: serde_json::json!({"image": tag}),
                precondition: SpecPrecondition::Any,
                written_by: "test".into(),
                written_at: Clock::fixed_epoch().now(),
                action: AuditAction::Apply,
                detail: String::new(),
            })
            .await
            .unwrap()
    }

    async fn set_status(store: &SimStore, observed_generation: u64, phase: Phase) {
        let version = store.peek("web").unwrap().status_version;
        let status = ReleaseStatus {
            observed_generation,
            phase,
            message: format!("{phase} message"),
            ..ReleaseStatus::default()
        };
        store
            .write_status("web", &status, version, None)
            .await
            .unwrap();
    }

    fn options(timeout: u64) -> WatchOptions {
        WatchOptions {
            interval: Duration::from_secs(1),
            timeout: Some(Duration::from_secs(timeout)),
            format: Format::Table,
            terminal: false,
            width: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn watch_waits_for_a_settled_status_of_the_current_generation() {
        let store = SimStore::new(Clock::fixed_epoch());
        put(&store, "1").await;
        set_status(&store, 1, Phase::Healthy).await;
        put(&store, "2").await;

        // Healthy, but of generation 1: not settled; the timeout passes.
        let mut out = Vec::new();
        let error = watch(&store, "web", &options(10), &mut out)
            .await
            .unwrap_err();
        assert!(matches!(error, CliError::Timeout(_)), "{error}");
        assert_eq!(error.exit_code(), 6);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "one line: nothing changed\n{text}");

        let writer = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            set_status(&writer, 2, Phase::Progressing).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            set_status(&writer, 2, Phase::Healthy).await;
        });
        let mut out = Vec::new();
        let phase = watch(&store, "web", &options(60), &mut out).await.unwrap();
        assert_eq!(phase, Phase::Healthy);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        // Read once a second: the change at 3 s shows at 3 s or 4 s.
        assert!(
            lines[1].ends_with("release/web  generation 2  Progressing  Progressing message"),
            "{text}"
        );
        assert_eq!(
            lines[3],
            "release/web is Healthy (generation 2): Healthy message"
        );

        set_status(&store, 2, Phase::Paused).await;
        let error = watch(&store, "web", &options(60), &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(error.exit_code(), 5, "Paused is settled, not Healthy");
    }

    /// The redraw sequences `watch` itself writes on a terminal (cursor up, clear below).
    fn without_own_redraws(text: &str) -> String {
        let mut rest = text;
        let mut kept = String::new();
        while let Some(start) = rest.find("\u{1b}[") {
            kept.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let digits = after.chars().take_while(char::is_ascii_digit).count();
            let own = format!("{}A\u{1b}[J", &after[..digits]);
            assert!(
                digits > 0 && after.starts_with(&own),
                "an escape sequence watch did not write: {:?}",
                &rest[start..]
            );
            rest = &after[own.len()..];
        }
        kept.push_str(rest);
        kept
    }

    #[tokio::test(start_paused = true)]
    async fn watch_shows_control_characters_of_the_status_escaped() {
        let store = SimStore::new(Clock::fixed_epoch());
        put(&store, "1").await;
        let version = store.peek("web").unwrap().status_version;
        let status = ReleaseStatus {
            observed_generation: 1,
            phase: Phase::Failed,
            message: "AccessDenied\n\u{1b}[2J\u{1b}]0;title\u{7}\r\u{9b}1A\u{7f}".into(),
            strategy: Some(crate::model::StrategyStatus::CodeDeploy(
                crate::model::CodeDeployStatus {
                    lifecycle_event: Some("Install\u{1b}[1A".into()),
                    ..Default::default()
                },
            )),
            deployment_id: Some("d-\nX".into()),
            ..ReleaseStatus::default()
        };
        store
            .write_status("web", &status, version, None)
            .await
            .unwrap();
        for terminal in [false, true] {
            let mut out = Vec::new();
            let options = WatchOptions {
                terminal,
                width: Some(200),
                ..options(10)
            };
            let error = watch(&store, "web", &options, &mut out).await.unwrap_err();
            let text = String::from_utf8(out).unwrap();
            let text = without_own_redraws(&text);
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "terminal {terminal}: a raw control character: {text:?}"
            );
            assert!(
                text.contains(r"AccessDenied\n\u{1b}[2J\u{1b}]0;title\u{7}\r\u{9b}1A\u{7f}"),
                "{text}"
            );
            // The block (6 lines) or one line, then the summary.
            let lines = if terminal { 7 } else { 2 };
            assert_eq!(text.lines().count(), lines, "terminal {terminal}: {text}");
            assert!(
                !error.to_string().chars().any(char::is_control),
                "the error message too: {error}"
            );
        }

        let mut out = Vec::new();
        let options = WatchOptions {
            format: Format::Json,
            ..options(10)
        };
        let _ = watch(&store, "web", &options, &mut out).await.unwrap_err();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(
            line["status"]["message"],
            status.message.as_str(),
            "exact data"
        );
    }

    #[test]
    fn the_progress_bar_fills_with_the_candidate_share() {
        assert_eq!(progress_bar(30.0, 10), "[###.......]  30% new");
        assert_eq!(progress_bar(100.0, 4), "[####] 100% new");
        assert_eq!(progress_bar(f64::NAN, 4), "[....]   0% new");
    }
}
