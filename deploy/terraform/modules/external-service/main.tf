# One ECS service released by switchyard's `taskSets` strategy: the service (EXTERNAL
# deployment controller), its pair of target groups, a production and an optional test
# listener on an existing ALB, the first task definition revision, the tasks' security group,
# a 5xx alarm, and the one-time bootstrap that creates the first task set and makes it
# primary (a script, or run by Terraform with `run_bootstrap`). See README.md.

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

  # The pair, in this order: the first task set runs on "a"; after that the roles alternate
  # with every release (switchyard puts the candidate on whichever group is not live).
  pair = ["a", "b"]

  # arn:...:loadbalancer/app/NAME/ID -> app/NAME/ID, the LoadBalancer dimension of its metrics.
  load_balancer_dimension = split(":loadbalancer/", var.load_balancer_arn)[1]

  alarm_names = concat(
    aws_cloudwatch_metric_alarm.target_5xx[*].alarm_name,
    var.extra_alarm_names,
  )

  service_name = one(concat(aws_ecs_service.this[*].name, aws_ecs_service.autoscaled[*].name))
  service_id   = one(concat(aws_ecs_service.this[*].id, aws_ecs_service.autoscaled[*].id))
}

resource "aws_cloudwatch_log_group" "service" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

# The first revision, which the bootstrap's task set runs. Later revisions are registered by
# switchyard (a copy of the family's latest ACTIVE revision that switchyard did not register,
# with the release's image and environment) and run as new task sets. Terraform keeps
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
    {
      name         = local.container_name
      image        = var.container_image
      essential    = true
      memory       = var.memory
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

  # A revision a task set (or a rollback) may still run is never deregistered by Terraform.
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

# The pair. Each version runs as a task set on one of them: the live (primary) task set's
# group is the live one, and switchyard starts the candidate on the other. Neither is "blue"
# for good.
resource "aws_lb_target_group" "this" {
  for_each = toset(local.pair)

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

# Production traffic. Terraform creates the listener forwarding to the first group; from then
# on switchyard owns the forward action: every release rewrites it, step by step, into a
# weighted forward over the pair and ends on the other group. Without the ignore, the next
# `terraform apply` would send all traffic back to the first group, which after every second
# release is the group with no tasks.
resource "aws_lb_listener" "production" {
  load_balancer_arn = var.load_balancer_arn
  port              = var.production_listener_port
  protocol          = local.listener_protocol
  certificate_arn   = var.certificate_arn
  ssl_policy        = var.certificate_arn == null ? null : var.ssl_policy

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this["a"].arn
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [default_action]
  }
}

# Test traffic (optional): switchyard points it at the candidate's group before any
# production traffic moves, and leaves it on that group, the live one after the switch.
# Terraform sets it once, as for the production listener.
resource "aws_lb_listener" "test" {
  count = var.test_listener_port == null ? 0 : 1

  load_balancer_arn = var.load_balancer_arn
  port              = var.test_listener_port
  protocol          = local.listener_protocol
  certificate_arn   = var.certificate_arn
  ssl_policy        = var.certificate_arn == null ? null : var.ssl_policy

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this["a"].arn
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [default_action]
  }
}

# ----- the service --------------------------------------------------------------------------

# An EXTERNAL service names no task definition, load balancer, network configuration or
# launch type: each task set carries its own, and DescribeServices reports the primary task
# set's as the service's. Terraform ignores those (it would otherwise try to remove them with
# UpdateService, which an EXTERNAL service refuses) and owns the rest: name, desired count,
# grace period, tags. Two blocks because lifecycle arguments cannot come from variables:
# exactly one exists, per var.ignore_desired_count.
resource "aws_ecs_service" "this" {
  count = var.ignore_desired_count ? 0 : 1

  name                              = var.name
  cluster                           = local.cluster_arn
  desired_count                     = var.desired_count
  health_check_grace_period_seconds = var.health_check_grace_period_seconds
  enable_ecs_managed_tags           = true
  propagate_tags                    = "SERVICE"

  deployment_controller {
    type = "EXTERNAL"
  }

  tags = var.tags

  # A target group must be attached to the load balancer before a task set uses it.
  depends_on = [aws_lb_listener.production, aws_lb_listener.test]

  lifecycle {
    ignore_changes = [task_definition, load_balancer, network_configuration, capacity_provider_strategy]
  }
}

# The same service when Application Auto Scaling owns the desired count: the task sets' scale
# is a percentage of it (switchyard never writes it), so Terraform sets it at creation only.
resource "aws_ecs_service" "autoscaled" {
  count = var.ignore_desired_count ? 1 : 0

  name                              = var.name
  cluster                           = local.cluster_arn
  desired_count                     = var.desired_count
  health_check_grace_period_seconds = var.health_check_grace_period_seconds
  enable_ecs_managed_tags           = true
  propagate_tags                    = "SERVICE"

  deployment_controller {
    type = "EXTERNAL"
  }

  tags = var.tags

  depends_on = [aws_lb_listener.production, aws_lb_listener.test]

  lifecycle {
    ignore_changes = [task_definition, load_balancer, network_configuration, capacity_provider_strategy, desired_count]
  }
}

# ----- the first task set ---------------------------------------------------------------------

# The first task set is not a Terraform resource: `aws_ecs_task_set` cannot make a task set
# primary (provider 5.100 has no argument or resource for UpdateServicePrimaryTaskSet), and
# after the first release switchyard deletes it, which the provider reads as "gone" and plans
# to create again (a second task set with the first image, on a group of the pair: exactly
# the fight to avoid). So the bootstrap is a script, run once per service: it creates the
# first task set (scale 100 percent, group "a", the initial revision) and makes it primary,
# and does nothing when the service has a primary task set already. README.md says how and
# when; `bootstrap_script` is the output to run by hand.
locals {
  bootstrap = {
    region  = local.region
    cluster = local.cluster_arn
    service = var.name
    create = {
      taskDefinition  = aws_ecs_task_definition.initial.arn
      launchType      = "FARGATE"
      platformVersion = "LATEST"
      externalId      = "terraform-bootstrap"
      loadBalancers = [{
        targetGroupArn = aws_lb_target_group.this["a"].arn
        containerName  = local.container_name
        containerPort  = var.container_port
      }]
      networkConfiguration = {
        awsvpcConfiguration = {
          subnets        = var.subnet_ids
          securityGroups = concat([aws_security_group.tasks.id], var.security_group_ids)
          assignPublicIp = var.assign_public_ip ? "ENABLED" : "DISABLED"
        }
      }
      scale = { unit = "PERCENT", value = 100 }
    }
  }

  # Single-quoted for the shell ('\'' inside).
  quoted = { for k, v in {
    region  = local.bootstrap.region
    cluster = local.bootstrap.cluster
    service = local.bootstrap.service
    create  = jsonencode(local.bootstrap.create)
  } : k => "'${replace(v, "'", "'\\''")}'" }

  bootstrap_script = <<-EOT
    #!/bin/sh
    # The first task set of ECS service ${var.cluster_name}/${var.name} (EXTERNAL), made primary,
    # for switchyard's taskSets strategy. Run once after the service exists; it does nothing
    # when the service already has a primary task set. Needs the AWS CLI and credentials that
    # may call ecs:DescribeServices, ecs:CreateTaskSet, ecs:UpdateServicePrimaryTaskSet (and
    # iam:PassRole on the task definition's roles).
    set -eu
    region=${local.quoted.region}
    cluster=${local.quoted.cluster}
    service=${local.quoted.service}
    ecs() { aws ecs "$@" --region "$region" --cluster "$cluster" --output text; }

    primary=$(ecs describe-services --services "$service" \
      --query "services[0].taskSets[?status=='PRIMARY'] | [0].taskSetArn")
    if [ "$primary" != "None" ]; then
      echo "$service already has a primary task set ($primary): nothing to do" >&2
      exit 0
    fi
    count=$(ecs describe-services --services "$service" --query 'length(services[0].taskSets || `[]`)')
    case "$count" in
      0)
        task_set=$(ecs create-task-set --service "$service" --cli-input-json ${local.quoted.create} \
          --query taskSet.taskSetArn)
        echo "created task set $task_set" >&2 ;;
      1)
        # A run that created the task set but stopped before making it primary.
        task_set=$(ecs describe-services --services "$service" --query "services[0].taskSets[0].taskSetArn") ;;
      *)
        echo "$service has $count task sets and none is primary: make one primary by hand (aws ecs update-service-primary-task-set)" >&2
        exit 1 ;;
    esac
    ecs update-service-primary-task-set --service "$service" --primary-task-set "$task_set" \
      --query taskSet.status >/dev/null
    echo "$task_set is the primary task set of $service" >&2
  EOT
}

# Runs the bootstrap from Terraform (var.run_bootstrap): once per service, because
# terraform_data reads nothing from AWS (switchyard replacing the task set changes nothing
# here) and runs again only when the service is replaced, which is when a new service needs
# its first task set.
resource "terraform_data" "bootstrap" {
  count = var.run_bootstrap ? 1 : 0

  triggers_replace = [local.service_id]

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    command     = local.bootstrap_script
    environment = var.bootstrap_environment
  }
}

# ----- rollback alarm -----------------------------------------------------------------------

# 5xx responses of the service's targets, summed over both target groups: whichever one the
# candidate runs on, the alarm sees it. switchyard (the release's rollback.alarms) restores
# production traffic to the live group and rolls back when it fires.
resource "aws_cloudwatch_metric_alarm" "target_5xx" {
  count = var.create_5xx_alarm ? 1 : 0

  alarm_name          = "${var.name}-5xx"
  alarm_description   = "5xx responses from the targets of ${var.name} (both target groups); rolls back a release in flight"
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.alarm_5xx_threshold
  evaluation_periods  = var.alarm_5xx_evaluation_periods
  datapoints_to_alarm = var.alarm_5xx_evaluation_periods
  treat_missing_data  = "notBreaching"

  metric_query {
    id          = "total"
    label       = "5xx responses from ${var.name}'s targets"
    expression  = "FILL(a, 0) + FILL(b, 0)"
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
