# Least privilege, one role per kind of instance. The DynamoDB and SSM grants are derived from
# the calls the code and the bootstrap scripts make (tests/deploy checks both ways: nothing
# they call is missing, nothing else is granted):
# - api:  item reads and writes on dfs's tables and indexes (what the DynamoDB metadata store
#         calls), DescribeTable/DescribeTimeToLive for `dfs-api init-tables` (Terraform creates
#         the tables, so no CreateTable), and the three SSM parameters bootstrap_api.sh reads.
# - node: on the node registry only, PutItem (registration and every heartbeat) and UpdateItem
#         (the tombstone a clean shutdown writes: status down, expiry now, so repair's grace
#         runs from the shutdown); tests/deploy/test_role_calls.py records a real node's calls.
#         And the two SSM parameters bootstrap_node.sh reads.
# Both: list and read the artifacts bucket's releases/ (the `aws s3 sync` of the bootstrap
# scripts: ListBucket, GetObject), and what their CloudWatch agent sends (metrics under the
# deployment's namespace, embedded-metric-format logs to the metrics log group). Both may use
# the KMS key only through SSM, DynamoDB and S3.

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "api" {
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
      "dynamodb:DescribeTable",
      "dynamodb:DescribeTimeToLive",
    ]
    resources = local.table_resources
  }

  statement {
    sid     = "Secrets"
    actions = ["ssm:GetParameter"]
    resources = [
      aws_ssm_parameter.cluster_secret.arn,
      aws_ssm_parameter.api_secret.arn,
      aws_ssm_parameter.admin_token.arn,
      aws_ssm_parameter.metrics_token.arn,
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

data "aws_iam_policy_document" "node" {
  statement {
    sid       = "NodeRegistry"
    actions   = ["dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.main["nodes"].arn]
  }

  statement {
    sid     = "Secrets"
    actions = ["ssm:GetParameter"]
    resources = [
      aws_ssm_parameter.cluster_secret.arn,
      aws_ssm_parameter.metrics_token.arn,
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

resource "aws_iam_role" "api" {
  name               = "${var.name}-api"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "api" {
  name   = "${var.name}-api"
  role   = aws_iam_role.api.id
  policy = data.aws_iam_policy_document.api.json
}

resource "aws_iam_instance_profile" "api" {
  name = "${var.name}-api"
  role = aws_iam_role.api.name
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-node"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "node" {
  name   = "${var.name}-node"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json
}

resource "aws_iam_instance_profile" "node" {
  name = "${var.name}-node"
  role = aws_iam_role.node.name
}

# --- VPC flow logs ------------------------------------------------------------------------------

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

data "aws_iam_policy_document" "flow_logs" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow.arn}:*"]
  }
}

resource "aws_iam_role" "flow_logs" {
  name               = "${var.name}-flow-logs"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume.json
}

resource "aws_iam_role_policy" "flow_logs" {
  name   = "${var.name}-flow-logs"
  role   = aws_iam_role.flow_logs.id
  policy = data.aws_iam_policy_document.flow_logs.json
}
