# Instances. The API: api_count stateless instances in the private subnets, from a launch
# template in an Auto Scaling group behind the load balancer (lb.tf); a new release is a new
# launch template version, which the group rolls out by instance refresh, one instance at a
# time, each new one healthy on /readyz before the next old one goes. The nodes: node_count
# instances round-robin over the private subnets, each with its own gp3 data volume (a node's
# identity and chunks live on it, so a node's instance can be replaced without losing either);
# a new release reaches them by replacing one at a time with scripts/roll_nodes.sh
# (docs/OPERATIONS.md), never all at once: Terraform ignores their user data and AMI changes.
# Every instance boots the bootstrap script of its role (scripts/bootstrap_*.sh) with its
# systemd unit (infra/systemd/*.service), which install the pinned release from the artifacts
# bucket (artifacts.tf) by hash; IMDSv2 only.

data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

locals {
  ami_id     = coalesce(var.ami_id, data.aws_ssm_parameter.al2023.value)
  ssm_prefix = "/${var.name}"
  repo       = "${path.module}/../.."

  common_settings = {
    DFS_RELEASE_BUCKET    = aws_s3_bucket.artifacts.id
    DFS_RELEASE_VERSION   = var.release_version
    DFS_RELEASE_SHA256    = var.release_sha256
    DFS_SSM_PREFIX        = local.ssm_prefix
    DFS_TABLE_PREFIX      = var.table_prefix
    DFS_METRICS_GROUP     = aws_cloudwatch_log_group.metrics.name
    DFS_METRICS_NAMESPACE = var.name
  }
}

# --- API ------------------------------------------------------------------------------------------

resource "aws_launch_template" "api" {
  name_prefix            = "${var.name}-api-"
  image_id               = local.ami_id
  instance_type          = var.api_instance_type
  vpc_security_group_ids = [aws_security_group.api.id]
  ebs_optimized          = true
  update_default_version = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.api.arn
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
    role   = "api"
    unit   = file("${local.repo}/infra/systemd/dfs-api.service")
    script = file("${local.repo}/scripts/bootstrap_api.sh")
    lib    = file("${local.repo}/scripts/bootstrap_lib.sh")
    settings = merge(local.common_settings, {
      DFS_API_PORT           = tostring(var.api_port)
      DFS_REPLICATION_FACTOR = tostring(var.replication_factor)
      DFS_REPAIR_GRACE       = tostring(var.repair_grace_seconds)
      DFS_API_WORKERS        = tostring(var.api_workers)
      # TLS ends at the load balancer: the API sees plain HTTP, so the signed download and
      # share links it builds from the request would be http:// URLs
      DFS_PUBLIC_URL = local.public_lb ? "https://${local.api_host}" : ""
    })
  }))

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-api", Role = "dfs-api" }
  }

  lifecycle {
    precondition {
      condition     = var.replication_factor <= var.node_count
      error_message = "replication_factor must not exceed node_count."
    }
  }
}

resource "aws_autoscaling_group" "api" {
  name                      = "${var.name}-api"
  min_size                  = var.api_count
  max_size                  = 2 * var.api_count # room for the refresh's new instances
  desired_capacity          = var.api_count
  vpc_zone_identifier       = aws_subnet.private[*].id
  target_group_arns         = [aws_lb_target_group.api.arn]
  health_check_type         = "ELB" # /readyz through the load balancer
  health_check_grace_period = 600   # the bootstrap installs the release first
  default_instance_warmup   = 120

  launch_template {
    id      = aws_launch_template.api.id
    version = aws_launch_template.api.latest_version
  }

  # a new launch template version (a release, an AMI) replaces the instances one at a time
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
    for_each = { Name = "${var.name}-api", Role = "dfs-api" }
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  # the tables must be ACTIVE before `dfs-api init-tables` checks them
  depends_on = [aws_dynamodb_table.main, aws_nat_gateway.main, aws_route_table_association.private]
}

# --- nodes ----------------------------------------------------------------------------------------

resource "aws_ebs_volume" "data" {
  count             = var.node_count
  availability_zone = aws_subnet.private[count.index % length(local.azs)].availability_zone
  type              = "gp3"
  size              = var.volume_size_gb
  iops              = var.volume_iops
  throughput        = var.volume_throughput
  encrypted         = true
  kms_key_id        = aws_kms_key.main.arn

  tags = { Name = "${var.name}-node-${count.index + 1}-data" }
}

resource "aws_instance" "node" {
  count                  = var.node_count
  ami                    = local.ami_id
  instance_type          = var.node_instance_type
  subnet_id              = aws_subnet.private[count.index % length(local.azs)].id
  vpc_security_group_ids = [aws_security_group.node.id]
  iam_instance_profile   = aws_iam_instance_profile.node.name
  monitoring             = true
  ebs_optimized          = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 20
    encrypted   = true
    kms_key_id  = aws_kms_key.main.arn
  }

  user_data = templatefile("${path.module}/templates/user_data.sh.tftpl", {
    role   = "node"
    unit   = file("${local.repo}/infra/systemd/dfs-node.service")
    script = file("${local.repo}/scripts/bootstrap_node.sh")
    lib    = file("${local.repo}/scripts/bootstrap_lib.sh")
    settings = merge(local.common_settings, {
      DFS_NODE_PORT      = tostring(var.node_port)
      DFS_DATA_VOLUME_ID = aws_ebs_volume.data[count.index].id
    })
  })
  user_data_replace_on_change = false

  tags = { Name = "${var.name}-node-${count.index + 1}", Role = "dfs-node" }

  # A release or AMI change must not stop every node at once: scripts/roll_nodes.sh replaces
  # them one at a time (terraform apply -replace), which takes the current user data.
  lifecycle {
    ignore_changes = [user_data, ami]
  }

  depends_on = [aws_nat_gateway.main, aws_route_table_association.private]
}

# The bootstrap script waits for this attachment, formats the volume on first use only, and
# mounts it at /var/lib/dfs (the node's DFS_DATA_DIR). A replaced instance is stopped (dfs-node
# deregisters cleanly) before its volume is detached and attached to the new one.
resource "aws_volume_attachment" "data" {
  count                          = var.node_count
  device_name                    = "/dev/sdf"
  volume_id                      = aws_ebs_volume.data[count.index].id
  instance_id                    = aws_instance.node[count.index].id
  stop_instance_before_detaching = true
}
