# One ECS service released with CodeDeploy blue/green, ready for switchyard: the service
# (CODE_DEPLOY controller), its two target groups, production and test listeners on an
# existing ALB, the CodeDeploy application and deployment group with automatic rollback, the
# CodeDeploy service role, and a 5xx alarm. See README.md.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  region = data.aws_region.current.name

  family            = coalesce(var.family, var.name)
  container_name    = coalesce(var.container_name, var.name)
  application_name  = coalesce(var.codedeploy_application_name, var.name)
  deployment_group  = coalesce(var.deployment_group_name, var.name)
  release_name      = coalesce(var.release_name, var.name)
  listener_protocol = var.certificate_arn == null ? "HTTP" : "HTTPS"
  cluster_arn       = "arn:${data.aws_partition.current.partition}:ecs:${local.region}:${data.aws_caller_identity.current.account_id}:cluster/${var.cluster_name}"

  # arn:...:loadbalancer/app/NAME/ID -> app/NAME/ID, the LoadBalancer dimension of its metrics.
  load_balancer_dimension = split(":loadbalancer/", var.load_balancer_arn)[1]

  alarm_names = concat(
    aws_cloudwatch_metric_alarm.target_5xx[*].alarm_name,
    var.extra_alarm_names,
  )
}

resource "aws_cloudwatch_log_group" "service" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

# The first revision. Later revisions are registered by switchyard (a copy of the family's
# latest ACTIVE revision with the release's image and environment) and deployed by CodeDeploy.
# Terraform keeps pointing at its own revision, so it never fights those: change the image
# with a release, and the shape (cpu, memory, roles, ports) here, which registers a new
# revision that the next release copies.
resource "aws_ecs_task_definition" "initial" {
  family                   = local.family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = var.execution_role_arn
  task_role_arn            = var.task_role_arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name         = local.container_name
      image        = var.container_image
      essential    = true
      portMappings = [{ containerPort = var.container_port, protocol = "tcp" }]
      environment  = [for k, v in var.container_environment : { name = k, value = v }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.service.name
          awslogs-region        = local.region
          awslogs-stream-prefix = var.name
        }
      }
    },
  ])

  # A revision the service (or a rollback) may still run is never deregistered by Terraform.
  skip_destroy = true

  tags = var.tags
}

# ----- network --------------------------------------------------------------------------------

resource "aws_security_group" "tasks" {
  name_prefix = "${var.name}-tasks-"
  description = "${var.name}: the load balancer in on the container port"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-tasks" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "from_load_balancer" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "HTTP from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = var.load_balancer_security_group_id
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "tasks_all" {
  security_group_id = aws_security_group.tasks.id
  description       = "The application's own dependencies"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
  tags              = var.tags
}

resource "aws_vpc_security_group_egress_rule" "load_balancer_to_tasks" {
  security_group_id            = var.load_balancer_security_group_id
  description                  = "${var.name}: HTTP to the tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.tasks.id
  tags                         = var.tags
}

# ----- load balancing ---------------------------------------------------------------------------

# Two target groups that swap roles on every deployment: CodeDeploy gives the replacement
# tasks whichever one production is not using. Neither is "blue" for good.
resource "aws_lb_target_group" "this" {
  for_each = toset(["blue", "green"])

  name                 = "${var.name}-${each.key}"
  target_type          = "ip"
  protocol             = "HTTP"
  port                 = var.container_port
  vpc_id               = var.vpc_id
  deregistration_delay = var.deregistration_delay

  health_check {
    path                = var.health_check_path
    matcher             = var.health_check_matcher
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = var.tags
}

# CodeDeploy rewrites both listeners' default action on every deployment: Terraform sets it
# once and then leaves it alone.
resource "aws_lb_listener" "production" {
  load_balancer_arn = var.load_balancer_arn
  port              = var.production_listener_port
  protocol          = local.listener_protocol
  certificate_arn   = var.certificate_arn
  ssl_policy        = var.certificate_arn == null ? null : var.ssl_policy

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this["blue"].arn
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [default_action]
  }
}

resource "aws_lb_listener" "test" {
  load_balancer_arn = var.load_balancer_arn
  port              = var.test_listener_port
  protocol          = local.listener_protocol
  certificate_arn   = var.certificate_arn
  ssl_policy        = var.certificate_arn == null ? null : var.ssl_policy

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this["blue"].arn
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [default_action]
  }
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
  cluster                           = local.cluster_arn
  task_definition                   = aws_ecs_task_definition.initial.arn
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
    target_group_arn = aws_lb_target_group.this["blue"].arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = concat([aws_security_group.tasks.id], var.security_group_ids)
    assign_public_ip = var.assign_public_ip
  }

  tags = var.tags

  # A target group must be attached to the load balancer before a service can use it.
  depends_on = [aws_lb_listener.production, aws_lb_listener.test]

  lifecycle {
    ignore_changes = [task_definition, load_balancer]
  }
}

resource "aws_ecs_service" "autoscaled" {
  count = var.ignore_desired_count ? 1 : 0

  name                              = var.name
  cluster                           = local.cluster_arn
  task_definition                   = aws_ecs_task_definition.initial.arn
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
    target_group_arn = aws_lb_target_group.this["blue"].arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = concat([aws_security_group.tasks.id], var.security_group_ids)
    assign_public_ip = var.assign_public_ip
  }

  tags = var.tags

  depends_on = [aws_lb_listener.production, aws_lb_listener.test]

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
        listener_arns = [aws_lb_listener.production.arn]
      }
      test_traffic_route {
        listener_arns = [aws_lb_listener.test.arn]
      }
      target_group {
        name = aws_lb_target_group.this["blue"].name
      }
      target_group {
        name = aws_lb_target_group.this["green"].name
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

# ----- rollback alarm -----------------------------------------------------------------------

# 5xx responses of the service's targets, summed over both target groups: whichever serves
# production or test traffic, the alarm sees it. CodeDeploy (alarm_configuration) and
# switchyard (the release's rollback.alarms) stop and roll back a deployment when it fires.
resource "aws_cloudwatch_metric_alarm" "target_5xx" {
  count = var.create_5xx_alarm ? 1 : 0

  alarm_name          = "${var.name}-5xx"
  alarm_description   = "5xx responses from the targets of ${var.name} (both target groups); rolls back a deployment in flight"
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.alarm_5xx_threshold
  evaluation_periods  = var.alarm_5xx_evaluation_periods
  datapoints_to_alarm = var.alarm_5xx_evaluation_periods
  treat_missing_data  = "notBreaching"

  metric_query {
    id          = "total"
    label       = "5xx responses from ${var.name}'s targets"
    expression  = "FILL(blue, 0) + FILL(green, 0)"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = aws_lb_target_group.this
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/ApplicationELB"
        metric_name = "HTTPCode_Target_5XX_Count"
        stat        = "Sum"
        period      = 60
        dimensions = {
          LoadBalancer = local.load_balancer_dimension
          TargetGroup  = metric_query.value.arn_suffix
        }
      }
    }
  }

  tags = var.tags
}
