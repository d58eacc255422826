//! Setting up an `EXTERNAL` service in the simulated account: the world a `taskSets` release
//! runs against (two target groups, a load balancer with a production listener that forwards
//! to the live group only, an optional test listener, optional rules, one PRIMARY task set).

use std::collections::BTreeMap;

use crate::ports::{
    ContainerDefinition, DeploymentControllerType, LaunchSettings, LoadBalancerBinding,
    NetworkConfiguration, TargetHealthState, TaskDefinition, TaskSetStatus, WeightedTargetGroup,
};

use super::appspec;
use super::world::{SimService, SimTarget, SimTask, SimTaskSet};
use super::{SETUP_CONTAINER_DIGEST, SETUP_TASK_DIGEST, SimAws};

/// A rule of the production listener (its conditions, say a path pattern, are not
/// modelled).
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalRule {
    /// The rule's priority (1..=50000, unique per listener).
    pub priority: u32,
    /// Whether it forwards to the live target group (single target); otherwise it answers
    /// with a fixed response and has no forward action.
    pub forwards: bool,
}

/// Everything needed to set up one `EXTERNAL` service for controller-driven task sets.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalSetup {
    /// The ECS cluster name.
    pub cluster: String,
    /// The ECS service name.
    pub service: String,
    /// The task definition family.
    pub family: String,
    /// The container that receives load balancer traffic (the only container).
    pub container_name: String,
    /// Its port, in its port mappings and in the task sets' load balancer entries.
    pub container_port: u16,
    /// The container image of the first revision.
    pub image: String,
    /// The container environment of the first revision.
    pub environment: BTreeMap<String, String>,
    /// The service's desired task count.
    pub desired_count: u32,
    /// The names of target groups A (live at first: the first task set's) and B.
    pub target_group_names: [String; 2],
    /// The production listener's port; its default action forwards to A only.
    pub production_port: u16,
    /// The test listener's port, if there is one; it forwards to B, which associates B with
    /// the load balancer (ECS refuses a task set on a target group that no listener or rule
    /// forwards to).
    pub test_port: Option<u16>,
    /// Rules of the production listener.
    pub rules: Vec<ExternalRule>,
    /// How the first task set's tasks are launched; also the service's own settings.
    pub launch: LaunchSettings,
}

impl ExternalSetup {
    /// Sane defaults: family and container named after the service, port 8080, image
    /// `111122223333.dkr.ecr.us-east-1.amazonaws.com/<service>:1.0.0`, 2 tasks, target groups
    /// `<service>-tg-a` and `<service>-tg-b`, production listener on port 80, test listener on
    /// 8080, no rules, Fargate (platform `LATEST`) in an awsvpc network.
    pub fn new(cluster: &str, service: &str) -> Self {
        Self {
            cluster: cluster.to_string(),
            service: service.to_string(),
            family: service.to_string(),
            container_name: service.to_string(),
            container_port: 8080,
            image: format!("111122223333.dkr.ecr.us-east-1.amazonaws.com/{service}:1.0.0"),
            environment: BTreeMap::new(),
            desired_count: 2,
            target_group_names: [format!("{service}-tg-a"), format!("{service}-tg-b")],
            production_port: 80,
            test_port: Some(8080),
            rules: Vec::new(),
            launch: LaunchSettings {
                launch_type: Some("FARGATE".to_string()),
                capacity_provider_strategy: Vec::new(),
                platform_version: Some("LATEST".to_string()),
                network_configuration: Some(NetworkConfiguration {
                    subnets: vec![
                        "subnet-0a1b2c3d4e5f60001".to_string(),
                        "subnet-0a1b2c3d4e5f60002".to_string(),
                    ],
                    security_groups: vec!["sg-0a1b2c3d4e5f60001".to_string()],
                    assign_public_ip: false,
                }),
            },
        }
    }
}

/// What `add_external_service` created.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalHandles {
    /// `arn:aws:ecs:us-east-1:111122223333:service/<cluster>/<service>`.
    pub service_arn: String,
    /// The first registered revision, running in the PRIMARY task set.
    pub task_definition: TaskDefinition,
    /// Target groups A (live: the PRIMARY task set's) and B.
    pub target_group_arns: [String; 2],
    pub load_balancer_arn: String,
    /// The production listener, forwarding to A only (single target).
    pub production_listener_arn: String,
    /// The test listener, forwarding to B, when the setup has one.
    pub test_listener_arn: Option<String>,
    /// The production listener's rules, in the setup's order.
    pub rule_arns: Vec<String>,
    /// The PRIMARY task set (scale 100, every task running and healthy in A).
    pub primary_task_set_arn: String,
}

fn single(target_group_arn: &str) -> Vec<WeightedTargetGroup> {
    vec![WeightedTargetGroup {
        target_group_arn: target_group_arn.to_string(),
        weight: 1,
    }]
}

impl SimAws {
    /// Creates an `EXTERNAL` service with its first task definition revision, target groups A
    /// and B, a load balancer whose production listener forwards to A only, the optional test
    /// listener (to B) and rules, and one PRIMARY task set at scale 100 on A whose tasks all
    /// run and are healthy targets of A.
    ///
    /// Panics if the service already exists (a test setup mistake).
    pub fn add_external_service(&self, setup: ExternalSetup) -> ExternalHandles {
        assert!(
            !setup.cluster.starts_with("arn:")
                && crate::model::names::cluster_name(&setup.cluster).is_ok(),
            "the simulated account creates a cluster by its cluster name, not {:?}",
            setup.cluster
        );
        self.with_world(|world| {
            let key = (setup.cluster.clone(), setup.service.clone());
            assert!(
                !world.services.contains_key(&key),
                "service {}/{} already exists",
                setup.cluster,
                setup.service
            );
            let task_definition = world.register_revision(
                &setup.family,
                vec![ContainerDefinition {
                    name: setup.container_name.clone(),
                    image: setup.image.clone(),
                    environment: setup.environment.clone(),
                    container_ports: vec![setup.container_port],
                    other_fields_digest: SETUP_CONTAINER_DIGEST.to_string(),
                }],
                SETUP_TASK_DIGEST,
                BTreeMap::new(),
            );
            let target_group_arns = setup
                .target_group_names
                .clone()
                .map(|name| world.create_target_group(&name, setup.container_port));
            let load_balancer_arn = world.create_load_balancer(&format!("{}-alb", setup.service));
            let production_listener_arn = world.create_listener(
                &load_balancer_arn,
                setup.production_port,
                single(&target_group_arns[0]),
            );
            let test_listener_arn = setup.test_port.map(|port| {
                world.create_listener(&load_balancer_arn, port, single(&target_group_arns[1]))
            });
            let rule_arns = setup
                .rules
                .iter()
                .map(|rule| {
                    let forward = if rule.forwards {
                        single(&target_group_arns[0])
                    } else {
                        Vec::new()
                    };
                    world.create_rule(&production_listener_arn, rule.priority, forward)
                })
                .collect();

            // The first task set: every task running and a healthy target of A.
            let now = self.clock().now();
            let tasks: Vec<SimTask> = (0..setup.desired_count)
                .map(|_| SimTask {
                    ip: world.next_ip(),
                    runs_at: now,
                    checked_at: now,
                    running: true,
                    checked: true,
                })
                .collect();
            if let Some(group) = world.target_groups.get_mut(&target_group_arns[0]) {
                group.targets.extend(tasks.iter().map(|task| SimTarget {
                    id: task.ip.clone(),
                    port: setup.container_port,
                    state: TargetHealthState::Healthy,
                    leaves_at: None,
                }));
            }
            let settings = appspec::LaunchSettings {
                network_configuration: setup.launch.network_configuration.clone(),
                capacity_provider_strategy: setup.launch.capacity_provider_strategy.clone(),
                platform_version: setup.launch.platform_version.clone(),
            };
            let task_set_id = world.next_task_set_id();
            let primary_task_set_arn =
                world
                    .scope
                    .task_set_arn(&setup.cluster, &setup.service, &task_set_id);
            let service_arn = world.scope.service_arn(&setup.cluster, &setup.service);
            world.services.insert(
                key,
                SimService {
                    cluster: setup.cluster.clone(),
                    name: setup.service.clone(),
                    arn: service_arn.clone(),
                    deployment_controller: DeploymentControllerType::External,
                    desired_count: setup.desired_count,
                    binding: LoadBalancerBinding {
                        target_group_arn: target_group_arns[0].clone(),
                        container_name: setup.container_name.clone(),
                        container_port: setup.container_port,
                    },
                    base_settings: settings.clone(),
                    task_sets: vec![SimTaskSet {
                        id: task_set_id,
                        arn: primary_task_set_arn.clone(),
                        status: TaskSetStatus::Primary,
                        task_definition: task_definition.arn.clone(),
                        external_id: None,
                        started_by: None,
                        running_count: setup.desired_count,
                        target_group_arn: target_group_arns[0].clone(),
                        container_name: setup.container_name.clone(),
                        container_port: setup.container_port,
                        traffic_weight: 100.0,
                        settings,
                        launch_type: setup.launch.launch_type.clone(),
                        scale_percent: 100.0,
                        tasks,
                        never_healthy: false,
                        drained_at: None,
                    }],
                    target_group_arns: target_group_arns.clone(),
                    production_listener: production_listener_arn.clone(),
                    test_listener: test_listener_arn.clone(),
                    client_tokens: BTreeMap::new(),
                },
            );
            ExternalHandles {
                service_arn,
                task_definition,
                target_group_arns,
                load_balancer_arn,
                production_listener_arn,
                test_listener_arn,
                rule_arns,
                primary_task_set_arn,
            }
        })
    }
}
