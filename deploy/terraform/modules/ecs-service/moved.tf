# Before service-core, these resources were this module's own. The moved blocks carry
# existing state over to their addresses in module.core, so that upgrading plans no
# destroy and no create (Terraform >= 1.1; tests/it/terraform.rs proves it on a state
# of the old layout). Keep them: a configuration that skips a release still needs them.

moved {
  from = aws_cloudwatch_log_group.service
  to   = module.core.aws_cloudwatch_log_group.service
}

moved {
  from = aws_ecs_task_definition.initial
  to   = module.core.aws_ecs_task_definition.initial
}

moved {
  from = aws_security_group.tasks
  to   = module.core.aws_security_group.tasks
}

moved {
  from = aws_vpc_security_group_ingress_rule.from_load_balancer
  to   = module.core.aws_vpc_security_group_ingress_rule.from_load_balancer
}

moved {
  from = aws_vpc_security_group_egress_rule.tasks_all
  to   = module.core.aws_vpc_security_group_egress_rule.tasks_all
}

moved {
  from = aws_vpc_security_group_egress_rule.load_balancer_to_tasks
  to   = module.core.aws_vpc_security_group_egress_rule.load_balancer_to_tasks
}

moved {
  from = aws_lb_target_group.this
  to   = module.core.aws_lb_target_group.this
}

moved {
  from = aws_cloudwatch_metric_alarm.target_5xx
  to   = module.core.aws_cloudwatch_metric_alarm.target_5xx
}

# The listeners, their rules and the load balancer role stay this module's own.
