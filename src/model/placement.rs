//! Where a release lives: the region and account its AWS calls go to, and the role they are
//! made with. Resolved from `spec.service` (`region`, `roleArn`) and the controller's own
//! region and account ([`Home`]); and the rule that every ARN a release names agrees with
//! them, checked by `validate` against what the document says and by the controller against
//! what it resolves.

use super::document::ReleaseSpec;
use super::field_error::FieldError;
use super::names::{Arn, RoleArn};

/// The controller's own region and account: where its table, leases and statuses are, and
/// where a release without `region` and `roleArn` lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub region: String,
    /// `None` when the controller could not learn it (STS GetCallerIdentity failed when it
    /// started): ARNs of releases without a role are then checked against the region only.
    pub account: Option<String>,
}

/// An account and a region: what AWS keeps apart (resources, quotas, API rate limits), and
/// so what the controller keeps apart per place: its clients (made per place and identity),
/// its caches, the `region` and `account` labels of its metrics. The account is empty when
/// the controller could not learn its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place {
    pub account: String,
    pub region: String,
}

impl Place {
    pub fn new(account: Option<&str>, region: &str) -> Self {
        Self {
            account: account.unwrap_or_default().to_string(),
            region: region.to_string(),
        }
    }
}

impl Home {
    /// The controller's own place: where its table, leases and statuses are.
    pub fn place_of_home(&self) -> Place {
        Place::new(self.account.as_deref(), &self.region)
    }
}

/// Where one release's AWS calls go (every call about it: ECS, ELB, CodeDeploy, CloudWatch),
/// and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Placement {
    /// `spec.service.region`, or the controller's.
    pub region: String,
    /// The account of `spec.service.roleArn`, or the controller's (`None`: not known).
    pub account: Option<String>,
    /// The role the controller assumes to act there; `None`: its own credentials.
    pub role_arn: Option<String>,
    /// The account is the controller's own (no role, or a role in its own account).
    pub home_account: bool,
}

impl Home {
    pub fn new(region: impl Into<String>, account: Option<String>) -> Self {
        Self {
            region: region.into(),
            account,
        }
    }

    /// Where a release whose service says `region` and `role_arn` lives.
    pub fn place(&self, region: Option<&str>, role_arn: Option<&str>) -> Placement {
        let role_account = role_arn
            .and_then(|arn| RoleArn::parse(arn).ok())
            .map(|role| role.account.to_string());
        let home_account = match (&role_account, &self.account) {
            (None, _) => role_arn.is_none(),
            (Some(role), Some(home)) => role == home,
            (Some(_), None) => false,
        };
        Placement {
            region: region.unwrap_or(&self.region).to_string(),
            account: role_account.or_else(|| self.account.clone()),
            role_arn: role_arn.map(str::to_string),
            home_account,
        }
    }

    /// `spec` as the controller reads it: a `region` that names the controller's own is left
    /// out, so that writing it out is not a new rollout target (the target key names the
    /// region only when it is another).
    pub fn normalize(&self, spec: &mut ReleaseSpec) {
        if spec.service.region.as_deref() == Some(self.region.as_str()) {
            spec.service.region = None;
        }
    }

    /// Where `spec`'s release lives.
    pub fn place_spec(&self, spec: &ReleaseSpec) -> Placement {
        self.place(
            spec.service.region.as_deref(),
            spec.service.role_arn.as_deref(),
        )
    }

    /// The ARNs of `spec` that disagree with where the controller resolves it to live: a
    /// cluster ARN of another region when `region` is left out, or of the controller's own
    /// account when no role says otherwise.
    pub fn check(&self, spec: &ReleaseSpec) -> Vec<FieldError> {
        let placement = self.place_spec(spec);
        let region_source = match &spec.service.region {
            Some(_) => "spec.service.region".to_string(),
            None => "the controller's own region; set spec.service.region to act elsewhere".into(),
        };
        let account_source = match &spec.service.role_arn {
            Some(_) => "the account of spec.service.roleArn".to_string(),
            None => {
                "the controller's own account; set spec.service.roleArn to act in another".into()
            }
        };
        check_arns(
            spec,
            Some((placement.region.as_str(), region_source.as_str())),
            placement
                .account
                .as_deref()
                .map(|account| (account, account_source.as_str())),
        )
    }
}

impl Placement {
    /// What tells apart rollout targets in different accounts: empty in the controller's
    /// own account (so that keys recorded before accounts existed stay the same, and a role
    /// of the controller's own account is not a new target), else the account.
    pub fn target_prefix(&self) -> String {
        match (&self.account, self.home_account) {
            (Some(account), false) => format!("{account}|"),
            _ => String::new(),
        }
    }

    /// The account and region the release's calls go to.
    pub fn place(&self) -> Place {
        Place::new(self.account.as_deref(), &self.region)
    }

    /// The account and region, as one key for what is cached per place (alarm states,
    /// deployment groups, target groups): `ACCOUNT/REGION`, the account empty when unknown.
    pub fn scope_key(&self) -> String {
        format!(
            "{}/{}",
            self.account.as_deref().unwrap_or_default(),
            self.region
        )
    }
}

/// Checks what the document says: every ARN agrees with `spec.service.region` and with the
/// account of `spec.service.roleArn` where they are given, and with each other where not (a
/// release's cluster, task definition, target groups and listeners live in one region and
/// one account). Appends one error per disagreeing ARN, naming its field.
pub fn validate(spec: &ReleaseSpec, errors: &mut Vec<FieldError>) {
    let role_account = spec
        .service
        .role_arn
        .as_deref()
        .and_then(|arn| RoleArn::parse(arn).ok())
        .map(|role| role.account);
    let arns = named_arns(spec);
    let first_region = arns
        .iter()
        .find_map(|(path, arn)| region_of(arn).map(|region| (region, path.clone())));
    let first_account = arns
        .iter()
        .find_map(|(path, arn)| account_of(arn).map(|account| (account, path.clone())));
    let region_source;
    let region = match (&spec.service.region, &first_region) {
        (Some(region), _) => Some((region.as_str(), "spec.service.region")),
        (None, Some((region, path))) => {
            region_source = format!("{path}; set spec.service.region to say which");
            Some((*region, region_source.as_str()))
        }
        (None, None) => None,
    };
    let account_source;
    let account = match (role_account, &first_account) {
        (Some(account), _) => Some((account, "the account of spec.service.roleArn")),
        (None, Some((account, path))) => {
            account_source = format!("{path}; a release acts in one account");
            Some((*account, account_source.as_str()))
        }
        (None, None) => None,
    };
    errors.extend(check_arns(spec, region, account));
}

/// One error per ARN of `spec` whose region is not `region` or whose account is not
/// `account` (each with where the expected value comes from, for the message).
fn check_arns(
    spec: &ReleaseSpec,
    region: Option<(&str, &str)>,
    account: Option<(&str, &str)>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (path, arn) in named_arns(spec) {
        if let (Some(found), Some((expected, source))) = (region_of(arn), region)
            && found != expected
        {
            errors.push(FieldError::new(
                path.clone(),
                format!(
                    "the ARN is in region {found}, but the release acts in {expected} ({source}); \
                     a release's cluster, task definition, target groups and listeners are in \
                     its region"
                ),
            ));
            continue;
        }
        if let (Some(found), Some((expected, source))) = (account_of(arn), account)
            && found != expected
        {
            errors.push(FieldError::new(
                path,
                format!(
                    "the ARN is in account {found}, but the release acts in account {expected} \
                     ({source}); a release's cluster, task definition, target groups and \
                     listeners are in its account"
                ),
            ));
        }
    }
    errors
}

/// Every ARN the spec names about its service, with its field path, in document order: the
/// cluster, the task definition it copies, the strategy's target groups, listeners and
/// roles. (Rollback alarms are names, read in the release's region and account.)
fn named_arns(spec: &ReleaseSpec) -> Vec<(String, &str)> {
    let mut arns: Vec<(String, &str)> = vec![
        ("spec.service.cluster".into(), spec.service.cluster.as_str()),
        (
            "spec.taskDefinition.from".into(),
            spec.task_definition.from.as_str(),
        ),
    ];
    if let Some(task_sets) = &spec.strategy.task_sets {
        let base = "spec.strategy.taskSets";
        for (field, list) in [
            ("targetGroups", &task_sets.target_groups),
            ("listeners", &task_sets.listeners),
            ("testListeners", &task_sets.test_listeners),
        ] {
            for (i, arn) in list.iter().enumerate() {
                arns.push((format!("{base}.{field}[{i}]"), arn.as_str()));
            }
        }
    }
    if let Some(lb) = spec
        .strategy
        .ecs
        .as_ref()
        .and_then(|ecs| ecs.deployment.as_ref())
        .and_then(|deployment| deployment.load_balancer.as_ref())
    {
        let base = "spec.strategy.ecs.deployment.loadBalancer";
        arns.push((
            format!("{base}.alternateTargetGroup"),
            &lb.alternate_target_group,
        ));
        arns.push((
            format!("{base}.productionListenerRule"),
            &lb.production_listener_rule,
        ));
        if let Some(rule) = &lb.test_listener_rule {
            arns.push((format!("{base}.testListenerRule"), rule));
        }
        arns.push((format!("{base}.roleArn"), &lb.role_arn));
    }
    arns.retain(|(_, arn)| arn.starts_with("arn:"));
    arns
}

/// The region an ARN names (IAM's name none).
fn region_of(arn: &str) -> Option<&str> {
    Arn::parse(arn).ok().map(|arn| arn.region)
}

/// The account an ARN names, IAM's included.
fn account_of(arn: &str) -> Option<&str> {
    match Arn::parse(arn) {
        Ok(arn) => Some(arn.account),
        Err(_) => RoleArn::parse(arn).ok().map(|role| role.account),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME_ACCOUNT: &str = "111122223333";
    const OTHER_ACCOUNT: &str = "444455556666";

    fn spec(service: &str, strategy: &str) -> ReleaseSpec {
        let text = format!(
            "apiVersion: switchyard.dev/v1\nkind: Release\nmetadata: {{name: web}}\nspec:\n  \
             service: {service}\n  taskDefinition:\n    from: web\n    containers: {{web: {{image: \
             r/web:2}}}}\n  strategy:\n{strategy}"
        );
        // Deserialized only: these tests check the placement rules alone.
        serde_saphyr::from_str::<crate::model::ReleaseDocument>(&text)
            .expect("deserializes")
            .spec
    }

    const CODE_DEPLOY: &str = "    codeDeploy: {application: web, deploymentGroup: web-prod}\n";

    #[test]
    fn the_home_region_written_out_reads_as_none_and_another_stays() {
        let home = Home::new("us-east-1", Some(HOME_ACCOUNT.into()));
        let implicit = spec("{cluster: prod, name: web}", CODE_DEPLOY);
        let mut explicit = spec("{cluster: prod, name: web, region: us-east-1}", CODE_DEPLOY);
        let mut elsewhere = spec("{cluster: prod, name: web, region: eu-west-1}", CODE_DEPLOY);
        home.normalize(&mut explicit);
        home.normalize(&mut elsewhere);
        // The rollout target names the spec's region: the same spec, the same target.
        assert_eq!(explicit, implicit);
        assert_eq!(elsewhere.service.region.as_deref(), Some("eu-west-1"));
        assert_eq!(home.place_spec(&explicit), home.place_spec(&implicit));
    }

    fn task_sets(groups: [&str; 2]) -> String {
        format!(
            "    taskSets:\n      targetGroups: ['{}', '{}']\n",
            groups[0], groups[1]
        )
    }

    fn tg(region: &str, account: &str, name: &str) -> String {
        format!(
            "arn:aws:elasticloadbalancing:{region}:{account}:targetgroup/{name}/0123456789abcdef"
        )
    }

    fn home() -> Home {
        Home::new("us-east-1", Some(HOME_ACCOUNT.into()))
    }

    fn validated(spec: &ReleaseSpec) -> Vec<FieldError> {
        let mut errors = Vec::new();
        validate(spec, &mut errors);
        errors
    }

    #[test]
    fn a_release_without_region_or_role_lives_at_home() {
        let placement = home().place(None, None);
        assert_eq!(placement.region, "us-east-1");
        assert_eq!(placement.account.as_deref(), Some(HOME_ACCOUNT));
        assert!(placement.home_account);
        assert_eq!(placement.target_prefix(), "");
        assert_eq!(placement.scope_key(), "111122223333/us-east-1");
    }

    #[test]
    fn a_role_places_the_release_in_its_account() {
        let role = format!("arn:aws:iam::{OTHER_ACCOUNT}:role/deployer");
        let placement = home().place(Some("eu-west-1"), Some(&role));
        assert_eq!(placement.region, "eu-west-1");
        assert_eq!(placement.account.as_deref(), Some(OTHER_ACCOUNT));
        assert_eq!(placement.role_arn.as_deref(), Some(role.as_str()));
        assert!(!placement.home_account);
        assert_eq!(placement.target_prefix(), "444455556666|");
        // A role of the controller's own account is no new target.
        let own = format!("arn:aws:iam::{HOME_ACCOUNT}:role/deployer");
        assert_eq!(home().place(None, Some(&own)).target_prefix(), "");
        // Without knowing its own account, the controller tells a role's account apart.
        let unknown = Home::new("us-east-1", None);
        assert_eq!(unknown.place(None, None).account, None);
        assert_eq!(unknown.place(None, None).target_prefix(), "");
        assert_eq!(
            unknown.place(None, Some(&own)).target_prefix(),
            "111122223333|"
        );
    }

    #[test]
    fn arns_that_agree_with_region_and_role_pass() {
        let spec = spec(
            &format!(
                "{{cluster: 'arn:aws:ecs:eu-west-1:{OTHER_ACCOUNT}:cluster/prod', name: web, \
                 region: eu-west-1, roleArn: 'arn:aws:iam::{OTHER_ACCOUNT}:role/deployer'}}"
            ),
            &task_sets([&tg("eu-west-1", OTHER_ACCOUNT, "web-a"), "web-b"]),
        );
        assert_eq!(validated(&spec), []);
        assert_eq!(
            Home::new("us-east-1", Some(HOME_ACCOUNT.into())).check(&spec),
            []
        );
    }

    #[test]
    fn a_cluster_arn_of_another_region_than_region_is_refused_naming_the_field() {
        let spec = spec(
            "{cluster: 'arn:aws:ecs:us-west-2:111122223333:cluster/prod', name: web, region: eu-west-1}",
            CODE_DEPLOY,
        );
        let errors = validated(&spec);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "spec.service.cluster");
        assert!(
            errors[0].message.contains(
                "in region us-west-2, but the release acts in eu-west-1 (spec.service.region)"
            ),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn a_target_group_arn_of_another_account_than_the_role_is_refused() {
        let spec = spec(
            &format!(
                "{{cluster: prod, name: web, roleArn: 'arn:aws:iam::{OTHER_ACCOUNT}:role/d'}}"
            ),
            &task_sets([&tg("us-east-1", HOME_ACCOUNT, "web-a"), "web-b"]),
        );
        let errors = validated(&spec);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "spec.strategy.taskSets.targetGroups[0]");
        assert!(
            errors[0].message.contains(
                "in account 111122223333, but the release acts in account 444455556666 (the account of spec.service.roleArn)"
            ),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn without_region_and_role_the_arns_agree_with_each_other() {
        let spec = spec(
            "{cluster: 'arn:aws:ecs:eu-west-1:111122223333:cluster/prod', name: web}",
            &task_sets([
                &tg("us-west-2", HOME_ACCOUNT, "web-a"),
                &tg("eu-west-1", OTHER_ACCOUNT, "web-b"),
            ]),
        );
        let errors = validated(&spec);
        let described: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.path.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(described.len(), 2, "{errors:?}");
        assert_eq!(described[0].0, "spec.strategy.taskSets.targetGroups[0]");
        assert!(described[0].1.contains(
            "in region us-west-2, but the release acts in eu-west-1 (spec.service.cluster;"
        ));
        assert_eq!(described[1].0, "spec.strategy.taskSets.targetGroups[1]");
        assert!(described[1].1.contains("in account 444455556666"));
    }

    #[test]
    fn the_controller_checks_arns_against_its_own_region_and_account() {
        // Valid as a document (the ARNs agree with each other), but the release would act
        // in the controller's region and account.
        let spec = spec(
            &format!(
                "{{cluster: 'arn:aws:ecs:eu-west-1:{OTHER_ACCOUNT}:cluster/prod', name: web}}"
            ),
            CODE_DEPLOY,
        );
        assert_eq!(validated(&spec), []);
        let errors = home().check(&spec);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "spec.service.cluster");
        assert!(
            errors[0].message.contains(
                "in region eu-west-1, but the release acts in us-east-1 (the controller's own region; set spec.service.region to act elsewhere)"
            ),
            "{}",
            errors[0]
        );
        let in_region = spec_with_region(&spec, "eu-west-1");
        let errors = home().check(&in_region);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].message.contains("in account 444455556666, but the release acts in account 111122223333 (the controller's own account; set spec.service.roleArn to act in another)"),
            "{}",
            errors[0]
        );
        // A controller that does not know its account checks the region only.
        assert_eq!(Home::new("us-east-1", None).check(&in_region), []);
    }

    fn spec_with_region(spec: &ReleaseSpec, region: &str) -> ReleaseSpec {
        let mut spec = spec.clone();
        spec.service.region = Some(region.into());
        spec
    }

    #[test]
    fn every_arn_the_ecs_strategy_names_agrees_too() {
        let lb = format!(
            "    ecs:\n      deployment:\n        type: blueGreen\n        loadBalancer: \
             {{alternateTargetGroup: '{}', productionListenerRule: \
             'arn:aws:elasticloadbalancing:eu-west-1:{OTHER_ACCOUNT}:listener-rule/app/lb/0123456789abcdef/0123456789abcdef/0123456789abcdef', \
             roleArn: 'arn:aws:iam::{HOME_ACCOUNT}:role/ecs-lb'}}\n",
            tg("us-east-1", OTHER_ACCOUNT, "web-b")
        );
        let spec = spec(
            &format!(
                "{{cluster: prod, name: web, region: eu-west-1, roleArn: 'arn:aws:iam::{OTHER_ACCOUNT}:role/d'}}"
            ),
            &lb,
        );
        let paths: Vec<String> = validated(&spec).into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            [
                "spec.strategy.ecs.deployment.loadBalancer.alternateTargetGroup",
                "spec.strategy.ecs.deployment.loadBalancer.roleArn"
            ]
        );
    }
}
