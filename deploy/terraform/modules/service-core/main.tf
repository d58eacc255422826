# What the three service modules (bluegreen-service, ecs-service, external-service) share,
# and only that: the first task definition revision and its log group, the tasks' security
# group, the target groups, the listeners whose forward action belongs to CodeDeploy or
# switchyard, the 5xx alarm over the target groups, and the release document's head and tail
# (release.tf). Internal: the service modules call it and keep their own public interface;
# what differs per strategy (the service with its lifecycle, CodeDeploy, ECS's listener rules
# and role, the bootstrap, the release document's strategy section) stays in each of them.
# See README.md.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  region = data.aws_region.current.name

  family            = coalesce(var.family, var.name)
  container_name    = coalesce(var.container_name, var.name)
  listener_protocol = var.certificate_arn == null ? "HTTP" : "HTTPS"
  cluster_arn       = "arn:${data.aws_partition.current.partition}:ecs:${local.region}:${data.aws_caller_identity.current.account_id}:cluster/${var.cluster_name}"

  # The group every listener here starts on, and the first task set's or service's.
  first_target_group = var.target_group_keys[0]

  # arn:...:loadbalancer/app/NAME/ID -> app/NAME/ID, the LoadBalancer dimension of its metrics.
  load_balancer_dimension = split(":loadbalancer/", var.load_balancer_arn)[1]
}

resource "aws_cloudwatch_log_group" "service" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

# The first revision. Later revisions are registered by switchyard (a copy of the family's
# latest ACTIVE revision that switchyard did not register, with the release's image and
# environment) and run by CodeDeploy, ECS or as task sets, per strategy. Terraform keeps
# pointing at its own revision, so it never fights those: change the image with a release,
# and the shape (cpu, memory, roles, ports) here, which registers a new revision that the
# next release copies.
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
    merge(
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
      # Only where the caller asks for it (external-service): left out, not null.
      { for k, v in { memory = var.container_memory } : k => v if v != null },
    ),
  ])

  # A revision the service, a task set or a rollback may still run is never deregistered by
  # Terraform.
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

# One group per key, NAME-KEY. Which one is live changes with every release or deployment, so
# the keys say nothing of roles: the caller's comments say how its strategy uses them.
resource "aws_lb_target_group" "this" {
  for_each = toset(var.target_group_keys)

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

# Listeners whose forward action is not Terraform's (var.handed_over_listener_ports): created
# forwarding to the first group, then rewritten by CodeDeploy (bluegreen-service: every
# deployment points production and test at the replacement's group) or by switchyard
# (external-service: every release weights the forward over the pair, step by step, and
# leaves it on the other group). Without the ignore, the next `terraform apply` would send
# all traffic back to the first group, which after every second release has no tasks.
# ecs-service passes none: ECS shifts listener rules, and its listeners stay Terraform's.
resource "aws_lb_listener" "handed_over" {
  for_each = var.handed_over_listener_ports

  load_balancer_arn = var.load_balancer_arn
  port              = each.value
  protocol          = local.listener_protocol
  certificate_arn   = var.certificate_arn
  ssl_policy        = var.certificate_arn == null ? null : var.ssl_policy

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this[local.first_target_group].arn
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [default_action]
  }
}

# ----- rollback alarm -----------------------------------------------------------------------

# 5xx responses of the service's targets, summed over its target groups: whichever one the
# new version runs in, the alarm sees it. Who rolls back when it fires (CodeDeploy, ECS,
# switchyard through the release's rollback.alarms) is the caller's to say, in
# var.alarm_description.
resource "aws_cloudwatch_metric_alarm" "target_5xx" {
  count = var.create_5xx_alarm ? 1 : 0

  alarm_name          = "${var.name}-5xx"
  alarm_description   = var.alarm_description
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.alarm_5xx_threshold
  evaluation_periods  = var.alarm_5xx_evaluation_periods
  datapoints_to_alarm = var.alarm_5xx_evaluation_periods
  treat_missing_data  = "notBreaching"

  metric_query {
    id          = "total"
    label       = "5xx responses from ${var.name}'s targets"
    expression  = join(" + ", [for k in var.target_group_keys : "FILL(${k}, 0)"])
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
