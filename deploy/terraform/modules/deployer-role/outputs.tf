output "role_arn" {
  description = "The role's ARN: what releases in this account name in spec.service.roleArn, and what the controller module's deployer_role_arns lists."
  value       = aws_iam_role.deployer.arn
}

output "role_name" {
  description = "The role's name."
  value       = aws_iam_role.deployer.name
}
