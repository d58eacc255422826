//! `release set`, `pause`, `resume`, `promote`, `abort`, `retry` and `history`, through the
//! binary against moto: conditional writes that never lose a concurrent update, requests
//! that never bump the generation, and an audit trail naming the caller's AWS identity.

use std::collections::BTreeSet;

use serde_json::Value;
use switchyard::ports::ReleaseStore;

use crate::cli_support::{Cli, MOTO_IDENTITY, assert_exit, labels, path_arg, release_yaml};

fn apply(cli: &Cli, name: &str) {
    let file = cli.write(
        &format!("{name}.yaml"),
        &release_yaml(name, "1.0", &labels(&[])),
    );
    cli.ok(&["apply", "-f", path_arg(&file)]);
}

fn generation(cli: &Cli, name: &str) -> u64 {
    cli.get(name)["metadata"]["generation"].as_u64().unwrap()
}

fn history(cli: &Cli, name: &str) -> Vec<Value> {
    let history: Value = serde_json::from_str(&cli.ok(&["history", name, "-o", "json"])).unwrap();
    history["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn release_set_changes_the_named_containers_and_refuses_missing_releases_and_bad_images() {
    let cli = Cli::start();
    apply(&cli, "web");

    let stdout = cli.ok(&[
        "release",
        "set",
        "web",
        "--image",
        "web=registry.example.com/web:1.1",
        "--env",
        "web:LOG_LEVEL=debug",
        "--env",
        "web:URL=http://a:1/?q=2",
    ]);
    assert_eq!(stdout, "release/web generation 2\n");
    let web = cli.get("web");
    let container = &web["spec"]["taskDefinition"]["containers"]["web"];
    assert_eq!(container["image"], "registry.example.com/web:1.1");
    assert_eq!(
        container["environment"],
        serde_json::json!({"FEATURE_X": "on", "LOG_LEVEL": "debug", "URL": "http://a:1/?q=2"})
    );
    assert_eq!(web["metadata"]["updatedBy"], MOTO_IDENTITY);

    // A container the spec does not list yet is added.
    let stdout = cli.ok(&[
        "release",
        "set",
        "web",
        "--image",
        "envoy=registry.example.com/envoy:1.30",
    ]);
    assert_eq!(stdout, "release/web generation 3\n");
    let containers = &cli.get("web")["spec"]["taskDefinition"]["containers"];
    assert_eq!(
        containers["envoy"]["image"],
        "registry.example.com/envoy:1.30"
    );
    assert_eq!(containers["web"]["image"], "registry.example.com/web:1.1");

    // Setting what is already there writes nothing.
    let stdout = cli.ok(&[
        "release",
        "set",
        "web",
        "--image",
        "envoy=registry.example.com/envoy:1.30",
    ]);
    assert_eq!(
        stdout,
        "release/web unchanged (generation 3): the spec already says so\n"
    );

    // A missing release: 3. An invalid image: 1, naming the field. Bad flags: 2. No identity: 4.
    let output = cli.run(&["release", "set", "nope", "--image", "nope=registry/nope:1"]);
    let (_, stderr) = assert_exit(&output, 3, "release set on a missing release");
    assert!(stderr.contains("release nope not found"), "{stderr}");
    let output = cli.run(&[
        "release",
        "set",
        "web",
        "--image",
        "web=registry/web:has space",
    ]);
    let (_, stderr) = assert_exit(&output, 1, "release set with an invalid image");
    assert!(
        stderr.contains("nothing was written")
            && stderr
                .contains("spec.taskDefinition.containers.web.image: must not contain whitespace"),
        "{stderr}"
    );
    let output = cli.run(&["release", "set", "web", "--env", "web:1BAD=x"]);
    let (_, stderr) = assert_exit(&output, 1, "release set with an invalid variable name");
    assert!(
        stderr.contains("spec.taskDefinition.containers.web.environment.1BAD"),
        "{stderr}"
    );
    for args in [
        vec!["release", "set", "web"],
        vec!["release", "set", "web", "--image", "web"],
        vec!["release", "set", "web", "--env", "LOG=1"],
        vec!["release", "set", "--image", "web=a:1"],
    ] {
        assert_exit(&cli.run(&args), 2, &args.join(" "));
    }
    let output = cli
        .command(&["release", "set", "web", "--image", "web=registry/web:9"])
        .env("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let (_, stderr) = assert_exit(&output, 4, "release set without an identity");
    assert!(
        stderr.contains("the caller's AWS identity could not be determined"),
        "{stderr}"
    );
    assert_eq!(generation(&cli, "web"), 3, "nothing was written");

    // The history: each write, by the caller's identity, newest first.
    let items = history(&cli, "web");
    let actions: Vec<(&str, u64)> = items
        .iter()
        .map(|i| {
            (
                i["action"].as_str().unwrap(),
                i["generation"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [("release set", 3), ("release set", 2), ("apply", 1)]
    );
    assert!(items.iter().all(|i| i["by"] == MOTO_IDENTITY), "{items:?}");
    let detail = items[1]["detail"].as_str().unwrap();
    assert!(
        detail.contains("spec.taskDefinition.containers.web.image: \"registry.example.com/web:1.0\" -> \"registry.example.com/web:1.1\""),
        "{detail}"
    );
    assert!(
        detail.contains("environment.LOG_LEVEL: (none) -> (hidden)") && !detail.contains("debug"),
        "environment values are never recorded: {detail}"
    );
    let table = cli.ok(&["history", "web"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("TIME"), "{table}");
    assert!(
        lines[1].contains(&format!("   3     release set   {MOTO_IDENTITY}   ")),
        "{table}"
    );
    assert_exit(
        &cli.run(&["history", "nope"]),
        3,
        "history of a missing release",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_release_set_commands_all_land_and_bump_the_generation_once_each() {
    let cli = Cli::start();
    apply(&cli, "web");
    const WRITERS: usize = 6;
    let children: Vec<_> = (0..WRITERS)
        .map(|i| {
            let mut command = cli.command(&[
                "release",
                "set",
                "web",
                "--env",
                &format!("web:WRITER_{i}=value-{i}"),
            ]);
            command
                .env("RUST_LOG", "switchyard=debug")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            command.spawn().expect("switchyard starts")
        })
        .collect();
    let mut generations = BTreeSet::new();
    let mut conflicts = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        let (stdout, stderr) = assert_exit(&output, 0, "a concurrent release set");
        conflicts += stderr.matches("reading it again").count();
        let generation: u64 = stdout
            .trim()
            .strip_prefix("release/web generation ")
            .unwrap_or_else(|| panic!("{stdout}"))
            .parse()
            .unwrap();
        generations.insert(generation);
    }
    eprintln!("{WRITERS} concurrent writers lost {conflicts} race(s) and retried");
    assert_eq!(
        generations,
        (2..=1 + WRITERS as u64).collect::<BTreeSet<_>>(),
        "each writer created its own generation"
    );
    let web = cli.get("web");
    assert_eq!(web["metadata"]["generation"], 1 + WRITERS as u64);
    let environment = &web["spec"]["taskDefinition"]["containers"]["web"]["environment"];
    for i in 0..WRITERS {
        assert_eq!(
            environment[format!("WRITER_{i}")],
            format!("value-{i}"),
            "{web:#}"
        );
    }
    assert_eq!(environment["FEATURE_X"], "on");
    let audited: BTreeSet<u64> = cli
        .store()
        .await
        .get("web")
        .await
        .unwrap()
        .unwrap()
        .audit
        .iter()
        .filter(|e| e.action == "release set")
        .map(|e| e.generation)
        .collect();
    assert_eq!(audited, generations);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_name_the_current_generation_without_bumping_it_and_pause_and_resume_bump_it() {
    let cli = Cli::start();
    apply(&cli, "web");
    let store = cli.store().await;

    for (command, will) in [
        (
            "promote",
            "shifts production traffic to generation 1's deployment",
        ),
        (
            "abort",
            "stops generation 1's deployment in flight and rolls back",
        ),
        (
            "retry",
            "if generation 1 rolled back or failed, the controller deploys it again",
        ),
    ] {
        let stdout = cli.ok(&[command, "web"]);
        assert!(
            stdout.starts_with(&format!(
                "release/web {command} requested for generation 1 by {MOTO_IDENTITY} (no status yet)\n"
            )),
            "{stdout}"
        );
        assert!(stdout.contains(will), "{stdout}");
        assert_eq!(
            generation(&cli, "web"),
            1,
            "a request never bumps the generation"
        );
    }
    let requests = store.get("web").await.unwrap().unwrap().requests;
    for request in [requests.promote, requests.abort, requests.retry] {
        let request = request.expect("recorded");
        assert_eq!(request.generation, 1);
        assert_eq!(request.requested_by, MOTO_IDENTITY);
    }

    let stdout = cli.ok(&["pause", "web"]);
    assert!(
        stdout.starts_with("release/web paused (generation 2)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("a deployment in flight is still followed"),
        "{stdout}"
    );
    assert_eq!(cli.get("web")["spec"]["paused"], true);
    assert_eq!(
        cli.ok(&["pause", "web"]),
        "release/web already paused (generation 2)\n"
    );
    // A request now names generation 2.
    assert!(cli.ok(&["promote", "web"]).contains("for generation 2 by"));
    let stdout = cli.ok(&["resume", "web"]);
    assert!(
        stdout.starts_with("release/web resumed (generation 3)\n"),
        "{stdout}"
    );
    assert_eq!(
        cli.get("web")["spec"].get("paused"),
        None,
        "false is the default"
    );
    assert_eq!(
        cli.ok(&["resume", "web"]),
        "release/web is not paused (generation 3); nothing to resume\n"
    );
    for command in ["promote", "abort", "retry", "pause", "resume"] {
        let output = cli.run(&[command, "nope"]);
        let (_, stderr) = assert_exit(&output, 3, &format!("{command} nope"));
        assert!(stderr.contains("release nope not found"), "{stderr}");
    }

    let items = history(&cli, "web");
    let actions: Vec<(&str, u64)> = items
        .iter()
        .map(|i| {
            (
                i["action"].as_str().unwrap(),
                i["generation"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("resume", 3),
            ("promote", 2),
            ("pause", 2),
            ("retry", 1),
            ("abort", 1),
            ("promote", 1),
            ("apply", 1)
        ]
    );
    assert!(items.iter().all(|i| i["by"] == MOTO_IDENTITY), "{items:?}");
    assert_eq!(items[2]["detail"], "spec.paused: (none) -> true");
    assert_eq!(items[3]["detail"], "retry requested");
}
