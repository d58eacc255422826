//! End to end against moto through a fault-injecting proxy, as a user runs it: a group that
//! deploys another service is never used, a refusal backs off and `retry` recovers at once,
//! a cluster ARN works like its name across a restart.

use std::time::{Duration, Instant};

use crate::daemon::{
    create_world, get, start_daemon, start_daemon_via, stop_daemon, switchyard, wait_for,
};
use crate::fault_proxy::FaultProxy;
use crate::moto::Moto;

fn run_ok(moto: &Moto, args: &[&str]) {
    let output = switchyard(moto, args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn apply(moto: &Moto, dir: &std::path::Path, yaml: &str) {
    let path = dir.join("release.yaml");
    std::fs::write(&path, yaml).unwrap();
    run_ok(moto, &["apply", "-f", path.to_str().unwrap()]);
}

fn release(name: &str, cluster: &str, application: &str, group: &str) -> String {
    format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: {name}\nspec:\n  service: {{cluster: \"{cluster}\", name: {name}}}\n  taskDefinition:\n    from: {name}\n    containers:\n      {name}:\n        image: registry.example.com/{name}:2.0.0\n  strategy:\n    codeDeploy:\n      application: {application}\n      deploymentGroup: {group}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_that_deploys_another_service_gets_no_mutation_and_a_message_naming_both() {
    let moto = Moto::start();
    create_world(&moto, &["web", "api"]);
    let proxy = FaultProxy::start(&moto.endpoint).await;
    run_ok(&moto, &["table", "create"]);
    let dir = tempfile::tempdir().unwrap();
    apply(
        &moto,
        dir.path(),
        &release("web", "prod", "api", "api-prod"),
    );

    let daemon = start_daemon_via(proxy.env());
    let view = wait_for(&moto, "web", Duration::from_secs(60), |v| {
        v["status"]["phase"] == "Failed"
    });
    std::thread::sleep(Duration::from_secs(2));
    let log = stop_daemon(daemon, Duration::from_secs(15));
    let message = view["status"]["message"].as_str().unwrap_or_default();
    for name in ["prod/web", "prod/api", "api/api-prod"] {
        assert!(message.contains(name), "{name} in: {message}\n{log}");
    }
    for mutation in [
        "RegisterTaskDefinition",
        "CreateDeployment",
        "ContinueDeployment",
        "StopDeployment",
    ] {
        assert_eq!(proxy.calls(mutation), 0, "{mutation}\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_registration_backs_off_and_retry_deploys_within_seconds() {
    let moto = Moto::start();
    create_world(&moto, &["web"]);
    let proxy = FaultProxy::start(&moto.endpoint).await;
    proxy.deny("RegisterTaskDefinition");
    run_ok(&moto, &["table", "create"]);
    let dir = tempfile::tempdir().unwrap();
    apply(
        &moto,
        dir.path(),
        &release("web", "prod", "web", "web-prod"),
    );

    let mut env = proxy.env();
    env.push(("SWITCHYARD_LOG_LEVEL", "switchyard=info,warn".into()));
    let started = Instant::now();
    let daemon = start_daemon_via(env);
    let view = wait_for(&moto, "web", Duration::from_secs(60), |v| {
        v["status"]["phase"] == "Failed"
    });
    let message = view["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("ecs:RegisterTaskDefinition"), "{message}");
    assert!(message.contains("AccessDeniedException"), "{message}");
    std::thread::sleep(Duration::from_secs(60).saturating_sub(started.elapsed()));
    let attempts = proxy.calls("RegisterTaskDefinition");
    assert!(
        (1..=8).contains(&attempts),
        "{attempts} RegisterTaskDefinition attempts in the first minute"
    );

    proxy.heal();
    let retried = Instant::now();
    run_ok(&moto, &["retry", "web"]);
    let view = wait_for(&moto, "web", Duration::from_secs(20), |v| {
        v["status"]["deploymentId"].is_string()
    });
    let took = retried.elapsed();
    let log = stop_daemon(daemon, Duration::from_secs(15));
    assert_eq!(view["status"]["phase"], "Progressing", "{view:#}\n{log}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(proxy.calls("CreateDeployment"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_arn_works_like_its_name_across_a_restart() {
    let moto = Moto::start();
    create_world(&moto, &["web"]);
    run_ok(&moto, &["table", "create"]);
    let dir = tempfile::tempdir().unwrap();
    apply(
        &moto,
        dir.path(),
        &release(
            "web",
            "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
            "web",
            "web-prod",
        ),
    );
    let daemon = start_daemon(&moto);
    let first = wait_for(&moto, "web", Duration::from_secs(60), |v| {
        v["status"]["deploymentId"].is_string()
    });
    stop_daemon(daemon, Duration::from_secs(15));
    let daemon = start_daemon(&moto);
    std::thread::sleep(Duration::from_secs(5));
    let log = stop_daemon(daemon, Duration::from_secs(15));

    let view = get(&moto, "web");
    assert_eq!(view["status"]["phase"], "Progressing", "{view:#}\n{log}");
    assert_eq!(
        view["status"]["deploymentId"],
        first["status"]["deploymentId"]
    );
    let sdk = moto.sdk_config().await;
    let deployments = aws_sdk_codedeploy::Client::new(&sdk)
        .list_deployments()
        .application_name("web")
        .deployment_group_name("web-prod")
        .send()
        .await
        .unwrap();
    assert_eq!(deployments.deployments().len(), 1, "{log}");
}
