variable "region" {
  description = "The AWS region of everything in this example."
  type        = string
  default     = "us-east-1"
}

variable "vpc_id" {
  description = "An existing VPC."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets (two or more availability zones) for the load balancer."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Private subnets with a NAT gateway (or VPC endpoints) for the tasks and the controller."
  type        = list(string)
}

variable "cluster_name" {
  description = "The ECS cluster this example creates."
  type        = string
  default     = "prod"
}

variable "app_image" {
  description = "The web service's first image. Later images are rolled out with release.yaml."
  type        = string
  default     = "public.ecr.aws/nginx/nginx:1.27"
}

variable "switchyard_image" {
  description = "The switchyard controller image (built from the repository's Dockerfile and pushed to your registry)."
  type        = string
}

variable "switchyard_image_repository_arn" {
  description = "The ECR repository of switchyard_image, if it is in ECR."
  type        = string
  default     = null
}

variable "ingress_cidr_blocks" {
  description = "Who may reach the production listener."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "test_traffic_cidr_blocks" {
  description = "Who may reach the test listener, which serves the candidate version during a deployment (testers, CI)."
  type        = list(string)
  default     = ["10.0.0.0/8"]
}

variable "metrics_cidr_blocks" {
  description = "Who may scrape the controller's metrics on 8080."
  type        = list(string)
  default     = ["10.0.0.0/8"]
}

variable "canary_service" {
  description = "Also create `web-canary`, a service switchyard releases with its own canary (the taskSets strategy, module external-service): production listener on 81, test listener on 8081."
  type        = bool
  default     = false
}

variable "ecs_service" {
  description = "Also create `web-ecs`, a service released through ECS's own blue/green deployments (the ecs strategy, module ecs-service): production listener on 82, test listener on 8082."
  type        = bool
  default     = false
}
