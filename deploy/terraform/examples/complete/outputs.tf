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
