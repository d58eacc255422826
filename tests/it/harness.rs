//! A controller wired to the simulated AWS and store, driven in paused tokio time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard::clock::Clock;
use switchyard::controller::{self, Context, ControllerConfig, RunSummary};
use switchyard::model::parse::parse_documents;
use switchyard::model::{AuditAction, OperatorRequest, ReleaseStatus, RequestKind};
use switchyard::ports::{Deployment, ReleaseStore, SpecPrecondition, SpecWrite};
use switchyard::reconcile::codedeploy::parse_deployment_description;
use switchyard::sim::{BlueGreenSetup, SimAws, SimStore};

pub const REGISTRY: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com";

pub struct Harness {
    pub clock: Clock,
    pub aws: SimAws,
    pub store: SimStore,
    pub config: ControllerConfig,
}

/// What a test release looks like.
#[derive(Clone)]
pub struct ReleaseOptions {
    pub image_tag: String,
    pub deployment_config: Option<String>,
    pub manual: bool,
    pub alarms: Vec<String>,
    pub paused: bool,
    pub converge_drift: bool,
    /// Environment of the release's container in the spec.
    pub environment: BTreeMap<String, String>,
    /// The release's labels.
    pub labels: BTreeMap<String, String>,
}

impl Default for ReleaseOptions {
    fn default() -> Self {
        Self {
            image_tag: "2.0.0".into(),
            deployment_config: None,
            manual: false,
            alarms: vec![],
            paused: false,
            converge_drift: false,
            environment: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }
}

/// The YAML of a release of service `name` (in cluster `prod`) with these options.
pub fn release_yaml(name: &str, options: &ReleaseOptions) -> String {
    let mut yaml = format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: {name}\nspec:\n  service: {{cluster: prod, name: {name}}}\n  taskDefinition:\n    from: {name}\n    containers:\n      {name}:\n        image: {REGISTRY}/{name}:{tag}\n",
        tag = options.image_tag
    );
    if !options.environment.is_empty() {
        yaml.push_str("        environment:\n");
        for (key, value) in &options.environment {
            yaml.push_str(&format!("          {key}: \"{value}\"\n"));
        }
    }
    yaml.push_str(&format!(
        "  strategy:\n    codeDeploy:\n      application: {name}\n      deploymentGroup: {name}-prod\n"
    ));
    if let Some(config) = &options.deployment_config {
        yaml.push_str(&format!("      deploymentConfig: {config}\n"));
    }
    if options.manual {
        yaml.push_str("      promotion: manual\n");
    }
    if !options.alarms.is_empty() {
        yaml.push_str(&format!(
            "  rollback:\n    alarms: [{}]\n",
            options.alarms.join(", ")
        ));
    }
    if options.paused {
        yaml.push_str("  paused: true\n");
    }
    if options.converge_drift {
        yaml.push_str("  onDrift: converge\n");
    }
    yaml
}

impl Harness {
    /// Must be called with tokio time paused.
    pub fn new() -> Self {
        let clock = Clock::fixed_epoch();
        Self {
            aws: SimAws::new(clock.clone()),
            store: SimStore::new(clock.clone()),
            clock,
            config: ControllerConfig {
                jitter_seed: Some(7),
                ..ControllerConfig::default()
            },
        }
    }

    /// Adds service `name` in cluster `prod` with its own CodeDeploy application and group.
    pub fn add_service(&self, name: &str, edit: impl FnOnce(&mut BlueGreenSetup)) {
        let mut setup = BlueGreenSetup::new("prod", name);
        edit(&mut setup);
        self.aws.add_bluegreen_service(setup);
    }

    pub fn context(&self) -> Context {
        Context::new(
            Arc::new(self.store.clone()),
            Arc::new(self.aws.clone()),
            self.clock.clone(),
            self.config.clone(),
            switchyard::state::ControllerState::new(),
        )
        .with_probe(Arc::new(self.aws.clone()))
    }

    /// Writes a release as `apply` would (validated first); returns its generation.
    pub async fn apply(&self, name: &str, options: &ReleaseOptions) -> u64 {
        let yaml = release_yaml(name, options);
        let documents = parse_documents(&yaml).expect("test document is valid");
        let document = &documents[0];
        self.store
            .put_spec(SpecWrite {
                name: name.into(),
                labels: options.labels.clone(),
                spec: serde_json::to_value(&document.spec).unwrap(),
                precondition: SpecPrecondition::Any,
                written_by: "test".into(),
                written_at: self.clock.now(),
                action: AuditAction::Apply,
                detail: String::new(),
            })
            .await
            .expect("spec written")
    }

    /// Writes a raw spec, bypassing validation (as a hand edit of the table would).
    pub async fn put_raw_spec(&self, name: &str, spec: serde_json::Value) -> u64 {
        self.store
            .put_spec(SpecWrite {
                name: name.into(),
                labels: BTreeMap::new(),
                spec,
                precondition: SpecPrecondition::Any,
                written_by: "test".into(),
                written_at: self.clock.now(),
                action: AuditAction::Apply,
                detail: String::new(),
            })
            .await
            .expect("spec written")
    }

    pub async fn request(&self, name: &str, kind: RequestKind) {
        let generation = self.store.get(name).await.unwrap().unwrap().generation;
        self.store
            .put_request(
                name,
                kind,
                OperatorRequest {
                    generation,
                    requested_by: "arn:aws:iam::111122223333:user/alice".into(),
                    requested_at: self.clock.now(),
                    full: false,
                },
            )
            .await
            .expect("request written");
    }

    /// Runs a fresh controller (as after a restart) for `duration` of virtual time.
    pub async fn run_for(&self, duration: Duration) -> RunSummary {
        controller::run(self.context(), tokio::time::sleep(duration)).await
    }

    /// Starts one controller on `ctx` for 30 minutes (the test's whole run) and returns,
    /// 15 minutes in, once every release of `names` is Healthy.
    pub async fn run_until_healthy(
        &self,
        ctx: Context,
        names: &[String],
    ) -> tokio::task::JoinHandle<RunSummary> {
        let controller = tokio::spawn(controller::run(ctx, tokio::time::sleep(minutes(30))));
        tokio::time::sleep(minutes(15)).await;
        for name in names {
            let status = self.status(name).await;
            assert_eq!(
                status.phase,
                switchyard::model::Phase::Healthy,
                "{name}: {}",
                status.message
            );
        }
        controller
    }

    /// Makes every DescribeServices take `latency` from now on, and returns once the next
    /// resync has listed the store (its describes then take that long each).
    pub async fn slow_describes_from_the_next_resync(&self, latency: Duration) {
        self.aws.inject(switchyard::sim::FaultRule::always(
            "ecs:DescribeServices",
            switchyard::sim::Fault::Latency(latency),
        ));
        let scans = || {
            self.store
                .call_counts()
                .get("dynamodb:Scan")
                .copied()
                .unwrap_or(0)
        };
        let before = scans();
        while scans() == before {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn status(&self, name: &str) -> ReleaseStatus {
        self.store
            .get(name)
            .await
            .unwrap()
            .and_then(|r| r.status)
            .unwrap_or_else(|| panic!("{name} has no status"))
    }

    pub fn calls(&self, operation: &str) -> u64 {
        self.aws.call_counts().get(operation).copied().unwrap_or(0)
    }

    /// Deployments the controller created for `release` (rollbacks and others excluded).
    pub fn deployments_of(&self, release: &str) -> Vec<Deployment> {
        self.aws
            .all_deployments()
            .into_iter()
            .filter(|d| {
                d.description
                    .as_deref()
                    .and_then(parse_deployment_description)
                    .is_some_and(|(r, _)| r == release)
            })
            .collect()
    }

    /// The invariant: never two deployments for one rollout of a release.
    pub fn assert_one_deployment_per_rollout(&self) {
        let mut seen = std::collections::BTreeSet::new();
        for d in self.aws.all_deployments() {
            if let Some(key) = d
                .description
                .as_deref()
                .and_then(parse_deployment_description)
            {
                assert!(seen.insert(key.clone()), "two deployments for {key:?}");
            }
        }
    }

    /// The task definition serving production for service `name`.
    pub fn live_task_definition(&self, name: &str) -> String {
        self.aws
            .service("prod", name)
            .and_then(|s| s.live_task_definition().map(str::to_string))
            .expect("service exists")
    }

    pub fn image_of(&self, task_definition_arn: &str, container: &str) -> String {
        let family = switchyard::reconcile::family_of(task_definition_arn);
        self.aws
            .task_definitions(family)
            .into_iter()
            .find(|t| t.arn == task_definition_arn)
            .and_then(|t| t.container(container).map(|c| c.image.clone()))
            .expect("task definition exists")
    }
}

pub fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}
