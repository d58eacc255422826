# Exactly what a release document of this service needs, the document itself, and the
# bootstrap that gives the service its first task set.

output "cluster" {
  description = "spec.service.cluster"
  value       = var.cluster_name
}

output "service_name" {
  description = "spec.service.name"
  value       = local.service_name
}

output "task_definition_family" {
  description = "spec.taskDefinition.from (and the controller module's task_definition_families)"
  value       = module.core.task_definition_family
}

output "container_name" {
  description = "The key under spec.taskDefinition.containers, and spec.strategy.taskSets.container.name"
  value       = local.container_name
}

output "container_port" {
  description = "spec.strategy.taskSets.container.port"
  value       = var.container_port
}

output "target_group_names" {
  description = "spec.strategy.taskSets.targetGroups: the pair, the first task set's group first"
  value       = [for k in local.pair : module.core.target_groups[k].name]
}

output "target_group_arns" {
  description = "The pair's ARNs, in the order of target_group_names (targetGroups takes names or ARNs)"
  value       = [for k in local.pair : module.core.target_groups[k].arn]
}

output "production_listener_arn" {
  description = "spec.strategy.taskSets.listeners: the listener whose forward action switchyard weights"
  value       = module.core.handed_over_listener_arns["production"]
}

output "test_listener_arn" {
  description = "spec.strategy.taskSets.testListeners (null without a test listener)"
  value       = lookup(module.core.handed_over_listener_arns, "test", null)
}

output "alarm_names" {
  description = "spec.rollback.alarms (and the controller module's alarm_names)"
  value       = local.alarm_names
}

output "security_group_id" {
  description = "The tasks' security group (every task set of the service uses it)"
  value       = module.core.security_group_id
}

output "bootstrap_script" {
  description = "Creates the service's first task set and makes it primary; does nothing when the service has a primary task set. Run it once after the first apply: `terraform output -raw bootstrap_script | sh` (README.md). Not needed with run_bootstrap."
  value       = local.bootstrap_script
}

output "release_yaml" {
  description = "A release document for this service (taskSets strategy), deploying the initial image: save it as release.yaml, change the image, `switchyard apply -f release.yaml`."
  value = join("\n", concat(
    module.core.release_document_head,
    [
      "    taskSets:",
      "      targetGroups: [${local.yaml.group_a}, ${local.yaml.group_b}]",
      "      listeners:",
      "        - ${local.yaml.production}",
    ],
    var.test_listener_port == null ? [] : ["      testListeners:", "        - ${local.yaml.test}"],
    [
      "      container: {name: ${module.core.release_yaml_scalars.container}, port: ${var.container_port}}",
    ],
    length(var.release_canary_weights) == 0 ? [] : concat(
      ["      steps:"],
      flatten([
        for w in var.release_canary_weights : [
          "        - setWeight: ${w}",
          var.release_canary_pause == null ? "        - pause: {}" : "        - pause: {duration: ${var.release_canary_pause}}",
        ]
      ]),
    ),
    module.core.release_document_tail,
  ))
}

locals {
  # The strategy's values in the release document, quoted as service-core quotes the rest.
  yaml = {
    for k, v in {
      group_a    = module.core.target_groups["a"].name
      group_b    = module.core.target_groups["b"].name
      production = module.core.handed_over_listener_arns["production"]
      test       = lookup(module.core.handed_over_listener_arns, "test", null)
    } :
    k => v == null ? "null" : can(regex(module.core.yaml_plain, v)) && !contains(module.core.yaml_words, lower(v)) ? v : jsonencode(v)
  }
}
