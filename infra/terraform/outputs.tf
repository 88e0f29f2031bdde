output "api_url" {
  description = "The dfs API behind the load balancer, reachable from allowed_cidrs: dfs-client upload --proxy <api_url> FILE"
  value       = var.private_network ? "http://${aws_lb.main.dns_name}" : "https://api.${var.domain_name}"
}

output "console_url" {
  description = "The web console's host name (served by the API instances)."
  value       = var.private_network ? "http://${aws_lb.main.dns_name}" : "https://console.${var.domain_name}"
}

output "s3_endpoint" {
  description = "The S3 gateway's endpoint (path style; <bucket>.s3.<domain> for virtual-host style; with private_network, the internal load balancer's s3_port)."
  value       = var.private_network ? "http://${aws_lb.main.dns_name}:${var.s3_port}" : "https://s3.${var.domain_name}"
}

output "load_balancer_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.main.dns_name
}

output "artifacts_bucket" {
  description = "The bucket releases are uploaded to: aws s3 sync --delete dist/release/X.Y.Z/ s3://<this>/releases/X.Y.Z/"
  value       = aws_s3_bucket.artifacts.id
}

output "api_autoscaling_group" {
  description = "The API instances' Auto Scaling group (aws autoscaling describe-instance-refreshes --auto-scaling-group-name <this>)."
  value       = aws_autoscaling_group.api.name
}

output "s3_autoscaling_group" {
  description = "The S3 gateway instances' Auto Scaling group (aws autoscaling describe-instance-refreshes --auto-scaling-group-name <this>)."
  value       = aws_autoscaling_group.s3.name
}

output "node_instance_ids" {
  description = "Instance ids of the storage nodes, in node order."
  value       = aws_instance.node[*].id
}

output "node_private_ips" {
  description = "Private addresses of the storage nodes (port node_port), in node order."
  value       = aws_instance.node[*].private_ip
}

output "node_data_volume_ids" {
  description = "The nodes' gp3 data volumes, in node order."
  value       = aws_ebs_volume.data[*].id
}

output "repair_grace_seconds" {
  description = "DFS_REPAIR_GRACE of the API (scripts/roll_nodes.sh waits at most this long for each node)."
  value       = var.repair_grace_seconds
}

output "dynamodb_tables" {
  description = "Logical table -> DynamoDB table name."
  value       = { for key, t in aws_dynamodb_table.main : key => t.name }
}

output "admin_token_parameter" {
  description = "SSM parameter holding the admin token: aws ssm get-parameter --with-decryption --name <this>"
  value       = aws_ssm_parameter.admin_token.name
}

output "metrics_token_parameter" {
  description = "SSM parameter holding the bearer token for /metrics."
  value       = aws_ssm_parameter.metrics_token.name
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms: subscribe to it (or set alarm_email)."
  value       = aws_sns_topic.alarms.arn
}
