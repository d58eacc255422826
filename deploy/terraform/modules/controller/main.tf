# The switchyard controller on ECS Fargate: its release table, its least-privilege task role,
# and the service that runs it. See README.md for the inputs and the IAM design.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id

  # ARNs are built from names rather than read from the resources, so that the policies are
  # known at plan time (and can be reviewed in the plan) and do not wait for the resources.
  table_arn     = "arn:${local.partition}:dynamodb:${local.region}:${local.account}:table/${var.table_name}"
  log_group     = "/ecs/${var.name}"
  log_group_arn = "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:${local.log_group}"

  # EventBridge buses are reached in the controller's region: a name is this account's bus.
  notification_event_bus_arns = [
    for b in var.notification_event_buses :
    startswith(b, "arn:") ? b : "arn:${local.partition}:events:${local.region}:${local.account}:event-bus/${b}"
  ]

  # The container's environment: the log level (which extra_environment may override), then
  # the settings this module owns.
  environment = merge({ SWITCHYARD_LOG_LEVEL = var.log_level }, var.extra_environment, {
    SWITCHYARD_TABLE      = var.table_name
    SWITCHYARD_REGION     = local.region
    SWITCHYARD_LISTEN     = "0.0.0.0:8080"
    SWITCHYARD_LOG_FORMAT = "json"
    }, var.external_id == null ? {} : {
    # Given to every AssumeRole of a deployer role (their trust policies ask for it).
    SWITCHYARD_EXTERNAL_ID = var.external_id
  })
}
