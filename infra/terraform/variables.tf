variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name prefix of every resource, and the SSM parameter path (/<name>/...)."
  type        = string
  default     = "dfs"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,20}$", var.name))
    error_message = "name must be lowercase letters, digits and dashes (at most 21 characters)."
  }
}

variable "dfs_package" {
  description = "The pinned dfs release every instance installs with pip: \"dfs==X.Y.Z\" or a wheel URL ending in #sha256=<digest>. Never a branch or a git checkout."
  type        = string

  validation {
    condition     = can(regex("^(dfs==[0-9][0-9A-Za-z.+-]*|https://\\S+\\.whl#sha256=[0-9a-f]{64})$", var.dfs_package))
    error_message = "dfs_package must pin a release: dfs==X.Y.Z, or an https:// wheel URL with #sha256=<64 hex>."
  }
}

variable "pip_index_url" {
  description = "Package index the instances install dfs_package from (empty: pip's default)."
  type        = string
  default     = ""
}

variable "allowed_cidrs" {
  description = "CIDR blocks that may reach the API (and SSH to it when key_name is set). Use your office or VPN range."
  type        = list(string)

  validation {
    condition     = length(var.allowed_cidrs) > 0 && alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "allowed_cidrs must list valid CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "key_name" {
  description = "EC2 key pair for SSH (to the API from allowed_cidrs, to the nodes through the API). null: no SSH."
  type        = string
  default     = null
}

variable "api_instance_type" {
  description = "Instance type of the API coordinator."
  type        = string
  default     = "t3.small"
}

variable "node_instance_type" {
  description = "Instance type of the storage nodes."
  type        = string
  default     = "t3.medium"
}

variable "node_count" {
  description = "Number of storage nodes, spread round-robin over the availability zones."
  type        = number
  default     = 3

  validation {
    condition     = var.node_count >= 1 && var.node_count <= 100 && floor(var.node_count) == var.node_count
    error_message = "node_count must be an integer in [1, 100]."
  }
}

variable "replication_factor" {
  description = "Copies kept of every chunk (REPLICATION_FACTOR); at most node_count."
  type        = number
  default     = 2

  validation {
    condition     = var.replication_factor >= 1 && var.replication_factor <= 5 && floor(var.replication_factor) == var.replication_factor
    error_message = "replication_factor must be an integer in [1, 5]."
  }
}

variable "volume_size_gb" {
  description = "Size of each node's gp3 data volume, in GiB."
  type        = number
  default     = 100

  validation {
    condition     = var.volume_size_gb >= 1 && var.volume_size_gb <= 16384
    error_message = "volume_size_gb must be within [1, 16384]."
  }
}

variable "volume_iops" {
  description = "Provisioned IOPS of each gp3 data volume (3000 is gp3's free baseline)."
  type        = number
  default     = 3000
}

variable "volume_throughput" {
  description = "Provisioned throughput of each gp3 data volume, MiB/s (125 is gp3's free baseline)."
  type        = number
  default     = 125
}

variable "ami_id" {
  description = "AMI for every instance. null: the latest Amazon Linux 2023 (x86_64), which has python3.11 and the AWS CLI."
  type        = string
  default     = null
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "az_count" {
  description = "Availability zones to spread over (at most the region's count)."
  type        = number
  default     = 3
}

variable "table_prefix" {
  description = "Prefix of the DynamoDB table names (the code's defaults follow it: <prefix>dfs-files, ...)."
  type        = string
  default     = ""
}

variable "api_port" {
  description = "Port the API listens on (DFS_API_PORT)."
  type        = number
  default     = 8080
}

variable "node_port" {
  description = "Port the nodes listen on (NODE_PORT)."
  type        = number
  default     = 9000
}

variable "log_retention_days" {
  description = "Retention of the VPC flow logs."
  type        = number
  default     = 365
}

variable "table_deletion_protection" {
  description = "Protect the DynamoDB tables from deletion; set false (and apply) before terraform destroy."
  type        = bool
  default     = true
}
