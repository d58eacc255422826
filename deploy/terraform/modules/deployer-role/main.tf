# A role in a target account that the switchyard controller assumes to deploy the services
# of releases naming it in `spec.service.roleArn`. Its trust policy names only the
# controller's task roles, and only with the external id; its permissions are exactly the
# controller's deploy permissions (../deploy-permissions), scoped to this account's services.
# See README.md.

data "aws_iam_policy_document" "trust" {
  # Resource: a trust policy names no resource; only the controller's task roles assume this role, and only with the fleet's external id (confused deputy protection).
  statement {
    sid     = "SwitchyardController"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = var.controller_role_arns
    }
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [var.external_id]
    }
  }
}

resource "aws_iam_role" "deployer" {
  name                 = var.name
  description          = "switchyard deployer: the controller acts as this role for releases in this account"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = var.max_session_duration
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

module "deploy_permissions" {
  source = "../deploy-permissions"

  ecs_services                  = var.ecs_services
  task_definition_families      = var.task_definition_families
  codedeploy_deployment_groups  = var.codedeploy_deployment_groups
  codedeploy_applications       = var.codedeploy_applications
  codedeploy_deployment_configs = var.codedeploy_deployment_configs
  alarm_names                   = var.alarm_names
  traffic_listener_arns         = var.traffic_listener_arns
  passable_role_arns            = var.passable_role_arns
  ecs_load_balancer_role_arns   = var.ecs_load_balancer_role_arns
}

resource "aws_iam_role_policy" "deploy" {
  name   = "switchyard-deploy"
  role   = aws_iam_role.deployer.id
  policy = module.deploy_permissions.json
}
