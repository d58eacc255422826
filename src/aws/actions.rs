//! Every AWS API action the adapters call, in IAM's `service:Action` form: the one list the
//! adapters, the Terraform policy test and the documentation share.

/// Actions of the AWS ports (ECS, CodeDeploy, ELB, CloudWatch). Each adapter operation adds
/// its action here.
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
    // Registering a copy that names a task or execution role passes those roles; scope it
    // with `iam:PassedToService = ecs-tasks.amazonaws.com`.
    "iam:PassRole",
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
    // CloudWatchAlarms
    "cloudwatch:DescribeAlarms",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_action_list_has_no_duplicates() {
        let unique: BTreeSet<_> = CONTROLLER_AWS_ACTIONS.iter().collect();
        assert_eq!(unique.len(), CONTROLLER_AWS_ACTIONS.len());
    }

    #[test]
    fn every_action_is_service_colon_action() {
        for action in CONTROLLER_AWS_ACTIONS {
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
