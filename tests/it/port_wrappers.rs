//! Every implementation and decorator of the ECS port offers ECS's own deployments: a
//! decorator that does not forward an operation silently answers with the port's default
//! ("not offered by this implementation"), so the controller would fail only in production,
//! or only in the benchmarks, or only in the simulation.

use std::path::PathBuf;
use std::sync::Arc;

use switchyard::controller::MeteredProvider;
use switchyard::ports::{AwsProvider, EcsDeploymentStrategy, HookAction, UpdateServiceRequest};
use switchyard::sim::{EcsServiceSetup, SimAws};
use switchyard::state::ControllerState;

/// The service-deployment operations of the `Ecs` trait (their default bodies answer
/// "unsupported").
const SERVICE_DEPLOYMENT_OPERATIONS: [&str; 6] = [
    "update_service",
    "list_service_deployments",
    "describe_service_deployments",
    "describe_service_revisions",
    "continue_service_deployment",
    "stop_service_deployment",
];

/// Every `impl Ecs for ...` of the workspace: the AWS adapter, the simulated AWS, and the
/// decorators of the controller (metrics), the benchmarks (recording) and the deterministic
/// simulation (replicas).
const IMPLEMENTATIONS: [&str; 5] = [
    "src/aws/ecs.rs",
    "src/sim/ecs.rs",
    "src/controller/metered.rs",
    "examples/common/mod.rs",
    "simulation/src/replica.rs",
];

/// The lines of the `impl Ecs for ...` block of a file, comments left out.
fn ecs_impl_block(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("impl Ecs for "))
        .unwrap_or_else(|| panic!("{path} has no `impl Ecs for` block"));
    lines[start..]
        .iter()
        .take_while(|l| **l != "}")
        .map(|l| l.split("//").next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn every_implementation_of_the_ecs_port_offers_the_service_deployment_operations() {
    let mut missing = Vec::new();
    for path in IMPLEMENTATIONS {
        let block = ecs_impl_block(path).join("\n");
        for operation in SERVICE_DEPLOYMENT_OPERATIONS {
            if !block.contains(&format!("async fn {operation}(")) {
                missing.push(format!("{path}: {operation}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "these implementations of Ecs fall back to the port's \"unsupported\" default: {missing:#?}"
    );
}

#[test]
fn the_scan_finds_the_operations_of_a_block_and_only_of_it() {
    // The sim's block holds them; the port's trait (not an `impl Ecs for`) is not scanned.
    let block = ecs_impl_block("src/sim/ecs.rs").join("\n");
    assert!(block.contains("async fn update_service("));
    assert!(!block.contains("trait Ecs"));
    let metered = ecs_impl_block("src/controller/metered.rs").join("\n");
    assert!(
        !metered.contains("impl CodeDeploy for"),
        "the block ends at its closing brace"
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
    };
    let ecs = metered.ports_for(None).ecs;

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
