# Network: one VPC, a public and a private subnet per availability zone. Only the load balancer
# (lb.tf) sits in the public subnets (reachable from allowed_cidrs on 443, and 80 which
# redirects); the API instances and the nodes sit in private subnets: the API reachable on
# api_port from the load balancer only, the nodes on node_port from the API and from each other
# only. Instances reach AWS (S3 for releases and dnf, SSM, CloudWatch) through a NAT gateway on
# 443 only, and DynamoDB through a gateway endpoint. No SSH anywhere.

data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:zones are taken by name, first az_count in sorted order; new zones sort after them, and subnets pin the chosen zone's name once created
  state = "available"
}

locals {
  azs = slice(data.aws_availability_zones.available.names, 0, min(var.az_count, length(data.aws_availability_zones.available.names)))
}

resource "aws_vpc" "main" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = var.name }
}

# No rules: nothing may use the default security group.
resource "aws_default_security_group" "default" {
  vpc_id = aws_vpc.main.id
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id
  tags   = { Name = var.name }
}

resource "aws_subnet" "public" {
  count                   = length(local.azs)
  vpc_id                  = aws_vpc.main.id
  availability_zone       = local.azs[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, count.index)
  map_public_ip_on_launch = false # only the load balancer and the NAT gateway live here

  tags = { Name = "${var.name}-public-${local.azs[count.index]}" }
}

resource "aws_subnet" "private" {
  count             = length(local.azs)
  vpc_id            = aws_vpc.main.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 100 + count.index)

  tags = { Name = "${var.name}-private-${local.azs[count.index]}" }
}

resource "aws_eip" "nat" {
  domain = "vpc"
  tags   = { Name = "${var.name}-nat" }
}

resource "aws_nat_gateway" "main" {
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.public[0].id
  tags          = { Name = var.name }

  depends_on = [aws_internet_gateway.main]
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main.id
  }

  tags = { Name = "${var.name}-public" }
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.main.id

  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.main.id
  }

  tags = { Name = "${var.name}-private" }
}

resource "aws_route_table_association" "public" {
  count          = length(local.azs)
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table_association" "private" {
  count          = length(local.azs)
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# DynamoDB through the VPC, never over the internet; the endpoint only serves dfs's tables.
resource "aws_vpc_endpoint" "dynamodb" {
  vpc_id            = aws_vpc.main.id
  service_name      = "com.amazonaws.${var.region}.dynamodb"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.public.id, aws_route_table.private.id]
  policy            = data.aws_iam_policy_document.dynamodb_endpoint.json

  tags = { Name = "${var.name}-dynamodb" }
}

data "aws_iam_policy_document" "dynamodb_endpoint" {
  statement {
    sid       = "OnlyDfsTables"
    actions   = ["dynamodb:*"]
    resources = local.table_resources

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.api.arn, aws_iam_role.node.arn]
    }
  }
}

# --- flow logs --------------------------------------------------------------------------------

resource "aws_flow_log" "main" {
  vpc_id          = aws_vpc.main.id
  traffic_type    = "ALL"
  log_destination = aws_cloudwatch_log_group.flow.arn
  iam_role_arn    = aws_iam_role.flow_logs.arn
}

resource "aws_cloudwatch_log_group" "flow" {
  name              = "/${var.name}/vpc-flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

# --- security groups --------------------------------------------------------------------------

resource "aws_security_group" "lb" {
  name        = "${var.name}-lb"
  description = "dfs load balancer: 443 and 80 from allowed_cidrs; out to the API instances"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${var.name}-lb" }
}

resource "aws_security_group" "api" {
  name        = "${var.name}-api"
  description = "dfs API: api_port from the load balancer; out to the nodes and HTTPS"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${var.name}-api" }
}

resource "aws_security_group" "node" {
  name        = "${var.name}-node"
  description = "dfs nodes: node_port from the API and from each other only"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${var.name}-node" }
}

resource "aws_security_group_rule" "lb_in_https" {
  security_group_id = aws_security_group.lb.id
  type              = "ingress"
  description       = "HTTPS (or HTTP with private_network) from the allowed client networks"
  protocol          = "tcp"
  from_port         = var.private_network ? 80 : 443
  to_port           = var.private_network ? 80 : 443
  cidr_blocks       = var.allowed_cidrs
}

resource "aws_security_group_rule" "lb_in_http" {
  #checkov:skip=CKV_AWS_260:cidr_blocks is var.allowed_cidrs, whose validation rejects 0.0.0.0/0; port 80 only answers a redirect to HTTPS
  count             = var.private_network ? 0 : 1
  security_group_id = aws_security_group.lb.id
  type              = "ingress"
  description       = "HTTP from the allowed client networks, answered by a redirect to HTTPS"
  protocol          = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_blocks       = var.allowed_cidrs
}

resource "aws_security_group_rule" "lb_out_api" {
  security_group_id        = aws_security_group.lb.id
  type                     = "egress"
  description              = "requests and /readyz health checks to the API instances"
  protocol                 = "tcp"
  from_port                = var.api_port
  to_port                  = var.api_port
  source_security_group_id = aws_security_group.api.id
}

resource "aws_security_group_rule" "api_in_lb" {
  security_group_id        = aws_security_group.api.id
  type                     = "ingress"
  description              = "dfs API from the load balancer only"
  protocol                 = "tcp"
  from_port                = var.api_port
  to_port                  = var.api_port
  source_security_group_id = aws_security_group.lb.id
}

resource "aws_security_group_rule" "api_out_nodes" {
  security_group_id        = aws_security_group.api.id
  type                     = "egress"
  description              = "plans, proxying and presence checks to the nodes"
  protocol                 = "tcp"
  from_port                = var.node_port
  to_port                  = var.node_port
  source_security_group_id = aws_security_group.node.id
}

resource "aws_security_group_rule" "api_out_https" {
  security_group_id = aws_security_group.api.id
  type              = "egress"
  description       = "HTTPS: DynamoDB (gateway endpoint), S3 (releases, dnf), SSM, CloudWatch (via NAT)"
  protocol          = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_blocks       = ["0.0.0.0/0"]
}

resource "aws_security_group_rule" "node_in_api" {
  security_group_id        = aws_security_group.node.id
  type                     = "ingress"
  description              = "chunk traffic from the API"
  protocol                 = "tcp"
  from_port                = var.node_port
  to_port                  = var.node_port
  source_security_group_id = aws_security_group.api.id
}

resource "aws_security_group_rule" "node_in_nodes" {
  security_group_id = aws_security_group.node.id
  type              = "ingress"
  description       = "replica writes between nodes"
  protocol          = "tcp"
  from_port         = var.node_port
  to_port           = var.node_port
  self              = true
}

resource "aws_security_group_rule" "node_out_nodes" {
  security_group_id = aws_security_group.node.id
  type              = "egress"
  description       = "replica writes to the other nodes"
  protocol          = "tcp"
  from_port         = var.node_port
  to_port           = var.node_port
  self              = true
}

resource "aws_security_group_rule" "node_out_https" {
  security_group_id = aws_security_group.node.id
  type              = "egress"
  description       = "HTTPS: DynamoDB (gateway endpoint), S3 (releases, dnf), SSM, CloudWatch (via NAT)"
  protocol          = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_blocks       = ["0.0.0.0/0"]
}
