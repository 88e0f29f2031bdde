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

variable "release_version" {
  description = "The dfs release every instance installs: X.Y.Z, uploaded to the artifacts bucket under releases/X.Y.Z/ (scripts/release.sh prints the command). Never a branch or a git checkout."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)*[a-z0-9.+-]*$", var.release_version))
    error_message = "release_version must be a release version, X.Y.Z."
  }
}

variable "release_sha256" {
  description = "sha256 of that release's requirements.lock (scripts/release.sh prints it): the lock pins every wheel by hash, so this pins the whole release."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.release_sha256))
    error_message = "release_sha256 must be 64 lowercase hex digits."
  }
}

variable "private_network" {
  description = "Opt out of the public, TLS-terminating load balancer: an internal load balancer on plain HTTP in the private subnets, for a network that is already private (VPN, Direct Connect). No domain or certificate is needed then."
  type        = bool
  default     = false
}

variable "domain_name" {
  description = "DNS name under which the deployment is served (public load balancer): api.<domain> (the API), console.<domain> (the web console), s3.<domain> and *.s3.<domain> (the S3 gateway, virtual-host buckets). One ACM certificate covers them (a wildcard). Required unless private_network."
  type        = string
  default     = null
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone of domain_name: the certificate's DNS validation and the host names' alias records go there. Required unless private_network."
  type        = string
  default     = null
}

variable "api_count" {
  description = "API instances behind the load balancer (the API is stateless: any number serve the same cluster). An upgrade replaces them one at a time (instance refresh)."
  type        = number
  default     = 2

  validation {
    condition     = var.api_count >= 1 && var.api_count <= 20 && floor(var.api_count) == var.api_count
    error_message = "api_count must be an integer in [1, 20]."
  }
}

variable "api_workers" {
  description = "DFS_API_WORKERS of each API instance: dfs-api processes on its one port (each plans requests on one core; 1 to 64)."
  type        = number
  default     = 1

  validation {
    condition     = var.api_workers >= 1 && var.api_workers <= 64 && floor(var.api_workers) == var.api_workers
    error_message = "api_workers must be an integer in [1, 64]."
  }
}

variable "repair_grace_seconds" {
  description = "DFS_REPAIR_GRACE of the API: how long a down node's copies still count before repair copies its chunks elsewhere. Longer than a node's replacement (scripts/roll_nodes.sh waits at most this long for each node)."
  type        = number
  default     = 900
}

variable "lb_deletion_protection" {
  description = "Protect the load balancer from deletion; set false (and apply) before terraform destroy."
  type        = bool
  default     = true
}

variable "allowed_cidrs" {
  description = "CIDR blocks that may reach the load balancer (HTTPS, and HTTP that redirects to it). Use your office or VPN range."
  type        = list(string)

  validation {
    condition     = length(var.allowed_cidrs) > 0 && alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "allowed_cidrs must list valid CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "api_instance_type" {
  description = "Instance type of the API instances."
  type        = string
  default     = "t3.small"
}

variable "node_instance_type" {
  description = "Instance type of the storage nodes."
  type        = string
  default     = "t3.medium"
}

variable "node_count" {
  description = "Number of storage nodes, spread round-robin over the availability zones. Adding a node is raising it; removing one is draining it first (docs/OPERATIONS.md), then lowering it: the last node goes."
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
  description = "AMI for every instance: Amazon Linux 2023 (the bootstrap scripts need its dnf, python3.11 and AWS CLI). null: the latest one (x86_64)."
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
  description = "Retention of the VPC flow logs, the metrics log group and the load balancer's access logs."
  type        = number
  default     = 365
}

variable "table_deletion_protection" {
  description = "Protect the DynamoDB tables from deletion; set false (and apply) before terraform destroy."
  type        = bool
  default     = true
}

variable "alarm_email" {
  description = "An address the alarms' SNS topic mails (confirm the subscription); null: subscribe yourself to the topic (output alarm_topic_arn)."
  type        = string
  default     = null
}

variable "alarm_disk_percent" {
  description = "Alarm when a node's data volume is fuller than this percentage."
  type        = number
  default     = 80
}

variable "alarm_5xx_percent" {
  description = "Alarm when more than this percentage of requests over 5 minutes are answered 5xx."
  type        = number
  default     = 1
}

variable "alarm_s3_latency_seconds" {
  description = "Alarm when the S3 gateway's p99 response time over 5 minutes stays above this many seconds (TargetResponseTime counts a PUT's upload: leave room for the largest parts)."
  type        = number
  default     = 10

  validation {
    condition     = var.alarm_s3_latency_seconds > 0
    error_message = "alarm_s3_latency_seconds must be positive."
  }
}

variable "s3_count" {
  description = "S3 gateway instances (dfs-s3) behind the load balancer (stateless: any number serve the same cluster). An upgrade replaces them one at a time (instance refresh)."
  type        = number
  default     = 2

  validation {
    condition     = var.s3_count >= 1 && var.s3_count <= 20 && floor(var.s3_count) == var.s3_count
    error_message = "s3_count must be a whole number from 1 to 20."
  }
}

variable "s3_instance_type" {
  description = "Instance type of the S3 gateway instances."
  type        = string
  default     = "t3.small"
}

variable "s3_port" {
  description = "Port the S3 gateway listens on (DFS_S3_PORT); with private_network = true also the internal load balancer's port for it."
  type        = number
  default     = 9100
}
