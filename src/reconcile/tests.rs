//! Table-driven tests of `decide`, `record_outcome` and `plan_observation`, through `check`.
//!
//! A [`World`] holds the release (its spec, generation and requests), the status the
//! controller recorded last, and what AWS holds ([`Aws`]). `World::observed` looks at AWS as
//! the shell does (`controller/observe.rs`), following the pure observation plan, so a test
//! sees what the controller would see; `World::pass` runs one whole pass (observe, decide,
//! make the call, record its outcome), so that statuses are the ones the core wrote, never
//! written by hand.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::candidate::{TAG_BASE, TAG_FINGERPRINT, TAG_RELEASE};
use super::codedeploy::{
    STOP_UNCONFIRMED_WAIT, deployment_description, parse_deployment_description,
};
use super::plan::{ResolveLookups, StrategyPlan};
use super::*;
use crate::model::{
    CodeDeployStrategy, ContainerChange, HandledRequests, Promotion, RollbackSpec, ServiceRef,
    Strategy, TaskDefinitionSpec,
};
use crate::ports::{
    CapacityProviderItem, ContainerDefinition, CreateDeploymentRequest, Deployment,
    DeploymentControllerType, DeploymentCreator, DeploymentErrorInfo, DeploymentGroup,
    DeploymentStatus, DeploymentTarget, LifecycleEvent, LifecycleEventStatus, LoadBalancerBinding,
    NetworkConfiguration, ReadyAction, RollbackInfo, StabilityStatus, TargetTaskSet, TaskSet,
    TaskSetStatus,
};

// ----- the world -----------------------------------------------------------------------

const NAME: &str = "web";
const OLD_IMAGE: &str = "registry/web:1.0";
const NEW_IMAGE: &str = "registry/web:2.0";
const NEWER_IMAGE: &str = "registry/web:3.0";
const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn after(duration: Duration) -> Timestamp {
    now() + SignedDuration::try_from(duration).unwrap()
}

fn td_arn(revision: u32) -> String {
    format!("arn:aws:ecs:us-east-1:111122223333:task-definition/web:{revision}")
}

/// Revision `revision` of the family `web`, as someone other than switchyard registered it:
/// the `web` container runs `image`, beside a log router.
fn td(revision: u32, image: &str) -> TaskDefinition {
    TaskDefinition {
        arn: td_arn(revision),
        family: "web".into(),
        revision,
        status: "ACTIVE".into(),
        containers: vec![
            ContainerDefinition {
                name: "web".into(),
                image: image.into(),
                environment: BTreeMap::from([("MODE".into(), "prod".into())]),
                container_ports: vec![8080],
                other_fields_digest: "c1".into(),
            },
            ContainerDefinition {
                name: "log-router".into(),
                image: "fluent-bit:3".into(),
                environment: BTreeMap::new(),
                container_ports: vec![],
                other_fields_digest: "c2".into(),
            },
        ],
        other_fields_digest: "t1".into(),
        tags: BTreeMap::new(),
    }
}

fn spec() -> ReleaseSpec {
    ReleaseSpec {
        service: ServiceRef {
            cluster: "prod".into(),
            name: "web".into(),
            region: None,
            role_arn: None,
        },
        task_definition: TaskDefinitionSpec {
            from: "web".into(),
            containers: BTreeMap::from([(
                "web".into(),
                ContainerChange {
                    image: Some(NEW_IMAGE.into()),
                    environment: BTreeMap::new(),
                },
            )]),
        },
        strategy: Strategy {
            code_deploy: Some(CodeDeployStrategy {
                application: "web".into(),
                deployment_group: "web-prod".into(),
                deployment_config: None,
                promotion: Promotion::Auto,
                analysis: None,
            }),
            ..Strategy::default()
        },
        rollback: None,
        paused: false,
        on_drift: OnDrift::Report,
        notifications: None,
    }
}

fn code_deploy(spec: &mut ReleaseSpec) -> &mut CodeDeployStrategy {
    spec.strategy.code_deploy.as_mut().unwrap()
}

fn web_container(spec: &mut ReleaseSpec) -> &mut ContainerChange {
    spec.task_definition.containers.get_mut("web").unwrap()
}

fn alarms(names: &[&str]) -> Option<RollbackSpec> {
    Some(RollbackSpec {
        alarms: names.iter().map(|n| n.to_string()).collect(),
    })
}

fn tg_arn(name: &str) -> String {
    format!(
        "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/{name}/0123456789abcdef"
    )
}

/// The service `prod/web`, with revision `live_revision` in its primary task set.
fn service(live_revision: u32) -> Service {
    Service {
        cluster: "prod".into(),
        name: "web".into(),
        arn: "arn:aws:ecs:us-east-1:111122223333:service/prod/web".into(),
        status: "ACTIVE".into(),
        deployment_controller: DeploymentControllerType::CodeDeploy,
        task_definition: Some(td_arn(live_revision)),
        desired_count: 2,
        task_sets: vec![TaskSet {
            id: "ts-1".into(),
            arn: "arn:aws:ecs:us-east-1:111122223333:task-set/prod/web/ts-1".into(),
            status: TaskSetStatus::Primary,
            task_definition: td_arn(live_revision),
            external_id: None,
            started_by: None,
            scale_percent: 100.0,
            computed_desired_count: 2,
            pending_count: 0,
            running_count: 2,
            stability: StabilityStatus::SteadyState,
            target_group_arns: vec![tg_arn("web-tg-a")],
            load_balancers: Vec::new(),
            launch: Default::default(),
        }],
        load_balancers: vec![LoadBalancerBinding {
            target_group_arn: tg_arn("web-tg-a"),
            container_name: "web".into(),
            container_port: 8080,
        }],
        network_configuration: Some(NetworkConfiguration {
            subnets: vec!["subnet-1".into()],
            security_groups: vec!["sg-1".into()],
            assign_public_ip: false,
        }),
        capacity_provider_strategy: vec![CapacityProviderItem {
            capacity_provider: "FARGATE".into(),
            base: 1,
            weight: 1,
        }],
        platform_version: Some("LATEST".into()),
        current_service_deployment: None,
        ecs_deployment: None,
    }
}

fn group(ready: ReadyAction) -> DeploymentGroup {
    DeploymentGroup {
        application: "web".into(),
        name: "web-prod".into(),
        ecs_service: Some(("prod".into(), "web".into())),
        deployment_config: "CodeDeployDefault.ECSAllAtOnce".into(),
        ready_action: ready,
        termination_wait_minutes: 0,
        target_group_names: vec!["web-tg-a".into(), "web-tg-b".into()],
        production_listener_arns: vec!["arn:listener/prod".into()],
        test_listener_arns: vec!["arn:listener/test".into()],
    }
}

/// A deployment of the group, started by switchyard for rollout `rollout` of `web`.
fn deployment(id: &str, status: DeploymentStatus, rollout: u32) -> Deployment {
    Deployment {
        id: id.into(),
        application: "web".into(),
        deployment_group: "web-prod".into(),
        status,
        description: Some(deployment_description(NAME, rollout)),
        creator: DeploymentCreator::User,
        deployment_config: "CodeDeployDefault.ECSAllAtOnce".into(),
        create_time: Some(now()),
        complete_time: None,
        error: None,
        rollback: None,
    }
}

/// The ECS target of a deployment in lifecycle event `event`, with `candidate_weight` percent
/// of production traffic on the candidate.
fn target(event: &str, candidate_weight: f64) -> DeploymentTarget {
    let names = [
        "BeforeInstall",
        "Install",
        "AfterInstall",
        "AllowTestTraffic",
        "AfterAllowTestTraffic",
        "BeforeAllowTraffic",
        "AllowTraffic",
        "AfterAllowTraffic",
    ];
    let position = names.iter().position(|n| *n == event).unwrap();
    let task_set = |identifier: &str, weight: f64, group: &str, label: &str| TargetTaskSet {
        identifier: identifier.into(),
        status: "ACTIVE".into(),
        traffic_weight: weight,
        desired_count: 2,
        pending_count: 0,
        running_count: 2,
        target_group_name: Some(group.into()),
        label: Some(label.into()),
    };
    DeploymentTarget {
        status: "InProgress".into(),
        lifecycle_events: names
            .iter()
            .enumerate()
            .map(|(i, name)| LifecycleEvent {
                name: name.to_string(),
                status: match i.cmp(&position) {
                    std::cmp::Ordering::Less => LifecycleEventStatus::Succeeded,
                    std::cmp::Ordering::Equal => LifecycleEventStatus::InProgress,
                    std::cmp::Ordering::Greater => LifecycleEventStatus::Pending,
                },
                start_time: None,
                end_time: None,
            })
            .collect(),
        task_sets: vec![
            task_set("ts-1", 100.0 - candidate_weight, "web-tg-a", "Blue"),
            task_set("ts-2", candidate_weight, "web-tg-b", "Green"),
        ],
    }
}

fn request(generation: u64, second: i64) -> OperatorRequest {
    OperatorRequest {
        generation,
        requested_by: ALICE.into(),
        requested_at: Timestamp::from_second(1_700_000_000 + second).unwrap(),
        full: false,
    }
}

fn aws_error(kind: AwsErrorKind) -> AwsError {
    AwsError::new("aws", "Call", kind, "no")
}

/// What AWS holds for the release.
#[derive(Debug, Clone)]
struct Aws {
    service: Lookup<Service>,
    /// Every revision of the family, in registration order.
    revisions: Vec<TaskDefinition>,
    group: Lookup<DeploymentGroup>,
    deployments: Vec<Deployment>,
    /// The ECS target of the active deployment.
    target: Option<DeploymentTarget>,
    /// The CloudWatch alarms that exist.
    alarms: BTreeMap<String, AlarmState>,
}

impl Aws {
    fn task_definition(&self, arn: &str) -> Lookup<TaskDefinition> {
        self.revisions
            .iter()
            .find(|t| t.arn == arn)
            .cloned()
            .map_or(Lookup::Missing, Lookup::Found)
    }

    /// Resolves as the shell does: the base (a family's latest revision switchyard did not
    /// register, or the ARN), the release's registered revisions since, the live revision.
    fn resolve(&self, lookups: &ResolveLookups) -> TaskDefinitions {
        let mut found = TaskDefinitions::default();
        let is_arn = lookups.base.starts_with("arn:");
        let base_revision = if is_arn {
            found.base = self.task_definition(&lookups.base);
            found.base.found().map(|t| t.revision)
        } else {
            None
        };
        let mut family: Vec<&TaskDefinition> = self
            .revisions
            .iter()
            .filter(|t| t.family == lookups.family)
            .collect();
        family.sort_by_key(|t| std::cmp::Reverse(t.revision));
        for revision in family {
            if base_revision.is_some_and(|base| revision.revision <= base) {
                break;
            }
            match revision.tags.get(TAG_RELEASE) {
                Some(owner) if owner == NAME => found.registered.push(revision.clone()),
                Some(_) => {}
                None if is_arn => {}
                None => {
                    found.base = Lookup::Found(revision.clone());
                    break;
                }
            }
        }
        if !is_arn && found.base == Lookup::NotLookedUp {
            found.base = Lookup::Missing;
        }
        found.live = match &lookups.live {
            Some(live) => self.task_definition(live),
            None => Lookup::Missing,
        };
        found
    }

    /// Makes a call, as AWS answers it when it succeeds. CodeDeploy acts on its own later:
    /// tests move deployments on with [`Aws::deployment`].
    fn answer(&mut self, action: &Action) -> Result<ActionResult, AwsError> {
        match action {
            Action::RegisterTaskDefinition(registration) => {
                let revision = self.revisions.iter().map(|t| t.revision).max().unwrap_or(0) + 1;
                let registered = TaskDefinition {
                    arn: td_arn(revision),
                    family: registration.base.family.clone(),
                    revision,
                    status: "ACTIVE".into(),
                    containers: registration.containers.clone(),
                    other_fields_digest: registration.base.other_fields_digest.clone(),
                    tags: registration.tags.clone(),
                };
                self.revisions.push(registered.clone());
                Ok(ActionResult::Registered(registered))
            }
            Action::CodeDeploy(codedeploy::Action::Create(request)) => {
                let id = format!("d-{}", self.deployments.len() + 1);
                self.deployments.push(Deployment {
                    description: Some(request.description.clone()),
                    ..deployment(&id, DeploymentStatus::InProgress, 0)
                });
                Ok(ActionResult::CodeDeploy(
                    codedeploy::ActionResult::Created { deployment_id: id },
                ))
            }
            Action::CodeDeploy(_) => Ok(ActionResult::CodeDeploy(codedeploy::ActionResult::Done)),
            Action::TaskSets(_) | Action::Ecs(_) => {
                unreachable!("the CodeDeploy world makes no call of another strategy")
            }
        }
    }

    fn deployment(&mut self, id: &str) -> &mut Deployment {
        self.deployments.iter_mut().find(|d| d.id == id).unwrap()
    }

    /// CodeDeploy stopped (or failed) `id` and started its rollback `d-RB`, now in `rollback`.
    fn roll_back(&mut self, id: &str, ended: DeploymentStatus, rollback: DeploymentStatus) {
        self.target = None;
        self.deployment(id).status = ended;
        self.deployment(id).rollback = Some(RollbackInfo {
            rollback_deployment_id: Some("d-RB".into()),
            rollback_triggering_deployment_id: None,
            rollback_message: None,
        });
        self.deployments.retain(|d| d.id != "d-RB");
        self.deployments.push(Deployment {
            description: None,
            creator: DeploymentCreator::CodeDeployRollback,
            rollback: Some(RollbackInfo {
                rollback_deployment_id: None,
                rollback_triggering_deployment_id: Some(id.into()),
                rollback_message: None,
            }),
            ..deployment("d-RB", rollback, 0)
        });
    }

    fn set_live(&mut self, revision: u32) {
        self.service = Lookup::Found(service(revision));
    }
}

/// One row of a table: the release, the status recorded last, and AWS.
#[derive(Debug, Clone)]
struct World {
    desired: DesiredRelease,
    status: Option<ReleaseStatus>,
    aws: Aws,
    now: Timestamp,
    /// Changes to what the shell observed, for observations the plan would not make.
    tweaks: Vec<fn(&mut Observed)>,
}

impl World {
    /// Generation 1 of `web`, wanting image 2.0; web:1 (image 1.0, not registered by
    /// switchyard) is live; the group deploys prod/web and shifts traffic by itself; nothing
    /// recorded yet.
    fn new() -> Self {
        Self {
            desired: DesiredRelease {
                name: NAME.into(),
                generation: 1,
                spec: Ok(spec()),
                requests: Requests::default(),
                placement: crate::model::Home::new("us-east-1", Some("111122223333".into()))
                    .place(None, None),
            },
            status: None,
            aws: Aws {
                service: Lookup::Found(service(1)),
                revisions: vec![td(1, OLD_IMAGE)],
                group: Lookup::Found(group(ReadyAction::ContinueDeployment)),
                deployments: Vec::new(),
                target: None,
                alarms: BTreeMap::new(),
            },
            now: now(),
            tweaks: Vec::new(),
        }
    }

    fn status(&self) -> &ReleaseStatus {
        self.status.as_ref().expect("a recorded status")
    }

    /// Changes the spec without a new generation (to set the world up before anything).
    fn with_spec(mut self, edit: impl FnOnce(&mut ReleaseSpec)) -> Self {
        edit(self.desired.spec.as_mut().unwrap());
        self
    }

    /// A spec edit: a new generation.
    fn edit(mut self, edit: impl FnOnce(&mut ReleaseSpec)) -> Self {
        self.desired.generation += 1;
        self.with_spec(edit)
    }

    /// A label edit: a new generation, the same spec.
    fn label_edit(self) -> Self {
        self.edit(|_| {})
    }

    /// Rollback alarm `name`, existing, in `state` (without a new generation).
    fn watched_by(mut self, name: &str, state: AlarmState) -> Self {
        self.aws.alarms.insert(name.into(), state);
        self.with_spec(|s| {
            s.rollback
                .get_or_insert(RollbackSpec { alarms: vec![] })
                .alarms
                .push(name.into());
        })
    }

    fn manual(self) -> Self {
        self.with_spec(|s| code_deploy(s).promotion = Promotion::Manual)
    }

    fn asking(mut self, kind: RequestKind, request: OperatorRequest) -> Self {
        self.desired.requests.set(kind, request);
        self
    }

    fn seen(mut self, tweak: fn(&mut Observed)) -> Self {
        self.tweaks.push(tweak);
        self
    }

    fn at(mut self, when: Timestamp) -> Self {
        self.now = when;
        self
    }

    /// What the shell observes, following the plan (`controller/observe.rs`).
    fn observed(&self) -> Observed {
        let mut observed = Observed {
            status: self.status.clone(),
            ..Observed::default()
        };
        self.look(&mut observed);
        for tweak in &self.tweaks {
            tweak(&mut observed);
        }
        observed
    }

    fn look(&self, observed: &mut Observed) {
        let Lookup::Found(service) = &self.aws.service else {
            observed.service = self.aws.service.clone();
            return;
        };
        observed.service = Lookup::Found(service.clone());
        let Ok(spec) = &self.desired.spec else {
            return;
        };
        let plan = plan_observation(&self.desired, self.status.as_ref(), service, self.now);
        if let Some(lookups) = &plan.resolve {
            observed.task_definitions = self.aws.resolve(lookups);
        } else if let Some(candidate) = &plan.candidate {
            observed.task_definitions.candidate = self.aws.task_definition(candidate);
        }
        let Some(StrategyPlan::CodeDeploy { search_since, .. }) = plan.strategy else {
            return;
        };
        if !spec.rollback_alarms().is_empty() {
            observed.alarms = Some(
                spec.rollback_alarms()
                    .iter()
                    .filter_map(|name| Some((name.clone(), *self.aws.alarms.get(name)?)))
                    .collect(),
            );
        }
        let mut seen = codedeploy::Observed {
            group: self.aws.group.clone(),
            ..codedeploy::Observed::default()
        };
        if seen.group.found().is_some() {
            seen.deployments = self.aws.deployments.clone();
            seen.searched_since = search_since;
            if seen.deployments.iter().any(|d| !d.status.is_terminal()) {
                seen.target = self.aws.target.clone();
            }
        }
        observed.strategy = StrategyObserved::CodeDeploy(seen);
    }

    /// One pass: observe, decide, make the call (`reply` is what it returned), record.
    fn pass_answering(
        &mut self,
        reply: impl FnOnce(&mut Aws, &Action) -> Result<ActionResult, AwsError>,
    ) -> Decision {
        let decision = check(self);
        let status = match &decision.action {
            Some(action) => {
                let result = reply(&mut self.aws, action);
                record_outcome(&decision, action, &result, NAME, self.now)
            }
            None => decision.status.clone(),
        };
        self.status = Some(status);
        decision
    }

    /// One pass in which every call succeeds.
    fn pass(&mut self) -> Decision {
        self.pass_answering(Aws::answer)
    }

    /// One pass whose call fails with `error` without taking effect.
    fn pass_failing(&mut self, error: AwsError) -> Decision {
        self.pass_answering(|_, _| Err(error))
    }

    /// One pass whose call took effect but whose reply was lost (a crash after the call):
    /// only the status written before the call remains.
    fn pass_lost(&mut self) -> Decision {
        let decision = check(self);
        if let Some(action) = &decision.action {
            let _ = self.aws.answer(action);
        }
        self.status = Some(decision.status.clone());
        decision
    }

    /// One pass that crashed before its call: only the status written before it remains.
    fn pass_crashed(&mut self) -> Decision {
        let decision = check(self);
        self.status = Some(decision.status.clone());
        decision
    }

    /// The candidate registered (web:2).
    fn registered(mut self) -> Self {
        let decision = self.pass();
        assert_eq!(action_name(&decision), Some("RegisterTaskDefinition"));
        self
    }

    /// Rollout 1 in flight: its deployment d-1 installs the candidate.
    fn in_flight(self) -> Self {
        let mut world = self.registered();
        let decision = world.pass();
        assert_eq!(action_name(&decision), Some("CreateDeployment"));
        world.aws.target = Some(target("Install", 0.0));
        world
    }

    /// d-1 in `status`, in lifecycle event `event`, with `weight` percent on the candidate.
    fn deployment_at(mut self, status: DeploymentStatus, event: &str, weight: f64) -> Self {
        self.aws.deployment("d-1").status = status;
        self.aws.target = Some(target(event, weight));
        self
    }

    /// d-1 waits in Ready with test traffic on the candidate (the group waits there).
    fn ready(mut self) -> Self {
        self.aws.group = Lookup::Found(group(ReadyAction::StopDeployment { wait_minutes: 60 }));
        self.deployment_at(DeploymentStatus::Ready, "BeforeAllowTraffic", 0.0)
    }

    /// d-1 succeeded: web:2 is live.
    fn succeeded(mut self) -> Self {
        self.aws.deployment("d-1").status = DeploymentStatus::Succeeded;
        self.aws.target = None;
        self.aws.set_live(2);
        self
    }

    /// Rollout 1 succeeded and the controller saw it: Healthy with web:2 live.
    fn healthy(self) -> Self {
        let mut world = self.in_flight().succeeded();
        let decision = world.pass();
        assert_eq!(decision.status.phase, Phase::Healthy);
        world
    }

    /// Rollout 1 was stopped (d-1), and CodeDeploy's rollback succeeded: RolledBack.
    fn rolled_back(self) -> Self {
        let mut world = self.in_flight();
        world.aws.roll_back(
            "d-1",
            DeploymentStatus::Stopped,
            DeploymentStatus::Succeeded,
        );
        let decision = world.pass();
        assert_eq!(decision.status.phase, Phase::RolledBack);
        world
    }
}

/// Decides for `world` and checks what holds for every decision.
fn check(world: &World) -> Decision {
    let observed = world.observed();
    let decision = decide(&world.desired, &observed, world.now);
    let status = &decision.status;
    assert_eq!(status.observed_generation, world.desired.generation);
    assert!(status.history.len() <= HISTORY_LIMIT);
    if decision.action.is_some() {
        assert!(
            decision.requeue_after.is_some(),
            "an action is always followed by a look"
        );
    } else {
        assert_eq!(decision.ack, None, "only a call carries a request out");
    }
    if status.phase == Phase::Paused {
        assert_eq!(
            status.rollout_in_flight(),
            None,
            "Paused means nothing is in flight"
        );
    }
    // Intents are written before their calls.
    match &decision.action {
        Some(Action::RegisterTaskDefinition(_)) => assert!(
            status
                .candidate
                .as_ref()
                .is_some_and(|c| c.registering_since.is_some())
        ),
        Some(Action::CodeDeploy(codedeploy::Action::Create(_))) => {
            assert!(
                status
                    .code_deploy()
                    .is_some_and(|s| s.creating_since.is_some())
            );
        }
        Some(Action::CodeDeploy(codedeploy::Action::Stop { deployment_id })) => {
            assert!(
                status
                    .code_deploy()
                    .and_then(|s| s.stop.as_ref())
                    .is_some_and(|s| &s.deployment_id == deployment_id && !s.sent)
            );
            // A stop is never sent again once one call for it succeeded.
            let sent_before = world
                .status
                .as_ref()
                .and_then(ReleaseStatus::code_deploy)
                .and_then(|s| s.stop.as_ref())
                .is_some_and(|s| &s.deployment_id == deployment_id && s.sent);
            assert!(!sent_before, "StopDeployment {deployment_id} sent again");
        }
        _ => {}
    }
    decision
}

fn action_name(decision: &Decision) -> Option<&'static str> {
    decision.action.as_ref().map(Action::as_str)
}

fn registration(decision: &Decision) -> &Registration {
    match &decision.action {
        Some(Action::RegisterTaskDefinition(registration)) => registration,
        other => panic!("expected a registration, got {other:?}"),
    }
}

fn create_request(decision: &Decision) -> &CreateDeploymentRequest {
    match &decision.action {
        Some(Action::CodeDeploy(codedeploy::Action::Create(request))) => request,
        other => panic!("expected CreateDeployment, got {other:?}"),
    }
}

fn stop(id: &str) -> Option<Action> {
    Some(Action::CodeDeploy(codedeploy::Action::Stop {
        deployment_id: id.into(),
    }))
}

fn continue_(id: &str) -> Option<Action> {
    Some(Action::CodeDeploy(codedeploy::Action::Continue {
        deployment_id: id.into(),
    }))
}

/// The task definition in a CreateDeployment's AppSpec.
fn appspec_task_definition(request: &CreateDeploymentRequest) -> String {
    let appspec: serde_json::Value = serde_json::from_str(&request.appspec_content).unwrap();
    appspec["Resources"][0]["TargetService"]["Properties"]["TaskDefinition"]
        .as_str()
        .unwrap()
        .to_string()
}

fn stop_record(status: &ReleaseStatus) -> Option<&crate::model::StopRecord> {
    status.code_deploy().and_then(|s| s.stop.as_ref())
}

fn condition(status: &ReleaseStatus, kind: ConditionType) -> (ConditionStatus, Reason) {
    let condition = status.condition(kind).expect("the condition is set");
    (condition.status, condition.reason)
}

/// Decides again on the decision's own status (as if the world did not change) and checks
/// that nothing new happens: the status is stable, so it is not rewritten every pass.
fn assert_stable(world: &World, decision: &Decision) {
    let mut again = world.clone();
    again.status = Some(decision.status.clone());
    let second = check(&again);
    assert_eq!(second.status, decision.status, "the status must be stable");
    assert_eq!(second.action, decision.action);
}

// ----- validation and the target ---------------------------------------------------------

#[test]
fn an_invalid_spec_is_reported_with_its_field_path_and_nothing_is_done() {
    let mut world = World::new();
    world.desired.spec = Err(vec![
        FieldError::new(
            "spec.taskDefinition.containers.web.image",
            "must not be empty",
        ),
        FieldError::new("spec.service.name", "must not be empty"),
    ]);
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Invalid);
    assert_eq!(
        decision.status.message,
        "spec.taskDefinition.containers.web.image: must not be empty (and 1 more)"
    );
    assert_eq!(decision.action, None);
    assert_stable(&world, &decision);
}

#[test]
fn a_spec_without_exactly_one_strategy_is_invalid() {
    let world = World::new().with_spec(|s| s.strategy.code_deploy = None);
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Invalid);
    assert!(
        decision.status.message.starts_with(
            "spec.strategy: must set exactly one strategy (codeDeploy, taskSets, ecs)"
        ),
        "{}",
        decision.status.message
    );
    assert_eq!(decision.action, None);
}

#[test]
fn a_missing_service_fails_naming_the_service() {
    let mut world = World::new();
    world.aws.service = Lookup::Missing;
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Failed);
    assert_eq!(
        condition(&decision.status, ConditionType::Ready).1,
        Reason::ServiceNotFound
    );
    assert!(decision.status.message.contains("prod/web not found"));
    assert_eq!(decision.action, None);
    assert_eq!(decision.requeue_after, Some(POLL_FAILED));
    assert_stable(&world, &decision);
}

#[test]
fn a_service_without_the_codedeploy_controller_fails_before_anything_is_registered() {
    let mut world = World::new();
    if let Lookup::Found(service) = &mut world.aws.service {
        service.deployment_controller = DeploymentControllerType::Ecs;
    }
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Failed);
    assert_eq!(
        condition(&decision.status, ConditionType::Ready).1,
        Reason::WrongDeploymentController
    );
    assert!(decision.status.message.contains("CODE_DEPLOY"));
    assert_eq!(decision.action, None);
}

#[test]
fn a_missing_deployment_group_fails_naming_it_before_anything_is_registered() {
    let mut world = World::new();
    world.aws.group = Lookup::Missing;
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Failed);
    assert!(
        decision.status.message.contains("web/web-prod not found"),
        "{}",
        decision.status.message
    );
    assert_eq!(decision.action, None);
    assert_stable(&world, &decision);
}

#[test]
fn a_group_that_deploys_another_service_fails_naming_both_services_and_the_group() {
    for (deploys, named) in [
        (Some(("prod", "api")), "service prod/api"),
        (Some(("staging", "web")), "service staging/web"),
        (
            Some(("arn:aws:ecs:us-east-1:111122223333:cluster/staging", "web")),
            "service staging/web",
        ),
        (None, "no ECS service"),
    ] {
        let mut world = World::new();
        if let Lookup::Found(group) = &mut world.aws.group {
            group.ecs_service = deploys.map(|(c, s)| (c.to_string(), s.to_string()));
        }
        let decision = check(&world);
        assert_eq!(decision.status.phase, Phase::Failed, "{deploys:?}");
        assert_eq!(
            condition(&decision.status, ConditionType::Ready).1,
            Reason::MisconfiguredService
        );
        let message = &decision.status.message;
        for part in ["group web/web-prod", named, "not service prod/web"] {
            assert!(message.contains(part), "{part:?} not in {message:?}");
        }
        assert_eq!(decision.action, None, "{deploys:?}");
        assert_stable(&world, &decision);
    }
}

#[test]
fn a_cluster_given_as_an_arn_is_the_same_cluster() {
    let arn = "arn:aws:ecs:us-east-1:111122223333:cluster/prod";
    for (in_spec, in_group) in [(arn, "prod"), ("prod", arn), (arn, arn)] {
        let mut world = World::new().with_spec(|s| s.service.cluster = in_spec.into());
        if let Lookup::Found(group) = &mut world.aws.group {
            group.ecs_service = Some((in_group.into(), "web".into()));
        }
        let decision = check(&world);
        assert_eq!(
            action_name(&decision),
            Some("RegisterTaskDefinition"),
            "{in_spec} / {in_group}: {}",
            decision.status.message
        );
    }
}

#[test]
fn writing_the_cluster_as_its_arn_does_not_supersede_the_rollout_in_flight() {
    let world = World::new()
        .in_flight()
        .edit(|s| s.service.cluster = "arn:aws:ecs:us-east-1:111122223333:cluster/prod".into());
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert_eq!(decision.status.rollout.as_ref().unwrap().serial, 1);
}

// ----- the candidate -----------------------------------------------------------------------

#[test]
fn a_new_release_registers_a_copy_of_the_base_with_the_spec_s_image_and_its_tags() {
    let world = World::new();
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Pending);
    assert_eq!(
        condition(&decision.status, ConditionType::Ready).1,
        Reason::RegisteringTaskDefinition
    );
    let registration = registration(&decision);
    assert_eq!(registration.base, td(1, OLD_IMAGE));
    assert_eq!(registration.containers[0].image, NEW_IMAGE);
    assert_eq!(
        registration.containers[0].environment["MODE"], "prod",
        "the base's environment is kept"
    );
    assert_eq!(
        registration.containers[1],
        td(1, OLD_IMAGE).containers[1],
        "other containers are untouched"
    );
    let candidate = decision.status.candidate.as_ref().unwrap();
    assert_eq!(candidate.base, td_arn(1));
    assert_eq!(candidate.arn, None);
    assert_eq!(
        candidate.registering_since,
        Some(now()),
        "the intent is written before the call"
    );
    assert_eq!(
        registration.tags,
        BTreeMap::from([
            (TAG_RELEASE.to_string(), NAME.to_string()),
            (TAG_BASE.to_string(), td_arn(1)),
            (TAG_FINGERPRINT.to_string(), candidate.fingerprint.clone()),
        ])
    );
    assert_eq!(
        decision.status.rollout, None,
        "no rollout before a candidate"
    );
}

#[test]
fn the_base_is_the_revision_the_shell_found_not_the_live_one() {
    // web:3 is the family's latest revision switchyard did not register; web:1 is live.
    let mut world = World::new();
    world.aws.revisions.push(TaskDefinition {
        other_fields_digest: "t3".into(),
        ..td(3, "registry/web:1.5")
    });
    let decision = check(&world);
    let registration = registration(&decision);
    assert_eq!(registration.base.arn, td_arn(3));
    assert_eq!(registration.containers[0].image, NEW_IMAGE);
    assert_eq!(decision.status.candidate.as_ref().unwrap().base, td_arn(3));
}

#[test]
fn environment_changes_merge_over_the_base_s_environment() {
    let world = World::new().with_spec(|s| {
        let web = web_container(s);
        web.environment.insert("FEATURE_X".into(), "on".into());
        web.environment.insert("MODE".into(), "canary".into());
    });
    let decision = check(&world);
    assert_eq!(
        registration(&decision).containers[0].environment,
        BTreeMap::from([
            ("FEATURE_X".to_string(), "on".to_string()),
            ("MODE".to_string(), "canary".to_string())
        ])
    );
}

#[test]
fn a_variable_removed_from_the_spec_is_not_in_the_next_candidate() {
    let world = World::new()
        .with_spec(|s| {
            web_container(s)
                .environment
                .insert("FEATURE_X".into(), "on".into());
        })
        .healthy();
    assert!(
        world.aws.revisions[1].containers[0]
            .environment
            .contains_key("FEATURE_X"),
        "web:2, live, has it"
    );
    let world = world.edit(|s| web_container(s).environment.clear());
    let decision = check(&world);
    let registration = registration(&decision);
    assert_eq!(
        registration.base.arn,
        td_arn(1),
        "web:2 is ours: not a base"
    );
    assert_eq!(
        registration.containers[0].environment,
        BTreeMap::from([("MODE".to_string(), "prod".to_string())])
    );
    assert_eq!(registration.containers[0].image, NEW_IMAGE);
}

#[test]
fn content_equal_to_the_live_revision_is_healthy_with_nothing_registered() {
    // web:2 carries the candidate's content and is live: registered by switchyard before the
    // status was lost, say.
    let mut registered = World::new();
    registered.pass();
    let mut ours = World::new();
    ours.aws.revisions = registered.aws.revisions;
    ours.aws.set_live(2);
    // Or registered by someone else, while the release copies web:1 by its ARN.
    let mut theirs = World::new().with_spec(|s| s.task_definition.from = td_arn(1));
    theirs.aws.revisions.push(td(2, NEW_IMAGE));
    theirs.aws.set_live(2);
    for (what, world) in [("ours", ours), ("someone else's", theirs)] {
        let decision = check(&world);
        assert_eq!(decision.status.phase, Phase::Healthy, "{what}");
        assert_eq!(
            condition(&decision.status, ConditionType::Ready),
            (ConditionStatus::True, Reason::AlreadyLive)
        );
        assert_eq!(decision.action, None, "{what}");
        assert_eq!(
            decision.status.desired_task_definition.as_deref(),
            Some(td_arn(2).as_str())
        );
        assert_eq!(decision.status.history.len(), 1);
        assert_eq!(decision.status.history[0].outcome, Outcome::AlreadyLive);
        assert_eq!(
            decision.status.rollout.as_ref().unwrap().outcome,
            Some(Outcome::AlreadyLive)
        );
        assert_stable(&world, &decision);
    }
}

#[test]
fn content_equal_to_the_base_makes_the_base_the_candidate_with_nothing_registered() {
    // CI registered web:3 with the new image itself; it is the family's latest revision.
    let mut world = World::new();
    world.aws.revisions.push(td(3, NEW_IMAGE));
    let decision = check(&world);
    let request = create_request(&decision);
    assert_eq!(appspec_task_definition(request), td_arn(3));
    let candidate = decision.status.candidate.as_ref().unwrap();
    assert_eq!(
        (candidate.base.as_str(), candidate.arn.as_deref()),
        (td_arn(3).as_str(), Some(td_arn(3).as_str()))
    );
    assert_eq!(
        decision.status.desired_task_definition.as_deref(),
        Some(td_arn(3).as_str())
    );
}

#[test]
fn a_revision_registered_with_the_same_fingerprint_is_reused_instead_of_registering_again() {
    // Registered once; then the status was lost (a new table, a restore).
    let mut world = World::new().registered();
    world.status = None;
    let decision = check(&world);
    assert_eq!(action_name(&decision), Some("CreateDeployment"));
    assert_eq!(
        appspec_task_definition(create_request(&decision)),
        td_arn(2)
    );
    assert_eq!(world.aws.revisions.len(), 2);
}

#[test]
fn a_registration_whose_reply_was_lost_is_adopted_by_its_fingerprint_not_registered_again() {
    for lose in [
        World::pass_lost as fn(&mut World) -> Decision,
        |world: &mut World| {
            world.pass_answering(|aws, action| {
                aws.answer(action)?;
                Err(aws_error(AwsErrorKind::Ambiguous))
            })
        },
    ] {
        let mut world = World::new();
        lose(&mut world);
        let intent = world.status().candidate.clone().unwrap();
        assert_eq!((intent.arn, intent.registering_since), (None, Some(now())));
        let decision = check(&world);
        assert_eq!(action_name(&decision), Some("CreateDeployment"));
        let candidate = decision.status.candidate.as_ref().unwrap();
        assert_eq!(candidate.arn.as_deref(), Some(td_arn(2).as_str()));
        assert_eq!(candidate.registering_since, None);
        assert_eq!(world.aws.revisions.len(), 2, "registered once");
    }
}

/// Found by the simulation (seed 245 of 300, 3 replicas): the owner's RegisterTaskDefinition
/// was on its way (5 s of latency) when another replica took the shard over; the new owner
/// found the intent, no revision with its fingerprint yet, and registered the candidate
/// again: two revisions for one candidate.
#[test]
fn a_registration_not_found_yet_is_waited_for_before_asking_again() {
    let mut world = World::new();
    world.pass_crashed();
    let intent = world.status().candidate.clone().unwrap();
    assert_eq!(intent.registering_since, Some(now()));

    let soon = world.clone().at(after(Duration::from_secs(5)));
    let decision = check(&soon);
    assert_eq!(action_name(&decision), None, "{}", decision.status.message);
    assert_eq!(decision.status.phase, Phase::Pending);
    assert_eq!(
        decision
            .status
            .candidate
            .as_ref()
            .unwrap()
            .registering_since,
        Some(now()),
        "the intent stays as it was"
    );
    assert!(
        decision
            .requeue_after
            .is_some_and(|after| after <= candidate::REGISTRATION_IN_FLIGHT),
        "{:?}",
        decision.requeue_after
    );

    // The call lands meanwhile: adopted, not registered again.
    let mut landed = soon.clone();
    landed
        .aws
        .answer(&Action::RegisterTaskDefinition(
            match World::new().pass_crashed().action {
                Some(Action::RegisterTaskDefinition(registration)) => registration,
                other => panic!("a registration, not {other:?}"),
            },
        ))
        .unwrap();
    assert_eq!(action_name(&check(&landed)), Some("CreateDeployment"));
    assert_eq!(landed.aws.revisions.len(), 2, "registered once");

    // It never landed: asked again once no call could still land.
    let later = world.at(after(
        candidate::REGISTRATION_IN_FLIGHT + Duration::from_secs(1),
    ));
    assert_eq!(action_name(&check(&later)), Some("RegisterTaskDefinition"));
}

#[test]
fn a_registration_that_did_not_take_effect_is_asked_again() {
    let mut world = World::new();
    world.pass_failing(aws_error(AwsErrorKind::Transient));
    assert_eq!(
        world.status().candidate.as_ref().unwrap().registering_since,
        None,
        "nothing to look for"
    );
    assert_eq!(action_name(&check(&world)), Some("RegisterTaskDefinition"));
}

#[test]
fn the_recorded_base_is_kept_when_someone_registers_a_newer_revision() {
    let mut world = World::new().healthy().label_edit();
    world.aws.revisions.push(TaskDefinition {
        other_fields_digest: "t9".into(),
        ..td(9, "someone/else:9")
    });
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Healthy);
    assert_eq!(decision.status.candidate.as_ref().unwrap().base, td_arn(1));

    // Even shown the newer revision as a base, the recorded resolution stands.
    let world = world.seen(|observed| {
        observed.task_definitions.base = Lookup::Found(TaskDefinition {
            other_fields_digest: "t9".into(),
            ..td(9, "someone/else:9")
        });
    });
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Healthy);
}

#[test]
fn the_base_is_resolved_again_when_the_spec_s_task_definition_changes() {
    let mut world = World::new().healthy();
    world.aws.revisions.push(TaskDefinition {
        other_fields_digest: "t9".into(),
        ..td(9, "registry/web:1.9")
    });
    let world = world.edit(|s| web_container(s).image = Some(NEWER_IMAGE.into()));
    let decision = check(&world);
    let registration = registration(&decision);
    assert_eq!(registration.base.arn, td_arn(9));
    assert_eq!(registration.containers[0].image, NEWER_IMAGE);
}

#[test]
fn a_spec_naming_a_container_the_base_does_not_have_is_invalid_and_names_the_field() {
    let world = World::new().with_spec(|s| {
        s.task_definition.containers.insert(
            "sidecar".into(),
            ContainerChange {
                image: Some("x:1".into()),
                environment: BTreeMap::new(),
            },
        );
    });
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Invalid);
    assert!(
        decision.status.message.starts_with(
            "spec.taskDefinition.containers.sidecar: task definition web:1 has no container sidecar"
        ),
        "{}",
        decision.status.message
    );
    assert_eq!(decision.action, None);
}

#[test]
fn a_family_without_a_revision_switchyard_did_not_register_is_invalid() {
    let mut world = World::new();
    world.aws.revisions[0].tags = BTreeMap::from([(TAG_RELEASE.into(), "api".into())]);
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Invalid);
    assert!(
        decision
            .status
            .message
            .starts_with("spec.taskDefinition.from: task definition web not found"),
        "{}",
        decision.status.message
    );
    assert_eq!(decision.action, None);
}

// ----- creating the deployment -----------------------------------------------------------

#[test]
fn the_rollout_starts_with_a_deployment_whose_appspec_is_built_from_the_live_service() {
    let world = World::new().registered();
    let decision = check(&world);
    let request = create_request(&decision);
    assert_eq!(request.application, "web");
    assert_eq!(request.deployment_group, "web-prod");
    assert_eq!(request.description, "switchyard release=web rollout=1");
    assert_eq!(request.deployment_config, None);
    let appspec: serde_json::Value = serde_json::from_str(&request.appspec_content).unwrap();
    let props = &appspec["Resources"][0]["TargetService"]["Properties"];
    assert_eq!(props["TaskDefinition"], td_arn(2));
    assert_eq!(props["LoadBalancerInfo"]["ContainerName"], "web");
    assert_eq!(props["LoadBalancerInfo"]["ContainerPort"], 8080);
    assert_eq!(props["PlatformVersion"], "LATEST");
    let network = &props["NetworkConfiguration"]["AwsvpcConfiguration"];
    assert_eq!(network["Subnets"][0], "subnet-1");
    assert_eq!(network["AssignPublicIp"], "DISABLED");
    assert_eq!(
        props["CapacityProviderStrategy"][0]["CapacityProvider"],
        "FARGATE"
    );
    let status = &decision.status;
    assert_eq!(status.phase, Phase::Pending);
    assert_eq!(
        status.code_deploy().unwrap().creating_since,
        Some(now()),
        "the intent is written before the call"
    );
    let rollout = status.rollout.as_ref().unwrap();
    assert_eq!(rollout.serial, 1);
    assert_eq!(rollout.candidate, td_arn(2));
    assert_eq!(rollout.live.as_deref(), Some(td_arn(1).as_str()));
    assert_eq!(rollout.generation, 1);
    assert_eq!(rollout.outcome, None);
}

#[test]
fn the_deployment_config_override_is_passed_through() {
    let world = World::new()
        .with_spec(|s| {
            code_deploy(s).deployment_config =
                Some("CodeDeployDefault.ECSCanary10Percent5Minutes".into());
        })
        .registered();
    let decision = check(&world);
    assert_eq!(
        create_request(&decision).deployment_config.as_deref(),
        Some("CodeDeployDefault.ECSCanary10Percent5Minutes")
    );
}

#[test]
fn a_created_deployment_is_recorded_and_the_intent_cleared() {
    let mut world = World::new().registered();
    let decision = world.pass();
    assert_eq!(action_name(&decision), Some("CreateDeployment"));
    let status = world.status();
    assert_eq!(status.deployment_id.as_deref(), Some("d-1"));
    assert_eq!(status.code_deploy().unwrap().creating_since, None);
    assert_eq!(status.phase, Phase::Progressing);
}

#[test]
fn an_intent_whose_deployment_the_search_did_not_find_creates_again() {
    // The pass crashed before its call: the search of the group finds nothing.
    let mut world = World::new().registered();
    world.pass_crashed();
    let decision = check(&world);
    assert_eq!(action_name(&decision), Some("CreateDeployment"));
    assert_eq!(
        create_request(&decision).description,
        "switchyard release=web rollout=1"
    );

    // Without the search, it looks before creating.
    let world = world.seen(|observed| {
        if let StrategyObserved::CodeDeploy(seen) = &mut observed.strategy {
            seen.searched_since = None;
        }
    });
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Pending);
    assert_eq!(decision.requeue_after, Some(AFTER_ACTION));
}

#[test]
fn adopts_the_deployment_an_earlier_pass_created_instead_of_creating_another() {
    let mut world = World::new().registered();
    world.pass_lost();
    assert_eq!(world.aws.deployments.len(), 1);
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert_eq!(decision.status.deployment_id.as_deref(), Some("d-1"));
    assert_eq!(decision.status.code_deploy().unwrap().creating_since, None);
}

#[test]
fn an_ambiguous_create_keeps_the_intent_so_the_next_pass_searches_first() {
    let mut world = World::new().registered();
    world.pass_failing(aws_error(AwsErrorKind::Ambiguous));
    let status = world.status();
    assert_eq!(status.code_deploy().unwrap().creating_since, Some(now()));
    let plan = plan_observation(&world.desired, Some(status), &service(1), world.now);
    assert_eq!(
        plan.strategy,
        Some(StrategyPlan::CodeDeploy {
            deployment_ids: vec![],
            search_since: Some(now() - SignedDuration::from_mins(5)),
        })
    );
}

#[test]
fn never_creates_a_deployment_while_any_deployment_is_active_in_the_group() {
    let foreign = |id: &str, description: Option<&str>| Deployment {
        description: description.map(str::to_string),
        ..deployment(id, DeploymentStatus::Queued, 0)
    };
    for (active, expected) in [
        (
            deployment("d-OLD", DeploymentStatus::InProgress, 0),
            Some("StopDeployment"),
        ),
        (foreign("d-CI", Some("pipeline run 42")), None),
        (foreign("d-CONSOLE", None), None),
        (
            foreign("d-API", Some(&deployment_description("api", 1))),
            None,
        ),
        (
            Deployment {
                creator: DeploymentCreator::CodeDeployRollback,
                ..foreign("d-RB-API", None)
            },
            None,
        ),
    ] {
        let mut world = World::new().registered();
        world.aws.deployments.push(active.clone());
        let decision = check(&world);
        assert_eq!(action_name(&decision), expected, "active {}", active.id);
        assert_eq!(
            decision.status.phase,
            Phase::Pending,
            "active {}",
            active.id
        );
    }
}

#[test]
fn a_deployment_of_an_earlier_rollout_still_active_is_stopped_once() {
    let mut world = World::new().registered();
    world
        .aws
        .deployments
        .push(deployment("d-OLD", DeploymentStatus::InProgress, 0));
    let decision = world.pass();
    assert_eq!(decision.action, stop("d-OLD"));
    let record = stop_record(world.status()).unwrap();
    assert!(record.superseded && record.sent);
    let decision = check(&world);
    assert_eq!(decision.action, None, "not sent again");
    assert_eq!(decision.status.phase, Phase::Pending);
    assert!(decision.status.message.contains("d-OLD"));
}

#[test]
fn waits_for_a_deployment_switchyard_did_not_start_without_acting() {
    let mut world = World::new().registered();
    world.aws.deployments.push(Deployment {
        description: None,
        ..deployment("d-CONSOLE", DeploymentStatus::InProgress, 0)
    });
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Pending);
    assert_eq!(
        condition(&decision.status, ConditionType::Ready).1,
        Reason::WaitingForForeignDeployment
    );
    assert!(decision.status.message.contains("d-CONSOLE"));
    assert_eq!(decision.requeue_after, Some(POLL_WAITING));
    assert_stable(&world, &decision);
}

#[test]
fn a_deployment_limit_error_clears_the_intent_and_waits_for_the_active_deployment() {
    let mut world = World::new().registered();
    world.pass_failing(aws_error(AwsErrorKind::DeploymentLimitExceeded {
        active_deployment_id: Some("d-CI".into()),
    }));
    let status = world.status();
    assert_eq!(status.code_deploy().unwrap().creating_since, None);
    assert!(status.message.contains("d-CI"), "{}", status.message);
    assert_eq!(status.refusal, None, "not a refusal");
}

// ----- a rollout is identified by its candidate and its target ------------------------------

#[test]
fn a_label_edit_never_stops_the_rollout_in_flight() {
    let world = World::new()
        .in_flight()
        .deployment_at(DeploymentStatus::InProgress, "AllowTraffic", 10.0)
        .label_edit();
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert_eq!(decision.status.observed_generation, 2);
    assert_eq!(decision.status.deployment_id.as_deref(), Some("d-1"));
    let rollout = decision.status.rollout.as_ref().unwrap();
    assert_eq!((rollout.serial, rollout.generation), (1, 1));
    assert!(decision.status.history.is_empty());
}

#[test]
fn edits_that_keep_the_candidate_and_target_never_stop_restart_or_roll_back_the_rollout() {
    type Edit = fn(&mut ReleaseSpec);
    let edits: [(&str, Edit); 7] = [
        ("labels", |_| {}),
        ("paused", |s| s.paused = true),
        ("rollback alarms", |s| s.rollback = alarms(&["web-5xx"])),
        ("promotion", |s| {
            code_deploy(s).promotion = Promotion::Manual
        }),
        ("onDrift", |s| s.on_drift = OnDrift::Converge),
        ("deployment config", |s| {
            code_deploy(s).deployment_config =
                Some("CodeDeployDefault.ECSLinear10PercentEvery1Minutes".into());
        }),
        ("the same environment as the base's", |s| {
            web_container(s)
                .environment
                .insert("MODE".into(), "prod".into());
        }),
    ];
    for (what, edit) in edits {
        let mut world = World::new()
            .in_flight()
            .deployment_at(DeploymentStatus::InProgress, "AllowTraffic", 10.0)
            .edit(edit);
        world.aws.alarms.insert("web-5xx".into(), AlarmState::Ok);
        for pass in 0..3 {
            let decision = world.pass();
            assert_eq!(decision.action, None, "{what}, pass {pass}");
            assert_eq!(decision.status.phase, Phase::Progressing, "{what}");
            let rollout = decision.status.rollout.as_ref().unwrap();
            assert_eq!((rollout.serial, rollout.outcome), (1, None), "{what}");
            assert_eq!(stop_record(&decision.status), None, "{what}");
            assert!(decision.status.history.is_empty(), "{what}");
        }
    }
}

#[test]
fn a_new_image_supersedes_the_rollout_in_flight_then_the_newest_candidate_rolls_out() {
    let mut world = World::new()
        .in_flight()
        .edit(|s| web_container(s).image = Some(NEWER_IMAGE.into()));

    // 1. The deployment in flight is stopped with rollback, recorded as superseded.
    let decision = world.pass();
    assert_eq!(decision.action, stop("d-1"));
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert_eq!(
        condition(&decision.status, ConditionType::Progressing).1,
        Reason::Superseded
    );
    assert!(
        decision
            .status
            .message
            .contains("superseded by generation 2: a new candidate"),
        "{}",
        decision.status.message
    );
    let record = stop_record(world.status()).unwrap();
    assert!(record.superseded && record.sent);

    // 2. CodeDeploy stops it and rolls back: the rollout waits for the rollback.
    world.aws.roll_back(
        "d-1",
        DeploymentStatus::Stopped,
        DeploymentStatus::InProgress,
    );
    let decision = world.pass();
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert!(decision.status.rollout.as_ref().unwrap().is_in_flight());
    assert!(decision.status.history.is_empty());

    // 3. The rollback ended: rollout 1 is superseded, and the newest candidate is registered.
    world.aws.deployment("d-RB").status = DeploymentStatus::Succeeded;
    let decision = world.pass();
    let entry = &decision.status.history[0];
    assert_eq!((entry.outcome, entry.rollout), (Outcome::Superseded, 1));
    assert_eq!(
        decision.status.rollout.as_ref().unwrap().outcome,
        Some(Outcome::Superseded)
    );
    assert_eq!(registration(&decision).containers[0].image, NEWER_IMAGE);

    // 4. Rollout 2 deploys it.
    let decision = world.pass();
    let request = create_request(&decision);
    assert_eq!(request.description, "switchyard release=web rollout=2");
    assert_eq!(appspec_task_definition(request), td_arn(3));
    let rollout = decision.status.rollout.as_ref().unwrap();
    assert_eq!((rollout.serial, rollout.generation), (2, 2));
    assert_eq!(
        decision
            .status
            .history
            .iter()
            .filter(|h| h.outcome == Outcome::Superseded)
            .count(),
        1,
        "superseded recorded once"
    );
}

#[test]
fn a_new_candidate_before_the_deployment_exists_supersedes_without_a_stop() {
    let mut world = World::new().registered();
    world.pass_crashed();
    let world = world.edit(|s| web_container(s).image = Some(NEWER_IMAGE.into()));
    let decision = check(&world);
    assert_eq!(decision.status.history[0].outcome, Outcome::Superseded);
    assert!(
        decision.status.history[0]
            .message
            .contains("before its deployment started")
    );
    assert_eq!(registration(&decision).containers[0].image, NEWER_IMAGE);
}

#[test]
fn a_new_target_supersedes_the_rollout_in_flight() {
    let mut world = World::new()
        .in_flight()
        .edit(|s| code_deploy(s).deployment_group = "web-prod-2".into());
    if let Lookup::Found(group) = &mut world.aws.group {
        group.name = "web-prod-2".into();
    }
    let decision = world.pass();
    assert_eq!(decision.action, stop("d-1"));
    assert!(
        decision.status.message.contains("the target changed"),
        "{}",
        decision.status.message
    );
    assert!(stop_record(world.status()).unwrap().superseded);

    world.aws.roll_back(
        "d-1",
        DeploymentStatus::Stopped,
        DeploymentStatus::Succeeded,
    );
    let decision = world.pass();
    assert_eq!(decision.status.history[0].outcome, Outcome::Superseded);
    let request = create_request(&decision);
    assert_eq!(request.deployment_group, "web-prod-2");
    assert_eq!(request.description, "switchyard release=web rollout=2");
    assert_eq!(
        appspec_task_definition(request),
        td_arn(2),
        "the same candidate"
    );
}

#[test]
fn a_candidate_wanted_again_after_its_rollout_was_superseded_rolls_out_again() {
    // Edited to 3.0 and back to 2.0 while rollout 1 (2.0) was being stopped.
    let mut stopped = World::new()
        .in_flight()
        .edit(|s| web_container(s).image = Some(NEWER_IMAGE.into()));
    stopped.pass();
    let mut stopped = stopped.edit(|s| web_container(s).image = Some(NEW_IMAGE.into()));
    stopped.pass();
    stopped.aws.roll_back(
        "d-1",
        DeploymentStatus::Stopped,
        DeploymentStatus::Succeeded,
    );
    // Edited to 3.0 and back before rollout 1's deployment existed.
    let mut early = World::new().registered();
    early.pass_crashed();
    let mut early = early.edit(|s| web_container(s).image = Some(NEWER_IMAGE.into()));
    early.pass();
    let early = early.edit(|s| web_container(s).image = Some(NEW_IMAGE.into()));
    for (what, mut world) in [("stopped", stopped), ("before it started", early)] {
        let decision = world.pass();
        assert_ne!(
            decision.status.phase,
            Phase::RolledBack,
            "{what}: nothing failed"
        );
        let request = create_request(&decision);
        assert_eq!(
            request.description, "switchyard release=web rollout=2",
            "{what}"
        );
        assert_eq!(appspec_task_definition(request), td_arn(2), "{what}");
    }
}

// ----- following the deployment ------------------------------------------------------------

#[test]
fn follows_the_deployment_with_its_lifecycle_event_and_traffic() {
    let world =
        World::new()
            .in_flight()
            .deployment_at(DeploymentStatus::InProgress, "AllowTraffic", 10.0);
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert_eq!(decision.status.stage().as_deref(), Some("AllowTraffic"));
    assert_eq!(
        decision.status.traffic_weights,
        Some(TrafficWeights {
            live: 90.0,
            candidate: 10.0
        })
    );
    assert!(
        decision
            .status
            .message
            .contains("10% of production traffic on the candidate"),
        "{}",
        decision.status.message
    );
    assert_stable(&world, &decision);
}

#[test]
fn polling_during_the_hooks_is_relaxed_unless_the_group_waits_in_ready() {
    // The group continues on its own: nothing waits for the controller until the end.
    let world = World::new().in_flight();
    assert_eq!(check(&world).requeue_after, Some(POLL_PASSIVE));

    // The group waits in Ready: the controller must be there within 2 s of it.
    let mut world = World::new().in_flight();
    world.aws.group = Lookup::Found(group(ReadyAction::StopDeployment { wait_minutes: 60 }));
    assert_eq!(check(&world).requeue_after, Some(POLL_ACTIVE));
}

#[test]
fn a_canary_bake_is_looked_at_right_after_the_next_traffic_step() {
    let mut world =
        World::new()
            .in_flight()
            .deployment_at(DeploymentStatus::InProgress, "AllowTraffic", 10.0);
    world.aws.deployment("d-1").deployment_config =
        "CodeDeployDefault.ECSCanary10Percent5Minutes".into();
    let started = now() - SignedDuration::from_mins(2);
    if let Some(target) = &mut world.aws.target {
        target.lifecycle_events[6].start_time = Some(started);
    }
    assert_eq!(
        check(&world).requeue_after,
        Some(Duration::from_secs(3 * 60) + STEP_SLACK)
    );
}

#[test]
fn a_succeeded_deployment_is_healthy_and_recorded_once() {
    let mut world = World::new().in_flight().succeeded();
    let decision = world.pass();
    assert_eq!(decision.status.phase, Phase::Healthy);
    assert_eq!(
        condition(&decision.status, ConditionType::Ready),
        (ConditionStatus::True, Reason::DeploymentSucceeded)
    );
    assert_eq!(decision.status.history.len(), 1);
    assert_eq!(decision.status.history[0].outcome, Outcome::Succeeded);
    assert_eq!(
        decision.status.traffic_weights,
        Some(TrafficWeights::ALL_LIVE)
    );
    assert_eq!(decision.status.stage(), None);
    assert_stable(&world, &decision);
}

#[test]
fn a_healthy_release_at_rest_stays_healthy_with_nothing_looked_up_but_the_service() {
    let world = World::new().healthy();
    let observed = world.observed();
    assert_eq!(observed.strategy, StrategyObserved::NotLookedUp);
    assert_eq!(observed.task_definitions, TaskDefinitions::default());
    let decision = check(&world);
    assert_eq!(Some(&decision.status), world.status.as_ref());
    assert_eq!(decision.action, None);
    assert_eq!(decision.requeue_after, None);
}

#[test]
fn a_conflict_reply_keeps_the_strategy_s_own_message() {
    // StopDeployment on a deployment that already finished.
    let mut world = World::new()
        .in_flight()
        .asking(RequestKind::Abort, request(1, 1));
    world.pass_failing(aws_error(AwsErrorKind::Conflict));
    let status = world.status();
    assert_eq!(status.message, "d-1 had already finished");
    assert!(stop_record(status).unwrap().sent, "nothing left to stop");

    // ContinueDeployment on a deployment no longer waiting in Ready.
    let mut world = World::new().in_flight().ready();
    world.pass_failing(aws_error(AwsErrorKind::Conflict));
    assert_eq!(world.status().message, "d-1 was no longer waiting in Ready");
}

// ----- promotion and requests -------------------------------------------------------------

#[test]
fn automatic_promotion_continues_a_ready_deployment() {
    let world = World::new().in_flight().ready();
    let decision = check(&world);
    assert_eq!(decision.action, continue_("d-1"));
    assert_eq!(decision.ack, None, "nothing was asked");
}

#[test]
fn manual_promotion_waits_in_awaiting_promotion() {
    let world = World::new().manual().in_flight().ready();
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::AwaitingPromotion);
    assert_eq!(decision.action, None);
    assert!(decision.status.message.contains("switchyard promote web"));
    // One look of two calls (GetDeployment, GetDeploymentTarget) a minute: the wait budget.
    assert_eq!(decision.requeue_after, Some(Duration::from_secs(60)));
    assert_stable(&world, &decision);
}

#[test]
fn a_promote_recorded_at_generation_1_still_promotes_after_a_label_edit() {
    let mut world = World::new()
        .manual()
        .in_flight()
        .ready()
        .asking(RequestKind::Promote, request(1, 1))
        .label_edit();
    assert_eq!(world.desired.generation, 2);
    let decision = world.pass();
    assert_eq!(decision.action, continue_("d-1"));
    let status = world.status();
    assert_eq!(
        status.handled_requests.promote,
        Some(request(1, 1).requested_at)
    );
    assert_eq!(status.history[0].outcome, Outcome::Promoted);
    assert!(status.history[0].message.contains("user/alice"));
}

#[test]
fn a_promote_is_carried_out_once() {
    let mut world = World::new()
        .manual()
        .in_flight()
        .ready()
        .asking(RequestKind::Promote, request(1, 1));
    assert_eq!(world.pass().action, continue_("d-1"));
    // Still Ready when looked at again: the handled request does nothing more.
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::AwaitingPromotion);
}

#[test]
fn a_promote_is_marked_handled_only_when_its_call_succeeded() {
    let mut world = World::new()
        .manual()
        .in_flight()
        .ready()
        .asking(RequestKind::Promote, request(1, 1));
    let decision = world.pass_failing(aws_error(AwsErrorKind::Throttling));
    assert_eq!(decision.action, continue_("d-1"));
    assert_eq!(
        decision.ack.as_ref().map(|a| a.kind),
        Some(RequestKind::Promote)
    );
    assert_eq!(
        decision.status.handled_requests.promote, None,
        "not before the call"
    );
    let status = world.status();
    assert_eq!(status.handled_requests.promote, None, "the call failed");
    assert!(
        status
            .history
            .iter()
            .all(|h| h.outcome != Outcome::Promoted)
    );

    let decision = world.pass();
    assert_eq!(decision.action, continue_("d-1"), "asked again");
    assert_eq!(
        world.status().handled_requests.promote,
        Some(request(1, 1).requested_at)
    );
    assert_eq!(world.status().history[0].outcome, Outcome::Promoted);
}

#[test]
fn a_promote_before_the_deployment_is_ready_stays_pending_and_applies_when_it_becomes_ready() {
    let mut world = World::new()
        .manual()
        .in_flight()
        .asking(RequestKind::Promote, request(1, 1));
    let decision = world.pass();
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert_eq!(decision.status.handled_requests.promote, None);
    assert!(decision.status.history.is_empty());

    let mut world = world.ready();
    let decision = world.pass();
    assert_eq!(decision.action, continue_("d-1"));
    assert_eq!(
        world.status().handled_requests.promote,
        Some(request(1, 1).requested_at)
    );
}

#[test]
fn promote_and_abort_with_nothing_in_flight_are_declined_and_marked_handled() {
    for kind in [RequestKind::Promote, RequestKind::Abort] {
        let world = World::new().healthy().asking(kind, request(1, 5));
        let decision = check(&world);
        assert_eq!(decision.action, None, "{kind:?}");
        assert_eq!(decision.status.phase, Phase::Healthy, "{kind:?}");
        assert_eq!(
            decision.status.handled_requests.get(kind),
            Some(request(1, 5).requested_at),
            "{kind:?}"
        );
        let entry = &decision.status.history[0];
        assert_eq!(entry.outcome, Outcome::Declined, "{kind:?}");
        assert!(
            entry.message.contains("nothing in flight") && entry.message.contains("user/alice"),
            "{}",
            entry.message
        );
        assert_stable(&world, &decision);
    }
}

#[test]
fn an_abort_stops_the_deployment_and_its_rollback_ends_the_rollout_rolled_back() {
    let mut world = World::new()
        .in_flight()
        .asking(RequestKind::Abort, request(1, 2));
    let decision = world.pass();
    assert_eq!(decision.action, stop("d-1"));
    assert_eq!(
        condition(&decision.status, ConditionType::Progressing).1,
        Reason::Aborted
    );
    let status = world.status();
    assert_eq!(status.history[0].outcome, Outcome::Aborted);
    assert_eq!(
        status.handled_requests.abort,
        Some(request(1, 2).requested_at)
    );

    world.aws.roll_back(
        "d-1",
        DeploymentStatus::Stopped,
        DeploymentStatus::Succeeded,
    );
    let decision = world.pass();
    assert_eq!(decision.status.phase, Phase::RolledBack);
    let entry = &decision.status.history[0];
    assert_eq!(entry.outcome, Outcome::RolledBack);
    assert!(entry.message.contains("aborted by"), "{}", entry.message);
    assert_stable(&world, &decision);
}

#[test]
fn an_abort_is_marked_handled_only_when_its_stop_succeeded() {
    let mut world = World::new()
        .in_flight()
        .asking(RequestKind::Abort, request(1, 2));
    world.pass_failing(aws_error(AwsErrorKind::Transient));
    let status = world.status();
    assert_eq!(status.handled_requests.abort, None);
    assert_eq!(stop_record(status), None, "the stop did not take effect");

    let decision = world.pass();
    assert_eq!(decision.action, stop("d-1"), "decided and sent again");
    assert_eq!(
        world.status().handled_requests.abort,
        Some(request(1, 2).requested_at)
    );
}

#[test]
fn an_abort_before_the_deployment_exists_rolls_back_at_once() {
    let mut world = World::new().registered();
    world.pass_crashed();
    let world = world.asking(RequestKind::Abort, request(1, 2));
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::RolledBack);
    assert_eq!(
        decision.status.handled_requests.abort,
        Some(request(1, 2).requested_at)
    );
    let outcomes: Vec<Outcome> = decision.status.history.iter().map(|h| h.outcome).collect();
    assert_eq!(outcomes, [Outcome::RolledBack, Outcome::Aborted]);
    assert_stable(&world, &decision);
}

// ----- pause -------------------------------------------------------------------------------

#[test]
fn paused_holds_a_ready_deployment_even_with_automatic_promotion() {
    let world = World::new().in_flight().ready().edit(|s| s.paused = true);
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert_eq!(
        condition(&decision.status, ConditionType::Paused),
        (ConditionStatus::True, Reason::Paused)
    );
    assert!(decision.status.message.contains("switchyard resume web"));
    assert_stable(&world, &decision);
}

#[test]
fn paused_with_manual_promotion_awaits_promotion_and_a_promote_waits_for_the_resume() {
    let mut world = World::new()
        .manual()
        .in_flight()
        .ready()
        .edit(|s| s.paused = true)
        .asking(RequestKind::Promote, request(1, 1));
    let decision = world.pass();
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::AwaitingPromotion);
    assert_eq!(
        condition(&decision.status, ConditionType::Paused).0,
        ConditionStatus::True
    );
    assert_eq!(decision.status.handled_requests.promote, None);

    let mut world = world.edit(|s| s.paused = false);
    let decision = world.pass();
    assert_eq!(decision.action, continue_("d-1"));
    assert_eq!(
        condition(&decision.status, ConditionType::Paused).0,
        ConditionStatus::False
    );
    assert_eq!(
        world.status().handled_requests.promote,
        Some(request(1, 1).requested_at)
    );
}

#[test]
fn paused_keeps_a_rollout_in_progress_progressing_never_paused() {
    let world = World::new()
        .in_flight()
        .deployment_at(DeploymentStatus::InProgress, "AllowTraffic", 10.0)
        .edit(|s| s.paused = true);
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert_eq!(
        condition(&decision.status, ConditionType::Paused).0,
        ConditionStatus::True
    );
}

#[test]
fn alarms_and_abort_still_roll_back_while_paused() {
    let firing = World::new()
        .watched_by("web-5xx", AlarmState::Ok)
        .in_flight()
        .ready()
        .edit(|s| s.paused = true);
    let mut firing = firing;
    firing
        .aws
        .alarms
        .insert("web-5xx".into(), AlarmState::Alarm);
    let aborted = World::new()
        .in_flight()
        .ready()
        .edit(|s| s.paused = true)
        .asking(RequestKind::Abort, request(1, 2));
    for (what, world) in [("alarm", firing), ("abort", aborted)] {
        let decision = check(&world);
        assert_eq!(decision.action, stop("d-1"), "{what}");
        assert_eq!(decision.status.phase, Phase::Progressing, "{what}");
    }
}

#[test]
fn nothing_new_starts_while_paused() {
    let fresh = World::new().with_spec(|s| s.paused = true);
    let new_image = World::new().healthy().edit(|s| {
        s.paused = true;
        web_container(s).image = Some(NEWER_IMAGE.into());
    });
    let mut drifted = World::new().healthy().edit(|s| {
        s.paused = true;
        s.on_drift = OnDrift::Converge;
    });
    drifted.aws.set_live(1);
    for (what, world) in [
        ("fresh", fresh),
        ("new image", new_image),
        ("drift", drifted),
    ] {
        let decision = check(&world);
        assert_eq!(decision.action, None, "{what}");
        assert_eq!(decision.status.phase, Phase::Paused, "{what}");
        assert_eq!(
            condition(&decision.status, ConditionType::Paused).0,
            ConditionStatus::True
        );
        assert!(decision.status.message.contains("switchyard resume web"));
        assert_stable(&world, &decision);
    }
}

#[test]
fn a_new_candidate_while_paused_and_in_flight_is_held_not_superseding() {
    let mut world = World::new().in_flight().ready().edit(|s| {
        s.paused = true;
        web_container(s).image = Some(NEWER_IMAGE.into());
    });
    let decision = world.pass();
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert_eq!(stop_record(&decision.status), None);
    assert!(
        decision
            .status
            .message
            .contains("new version waits until `switchyard resume web`"),
        "{}",
        decision.status.message
    );
    assert_eq!(decision.status.rollout.as_ref().unwrap().serial, 1);

    // Resumed: the new candidate supersedes the rollout in flight.
    let mut world = world.edit(|s| s.paused = false);
    assert_eq!(world.pass().action, stop("d-1"));
    assert!(stop_record(world.status()).unwrap().superseded);
}

#[test]
fn a_rollout_whose_deployment_is_not_created_yet_does_not_create_it_while_paused() {
    // CreateDeployment failed without taking effect; then the release was paused.
    let mut world = World::new().registered();
    world.pass_failing(aws_error(AwsErrorKind::Transient));
    assert!(world.status().rollout_in_flight().is_some());
    let world = world.edit(|s| s.paused = true);
    let decision = check(&world);
    assert_eq!(decision.action, None, "nothing new starts while paused");
    assert_eq!(
        condition(&decision.status, ConditionType::Paused).0,
        ConditionStatus::True
    );
}

// ----- rollback alarms and stops -----------------------------------------------------------

#[test]
fn a_rollback_alarm_that_does_not_exist_keeps_a_new_rollout_from_starting() {
    let mut world = World::new()
        .with_spec(|s| s.rollback = alarms(&["web-latency", "web-5xx"]))
        .registered();
    world
        .aws
        .alarms
        .insert("web-latency".into(), AlarmState::Ok);
    let decision = world.pass();
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Failed);
    assert_eq!(
        condition(&decision.status, ConditionType::Ready).1,
        Reason::AlarmNotFound
    );
    assert!(
        decision.status.message.contains("alarm web-5xx"),
        "{}",
        decision.status.message
    );
    assert_eq!(decision.status.rollout, None);
    assert_stable(&world, &decision);

    // Once it exists, the rollout starts.
    world.aws.alarms.insert("web-5xx".into(), AlarmState::Ok);
    assert_eq!(action_name(&world.pass()), Some("CreateDeployment"));
}

#[test]
fn a_rollback_alarm_in_alarm_stops_the_deployment_with_rollback() {
    let mut world = World::new()
        .watched_by("web-latency", AlarmState::Ok)
        .watched_by("web-5xx", AlarmState::Ok)
        .in_flight()
        .deployment_at(DeploymentStatus::InProgress, "AllowTraffic", 10.0);
    world.aws.alarms.insert("web-5xx".into(), AlarmState::Alarm);
    let decision = check(&world);
    assert_eq!(decision.action, stop("d-1"));
    assert_eq!(
        condition(&decision.status, ConditionType::Progressing).1,
        Reason::AlarmFired
    );
    assert!(
        decision
            .status
            .message
            .contains("alarm web-5xx is in ALARM"),
        "{}",
        decision.status.message
    );
    let record = stop_record(&decision.status).unwrap();
    assert_eq!(record.deployment_id, "d-1");
    assert!(!record.superseded);
}

#[test]
fn an_alarm_already_in_alarm_keeps_the_rollout_from_creating_its_deployment() {
    let mut world = World::new()
        .with_spec(|s| s.rollback = alarms(&["web-5xx"]))
        .registered();
    world.aws.alarms.insert("web-5xx".into(), AlarmState::Alarm);
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::RolledBack);
    assert!(
        decision.status.history[0]
            .message
            .contains("alarm web-5xx is in ALARM before its deployment started")
    );
}

#[test]
fn alarms_in_ok_or_insufficient_data_do_not_stop() {
    let world = World::new()
        .watched_by("a", AlarmState::Ok)
        .watched_by("b", AlarmState::InsufficientData)
        .in_flight()
        .deployment_at(DeploymentStatus::InProgress, "AllowTraffic", 10.0);
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(
        decision.requeue_after,
        Some(POLL_PASSIVE),
        "alarms are watched in one batch, not by polling the release"
    );
}

/// Rollout 1 in flight with its alarm in ALARM.
fn alarm_firing() -> World {
    let mut world = World::new()
        .watched_by("web-5xx", AlarmState::Ok)
        .in_flight()
        .deployment_at(DeploymentStatus::InProgress, "AllowTraffic", 10.0);
    world.aws.alarms.insert("web-5xx".into(), AlarmState::Alarm);
    world
}

#[test]
fn a_stop_is_sent_until_one_call_succeeds_and_never_after() {
    let mut world = alarm_firing();
    // Throttled: it did not take effect, so it is decided and sent again.
    let decision = world.pass_failing(aws_error(AwsErrorKind::Throttling));
    assert_eq!(decision.action, stop("d-1"));
    assert_eq!(stop_record(world.status()), None);
    let decision = world.pass();
    assert_eq!(decision.action, stop("d-1"));
    assert!(stop_record(world.status()).unwrap().sent);

    // CodeDeploy stops asynchronously: while d-1 is still active, nothing is sent again.
    for second in [1, 30, 120, 600] {
        world.now = after(Duration::from_secs(second));
        let decision = world.pass();
        assert_eq!(decision.action, None, "{second}s later");
        assert_eq!(decision.status.phase, Phase::Progressing);
        assert_eq!(
            condition(&decision.status, ConditionType::Progressing).1,
            Reason::RollingBack
        );
        assert!(
            decision
                .status
                .message
                .contains("CodeDeploy is stopping d-1")
        );
    }
}

#[test]
fn a_stop_whose_outcome_is_unknown_is_not_sent_again_before_the_unconfirmed_wait() {
    for lose in [
        World::pass_lost as fn(&mut World) -> Decision,
        |world: &mut World| world.pass_failing(aws_error(AwsErrorKind::Ambiguous)),
    ] {
        let mut world = alarm_firing();
        assert_eq!(lose(&mut world).action, stop("d-1"));
        let record = stop_record(world.status()).unwrap().clone();
        assert!(!record.sent);

        let early = world.clone().at(after(Duration::from_secs(20)));
        let decision = check(&early);
        assert_eq!(decision.action, None);
        assert!(
            decision
                .status
                .message
                .contains("reply to StopDeployment was lost"),
            "{}",
            decision.status.message
        );
        assert!(decision.requeue_after.unwrap() <= STOP_UNCONFIRMED_WAIT - Duration::from_secs(20));

        let late = world.clone().at(after(STOP_UNCONFIRMED_WAIT));
        let decision = check(&late);
        assert_eq!(decision.action, stop("d-1"));
        assert_eq!(
            stop_record(&decision.status).unwrap().requested_at,
            after(STOP_UNCONFIRMED_WAIT)
        );
    }
}

// ----- verdicts ----------------------------------------------------------------------------

#[test]
fn a_stopped_deployment_waits_for_codedeploy_s_rollback_to_end() {
    for (rollback, phase, outcome) in [
        (
            DeploymentStatus::Succeeded,
            Phase::RolledBack,
            Outcome::RolledBack,
        ),
        (DeploymentStatus::Failed, Phase::Failed, Outcome::Failed),
    ] {
        let mut world = alarm_firing();
        world.pass();
        world.aws.roll_back(
            "d-1",
            DeploymentStatus::Stopped,
            DeploymentStatus::InProgress,
        );
        let decision = world.pass();
        assert_eq!(decision.action, None);
        assert_eq!(decision.status.phase, Phase::Progressing);
        assert!(
            decision.status.message.contains("rolling d-1 back"),
            "{}",
            decision.status.message
        );
        assert!(
            stop_record(&decision.status).is_some(),
            "kept until the rollback ends"
        );
        assert!(decision.status.history.is_empty());

        world.aws.deployment("d-RB").status = rollback.clone();
        let decision = world.pass();
        assert_eq!(decision.status.phase, phase, "rollback {rollback:?}");
        assert_eq!(decision.status.history[0].outcome, outcome);
        assert!(
            decision.status.history[0]
                .message
                .contains("alarm web-5xx is in ALARM"),
            "{}",
            decision.status.history[0].message
        );
        assert_eq!(
            decision.status.traffic_weights,
            Some(TrafficWeights::ALL_LIVE)
        );
        assert_stable(&world, &decision);
    }
}

#[test]
fn a_rollback_deployment_not_yet_observed_is_looked_at_before_the_verdict() {
    let mut world = alarm_firing();
    world.pass();
    world.aws.roll_back(
        "d-1",
        DeploymentStatus::Stopped,
        DeploymentStatus::Succeeded,
    );
    let world = world.seen(|observed| {
        if let StrategyObserved::CodeDeploy(seen) = &mut observed.strategy {
            seen.deployments.retain(|d| d.id != "d-RB");
        }
    });
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert!(
        decision
            .status
            .message
            .contains("looking at its rollback d-RB")
    );
    assert!(decision.status.history.is_empty());
}

/// Rollout 1's deployment d-1 ended in `ended` without a rollback deployment, and
/// web:`live` is live.
fn ended_without_rollback(ended: DeploymentStatus, live: u32) -> World {
    let mut world = World::new().in_flight();
    world.aws.deployment("d-1").status = ended;
    world.aws.target = None;
    world.aws.set_live(live);
    world
}

#[test]
fn without_a_rollback_deployment_it_is_rolled_back_only_if_the_version_that_was_live_is_live_again()
{
    for (live, phase, outcome, says) in [
        (
            1,
            Phase::RolledBack,
            Outcome::RolledBack,
            "traffic is back on web:1",
        ),
        (
            7,
            Phase::Failed,
            Outcome::Failed,
            "the version that was live is not live again",
        ),
    ] {
        let world = ended_without_rollback(DeploymentStatus::Stopped, live);
        let decision = check(&world);
        assert_eq!(decision.status.phase, phase, "live web:{live}");
        assert_eq!(decision.status.history[0].outcome, outcome);
        assert!(
            decision.status.message.contains(says),
            "{}",
            decision.status.message
        );
        assert_eq!(decision.action, None);
        assert_stable(&world, &decision);
    }
}

#[test]
fn a_failed_deployment_that_left_the_candidate_live_stays_failed() {
    // A hook failed after traffic shifted, with CodeDeploy's automatic rollback off: the
    // candidate is live, but the rollout failed and a human must act.
    for ended in [DeploymentStatus::Failed, DeploymentStatus::Stopped] {
        let world = ended_without_rollback(ended.clone(), 2);
        let decision = check(&world);
        assert_eq!(decision.status.phase, Phase::Failed, "{ended:?}");
        let outcomes: Vec<Outcome> = decision.status.history.iter().map(|h| h.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Failed],
            "no rollout after the one that ended"
        );
        assert_eq!(decision.status.rollout.as_ref().unwrap().serial, 1);
        assert_stable(&world, &decision);
    }
}

#[test]
fn a_failed_deployment_reports_codedeploy_s_error_code_and_message() {
    let mut world = World::new().in_flight();
    world.aws.target = None;
    let d1 = world.aws.deployment("d-1");
    d1.status = DeploymentStatus::Failed;
    d1.error = Some(DeploymentErrorInfo {
        code: "ECS_UPDATE_ERROR".into(),
        message: "tasks failed to start".into(),
    });
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::RolledBack);
    assert!(
        decision
            .status
            .message
            .contains("ECS_UPDATE_ERROR: tasks failed to start"),
        "{}",
        decision.status.message
    );
    assert!(
        decision.status.message.contains("switchyard retry web"),
        "says what to do"
    );
}

// ----- drift and retry ---------------------------------------------------------------------

#[test]
fn drift_is_reported_without_acting_by_default() {
    let mut world = World::new().healthy();
    world.aws.set_live(7);
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Failed);
    assert_eq!(
        condition(&decision.status, ConditionType::Drifted),
        (ConditionStatus::True, Reason::Drifted)
    );
    assert!(
        decision.status.message.contains("web:7, not web:2"),
        "{}",
        decision.status.message
    );
    assert_stable(&world, &decision);

    // Someone puts web:2 back: in sync again.
    world.status = Some(decision.status);
    world.aws.set_live(2);
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Healthy);
    assert_eq!(
        condition(&decision.status, ConditionType::Drifted),
        (ConditionStatus::False, Reason::InSync)
    );
}

#[test]
fn drift_converges_with_a_new_rollout_when_the_release_asks() {
    let mut world = World::new()
        .with_spec(|s| s.on_drift = OnDrift::Converge)
        .healthy();
    world.aws.set_live(7);
    let decision = check(&world);
    let request = create_request(&decision);
    assert_eq!(request.description, "switchyard release=web rollout=2");
    assert_eq!(appspec_task_definition(request), td_arn(2));
    assert_eq!(decision.status.rollout.as_ref().unwrap().serial, 2);
}

#[test]
fn a_rolled_back_release_stays_rolled_back_without_a_retry_or_a_new_candidate() {
    let world = World::new().rolled_back().label_edit();
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::RolledBack);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.rollout.as_ref().unwrap().serial, 1);
    assert!(
        decision.status.message.contains("switchyard retry web"),
        "{}",
        decision.status.message
    );
    assert_stable(&world, &decision);

    // A new candidate starts the next rollout.
    let world = world.edit(|s| web_container(s).image = Some(NEWER_IMAGE.into()));
    assert_eq!(
        registration(&check(&world)).containers[0].image,
        NEWER_IMAGE
    );
}

#[test]
fn a_retry_after_a_rollback_starts_the_next_rollout_of_the_same_candidate() {
    let mut world = World::new()
        .rolled_back()
        .asking(RequestKind::Retry, request(1, 3));
    let decision = world.pass();
    let create = create_request(&decision);
    assert_eq!(create.description, "switchyard release=web rollout=2");
    assert_eq!(appspec_task_definition(create), td_arn(2));
    let status = world.status();
    assert_eq!(
        status.handled_requests.retry,
        Some(request(1, 3).requested_at)
    );
    assert!(status.history.iter().any(|h| h.outcome == Outcome::Retried));
    assert_eq!(world.aws.revisions.len(), 2, "the candidate is reused");
}

#[test]
fn a_retry_with_nothing_to_retry_is_declined() {
    let world = World::new()
        .healthy()
        .asking(RequestKind::Retry, request(1, 3));
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Healthy);
    let entry = &decision.status.history[0];
    assert_eq!(entry.outcome, Outcome::Declined);
    assert!(
        entry.message.contains("nothing to retry"),
        "{}",
        entry.message
    );
    assert_stable(&world, &decision);
}

#[test]
fn the_base_is_resolved_again_on_retry() {
    let mut world = World::new()
        .rolled_back()
        .asking(RequestKind::Retry, request(1, 3));
    world.aws.revisions.push(TaskDefinition {
        other_fields_digest: "t9".into(),
        ..td(9, "registry/web:1.9")
    });
    let decision = world.pass();
    assert_eq!(registration(&decision).base.arn, td_arn(9));
    let decision = world.pass();
    assert_eq!(
        create_request(&decision).description,
        "switchyard release=web rollout=2"
    );
}

#[test]
fn a_retry_that_resolves_a_new_base_is_recorded_as_retried() {
    let mut world = World::new()
        .rolled_back()
        .asking(RequestKind::Retry, request(1, 3));
    world.aws.revisions.push(TaskDefinition {
        other_fields_digest: "t9".into(),
        ..td(9, "registry/web:1.9")
    });
    world.pass();
    world.pass();
    let status = world.status();
    assert_eq!(status.rollout.as_ref().unwrap().serial, 2);
    let retry = status
        .history
        .iter()
        .find(|h| matches!(h.outcome, Outcome::Retried | Outcome::Declined))
        .unwrap();
    assert_eq!(retry.outcome, Outcome::Retried, "{}", retry.message);
}

// ----- refusals ----------------------------------------------------------------------------

fn refused(kind: AwsErrorKind, code: &str) -> AwsError {
    AwsError::new("aws", "Call", kind, "not allowed").with_code(code)
}

/// The worlds whose next call AWS may refuse, with that call's operation.
fn about_to_call() -> [(World, &'static str); 2] {
    [
        (World::new(), "ecs:RegisterTaskDefinition"),
        (World::new().registered(), "codedeploy:CreateDeployment"),
    ]
}

#[test]
fn a_refused_call_fails_the_release_naming_the_operation_and_the_error_code() {
    for (kind, code) in [
        (AwsErrorKind::AccessDenied, "AccessDeniedException"),
        (
            AwsErrorKind::InvalidRequest,
            "InvalidDeploymentConfigNameException",
        ),
        (AwsErrorKind::NotFound, "ApplicationDoesNotExistException"),
    ] {
        for (mut world, operation) in about_to_call() {
            let decision = world.pass_failing(refused(kind.clone(), code));
            assert_eq!(decision.action.as_ref().unwrap().operation(), operation);
            let status = world.status();
            assert_eq!(status.phase, Phase::Failed, "{operation} {code}");
            assert_eq!(condition(status, ConditionType::Ready).1, Reason::Refused);
            for part in [operation, code, "switchyard retry web"] {
                assert!(
                    status.message.contains(part),
                    "{part:?} not in {}",
                    status.message
                );
            }
            let refusal = status.refusal.as_ref().unwrap();
            assert_eq!(
                (refusal.operation.as_str(), refusal.code.as_deref()),
                (operation, Some(code))
            );
            assert_eq!(
                (refusal.count, refusal.at, refusal.generation),
                (1, now(), 1)
            );
        }
    }
}

#[test]
fn a_refused_call_is_not_asked_again_before_its_backoff() {
    for (mut world, operation) in about_to_call() {
        world.pass_failing(refused(AwsErrorKind::AccessDenied, "AccessDeniedException"));
        let delay = refusal_delay(NAME, 1);
        for waited in [Duration::ZERO, delay / 2] {
            let early = world.clone().at(after(waited));
            let decision = check(&early);
            assert_eq!(decision.action, None, "{operation} after {waited:?}");
            assert_eq!(decision.status.phase, Phase::Failed);
            assert_eq!(
                condition(&decision.status, ConditionType::Ready).1,
                Reason::Refused
            );
            assert_eq!(decision.requeue_after, Some(delay - waited));
        }
        let decision = check(&world.clone().at(after(delay)));
        assert_eq!(
            decision.action.as_ref().map(Action::operation),
            Some(operation)
        );
    }
}

#[test]
fn a_second_refusal_in_a_row_waits_longer() {
    for (mut world, operation) in about_to_call() {
        world.pass_failing(refused(AwsErrorKind::AccessDenied, "AccessDeniedException"));
        let first = refusal_delay(NAME, 1);
        world.now = after(first);
        world.pass_failing(refused(AwsErrorKind::AccessDenied, "AccessDeniedException"));
        let refusal = world.status().refusal.clone().unwrap();
        assert_eq!(
            (refusal.count, refusal.at),
            (2, after(first)),
            "{operation}"
        );
        let second = refusal_delay(NAME, 2);
        assert!(second > first);
        assert_eq!(check(&world).requeue_after, Some(second));
        assert_eq!(
            check(&world.clone().at(after(first + second)))
                .action
                .as_ref()
                .map(Action::operation),
            Some(operation)
        );
    }
}

#[test]
fn a_retry_or_a_new_generation_asks_a_refused_call_again_at_once() {
    for (mut world, operation) in about_to_call() {
        world.pass_failing(refused(AwsErrorKind::AccessDenied, "AccessDeniedException"));
        let retried = world.clone().asking(RequestKind::Retry, request(1, 9));
        let decision = check(&retried);
        assert_eq!(
            decision.action.as_ref().map(Action::operation),
            Some(operation),
            "retry"
        );
        assert_eq!(decision.status.refusal, None);
        assert_eq!(
            decision.status.handled_requests.retry,
            Some(request(1, 9).requested_at)
        );
        assert_eq!(decision.status.history[0].outcome, Outcome::Retried);

        let decision = check(&world.label_edit());
        assert_eq!(
            decision.action.as_ref().map(Action::operation),
            Some(operation),
            "new generation"
        );
        assert_eq!(decision.status.refusal, None);
    }
}

#[test]
fn errors_that_are_not_refusals_are_asked_again_without_backoff() {
    for kind in [
        AwsErrorKind::Throttling,
        AwsErrorKind::Transient,
        AwsErrorKind::Other,
    ] {
        for (mut world, operation) in about_to_call() {
            world.pass_failing(aws_error(kind.clone()));
            assert_eq!(world.status().refusal, None, "{kind:?}");
            let decision = check(&world);
            assert_eq!(
                decision.action.as_ref().map(Action::operation),
                Some(operation),
                "{kind:?}"
            );
        }
    }
}

#[test]
fn refusal_delay_doubles_from_one_second_with_a_bounded_jitter_and_is_capped_at_five_minutes() {
    for count in 1..=20u32 {
        let base = Duration::from_secs(1 << (count - 1).min(16)).min(REFUSAL_BACKOFF_MAX);
        let delay = refusal_delay(NAME, count);
        assert!(delay >= base, "count {count}: {delay:?} < {base:?}");
        assert!(
            delay <= (base + base / 4).min(REFUSAL_BACKOFF_MAX),
            "count {count}: {delay:?}"
        );
        assert_eq!(delay, refusal_delay(NAME, count), "pure");
    }
    assert_eq!(refusal_delay(NAME, 9), REFUSAL_BACKOFF_MAX);
    assert_eq!(refusal_delay(NAME, u32::MAX), REFUSAL_BACKOFF_MAX);
    assert_eq!(REFUSAL_BACKOFF_MAX, Duration::from_secs(300));
    assert_ne!(
        refusal_delay("web", 3),
        refusal_delay("api", 3),
        "releases refused together do not all ask again at once"
    );
}

#[test]
fn a_promote_whose_continue_was_refused_stays_pending_during_the_backoff() {
    let mut world = World::new()
        .manual()
        .in_flight()
        .ready()
        .asking(RequestKind::Promote, request(1, 1));
    world.pass_failing(refused(AwsErrorKind::AccessDenied, "AccessDeniedException"));
    let decision = world.pass();
    assert_eq!(decision.action, None, "backing off");
    let status = world.status();
    assert_eq!(
        status.handled_requests.promote, None,
        "nothing was carried out"
    );
    assert!(
        status
            .history
            .iter()
            .all(|h| h.outcome != Outcome::Promoted)
    );

    world.now = after(REFUSAL_BACKOFF_MAX);
    let decision = world.pass();
    assert_eq!(decision.action, continue_("d-1"));
    assert_eq!(
        world.status().handled_requests.promote,
        Some(request(1, 1).requested_at)
    );
}

#[test]
fn a_refused_stop_is_sent_again_when_its_backoff_ends() {
    let mut world = alarm_firing();
    world.pass_failing(refused(AwsErrorKind::AccessDenied, "AccessDeniedException"));
    let decision = world.pass();
    assert_eq!(decision.action, None, "backing off");
    assert_eq!(decision.status.phase, Phase::Failed);
    world.now = after(refusal_delay(NAME, 1));
    assert_eq!(world.pass().action, stop("d-1"));
}

#[test]
fn a_call_held_back_by_its_backoff_writes_no_intent() {
    for (mut world, operation) in about_to_call() {
        world.pass_failing(refused(AwsErrorKind::AccessDenied, "AccessDeniedException"));
        let decision = check(&world.clone().at(after(Duration::from_millis(500))));
        assert_eq!(decision.action, None, "{operation}");
        let status = &decision.status;
        assert_eq!(
            status.candidate.as_ref().and_then(|c| c.registering_since),
            None,
            "{operation}"
        );
        assert_eq!(
            status.code_deploy().and_then(|s| s.creating_since),
            None,
            "{operation}"
        );
    }
}

// ----- the observation plan ----------------------------------------------------------------

fn plan(world: &World) -> ObservationPlan {
    let Lookup::Found(service) = &world.aws.service else {
        panic!("the plan follows the service");
    };
    plan_observation(&world.desired, world.status.as_ref(), service, world.now)
}

#[test]
fn a_release_at_rest_plans_nothing_beyond_the_service() {
    let mut paused = World::new().with_spec(|s| s.paused = true);
    paused.pass();
    let mut drift_reported = World::new().healthy();
    drift_reported.aws.set_live(7);
    drift_reported.pass();
    let mut invalid = World::new();
    invalid.desired.spec = Err(vec![FieldError::new("spec.service.name", "empty")]);
    invalid.pass();
    for (what, world) in [
        ("healthy", World::new().healthy()),
        ("rolled back", World::new().rolled_back()),
        ("paused", paused),
        ("drift reported", drift_reported),
        ("invalid", invalid),
    ] {
        assert_eq!(plan(&world), ObservationPlan::default(), "{what}");
    }
}

#[test]
fn a_release_that_must_act_or_is_waiting_is_looked_at() {
    let mut refused = World::new();
    refused.pass_failing(refused_error());
    let mut alarm_missing = World::new()
        .with_spec(|s| s.rollback = alarms(&["web-5xx"]))
        .registered();
    alarm_missing.pass();
    let mut converging = World::new()
        .with_spec(|s| s.on_drift = OnDrift::Converge)
        .healthy();
    converging.aws.set_live(7);
    for (what, world) in [
        ("in flight", World::new().in_flight()),
        ("refused", refused),
        ("alarm missing", alarm_missing),
        ("a new generation", World::new().healthy().label_edit()),
        ("drift to converge", converging),
    ] {
        assert!(plan(&world).strategy.is_some(), "{what}");
    }
}

fn refused_error() -> AwsError {
    refused(AwsErrorKind::AccessDenied, "AccessDeniedException")
}

#[test]
fn a_new_taskdefinition_plans_the_resolve_lookups_from_the_spec() {
    let expected = Some(ResolveLookups {
        base: "web".into(),
        family: "web".into(),
        live: Some(td_arn(1)),
    });
    let plan_new = plan(&World::new());
    assert_eq!(plan_new.resolve, expected);
    assert_eq!(
        plan_new.strategy,
        Some(StrategyPlan::CodeDeploy {
            deployment_ids: vec![],
            search_since: None
        })
    );

    // Against a recorded candidate: `from` again, not the recorded base.
    let edited = World::new()
        .healthy()
        .edit(|s| web_container(s).image = Some(NEWER_IMAGE.into()));
    let plan_edited = plan(&edited);
    assert_eq!(
        plan_edited.resolve,
        Some(ResolveLookups {
            live: Some(td_arn(2)),
            ..expected.clone().unwrap()
        })
    );
    assert_eq!(plan_edited.candidate, None);

    // A retry resolves `from` again too.
    let retried = World::new()
        .rolled_back()
        .asking(RequestKind::Retry, request(1, 3));
    assert_eq!(plan(&retried).resolve, expected);
}

#[test]
fn an_edit_that_keeps_the_taskdefinition_plans_no_resolve_lookups() {
    let world = World::new().healthy().label_edit();
    let plan = plan(&world);
    assert_eq!(plan.resolve, None);
    assert_eq!(
        plan.candidate,
        Some(td_arn(2)),
        "its content, for the AppSpec"
    );
}

#[test]
fn a_pending_request_plans_the_strategy_look() {
    for kind in [RequestKind::Promote, RequestKind::Abort, RequestKind::Retry] {
        let world = World::new().healthy().asking(kind, request(1, 4));
        assert!(plan(&world).strategy.is_some(), "{kind:?}");
    }
    // Once handled, the release is at rest again.
    let mut world = World::new()
        .healthy()
        .asking(RequestKind::Promote, request(1, 4));
    world.pass();
    assert_eq!(plan(&world), ObservationPlan::default());
}

#[test]
fn intents_plan_what_finds_their_outcome() {
    // A registration: the recorded base, and the release's revisions of its family.
    let mut registering = World::new();
    registering.pass_crashed();
    assert_eq!(
        plan(&registering).resolve,
        Some(ResolveLookups {
            base: td_arn(1),
            family: "web".into(),
            live: Some(td_arn(1)),
        })
    );

    // A stop of a deployment the status does not track: that deployment.
    let mut stopping = World::new().registered();
    stopping
        .aws
        .deployments
        .push(deployment("d-OLD", DeploymentStatus::InProgress, 0));
    stopping.pass_crashed();
    assert_eq!(
        plan(&stopping).strategy,
        Some(StrategyPlan::CodeDeploy {
            deployment_ids: vec!["d-OLD".into()],
            search_since: None
        })
    );

    // The deployment in flight: its id.
    assert_eq!(
        plan(&World::new().in_flight()).strategy,
        Some(StrategyPlan::CodeDeploy {
            deployment_ids: vec!["d-1".into()],
            search_since: None
        })
    );
}

#[test]
fn the_family_of_a_reference_is_its_family_name() {
    for reference in ["web", "web:3", &td_arn(3)] {
        assert_eq!(family_of(reference), "web", "{reference}");
    }
}

// ----- names -------------------------------------------------------------------------------

#[test]
fn deployment_descriptions_round_trip_and_foreign_ones_do_not_parse() {
    let description = deployment_description("web-api", 12);
    assert_eq!(description, "switchyard release=web-api rollout=12");
    assert_eq!(
        parse_deployment_description(&description),
        Some(("web-api".into(), 12))
    );
    for foreign in [
        "deployed from the console",
        "switchyard release=x rollout=y",
        "switchyard release=x generation=1 attempt=1",
    ] {
        assert_eq!(parse_deployment_description(foreign), None, "{foreign}");
    }
}

#[test]
fn actions_name_their_operation() {
    let world = World::new();
    let decision = check(&world);
    let action = decision.action.as_ref().unwrap();
    assert_eq!(action.operation(), "ecs:RegisterTaskDefinition");
    assert_eq!(action.as_str(), "RegisterTaskDefinition");
    assert_eq!(
        stop("d-1").unwrap().operation(),
        "codedeploy:StopDeployment"
    );
}

#[test]
fn handled_requests_start_empty() {
    for kind in [RequestKind::Promote, RequestKind::Abort, RequestKind::Retry] {
        assert_eq!(HandledRequests::default().get(kind), None);
    }
}

#[test]
fn waits_are_looked_at_within_the_budget_and_at_their_end_exactly() {
    // A look of two calls a minute, of four calls every two minutes.
    assert_eq!(waiting_poll(2), Duration::from_secs(60));
    assert_eq!(waiting_poll(4), Duration::from_secs(120));
    assert_eq!(waiting_poll(0), Duration::from_secs(30));
    // A wait ending within the spacing is looked at at its end.
    assert_eq!(
        waiting_until(Duration::from_secs(45), 2),
        Duration::from_secs(45)
    );
    // Never a look just before the end and another at it: 901 s left is 15 looks 60.07 s
    // apart, not 15 a minute apart and one a second later.
    let mut left = Duration::from_secs(901);
    let mut looks = Vec::new();
    while !left.is_zero() {
        let next = waiting_until(left, 2);
        assert!(next >= Duration::from_secs(60) || next == left, "{next:?}");
        looks.push(next);
        left -= next;
    }
    assert_eq!(looks.len(), 15);
}

mod notifications;
