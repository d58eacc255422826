# The two roles of the GitOps workflow (deploy/gitops/github-workflow.yaml), assumed through
# GitHub's OIDC provider (no stored keys), each trusting only its own kind of job in one
# repository:
#
#   pull request role   `switchyard diff` and `apply --dry-run --prune`: reads only
#   apply role          `apply --prune` after merge: writes the release table, nothing else
#
# Each policy names exactly the actions its commands call:
# `switchyard::aws::actions::GITOPS_PULL_REQUEST_ACTIONS` and `GITOPS_APPLY_ACTIONS`
# (tests/it/terraform.rs compares them). Neither role can deploy: the controller does.
# Comments above statements follow the controller module's convention (`Resource:`,
# `Resource wildcard:`, `Resource "*":`), which the test checks.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id

  table_arn = "arn:${local.partition}:dynamodb:${local.region}:${local.account}:table/${var.table_name}"

  # "CLUSTER/SERVICE" -> arn:...:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE (long ARN format).
  ecs_service_arns = [
    for s in var.ecs_services :
    startswith(s, "arn:") ? s : "arn:${local.partition}:ecs:${local.region}:${local.account}:service/${s}"
  ]

  oidc_host         = "token.actions.githubusercontent.com"
  oidc_provider_arn = var.oidc_provider_arn != null ? var.oidc_provider_arn : aws_iam_openid_connect_provider.github[0].arn
}

resource "aws_iam_openid_connect_provider" "github" {
  count          = var.oidc_provider_arn == null ? 1 : 0
  url            = "https://${local.oidc_host}"
  client_id_list = ["sts.amazonaws.com"]
  # IAM no longer checks these for GitHub (it trusts the provider's certificate authority),
  # but older AWS providers require the argument.
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd"]
  tags            = var.tags
}

# ----- pull request role: what would change --------------------------------------------------

data "aws_iam_policy_document" "pull_request_trust" {
  # Resource: a trust policy names no resource; only pull request jobs of this repository, through GitHub's OIDC provider.
  statement {
    sid     = "PullRequestsOfThisRepository"
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:sub"
      values   = ["repo:${var.github_repository}:pull_request"]
    }
  }
}

resource "aws_iam_role" "pull_request" {
  name                 = "${var.name}-pull-request"
  description          = "switchyard GitOps: shows what a pull request would change (switchyard diff, apply --dry-run); reads only"
  assume_role_policy   = data.aws_iam_policy_document.pull_request_trust.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "pull_request" {
  # Resource: GetItem (diff, apply --dry-run) and Scan (the releases --prune would delete) are authorized on the table ARN; this table only.
  statement {
    sid       = "ReadReleases"
    actions   = ["dynamodb:GetItem", "dynamodb:Scan"]
    resources = [local.table_arn]
  }

  # Resource: DescribeServices (diff: the live task definition) is authorized on each service ARN; the managed services only.
  statement {
    sid       = "ManagedServices"
    actions   = ["ecs:DescribeServices"]
    resources = local.ecs_service_arns
  }

  # Resource "*": ecs:DescribeTaskDefinition and ecs:ListTaskDefinitions (diff: the base and the revisions switchyard registered) accept no resource-level scoping.
  statement {
    sid       = "DescribeTaskDefinitions"
    actions   = ["ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions"]
    resources = ["*"]
  }

  # Resource: the table's key only, and only when DynamoDB in this region uses it for the role (no statement without a key).
  dynamic "statement" {
    for_each = var.table_kms_key_arn == null ? [] : [var.table_kms_key_arn]
    content {
      sid       = "TableKeyThroughDynamoDB"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["dynamodb.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "pull_request" {
  name   = "switchyard-gitops-pull-request"
  role   = aws_iam_role.pull_request.id
  policy = data.aws_iam_policy_document.pull_request.json
}

# ----- apply role: write the desired states after merge -----------------------------------

data "aws_iam_policy_document" "apply_trust" {
  # Resource: a trust policy names no resource; only jobs of this repository's GitHub environment (its protection rules gate every apply).
  statement {
    sid     = "ApplyJobsOfThisRepository"
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:sub"
      values   = ["repo:${var.github_repository}:environment:${var.github_environment}"]
    }
  }
}

resource "aws_iam_role" "apply" {
  name                 = "${var.name}-apply"
  description          = "switchyard GitOps: writes the release documents to the release table after merge (apply --prune)"
  assume_role_policy   = data.aws_iam_policy_document.apply_trust.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "apply" {
  # Resource: apply reads, writes (UpdateItem, conditional on the generation) and prunes (Scan, DeleteItem) releases, all authorized on the table ARN; this table only.
  statement {
    sid = "WriteReleases"
    actions = [
      "dynamodb:DeleteItem",
      "dynamodb:GetItem",
      "dynamodb:Scan",
      "dynamodb:UpdateItem",
    ]
    resources = [local.table_arn]
  }

  # Resource: the table's key only, and only when DynamoDB in this region uses it for the role (no statement without a key).
  dynamic "statement" {
    for_each = var.table_kms_key_arn == null ? [] : [var.table_kms_key_arn]
    content {
      sid       = "TableKeyThroughDynamoDB"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["dynamodb.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "apply" {
  name   = "switchyard-gitops-apply"
  role   = aws_iam_role.apply.id
  policy = data.aws_iam_policy_document.apply.json
}
