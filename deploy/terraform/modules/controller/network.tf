resource "aws_security_group" "controller" {
  name_prefix = "${var.name}-"
  description = "switchyard controller: 443 out to the AWS APIs, 8080 in for metrics"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = var.name })

  lifecycle {
    create_before_destroy = true
  }
}

# The AWS APIs (DynamoDB, ECS, CodeDeploy, ELB, CloudWatch, Logs, ECR, STS) over HTTPS.
# DNS to the VPC resolver is not filtered by security groups.
resource "aws_vpc_security_group_egress_rule" "https_cidr" {
  for_each = toset(var.egress_cidr_blocks)

  security_group_id = aws_security_group.controller.id
  description       = "HTTPS to the AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
  tags              = var.tags
}

resource "aws_vpc_security_group_egress_rule" "https_prefix_list" {
  for_each = toset(var.egress_prefix_list_ids)

  security_group_id = aws_security_group.controller.id
  description       = "HTTPS to the AWS APIs (prefix list)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = each.value
  tags              = var.tags
}

# Metrics, health and the status API, for the scrapers named in the variables only.
resource "aws_vpc_security_group_ingress_rule" "metrics_cidr" {
  for_each = toset(var.metrics_ingress_cidr_blocks)

  security_group_id = aws_security_group.controller.id
  description       = "switchyard metrics and API"
  ip_protocol       = "tcp"
  from_port         = 8080
  to_port           = 8080
  cidr_ipv4         = each.value
  tags              = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "metrics_security_group" {
  for_each = toset(var.metrics_ingress_security_group_ids)

  security_group_id            = aws_security_group.controller.id
  description                  = "switchyard metrics and API"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  referenced_security_group_id = each.value
  tags                         = var.tags
}
