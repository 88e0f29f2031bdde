# Instances: one API coordinator in a public subnet behind an Elastic IP, and node_count storage
# nodes round-robin over the private subnets, each with its own gp3 data volume. Every instance
# boots the bootstrap script of its role (scripts/bootstrap_*.sh) with its systemd unit
# (infra/systemd/*.service), which install the pinned dfs_package; IMDSv2 only.

data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

locals {
  ami_id     = coalesce(var.ami_id, data.aws_ssm_parameter.al2023.value)
  ssm_prefix = "/${var.name}"
  repo       = "${path.module}/../.."

  common_settings = {
    DFS_PACKAGE       = var.dfs_package
    DFS_PIP_INDEX_URL = var.pip_index_url
    DFS_SSM_PREFIX    = local.ssm_prefix
    DFS_TABLE_PREFIX  = var.table_prefix
  }
}

# --- API ------------------------------------------------------------------------------------------

# The API's address lives on its own interface, so it has its Elastic IP (and internet access
# for the bootstrap) from the first boot, and keeps it when the instance is replaced.
resource "aws_network_interface" "api" {
  subnet_id       = aws_subnet.public[0].id
  security_groups = [aws_security_group.api.id]
  description     = "${var.name} API"
  tags            = { Name = "${var.name}-api" }
}

resource "aws_eip" "api" {
  domain            = "vpc"
  network_interface = aws_network_interface.api.id
  tags              = { Name = "${var.name}-api" }

  depends_on = [aws_internet_gateway.main]
}

resource "aws_instance" "api" {
  ami                  = local.ami_id
  instance_type        = var.api_instance_type
  key_name             = var.key_name
  iam_instance_profile = aws_iam_instance_profile.api.name
  monitoring           = true
  ebs_optimized        = true

  network_interface {
    network_interface_id = aws_network_interface.api.id
    device_index         = 0
  }

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
    role   = "api"
    unit   = file("${local.repo}/infra/systemd/dfs-api.service")
    script = file("${local.repo}/scripts/bootstrap_api.sh")
    settings = merge(local.common_settings, {
      DFS_API_PORT           = tostring(var.api_port)
      DFS_REPLICATION_FACTOR = tostring(var.replication_factor)
    })
  })
  user_data_replace_on_change = false

  tags = { Name = "${var.name}-api", Role = "dfs-api" }

  # the tables must be ACTIVE before `dfs-api init-tables` checks them
  depends_on = [aws_dynamodb_table.main, aws_eip.api, aws_nat_gateway.main]

  lifecycle {
    precondition {
      condition     = var.replication_factor <= var.node_count
      error_message = "replication_factor must not exceed node_count."
    }
  }
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
  key_name               = var.key_name
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
    settings = merge(local.common_settings, {
      DFS_NODE_PORT      = tostring(var.node_port)
      DFS_DATA_VOLUME_ID = aws_ebs_volume.data[count.index].id
    })
  })
  user_data_replace_on_change = false

  tags = { Name = "${var.name}-node-${count.index + 1}", Role = "dfs-node" }

  depends_on = [aws_nat_gateway.main, aws_route_table_association.private]
}

# The bootstrap script waits for this attachment, formats the volume on first use only, and
# mounts it at /var/lib/dfs (the node's DFS_DATA_DIR).
resource "aws_volume_attachment" "data" {
  count       = var.node_count
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data[count.index].id
  instance_id = aws_instance.node[count.index].id
}
