//! End-to-end runs of the `switchyard` binary, as a user runs it.

use std::process::Command;

fn switchyard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

#[test]
fn the_demo_settles_every_release_as_described() {
    let output = switchyard()
        .args([
            "demo",
            "--exit-when-settled",
            "--output",
            "json",
            "--speed",
            "600",
        ])
        .output()
        .expect("switchyard runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is exactly one JSON object");
    let phase_of = |name: &str| {
        report["releases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {report}"))
            .clone()
    };
    assert_eq!(phase_of("checkout")["phase"], "Healthy", "{stderr}");
    assert_eq!(phase_of("search")["phase"], "RolledBack", "{stderr}");
    assert_eq!(phase_of("payments")["phase"], "Healthy", "{stderr}");
    assert_eq!(phase_of("catalog")["phase"], "Healthy", "{stderr}");
    assert_eq!(phase_of("orders")["phase"], "Healthy", "{stderr}");
    assert_eq!(phase_of("storefront")["phase"], "Healthy", "{stderr}");
    let reviews = phase_of("reviews");
    assert_eq!(reviews["phase"], "RolledBack", "{stderr}");
    assert!(
        reviews["message"]
            .as_str()
            .unwrap()
            .contains("metric error-rate failed"),
        "{reviews}"
    );
    let inventory = phase_of("inventory");
    assert_eq!(inventory["phase"], "Invalid");
    assert!(
        inventory["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.strategy.codeDeploy.deploymentConfig")
    );
    assert_eq!(inventory["deploymentId"], serde_json::Value::Null);
    for field in [
        "observedGeneration",
        "liveTaskDefinition",
        "desiredTaskDefinition",
        "deploymentId",
        "message",
    ] {
        assert!(phase_of("checkout").get(field).is_some(), "{field} missing");
    }
    let calls = report["apiCalls"].as_object().unwrap();
    assert_eq!(
        calls["codedeploy:CreateDeployment"], 4,
        "one per valid CodeDeploy release, the paused one included"
    );
    assert_eq!(calls["ecs:UpdateService"], 1, "orders");
    assert_eq!(
        calls["ecs:CreateTaskSet"], 2,
        "storefront's and reviews' candidates"
    );
    assert_eq!(
        calls["ecs:DeleteTaskSet"], 2,
        "storefront's old task set and reviews' candidate, cleaned up"
    );
    assert!(
        calls["cloudwatch:GetMetricData"].as_u64().unwrap() >= 2,
        "reviews' analysis measured twice"
    );
    assert_eq!(
        calls["ecs:ContinueServiceDeployment"], 1,
        "orders is promoted at its hook"
    );
    assert_eq!(calls["codedeploy:StopDeployment"], 1, "search rolls back");
    assert_eq!(
        calls["codedeploy:ContinueDeployment"], 1,
        "payments is promoted"
    );
    // Progress went to stderr; the paused canary was held, never rolled back.
    assert!(stderr.contains("AwaitingPromotion"), "{stderr}");
    assert!(stderr.contains("(paused)"), "{stderr}");
}

#[test]
fn validate_accepts_good_documents_and_names_the_field_of_bad_ones() {
    let scratch = tempfile::Builder::new()
        .prefix("switchyard-validate-")
        .tempdir()
        .unwrap();
    let dir = scratch.path();
    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        switchyard::demo::DEMO_RELEASES
            .split("\n---\n")
            .next()
            .unwrap(),
    )
    .unwrap();
    let ok = switchyard()
        .args(["validate", "-f"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, switchyard::demo::DEMO_RELEASES).unwrap();
    let failed = switchyard()
        .args(["validate", "-f"])
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("bad.yaml: document 4: spec.strategy.codeDeploy.deploymentConfig"),
        "{stderr}"
    );
}

#[test]
fn errors_show_control_characters_of_file_names_and_documents_escaped() {
    let dir = std::env::temp_dir().join(format!("switchyard-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A file name and a document value that would clear the screen and fake a line.
    let bad = dir.join("bad\u{1b}[2J\nerror: forged.yaml");
    std::fs::write(
        &bad,
        "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: \"web\\e[31m\\nforged\"\nspec: {}\n",
    )
    .unwrap();
    let missing = dir.join("missing\u{9b}1A.yaml");
    for path in [&bad, &missing] {
        let output = switchyard()
            .args(["validate", "-f"])
            .arg(path)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.chars().any(|c| c.is_control() && c != '\n'),
            "a raw control character reached the terminal: {stderr:?}"
        );
        assert!(
            stderr
                .lines()
                .all(|line| !line.starts_with("error: forged")),
            "a forged line: {stderr}"
        );
        assert!(
            stderr.contains(r"\u{1b}[2J\nerror: forged.yaml") || stderr.contains(r"\u{9b}1A"),
            "{stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
