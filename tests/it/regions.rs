//! Regions and accounts end to end against moto, as a user runs it: the `switchyard` binary
//! with its table in us-east-1 and moto's default account, releases whose services live in
//! another region, or in another account reached through `spec.service.roleArn` (moto keeps
//! regions apart by the signing region, and accounts by the assumed role's account).

use std::time::{Duration, Instant};

use crate::daemon::{
    Daemon, apply, http_get, metric, start_daemon_via, stop_daemon, switchyard, wait_for,
};
use crate::moto::Moto;

const TABLE: &str = "switchyard-e2e";
const OTHER_ACCOUNT: &str = "444455556666";
const DEPLOYER: &str = "arn:aws:iam::444455556666:role/switchyard-deployer";

/// Creates the blue/green world of `name` with `moto_world.py` and these leading options
/// (`--region`, `--role`).
fn create_world_with(moto: &Moto, options: &[&str], name: &str) -> serde_json::Value {
    let args: Vec<&str> = options.iter().copied().chain([name]).collect();
    crate::daemon::run_world_script(moto, &args)
}

/// A release of `name` whose `spec.service` adds `service_extra` (say `region: eu-west-1`).
fn write_release(dir: &std::path::Path, name: &str, service_extra: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata:\n  name: {name}\nspec:\n  service: {{cluster: prod, name: {name}, {service_extra}}}\n  taskDefinition:\n    from: {name}\n    containers:\n      {name}:\n        image: registry.example.com/{name}:2.0.0\n  strategy:\n    codeDeploy:\n      application: {name}\n      deploymentGroup: {name}-prod\n"
        ),
    )
    .unwrap();
    path
}

/// moto's SDK configuration in `region`, as moto's default account or as `role`.
async fn sdk_in(moto: &Moto, region: &str, role: Option<&str>) -> aws_config::SdkConfig {
    let home = moto.sdk_config().await;
    let Some(role) = role else {
        return home
            .to_builder()
            .region(aws_config::Region::new(region.to_string()))
            .build();
    };
    let assumed = aws_sdk_sts::Client::new(&home)
        .assume_role()
        .role_arn(role)
        .role_session_name("the-test")
        .send()
        .await
        .expect("moto assumes the role");
    let credentials = assumed.credentials().unwrap();
    home.to_builder()
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_sdk_dynamodb::config::Credentials::new(
                    credentials.access_key_id(),
                    credentials.secret_access_key(),
                    Some(credentials.session_token().to_string()),
                    None,
                    "assumed",
                ),
            ),
        )
        .build()
}

/// The deployments of the `name-prod` group of application `name` in that place; none when
/// the application does not exist there.
async fn deployments(sdk: &aws_config::SdkConfig, name: &str) -> Vec<String> {
    match aws_sdk_codedeploy::Client::new(sdk)
        .list_deployments()
        .application_name(name)
        .deployment_group_name(format!("{name}-prod"))
        .send()
        .await
    {
        Ok(listed) => listed.deployments().to_vec(),
        Err(_) => Vec::new(),
    }
}

/// The revisions of the task definition family `name` in that place.
async fn revisions(sdk: &aws_config::SdkConfig, name: &str) -> Vec<String> {
    aws_sdk_ecs::Client::new(sdk)
        .list_task_definitions()
        .family_prefix(name)
        .send()
        .await
        .unwrap()
        .task_definition_arns()
        .to_vec()
}

fn create_table_and_apply(moto: &Moto, release: &std::path::Path) {
    let created = switchyard(moto, &["table", "create"]);
    assert!(
        created.status.success(),
        "table create: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    apply(moto, TABLE, release);
}

fn daemon(moto: &Moto) -> Daemon {
    let mut env = moto.env();
    env.push(("SWITCHYARD_EXTERNAL_ID", "switchyard-fleet-1".into()));
    start_daemon_via(env)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_in_another_region_is_deployed_there_once_and_not_at_home() {
    let moto = Moto::start();
    // The same service in both regions: a controller that ignored the region would find
    // (and deploy) the one at home.
    create_world_with(&moto, &[], "web");
    let ireland = create_world_with(&moto, &["--region", "eu-west-1"], "web");
    assert!(
        ireland["web"]["taskDefinitionArn"]
            .as_str()
            .unwrap()
            .contains(":eu-west-1:"),
        "{ireland}"
    );
    let dir = tempfile::tempdir().unwrap();
    let release = write_release(dir.path(), "web", "region: eu-west-1");
    create_table_and_apply(&moto, &release);

    let running = daemon(&moto);
    let view = wait_for(&moto, "web", Duration::from_secs(90), |v| {
        v["status"]["deploymentId"].is_string()
    });
    let log = stop_daemon(running, Duration::from_secs(15));

    let there = sdk_in(&moto, "eu-west-1", None).await;
    let home = sdk_in(&moto, "us-east-1", None).await;
    let deployed = deployments(&there, "web").await;
    assert_eq!(
        deployed,
        [view["status"]["deploymentId"].as_str().unwrap()],
        "{view:#}\n{log}"
    );
    assert_eq!(
        deployments(&home, "web").await,
        Vec::<String>::new(),
        "{log}"
    );
    assert_eq!(
        revisions(&there, "web").await.len(),
        2,
        "the candidate, there"
    );
    assert_eq!(
        revisions(&home, "web").await.len(),
        1,
        "nothing registered at home"
    );
    assert!(
        view["status"]["desiredTaskDefinition"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:ecs:eu-west-1:"),
        "{view:#}"
    );
    assert_eq!(view["status"]["region"], "eu-west-1", "{view:#}");
    // The table stays at home.
    let tables = |sdk: aws_config::SdkConfig| async move {
        aws_sdk_dynamodb::Client::new(&sdk)
            .list_tables()
            .send()
            .await
            .unwrap()
            .table_names()
            .to_vec()
    };
    assert_eq!(tables(home.clone()).await, [TABLE]);
    assert!(tables(there.clone()).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_in_another_account_is_deployed_there_as_its_role_assumed_once() {
    let moto = Moto::start();
    create_world_with(&moto, &[], "web");
    let theirs = create_world_with(&moto, &["--role", DEPLOYER], "web");
    assert!(
        theirs["web"]["taskDefinitionArn"]
            .as_str()
            .unwrap()
            .contains(&format!(":{OTHER_ACCOUNT}:")),
        "moto_world.py acted in the role's account: {theirs}"
    );
    let dir = tempfile::tempdir().unwrap();
    let release = write_release(dir.path(), "web", &format!("roleArn: \"{DEPLOYER}\""));
    create_table_and_apply(&moto, &release);

    let running = daemon(&moto);
    let address = running.http_address(Duration::from_secs(30));
    let started = Instant::now();
    let view = wait_for(&moto, "web", Duration::from_secs(90), |v| {
        v["status"]["deploymentId"].is_string()
    });
    // A minute of the controller following the deployment (moto's never progresses): the
    // role's session is reused, not assumed again per pass.
    let minute = Duration::from_secs(60);
    if let Some(left) = minute.checked_sub(started.elapsed()) {
        std::thread::sleep(left);
    }
    let metrics = http_get(address, "/metrics");
    let log = stop_daemon(running, Duration::from_secs(15));

    let there = sdk_in(&moto, "us-east-1", Some(DEPLOYER)).await;
    let home = sdk_in(&moto, "us-east-1", None).await;
    let candidate = view["status"]["desiredTaskDefinition"].as_str().unwrap();
    assert!(
        candidate.starts_with(&format!(
            "arn:aws:ecs:us-east-1:{OTHER_ACCOUNT}:task-definition/web:2"
        )),
        "{view:#}\n{log}"
    );
    assert_eq!(
        revisions(&there, "web").await.len(),
        2,
        "the candidate, there"
    );
    assert_eq!(
        revisions(&home, "web").await.len(),
        1,
        "nothing registered at home"
    );
    assert_eq!(
        deployments(&there, "web").await,
        [view["status"]["deploymentId"].as_str().unwrap()],
        "{log}"
    );
    assert_eq!(
        deployments(&home, "web").await,
        Vec::<String>::new(),
        "{log}"
    );
    assert_eq!(view["status"]["account"], OTHER_ACCOUNT, "{view:#}");

    let assumed = metric(
        &metrics,
        "switchyard_aws_calls_total",
        &[("service", "sts"), ("operation", "AssumeRole")],
    );
    assert!(
        (1.0..=3.0).contains(&assumed),
        "{assumed} AssumeRole calls over a minute\n{metrics}"
    );
    // Every call about the release went to the role's account; the table's to home.
    let followed = metric(
        &metrics,
        "switchyard_aws_calls_total",
        &[("operation", "GetDeployment"), ("account", OTHER_ACCOUNT)],
    );
    assert!(followed >= 1.0, "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "switchyard_aws_calls_total",
            &[("service", "codedeploy"), ("account", "123456789012")],
        ),
        0.0,
        "{metrics}"
    );
    assert!(
        metric(
            &metrics,
            "switchyard_aws_calls_total",
            &[("service", "dynamodb"), ("account", "123456789012")],
        ) >= 1.0,
        "{metrics}"
    );
}
