# The S3 gateway (dfs-s3, docs/S3.md): s3_count stateless instances in the private subnets,
# from a launch template in an Auto Scaling group behind the load balancer, like the API's
# (compute.tf): a release is a new launch template version, rolled out by instance refresh
# one instance at a time, each new one healthy on /readyz first. Public: the HTTPS listener
# sends the host names s3.<domain> and *.s3.<domain> (virtual-host-style buckets, which the
# gateway reads with DFS_S3_DOMAIN) to it. private_network = true: the internal load balancer
# listens for it on s3_port, plain HTTP, path-style addressing.
# The gateway talks to the nodes (chunks) and to DynamoDB; it reads the cluster secret and the
# API secret (access keys are sealed under it) and the metrics token (its CloudWatch agent
# scrapes the gateway's /metrics, as the API's does). Its role's DynamoDB actions are derived from
# the code (tests/deploy: the store's calls but init-tables', and a running gateway's calls).

resource "aws_security_group" "s3" {
  name        = "${var.name}-s3"
  description = "dfs S3 gateway: s3_port from the load balancer; out to the nodes and HTTPS"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${var.name}-s3" }
}

resource "aws_security_group_rule" "lb_out_s3" {
  security_group_id        = aws_security_group.lb.id
  type                     = "egress"
  description              = "requests and /readyz health checks to the S3 gateway instances"
  protocol                 = "tcp"
  from_port                = var.s3_port
  to_port                  = var.s3_port
  source_security_group_id = aws_security_group.s3.id
}

resource "aws_security_group_rule" "lb_in_s3_private" {
  count             = local.public_lb ? 0 : 1
  security_group_id = aws_security_group.lb.id
  type              = "ingress"
  description       = "the S3 gateway's port from the allowed client networks (private_network only)"
  protocol          = "tcp"
  from_port         = var.s3_port
  to_port           = var.s3_port
  cidr_blocks       = var.allowed_cidrs
}

resource "aws_security_group_rule" "s3_in_lb" {
  security_group_id        = aws_security_group.s3.id
  type                     = "ingress"
  description              = "dfs S3 gateway from the load balancer only"
  protocol                 = "tcp"
  from_port                = var.s3_port
  to_port                  = var.s3_port
  source_security_group_id = aws_security_group.lb.id
}

resource "aws_security_group_rule" "s3_out_nodes" {
  security_group_id        = aws_security_group.s3.id
  type                     = "egress"
  description              = "chunk writes and reads on the nodes"
  protocol                 = "tcp"
  from_port                = var.node_port
  to_port                  = var.node_port
  source_security_group_id = aws_security_group.node.id
}

resource "aws_security_group_rule" "s3_out_https" {
  security_group_id = aws_security_group.s3.id
  type              = "egress"
  description       = "HTTPS: DynamoDB (gateway endpoint), S3 (releases, dnf), SSM (via NAT)"
  protocol          = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_blocks       = ["0.0.0.0/0"]
}

resource "aws_security_group_rule" "node_in_s3" {
  security_group_id        = aws_security_group.node.id
  type                     = "ingress"
  description              = "chunk traffic from the S3 gateway"
  protocol                 = "tcp"
  from_port                = var.node_port
  to_port                  = var.node_port
  source_security_group_id = aws_security_group.s3.id
}

resource "aws_lb_target_group" "s3" {
  #checkov:skip=CKV_AWS_378:TLS ends at the load balancer; the gateway instances are in private subnets and accept s3_port only from the load balancer's security group
  name                 = "${var.name}-s3"
  port                 = var.s3_port
  protocol             = "HTTP"
  vpc_id               = aws_vpc.main.id
  deregistration_delay = 30 # dfs-s3 drains in-flight requests for up to 10 s on SIGTERM

  health_check {
    path                = "/readyz" # unsigned: a health probe, not a bucket (docs/S3.md)
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener_rule" "s3_gateway" {
  count        = local.public_lb ? 1 : 0
  listener_arn = aws_lb_listener.https[0].arn
  priority     = 10

  condition {
    host_header {
      values = ["s3.${var.domain_name}", "*.s3.${var.domain_name}"]
    }
  }

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.s3.arn
  }
}

resource "aws_lb_listener" "s3_private" {
  #checkov:skip=CKV_AWS_2:only with private_network = true, the operator's opt-out for a network that is already private; the public load balancer reaches the gateway over HTTPS by host name
  #checkov:skip=CKV_AWS_103:only with private_network = true (plain HTTP inside a private network, no TLS at all); the public HTTPS listener uses a TLS 1.2+ policy
  count             = local.public_lb ? 0 : 1
  load_balancer_arn = aws_lb.main.arn
  port              = var.s3_port
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.s3.arn
  }
}

resource "aws_launch_template" "s3" {
  name_prefix            = "${var.name}-s3-"
  image_id               = local.ami_id
  instance_type          = var.s3_instance_type
  vpc_security_group_ids = [aws_security_group.s3.id]
  ebs_optimized          = true
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.s3.arn
  }

  monitoring {
    enabled = true
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_type = "gp3"
      volume_size = 20
      encrypted   = true
      kms_key_id  = aws_kms_key.main.arn
    }
  }

  user_data = base64encode(templatefile("${path.module}/templates/user_data.sh.tftpl", {
    role   = "s3"
    unit   = file("${local.repo}/infra/systemd/dfs-s3.service")
    script = file("${local.repo}/scripts/bootstrap_s3.sh")
    lib    = file("${local.repo}/scripts/bootstrap_lib.sh")
    settings = merge(local.common_settings, {
      DFS_S3_PORT            = tostring(var.s3_port)
      DFS_S3_DOMAIN          = local.public_lb ? "s3.${var.domain_name}" : ""
      DFS_REPLICATION_FACTOR = tostring(var.replication_factor)
    })
  }))

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-s3", Role = "dfs-s3" }
  }
}

resource "aws_autoscaling_group" "s3" {
  name                      = "${var.name}-s3"
  min_size                  = var.s3_count
  max_size                  = 2 * var.s3_count # room for the refresh's new instances
  desired_capacity          = var.s3_count
  vpc_zone_identifier       = aws_subnet.private[*].id
  target_group_arns         = [aws_lb_target_group.s3.arn]
  health_check_type         = "ELB" # /readyz through the load balancer
  health_check_grace_period = 600   # the bootstrap installs the release first
  default_instance_warmup   = 120

  launch_template {
    id      = aws_launch_template.s3.id
    version = aws_launch_template.s3.latest_version
  }

  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 100
      max_healthy_percentage = 200
      instance_warmup        = 120
      auto_rollback          = true
    }
  }

  dynamic "tag" {
    for_each = { Name = "${var.name}-s3", Role = "dfs-s3" }
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  # the API's group runs init-tables; the gateway needs the tables and the NAT too
  depends_on = [aws_autoscaling_group.api, aws_nat_gateway.main, aws_route_table_association.private]
}

# --- IAM ----------------------------------------------------------------------------------------

data "aws_iam_policy_document" "s3" {
  statement {
    sid = "DfsTables"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:ConditionCheckItem",
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:Query",
      "dynamodb:Scan",
    ]
    resources = local.table_resources
  }

  statement {
    sid     = "Secrets"
    actions = ["ssm:GetParameter"]
    resources = [
      aws_ssm_parameter.cluster_secret.arn,
      aws_ssm_parameter.api_secret.arn,
      aws_ssm_parameter.metrics_token.arn, # the CloudWatch agent scrapes /metrics with it
    ]
  }

  statement {
    sid       = "ListReleases"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.artifacts.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["releases/*"]
    }
  }

  statement {
    sid       = "ReadReleases"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/releases/*"]
  }

  statement {
    sid       = "AgentMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"] # PutMetricData has no resource; the condition bounds it

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.name]
    }
  }

  statement {
    sid       = "AgentMetricLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.metrics.arn}:*"]
  }

  statement {
    sid       = "KeyThroughServices"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.main.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${var.region}.amazonaws.com", "dynamodb.${var.region}.amazonaws.com", "s3.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "s3" {
  name               = "${var.name}-s3"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "s3" {
  name   = "${var.name}-s3"
  role   = aws_iam_role.s3.id
  policy = data.aws_iam_policy_document.s3.json
}

resource "aws_iam_instance_profile" "s3" {
  name = "${var.name}-s3"
  role = aws_iam_role.s3.name
}

# --- alarms (alarms.tf's style), on the load balancer's view of the gateway's target group -------

resource "aws_cloudwatch_metric_alarm" "s3_5xx" {
  alarm_name          = "${var.name}-s3-5xx"
  alarm_description   = "More than ${var.alarm_5xx_percent}% of the S3 gateway's requests answered 5xx over 5 minutes (dfs_s3_requests_total by operation tells which calls)."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_5xx_percent
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching" # no requests, no errors
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    expression  = "100 * target / MAX([requests, 1])"
    label       = "S3 gateway 5xx percent"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = { target = "HTTPCode_Target_5XX_Count", requests = "RequestCount" }
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/ApplicationELB"
        metric_name = metric_query.value
        dimensions  = { LoadBalancer = aws_lb.main.arn_suffix, TargetGroup = aws_lb_target_group.s3.arn_suffix }
        period      = 300
        stat        = "Sum"
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "s3_ready" {
  alarm_name          = "${var.name}-s3-not-ready"
  alarm_description   = "Fewer S3 gateway instances pass /readyz than s3_count (metadata store or nodes unreachable, or a failed bootstrap)."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  dimensions          = { LoadBalancer = aws_lb.main.arn_suffix, TargetGroup = aws_lb_target_group.s3.arn_suffix }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "LessThanThreshold"
  threshold           = var.s3_count
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "s3_latency" {
  alarm_name          = "${var.name}-s3-latency-p99"
  alarm_description   = "The S3 gateway's p99 response time (the load balancer's TargetResponseTime) is over ${var.alarm_s3_latency_seconds} s for 15 minutes."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = { LoadBalancer = aws_lb.main.arn_suffix, TargetGroup = aws_lb_target_group.s3.arn_suffix }
  extended_statistic  = "p99"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_s3_latency_seconds
  treat_missing_data  = "notBreaching" # no requests, no latency
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}
