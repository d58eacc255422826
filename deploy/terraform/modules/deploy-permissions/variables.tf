# The inputs of the deploy permissions; the controller and deployer-role modules validate
# them (their variables of the same names say what each one is).

variable "ecs_services" {
  description = "The ECS services to deploy, as \"CLUSTER/SERVICE\" in this account and region, or service ARNs."
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
}

variable "codedeploy_deployment_configs" {
  description = "The CodeDeploy deployment configs (names or ARNs) deployments may use."
  type        = list(string)
}

variable "alarm_names" {
  description = "The rollback alarms (names in this account and region, or ARNs)."
  type        = list(string)
}

variable "traffic_listener_arns" {
  description = "The listeners whose forward actions may be weighted (and their rules)."
  type        = list(string)
}

variable "passable_role_arns" {
  description = "The task and execution roles of the services' task definitions (iam:PassRole to ECS tasks)."
  type        = list(string)
}

variable "ecs_load_balancer_role_arns" {
  description = "The ECS infrastructure roles for load balancers (iam:PassRole to ECS)."
  type        = list(string)
}
