//! Table-driven tests of `decide`: every path of the CodeDeploy lifecycle, through `check`.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::*;
use crate::model::{
    CodeDeployStrategy, ContainerChange, HandledRequests, OnDrift, OperatorRequest, RollbackSpec,
    ServiceRef, Strategy, TaskDefinitionSpec,
};
use crate::ports::{
    CapacityProviderItem, DeploymentErrorInfo, LifecycleEvent, LoadBalancerBinding,
    NetworkConfiguration, ReadyAction, RollbackInfo, StabilityStatus, TargetTaskSet, TaskSet,
    TaskSetStatus,
};

const NAME: &str = "web";

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

fn td_arn(revision: u32) -> String {
    format!("arn:aws:ecs:us-east-1:111122223333:task-definition/web:{revision}")
}

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
    }
}

const OLD_IMAGE: &str = "registry/web:1.0";
const NEW_IMAGE: &str = "registry/web:2.0";

fn spec() -> ReleaseSpec {
    ReleaseSpec {
        service: ServiceRef {
            cluster: "prod".into(),
            name: "web".into(),
            region: None,
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
            }),
        },
        rollback: None,
        paused: false,
        on_drift: OnDrift::Report,
    }
}

fn service(live_revision: u32) -> Service {
    Service {
        cluster: "prod".into(),
        name: "web".into(),
        arn: "arn:aws:ecs:us-east-1:111122223333:service/prod/web".into(),
        status: "ACTIVE".into(),
        deployment_controller: DeploymentControllerType::CodeDeploy,
        task_definition: Some(td_arn(live_revision)),
        desired_count: 2,
        task_sets: vec![task_set(
            "ts-1",
            live_revision,
            TaskSetStatus::Primary,
            None,
        )],
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
    }
}

fn task_set(id: &str, revision: u32, status: TaskSetStatus, external: Option<&str>) -> TaskSet {
    TaskSet {
        id: id.into(),
        arn: format!("arn:aws:ecs:us-east-1:111122223333:task-set/prod/web/{id}"),
        status,
        task_definition: td_arn(revision),
        external_id: external.map(str::to_string),
        started_by: external.map(|_| "CODE_DEPLOY".to_string()),
        scale_percent: 100.0,
        computed_desired_count: 2,
        pending_count: 0,
        running_count: 2,
        stability: StabilityStatus::SteadyState,
        target_group_arns: vec![tg_arn("web-tg-a")],
    }
}

fn tg_arn(name: &str) -> String {
    format!(
        "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/{name}/0123456789abcdef"
    )
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

fn deployment(id: &str, status: DeploymentStatus, generation: u64, attempt: u32) -> Deployment {
    Deployment {
        id: id.into(),
        application: "web".into(),
        deployment_group: "web-prod".into(),
        status,
        description: Some(deployment_description(NAME, generation, attempt)),
        creator: DeploymentCreator::User,
        deployment_config: "CodeDeployDefault.ECSAllAtOnce".into(),
        create_time: Some(now()),
        complete_time: None,
        error: None,
        rollback: None,
    }
}

fn request(generation: u64, second: i64) -> OperatorRequest {
    OperatorRequest {
        generation,
        requested_by: "arn:aws:iam::111122223333:user/alice".into(),
        requested_at: Timestamp::from_second(1_700_000_000 + second).unwrap(),
    }
}

/// One row of a table: the desired release and what was observed.
#[derive(Clone)]
struct World {
    desired: DesiredRelease,
    observed: Observed,
}

impl World {
    /// Generation 1 of `web` wanting image 2.0; web:1 (image 1.0) live; group found.
    fn new() -> Self {
        Self {
            desired: DesiredRelease {
                name: NAME.into(),
                generation: 1,
                spec: Ok(spec()),
                requests: Requests::default(),
            },
            observed: Observed {
                status: None,
                service: Lookup::Found(service(1)),
                base: Lookup::Found(td(1, OLD_IMAGE)),
                family_latest: Lookup::Found(td(1, OLD_IMAGE)),
                live: Lookup::Found(td(1, OLD_IMAGE)),
                deployment_group: Lookup::Found(group(ReadyAction::ContinueDeployment)),
                ..Observed::default()
            },
        }
    }

    /// A status as the controller wrote it for generation `generation`, deploying web:2.
    fn deploying(mut self, generation: u64, deployment_id: Option<&str>) -> Self {
        self.desired.generation = generation;
        self.observed.status = Some(ReleaseStatus {
            observed_generation: generation,
            phase: Phase::Progressing,
            resolved_from: Some(td_arn(1)),
            desired_task_definition: Some(td_arn(2)),
            deployment_id: deployment_id.map(str::to_string),
            attempt: 1,
            live_task_definition: Some(td_arn(1)),
            previous_task_definition: Some(td_arn(1)),
            ..ReleaseStatus::default()
        });
        self.observed.family_latest = Lookup::Found(td(2, NEW_IMAGE));
        self
    }

    fn with_spec(mut self, edit: impl FnOnce(&mut ReleaseSpec)) -> Self {
        if let Ok(spec) = &mut self.desired.spec {
            edit(spec);
        }
        self
    }

    fn with_deployment(mut self, d: Deployment) -> Self {
        self.observed.deployments.push(d);
        self
    }

    fn with_status(mut self, edit: impl FnOnce(&mut ReleaseStatus)) -> Self {
        edit(
            self.observed
                .status
                .get_or_insert_with(ReleaseStatus::default),
        );
        self
    }

    fn live(mut self, revision: u32) -> Self {
        self.observed.service = Lookup::Found(service(revision));
        self
    }
}

fn check(world: &World) -> Decision {
    let decision = decide(&world.desired, &world.observed, now());
    // Invariants that hold for every decision.
    assert_eq!(
        decision.status.observed_generation,
        world.desired.generation
    );
    assert!(decision.status.history.len() <= HISTORY_LIMIT);
    if decision.action.is_some() {
        assert!(
            decision.requeue_after.is_some(),
            "an action is always followed by a look"
        );
    }
    decision
}

fn action_name(decision: &Decision) -> Option<&'static str> {
    decision.action.as_ref().map(Action::as_str)
}

/// Decides again on the decision's own status (as if the world did not change) and checks
/// that nothing new happens: the status is stable, so it is not rewritten every pass.
fn assert_stable(world: &World, decision: &Decision) {
    let mut again = world.clone();
    again.observed.status = Some(decision.status.clone());
    let second = check(&again);
    assert_eq!(second.status, decision.status, "status must be stable");
}

// ----- validation and environment ---------------------------------------------------------

#[test]
fn invalid_spec_is_reported_with_its_field_path_and_nothing_is_done() {
    let mut world = World::new();
    world.desired.spec = Err(vec![FieldError {
        path: "spec.taskDefinition.containers.web.image".into(),
        message: "must not be empty".into(),
    }]);
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Invalid);
    assert_eq!(
        decision.status.message,
        "spec.taskDefinition.containers.web.image: must not be empty"
    );
    assert_eq!(decision.action, None);
    assert_stable(&world, &decision);
}

#[test]
fn missing_service_fails_naming_the_service() {
    let mut world = World::new();
    world.observed.service = Lookup::Missing;
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Failed);
    assert!(decision.status.message.contains("prod/web not found"));
    assert_eq!(decision.action, None);
}

#[test]
fn a_service_without_the_codedeploy_controller_fails() {
    let mut world = World::new();
    if let Lookup::Found(s) = &mut world.observed.service {
        s.deployment_controller = DeploymentControllerType::Ecs;
    }
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Failed);
    assert!(decision.status.message.contains("CODE_DEPLOY"));
}

#[test]
fn a_missing_deployment_group_fails_naming_it() {
    let mut world = World::new();
    world.observed.deployment_group = Lookup::Missing;
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Failed);
    assert!(decision.status.message.contains("web/web-prod not found"));
}

#[test]
fn a_container_the_base_does_not_have_is_invalid_and_names_the_field() {
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
fn an_unresolvable_family_is_invalid() {
    let mut world = World::new();
    world.observed.base = Lookup::Missing;
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Invalid);
    assert!(
        decision
            .status
            .message
            .starts_with("spec.taskDefinition.from")
    );
}

// ----- resolving and registering ----------------------------------------------------------

#[test]
fn a_new_generation_registers_a_copy_of_the_base_with_the_new_image() {
    let world = World::new();
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Pending);
    assert_eq!(
        decision.status.resolved_from.as_deref(),
        Some(td_arn(1).as_str())
    );
    let Some(Action::RegisterTaskDefinition { base, containers }) = &decision.action else {
        panic!("expected a registration, got {:?}", decision.action);
    };
    assert_eq!(base.arn, td_arn(1));
    assert_eq!(containers[0].image, NEW_IMAGE);
    assert_eq!(
        containers[0].environment["MODE"], "prod",
        "environment is kept"
    );
    assert_eq!(
        containers[1],
        td(1, OLD_IMAGE).containers[1],
        "other containers untouched"
    );
}

#[test]
fn environment_changes_merge_over_the_copy() {
    let world = World::new().with_spec(|s| {
        let web = s.task_definition.containers.get_mut("web").unwrap();
        web.environment.insert("FEATURE_X".into(), "on".into());
        web.environment.insert("MODE".into(), "canary".into());
    });
    let decision = check(&world);
    let Some(Action::RegisterTaskDefinition { containers, .. }) = &decision.action else {
        panic!("expected a registration");
    };
    assert_eq!(
        containers[0].environment,
        BTreeMap::from([
            ("FEATURE_X".to_string(), "on".to_string()),
            ("MODE".to_string(), "canary".to_string())
        ])
    );
}

#[test]
fn a_recorded_resolution_is_kept_even_when_a_newer_revision_appears() {
    // Generation 1 resolved `web` to web:1; someone registered web:5 since.
    let world = World::new().with_status(|s| {
        s.observed_generation = 1;
        s.resolved_from = Some(td_arn(1));
    });
    let mut world = world;
    world.observed.family_latest = Lookup::Found(td(5, "someone/else:9"));
    let decision = check(&world);
    let Some(Action::RegisterTaskDefinition { base, .. }) = &decision.action else {
        panic!("expected a registration");
    };
    assert_eq!(base.arn, td_arn(1));
    assert_eq!(
        decision.status.resolved_from.as_deref(),
        Some(td_arn(1).as_str())
    );
}

#[test]
fn an_identical_registered_revision_is_reused_instead_of_registering_again() {
    let mut world = World::new();
    world.observed.family_latest = Lookup::Found(td(2, NEW_IMAGE));
    let decision = check(&world);
    assert_eq!(action_name(&decision), Some("CreateDeployment"));
    assert_eq!(
        decision.status.desired_task_definition.as_deref(),
        Some(td_arn(2).as_str())
    );
}

#[test]
fn the_desired_content_already_live_is_healthy_without_a_deployment() {
    let mut world = World::new().live(2);
    world.observed.live = Lookup::Found(td(2, NEW_IMAGE));
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Healthy);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.history[0].outcome, Outcome::AlreadyLive);
    assert_stable(&world, &decision);
}

// ----- creating -----------------------------------------------------------------------------

#[test]
fn create_deployment_records_the_intent_and_builds_the_appspec_from_the_live_service() {
    let mut world = World::new();
    world.observed.family_latest = Lookup::Found(td(2, NEW_IMAGE));
    let decision = check(&world);
    let Some(Action::CreateDeployment(request)) = &decision.action else {
        panic!("expected CreateDeployment, got {:?}", decision.action);
    };
    assert_eq!(request.application, "web");
    assert_eq!(request.deployment_group, "web-prod");
    assert_eq!(
        request.description,
        "switchyard release=web generation=1 attempt=1"
    );
    let appspec: serde_json::Value = serde_json::from_str(&request.appspec_content).unwrap();
    let props = &appspec["Resources"][0]["TargetService"]["Properties"];
    assert_eq!(props["TaskDefinition"], td_arn(2));
    assert_eq!(props["LoadBalancerInfo"]["ContainerName"], "web");
    assert_eq!(props["LoadBalancerInfo"]["ContainerPort"], 8080);
    assert_eq!(props["PlatformVersion"], "LATEST");
    assert_eq!(
        props["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"][0],
        "subnet-1"
    );
    assert_eq!(
        props["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"],
        "DISABLED"
    );
    assert_eq!(
        props["CapacityProviderStrategy"][0]["CapacityProvider"],
        "FARGATE"
    );
    let intent = decision
        .status
        .intent
        .as_ref()
        .expect("intent recorded before the call");
    assert_eq!((intent.generation, intent.attempt), (1, 1));
    assert_eq!(decision.status.phase, Phase::Pending);
}

#[test]
fn the_deployment_config_override_is_passed_through() {
    let mut world = World::new().with_spec(|s| {
        s.strategy.code_deploy.as_mut().unwrap().deployment_config =
            Some("CodeDeployDefault.ECSCanary10Percent5Minutes".into());
    });
    world.observed.family_latest = Lookup::Found(td(2, NEW_IMAGE));
    let Some(Action::CreateDeployment(request)) = check(&world).action else {
        panic!("expected CreateDeployment");
    };
    assert_eq!(
        request.deployment_config.as_deref(),
        Some("CodeDeployDefault.ECSCanary10Percent5Minutes")
    );
}

#[test]
fn an_intent_whose_deployment_was_not_found_creates_again() {
    // The earlier call never took effect: the search for its description found nothing.
    let world = World::new().deploying(1, None).with_status(|s| {
        s.phase = Phase::Pending;
        s.intent = Some(DeploymentIntent {
            generation: 1,
            attempt: 1,
            task_definition: td_arn(2),
            recorded_at: now(),
        });
    });
    assert_eq!(action_name(&check(&world)), Some("CreateDeployment"));
}

#[test]
fn adopts_our_active_deployment_after_a_restart_instead_of_creating_another() {
    let world = World::new()
        .deploying(1, None)
        .with_status(|s| {
            s.phase = Phase::Pending;
            s.intent = Some(DeploymentIntent {
                generation: 1,
                attempt: 1,
                task_definition: td_arn(2),
                recorded_at: now(),
            });
        })
        .with_deployment(deployment("d-ABC", DeploymentStatus::InProgress, 1, 1));
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert_eq!(decision.status.deployment_id.as_deref(), Some("d-ABC"));
    assert_eq!(decision.status.intent, None);
}

#[test]
fn never_creates_a_deployment_while_any_deployment_is_active_in_the_group() {
    for active in [
        deployment("d-OURS", DeploymentStatus::Created, 1, 1),
        deployment("d-OLD", DeploymentStatus::InProgress, 0, 1),
        Deployment {
            description: Some("pipeline run 42".into()),
            ..deployment("d-CI", DeploymentStatus::Queued, 1, 1)
        },
    ] {
        let mut world = World::new().with_deployment(active.clone());
        world.observed.family_latest = Lookup::Found(td(2, NEW_IMAGE));
        let decision = check(&world);
        assert_ne!(
            action_name(&decision),
            Some("CreateDeployment"),
            "active {}",
            active.id
        );
    }
}

// ----- waiting for others, superseding ----------------------------------------------------

#[test]
fn waits_for_a_deployment_switchyard_did_not_start_without_acting() {
    let world = World::new().with_deployment(Deployment {
        description: None,
        ..deployment("d-CONSOLE", DeploymentStatus::InProgress, 0, 0)
    });
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Pending);
    assert!(decision.status.message.contains("d-CONSOLE"));
    assert_stable(&world, &decision);
}

#[test]
fn another_releases_deployment_in_the_same_group_is_foreign() {
    let world = World::new().with_deployment(Deployment {
        description: Some(deployment_description("api", 1, 1)),
        ..deployment("d-API", DeploymentStatus::InProgress, 1, 1)
    });
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Pending);
}

#[test]
fn a_newer_generation_stops_the_superseded_deployment_until_it_stops() {
    let world = World::new()
        .deploying(1, Some("d-G1"))
        .with_deployment(deployment("d-G1", DeploymentStatus::InProgress, 1, 1));
    let mut world = world;
    world.desired.generation = 2;
    let decision = check(&world);
    assert_eq!(
        decision.action,
        Some(Action::StopDeployment {
            deployment_id: "d-G1".into()
        })
    );
    assert_eq!(decision.status.phase, Phase::Pending);
    assert_eq!(decision.status.history[0].outcome, Outcome::Superseded);
    assert_eq!(decision.status.history[0].generation, 1);

    // The next pass, with the deployment still active, sends the stop again (the first call
    // may have failed or never been sent) but records the superseding once.
    let mut again = world.clone();
    again.observed.status = Some(decision.status.clone());
    let second = check(&again);
    assert_eq!(
        second.action,
        Some(Action::StopDeployment {
            deployment_id: "d-G1".into()
        })
    );
    assert_eq!(second.status.history.len(), 1, "superseded recorded once");
}

#[test]
fn after_the_superseded_rollback_the_newest_generation_is_deployed() {
    let mut world = World::new().deploying(1, Some("d-G1"));
    world.desired.generation = 2;
    world = world.with_status(|s| {
        s.stop_requested = Some(StopRequest {
            deployment_id: "d-G1".into(),
            reason: "superseded by generation 2".into(),
        });
    });
    world = world.with_deployment(deployment("d-G1", DeploymentStatus::Stopped, 1, 1));
    world.observed.family_latest = Lookup::Found(td(2, NEW_IMAGE));
    let decision = check(&world);
    let Some(Action::CreateDeployment(request)) = &decision.action else {
        panic!("expected CreateDeployment, got {:?}", decision.action);
    };
    assert!(request.description.contains("generation=2"));
    assert_eq!(decision.status.stop_requested, None);
}

// ----- following, promotion, abort, alarms ------------------------------------------------

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
    DeploymentTarget {
        status: "InProgress".into(),
        lifecycle_events: names
            .iter()
            .enumerate()
            .map(|(i, name)| LifecycleEvent {
                name: name.to_string(),
                status: if i < position {
                    LifecycleEventStatus::Succeeded
                } else if i == position {
                    LifecycleEventStatus::InProgress
                } else {
                    LifecycleEventStatus::Pending
                },
                start_time: None,
                end_time: None,
            })
            .collect(),
        task_sets: vec![
            TargetTaskSet {
                identifier: "ts-1".into(),
                status: "PRIMARY".into(),
                traffic_weight: 100.0 - candidate_weight,
                desired_count: 2,
                pending_count: 0,
                running_count: 2,
                target_group_name: Some("web-tg-a".into()),
                label: Some("Blue".into()),
            },
            TargetTaskSet {
                identifier: "ts-2".into(),
                status: "ACTIVE".into(),
                traffic_weight: candidate_weight,
                desired_count: 2,
                pending_count: 0,
                running_count: 2,
                target_group_name: Some("web-tg-b".into()),
                label: Some("Green".into()),
            },
        ],
    }
}

fn in_flight(status: DeploymentStatus, event: &str, weight: f64) -> World {
    let mut world = World::new()
        .deploying(1, Some("d-1"))
        .with_deployment(deployment("d-1", status, 1, 1));
    world.observed.target = Some(target(event, weight));
    world
}

#[test]
fn follows_our_deployment_with_its_lifecycle_event_and_traffic() {
    let world = in_flight(DeploymentStatus::InProgress, "AllowTraffic", 10.0);
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert_eq!(
        decision.status.lifecycle_event.as_deref(),
        Some("AllowTraffic")
    );
    assert_eq!(
        decision.status.traffic_weights,
        Some(TrafficWeights {
            live: 90.0,
            candidate: 10.0
        })
    );
    assert!(decision.requeue_after.is_some());
    assert_stable(&world, &decision);
}

#[test]
fn manual_promotion_waits_in_awaiting_promotion() {
    let world = in_flight(DeploymentStatus::Ready, "BeforeAllowTraffic", 0.0).with_spec(|s| {
        s.strategy.code_deploy.as_mut().unwrap().promotion = Promotion::Manual;
    });
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::AwaitingPromotion);
    assert_eq!(decision.action, None);
    assert!(decision.status.message.contains("switchyard promote web"));
}

#[test]
fn a_promote_request_for_this_generation_continues_the_deployment_once() {
    let mut world = in_flight(DeploymentStatus::Ready, "BeforeAllowTraffic", 0.0).with_spec(|s| {
        s.strategy.code_deploy.as_mut().unwrap().promotion = Promotion::Manual;
    });
    world.desired.requests.promote = Some(request(1, 1));
    let decision = check(&world);
    assert_eq!(
        decision.action,
        Some(Action::ContinueDeployment {
            deployment_id: "d-1".into()
        })
    );
    assert_eq!(
        decision.status.handled_requests.promote,
        Some(request(1, 1).requested_at)
    );
    assert_eq!(decision.status.history[0].outcome, Outcome::Promoted);
    assert!(decision.status.history[0].message.contains("user/alice"));

    // Acted on once: the same request seen again (deployment still Ready) does nothing.
    let mut again = world.clone();
    again.observed.status = Some(decision.status.clone());
    let second = check(&again);
    assert_eq!(second.action, None);
    assert_eq!(second.status.phase, Phase::AwaitingPromotion);
}

#[test]
fn a_promote_request_for_another_generation_is_ignored() {
    let mut world = in_flight(DeploymentStatus::Ready, "BeforeAllowTraffic", 0.0).with_spec(|s| {
        s.strategy.code_deploy.as_mut().unwrap().promotion = Promotion::Manual;
    });
    world.desired.requests.promote = Some(request(0, 1));
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::AwaitingPromotion);
}

#[test]
fn automatic_promotion_continues_a_ready_deployment() {
    let world = in_flight(DeploymentStatus::Ready, "BeforeAllowTraffic", 0.0);
    assert_eq!(
        check(&world).action,
        Some(Action::ContinueDeployment {
            deployment_id: "d-1".into()
        })
    );
}

#[test]
fn a_paused_release_does_not_promote_automatically() {
    let world = in_flight(DeploymentStatus::Ready, "BeforeAllowTraffic", 0.0)
        .with_spec(|s| s.paused = true);
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::AwaitingPromotion);
}

#[test]
fn a_rollback_alarm_in_alarm_stops_the_deployment_with_rollback() {
    let mut world = in_flight(DeploymentStatus::InProgress, "AllowTraffic", 10.0).with_spec(|s| {
        s.rollback = Some(RollbackSpec {
            alarms: vec!["web-latency".into(), "web-5xx".into()],
        });
    });
    world.observed.alarms = BTreeMap::from([
        ("web-latency".into(), AlarmState::Ok),
        ("web-5xx".into(), AlarmState::Alarm),
    ]);
    let decision = check(&world);
    assert_eq!(
        decision.action,
        Some(Action::StopDeployment {
            deployment_id: "d-1".into()
        })
    );
    assert!(
        decision
            .status
            .message
            .contains("alarm web-5xx is in ALARM")
    );
    assert_eq!(
        decision
            .status
            .stop_requested
            .as_ref()
            .map(|s| s.deployment_id.as_str()),
        Some("d-1")
    );

    // Still active on the next pass: the stop is sent again (a lost StopDeployment must
    // never leave a deployment running after its alarm fired).
    let mut again = world.clone();
    again.observed.status = Some(decision.status.clone());
    assert_eq!(
        check(&again).action,
        Some(Action::StopDeployment {
            deployment_id: "d-1".into()
        })
    );
}

#[test]
fn alarms_in_ok_or_insufficient_data_do_not_stop() {
    let mut world = in_flight(DeploymentStatus::InProgress, "AllowTraffic", 10.0).with_spec(|s| {
        s.rollback = Some(RollbackSpec {
            alarms: vec!["a".into(), "b".into()],
        });
    });
    world.observed.alarms = BTreeMap::from([
        ("a".into(), AlarmState::Ok),
        ("b".into(), AlarmState::InsufficientData),
    ]);
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(
        decision.requeue_after,
        Some(POLL_PASSIVE),
        "alarms are watched in one batch, not by polling the release"
    );
}

#[test]
fn polling_during_the_hooks_is_relaxed_unless_the_group_waits_in_ready() {
    // The group continues on its own: nothing waits for the controller until the end.
    let world = in_flight(DeploymentStatus::InProgress, "Install", 0.0);
    let decision = check(&world);
    assert_eq!(decision.requeue_after, Some(POLL_PASSIVE));

    // The group waits in Ready: the controller must be there within 2 s of it.
    let mut world = in_flight(DeploymentStatus::InProgress, "Install", 0.0);
    world.observed.deployment_group =
        Lookup::Found(group(ReadyAction::StopDeployment { wait_minutes: 60 }));
    let decision = check(&world);
    assert_eq!(decision.requeue_after, Some(POLL_ACTIVE));
}

#[test]
fn an_abort_request_stops_the_deployment_and_is_recorded() {
    let mut world = in_flight(DeploymentStatus::InProgress, "Install", 0.0);
    world.desired.requests.abort = Some(request(1, 2));
    let decision = check(&world);
    assert_eq!(
        decision.action,
        Some(Action::StopDeployment {
            deployment_id: "d-1".into()
        })
    );
    assert_eq!(decision.status.history[0].outcome, Outcome::Aborted);
}

#[test]
fn a_rollback_deployment_of_ours_keeps_the_release_progressing() {
    let mut world = World::new().deploying(1, Some("d-1")).with_status(|s| {
        s.stop_requested = Some(StopRequest {
            deployment_id: "d-1".into(),
            reason: "alarm web-5xx is in ALARM".into(),
        });
    });
    world = world
        .with_deployment(Deployment {
            rollback: Some(RollbackInfo {
                rollback_deployment_id: Some("d-RB".into()),
                rollback_triggering_deployment_id: None,
                rollback_message: None,
            }),
            ..deployment("d-1", DeploymentStatus::Stopped, 1, 1)
        })
        .with_deployment(Deployment {
            description: None,
            creator: DeploymentCreator::CodeDeployRollback,
            rollback: Some(RollbackInfo {
                rollback_deployment_id: None,
                rollback_triggering_deployment_id: Some("d-1".into()),
                rollback_message: None,
            }),
            ..deployment("d-RB", DeploymentStatus::InProgress, 0, 0)
        });
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Progressing);
    assert!(decision.status.message.contains("rolling d-1 back"));
    assert!(
        decision.status.stop_requested.is_some(),
        "kept until the rollback ends"
    );
}

// ----- endings -------------------------------------------------------------------------------

#[test]
fn a_stopped_deployment_with_traffic_back_is_rolled_back_with_the_reason() {
    let world = World::new()
        .deploying(1, Some("d-1"))
        .with_status(|s| {
            s.stop_requested = Some(StopRequest {
                deployment_id: "d-1".into(),
                reason: "alarm web-5xx is in ALARM".into(),
            });
        })
        .with_deployment(Deployment {
            error: Some(DeploymentErrorInfo {
                code: "MANUAL_STOP".into(),
                message: "Deployment was stopped by user".into(),
            }),
            ..deployment("d-1", DeploymentStatus::Stopped, 1, 1)
        });
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::RolledBack);
    assert!(
        decision
            .status
            .message
            .contains("alarm web-5xx is in ALARM")
    );
    assert!(decision.status.message.contains("traffic is back on web:1"));
    assert_eq!(decision.status.history[0].outcome, Outcome::RolledBack);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.stop_requested, None);
    assert_stable(&world, &decision);
}

#[test]
fn a_failed_deployment_reports_codedeploys_error_code_and_message() {
    let world = World::new()
        .deploying(1, Some("d-1"))
        .with_deployment(Deployment {
            error: Some(DeploymentErrorInfo {
                code: "ECS_UPDATE_ERROR".into(),
                message: "tasks failed to start".into(),
            }),
            ..deployment("d-1", DeploymentStatus::Failed, 1, 1)
        });
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::RolledBack);
    assert!(
        decision
            .status
            .message
            .contains("ECS_UPDATE_ERROR: tasks failed to start")
    );
}

#[test]
fn a_failed_deployment_with_the_candidate_still_live_is_failed() {
    let world = World::new()
        .deploying(1, Some("d-1"))
        .live(2)
        .with_deployment(deployment("d-1", DeploymentStatus::Failed, 1, 1));
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Failed);
    assert!(
        decision
            .status
            .message
            .contains("not back on the previous version")
    );
}

#[test]
fn a_succeeded_deployment_is_healthy_and_recorded_once() {
    let world = World::new()
        .deploying(1, Some("d-1"))
        .live(2)
        .with_deployment(deployment("d-1", DeploymentStatus::Succeeded, 1, 1));
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Healthy);
    assert_eq!(decision.status.history.len(), 1);
    assert_eq!(decision.status.history[0].outcome, Outcome::Succeeded);
    let ready = decision.status.condition(ConditionType::Ready).unwrap();
    assert_eq!(ready.status, ConditionStatus::True);
    assert_stable(&world, &decision);
}

#[test]
fn a_healthy_release_with_nothing_observed_from_codedeploy_stays_healthy() {
    // The steady-state pass: only the service was described.
    let world = World::new()
        .deploying(1, Some("d-1"))
        .live(2)
        .with_deployment(deployment("d-1", DeploymentStatus::Succeeded, 1, 1));
    let first = check(&world);
    let mut steady = world.clone();
    steady.observed.status = Some(first.status.clone());
    steady.observed.deployments.clear();
    steady.observed.deployment_group = Lookup::NotLookedUp;
    steady.observed.base = Lookup::NotLookedUp;
    steady.observed.family_latest = Lookup::NotLookedUp;
    steady.observed.live = Lookup::NotLookedUp;
    let second = check(&steady);
    assert_eq!(second.status, first.status);
    assert_eq!(second.action, None);
    assert_eq!(second.requeue_after, None);
}

// ----- drift, pause, retry -------------------------------------------------------------------

fn healthy_then_drifted(on_drift: OnDrift) -> World {
    let healthy = World::new()
        .deploying(1, Some("d-1"))
        .live(2)
        .with_deployment(deployment("d-1", DeploymentStatus::Succeeded, 1, 1));
    let status = check(&healthy).status;
    let mut world = healthy.live(7).with_spec(|s| s.on_drift = on_drift);
    world.observed.status = Some(status);
    world.observed.deployments.clear();
    world
}

#[test]
fn drift_is_reported_without_acting_by_default() {
    let world = healthy_then_drifted(OnDrift::Report);
    let decision = check(&world);
    assert_eq!(decision.action, None);
    assert_eq!(decision.status.phase, Phase::Failed);
    let drifted = decision.status.condition(ConditionType::Drifted).unwrap();
    assert_eq!(drifted.status, ConditionStatus::True);
    assert!(decision.status.message.contains("web:7, not web:2"));
    assert_stable(&world, &decision);
}

#[test]
fn drift_converges_as_a_new_attempt_when_the_release_asks() {
    let world = healthy_then_drifted(OnDrift::Converge);
    let mut world = world;
    world.observed.family_latest = Lookup::Found(td(2, NEW_IMAGE));
    let decision = check(&world);
    let Some(Action::CreateDeployment(request)) = &decision.action else {
        panic!("expected CreateDeployment, got {:?}", decision.action);
    };
    assert!(request.description.ends_with("attempt=2"));
    assert_eq!(decision.status.attempt, 2);
}

#[test]
fn a_paused_release_starts_nothing() {
    let world = World::new().with_spec(|s| s.paused = true);
    let decision = check(&world);
    assert_eq!(decision.status.phase, Phase::Paused);
    assert_eq!(decision.action, None);
}

#[test]
fn a_retry_request_after_a_rollback_starts_the_next_attempt() {
    let rolled_back = World::new()
        .deploying(1, Some("d-1"))
        .with_deployment(deployment("d-1", DeploymentStatus::Stopped, 1, 1));
    let status = check(&rolled_back).status;
    assert_eq!(status.phase, Phase::RolledBack);

    let mut world = rolled_back.clone();
    world.observed.status = Some(status);
    world.desired.requests.retry = Some(request(1, 3));
    let decision = check(&world);
    let Some(Action::CreateDeployment(request)) = &decision.action else {
        panic!("expected CreateDeployment, got {:?}", decision.action);
    };
    assert!(request.description.ends_with("generation=1 attempt=2"));
    assert!(
        decision
            .status
            .history
            .iter()
            .any(|h| h.outcome == Outcome::Retried)
    );
}

#[test]
fn a_rolled_back_release_without_a_retry_stays_rolled_back() {
    let world = World::new()
        .deploying(1, Some("d-1"))
        .with_deployment(deployment("d-1", DeploymentStatus::Stopped, 1, 1));
    let decision = check(&world);
    let mut again = world.clone();
    again.observed.status = Some(decision.status.clone());
    again.observed.deployments.clear();
    let second = check(&again);
    assert_eq!(second.status.phase, Phase::RolledBack);
    assert_eq!(second.action, None);
}

// ----- outcomes and helpers ------------------------------------------------------------------

#[test]
fn a_created_deployment_is_recorded_and_the_intent_cleared() {
    let mut world = World::new();
    world.observed.family_latest = Lookup::Found(td(2, NEW_IMAGE));
    let decision = check(&world);
    let action = decision.action.clone().unwrap();
    let status = record_outcome(
        decision.status,
        &action,
        &Ok(ActionResult::Created {
            deployment_id: "d-NEW".into(),
        }),
        now(),
    );
    assert_eq!(status.deployment_id.as_deref(), Some("d-NEW"));
    assert_eq!(status.intent, None);
    assert_eq!(status.phase, Phase::Progressing);
}

#[test]
fn an_ambiguous_create_failure_keeps_the_intent_so_the_next_pass_searches_first() {
    let mut world = World::new();
    world.observed.family_latest = Lookup::Found(td(2, NEW_IMAGE));
    let decision = check(&world);
    let action = decision.action.clone().unwrap();
    let error = AwsError::new(
        "codedeploy",
        "CreateDeployment",
        AwsErrorKind::Ambiguous,
        "timed out",
    );
    let status = record_outcome(decision.status, &action, &Err(error), now());
    assert!(status.intent.is_some());
    // And the plan for the next pass searches the group's recent deployments.
    let plan = plan_observation(&world.desired, Some(&status), &service(1));
    assert!(plan.codedeploy);
    assert!(plan.search_since.is_some());
}

#[test]
fn a_refused_create_fails_the_attempt_and_is_not_repeated() {
    let mut world = World::new();
    world.observed.family_latest = Lookup::Found(td(2, NEW_IMAGE));
    let decision = check(&world);
    let action = decision.action.clone().unwrap();
    let error = AwsError::new(
        "codedeploy",
        "CreateDeployment",
        AwsErrorKind::InvalidRequest,
        "The deployment config does not exist",
    );
    let status = record_outcome(decision.status, &action, &Err(error), now());
    assert_eq!(status.phase, Phase::Failed);
    let mut again = world.clone();
    again.observed.status = Some(status);
    let next = check(&again);
    assert_eq!(
        next.action, None,
        "a refused attempt is not retried without a request"
    );
    assert_eq!(next.status.phase, Phase::Failed);
}

#[test]
fn deployment_descriptions_round_trip_and_foreign_ones_do_not_parse() {
    let description = deployment_description("web-api", 12, 3);
    assert_eq!(
        parse_deployment_description(&description),
        Some(("web-api".into(), 12, 3))
    );
    assert_eq!(
        parse_deployment_description("deployed from the console"),
        None
    );
    assert_eq!(
        parse_deployment_description("switchyard release=x generation=y attempt=1"),
        None
    );
}

#[test]
fn steady_state_plan_describes_nothing_but_the_service() {
    let world = World::new()
        .deploying(1, Some("d-1"))
        .live(2)
        .with_deployment(deployment("d-1", DeploymentStatus::Succeeded, 1, 1));
    let status = check(&world).status;
    let plan = plan_observation(&world.desired, Some(&status), &service(2));
    assert_eq!(plan, ObservationPlan::default());
}

#[test]
fn a_new_generation_plans_task_definition_and_codedeploy_lookups() {
    let world = World::new();
    let plan = plan_observation(&world.desired, None, &service(1));
    assert!(plan.codedeploy);
    let lookups = plan.task_definitions.unwrap();
    assert_eq!(lookups.base, "web");
    assert_eq!(lookups.family, "web");
    assert_eq!(lookups.live.as_deref(), Some(td_arn(1).as_str()));
}

#[test]
fn handled_requests_default_is_empty() {
    assert_eq!(HandledRequests::default().get(RequestKind::Promote), None);
}
