//! End to end against moto, as a user runs it: `pause`, `resume` and edits that keep the
//! candidate never stop the rollout in flight.

use std::time::Duration;

use crate::daemon::{create_world, get, start_daemon, stop_daemon, switchyard, wait_for};
use crate::moto::Moto;

fn condition<'a>(view: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    view["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn run_ok(moto: &Moto, args: &[&str]) {
    let output = switchyard(moto, args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_resume_and_edits_that_keep_the_candidate_never_stop_the_rollout() {
    let moto = Moto::start();
    create_world(&moto, &["web"]);
    run_ok(&moto, &["table", "create"]);
    let dir = tempfile::tempdir().unwrap();
    let document = |extra: &str, labels: &str| {
        format!(
            "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: web\n  labels: {{{labels}}}\nspec:\n  service: {{cluster: prod, name: web}}\n  taskDefinition:\n    from: web\n    containers:\n      web:\n        image: registry.example.com/web:2.0.0\n  strategy:\n    codeDeploy:\n      application: web\n      deploymentGroup: web-prod\n{extra}"
        )
    };
    let path = dir.path().join("web.yaml");
    std::fs::write(&path, document("", "team: storefront")).unwrap();
    run_ok(&moto, &["apply", "-f", path.to_str().unwrap()]);

    let daemon = start_daemon(&moto);
    let first = wait_for(&moto, "web", Duration::from_secs(90), |v| {
        v["status"]["deploymentId"].is_string()
    });
    let deployment = first["status"]["deploymentId"].clone();

    run_ok(&moto, &["pause", "web"]);
    let paused = wait_for(&moto, "web", Duration::from_secs(30), |v| {
        v["status"]["observedGeneration"] == 2
    });
    assert_eq!(paused["status"]["phase"], "Progressing", "{paused:#}");
    assert_eq!(condition(&paused, "Paused").unwrap()["status"], "True");
    assert_eq!(paused["status"]["deploymentId"], deployment);

    run_ok(&moto, &["resume", "web"]);
    let resumed = wait_for(&moto, "web", Duration::from_secs(30), |v| {
        v["status"]["observedGeneration"] == 3
    });
    assert_eq!(resumed["status"]["phase"], "Progressing", "{resumed:#}");
    assert_eq!(condition(&resumed, "Paused").unwrap()["status"], "False");
    assert_eq!(resumed["status"]["deploymentId"], deployment);

    std::fs::write(&path, document("  onDrift: converge\n", "team: storefront")).unwrap();
    run_ok(&moto, &["apply", "-f", path.to_str().unwrap()]);
    wait_for(&moto, "web", Duration::from_secs(30), |v| {
        v["status"]["observedGeneration"] == 4
    });
    std::fs::write(&path, document("  onDrift: converge\n", "team: checkout")).unwrap();
    run_ok(&moto, &["apply", "-f", path.to_str().unwrap()]);
    let edited = wait_for(&moto, "web", Duration::from_secs(30), |v| {
        v["status"]["observedGeneration"] == 5
    });
    assert_eq!(edited["status"]["phase"], "Progressing", "{edited:#}");
    assert_eq!(edited["status"]["deploymentId"], deployment);
    // A few more passes, then stop.
    std::thread::sleep(Duration::from_secs(3));
    let log = stop_daemon(daemon, Duration::from_secs(15));

    assert!(
        !log.contains("StopDeployment"),
        "no StopDeployment was ever attempted:\n{log}"
    );
    let view = get(&moto, "web");
    assert_eq!(view["status"]["deploymentId"], deployment);
    let sdk = moto.sdk_config().await;
    let deployments = aws_sdk_codedeploy::Client::new(&sdk)
        .list_deployments()
        .application_name("web")
        .deployment_group_name("web-prod")
        .send()
        .await
        .unwrap();
    assert_eq!(deployments.deployments().len(), 1);
}
