output "table_name" {
  description = "The release table (SWITCHYARD_TABLE for the CLI)."
  value       = aws_dynamodb_table.releases.name
}

output "table_arn" {
  description = "The release table's ARN."
  value       = aws_dynamodb_table.releases.arn
}

output "table_stream_arn" {
  description = "The release table's stream (the controller's change feed)."
  value       = aws_dynamodb_table.releases.stream_arn
}

output "task_role_arn" {
  description = "The controller's task role (what the controller may do in AWS)."
  value       = aws_iam_role.task.arn
}

output "task_role_name" {
  description = "The controller's task role name, to attach further policies to."
  value       = aws_iam_role.task.name
}

output "execution_role_arn" {
  description = "The role ECS uses to start the controller's task (image pull, logs)."
  value       = aws_iam_role.execution.arn
}

output "task_definition_arn" {
  description = "The controller's task definition revision."
  value       = aws_ecs_task_definition.controller.arn
}

output "service_name" {
  description = "The controller's ECS service."
  value       = aws_ecs_service.controller.name
}

output "security_group_id" {
  description = "The controller's security group (allow it on 443 at VPC endpoints; reference it from scrapers)."
  value       = aws_security_group.controller.id
}

output "log_group_name" {
  description = "The controller's log group."
  value       = aws_cloudwatch_log_group.controller.name
}
