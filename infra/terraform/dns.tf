# Host names and their certificate (public load balancer only): one ACM certificate for
# <domain>, *.<domain> (api., console., s3.) and *.s3.<domain> (the S3 gateway's virtual-host
# bucket addresses, <bucket>.s3.<domain>), validated through DNS in the operator's Route 53
# zone, and alias records from each host name to the load balancer.

locals {
  host_names = local.public_lb ? toset([
    "api.${var.domain_name}",
    "console.${var.domain_name}",
    "s3.${var.domain_name}",
    "*.s3.${var.domain_name}",
  ]) : toset([])
}

resource "aws_acm_certificate" "main" {
  #checkov:skip=CKV2_AWS_71:the wildcard *.s3.<domain> is what virtual-host-style S3 bucket addressing needs (one name per bucket otherwise); *.<domain> covers only this deployment's host names
  count                     = local.public_lb ? 1 : 0
  domain_name               = var.domain_name
  subject_alternative_names = ["*.${var.domain_name}", "*.s3.${var.domain_name}"]
  validation_method         = "DNS"

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = var.domain_name != null && var.route53_zone_id != null
      error_message = "domain_name and route53_zone_id are required unless private_network = true."
    }
  }
}

resource "aws_route53_record" "validation" {
  for_each = local.public_lb ? {
    for o in aws_acm_certificate.main[0].domain_validation_options : o.domain_name => o
  } : {}
  zone_id         = var.route53_zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true # *.<domain> and <domain> share one validation record
}

resource "aws_acm_certificate_validation" "main" {
  count                   = local.public_lb ? 1 : 0
  certificate_arn         = aws_acm_certificate.main[0].arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]
}

resource "aws_route53_record" "hosts" {
  for_each = local.host_names
  zone_id  = var.route53_zone_id
  name     = each.value
  type     = "A"

  alias {
    name                   = aws_lb.main.dns_name
    zone_id                = aws_lb.main.zone_id
    evaluate_target_health = true
  }
}
