# ----- naming and trust -------------------------------------------------------------------

variable "name" {
  description = "The role's name: what releases name in spec.service.roleArn (arn:aws:iam::THIS_ACCOUNT:role/NAME)."
  type        = string
  default     = "switchyard-deployer"

  validation {
    condition     = can(regex("^[a-zA-Z0-9+=,.@_-]{1,64}$", var.name))
    error_message = "name must be 1 to 64 letters, digits and +=,.@_- (an IAM role name)."
  }
}

variable "controller_role_arns" {
  description = "The controller's task roles that may assume this role (the controller module's task_role_arn output, in the controller's account; one per controller fleet)."
  type        = list(string)

  validation {
    condition     = length(var.controller_role_arns) > 0 && alltrue([for r in var.controller_role_arns : can(regex("^arn:[^:]+:iam::[0-9]{12}:role/.+$", r))])
    error_message = "controller_role_arns must be a non-empty list of IAM role ARNs."
  }
}

variable "external_id" {
  description = "The external id the trust policy asks for (sts:ExternalId): the controller module's external_id. Required: it keeps anyone who can name this role from having the controller act here for them (the confused deputy)."
  type        = string

  validation {
    condition     = length(var.external_id) >= 2 && length(var.external_id) <= 1224 && can(regex("^[a-zA-Z0-9+=,.@:/_-]+$", var.external_id))
    error_message = "external_id must be 2 to 1224 letters, digits and +=,.@:/-_ (STS's rule)."
  }
}

variable "max_session_duration" {
  description = "The role's maximum session, in seconds. The controller asks for one hour (the most STS grants to a role chained from its task role), so the default suffices."
  type        = number
  default     = 3600

  validation {
    condition     = var.max_session_duration >= 3600 && var.max_session_duration <= 43200
    error_message = "max_session_duration must be 3600 to 43200 seconds (the controller asks for 3600)."
  }
}

variable "permissions_boundary_arn" {
  description = "An IAM permissions boundary for the role, where the organisation requires one."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for the role."
  type        = map(string)
  default     = {}
}

# ----- what the controller may deploy in this account (the role's permissions) ----------

# These are what the deploy-permissions module grants; each is described in full, and
# validated, once, in modules/deploy-permissions/variables.tf.

variable "ecs_services" {
  description = "The ECS services the controller may observe and release through this role, as \"CLUSTER/SERVICE\" in this account and region, or service ARNs (and their task sets)."
  type        = list(string)
}

variable "task_definition_families" {
  description = "The task definition families new revisions may be registered in."
  type        = list(string)
}

variable "codedeploy_deployment_groups" {
  description = "The CodeDeploy deployment groups, as \"APPLICATION/GROUP\" or deployment group ARNs."
  type        = list(string)
}

variable "codedeploy_applications" {
  description = "Further CodeDeploy applications (names or ARNs)."
  type        = list(string)
  default     = []
}

variable "codedeploy_deployment_configs" {
  description = "The CodeDeploy deployment configs (names or ARNs) deployments may use."
  type        = list(string)
  default = [
    "CodeDeployDefault.ECSAllAtOnce",
    "CodeDeployDefault.ECSCanary10Percent5Minutes",
    "CodeDeployDefault.ECSCanary10Percent15Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes",
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes",
  ]
}

variable "alarm_names" {
  description = "The rollback alarms (names in this account and region, or ARNs)."
  type        = list(string)
  default     = []
}

variable "traffic_listener_arns" {
  description = "The listeners whose forward actions may be weighted (and their rules)."
  type        = list(string)
  default     = []
}

variable "passable_role_arns" {
  description = "The task and execution roles of the services' task definitions (iam:PassRole to ECS tasks)."
  type        = list(string)
}

variable "ecs_load_balancer_role_arns" {
  description = "The ECS infrastructure roles for load balancers (iam:PassRole to ECS)."
  type        = list(string)
  default     = []
}
