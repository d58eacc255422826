//! Every AWS API action the adapters call, in IAM's `service:Action` form: the one list the
//! adapters, the Terraform policy test and the documentation share.

/// Actions of the AWS ports that deploy (ECS, CodeDeploy, ELB, CloudWatch): what the
/// controller calls about a release, in the release's account (its own role, or the deployer
/// role of `spec.service.roleArn`). Each adapter operation adds its action here.
pub const CONTROLLER_AWS_ACTIONS: &[&str] = &[
    // EcsAdapter
    "ecs:DescribeServices",
    "ecs:DescribeTaskDefinition",
    "ecs:ListTaskDefinitions",
    "ecs:RegisterTaskDefinition",
    // RegisterTaskDefinition with tags (the copy keeps the base's and adds switchyard's own:
    // release, base, fingerprint) is also authorized as
    // ecs:TagResource; scope it with the condition `ecs:CreateAction = RegisterTaskDefinition`.
    "ecs:TagResource",
    // Registering a copy that names a task or execution role passes those roles, and so does
    // CreateTaskSet (its tasks run with them); scope it with
    // `iam:PassedToService = ecs-tasks.amazonaws.com`.
    "iam:PassRole",
    // EcsAdapter, task sets of EXTERNAL services (src/aws/task_sets.rs). CreateTaskSet is
    // sent without tags, so it needs no ecs:TagResource of its own.
    "ecs:CreateTaskSet",
    "ecs:UpdateTaskSet",
    "ecs:UpdateServicePrimaryTaskSet",
    "ecs:DeleteTaskSet",
    // EcsAdapter, ECS's own deployments (service_deployments.rs). UpdateService with a load
    // balancer's advanced configuration passes its role to ECS (iam:PassRole above, scoped
    // with `iam:PassedToService = ecs.amazonaws.com` to those roles).
    "ecs:UpdateService",
    "ecs:ListServiceDeployments",
    "ecs:DescribeServiceDeployments",
    "ecs:DescribeServiceRevisions",
    "ecs:ContinueServiceDeployment",
    "ecs:StopServiceDeployment",
    // CodeDeployAdapter
    "codedeploy:GetDeploymentGroup",
    "codedeploy:ListDeployments",
    "codedeploy:GetDeployment",
    "codedeploy:GetDeploymentTarget",
    "codedeploy:CreateDeployment",
    // CreateDeployment with a revision also registers that revision with the application and
    // reads the deployment config it names; policies for ECS blue/green grant both.
    "codedeploy:RegisterApplicationRevision",
    "codedeploy:GetDeploymentConfig",
    "codedeploy:ContinueDeployment",
    "codedeploy:StopDeployment",
    // ElbAdapter
    "elasticloadbalancing:DescribeListeners",
    // ElbAdapter, routes of the task-set strategy (src/aws/routes.rs)
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:ModifyRule",
    // CloudWatchAlarms
    "cloudwatch:DescribeAlarms",
    // CloudWatchMetricData (analyses)
    "cloudwatch:GetMetricData",
];

/// What the controller's own role calls to send notifications (sns.rs, eventbridge.rs), from
/// its own account, on exactly the configured topics and buses (the Terraform controller
/// module's `notification_topic_arns` and `notification_event_buses`): never a deployer
/// role's.
pub const NOTIFICATION_ACTIONS: &[&str] = &["sns:Publish", "events:PutEvents"];

/// What the controller's own role calls to act in other accounts (`spec.service.roleArn`),
/// on exactly the deployer roles (the Terraform controller module's `deployer_role_arns`).
pub const ASSUME_ROLE_ACTIONS: &[&str] = &["sts:AssumeRole"];

/// What `switchyard diff` calls, all reads: the stored release, the release's service, and
/// the task definitions that resolve its candidate (the registration it shows is built by
/// the adapter and never sent, so it needs no `ecs:RegisterTaskDefinition`).
pub const DIFF_ACTIONS: &[&str] = &[
    "dynamodb:GetItem",
    "ecs:DescribeServices",
    "ecs:DescribeTaskDefinition",
    "ecs:ListTaskDefinitions",
];

/// The GitOps workflow's pull request role (`deploy/terraform/modules/gitops`): `diff`, and
/// `apply --dry-run --prune`, which lists the table for the releases it would prune.
pub const GITOPS_PULL_REQUEST_ACTIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:Scan",
    "ecs:DescribeServices",
    "ecs:DescribeTaskDefinition",
    "ecs:ListTaskDefinitions",
];

/// The GitOps workflow's apply role: `apply --prune` reads, writes and deletes releases
/// (STS GetCallerIdentity, which names the author, needs no permission).
pub const GITOPS_APPLY_ACTIONS: &[&str] = &[
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:Scan",
    "dynamodb:UpdateItem",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    use crate::aws::{STORE_ACTIONS, TABLE_ADMIN_ACTIONS};

    /// The adapters' sources (without their tests) and the IAM prefix of the service each
    /// one calls.
    const CONTROLLER_ADAPTERS: &[(&str, &str)] = &[
        ("ecs", include_str!("ecs.rs")),
        ("ecs", include_str!("ecs_registration.rs")),
        ("ecs", include_str!("service_deployments.rs")),
        ("ecs", include_str!("task_sets.rs")),
        ("codedeploy", include_str!("codedeploy.rs")),
        ("elasticloadbalancing", include_str!("elb.rs")),
        ("elasticloadbalancing", include_str!("routes.rs")),
        ("cloudwatch", include_str!("cloudwatch.rs")),
    ];
    const NOTIFICATION_ADAPTERS: &[(&str, &str)] = &[
        ("sns", include_str!("sns.rs")),
        ("events", include_str!("eventbridge.rs")),
    ];
    /// DynamoDB Streams' actions are authorized under the `dynamodb` prefix.
    const STORE_ADAPTERS: &[(&str, &str)] = &[
        ("dynamodb", include_str!("store.rs")),
        ("dynamodb", include_str!("lease.rs")),
        ("dynamodb", include_str!("streams.rs")),
    ];

    /// The names the SDK clients go by in the adapters: `self.client`, `store.client()`, the
    /// stream consumer's `dynamodb` and `streams`.
    const CLIENT_RECEIVERS: &[&str] = &["client.", "client().", "dynamodb.", "streams."];
    /// Methods of a client that are not AWS operations.
    const CLIENT_METHODS: &[&str] = &["clone", "config"];

    /// `describe_services` -> `DescribeServices`.
    fn pascal_case(snake: &str) -> String {
        snake
            .split('_')
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect()
    }

    /// Every `prefix:Operation` a source calls on an SDK client (`<client>.<operation>()`,
    /// across line breaks), outside its tests and comments. The code compiles, so each is an
    /// operation of the pinned SDK.
    fn operations_called(prefix: &str, source: &str) -> BTreeSet<String> {
        let code = source.split("#[cfg(test)]").next().unwrap_or(source);
        // Words one space apart, and no space around a `.`: `self\n    .client\n    .op()`
        // reads `self.client.op()`, while `match streams` keeps its space.
        let words: Vec<&str> = code
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .flat_map(str::split_whitespace)
            .collect();
        let compact = words.join(" ").replace(" .", ".").replace(". ", ".");
        let mut called = BTreeSet::new();
        for receiver in CLIENT_RECEIVERS {
            for (at, _) in compact.match_indices(receiver) {
                let joined_to_a_longer_name = compact[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
                let rest = &compact[at + receiver.len()..];
                let method: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if joined_to_a_longer_name
                    || method.is_empty()
                    || !rest[method.len()..].starts_with("()")
                    || CLIENT_METHODS.contains(&method.as_str())
                {
                    continue;
                }
                called.insert(format!("{prefix}:{}", pascal_case(&method)));
            }
        }
        called
    }

    fn called_by(adapters: &[(&str, &str)]) -> BTreeSet<String> {
        adapters
            .iter()
            .flat_map(|(prefix, source)| operations_called(prefix, source))
            .collect()
    }

    /// `prefix:Operation` from the pinned SDK's operation type: a compile-time proof that the
    /// operation exists under that name.
    fn sdk_action<Operation>(prefix: &str) -> String {
        let path = std::any::type_name::<Operation>();
        format!("{prefix}:{}", path.rsplit("::").next().unwrap_or(path))
    }

    fn set(actions: &[&str]) -> BTreeSet<String> {
        actions.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_scan_finds_client_calls_however_they_are_written() {
        let source = "fn a(&self) { self.client.describe_services().send(); }\n\
                      fn f(s: &Client) { match s\n.get() {}; match streams\n  .get_records() {} }\n\
                      fn b(&self) { self\n    .client\n    .get_deployment()\n    .send(); }\n\
                      fn c(&self) { self.store.client().update_item(); self.client.clone(); }\n\
                      // self.client.stop_deployment()\n\
                      fn d(&self) { self.other_client.list_things(); self.client.region }\n\
                      #[cfg(test)]\nmod tests { fn e(&self) { self.client.delete_service(); } }";
        assert_eq!(
            operations_called("x", source),
            set(&[
                "x:DescribeServices",
                "x:GetDeployment",
                "x:GetRecords",
                "x:UpdateItem"
            ])
        );
    }

    /// Every action of `CONTROLLER_AWS_ACTIONS` is an operation an adapter calls, or one of
    /// the few that IAM authorizes along with such a call; every operation an adapter calls
    /// is listed. The Terraform policy is tested against this list, so a call added without
    /// its action would be denied in production.
    #[test]
    fn the_controller_actions_are_exactly_what_the_adapters_call() {
        // Authorized along with a call: (action, the call, why).
        let implied = [
            (
                sdk_action::<aws_sdk_ecs::operation::tag_resource::TagResource>("ecs"),
                "ecs:RegisterTaskDefinition",
                "registering with tags",
            ),
            (
                "iam:PassRole".to_string(),
                "ecs:RegisterTaskDefinition",
                "a copy naming a task or execution role passes it (a permission, no API)",
            ),
            (
                "iam:PassRole".to_string(),
                "ecs:CreateTaskSet",
                "a task set's tasks run with its task definition's roles",
            ),
            (
                "iam:PassRole".to_string(),
                "ecs:UpdateService",
                "a load balancer's advanced configuration passes its role to ECS",
            ),
            (
                sdk_action::<
                    aws_sdk_codedeploy::operation::register_application_revision::RegisterApplicationRevision,
                >("codedeploy"),
                "codedeploy:CreateDeployment",
                "a deployment with a revision registers it",
            ),
            (
                sdk_action::<aws_sdk_codedeploy::operation::get_deployment_config::GetDeploymentConfig>(
                    "codedeploy",
                ),
                "codedeploy:CreateDeployment",
                "a deployment reads the config it names",
            ),
        ];
        let called = called_by(CONTROLLER_ADAPTERS);
        for (action, by, why) in &implied {
            assert!(
                called.contains(*by),
                "{action} comes with {by} ({why}), which no adapter calls"
            );
        }
        let expected: BTreeSet<String> = called
            .iter()
            .cloned()
            .chain(implied.iter().map(|(action, _, _)| action.clone()))
            .collect();
        let listed = set(CONTROLLER_AWS_ACTIONS);
        assert_eq!(
            listed.len(),
            CONTROLLER_AWS_ACTIONS.len(),
            "CONTROLLER_AWS_ACTIONS has duplicates"
        );
        assert_eq!(
            listed,
            expected,
            "listed but not called: {:?}; called but not listed: {:?}",
            listed.difference(&expected).collect::<Vec<_>>(),
            expected.difference(&listed).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_notification_actions_are_exactly_what_the_notification_adapters_call() {
        assert_eq!(called_by(NOTIFICATION_ADAPTERS), set(NOTIFICATION_ACTIONS));
    }

    #[test]
    fn the_assume_role_actions_are_exactly_what_the_sts_adapter_calls() {
        assert_eq!(
            called_by(&[("sts", include_str!("sts.rs"))]),
            set(ASSUME_ROLE_ACTIONS)
        );
    }

    /// The same for the store: `STORE_ACTIONS` (the controller) and `TABLE_ADMIN_ACTIONS`
    /// (`table create`) together are what the store, the leases and the stream consumer call.
    #[test]
    fn the_store_actions_are_exactly_what_the_store_calls() {
        let mut called = called_by(STORE_ADAPTERS);
        // TransactWriteItems is no IAM action: each item is authorized as its own action,
        // the fenced status write being a lease ConditionCheck and an Update.
        assert!(
            called.remove("dynamodb:TransactWriteItems"),
            "the fenced status write is a transaction"
        );
        called.insert("dynamodb:ConditionCheckItem".into());
        called.insert("dynamodb:UpdateItem".into());
        let listed: BTreeSet<String> = set(STORE_ACTIONS)
            .union(&set(TABLE_ADMIN_ACTIONS))
            .cloned()
            .collect();
        assert_eq!(
            listed,
            called,
            "listed but not called: {:?}; called but not listed: {:?}",
            listed.difference(&called).collect::<Vec<_>>(),
            called.difference(&listed).collect::<Vec<_>>()
        );
        assert!(
            !STORE_ACTIONS.contains(&"dynamodb:CreateTable"),
            "the controller never creates tables"
        );
        assert_eq!(set(STORE_ACTIONS).len(), STORE_ACTIONS.len(), "duplicates");
    }

    #[test]
    fn the_gitops_roles_need_only_actions_the_code_calls_and_the_pull_request_role_covers_diff() {
        let called: BTreeSet<&str> = CONTROLLER_AWS_ACTIONS
            .iter()
            .chain(STORE_ACTIONS)
            .copied()
            .collect();
        let pull_request: BTreeSet<&str> = GITOPS_PULL_REQUEST_ACTIONS.iter().copied().collect();
        for action in DIFF_ACTIONS {
            assert!(pull_request.contains(action), "{action} missing");
        }
        for action in GITOPS_PULL_REQUEST_ACTIONS
            .iter()
            .chain(GITOPS_APPLY_ACTIONS)
        {
            assert!(called.contains(action), "{action} is called by no adapter");
        }
        for action in GITOPS_PULL_REQUEST_ACTIONS {
            let (_, name) = action.split_once(':').unwrap();
            assert!(
                ["Get", "Describe", "List", "Scan"]
                    .iter()
                    .any(|read| name.starts_with(read)),
                "{action}: the pull request role only reads"
            );
        }
    }

    #[test]
    fn every_action_is_service_colon_action() {
        for action in CONTROLLER_AWS_ACTIONS.iter().chain(STORE_ACTIONS) {
            let (service, name) = action.split_once(':').expect("service:Action");
            assert!(
                !service.is_empty()
                    && service
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{action}: service prefix"
            );
            assert!(
                name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{action}: action name"
            );
        }
    }
}
