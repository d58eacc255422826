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
    [
      "apiVersion: switchyard.dev/v1",
      "kind: Release",
      "metadata:",
      "  name: ${local.release_name}",
      "spec:",
      "  service:",
      "    cluster: ${local.yaml.cluster}",
      "    name: ${local.yaml.service}",
      "  taskDefinition:",
      "    from: ${local.yaml.family}",
      "    containers:",
      "      ${local.yaml.container}:",
      "        image: ${local.yaml.image}",
      "  strategy:",
      "    codeDeploy:",
      "      application: ${local.yaml.application}",
      "      deploymentGroup: ${local.yaml.deployment_group}",
      "      promotion: auto",
    ],
    length(local.alarm_names) == 0 ? [] : concat(
      ["  rollback:", "    alarms:"],
      [for a in local.yaml_alarms : "      - ${a}"],
    ),
    [""],
  ))

  precondition {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", local.release_name))
    error_message = "The release name (release_name, or name) must be 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit."
  }
}

locals {
  # YAML scalars for the release document: plain where that is unambiguous (names, image
  # references), double-quoted (JSON strings are valid YAML) otherwise.
  yaml_plain = "^[A-Za-z_/][A-Za-z0-9_./:@-]*$"
  yaml_words = ["true", "false", "null", "yes", "no", "on", "off", "y", "n"]
  yaml = {
    for k, v in {
      cluster          = var.cluster_name
      service          = var.name
      family           = local.family
      container        = local.container_name
      image            = var.container_image
      application      = local.application_name
      deployment_group = local.deployment_group
    } :
    k => can(regex(local.yaml_plain, v)) && !contains(local.yaml_words, lower(v)) ? v : jsonencode(v)
  }
  yaml_alarms = [
    for a in local.alarm_names :
    can(regex(local.yaml_plain, a)) && !contains(local.yaml_words, lower(a)) ? a : jsonencode(a)
  ]
}
