//! The simulated AWS keeps accounts and regions apart, and STS refuses as AWS does.

use std::time::Duration;

use super::*;
use crate::ports::{AssumeRoleRequest, AwsErrorKind, AwsProvider};

const OTHER_ACCOUNT: &str = "444455556666";
const ROLE: &str = "arn:aws:iam::444455556666:role/switchyard-deployer";

fn request(role_arn: &str, external_id: Option<&str>) -> AssumeRoleRequest {
    AssumeRoleRequest {
        role_arn: role_arn.to_string(),
        external_id: external_id.map(str::to_string),
        session_name: "switchyard-replica-1".into(),
        duration: Duration::from_secs(3600),
    }
}

async fn describe(ports: &AwsPorts, cluster: &str) -> Result<usize, AwsError> {
    ports
        .ecs
        .describe_services(cluster, &["web".to_string()])
        .await
        .map(|services| services.len())
}

#[tokio::test(start_paused = true)]
async fn a_service_in_one_region_is_invisible_from_another() {
    let aws = SimAws::new(Clock::fixed_epoch());
    let ireland = aws.scoped(ACCOUNT, "eu-west-1");
    let handles = ireland.add_bluegreen_service(BlueGreenSetup::new("prod", "web"));
    assert!(
        handles
            .service_arn
            .starts_with("arn:aws:ecs:eu-west-1:111122223333:"),
        "{}",
        handles.service_arn
    );
    assert_eq!(
        describe(&aws.ports_for("eu-west-1", None), "prod")
            .await
            .unwrap(),
        1
    );
    // From the home region the cluster does not exist.
    let error = describe(&aws.ports_for(REGION, None), "prod")
        .await
        .unwrap_err();
    assert_eq!(error.kind, AwsErrorKind::NotFound, "{error}");
    // Nor does its deployment group, nor its task definition.
    let home = aws.ports_for(REGION, None);
    assert!(
        home.codedeploy
            .get_deployment_group("web", "web-prod")
            .await
            .is_err()
    );
    assert!(
        home.ecs
            .describe_task_definition(&handles.task_definition.arn)
            .await
            .is_err()
    );
    // A cluster ARN of eu-west-1 asked in us-east-1 names no cluster there.
    let arn = "arn:aws:ecs:eu-west-1:111122223333:cluster/prod";
    assert!(describe(&home, arn).await.is_err());
    assert_eq!(
        describe(&aws.ports_for("eu-west-1", None), arn)
            .await
            .unwrap(),
        1
    );
    assert_eq!(ireland.scope_call_counts()["ecs:DescribeServices"], 2);
    assert_eq!(aws.scope_call_counts()["ecs:DescribeServices"], 2);
}

#[tokio::test(start_paused = true)]
async fn another_account_is_reached_only_through_a_session_of_its_role() {
    let aws = SimAws::new(Clock::fixed_epoch());
    let theirs = aws.scoped(OTHER_ACCOUNT, REGION);
    theirs.add_bluegreen_service(BlueGreenSetup::new("prod", "web"));
    aws.add_role(SimRole::new(ROLE).requiring_external_id("fleet-7"));
    // The controller's own credentials see only its own account.
    assert!(
        describe(&aws.ports_for(REGION, None), "prod")
            .await
            .is_err()
    );

    let sts = aws.sts();
    let error = sts.assume_role(&request(ROLE, None)).await.unwrap_err();
    assert_eq!(error.kind, AwsErrorKind::AccessDenied, "{error}");
    assert!(error.message.contains(ROLE), "{error}");
    let error = sts
        .assume_role(&request(ROLE, Some("fleet-8")))
        .await
        .unwrap_err();
    assert_eq!(error.kind, AwsErrorKind::AccessDenied, "{error}");

    let session = sts
        .assume_role(&request(ROLE, Some("fleet-7")))
        .await
        .unwrap();
    let ports = aws.ports_for(REGION, Some(&session));
    assert_eq!(describe(&ports, "prod").await.unwrap(), 1);
    assert_eq!(aws.session_names(), ["switchyard-replica-1"]);

    // An hour later the session has expired: every call is refused.
    tokio::time::advance(Duration::from_secs(3600)).await;
    let error = describe(&ports, "prod").await.unwrap_err();
    assert_eq!(error.kind, AwsErrorKind::AccessDenied);
    assert_eq!(error.code.as_deref(), Some("ExpiredTokenException"));

    // A revoked trust refuses new sessions.
    aws.revoke_role(ROLE);
    assert!(
        sts.assume_role(&request(ROLE, Some("fleet-7")))
            .await
            .is_err()
    );
    aws.trust_role(ROLE);
    assert!(
        sts.assume_role(&request(ROLE, Some("fleet-7")))
            .await
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn assume_role_refuses_what_sts_refuses() {
    let aws = SimAws::new(Clock::fixed_epoch());
    let sts = aws.sts();
    // A role that does not exist is refused like one that does not trust the caller.
    let error = sts.assume_role(&request(ROLE, None)).await.unwrap_err();
    assert_eq!(error.kind, AwsErrorKind::AccessDenied);
    aws.add_role(SimRole::new(ROLE));
    let mut bad_name = request(ROLE, None);
    bad_name.session_name = "host name".into();
    assert_eq!(
        sts.assume_role(&bad_name).await.unwrap_err().kind,
        AwsErrorKind::InvalidRequest
    );
    let mut too_long = request(ROLE, None);
    too_long.duration = Duration::from_secs(2 * 3600);
    assert_eq!(
        sts.assume_role(&too_long).await.unwrap_err().kind,
        AwsErrorKind::InvalidRequest,
        "longer than the role's maximum session"
    );
    // Credentials STS never issued are refused.
    let session = sts.assume_role(&request(ROLE, None)).await.unwrap();
    let unknown = crate::ports::RoleSession {
        access_key_id: "ASIAUNKNOWN".into(),
        ..session
    };
    let error = describe(&aws.ports_for(REGION, Some(&unknown)), "prod")
        .await
        .unwrap_err();
    assert_eq!(error.code.as_deref(), Some("UnrecognizedClientException"));
}
