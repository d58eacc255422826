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

output "codedeploy_application" {
  description = "spec.strategy.codeDeploy.application"
  value       = aws_codedeploy_app.this.name
}

output "codedeploy_deployment_group" {
  description = "spec.strategy.codeDeploy.deploymentGroup"
  value       = aws_codedeploy_deployment_group.this.deployment_group_name
}

output "alarm_names" {
  description = "spec.rollback.alarms (and the controller module's alarm_names)"
  value       = local.alarm_names
}

output "release_yaml" {
  description = "A release document for this service, deploying the initial image: save it as release.yaml, change the image, `switchyard apply -f release.yaml`."
  value = join("\n", concat(
    module.core.release_document_head,
    [
      "    codeDeploy:",
      "      application: ${local.yaml.application}",
      "      deploymentGroup: ${local.yaml.deployment_group}",
      "      promotion: auto",
    ],
    module.core.release_document_tail,
  ))
}

locals {
  # The strategy's values in the release document, quoted as service-core quotes the rest.
  yaml = {
    for k, v in {
      application      = local.application_name
      deployment_group = local.deployment_group
    } :
    k => can(regex(module.core.yaml_plain, v)) && !contains(module.core.yaml_words, lower(v)) ? v : jsonencode(v)
  }
}
