# IAM for the controller.
#
# The task role's policy names every action the controller calls, exactly the union of
# `switchyard::aws::actions::CONTROLLER_AWS_ACTIONS` and `switchyard::aws::STORE_ACTIONS`
# (tests/it/terraform.rs compares them), and no action wildcard. Each statement's Resource
# follows the IAM Service Authorization Reference for its actions; the comment above each
# statement says why. Comments start with `Resource:` (exact ARNs), `Resource wildcard:` (an
# ARN pattern, and why it cannot be exact) or `Resource "*":` (the actions accept no
# resource-level scoping); the test checks that the wildcards match their comments.

data "aws_iam_policy_document" "task_trust" {
  # Resource: a trust policy names no resource; only ECS tasks of this account assume the role (confused deputy protection, as the ECS guide recommends for task roles).
  statement {
    sid     = "EcsTasksOfThisAccount"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

data "aws_iam_policy_document" "execution_trust" {
  # Resource: a trust policy names no resource; the ECS agents start the task with this role (the standard execution role trust).
  statement {
    sid     = "EcsTasks"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# ----- task role: what the controller itself may do ---------------------------------------

resource "aws_iam_role" "task" {
  name                 = "${var.name}-task"
  description          = "switchyard controller: reads releases, drives CodeDeploy and task sets for the managed ECS services"
  assume_role_policy   = data.aws_iam_policy_document.task_trust.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "controller" {
  # Resource: item reads/writes (leases read with BatchGetItem, fenced status writes as transactions of ConditionCheckItem + UpdateItem), Scan and DescribeTable are authorized on the table ARN; this table only.
  statement {
    sid = "ReleaseTable"
    actions = [
      "dynamodb:BatchGetItem",
      "dynamodb:ConditionCheckItem",
      "dynamodb:DeleteItem",
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:Scan",
      "dynamodb:UpdateItem",
    ]
    resources = [local.table_arn]
  }

  # Resource wildcard: stream ARNs end in a creation timestamp that changes when the stream is re-enabled; TABLE/stream/* matches this table's streams only.
  statement {
    sid = "ReleaseTableStream"
    actions = [
      "dynamodb:DescribeStream",
      "dynamodb:GetRecords",
      "dynamodb:GetShardIterator",
    ]
    resources = ["${local.table_arn}/stream/*"]
  }

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

  # Resource "*": cloudwatch:GetMetricData accepts no resource-level scoping (no resource type in the Service Authorization Reference); the releases' analyses read their candidates' metrics with it.
  statement {
    sid       = "AnalysisMetrics"
    actions   = ["cloudwatch:GetMetricData"]
    resources = ["*"]
  }

  # Resource: Publish is authorized on the topic ARN; the notification topics of `notification_topic_arns` only (no statement when there are none).
  dynamic "statement" {
    for_each = length(var.notification_topic_arns) > 0 ? [var.notification_topic_arns] : []
    content {
      sid       = "NotificationTopics"
      actions   = ["sns:Publish"]
      resources = statement.value
    }
  }

  # Resource: PutEvents is authorized on the event bus ARN; the buses of `notification_event_buses` only (no statement when there are none).
  dynamic "statement" {
    for_each = length(local.notification_event_bus_arns) > 0 ? [local.notification_event_bus_arns] : []
    content {
      sid       = "NotificationEventBuses"
      actions   = ["events:PutEvents"]
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
}

resource "aws_iam_role_policy" "controller" {
  name   = "switchyard-controller"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.controller.json
}

# With a customer managed key, DynamoDB uses the key on the caller's behalf: the caller needs
# these KMS permissions, only through DynamoDB (kms:ViaService). The key policy must allow
# them too (or delegate to IAM). Not part of the action list the code calls: these are
# DynamoDB's calls, authorized as the controller.
data "aws_iam_policy_document" "table_kms" {
  count = var.table_kms_key_arn == null ? 0 : 1

  # Resource: the table's key only, and only when DynamoDB in this region uses it for the controller.
  statement {
    sid = "TableKeyThroughDynamoDB"
    actions = [
      "kms:CreateGrant",
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
    ]
    resources = [var.table_kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "table_kms" {
  count  = var.table_kms_key_arn == null ? 0 : 1
  name   = "switchyard-table-kms"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.table_kms[0].json
}

# ----- execution role: what ECS needs to start the controller's task ------------------------

resource "aws_iam_role" "execution" {
  name                 = "${var.name}-execution"
  description          = "switchyard controller: ECS pulls the image and ships the logs"
  assume_role_policy   = data.aws_iam_policy_document.execution_trust.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "execution" {
  # Resource wildcard: log streams are created per task (PREFIX/CONTAINER/TASK_ID); LOG_GROUP:log-stream:* matches this log group's streams only.
  statement {
    sid       = "ShipLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${local.log_group_arn}:log-stream:*"]
  }

  # Resource "*": ecr:GetAuthorizationToken accepts no resource-level scoping (no resource type in the Service Authorization Reference).
  dynamic "statement" {
    for_each = var.image_repository_arn == null ? [] : [1]
    content {
      sid       = "EcrLogin"
      actions   = ["ecr:GetAuthorizationToken"]
      resources = ["*"]
    }
  }

  # Resource: image pulls are authorized on the repository ARN; the controller's repository only.
  dynamic "statement" {
    for_each = var.image_repository_arn == null ? [] : [var.image_repository_arn]
    content {
      sid       = "PullControllerImage"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "switchyard-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}
