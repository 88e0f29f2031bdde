# The load balancer in front of the API, the web console and the S3 gateway (gateway.tf).
# Public (default): internet-facing in the public subnets, reachable from allowed_cidrs only,
# TLS with the ACM certificate of dns.tf (TLS 1.2+), plain HTTP answered only by a redirect to
# HTTPS; api.<domain> and console.<domain> go to the API instances, s3.<domain> and
# *.s3.<domain> to the S3 gateway's (gateway.tf). private_network = true opts out:
# internal, in the private subnets, plain HTTP to the API (for a network that is already
# private). Either way the API instances sit in private subnets, reachable only from the load
# balancer, which checks /readyz (metadata store reachable, enough live nodes) on each.

locals {
  public_lb = !var.private_network
  api_host  = local.public_lb ? "api.${var.domain_name}" : ""
}

resource "aws_lb" "main" {
  #checkov:skip=CKV2_AWS_20:its HTTP listener (http_redirect) only redirects to HTTPS, behind a count the check cannot follow; with private_network = true there is no TLS at all, the operator's opt-out
  #checkov:skip=CKV2_AWS_28:no WAF: every request is authenticated (bearer tokens, SigV4 at the gateway) and uploads are binary bodies a generic rule set misreads; allowed_cidrs limits who reaches it
  name                       = "${var.name}-lb"
  load_balancer_type         = "application"
  internal                   = var.private_network
  subnets                    = var.private_network ? aws_subnet.private[*].id : aws_subnet.public[*].id
  security_groups            = [aws_security_group.lb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.lb_deletion_protection
  idle_timeout               = 300 # big uploads through the API (proxy mode)

  access_logs {
    bucket  = aws_s3_bucket.logs.id
    prefix  = "lb"
    enabled = true
  }

  depends_on = [aws_s3_bucket_policy.logs]
}

resource "aws_lb_target_group" "api" {
  #checkov:skip=CKV_AWS_378:TLS ends at the load balancer; the API instances are in private subnets and accept api_port only from the load balancer's security group
  name                 = "${var.name}-api"
  port                 = var.api_port
  protocol             = "HTTP"
  vpc_id               = aws_vpc.main.id
  deregistration_delay = 30 # dfs-api drains in-flight requests for up to 10 s on SIGTERM

  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  count             = local.public_lb ? 1 : 0
  load_balancer_arn = aws_lb.main.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = aws_acm_certificate_validation.main[0].certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}

resource "aws_lb_listener" "http_redirect" {
  count             = local.public_lb ? 1 : 0
  load_balancer_arn = aws_lb.main.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }
}

resource "aws_lb_listener" "http_private" {
  #checkov:skip=CKV_AWS_2:only with private_network = true, the operator's opt-out for a network that is already private; the public load balancer serves HTTPS and only redirects HTTP
  #checkov:skip=CKV_AWS_103:only with private_network = true (plain HTTP inside a private network, no TLS at all); the public HTTPS listener uses a TLS 1.2+ policy
  count             = local.public_lb ? 0 : 1
  load_balancer_arn = aws_lb.main.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}
