output "api_url" {
  description = "The dfs API, reachable from allowed_cidrs: dfs-client upload --proxy <api_url> FILE"
  value       = "http://${aws_eip.api.public_ip}:${var.api_port}"
}

output "api_public_ip" {
  description = "Elastic IP of the API instance."
  value       = aws_eip.api.public_ip
}

output "api_instance_id" {
  description = "Instance id of the API coordinator."
  value       = aws_instance.api.id
}

output "node_instance_ids" {
  description = "Instance ids of the storage nodes."
  value       = aws_instance.node[*].id
}

output "node_private_ips" {
  description = "Private addresses of the storage nodes (port node_port)."
  value       = aws_instance.node[*].private_ip
}

output "node_data_volume_ids" {
  description = "The nodes' gp3 data volumes, in node order."
  value       = aws_ebs_volume.data[*].id
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
