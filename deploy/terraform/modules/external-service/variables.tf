# ----- the service --------------------------------------------------------------------------

variable "name" {
  description = "The ECS service's name; also the default for the release, family and container names, and the prefix of the target groups (NAME-a, NAME-b)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$", var.name))
    error_message = "name must be 1 to 30 lower-case letters, digits or '-', starting with a letter and not ending with '-' (it names the release, and the target groups NAME-a and NAME-b, which allow 32 characters)."
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
  description = "How many tasks the service runs: the live task set runs all of them (scale 100 percent), and a candidate as many again while a release is in flight."
  type        = number
  default     = 2
}

variable "ignore_desired_count" {
  description = "Let something else own the desired count (Application Auto Scaling, which scales an EXTERNAL service's desired count; the task sets follow it): Terraform sets it at creation only. Changing this recreates the service's Terraform address: move it with `terraform state mv` instead (see README.md)."
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
  description = "The image of the first revision, which the first task set runs. After the service exists, images change through releases (`switchyard apply`), not through this variable: see README.md."
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
  description = "The Application Load Balancer to add the production (and test) listener to (the module does not create it: README.md)."
  type        = string
}

variable "load_balancer_security_group_id" {
  description = "The load balancer's security group, which the module lets reach the tasks on the container port."
  type        = string
}

variable "certificate_arn" {
  description = "An ACM certificate: the listeners speak HTTPS with it. null: HTTP."
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
  description = "The test listener's port: switchyard points it at the candidate's target group before production traffic moves (the release's testListeners). Keep it reachable from testers and CI only (the load balancer's security group). null: no test listener."
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
  description = "Seconds the target groups drain a deregistered task (keep the release's abortScaleDownDelay and scaleDownDelay at least this long)."
  type        = number
  default     = 30
}

# ----- alarms -------------------------------------------------------------------------------

variable "create_5xx_alarm" {
  description = "Create an alarm on the 5xx responses of the service's targets (both target groups); the rendered release names it under rollback.alarms."
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
  description = "Further CloudWatch alarms (names) that roll back a release in flight (the rendered release's rollback.alarms)."
  type        = list(string)
  default     = []
}

# ----- release ------------------------------------------------------------------------------

variable "release_name" {
  description = "The release document's name (metadata.name); null: var.name."
  type        = string
  default     = null
}

variable "release_canary_weights" {
  description = "The rendered release's canary: the percentages of production traffic on the candidate, in order, each followed by a pause of release_canary_pause; after the last, all traffic moves and the candidate becomes primary. Empty: all at once."
  type        = list(number)
  default     = [10, 50]

  validation {
    condition = alltrue([
      for i, w in var.release_canary_weights :
      w >= 0 && w <= 100 && floor(w) == w && (i == 0 || w >= try(var.release_canary_weights[i - 1], 0))
    ])
    error_message = "release_canary_weights must be whole percentages, 0 to 100, never going down."
  }
}

variable "release_canary_pause" {
  description = "The pause after each canary weight (a duration such as 5m), or null for a manual gate: the release waits for `switchyard promote` at each weight."
  type        = string
  default     = "5m"

  validation {
    condition     = var.release_canary_pause == null || can(regex("^([0-9]+(ms|s|m|h))+$", var.release_canary_pause))
    error_message = "release_canary_pause must be a duration such as 30s, 5m or 1h30m, or null."
  }
}

# ----- bootstrap ----------------------------------------------------------------------------

variable "run_bootstrap" {
  description = "Run the bootstrap (the first task set, made primary) from Terraform, with the AWS CLI on the machine that runs Terraform, once per service. false (the default): run the bootstrap_script output by hand once, after the first apply (README.md)."
  type        = bool
  default     = false
}

variable "bootstrap_environment" {
  description = "Environment for the bootstrap when run_bootstrap is set (for example AWS_PROFILE): the AWS CLI does not see the provider's credentials."
  type        = map(string)
  default     = {}
}
