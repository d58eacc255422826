# One ECS service released by switchyard's `ecs` strategy: the service with the ECS
# deployment controller (rolling updates with the circuit breaker and deployment alarms), its
# first task definition revision, a production and an optional test listener on an existing
# ALB, and for ECS-native blue/green, linear and canary deployments the alternate target
# group, the listener rules ECS shifts and the infrastructure role it shifts them with; a 5xx
# alarm; the tasks' security group. See README.md.

locals {
  family         = module.core.family
  container_name = module.core.container_name

  # blueGreen, linear and canary deployments shift traffic between two target groups through
  # listener rules; a rolling update replaces tasks behind one group.
  native = var.deployment_type != "rolling"
  groups = local.native ? ["a", "b"] : ["a"]
  test   = local.native && var.test_listener_port != null

  create_load_balancer_role = local.native && var.create_load_balancer_role
  load_balancer_role_arn = !local.native ? null : (
    local.create_load_balancer_role ? aws_iam_role.load_balancers[0].arn : var.load_balancer_role_arn
  )

  alarm_names = module.core.alarm_names
}

# The task definition, log group, security group, target groups and the 5xx alarm: what every
# service module shares (modules/service-core). The listeners are this module's own (below):
# ECS shifts listener rules, not a listener's forward action, so Terraform keeps them.
#
# "a" is the group the service starts on. With a blue/green, linear or canary deployment "b"
# is the alternate group (the release's deployment.loadBalancer.alternateTargetGroup): ECS
# starts the new revision there and, once it succeeds, the roles swap for the next one.
# The 5xx alarm sums the groups: whichever one the new revision runs in, it sees it; ECS (the
# service's deployment alarms) and switchyard (the release's rollback.alarms) roll a
# deployment back when it fires.
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
  target_group_keys               = local.groups
  health_check_path               = var.health_check_path
  health_check_matcher            = var.health_check_matcher
  deregistration_delay            = var.deregistration_delay
  create_5xx_alarm                = var.create_5xx_alarm
  alarm_description               = "5xx responses from the targets of ${var.name}; rolls back a deployment in flight"
  alarm_5xx_threshold             = var.alarm_5xx_threshold
  alarm_5xx_evaluation_periods    = var.alarm_5xx_evaluation_periods
  extra_alarm_names               = var.extra_alarm_names
  release_name                    = var.release_name
}

# ----- load balancing ---------------------------------------------------------------------------

# Rolling updates: the listener forwards to the service's only group, and ECS replaces the
# tasks behind it. Blue/green, linear, canary: production traffic goes through the rule
# below, whose weights ECS shifts; the default action answers what no rule matches (nothing:
# the rule matches every path).
resource "aws_lb_listener" "production" {
  load_balancer_arn = var.load_balancer_arn
  port              = var.production_listener_port
  protocol          = module.core.listener_protocol
  certificate_arn   = var.certificate_arn
  ssl_policy        = var.certificate_arn == null ? null : var.ssl_policy

  dynamic "default_action" {
    for_each = local.native ? [] : [1]
    content {
      type             = "forward"
      target_group_arn = module.core.target_groups["a"].arn
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
        arn    = module.core.target_groups["a"].arn
        weight = 100
      }
      target_group {
        arn    = module.core.target_groups["b"].arn
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
  protocol          = module.core.listener_protocol
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
        arn    = module.core.target_groups["a"].arn
        weight = 100
      }
      target_group {
        arn    = module.core.target_groups["b"].arn
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
  policy_arn = "arn:${module.core.partition}:iam::aws:policy/AmazonECSInfrastructureRolePolicyForLoadBalancers"
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
  cluster                            = module.core.cluster_arn
  task_definition                    = module.core.task_definition_arn
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
    target_group_arn = module.core.target_groups["a"].arn
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
  depends_on = [aws_lb_listener.production, aws_lb_listener_rule.production, aws_lb_listener_rule.test]

  lifecycle {
    ignore_changes = [task_definition, load_balancer]
  }
}

resource "aws_ecs_service" "autoscaled" {
  count = var.ignore_desired_count ? 1 : 0

  name                               = var.name
  cluster                            = module.core.cluster_arn
  task_definition                    = module.core.task_definition_arn
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
    target_group_arn = module.core.target_groups["a"].arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = module.core.task_security_group_ids
    assign_public_ip = var.assign_public_ip
  }

  tags = var.tags

  depends_on = [aws_lb_listener.production, aws_lb_listener_rule.production, aws_lb_listener_rule.test]

  lifecycle {
    ignore_changes = [task_definition, load_balancer, desired_count]
  }
}
