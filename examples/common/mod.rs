//! Shared by the benchmark binaries (`examples/scale.rs`, `deployment.rs`, `reaction.rs` and
//! `benches/decide.rs`): the counting allocator, CPU and memory readings, a recorder that
//! wraps the simulated AWS and store to count and timestamp every call the controller makes,
//! release documents, and the JSON report and table output.
//!
//! Every figure the benchmarks headline is a count or a ratio, or virtual (paused tokio) time;
//! CPU time comes from `getrusage`/`clock_gettime`, never from a wall clock, because these
//! machines are shared and noisy.

// Each binary uses a different part of this module.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use jiff::Timestamp;

use switchyard::clock::Clock;
use switchyard::model::parse::parse_documents;
use switchyard::model::{OperatorRequest, ReleaseStatus, RequestKind};
use switchyard::ports::{
    AlarmState, Alarms, AssumeRoleRequest, AwsError, AwsPorts, AwsProvider, CodeDeploy,
    ContainerDefinition, CreateDeploymentRequest, CreateTaskSetRequest, Deployment,
    DeploymentFilter, DeploymentGroup, DeploymentTarget, Ecs, ExpectedShare, HookAction, Listener,
    LoadBalancer, MetricData, MetricDataRequest, MetricDatapoint, ReleaseStore, RoleSession, Route,
    Service, ServiceDeployment, ServiceRevision, SpecPrecondition, SpecWrite, StoreError,
    StoredRelease, Sts, TargetGroup, TargetHealth, TaskDefinition, TaskSet, UpdateServiceRequest,
    WeightedTargetGroup,
};

// ----- allocations ----------------------------------------------------------------------

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting allocations, bytes allocated, live bytes and the peak of
/// live bytes. Each binary installs it with `#[global_allocator]`.
pub struct CountingAlloc;

fn on_alloc(size: usize) {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    ALLOCATED_BYTES.fetch_add(size as u64, Ordering::Relaxed);
    let live = LIVE_BYTES.fetch_add(size, Ordering::Relaxed) + size;
    PEAK_LIVE_BYTES.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// counters are side effects only.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            on_alloc(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            on_alloc(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // A reallocation counts as one allocation of the new size.
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            on_alloc(new_size);
        }
        new
    }
}

/// Allocation counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllocSnapshot {
    pub allocations: u64,
    pub allocated_bytes: u64,
    pub live_bytes: usize,
    pub peak_live_bytes: usize,
}

pub fn alloc_snapshot() -> AllocSnapshot {
    AllocSnapshot {
        allocations: ALLOCATIONS.load(Ordering::Relaxed),
        allocated_bytes: ALLOCATED_BYTES.load(Ordering::Relaxed),
        live_bytes: LIVE_BYTES.load(Ordering::Relaxed),
        peak_live_bytes: PEAK_LIVE_BYTES.load(Ordering::Relaxed),
    }
}

/// Restarts the peak of live heap bytes from the current live bytes.
pub fn reset_peak_heap() {
    PEAK_LIVE_BYTES.store(LIVE_BYTES.load(Ordering::Relaxed), Ordering::Relaxed);
}

// ----- CPU and memory -------------------------------------------------------------------

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
}

/// User plus system CPU time of the whole process so far (`getrusage(RUSAGE_SELF)`).
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to our struct.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// CPU time of the calling thread so far (`CLOCK_THREAD_CPUTIME_ID`, nanosecond resolution).
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to our struct.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A `kB` field of `/proc/self/status` (`VmHWM`: peak resident set; `VmRSS`: resident now).
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Resets `VmHWM` to the current resident set (Linux `clear_refs` value 5).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ----- the call recorder ----------------------------------------------------------------

/// One call the controller made, stamped with the virtual time it was made at.
#[derive(Debug, Clone)]
pub struct CallEvent {
    pub at: Timestamp,
    /// `service:Operation`, as the simulation names it (`codedeploy:CreateDeployment`).
    pub operation: &'static str,
}

#[derive(Default)]
struct RecorderState {
    counts: BTreeMap<&'static str, u64>,
    events: Vec<CallEvent>,
    /// CPU time spent inside the simulation's calls (not the controller's work).
    sim_cpu: Duration,
}

/// Counts, timestamps and times every call through [`RecordingAws`] and [`RecordingStore`].
/// Cheap to clone; clones share the counts.
#[derive(Clone)]
pub struct Recorder {
    state: Arc<Mutex<RecorderState>>,
    clock: Clock,
    keep_events: bool,
}

impl Recorder {
    /// `keep_events`: also keep a timestamped list of every call (for gate latencies).
    pub fn new(clock: Clock, keep_events: bool) -> Self {
        Self {
            state: Arc::default(),
            clock,
            keep_events,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecorderState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one call, counting it, stamping it with the virtual time it was made at, and
    /// adding the thread CPU time it took to [`Recorder::sim_cpu`]. Without injected latency
    /// the simulation never awaits inside a call, and the benchmarks run on a
    /// current-thread runtime, so that CPU time is the simulation's own cost (`scale` relies
    /// on it; `deployment` injects latency and does not use it).
    async fn call<T>(&self, operation: &'static str, call: impl Future<Output = T>) -> T {
        let at = self.clock.now();
        let started = thread_cpu();
        let result = call.await;
        let spent = thread_cpu().saturating_sub(started);
        let mut state = self.lock();
        *state.counts.entry(operation).or_default() += 1;
        state.sim_cpu += spent;
        if self.keep_events {
            state.events.push(CallEvent { at, operation });
        }
        result
    }

    /// Takes back CPU time that [`Recorder::call`] counted but the controller spent (its
    /// work on each page of a listing, done inside the call).
    fn not_simulation(&self, spent: Duration) {
        let mut state = self.lock();
        state.sim_cpu = state.sim_cpu.saturating_sub(spent);
    }

    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.lock().counts.clone()
    }

    pub fn count(&self, operation: &str) -> u64 {
        self.lock().counts.get(operation).copied().unwrap_or(0)
    }

    pub fn sim_cpu(&self) -> Duration {
        self.lock().sim_cpu
    }

    pub fn events(&self) -> Vec<CallEvent> {
        self.lock().events.clone()
    }
}

/// Calls per operation made between two snapshots of [`Recorder::counts`].
pub fn count_delta(
    after: &BTreeMap<&'static str, u64>,
    before: &BTreeMap<&'static str, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(op, n)| (op.to_string(), n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// An [`AwsProvider`] decorator: every port call goes through the [`Recorder`].
pub struct RecordingAws {
    pub inner: Arc<dyn AwsProvider>,
    pub recorder: Recorder,
}

impl AwsProvider for RecordingAws {
    fn home(&self) -> switchyard::model::Home {
        self.inner.home()
    }

    fn sts(&self) -> Arc<dyn Sts> {
        Arc::new(RecordingSts {
            sts: self.inner.sts(),
            recorder: self.recorder.clone(),
        })
    }

    fn ports_for(&self, region: &str, session: Option<&RoleSession>) -> AwsPorts {
        let ports = Arc::new(RecordingPorts {
            ports: self.inner.ports_for(region, session),
            recorder: self.recorder.clone(),
        });
        AwsPorts {
            ecs: ports.clone(),
            codedeploy: ports.clone(),
            load_balancer: ports.clone(),
            alarms: ports.clone(),
            metric_data: ports,
        }
    }
}

struct RecordingPorts {
    ports: AwsPorts,
    recorder: Recorder,
}

struct RecordingSts {
    sts: Arc<dyn Sts>,
    recorder: Recorder,
}

#[async_trait]
impl Sts for RecordingSts {
    async fn assume_role(&self, request: &AssumeRoleRequest) -> Result<RoleSession, AwsError> {
        let call = self.sts.assume_role(request);
        self.recorder.call("sts:AssumeRole", call).await
    }
}

#[async_trait]
impl Ecs for RecordingPorts {
    async fn describe_services(
        &self,
        cluster: &str,
        names: &[String],
    ) -> Result<Vec<Service>, AwsError> {
        let call = self.ports.ecs.describe_services(cluster, names);
        self.recorder.call("ecs:DescribeServices", call).await
    }

    async fn describe_task_definition(
        &self,
        task_definition: &str,
    ) -> Result<TaskDefinition, AwsError> {
        let call = self.ports.ecs.describe_task_definition(task_definition);
        self.recorder.call("ecs:DescribeTaskDefinition", call).await
    }

    async fn list_task_definitions(
        &self,
        family: &str,
        limit: usize,
    ) -> Result<Vec<String>, AwsError> {
        let call = self.ports.ecs.list_task_definitions(family, limit);
        self.recorder.call("ecs:ListTaskDefinitions", call).await
    }

    async fn update_service(
        &self,
        request: &UpdateServiceRequest,
    ) -> Result<Option<String>, AwsError> {
        let call = self.ports.ecs.update_service(request);
        self.recorder.call("ecs:UpdateService", call).await
    }

    async fn list_service_deployments(
        &self,
        cluster: &str,
        service: &str,
        since: Option<jiff::Timestamp>,
    ) -> Result<Vec<String>, AwsError> {
        let call = self
            .ports
            .ecs
            .list_service_deployments(cluster, service, since);
        self.recorder.call("ecs:ListServiceDeployments", call).await
    }

    async fn describe_service_deployments(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceDeployment>, AwsError> {
        let call = self.ports.ecs.describe_service_deployments(arns);
        self.recorder
            .call("ecs:DescribeServiceDeployments", call)
            .await
    }

    async fn describe_service_revisions(
        &self,
        arns: &[String],
    ) -> Result<Vec<ServiceRevision>, AwsError> {
        let call = self.ports.ecs.describe_service_revisions(arns);
        self.recorder
            .call("ecs:DescribeServiceRevisions", call)
            .await
    }

    async fn continue_service_deployment(
        &self,
        deployment_arn: &str,
        hook_id: &str,
        action: HookAction,
    ) -> Result<(), AwsError> {
        let call = self
            .ports
            .ecs
            .continue_service_deployment(deployment_arn, hook_id, action);
        self.recorder
            .call("ecs:ContinueServiceDeployment", call)
            .await
    }

    async fn stop_service_deployment(&self, deployment_arn: &str) -> Result<(), AwsError> {
        let call = self.ports.ecs.stop_service_deployment(deployment_arn);
        self.recorder.call("ecs:StopServiceDeployment", call).await
    }

    async fn create_task_set(&self, request: &CreateTaskSetRequest) -> Result<TaskSet, AwsError> {
        let call = self.ports.ecs.create_task_set(request);
        self.recorder.call("ecs:CreateTaskSet", call).await
    }

    async fn update_task_set_scale(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
        scale_percent: f64,
    ) -> Result<TaskSet, AwsError> {
        let call =
            self.ports
                .ecs
                .update_task_set_scale(cluster, service, task_set_arn, scale_percent);
        self.recorder.call("ecs:UpdateTaskSet", call).await
    }

    async fn update_service_primary_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
    ) -> Result<TaskSet, AwsError> {
        let call = self
            .ports
            .ecs
            .update_service_primary_task_set(cluster, service, task_set_arn);
        self.recorder
            .call("ecs:UpdateServicePrimaryTaskSet", call)
            .await
    }

    async fn delete_task_set(
        &self,
        cluster: &str,
        service: &str,
        task_set_arn: &str,
        force: bool,
    ) -> Result<(), AwsError> {
        let call = self
            .ports
            .ecs
            .delete_task_set(cluster, service, task_set_arn, force);
        self.recorder.call("ecs:DeleteTaskSet", call).await
    }

    async fn register_task_definition(
        &self,
        base: &TaskDefinition,
        containers: &[ContainerDefinition],
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<TaskDefinition, AwsError> {
        let call = self
            .ports
            .ecs
            .register_task_definition(base, containers, tags);
        self.recorder.call("ecs:RegisterTaskDefinition", call).await
    }

    async fn registration_input(
        &self,
        base: &TaskDefinition,
        containers: &[ContainerDefinition],
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<serde_json::Value, AwsError> {
        // Nothing is registered: the one AWS call it makes reads the base.
        let call = self.ports.ecs.registration_input(base, containers, tags);
        self.recorder.call("ecs:DescribeTaskDefinition", call).await
    }
}

#[async_trait]
impl CodeDeploy for RecordingPorts {
    async fn get_deployment_group(
        &self,
        application: &str,
        group: &str,
    ) -> Result<DeploymentGroup, AwsError> {
        let call = self
            .ports
            .codedeploy
            .get_deployment_group(application, group);
        self.recorder
            .call("codedeploy:GetDeploymentGroup", call)
            .await
    }

    async fn list_deployments(
        &self,
        application: &str,
        group: &str,
        filter: DeploymentFilter,
    ) -> Result<Vec<String>, AwsError> {
        let call = self
            .ports
            .codedeploy
            .list_deployments(application, group, filter);
        self.recorder.call("codedeploy:ListDeployments", call).await
    }

    async fn get_deployment(&self, deployment_id: &str) -> Result<Deployment, AwsError> {
        let call = self.ports.codedeploy.get_deployment(deployment_id);
        self.recorder.call("codedeploy:GetDeployment", call).await
    }

    async fn get_deployment_target(
        &self,
        deployment_id: &str,
        target_id: &str,
    ) -> Result<DeploymentTarget, AwsError> {
        let call = self
            .ports
            .codedeploy
            .get_deployment_target(deployment_id, target_id);
        self.recorder
            .call("codedeploy:GetDeploymentTarget", call)
            .await
    }

    async fn create_deployment(
        &self,
        request: &CreateDeploymentRequest,
    ) -> Result<String, AwsError> {
        let call = self.ports.codedeploy.create_deployment(request);
        self.recorder
            .call("codedeploy:CreateDeployment", call)
            .await
    }

    async fn continue_deployment(&self, deployment_id: &str) -> Result<(), AwsError> {
        let call = self.ports.codedeploy.continue_deployment(deployment_id);
        self.recorder
            .call("codedeploy:ContinueDeployment", call)
            .await
    }

    async fn stop_deployment(&self, deployment_id: &str, rollback: bool) -> Result<(), AwsError> {
        let call = self
            .ports
            .codedeploy
            .stop_deployment(deployment_id, rollback);
        self.recorder.call("codedeploy:StopDeployment", call).await
    }
}

#[async_trait]
impl LoadBalancer for RecordingPorts {
    async fn describe_listener(&self, listener_arn: &str) -> Result<Listener, AwsError> {
        let call = self.ports.load_balancer.describe_listener(listener_arn);
        self.recorder
            .call("elasticloadbalancing:DescribeListeners", call)
            .await
    }

    async fn describe_target_groups(
        &self,
        references: &[String],
    ) -> Result<Vec<TargetGroup>, AwsError> {
        let call = self.ports.load_balancer.describe_target_groups(references);
        self.recorder
            .call("elasticloadbalancing:DescribeTargetGroups", call)
            .await
    }

    /// One port call: DescribeListeners and DescribeRules per listener (the simulation's
    /// own call counts have each).
    async fn describe_routes(&self, load_balancer_arn: &str) -> Result<Vec<Route>, AwsError> {
        let call = self.ports.load_balancer.describe_routes(load_balancer_arn);
        self.recorder
            .call("elasticloadbalancing:DescribeRoutes", call)
            .await
    }

    async fn describe_route(&self, arn: &str) -> Result<Route, AwsError> {
        let call = self.ports.load_balancer.describe_route(arn);
        self.recorder
            .call("elasticloadbalancing:DescribeRoute", call)
            .await
    }

    async fn describe_target_health(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<TargetHealth>, AwsError> {
        let call = self
            .ports
            .load_balancer
            .describe_target_health(target_group_arn);
        self.recorder
            .call("elasticloadbalancing:DescribeTargetHealth", call)
            .await
    }

    async fn set_forward_weights(
        &self,
        route_arn: &str,
        weights: &[WeightedTargetGroup],
        expected: Option<&ExpectedShare>,
    ) -> Result<(), AwsError> {
        let call = self
            .ports
            .load_balancer
            .set_forward_weights(route_arn, weights, expected);
        self.recorder
            .call("elasticloadbalancing:SetForwardWeights", call)
            .await
    }
}

#[async_trait]
impl Alarms for RecordingPorts {
    async fn alarm_states(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, AlarmState>, AwsError> {
        let call = self.ports.alarms.alarm_states(names);
        self.recorder.call("cloudwatch:DescribeAlarms", call).await
    }
}

#[async_trait]
impl MetricData for RecordingPorts {
    async fn get_metric_data(
        &self,
        request: &MetricDataRequest,
    ) -> Result<Vec<MetricDatapoint>, AwsError> {
        let call = self.ports.metric_data.get_metric_data(request);
        self.recorder.call("cloudwatch:GetMetricData", call).await
    }
}

/// A [`ReleaseStore`] decorator: every store call goes through the [`Recorder`], named as
/// the DynamoDB operation the real store makes (`list` is one `dynamodb:Scan` here; the real
/// store makes one per 1 MB page, which the scale benchmark accounts for).
pub struct RecordingStore {
    pub inner: Arc<dyn ReleaseStore>,
    pub recorder: Recorder,
}

#[async_trait]
impl ReleaseStore for RecordingStore {
    async fn list(&self) -> Result<Vec<StoredRelease>, StoreError> {
        self.recorder.call("dynamodb:Scan", self.inner.list()).await
    }

    async fn list_pages(
        &self,
        page: &mut (dyn FnMut(Vec<StoredRelease>) + Send),
    ) -> Result<(), StoreError> {
        // The controller's work on each page is done inside the call: measured apart, so that
        // it counts as the controller's, not the simulation's.
        let mut controller_cpu = Duration::ZERO;
        let mut measured = |releases: Vec<StoredRelease>| {
            let started = thread_cpu();
            page(releases);
            controller_cpu += thread_cpu().saturating_sub(started);
        };
        let result = self
            .recorder
            .call("dynamodb:Scan", self.inner.list_pages(&mut measured))
            .await;
        self.recorder.not_simulation(controller_cpu);
        result
    }

    async fn get(&self, name: &str) -> Result<Option<StoredRelease>, StoreError> {
        self.recorder
            .call("dynamodb:GetItem", self.inner.get(name))
            .await
    }

    async fn put_spec(&self, write: SpecWrite) -> Result<u64, StoreError> {
        self.recorder
            .call("dynamodb:UpdateItem", self.inner.put_spec(write))
            .await
    }

    async fn put_request(
        &self,
        name: &str,
        kind: RequestKind,
        request: OperatorRequest,
    ) -> Result<(), StoreError> {
        let call = self.inner.put_request(name, kind, request);
        self.recorder.call("dynamodb:UpdateItem", call).await
    }

    async fn write_status(
        &self,
        name: &str,
        status: &ReleaseStatus,
        expected_version: u64,
        fence: Option<&switchyard::lease::Fence>,
    ) -> Result<u64, StoreError> {
        let call = self
            .inner
            .write_status(name, status, expected_version, fence);
        self.recorder.call("dynamodb:UpdateItem", call).await
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.recorder
            .call("dynamodb:DeleteItem", self.inner.delete(name))
            .await
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

// ----- releases -------------------------------------------------------------------------

pub const REGISTRY: &str = "111122223333.dkr.ecr.us-east-1.amazonaws.com";

/// What a benchmark release looks like. The service, task definition family, container,
/// CodeDeploy application are all named `service`; the group is `<service>-prod` (the
/// simulation's `BlueGreenSetup::new` and `tests/fixtures/moto_world.py` name them so).
#[derive(Debug, Clone)]
pub struct ReleaseOptions {
    pub cluster: String,
    pub service: String,
    pub registry: String,
    pub image_tag: String,
    pub deployment_config: Option<String>,
    pub manual: bool,
    pub alarms: Vec<String>,
}

impl ReleaseOptions {
    pub fn new(cluster: &str, service: &str) -> Self {
        Self {
            cluster: cluster.to_string(),
            service: service.to_string(),
            registry: REGISTRY.to_string(),
            image_tag: "2.0.0".to_string(),
            deployment_config: None,
            manual: false,
            alarms: Vec::new(),
        }
    }

    /// The release document, in YAML.
    pub fn yaml(&self) -> String {
        let name = &self.service;
        let mut yaml = format!(
            "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: {name}\nspec:\n  service: {{cluster: {cluster}, name: {name}}}\n  taskDefinition:\n    from: {name}\n    containers:\n      {name}:\n        image: {registry}/{name}:{tag}\n  strategy:\n    codeDeploy:\n      application: {name}\n      deploymentGroup: {name}-prod\n",
            cluster = self.cluster,
            registry = self.registry,
            tag = self.image_tag
        );
        if let Some(config) = &self.deployment_config {
            yaml.push_str(&format!("      deploymentConfig: {config}\n"));
        }
        if self.manual {
            yaml.push_str("      promotion: manual\n");
        }
        if !self.alarms.is_empty() {
            yaml.push_str(&format!(
                "  rollback:\n    alarms: [{}]\n",
                self.alarms.join(", ")
            ));
        }
        yaml
    }

    /// The validated spec as the store holds it.
    pub fn spec(&self) -> serde_json::Value {
        let documents = parse_documents(&self.yaml()).expect("benchmark documents are valid");
        serde_json::to_value(&documents[0].spec).expect("a spec serializes")
    }

    /// The spec write `apply` would make.
    pub fn write(&self, written_at: Timestamp) -> SpecWrite {
        SpecWrite {
            name: self.service.clone(),
            labels: BTreeMap::new(),
            spec: self.spec(),
            precondition: SpecPrecondition::Any,
            written_by: "bench".to_string(),
            written_at,
            action: switchyard::model::AuditAction::Apply,
            detail: String::new(),
        }
    }
}

// ----- output ---------------------------------------------------------------------------

/// Where reports go unless `--out` says otherwise: `target/bench/` of this repository.
pub fn bench_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("bench")
}

/// Writes `report` (pretty JSON) to `out` or `target/bench/<name>.json`; returns the path.
pub fn write_report(name: &str, report: &serde_json::Value, out: Option<&Path>) -> PathBuf {
    let path = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| bench_dir().join(format!("{name}.json")));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("the report directory can be created");
    }
    let text = serde_json::to_string_pretty(report).expect("a report serializes");
    std::fs::write(&path, text + "\n").expect("the report can be written");
    path
}

/// What the numbers were measured on and with: the commit, the build, the machine.
pub fn environment() -> serde_json::Value {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|m| m.trim().to_string())
    });
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
    serde_json::json!({
        "commit": git(&["rev-parse", "--short", "HEAD"]),
        "uncommitted_changes": dirty,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu": cpu,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
        // Metadata only: every measured duration is virtual time or CPU time.
        "measured_at": Timestamp::now().to_string(),
    })
}

/// Prints an aligned text table: the first column left-aligned, the others right-aligned.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            if i == 0 {
                out.push_str(&format!("{cell:<width$}"));
            } else {
                out.push_str(&format!("  {cell:>width$}"));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for row in rows {
        line(row);
    }
}

/// The virtual time from `from` to `to` (zero if `to` is earlier).
pub fn between(from: Timestamp, to: Timestamp) -> Duration {
    switchyard::clock::elapsed_between(from, to)
}

/// The `p`-th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A paused-time, current-thread tokio runtime: virtual time advances only when every task
/// is idle, so a pass costs no virtual time and runs repeat exactly.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime")
}
