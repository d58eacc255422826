//! Simulated CloudWatch metric data (`GetMetricData`, as strict as CloudWatch about queries,
//! periods, ids and metric math references) and simulated HTTP endpoints for analyses' probes.
//!
//! A metric is a timeline of values set by the test (`SimAws::set_metric`): each period
//! from its start has one datapoint, the value in force at the end of the period (none
//! while the value is `None`). Metric math evaluates `+ - * /`, numbers, parentheses and
//! query ids per timestamp; a timestamp where an operand has no datapoint, or a division by
//! zero, has none.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use crate::model::analysis::{MAX_DIMENSIONS, MAX_EXPRESSION_LENGTH, MAX_QUERIES, is_statistic};
use crate::ports::{
    AwsError, AwsErrorKind, HttpProbe, MetricData, MetricDataKind, MetricDataRequest,
    MetricDatapoint, ProbeError,
};

use super::SimAws;
use super::world::{MetricKey, World};

const SERVICE: &str = "cloudwatch";
const OP: &str = "GetMetricData";

/// How many `GetMetricData` requests the world keeps for tests to read.
const REQUESTS_KEPT: usize = 256;

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(SERVICE, OP, AwsErrorKind::InvalidRequest, message).with_code("ValidationError")
}

fn is_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= 255
}

fn is_period(seconds: u32) -> bool {
    [1, 5, 10, 20, 30].contains(&seconds) || (seconds > 0 && seconds.is_multiple_of(60))
}

/// A token of a metric math expression.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Id(String),
    Op(char),
}

fn tokenize(expression: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = expression.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            tokens.push(Token::Number(
                text.parse().map_err(|_| format!("invalid number {text}"))?,
            ));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if word.starts_with(|c: char| c.is_ascii_uppercase()) {
                return Err(format!(
                    "the simulated CloudWatch evaluates + - * / over ids and numbers, not the function {word}"
                ));
            }
            tokens.push(Token::Id(word));
        } else if "+-*/()".contains(c) {
            tokens.push(Token::Op(c));
            i += 1;
        } else {
            return Err(format!("Syntax error: unexpected character {c:?}"));
        }
    }
    Ok(tokens)
}

/// A recursive-descent evaluator of `+ - * /` over the tokens.
struct Evaluator<'t> {
    tokens: &'t [Token],
    at: usize,
    values: &'t BTreeMap<String, f64>,
}

impl Evaluator<'_> {
    fn expression(&mut self) -> Result<Option<f64>, String> {
        let mut value = self.term()?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.tokens.get(self.at) {
            let op = *op;
            self.at += 1;
            let right = self.term()?;
            value = match (value, right) {
                (Some(a), Some(b)) => Some(if op == '+' { a + b } else { a - b }),
                _ => None,
            };
        }
        Ok(value)
    }

    fn term(&mut self) -> Result<Option<f64>, String> {
        let mut value = self.factor()?;
        while let Some(Token::Op(op @ ('*' | '/'))) = self.tokens.get(self.at) {
            let op = *op;
            self.at += 1;
            let right = self.factor()?;
            value = match (value, right) {
                (Some(_), Some(b)) if op == '/' && b == 0.0 => None,
                (Some(a), Some(b)) => Some(if op == '*' { a * b } else { a / b }),
                _ => None,
            };
        }
        Ok(value)
    }

    fn factor(&mut self) -> Result<Option<f64>, String> {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or("Syntax error: the expression ends early")?;
        self.at += 1;
        match token {
            Token::Number(n) => Ok(Some(n)),
            Token::Id(id) => Ok(self.values.get(&id).copied()),
            Token::Op('-') => Ok(self.factor()?.map(|v| -v)),
            Token::Op('(') => {
                let value = self.expression()?;
                match self.tokens.get(self.at) {
                    Some(Token::Op(')')) => {
                        self.at += 1;
                        Ok(value)
                    }
                    _ => Err("Syntax error: a parenthesis is not closed".into()),
                }
            }
            Token::Op(op) => Err(format!("Syntax error: unexpected {op}")),
        }
    }
}

impl World {
    /// `GetMetricData`, checked as CloudWatch checks it: the returned query's datapoints,
    /// newest first.
    pub(crate) fn get_metric_data(
        &mut self,
        request: &MetricDataRequest,
    ) -> Result<Vec<MetricDatapoint>, AwsError> {
        let queries = &request.queries;
        if queries.is_empty() || queries.len() > MAX_QUERIES {
            return Err(invalid(format!(
                "MetricDataQueries must hold 1 to {MAX_QUERIES} queries, got {}",
                queries.len()
            )));
        }
        if request.start >= request.end {
            return Err(invalid(
                "The parameter StartTime must be less than the parameter EndTime",
            ));
        }
        let mut ids = BTreeSet::new();
        for query in queries {
            if !is_id(&query.id) {
                return Err(invalid(format!(
                    "The value {} for parameter MetricDataQueries.member.Id is invalid: it must start with a lower-case letter and hold only letters, digits and _",
                    query.id
                )));
            }
            if !ids.insert(query.id.as_str()) {
                return Err(invalid(format!(
                    "The Id {} is used by two queries",
                    query.id
                )));
            }
        }
        let mut stats: BTreeMap<&str, (MetricKey, u32)> = BTreeMap::new();
        for query in queries {
            match &query.kind {
                MetricDataKind::Stat {
                    namespace,
                    metric_name,
                    dimensions,
                    period_seconds,
                    stat,
                    ..
                } => {
                    if !is_period(*period_seconds) {
                        return Err(invalid(format!(
                            "The parameter MetricStat.Period must be 1, 5, 10, 20, 30 or a multiple of 60, got {period_seconds}"
                        )));
                    }
                    if !is_statistic(stat) {
                        return Err(invalid(format!("The statistic {stat} is not valid")));
                    }
                    if dimensions.len() > MAX_DIMENSIONS {
                        return Err(invalid(format!(
                            "A metric has at most {MAX_DIMENSIONS} dimensions"
                        )));
                    }
                    if namespace.is_empty() || metric_name.is_empty() {
                        return Err(invalid("Namespace and MetricName must not be empty"));
                    }
                    let key = (
                        namespace.clone(),
                        metric_name.clone(),
                        dimensions.iter().cloned().collect(),
                    );
                    stats.insert(&query.id, (key, *period_seconds));
                }
                MetricDataKind::Expression {
                    expression,
                    period_seconds,
                } => {
                    if expression.is_empty() || expression.len() > MAX_EXPRESSION_LENGTH {
                        return Err(invalid(format!(
                            "An expression must be 1 to {MAX_EXPRESSION_LENGTH} characters"
                        )));
                    }
                    if !is_period(*period_seconds) {
                        return Err(invalid(format!(
                            "The parameter Period must be 1, 5, 10, 20, 30 or a multiple of 60, got {period_seconds}"
                        )));
                    }
                    let tokens = tokenize(expression)
                        .map_err(|e| invalid(format!("Error in expression '{}': {e}", query.id)))?;
                    for token in &tokens {
                        if let Token::Id(id) = token
                            && (!ids.contains(id.as_str()) || id == &query.id)
                        {
                            return Err(invalid(format!(
                                "Error in expression '{}': Unrecognized identifier '{id}'",
                                query.id
                            )));
                        }
                    }
                }
            }
        }
        self.metric_requests.push(request.clone());
        let excess = self.metric_requests.len().saturating_sub(REQUESTS_KEPT);
        self.metric_requests.drain(..excess);

        let Some(returned) = queries.iter().find(|q| q.return_data) else {
            return Ok(Vec::new());
        };
        let period_of = |kind: &MetricDataKind| match kind {
            MetricDataKind::Stat { period_seconds, .. }
            | MetricDataKind::Expression { period_seconds, .. } => *period_seconds,
        };
        let period = Duration::from_secs(u64::from(period_of(&returned.kind)));
        let step = SignedDuration::try_from(period).unwrap_or(SignedDuration::from_secs(60));
        // Period starts from the one holding `start` up to the last before `end`.
        let seconds = period.as_secs().max(1) as i64;
        let first = Timestamp::from_second(request.start.as_second().div_euclid(seconds) * seconds)
            .unwrap_or(request.start);
        let mut datapoints = Vec::new();
        let mut at = first;
        while at < request.end {
            let period_end = (at + step).min(request.end) - SignedDuration::from_nanos(1);
            let values: BTreeMap<String, f64> = stats
                .iter()
                .filter_map(|(id, (key, _))| {
                    let value = self.metrics.get(key)?.value_at(period_end)?;
                    Some((id.to_string(), value))
                })
                .collect();
            let value = match &returned.kind {
                MetricDataKind::Stat { .. } => values.get(&returned.id).copied(),
                MetricDataKind::Expression { expression, .. } => {
                    let tokens = tokenize(expression).unwrap_or_default();
                    let mut evaluator = Evaluator {
                        tokens: &tokens,
                        at: 0,
                        values: &values,
                    };
                    let value = evaluator.expression().map_err(|e| {
                        invalid(format!("Error in expression '{}': {e}", returned.id))
                    })?;
                    if evaluator.at != tokens.len() {
                        return Err(invalid(format!(
                            "Error in expression '{}': Syntax error",
                            returned.id
                        )));
                    }
                    value
                }
            };
            if let Some(value) = value.filter(|v| v.is_finite()) {
                datapoints.push(MetricDatapoint { at, value });
            }
            at += step;
        }
        datapoints.reverse();
        Ok(datapoints)
    }
}

impl SimAws {
    /// From now on, the metric (namespace, name, exactly these dimensions) has this value
    /// (`None`: no datapoints).
    pub fn set_metric(
        &self,
        namespace: &str,
        name: &str,
        dimensions: &[(&str, &str)],
        value: Option<f64>,
    ) {
        let now = self.clock().now();
        self.with_world(|world| {
            let key = (
                namespace.to_string(),
                name.to_string(),
                dimensions
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
            world
                .metrics
                .entry(key)
                .or_default()
                .timeline
                .push((now, value));
        });
    }

    /// The `GetMetricData` requests CloudWatch accepted, oldest first (the latest 256).
    pub fn metric_data_requests(&self) -> Vec<MetricDataRequest> {
        self.with_world(|world| world.metric_requests.clone())
    }

    /// From now on, a probe of `url` gets this answer (by default: connection refused).
    pub fn set_http_answer(&self, url: &str, answer: Result<u16, ProbeError>) {
        self.with_world(|world| {
            world.http_answers.insert(url.to_string(), answer);
        });
    }

    /// The probes of `url` so far.
    pub fn http_probes(&self, url: &str) -> u64 {
        self.with_world(|world| world.http_probes.get(url).copied().unwrap_or(0))
    }
}

#[async_trait]
impl MetricData for SimAws {
    async fn get_metric_data(
        &self,
        request: &MetricDataRequest,
    ) -> Result<Vec<MetricDatapoint>, AwsError> {
        self.call(SERVICE, OP, |world, _| world.get_metric_data(request))
            .await
    }
}

#[async_trait]
impl HttpProbe for SimAws {
    async fn probe(&self, url: &str, timeout: Duration) -> Result<u16, ProbeError> {
        let answer = self.with_world(|world| {
            *world.http_probes.entry(url.to_string()).or_default() += 1;
            world.http_answers.get(url).cloned()
        });
        match answer {
            Some(Err(ProbeError::Timeout(_))) => {
                self.clock().sleep(timeout).await;
                Err(ProbeError::Timeout(timeout))
            }
            Some(answer) => answer,
            None => Err(ProbeError::Failed(format!(
                "error trying to connect: {url}: connection refused"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::ports::MetricDataQuery;

    fn stat(id: &str, name: &str, return_data: bool) -> MetricDataQuery {
        MetricDataQuery {
            id: id.into(),
            kind: MetricDataKind::Stat {
                namespace: "AWS/ApplicationELB".into(),
                metric_name: name.into(),
                dimensions: vec![("TargetGroup".into(), "targetgroup/web-b/1".into())],
                period_seconds: 60,
                stat: "Sum".into(),
                unit: None,
            },
            return_data,
        }
    }

    fn request(sim: &SimAws, queries: Vec<MetricDataQuery>) -> MetricDataRequest {
        let now = sim.clock().now();
        MetricDataRequest {
            queries,
            start: now - SignedDuration::from_secs(180),
            end: now,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn metric_math_over_the_metrics_set_gives_one_datapoint_per_period() {
        let sim = SimAws::new(Clock::fixed_epoch());
        let tg = [("TargetGroup", "targetgroup/web-b/1")];
        sim.set_metric(
            "AWS/ApplicationELB",
            "HTTPCode_Target_5XX_Count",
            &tg,
            Some(3.0),
        );
        sim.set_metric("AWS/ApplicationELB", "RequestCount", &tg, Some(60.0));
        sim.clock().sleep(Duration::from_secs(300)).await;
        let mut queries = vec![
            stat("m1", "HTTPCode_Target_5XX_Count", false),
            stat("m2", "RequestCount", false),
        ];
        queries.push(MetricDataQuery {
            id: "e".into(),
            kind: MetricDataKind::Expression {
                expression: "m1 / m2 * 100".into(),
                period_seconds: 60,
            },
            return_data: true,
        });
        let points = sim.get_metric_data(&request(&sim, queries)).await.unwrap();
        assert_eq!(points.len(), 3, "{points:?}");
        assert!(points.iter().all(|p| p.value == 5.0));
        assert!(points[0].at > points[1].at, "newest first");
    }

    #[tokio::test(start_paused = true)]
    async fn cloudwatch_refuses_what_it_refuses() {
        let sim = SimAws::new(Clock::fixed_epoch());
        let bad_id = vec![stat("M1", "RequestCount", true)];
        let unknown = vec![
            stat("m1", "RequestCount", false),
            MetricDataQuery {
                id: "e".into(),
                kind: MetricDataKind::Expression {
                    expression: "m1 / m9".into(),
                    period_seconds: 60,
                },
                return_data: true,
            },
        ];
        let mut bad_period = stat("m1", "RequestCount", true);
        if let MetricDataKind::Stat { period_seconds, .. } = &mut bad_period.kind {
            *period_seconds = 45;
        }
        let twice = vec![stat("m1", "A", true), stat("m1", "B", false)];
        for (queries, says) in [
            (bad_id, "Id is invalid"),
            (unknown, "Unrecognized identifier 'm9'"),
            (vec![bad_period], "Period must be"),
            (twice, "used by two queries"),
            (Vec::new(), "1 to 500"),
        ] {
            let error = sim
                .get_metric_data(&request(&sim, queries))
                .await
                .unwrap_err();
            assert_eq!(error.kind, AwsErrorKind::InvalidRequest);
            assert!(error.message.contains(says), "{says}: {error}");
        }
        assert!(sim.metric_data_requests().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_metric_without_data_has_no_datapoints_and_an_unknown_endpoint_refuses() {
        let sim = SimAws::new(Clock::fixed_epoch());
        sim.clock().sleep(Duration::from_secs(300)).await;
        let points = sim
            .get_metric_data(&request(&sim, vec![stat("m1", "RequestCount", true)]))
            .await
            .unwrap();
        assert!(points.is_empty());
        let error = sim
            .probe("http://web/health", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(error, ProbeError::Failed(_)));
        sim.set_http_answer("http://web/health", Ok(200));
        assert_eq!(
            sim.probe("http://web/health", Duration::from_secs(2)).await,
            Ok(200)
        );
        assert_eq!(sim.http_probes("http://web/health"), 2);
    }
}
