# The inputs of the deploy permissions, described and validated here, once: the controller
# and deployer-role modules declare the same names (their public interface, with their
# defaults and one-line descriptions) and pass them on. A failing validation is reported at
# this module's call inside them, with the message below.

variable "ecs_services" {
  description = "The ECS services the controller may observe and release (through the deployer role, in deployer-role), as \"CLUSTER/SERVICE\" in this account and region, or full service ARNs (for another region). For services with the EXTERNAL deployment controller (`strategy.taskSets`), their task sets too."
  type        = list(string)

  validation {
    condition     = length(var.ecs_services) > 0 && alltrue([for s in var.ecs_services : can(regex("^(arn:[^:]+:ecs:[^:]+:[0-9]{12}:service/[^/]+/[^/]+|[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+)$", s))])
    error_message = "ecs_services must be a non-empty list of \"CLUSTER/SERVICE\" names or service ARNs (arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE)."
  }
}

variable "task_definition_families" {
  description = "The task definition families the controller may register new revisions in: the families that the managed releases' `spec.taskDefinition.from` name (or whose ARNs they name)."
  type        = list(string)

  validation {
    condition     = length(var.task_definition_families) > 0 && alltrue([for f in var.task_definition_families : can(regex("^[a-zA-Z0-9_-]{1,255}$", f))])
    error_message = "task_definition_families must be a non-empty list of family names (letters, digits, '_', '-')."
  }
}

variable "codedeploy_deployment_groups" {
  description = "The CodeDeploy deployment groups the controller may deploy with, as \"APPLICATION/GROUP\" in this account and region, or full deployment group ARNs."
  type        = list(string)

  validation {
    condition     = length(var.codedeploy_deployment_groups) > 0 && alltrue([for g in var.codedeploy_deployment_groups : can(regex("^(arn:[^:]+:codedeploy:[^:]+:[0-9]{12}:deploymentgroup:[^/]+/.+|[^/:]+/[^/:]+)$", g))])
    error_message = "codedeploy_deployment_groups must be a non-empty list of \"APPLICATION/GROUP\" or deployment group ARNs."
  }
}

variable "codedeploy_applications" {
  description = "Further CodeDeploy applications (names or ARNs) the controller may use. The applications of codedeploy_deployment_groups are always included."
  type        = list(string)
}

variable "codedeploy_deployment_configs" {
  description = "The CodeDeploy deployment configs (names or ARNs) the managed deployment groups and releases (`strategy.codeDeploy.deploymentConfig`) may use. Add custom configs here."
  type        = list(string)

  validation {
    condition     = length(var.codedeploy_deployment_configs) > 0
    error_message = "codedeploy_deployment_configs must name at least one deployment config."
  }
}

variable "alarm_names" {
  description = "The CloudWatch alarms (names in this account and region, or alarm ARNs) that the managed releases name under `spec.rollback.alarms`. The controller may describe only these; an empty list grants no cloudwatch:DescribeAlarms at all."
  type        = list(string)
}

variable "traffic_listener_arns" {
  description = "The listeners (ARNs) whose forward actions the controller may weight for `strategy.taskSets` releases: their default actions (elasticloadbalancing:ModifyListener) and their rules (ModifyRule). The listeners of the releases' load balancers that `strategy.taskSets.listeners` and `testListeners` name, or that the controller finds forwarding to the releases' target groups. Empty (the default): no listener may be modified, which is all the codeDeploy strategy needs."
  type        = list(string)

  validation {
    condition     = alltrue([for l in var.traffic_listener_arns : can(regex("^arn:[^:]+:elasticloadbalancing:[^:]+:[0-9]{12}:listener/(app|net)/[^/]+/[^/]+/[^/]+$", l))])
    error_message = "traffic_listener_arns must be listener ARNs (arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/LOAD_BALANCER/ID/LISTENER_ID), not rule ARNs: the rules of each listed listener are included."
  }
}

variable "passable_role_arns" {
  description = "The task and execution role ARNs of the managed services' task definitions. Registering a copy of a task definition passes its roles to ECS, so the controller needs iam:PassRole on exactly these (and only to ecs-tasks.amazonaws.com)."
  type        = list(string)

  validation {
    condition     = length(var.passable_role_arns) > 0 && alltrue([for r in var.passable_role_arns : can(regex("^arn:[^:]+:iam::[0-9]{12}:role/.+$", r))])
    error_message = "passable_role_arns must be a non-empty list of IAM role ARNs."
  }
}

variable "ecs_load_balancer_role_arns" {
  description = "The ECS infrastructure roles for load balancers that releases name in strategy.ecs.deployment.loadBalancer.roleArn. UpdateService with a load balancer's advanced configuration passes that role to ECS, so the controller needs iam:PassRole on exactly these (and only to ecs.amazonaws.com). Empty (the default): no such statement."
  type        = list(string)

  validation {
    condition     = alltrue([for r in var.ecs_load_balancer_role_arns : can(regex("^arn:[^:]+:iam::[0-9]{12}:role/.+$", r))])
    error_message = "ecs_load_balancer_role_arns must be IAM role ARNs."
  }
}
