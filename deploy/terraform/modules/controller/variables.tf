# ----- naming ---------------------------------------------------------------------------

variable "name" {
  description = "Prefix of every resource this module names (roles, service, log group, security group)."
  type        = string
  default     = "switchyard"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,30}$", var.name))
    error_message = "name must start with a letter and have at most 31 letters, digits and '-' (it prefixes IAM role names)."
  }
}

variable "tags" {
  description = "Tags for every resource that takes tags."
  type        = map(string)
  default     = {}
}

# ----- the release table ----------------------------------------------------------------

variable "table_name" {
  description = "The DynamoDB table of the release documents and their status (the controller's `table` setting)."
  type        = string
  default     = "switchyard-releases"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.table_name))
    error_message = "table_name must be 3 to 255 letters, digits, '_', '-' or '.'."
  }
}

variable "table_kms_key_arn" {
  description = "A customer managed KMS key to encrypt the table and its stream with. null (the default) uses the AWS owned key. With a key, the controller's role also gets the KMS permissions DynamoDB needs on its behalf, and the key policy must allow them."
  type        = string
  default     = null

  validation {
    condition     = var.table_kms_key_arn == null || can(regex("^arn:[^:]+:kms:", var.table_kms_key_arn))
    error_message = "table_kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "table_deletion_protection" {
  description = "Refuse to delete the table (it holds every release's desired state and history). Set to false, apply, then destroy, to remove it on purpose."
  type        = bool
  default     = true
}

# ----- what the controller manages (its IAM scope) --------------------------------------

# All but the notification destinations are what the deploy-permissions module grants: each of
# those is described in full, and validated, once, in modules/deploy-permissions/variables.tf.

variable "ecs_services" {
  description = "The ECS services the controller may observe and release, as \"CLUSTER/SERVICE\" in this account and region, or service ARNs (and their task sets)."
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

variable "notification_topic_arns" {
  description = "The SNS topics (ARNs, in any region) that releases' `spec.notifications` or the controller's default `notifications` name. The controller may publish to these only; empty (the default): no sns:Publish at all. A topic encrypted with a customer managed KMS key also needs kms:GenerateDataKey and kms:Decrypt on that key (the key policy's business)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for t in var.notification_topic_arns : can(regex("^arn:[^:]+:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]+(\\.fifo)?$", t))])
    error_message = "notification_topic_arns must be SNS topic ARNs (arn:aws:sns:REGION:ACCOUNT:TOPIC)."
  }
}

variable "notification_event_buses" {
  description = "The EventBridge buses (names in the controller's region, such as `default`, or bus ARNs) that releases' `notifications` name. The controller may put events on these only; empty (the default): no events:PutEvents at all."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for b in var.notification_event_buses : can(regex("^(arn:[^:]+:events:[a-z0-9-]+:[0-9]{12}:event-bus/)?[A-Za-z0-9._/-]+$", b))])
    error_message = "notification_event_buses must be EventBridge bus names or event-bus ARNs."
  }
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

variable "deployer_role_arns" {
  description = "The roles that releases name in `spec.service.roleArn` to act in other accounts (made there with the deployer-role module): the controller may assume exactly these (sts:AssumeRole). Empty (the default): no statement; every release acts in this account."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.deployer_role_arns : can(regex("^arn:[^:]+:iam::[0-9]{12}:role/.+$", r))])
    error_message = "deployer_role_arns must be IAM role ARNs (arn:aws:iam::ACCOUNT:role/NAME)."
  }
}

variable "external_id" {
  description = "The external id the controller gives to every AssumeRole of a deployer role (SWITCHYARD_EXTERNAL_ID); the deployer roles' trust policies ask for it (the deployer-role module's external_id). null (the default): none."
  type        = string
  default     = null

  validation {
    condition     = var.external_id == null ? true : length(var.external_id) >= 2 && length(var.external_id) <= 1224 && can(regex("^[a-zA-Z0-9+=,.@:/_-]+$", var.external_id))
    error_message = "external_id must be 2 to 1224 letters, digits and +=,.@:/-_ (STS's rule)."
  }
}

variable "permissions_boundary_arn" {
  description = "An IAM permissions boundary for the roles this module creates, where the organisation requires one."
  type        = string
  default     = null
}

# ----- the controller's task --------------------------------------------------------------

variable "image" {
  description = "The switchyard container image, pinned by tag or digest (for example 111122223333.dkr.ecr.us-east-1.amazonaws.com/switchyard:0.1.0)."
  type        = string
}

variable "image_repository_arn" {
  description = "The ECR repository ARN of var.image, if it is in ECR: the execution role may then pull from this repository only. null for a public registry."
  type        = string
  default     = null
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

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "log_level" {
  description = "The controller's log filter (SWITCHYARD_LOG_LEVEL): info, debug, or per module such as \"switchyard=debug,warn\"."
  type        = string
  default     = "info"
}

variable "extra_environment" {
  description = "Further SWITCHYARD_* settings for the controller (for example SWITCHYARD_RESYNC_PERIOD = \"30s\"); see config/controller.yaml. The table, region, listen address and log format are set by this module."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for k in keys(var.extra_environment) :
      startswith(k, "SWITCHYARD_") && !contains(["SWITCHYARD_TABLE", "SWITCHYARD_REGION", "SWITCHYARD_LISTEN", "SWITCHYARD_LOG_FORMAT"], k)
    ])
    error_message = "extra_environment keys must start with SWITCHYARD_ and must not be SWITCHYARD_TABLE, SWITCHYARD_REGION, SWITCHYARD_LISTEN or SWITCHYARD_LOG_FORMAT (set by the module)."
  }
}

variable "log_retention_in_days" {
  description = "How long CloudWatch Logs keeps the controller's logs."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "log_kms_key_arn" {
  description = "A KMS key for the log group (its key policy must allow CloudWatch Logs). null: CloudWatch Logs' own encryption."
  type        = string
  default     = null
}

# ----- the controller's service -----------------------------------------------------------

variable "cluster_arn" {
  description = "The ECS cluster the controller runs in."
  type        = string
}

variable "desired_count" {
  description = <<-EOT
    How many controller tasks run (0 stops the controller). Replicas share the releases
    through shard leases in the table (16 shards by default, SWITCHYARD_SHARDS), fenced so that
    a replica that lost a lease cannot write; a replica that dies hands its shards over within
    the lease duration (20 s) plus one renew period (5 s). Two replicas (the default) survive
    the loss of one; more than the shard count would idle.
  EOT
  type        = number
  default     = 2

  validation {
    condition     = var.desired_count >= 0 && var.desired_count <= 16 && floor(var.desired_count) == var.desired_count
    error_message = "desired_count must be a whole number from 0 to 16 (the number of lease shards): more replicas than shards would idle."
  }
}

variable "vpc_id" {
  description = "The VPC of the controller's security group."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets for the controller's task. They need a route to the AWS APIs on 443 (a NAT gateway, or VPC interface endpoints for DynamoDB/Streams, ECS, CodeDeploy, ELB, CloudWatch, Logs, ECR and STS)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids must name at least one subnet."
  }
}

variable "assign_public_ip" {
  description = "Give the task a public IP (only for public subnets without NAT; not recommended)."
  type        = bool
  default     = false
}

variable "egress_cidr_blocks" {
  description = "Where the controller may connect on 443 (the AWS APIs). 0.0.0.0/0 through a NAT gateway by default; narrow it to the VPC CIDR when every API is reached through interface endpoints."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "egress_prefix_list_ids" {
  description = "Prefix lists the controller may connect to on 443 (for example the S3 gateway endpoint's, which ECR image layers come from)."
  type        = list(string)
  default     = []
}

variable "metrics_ingress_cidr_blocks" {
  description = "CIDR blocks that may scrape the controller's metrics and API on 8080. Empty: none."
  type        = list(string)
  default     = []
}

variable "metrics_ingress_security_group_ids" {
  description = "Security groups (for example the Prometheus scraper's) that may reach the controller on 8080. Empty: none."
  type        = list(string)
  default     = []
}
