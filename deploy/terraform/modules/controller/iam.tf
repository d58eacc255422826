# IAM for the controller.
#
# The task role's policy names every action the controller calls, exactly the union of
# `switchyard::aws::actions::CONTROLLER_AWS_ACTIONS` and `switchyard::aws::STORE_ACTIONS`, with
# `ASSUME_ROLE_ACTIONS` and `NOTIFICATION_ACTIONS` when their roles, topics or buses are given
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

  # The statements of deploy-permissions (the ECS, CodeDeploy, ELB and CloudWatch actions
  # for releases in this account), and the roles of other accounts the controller assumes.
  source_policy_documents = [module.deploy_permissions.json]

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

  # Resource: AssumeRole is authorized on each role ARN; the deployer roles of `deployer_role_arns` only (no statement when there are none).
  dynamic "statement" {
    for_each = length(var.deployer_role_arns) > 0 ? [var.deployer_role_arns] : []
    content {
      sid       = "AssumeDeployerRoles"
      actions   = ["sts:AssumeRole"]
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
