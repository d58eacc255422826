# One ECS service released by switchyard's `ecs` strategy: the service with the ECS
# deployment controller (rolling updates with the circuit breaker and deployment alarms), its
# first task definition revision, a production and an optional test listener on an existing
# ALB, and for ECS-native blue/green, linear and canary deployments the alternate target
# group, the listener rules ECS shifts and the infrastructure role it shifts them with; a 5xx
# alarm; the tasks' security group. See README.md.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  region = data.aws_region.current.name

  family            = coalesce(var.family, var.name)
  container_name    = coalesce(var.container_name, var.name)
  release_name      = coalesce(var.release_name, var.name)
  listener_protocol = var.certificate_arn == null ? "HTTP" : "HTTPS"
  cluster_arn       = "arn:${data.aws_partition.current.partition}:ecs:${local.region}:${data.aws_caller_identity.current.account_id}:cluster/${var.cluster_name}"

  # blueGreen, linear and canary deployments shift traffic between two target groups through
  # listener rules; a rolling update replaces tasks behind one group.
  native = var.deployment_type != "rolling"
  groups = local.native ? ["a", "b"] : ["a"]
  test   = local.native && var.test_listener_port != null

  create_load_balancer_role = local.native && var.create_load_balancer_role
  load_balancer_role_arn = !local.native ? null : (
    local.create_load_balancer_role ? aws_iam_role.load_balancers[0].arn : var.load_balancer_role_arn
  )

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
# latest ACTIVE revision that switchyard did not register, with the release's image and
# environment) and deployed by ECS. Terraform keeps pointing at its own revision and ignores
# the service's (below), so it never fights those: change the image with a release, and the
# shape (cpu, memory, roles, ports) here, which registers a new revision that the next
# release copies.
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

# "a" is the group the service starts on. With a blue/green, linear or canary deployment "b"
# is the alternate group (the release's deployment.loadBalancer.alternateTargetGroup): ECS
# starts the new revision there and, once it succeeds, the roles swap for the next one.
resource "aws_lb_target_group" "this" {
  for_each = toset(local.groups)

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

# Rolling updates: the listener forwards to the service's only group, and ECS replaces the
# tasks behind it. Blue/green, linear, canary: production traffic goes through the rule
# below, whose weights ECS shifts; the default action answers what no rule matches (nothing:
# the rule matches every path).
resource "aws_lb_listener" "production" {
  load_balancer_arn = var.load_balancer_arn
  port              = var.production_listener_port
  protocol          = local.listener_protocol
  certificate_arn   = var.certificate_arn
  ssl_policy        = var.certificate_arn == null ? null : var.ssl_policy

  dynamic "default_action" {
    for_each = local.native ? [] : [1]
    content {
      type             = "forward"
      target_group_arn = aws_lb_target_group.this["a"].arn
    }
  }

  dynamic "default_action" {
    for_each = local.native ? [1] : []
    content {
      type = "fixed-response"
      fixed_response {
        content_type = "text/plain"
        message_body = "no route"
        status_code  = "404"
      }
    }
  }

  tags = var.tags
}

# The production listener rule of an ECS-native blue/green, linear or canary deployment
# (deployment.loadBalancer.productionListenerRule): ECS rewrites its forward weights during
# every deployment and leaves it on the group the new revision runs in. Terraform creates it
# forwarding to "a" (with "b" at weight 0, so that both groups are on the load balancer) and
# never sets it back: without the ignore, the next apply would send production traffic to
# "a", which after every second deployment has no tasks.
resource "aws_lb_listener_rule" "production" {
  count = local.native ? 1 : 0

  listener_arn = aws_lb_listener.production.arn
  priority     = var.listener_rule_priority

  action {
    type = "forward"
    forward {
      target_group {
        arn    = aws_lb_target_group.this["a"].arn
        weight = 100
      }
      target_group {
        arn    = aws_lb_target_group.this["b"].arn
        weight = 0
      }
    }
  }

  condition {
    path_pattern {
      values = ["/*"]
    }
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [action]

    precondition {
      condition     = var.create_load_balancer_role || var.load_balancer_role_arn != null
      error_message = "With create_load_balancer_role = false, load_balancer_role_arn must name the ECS infrastructure role for load balancers."
    }
  }
}

# Test traffic (blue/green, linear, canary; optional): ECS points the test rule at the new
# revision before production traffic moves (deployment.loadBalancer.testListenerRule).
resource "aws_lb_listener" "test" {
  count = local.test ? 1 : 0

  load_balancer_arn = var.load_balancer_arn
  port              = var.test_listener_port
  protocol          = local.listener_protocol
  certificate_arn   = var.certificate_arn
  ssl_policy        = var.certificate_arn == null ? null : var.ssl_policy

  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      message_body = "no route"
      status_code  = "404"
    }
  }

  tags = var.tags
}

# ECS rewrites it like the production rule: Terraform sets it once.
resource "aws_lb_listener_rule" "test" {
  count = local.test ? 1 : 0

  listener_arn = aws_lb_listener.test[0].arn
  priority     = var.listener_rule_priority

  action {
    type = "forward"
    forward {
      target_group {
        arn    = aws_lb_target_group.this["a"].arn
        weight = 100
      }
      target_group {
        arn    = aws_lb_target_group.this["b"].arn
        weight = 0
      }
    }
  }

  condition {
    path_pattern {
      values = ["/*"]
    }
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [action]
  }
}

# The infrastructure role ECS assumes to shift the listener rules and register targets
# (deployment.loadBalancer.roleArn), with the AWS managed policy for it. switchyard passes it
# to ECS with UpdateService: give it to the controller module's PassRole list for load
# balancer roles (README.md).
data "aws_iam_policy_document" "load_balancers_trust" {
  count = local.create_load_balancer_role ? 1 : 0

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "load_balancers" {
  count = local.create_load_balancer_role ? 1 : 0

  name                 = "${var.name}-ecs-load-balancers"
  description          = "ECS shifts the listener rules of ${var.name} during blue/green, linear and canary deployments"
  assume_role_policy   = data.aws_iam_policy_document.load_balancers_trust[0].json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "load_balancers" {
  count = local.create_load_balancer_role ? 1 : 0

  role       = aws_iam_role.load_balancers[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"
}

# ----- the service --------------------------------------------------------------------------

# The ECS deployment controller, with what the AWS provider 5.100 can say of its deployments:
# rolling-update percentages, the deployment circuit breaker with rollback, and deployment
# alarms with rollback. The provider has no `deployment_configuration` block (strategy, bake
# time, canary and linear settings, lifecycle hooks) and no `advanced_configuration` of a
# load balancer: the release document's strategy.ecs.deployment carries those, and switchyard
# sets them with each rollout's UpdateService (README.md).
#
# Terraform owns the service but not its rollout. switchyard's UpdateService changes the task
# definition on every release, and with a blue/green, linear or canary deployment the load
# balancer (its advanced configuration, and the group ECS leaves it on): the ignore keeps the
# next `terraform apply` from reverting the candidate and starting a deployment of its own.
# There is no deployment_configuration to ignore in 5.100 (see above); the arguments it has
# are Terraform's. Two blocks because lifecycle arguments cannot come from variables: exactly
# one exists, per var.ignore_desired_count.
resource "aws_ecs_service" "this" {
  count = var.ignore_desired_count ? 0 : 1

  name                               = var.name
  cluster                            = local.cluster_arn
  task_definition                    = aws_ecs_task_definition.initial.arn
  desired_count                      = var.desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  health_check_grace_period_seconds  = var.health_check_grace_period_seconds
  deployment_minimum_healthy_percent = var.deployment_minimum_healthy_percent
  deployment_maximum_percent         = var.deployment_maximum_percent
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"

  deployment_controller {
    type = "ECS"
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  dynamic "alarms" {
    for_each = length(local.alarm_names) > 0 ? [local.alarm_names] : []
    content {
      alarm_names = alarms.value
      enable      = true
      rollback    = true
    }
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this["a"].arn
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
  depends_on = [aws_lb_listener.production, aws_lb_listener_rule.production, aws_lb_listener_rule.test]

  lifecycle {
    ignore_changes = [task_definition, load_balancer]
  }
}

resource "aws_ecs_service" "autoscaled" {
  count = var.ignore_desired_count ? 1 : 0

  name                               = var.name
  cluster                            = local.cluster_arn
  task_definition                    = aws_ecs_task_definition.initial.arn
  desired_count                      = var.desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  health_check_grace_period_seconds  = var.health_check_grace_period_seconds
  deployment_minimum_healthy_percent = var.deployment_minimum_healthy_percent
  deployment_maximum_percent         = var.deployment_maximum_percent
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"

  deployment_controller {
    type = "ECS"
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  dynamic "alarms" {
    for_each = length(local.alarm_names) > 0 ? [local.alarm_names] : []
    content {
      alarm_names = alarms.value
      enable      = true
      rollback    = true
    }
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this["a"].arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = concat([aws_security_group.tasks.id], var.security_group_ids)
    assign_public_ip = var.assign_public_ip
  }

  tags = var.tags

  depends_on = [aws_lb_listener.production, aws_lb_listener_rule.production, aws_lb_listener_rule.test]

  lifecycle {
    ignore_changes = [task_definition, load_balancer, desired_count]
  }
}

# ----- rollback alarm -----------------------------------------------------------------------

# 5xx responses of the service's targets, summed over its target groups: whichever one the
# new revision runs in, the alarm sees it. ECS (the service's deployment alarms) and
# switchyard (the release's rollback.alarms) roll a deployment back when it fires.
resource "aws_cloudwatch_metric_alarm" "target_5xx" {
  count = var.create_5xx_alarm ? 1 : 0

  alarm_name          = "${var.name}-5xx"
  alarm_description   = "5xx responses from the targets of ${var.name}; rolls back a deployment in flight"
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.alarm_5xx_threshold
  evaluation_periods  = var.alarm_5xx_evaluation_periods
  datapoints_to_alarm = var.alarm_5xx_evaluation_periods
  treat_missing_data  = "notBreaching"

  metric_query {
    id          = "total"
    label       = "5xx responses from ${var.name}'s targets"
    expression  = join(" + ", [for k in local.groups : "FILL(${k}, 0)"])
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
