# One web service released by switchyard through CodeDeploy blue/green, and the controller
# that releases it. Walk-through: README.md.

resource "aws_ecs_cluster" "this" {
  name = var.cluster_name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

# ----- the load balancer (shared by services; the bluegreen module adds listeners) ----------

resource "aws_security_group" "alb" {
  name_prefix = "web-alb-"
  description = "web load balancer"
  vpc_id      = var.vpc_id

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_production" {
  for_each = toset(var.ingress_cidr_blocks)

  security_group_id = aws_security_group.alb.id
  description       = "production traffic"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "alb_test" {
  for_each = toset(var.test_traffic_cidr_blocks)

  security_group_id = aws_security_group.alb.id
  description       = "test traffic to the candidate version"
  ip_protocol       = "tcp"
  from_port         = 8080
  to_port           = 8080
  cidr_ipv4         = each.value
}

# The listeners of the optional services (var.canary_service, var.ecs_service).
locals {
  more_production_ports = concat(var.canary_service ? [81] : [], var.ecs_service ? [82] : [])
  more_test_ports       = concat(var.canary_service ? [8081] : [], var.ecs_service ? [8082] : [])
}

resource "aws_vpc_security_group_ingress_rule" "alb_more_production" {
  for_each = { for pair in setproduct(local.more_production_ports, var.ingress_cidr_blocks) : "${pair[0]} ${pair[1]}" => pair }

  security_group_id = aws_security_group.alb.id
  description       = "production traffic"
  ip_protocol       = "tcp"
  from_port         = each.value[0]
  to_port           = each.value[0]
  cidr_ipv4         = each.value[1]
}

resource "aws_vpc_security_group_ingress_rule" "alb_more_test" {
  for_each = { for pair in setproduct(local.more_test_ports, var.test_traffic_cidr_blocks) : "${pair[0]} ${pair[1]}" => pair }

  security_group_id = aws_security_group.alb.id
  description       = "test traffic to the candidate version"
  ip_protocol       = "tcp"
  from_port         = each.value[0]
  to_port           = each.value[0]
  cidr_ipv4         = each.value[1]
}

resource "aws_lb" "this" {
  name               = "web"
  load_balancer_type = "application"
  internal           = false
  subnets            = var.public_subnet_ids
  security_groups    = [aws_security_group.alb.id]

  drop_invalid_header_fields = true
}

# ----- the application's roles ----------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "web_execution" {
  name               = "web-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
}

resource "aws_iam_role_policy_attachment" "web_execution" {
  role       = aws_iam_role.web_execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role" "web_task" {
  name               = "web-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
}

# ----- the service ------------------------------------------------------------------------------

module "web" {
  source = "../../modules/bluegreen-service"

  name         = "web"
  cluster_name = aws_ecs_cluster.this.name

  container_image    = var.app_image
  container_port     = 80
  execution_role_arn = aws_iam_role.web_execution.arn
  task_role_arn      = aws_iam_role.web_task.arn

  vpc_id     = var.vpc_id
  subnet_ids = var.private_subnet_ids

  load_balancer_arn               = aws_lb.this.arn
  load_balancer_security_group_id = aws_security_group.alb.id
  production_listener_port        = 80
  test_listener_port              = 8080

  deployment_group_name  = "web-prod"
  deployment_config_name = "CodeDeployDefault.ECSCanary10Percent5Minutes"
}

# The same application released the two other ways (off unless asked for).

# A canary switchyard drives itself: an EXTERNAL service, two target groups, listeners whose
# forward action switchyard weights step by step. Before its first release, run
# `terraform output -raw canary_bootstrap_script | sh` once (README.md).
module "web_canary" {
  source = "../../modules/external-service"
  count  = var.canary_service ? 1 : 0

  name         = "web-canary"
  cluster_name = aws_ecs_cluster.this.name

  container_image    = var.app_image
  container_port     = 80
  execution_role_arn = aws_iam_role.web_execution.arn
  task_role_arn      = aws_iam_role.web_task.arn

  vpc_id     = var.vpc_id
  subnet_ids = var.private_subnet_ids

  load_balancer_arn               = aws_lb.this.arn
  load_balancer_security_group_id = aws_security_group.alb.id
  production_listener_port        = 81
  test_listener_port              = 8081
}

# ECS's own blue/green deployment, started and gated by switchyard: the release document
# carries the deployment configuration the provider cannot set (README.md).
module "web_ecs" {
  source = "../../modules/ecs-service"
  count  = var.ecs_service ? 1 : 0

  name         = "web-ecs"
  cluster_name = aws_ecs_cluster.this.name

  container_image    = var.app_image
  container_port     = 80
  execution_role_arn = aws_iam_role.web_execution.arn
  task_role_arn      = aws_iam_role.web_task.arn

  vpc_id     = var.vpc_id
  subnet_ids = var.private_subnet_ids

  load_balancer_arn               = aws_lb.this.arn
  load_balancer_security_group_id = aws_security_group.alb.id
  production_listener_port        = 82
  test_listener_port              = 8082

  deployment_type   = "blueGreen"
  release_promotion = "manual"
}

# ----- the controller ---------------------------------------------------------------------------

module "switchyard" {
  source = "../../modules/controller"

  image                = var.switchyard_image
  image_repository_arn = var.switchyard_image_repository_arn

  cluster_arn                 = aws_ecs_cluster.this.arn
  vpc_id                      = var.vpc_id
  subnet_ids                  = var.private_subnet_ids
  metrics_ingress_cidr_blocks = var.metrics_cidr_blocks

  # What it may release: exactly these services (add every service's outputs here).
  ecs_services = concat(
    ["${module.web.cluster}/${module.web.service_name}"],
    [for m in concat(module.web_canary, module.web_ecs) : "${m.cluster}/${m.service_name}"],
  )
  task_definition_families = concat(
    [module.web.task_definition_family],
    [for m in concat(module.web_canary, module.web_ecs) : m.task_definition_family],
  )
  codedeploy_deployment_groups = ["${module.web.codedeploy_application}/${module.web.codedeploy_deployment_group}"]
  alarm_names                  = concat(module.web.alarm_names, flatten([for m in concat(module.web_canary, module.web_ecs) : m.alarm_names]))
  passable_role_arns           = [aws_iam_role.web_execution.arn, aws_iam_role.web_task.arn]

  # The canary's listeners (strategy.taskSets weights their forward actions) and the roles
  # ECS blue/green deployments are handed (strategy.ecs ... loadBalancer.roleArn).
  traffic_listener_arns = flatten([
    for m in module.web_canary : [for l in [m.production_listener_arn, m.test_listener_arn] : l if l != null]
  ])
  ecs_load_balancer_role_arns = [for m in module.web_ecs : m.load_balancer_role_arn if m.load_balancer_role_arn != null]
}
