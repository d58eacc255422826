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
  })
}
