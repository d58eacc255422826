//! Where a rollout in flight stands, as `/metrics` and the dashboard show it: the stage of
//! each strategy (`switchyard_rollout_stage`), the ECS `PAUSE` hook that waits
//! (`switchyard_ecs_hook_waiting`), a task-set canary's step with its weights and the end of a
//! timed pause. A change of stage removes the old series; the end of the rollout removes them
//! all.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::ports::StoredRelease;
use switchyard::state::ControllerState;

use crate::http::{
    chromium_flags, fetch, promtool_check, run_with_limit, scratch_dir, serve, tool,
};

const TD: &str = "arn:aws:ecs:us-east-1:111122223333:task-definition";

fn rollout(outcome: Option<&str>) -> Value {
    let mut rollout = json!({
        "serial": 1, "candidate": format!("{TD}/app:2"), "fingerprint": "f",
        "target": "t", "generation": 1, "startedAt": "2026-01-01T10:00:00Z",
    });
    if let Some(outcome) = outcome {
        rollout["outcome"] = json!(outcome);
    }
    rollout
}

fn release(name: &str, strategy: Value, status: Value) -> StoredRelease {
    serde_json::from_value(json!({
        "name": name,
        "generation": 1,
        "spec": {
            "service": {"cluster": "prod", "name": name},
            "taskDefinition": {"from": name, "containers": {name: {"image": "registry.example.com/app:2"}}},
            "strategy": strategy,
        },
        "status": status,
    }))
    .expect("a valid stored release")
}

/// An ECS blue/green release at `stage`, with `hook` waiting when given; `outcome` ends it.
fn ecs(stage: &str, hook: Option<&str>, outcome: Option<&str>) -> StoredRelease {
    let mut ecs = json!({"serviceDeployment": "arn:aws:ecs:us-east-1:111122223333:service-deployment/prod/api/abc", "lifecycleStage": stage});
    if let Some(hook) = hook {
        ecs["waitingHook"] = json!(hook);
    }
    release(
        "api",
        json!({"ecs": {"promotion": "manual"}}),
        json!({
            "observedGeneration": 1,
            "phase": if outcome.is_some() { "Healthy" } else if hook.is_some() { "AwaitingPromotion" } else { "Progressing" },
            "message": "m",
            "rollout": rollout(outcome),
            "strategy": {"ecs": ecs},
        }),
    )
}

/// A task-set canary at step 2 of 4, a 5 s bake at 10%.
fn task_sets() -> StoredRelease {
    release(
        "web",
        json!({"taskSets": {"targetGroups": ["web-a", "web-b"], "container": {"name": "web", "port": 8080}}}),
        json!({
            "observedGeneration": 1,
            "phase": "Progressing",
            "message": "step 2/4: baking 10% on the candidate until 2026-01-01T10:00:35Z",
            "rollout": rollout(None),
            "trafficWeights": {"live": 90.0, "candidate": 10.0},
            "strategy": {"taskSets": {
                "stage": "steps", "stepIndex": 1, "step": "pause 5s", "stepCount": 4,
                "pauseEndsAt": "2026-01-01T10:00:35Z", "weight": 10,
                "weights": [{"at": "2026-01-01T10:00:30Z", "candidate": 10}],
            }},
        }),
    )
}

/// The samples of `family` in an exposition, as `labels value` lines, sorted.
fn samples(text: &str, family: &str) -> Vec<String> {
    let mut samples: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix(family))
        .filter(|rest| rest.starts_with('{'))
        .map(str::to_string)
        .collect();
    samples.sort();
    samples
}

async fn metrics(state: &ControllerState) -> String {
    let response = fetch(state, "/metrics").await;
    assert_eq!(response.status, 200);
    response.body
}

#[tokio::test]
async fn metrics_follow_the_stage_and_the_waiting_hook_and_drop_the_old_series() {
    let state = ControllerState::new();
    state.update_release(ecs("POST_TEST_TRAFFIC_SHIFT", Some("hook-1"), None));
    state.update_release(task_sets());
    let text = metrics(&state).await;
    assert_eq!(
        samples(&text, "switchyard_rollout_stage"),
        [
            r#"{release="api",strategy="ecs",stage="POST_TEST_TRAFFIC_SHIFT"} 1"#,
            r#"{release="web",strategy="taskSets",stage="steps"} 1"#,
        ],
        "{text}"
    );
    assert_eq!(
        samples(&text, "switchyard_ecs_hook_waiting"),
        [r#"{release="api",stage="POST_TEST_TRAFFIC_SHIFT"} 1"#],
        "{text}"
    );
    assert_eq!(
        samples(&text, "switchyard_candidate_weight"),
        [r#"{release="web"} 10.0"#],
        "{text}"
    );
    promtool_check(&text);

    // The hook answered, the deployment moves on: one stage series, no hook series.
    state.update_release(ecs("PRODUCTION_TRAFFIC_SHIFT", None, None));
    let text = metrics(&state).await;
    assert_eq!(
        samples(&text, "switchyard_rollout_stage"),
        [
            r#"{release="api",strategy="ecs",stage="PRODUCTION_TRAFFIC_SHIFT"} 1"#,
            r#"{release="web",strategy="taskSets",stage="steps"} 1"#,
        ],
        "{text}"
    );
    assert!(
        samples(&text, "switchyard_ecs_hook_waiting").is_empty(),
        "{text}"
    );

    // The rollout ends (its last stage stays in the status): its series go.
    state.update_release(ecs("CLEAN_UP", None, Some("Succeeded")));
    let text = metrics(&state).await;
    assert_eq!(
        samples(&text, "switchyard_rollout_stage"),
        [r#"{release="web",strategy="taskSets",stage="steps"} 1"#],
        "{text}"
    );

    // Another replica moved the release on: a resync shows it. Then it is deleted.
    state.replace_releases(vec![
        ecs("BAKE_TIME", None, None).into(),
        task_sets().into(),
    ]);
    let text = metrics(&state).await;
    assert_eq!(
        samples(&text, "switchyard_rollout_stage"),
        [
            r#"{release="api",strategy="ecs",stage="BAKE_TIME"} 1"#,
            r#"{release="web",strategy="taskSets",stage="steps"} 1"#,
        ],
        "{text}"
    );
    state.replace_releases(vec![task_sets().into()]);
    state.remove_release("web");
    let text = metrics(&state).await;
    for family in [
        "switchyard_rollout_stage",
        "switchyard_ecs_hook_waiting",
        "switchyard_candidate_weight",
    ] {
        assert!(samples(&text, family).is_empty(), "{family}: {text}");
    }
    promtool_check(&text);
}

#[test]
fn status_shows_the_step_with_its_weights_and_pause_end_and_the_waiting_hook() {
    let status = |release: StoredRelease| release.status.unwrap().stage();
    assert_eq!(
        status(task_sets()).as_deref(),
        Some(
            "step 2/4: pause 5s until 2026-01-01T10:00:35Z, 10% on the candidate, 90% on the live group"
        )
    );
    assert_eq!(
        status(ecs("POST_TEST_TRAFFIC_SHIFT", Some("hook-1"), None)).as_deref(),
        Some("POST_TEST_TRAFFIC_SHIFT (PAUSE hook hook-1 waits for an answer)")
    );
    assert_eq!(
        status(ecs("BAKE_TIME", None, None)).as_deref(),
        Some("BAKE_TIME")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_canary_step_and_the_waiting_hook() {
    let chromium = tool(
        "chromium",
        "SWITCHYARD_CHROMIUM",
        "apt-get install -y chromium prometheus",
    );
    let state = ControllerState::new();
    state.update_release(ecs("POST_TEST_TRAFFIC_SHIFT", Some("hook-1"), None));
    state.update_release(task_sets());
    let server = serve(&state).await;
    let url = format!("http://{}/", server.addr);
    let output = tokio::task::spawn_blocking(move || {
        let profile = scratch_dir("chromium-stages");
        run_with_limit(
            Command::new(&chromium)
                .args(chromium_flags(profile.path()))
                .args(["--virtual-time-budget=3000", "--dump-dom"])
                .arg(&url),
            Duration::from_secs(120),
        )
    })
    .await
    .unwrap();
    assert!(output.status.success());
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains(
            "step 2/4: pause 5s until 2026-01-01T10:00:35Z, 10% on the candidate, 90% on the live group"
        ),
        "{dom}"
    );
    assert!(
        dom.contains("POST_TEST_TRAFFIC_SHIFT (PAUSE hook hook-1 waits for an answer)"),
        "{dom}"
    );
}
