# Alarms, to an SNS topic (alarm_email subscribes an address). What feeds them:
# - the API's own /metrics, scraped on every API instance by the CloudWatch agent that the
#   bootstrap installs (Prometheus scrape with the metrics token, sent as embedded metric format
#   to the metrics log group, namespace <name>): dfs_under_replicated_chunks (repair is behind
#   or copies are lost), dfs_metadata_up (the metadata store is unreachable) and
#   dfs_live_nodes (fewer live nodes than the replication factor: uploads are refused);
# - the agent's disk metrics on every node: the data volume's used percent;
# - the load balancer: 5xx answers of the API (and of the load balancer itself), and healthy
#   API instances by /readyz (the target group's health check).

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.main.arn
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_cloudwatch_log_group" "metrics" {
  name              = "/${var.name}/metrics"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

locals {
  alarm_actions = [aws_sns_topic.alarms.arn]
  api_metric    = { namespace = var.name, dimensions = { job = "dfs-api" } }
}

resource "aws_cloudwatch_metric_alarm" "under_replicated" {
  alarm_name          = "${var.name}-under-replicated-chunks"
  alarm_description   = "Chunks with fewer copies than the replication factor for 15 minutes: repair is behind, or a node is lost (GET /admin/repair)."
  namespace           = local.api_metric.namespace
  metric_name         = "dfs_under_replicated_chunks"
  dimensions          = local.api_metric.dimensions
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "breaching" # no API reporting is worse than a count
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "metadata_down" {
  alarm_name          = "${var.name}-metadata-unreachable"
  alarm_description   = "An API instance cannot read the metadata store (DynamoDB): /readyz fails."
  namespace           = local.api_metric.namespace
  metric_name         = "dfs_metadata_up"
  dimensions          = local.api_metric.dimensions
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "live_nodes" {
  alarm_name          = "${var.name}-too-few-live-nodes"
  alarm_description   = "Fewer live storage nodes than the replication factor: uploads are refused."
  namespace           = local.api_metric.namespace
  metric_name         = "dfs_live_nodes"
  dimensions          = local.api_metric.dimensions
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "LessThanThreshold"
  threshold           = var.replication_factor
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "node_disk" {
  count               = var.node_count
  alarm_name          = "${var.name}-node-${count.index + 1}-disk"
  alarm_description   = "The data volume of node ${count.index + 1} is over ${var.alarm_disk_percent}% full: add a node (node_count) or grow the volume."
  namespace           = var.name
  metric_name         = "disk_used_percent"
  dimensions          = { InstanceId = aws_instance.node[count.index].id, path = "/var/lib/dfs", fstype = "xfs" }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_disk_percent
  treat_missing_data  = "missing" # a replaced node reports under its new instance id
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "api_5xx" {
  alarm_name          = "${var.name}-api-5xx"
  alarm_description   = "More than ${var.alarm_5xx_percent}% of requests answered 5xx (by the API or by the load balancer) over 5 minutes."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_5xx_percent
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching" # no requests, no errors
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    expression  = "100 * (target + lb) / MAX([requests, 1])"
    label       = "5xx percent"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = {
      target   = "HTTPCode_Target_5XX_Count"
      lb       = "HTTPCode_ELB_5XX_Count"
      requests = "RequestCount"
    }
    content {
      id = metric_query.key
      metric {
        namespace   = "AWS/ApplicationELB"
        metric_name = metric_query.value
        dimensions  = { LoadBalancer = aws_lb.main.arn_suffix }
        period      = 300
        stat        = "Sum"
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "api_ready" {
  alarm_name          = "${var.name}-api-not-ready"
  alarm_description   = "Fewer API instances pass /readyz than api_count (metadata store or nodes unreachable, or a failed bootstrap)."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  dimensions          = { LoadBalancer = aws_lb.main.arn_suffix, TargetGroup = aws_lb_target_group.api.arn_suffix }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "LessThanThreshold"
  threshold           = var.api_count
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}
