# Secrets, generated here and kept as SecureStrings under /<name>/. The bootstrap scripts read
# them at boot into root-only env files. They are also in the Terraform state: keep the state in
# an encrypted, access-controlled backend.

resource "random_password" "cluster_secret" {
  length  = 64
  special = false
}

resource "random_password" "api_secret" {
  length  = 64
  special = false
}

resource "random_password" "admin_token" {
  length  = 48
  special = false
}

resource "random_password" "metrics_token" {
  length  = 48
  special = false
}

resource "aws_ssm_parameter" "cluster_secret" {
  name        = "/${var.name}/cluster-secret"
  description = "DFS_CLUSTER_SECRET: HMAC key the API and nodes share for capabilities, receipts and heartbeats"
  type        = "SecureString"
  key_id      = aws_kms_key.main.arn
  value       = random_password.cluster_secret.result
}

resource "aws_ssm_parameter" "api_secret" {
  name        = "/${var.name}/api-secret"
  description = "DFS_API_SECRET: HMAC key only the API holds (download URLs, page keys); nodes never read it"
  type        = "SecureString"
  key_id      = aws_kms_key.main.arn
  value       = random_password.api_secret.result
}

resource "aws_ssm_parameter" "admin_token" {
  name        = "/${var.name}/admin-token"
  description = "DFS_ADMIN_TOKEN: the bootstrap admin bearer token of the API"
  type        = "SecureString"
  key_id      = aws_kms_key.main.arn
  value       = "dfs_${random_password.admin_token.result}"
}

resource "aws_ssm_parameter" "metrics_token" {
  name        = "/${var.name}/metrics-token"
  description = "DFS_METRICS_TOKEN: the bearer token Prometheus scrapes /metrics with"
  type        = "SecureString"
  key_id      = aws_kms_key.main.arn
  value       = random_password.metrics_token.result
}
