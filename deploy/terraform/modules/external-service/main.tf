# One ECS service released by switchyard's `taskSets` strategy: the service (EXTERNAL
# deployment controller), its pair of target groups, a production and an optional test
# listener on an existing ALB, the first task definition revision, the tasks' security group,
# a 5xx alarm, and the one-time bootstrap that creates the first task set and makes it
# primary (a script, or run by Terraform with `run_bootstrap`). See README.md.

locals {
  family         = module.core.family
  container_name = module.core.container_name

  # The pair, in this order: the first task set runs on "a"; after that the roles alternate
  # with every release (switchyard puts the candidate on whichever group is not live).
  pair = ["a", "b"]

  alarm_names = module.core.alarm_names

  service_name = one(concat(aws_ecs_service.this[*].name, aws_ecs_service.autoscaled[*].name))
  service_id   = one(concat(aws_ecs_service.this[*].id, aws_ecs_service.autoscaled[*].id))
}

# The task definition (the bootstrap's task set runs its first revision), log group, security
# group, the pair of target groups, the listeners and the 5xx alarm: what every service module
# shares (modules/service-core).
#
# The pair: each version runs as a task set on one of them; the live (primary) task set's
# group is the live one, and switchyard starts the candidate on the other. Neither is "blue"
# for good. Production traffic, and test traffic (optional): Terraform creates the listeners
# forwarding to "a"; from then on switchyard owns their forward action (the core's handed-over
# listeners ignore it): every release points the test listener at the candidate's group
# before any production traffic moves, and rewrites the production listener, step by step,
# into a weighted forward over the pair, ending on the other group. The 5xx alarm sums both
# groups: whichever one the candidate runs on, it sees it, and switchyard (the release's
# rollback.alarms) restores production traffic to the live group and rolls back.
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
  container_memory                = var.memory
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
  target_group_keys               = local.pair
  handed_over_listener_ports = merge(
    { production = var.production_listener_port },
    var.test_listener_port == null ? {} : { test = var.test_listener_port },
  )
  health_check_path            = var.health_check_path
  health_check_matcher         = var.health_check_matcher
  deregistration_delay         = var.deregistration_delay
  create_5xx_alarm             = var.create_5xx_alarm
  alarm_description            = "5xx responses from the targets of ${var.name} (both target groups); rolls back a release in flight"
  alarm_5xx_threshold          = var.alarm_5xx_threshold
  alarm_5xx_evaluation_periods = var.alarm_5xx_evaluation_periods
  extra_alarm_names            = var.extra_alarm_names
  release_name                 = var.release_name
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
  cluster                           = module.core.cluster_arn
  desired_count                     = var.desired_count
  health_check_grace_period_seconds = var.health_check_grace_period_seconds
  enable_ecs_managed_tags           = true
  propagate_tags                    = "SERVICE"

  deployment_controller {
    type = "EXTERNAL"
  }

  tags = var.tags

  # A target group must be attached to the load balancer before a task set uses it.
  depends_on = [module.core]

  lifecycle {
    ignore_changes = [task_definition, load_balancer, network_configuration, capacity_provider_strategy]
  }
}

# The same service when Application Auto Scaling owns the desired count: the task sets' scale
# is a percentage of it (switchyard never writes it), so Terraform sets it at creation only.
resource "aws_ecs_service" "autoscaled" {
  count = var.ignore_desired_count ? 1 : 0

  name                              = var.name
  cluster                           = module.core.cluster_arn
  desired_count                     = var.desired_count
  health_check_grace_period_seconds = var.health_check_grace_period_seconds
  enable_ecs_managed_tags           = true
  propagate_tags                    = "SERVICE"

  deployment_controller {
    type = "EXTERNAL"
  }

  tags = var.tags

  depends_on = [module.core]

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
    region  = module.core.region
    cluster = module.core.cluster_arn
    service = var.name
    create = {
      taskDefinition  = module.core.task_definition_arn
      launchType      = "FARGATE"
      platformVersion = "LATEST"
      externalId      = "terraform-bootstrap"
      loadBalancers = [{
        targetGroupArn = module.core.target_groups["a"].arn
        containerName  = local.container_name
        containerPort  = var.container_port
      }]
      networkConfiguration = {
        awsvpcConfiguration = {
          subnets        = var.subnet_ids
          securityGroups = module.core.task_security_group_ids
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
