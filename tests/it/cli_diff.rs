//! `switchyard diff` end to end against moto, as a user runs it: after a rollout, the
//! candidate of an edited document is copied from the base (not from switchyard's own
//! revision); a release the table does not hold is shown as created; `--exit-code`,
//! `--show-values`, invalid input; and nothing is ever written.

use std::time::Duration;

use serde_json::Value;

use crate::daemon::{command, create_world, start_daemon, stop_daemon, switchyard, wait_for};
use crate::moto::Moto;

const TABLE: &str = "switchyard-e2e";

/// A release document for the moto world's `web` service.
fn document(image: &str, environment: &str) -> String {
    format!(
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: web\n  labels: {{team: storefront}}\nspec:\n  service: {{cluster: prod, name: web}}\n  taskDefinition:\n    from: web\n    containers:\n      web:\n        image: registry.example.com/web:{image}\n        environment: {{{environment}}}\n  strategy:\n    codeDeploy:\n      application: web\n      deploymentGroup: web-prod\n"
    )
}

/// Runs `switchyard ARGS`; returns (exit code, stdout, stderr).
fn run(moto: &Moto, args: &[&str]) -> (i32, String, String) {
    let output = switchyard(moto, args);
    (
        output.status.code().expect("an exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn diff_json(moto: &Moto, args: &[&str]) -> Value {
    let mut all = vec!["diff", "-o", "json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(moto, &all);
    assert_eq!(code, 0, "diff: {stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("diff prints JSON ({e}): {stdout}"))
}

/// Everything `diff` could write to: every item of the table, and every task definition
/// revision (ACTIVE or not: revisions never change, so their ARNs say it all).
async fn everything(moto: &Moto) -> (Vec<Value>, Vec<String>) {
    let sdk = moto.sdk_config().await;
    let scanned = aws_sdk_dynamodb::Client::new(&sdk)
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .expect("scan");
    let mut items: Vec<Value> = scanned
        .items()
        .iter()
        .map(|item| serde_dynamo::from_item(item.clone()).expect("an item as JSON"))
        .collect();
    items.sort_by_key(|item: &Value| item["pk"].to_string());
    let mut revisions = Vec::new();
    for status in [
        aws_sdk_ecs::types::TaskDefinitionStatus::Active,
        aws_sdk_ecs::types::TaskDefinitionStatus::Inactive,
    ] {
        let listed = aws_sdk_ecs::Client::new(&sdk)
            .list_task_definitions()
            .status(status)
            .send()
            .await
            .expect("list");
        revisions.extend(listed.task_definition_arns().iter().cloned());
    }
    (items, revisions)
}

fn container<'a>(input: &'a Value, name: &str) -> &'a Value {
    input["containerDefinitions"]
        .as_array()
        .expect("containerDefinitions")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {input:#}"))
}

fn environment(container: &Value) -> Vec<(String, String)> {
    container["environment"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_rollout_the_candidate_of_an_edited_document_is_copied_from_the_base() {
    let moto = Moto::start();
    let world = create_world(&moto, &["web"]);
    let base_arn = world["web"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(run(&moto, &["table", "create"]).0, 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yaml");
    let path_arg = path.to_str().unwrap();

    // The rollout of a document with FEATURE_X: the controller registers revision 2.
    std::fs::write(&path, document("2.0.0", "FEATURE_X: \"on\"")).unwrap();
    assert_eq!(run(&moto, &["apply", "-f", path_arg]).0, 0);
    let daemon = start_daemon(&moto);
    let rolled = wait_for(&moto, "web", Duration::from_secs(90), |v| {
        v["status"]["deploymentId"].is_string()
    });
    stop_daemon(daemon, Duration::from_secs(15));
    let revision_2 = rolled["status"]["desiredTaskDefinition"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(revision_2.ends_with("task-definition/web:2"), "{rolled:#}");

    // The same document without FEATURE_X, with a new image.
    std::fs::write(&path, document("3.0.0", "")).unwrap();
    let before = everything(&moto).await;
    let shown = diff_json(&moto, &["-f", path_arg]);
    let releases = shown["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 1, "{shown:#}");
    let web = &releases[0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["liveTaskDefinitionArn"], base_arn.as_str());
    let changes: Vec<&str> = web["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        [
            "spec.taskDefinition.containers.web.environment.FEATURE_X: (hidden) -> (none)",
            "spec.taskDefinition.containers.web.image: \"registry.example.com/web:2.0.0\" -> \
             \"registry.example.com/web:3.0.0\"",
        ]
    );
    let candidate = &web["candidateTaskDefinition"];
    assert_eq!(candidate["family"], "web");
    let app = container(candidate, "web");
    assert_eq!(app["image"], "registry.example.com/web:3.0.0");
    assert_eq!(
        environment(app),
        [("MODE".to_string(), "(hidden)".to_string())],
        "the base's own variables, without FEATURE_X"
    );
    assert_eq!(app["secrets"][0]["name"], "DB_PASSWORD");
    assert_eq!(app["logConfiguration"]["logDriver"], "awslogs");
    assert_eq!(
        container(candidate, "log-router")["image"],
        "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
        "the base's other containers"
    );
    assert_eq!(
        candidate["taskRoleArn"],
        "arn:aws:iam::123456789012:role/web-task"
    );
    let tags: Vec<(&str, &str)> = candidate["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["key"].as_str().unwrap(), t["value"].as_str().unwrap()))
        .collect();
    assert!(
        tags.contains(&("switchyard.dev/base", base_arn.as_str())),
        "{tags:?}"
    );
    assert!(
        tags.contains(&("switchyard.dev/release", "web")),
        "{tags:?}"
    );

    // With --show-values the values are there; the text shows the task definition diff.
    let shown = diff_json(&moto, &["-f", path_arg, "--show-values"]);
    assert_eq!(
        environment(container(
            &shown["releases"][0]["candidateTaskDefinition"],
            "web"
        )),
        [("MODE".to_string(), "prod".to_string())]
    );
    let (code, text, stderr) = run(&moto, &["diff", "-f", path_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(text.starts_with("release/web configured\n"), "{text}");
    assert!(
        text.contains("a new revision of web would be registered, copied from web:1; live web:1"),
        "{text}"
    );
    assert!(
        text.contains("-      \"image\": \"registry.example.com/web:1.0.0\",\n")
            && text.contains("+      \"image\": \"registry.example.com/web:3.0.0\",\n"),
        "{text}"
    );
    assert!(!text.contains("prod\""), "no environment value: {text}");

    // --exit-code: 7 when something would change, 0 when nothing would.
    assert_eq!(run(&moto, &["diff", "-f", path_arg, "--exit-code"]).0, 7);
    std::fs::write(&path, document("2.0.0", "FEATURE_X: \"on\"")).unwrap();
    let (code, text, stderr) = run(&moto, &["diff", "-f", path_arg, "--exit-code"]);
    assert_eq!(code, 0, "{text}\n{stderr}");
    assert!(
        text.starts_with(
            "release/web unchanged\n  task definition: web:2 reused (spec.taskDefinition is \
             unchanged), nothing registered; live web:1\n"
        ),
        "{text}"
    );

    assert_eq!(everything(&moto).await, before, "diff wrote nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_release_is_shown_as_created_invalid_input_exits_1_and_nothing_is_written() {
    let moto = Moto::start();
    let world = create_world(&moto, &["web"]);
    let base_arn = world["web"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(run(&moto, &["table", "create"]).0, 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yaml");
    let path_arg = path.to_str().unwrap();
    let before = everything(&moto).await;

    // Not in the table: created, every field listed, the candidate a copy of the base.
    std::fs::write(&path, document("2.0.0", "FEATURE_X: \"on\"")).unwrap();
    let shown = diff_json(&moto, &["-f", path_arg]);
    let web = &shown["releases"][0];
    let changes = web["changes"].as_array().unwrap();
    assert!(
        changes.contains(&Value::from(
            "spec.taskDefinition.containers.web.image: (none) -> \
             \"registry.example.com/web:2.0.0\""
        )),
        "{shown:#}"
    );
    assert!(changes.contains(&Value::from(
        "spec.taskDefinition.containers.web.environment.FEATURE_X: (none) -> (hidden)"
    )));
    assert_eq!(web["liveTaskDefinitionArn"], base_arn.as_str());
    let app = container(&web["candidateTaskDefinition"], "web");
    assert_eq!(app["image"], "registry.example.com/web:2.0.0");
    assert_eq!(
        environment(app),
        [
            ("FEATURE_X".to_string(), "(hidden)".to_string()),
            ("MODE".to_string(), "(hidden)".to_string())
        ]
    );
    let (code, text, _) = run(&moto, &["diff", "-f", path_arg, "--exit-code"]);
    assert_eq!(code, 7, "{text}");
    assert!(text.starts_with("release/web created\n"), "{text}");
    assert!(
        text.contains("  environment of container web: added FEATURE_X\n"),
        "{text}"
    );
    let (code, _, stderr) = run(&moto, &["get", "web"]);
    assert_eq!(code, 3, "the release was not created: {stderr}");

    // The live revision's own content: nothing to deploy.
    std::fs::write(&path, document("1.0.0", "")).unwrap();
    let (code, text, stderr) = run(&moto, &["diff", "-f", path_arg]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        text.contains("  task definition: web:1 is live and stays: nothing to deploy\n"),
        "{text}"
    );
    assert!(!text.contains("\n--- "), "no task definition diff: {text}");

    // Invalid input exits 1 and names the file and field, as apply does.
    std::fs::write(
        &path,
        document("x", "").replace("image: registry.example.com/web:x", "image: \"\""),
    )
    .unwrap();
    let (code, stdout, stderr) = run(&moto, &["diff", "-f", path_arg]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("web.yaml: document 1: spec.taskDefinition.containers.web.image"),
        "{stderr}"
    );
    // A container the base does not have: invalid too, once the base is read.
    std::fs::write(
        &path,
        document("2.0.0", "").replace("      web:\n", "      worker:\n"),
    )
    .unwrap();
    let output = command(&moto, &["diff", "-f", path_arg])
        .output()
        .expect("switchyard runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "web.yaml: document 1: spec.taskDefinition.containers.worker: task definition \
             web:1 has no container worker"
        ),
        "{stderr}"
    );

    assert_eq!(everything(&moto).await, before, "diff wrote nothing");
}
