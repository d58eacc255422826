//! Every implementation of an AWS port implements every method of its trait. The ports give
//! new operations a default body that answers "not offered", so an adapter, the simulation or
//! a decorator (`MeteredPorts`, `RecordingPorts`, `ReplicaAws`) that does not forward a new
//! operation compiles and fails only at run time, as an `InvalidRequest` from AWS would: this
//! test reads the sources (formatted by rustfmt) and names what is missing where.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The AWS port traits and where they are defined.
use std::sync::Arc;

use switchyard::controller::MeteredProvider;
use switchyard::ports::{AwsProvider, EcsDeploymentStrategy, HookAction, UpdateServiceRequest};
use switchyard::sim::{EcsServiceSetup, SimAws};
use switchyard::state::ControllerState;

const PORTS: &[(&str, &str)] = &[
    ("Ecs", "src/ports/ecs.rs"),
    ("CodeDeploy", "src/ports/codedeploy.rs"),
    ("LoadBalancer", "src/ports/elb.rs"),
    ("Alarms", "src/ports/alarms.rs"),
    ("MetricData", "src/ports/metric_data.rs"),
    ("HttpProbe", "src/ports/probe.rs"),
    ("Sns", "src/ports/notify.rs"),
    ("EventBridge", "src/ports/notify.rs"),
    ("Webhooks", "src/ports/notify.rs"),
    ("Sts", "src/ports/sts.rs"),
];

/// Where implementations live: the adapters, the simulation, the decorators.
const IMPLEMENTATION_DIRS: &[&str] = &["src", "examples", "simulation/src"];

/// Operations that may still be missing somewhere while they are being written (none now).
/// The test fails once one of them is implemented everywhere, so that it leaves this list.
const PENDING: &[(&str, &str)] = &[];

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The names of the methods (`fn` one indentation level in) of the top-level item that
/// starts at the line satisfying `starts`, up to its closing `}` at column 0.
fn methods_of_item(source: &str, starts: impl Fn(&str) -> bool) -> Vec<BTreeSet<String>> {
    let mut items = Vec::new();
    let mut current: Option<BTreeSet<String>> = None;
    for line in source.lines() {
        match current.as_mut() {
            None if starts(line) => current = Some(BTreeSet::new()),
            None => {}
            Some(_) if line == "}" => items.push(current.take().unwrap()),
            Some(methods) => {
                let Some(rest) = line.strip_prefix("    ") else {
                    continue;
                };
                let rest = rest.strip_prefix("async ").unwrap_or(rest);
                if let Some(signature) = rest.strip_prefix("fn ") {
                    let name: String = signature
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    methods.insert(name);
                }
            }
        }
    }
    items
}

/// The methods a port trait declares.
fn trait_methods(name: &str, file: &str) -> BTreeSet<String> {
    let source = std::fs::read_to_string(repository().join(file)).unwrap();
    let header = format!("pub trait {name}:");
    let items = methods_of_item(&source, |line| line.starts_with(&header));
    assert_eq!(items.len(), 1, "one `pub trait {name}` in {file}");
    items.into_iter().next().unwrap()
}

#[test]
fn the_scan_reads_trait_and_impl_methods() {
    let source = "pub trait Ecs: Send {\n    async fn a(&self);\n    fn b(&self) -> u8 {\n        \
                  let f = |x| { x };\n    }\n}\n\nimpl Ecs for X {\n    async fn a(&self) {}\n    \
                  // fn c()\n}\nfn d() {}\n";
    let traits = methods_of_item(source, |l| l.starts_with("pub trait Ecs:"));
    assert_eq!(
        traits,
        vec![BTreeSet::from(["a".to_string(), "b".to_string()])]
    );
    let impls = methods_of_item(source, |l| l.starts_with("impl Ecs for "));
    assert_eq!(impls, vec![BTreeSet::from(["a".to_string()])]);
}

#[test]
fn every_port_implementation_forwards_every_port_method() {
    let root = repository();
    let mut files = Vec::new();
    for dir in IMPLEMENTATION_DIRS {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    let mut missing = Vec::new();
    let mut pending_done: BTreeSet<(&str, &str)> = PENDING.iter().copied().collect();
    let mut implementations = 0;
    for (port, definition) in PORTS {
        let declared = trait_methods(port, definition);
        let header = format!("impl {port} for ");
        for file in &files {
            let source = std::fs::read_to_string(file).unwrap();
            for implemented in methods_of_item(&source, |line| line.starts_with(&header)) {
                implementations += 1;
                for method in declared.difference(&implemented) {
                    if let Some(pending) = PENDING
                        .iter()
                        .find(|(p, m)| p == port && *m == method.as_str())
                    {
                        pending_done.remove(pending);
                        continue;
                    }
                    missing.push(format!(
                        "{}: impl {port} lacks {method}",
                        file.strip_prefix(&root).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(
        implementations >= 20,
        "the scan found only {implementations} implementations: is the source still formatted?"
    );
    assert!(
        missing.is_empty(),
        "port methods left to their \"not offered\" default:\n{}",
        missing.join("\n")
    );
    assert!(
        pending_done.is_empty(),
        "implemented everywhere now, remove from PENDING: {pending_done:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn metered_ports_forward_and_count_every_service_deployment_operation() {
    let sim = SimAws::new(switchyard::clock::Clock::fixed_epoch());
    let handles = sim.add_ecs_service(
        EcsServiceSetup::new("prod", "web", EcsDeploymentStrategy::BlueGreen)
            .pausing_at(&["POST_SCALE_UP"]),
    );
    let state = ControllerState::new();
    let metered = MeteredProvider {
        inner: Arc::new(sim.clone()),
        state: state.clone(),
        budgets: Arc::new(switchyard::controller::ApiBudgets::new(
            Default::default(),
            state.clone(),
        )),
        home: sim.home(),
    };
    let ecs = metered.ports_for("us-east-1", None).ecs;

    let deployment = ecs
        .update_service(&UpdateServiceRequest {
            cluster: "prod".into(),
            service: "web".into(),
            task_definition: handles.task_definition.arn.clone(),
            deployment: None,
        })
        .await
        .expect("UpdateService forwarded");
    assert_eq!(
        deployment.as_deref(),
        Some(handles.initial_deployment.as_str())
    );
    let listed = ecs
        .list_service_deployments("prod", "web", None)
        .await
        .expect("ListServiceDeployments forwarded");
    let described = ecs
        .describe_service_deployments(&listed)
        .await
        .expect("DescribeServiceDeployments forwarded");
    let revision = described[0].target_revision_arn.clone().unwrap();
    ecs.describe_service_revisions(&[revision])
        .await
        .expect("DescribeServiceRevisions forwarded");
    // Both answers reach the simulated ECS, which refuses them as ECS would (the deployment
    // ended): a refusal of ECS's, not the port's "unsupported".
    let stale = ecs
        .continue_service_deployment(
            &handles.initial_deployment,
            "ecs-pause-x",
            HookAction::Continue,
        )
        .await
        .expect_err("no hook waits");
    assert_eq!(stale.code.as_deref(), Some("ClientException"), "{stale}");
    let finished = ecs
        .stop_service_deployment(&handles.initial_deployment)
        .await
        .expect_err("finished");
    assert_eq!(
        finished.code.as_deref(),
        Some("ConflictException"),
        "{finished}"
    );

    let counts = sim.call_counts();
    let metrics = state.metrics().encode();
    for operation in [
        "UpdateService",
        "ListServiceDeployments",
        "DescribeServiceDeployments",
        "DescribeServiceRevisions",
        "ContinueServiceDeployment",
        "StopServiceDeployment",
    ] {
        assert_eq!(
            counts.get(&format!("ecs:{operation}")),
            Some(&1),
            "{operation}"
        );
        assert!(
            metrics.contains(&format!("operation=\"{operation}\"")),
            "{operation} is not in the metrics:\n{metrics}"
        );
    }
}
