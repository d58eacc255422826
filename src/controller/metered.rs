//! Decorators that count every call of every port in the metrics (service, operation,
//! outcome), so adapters stay free of metrics and every implementation is measured alike.
//! A port call is counted once, under its AWS operation; the few that make several AWS calls
//! are counted under a name of their own: `DescribeRoutes` (DescribeListeners and
//! DescribeRules per listener), `DescribeRoute` (DescribeListeners or DescribeRules) and
//! `SetForwardWeights` (a read, then ModifyListener or ModifyRule). Every call about a
//! release first takes a token of the fleet's API budget for its place and service
//! (`budget.rs`); the requests it sent beyond the first (a port call that makes several, the
//! SDK's retries: `crate::retry::counting_attempts`) are charged after it, and a throttle
//! the SDK retried away lowers the budget's rate as a final one does.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::model::Place;
use crate::model::{Home, OperatorRequest, ReleaseStatus, RequestKind};
use crate::ports::{
    AlarmState, Alarms, AssumeRoleRequest, AwsError, AwsPorts, AwsProvider, CodeDeploy,
    ContainerDefinition, CreateDeploymentRequest, CreateTaskSetRequest, Deployment,
    DeploymentFilter, DeploymentGroup, DeploymentTarget, Ecs, ExpectedShare, Fence, HookAction,
    HttpProbe, Listener, LoadBalancer, MetricData, MetricDataRequest, MetricDatapoint, ProbeError,
    ReleaseStore, RoleSession, Route, Service, ServiceDeployment, ServiceRevision, SpecWrite,
    StoreError, StoredRelease, Sts, TargetGroup, TargetHealth, TaskDefinition, TaskSet,
    UpdateServiceRequest, WeightedTargetGroup,
};
use crate::state::ControllerState;

use super::budget::ApiBudgets;

fn outcome<T>(result: &Result<T, AwsError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(error) => error.kind.as_str(),
    }
}

fn store_outcome<T>(result: &Result<T, StoreError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(StoreError::Unavailable {
            throttled: true, ..
        }) => "throttling",
        Err(StoreError::Unavailable { .. }) => "transient",
        Err(StoreError::ConditionFailed { .. }) => "conflict",
        Err(StoreError::NotFound { .. }) => "not_found",
        Err(StoreError::Corrupt { .. }) => "corrupt",
        Err(StoreError::Other { .. }) => "other",
    }
}

/// Counts one call's outcome, where it went, and passes its result through (`$metered` has a
/// `state` and a `place`).
macro_rules! metered {
    ($metered:expr, $service:literal, $operation:literal, $call:expr, $outcome:path) => {{
        let result = $call.await;
        $metered.state.metrics().record_call(
            $service,
            $operation,
            $outcome(&result),
            &$metered.place,
        );
        result
    }};
}

/// Counts one call like `metered!`, after taking a token of the fleet's API budget for its
/// place and service (at the priority of the work it is made for), and tells the budget
/// whether AWS throttled it.
macro_rules! budgeted {
    ($metered:expr, $service:literal, $operation:literal, $call:expr, $outcome:path) => {{
        $metered
            .budgets
            .acquire(&$metered.place, $service, super::budget::current_priority())
            .await;
        let (result, attempts) = if super::budget::may_call() {
            crate::retry::counting_attempts($call).await
        } else {
            let unsent = Err(AwsError::new(
                $service,
                $operation,
                crate::ports::AwsErrorKind::Transient,
                "not sent: the lease is no longer safe to act on after waiting for the API budget",
            ));
            (unsent, crate::retry::Attempts::default())
        };
        // The requests beyond the token taken: the SDK's retries, and the port calls that
        // make several (ELB's routes; a read, then a modify).
        $metered
            .budgets
            .charge(&$metered.place, $service, attempts.sent.saturating_sub(1));
        $metered.budgets.record(
            &$metered.place,
            $service,
            attempts.throttled > 0
                || matches!(&result, Err(e) if e.kind == crate::ports::AwsErrorKind::Throttling),
        );
        $metered.state.metrics().record_call(
            $service,
            $operation,
            $outcome(&result),
            &$metered.place,
        );
        result
    }};
}

/// Hands out metered ports for every region and account, their calls held to the fleet's
/// API budget.
pub struct MeteredProvider {
    pub inner: Arc<dyn AwsProvider>,
    pub state: ControllerState,
    /// The fleet's API budget, this replica's share (`budget.rs`).
    pub budgets: Arc<ApiBudgets>,
    /// The controller's own region and account, for the calls made there.
    pub home: Home,
}

impl AwsProvider for MeteredProvider {
    fn home(&self) -> Home {
        self.home.clone()
    }

    fn ports_for(&self, region: &str, session: Option<&RoleSession>) -> AwsPorts {
        let ports = self.inner.ports_for(region, session);
        let account = match session {
            Some(session) => crate::model::names::RoleArn::parse(&session.role_arn)
                .map(|role| role.account.to_string())
                .ok(),
            None => self.home.account.clone(),
        };
        let inner = Arc::new(MeteredPorts {
            ports,
            state: self.state.clone(),
            budgets: self.budgets.clone(),
            place: Place::new(account.as_deref(), region),
        });
        AwsPorts {
            ecs: inner.clone(),
            codedeploy: inner.clone(),
            load_balancer: inner.clone(),
            alarms: inner.clone(),
            metric_data: inner,
        }
    }

    fn sts(&self) -> Arc<dyn Sts> {
        Arc::new(MeteredSts {
            inner: self.inner.sts(),
            state: self.state.clone(),
            place: self.home.place_of_home(),
        })
    }
}

struct MeteredPorts {
    ports: AwsPorts,
    state: ControllerState,
    budgets: Arc<ApiBudgets>,
    place: Place,
}

/// STS as the controller, metered.
struct MeteredSts {
    inner: Arc<dyn Sts>,
    state: ControllerState,
    place: Place,
}

#[async_trait]
impl Sts for MeteredSts {
    async fn assume_role(&self, request: &AssumeRoleRequest) -> Result<RoleSession, AwsError> {
        metered!(
            self,
            "sts",
            "AssumeRole",
            self.inner.assume_role(request),
            outcome
        )
    }
}

#[async_trait]
impl Ecs for MeteredPorts {
    async fn describe_services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<Service>, AwsError> {
        budgeted!(
            self,
            "ecs",
            "DescribeServices",
            self.ports.ecs.describe_services(cluster, names),
            outcome
        )
    }

    async fn describe_task_definition(
        &self,
        task_definition: &str,
    ) -> Result<TaskDefinition, AwsError> {
        budgeted!(
            self,
            "ecs",
            "DescribeTaskDefinition",
            self.ports.ecs.describe_task_definition(task_definition),
            outcome
        )
    }

    async fn list_task_definitions(
        &self,
        family: &str,
        limit: usize,
    ) -> Result<Vec<String>, AwsError> {
        budgeted!(
            self,
            "ecs",
            "ListTaskDefinitions",
            self.ports.ecs.list_task_definitions(family, limit),
            outcome
        )
    }

    async fn update_service(
        &self,
        request: &UpdateServiceRequest,
    ) -> Result<Option<String>, AwsError> {
        budgeted!(
            self,
            "ecs",
            "UpdateService",
            self.ports.ecs.update_service(request),
            outcome
        )
    }

    async fn list_service_deployments(
        &self,
        cluster: &str,
        service: &str,
        since: Option<jiff::Timestamp>,
    ) -> Result<Vec<String>, AwsError> {
        budgeted!(
            self,
            "ecs",
            "ListServiceDeployments",
            self.ports
                .ecs
                .list_service_deployments(cluster, service, since),
            outcome
        )
    }

    async fn describe_service_deployments(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceDeployment>, AwsError> {
        budgeted!(
            self,
            "ecs",
            "DescribeServiceDeployments",
            self.ports.ecs.describe_service_deployments(arns),
            outcome
        )
    }

    async fn describe_service_revisions(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceRevision>, AwsError> {
        budgeted!(
            self,
            "ecs",
            "DescribeServiceRevisions",
            self.ports.ecs.describe_service_revisions(arns),
            outcome
        )
    }

    async fn continue_service_deployment(
        &self,
        deployment_arn: &str,
        hook_id: &str,
        action: HookAction,
    ) -> Result<(), AwsError> {
        budgeted!(
            self,
            "ecs",
            "ContinueServiceDeployment",
            self.ports
                .ecs
                .continue_service_deployment(deployment_arn, hook_id, action),
            outcome
        )
    }

    async fn stop_service_deployment(&self, deployment_arn: &str) -> Result<(), AwsError> {
        budgeted!(
            self,
            "ecs",
            "StopServiceDeployment",
            self.ports.ecs.stop_service_deployment(deployment_arn),
            outcome
        )
    }

    async fn create_task_set(&self, request: &CreateTaskSetRequest) -> Result<TaskSet, AwsError> {
        budgeted!(
            self,
            "ecs",
            "CreateTaskSet",
            self.ports.ecs.create_task_set(request),
            outcome
        )
    }

    async fn update_task_set_scale(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
        scale_percent: f64,
    ) -> Result<TaskSet, AwsError> {
        budgeted!(
            self,
            "ecs",
            "UpdateTaskSet",
            self.ports
                .ecs
                .update_task_set_scale(cluster, service, task_set_arn, scale_percent),
            outcome
        )
    }

    async fn update_service_primary_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
    ) -> Result<TaskSet, AwsError> {
        budgeted!(
            self,
            "ecs",
            "UpdateServicePrimaryTaskSet",
            self.ports
                .ecs
                .update_service_primary_task_set(cluster, service, task_set_arn),
            outcome
        )
    }

    async fn delete_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
        force: bool,
    ) -> Result<(), AwsError> {
        budgeted!(
            self,
            "ecs",
            "DeleteTaskSet",
            self.ports
                .ecs
                .delete_task_set(cluster, service, task_set_arn, force),
            outcome
        )
    }

    async fn register_task_definition(
        &self,
        base: &TaskDefinition,
        containers: &[ContainerDefinition],
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<TaskDefinition, AwsError> {
        budgeted!(
            self,
            "ecs",
            "RegisterTaskDefinition",
            self.ports
                .ecs
                .register_task_definition(base, containers, tags),
            outcome
        )
    }

    async fn registration_input(
        &self,
        base: &TaskDefinition,
        containers: &[ContainerDefinition],
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<serde_json::Value, AwsError> {
        // Nothing is registered: the one AWS call it makes reads the base.
        budgeted!(
            self,
            "ecs",
            "DescribeTaskDefinition",
            self.ports.ecs.registration_input(base, containers, tags),
            outcome
        )
    }
}

#[async_trait]
impl CodeDeploy for MeteredPorts {
    async fn get_deployment_group(
        &self,
        application: &str,
        group: &str,
    ) -> Result<DeploymentGroup, AwsError> {
        budgeted!(
            self,
            "codedeploy",
            "GetDeploymentGroup",
            self.ports
                .codedeploy
                .get_deployment_group(application, group),
            outcome
        )
    }

    async fn list_deployments(
        &self,
        application: &str,
        group: &str,
        filter: DeploymentFilter,
    ) -> Result<Vec<String>, AwsError> {
        budgeted!(
            self,
            "codedeploy",
            "ListDeployments",
            self.ports
                .codedeploy
                .list_deployments(application, group, filter),
            outcome
        )
    }

    async fn get_deployment(&self, deployment_id: &str) -> Result<Deployment, AwsError> {
        budgeted!(
            self,
            "codedeploy",
            "GetDeployment",
            self.ports.codedeploy.get_deployment(deployment_id),
            outcome
        )
    }

    async fn get_deployment_target(
        &self,
        deployment_id: &str,
        target_id: &str,
    ) -> Result<DeploymentTarget, AwsError> {
        budgeted!(
            self,
            "codedeploy",
            "GetDeploymentTarget",
            self.ports
                .codedeploy
                .get_deployment_target(deployment_id, target_id),
            outcome
        )
    }

    async fn create_deployment(
        &self,
        request: &CreateDeploymentRequest,
    ) -> Result<String, AwsError> {
        let result = budgeted!(
            self,
            "codedeploy",
            "CreateDeployment",
            self.ports.codedeploy.create_deployment(request),
            outcome
        );
        if result.is_ok() {
            self.state.metrics().record_deployment("started");
        }
        result
    }

    async fn continue_deployment(&self, deployment_id: &str) -> Result<(), AwsError> {
        budgeted!(
            self,
            "codedeploy",
            "ContinueDeployment",
            self.ports.codedeploy.continue_deployment(deployment_id),
            outcome
        )
    }

    async fn stop_deployment(&self, deployment_id: &str, rollback: bool) -> Result<(), AwsError> {
        budgeted!(
            self,
            "codedeploy",
            "StopDeployment",
            self.ports
                .codedeploy
                .stop_deployment(deployment_id, rollback),
            outcome
        )
    }
}

#[async_trait]
impl LoadBalancer for MeteredPorts {
    async fn describe_listener(&self, listener_arn: &str) -> Result<Listener, AwsError> {
        budgeted!(
            self,
            "elasticloadbalancing",
            "DescribeListeners",
            self.ports.load_balancer.describe_listener(listener_arn),
            outcome
        )
    }

    async fn describe_target_groups(
        &self,
        references: &[String],
    ) -> Result<Vec<TargetGroup>, AwsError> {
        budgeted!(
            self,
            "elasticloadbalancing",
            "DescribeTargetGroups",
            self.ports.load_balancer.describe_target_groups(references),
            outcome
        )
    }

    async fn describe_routes(&self, load_balancer_arn: &str) -> Result<Vec<Route>, AwsError> {
        budgeted!(
            self,
            "elasticloadbalancing",
            "DescribeRoutes",
            self.ports.load_balancer.describe_routes(load_balancer_arn),
            outcome
        )
    }

    async fn describe_route(&self, arn: &str) -> Result<Route, AwsError> {
        budgeted!(
            self,
            "elasticloadbalancing",
            "DescribeRoute",
            self.ports.load_balancer.describe_route(arn),
            outcome
        )
    }

    async fn describe_target_health(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<TargetHealth>, AwsError> {
        budgeted!(
            self,
            "elasticloadbalancing",
            "DescribeTargetHealth",
            self.ports
                .load_balancer
                .describe_target_health(target_group_arn),
            outcome
        )
    }

    async fn set_forward_weights(
        &self,
        route_arn: &str,
        weights: &[WeightedTargetGroup],
        expected: Option<&ExpectedShare>,
    ) -> Result<(), AwsError> {
        budgeted!(
            self,
            "elasticloadbalancing",
            "SetForwardWeights",
            self.ports
                .load_balancer
                .set_forward_weights(route_arn, weights, expected),
            outcome
        )
    }
}

#[async_trait]
impl Alarms for MeteredPorts {
    async fn alarm_states(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, AlarmState>, AwsError> {
        budgeted!(
            self,
            "cloudwatch",
            "DescribeAlarms",
            self.ports.alarms.alarm_states(names),
            outcome
        )
    }
}

#[async_trait]
impl MetricData for MeteredPorts {
    async fn get_metric_data(
        &self,
        request: &MetricDataRequest,
    ) -> Result<Vec<MetricDatapoint>, AwsError> {
        budgeted!(
            self,
            "cloudwatch",
            "GetMetricData",
            self.ports.metric_data.get_metric_data(request),
            outcome
        )
    }
}

/// Counts every HTTP probe (service `http`, operation `Probe`) like an AWS call: `ok` with a
/// status, `timeout` or `failed` without one.
pub struct MeteredProbe {
    pub inner: Arc<dyn HttpProbe>,
    pub state: ControllerState,
    /// Probes go from the controller's network: labelled with its own account and region.
    pub place: crate::model::Place,
}

#[async_trait]
impl HttpProbe for MeteredProbe {
    async fn probe(&self, url: &str, timeout: std::time::Duration) -> Result<u16, ProbeError> {
        let result = self.inner.probe(url, timeout).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(ProbeError::Timeout(_)) => "timeout",
            Err(ProbeError::Failed(_)) => "failed",
        };
        self.state
            .metrics()
            .record_call("http", "Probe", outcome, &self.place);
        result
    }
}

/// Counts every store call, and tracks whether the store is reachable (for `/readyz`).
pub struct MeteredStore {
    pub inner: Arc<dyn ReleaseStore>,
    pub state: ControllerState,
    /// The table's region and account: the controller's own.
    pub place: Place,
}

impl MeteredStore {
    fn track<T>(&self, result: &Result<T, StoreError>) {
        let reachable = !matches!(
            result,
            Err(StoreError::Unavailable { .. } | StoreError::Other { .. })
        );
        self.state.set_store_reachable(reachable);
    }
}

#[async_trait]
impl ReleaseStore for MeteredStore {
    async fn list(&self) -> Result<Vec<StoredRelease>, StoreError> {
        let result = metered!(self, "dynamodb", "Scan", self.inner.list(), store_outcome);
        self.track(&result);
        result
    }

    async fn list_pages(
        &self,
        page: &mut (dyn FnMut(Vec<StoredRelease>) + Send),
    ) -> Result<(), StoreError> {
        let result = metered!(
            self,
            "dynamodb",
            "Scan",
            self.inner.list_pages(page),
            store_outcome
        );
        self.track(&result);
        result
    }

    async fn get(&self, name: &str) -> Result<Option<StoredRelease>, StoreError> {
        let result = metered!(
            self,
            "dynamodb",
            "GetItem",
            self.inner.get(name),
            store_outcome
        );
        self.track(&result);
        result
    }

    async fn put_spec(&self, write: SpecWrite) -> Result<u64, StoreError> {
        metered!(
            self,
            "dynamodb",
            "UpdateItem",
            self.inner.put_spec(write),
            store_outcome
        )
    }

    async fn put_request(
        &self,
        name: &str,
        kind: RequestKind,
        request: OperatorRequest,
    ) -> Result<(), StoreError> {
        metered!(
            self,
            "dynamodb",
            "UpdateItem",
            self.inner.put_request(name, kind, request),
            store_outcome
        )
    }

    async fn write_status(
        &self,
        name: &str,
        status: &ReleaseStatus,
        expected_version: u64,
        fence: Option<&Fence>,
    ) -> Result<u64, StoreError> {
        let operation = if fence.is_some() {
            "TransactWriteItems"
        } else {
            "UpdateItem"
        };
        let result = self
            .inner
            .write_status(name, status, expected_version, fence)
            .await;
        self.state.metrics().record_call(
            "dynamodb",
            operation,
            store_outcome(&result),
            &self.place,
        );
        self.track(&result);
        result
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        metered!(
            self,
            "dynamodb",
            "DeleteItem",
            self.inner.delete(name),
            store_outcome
        )
    }

    fn changes(&self) -> Option<BoxStream<'static, String>> {
        self.inner.changes()
    }

    fn replica_changes(
        &self,
        replica: std::sync::Arc<dyn crate::ports::HeldShards>,
    ) -> Option<BoxStream<'static, String>> {
        self.inner.replica_changes(replica)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::ports::LoadBalancerBinding;
    use crate::sim::{ExternalSetup, SimAws};

    /// Every task-set and route operation reaches the wrapped implementation (the simulation
    /// counts it) and is counted in the metrics under its operation, with its outcome.
    #[tokio::test(start_paused = true)]
    async fn metered_ports_forward_and_count_every_task_set_and_route_operation() {
        let aws = SimAws::new(Clock::fixed_epoch());
        let setup = ExternalSetup::new("prod", "web");
        let world = aws.add_external_service(setup.clone());
        let state = ControllerState::new();
        let ports = MeteredProvider {
            inner: Arc::new(aws.clone()),
            state: state.clone(),
            budgets: Arc::new(ApiBudgets::new(Default::default(), state.clone())),
            home: aws.home(),
        }
        .ports_for("us-east-1", None);
        let [a, b] = world.target_group_arns.clone();
        let production = world.production_listener_arn.clone();

        ports
            .load_balancer
            .describe_target_groups(&[a.clone(), b.clone()])
            .await
            .unwrap();
        ports
            .load_balancer
            .describe_routes(&world.load_balancer_arn)
            .await
            .unwrap();
        ports
            .load_balancer
            .describe_route(&production)
            .await
            .unwrap();
        ports
            .load_balancer
            .describe_target_health(&a)
            .await
            .unwrap();
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
        ports
            .load_balancer
            .set_forward_weights(&production, &weights, None)
            .await
            .unwrap();
        let created = ports
            .ecs
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
        ports
            .ecs
            .update_task_set_scale("prod", "web", &created.arn, 0.0)
            .await
            .unwrap();
        ports
            .ecs
            .update_service_primary_task_set("prod", "web", &world.primary_task_set_arn)
            .await
            .unwrap();
        let refused = ports
            .ecs
            .delete_task_set("prod", "web", &world.primary_task_set_arn, false)
            .await
            .unwrap_err();
        assert_eq!(refused.kind.as_str(), "conflict");

        let counts = aws.call_counts();
        for operation in [
            "ecs:CreateTaskSet",
            "ecs:UpdateTaskSet",
            "ecs:UpdateServicePrimaryTaskSet",
            "ecs:DeleteTaskSet",
            "elbv2:DescribeTargetGroups",
            "elbv2:DescribeListeners",
            "elbv2:DescribeRules",
            "elbv2:DescribeTargetHealth",
            "elbv2:ModifyListener",
        ] {
            assert!(
                counts.contains_key(operation),
                "{operation} not forwarded: {counts:?}"
            );
        }
        let metrics = state.metrics().encode();
        for (service, operation, outcome) in [
            ("ecs", "CreateTaskSet", "ok"),
            ("ecs", "UpdateTaskSet", "ok"),
            ("ecs", "UpdateServicePrimaryTaskSet", "ok"),
            ("ecs", "DeleteTaskSet", "conflict"),
            ("elasticloadbalancing", "DescribeTargetGroups", "ok"),
            ("elasticloadbalancing", "DescribeRoutes", "ok"),
            ("elasticloadbalancing", "DescribeRoute", "ok"),
            ("elasticloadbalancing", "DescribeTargetHealth", "ok"),
            ("elasticloadbalancing", "SetForwardWeights", "ok"),
        ] {
            let line = format!(
                "switchyard_aws_calls_total{{service=\"{service}\",operation=\"{operation}\",outcome=\"{outcome}\",region=\"us-east-1\",account=\"111122223333\"}} 1"
            );
            assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
        }
    }
}
