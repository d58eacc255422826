//! `apply` (idempotent, `--dry-run`, `--prune` with a selector or `--all`) and `delete`,
//! through the binary against moto.

use switchyard::model::{Phase, ReleaseStatus};
use switchyard::ports::ReleaseStore;

use crate::cli_support::{Cli, MOTO_IDENTITY, assert_exit, labels, path_arg, release_yaml};

/// Writes a status as the controller would (its version read first).
async fn write_status(cli: &Cli, name: &str, status: ReleaseStatus) {
    let store = cli.store().await;
    let version = store.get(name).await.unwrap().unwrap().status_version;
    store
        .write_status(name, &status, version, None)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_is_idempotent_dry_run_writes_nothing_and_prune_deletes_only_selected_releases() {
    let cli = Cli::start();
    let team_a = labels(&[("team", "a"), ("tier", "web")]);
    cli.write("releases/web.yaml", &release_yaml("web", "1.0", &team_a));
    cli.write("releases/api.yaml", &release_yaml("api", "1.0", &team_a));
    cli.write("releases/old.yaml", &release_yaml("old", "1.0", &team_a));
    cli.write(
        "releases/other.yaml",
        &release_yaml("other", "1.0", &labels(&[("team", "b"), ("tier", "web")])),
    );
    let dir = cli.dir.path().join("releases");
    let dir = path_arg(&dir);

    // A dry run on an empty table: what would be created, nothing written.
    let stdout = cli.ok(&["apply", "-f", dir, "--dry-run"]);
    assert_eq!(
        stdout,
        "release/api created (dry run)\nrelease/old created (dry run)\n\
         release/other created (dry run)\nrelease/web created (dry run)\n\
         4 created, 0 configured, 0 unchanged (dry run: nothing was written)\n"
    );
    assert!(cli.names().is_empty());

    let stdout = cli.ok(&["apply", "-f", dir]);
    assert!(
        stdout.contains("release/web created (generation 1)\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("4 created, 0 configured, 0 unchanged\n"),
        "{stdout}"
    );
    // Idempotent: nothing changes, nothing is written, the generation stays.
    let stdout = cli.ok(&["apply", "-f", dir]);
    assert!(
        stdout.contains("release/web unchanged (generation 1)\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("0 created, 0 configured, 4 unchanged\n"),
        "{stdout}"
    );
    assert_eq!(cli.get("web")["metadata"]["generation"], 1);

    // A changed document: the dry run shows the field that differs, and writes nothing.
    cli.write("releases/web.yaml", &release_yaml("web", "2.0", &team_a));
    let stdout = cli.ok(&["apply", "-f", dir, "--dry-run"]);
    assert!(
        stdout.contains(
            "release/web configured (dry run)\n  spec.taskDefinition.containers.web.image: \
             \"registry.example.com/web:1.0\" -> \"registry.example.com/web:2.0\"\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("release/api unchanged (dry run)\n"),
        "{stdout}"
    );
    assert_eq!(cli.get("web")["metadata"]["generation"], 1);

    // --prune needs a scope; a scope needs --prune.
    for args in [
        vec!["apply", "-f", dir, "--prune"],
        vec!["apply", "-f", dir, "--selector", "team=a"],
        vec!["apply", "-f", dir, "--all"],
        vec![
            "apply",
            "-f",
            dir,
            "--prune",
            "--all",
            "--selector",
            "team=a",
        ],
        vec!["apply", "-f", dir, "--prune", "--selector", "team"],
    ] {
        let output = cli.run(&args);
        assert_exit(&output, 2, &args.join(" "));
    }
    assert_eq!(cli.get("web")["metadata"]["generation"], 1);

    // `old` is mid-deployment when it leaves git; `other` belongs to another team.
    write_status(
        &cli,
        "old",
        ReleaseStatus {
            observed_generation: 1,
            phase: Phase::Progressing,
            deployment_id: Some("d-OLD123".into()),
            message: "d-OLD123 is shifting traffic".into(),
            ..ReleaseStatus::default()
        },
    )
    .await;
    std::fs::remove_file(cli.dir.path().join("releases/old.yaml")).unwrap();
    std::fs::remove_file(cli.dir.path().join("releases/other.yaml")).unwrap();
    let stdout = cli.ok(&[
        "apply",
        "-f",
        dir,
        "--prune",
        "-l",
        "team=a",
        "-l",
        "tier=web",
        "--dry-run",
    ]);
    assert!(
        stdout.contains("release/old pruned (dry run)\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("release/other"), "{stdout}");
    assert_eq!(cli.names(), ["api", "old", "other", "web"]);

    let stdout = cli.ok(&[
        "apply",
        "-f",
        dir,
        "--prune",
        "--selector",
        "team=a",
        "--selector",
        "tier=web",
    ]);
    assert!(
        stdout.contains("release/web configured (generation 2)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "release/old pruned\n  warning: release/old was Progressing: its deployment \
             d-OLD123 keeps running under CodeDeploy but switchyard no longer follows it"
        ),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("0 created, 1 configured, 1 unchanged, 1 pruned\n"),
        "{stdout}"
    );
    assert_eq!(cli.names(), ["api", "other", "web"]);
    // A selector that matches nothing left prunes nothing.
    let stdout = cli.ok(&["apply", "-f", dir, "--prune", "-l", "team=c"]);
    assert!(!stdout.contains("pruned"), "{stdout}");

    // --all: everything not in the documents goes (a settled release: no warning).
    let stdout = cli.ok(&["apply", "-f", dir, "--prune", "--all"]);
    assert!(stdout.contains("release/other pruned\n"), "{stdout}");
    assert!(!stdout.contains("warning"), "{stdout}");
    assert_eq!(cli.names(), ["api", "web"]);

    // delete: one release, the same semantics.
    write_status(
        &cli,
        "api",
        ReleaseStatus {
            observed_generation: 1,
            phase: Phase::AwaitingPromotion,
            deployment_id: Some("d-API".into()),
            ..ReleaseStatus::default()
        },
    )
    .await;
    let stdout = cli.ok(&["delete", "api"]);
    assert!(
        stdout.starts_with(
            "release/api deleted\n  warning: release/api was AwaitingPromotion: its deployment \
             d-API keeps running"
        ),
        "{stdout}"
    );
    let output = cli.run(&["delete", "api"]);
    let (_, stderr) = assert_exit(&output, 3, "delete a missing release");
    assert!(stderr.contains("release api not found"), "{stderr}");
    assert_eq!(cli.ok(&["delete", "api", "--ignore-not-found"]), "");
    assert_eq!(cli.names(), ["web"]);

    // Every write is in the audit trail, by the caller's identity.
    let history: serde_json::Value =
        serde_json::from_str(&cli.ok(&["history", "web", "-o", "json"])).unwrap();
    let items = history["items"].as_array().unwrap();
    let audit: Vec<(&str, u64, &str)> = items
        .iter()
        .map(|i| {
            (
                i["action"].as_str().unwrap(),
                i["generation"].as_u64().unwrap(),
                i["by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        audit,
        [("apply", 2, MOTO_IDENTITY), ("apply", 1, MOTO_IDENTITY)]
    );
    assert_eq!(
        items[0]["detail"],
        "configured: spec.taskDefinition.containers.web.image"
    );
    assert_eq!(items[1]["detail"], "created");
}
