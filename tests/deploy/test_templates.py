"""The deployment files do what the design and the guide say, and pass their linters.

Checks are of behaviour rather than retyped constants: every probe hits the route the server
answers for liveness on the port it listens on; the task leaves room above the process's
memory budget; the guide's scale table and alarm runbooks are what the templates deploy; no
role grants more than its job (with a negative control) and no bucket is public (likewise);
make, CI and the image install the pinned versions, and a weekly workflow tries the newest.

cfn-lint (every CloudFormation template), hadolint (Dockerfile) and actionlint
(workflows) run as subprocesses; a missing tool skips its test, or fails it when
FORESTGUARD_REQUIRE_SERVICES=1 (CI). Each linter is also fed a known-bad file, so a
linter that silently checks nothing cannot pass.

The design numbers are read from the templates as CloudFormation would deploy them: the
root stack is evaluated for a tier (Refs to parameters, FindInMap, If and conditions), its
parameters flow into the nested stacks, and nested-stack outputs flow back through
GetAtt. What stays unresolved (resource Refs, GetAtt on resources) is kept as a token.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
ROOT_TEMPLATE = DEPLOY / "root.yaml"
SECONDARY_TEMPLATE = DEPLOY / "secondary.yaml"
TEMPLATES = sorted(DEPLOY.rglob("*.yaml"))
DOCKERFILE = REPO_ROOT / "Dockerfile"
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
OPERATIONS_GUIDE = REPO_ROOT / "docs" / "operations.md"

# Variables the deployment sets that ForestGuard does not read itself (so they are not in
# forestguard.config.VARIABLES): Panel's cookie secret and the AWS SDK's own variables.
THIRD_PARTY_VARIABLES = {
    "PANEL_COOKIE_SECRET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
}

# Values for the root parameters that have no default (shapes as the real ones).
ROOT_PARAMETERS = {
    "ImageRepositoryUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/forestguard",
    "ImageTag": "0123456789abcdef",
    "PublicDomainName": "forestguard.example.org",
    "OriginDomainName": "origin.forestguard.example.org",
    "AlbCertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/alb",
    "CloudFrontCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/cdn",
    "WebAclArn": "arn:aws:wafv2:us-east-1:123456789012:global/webacl/fg/1",
    "CloudFrontPrefixListId": "pl-4fa04526",
}


# --------------------------------------------------------------------------- tools


def find_tool(name: str) -> str:
    """The linter next to this Python (the project venv), else on PATH; else skip/fail."""
    for folder in (Path(sys.executable).parent, REPO_ROOT / ".venv" / "bin"):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed (pip install it into the project venv; see the dev extra)"
    if os.environ.get("FORESTGUARD_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def run_tool(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


@functools.cache
def cfn_lint_findings(*paths: str) -> tuple[dict, ...]:
    """One cfn-lint run over the given templates (JSON findings), cached per path set."""
    result = run_tool([find_tool("cfn-lint"), "--format", "json", "--regions", "us-east-1", "eu-west-1", "--", *paths])
    try:
        findings = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        pytest.fail(f"cfn-lint did not print JSON (exit {result.returncode}): {result.stdout}{result.stderr}")
    if result.returncode not in (0, 2, 4, 6, 8, 10, 12, 14):
        pytest.fail(f"cfn-lint crashed (exit {result.returncode}): {result.stderr}")
    return tuple(findings)


def errors_in(findings, path: Path) -> list[str]:
    return [
        f"{f['Rule']['Id']} {f['Location']['Start']['LineNumber']}: {f['Message']}"
        for f in findings
        if Path(f["Filename"]).resolve() == path.resolve() and f["Level"] == "Error"
    ]


# ----------------------------------------------------------------- template model


class _CfnLoader(yaml.SafeLoader):
    """PyYAML loader that turns CloudFormation short tags into their long forms."""


def _short_form(tag: str):
    key = "Ref" if tag == "Ref" else ("Condition" if tag == "Condition" else f"Fn::{tag}")

    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {key: value}

    return construct


for _tag in (
    "Ref Sub GetAtt Join Select Split If Equals Not And Or FindInMap GetAZs Cidr "
    "ImportValue Base64 Condition Transform Length ToJsonString"
).split():
    _CfnLoader.add_constructor(f"!{_tag}", _short_form(_tag))


def load_template(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


_NO_VALUE = object()


def _text(value: Any) -> str:
    """A parameter or mapping value as CloudFormation compares it (always a string)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _is_token(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith(("Ref", "Fn::"))


class Stack:
    """One template evaluated with concrete parameter values."""

    def __init__(self, path: Path, parameters: dict, environment: Environment | None = None):
        self.path = path
        self.template = load_template(path)
        self.environment = environment
        declared = self.template.get("Parameters", {})
        unknown = set(parameters) - set(declared)
        assert not unknown, f"{path.name}: parameters not declared: {unknown}"
        self.params: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in parameters:
                self.params[name] = parameters[name]
            elif "Default" in spec:
                self.params[name] = spec["Default"]
            else:
                raise AssertionError(f"{path.name}: parameter {name} has no value and no default")

    # -- evaluation
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Ref":
                if arg == "AWS::NoValue":
                    return _NO_VALUE
                if arg in self.params:
                    return self.params[arg]
                return value
            if key == "Fn::FindInMap":
                mapping, first, second = (self.resolve(a) for a in arg)
                return self.template["Mappings"][mapping][_text(first)][_text(second)]  # keys are strings
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
                return self._boolean(value)
            if key == "Fn::GetAtt" and self.environment is not None:
                resource, attribute = arg
                if attribute.startswith("Outputs.") and resource in self.environment.nested_names:
                    return self.environment.output(resource, attribute.removeprefix("Outputs."))
            if key == "Fn::Join":
                separator, items = arg[0], self.resolve(arg[1])
                if isinstance(items, list) and not any(isinstance(i, dict) for i in items):
                    return separator.join(str(i) for i in items)
                return {key: [separator, items]}
            if key == "Fn::Split":
                separator, text = arg[0], self.resolve(arg[1])
                return text.split(separator) if isinstance(text, str) else {key: [separator, text]}
            if key == "Fn::Select":
                index, items = self.resolve(arg[0]), self.resolve(arg[1])
                if isinstance(items, list):
                    return items[int(index)]
                return {key: [index, items]}
            if key.startswith("Fn::"):
                return {key: self.resolve(arg)}
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _boolean(self, expression: Any) -> bool:
        key, arg = next(iter(expression.items()))
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Not":
            return not self._boolean(arg[0])
        if key == "Fn::And":
            return all(self._boolean(a) for a in arg)
        if key == "Fn::Or":
            return any(self._boolean(a) for a in arg)
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            if _is_token(left) or _is_token(right):
                # A resource reference is a real, non-empty identifier.
                return left == right
            return _text(left) == _text(right)
        raise AssertionError(f"{self.path.name}: cannot evaluate condition {expression}")

    def condition(self, name: str) -> bool:
        return self._boolean(self.template["Conditions"][name])

    # -- queries
    def exists(self, logical_id: str) -> bool:
        resource = self.template["Resources"].get(logical_id)
        return resource is not None and ("Condition" not in resource or self.condition(resource["Condition"]))

    def resource(self, logical_id: str) -> dict:
        assert self.exists(logical_id), f"{self.path.name}: {logical_id} is not created"
        return self.resolve(self.template["Resources"][logical_id].get("Properties", {}))

    def resources(self, resource_type: str) -> dict[str, dict]:
        return {
            name: self.resource(name)
            for name, r in self.template["Resources"].items()
            if r["Type"] == resource_type and self.exists(name)
        }

    def output(self, name: str) -> Any:
        return self.resolve(self.template["Outputs"][name]["Value"])


class Environment:
    """A top-level stack (root.yaml, or secondary.yaml) for one tier, its nested stacks built on demand."""

    def __init__(self, tier: str, template: Path = ROOT_TEMPLATE, parameters: dict | None = None, **overrides: Any):
        given = ROOT_PARAMETERS if parameters is None else parameters
        self.root = Stack(template, {"Tier": tier, **given, **overrides}, self)
        self.nested_names = {
            name for name, r in self.root.template["Resources"].items() if r["Type"] == "AWS::CloudFormation::Stack"
        }
        self._stacks: dict[str, Stack] = {}

    def stack(self, name: str) -> Stack:
        if name not in self._stacks:
            properties = self.root.template["Resources"][name]["Properties"]
            path = (self.root.path.parent / properties["TemplateURL"]).resolve()
            parameters = self.root.resolve(properties.get("Parameters", {}))
            self._stacks[name] = Stack(path, parameters, self)
        return self._stacks[name]

    def output(self, stack_name: str, output: str) -> Any:
        return self.stack(stack_name).output(output)


@functools.cache
def environment(tier: str = "production", **overrides) -> Environment:
    return Environment(tier, **overrides)


def key_values(items: list[dict], key: str = "Key", value: str = "Value") -> dict:
    return {i[key]: i[value] for i in items}


def refers_to(value: Any, logical_id: str) -> bool:
    """True when a resolved value is a Ref/GetAtt to the given resource."""
    return value in ({"Ref": logical_id}, {"Fn::GetAtt": [logical_id, "Arn"]}) or (
        isinstance(value, dict) and value.get("Fn::GetAtt", [None])[0] == logical_id
    )


# ------------------------------------------------------------------------ linters


@pytest.mark.parametrize("top", [ROOT_TEMPLATE, SECONDARY_TEMPLATE], ids=lambda p: p.name)
def test_every_nested_template_exists_and_every_template_is_linted(top):
    root = load_template(top)
    nested = {
        (top.parent / r["Properties"]["TemplateURL"]).resolve()
        for r in root["Resources"].values()
        if r["Type"] == "AWS::CloudFormation::Stack"
    }
    assert nested, f"{top.name} has no nested stacks"
    missing = [p for p in nested if not p.is_file()]
    assert not missing, f"nested templates missing: {missing}"
    assert nested <= {p.resolve() for p in TEMPLATES}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_cfn_lint_reports_no_error(template):
    findings = cfn_lint_findings(*(str(p) for p in TEMPLATES))
    assert errors_in(findings, template) == []


def test_cfn_lint_catches_a_broken_template(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n    Properties:\n      VersioningConfiguration:\n"
        "        Status: Sometimes\n"
    )
    assert errors_in(cfn_lint_findings(str(broken)), broken), "cfn-lint accepted an invalid template"


def test_hadolint_passes_the_dockerfile():
    result = run_tool([find_tool("hadolint"), "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    result = run_tool([find_tool("hadolint"), "--no-color", str(bad)])
    assert result.returncode != 0 and "DL3007" in result.stdout, result.stdout + result.stderr


def test_actionlint_passes_the_workflows():
    assert WORKFLOWS, "no workflow in .github/workflows"
    result = run_tool([find_tool("actionlint"), "-no-color", *map(str, WORKFLOWS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_bad_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.no_such_thing }}\n"
    )
    result = run_tool([find_tool("actionlint"), "-no-color", str(bad)])
    assert result.returncode != 0, "actionlint accepted an invalid workflow"


# ------------------------------------------------------------- load balancer, ECS


def _liveness_path() -> str:
    """The route the server answers for liveness (it touches no dependency), from the server's own route table."""
    from forestguard.server.routes import ROUTES, HealthHandler

    (path,) = [pattern for pattern, handler, _ in ROUTES if handler is HealthHandler]
    return path


def _container_command_option(command: list[str], option: str) -> str:
    return command[command.index(option) + 1]


def test_every_probe_checks_the_apps_liveness_route_on_the_port_it_serves():
    """Load balancer, ECS and the image's HEALTHCHECK probe what `forestguard serve` answers, where it listens.

    Probing /readyz instead would take every task out when the database blinks; another port, none in.
    """
    service = environment().stack("ServiceStack")
    tg = service.resource("TargetGroup")
    (container,) = service.resource("TaskDefinition")["ContainerDefinitions"]
    command = container["Command"]
    assert command[:2] == ["forestguard", "serve"] and _container_command_option(command, "--address") == "0.0.0.0"
    port = int(_container_command_option(command, "--port"))
    assert [int(p["ContainerPort"]) for p in container["PortMappings"]] == [port]
    assert (tg["Protocol"], int(tg["Port"]), tg["TargetType"]) == ("HTTP", port, "ip")
    assert int(service.resource("Service")["LoadBalancers"][0]["ContainerPort"]) == port
    assert [args for op, args in dockerfile_instructions() if op == "EXPOSE"] == [str(port)]
    liveness = _liveness_path()
    assert tg["HealthCheckPath"] == liveness
    assert f"127.0.0.1:{port}{liveness}" in " ".join(container["HealthCheck"]["Command"])
    (health,) = [args for op, args in dockerfile_instructions() if op == "HEALTHCHECK"]
    assert f"127.0.0.1:{port}{liveness}" in health
    assert int(tg["HealthCheckTimeoutSeconds"]) < int(tg["HealthCheckIntervalSeconds"])


def test_sessions_stick_to_one_task():
    """A dashboard session lives in one process (its websocket and state): the balancer keeps a browser on its task."""
    attributes = key_values(environment().stack("ServiceStack").resource("TargetGroup")["TargetGroupAttributes"])
    assert attributes["stickiness.enabled"] == "true" and attributes["stickiness.type"] == "lb_cookie"
    assert int(attributes["stickiness.lb_cookie.duration_seconds"]) > 0


def test_listeners_https_and_http_redirect():
    listeners = environment().stack("ServiceStack").resources("AWS::ElasticLoadBalancingV2::Listener")
    by_port = {int(listener["Port"]): listener for listener in listeners.values()}
    assert set(by_port) == {80, 443}
    https = by_port[443]
    assert https["Protocol"] == "HTTPS" and https["Certificates"]
    assert https["DefaultActions"][0]["Type"] == "forward"
    assert refers_to(https["DefaultActions"][0]["TargetGroupArn"], "TargetGroup")
    redirect = by_port[80]["DefaultActions"][0]
    assert redirect["Type"] == "redirect"
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS"
    assert str(redirect["RedirectConfig"]["Port"]) == "443"
    assert redirect["RedirectConfig"]["StatusCode"] == "HTTP_301"


@pytest.mark.parametrize("stack_name", ["ServiceStack", "PipelineStack"])
def test_the_task_has_room_for_the_process_memory_budget(stack_name):
    """FORESTGUARD_MEMORY_MB (the task's, else the default) sizes a process's caches and map layer: it must
    leave a fifth of the task's memory to Python, Arrow and the libraries, or the task is killed under load."""
    from forestguard.config import settings

    task = environment().stack(stack_name).resource("TaskDefinition")
    (container,) = task["ContainerDefinitions"]
    plain = {k: v for k, v in key_values(container.get("Environment", []), "Name", "Value").items() if isinstance(v, str)}
    budget = settings(plain).memory_mb
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert budget <= 0.8 * int(task["Memory"]), (budget, task["Memory"])


def _scale_table() -> dict[str, list[str]]:
    """docs/operations.md's Scale table: tier -> its cells."""
    rows = re.findall(r"^\| (mvp|production|scale)\b[^|]*\|(.*)\|\s*$", _section(OPERATIONS_GUIDE.read_text(), "Scale"), re.M)
    return {tier: [cell.strip() for cell in cells.split("|")] for tier, cells in rows}


@pytest.mark.parametrize("tier", ["mvp", "production", "scale"])
def test_the_scale_table_is_what_each_tier_deploys(tier):
    """The guide's sizes are read from the templates as deployed: change TierSizes and the table must follow."""
    env = environment(tier)
    tasks, postgres, replica, redis, _nat = _scale_table()[tier]
    service = env.stack("ServiceStack")
    target = service.resource("ScalableTarget")
    desired = int(service.resource("Service")["DesiredCount"])
    assert tasks == f"{desired} / {int(target['MinCapacity'])} / {int(target['MaxCapacity'])}"
    primary = env.stack("DatabaseStack").resource("Primary")
    assert postgres.startswith(primary["DBInstanceClass"] + ", ")
    assert ("Multi-AZ" in postgres) == (str(primary["MultiAZ"]).lower() == "true")
    assert f"{int(primary['AllocatedStorage'])} GB" in postgres
    assert (replica != "no") == env.stack("DatabaseStack").exists("ReadReplica")
    group = env.stack("CacheStack").resource("ReplicationGroup")
    assert redis.startswith(group["CacheNodeType"] + " × ")


def test_autoscaling_follows_cpu_and_memory_as_documented():
    stack = environment().stack("ServiceStack")
    policies = {
        p["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]["PredefinedMetricType"]: p[
            "TargetTrackingScalingPolicyConfiguration"
        ]
        for p in stack.resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    }
    assert set(policies) == {"ECSServiceAverageCPUUtilization", "ECSServiceAverageMemoryUtilization"}
    cpu, memory = policies["ECSServiceAverageCPUUtilization"], policies["ECSServiceAverageMemoryUtilization"]
    guide = _section(OPERATIONS_GUIDE.read_text(), "Scale")
    assert f"CPU at {float(cpu['TargetValue']):g} %" in guide and f"memory at\n  {float(memory['TargetValue']):g} %" in guide
    for config in policies.values():
        assert int(config["ScaleInCooldown"]) >= int(config["ScaleOutCooldown"]), "scale in no faster than out"
        assert f"adds tasks after {int(config['ScaleOutCooldown'])} s and removes them after {int(config['ScaleInCooldown'])} s" in guide


def test_image_deploys_can_keep_the_autoscaled_count():
    service = environment("production", PreserveDesiredCount="true").stack("ServiceStack").resource("Service")
    assert "DesiredCount" not in service


def test_deployment_circuit_breaker_rolls_back():
    service = environment().stack("ServiceStack").resource("Service")
    breaker = service["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
    assert breaker == {"Enable": True, "Rollback": True}
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    assert service["LoadBalancers"][0]["ContainerPort"] == 8501


@pytest.mark.parametrize("tier", ["mvp", "production", "scale"])
def test_every_tier_resolves_with_consistent_sizes(tier):
    env = environment(tier)
    target = env.stack("ServiceStack").resource("ScalableTarget")
    desired = int(env.stack("ServiceStack").resource("Service")["DesiredCount"])
    assert int(target["MinCapacity"]) <= desired <= int(target["MaxCapacity"])
    primary = env.stack("DatabaseStack").resource("Primary")
    assert primary["DBInstanceClass"].startswith("db.")
    assert env.stack("CacheStack").resource("ReplicationGroup")["CacheNodeType"].startswith("cache.")


def test_tiers_share_one_set_of_size_keys():
    mapping = load_template(ROOT_TEMPLATE)["Mappings"]["TierSizes"]
    assert set(mapping) == {"mvp", "production", "scale"}
    keys = {tier: set(sizes) for tier, sizes in mapping.items()}
    assert keys["mvp"] == keys["production"] == keys["scale"]


# ------------------------------------------------------------------------ database


def test_postgres_multi_az_backups_windows_encryption():
    db = environment().stack("DatabaseStack")
    primary = db.resource("Primary")
    assert primary["Engine"] == "postgres"
    assert str(primary["EngineVersion"]).split(".")[0] == "15"
    assert str(primary["MultiAZ"]) == "true"
    assert int(primary["BackupRetentionPeriod"]) >= 7  # point-in-time recovery a week back (docs: Backup and restore)
    backup = [int(t[:2]) * 60 + int(t[3:]) for t in primary["PreferredBackupWindow"].split("-")]
    maintenance = [int(t[-5:-3]) * 60 + int(t[-2:]) for t in primary["PreferredMaintenanceWindow"].split("-")]
    assert backup[1] <= maintenance[0] or maintenance[1] <= backup[0], "RDS refuses overlapping windows"
    assert primary["StorageEncrypted"] is True
    assert primary["KmsKeyId"] == environment().output("SecurityStack", "KmsKeyArn")
    assert primary["PubliclyAccessible"] is False
    assert primary["DeletionProtection"] is True


def test_postgres_requires_ssl():
    db = environment().stack("DatabaseStack")
    group = db.resource("ParameterGroup")
    assert group["Family"] == "postgres15"
    assert str(group["Parameters"]["rds.force_ssl"]) == "1"
    assert refers_to(db.resource("Primary")["DBParameterGroupName"], "ParameterGroup")
    assert refers_to(db.resource("ReadReplica")["DBParameterGroupName"], "ParameterGroup")
    for secret in ("DatabaseUrlSecret", "DatabaseReadUrlSecret"):
        template, _ = db.resource(secret)["SecretString"]["Fn::Sub"]
        assert template.startswith("postgresql://") and "sslmode=require" in template


def test_one_read_replica_of_the_primary():
    db = environment().stack("DatabaseStack")
    replicas = [r for r in db.resources("AWS::RDS::DBInstance").values() if "SourceDBInstanceIdentifier" in r]
    assert len(replicas) == 1
    assert refers_to(replicas[0]["SourceDBInstanceIdentifier"], "Primary")
    assert not environment("mvp").stack("DatabaseStack").exists("ReadReplica")


# --------------------------------------------------------------------------- redis


def test_redis_7_allkeys_lru_primary_and_replica():
    cache = environment().stack("CacheStack")
    group = cache.resource("ReplicationGroup")
    assert group["Engine"] == "redis"
    assert str(group["EngineVersion"]).split(".")[0] == "7"
    assert int(group["NumCacheClusters"]) == 2
    assert group["AutomaticFailoverEnabled"] is True
    assert group["TransitEncryptionEnabled"] is True and group["AtRestEncryptionEnabled"] is True
    parameters = cache.resource("ParameterGroup")
    assert parameters["CacheParameterGroupFamily"] == "redis7"
    assert parameters["Properties"]["maxmemory-policy"] == "allkeys-lru"
    assert refers_to(group["CacheParameterGroupName"], "ParameterGroup")


# ------------------------------------------------------------------------------ S3


def _blocks_all_public_access(bucket: dict) -> bool:
    block = bucket.get("PublicAccessBlockConfiguration", {})
    keys = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    return all(block.get(k) is True for k in keys)


def test_data_bucket_versioned_readable_in_place_encrypted_private():
    data = environment().stack("StorageStack").resource("DataBucket")
    assert data["VersioningConfiguration"]["Status"] == "Enabled"
    # Snapshots and reports are read in place (DuckDB, browsers): every class they move to must answer a GET
    # at once; GLACIER/DEEP_ARCHIVE would need a restore first. Nothing current expires.
    readable = {"STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"}
    for rule in data["LifecycleConfiguration"]["Rules"]:
        assert {t["StorageClass"] for t in rule.get("Transitions", []) + rule.get("NoncurrentVersionTransitions", [])} <= readable
        assert "ExpirationInDays" not in rule and "ExpirationDate" not in rule
    (encryption,) = data["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert _blocks_all_public_access(data)


def test_backups_bucket_versioned_expires_after_30_days_kms():
    env = environment()
    backups = env.stack("StorageStack").resource("BackupsBucket")
    assert backups["VersioningConfiguration"]["Status"] == "Enabled"
    expiring = [r for r in backups["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in r]
    assert [int(r["ExpirationInDays"]) for r in expiring] == [30]
    (encryption,) = backups["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == env.output("SecurityStack", "KmsKeyArn")
    assert _blocks_all_public_access(backups)


def public_grants(policy: dict) -> list[str]:
    """Statements of a bucket policy that let anyone in: an Allow to "*" (a CloudFront service principal is not anyone)."""
    found = []
    for statement in policy["Statement"]:
        principal = statement.get("Principal")
        anyone = principal == "*" or (isinstance(principal, dict) and "*" in _listed(principal.get("AWS", [])))
        if statement.get("Effect") == "Allow" and anyone:
            found.append(json.dumps(statement, sort_keys=True))
    return found


def test_the_public_bucket_check_catches_an_open_policy():
    """Negative control for the test below."""
    open_policy = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
                                 {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b"},
                                 {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}]}
    assert len(public_grants(open_policy)) == 2
    assert not _blocks_all_public_access({"PublicAccessBlockConfiguration": {"BlockPublicAcls": True}})


def test_no_bucket_is_public():
    """Every bucket blocks public access and no bucket policy allows anyone; the assets reach users through CloudFront."""
    stacks = _every_stack(environment())
    buckets = {f"{stack.path.name}:{name}": bucket for stack in stacks for name, bucket in stack.resources("AWS::S3::Bucket").items()}
    assert {"storage.yaml:DataBucket", "storage.yaml:BackupsBucket", "storage.yaml:AssetsBucket"} <= set(buckets)
    assert [name for name, bucket in buckets.items() if not _blocks_all_public_access(bucket)] == []
    policies = [policy["PolicyDocument"] for stack in stacks for policy in stack.resources("AWS::S3::BucketPolicy").values()]
    assert policies and [grant for policy in policies for grant in public_grants(policy)] == []


def test_assets_are_public_only_through_cloudfront():
    env = environment()
    assert _blocks_all_public_access(env.stack("StorageStack").resource("AssetsBucket"))
    policy = env.stack("CdnStack").resource("AssetsBucketPolicy")["PolicyDocument"]
    allows = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert [s["Principal"] for s in allows] == [{"Service": "cloudfront.amazonaws.com"}]
    assert "AWS:SourceArn" in allows[0]["Condition"]["StringEquals"]


# ---------------------------------------------------------------------------- alarms


def _alarm(name: str) -> dict:
    return environment().stack("MonitoringStack").resource(name)


def _window_seconds(alarm: dict) -> int:
    if "Period" in alarm:
        period = int(alarm["Period"])
    else:
        periods = {int(m["MetricStat"]["Period"]) for m in alarm["Metrics"] if "MetricStat" in m}
        assert len(periods) == 1, periods
        period = periods.pop()
    return period * int(alarm["EvaluationPeriods"])


def _runbook(name: str) -> str:
    match = re.search(rf"^### {name}\s*$(.*?)(?=^### |^## |\Z)", _section(OPERATIONS_GUIDE.read_text(), "Alarm runbooks"), re.M | re.S)
    assert match, f"no runbook for {name}"
    return " ".join(match.group(1).split())


@pytest.mark.parametrize(
    ("name", "metric", "unit"),
    [("ServiceCpuHigh", "CPUUtilization", "%"), ("ServiceMemoryHigh", "MemoryUtilization", "%"), ("LatencyHigh", "TargetResponseTime", "s")],
)
def test_each_alarm_fires_as_its_runbook_says(name, metric, unit):
    """The on-call reads the runbook, not the template: its threshold and window are the alarm's."""
    alarm = _alarm(name)
    assert alarm["MetricName"] == metric
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert int(alarm["DatapointsToAlarm"]) == int(alarm["EvaluationPeriods"])
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    text = _runbook(name)
    assert f"> {float(alarm['Threshold']):g} {unit} for {_window_seconds(alarm) // 60} minutes" in text, text[:200]


def test_latency_alarm_is_on_p95():
    assert _alarm("LatencyHigh")["ExtendedStatistic"] == "p95"


def test_5xx_rate_alarm():
    alarm = _alarm("Http5xxRateHigh")
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert f"More than {float(alarm['Threshold']):g} % of requests" in _runbook("Http5xxRateHigh")
    assert f"for {_window_seconds(alarm) // 60} minutes" in _runbook("Http5xxRateHigh")
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in metrics.values() if "MetricStat" in m}
    assert names == {"HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "RequestCount"}
    (expression,) = [m["Expression"] for m in metrics.values() if m.get("ReturnData")]
    assert "100 *" in expression and "/ requests" in expression
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


# ---------------------------------------------------------- network and IAM hygiene


def _ingress_rules(network: Stack) -> list[tuple[str, int, Any]]:
    """(group, port, source) for every ingress rule, inline or standalone."""
    rules = []
    for name, group in network.resources("AWS::EC2::SecurityGroup").items():
        for rule in group.get("SecurityGroupIngress", []):
            source = rule.get("SourceSecurityGroupId") or rule.get("SourcePrefixListId") or rule.get("CidrIp")
            rules.append((name, int(rule["FromPort"]), source))
    for rule in network.resources("AWS::EC2::SecurityGroupIngress").values():
        rules.append((rule["GroupId"]["Ref"], int(rule["FromPort"]), rule["SourceSecurityGroupId"]))
    return rules


def test_each_tier_is_open_only_to_the_tier_in_front():
    network = environment().stack("NetworkStack")
    prefix_list = ROOT_PARAMETERS["CloudFrontPrefixListId"]
    expected = [
        ("AlbHttpsSecurityGroup", 443, prefix_list),
        ("AlbHttpSecurityGroup", 80, prefix_list),
        ("AppSecurityGroup", 8501, {"Ref": "AlbHttpsSecurityGroup"}),
        ("DatabaseSecurityGroup", 5432, {"Ref": "AppSecurityGroup"}),
        ("DatabaseSecurityGroup", 5432, {"Ref": "PipelineSecurityGroup"}),
        ("CacheSecurityGroup", 6379, {"Ref": "AppSecurityGroup"}),
        ("CacheSecurityGroup", 6379, {"Ref": "PipelineSecurityGroup"}),
    ]

    def comparable(rules):
        return sorted((group, port, json.dumps(source, sort_keys=True)) for group, port, source in rules)

    assert comparable(_ingress_rules(network)) == comparable(expected)


def test_data_subnets_have_no_route_out():
    network = environment().stack("NetworkStack")
    routes = network.resources("AWS::EC2::Route").values()
    assert not [r for r in routes if refers_to(r["RouteTableId"], "DataRouteTable")]
    associations = network.resources("AWS::EC2::SubnetRouteTableAssociation").values()
    data = {a["SubnetId"]["Ref"] for a in associations if refers_to(a["RouteTableId"], "DataRouteTable")}
    assert data == {"DataSubnetA", "DataSubnetB"}


# Actions that only exist account-wide (no resource-level permissions).
_ACCOUNT_WIDE_ACTIONS = {
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
}
# AWS-managed policies a role may carry: the service roles ECS and RDS document, nothing broader.
_MANAGED_POLICIES = {"service-role/AmazonECSTaskExecutionRolePolicy", "service-role/AmazonRDSEnhancedMonitoringRole"}


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def privilege_problems(name: str, role: dict) -> list[str]:
    """What in a role grants more than its job: wildcards, every resource, broad managed policies, open trust."""
    problems = []
    for statement in role["AssumeRolePolicyDocument"]["Statement"]:
        principal = statement.get("Principal")
        if principal == "*" or not isinstance(principal, dict) or set(principal) != {"Service"}:
            problems.append(f"{name}: assumable by {principal!r}, not only by an AWS service")
    for arn in role.get("ManagedPolicyArns", []):
        text = arn.get("Fn::Sub", arn) if isinstance(arn, dict) else arn
        if str(text).split(":policy/")[-1] not in _MANAGED_POLICIES:
            problems.append(f"{name}: managed policy {text}")
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = _listed(statement.get("Action", []))
            if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
                problems.append(f"{name}: a statement that is not a plain Allow ({policy['PolicyName']})")
            problems += [f"{name}: wildcard action {a}" for a in actions if "*" in a]
            if "*" in _listed(statement.get("Resource")) and not set(actions) <= _ACCOUNT_WIDE_ACTIONS:
                problems.append(f"{name}: {sorted(actions)} on every resource")
    return problems


def _every_stack(env: Environment) -> list[Stack]:
    return [env.root, *(env.stack(n) for n in sorted(env.nested_names) if env.root.exists(n))]


def test_the_privilege_check_catches_broad_roles():
    """Negative control: each way a role can grant too much is reported."""
    broad = {
        "AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]},
        "ManagedPolicyArns": ["arn:aws:iam::aws:policy/AdministratorAccess"],
        "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"},
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"},
            {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"},
        ]}}],
    }
    problems = privilege_problems("Broad", broad)
    assert len(problems) == 5, problems


@pytest.mark.parametrize("tier", ["mvp", "production"])
def test_every_role_is_least_privilege(tier):
    roles = {f"{stack.path.name}:{name}": role for stack in _every_stack(environment(tier))
             for name, role in stack.resources("AWS::IAM::Role").items()}
    assert len(roles) >= 6
    assert [p for name, role in roles.items() for p in privilege_problems(name, role)] == []


def test_the_serving_task_reads_data_and_writes_nothing():
    """The dashboard and API only read snapshots and reports: a compromised task cannot change or delete data."""
    role = environment().stack("ServiceStack").resource("TaskRole")
    actions = {a for policy in role["Policies"] for st in policy["PolicyDocument"]["Statement"] for a in _listed(st["Action"])}
    assert {a for a in actions if a.startswith("s3:")} <= {"s3:GetObject", "s3:ListBucket"}
    assert not {a for a in actions if a.startswith(("iam:", "rds:", "elasticache:", "secretsmanager:Put", "kms:Encrypt"))}


def test_task_secrets_never_in_plain_environment():
    env = environment()
    for stack_name, logical_id in (("ServiceStack", "TaskDefinition"), ("PipelineStack", "TaskDefinition")):
        (container,) = env.stack(stack_name).resource(logical_id)["ContainerDefinitions"]
        plain = key_values(container.get("Environment", []), "Name", "Value")
        secret = {s["Name"] for s in container["Secrets"]}
        assert {"DATABASE_URL", "REDIS_URL"} <= secret
        assert "DATABASE_READ_URL" in secret and "SENTRY_DSN" not in secret  # replica yes, no DSN given
        assert not {"DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL", "SENTRY_DSN"} & set(plain)
        assert plain["S3_BUCKET"] == env.output("StorageStack", "DataBucketName")


def test_sentry_dsn_becomes_a_secret_when_given():
    env = environment("production", SentryDsn="https://key@sentry.example.org/1")
    (container,) = env.stack("ServiceStack").resource("TaskDefinition")["ContainerDefinitions"]
    assert "SENTRY_DSN" in {s["Name"] for s in container["Secrets"]}


# ------------------------------------------------------------------------ pipeline


def test_scheduled_pipelines_run_the_report_pipelines_on_fargate():
    pipeline = environment().stack("PipelineStack")
    (container,) = pipeline.resource("TaskDefinition")["ContainerDefinitions"]
    assert container["Command"] == ["forestguard", "pipeline", "run", "pipelines/yearly_reports.yaml"]
    rules = pipeline.resources("AWS::Events::Rule")
    assert len(rules) == 3
    commands = []
    for rule in rules.values():
        assert rule["ScheduleExpression"].startswith(("cron(", "rate("))
        (target,) = rule["Targets"]
        ecs = target["EcsParameters"]
        assert ecs["LaunchType"] == "FARGATE" and refers_to(ecs["TaskDefinitionArn"], "TaskDefinition")
        assert refers_to(target["RoleArn"], "EventsRole")
        overrides = json.loads(target["Input"])["containerOverrides"] if "Input" in target else []
        commands.append(overrides[0]["command"] if overrides else container["Command"])
    assert ["forestguard", "alerts", "deliver"] in commands  # alert deliveries retried on a schedule
    commands = [c for c in commands if c[:2] == ["forestguard", "pipeline"]]
    assert sorted(c[-1] for c in commands) == ["pipelines/annual_overview.yaml", "pipelines/yearly_reports.yaml"]
    for command in commands:
        relative = command[-1]
        # The image copies pipelines/ next to the package, so the path must be relative.
        assert not relative.startswith("/")


# ----------------------------------------------------------------------------- edge


def test_cloudfront_with_waf_in_front_of_the_alb():
    cdn = environment().stack("CdnStack")
    config = cdn.resource("Distribution")["DistributionConfig"]
    assert config["WebACLId"] == ROOT_PARAMETERS["WebAclArn"]
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    app_origin = next(o for o in config["Origins"] if o["Id"] == config["DefaultCacheBehavior"]["TargetOriginId"])
    assert app_origin["DomainName"] == ROOT_PARAMETERS["OriginDomainName"]
    assert app_origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    waf = load_template(DEPLOY / "edge-waf.yaml")["Resources"]["WebAcl"]["Properties"]
    assert waf["Scope"] == "CLOUDFRONT"


# ----------------------------------------------------------------------- Dockerfile


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        part = stripped.rstrip("\\").strip()
        current = f"{current} {part}" if current else part
        if not stripped.endswith("\\"):
            logical.append(current)
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in logical]


def test_dockerfile_base_user_port_healthcheck_command():
    instructions = dockerfile_instructions()
    (base,) = [args for op, args in instructions if op == "FROM"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base)
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert [args for op, args in instructions if op == "EXPOSE"] == ["8501"]
    (health,) = [args for op, args in instructions if op == "HEALTHCHECK"]
    assert "urllib.request" in health and "http://127.0.0.1:8501/healthz" in health
    assert "curl" not in health and "wget" not in health
    (cmd,) = [args for op, args in instructions if op == "CMD"]
    assert json.loads(cmd) == ["forestguard", "serve", "--address", "0.0.0.0", "--port", "8501"]


def test_dockerfile_installs_dependencies_before_copying_the_source():
    instructions = dockerfile_instructions()
    position = {}
    for index, (op, args) in enumerate(instructions):
        if op == "COPY" and args.startswith("pyproject.toml"):
            position.setdefault("pyproject", index)
        if op == "RUN" and "pip install" in args and "-r " in args:
            position.setdefault("dependencies", index)
        if op == "COPY" and args.startswith("forestguard/"):
            position.setdefault("source", index)
    assert position.keys() == {"pyproject", "dependencies", "source"}
    assert position["pyproject"] < position["dependencies"] < position["source"]


def test_dockerfile_bakes_in_no_secret():
    secretish = re.compile(r"(PASSWORD|SECRET|TOKEN|DSN|ACCESS_KEY|DATABASE_URL|REDIS_URL)", re.I)
    for op, args in dockerfile_instructions():
        if op in ("ENV", "ARG"):
            assert not secretish.search(args), f"{op} {args}"
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env"} <= set(ignored)


# ------------------------------------------------------------------ docker compose


def test_compose_runs_the_full_local_stack():
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    assert services["postgis"]["image"] == "postgis/postgis:15-3.3"
    assert services["redis"]["image"] == "redis:7"
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--maxmemory-policy") + 1] == "allkeys-lru"
    assert "moto" in services["s3"]["image"] or "minio" in services["s3"]["image"]
    assert "8501:8501" in services["app"]["ports"]
    assert "/healthz" in " ".join(services["app"]["healthcheck"]["test"])
    assert services["reports"]["command"][:3] == ["forestguard", "pipeline", "run"]
    for name in ("postgis", "redis", "s3", "app"):
        assert "healthcheck" in services[name], name
    for name in ("app", "reports"):
        environment_vars = services[name]["environment"]
        assert environment_vars["DATABASE_URL"].startswith("postgresql://")
        assert environment_vars["REDIS_URL"].startswith("redis://redis:")
        assert environment_vars["AWS_ENDPOINT_URL"].startswith("http://s3:")


# ------------------------------------------------------------------------ workflows


def _workflow(name: str) -> dict:
    data = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def _run_lines(workflow: dict) -> str:
    return "\n".join(
        str(step.get("run", "")) + " " + str(step.get("uses", ""))
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
    )


def test_ci_workflow_runs_make_test():
    workflow = _workflow("ci.yml")
    runs = [str(step.get("run", "")).strip() for job in workflow["jobs"].values() for step in job["steps"]]
    assert "make test" in runs
    assert "pull_request" in workflow["on"]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def test_this_environment_is_the_pinned_one():
    """make, CI and the image install through constraints.txt: every package the project names is pinned
    there, and what is installed runs at the pinned version.

    Fails when a dependency was added without `make constraints`, or the venv predates the file (make reinstalls it).
    """
    from importlib.metadata import distributions, requires

    pins = _constraints()
    installed = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version for d in distributions()}
    assert {n: (v, pins[n]) for n, v in installed.items() if n in pins and pins[n] != v} == {}
    named = {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", r).group(0)).lower() for r in requires("forestguard") or []}
    assert named - {"forestguard"} - set(pins) == set(), "named in pyproject.toml but not pinned"
    for name in ("bokeh", "panel", "holoviews", "geoviews", "datashader", "param", "pyviz-comms", "numba", "llvmlite", "tornado", "duckdb"):
        assert name in pins, f"{name} is not pinned"


def test_ci_and_the_image_use_the_pins_and_the_weekly_run_does_not():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^CONSTRAINTS \?= constraints\.txt$", makefile, re.M)
    assert "-c $(CONSTRAINTS)" in makefile
    ci = [str(step.get("run", "")) for job in _workflow("ci.yml")["jobs"].values() for step in job["steps"]]
    assert "make test" in ci and not any("CONSTRAINTS" in run for run in ci)
    assert any(op == "RUN" and "-c constraints.txt" in args for op, args in dockerfile_instructions())
    latest = _workflow("latest.yml")
    assert "schedule" in latest["on"]
    runs = " ".join(str(step.get("run", "")) for job in latest["jobs"].values() for step in job["steps"])
    assert "make test CONSTRAINTS= " in runs and "tests/server" in runs and "tests/lab" in runs


def test_deploy_workflow_builds_deploys_smoke_checks_and_rolls_back():
    workflow = _workflow("deploy.yml")
    assert workflow["permissions"]["id-token"] == "write"
    text = _run_lines(workflow)
    for needle in (
        "amazon-ecr-login",
        "docker/build-push-action",
        "aws cloudformation package",
        "aws cloudformation deploy",
        "aws ecs wait services-stable",
        "/healthz",
        "/readyz",
    ):
        assert needle in text, needle
    rollback = [s for s in workflow["jobs"]["deploy"]["steps"] if "failure()" in str(s.get("if", ""))]
    assert rollback and "aws cloudformation deploy" in rollback[0]["run"]


# -------------------------------------------------------------- operations guide


def _section(markdown: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"docs/operations.md has no '## {heading}' section"
    return match.group(1)


def _config_variables() -> dict[str, str]:
    try:
        from forestguard.config import VARIABLES
    except ImportError:  # running from a checkout without the package installed
        sys.path.insert(0, str(REPO_ROOT))
        from forestguard.config import VARIABLES
    return VARIABLES


def test_configuration_reference_lists_exactly_the_config_variables():
    section = _section(OPERATIONS_GUIDE.read_text(), "Configuration reference")
    rows = re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|(.*)\|\s*$", section, re.M)
    documented = [name for name, _ in rows]
    assert len(documented) == len(set(documented)), "a variable is listed twice"
    assert set(documented) == set(_config_variables())
    assert all(text.strip(" |") for _, text in rows), "a variable has no description"


def test_every_variable_the_deployment_sets_is_known_and_documented():
    known = set(_config_variables()) | THIRD_PARTY_VARIABLES
    guide = OPERATIONS_GUIDE.read_text()
    env = environment("production", SentryDsn="https://key@sentry.example.org/1")
    names = set()
    for stack_name in ("ServiceStack", "PipelineStack"):
        for container in env.stack(stack_name).resource("TaskDefinition")["ContainerDefinitions"]:
            names |= {e["Name"] for e in container.get("Environment", []) + container.get("Secrets", [])}
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    names |= set(compose["app"]["environment"])
    assert names - known == set()
    assert [n for n in names if f"`{n}`" not in guide] == []


def _alarm_templates() -> list[Path]:
    return [p for p in TEMPLATES if any(r["Type"] == "AWS::CloudWatch::Alarm" for r in load_template(p).get("Resources", {}).values())]


@pytest.mark.parametrize("template", _alarm_templates(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_alarm_has_a_runbook(template):
    """Alarms anywhere (the monitoring stack, the secondary region's replica), and monitoring's event rules."""
    guide = OPERATIONS_GUIDE.read_text()
    runbooks = set(re.findall(r"^### (\w+)\s*$", _section(guide, "Alarm runbooks"), re.M))
    monitoring = load_template(template)["Resources"]
    kinds = ("AWS::CloudWatch::Alarm", "AWS::Events::Rule") if template.name == "monitoring.yaml" else ("AWS::CloudWatch::Alarm",)
    alarms = {name for name, r in monitoring.items() if r["Type"] in kinds}
    assert alarms and alarms <= runbooks
    for name in alarms:
        description = (
            monitoring[name]["Properties"].get("AlarmDescription") or monitoring[name]["Properties"]["Description"]
        )
        assert f"docs/operations.md#{name.lower()}" in description


def test_metric_mapping_covers_every_alarm_metric():
    mapping = _section(OPERATIONS_GUIDE.read_text(), "Metrics: CloudWatch, Datadog, Prometheus")
    monitoring = load_template(DEPLOY / "stacks" / "monitoring.yaml")["Resources"]
    metrics = set()
    for resource in monitoring.values():
        properties = resource.get("Properties", {})
        if "MetricName" in properties:
            metrics.add(properties["MetricName"])
        for metric in properties.get("Metrics", []):
            if "MetricStat" in metric:
                metrics.add(metric["MetricStat"]["Metric"]["MetricName"])
    assert metrics
    assert [m for m in metrics if f"`{m}`" not in mapping] == []
    # Application metric names in the guide are the ones the package defines.
    documented = set(re.findall(r"`(forestguard_[a-z0-9_]+)`", mapping))
    source = "\n".join(p.read_text() for p in (REPO_ROOT / "forestguard").rglob("*.py"))
    defined = set(re.findall(r"[\"'](forestguard_[a-z0-9_]+)[\"']", source))
    assert documented and documented - defined == set()


def test_deploy_readme_names_every_template():
    readme = (DEPLOY / "README.md").read_text()
    missing = [str(p.relative_to(DEPLOY)) for p in TEMPLATES if str(p.relative_to(DEPLOY)) not in readme]
    assert missing == []


# ------------------------------------------------------------------------ dask (optional)


def test_the_dask_cluster_is_optional_and_off_by_default():
    assert not environment().root.exists("DaskStack")
    assert environment("production", DaskWorkers=4).root.exists("DaskStack")


def test_dask_scheduler_and_workers_on_fargate_found_by_name():
    env = environment("production", DaskWorkers=4)
    dask = env.stack("DaskStack")
    address = dask.output("SchedulerAddress")
    assert env.root.output("DaskSchedulerAddress") == address == {"Fn::Sub": "tcp://dask-scheduler.${NamespaceName}:8786"}
    workers, scheduler = dask.resource("WorkerService"), dask.resource("SchedulerService")
    assert workers["DesiredCount"] == 4 and scheduler["DesiredCount"] == 1
    assert refers_to(scheduler["ServiceRegistries"][0]["RegistryArn"], "SchedulerDiscovery")
    assert dask.resource("SchedulerDiscovery")["Name"] == "dask-scheduler"
    assert workers["Cluster"] == scheduler["Cluster"] == env.output("ServiceStack", "ClusterArn")
    (worker,) = dask.resource("WorkerTaskDefinition")["ContainerDefinitions"]
    assert worker["Command"][:3] == ["dask", "worker", address] and "--no-dashboard" in worker["Command"]
    assert worker["Command"][worker["Command"].index("--worker-port") + 1] == "8788"
    plain = key_values(worker["Environment"], "Name", "Value")
    assert plain["S3_BUCKET"] == env.output("StorageStack", "DataBucketName") and "FORESTGUARD_DATA_DIR" in plain
    (container,) = dask.resource("SchedulerTaskDefinition")["ContainerDefinitions"]
    assert container["Command"][:4] == ["dask", "scheduler", "--port", "8786"]


def test_dask_workers_may_only_read_snapshots():
    dask = environment("production", DaskWorkers=4).stack("DaskStack")
    (policy,) = dask.resource("WorkerTaskRole")["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"s3:GetObject", "s3:ListBucket", "kms:Decrypt"}  # nothing written, nothing deleted
    data_bucket = environment("production", DaskWorkers=4).output("StorageStack", "DataBucketArn")
    (get,) = [s for s in statements if s["Action"] == "s3:GetObject"]
    assert get["Resource"] == {"Fn::Sub": "${DataBucketArn}/snapshots/*"} and dask.params["DataBucketArn"] == data_bucket
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "snapshots/*"}}
    assert "Policies" not in dask.resource("SchedulerTaskRole")  # the scheduler reads nothing


def test_only_pipelines_and_the_cluster_reach_the_scheduler():
    env = environment("production", DaskWorkers=4)
    dask = env.stack("DaskStack")
    pipeline_sg = env.output("NetworkStack", "PipelineSecurityGroupId")
    ingress = [(r["FromPort"], r["ToPort"], r["SourceSecurityGroupId"]) for r in dask.resources("AWS::EC2::SecurityGroupIngress").values()]
    assert sorted(ingress, key=str) == sorted([(8786, 8788, {"Ref": "DaskSecurityGroup"}), (8786, 8786, pipeline_sg)], key=str)
    group = dask.resource("DaskSecurityGroup")
    assert "SecurityGroupIngress" not in group and [e["FromPort"] for e in group["SecurityGroupEgress"]] == [443]
