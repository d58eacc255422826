# The parts of the service's release document that every strategy shares: the head
# (metadata, service, task definition, up to `strategy:`) and the tail (rollback alarms).
# Each service module writes its strategy's section between them (outputs.tf, release_yaml).

locals {
  release_name = coalesce(var.release_name, var.name)

  # YAML scalars for the release document: plain where that is unambiguous (names, image
  # references, ARNs), double-quoted (JSON strings are valid YAML) otherwise. The service
  # modules quote their strategy's values with the same two (yaml_plain, yaml_words outputs).
  yaml_plain = "^[A-Za-z_/][A-Za-z0-9_./:@-]*$"
  yaml_words = ["true", "false", "null", "yes", "no", "on", "off", "y", "n"]
  yaml = {
    for k, v in {
      cluster   = var.cluster_name
      service   = var.name
      family    = local.family
      container = local.container_name
      image     = var.container_image
    } :
    k => can(regex(local.yaml_plain, v)) && !contains(local.yaml_words, lower(v)) ? v : jsonencode(v)
  }
  yaml_alarms = [
    for a in concat(aws_cloudwatch_metric_alarm.target_5xx[*].alarm_name, var.extra_alarm_names) :
    can(regex(local.yaml_plain, a)) && !contains(local.yaml_words, lower(a)) ? a : jsonencode(a)
  ]
}

output "release_document_head" {
  description = "The release document's lines up to `  strategy:` (the strategy's section follows)"
  value = [
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
  ]

  precondition {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", local.release_name))
    error_message = "The release name (release_name, or name) must be 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit."
  }
}

output "release_document_tail" {
  description = "The release document's lines after the strategy's section: the rollback alarms, and the final newline"
  value = concat(
    length(local.yaml_alarms) == 0 ? [] : concat(["  rollback:", "    alarms:"], [for a in local.yaml_alarms : "      - ${a}"]),
    [""],
  )
}

output "yaml_plain" {
  description = "What a YAML scalar of the release document may be written plain as (a regular expression); anything else is JSON-quoted"
  value       = local.yaml_plain
}

output "yaml_words" {
  description = "Words YAML would read as booleans or null: quoted even where yaml_plain matches"
  value       = local.yaml_words
}

output "release_yaml_scalars" {
  description = "The head's values as written in it (cluster, service, family, container, image), for a strategy's section that repeats one"
  value       = local.yaml
}
