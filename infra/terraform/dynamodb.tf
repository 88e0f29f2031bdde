# DynamoDB tables, exactly as dfs/meta/dynamo/schema.py declares them (tests/deploy checks this
# file against that module: names, keys, attribute types, indexes, projections, TTL). On-demand
# billing, point-in-time recovery and encryption with the deployment's KMS key on every table.

locals {
  tables = {
    nodes = {
      name       = "dfs-node-registry"
      hash_key   = "node_id"
      range_key  = null
      attributes = { node_id = "S" }
      gsis       = []
      ttl        = "expires_at"
    }
    chunks = {
      name       = "dfs-chunk-metadata"
      hash_key   = "chunk_id"
      range_key  = null
      attributes = { chunk_id = "S" }
      gsis       = []
      ttl        = null
    }
    locations = {
      name       = "dfs-chunk-locations"
      hash_key   = "chunk_id"
      range_key  = "node_id"
      attributes = { chunk_id = "S", node_id = "S" }
      gsis = [
        {
          name               = "by-node"
          hash_key           = "node_id"
          range_key          = "chunk_id"
          projection_type    = "ALL"
          non_key_attributes = null
        },
      ]
      ttl = null
    }
    files = {
      name       = "dfs-files"
      hash_key   = "file_id"
      range_key  = null
      attributes = { file_id = "S", listed_tenant = "S" }
      gsis = [
        {
          name               = "by-tenant"
          hash_key           = "listed_tenant"
          range_key          = "file_id"
          projection_type    = "INCLUDE"
          non_key_attributes = ["tenant", "name", "size", "sha256", "chunker", "state", "created_at", "chunk_count"]
        },
      ]
      ttl = null
    }
    manifests = {
      name       = "dfs-manifests"
      hash_key   = "mid"
      range_key  = "part"
      attributes = { mid = "S", part = "S" }
      gsis       = []
      ttl        = null
    }
    tenant_chunks = {
      name       = "dfs-tenant-chunks"
      hash_key   = "tenant"
      range_key  = "chunk_id"
      attributes = { tenant = "S", chunk_id = "S" }
      gsis       = []
      ttl        = null
    }
    auth = {
      name       = "dfs-auth"
      hash_key   = "kind"
      range_key  = "id"
      attributes = { kind = "S", id = "S" }
      gsis       = []
      ttl        = null
    }
    file_hashes = {
      name       = "dfs-file-hashes"
      hash_key   = "tenant"
      range_key  = "sha256"
      attributes = { tenant = "S", sha256 = "S" }
      gsis       = []
      ttl        = null
    }
    namespace = {
      name       = "dfs-namespace"
      hash_key   = "p"
      range_key  = "s"
      attributes = { p = "S", s = "S" }
      gsis       = []
      ttl        = "expires"
    }
    objects = {
      name       = "dfs-objects"
      hash_key   = "p"
      range_key  = "s"
      attributes = { p = "S", s = "S" }
      gsis       = []
      ttl        = null
    }
    counters = {
      name       = "dfs-counters"
      hash_key   = "counter"
      range_key  = null
      attributes = { counter = "S" }
      gsis       = []
      ttl        = null
    }
  }

  # every table and its indexes, for IAM and the endpoint policy
  table_resources = flatten([
    for t in aws_dynamodb_table.main : [t.arn, "${t.arn}/index/*"]
  ])
}

resource "aws_dynamodb_table" "main" {
  for_each = local.tables

  name         = "${var.table_prefix}${each.value.name}"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = each.value.hash_key
  range_key    = each.value.range_key

  dynamic "attribute" {
    for_each = each.value.attributes
    content {
      name = attribute.key
      type = attribute.value
    }
  }

  dynamic "global_secondary_index" {
    for_each = each.value.gsis
    content {
      name               = global_secondary_index.value.name
      hash_key           = global_secondary_index.value.hash_key
      range_key          = global_secondary_index.value.range_key
      projection_type    = global_secondary_index.value.projection_type
      non_key_attributes = global_secondary_index.value.non_key_attributes
    }
  }

  dynamic "ttl" {
    for_each = each.value.ttl == null ? [] : [each.value.ttl]
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }

  deletion_protection_enabled = var.table_deletion_protection

  tags = { Name = "${var.table_prefix}${each.value.name}" }
}
