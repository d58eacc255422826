output "json" {
  description = "The policy document (JSON) that grants the deploy permissions."
  value       = data.aws_iam_policy_document.deploy.json
}
