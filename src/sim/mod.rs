//! A simulated AWS (ECS, CodeDeploy, ELBv2, CloudWatch) and release store, in process,
//! strict where AWS is strict and deterministic under paused tokio time.
//!
//! State lives behind one lock and is never held across an `.await`. Time comes only from
//! the [`Clock`] given at construction: deployments progress lazily, every call first
//! advancing the world to `clock.now()` (see `World::advance`), so there are no background
//! tasks and a call twenty virtual minutes later sees the deployment finished.

mod appspec;
mod cloudwatch;
mod codedeploy;
mod ecs;
mod elb;
mod external;
mod faults;
mod metrics;
mod notify;
mod service_deployments;
mod store;
mod sts;
mod task_sets;
mod world;

#[cfg(test)]
mod scope_tests;
#[cfg(test)]
mod service_deployment_tests;
#[cfg(test)]
mod task_set_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jiff::Timestamp;

use crate::clock::Clock;
use crate::ports::{
    AwsError, AwsErrorKind, AwsPorts, AwsProvider, CapacityProviderItem, ContainerDefinition,
    Deployment, DeploymentControllerType, Listener, LoadBalancerBinding, NetworkConfiguration,
    ReadyAction, Route, Service, TargetHealth, TaskDefinition, TaskSetStatus, WeightedTargetGroup,
};

pub use cloudwatch::{DESCRIBE_ALARMS_LIMIT, DescribedAlarm};
pub use codedeploy::{
    ALLOW_TEST_TRAFFIC, CREATED_TO_IN_PROGRESS, HOOK_EVENT, INSTALL_TIMEOUT, LIFECYCLE_EVENTS,
    ROLLBACK_DURATION, STOP_DELAY, TASK_START_INTERVAL,
};
pub use ecs::DESCRIBE_SERVICES_LIMIT;
pub use elb::{MAX_FORWARD_TARGET_GROUPS, MAX_FORWARD_WEIGHT};
pub use external::{ExternalHandles, ExternalRule, ExternalSetup};
pub use faults::{Fault, FaultRule};
pub use notify::{Received, SimNotifications};
pub use service_deployments::{
    CIRCUIT_BREAKER_REASON, DEFAULT_HOOK_TIMEOUT_MINUTES, DESCRIBE_SERVICE_DEPLOYMENTS_LIMIT,
    EcsServiceHandles, EcsServiceSetup, PAUSE_HOOK_STAGES, SERVICE_DEPLOYMENT_START,
    SERVICE_ROLLBACK_DURATION, SERVICE_STOP_DELAY, SERVICE_TASK_START_INTERVAL, STAGE_DURATION,
    service_of_deployment_arn,
};
pub use store::{CommittedStatusWrite, SimStore};
pub use sts::SimRole;
pub use task_sets::{
    CLIENT_TOKEN_MAX_LEN, DEREGISTRATION_DELAY, HEALTH_CHECK, TASK_SETS_PER_SERVICE, TASK_START,
};
pub use world::AlarmType;
pub use world::CircuitBreaker;
pub use world::CreatedTaskSet;
pub use world::TrafficRouting;
pub use world::{ACCOUNT, REGION, Scope};

use appspec::LaunchSettings;
use faults::FaultInjector;
use world::{SimGroup, SimService, SimTaskSet, World};

/// Locks a mutex, ignoring poisoning: a panicking test must not cascade into every other
/// user of a shared simulation.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Inner {
    clock: Clock,
    worlds: Mutex<Worlds>,
    faults: FaultInjector,
    /// When each call reached the simulated AWS, once [`SimAws::keep_call_times`] asked for it
    /// (for the benchmarks' request rates).
    call_times: Mutex<Option<Vec<PlacedCall>>>,
    /// Request rates enforced as AWS does (see [`SimAws::limit_rate`]).
    rate_limits: Mutex<Vec<RateLimit>>,
    iam: Mutex<sts::Iam>,
}

/// When a call reached the simulated AWS: `(when, service, operation)`.
pub type CallTime = (Timestamp, &'static str, &'static str);

/// A call that reached the simulated AWS: when, in which account and Region, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedCall {
    pub at: Timestamp,
    pub account: String,
    pub region: String,
    pub service: &'static str,
    pub operation: &'static str,
}

/// Token buckets over the calls of one service whose operation starts with a prefix (ELB's
/// `Describe*` share one), one per account and Region as AWS keeps them: a call that finds
/// its bucket empty is throttled.
#[derive(Debug, Clone)]
struct RateLimit {
    service: &'static str,
    prefix: String,
    /// Only this account and Region's calls (`None`: every one's, each its own bucket).
    only: Option<Scope>,
    burst: f64,
    per_second: f64,
    /// Per account and Region: the tokens left and when they were last counted.
    buckets: BTreeMap<Scope, (f64, Timestamp)>,
    throttled: u64,
}

impl RateLimit {
    fn applies(&self, scope: &Scope, service: &str, operation: &str) -> bool {
        self.service == service
            && operation.starts_with(self.prefix.as_str())
            && self.only.as_ref().is_none_or(|only| only == scope)
    }

    /// Takes a token of `scope`'s bucket for a call at `now`; `false` when there is none.
    fn take(&mut self, scope: &Scope, now: Timestamp) -> bool {
        let (tokens, last) = self
            .buckets
            .entry(scope.clone())
            .or_insert((self.burst, now));
        let elapsed = crate::clock::elapsed_between(*last, now).as_secs_f64();
        *tokens = (*tokens + elapsed * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            self.throttled += 1;
            false
        }
    }
}

/// Every account's resources per region, made on first use.
struct Worlds {
    by_scope: BTreeMap<Scope, World>,
    /// How long CodeDeploy takes to stop a deployment, in every world.
    stop_delay: std::time::Duration,
}

impl Worlds {
    fn get(&mut self, scope: &Scope) -> &mut World {
        let stop_delay = self.stop_delay;
        self.by_scope.entry(scope.clone()).or_insert_with(|| {
            let mut world = World::for_scope(scope.clone());
            world.stop_delay = stop_delay;
            world
        })
    }
}

/// The simulated AWS: accounts and regions, each a world of its own whose resources are
/// invisible from the others, and STS to act in another account. Implements
/// [`crate::ports::Ecs`], [`crate::ports::CodeDeploy`], [`crate::ports::LoadBalancer`],
/// [`crate::ports::Alarms`] and [`crate::ports::Sts`] as the account and region of its
/// [`Scope`] (the home one, [`ACCOUNT`] in [`REGION`], unless [`SimAws::scoped`] says
/// otherwise), and [`AwsProvider`]. Cheap to clone; clones share every world.
#[derive(Clone)]
pub struct SimAws {
    inner: Arc<Inner>,
    /// The account and region this handle acts in (and sets up).
    scope: Scope,
    /// The assumed-role session this handle acts with (an access key id), checked on every
    /// call; `None`: the account's own credentials (the controller's, or a test's setup).
    session: Option<String>,
}

/// Everything needed to set up one blue/green service with its CodeDeploy application,
/// deployment group, two target groups and production/test listeners.
#[derive(Debug, Clone, PartialEq)]
pub struct BlueGreenSetup {
    /// The ECS cluster name.
    pub cluster: String,
    /// The ECS service name.
    pub service: String,
    /// The task definition family.
    pub family: String,
    /// The container that receives load balancer traffic (the only container).
    pub container_name: String,
    /// Its port, in its port mappings and in the service's load balancer entry.
    pub container_port: u16,
    /// The container image of the first revision.
    pub image: String,
    /// The container environment of the first revision.
    pub environment: BTreeMap<String, String>,
    /// The service's desired task count (each task set's computed desired count).
    pub desired_count: u32,
    /// The CodeDeploy application.
    pub application: String,
    /// The CodeDeploy deployment group (one per service).
    pub deployment_group: String,
    /// The group's default deployment config, e.g. `CodeDeployDefault.ECSAllAtOnce`.
    pub deployment_config: String,
    /// The group's `deploymentReadyOption`.
    pub ready_action: ReadyAction,
    /// Minutes between the traffic shift and the removal of the original task set.
    pub termination_wait_minutes: u32,
    /// The service's (and first task set's) awsvpc configuration.
    pub network_configuration: Option<NetworkConfiguration>,
    /// The service's capacity provider strategy.
    pub capacity_provider_strategy: Vec<CapacityProviderItem>,
    /// The service's Fargate platform version.
    pub platform_version: Option<String>,
}

impl BlueGreenSetup {
    /// Sane defaults: family, container and application named after the service, port 8080,
    /// image `111122223333.dkr.ecr.us-east-1.amazonaws.com/<service>:1.0.0`, 2 tasks, group
    /// `<service>-prod`, `CodeDeployDefault.ECSAllAtOnce`, continue when ready, no
    /// termination wait, an awsvpc network configuration, Fargate platform `LATEST`.
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
            application: service.to_string(),
            deployment_group: format!("{service}-prod"),
            deployment_config: "CodeDeployDefault.ECSAllAtOnce".to_string(),
            ready_action: ReadyAction::ContinueDeployment,
            termination_wait_minutes: 0,
            network_configuration: Some(NetworkConfiguration {
                subnets: vec![
                    "subnet-0a1b2c3d4e5f60001".to_string(),
                    "subnet-0a1b2c3d4e5f60002".to_string(),
                ],
                security_groups: vec!["sg-0a1b2c3d4e5f60001".to_string()],
                assign_public_ip: false,
            }),
            capacity_provider_strategy: Vec::new(),
            platform_version: Some("LATEST".to_string()),
        }
    }
}

/// What `add_bluegreen_service` created.
#[derive(Debug, Clone, PartialEq)]
pub struct BlueGreenHandles {
    /// `arn:aws:ecs:us-east-1:111122223333:service/<cluster>/<service>`.
    pub service_arn: String,
    /// The first registered revision, running in the initial PRIMARY task set.
    pub task_definition: TaskDefinition,
    /// Target groups A (`<service>-tg-a`, live at first) and B (`<service>-tg-b`).
    pub target_group_arns: [String; 2],
    /// The production listener (port 80), forwarding to target group A at first.
    pub production_listener_arn: String,
    /// The test listener (port 8080), forwarding to target group A at first.
    pub test_listener_arn: String,
}

/// The digest given to the container of a service's first task definition.
const SETUP_CONTAINER_DIGEST: &str = "sim-container-defaults";
/// The task-level digest of a service's first task definition.
const SETUP_TASK_DIGEST: &str = "sim-task-defaults";
const PRODUCTION_PORT: u16 = 80;
const TEST_PORT: u16 = 8080;

impl SimAws {
    /// An empty account whose time is `clock`'s.
    pub fn new(clock: Clock) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                worlds: Mutex::new(Worlds {
                    by_scope: BTreeMap::new(),
                    stop_delay: codedeploy::STOP_DELAY,
                }),
                faults: FaultInjector::new(),
                call_times: Mutex::new(None),
                rate_limits: Mutex::new(Vec::new()),
                iam: Mutex::new(sts::Iam::default()),
            }),
            scope: Scope::default(),
            session: None,
        }
    }

    /// The same simulated AWS, as `account` in `region`: for setting up (and inspecting)
    /// what lives there. Calls through it act with that account's own credentials.
    pub fn scoped(&self, account: &str, region: &str) -> SimAws {
        SimAws {
            inner: self.inner.clone(),
            scope: Scope::new(account, region),
            session: None,
        }
    }

    /// The handle [`AwsProvider::ports_for`] answers with: `region` of the home account
    /// with no session, of the session's account with one (every call then checked against
    /// the session, which must be one STS issued and not expired).
    pub fn acting_as(&self, region: &str, session: Option<&crate::ports::RoleSession>) -> SimAws {
        match session {
            None => self.scoped(ACCOUNT, region),
            Some(session) => SimAws {
                inner: self.inner.clone(),
                scope: self.session_scope(session, region),
                session: Some(session.access_key_id.clone()),
            },
        }
    }

    /// The account and region this handle acts in.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// How long CodeDeploy takes to stop a deployment after StopDeployment
    /// ([`STOP_DELAY`] unless set), in every account and region.
    pub fn set_stop_delay(&self, delay: std::time::Duration) {
        let mut worlds = lock(&self.inner.worlds);
        worlds.stop_delay = delay;
        for world in worlds.by_scope.values_mut() {
            world.stop_delay = delay;
        }
    }

    /// How many StopDeployment calls each deployment accepted, by id.
    pub fn stop_calls(&self) -> BTreeMap<String, u32> {
        self.with_world(|world| {
            world
                .deployments
                .iter()
                .filter(|d| d.stop_calls > 0)
                .map(|d| (d.id.clone(), d.stop_calls))
                .collect()
        })
    }

    /// How many ContinueDeployment calls each deployment accepted, by id.
    pub fn continue_calls(&self) -> BTreeMap<String, u32> {
        self.with_world(|world| {
            world
                .deployments
                .iter()
                .filter(|d| d.continue_calls > 0)
                .map(|d| (d.id.clone(), d.continue_calls))
                .collect()
        })
    }

    /// Reseeds the random source of probabilistic fault rules.
    pub fn with_seed(self, seed: u64) -> Self {
        self.inner.faults.reseed(seed);
        self
    }

    /// The AWS ports, all backed by this simulation.
    pub fn ports(&self) -> AwsPorts {
        AwsPorts {
            ecs: Arc::new(self.clone()),
            codedeploy: Arc::new(self.clone()),
            load_balancer: Arc::new(self.clone()),
            alarms: Arc::new(self.clone()),
            metric_data: Arc::new(self.clone()),
        }
    }

    /// The clock the simulation runs on.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Runs `f` on this handle's world advanced to now (no call counted, no faults).
    fn with_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let now = self.inner.clock.now();
        let mut worlds = lock(&self.inner.worlds);
        let world = worlds.get(&self.scope);
        world.advance(now);
        f(world)
    }

    /// Runs one AWS call: counts it as `<service>:<operation>`, applies injected faults
    /// (latency slept first, then throttling or server errors instead of the call, or a lost
    /// response after it), advances the world to now and runs `body` under the lock.
    async fn call<T>(
        &self,
        service: &'static str,
        operation: &'static str,
        body: impl FnOnce(&mut World, Timestamp) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        let decision = self.inner.faults.on_call(&format!("{service}:{operation}"));
        if !decision.latency.is_zero() {
            self.inner.clock.sleep(decision.latency).await;
        }
        let injected = |kind: AwsErrorKind, code: &str, message: &str| {
            Err(
                AwsError::new(service, operation, kind, format!("{message} (injected)"))
                    .with_code(code),
            )
        };
        // Every request sent counts for the fleet's API budget, throttled or not
        // (`crate::retry::counting_attempts`), as the SDK interceptor counts them in production.
        let sent = crate::retry::attempt_sent;
        match decision.failure {
            Some(Fault::Throttle) => {
                sent(true);
                return injected(
                    AwsErrorKind::Throttling,
                    "ThrottlingException",
                    "Rate exceeded",
                );
            }
            Some(Fault::ServerError) => {
                sent(false);
                return injected(
                    AwsErrorKind::Transient,
                    "InternalFailure",
                    "The request processing has failed because of an unknown error",
                );
            }
            Some(Fault::AccessDenied) => {
                sent(false);
                return injected(
                    AwsErrorKind::AccessDenied,
                    "AccessDeniedException",
                    &format!("User is not authorized to perform: {service}:{operation}"),
                );
            }
            Some(Fault::Panic) => panic!("injected panic in {service}:{operation}"),
            _ => {}
        }
        let now = self.inner.clock.now();
        if let Err(refused) = self.check_session(service, operation, now) {
            sent(false);
            return Err(refused);
        }
        let throttled = lock(&self.inner.rate_limits)
            .iter_mut()
            .filter(|l| l.applies(&self.scope, service, operation))
            .any(|l| !l.take(&self.scope, now));
        sent(throttled);
        if throttled {
            return Err(AwsError::new(
                service,
                operation,
                AwsErrorKind::Throttling,
                "Rate exceeded",
            )
            .with_code("Throttling"));
        }
        if let Some(times) = lock(&self.inner.call_times).as_mut() {
            times.push(PlacedCall {
                at: now,
                account: self.scope.account.clone(),
                region: self.scope.region.clone(),
                service,
                operation,
            });
        }
        let result = {
            let mut worlds = lock(&self.inner.worlds);
            let world = worlds.get(&self.scope);
            *world
                .calls
                .entry(format!("{service}:{operation}"))
                .or_default() += 1;
            world.advance(now);
            body(world, now)
        };
        if decision.failure == Some(Fault::LostResponse) {
            return injected(
                AwsErrorKind::Ambiguous,
                "RequestTimeout",
                "The response was lost; the call may have taken effect",
            );
        }
        result
    }

    /// Creates a `CODE_DEPLOY` service with one PRIMARY task set (all tasks running) on target
    /// group A, its first task definition revision, two target groups, production and test
    /// listeners forwarding to A, and a CodeDeploy application with one deployment group.
    ///
    /// Panics if the service or the deployment group already exists (a test setup mistake).
    pub fn add_bluegreen_service(&self, setup: BlueGreenSetup) -> BlueGreenHandles {
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
            assert!(
                world
                    .applications
                    .get(&setup.application)
                    .is_none_or(|groups| !groups.contains_key(&setup.deployment_group)),
                "deployment group {}/{} already exists",
                setup.application,
                setup.deployment_group
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
            let target_group_arns = [
                world.create_target_group(&format!("{}-tg-a", setup.service), setup.container_port),
                world.create_target_group(&format!("{}-tg-b", setup.service), setup.container_port),
            ];
            let load_balancer = world.create_load_balancer(&format!("{}-alb", setup.service));
            let [production_listener_arn, test_listener_arn] =
                [PRODUCTION_PORT, TEST_PORT].map(|port| {
                    world.create_listener(
                        &load_balancer,
                        port,
                        vec![WeightedTargetGroup {
                            target_group_arn: target_group_arns[0].clone(),
                            weight: 1,
                        }],
                    )
                });
            let settings = LaunchSettings {
                network_configuration: setup.network_configuration.clone(),
                capacity_provider_strategy: setup.capacity_provider_strategy.clone(),
                platform_version: setup.platform_version.clone(),
            };
            let task_set_id = world.next_task_set_id();
            let service_arn = world.scope.service_arn(&setup.cluster, &setup.service);
            world.services.insert(
                key,
                SimService {
                    cluster: setup.cluster.clone(),
                    name: setup.service.clone(),
                    arn: service_arn.clone(),
                    deployment_controller: DeploymentControllerType::CodeDeploy,
                    desired_count: setup.desired_count,
                    binding: LoadBalancerBinding {
                        target_group_arn: target_group_arns[0].clone(),
                        container_name: setup.container_name.clone(),
                        container_port: setup.container_port,
                    },
                    base_settings: settings.clone(),
                    task_sets: vec![SimTaskSet {
                        arn: world
                            .scope
                            .task_set_arn(&setup.cluster, &setup.service, &task_set_id),
                        id: task_set_id,
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
                        launch_type: None,
                        scale_percent: 100.0,
                        tasks: Vec::new(),
                        never_healthy: false,
                        drained_at: None,
                    }],
                    target_group_arns: target_group_arns.clone(),
                    production_listener: production_listener_arn.clone(),
                    test_listener: Some(test_listener_arn.clone()),
                    client_tokens: BTreeMap::new(),
                },
            );
            world
                .applications
                .entry(setup.application.clone())
                .or_default()
                .insert(
                    setup.deployment_group.clone(),
                    SimGroup {
                        application: setup.application.clone(),
                        name: setup.deployment_group.clone(),
                        cluster: setup.cluster.clone(),
                        service: setup.service.clone(),
                        deployment_config: setup.deployment_config.clone(),
                        ready_action: setup.ready_action,
                        termination_wait_minutes: setup.termination_wait_minutes,
                    },
                );
            BlueGreenHandles {
                service_arn,
                task_definition,
                target_group_arns,
                production_listener_arn,
                test_listener_arn,
            }
        })
    }

    /// Registers the next revision of `family` (ACTIVE) with these containers and task-level
    /// digest, as someone outside the controller would.
    pub fn add_task_definition(
        &self,
        family: &str,
        containers: Vec<ContainerDefinition>,
        other_fields_digest: &str,
    ) -> TaskDefinition {
        self.with_world(|world| {
            world.register_revision(family, containers, other_fields_digest, BTreeMap::new())
        })
    }

    /// Registers a custom deployment config usable by name in `CreateDeployment`.
    pub fn add_custom_deployment_config(&self, name: &str, routing: TrafficRouting) {
        self.with_world(|world| {
            world.custom_configs.insert(name.to_string(), routing);
        });
    }

    /// From now on, replacement task sets whose task definition has a container image
    /// containing `image_substring` never become healthy: CodeDeploy's `Install` fails after
    /// [`INSTALL_TIMEOUT`]; the tasks of a task set created with `CreateTaskSet` run but fail
    /// their target group's health checks (`unhealthy` targets), so the task set never
    /// reaches `STEADY_STATE`.
    pub fn fail_install_for_image(&self, image_substring: &str) {
        self.with_world(|world| world.failing_images.push(image_substring.to_string()));
    }

    /// Forgets every `fail_install_for_image` substring: later installs succeed again
    /// (a replacement already timing out keeps failing).
    pub fn clear_failing_images(&self) {
        self.with_world(|world| world.failing_images.clear());
    }

    /// Adds a fault rule for AWS calls (`"<service>:<Operation>"` or `"*"`).
    pub fn inject(&self, rule: FaultRule) {
        self.inner.faults.inject(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.inner.faults.clear();
    }

    /// Removes the first fault rule equal to `rule` (a fault that lasted a while is gone);
    /// whether there was one.
    pub fn remove_fault(&self, rule: &FaultRule) -> bool {
        self.inner.faults.remove(rule)
    }

    /// From now on, throttles the calls of `service` whose operation starts with `prefix` as
    /// AWS's request rates do: a bucket of `burst` tokens refilled at `per_second`, one token
    /// a call (ELB: `limit_rate("elbv2", "Describe", 40.0, 10.0)`), one bucket per account
    /// and Region. Off unless asked for: the scenario tests' worlds are far below AWS's rates.
    pub fn limit_rate(&self, service: &'static str, prefix: &str, burst: f64, per_second: f64) {
        self.push_rate_limit(service, prefix, None, burst, per_second);
    }

    /// [`SimAws::limit_rate`] for this handle's account and Region only.
    pub fn limit_rate_here(
        &self,
        service: &'static str,
        prefix: &str,
        burst: f64,
        per_second: f64,
    ) {
        self.push_rate_limit(service, prefix, Some(self.scope.clone()), burst, per_second);
    }

    fn push_rate_limit(
        &self,
        service: &'static str,
        prefix: &str,
        only: Option<Scope>,
        burst: f64,
        per_second: f64,
    ) {
        lock(&self.inner.rate_limits).push(RateLimit {
            service,
            prefix: prefix.to_string(),
            only,
            burst,
            per_second,
            buckets: BTreeMap::new(),
            throttled: 0,
        });
    }

    /// How many calls [`SimAws::limit_rate`]'s buckets throttled.
    pub fn throttled_calls(&self) -> u64 {
        lock(&self.inner.rate_limits)
            .iter()
            .map(|l| l.throttled)
            .sum()
    }

    /// From now on, keeps when each call that was not failed by an injected fault reached the
    /// simulated AWS (after its injected latency), for [`SimAws::call_times`].
    pub fn keep_call_times(&self) {
        lock(&self.inner.call_times).get_or_insert_with(Vec::new);
    }

    /// `(when, service, operation)` of every call kept since [`SimAws::keep_call_times`],
    /// oldest first.
    pub fn call_times(&self) -> Vec<CallTime> {
        lock(&self.inner.call_times)
            .iter()
            .flatten()
            .map(|c| (c.at, c.service, c.operation))
            .collect()
    }

    /// Every call kept since [`SimAws::keep_call_times`], with its account and Region.
    pub fn placed_call_times(&self) -> Vec<PlacedCall> {
        lock(&self.inner.call_times).clone().unwrap_or_default()
    }

    /// Calls per `"<service>:<Operation>"`, including calls failed by injected faults.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.inner.faults.counts()
    }

    /// Every deployment ever created (rollback deployments included), oldest first.
    pub fn all_deployments(&self) -> Vec<Deployment> {
        self.with_world(|world| world.deployments.iter().map(|d| d.view()).collect())
    }

    /// The AppSpec text a deployment was created with (`None` for unknown ids and rollbacks).
    pub fn appspec_of(&self, deployment_id: &str) -> Option<String> {
        self.with_world(|world| {
            world
                .deployments
                .iter()
                .find(|d| d.id == deployment_id)?
                .appspec_content
                .clone()
        })
    }

    /// The service as `DescribeServices` would show it now (not counted as a call); the
    /// cluster given by its name or its ARN.
    pub fn service(&self, cluster: &str, name: &str) -> Option<Service> {
        let cluster = ecs::requested_cluster(&self.scope, "DescribeServices", cluster).ok()??;
        self.with_world(|world| world.service_view(cluster, name))
    }

    /// A listener as `DescribeListeners` would show it now (not counted as a call).
    pub fn listener(&self, arn: &str) -> Option<Listener> {
        self.with_world(|world| world.listeners.get(arn).map(|l| l.view()))
    }

    /// A route (a listener's default action or a rule) as `describe_route` would show it
    /// now, with its forward weights (not counted as a call).
    pub fn route(&self, arn: &str) -> Option<Route> {
        self.with_world(|world| world.route_view(arn))
    }

    /// The targets of a target group and their health now (not counted as a call).
    pub fn target_health(&self, target_group_arn: &str) -> Option<Vec<TargetHealth>> {
        self.with_world(|world| world.target_health_view(target_group_arn))
    }

    /// Moves traffic by hand, as an operator in the console would: rewrites the forward
    /// action of a listener's default action or of a rule (`(target group ARN, weight)`; one
    /// entry of weight 1 is a single-target forward), without ELB's checks and without a
    /// call. Panics on an unknown route (a test setup mistake).
    pub fn set_forward(&self, route_arn: &str, forward: &[(&str, u32)]) {
        let forward = forward
            .iter()
            .map(|(arn, weight)| WeightedTargetGroup {
                target_group_arn: arn.to_string(),
                weight: *weight,
            })
            .collect();
        assert!(
            self.with_world(|world| world.set_route_forward(route_arn, forward)),
            "no listener or rule {route_arn}"
        );
    }

    /// Sets a service's desired count, as autoscaling would: its task sets resize to their
    /// scale of the new count.
    pub fn set_desired_count(&self, cluster: &str, service: &str, desired: u32) {
        let now = self.inner.clock.now();
        self.with_world(|world| world.set_desired_count(cluster, service, desired, now));
    }

    /// The service (cluster, name) whose setup created a target group, if one did (not a
    /// call): what a decorator needs to name the release a route change is for.
    pub fn service_of_target_group(&self, target_group_arn: &str) -> Option<(String, String)> {
        self.with_world(|world| {
            world
                .services
                .values()
                .find(|s| s.target_group_arns.iter().any(|t| t == target_group_arn))
                .map(|s| (s.cluster.clone(), s.name.clone()))
        })
    }

    /// Every task set `CreateTaskSet` created so far, in creation order, as it was created
    /// (deleted ones included; not a call).
    pub fn task_sets_created(&self) -> Vec<CreatedTaskSet> {
        self.with_world(|world| world.task_sets_created.clone())
    }

    /// From now on, the tasks of a task set created with `CreateTaskSet` start one every
    /// `task_start` and their health checks decide `health_check` after they start (instead
    /// of [`TASK_START`] and [`HEALTH_CHECK`]): targets slow to become healthy, or unhealthy.
    pub fn set_target_timings(
        &self,
        task_start: std::time::Duration,
        health_check: std::time::Duration,
    ) {
        self.with_world(|world| world.target_timings = Some((task_start, health_check)));
    }

    /// Every route (listeners' default actions and rules, by port and priority) of the load
    /// balancer whose listener an `EXTERNAL` service's setup made its production listener,
    /// as `describe_routes` would show them now (not a call); empty for other services. The
    /// cluster by its name or its ARN.
    pub fn routes_of_service(&self, cluster: &str, service: &str) -> Vec<Route> {
        let Some(cluster) = ecs::requested_cluster(&self.scope, "DescribeServices", cluster)
            .ok()
            .flatten()
        else {
            return Vec::new();
        };
        self.with_world(|world| {
            let Some(svc) = world.service(cluster, service) else {
                return Vec::new();
            };
            let Some(load_balancer) = world
                .listeners
                .get(&svc.production_listener)
                .map(|l| l.load_balancer_arn.clone())
            else {
                return Vec::new();
            };
            let mut listeners: Vec<_> = world
                .listeners
                .values()
                .filter(|l| l.load_balancer_arn == load_balancer)
                .collect();
            listeners.sort_by_key(|l| l.port);
            let mut routes = Vec::new();
            for listener in listeners {
                routes.extend(world.route_view(&listener.arn));
                let mut rules: Vec<_> = world
                    .rules
                    .values()
                    .filter(|r| r.listener_arn == listener.arn)
                    .collect();
                rules.sort_by_key(|r| r.priority);
                routes.extend(rules.into_iter().filter_map(|r| world.route_view(&r.arn)));
            }
            routes
        })
    }

    /// Calls that reached this handle's account and region, per `"<service>:<Operation>"`
    /// (calls failed by an injected fault or refused for their session are not among them).
    pub fn scope_call_counts(&self) -> BTreeMap<String, u64> {
        self.with_world(|world| world.calls.clone())
    }

    /// How many calls of one `"<service>:<Operation>"` were made so far.
    pub fn call_count(&self, operation: &str) -> u64 {
        self.call_counts().get(operation).copied().unwrap_or(0)
    }

    /// Every revision of a family, oldest first.
    pub fn task_definitions(&self, family: &str) -> Vec<TaskDefinition> {
        self.with_world(|world| {
            world
                .task_definitions
                .get(family)
                .cloned()
                .unwrap_or_default()
        })
    }
}

impl AwsProvider for SimAws {
    /// The home scope: [`ACCOUNT`] in [`REGION`].
    fn home(&self) -> crate::model::Home {
        let home = Scope::default();
        crate::model::Home::new(home.region, Some(home.account))
    }

    /// The ports of `region`: of the home account with no session, of the session's
    /// account with one (every call then checked against the session).
    fn ports_for(&self, region: &str, session: Option<&crate::ports::RoleSession>) -> AwsPorts {
        self.acting_as(region, session).ports()
    }

    fn sts(&self) -> Arc<dyn crate::ports::Sts> {
        Arc::new(self.scoped(ACCOUNT, REGION))
    }
}
