variable "name" {
  description = "Prefix of the two role names (NAME-pull-request, NAME-apply)."
  type        = string
  default     = "switchyard-gitops"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,40}$", var.name))
    error_message = "name must start with a letter and have at most 41 letters, digits and '-' (it prefixes IAM role names)."
  }
}

variable "github_repository" {
  description = "The repository that keeps the release documents, as \"ORG/REPO\": only its workflow runs may assume the roles."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be \"ORG/REPO\"."
  }
}

variable "github_environment" {
  description = "The GitHub environment of the apply job (its protection rules gate every apply): the apply role trusts only jobs of this environment."
  type        = string
  default     = "production"
}

variable "oidc_provider_arn" {
  description = "The account's IAM OIDC provider for token.actions.githubusercontent.com (one per account). null: this module creates it."
  type        = string
  default     = null
}

variable "table_name" {
  description = "The release table (the controller module's table_name output)."
  type        = string
  default     = "switchyard-releases"
}

variable "table_kms_key_arn" {
  description = "The table's customer managed KMS key, if it has one: the roles then get the KMS calls DynamoDB makes on their behalf, only through DynamoDB."
  type        = string
  default     = null
}

variable "ecs_services" {
  description = "The managed ECS services, as \"CLUSTER/SERVICE\" or service ARNs (the controller module's ecs_services): `switchyard diff` describes them for their live task definition."
  type        = list(string)

  validation {
    condition     = length(var.ecs_services) > 0 && alltrue([for s in var.ecs_services : can(regex("^(arn:[^:]+:ecs:[^:]+:[0-9]{12}:service/[^/]+/[^/]+|[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+)$", s))])
    error_message = "ecs_services must be a non-empty list of \"CLUSTER/SERVICE\" names or service ARNs."
  }
}

variable "permissions_boundary_arn" {
  description = "An IAM permissions boundary for the roles, where the organisation requires one."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource that takes tags."
  type        = map(string)
  default     = {}
}
