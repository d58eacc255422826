//! `strategy.taskSets` end to end against moto, as a user runs it: the `switchyard` binary as
//! a daemon, the CLI for `apply`, `abort` and `promote`, and an `EXTERNAL` service world made
//! by `tests/fixtures/moto_world.py --external` (a primary task set on target group A, a
//! production listener and one of its rules forwarding to A, a test listener). The daemon
//! reaches moto through the fault-injecting proxy, which counts and keeps every call it makes,
//! so the exact order of its writes (weights, task sets) can be read back.
//!
//! moto is not ECS (see ARCHITECTURE.md, "Testing against AWS without AWS"): it reports a
//! task set `STEADY_STATE` at once with no running count, and it never registers targets. So
//! every test runs a stand-in for ECS's part beside the daemon ([`EcsStandIn`]): once a task
//! set exists it registers two IP targets in the task set's target group, and once the task
//! set is gone it deregisters them, as ECS does for a task set's tasks. moto reports a
//! registered IP target `healthy`. The same loop samples, every 100 ms, the weights of the
//! production listener, its rule and the test listener, and the service's task sets.
//! moto also keeps a target group's load balancer in `LoadBalancerArns` once any listener
//! forwarded to it, so here group B counts as attached and the daemon does not need to name
//! it at weight 0 before `CreateTaskSet` (the simulated AWS, which detaches, covers that).
//!
//! The canary with an `analysis` step (issue 17) probes a local HTTP server the test answers
//! for ([`HealthEndpoint`]): failing, the rollout rolls back at the analysis, never past its
//! first weight; passing, it goes on after `count` measurements and ends `Healthy`.
//!
//! Every wait is on an observed condition with a deadline; nothing sleeps for a fixed time.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_elasticloadbalancingv2::types as elb;
use serde_json::Value;

use crate::daemon::{
    create_external_world, get, kill_daemon, start_daemon_via, stop_daemon, switchyard, wait_for,
};
use crate::fault_proxy::{Call, FaultProxy};
use crate::moto::Moto;

/// 10% → a 5 s bake → 50% → a 5 s bake, then all traffic.
const CANARY: &str = "        - setWeight: 10\n        - pause: {duration: 5s}\n        - setWeight: 50\n        - pause: {duration: 5s}\n";
const SCALE_DOWN_DELAY: Duration = Duration::from_secs(3);
const ABORT_SCALE_DOWN_DELAY: Duration = Duration::from_secs(3);
/// Enough for any rollout here (the bakes take 10 s; the daemon looks at a starting
/// candidate every 5 s), with room for a loaded machine.
const ROLLOUT_LIMIT: Duration = Duration::from_secs(120);

/// What the proxy saw the daemon write, in order: the mutating calls of the strategy.
const WRITES: [&str; 6] = [
    "CreateTaskSet",
    "ModifyListener",
    "ModifyRule",
    "UpdateServicePrimaryTaskSet",
    "UpdateTaskSet",
    "DeleteTaskSet",
];

/// The moto world of one `EXTERNAL` service `web`, the proxy in front of it, the table, and
/// a folder for the release document.
struct World {
    moto: Moto,
    proxy: FaultProxy,
    sdk: aws_config::SdkConfig,
    json: Value,
    dir: tempfile::TempDir,
}

impl World {
    async fn start() -> World {
        let moto = Moto::start();
        let json = create_external_world(&moto, &["web"])["web"].clone();
        let sdk = moto.sdk_config().await;
        let world = World {
            proxy: FaultProxy::start(&moto.endpoint).await,
            moto,
            sdk,
            json,
            dir: tempfile::tempdir().unwrap(),
        };
        // The test listener serves the live group at rest (the fixture points it at B): the
        // rollout must move it to the candidate before any production traffic.
        world
            .forward_single(&world.test_listener(), &world.a())
            .await;
        world.run_ok(&["table", "create"]);
        world
    }

    fn str(&self, key: &str) -> String {
        self.json[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} in {}", self.json))
            .to_string()
    }

    fn a(&self) -> String {
        self.json["targetGroupArns"][0].as_str().unwrap().into()
    }

    fn b(&self) -> String {
        self.json["targetGroupArns"][1].as_str().unwrap().into()
    }

    fn production_listener(&self) -> String {
        self.str("productionListenerArn")
    }

    fn rule(&self) -> String {
        self.str("ruleArn")
    }

    fn test_listener(&self) -> String {
        self.str("testListenerArn")
    }

    fn elb(&self) -> aws_sdk_elasticloadbalancingv2::Client {
        aws_sdk_elasticloadbalancingv2::Client::new(&self.sdk)
    }

    async fn forward_single(&self, listener: &str, group: &str) {
        self.elb()
            .modify_listener()
            .listener_arn(listener)
            .default_actions(
                elb::Action::builder()
                    .r#type(elb::ActionTypeEnum::Forward)
                    .target_group_arn(group)
                    .build(),
            )
            .send()
            .await
            .expect("the test listener is pointed at A");
    }

    fn run_ok(&self, args: &[&str]) -> Instant {
        let output = switchyard(&self.moto, args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Instant::now()
    }

    /// Applies the release with these steps (YAML list items, indented for `steps:`).
    fn apply(&self, steps: &str) {
        let path = self.dir.path().join("web.yaml");
        std::fs::write(
            &path,
            format!(
                "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: web\nspec:\n  service: {{cluster: prod, name: web}}\n  taskDefinition:\n    from: web\n    containers:\n      web:\n        image: registry.example.com/web:2.0.0\n  strategy:\n    taskSets:\n      targetGroups: [web-tg-a, web-tg-b]\n      testListeners: [\"{}\"]\n      steps:\n{steps}      scaleDownDelay: {}s\n      abortScaleDownDelay: {}s\n",
                self.test_listener(),
                SCALE_DOWN_DELAY.as_secs(),
                ABORT_SCALE_DOWN_DELAY.as_secs(),
            ),
        )
        .unwrap();
        self.run_ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    /// The daemon's environment: through the proxy, with short leases so that a daemon
    /// killed with SIGKILL is followed quickly (its leases expire instead of being handed
    /// over).
    fn daemon_env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.proxy.env();
        env.push(("SWITCHYARD_LEASE_DURATION", "3s".into()));
        env.push(("SWITCHYARD_LEASE_RENEW_PERIOD", "1s".into()));
        env
    }

    fn wait_for_phase(&self, phase: &str) -> Value {
        wait_for(&self.moto, "web", ROLLOUT_LIMIT, |v| {
            v["status"]["phase"] == phase
        })
    }

    /// The writes the daemon made, in order.
    fn writes(&self) -> Vec<Write> {
        self.proxy
            .log_of(&WRITES)
            .iter()
            .map(|call| Write::read(call, &self.b()))
            .collect()
    }

    /// The candidate's percent on each route, as moto has it now.
    async fn percents_now(&self) -> Routes {
        self.routes()
            .read(&self.elb(), &self.b())
            .await
            .expect("the routes are read")
    }

    fn routes(&self) -> RouteArns {
        RouteArns {
            production: self.production_listener(),
            rule: self.rule(),
            test: self.test_listener(),
        }
    }
}

/// One mutating call of the daemon, as the proxy saw it.
#[derive(Debug, Clone)]
struct Write {
    operation: String,
    at: Instant,
    wall: jiff::Timestamp,
    /// The listener or rule it rewrote, or the task set it named.
    target: String,
    /// For a forward rewrite: the percent of the route's traffic on group B.
    percent_b: Option<u32>,
}

impl Write {
    fn read(call: &Call, b: &str) -> Write {
        let form = call.form();
        let json = call.json();
        let (target, percent_b) = match call.operation.as_str() {
            "ModifyListener" => (
                form.get("ListenerArn").cloned().unwrap_or_default(),
                Some(form_percent(&form, "DefaultActions", b)),
            ),
            "ModifyRule" => (
                form.get("RuleArn").cloned().unwrap_or_default(),
                Some(form_percent(&form, "Actions", b)),
            ),
            "UpdateServicePrimaryTaskSet" => {
                (json["primaryTaskSet"].as_str().unwrap_or("").into(), None)
            }
            "UpdateTaskSet" | "DeleteTaskSet" => {
                (json["taskSet"].as_str().unwrap_or("").into(), None)
            }
            _ => (String::new(), None),
        };
        Write {
            operation: call.operation.clone(),
            at: call.at,
            wall: call.wall,
            target,
            percent_b,
        }
    }
}

/// The percent of a query-protocol forward action's traffic on group `b` (`Actions` or
/// `DefaultActions`: `X.member.N.ForwardConfig.TargetGroups.member.M.{TargetGroupArn,Weight}`,
/// or a single `X.member.N.TargetGroupArn`).
fn form_percent(form: &std::collections::BTreeMap<String, String>, list: &str, b: &str) -> u32 {
    for n in 1.. {
        let action = format!("{list}.member.{n}");
        let Some(kind) = form.get(&format!("{action}.Type")) else {
            break;
        };
        if kind != "forward" {
            continue;
        }
        let mut weights = Vec::new();
        for m in 1.. {
            let tuple = format!("{action}.ForwardConfig.TargetGroups.member.{m}");
            let Some(arn) = form.get(&format!("{tuple}.TargetGroupArn")) else {
                break;
            };
            let weight: u32 = form
                .get(&format!("{tuple}.Weight"))
                .and_then(|w| w.parse().ok())
                .unwrap_or(1);
            weights.push((arn.clone(), weight));
        }
        if weights.is_empty()
            && let Some(arn) = form.get(&format!("{action}.TargetGroupArn"))
        {
            weights.push((arn.clone(), 1));
        }
        return percent_of(&weights, b);
    }
    panic!("no forward action in {form:?}")
}

fn percent_of(weights: &[(String, u32)], b: &str) -> u32 {
    let total: u32 = weights.iter().map(|(_, w)| w).sum();
    let on_b: u32 = weights
        .iter()
        .filter(|(arn, _)| arn == b)
        .map(|(_, w)| w)
        .sum();
    (on_b * 100).checked_div(total).unwrap_or(0)
}

/// The percent of an SDK forward action's traffic on group `b`.
fn action_percent(actions: &[elb::Action], b: &str) -> u32 {
    let forward = actions
        .iter()
        .find(|a| a.r#type() == Some(&elb::ActionTypeEnum::Forward))
        .expect("a forward action");
    let mut weights: Vec<(String, u32)> = forward
        .forward_config()
        .map(|f| {
            f.target_groups()
                .iter()
                .map(|t| {
                    (
                        t.target_group_arn().unwrap_or_default().to_string(),
                        t.weight().unwrap_or(1).max(0) as u32,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if weights.is_empty()
        && let Some(arn) = forward.target_group_arn()
    {
        weights.push((arn.to_string(), 1));
    }
    percent_of(&weights, b)
}

/// The candidate group's percent on each route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Routes {
    production: u32,
    rule: u32,
    test: u32,
}

/// What the stand-in saw at one moment.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    routes: Routes,
    /// The service's task sets: (ARN, target group).
    task_sets: Vec<(String, String)>,
}

/// ECS's part that moto does not play (registering a task set's targets, deregistering them
/// when it goes), and a sampler of the weights and task sets.
struct EcsStandIn {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EcsStandIn {
    fn start(world: &World) -> EcsStandIn {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let ecs = aws_sdk_ecs::Client::new(&world.sdk);
        let client = world.elb();
        let b = world.b();
        // The fixture registered the primary task set's targets in A itself.
        let mut registered: Registered = [(
            world.str("primaryTaskSetArn"),
            (
                world.a(),
                ["10.0.1.10", "10.0.2.10"]
                    .iter()
                    .map(|ip| target(ip))
                    .collect(),
            ),
        )]
        .into();
        let routes = world.routes();
        let (stop_flag, sink) = (stop.clone(), samples.clone());
        let task = tokio::spawn(async move {
            let mut next_ip = 1;
            while !stop_flag.load(Ordering::SeqCst) {
                let started = Instant::now();
                if let Some(sample) =
                    look(&ecs, &client, &routes, &b, &mut registered, &mut next_ip).await
                {
                    sink.lock().unwrap().push(sample);
                }
                tokio::time::sleep(Duration::from_millis(100).saturating_sub(started.elapsed()))
                    .await;
            }
        });
        EcsStandIn {
            stop,
            samples,
            task,
        }
    }

    fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// Waits until a sample taken from now on satisfies `done`; panics after `limit`.
    async fn wait_until(&self, limit: Duration, done: impl Fn(&Sample) -> bool) -> Sample {
        let from = Instant::now();
        let deadline = from + limit;
        loop {
            if let Some(sample) = self.samples().into_iter().find(|s| s.at >= from && done(s)) {
                return sample;
            }
            assert!(
                Instant::now() < deadline,
                "not seen within {limit:?}; last sample: {:?}",
                self.samples().last()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the candidate's task set (on group B) is the only one left: switched, and
    /// the old task set cleaned up.
    async fn wait_for_the_switch_cleaned_up(&self, world: &World) -> Sample {
        self.wait_until(ROLLOUT_LIMIT, |s| {
            s.task_sets.len() == 1 && s.task_sets[0].1 == world.b()
        })
        .await
    }

    async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the stand-in ends");
        self.samples.lock().unwrap().clone()
    }
}

fn target(ip: &str) -> elb::TargetDescription {
    elb::TargetDescription::builder().id(ip).port(8080).build()
}

/// The production listener, its rule and the test listener.
struct RouteArns {
    production: String,
    rule: String,
    test: String,
}

impl RouteArns {
    /// The candidate group's percent on each, as moto has it now.
    async fn read(
        &self,
        client: &aws_sdk_elasticloadbalancingv2::Client,
        b: &str,
    ) -> Option<Routes> {
        let listeners = client
            .describe_listeners()
            .listener_arns(&self.production)
            .listener_arns(&self.test)
            .send()
            .await
            .ok()?;
        let percent = |arn: &str| {
            listeners
                .listeners()
                .iter()
                .find(|l| l.listener_arn() == Some(arn))
                .map(|l| action_percent(l.default_actions(), b))
        };
        let rules = client
            .describe_rules()
            .rule_arns(&self.rule)
            .send()
            .await
            .ok()?;
        Some(Routes {
            production: percent(&self.production)?,
            test: percent(&self.test)?,
            rule: action_percent(rules.rules().first()?.actions(), b),
        })
    }
}

type Registered = std::collections::BTreeMap<String, (String, Vec<elb::TargetDescription>)>;

/// One look of the stand-in: registers and deregisters targets as ECS would, then samples.
async fn look(
    ecs: &aws_sdk_ecs::Client,
    client: &aws_sdk_elasticloadbalancingv2::Client,
    routes: &RouteArns,
    b: &str,
    registered: &mut Registered,
    next_ip: &mut u32,
) -> Option<Sample> {
    let services = ecs
        .describe_services()
        .cluster("prod")
        .services("web")
        .send()
        .await
        .ok()?;
    let task_sets: Vec<(String, String)> = services
        .services()
        .first()?
        .task_sets()
        .iter()
        .map(|t| {
            (
                t.task_set_arn().unwrap_or_default().to_string(),
                t.load_balancers()
                    .first()
                    .and_then(|l| l.target_group_arn())
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    for (arn, group) in &task_sets {
        if !registered.contains_key(arn) && !group.is_empty() {
            let targets: Vec<_> = (0..2)
                .map(|i| target(&format!("10.1.{}.{}", *next_ip, 10 + i)))
                .collect();
            *next_ip += 1;
            client
                .register_targets()
                .target_group_arn(group)
                .set_targets(Some(targets.clone()))
                .send()
                .await
                .ok()?;
            registered.insert(arn.clone(), (group.clone(), targets));
        }
    }
    let gone: Vec<String> = registered
        .keys()
        .filter(|arn| !task_sets.iter().any(|(t, _)| t == *arn))
        .cloned()
        .collect();
    for arn in gone {
        let (group, targets) = registered.remove(&arn).unwrap();
        client
            .deregister_targets()
            .target_group_arn(group)
            .set_targets(Some(targets))
            .send()
            .await
            .ok()?;
    }
    Some(Sample {
        at: Instant::now(),
        routes: routes.read(client, b).await?,
        task_sets,
    })
}

/// Each route's sequence of written percents for B never goes down.
fn assert_writes_never_go_down(writes: &[Write], routes: &[String]) {
    for route in routes {
        let percents: Vec<u32> = writes
            .iter()
            .filter(|w| &w.target == route)
            .filter_map(|w| w.percent_b)
            .collect();
        assert!(
            percents.windows(2).all(|p| p[1] >= p[0]),
            "{route}: written percents went down: {percents:?}"
        );
    }
}

/// The sampled candidate share of each production route never goes down.
fn assert_samples_never_go_down(samples: &[Sample]) {
    for (name, pick) in [
        (
            "production listener",
            (|r: &Routes| r.production) as fn(&Routes) -> u32,
        ),
        ("rule", |r: &Routes| r.rule),
    ] {
        let percents: Vec<u32> = samples.iter().map(|s| pick(&s.routes)).collect();
        assert!(
            percents.windows(2).all(|p| p[1] >= p[0]),
            "{name}: sampled percents went down: {percents:?}"
        );
    }
}

/// The candidate task set: the one on group B whose ARN is not the primary's at the start.
fn candidate_task_sets(samples: &[Sample], world: &World) -> BTreeSet<String> {
    samples
        .iter()
        .flat_map(|s| &s.task_sets)
        .filter(|(arn, _)| *arn != world.str("primaryTaskSetArn"))
        .map(|(arn, _)| arn.clone())
        .collect()
}

/// The service's task sets in moto now: (ARN, status, target group, task definition).
/// After a rollback: never a moment (as sampled) without the candidate task set while it had
/// traffic, every route back on the live group, and only the original primary task set left,
/// from the one CreateTaskSet and no switch.
async fn assert_back_on_the_primary_alone(
    world: &World,
    samples: &[Sample],
    candidate: &str,
    log: &str,
) {
    for sample in samples {
        let has_candidate = sample.task_sets.iter().any(|(arn, _)| *arn == candidate);
        assert!(
            has_candidate || (sample.routes.production == 0 && sample.routes.rule == 0),
            "{sample:?}"
        );
    }
    assert_eq!(
        world.percents_now().await,
        Routes {
            production: 0,
            rule: 0,
            test: 0
        }
    );
    let task_sets = task_sets_now(world).await;
    assert_eq!(task_sets.len(), 1, "{task_sets:?}\n{log}");
    assert_eq!(task_sets[0].0, world.str("primaryTaskSetArn"));
    assert_eq!(task_sets[0].1, "PRIMARY");
    assert_eq!(world.proxy.calls("CreateTaskSet"), 1);
    assert_eq!(world.proxy.calls("UpdateServicePrimaryTaskSet"), 0);
}

async fn task_sets_now(world: &World) -> Vec<(String, String, String, String)> {
    let services = aws_sdk_ecs::Client::new(&world.sdk)
        .describe_services()
        .cluster("prod")
        .services("web")
        .send()
        .await
        .unwrap();
    services.services()[0]
        .task_sets()
        .iter()
        .map(|t| {
            (
                t.task_set_arn().unwrap_or_default().to_string(),
                t.status().unwrap_or_default().to_string(),
                t.load_balancers()
                    .first()
                    .and_then(|l| l.target_group_arn())
                    .unwrap_or_default()
                    .to_string(),
                t.task_definition().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The first write matching `pick`, or a panic naming what was written.
fn first<'a>(writes: &'a [Write], what: &str, pick: impl Fn(&Write) -> bool) -> &'a Write {
    writes
        .iter()
        .find(|w| pick(w))
        .unwrap_or_else(|| panic!("no {what} among the writes: {writes:#?}"))
}

fn last<'a>(writes: &'a [Write], what: &str, pick: impl Fn(&Write) -> bool) -> &'a Write {
    writes
        .iter()
        .rev()
        .find(|w| pick(w))
        .unwrap_or_else(|| panic!("no {what} among the writes: {writes:#?}"))
}

/// Checks the end state of a rollout that succeeded: the candidate task set alone and
/// primary on B, with the new image; every route on B; one CreateTaskSet; the old task set
/// scaled down and deleted no sooner than `scaleDownDelay` after the switch.
async fn assert_switched_and_cleaned_up(world: &World, view: &Value, log: &str) {
    let status = &view["status"];
    assert_eq!(status["phase"], "Healthy", "{view:#}\n{log}");
    assert_eq!(status["history"][0]["outcome"], "Succeeded", "{view:#}");
    assert_eq!(world.proxy.calls("CreateTaskSet"), 1, "{log}");

    let task_sets = task_sets_now(world).await;
    assert_eq!(
        task_sets.len(),
        1,
        "only the candidate is left: {task_sets:?}"
    );
    let (candidate, task_set_status, group, task_definition) = &task_sets[0];
    assert_eq!(task_set_status, "PRIMARY");
    assert_eq!(group, &world.b());
    assert_eq!(status["deploymentId"], candidate.as_str(), "{view:#}");
    assert_eq!(
        &status["desiredTaskDefinition"].as_str().unwrap_or_default(),
        task_definition
    );
    let described = aws_sdk_ecs::Client::new(&world.sdk)
        .describe_task_definition()
        .task_definition(task_definition)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.task_definition().unwrap().container_definitions()[0].image(),
        Some("registry.example.com/web:2.0.0")
    );
    assert_eq!(
        world.percents_now().await,
        Routes {
            production: 100,
            rule: 100,
            test: 100
        },
        "all production traffic and the test listener on the candidate's group"
    );

    let writes = world.writes();
    let switch = first(&writes, "the switch", |w| {
        w.operation == "UpdateServicePrimaryTaskSet"
    });
    assert_eq!(&switch.target, candidate);
    for route in [world.production_listener(), world.rule()] {
        let full = first(&writes, "100% on a route", |w| {
            w.target == route && w.percent_b == Some(100)
        });
        assert!(full.at <= switch.at, "{route} at 100% before the switch");
    }
    let old = world.str("primaryTaskSetArn");
    let scaled = first(&writes, "the old task set scaled down", |w| {
        w.operation == "UpdateTaskSet" && w.target == old
    });
    let deleted = first(&writes, "the old task set deleted", |w| {
        w.operation == "DeleteTaskSet" && w.target == old
    });
    assert!(scaled.at <= deleted.at);
    assert!(
        scaled.at.duration_since(switch.at) >= SCALE_DOWN_DELAY,
        "kept for scaleDownDelay after the switch: {:?}",
        scaled.at.duration_since(switch.at)
    );
    assert_eq!(
        writes
            .iter()
            .filter(|w| w.operation == "DeleteTaskSet")
            .count(),
        1,
        "{writes:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_goes_10_then_50_then_switches_with_one_task_set_and_cleans_up_after_the_delay() {
    let world = World::start().await;
    world.apply(CANARY);
    let stand_in = EcsStandIn::start(&world);
    let daemon = start_daemon_via(world.daemon_env());

    let healthy = world.wait_for_phase("Healthy");
    stand_in.wait_for_the_switch_cleaned_up(&world).await;
    let log = stop_daemon(daemon, Duration::from_secs(15));
    let samples = stand_in.stop().await;
    let view = get(&world.moto, "web");
    assert_eq!(view["status"]["phase"], "Healthy", "{view:#}\n{log}");
    // Once Healthy the candidate is the live version, with all the traffic.
    assert_eq!(
        healthy["status"]["trafficWeights"]["live"], 100.0,
        "{healthy:#}"
    );
    assert_switched_and_cleaned_up(&world, &view, &log).await;

    // The steps, as the daemon wrote them: each production route 0 (the candidate group
    // named before CreateTaskSet), 10, 50, 100, never down.
    let writes = world.writes();
    let production = [world.production_listener(), world.rule()];
    assert_writes_never_go_down(&writes, &production);
    for route in &production {
        let percents: Vec<u32> = writes
            .iter()
            .filter(|w| &w.target == route)
            .filter_map(|w| w.percent_b)
            .collect();
        for step in [10, 50, 100] {
            assert!(percents.contains(&step), "{route}: {percents:?}");
        }
    }
    // The test listener points at the candidate before any production weight moves.
    let test = first(&writes, "the test listener on B", |w| {
        w.target == world.test_listener() && w.percent_b == Some(100)
    });
    let moved = first(&writes, "a production weight above 0", |w| {
        production.contains(&w.target) && w.percent_b.is_some_and(|p| p > 0)
    });
    assert!(test.at < moved.at, "{writes:#?}");
    let created = first(&writes, "CreateTaskSet", |w| w.operation == "CreateTaskSet");
    assert!(created.at < test.at);
    // Each bake is kept: 10% for at least 5 s before 50%, 50% at least 5 s before 100%.
    for (from, to) in [(10, 50), (50, 100)] {
        let reached = last(&writes, "a step", |w| {
            production.contains(&w.target) && w.percent_b == Some(from)
        });
        let next = first(&writes, "the next step", |w| {
            production.contains(&w.target) && w.percent_b == Some(to)
        });
        assert!(
            next.at.duration_since(reached.at) >= Duration::from_secs(5),
            "{from}% → {to}% after {:?}",
            next.at.duration_since(reached.at)
        );
    }
    // How late each due step is, on the wall clock over moto (BENCHMARKS.md): from the end of
    // the pause (its start, when the weight was read back, as the status's weight history
    // has it, plus 5 s) to the next step's first write. Never early.
    let points = healthy["status"]["strategy"]["taskSets"]["weights"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut late = Vec::new();
    for (from, to) in [(10, 50), (50, 100)] {
        let started: jiff::Timestamp = points
            .iter()
            .find(|p| p["candidate"] == from)
            .and_then(|p| p["at"].as_str())
            .and_then(|at| at.parse().ok())
            .unwrap_or_else(|| panic!("no {from}% in the weight history: {healthy:#}"));
        let ends = started + jiff::SignedDuration::from_secs(5);
        let next = first(&writes, "the next step", |w| {
            production.contains(&w.target) && w.percent_b == Some(to)
        });
        assert!(
            next.wall >= ends,
            "{from}% → {to}% at {}, before the pause's end {ends}",
            next.wall
        );
        late.push(next.wall.duration_since(ends).as_secs_f64());
    }
    eprintln!(
        "bench: {}",
        serde_json::json!({"benchmark": "task_sets_moto", "due_step_late_s": late})
    );

    // As the stand-in saw it: weights never down, the test listener on B whenever
    // production traffic was on B, never more than one candidate task set.
    assert_samples_never_go_down(&samples);
    assert!(
        samples
            .iter()
            .filter(|s| s.routes.production > 0 || s.routes.rule > 0)
            .all(|s| s.routes.test == 100),
        "{samples:?}"
    );
    assert!(samples.iter().any(|s| s.routes.production == 10));
    assert!(samples.iter().any(|s| s.routes.production == 50));
    assert_eq!(
        candidate_task_sets(&samples, &world).len(),
        1,
        "{samples:?}"
    );
    assert!(samples.iter().all(|s| s.task_sets.len() <= 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abort_at_20_percent_restores_all_traffic_before_the_candidate_task_set_is_deleted() {
    let world = World::start().await;
    world.apply("        - setWeight: 20\n        - pause: {}\n");
    let stand_in = EcsStandIn::start(&world);
    let daemon = start_daemon_via(world.daemon_env());
    let waiting = world.wait_for_phase("AwaitingPromotion");
    assert_eq!(
        waiting["status"]["trafficWeights"]["candidate"], 20.0,
        "{waiting:#}"
    );
    let candidate = waiting["status"]["deploymentId"]
        .as_str()
        .expect("the candidate task set")
        .to_string();
    stand_in
        .wait_until(ROLLOUT_LIMIT, |s| {
            s.routes.production == 20 && s.routes.rule == 20
        })
        .await;

    let aborted = world.run_ok(&["abort", "web"]);
    let rolled_back = world.wait_for_phase("RolledBack");
    stand_in
        .wait_until(ROLLOUT_LIMIT, |s| {
            s.task_sets.iter().all(|(arn, _)| *arn != candidate)
        })
        .await;
    let log = stop_daemon(daemon, Duration::from_secs(15));
    let samples = stand_in.stop().await;

    let status = &rolled_back["status"];
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("aborted"),
        "{rolled_back:#}"
    );
    assert!(
        status["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["outcome"] == "Aborted"),
        "{rolled_back:#}"
    );
    // Traffic first: every production route back to 100% on A and the test listener back
    // on A, then (after abortScaleDownDelay) the candidate scaled down and deleted.
    let writes = world.writes();
    let production = [world.production_listener(), world.rule()];
    let deleted = first(&writes, "the candidate deleted", |w| {
        w.operation == "DeleteTaskSet" && w.target == candidate
    });
    let scaled = first(&writes, "the candidate scaled down", |w| {
        w.operation == "UpdateTaskSet" && w.target == candidate
    });
    assert!(scaled.at <= deleted.at);
    for route in production.iter().chain([&world.test_listener()]) {
        let restored = last(&writes, "a route restored", |w| &w.target == route);
        assert_eq!(restored.percent_b, Some(0), "{route}: {writes:#?}");
        assert!(restored.at > aborted, "{route} restored after the abort");
        assert!(
            scaled.at.duration_since(restored.at) >= ABORT_SCALE_DOWN_DELAY,
            "{route}: the candidate kept for abortScaleDownDelay after the traffic came back"
        );
    }
    assert_back_on_the_primary_alone(&world, &samples, &candidate, &log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_daemon_killed_at_10_percent_and_restarted_finishes_without_a_second_task_set_or_a_weight_going_down()
 {
    let world = World::start().await;
    world.apply(CANARY);
    let stand_in = EcsStandIn::start(&world);
    let first_daemon = start_daemon_via(world.daemon_env());
    stand_in
        .wait_until(ROLLOUT_LIMIT, |s| s.routes.production == 10)
        .await;
    let first_log = kill_daemon(first_daemon);
    let at_kill = get(&world.moto, "web");
    assert_eq!(at_kill["status"]["phase"], "Progressing", "{at_kill:#}");
    assert!(
        world.proxy.calls("UpdateServicePrimaryTaskSet") == 0,
        "killed mid-rollout"
    );

    let daemon = start_daemon_via(world.daemon_env());
    world.wait_for_phase("Healthy");
    stand_in.wait_for_the_switch_cleaned_up(&world).await;
    let log = stop_daemon(daemon, Duration::from_secs(15));
    let samples = stand_in.stop().await;

    let view = get(&world.moto, "web");
    assert_switched_and_cleaned_up(&world, &view, &format!("{first_log}\n---\n{log}")).await;
    let writes = world.writes();
    assert_writes_never_go_down(&writes, &[world.production_listener(), world.rule()]);
    assert_samples_never_go_down(&samples);
    assert_eq!(
        candidate_task_sets(&samples, &world).len(),
        1,
        "{samples:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promote_ends_a_manual_pause() {
    let world = World::start().await;
    world.apply("        - setWeight: 10\n        - pause: {}\n");
    let stand_in = EcsStandIn::start(&world);
    let daemon = start_daemon_via(world.daemon_env());
    let waiting = world.wait_for_phase("AwaitingPromotion");
    assert_eq!(
        waiting["status"]["trafficWeights"]["candidate"], 10.0,
        "{waiting:#}"
    );
    stand_in
        .wait_until(ROLLOUT_LIMIT, |s| {
            s.routes.production == 10 && s.routes.rule == 10
        })
        .await;

    let promoted = world.run_ok(&["promote", "web"]);
    let healthy = world.wait_for_phase("Healthy");
    stand_in.wait_for_the_switch_cleaned_up(&world).await;
    let log = stop_daemon(daemon, Duration::from_secs(15));
    stand_in.stop().await;

    assert!(
        healthy["status"]["history"][0]["outcome"] == "Succeeded"
            && healthy["status"]["history"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["outcome"] == "Promoted"),
        "{healthy:#}"
    );
    // Nothing moved past the gate before the promote.
    let writes = world.writes();
    let past_gate = first(&writes, "a weight past the gate", |w| {
        w.percent_b.is_some_and(|p| p > 10) && w.target != world.test_listener()
    });
    assert!(past_gate.at > promoted, "{writes:#?}");
    let view = get(&world.moto, "web");
    assert_switched_and_cleaned_up(&world, &view, &log).await;
}

// ----- analysis end to end (issue 17) ---------------------------------------------------

/// The analysis metric's name, which the status must carry when it fails.
const PROBE_METRIC: &str = "candidate-health";
/// Measurements the analysis takes, one a second.
const PROBE_COUNT: usize = 3;

/// A local HTTP server standing for the candidate's health endpoint: it answers every
/// request with the status the test sets, and keeps when each request came.
struct HealthEndpoint {
    url: String,
    status: Arc<std::sync::atomic::AtomicU16>,
    requests: Arc<Mutex<Vec<Instant>>>,
}

impl HealthEndpoint {
    async fn start(status: u16) -> HealthEndpoint {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let answer = Arc::new(std::sync::atomic::AtomicU16::new(status));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (shared_answer, log) = (answer.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (answer, log) = (shared_answer.clone(), log.clone());
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 4096];
                    let mut read = 0;
                    while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    if !buffer[..read].starts_with(b"GET /health HTTP/1.1\r\n") {
                        let _ = socket
                            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                    log.lock().unwrap().push(Instant::now());
                    let status = answer.load(Ordering::SeqCst);
                    let response = format!(
                        "HTTP/1.1 {status} Status\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        HealthEndpoint {
            url: format!("http://{address}/health"),
            status: answer,
            requests,
        }
    }

    fn requests(&self) -> Vec<Instant> {
        self.requests.lock().unwrap().clone()
    }

    /// The canary: 10%, then the analysis probing this endpoint (`count` measurements 1 s
    /// apart, no failure allowed), then 50% for 2 s, then all traffic.
    fn canary(&self) -> String {
        format!(
            "        - setWeight: 10\n        - analysis:\n            interval: 1s\n            count: {PROBE_COUNT}\n            failureLimit: 0\n            metrics:\n              - name: {PROBE_METRIC}\n                http: {{url: \"{}\", timeout: 2s, expectStatus: [200]}}\n        - setWeight: 50\n        - pause: {{duration: 2s}}\n",
            self.url
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_whose_http_analysis_fails_rolls_back_at_the_analysis_never_past_10_percent() {
    let world = World::start().await;
    let endpoint = HealthEndpoint::start(500).await;
    world.apply(&endpoint.canary());
    let stand_in = EcsStandIn::start(&world);
    let daemon = start_daemon_via(world.daemon_env());

    let rolled_back = world.wait_for_phase("RolledBack");
    let candidate = rolled_back["status"]["deploymentId"]
        .as_str()
        .expect("the candidate task set")
        .to_string();
    stand_in
        .wait_until(ROLLOUT_LIMIT, |s| {
            s.task_sets.iter().all(|(arn, _)| *arn != candidate)
        })
        .await;
    let log = stop_daemon(daemon, Duration::from_secs(15));
    let samples = stand_in.stop().await;
    assert_eq!(endpoint.status.load(Ordering::SeqCst), 500);

    // Rolled back by the analysis, which names the metric that failed.
    let status = &rolled_back["status"];
    let analysis = &status["analysis"];
    assert_eq!(analysis["phase"], "Failed", "{rolled_back:#}\n{log}");
    assert_eq!(
        analysis["metrics"][0]["name"], PROBE_METRIC,
        "{rolled_back:#}"
    );
    assert!(
        analysis["metrics"][0]["failed"].as_u64() >= Some(1),
        "{rolled_back:#}"
    );
    assert_eq!(analysis["metrics"][0]["successful"], 0, "{rolled_back:#}");
    let why = format!(
        "{} | {} | {}",
        status["message"].as_str().unwrap_or_default(),
        status["history"][0]["message"].as_str().unwrap_or_default(),
        analysis["message"].as_str().unwrap_or_default()
    );
    assert!(
        why.contains(&format!("metric {PROBE_METRIC} failed")) && why.contains("500"),
        "{why}\n{rolled_back:#}"
    );
    assert_eq!(
        status["history"][0]["outcome"], "RolledBack",
        "{rolled_back:#}"
    );
    // The probe reached the endpoint: failureLimit 0, so one failed measurement is enough
    // and no more are taken.
    let probed = endpoint.requests();
    assert!(!probed.is_empty(), "the endpoint was never probed\n{log}");

    // Never past the first weight, in what the daemon wrote and in what moto showed.
    let writes = world.writes();
    let production = [world.production_listener(), world.rule()];
    let highest = writes
        .iter()
        .filter(|w| production.contains(&w.target))
        .filter_map(|w| w.percent_b)
        .max();
    assert_eq!(highest, Some(10), "{writes:#?}");
    assert!(
        samples
            .iter()
            .all(|s| s.routes.production <= 10 && s.routes.rule <= 10),
        "{samples:?}"
    );
    assert!(
        samples.iter().any(|s| s.routes.production == 10),
        "the first step was reached: {samples:?}"
    );
    // The analysis ran at 10%: the first probe after the 10% weights were written.
    let at_10 = last(&writes, "10% on a production route", |w| {
        production.contains(&w.target) && w.percent_b == Some(10)
    });
    assert!(probed[0] > at_10.at, "probed before the 10% step was done");

    // Traffic first: each production route and the test listener back on A (the live
    // group), then, after abortScaleDownDelay, the candidate scaled down and deleted.
    let scaled = first(&writes, "the candidate scaled down", |w| {
        w.operation == "UpdateTaskSet" && w.target == candidate
    });
    let deleted = first(&writes, "the candidate deleted", |w| {
        w.operation == "DeleteTaskSet" && w.target == candidate
    });
    assert!(scaled.at <= deleted.at);
    for route in production.iter().chain([&world.test_listener()]) {
        let restored = last(&writes, "a route restored", |w| &w.target == route);
        assert_eq!(restored.percent_b, Some(0), "{route}: {writes:#?}");
        assert!(
            restored.at > *probed.last().unwrap(),
            "{route} restored after the failed measurement"
        );
        assert!(
            scaled.at.duration_since(restored.at) >= ABORT_SCALE_DOWN_DELAY,
            "{route}: the candidate kept for abortScaleDownDelay after the traffic came back"
        );
    }
    assert_back_on_the_primary_alone(&world, &samples, &candidate, &log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_whose_http_analysis_passes_goes_on_after_count_measurements_and_ends_healthy() {
    let world = World::start().await;
    let endpoint = HealthEndpoint::start(200).await;
    world.apply(&endpoint.canary());
    let stand_in = EcsStandIn::start(&world);
    let daemon = start_daemon_via(world.daemon_env());

    world.wait_for_phase("Healthy");
    stand_in.wait_for_the_switch_cleaned_up(&world).await;
    let log = stop_daemon(daemon, Duration::from_secs(15));
    let samples = stand_in.stop().await;
    let view = get(&world.moto, "web");
    assert_switched_and_cleaned_up(&world, &view, &log).await;

    // The analysis took its `count` measurements, all successful, and the status says so.
    let analysis = &view["status"]["analysis"];
    assert_eq!(analysis["phase"], "Successful", "{view:#}\n{log}");
    assert_eq!(analysis["taken"], PROBE_COUNT, "{view:#}");
    assert_eq!(analysis["count"], PROBE_COUNT, "{view:#}");
    assert_eq!(analysis["metrics"][0]["name"], PROBE_METRIC, "{view:#}");
    assert!(
        analysis["metrics"][0]["successful"].as_u64() >= Some(PROBE_COUNT as u64),
        "{view:#}"
    );
    assert_eq!(analysis["metrics"][0]["failed"], 0, "{view:#}");

    // The endpoint was probed at least `count` times, all at 10%: after the 10% step and
    // before any production route went past it.
    let probed = endpoint.requests();
    assert!(
        probed.len() >= PROBE_COUNT,
        "{} probes\n{log}",
        probed.len()
    );
    let writes = world.writes();
    let production = [world.production_listener(), world.rule()];
    assert_writes_never_go_down(&writes, &production);
    let at_10 = last(&writes, "10% on a production route", |w| {
        production.contains(&w.target) && w.percent_b == Some(10)
    });
    let past_10 = first(&writes, "a production route past 10%", |w| {
        production.contains(&w.target) && w.percent_b.is_some_and(|p| p > 10)
    });
    assert_eq!(past_10.percent_b, Some(50), "{writes:#?}");
    let during: Vec<&Instant> = probed
        .iter()
        .filter(|at| **at > at_10.at && **at < past_10.at)
        .collect();
    assert!(
        during.len() >= PROBE_COUNT,
        "{} of {} probes between 10% and 50%",
        during.len(),
        probed.len()
    );
    assert_samples_never_go_down(&samples);
    assert!(samples.iter().any(|s| s.routes.production == 10));
    assert!(samples.iter().any(|s| s.routes.production == 50));
}
