"""The second region: the standby stack, and what the primary's stacks do once they know it.

The templates are evaluated as CloudFormation would deploy them (``test_templates.Environment``):
these tests follow the wiring (which secret a task gets, which instance it names, which
bucket an object is copied to, which load balancer a health check probes) rather than
restating numbers. cfn-lint over every template, and its negative control, are in
``test_templates.py``.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest

from tests.deploy.test_templates import (
    DEPLOY,
    ROOT_PARAMETERS,
    SECONDARY_TEMPLATE,
    Environment,
    Stack,
    environment,
    _blocks_all_public_access,
    _every_stack,
    key_values,
    privilege_problems,
    public_grants,
    refers_to,
)

PRIMARY, SECONDARY = "us-east-1", "eu-west-1"
TIERS = ("mvp", "production", "scale")
PRIMARY_DB = "arn:aws:rds:us-east-1:123456789012:db:forestguard-primary"
PRIMARY_MASTER_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:DatabaseMasterSecret-AbC123"
SECONDARY_PARAMETERS = {
    "ImageRepositoryUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/forestguard",
    "ImageTag": "0123456789abcdef",
    "PrimaryRegion": PRIMARY,
    "PrimaryDbInstanceArn": PRIMARY_DB,
    "PrimaryDatabaseMasterSecretArn": PRIMARY_MASTER_SECRET,
    "PublicDomainName": "forestguard.example.org",
    "AlbCertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/alb",
    "CloudFrontPrefixListId": "pl-4fa04526",
}
# What the secondary stack outputs, as the primary receives them.
REPLICA_DATA = "arn:aws:s3:::forestguard-secondary-data"
REPLICA_BACKUPS = "arn:aws:s3:::forestguard-secondary-backups"
REPLICA_KEY = "arn:aws:kms:eu-west-1:123456789012:key/0000-replica"
SECONDARY_LB = "fg-secondary-123.eu-west-1.elb.amazonaws.com"
TWO_REGIONS = {
    "SecondaryRegion": SECONDARY,
    "ReplicaDataBucketArn": REPLICA_DATA,
    "ReplicaBackupsBucketArn": REPLICA_BACKUPS,
    "ReplicaKmsKeyArn": REPLICA_KEY,
    "SecondaryLoadBalancerDnsName": SECONDARY_LB,
    "SecondaryLoadBalancerHostedZoneId": "Z32O12XQLNTSW2",
    "HostedZoneId": "Z0123456789",
}


@functools.cache
def secondary(tier: str = "production") -> Environment:
    return Environment(tier, SECONDARY_TEMPLATE, SECONDARY_PARAMETERS)


def nested(env: Environment) -> list[str]:
    return sorted(env.nested_names)


# ------------------------------------------------------------------ the standby's wiring


@pytest.mark.parametrize("tier", TIERS)
def test_every_nested_stack_of_the_standby_gets_exactly_its_parameters(tier):
    env = secondary(tier)
    for name in nested(env):
        env.stack(name)  # raises on a parameter passed but not declared, or declared without value or default
    assert {"ReplicaDatabaseStack", "ServiceStack", "StorageStack"} <= set(env.nested_names)
    assert "DatabaseStack" not in env.nested_names and "PipelineStack" not in env.nested_names, "no writer there"


def test_the_standby_service_reads_the_cross_region_replica_and_nothing_else():
    env = secondary()
    service = env.stack("ServiceStack")
    secrets = key_values(service.resource("TaskDefinition")["ContainerDefinitions"][0]["Secrets"], "Name", "ValueFrom")
    assert "DATABASE_READ_URL" not in secrets, "the replica is the only database: no second read URL"
    url_secret = env.stack("ReplicaDatabaseStack").resource("DatabaseUrlSecret")
    assert refers_to(secrets["DATABASE_URL"], "DatabaseUrlSecret")
    host = url_secret["SecretString"]["Fn::Sub"][1]["Host"]
    assert refers_to(host, "Replica"), "DATABASE_URL names the replica's endpoint"


def test_the_replica_follows_the_primary_across_regions_with_this_regions_key():
    env = secondary()
    replica_stack = env.stack("ReplicaDatabaseStack")
    replica = replica_stack.resource("Replica")
    assert (replica["SourceDBInstanceIdentifier"], replica["SourceRegion"]) == (PRIMARY_DB, PRIMARY)
    assert "MasterUsername" not in replica and "MasterUserPassword" not in replica, "a replica has the source's credentials"
    # The key is the standby's own (its security stack), never the source region's.
    assert replica["KmsKeyId"] == env.output("SecurityStack", "KmsKeyArn") == {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert replica["BackupRetentionPeriod"] >= 1, "a promoted replica must already keep backups"
    assert replica_stack.template["Resources"]["Replica"]["DeletionPolicy"] == "Snapshot"


def test_the_replicas_url_uses_the_master_secret_replicated_into_its_own_region():
    env = secondary()
    master = env.stack("ReplicaDatabaseStack").resource("DatabaseUrlSecret")["SecretString"]["Fn::Sub"][1]["MasterSecret"]
    separator, parts = master["Fn::Join"]
    source = PRIMARY_MASTER_SECRET.split(":")
    assert separator == ":" and parts[3] == {"Ref": "AWS::Region"}
    assert parts[:3] + parts[4:] == source[:3] + source[4:], "the same secret, only the region changed"
    # The standby makes no master secret of its own; the primary replicates its one into the standby's region.
    assert not env.stack("SecurityStack").exists("DatabaseMasterSecret")
    primary = environment("production", **TWO_REGIONS).stack("SecurityStack").resource("DatabaseMasterSecret")
    assert primary["ReplicaRegions"] == [{"Region": SECONDARY}]
    assert "ReplicaRegions" not in environment("production").stack("SecurityStack").resource("DatabaseMasterSecret")


@pytest.mark.parametrize("tier", TIERS)
def test_the_standby_database_can_carry_the_primarys_load_after_promotion(tier):
    primary_class = environment(tier).stack("DatabaseStack").resource("Primary")["DBInstanceClass"]
    assert secondary(tier).stack("ReplicaDatabaseStack").resource("Replica")["DBInstanceClass"] == primary_class


def test_the_replica_lag_alarm_reaches_the_standbys_topic():
    env = secondary()
    alarm = env.stack("ReplicaDatabaseStack").resource("CrossRegionReplicaLagHigh")
    assert refers_to(alarm["Dimensions"][0]["Value"], "Replica")
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}] and env.root.exists("AlarmTopic")
    assert env.root.resource("AlarmTopic")["KmsMasterKeyId"] == env.output("SecurityStack", "KmsKeyArn")


# ----------------------------------------------------------------- S3 replication


def _replication(stack: Stack, bucket: str) -> dict | None:
    return stack.resource(bucket).get("ReplicationConfiguration")


def test_data_and_backups_replicate_into_the_standbys_versioned_buckets():
    storage = environment("production", **TWO_REGIONS).stack("StorageStack")
    for bucket, destination in (("DataBucket", REPLICA_DATA), ("BackupsBucket", REPLICA_BACKUPS)):
        config = _replication(storage, bucket)
        assert config is not None and refers_to(config["Role"], "ReplicationRole")
        (rule,) = config["Rules"]
        assert rule["Status"] == "Enabled" and rule["Destination"]["Bucket"] == destination
        assert rule["DeleteMarkerReplication"]["Status"] == "Enabled"
        assert storage.resource(bucket)["VersioningConfiguration"]["Status"] == "Enabled"
    backups = _replication(storage, "BackupsBucket")["Rules"][0]
    assert backups["SourceSelectionCriteria"]["SseKmsEncryptedObjects"]["Status"] == "Enabled", "KMS dumps are copied"
    assert backups["Destination"]["EncryptionConfiguration"]["ReplicaKmsKeyID"] == REPLICA_KEY

    # The destinations: the standby's own storage stack, versioned, and not replicating back.
    standby = secondary().stack("StorageStack")
    for bucket in ("DataBucket", "BackupsBucket"):
        assert standby.resource(bucket)["VersioningConfiguration"]["Status"] == "Enabled"
        assert _replication(standby, bucket) is None
    assert not standby.exists("ReplicationRole")


def test_one_region_replicates_nothing():
    storage = environment("production").stack("StorageStack")
    assert _replication(storage, "DataBucket") is None and _replication(storage, "BackupsBucket") is None
    assert not storage.exists("ReplicationRole") and not storage.exists("ReplicationPolicy")


# ------------------------------------------------------------- least privilege


REPLICATION_ACTIONS = {
    "s3:GetReplicationConfiguration", "s3:ListBucket",
    "s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging",
    "s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags",
    "kms:Decrypt", "kms:Encrypt",
}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def overreach(statements: list[dict], allowed_resources: list[Any]) -> list[str]:
    """What a replication role's policy grants beyond replicating the given buckets with the given keys."""
    problems = []
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        for action in _as_list(statement["Action"]):
            if "*" in action or action not in REPLICATION_ACTIONS:
                problems.append(f"{statement.get('Sid')}: action {action}")
        for resource in _as_list(statement["Resource"]):
            if resource == "*" or resource not in allowed_resources:
                problems.append(f"{statement.get('Sid')}: resource {resource}")
        if any(a.startswith("kms:") for a in _as_list(statement["Action"])):
            via = statement.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService")
            if via is None:
                problems.append(f"{statement.get('Sid')}: a key usable outside S3")
    return problems


def _replication_policy() -> tuple[list[dict], list[Any]]:
    storage = environment("production", **TWO_REGIONS).stack("StorageStack")
    statements = storage.resource("ReplicationPolicy")["PolicyDocument"]["Statement"]
    buckets = [{"Fn::GetAtt": ["DataBucket", "Arn"]}, {"Fn::GetAtt": ["BackupsBucket", "Arn"]}]
    objects = [{"Fn::Sub": "${DataBucket.Arn}/*"}, {"Fn::Sub": "${BackupsBucket.Arn}/*"},
               {"Fn::Sub": "${ReplicaDataBucketArn}/*"}, {"Fn::Sub": "${ReplicaBackupsBucketArn}/*"}]
    keys = [storage.params["KmsKeyArn"], REPLICA_KEY]
    return statements, [*buckets, *objects, *keys]


def test_the_replication_role_can_only_replicate_these_buckets():
    statements, allowed = _replication_policy()
    assert overreach(statements, allowed) == []
    storage = environment("production", **TWO_REGIONS).stack("StorageStack")
    trust = storage.resource("ReplicationRole")["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "s3.amazonaws.com"}]
    assert all(s["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"} for s in trust)
    assert "Policies" not in storage.resource("ReplicationRole") and "ManagedPolicyArns" not in storage.resource("ReplicationRole")


def test_the_least_privilege_check_catches_a_broad_policy():
    statements, allowed = _replication_policy()
    for mutate in (
        lambda s: s[0].update(Action="s3:*"),
        lambda s: s[2].update(Resource="*"),
        lambda s: s[1]["Action"].append("s3:GetObject"),
        lambda s: s[3].pop("Condition"),
        lambda s: s[2]["Resource"].append("arn:aws:s3:::someone-elses-bucket/*"),
    ):
        broken = copy.deepcopy(statements)
        mutate(broken)
        assert overreach(broken, allowed), "a broader policy went unnoticed"


# --------------------------------------------------------------------- Route 53


def _records_for(stack: Stack, name: str) -> dict[str, dict]:
    return {k: r for k, r in stack.resources("AWS::Route53::RecordSet").items() if r["Name"] == name}


def test_the_origin_name_is_latency_routed_to_both_regions_with_healthz_checks():
    cdn = environment("production", **TWO_REGIONS).stack("CdnStack")
    origin = ROOT_PARAMETERS["OriginDomainName"]
    records = _records_for(cdn, origin)
    assert len(records) == 2, "one record per region"
    assert all("SetIdentifier" in r and "Region" in r for r in records.values()), "no plain record beside latency ones"
    assert {r["Region"] if isinstance(r["Region"], str) else r["Region"]["Ref"] for r in records.values()} == {SECONDARY, "AWS::Region"}
    for record in records.values():
        check_id = record["HealthCheckId"]["Ref"]
        check = cdn.resource(check_id)["HealthCheckConfig"]
        assert (check["Type"], check["Port"], check["ResourcePath"]) == ("HTTPS", 443, "/healthz")
        # The check probes the load balancer the record sends traffic to: a dead region is withdrawn.
        assert check["FullyQualifiedDomainName"] == record["AliasTarget"]["DNSName"]
    targets = {r["AliasTarget"]["DNSName"] if isinstance(r["AliasTarget"]["DNSName"], str) else "primary" for r in records.values()}
    assert SECONDARY_LB in targets and len(targets) == 2


def test_one_region_keeps_its_plain_origin_record_and_no_health_checks():
    cdn = environment("production", HostedZoneId="Z0123456789").stack("CdnStack")
    records = _records_for(cdn, ROOT_PARAMETERS["OriginDomainName"])
    assert len(records) == 1 and "SetIdentifier" not in next(iter(records.values()))
    assert cdn.resources("AWS::Route53::HealthCheck") == {}


# ------------------------------------------------------------------------- ECR


def _bootstrap(**parameters: str) -> Stack:
    return Stack(DEPLOY / "bootstrap.yaml", {"GitHubRepository": "owner/forestguard", **parameters})


def test_images_are_replicated_to_the_secondary_region_only_when_asked():
    stack = _bootstrap(ReplicationRegion=SECONDARY)
    (rule,) = stack.resource("ImageReplication")["ReplicationConfiguration"]["Rules"]
    assert rule["Destinations"] == [{"Region": SECONDARY, "RegistryId": {"Ref": "AWS::AccountId"}}]
    assert [f["Filter"] for f in rule["RepositoryFilters"]] == [{"Ref": "ImageRepository"}]
    assert not _bootstrap().exists("ImageReplication")
    # The standby pulls from the same repository name in its own registry.
    repository = SECONDARY_PARAMETERS["ImageRepositoryUri"]
    assert f".ecr.{SECONDARY}." in repository and repository.rsplit("/", 1)[1] == ROOT_PARAMETERS["ImageRepositoryUri"].rsplit("/", 1)[1]


# ------------------------------------------------------------ Redis cluster mode


@pytest.mark.parametrize("tier", TIERS)
def test_redis_url_names_the_endpoint_that_matches_the_cache_mode(tier):
    """Cluster mode on ⇔ shards ⇔ the configuration endpoint in REDIS_URL (the app detects the mode itself)."""
    cache = environment(tier).stack("CacheStack")
    group = cache.resource("ReplicationGroup")
    clustered = cache.resource("ParameterGroup")["Properties"]["cluster-enabled"] == "yes"
    assert clustered == ("NumNodeGroups" in group) == ("NumCacheClusters" not in group)
    host = cache.resource("RedisUrlSecret")["SecretString"]["Fn::Sub"][1]["Host"]
    assert host == {"Fn::GetAtt": ["ReplicationGroup", "ConfigurationEndPoint.Address" if clustered else "PrimaryEndPoint.Address"]}
    if clustered:
        assert group["AutomaticFailoverEnabled"] is True
        assert int(group["NumNodeGroups"]) * (int(group["ReplicasPerNodeGroup"]) + 1) >= 2 * int(group["NumNodeGroups"]), "a replica per shard"


def test_the_scale_tier_moves_the_cache_to_a_cluster():
    assert environment("scale").stack("CacheStack").resource("ParameterGroup")["Properties"]["cluster-enabled"] == "yes"
    assert environment("production").stack("CacheStack").resource("ParameterGroup")["Properties"]["cluster-enabled"] == "no"


def test_a_promoted_replica_runs_with_the_primarys_database_settings():
    """Parameter groups cannot cross regions, so the standby restates the primary's: they must not drift."""
    primary = environment().stack("DatabaseStack")
    replica = secondary().stack("ReplicaDatabaseStack")
    assert replica.resource("ParameterGroup")["Parameters"] == primary.resource("ParameterGroup")["Parameters"]
    assert replica.resource("ParameterGroup")["Family"] == primary.resource("ParameterGroup")["Family"]
    assert refers_to(replica.resource("Replica")["DBParameterGroupName"], "ParameterGroup")
    for name in ("PreferredBackupWindow", "PreferredMaintenanceWindow", "BackupRetentionPeriod", "EnableCloudwatchLogsExports"):
        assert replica.resource("Replica")[name] == primary.resource("Primary")[name], name


def test_the_standbys_roles_are_least_privilege_and_its_buckets_private():
    """The checks the primary's stacks pass (tests/deploy/test_templates.py), on the standby's."""
    stacks = _every_stack(secondary())
    roles = {f"{st.path.name}:{name}": role for st in stacks for name, role in st.resources("AWS::IAM::Role").items()}
    assert roles and [p for name, role in roles.items() for p in privilege_problems(name, role)] == []
    buckets = {f"{st.path.name}:{name}": b for st in stacks for name, b in st.resources("AWS::S3::Bucket").items()}
    assert buckets and [name for name, b in buckets.items() if not _blocks_all_public_access(b)] == []
    policies = [policy["PolicyDocument"] for st in stacks for policy in st.resources("AWS::S3::BucketPolicy").values()]
    assert [grant for policy in policies for grant in public_grants(policy)] == []
