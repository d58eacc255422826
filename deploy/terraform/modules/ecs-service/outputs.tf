# Exactly what a release document of this service needs, and the document itself.

output "cluster" {
  description = "spec.service.cluster"
  value       = var.cluster_name
}

output "service_name" {
  description = "spec.service.name"
  value       = one(concat(aws_ecs_service.this[*].name, aws_ecs_service.autoscaled[*].name))
}

output "task_definition_family" {
  description = "spec.taskDefinition.from (and the controller module's task_definition_families)"
  value       = module.core.task_definition_family
}

output "container_name" {
  description = "The key under spec.taskDefinition.containers"
  value       = local.container_name
}

output "deployment_type" {
  description = "spec.strategy.ecs.deployment.type"
  value       = var.deployment_type
}

output "target_group_names" {
  description = "The service's target groups: the one it starts on, then (blueGreen, linear, canary) the alternate one, spec.strategy.ecs.deployment.loadBalancer.alternateTargetGroup"
  value       = [for k in local.groups : module.core.target_groups[k].name]
}

output "target_group_arns" {
  description = "The ARNs of target_group_names, in the same order"
  value       = [for k in local.groups : module.core.target_groups[k].arn]
}

output "production_listener_arn" {
  description = "The production listener"
  value       = aws_lb_listener.production.arn
}

output "test_listener_arn" {
  description = "The test listener (null for rolling updates or without test_listener_port)"
  value       = one(aws_lb_listener.test[*].arn)
}

output "production_listener_rule_arn" {
  description = "spec.strategy.ecs.deployment.loadBalancer.productionListenerRule (null for rolling updates)"
  value       = one(aws_lb_listener_rule.production[*].arn)
}

output "test_listener_rule_arn" {
  description = "spec.strategy.ecs.deployment.loadBalancer.testListenerRule (null without a test listener)"
  value       = one(aws_lb_listener_rule.test[*].arn)
}

output "load_balancer_role_arn" {
  description = "spec.strategy.ecs.deployment.loadBalancer.roleArn (null for rolling updates): the role switchyard passes to ECS, for the controller module's PassRole list of load balancer roles"
  value       = local.load_balancer_role_arn
}

output "alarm_names" {
  description = "spec.rollback.alarms (and the controller module's alarm_names)"
  value       = local.alarm_names
}

output "security_group_id" {
  description = "The tasks' security group"
  value       = module.core.security_group_id
}

output "release_yaml" {
  description = "A release document for this service (ecs strategy), deploying the initial image: save it as release.yaml, change the image, `switchyard apply -f release.yaml`."
  value = join("\n", concat(
    module.core.release_document_head,
    [
      "    ecs:",
      "      promotion: ${var.release_promotion}",
    ],
    # Rolling with automatic promotion needs nothing: the service's own settings (circuit
    # breaker, alarms, percentages, from Terraform) decide.
    !local.native && var.release_promotion == "auto" ? [] : concat(
      [
        "      deployment:",
        "        type: ${var.deployment_type}",
      ],
      local.native ? ["        bakeTime: ${var.bake_time_in_minutes}m"] : [],
      var.deployment_type == "canary" ? ["        canary: {percent: ${var.canary_percent}, bake: ${var.canary_bake_in_minutes}m}"] : [],
      var.deployment_type == "linear" ? ["        linear: {stepPercent: ${var.linear_step_percent}, stepBake: ${var.linear_step_bake_in_minutes}m}"] : [],
      var.release_promotion == "manual" ? ["        pauseAt: [${local.native ? "postTestTrafficShift" : "postScaleUp"}]"] : [],
      !local.native ? [] : concat(
        [
          "        loadBalancer:",
          "          alternateTargetGroup: ${local.yaml.alternate}",
          "          productionListenerRule: ${local.yaml.production_rule}",
        ],
        local.test ? ["          testListenerRule: ${local.yaml.test_rule}"] : [],
        ["          roleArn: ${local.yaml.role}"],
      ),
    ),
    module.core.release_document_tail,
  ))
}

locals {
  # The strategy's values in the release document, quoted as service-core quotes the rest.
  yaml = {
    for k, v in {
      alternate       = local.native ? module.core.target_groups["b"].name : null
      production_rule = one(aws_lb_listener_rule.production[*].arn)
      test_rule       = one(aws_lb_listener_rule.test[*].arn)
      role            = local.load_balancer_role_arn
    } :
    k => v == null ? "null" : can(regex(module.core.yaml_plain, v)) && !contains(module.core.yaml_words, lower(v)) ? v : jsonencode(v)
  }
}
