output "table_name" {
  description = "The release table: export SWITCHYARD_TABLE=<this> for the CLI."
  value       = module.switchyard.table_name
}

output "release_yaml" {
  description = "The web service's release document (the same as release.yaml)."
  value       = module.web.release_yaml
}

output "production_url" {
  description = "The web service through the production listener."
  value       = "http://${aws_lb.this.dns_name}/"
}

output "test_url" {
  description = "The candidate version during a deployment, through the test listener."
  value       = "http://${aws_lb.this.dns_name}:8080/"
}

output "controller_log_group" {
  description = "The controller's logs."
  value       = module.switchyard.log_group_name
}

output "canary_release_yaml" {
  description = "With canary_service: the release document of web-canary (taskSets strategy)."
  value       = one(module.web_canary[*].release_yaml)
}

output "canary_bootstrap_script" {
  description = "With canary_service: run once before web-canary's first release (`terraform output -raw canary_bootstrap_script | sh`): its first task set, made primary."
  value       = one(module.web_canary[*].bootstrap_script)
}

output "ecs_release_yaml" {
  description = "With ecs_service: the release document of web-ecs (ecs strategy, blue/green with a manual gate)."
  value       = one(module.web_ecs[*].release_yaml)
}
