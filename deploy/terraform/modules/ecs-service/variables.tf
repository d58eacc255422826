# ----- the service --------------------------------------------------------------------------

variable "name" {
  description = "The ECS service's name; also the default for the release, family and container names, and the prefix of the target groups (NAME-a, and NAME-b for the alternate group) and of the load balancer role."
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
  description = "The test listener's port (blue/green, linear, canary): ECS routes its rule to the new revision before production traffic moves (the release's deployment.loadBalancer.testListenerRule). Keep it reachable from testers and CI only (the load balancer's security group). null: no test listener."
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

# ----- deployments ----------------------------------------------------------------------------

variable "deployment_type" {
  description = "How ECS deploys a release: rolling (the provider's own settings below), or blueGreen, linear or canary (ECS-native, 2025). For the last three the module creates the alternate target group, listener rules and the infrastructure role ECS needs, and the rendered release's strategy.ecs.deployment sets the strategy with each rollout (the provider 5.100 cannot: README.md)."
  type        = string
  default     = "blueGreen"

  validation {
    condition     = contains(["rolling", "blueGreen", "linear", "canary"], var.deployment_type)
    error_message = "deployment_type must be rolling, blueGreen, linear or canary."
  }
}

variable "deployment_minimum_healthy_percent" {
  description = "Rolling updates: the share of the desired count that stays running during a deployment."
  type        = number
  default     = 100
}

variable "deployment_maximum_percent" {
  description = "Rolling updates: the most tasks, as a share of the desired count, that run during a deployment."
  type        = number
  default     = 200
}

variable "bake_time_in_minutes" {
  description = "blueGreen, linear, canary: how long ECS keeps the previous revision after all production traffic has moved, for an instant rollback (the release's deployment.bakeTime). Whole minutes, 0 to 1440."
  type        = number
  default     = 5

  validation {
    condition     = var.bake_time_in_minutes >= 0 && var.bake_time_in_minutes <= 1440 && floor(var.bake_time_in_minutes) == var.bake_time_in_minutes
    error_message = "bake_time_in_minutes must be a whole number from 0 to 1440."
  }
}

variable "canary_percent" {
  description = "canary: the share of production traffic the new revision gets first (0.1 to 100, in steps of 0.1)."
  type        = number
  default     = 10

  validation {
    condition     = var.canary_percent >= 0.1 && var.canary_percent <= 100 && abs(var.canary_percent * 10 - floor(var.canary_percent * 10 + 0.5)) < 0.000001
    error_message = "canary_percent must be 0.1 to 100, in steps of 0.1."
  }
}

variable "canary_bake_in_minutes" {
  description = "canary: how long the canary share runs before the rest moves. Whole minutes, 0 to 1440."
  type        = number
  default     = 5

  validation {
    condition     = var.canary_bake_in_minutes >= 0 && var.canary_bake_in_minutes <= 1440 && floor(var.canary_bake_in_minutes) == var.canary_bake_in_minutes
    error_message = "canary_bake_in_minutes must be a whole number from 0 to 1440."
  }
}

variable "linear_step_percent" {
  description = "linear: the share of production traffic each step moves (3 to 100)."
  type        = number
  default     = 25

  validation {
    condition     = var.linear_step_percent >= 3 && var.linear_step_percent <= 100
    error_message = "linear_step_percent must be 3 to 100."
  }
}

variable "linear_step_bake_in_minutes" {
  description = "linear: the wait between steps. Whole minutes, 0 to 1440."
  type        = number
  default     = 2

  validation {
    condition     = var.linear_step_bake_in_minutes >= 0 && var.linear_step_bake_in_minutes <= 1440 && floor(var.linear_step_bake_in_minutes) == var.linear_step_bake_in_minutes
    error_message = "linear_step_bake_in_minutes must be a whole number from 0 to 1440."
  }
}

variable "create_load_balancer_role" {
  description = "blueGreen, linear, canary: create the ECS infrastructure role for load balancers, NAME-ecs-load-balancers (trusting ecs.amazonaws.com, with the AWS managed policy AmazonECSInfrastructureRolePolicyForLoadBalancers). false: pass one in load_balancer_role_arn."
  type        = bool
  default     = true
}

variable "load_balancer_role_arn" {
  description = "With create_load_balancer_role = false: an existing ECS infrastructure role for load balancers (trusting ecs.amazonaws.com, with AmazonECSInfrastructureRolePolicyForLoadBalancers or equivalent)."
  type        = string
  default     = null
}

variable "permissions_boundary_arn" {
  description = "An IAM permissions boundary for the load balancer role this module creates, where the organisation requires one."
  type        = string
  default     = null
}

variable "listener_rule_priority" {
  description = "blueGreen, linear, canary: the priority of the rule (path /*) on the module's own production and test listeners."
  type        = number
  default     = 100
}

# ----- alarms -------------------------------------------------------------------------------

variable "create_5xx_alarm" {
  description = "Create an alarm on the 5xx responses of the service's targets (every target group of the service): the service's deployment alarm (ECS rolls back) and the rendered release's rollback.alarms."
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
  description = "Further CloudWatch alarms (names) that roll back a deployment in flight: the service's deployment alarms and the rendered release's rollback.alarms."
  type        = list(string)
  default     = []
}

# ----- release ------------------------------------------------------------------------------

variable "release_name" {
  description = "The release document's name (metadata.name); null: var.name."
  type        = string
  default     = null
}


variable "release_promotion" {
  description = "The rendered release's promotion: auto, or manual (a PAUSE hook waits for `switchyard promote`: after the test traffic shift for blueGreen, linear and canary, after scale-up for rolling)."
  type        = string
  default     = "auto"

  validation {
    condition     = contains(["auto", "manual"], var.release_promotion)
    error_message = "release_promotion must be auto or manual."
  }
}
