//! One replica's ports onto the shared simulated world: decorators of `SimStore` and `SimAws`
//! that can freeze the replica (a long pause: its calls and their replies are held, so its
//! leases expire under it), kill it (a crash: nothing it sends reaches the world any more,
//! and nothing returns to it), fail its status writes right after an action, and record what
//! the invariants need: the fence of every status write it heard succeed (and every one that
//! failed), every mutating AWS call with the fence it acted under, and every fresh read of a
//! release (a pass starting).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::log::{Event, EventLog, RouteSeen, TaskSetSeen, lock};
use crate::passes::PassLog;
use switchyard::lease::Fence;
use switchyard::model::Home;
use switchyard::model::{OperatorRequest, ReleaseStatus, RequestKind};
use switchyard::ports::{
    AlarmState, Alarms, AssumeRoleRequest, AwsError, AwsPorts, AwsProvider, CodeDeploy,
    ContainerDefinition, CreateDeploymentRequest, CreateTaskSetRequest, Deployment,
    DeploymentFilter, DeploymentGroup, DeploymentTarget, Ecs, ExpectedShare, HookAction,
    LeaseRecord, LeaseStore, Listener, LoadBalancer, MetricData, MetricDataRequest,
    MetricDatapoint, ReleaseStore, RoleSession, Route, Service, ServiceDeployment, ServiceRevision,
    SpecWrite, StoreError, StoredRelease, Sts, TargetGroup, TargetHealth, TaskDefinition, TaskSet,
    UpdateServiceRequest, WeightedTargetGroup,
};
use switchyard::ports::{
    EventBridge, HttpProbe, NotificationProvider, ProbeError, Publication, Sns, WebhookError,
    Webhooks,
};
use switchyard::reconcile::codedeploy::parse_deployment_description;
use switchyard::sim::{SimAws, SimNotifications, SimStore, service_of_deployment_arn};

/// Controls one replica's access to the world.
pub(super) struct Gate {
    frozen_until: Mutex<Option<Instant>>,
    dead: watch::Sender<bool>,
    /// The replica crashes right after its next successful call of this operation.
    crash_after: Mutex<Option<&'static str>>,
    /// Status writes to fail once the replica's next mutation succeeded (armed by the driver).
    writes_to_fail: AtomicU32,
    /// Whether the armed writes take effect (their reply is lost) or not.
    lose_write_replies: AtomicBool,
    /// A mutation succeeded since the writes were armed: the next writes fail.
    acted_since_armed: AtomicBool,
}

impl Gate {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            frozen_until: Mutex::new(None),
            dead: watch::Sender::new(false),
            crash_after: Mutex::new(None),
            writes_to_fail: AtomicU32::new(0),
            lose_write_replies: AtomicBool::new(false),
            acted_since_armed: AtomicBool::new(false),
        })
    }

    /// The next `writes` status writes after the replica's next successful mutation fail:
    /// they do not take effect, or (`lost`) they do and the reply is lost.
    pub fn arm_write_faults(&self, writes: u32, lost: bool) {
        self.acted_since_armed.store(false, Ordering::SeqCst);
        self.lose_write_replies.store(lost, Ordering::SeqCst);
        self.writes_to_fail.store(writes, Ordering::SeqCst);
    }

    /// Disarms the write faults (the faults stop).
    pub fn disarm_write_faults(&self) {
        self.writes_to_fail.store(0, Ordering::SeqCst);
    }

    fn on_mutation_succeeded(&self) {
        if self.writes_to_fail.load(Ordering::SeqCst) > 0 {
            self.acted_since_armed.store(true, Ordering::SeqCst);
        }
    }

    /// Whether this status write is one to fail, and whether it takes effect first.
    fn take_write_fault(&self) -> Option<bool> {
        if !self.acted_since_armed.load(Ordering::SeqCst) {
            return None;
        }
        let left = self.writes_to_fail.load(Ordering::SeqCst);
        if left == 0 {
            return None;
        }
        self.writes_to_fail.store(left - 1, Ordering::SeqCst);
        Some(self.lose_write_replies.load(Ordering::SeqCst))
    }

    /// Holds every call (and every reply) until `until`.
    pub fn freeze_until(&self, until: Instant) {
        let mut frozen = lock(&self.frozen_until);
        *frozen = Some(frozen.map_or(until, |f| f.max(until)));
    }

    /// From now on nothing this replica sends reaches the world, and nothing returns.
    pub fn kill(&self) {
        self.dead.send_replace(true);
    }

    pub fn is_dead(&self) -> bool {
        *self.dead.borrow()
    }

    /// The replica crashes right after its next successful call of `operation` (a
    /// mutation: `codedeploy:CreateDeployment`, ...), before it can record what it returned;
    /// `None` disarms.
    pub fn arm_crash_after(&self, operation: Option<&'static str>) {
        *lock(&self.crash_after) = operation;
    }

    /// Whether the replica is to crash now, after a successful `operation`.
    fn crashes_after(&self, operation: &str) -> bool {
        let mut armed = lock(&self.crash_after);
        if *armed == Some(operation) {
            *armed = None;
            true
        } else {
            false
        }
    }

    /// Waits while frozen; never returns once dead.
    async fn open(&self) {
        loop {
            if self.is_dead() {
                std::future::pending::<()>().await;
            }
            let until = *lock(&self.frozen_until);
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    async fn died(&self) {
        let mut receiver = self.dead.subscribe();
        if receiver.wait_for(|dead| *dead).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Runs one call of this replica: sent once it is not frozen, abandoned if it dies while
    /// the call is on its way (a call the world has not performed yet never will be), and
    /// its reply held while it is frozen.
    async fn call<F: Future>(&self, call: F) -> F::Output {
        self.open().await;
        let output = tokio::select! {
            biased;
            () = self.died() => std::future::pending().await,
            output = call => output,
        };
        self.open().await;
        output
    }
}

/// The fence of the last status write a replica heard succeed, per release.
type AckedFences = Arc<Mutex<BTreeMap<String, Option<Fence>>>>;

/// One replica's release store and lease store.
#[derive(Clone)]
pub(super) struct ReplicaStore {
    pub replica: String,
    inner: SimStore,
    gate: Arc<Gate>,
    log: EventLog,
    acked: AckedFences,
    passes: PassLog,
}

/// Per service name: when the replica last described it (virtual time since the run
/// started) and the current service deployment it named.
type ServiceViews = Arc<Mutex<BTreeMap<String, (std::time::Duration, Option<String>)>>>;

/// One replica's AWS.
#[derive(Clone)]
pub(super) struct ReplicaAws {
    replica: String,
    inner: SimAws,
    gate: Arc<Gate>,
    log: EventLog,
    acked: AckedFences,
    views: ServiceViews,
    /// Tells the driver that this replica crashed itself (after a CreateDeployment).
    crashed: mpsc::UnboundedSender<String>,
}

/// What a mutation's log needs besides the call: the service whose routes and task sets to
/// show once it returned (`taskSets` calls), and whether to show what the replica last saw
/// of the service first (`UpdateService`).
#[derive(Default)]
struct Context {
    traffic_of: Option<(String, String)>,
    view_of: Option<String>,
    /// A hook answer: (service deployment, hook id); the hook that waits is shown first.
    answer_to: Option<(String, String)>,
}

/// The routes and task sets of an `EXTERNAL` service now (not calls), for the log.
pub(super) fn traffic_of(
    aws: &SimAws,
    cluster: &str,
    service: &str,
) -> (Vec<RouteSeen>, Vec<TaskSetSeen>) {
    let routes = aws
        .routes_of_service(cluster, service)
        .into_iter()
        .map(|route| RouteSeen {
            arn: route.arn,
            forward: route
                .forward
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.target_group_arn, t.weight))
                .collect(),
        })
        .collect();
    let task_sets = aws
        .service(cluster, service)
        .map(|s| s.task_sets)
        .unwrap_or_default()
        .into_iter()
        .map(|t| TaskSetSeen {
            target_group: t.target_group_arns.first().cloned().unwrap_or_default(),
            arn: t.arn,
            status: t.status,
            scale: t.scale_percent,
            external_id: t.external_id,
        })
        .collect();
    (routes, task_sets)
}

/// Builds one replica's two decorators over the shared world.
pub(super) fn replica_ports(
    replica: &str,
    store: &SimStore,
    aws: &SimAws,
    gate: &Arc<Gate>,
    log: &EventLog,
    passes: &PassLog,
    crashed: &mpsc::UnboundedSender<String>,
) -> (ReplicaStore, ReplicaAws) {
    let acked = AckedFences::default();
    (
        ReplicaStore {
            replica: replica.to_string(),
            inner: store.clone(),
            gate: gate.clone(),
            log: log.clone(),
            acked: acked.clone(),
            passes: passes.clone(),
        },
        ReplicaAws {
            replica: replica.to_string(),
            inner: aws.clone(),
            gate: gate.clone(),
            log: log.clone(),
            acked,
            views: ServiceViews::default(),
            crashed: crashed.clone(),
        },
    )
}

#[async_trait]
impl ReleaseStore for ReplicaStore {
    async fn list(&self) -> Result<Vec<StoredRelease>, StoreError> {
        self.gate.call(self.inner.list()).await
    }

    async fn list_pages(
        &self,
        page: &mut (dyn FnMut(Vec<StoredRelease>) + Send),
    ) -> Result<(), StoreError> {
        self.gate.call(self.inner.list_pages(page)).await
    }

    async fn get(&self, name: &str) -> Result<Option<StoredRelease>, StoreError> {
        // Only a pass reads one release (a fresh read, before its span opens).
        self.passes.record(name);
        self.gate.call(self.inner.get(name)).await
    }

    async fn put_spec(&self, write: SpecWrite) -> Result<u64, StoreError> {
        self.gate.call(self.inner.put_spec(write)).await
    }

    async fn put_request(
        &self,
        name: &str,
        kind: RequestKind,
        request: OperatorRequest,
    ) -> Result<(), StoreError> {
        self.gate
            .call(self.inner.put_request(name, kind, request))
            .await
    }

    async fn write_status(
        &self,
        name: &str,
        status: &ReleaseStatus,
        expected_version: u64,
        fence: Option<&Fence>,
    ) -> Result<u64, StoreError> {
        self.gate
            .call(async {
                let result = match self.gate.take_write_fault() {
                    None => {
                        self.inner
                            .write_status(name, status, expected_version, fence)
                            .await
                    }
                    Some(lost) => {
                        if lost {
                            let _ = self
                                .inner
                                .write_status(name, status, expected_version, fence)
                                .await;
                        }
                        Err(StoreError::Unavailable {
                            message: format!(
                                "TransactWriteItems: injected failure after an action{}",
                                if lost { " (it took effect)" } else { "" }
                            ),
                            throttled: false,
                        })
                    }
                };
                if let Err(error) = &result {
                    self.log.push(Event::StatusWriteFailed {
                        replica: self.replica.clone(),
                        release: name.to_string(),
                        cause: error.to_string(),
                    });
                }
                if let Ok(version) = result {
                    lock(&self.acked).insert(name.to_string(), fence.cloned());
                    self.log.push(Event::StatusAcknowledged {
                        replica: self.replica.clone(),
                        release: name.to_string(),
                        fence: fence.cloned(),
                        version,
                    });
                }
                result
            })
            .await
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.gate.call(self.inner.delete(name)).await
    }

    fn changes(&self) -> Option<BoxStream<'static, String>> {
        self.inner.changes()
    }

    fn replica_changes(
        &self,
        replica: std::sync::Arc<dyn switchyard::ports::HeldShards>,
    ) -> Option<BoxStream<'static, String>> {
        self.inner.replica_changes(replica)
    }
}

#[async_trait]
impl LeaseStore for ReplicaStore {
    async fn leases(&self, shards: u32) -> Result<Vec<LeaseRecord>, StoreError> {
        self.gate.call(self.inner.leases(shards)).await
    }

    async fn renew_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<LeaseRecord, StoreError> {
        self.gate
            .call(self.inner.renew_lease(shard, owner, expected_counter))
            .await
    }

    async fn take_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<LeaseRecord, StoreError> {
        self.gate
            .call(async {
                let result = self.inner.take_lease(shard, owner, expected_counter).await;
                if let Ok(record) = &result {
                    self.log.push(Event::LeaseTaken {
                        replica: self.replica.clone(),
                        shard,
                        term: record.term,
                    });
                }
                result
            })
            .await
    }

    async fn release_lease(
        &self,
        shard: u32,
        owner: &str,
        expected_counter: u64,
    ) -> Result<(), StoreError> {
        self.gate
            .call(async {
                let result = self
                    .inner
                    .release_lease(shard, owner, expected_counter)
                    .await;
                if result.is_ok() {
                    self.log.push(Event::LeaseReleased {
                        replica: self.replica.clone(),
                        shard,
                    });
                }
                result
            })
            .await
    }
}

impl ReplicaAws {
    /// The service (cluster, name) a route change is for, whose target groups the weights
    /// name: each simulated release has a service of its name.
    fn service_of_weights(&self, weights: &[WeightedTargetGroup]) -> Option<(String, String)> {
        weights
            .iter()
            .find_map(|w| self.inner.service_of_target_group(&w.target_group_arn))
    }

    /// The release a deployment belongs to: from its description when it is ours, else its
    /// application (each simulated release has its own).
    fn release_of_deployment(&self, deployment_id: &str) -> String {
        self.inner
            .all_deployments()
            .into_iter()
            .find(|d| d.id == deployment_id)
            .map(|d| {
                d.description
                    .as_deref()
                    .and_then(parse_deployment_description)
                    .map(|(release, _)| release)
                    .unwrap_or(d.application)
            })
            .unwrap_or_else(|| format!("<unknown deployment {deployment_id}>"))
    }

    /// Runs one mutating call, logged when it is sent (with the fence of the replica's last
    /// acknowledged status write for the release) and when it returns.
    async fn mutation<T>(
        &self,
        operation: &'static str,
        release: String,
        detail: String,
        call: impl Future<Output = Result<T, AwsError>>,
    ) -> Result<T, AwsError> {
        self.mutation_in(operation, release, detail, Context::default(), call)
            .await
    }

    /// [`Self::mutation`], with what else its log shows.
    async fn mutation_in<T>(
        &self,
        operation: &'static str,
        release: String,
        detail: String,
        context: Context,
        call: impl Future<Output = Result<T, AwsError>>,
    ) -> Result<T, AwsError> {
        let result =
            self.gate
                .call(async {
                    if let Some(service) = &context.view_of {
                        let seen = lock(&self.views).get(service).cloned();
                        self.log.push(Event::ServiceViewAtUpdate {
                            replica: self.replica.clone(),
                            release: release.clone(),
                            current: seen.clone().and_then(|(_, current)| current),
                            seen_at: seen.map(|(at, _)| at),
                        });
                    }
                    if let Some((deployment, hook_id)) = &context.answer_to {
                        let waiting = self.inner.service_deployment(deployment).and_then(|d| {
                            d.hooks
                                .iter()
                                .find(|h| h.is_waiting_pause())
                                .map(|h| h.hook_id.clone())
                        });
                        self.log.push(Event::HookAnswerSent {
                            replica: self.replica.clone(),
                            release: release.clone(),
                            deployment: deployment.clone(),
                            hook_id: hook_id.clone(),
                            waiting,
                        });
                    }
                    let fence = lock(&self.acked).get(&release).cloned().flatten();
                    self.log.push(Event::MutationIssued {
                        replica: self.replica.clone(),
                        release: release.clone(),
                        operation,
                        detail: detail.clone(),
                        fence,
                    });
                    // A panic in the call (an injected bug) is logged, then goes on up.
                    let result =
                        match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(call))
                            .await
                        {
                            Ok(result) => result,
                            Err(panic) => {
                                self.log.push(Event::MutationReturned {
                                    replica: self.replica.clone(),
                                    release,
                                    operation,
                                    detail,
                                    outcome: "panicked".to_string(),
                                });
                                std::panic::resume_unwind(panic);
                            }
                        };
                    if result.is_ok() {
                        self.gate.on_mutation_succeeded();
                    }
                    let outcome = match &result {
                        Ok(_) => "ok".to_string(),
                        Err(error) => error.kind.as_str().to_string(),
                    };
                    if let Some((cluster, service)) = &context.traffic_of {
                        let (routes, task_sets) = traffic_of(&self.inner, cluster, service);
                        self.log.push(Event::TrafficSeen {
                            release: release.clone(),
                            by: self.replica.clone(),
                            change: format!("{operation} {detail}"),
                            outcome: outcome.clone(),
                            routes,
                            task_sets,
                        });
                    }
                    self.log.push(Event::MutationReturned {
                        replica: self.replica.clone(),
                        release,
                        operation,
                        detail,
                        outcome,
                    });
                    result
                })
                .await;
        if result.is_ok() && self.gate.crashes_after(operation) {
            // Crash between the call and recording what it returned: the reply dies with us.
            self.gate.kill();
            self.log.push(Event::ReplicaCrashed {
                replica: self.replica.clone(),
                point: crash_point(operation),
            });
            let _ = self.crashed.send(self.replica.clone());
            std::future::pending::<()>().await;
        }
        result
    }
}

/// The context of a task-set call: the service's traffic is shown once it returned.
fn traffic(cluster: &str, service: &str) -> Context {
    Context {
        traffic_of: Some((cluster.to_string(), service.to_string())),
        ..Context::default()
    }
}

/// Where a replica armed to crash after `operation` crashes, for the log.
fn crash_point(operation: &str) -> &'static str {
    match operation {
        "codedeploy:CreateDeployment" => "right after CreateDeployment returned",
        "ecs:RegisterTaskDefinition" => "right after RegisterTaskDefinition returned",
        "codedeploy:StopDeployment" => "right after StopDeployment returned",
        "codedeploy:ContinueDeployment" => "right after ContinueDeployment returned",
        "ecs:CreateTaskSet" => "right after CreateTaskSet returned",
        "ecs:UpdateTaskSet" => "right after UpdateTaskSet returned",
        "ecs:UpdateServicePrimaryTaskSet" => "right after UpdateServicePrimaryTaskSet returned",
        "ecs:DeleteTaskSet" => "right after DeleteTaskSet returned",
        "elbv2:ModifyListener" => "right after ModifyListener returned",
        "elbv2:ModifyRule" => "right after ModifyRule returned",
        "ecs:UpdateService" => "right after UpdateService returned",
        "ecs:ContinueServiceDeployment" => "right after ContinueServiceDeployment returned",
        "ecs:StopServiceDeployment" => "right after StopServiceDeployment returned",
        _ => "right after a mutation returned",
    }
}

/// The release a service deployment belongs to: its service's (each simulated release has its
/// own service, named after it).
fn release_of_service_deployment(deployment_arn: &str) -> String {
    service_of_deployment_arn(deployment_arn)
        .map(str::to_string)
        .unwrap_or_else(|| format!("<unknown service deployment {deployment_arn}>"))
}

impl AwsProvider for ReplicaAws {
    fn home(&self) -> Home {
        self.inner.home()
    }

    fn ports_for(&self, region: &str, session: Option<&RoleSession>) -> AwsPorts {
        let acting = Arc::new(ReplicaAws {
            inner: self.inner.acting_as(region, session),
            ..self.clone()
        });
        AwsPorts {
            ecs: acting.clone(),
            codedeploy: acting.clone(),
            load_balancer: acting.clone(),
            alarms: acting.clone(),
            metric_data: acting,
        }
    }

    fn sts(&self) -> Arc<dyn Sts> {
        Arc::new(self.clone())
    }
}

#[async_trait]
impl Sts for ReplicaAws {
    async fn assume_role(&self, request: &AssumeRoleRequest) -> Result<RoleSession, AwsError> {
        self.gate.call(self.inner.assume_role(request)).await
    }
}

#[async_trait]
impl Ecs for ReplicaAws {
    async fn describe_services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<Service>, AwsError> {
        self.gate
            .call(async {
                let result = self.inner.describe_services(cluster, names).await;
                if let Ok(services) = &result {
                    let at = self.log.elapsed();
                    let mut views = lock(&self.views);
                    for service in services {
                        views.insert(
                            service.name.clone(),
                            (at, service.current_service_deployment.clone()),
                        );
                    }
                }
                result
            })
            .await
    }

    async fn describe_task_definition(
        &self,
        task_definition: &str,
    ) -> Result<TaskDefinition, AwsError> {
        self.gate
            .call(self.inner.describe_task_definition(task_definition))
            .await
    }

    async fn list_task_definitions(
        &self,
        family: &str,
        limit: usize,
    ) -> Result<Vec<String>, AwsError> {
        self.gate
            .call(self.inner.list_task_definitions(family, limit))
            .await
    }

    async fn update_service(
        &self,
        request: &UpdateServiceRequest,
    ) -> Result<Option<String>, AwsError> {
        // Each simulated release has its own service, named after it.
        self.mutation_in(
            "ecs:UpdateService",
            request.service.clone(),
            request.task_definition.clone(),
            Context {
                view_of: Some(request.service.clone()),
                ..Context::default()
            },
            self.inner.update_service(request),
        )
        .await
    }

    async fn list_service_deployments(
        &self,
        cluster: &str,
        service: &str,
        since: Option<jiff::Timestamp>,
    ) -> Result<Vec<String>, AwsError> {
        self.gate
            .call(self.inner.list_service_deployments(cluster, service, since))
            .await
    }

    async fn describe_service_deployments(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceDeployment>, AwsError> {
        self.gate
            .call(self.inner.describe_service_deployments(arns))
            .await
    }

    async fn describe_service_revisions(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceRevision>, AwsError> {
        self.gate
            .call(self.inner.describe_service_revisions(arns))
            .await
    }

    async fn continue_service_deployment(
        &self,
        deployment_arn: &str,
        hook_id: &str,
        action: HookAction,
    ) -> Result<(), AwsError> {
        self.mutation_in(
            "ecs:ContinueServiceDeployment",
            release_of_service_deployment(deployment_arn),
            format!("{deployment_arn} {hook_id} {action:?}"),
            Context {
                answer_to: Some((deployment_arn.to_string(), hook_id.to_string())),
                ..Context::default()
            },
            self.inner
                .continue_service_deployment(deployment_arn, hook_id, action),
        )
        .await
    }

    async fn stop_service_deployment(&self, deployment_arn: &str) -> Result<(), AwsError> {
        self.mutation(
            "ecs:StopServiceDeployment",
            release_of_service_deployment(deployment_arn),
            deployment_arn.to_string(),
            self.inner.stop_service_deployment(deployment_arn),
        )
        .await
    }

    async fn create_task_set(&self, request: &CreateTaskSetRequest) -> Result<TaskSet, AwsError> {
        // Each simulated release has a service of its name.
        self.mutation_in(
            "ecs:CreateTaskSet",
            request.service.clone(),
            format!(
                "{} on {} at {}% (token {})",
                request.task_definition,
                request.load_balancer.target_group_arn,
                request.scale_percent,
                request.client_token
            ),
            traffic(&request.cluster, &request.service),
            self.inner.create_task_set(request),
        )
        .await
    }

    async fn update_task_set_scale(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
        scale_percent: f64,
    ) -> Result<TaskSet, AwsError> {
        self.mutation_in(
            "ecs:UpdateTaskSet",
            service.to_string(),
            format!("{task_set_arn} to {scale_percent}%"),
            traffic(cluster, service),
            self.inner
                .update_task_set_scale(cluster, service, task_set_arn, scale_percent),
        )
        .await
    }

    async fn update_service_primary_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
    ) -> Result<TaskSet, AwsError> {
        self.mutation_in(
            "ecs:UpdateServicePrimaryTaskSet",
            service.to_string(),
            task_set_arn.to_string(),
            traffic(cluster, service),
            self.inner
                .update_service_primary_task_set(cluster, service, task_set_arn),
        )
        .await
    }

    async fn delete_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
        force: bool,
    ) -> Result<(), AwsError> {
        self.mutation_in(
            "ecs:DeleteTaskSet",
            service.to_string(),
            format!("{task_set_arn} (force: {force})"),
            traffic(cluster, service),
            self.inner
                .delete_task_set(cluster, service, task_set_arn, force),
        )
        .await
    }

    async fn register_task_definition(
        &self,
        base: &TaskDefinition,
        containers: &[ContainerDefinition],
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<TaskDefinition, AwsError> {
        self.mutation(
            "ecs:RegisterTaskDefinition",
            base.family.clone(),
            base.short_name(),
            self.inner.register_task_definition(base, containers, tags),
        )
        .await
    }

    async fn registration_input(
        &self,
        base: &TaskDefinition,
        containers: &[ContainerDefinition],
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<serde_json::Value, AwsError> {
        // A read, not a mutation: nothing is registered.
        self.gate
            .call(self.inner.registration_input(base, containers, tags))
            .await
    }
}

#[async_trait]
impl CodeDeploy for ReplicaAws {
    async fn get_deployment_group(
        &self,
        application: &str,
        group: &str,
    ) -> Result<DeploymentGroup, AwsError> {
        self.gate
            .call(self.inner.get_deployment_group(application, group))
            .await
    }

    async fn list_deployments(
        &self,
        application: &str,
        group: &str,
        filter: DeploymentFilter,
    ) -> Result<Vec<String>, AwsError> {
        self.gate
            .call(self.inner.list_deployments(application, group, filter))
            .await
    }

    async fn get_deployment(&self, deployment_id: &str) -> Result<Deployment, AwsError> {
        self.gate
            .call(self.inner.get_deployment(deployment_id))
            .await
    }

    async fn get_deployment_target(
        &self,
        deployment_id: &str,
        target_id: &str,
    ) -> Result<DeploymentTarget, AwsError> {
        self.gate
            .call(self.inner.get_deployment_target(deployment_id, target_id))
            .await
    }

    async fn create_deployment(
        &self,
        request: &CreateDeploymentRequest,
    ) -> Result<String, AwsError> {
        let release = parse_deployment_description(&request.description)
            .map(|(release, _)| release)
            .unwrap_or_else(|| request.application.clone());
        self.mutation(
            "codedeploy:CreateDeployment",
            release,
            request.description.clone(),
            self.inner.create_deployment(request),
        )
        .await
    }

    async fn continue_deployment(&self, deployment_id: &str) -> Result<(), AwsError> {
        self.mutation(
            "codedeploy:ContinueDeployment",
            self.release_of_deployment(deployment_id),
            deployment_id.to_string(),
            self.inner.continue_deployment(deployment_id),
        )
        .await
    }

    async fn stop_deployment(&self, deployment_id: &str, rollback: bool) -> Result<(), AwsError> {
        self.mutation(
            "codedeploy:StopDeployment",
            self.release_of_deployment(deployment_id),
            deployment_id.to_string(),
            self.inner.stop_deployment(deployment_id, rollback),
        )
        .await
    }
}

#[async_trait]
impl LoadBalancer for ReplicaAws {
    async fn describe_listener(&self, listener_arn: &str) -> Result<Listener, AwsError> {
        self.gate
            .call(self.inner.describe_listener(listener_arn))
            .await
    }

    async fn describe_target_groups(
        &self,
        references: &[String],
    ) -> Result<Vec<TargetGroup>, AwsError> {
        self.gate
            .call(self.inner.describe_target_groups(references))
            .await
    }

    async fn describe_routes(&self, load_balancer_arn: &str) -> Result<Vec<Route>, AwsError> {
        self.gate
            .call(self.inner.describe_routes(load_balancer_arn))
            .await
    }

    async fn describe_route(&self, arn: &str) -> Result<Route, AwsError> {
        self.gate.call(self.inner.describe_route(arn)).await
    }

    async fn describe_target_health(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<TargetHealth>, AwsError> {
        self.gate
            .call(self.inner.describe_target_health(target_group_arn))
            .await
    }

    async fn set_forward_weights(
        &self,
        route_arn: &str,
        weights: &[WeightedTargetGroup],
        expected: Option<&ExpectedShare>,
    ) -> Result<(), AwsError> {
        let detail = weights
            .iter()
            .map(|w| format!("{}={}", w.target_group_arn, w.weight))
            .collect::<Vec<_>>()
            .join(",");
        // The ELB operation the port makes (after reading the route).
        let operation = if route_arn.contains(":listener-rule/") {
            "elbv2:ModifyRule"
        } else {
            "elbv2:ModifyListener"
        };
        let (release, context) = match self.service_of_weights(weights) {
            Some((cluster, service)) => (
                service.clone(),
                Context {
                    traffic_of: Some((cluster, service)),
                    ..Context::default()
                },
            ),
            None => (format!("<unknown route {route_arn}>"), Context::default()),
        };
        self.mutation_in(
            operation,
            release,
            format!("{route_arn}: {detail}"),
            context,
            self.inner.set_forward_weights(route_arn, weights, expected),
        )
        .await
    }
}

#[async_trait]
impl Alarms for ReplicaAws {
    async fn alarm_states(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, AlarmState>, AwsError> {
        self.gate.call(self.inner.alarm_states(names)).await
    }
}

#[async_trait]
impl MetricData for ReplicaAws {
    async fn get_metric_data(
        &self,
        request: &MetricDataRequest,
    ) -> Result<Vec<MetricDatapoint>, AwsError> {
        self.gate.call(self.inner.get_metric_data(request)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::clock::Clock;
    use switchyard::ports::LoadBalancerBinding;
    use switchyard::sim::ExternalSetup;

    /// Task-set and route changes are mutations of the release whose service they change
    /// (the invariants check their fences); reads are not.
    #[tokio::test]
    async fn task_set_and_route_changes_are_logged_as_mutations_of_their_release() {
        let clock = Clock::fixed_epoch();
        let aws = SimAws::new(clock.clone());
        let store = SimStore::new(clock);
        let world = aws.add_external_service(ExternalSetup::new("prod", "web"));
        let (gate, log) = (Gate::new(), EventLog::new());
        let (crashed, _crashes) = mpsc::unbounded_channel();
        let (_, replica) = replica_ports(
            "r1",
            &store,
            &aws,
            &gate,
            &log,
            &crate::passes::PassLog::new(),
            &crashed,
        );
        let [a, b] = world.target_group_arns.clone();

        replica
            .describe_routes(&world.load_balancer_arn)
            .await
            .unwrap();
        replica
            .describe_route(&world.production_listener_arn)
            .await
            .unwrap();
        replica
            .describe_target_groups(std::slice::from_ref(&a))
            .await
            .unwrap();
        replica.describe_target_health(&a).await.unwrap();
        let weights = [
            WeightedTargetGroup {
                target_group_arn: a.clone(),
                weight: 100,
            },
            WeightedTargetGroup {
                target_group_arn: b.clone(),
                weight: 0,
            },
        ];
        replica
            .set_forward_weights(&world.production_listener_arn, &weights, None)
            .await
            .unwrap();
        let setup = ExternalSetup::new("prod", "web");
        let created = replica
            .create_task_set(&CreateTaskSetRequest {
                cluster: "prod".into(),
                service: "web".into(),
                task_definition: world.task_definition.arn.clone(),
                load_balancer: LoadBalancerBinding {
                    target_group_arn: b.clone(),
                    container_name: setup.container_name.clone(),
                    container_port: setup.container_port,
                },
                scale_percent: 100.0,
                client_token: "t1".into(),
                external_id: "web/1".into(),
                launch: setup.launch.clone(),
            })
            .await
            .unwrap();
        replica
            .update_task_set_scale("prod", "web", &created.arn, 0.0)
            .await
            .unwrap();
        replica
            .update_service_primary_task_set("prod", "web", &world.primary_task_set_arn)
            .await
            .unwrap();
        replica
            .delete_task_set("prod", "web", &created.arn, false)
            .await
            .unwrap();

        let issued: Vec<(&'static str, String)> = log
            .entries()
            .into_iter()
            .filter_map(|entry| match entry.event {
                Event::MutationIssued {
                    operation, release, ..
                } => Some((operation, release)),
                _ => None,
            })
            .collect();
        let web = || "web".to_string();
        assert_eq!(
            issued,
            vec![
                ("elbv2:ModifyListener", web()),
                ("ecs:CreateTaskSet", web()),
                ("ecs:UpdateTaskSet", web()),
                ("ecs:UpdateServicePrimaryTaskSet", web()),
                ("ecs:DeleteTaskSet", web()),
            ]
        );
    }
}

/// A replica's notification destinations: the shared simulated ones behind the replica's
/// gate (a crash abandons a send on its way, a pause holds its answer), each send logged
/// with what the replica heard and whether the destination received it.
#[derive(Clone)]
pub(super) struct ReplicaNotifications {
    pub replica: String,
    pub inner: SimNotifications,
    pub gate: Arc<Gate>,
    pub log: EventLog,
}

impl ReplicaNotifications {
    /// Makes one send through the gate and logs it.
    async fn send<T, E>(
        &self,
        destination: String,
        id: String,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let before = self.inner.received().len();
        let result = self.gate.call(call).await;
        let receipt = self
            .inner
            .received()
            .iter()
            .enumerate()
            .skip(before)
            .find(|(_, r)| {
                r.destination == destination
                    && crate::notification_checks::event_id_of(&r.body).as_deref() == Some(&id)
            })
            .map(|(index, _)| index);
        self.log.push(Event::NotificationSent {
            replica: self.replica.clone(),
            destination,
            id,
            heard: result.is_ok(),
            receipt,
        });
        result
    }
}

struct ReplicaSns {
    notifications: ReplicaNotifications,
    inner: Arc<dyn Sns>,
}

#[async_trait]
impl Sns for ReplicaSns {
    async fn publish(&self, topic_arn: &str, message: &Publication) -> Result<(), AwsError> {
        self.notifications
            .send(
                format!("sns:{topic_arn}"),
                message.id.clone(),
                self.inner.publish(topic_arn, message),
            )
            .await
    }
}

#[async_trait]
impl EventBridge for ReplicaNotifications {
    async fn put_event(&self, bus: &str, message: &Publication) -> Result<(), AwsError> {
        let inner = self.inner.event_bridge();
        self.send(
            format!("eventBridge:{bus}"),
            message.id.clone(),
            inner.put_event(bus, message),
        )
        .await
    }
}

#[async_trait]
impl Webhooks for ReplicaNotifications {
    async fn post(&self, url: &str, body: &str) -> Result<(), WebhookError> {
        let inner = self.inner.webhooks();
        let id = crate::notification_checks::event_id_of(body).unwrap_or_default();
        self.send(format!("webhook:{url}"), id, inner.post(url, body))
            .await
    }
}

impl NotificationProvider for ReplicaNotifications {
    fn sns(&self, region: &str) -> Arc<dyn Sns> {
        Arc::new(ReplicaSns {
            notifications: self.clone(),
            inner: self.inner.sns(region),
        })
    }

    fn event_bridge(&self) -> Arc<dyn EventBridge> {
        Arc::new(self.clone())
    }

    fn webhooks(&self) -> Arc<dyn Webhooks> {
        Arc::new(self.clone())
    }
}

/// A replica's HTTP probes: the simulated endpoints behind the replica's gate, each probe
/// logged with its answer.
pub(super) struct ReplicaProbe {
    pub replica: String,
    pub inner: SimAws,
    pub gate: Arc<Gate>,
    pub log: EventLog,
}

#[async_trait]
impl HttpProbe for ReplicaProbe {
    async fn probe(&self, url: &str, timeout: Duration) -> Result<u16, ProbeError> {
        let result = self.gate.call(self.inner.probe(url, timeout)).await;
        self.log.push(Event::ProbeSent {
            replica: self.replica.clone(),
            url: url.to_string(),
            status: result.as_ref().ok().copied(),
        });
        result
    }
}
