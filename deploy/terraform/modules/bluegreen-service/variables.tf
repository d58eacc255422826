# ----- the service --------------------------------------------------------------------------

variable "name" {
  description = "The ECS service's name; also the default for the release, family, container, CodeDeploy application and group names."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,24}[a-z0-9])?$", var.name))
    error_message = "name must be 1 to 26 lower-case letters, digits or '-', starting with a letter and not ending with '-' (it names the release, and target groups, which allow 32 characters)."
  }
}

variable "cluster_name" {
  description = "The ECS cluster (name) the service runs in."
  type        = string
}

variable "tags" {
  description = "Tags for every resource that takes tags."
  type        = map(string)
  default     = {}
}

variable "desired_count" {
  description = "How many tasks the service runs."
  type        = number
  default     = 2
}

variable "ignore_desired_count" {
  description = "Let something else own the desired count (Application Auto Scaling): Terraform sets it at creation only. Changing this recreates the service's Terraform address: move it with `terraform state mv` instead (see README.md)."
  type        = bool
  default     = false
}

variable "health_check_grace_period_seconds" {
  description = "How long ECS ignores failing load balancer health checks of a new task."
  type        = number
  default     = 60
}

# ----- the initial task definition ----------------------------------------------------------

variable "family" {
  description = "The task definition family; null: var.name. Releases name it in `spec.taskDefinition.from`."
  type        = string
  default     = null
}

variable "container_name" {
  description = "The container behind the load balancer; null: var.name."
  type        = string
  default     = null
}

variable "container_image" {
  description = "The image of the first revision. After the service exists, images change through releases (`switchyard apply`), not through this variable: see README.md."
  type        = string
}

variable "container_port" {
  description = "The port the container serves HTTP on."
  type        = number
  default     = 8080
}

variable "container_environment" {
  description = "Environment of the container in the first revision (releases may merge more over it)."
  type        = map(string)
  default     = {}
}

variable "cpu" {
  description = "Fargate task CPU units."
  type        = number
  default     = 256
}

variable "memory" {
  description = "Fargate task memory (MiB)."
  type        = number
  default     = 512
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64; must match the image."
  type        = string
  default     = "X86_64"
}

variable "execution_role_arn" {
  description = "The task execution role (image pull, logs, secrets). Give it to the controller module's passable_role_arns too."
  type        = string
}

variable "task_role_arn" {
  description = "The application's task role, if it has one. Give it to the controller module's passable_role_arns too."
  type        = string
  default     = null
}

variable "log_retention_in_days" {
  description = "How long CloudWatch Logs keeps the service's logs."
  type        = number
  default     = 30
}

variable "log_kms_key_arn" {
  description = "A KMS key for the service's log group (its key policy must allow CloudWatch Logs). null: CloudWatch Logs' own encryption."
  type        = string
  default     = null
}

# ----- network ------------------------------------------------------------------------------

variable "vpc_id" {
  description = "The VPC of the target groups and the tasks' security group."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets for the tasks (private subnets with a route to the image registry)."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give tasks public IPs (only for public subnets without NAT)."
  type        = bool
  default     = false
}

variable "security_group_ids" {
  description = "Further security groups for the tasks (databases, caches), besides the module's own."
  type        = list(string)
  default     = []
}

# ----- load balancer ------------------------------------------------------------------------

variable "load_balancer_arn" {
  description = "The Application Load Balancer to add the production and test listeners to (the module does not create it: README.md)."
  type        = string
}

variable "load_balancer_security_group_id" {
  description = "The load balancer's security group, which the module lets reach the tasks on the container port."
  type        = string
}

variable "certificate_arn" {
  description = "An ACM certificate: both listeners speak HTTPS with it. null: HTTP."
  type        = string
  default     = null
}

variable "ssl_policy" {
  description = "The listeners' TLS policy (with certificate_arn)."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "production_listener_port" {
  description = "The production listener's port (443 with a certificate, usually)."
  type        = number
  default     = 80
}

variable "test_listener_port" {
  description = "The test listener's port: CodeDeploy routes it to the replacement tasks before production traffic moves. Keep it reachable from testers and CI only (the load balancer's security group)."
  type        = number
  default     = 8080
}

variable "health_check_path" {
  description = "The target groups' health check path."
  type        = string
  default     = "/"
}

variable "health_check_matcher" {
  description = "HTTP codes that mean healthy."
  type        = string
  default     = "200-399"
}

variable "deregistration_delay" {
  description = "Seconds the target groups drain a deregistered task."
  type        = number
  default     = 30
}

# ----- CodeDeploy ---------------------------------------------------------------------------

variable "codedeploy_application_name" {
  description = "The CodeDeploy application; null: var.name."
  type        = string
  default     = null
}

variable "deployment_group_name" {
  description = "The CodeDeploy deployment group; null: var.name."
  type        = string
  default     = null
}

variable "deployment_config_name" {
  description = "The group's default deployment config (a release may name another in `strategy.codeDeploy.deploymentConfig`)."
  type        = string
  default     = "CodeDeployDefault.ECSAllAtOnce"
}

variable "ready_action_on_timeout" {
  description = "STOP_DEPLOYMENT (the default): a deployment waits in Ready, with test traffic on the replacement, until switchyard continues it (at once for `promotion: auto`, after `switchyard promote` for `promotion: manual`), and is stopped and rolled back if nobody does within ready_wait_time_in_minutes. CONTINUE_DEPLOYMENT: CodeDeploy shifts traffic by itself and `promotion: manual` cannot hold it."
  type        = string
  default     = "STOP_DEPLOYMENT"

  validation {
    condition     = contains(["STOP_DEPLOYMENT", "CONTINUE_DEPLOYMENT"], var.ready_action_on_timeout)
    error_message = "ready_action_on_timeout must be STOP_DEPLOYMENT or CONTINUE_DEPLOYMENT."
  }
}

variable "ready_wait_time_in_minutes" {
  description = "With STOP_DEPLOYMENT: how long a Ready deployment waits for promotion before it is stopped and rolled back."
  type        = number
  default     = 60

  validation {
    condition     = var.ready_wait_time_in_minutes >= 1 && var.ready_wait_time_in_minutes <= 7200
    error_message = "ready_wait_time_in_minutes must be between 1 and 7200 (120 hours)."
  }
}

variable "termination_wait_time_in_minutes" {
  description = "How long the original (blue) tasks keep running after production traffic has moved, for a quick rollback."
  type        = number
  default     = 5

  validation {
    condition     = var.termination_wait_time_in_minutes >= 0 && var.termination_wait_time_in_minutes <= 2880
    error_message = "termination_wait_time_in_minutes must be between 0 and 2880."
  }
}

# ----- alarms -------------------------------------------------------------------------------

variable "create_5xx_alarm" {
  description = "Create an alarm on the 5xx responses of the service's targets (both target groups), used for automatic rollback."
  type        = bool
  default     = true
}

variable "alarm_5xx_threshold" {
  description = "5xx responses per minute from the targets that put the alarm in ALARM."
  type        = number
  default     = 10
}

variable "alarm_5xx_evaluation_periods" {
  description = "Consecutive minutes over the threshold before the alarm fires."
  type        = number
  default     = 2
}

variable "extra_alarm_names" {
  description = "Further CloudWatch alarms (names) that stop and roll back a deployment. At most 10 alarms in all."
  type        = list(string)
  default     = []
}

# ----- release ------------------------------------------------------------------------------

variable "release_name" {
  description = "The release document's name (metadata.name); null: var.name."
  type        = string
  default     = null
}
