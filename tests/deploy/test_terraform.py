"""infra/terraform: parses, declares exactly the code's DynamoDB schema, grants least privilege,
and passes checkov with every skip explained in the code."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dfs.meta.dynamo import schema as dynamo_schema
from tests.deploy.conftest import REPO, SCRIPTS, TERRAFORM, bootstrap_text

pytestmark = pytest.mark.deploy

DYNAMODB_PACKAGE = REPO / "dfs" / "meta" / "dynamo"


def key_of(schema: list[dict[str, str]], kind: str) -> str | None:
    names = [k["AttributeName"] for k in schema if k["KeyType"] == kind]
    return names[0] if names else None


def test_tables_match_the_code_schema(terraform: dict[str, Any]) -> None:
    declared = terraform["locals"]["tables"]
    assert set(declared) == set(dynamo_schema.TABLES)
    for key, spec in dynamo_schema.TABLES.items():
        t = declared[key]
        assert t["name"] == spec["default"], key
        assert t["hash_key"] == key_of(spec["KeySchema"], "HASH"), key
        assert t["range_key"] == key_of(spec["KeySchema"], "RANGE"), key
        assert t["attributes"] == {
            a["AttributeName"]: a["AttributeType"] for a in spec["AttributeDefinitions"]
        }, key
        assert t["ttl"] == spec["ttl_attribute"], key
        want_gsis = [
            {
                "name": g["IndexName"],
                "hash_key": key_of(g["KeySchema"], "HASH"),
                "range_key": key_of(g["KeySchema"], "RANGE"),
                "projection_type": g["Projection"]["ProjectionType"],
                "non_key_attributes": g["Projection"].get("NonKeyAttributes"),
            }
            for g in spec["GlobalSecondaryIndexes"]
        ]
        assert t["gsis"] == want_gsis, key


def test_the_table_resource_uses_every_field(terraform: dict[str, Any]) -> None:
    """The for_each resource really applies the locals: names with the prefix, keys, every
    attribute and index, TTL; on-demand, point-in-time recovery and KMS encryption."""
    table = terraform["resource"]["aws_dynamodb_table"]["main"]
    assert table["for_each"] == "${local.tables}"
    assert table["name"] == "${var.table_prefix}${each.value.name}"
    assert table["billing_mode"] == dynamo_schema.BILLING_MODE
    assert table["hash_key"] == "${each.value.hash_key}"
    assert table["range_key"] == "${each.value.range_key}"
    dynamic = {name: body for block in table["dynamic"] for name, body in block.items()}
    assert dynamic["attribute"]["for_each"] == "${each.value.attributes}"
    assert dynamic["global_secondary_index"]["for_each"] == "${each.value.gsis}"
    gsi = dynamic["global_secondary_index"]["content"][0]
    for field in ("name", "hash_key", "range_key", "projection_type", "non_key_attributes"):
        assert gsi[field] == f"${{global_secondary_index.value.{field}}}"
    ttl = dynamic["ttl"]
    assert "each.value.ttl == null" in ttl["for_each"]
    assert ttl["content"][0]["enabled"] is True
    assert table["point_in_time_recovery"][0]["enabled"] is True
    sse = table["server_side_encryption"][0]
    assert sse["enabled"] is True
    assert sse["kms_key_arn"] == "${aws_kms_key.main.arn}"


def _iam_actions(terraform: dict[str, Any], doc: str) -> dict[str, set[str]]:
    """statement sid -> actions of one aws_iam_policy_document."""
    body = terraform["data"]["aws_iam_policy_document"][doc]
    return {s.get("sid", ""): set(s["actions"]) for s in body["statement"]}


def _camel(op: str) -> str:
    return "dynamodb:" + "".join(part.capitalize() for part in op.split("_"))


# the module of table creation, which only `init-tables` (bootstrap_api.sh) reaches
INIT_TABLES_MODULE = "tables.py"


def store_actions(skip: tuple[str, ...] = ()) -> set[str]:
    """The IAM actions of every DynamoDB call in the store's source (but ``skip``'s files)."""
    files = [p for p in sorted(DYNAMODB_PACKAGE.glob("*.py")) if p.name not in skip]
    src = "".join(p.read_text() for p in files)
    # every request goes through the request layer, whose methods take the operation first
    request = r'\b(?:call|call_or_none|paginate|up_to|until_processed)\(\s*"(\w+)"'
    ops = set(re.findall(request, src))
    ops |= set(re.findall(r'^\s+"(\w+_item|query|scan)",$', src, re.MULTILINE))
    ops |= set(re.findall(r"\bclient\.(\w+)\(", src))
    assert {"put_item", "query", "scan", "transact_write_items"} <= ops
    # Terraform creates the tables and their TTL: init-tables only describes them
    ops -= {"create_table", "update_time_to_live", "close"}
    needed = {_camel(op) for op in ops if op != "transact_write_items"}
    if "transact_write_items" in ops:  # IAM checks each action of a transaction
        needed |= {"dynamodb:ConditionCheckItem", "dynamodb:UpdateItem", "dynamodb:PutItem"}
    return needed


def test_the_api_role_allows_what_the_store_calls_and_no_more(terraform: dict[str, Any]) -> None:
    needed = store_actions()
    assert "dynamodb:DescribeTable" in needed
    api = _iam_actions(terraform, "api")
    assert api["DfsTables"] == needed
    policy = terraform["data"]["aws_iam_policy_document"]["api"]["statement"]
    tables_stmt = next(s for s in policy if s.get("sid") == "DfsTables")
    assert tables_stmt["resources"] == "${local.table_resources}"
    assert not any("*" in a for actions in api.values() for a in actions)


def test_the_gateway_role_allows_what_the_store_calls_but_init_tables(
    terraform: dict[str, Any],
) -> None:
    """dfs-s3 uses the same store but never creates or checks tables (its bootstrap runs no
    init-tables): its grants are the store's calls without those of table creation;
    test_role_calls.py checks a running gateway needs nothing more."""
    needed = store_actions(skip=(INIT_TABLES_MODULE,))
    assert "dynamodb:DescribeTable" not in needed
    s3 = _iam_actions(terraform, "s3")
    assert s3["DfsTables"] == needed
    policy = terraform["data"]["aws_iam_policy_document"]["s3"]["statement"]
    tables_stmt = next(s for s in policy if s.get("sid") == "DfsTables")
    assert tables_stmt["resources"] == "${local.table_resources}"
    assert not any("*" in a for actions in s3.values() for a in actions)
    # the CloudWatch agent's grants only (it scrapes /metrics), as the API's and the nodes'
    agent = {sid for sid, v in s3.items() if any(a.startswith(("cloudwatch:", "logs:")) for a in v)}
    assert agent == {"AgentMetrics", "AgentMetricLogs"}


def test_the_gateway_runs_behind_the_load_balancer_like_the_api(
    terraform: dict[str, Any],
) -> None:
    res = terraform["resource"]
    asg = res["aws_autoscaling_group"]["s3"]
    assert asg["health_check_type"] == "ELB"
    assert asg["target_group_arns"] == ["${aws_lb_target_group.s3.arn}"]
    assert asg["desired_capacity"] == "${var.s3_count}"
    assert asg["vpc_zone_identifier"] == "${aws_subnet.private[*].id}"
    assert asg["launch_template"][0]["version"] == "${aws_launch_template.s3.latest_version}"
    refresh = asg["instance_refresh"][0]
    assert refresh["strategy"] == "Rolling"
    assert refresh["preferences"][0]["min_healthy_percentage"] == 100
    tg = res["aws_lb_target_group"]["s3"]
    assert tg["health_check"][0]["path"] == "/readyz"
    assert tg["port"] == "${var.s3_port}"
    rule = res["aws_lb_listener_rule"]["s3_gateway"]
    assert set(rule["condition"][0]["host_header"][0]["values"]) == {
        "s3.${var.domain_name}",
        "*.s3.${var.domain_name}",
    }
    action = rule["action"][0]
    assert action["type"] == "forward"
    assert action["target_group_arn"] == "${aws_lb_target_group.s3.arn}"
    template = res["aws_launch_template"]["s3"]
    assert template["metadata_options"][0]["http_tokens"] == "required"
    assert "dfs-s3.service" in template["user_data"]
    assert "bootstrap_s3.sh" in template["user_data"]
    assert (
        'DFS_S3_DOMAIN          = local.public_lb ? "s3.${var.domain_name}" : ""'
        in (TERRAFORM / "gateway.tf").read_text()
    )
    # reachable on s3_port from the load balancer only; it reaches the nodes, they let it in
    rules = res["aws_security_group_rule"]
    s3_in = [r for r in rules.values() if r["security_group_id"].endswith("s3.id}")]
    assert [r["source_security_group_id"] for r in s3_in if r["type"] == "ingress"] == [
        "${aws_security_group.lb.id}"
    ]
    assert rules["node_in_s3"]["source_security_group_id"] == "${aws_security_group.s3.id}"
    assert rules["s3_out_nodes"]["from_port"] == "${var.node_port}"


# The node role's DynamoDB grants are derived from a real node's calls: test_role_calls.py.


def ssm_reads(script: str) -> tuple[set[str], set[str]]:
    """(IAM actions, parameter names) of the SSM calls a bootstrap script makes."""
    text = bootstrap_text(script)
    commands = set(re.findall(r"\baws ssm ([a-z-]+)", text))
    actions = {"ssm:" + "".join(w.capitalize() for w in c.split("-")) for c in commands}
    return actions, set(re.findall(r"\$\(ssm ([\w-]+)\)", text))


@pytest.mark.parametrize(
    ("role", "script"),
    [("api", "bootstrap_api.sh"), ("node", "bootstrap_node.sh"), ("s3", "bootstrap_s3.sh")],
)
def test_each_role_reads_exactly_the_parameters_its_bootstrap_reads(
    terraform: dict[str, Any], role: str, script: str
) -> None:
    actions, names = ssm_reads(script)
    assert actions == {"ssm:GetParameter"}, script
    assert names, script
    params = terraform["resource"]["aws_ssm_parameter"]
    arn_of = {
        p["name"].removeprefix("/${var.name}/"): f"${{aws_ssm_parameter.{key}.arn}}"
        for key, p in params.items()
    }
    statements = terraform["data"]["aws_iam_policy_document"][role]["statement"]
    granted = {
        (a, r)
        for s in statements
        for a in s["actions"]
        if a.startswith("ssm:")
        for r in s["resources"]
    }
    assert granted == {(a, arn_of[n]) for a in actions for n in names}
    if role == "node":
        # a node holds only what nodes need: not the API's own secret (download URLs)
        assert "admin-token" not in names
        assert "api-secret" not in names
    else:
        assert "api-secret" in names


def test_only_the_load_balancer_is_reachable_from_outside(terraform: dict[str, Any]) -> None:
    rules = terraform["resource"]["aws_security_group_rule"]
    for name, rule in rules.items():
        if rule["type"] != "ingress":
            continue
        if "cidr_blocks" in rule:
            assert rule["security_group_id"] == "${aws_security_group.lb.id}", name
            assert rule["cidr_blocks"] == "${var.allowed_cidrs}", name
        else:  # from another security group or the group itself
            assert rule.get("self") is True or "source_security_group_id" in rule, name
        assert rule["description"], name
    api_in = [r for r in rules.values() if r["security_group_id"].endswith("api.id}")]
    assert [r["source_security_group_id"] for r in api_in if r["type"] == "ingress"] == [
        "${aws_security_group.lb.id}"
    ]
    node_in = [r for r in rules.values() if r["security_group_id"].endswith("node.id}")]
    assert all(
        r["type"] == "egress" or r.get("self") or r.get("source_security_group_id") for r in node_in
    )
    assert all(
        r.get("cidr_blocks") != ["0.0.0.0/0"] or r["from_port"] == 443 for r in rules.values()
    )
    assert not any(r["from_port"] == 22 for r in rules.values())  # no SSH anywhere
    endpoint = terraform["resource"]["aws_vpc_endpoint"]["dynamodb"]
    assert endpoint["vpc_endpoint_type"] == "Gateway"
    assert "dynamodb" in endpoint["service_name"]
    for subnet in terraform["resource"]["aws_subnet"].values():
        assert subnet.get("map_public_ip_on_launch", False) is False
    # instances live in the private subnets only
    asg = terraform["resource"]["aws_autoscaling_group"]["api"]
    assert asg["vpc_zone_identifier"] == "${aws_subnet.private[*].id}"
    assert "aws_subnet.private" in terraform["resource"]["aws_instance"]["node"]["subnet_id"]


def test_tls_in_front_with_a_private_opt_out(terraform: dict[str, Any]) -> None:
    res = terraform["resource"]
    lb = res["aws_lb"]["main"]
    assert lb["internal"] == "${var.private_network}"
    assert lb["drop_invalid_header_fields"] is True
    listeners = res["aws_lb_listener"]
    https = listeners["https"]
    assert https["protocol"] == "HTTPS"
    assert https["port"] == 443
    assert https["ssl_policy"].startswith("ELBSecurityPolicy-TLS13")
    assert "aws_acm_certificate_validation.main" in https["certificate_arn"]
    redirect = listeners["http_redirect"]["default_action"][0]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"][0]["protocol"] == "HTTPS"
    # plain HTTP forwarding exists only as the private opt-out
    assert listeners["http_private"]["count"] == "${local.public_lb ? 0 : 1}"
    assert listeners["https"]["count"] == "${local.public_lb ? 1 : 0}"
    tg = res["aws_lb_target_group"]["api"]
    assert tg["health_check"][0]["path"] == "/readyz"
    assert tg["port"] == "${var.api_port}"
    cert = res["aws_acm_certificate"]["main"]
    assert cert["validation_method"] == "DNS"
    assert set(cert["subject_alternative_names"]) == {
        "*.${var.domain_name}",
        "*.s3.${var.domain_name}",
    }
    hosts = terraform["locals"]["host_names"]
    for host in ("api.", "console.", "s3.", "*.s3."):
        assert f"{host}${{var.domain_name}}" in hosts, host


def test_the_api_signs_links_with_the_public_https_address(terraform: dict[str, Any]) -> None:
    """TLS ends at the load balancer, so a request reaches the API as plain HTTP: the signed
    download and share links it builds from the request would be http:// URLs. Behind the
    public load balancer the API is told its public address (DFS_PUBLIC_URL), the name the
    certificate and the DNS record serve; with the private opt-out it has none (the request's
    own plain-HTTP address is the right one there)."""
    user_data = terraform["resource"]["aws_launch_template"]["api"]["user_data"]
    assert 'DFS_PUBLIC_URL = local.public_lb ? "https://${local.api_host}" : ""' in user_data
    assert terraform["locals"]["api_host"] == '${local.public_lb ? "api.${var.domain_name}" : ""}'
    assert "api.${var.domain_name}" in terraform["locals"]["host_names"]
    https = terraform["resource"]["aws_lb_listener"]["https"]
    assert https["default_action"][0]["target_group_arn"] == "${aws_lb_target_group.api.arn}"


def test_apis_roll_by_instance_refresh_and_nodes_are_not_touched_by_apply(
    terraform: dict[str, Any],
) -> None:
    res = terraform["resource"]
    asg = res["aws_autoscaling_group"]["api"]
    assert asg["health_check_type"] == "ELB"
    assert asg["target_group_arns"] == ["${aws_lb_target_group.api.arn}"]
    assert asg["desired_capacity"] == "${var.api_count}"
    assert asg["launch_template"][0]["version"] == "${aws_launch_template.api.latest_version}"
    refresh = asg["instance_refresh"][0]
    assert refresh["strategy"] == "Rolling"
    assert refresh["preferences"][0]["min_healthy_percentage"] == 100  # never below api_count
    node = res["aws_instance"]["node"]
    assert set(node["lifecycle"][0]["ignore_changes"]) == {"user_data", "ami"}
    assert res["aws_volume_attachment"]["data"]["stop_instance_before_detaching"] is True


def test_instances_volumes_and_secrets(terraform: dict[str, Any]) -> None:
    res = terraform["resource"]
    template = res["aws_launch_template"]["api"]
    assert template["metadata_options"][0]["http_tokens"] == "required"  # IMDSv2 only
    assert template["block_device_mappings"][0]["ebs"][0]["encrypted"] is True
    assert "templates/user_data.sh.tftpl" in template["user_data"]
    node = res["aws_instance"]["node"]
    assert node["metadata_options"][0]["http_tokens"] == "required"
    assert node["root_block_device"][0]["encrypted"] is True
    assert "templates/user_data.sh.tftpl" in node["user_data"]
    assert node["count"] == "${var.node_count}"
    assert "% length(local.azs)" in node["subnet_id"]
    volume = res["aws_ebs_volume"]["data"]
    assert volume["type"] == "gp3"
    assert volume["size"] == "${var.volume_size_gb}"
    assert volume["encrypted"] is True
    for name in ("cluster_secret", "api_secret", "admin_token", "metrics_token"):
        param = res["aws_ssm_parameter"][name]
        assert param["type"] == "SecureString", name
        assert param["key_id"] == "${aws_kms_key.main.arn}", name


def test_variables_and_outputs(terraform: dict[str, Any]) -> None:
    for var in (
        "region",
        "api_instance_type",
        "node_instance_type",
        "node_count",
        "api_count",
        "replication_factor",
        "volume_size_gb",
        "allowed_cidrs",
        "release_version",
        "release_sha256",
        "private_network",
        "domain_name",
        "route53_zone_id",
        "repair_grace_seconds",
        "s3_count",
        "s3_port",
    ):
        assert terraform["variable"][var]["description"], var
    defaults = {k for k, v in terraform["variable"].items() if "default" in v}
    assert "release_version" not in defaults
    assert "release_sha256" not in defaults
    for out in (
        "api_url",
        "console_url",
        "s3_endpoint",
        "s3_autoscaling_group",
        "artifacts_bucket",
        "alarm_topic_arn",
    ):
        assert out in terraform["output"], out


def test_releases_come_from_the_artifacts_bucket_only(terraform: dict[str, Any]) -> None:
    """What `aws s3 sync` in the bootstrap scripts needs (ListBucket on the bucket, GetObject
    on its releases/), on exactly the bucket Terraform creates, for both roles."""
    for script in ("bootstrap_api.sh", "bootstrap_node.sh", "bootstrap_s3.sh"):
        text = bootstrap_text(script)
        assert set(re.findall(r"\baws s3 ([a-z-]+)", text)) == {"sync"}, script
        assert '"s3://${DFS_RELEASE_BUCKET}/releases/${DFS_RELEASE_VERSION}/"' in text
    settings = (TERRAFORM / "compute.tf").read_text()
    assert "DFS_RELEASE_BUCKET    = aws_s3_bucket.artifacts.id" in settings
    assert "settings = merge(local.common_settings, {" in (TERRAFORM / "gateway.tf").read_text()
    for role in ("api", "node", "s3"):
        s3 = {
            (a, str(s["resources"]))
            for s in terraform["data"]["aws_iam_policy_document"][role]["statement"]
            for a in s["actions"]
            if a.startswith("s3:")
        }
        assert s3 == {
            ("s3:ListBucket", "['${aws_s3_bucket.artifacts.arn}']"),
            ("s3:GetObject", "['${aws_s3_bucket.artifacts.arn}/releases/*']"),
        }, role
    bucket = terraform["resource"]
    assert bucket["aws_s3_bucket_public_access_block"]["artifacts"]["block_public_policy"] is True
    sse = bucket["aws_s3_bucket_server_side_encryption_configuration"]["artifacts"]["rule"][0]
    default = sse["apply_server_side_encryption_by_default"][0]
    assert default["kms_master_key_id"] == "${aws_kms_key.main.arn}"


def test_alarms_and_backups(terraform: dict[str, Any]) -> None:
    """The alarms the issue asks for, on the metrics /metrics really exports (the agent's
    selectors in bootstrap_api.sh), and point-in-time recovery on every table."""
    alarms = terraform["resource"]["aws_cloudwatch_metric_alarm"]
    assert {"under_replicated", "node_disk", "api_5xx", "api_ready", "metadata_down"} <= set(alarms)
    metrics_src = (REPO / "dfs" / "metrics.py").read_text()
    agent = (SCRIPTS / "bootstrap_api.sh").read_text()
    for alarm in alarms.values():
        name = alarm.get("metric_name", "")
        if name.startswith("dfs_"):
            assert f'"{name}"' in metrics_src, name  # a series the API exports
            assert f'"^{name}$"' in agent, name  # and the agent sends
    gateway = {"s3_5xx", "s3_ready", "s3_latency"}
    assert gateway <= set(alarms)
    s3_target = {
        "LoadBalancer": "${aws_lb.main.arn_suffix}",
        "TargetGroup": "${aws_lb_target_group.s3.arn_suffix}",
    }
    assert alarms["s3_ready"]["dimensions"] == s3_target
    assert alarms["s3_ready"]["threshold"] == "${var.s3_count}"
    assert alarms["s3_latency"]["extended_statistic"] == "p99"
    assert alarms["s3_latency"]["dimensions"] == s3_target
    queries = alarms["s3_5xx"]["dynamic"][0]["metric_query"]["for_each"]
    assert queries == {"target": "HTTPCode_Target_5XX_Count", "requests": "RequestCount"}
    for name in gateway:
        assert alarms[name]["alarm_actions"] == "${local.alarm_actions}"
    table = terraform["resource"]["aws_dynamodb_table"]["main"]
    assert table["point_in_time_recovery"][0]["enabled"] is True


def test_user_data_files_exist() -> None:
    compute = (TERRAFORM / "compute.tf").read_text() + (TERRAFORM / "gateway.tf").read_text()
    for rel in re.findall(r'file\("\$\{local\.repo\}/([^"]+)"\)', compute):
        assert (REPO / rel).is_file(), rel
    template = (TERRAFORM / "templates" / "user_data.sh.tftpl").read_text()
    # the library every bootstrap script sources is written beside it, for every role
    assert "cat >/opt/dfs/bootstrap/bootstrap_lib.sh <<'DFS_LIB_EOF'\n${lib}\n" in template
    assert compute.count('lib    = file("${local.repo}/scripts/bootstrap_lib.sh")') == 3


@pytest.mark.slow
def test_checkov_passes_with_every_skip_explained(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = checkov_report["results"]["failed_checks"]
    assert summary["failed"] == 0, [(c["check_id"], c["resource"]) for c in failed]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100  # it really scanned the resources
    skipped = checkov_report["results"]["skipped_checks"]
    for check in skipped:
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason) > 20, check["check_id"]
    in_code = set(
        re.findall(
            r"#checkov:skip=(CKV\w+):",
            "".join(p.read_text() for p in sorted(TERRAFORM.glob("*.tf"))),
        )
    )
    assert in_code == {c["check_id"] for c in skipped}  # no stale skips


def test_the_cloudwatch_agent_may_send_only_the_deployments_metrics(
    terraform: dict[str, Any],
) -> None:
    """The agent the bootstrap scripts start (amazon-cloudwatch-agent-ctl) sends metrics under
    the deployment's namespace and embedded-metric logs to the metrics log group: each role
    grants exactly that."""
    settings = (TERRAFORM / "compute.tf").read_text()
    assert "DFS_METRICS_NAMESPACE = var.name" in settings
    assert "DFS_METRICS_GROUP     = aws_cloudwatch_log_group.metrics.name" in settings
    started = '"${ROOT}${agent_ctl}" -a fetch-config'
    assert started in (SCRIPTS / "bootstrap_lib.sh").read_text()
    for role, starts in (
        ("api", "agent_scrape"),
        ("node", "agent_configure"),
        ("s3", "agent_scrape"),
    ):
        assert starts in (SCRIPTS / f"bootstrap_{role}.sh").read_text()
        stmts = terraform["data"]["aws_iam_policy_document"][role]["statement"]
        by_sid = {s.get("sid"): s for s in stmts}
        metrics = by_sid["AgentMetrics"]
        assert metrics["actions"] == ["cloudwatch:PutMetricData"]
        assert metrics["condition"][0]["values"] == ["${var.name}"]
        logs = by_sid["AgentMetricLogs"]
        assert logs["resources"] == ["${aws_cloudwatch_log_group.metrics.arn}:*"]
        assert set(logs["actions"]) == {
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "logs:DescribeLogStreams",
        }


@pytest.mark.parametrize("role", ["api", "node", "s3"])
def test_user_data_fits_ec2s_limit(role: str) -> None:
    """EC2 refuses user data over 16 KiB: the template carries the whole bootstrap script, its
    library and unit, plus a few hundred bytes of settings."""
    template = (TERRAFORM / "templates" / "user_data.sh.tftpl").read_text()
    script = (SCRIPTS / f"bootstrap_{role}.sh").read_text()
    script += (SCRIPTS / "bootstrap_lib.sh").read_text()  # written beside it
    unit = (REPO / "infra" / "systemd" / f"dfs-{role}.service").read_text()
    settings_room = 1024
    assert len((template + script + unit).encode()) + settings_room < 16 * 1024
