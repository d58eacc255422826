output "region" {
  description = "The provider's region"
  value       = local.region
}

output "partition" {
  description = "The provider's partition (aws, aws-cn, aws-us-gov)"
  value       = data.aws_partition.current.partition
}

output "cluster_arn" {
  description = "The cluster's ARN, built from its name"
  value       = local.cluster_arn
}

output "family" {
  description = "The task definition family (var.family, or the name)"
  value       = local.family
}

output "container_name" {
  description = "The container behind the load balancer (var.container_name, or the name)"
  value       = local.container_name
}

output "listener_protocol" {
  description = "HTTPS with a certificate, HTTP without: for the caller's own listeners"
  value       = local.listener_protocol
}

output "task_definition_arn" {
  description = "The first revision"
  value       = aws_ecs_task_definition.initial.arn
}

output "task_definition_family" {
  description = "The first revision's family, from the resource (so that users of it wait for the revision)"
  value       = aws_ecs_task_definition.initial.family
}

output "security_group_id" {
  description = "The tasks' own security group"
  value       = aws_security_group.tasks.id
}

output "task_security_group_ids" {
  description = "The tasks' security groups: the module's own, then var.security_group_ids"
  value       = concat([aws_security_group.tasks.id], var.security_group_ids)
}

output "target_groups" {
  description = "The target groups by key: arn and name"
  value       = { for k, g in aws_lb_target_group.this : k => { arn = g.arn, name = g.name } }
}

output "handed_over_listener_arns" {
  description = "The handed-over listeners' ARNs, by role"
  value       = { for k, l in aws_lb_listener.handed_over : k => l.arn }
}

output "alarm_names" {
  description = "The 5xx alarm (if created), then var.extra_alarm_names"
  value       = concat(aws_cloudwatch_metric_alarm.target_5xx[*].alarm_name, var.extra_alarm_names)
}
