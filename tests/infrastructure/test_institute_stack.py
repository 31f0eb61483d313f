"""The institute's stack: every security property, on the synthesized template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacks.institute.pipeline_functions import LAMBDA_PYTHON
from tests.infrastructure.templates import (
    actions_of,
    bucket_policy,
    logical_id,
    only,
    statements_of,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.infrastructure


def _logical_id(template, kind, predicate):
    matches = [k for k, v in template.find_resources(kind).items() if predicate(k, v)]
    assert len(matches) == 1, matches
    return matches[0]


def _function(template, name):
    return _logical_id(
        template,
        "AWS::Lambda::Function",
        lambda k, v: v["Properties"].get("Description", "").startswith(f"difusion {name} "),
    )


def _role_of(template, function_id):
    return template.to_json()["Resources"][function_id]["Properties"]["Role"]["Fn::GetAtt"][0]


def test_origin_bucket_is_versioned_encrypted_private_tls_only_and_logged(
    institute, institute_config
):
    bucket_id = _origin_id(institute)
    props = institute.to_json()["Resources"][bucket_id]["Properties"]
    # No fixed name: a retained bucket of a deleted stack would block a redeploy.
    assert "BucketName" not in props
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert (
        props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"
        ]["SSEAlgorithm"]
        == "AES256"
    )
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert "DestinationBucketName" in props["LoggingConfiguration"]
    rules = {r.get("Id"): r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["incoming-packages"]["Prefix"] == "incoming/"
    policy = bucket_policy(institute, bucket_id)
    deny_insecure = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny_insecure[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_origin_notifies_eventbridge_and_the_rule_feeds_the_ingest_queue(institute):
    notifications = only(institute, "Custom::S3BucketNotifications")
    assert notifications["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {}
    }
    [rule] = [
        r["Properties"]
        for r in institute.find_resources("AWS::Events::Rule").values()
        if "EventPattern" in r["Properties"]
    ]
    assert rule["EventPattern"]["source"] == ["aws.s3"]
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    assert rule["EventPattern"]["detail"]["object"] == {"key": [{"prefix": "incoming/"}]}
    target = rule["Targets"][0]["Arn"]["Fn::GetAtt"][0]
    queue = institute.to_json()["Resources"][target]["Properties"]
    assert "FifoQueue" not in queue


def _origin_id(institute) -> str:
    return logical_id(institute, "AWS::S3::Bucket", ObjectLockEnabled=True)


def test_no_difusor_may_read_the_origin(institute):
    """RE art. 353.4: nothing of a snapshot is readable from a difusor's account before it
    is published there; the publisher copies with its own credentials."""
    policy = bucket_policy(institute, _origin_id(institute))
    assert [s for s in policy["Statement"] if s["Effect"] == "Allow"] == []


def test_every_queue_has_a_dead_letter_queue_and_fifo_where_order_matters(
    institute, institute_config
):
    queues = institute.find_resources("AWS::SQS::Queue")
    main = {k: v["Properties"] for k, v in queues.items() if "RedrivePolicy" in v["Properties"]}
    assert len(main) == 3
    fifo = sorted(k for k, p in main.items() if p.get("FifoQueue"))
    assert [k.split("Queues")[1][:4] for k in fifo] == ["Deli", "Sign"]
    for props in main.values():
        assert props["RedrivePolicy"]["maxReceiveCount"] == institute_config.delivery_max_attempts
        assert props["SqsManagedSseEnabled"] is True
    # Visibility: six times the function timeout (15 min for ingest and replicate)
    assert sorted(p["VisibilityTimeout"] for p in main.values()) == [360, 5400, 5400]


def test_tables_are_plain_tables_with_point_in_time_recovery_and_ttl_for_idempotency(institute):
    assert institute.find_resources("AWS::DynamoDB::GlobalTable") == {}
    tables = institute.find_resources("AWS::DynamoDB::Table")
    assert len(tables) == 3
    for table in tables.values():
        assert table["Properties"]["PointInTimeRecoverySpecification"] == {
            "PointInTimeRecoveryEnabled": True
        }
        assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True}
    idempotency = [t for t in tables.values() if "TimeToLiveSpecification" in t["Properties"]]
    assert idempotency[0]["Properties"]["TimeToLiveSpecification"] == {
        "AttributeName": "expiration",
        "Enabled": True,
    }


def test_only_the_sign_function_can_read_the_signing_key(institute):
    secret = only(institute, "AWS::SecretsManager::Secret")["Properties"]
    key_id = secret["KmsKeyId"]["Fn::GetAtt"][0]
    key = institute.to_json()["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    sign_role = _role_of(institute, _function(institute, "sign"))
    deny = only(institute, "AWS::SecretsManager::ResourcePolicy")["Properties"]["ResourcePolicy"][
        "Statement"
    ]
    [deny_others] = [s for s in deny if s["Effect"] == "Deny"]
    assert deny_others["Action"] == "secretsmanager:GetSecretValue"
    assert deny_others["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == {
        "Fn::GetAtt": [sign_role, "Arn"]
    }
    assert "secretsmanager:GetSecretValue" in actions_of(statements_of(institute, sign_role))
    for name in ("ingest", "replicate"):
        role = _role_of(institute, _function(institute, name))
        assert not {
            a
            for a in actions_of(statements_of(institute, role))
            if a.startswith(("secretsmanager:", "kms:"))
        }


def test_the_sign_role_may_decrypt_the_signing_key_in_its_own_policy_through_secrets_manager(
    institute, institute_config
):
    # Given the signing secret's key and the sign function's role
    secret_id = logical_id(institute, "AWS::SecretsManager::Secret")
    secret = institute.to_json()["Resources"][secret_id]["Properties"]
    key_id = secret["KmsKeyId"]["Fn::GetAtt"][0]
    sign_role = _role_of(institute, _function(institute, "sign"))
    # Then its own policy allows kms:Decrypt on that key, only via Secrets Manager in the
    # stack's Region and only for that secret (IAM's policy simulator reads this one)
    [decrypt] = [
        s
        for s in statements_of(institute, sign_role)
        if s.get("Sid") == "DecryptTheSigningKeyThroughSecretsManager"
    ]
    assert decrypt["Effect"] == "Allow" and decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Resource"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert decrypt["Condition"] == {
        "StringEquals": {
            "kms:ViaService": f"secretsmanager.{institute_config.region}.amazonaws.com",
            "kms:EncryptionContext:SecretARN": {"Ref": secret_id},
        }
    }
    # And the key policy still grants it too (the grant Secrets Manager's docs describe)
    key_policy = institute.to_json()["Resources"][key_id]["Properties"]["KeyPolicy"]
    assert [
        s
        for s in key_policy["Statement"]
        if s.get("Principal") == {"AWS": {"Fn::GetAtt": [sign_role, "Arn"]}}
        and s["Action"] == "kms:Decrypt"
    ]
    # And no other function's role may use the key
    for name in ("ingest", "replicate", "monitor"):
        role = _role_of(institute, _function(institute, name))
        assert not [a for a in actions_of(statements_of(institute, role)) if a.startswith("kms:")]


def test_functions_run_the_shared_handlers_on_arm64_with_tracing_and_the_layer(
    institute, synthesized
):
    app = synthesized[0]
    outdir = Path(app.outdir)
    layer = only(institute, "AWS::Lambda::LayerVersion")
    layer_id = next(iter(institute.find_resources("AWS::Lambda::LayerVersion")))
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    for name in ("ingest", "sign", "replicate", "monitor"):
        props = institute.to_json()["Resources"][_function(institute, name)]["Properties"]
        assert props["Runtime"] == f"python{LAMBDA_PYTHON}"
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["Handler"] == "handler.handler"
        assert props["Layers"] == [{"Ref": layer_id}]
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == "difusion"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Difusion"
        assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
        # The asset is exactly lambdas/<name>/handler.py, the module the dispatcher imports
        asset_hash = props["Code"]["S3Key"].removesuffix(".zip")
        deployed = (outdir / f"asset.{asset_hash}" / "handler.py").read_bytes()
        assert deployed == (ROOT / "lambdas" / name / "handler.py").read_bytes()
    from difusion.local.pipeline import HANDLERS

    assert {
        n: f"lambdas.{n}.handler" for n in ("ingest", "sign", "replicate", "monitor")
    } == HANDLERS


def test_the_layer_ships_the_domain_package_without_the_local_tooling(institute, synthesized):
    layer = only(institute, "AWS::Lambda::LayerVersion")
    asset = Path(synthesized[0].outdir) / f"asset.{layer['Properties']['Content']['S3Key'][:-4]}"
    package = asset / "python" / "difusion"
    assert (package / "archive.py").read_bytes() == (ROOT / "difusion" / "archive.py").read_bytes()
    # ...with the verification page ingest adds to every publication
    page = package / "web" / "verificar.html"
    assert page.read_bytes() == (ROOT / "difusion" / "web" / "verificar.html").read_bytes()
    assert not (package / "local").exists()
    assert not (package / "preflight").exists()  # operators' tooling, not the functions'
    assert not (package / "memoria").exists()  # the difusores' report, not the functions'
    assert not (asset / "python" / "bin").exists()
    assert not list(asset.rglob("*.pyc"))


def test_each_function_gets_only_what_it_needs(institute):
    ingest = actions_of(
        statements_of(institute, _role_of(institute, _function(institute, "ingest")))
    )
    sign = actions_of(statements_of(institute, _role_of(institute, _function(institute, "sign"))))
    replicate = actions_of(
        statements_of(institute, _role_of(institute, _function(institute, "replicate")))
    )
    for actions in (ingest, sign, replicate):
        assert not {a for a in actions if a.endswith(":*") or a == "*"}
        assert "dynamodb:Scan" not in actions or actions is sign
        assert "dynamodb:DeleteTable" not in actions
    assert "sqs:SendMessage" in ingest and "sts:AssumeRole" not in ingest
    assert "s3:DeleteObject" not in ingest
    # Sign removes only a manifest (and signature) the ledger did not accept.
    sign_role = _role_of(institute, _function(institute, "sign"))
    [removal] = [
        s for s in statements_of(institute, sign_role) if "s3:DeleteObject" in actions_of([s])
    ]
    assert actions_of([removal]) == {"s3:DeleteObject"}
    assert "manifests/*" in json.dumps(removal["Resource"])
    assert "sts:AssumeRole" in replicate and "sts:AssumeRole" not in sign
    # Replicate deletes only in the difusores' sites, never in the institute's account.
    replicate_role = _role_of(institute, _function(institute, "replicate"))
    deletes = [
        s for s in statements_of(institute, replicate_role) if "s3:DeleteObject" in actions_of([s])
    ]
    assert [d["Sid"] for d in deletes] == ["WriteIntoDifusorSites"]


def test_the_publisher_role_assumes_only_registered_difusor_roles(institute, institute_config):
    role_id = _role_of(institute, _function(institute, "replicate"))
    role = institute.to_json()["Resources"][role_id]["Properties"]
    assert role["RoleName"] == "difusion-publisher-dip-loc-bcs"
    statements = {s.get("Sid"): s for s in statements_of(institute, role_id)}
    assume = [s for s in statements.values() if s["Action"] == "sts:AssumeRole"]
    assert len(assume) == 1
    assert assume[0]["Resource"] == [
        f"arn:aws:iam::{d.account}:role/difusion-delivery-dip-loc-bcs"
        for d in institute_config.difusores
    ]
    accounts = sorted(d.account for d in institute_config.difusores)
    for sid in ("WriteIntoDifusorSites", "ListDifusorSites"):
        assert statements[sid]["Condition"] == {"StringEquals": {"aws:ResourceAccount": accounts}}
    assert institute_config.account not in accounts


def test_dead_letter_queues_failures_rejections_and_staleness_raise_alarms(
    institute, institute_config
):
    alarms = institute.find_resources("AWS::CloudWatch::Alarm")
    dlq_alarms = [
        a
        for a in alarms.values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    ]
    assert len(dlq_alarms) == 3
    names = {a["Properties"].get("MetricName") for a in alarms.values()}
    assert {
        "Errors",
        "Packages_rejected",
        "UpstreamSilenceSeconds",
        "IntegrityIncidents",
        "DifusoresSuspended",
    } <= names
    # Per difusor: no delivery in 20 minutes, counted only while the monitor says the
    # window is open (so nothing fires before the opening or after the close)
    stale = [a["Properties"] for a in alarms.values() if "Metrics" in a["Properties"]]
    assert len(stale) == len(institute_config.difusores)
    for alarm in stale:
        expression = next(m for m in alarm["Metrics"] if "Expression" in m)
        assert expression["Expression"] == "IF(FILL(open, 0) > 0 AND FILL(delivered, 0) < 1, 1, 0)"
        used = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
        assert used["open"]["Metric"]["MetricName"] == "WindowOpen"
        assert used["delivered"]["Metric"]["MetricName"] == "Delivered"
        assert used["delivered"]["Period"] == 1200
        assert alarm["TreatMissingData"] == "notBreaching"
    [stall] = [
        a["Properties"]
        for a in alarms.values()
        if a["Properties"].get("MetricName") == "UpstreamSilenceSeconds"
    ]
    assert stall["Threshold"] == 20 * 60 and stall["Statistic"] == "Maximum"
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"]
    institute.has_resource_properties(
        "AWS::CloudWatch::Dashboard", {"DashboardName": "difusion-DIP_LOC_BCS"}
    )
    institute.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email"})


def test_outputs_tell_operators_where_everything_is(institute):
    outputs = institute.find_outputs("*")
    assert {
        "OriginBucketName",
        "PublisherRoleArn",
        "LedgerTableName",
        "RegistryTableName",
        "SigningSecretName",
        "DashboardName",
        "IdempotencyTableName",
        "DeliveryQueueUrl",
        "MonitorFunctionName",
        # what difusion preflight checks
        "MonitorRoleArn",
        "IngestRoleArn",
        "SignRoleArn",
        "IngestQueueUrl",
        "SignQueueUrl",
        "AlarmTopicArn",
        "WindowTimerArn",
    } <= set(outputs)


def test_the_monitor_runs_every_period_and_may_only_do_its_own_work(institute, institute_config):
    monitor = _function(institute, "monitor")
    [schedule] = [
        r["Properties"]
        for r in institute.find_resources("AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
    ]
    assert schedule["ScheduleExpression"] == "rate(15 minutes)"
    assert schedule["Targets"][0]["Arn"] == {"Fn::GetAtt": [monitor, "Arn"]}
    env = institute.to_json()["Resources"][monitor]["Properties"]["Environment"]["Variables"]
    assert env["MONITOR_PERIOD_SECONDS"] == "900" and env["MONITOR_SUSPEND_AFTER"] == "3"
    assert env["DIFUSORES_LIST_URL"] == institute_config.monitor.difusores_list_url
    role_id = _role_of(institute, monitor)
    role = institute.to_json()["Resources"][role_id]["Properties"]
    # The difusores' bucket policies and delivery roles name it.
    assert role["RoleName"] == "difusion-monitor-dip-loc-bcs"
    statements = statements_of(institute, role_id)
    actions = actions_of(statements)
    assert "sts:AssumeRole" in actions and "s3:PutObjectRetention" in actions
    assert "secretsmanager:GetSecretValue" not in actions
    deletes = [s for s in statements if "s3:DeleteObject" in actions_of([s])]
    assert [d["Sid"] for d in deletes] == ["WriteIntoDifusorSites"]  # the notice only
    assert "dynamodb:UpdateItem" in actions  # suspend and reinstate in the registry
    [retention] = [s for s in statements if s.get("Sid") == "RetainTheFinalPublication"]
    assert len(retention["Resource"]) == 4


def test_the_origin_bucket_has_object_lock_for_the_final_publication(institute):
    bucket = only(institute, "AWS::S3::Bucket", ObjectLockEnabled=True)["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}


def test_each_step_takes_one_message_per_invocation_reporting_item_failures(institute):
    """One delivery per invocation: a FIFO batch may hold several difusores' groups, which
    one invocation would deliver one after the other."""
    mappings = institute.find_resources("AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 3
    for mapping in mappings.values():
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["Properties"]["BatchSize"] == 1
    json.dumps(mappings)  # serializable template


def test_the_window_timer_is_the_shared_definition_with_only_its_two_permissions(
    institute, institute_config, synthesized
):
    machine = only(institute, "AWS::StepFunctions::StateMachine")["Properties"]
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    # The definition deployed is the very file the embedded default executes
    key = machine["DefinitionS3Location"]["Key"]
    deployed = (Path(synthesized[0].outdir) / f"asset.{key}").read_bytes()
    assert deployed == (ROOT / "stacks" / "institute" / "window_timer.asl.json").read_bytes()
    substitutions = machine["DefinitionSubstitutions"]
    assert substitutions["Election"] == institute_config.election_id
    assert substitutions["LedgerTable"]["Ref"].startswith("TablesLedger")
    assert substitutions["SignQueueUrl"]["Ref"].startswith("QueuesSign")
    role_id = machine["RoleArn"]["Fn::GetAtt"][0]
    statements = statements_of(institute, role_id)
    task_actions = actions_of(
        [
            s
            for s in statements
            if not str(s["Action"]).startswith(("['logs:", "logs:", "xray:", "['xray:"))
        ]
    )
    assert task_actions == {
        "dynamodb:UpdateItem",
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
    [update] = [s for s in statements if s["Action"] == "dynamodb:UpdateItem"]
    assert update["Condition"] == {
        "ForAllValues:StringEquals": {
            "dynamodb:LeadingKeys": [f"ELECTION#{institute_config.election_id}"]
        }
    }


def test_sign_and_replicate_know_the_configured_window(institute, institute_config):
    for name in ("sign", "replicate"):
        env = institute.to_json()["Resources"][_function(institute, name)]["Properties"][
            "Environment"
        ]["Variables"]
        assert env["WINDOW_OPENING"] == institute_config.window.opening.isoformat()
        assert env["WINDOW_CLOSING"] == institute_config.window.closing.isoformat()
        assert env["WINDOW_GRACE_SECONDS"] == "900"
        assert env["WINDOW_OPENING"].endswith("-07:00")  # BCS, UTC-7 all year


def test_replicate_and_the_monitor_trust_only_the_pinned_key(institute, institute_config):
    for name in ("replicate", "monitor"):
        props = institute.to_json()["Resources"][_function(institute, name)]["Properties"]
        assert props["Environment"]["Variables"]["PREP_PUBLIC_KEY"] == institute_config.public_key
    ingest = institute.to_json()["Resources"][_function(institute, "ingest")]["Properties"]
    assert "PREP_PUBLIC_KEY" not in ingest["Environment"]["Variables"]
