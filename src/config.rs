//! The controller's configuration: defaults, overlaid by an optional YAML file, overlaid by
//! `SWITCHYARD_<KEY>` environment variables, overlaid by command-line flags.
//!
//! Parsing takes the environment as a map, so tests need no process environment. Invalid
//! configuration is an error that names the key and its source, before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// The default table name.
pub const DEFAULT_TABLE: &str = "switchyard-releases";
/// The default listen address of the HTTP server: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The complete, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The DynamoDB table holding the releases.
    pub table: String,
    /// The controller's region; `None` takes the standard AWS chain (`AWS_REGION`, profile).
    pub region: Option<String>,
    /// How often every release is looked at even without a change.
    pub resync_period: Duration,
    /// How many releases are reconciled at once.
    pub concurrency: usize,
    /// How long in-flight passes may run after SIGTERM before they are cancelled.
    pub drain_timeout: Duration,
    /// How many shards the releases are spread over; each shard has one lease, so this bounds
    /// how many replicas can share the work. Every replica must use the same value.
    pub shards: u32,
    /// A lease whose counter has not moved for this long is free for another replica.
    pub lease_duration: Duration,
    /// How often a replica renews its leases.
    pub lease_renew_period: Duration,
    /// Where the HTTP server listens (health, metrics, status API).
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    /// A `tracing` filter (`info`, `switchyard=debug,warn`, ...).
    pub log_level: String,
    /// Where the events of releases whose spec names no `notifications` go (the document's
    /// form: `- sns: ARN`, `- eventBridge: {bus: NAME}`, `- webhook: {url: URL}`).
    pub notifications: Vec<crate::model::notifications::NotificationDestination>,
    /// The external id the controller gives STS when it assumes a release's `roleArn`: the
    /// deployer roles' trust policies ask for it (`sts:ExternalId`). `None`: none is given.
    pub external_id: Option<String>,
    /// The rate the whole fleet stays under per account, Region and AWS service
    /// (`controller::BudgetSettings`; defaults below AWS's published rates).
    pub api_budgets: crate::controller::BudgetSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            table: DEFAULT_TABLE.into(),
            region: None,
            resync_period: Duration::from_secs(60),
            concurrency: 8,
            drain_timeout: Duration::from_secs(10),
            shards: 16,
            lease_duration: Duration::from_secs(20),
            lease_renew_period: Duration::from_secs(5),
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            notifications: Vec::new(),
            external_id: None,
            api_budgets: crate::controller::BudgetSettings::default(),
        }
    }
}

impl Settings {
    /// The lease timing: the safety margin is one renew period (the owner stops acting once
    /// it has failed to renew for the lease duration minus one renew period).
    pub fn lease_timing(&self) -> crate::lease::LeaseTiming {
        crate::lease::LeaseTiming {
            duration: self.lease_duration,
            renew_period: self.lease_renew_period,
            safety_margin: self.lease_renew_period,
        }
    }
}

/// The configuration file: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileSettings {
    table: Option<String>,
    region: Option<String>,
    resync_period: Option<String>,
    concurrency: Option<usize>,
    drain_timeout: Option<String>,
    shards: Option<u32>,
    lease_duration: Option<String>,
    lease_renew_period: Option<String>,
    listen: Option<String>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    notifications: Option<serde_json::Value>,
    external_id: Option<String>,
    api_budgets: Option<serde_json::Value>,
}

/// What is wrong with the configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    Unreadable { path: String, message: String },
    /// The file is not valid configuration.
    #[error("{path}: {message}")]
    InvalidFile { path: String, message: String },
    /// One key has a bad value.
    #[error("{key} (from {source_name}): {message}")]
    InvalidValue {
        key: &'static str,
        source_name: String,
        message: String,
    },
}

/// The environment variable for a key: `resyncPeriod` is `SWITCHYARD_RESYNC_PERIOD`.
pub fn env_var_for(key: &str) -> String {
    let mut name = String::from("SWITCHYARD_");
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// The `SWITCHYARD_*` variables of the process environment.
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("SWITCHYARD_"))
        .collect()
}

/// Loads the configuration: defaults, then `file` (if any), then `env`.
pub fn load(file: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
    let from_file = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            if text.trim().is_empty() {
                FileSettings::default()
            } else {
                serde_saphyr::from_str::<FileSettings>(&text).map_err(|e| {
                    ConfigError::InvalidFile {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    }
                })?
            }
        }
        None => FileSettings::default(),
    };
    let file_name = file.map(|p| p.display().to_string()).unwrap_or_default();
    let mut settings = Settings::default();

    // Each key: the environment wins over the file.
    let pick = |key: &'static str, from_file: Option<String>| -> Option<(String, String)> {
        let var = env_var_for(key);
        match env.get(&var) {
            Some(value) => Some((value.clone(), var)),
            None => from_file.map(|v| (v, file_name.clone())),
        }
    };

    if let Some((value, source)) = pick("table", from_file.table) {
        settings.table = parse_table(&value).map_err(|m| invalid("table", &source, m))?;
    }
    if let Some((value, source)) = pick("region", from_file.region) {
        settings.region = Some(parse_region(&value).map_err(|m| invalid("region", &source, m))?);
    }
    if let Some((value, source)) = pick("resyncPeriod", from_file.resync_period) {
        let period = parse_duration(&value).map_err(|m| invalid("resyncPeriod", &source, m))?;
        if period < Duration::from_secs(1) {
            return Err(invalid(
                "resyncPeriod",
                &source,
                "must be at least 1s".into(),
            ));
        }
        settings.resync_period = period;
    }
    if let Some((value, source)) = pick("concurrency", from_file.concurrency.map(|c| c.to_string()))
    {
        let concurrency: usize = value.trim().parse().map_err(|_| {
            invalid(
                "concurrency",
                &source,
                format!("`{value}` is not a whole number"),
            )
        })?;
        if !(1..=256).contains(&concurrency) {
            return Err(invalid(
                "concurrency",
                &source,
                "must be between 1 and 256".into(),
            ));
        }
        settings.concurrency = concurrency;
    }
    if let Some((value, source)) = pick("drainTimeout", from_file.drain_timeout) {
        settings.drain_timeout =
            parse_duration(&value).map_err(|m| invalid("drainTimeout", &source, m))?;
    }
    if let Some((value, source)) = pick("shards", from_file.shards.map(|s| s.to_string())) {
        let shards: u32 = value.trim().parse().map_err(|_| {
            invalid(
                "shards",
                &source,
                format!("`{value}` is not a whole number"),
            )
        })?;
        if !(1..=1024).contains(&shards) {
            return Err(invalid(
                "shards",
                &source,
                "must be between 1 and 1024".into(),
            ));
        }
        settings.shards = shards;
    }
    if let Some((value, source)) = pick("leaseDuration", from_file.lease_duration) {
        settings.lease_duration =
            parse_duration(&value).map_err(|m| invalid("leaseDuration", &source, m))?;
    }
    if let Some((value, source)) = pick("leaseRenewPeriod", from_file.lease_renew_period) {
        settings.lease_renew_period =
            parse_duration(&value).map_err(|m| invalid("leaseRenewPeriod", &source, m))?;
    }
    settings
        .lease_timing()
        .validate()
        .map_err(|message| ConfigError::InvalidValue {
            key: "leaseDuration",
            source_name: "leaseDuration and leaseRenewPeriod".into(),
            message,
        })?;
    if let Some((value, source)) = pick("listen", from_file.listen) {
        settings.listen = value.trim().parse().map_err(|_| {
            invalid(
                "listen",
                &source,
                format!("`{value}` is not an address like 127.0.0.1:8080"),
            )
        })?;
    }
    if let Some((value, source)) = pick(
        "logFormat",
        from_file.log_format.map(|f| match f {
            LogFormat::Text => "text".to_string(),
            LogFormat::Json => "json".to_string(),
        }),
    ) {
        settings.log_format = match value.trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "logFormat",
                    &source,
                    format!("`{other}` is not text or json"),
                ));
            }
        };
    }
    if let Some((value, source)) = pick("externalId", from_file.external_id) {
        settings.external_id =
            Some(parse_external_id(&value).map_err(|m| invalid("externalId", &source, m))?);
    }
    if let Some((value, source)) = pick("logLevel", from_file.log_level) {
        if tracing_subscriber::EnvFilter::try_new(&value).is_err() {
            return Err(invalid(
                "logLevel",
                &source,
                format!("`{value}` is not a log filter"),
            ));
        }
        settings.log_level = value;
    }
    let var = env_var_for("notifications");
    let notifications = match env.get(&var) {
        Some(text) => Some((
            serde_saphyr::from_str::<serde_json::Value>(text).map_err(|e| {
                invalid(
                    "notifications",
                    &var,
                    format!("is not a YAML or JSON list of destinations: {e}"),
                )
            })?,
            var,
        )),
        None => from_file.notifications.map(|v| (v, file_name.clone())),
    };
    if let Some((value, source)) = notifications {
        settings.notifications = crate::model::parse::parse_destinations(&value, "notifications")
            .map_err(|errors| {
            invalid(
                "notifications",
                &source,
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
    }
    let var = env_var_for("apiBudgets");
    let budgets = match env.get(&var) {
        Some(text) => Some((
            serde_saphyr::from_str::<serde_json::Value>(text).map_err(|e| {
                invalid(
                    "apiBudgets",
                    &var,
                    format!("is not a YAML or JSON map of services: {e}"),
                )
            })?,
            var,
        )),
        None => from_file.api_budgets.map(|v| (v, file_name.clone())),
    };
    if let Some((value, source)) = budgets {
        parse_api_budgets(&value, &mut settings.api_budgets)
            .map_err(|m| invalid("apiBudgets", &source, m))?;
    }
    Ok(settings)
}

/// Overlays `apiBudgets` (`SERVICE: {perSecond: N, burst: N}` per service) on the defaults:
/// a service left out keeps its default.
fn parse_api_budgets(
    value: &serde_json::Value,
    budgets: &mut crate::controller::BudgetSettings,
) -> Result<(), String> {
    use crate::controller::BUDGET_SERVICES;
    let map = value
        .as_object()
        .ok_or("must be a map of AWS service to {perSecond, burst}")?;
    for (service, entry) in map {
        if !BUDGET_SERVICES.contains(&service.as_str()) {
            return Err(format!(
                "{service}: not a service with a budget (one of {})",
                BUDGET_SERVICES.join(", ")
            ));
        }
        let entry = entry
            .as_object()
            .ok_or_else(|| format!("{service}: must be a map with perSecond and burst"))?;
        if let Some(unknown) = entry.keys().find(|k| *k != "perSecond" && *k != "burst") {
            return Err(format!(
                "{service}.{unknown}: unknown field (perSecond, burst)"
            ));
        }
        let default = budgets.by_service[service.as_str()];
        let number = |field: &str, default: f64| -> Result<f64, String> {
            match entry.get(field) {
                None => Ok(default),
                Some(v) => v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|t| t.trim().parse().ok()))
                    .ok_or_else(|| format!("{service}.{field}: must be a number")),
            }
        };
        let per_second = number("perSecond", default.per_second)?;
        let burst = number("burst", default.burst)?;
        if !(per_second.is_finite() && per_second > 0.0) {
            return Err(format!(
                "{service}.perSecond: must be a number of calls per second above 0"
            ));
        }
        if !(burst.is_finite() && burst >= 1.0) {
            return Err(format!("{service}.burst: must be at least 1 call"));
        }
        budgets.by_service.insert(
            service.clone(),
            crate::controller::Rate { per_second, burst },
        );
    }
    Ok(())
}

fn invalid(key: &'static str, source: &str, message: String) -> ConfigError {
    ConfigError::InvalidValue {
        key,
        source_name: if source.is_empty() {
            "defaults".into()
        } else {
            source.into()
        },
        message,
    }
}

/// A duration like `60s`, `5m`, `1h 30m` or ISO 8601 `PT1M`.
pub use crate::model::duration::parse_duration;

/// DynamoDB table names: 3 to 255 of letters, digits, '_', '-', '.'.
pub fn parse_table(value: &str) -> Result<String, String> {
    let ok = (3..=255).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "`{value}` is not a DynamoDB table name (3 to 255 letters, digits, '_', '-', '.')"
        ))
    }
}

/// A region name, by the same rule as a release document's `spec.service.region`.
fn parse_region(value: &str) -> Result<String, String> {
    if crate::model::names::is_region(value) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "`{value}` is not {}",
            crate::model::names::REGION_FORM
        ))
    }
}

/// STS's rule for an external id: 2 to 1224 letters, digits and `+=,.@:/-_`.
pub fn parse_external_id(value: &str) -> Result<String, String> {
    let ok = (2..=1224).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c));
    if ok {
        Ok(value.to_string())
    } else {
        Err(
            "an external id is 2 to 1224 letters, digits and '+=,.@:/-_' (the value is not shown)"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn api_budgets_overlay_the_defaults_from_the_file_and_the_environment() {
        let file = write("apiBudgets:\n  elasticloadbalancing: {perSecond: 5, burst: 12}\n");
        let settings = load(Some(file.path()), &env(&[])).unwrap();
        let elb = settings.api_budgets.by_service["elasticloadbalancing"];
        assert_eq!((elb.per_second, elb.burst), (5.0, 12.0));
        assert_eq!(
            settings.api_budgets.by_service["ecs"],
            crate::controller::BudgetSettings::default().by_service["ecs"]
        );
        let settings = load(
            Some(file.path()),
            &env(&[("SWITCHYARD_API_BUDGETS", "{ecs: {perSecond: 2.5}}")]),
        )
        .unwrap();
        assert_eq!(settings.api_budgets.by_service["ecs"].per_second, 2.5);
        assert_eq!(
            settings.api_budgets.by_service["elasticloadbalancing"],
            crate::controller::BudgetSettings::default().by_service["elasticloadbalancing"],
            "the environment replaces the file's key"
        );
    }

    #[test]
    fn invalid_api_budgets_name_the_service_and_field() {
        for (text, expected) in [
            ("{elb: {perSecond: 1}}", "elb: not a service with a budget"),
            (
                "{ecs: {perSecond: 0}}",
                "ecs.perSecond: must be a number of calls",
            ),
            ("{ecs: {burst: 0.5}}", "ecs.burst: must be at least 1"),
            ("{ecs: {rate: 3}}", "ecs.rate: unknown field"),
            ("[1]", "must be a map"),
        ] {
            let error = load(None, &env(&[("SWITCHYARD_API_BUDGETS", text)])).unwrap_err();
            let message = error.to_string();
            assert!(
                message.starts_with("apiBudgets (from SWITCHYARD_API_BUDGETS)")
                    && message.contains(expected),
                "{text}: {message}"
            );
        }
    }

    /// A configuration file in the temp dir with this text, removed when dropped.
    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new()
            .prefix("switchyard-config-")
            .suffix(".yaml")
            .tempfile()
            .expect("a scratch file");
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn defaults_need_no_file_and_no_environment() {
        assert_eq!(load(None, &BTreeMap::new()).unwrap(), Settings::default());
    }

    #[test]
    fn environment_overrides_the_file_key_by_key() {
        let file = write("table: from-file\nconcurrency: 4\nresyncPeriod: 2m\n");
        let settings = load(
            Some(file.path()),
            &env(&[
                ("SWITCHYARD_TABLE", "from-env"),
                ("SWITCHYARD_DRAIN_TIMEOUT", "3s"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.table, "from-env");
        assert_eq!(settings.concurrency, 4);
        assert_eq!(settings.resync_period, Duration::from_secs(120));
        assert_eq!(settings.drain_timeout, Duration::from_secs(3));
    }

    #[test]
    fn every_key_has_an_environment_variable() {
        assert_eq!(env_var_for("table"), "SWITCHYARD_TABLE");
        assert_eq!(env_var_for("resyncPeriod"), "SWITCHYARD_RESYNC_PERIOD");
        assert_eq!(env_var_for("logFormat"), "SWITCHYARD_LOG_FORMAT");
    }

    #[test]
    fn unknown_keys_in_the_file_are_rejected() {
        let file = write("tabel: x\n");
        let error = load(Some(file.path()), &BTreeMap::new()).unwrap_err();
        assert!(error.to_string().contains("tabel"), "{error}");
    }

    #[test]
    fn bad_values_name_the_key_and_where_they_came_from() {
        let error = load(None, &env(&[("SWITCHYARD_CONCURRENCY", "zero")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "concurrency (from SWITCHYARD_CONCURRENCY): `zero` is not a whole number"
        );
        let error = load(None, &env(&[("SWITCHYARD_RESYNC_PERIOD", "10")])).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("resyncPeriod (from SWITCHYARD_RESYNC_PERIOD)")
        );
        let error = load(None, &env(&[("SWITCHYARD_LISTEN", "everywhere")])).unwrap_err();
        assert!(error.to_string().starts_with("listen"));
        let error = load(None, &env(&[("SWITCHYARD_REGION", "moon")])).unwrap_err();
        assert!(error.to_string().starts_with("region"));
        let error = load(None, &env(&[("SWITCHYARD_EXTERNAL_ID", "x")])).unwrap_err();
        assert!(error.to_string().starts_with("externalId"), "{error}");
        let error = load(None, &env(&[("SWITCHYARD_TABLE", "a b")])).unwrap_err();
        assert!(error.to_string().starts_with("table"));
    }

    /// The configuration and the release document share one region rule: neither accepts
    /// what the other refuses.
    #[test]
    fn regions_are_checked_as_release_documents_check_them() {
        for region in ["us-east-1234", "us-east1-1", "US-EAST-1", "us-east"] {
            let error = load(None, &env(&[("SWITCHYARD_REGION", region)])).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "region (from SWITCHYARD_REGION): `{region}` is not an AWS region name such \
                     as us-east-1, eu-central-2 or us-gov-west-1"
                )
            );
            assert!(!crate::model::names::is_region(region));
        }
        for region in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "us-isob-east-1",
        ] {
            let settings = load(None, &env(&[("SWITCHYARD_REGION", region)])).unwrap();
            assert_eq!(settings.region.as_deref(), Some(region));
        }
    }

    #[test]
    fn the_external_id_is_read_and_never_echoed() {
        let settings = load(None, &env(&[("SWITCHYARD_EXTERNAL_ID", "fleet-7:prod")])).unwrap();
        assert_eq!(settings.external_id.as_deref(), Some("fleet-7:prod"));
        let error = load(None, &env(&[("SWITCHYARD_EXTERNAL_ID", "secret value")])).unwrap_err();
        assert!(!error.to_string().contains("secret value"), "{error}");
    }

    #[test]
    fn the_example_configuration_files_load_with_their_documented_defaults() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let example = load(Some(&root.join("config/controller.yaml")), &BTreeMap::new()).unwrap();
        assert_eq!(
            example,
            Settings::default(),
            "config/controller.yaml documents the defaults"
        );
        load(Some(&root.join("config/local.yaml")), &BTreeMap::new()).unwrap();
    }

    #[test]
    fn lease_timing_is_validated_before_anything_starts() {
        let error = load(
            None,
            &env(&[
                ("SWITCHYARD_LEASE_DURATION", "6s"),
                ("SWITCHYARD_LEASE_RENEW_PERIOD", "5s"),
            ]),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("at least three times"),
            "{error}"
        );
        assert!(load(None, &env(&[("SWITCHYARD_SHARDS", "0")])).is_err());
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let error = load(
            Some(Path::new("/nonexistent/controller.yaml")),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot read /nonexistent/controller.yaml")
        );
    }

    #[test]
    fn fleet_wide_notifications_come_from_the_file_or_the_environment_with_field_paths() {
        let file = write(
            "notifications:\n  - sns: arn:aws:sns:us-east-1:111122223333:releases\n  - webhook: {url: \"https://hooks.example.com/x\", format: slack}\n",
        );
        let settings = load(Some(file.path()), &BTreeMap::new()).unwrap();
        assert_eq!(settings.notifications.len(), 2);
        let settings = load(
            Some(file.path()),
            &env(&[(
                "SWITCHYARD_NOTIFICATIONS",
                r#"[{"eventBridge": {"bus": "default"}}]"#,
            )]),
        )
        .unwrap();
        assert_eq!(settings.notifications.len(), 1, "the environment wins");
        let error = load(
            None,
            &env(&[("SWITCHYARD_NOTIFICATIONS", "[{webhook: {url: ftp://x}}]")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with(
                "notifications (from SWITCHYARD_NOTIFICATIONS): notifications[0].webhook.url: must be an http:// or https:// URL"
            ),
            "{error}"
        );
    }
}
