# One ECS service released with CodeDeploy blue/green, ready for switchyard: the service
# (CODE_DEPLOY controller), its two target groups, production and test listeners on an
# existing ALB, the CodeDeploy application and deployment group with automatic rollback, the
# CodeDeploy service role, and a 5xx alarm. See README.md.

locals {
  application_name = coalesce(var.codedeploy_application_name, var.name)
  deployment_group = coalesce(var.deployment_group_name, var.name)
  family           = module.core.family
  container_name   = module.core.container_name
  alarm_names      = module.core.alarm_names
}

# The task definition, log group, security group, target groups, both listeners and the 5xx
# alarm: what every service module shares (modules/service-core).
#
# Two target groups that swap roles on every deployment: CodeDeploy gives the replacement
# tasks whichever one production is not using. Neither is "blue" for good. CodeDeploy
# rewrites both listeners' default action on every deployment: Terraform sets it once and
# then leaves it alone (the core's handed-over listeners ignore it). The 5xx alarm sums both
# groups, so whichever serves production or test traffic, it sees it: CodeDeploy
# (alarm_configuration) and switchyard (the release's rollback.alarms) stop and roll back a
# deployment when it fires.
module "core" {
  source = "../service-core"

  name                            = var.name
  cluster_name                    = var.cluster_name
  tags                            = var.tags
  family                          = var.family
  container_name                  = var.container_name
  container_image                 = var.container_image
  container_port                  = var.container_port
  container_environment           = var.container_environment
  cpu                             = var.cpu
  memory                          = var.memory
  cpu_architecture                = var.cpu_architecture
  execution_role_arn              = var.execution_role_arn
  task_role_arn                   = var.task_role_arn
  log_retention_in_days           = var.log_retention_in_days
  log_kms_key_arn                 = var.log_kms_key_arn
  vpc_id                          = var.vpc_id
  security_group_ids              = var.security_group_ids
  load_balancer_arn               = var.load_balancer_arn
  load_balancer_security_group_id = var.load_balancer_security_group_id
  certificate_arn                 = var.certificate_arn
  ssl_policy                      = var.ssl_policy
  target_group_keys               = ["blue", "green"]
  handed_over_listener_ports      = { production = var.production_listener_port, test = var.test_listener_port }
  health_check_path               = var.health_check_path
  health_check_matcher            = var.health_check_matcher
  deregistration_delay            = var.deregistration_delay
  create_5xx_alarm                = var.create_5xx_alarm
  alarm_description               = "5xx responses from the targets of ${var.name} (both target groups); rolls back a deployment in flight"
  alarm_5xx_threshold             = var.alarm_5xx_threshold
  alarm_5xx_evaluation_periods    = var.alarm_5xx_evaluation_periods
  extra_alarm_names               = var.extra_alarm_names
  release_name                    = var.release_name
}

# ----- the service --------------------------------------------------------------------------

# CodeDeploy owns the task definition and the load balancer binding of a CODE_DEPLOY service
# (every deployment replaces both through a new task set): Terraform sets them at creation
# only. Network configuration and platform version cannot be changed by UpdateService on
# such a service either; they change with a deployment (switchyard copies them from the
# running task set). Two blocks because lifecycle arguments cannot come from variables:
# exactly one exists, per var.ignore_desired_count.
resource "aws_ecs_service" "this" {
  count = var.ignore_desired_count ? 0 : 1

  name                              = var.name
  cluster                           = module.core.cluster_arn
  task_definition                   = module.core.task_definition_arn
  desired_count                     = var.desired_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  health_check_grace_period_seconds = var.health_check_grace_period_seconds
  enable_ecs_managed_tags           = true
  propagate_tags                    = "SERVICE"

  deployment_controller {
    type = "CODE_DEPLOY"
  }

  load_balancer {
    target_group_arn = module.core.target_groups["blue"].arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = module.core.task_security_group_ids
    assign_public_ip = var.assign_public_ip
  }

  tags = var.tags

  # A target group must be attached to the load balancer before a service can use it.
  depends_on = [module.core]

  lifecycle {
    ignore_changes = [task_definition, load_balancer]
  }
}

resource "aws_ecs_service" "autoscaled" {
  count = var.ignore_desired_count ? 1 : 0

  name                              = var.name
  cluster                           = module.core.cluster_arn
  task_definition                   = module.core.task_definition_arn
  desired_count                     = var.desired_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  health_check_grace_period_seconds = var.health_check_grace_period_seconds
  enable_ecs_managed_tags           = true
  propagate_tags                    = "SERVICE"

  deployment_controller {
    type = "CODE_DEPLOY"
  }

  load_balancer {
    target_group_arn = module.core.target_groups["blue"].arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = module.core.task_security_group_ids
    assign_public_ip = var.assign_public_ip
  }

  tags = var.tags

  depends_on = [module.core]

  lifecycle {
    ignore_changes = [task_definition, load_balancer, desired_count]
  }
}

# ----- CodeDeploy ---------------------------------------------------------------------------

data "aws_iam_policy_document" "codedeploy_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["codedeploy.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "codedeploy" {
  name               = "${var.name}-codedeploy"
  description        = "CodeDeploy blue/green deployments of the ECS service ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.codedeploy_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "codedeploy" {
  role       = aws_iam_role.codedeploy.name
  policy_arn = "arn:aws:iam::aws:policy/AWSCodeDeployRoleForECS"
}

resource "aws_codedeploy_app" "this" {
  name             = local.application_name
  compute_platform = "ECS"
  tags             = var.tags
}

resource "aws_codedeploy_deployment_group" "this" {
  app_name               = aws_codedeploy_app.this.name
  deployment_group_name  = local.deployment_group
  service_role_arn       = aws_iam_role.codedeploy.arn
  deployment_config_name = var.deployment_config_name

  deployment_style {
    deployment_type   = "BLUE_GREEN"
    deployment_option = "WITH_TRAFFIC_CONTROL"
  }

  blue_green_deployment_config {
    deployment_ready_option {
      action_on_timeout = var.ready_action_on_timeout
      # The wait applies to STOP_DEPLOYMENT only.
      wait_time_in_minutes = var.ready_action_on_timeout == "STOP_DEPLOYMENT" ? var.ready_wait_time_in_minutes : 0
    }

    terminate_blue_instances_on_deployment_success {
      action                           = "TERMINATE"
      termination_wait_time_in_minutes = var.termination_wait_time_in_minutes
    }
  }

  auto_rollback_configuration {
    enabled = true
    events  = ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]
  }

  alarm_configuration {
    enabled = length(local.alarm_names) > 0
    alarms  = local.alarm_names
  }

  ecs_service {
    cluster_name = var.cluster_name
    service_name = var.name
  }

  load_balancer_info {
    target_group_pair_info {
      prod_traffic_route {
        listener_arns = [module.core.handed_over_listener_arns["production"]]
      }
      test_traffic_route {
        listener_arns = [module.core.handed_over_listener_arns["test"]]
      }
      target_group {
        name = module.core.target_groups["blue"].name
      }
      target_group {
        name = module.core.target_groups["green"].name
      }
    }
  }

  tags = var.tags

  # The group names the service; the role's policy must be attached before CodeDeploy
  # validates the group.
  depends_on = [aws_ecs_service.this, aws_ecs_service.autoscaled, aws_iam_role_policy_attachment.codedeploy]

  lifecycle {
    precondition {
      condition     = length(local.alarm_names) <= 10
      error_message = "A deployment group takes at most 10 alarms."
    }
  }
}
