# The permissions to deploy the managed services with every strategy (codeDeploy, taskSets,
# ecs): an IAM policy document, and nothing else. The controller module grants it to the
# controller's own role (for releases in its own account) and the deployer-role module to a
# role in each target account (for releases that name it in `spec.service.roleArn`), so the
# two never drift apart. Names resolve in the provider's account and region; ARNs name
# resources anywhere else.
#
# Every action is one the code calls, exactly `switchyard::aws::actions::CONTROLLER_AWS_ACTIONS`
# (tests/it/terraform.rs compares them). The comment above each statement says why its
# Resource is what it is (see ../controller/iam.tf).

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id

  # ARNs are built from names rather than read from the resources, so that the policy is
  # known at plan time (and can be reviewed in the plan).
  # "CLUSTER/SERVICE" -> arn:...:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE (long ARN format).
  ecs_service_arns = [
    for s in var.ecs_services :
    startswith(s, "arn:") ? s : "arn:${local.partition}:ecs:${local.region}:${local.account}:service/${s}"
  ]

  # The managed services' ECS deployments and revisions (strategy.ecs):
  # arn:...:service/CLUSTER/SERVICE -> arn:...:service-deployment/CLUSTER/SERVICE/*
  service_deployment_arns = [
    for s in local.ecs_service_arns : "${replace(s, ":service/", ":service-deployment/")}/*"
  ]
  service_revision_arns = [
    for s in local.ecs_service_arns : "${replace(s, ":service/", ":service-revision/")}/*"
  ]

  # The task sets of each service (EXTERNAL services, the taskSets strategy):
  # arn:...:task-set/CLUSTER/SERVICE/*
  task_set_arns = [
    for s in local.ecs_service_arns : "${replace(s, ":service/", ":task-set/")}/*"
  ]

  # The rules of each listener whose forward actions the controller weights:
  # arn:...:listener/app/LB/ID/LISTENER -> arn:...:listener-rule/app/LB/ID/LISTENER/*
  traffic_rule_arns = [
    for l in var.traffic_listener_arns : "${replace(l, ":listener/", ":listener-rule/")}/*"
  ]

  # Every revision of each family: arn:...:task-definition/FAMILY:*
  task_definition_arns = [
    for f in var.task_definition_families :
    "arn:${local.partition}:ecs:${local.region}:${local.account}:task-definition/${f}:*"
  ]

  deployment_group_arns = [
    for g in var.codedeploy_deployment_groups :
    startswith(g, "arn:") ? g : "arn:${local.partition}:codedeploy:${local.region}:${local.account}:deploymentgroup:${g}"
  ]

  # The applications of the groups, plus any named explicitly.
  application_arns = distinct(concat(
    [
      for g in var.codedeploy_deployment_groups :
      startswith(g, "arn:")
      ? replace(split("/", g)[0], ":deploymentgroup:", ":application:")
      : "arn:${local.partition}:codedeploy:${local.region}:${local.account}:application:${split("/", g)[0]}"
    ],
    [
      for a in var.codedeploy_applications :
      startswith(a, "arn:") ? a : "arn:${local.partition}:codedeploy:${local.region}:${local.account}:application:${a}"
    ],
  ))

  deployment_config_arns = [
    for c in var.codedeploy_deployment_configs :
    startswith(c, "arn:") ? c : "arn:${local.partition}:codedeploy:${local.region}:${local.account}:deploymentconfig:${c}"
  ]

  alarm_arns = [
    for a in var.alarm_names :
    startswith(a, "arn:") ? a : "arn:${local.partition}:cloudwatch:${local.region}:${local.account}:alarm:${a}"
  ]
}

data "aws_iam_policy_document" "deploy" {
  # Resource: DescribeServices is authorized on each service ARN; the managed services only.
  statement {
    sid       = "ManagedServices"
    actions   = ["ecs:DescribeServices"]
    resources = local.ecs_service_arns
  }

  # Resource "*": ecs:DescribeTaskDefinition and ecs:ListTaskDefinitions accept no resource-level scoping (no resource type in the Service Authorization Reference).
  statement {
    sid       = "DescribeTaskDefinitions"
    actions   = ["ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions"]
    resources = ["*"]
  }

  # Resource wildcard: RegisterTaskDefinition is authorized on the new revision's ARN (FAMILY:REVISION), unknown before the call; FAMILY:* allows the managed families only.
  statement {
    sid       = "RegisterManagedFamilies"
    actions   = ["ecs:RegisterTaskDefinition"]
    resources = local.task_definition_arns
  }

  # Resource wildcard: the copy keeps its base's tags, which ECS authorizes as TagResource on the new revision (FAMILY:*), and only as part of RegisterTaskDefinition.
  statement {
    sid       = "TagNewRevisionsOnRegister"
    actions   = ["ecs:TagResource"]
    resources = local.task_definition_arns
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition"]
    }
  }

  # Resource: PassRole is authorized on each role ARN; only the managed services' task and execution roles, only to ECS tasks.
  statement {
    sid       = "PassApplicationRoles"
    actions   = ["iam:PassRole"]
    resources = var.passable_role_arns
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  # Resource: UpdateService and ListServiceDeployments are authorized on the service ARN; the managed services only (strategy.ecs starts a rollout with UpdateService and finds its deployment by listing).
  statement {
    sid       = "EcsDeploymentsOfManagedServices"
    actions   = ["ecs:ListServiceDeployments", "ecs:UpdateService"]
    resources = local.ecs_service_arns
  }

  # Resource wildcard: a service deployment's ARN (service-deployment/CLUSTER/SERVICE/ID) ends in an id ECS makes at UpdateService; CLUSTER/SERVICE/* matches the managed services' deployments only.
  statement {
    sid = "ServiceDeploymentsOfManagedServices"
    actions = [
      "ecs:ContinueServiceDeployment",
      "ecs:DescribeServiceDeployments",
      "ecs:StopServiceDeployment",
    ]
    resources = local.service_deployment_arns
  }

  # Resource wildcard: a service revision's ARN (service-revision/CLUSTER/SERVICE/ID) ends in an id ECS makes with each deployment; CLUSTER/SERVICE/* matches the managed services' revisions only.
  statement {
    sid       = "ServiceRevisionsOfManagedServices"
    actions   = ["ecs:DescribeServiceRevisions"]
    resources = local.service_revision_arns
  }

  # Resource: PassRole is authorized on each role ARN; only the ECS infrastructure roles for load balancers that the releases' strategy.ecs.deployment.loadBalancer.roleArn name, only to ECS (no statement when there are none).
  dynamic "statement" {
    for_each = length(var.ecs_load_balancer_role_arns) > 0 ? [var.ecs_load_balancer_role_arns] : []
    content {
      sid       = "PassLoadBalancerRoles"
      actions   = ["iam:PassRole"]
      resources = statement.value
      condition {
        test     = "StringEquals"
        variable = "iam:PassedToService"
        values   = ["ecs.amazonaws.com"]
      }
    }
  }

  # Resource: these CodeDeploy actions are authorized on the deployment group ARN; the managed groups only.
  statement {
    sid = "ManagedDeploymentGroups"
    actions = [
      "codedeploy:CreateDeployment",
      "codedeploy:GetDeployment",
      "codedeploy:GetDeploymentGroup",
      "codedeploy:ListDeployments",
    ]
    resources = local.deployment_group_arns
  }

  # Resource: CreateDeployment registers its revision with the application, authorized on the application ARN; the managed applications only.
  statement {
    sid       = "ManagedApplications"
    actions   = ["codedeploy:RegisterApplicationRevision"]
    resources = local.application_arns
  }

  # Resource: GetDeploymentConfig is authorized on the deployment config ARN; the configs the releases may use only.
  statement {
    sid       = "DeploymentConfigs"
    actions   = ["codedeploy:GetDeploymentConfig"]
    resources = local.deployment_config_arns
  }

  # Resource "*": codedeploy:ContinueDeployment, StopDeployment and GetDeploymentTarget accept no resource-level scoping (no resource type in the Service Authorization Reference).
  statement {
    sid = "DeploymentsByIdOnly"
    actions = [
      "codedeploy:ContinueDeployment",
      "codedeploy:GetDeploymentTarget",
      "codedeploy:StopDeployment",
    ]
    resources = ["*"]
  }

  # Resource wildcard: CreateTaskSet, UpdateTaskSet and DeleteTaskSet are authorized on the task set's ARN, whose id ECS picks at CreateTaskSet; task-set/CLUSTER/SERVICE/* matches the managed services' task sets only.
  statement {
    sid = "ManagedServicesTaskSets"
    actions = [
      "ecs:CreateTaskSet",
      "ecs:DeleteTaskSet",
      "ecs:UpdateTaskSet",
    ]
    resources = local.task_set_arns
  }

  # Resource: UpdateServicePrimaryTaskSet is authorized on the service ARN (not the task set's); the managed services only.
  statement {
    sid       = "ManagedServicesPrimaryTaskSet"
    actions   = ["ecs:UpdateServicePrimaryTaskSet"]
    resources = local.ecs_service_arns
  }

  # Resource "*": elasticloadbalancing:DescribeListeners, DescribeRules, DescribeTargetGroups and DescribeTargetHealth, like every ELB Describe* action, accept no resource-level scoping.
  statement {
    sid = "LoadBalancerReads"
    actions = [
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeRules",
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTargetHealth",
    ]
    resources = ["*"]
  }

  # Resource: ModifyListener is authorized on the listener ARN; the listeners of `traffic_listener_arns` only (no statement when there are none).
  dynamic "statement" {
    for_each = length(var.traffic_listener_arns) > 0 ? [var.traffic_listener_arns] : []
    content {
      sid       = "TrafficListeners"
      actions   = ["elasticloadbalancing:ModifyListener"]
      resources = statement.value
    }
  }

  # Resource wildcard: ModifyRule is authorized on the rule ARN, whose id ELB picks when the rule is created; listener-rule/.../LISTENER/* matches the rules of `traffic_listener_arns` only.
  dynamic "statement" {
    for_each = length(local.traffic_rule_arns) > 0 ? [local.traffic_rule_arns] : []
    content {
      sid       = "TrafficListenerRules"
      actions   = ["elasticloadbalancing:ModifyRule"]
      resources = statement.value
    }
  }

  # Resource: DescribeAlarms is authorized on each alarm ARN; the releases' rollback alarms only (no statement when there are none).
  dynamic "statement" {
    for_each = length(local.alarm_arns) > 0 ? [local.alarm_arns] : []
    content {
      sid       = "RollbackAlarms"
      actions   = ["cloudwatch:DescribeAlarms"]
      resources = statement.value
    }
  }

  # Resource "*": cloudwatch:GetMetricData accepts no resource-level scoping (no resource type in the Service Authorization Reference); the releases' analyses read their candidates' metrics with it.
  statement {
    sid       = "AnalysisMetrics"
    actions   = ["cloudwatch:GetMetricData"]
    resources = ["*"]
  }
}
