resource "aws_cloudwatch_log_group" "controller" {
  name              = local.log_group
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_task_definition" "controller" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name      = "switchyard"
      image     = var.image
      essential = true
      # The container's hard memory limit: the whole task's.
      memory                 = var.memory
      readonlyRootFilesystem = true
      # The image's CMD: `run --config /etc/switchyard/controller.yaml`; the environment
      # below overrides the file key by key.
      portMappings = [
        # Metrics (/metrics), health (/healthz) and the status API.
        { name = "http", containerPort = 8080, protocol = "tcp" },
      ]
      environment = [for k, v in local.environment : { name = k, value = v }]
      healthCheck = {
        # The image has no shell and no curl: the binary checks its own /healthz.
        command     = ["CMD", "/usr/local/bin/switchyard", "healthcheck"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 15
      }
      # SIGTERM starts the controller's drain (drainTimeout, 10 s by default); SIGKILL follows
      # after this many seconds.
      stopTimeout = 30
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.controller.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "switchyard"
        }
      }
    },
  ])

  tags = var.tags
}

resource "aws_ecs_service" "controller" {
  name             = var.name
  cluster          = var.cluster_arn
  task_definition  = aws_ecs_task_definition.controller.arn
  desired_count    = var.desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"

  # Replicas share the work through fenced shard leases, so old and new tasks may overlap
  # during a deployment: start the new ones before stopping the old, and never drop below
  # the desired count. The circuit breaker rolls back a controller version that cannot start.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.controller.id]
    assign_public_ip = var.assign_public_ip
  }

  enable_ecs_managed_tags = true
  propagate_tags          = "SERVICE"
  tags                    = var.tags

  # The role policy must exist before the first task starts, or its first passes fail.
  depends_on = [aws_iam_role_policy.controller, aws_iam_role_policy.execution]
}
