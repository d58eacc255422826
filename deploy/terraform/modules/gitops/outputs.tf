output "pull_request_role_arn" {
  description = "The read-only role of the pull request job (`switchyard diff`, `apply --dry-run`): the repository variable SWITCHYARD_DIFF_ROLE_ARN."
  value       = aws_iam_role.pull_request.arn
}

output "apply_role_arn" {
  description = "The role of the apply job after merge: the repository variable SWITCHYARD_APPLY_ROLE_ARN."
  value       = aws_iam_role.apply.arn
}

output "oidc_provider_arn" {
  description = "The GitHub OIDC provider the roles trust."
  value       = local.oidc_provider_arn
}
