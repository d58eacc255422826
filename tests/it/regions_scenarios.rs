//! Regions and accounts against the simulated AWS, which keeps them apart: releases whose
//! services live in another region or another account are deployed there, as their roles;
//! a role the controller cannot assume fails only its own releases, names the role, backs
//! off, and recovers by itself once the role trusts the controller.

use std::collections::BTreeMap;

use switchyard::access::SessionSettings;
use switchyard::controller;
use switchyard::model::parse::parse_documents;
use switchyard::model::{AuditAction, Phase, Reason};
use switchyard::ports::{ReleaseStore, SpecPrecondition, SpecWrite};
use switchyard::sim::{ACCOUNT, BlueGreenSetup, REGION, SimAws, SimRole};

use crate::harness::{Harness, ReleaseOptions, minutes, release_yaml};

const PAYMENTS: &str = "444455556666";
const PAYMENTS_ROLE: &str = "arn:aws:iam::444455556666:role/switchyard-deployer";
const LEGACY: &str = "777788889999";
const LEGACY_ROLE: &str = "arn:aws:iam::777788889999:role/switchyard-deployer";
const EXTERNAL_ID: &str = "switchyard-fleet-1";

/// Writes release `name` with `extra` added to its `spec.service` (`region: ...`).
async fn apply(h: &Harness, name: &str, extra: &str) {
    let yaml = release_yaml(name, &ReleaseOptions::default()).replace(
        &format!("service: {{cluster: prod, name: {name}}}"),
        &format!("service: {{cluster: prod, name: {name}, {extra}}}"),
    );
    let documents = parse_documents(&yaml).expect("the test document is valid");
    h.store
        .put_spec(SpecWrite {
            name: name.into(),
            labels: BTreeMap::new(),
            spec: serde_json::to_value(&documents[0].spec).unwrap(),
            precondition: SpecPrecondition::Any,
            written_by: "test".into(),
            written_at: h.clock.now(),
            action: AuditAction::Apply,
            detail: String::new(),
        })
        .await
        .unwrap();
}

/// The releases that have deployments in `place` (from their descriptions).
fn deployed_in(place: &SimAws) -> Vec<String> {
    let mut releases: Vec<String> = place
        .all_deployments()
        .iter()
        .filter_map(|d| d.description.as_deref())
        .filter_map(switchyard::reconcile::codedeploy::parse_deployment_description)
        .map(|(release, _)| release)
        .collect();
    releases.dedup();
    releases
}

#[tokio::test(start_paused = true)]
async fn every_release_is_deployed_where_it_lives_and_a_refused_role_fails_only_its_own() {
    let h = Harness::new();
    h.add_service("web", |_| {});
    let ireland = h.aws.scoped(ACCOUNT, "eu-west-1");
    ireland.add_bluegreen_service(BlueGreenSetup::new("prod", "api"));
    let payments = h.aws.scoped(PAYMENTS, REGION);
    payments.add_bluegreen_service(BlueGreenSetup::new("prod", "pay"));
    h.aws
        .add_role(SimRole::new(PAYMENTS_ROLE).requiring_external_id(EXTERNAL_ID));
    let legacy = h.aws.scoped(LEGACY, "eu-west-1");
    legacy.add_bluegreen_service(BlueGreenSetup::new("prod", "old"));
    h.aws
        .add_role(SimRole::new(LEGACY_ROLE).requiring_external_id(EXTERNAL_ID));
    h.aws.revoke_role(LEGACY_ROLE);

    apply(&h, "web", "").await;
    apply(&h, "api", "region: eu-west-1").await;
    apply(&h, "pay", &format!("roleArn: \"{PAYMENTS_ROLE}\"")).await;
    apply(
        &h,
        "old",
        &format!("region: eu-west-1, roleArn: \"{LEGACY_ROLE}\""),
    )
    .await;
    let ctx = h
        .context()
        .with_session_settings(SessionSettings::for_replica(
            "replica-1",
            Some(EXTERNAL_ID.into()),
        ));
    let state = ctx.state.clone();
    let checks = async {
        tokio::time::sleep(minutes(40)).await;
        for (name, region, account) in [
            ("web", REGION, ACCOUNT),
            ("api", "eu-west-1", ACCOUNT),
            ("pay", REGION, PAYMENTS),
        ] {
            let status = h.status(name).await;
            assert_eq!(status.phase, Phase::Healthy, "{name}: {}", status.message);
            assert_eq!(status.region.as_deref(), Some(region), "{name}");
            assert_eq!(status.account.as_deref(), Some(account), "{name}");
            assert!(
                status
                    .desired_task_definition
                    .as_deref()
                    .is_some_and(|arn| arn.starts_with(&format!("arn:aws:ecs:{region}:{account}:"))),
                "{name}: {status:?}"
            );
        }
        // /metrics says where each release lives.
        let metrics = state.metrics().encode();
        for (name, region, account) in [
            ("web", REGION, ACCOUNT),
            ("api", "eu-west-1", ACCOUNT),
            ("pay", REGION, PAYMENTS),
            ("old", "eu-west-1", LEGACY),
        ] {
            let series = format!(
                "switchyard_release_info{{release=\"{name}\",region=\"{region}\",account=\"{account}\"}} 1"
            );
            assert!(metrics.contains(&series), "{series} in:\n{metrics}");
        }
        // Each deployment is where its release lives, and nowhere else.
        assert_eq!(deployed_in(&h.aws), ["web"]);
        assert_eq!(deployed_in(&ireland), ["api"]);
        assert_eq!(deployed_in(&payments), ["pay"]);
        assert!(deployed_in(&legacy).is_empty());

        // The role that cannot be assumed: only its release is Failed, naming the role.
        let old = h.status("old").await;
        assert_eq!(old.phase, Phase::Failed, "{}", old.message);
        assert!(
            old.conditions.iter().any(|c| c.reason == Reason::Refused),
            "{old:?}"
        );
        assert!(old.message.contains(LEGACY_ROLE), "{}", old.message);
        assert!(old.message.contains("trust policy"), "{}", old.message);
        assert_eq!(old.region.as_deref(), Some("eu-west-1"));
        assert_eq!(old.account.as_deref(), Some(LEGACY));
        // One session of the payments role for 40 minutes, named after the replica; the
        // refused role asked again with backoff (passes, resyncs and the alarm watcher
        // share it), not on every pass.
        assert_eq!(h.aws.session_names(), ["switchyard-replica-1"]);
        let refused = h.calls("sts:AssumeRole") - 1;
        assert!(
            (2..=15).contains(&refused),
            "{refused} refused AssumeRole calls in 40 minutes"
        );

        // Trusted again: the release goes on by itself.
        h.aws.trust_role(LEGACY_ROLE);
        tokio::time::sleep(minutes(30)).await;
        let old = h.status("old").await;
        assert_eq!(old.phase, Phase::Healthy, "{}", old.message);
        assert_eq!(deployed_in(&legacy), ["old"]);
        assert_eq!(deployed_in(&h.aws), ["web"]);
        // Sessions issued: the payments role's, its refresh before the hour was up, and the
        // legacy role's once trusted; every one named after the replica.
        let names = h.aws.session_names();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(
            names.iter().all(|n| n == "switchyard-replica-1"),
            "{names:?}"
        );
    };
    tokio::join!(
        controller::run(ctx, tokio::time::sleep(minutes(75))),
        checks
    );
    h.assert_one_deployment_per_rollout();
}

/// A resync described one place's services after another's: a place whose calls are slow
/// (throttled, far away, paced by its budget) held back the resync of every place after it.
/// The places are now described side by side.
#[tokio::test(start_paused = true)]
async fn a_resync_describes_each_place_beside_the_others_not_after_them() {
    use std::time::Duration;

    let h = Harness::new();
    let ireland = h.aws.scoped(ACCOUNT, "eu-west-1");
    let mut names = Vec::new();
    for i in 0..30 {
        let (home, away) = (format!("home-{i:02}"), format!("away-{i:02}"));
        h.add_service(&home, |_| {});
        ireland.add_bluegreen_service(BlueGreenSetup::new("prod", &away));
        apply(&h, &home, "").await;
        apply(&h, &away, "region: eu-west-1").await;
        names.extend([home, away]);
    }
    let controller = h.run_until_healthy(h.context(), &names).await;

    // Every describe now takes 20 s: each place's three batches take a minute.
    h.slow_describes_from_the_next_resync(Duration::from_secs(20))
        .await;
    h.aws.keep_call_times();
    tokio::time::sleep(Duration::from_secs(65)).await;
    let described = |region: &str| {
        h.aws
            .placed_call_times()
            .iter()
            .filter(|c| c.operation == "DescribeServices" && c.region == region)
            .count()
    };
    assert_eq!(
        (described(REGION), described("eu-west-1")),
        (3, 3),
        "65 s into the resync both places' three batches are described"
    );
    h.aws.clear_faults();
    controller.await.unwrap();
}
