# The service modules' shared inputs, described once, here: each service module declares the
# same names (its public interface) with a one-line description and passes them on.
# Validations of shared inputs live here only; Terraform reports a failing one at this
# module's call in the service module.

variable "name" {
  description = "The ECS service's name: prefixes the log group (/ecs/NAME), the tasks' security group, the target groups (NAME-KEY) and the alarm (NAME-5xx); the default family and container name. The service module validates its length (its target group keys decide how long it may be)."
  type        = string
}

variable "cluster_name" {
  description = "The ECS cluster (name) the service runs in."
  type        = string
}

variable "tags" {
  description = "Tags for every resource that takes tags."
  type        = map(string)
}

# ----- the initial task definition ----------------------------------------------------------

variable "family" {
  description = "The task definition family; null: var.name. Releases name it in `spec.taskDefinition.from`."
  type        = string
}

variable "container_name" {
  description = "The container behind the load balancer; null: var.name."
  type        = string
}

variable "container_image" {
  description = "The image of the first revision. After the service exists, images change through releases (`switchyard apply`), not through this variable."
  type        = string
}

variable "container_port" {
  description = "The port the container serves HTTP on: the target groups' port and the security group rules'."
  type        = number
}

variable "container_environment" {
  description = "Environment of the container in the first revision (releases may merge more over it)."
  type        = map(string)
}

variable "container_memory" {
  description = "The container's own memory (MiB), or null to leave it out (the task's memory applies)."
  type        = number
  default     = null
}

variable "cpu" {
  description = "Fargate task CPU units."
  type        = number
}

variable "memory" {
  description = "Fargate task memory (MiB)."
  type        = number
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64; must match the image."
  type        = string

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "execution_role_arn" {
  description = "The task execution role (image pull, logs, secrets). Give it to the controller module's passable_role_arns too."
  type        = string
}

variable "task_role_arn" {
  description = "The application's task role, if it has one. Give it to the controller module's passable_role_arns too."
  type        = string
}

variable "log_retention_in_days" {
  description = "How long CloudWatch Logs keeps the service's logs."
  type        = number
}

variable "log_kms_key_arn" {
  description = "A KMS key for the service's log group (its key policy must allow CloudWatch Logs). null: CloudWatch Logs' own encryption."
  type        = string
}

# ----- network ------------------------------------------------------------------------------

variable "vpc_id" {
  description = "The VPC of the target groups and the tasks' security group."
  type        = string
}

variable "security_group_ids" {
  description = "Further security groups for the tasks (databases, caches). The module's own group allows the load balancer in on the container port and all traffic out."
  type        = list(string)
}

# ----- load balancer ------------------------------------------------------------------------

variable "load_balancer_arn" {
  description = "The Application Load Balancer the listeners are added to (and whose metrics the alarm reads). The modules do not create the load balancer: one ALB usually serves several services, and its subnets, access logs and WAF are the platform's choices."
  type        = string
}

variable "load_balancer_security_group_id" {
  description = "The load balancer's security group: the module lets it reach the tasks on the container port (egress rule on it, ingress rule on the tasks' group)."
  type        = string
}

variable "certificate_arn" {
  description = "An ACM certificate: the listeners speak HTTPS with it. null: HTTP."
  type        = string
}

variable "ssl_policy" {
  description = "The listeners' TLS policy (with certificate_arn)."
  type        = string
}

variable "target_group_keys" {
  description = "The target groups, NAME-KEY each, in order: the first is the one the handed-over listeners (and the caller's service or first task set) start on."
  type        = list(string)

  validation {
    condition     = length(var.target_group_keys) > 0 && length(distinct(var.target_group_keys)) == length(var.target_group_keys)
    error_message = "target_group_keys must name at least one group, each once."
  }
}

variable "handed_over_listener_ports" {
  description = "Listeners to create whose forward action CodeDeploy or switchyard owns after creation (lifecycle ignores it), by role (production, test) => port. Empty: the caller makes its own listeners."
  type        = map(number)
  default     = {}
}

variable "health_check_path" {
  description = "The target groups' health check path."
  type        = string
}

variable "health_check_matcher" {
  description = "HTTP codes that mean healthy."
  type        = string
}

variable "deregistration_delay" {
  description = "Seconds the target groups drain a deregistered task."
  type        = number
}

# ----- alarms -------------------------------------------------------------------------------

variable "create_5xx_alarm" {
  description = "Create the alarm NAME-5xx on the 5xx responses of the service's targets, summed over every target group."
  type        = bool
}

variable "alarm_description" {
  description = "The 5xx alarm's description: what it watches and what it rolls back, in the strategy's words."
  type        = string
}

variable "alarm_5xx_threshold" {
  description = "5xx responses per minute from the targets that put the alarm in ALARM."
  type        = number
}

variable "alarm_5xx_evaluation_periods" {
  description = "Consecutive minutes over the threshold before the alarm fires."
  type        = number
}

variable "extra_alarm_names" {
  description = "Further CloudWatch alarms (names) that roll back a deployment or release in flight, appended to alarm_names."
  type        = list(string)
}

# ----- release document ---------------------------------------------------------------------

variable "release_name" {
  description = "The release document's name (metadata.name); null: var.name."
  type        = string

  validation {
    condition     = var.release_name == null || can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.release_name))
    error_message = "release_name must be lower-case letters, digits and '-', at most 63 characters, not starting or ending with '-'."
  }
}
