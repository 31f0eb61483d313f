"""Which resource of the synthesized stacks is which on the embedded default.

The embedded default provisions what the stacks create under its own names (a suffix on
every name, so deployments on one emulator never meet). These bindings give each template
resource the functions touch its physical name from the :class:`LocalDeployment` and the
difusor registry. What the emulator does not provision, or provisions under a name the
deployment does not record, stands in under its logical id: the ingest and sign roles (their
functions run with the emulator's credentials), the log groups, the EventBridge rule that
feeds the ingest queue (named in the queue's policy; its deliveries happen inside the
emulator), and the KMS key of the signing secret (moto keeps the secret under its default
key; the checks still require the template's key policy to let the reader decrypt).
"""

from __future__ import annotations

from collections.abc import Mapping

from difusion import topology
from difusion.local.emulator import ORIGIN_ACCOUNT, REGION
from difusion.local.iam.operations import queue_arn
from difusion.local.iam.templates import (
    Binding,
    Physical,
    Template,
    function_roles,
    logical_id_at,
    resources_of,
)
from difusion.local.provision import LocalDeployment
from difusion.models import Difusor

# The construct paths of the institute's functions and the names the local dispatcher (and
# ``LocalPipeline.run_monitor_period``) invoke them by.
FUNCTIONS = {
    "Pipeline/Ingest": "difusion-ingest",
    "Pipeline/Sign": "difusion-sign",
    "Pipeline/Replicate": "difusion-replicate",
    "Pipeline/Monitor": "difusion-monitor",
}
_QUEUES = {
    "Queues/Ingest": "ingest",
    "Queues/Sign": "sign",
    "Queues/Deliveries": "deliveries",
}


def deployment_literals(
    deployment: LocalDeployment, template_external_ids: Mapping[str, str]
) -> dict[str, str]:
    """What the stacks' configuration names literally, as the deployment names it: the
    institute's roles and each difusor's delivery role (suffixed here), and the external id
    each difusor's template was synthesized with (``difusor_id -> id``), as registered."""
    election = deployment.election
    literals = {
        topology.role_arn(
            ORIGIN_ACCOUNT, topology.publisher_role_name(election)
        ): deployment.publisher_role_arn,
        topology.role_arn(
            ORIGIN_ACCOUNT, topology.monitor_role_name(election)
        ): deployment.monitor_role_arn,
    }
    for difusor in deployment.difusores:
        name = topology.delivery_role_name(election)
        literals[topology.role_arn(difusor.account_id, name)] = difusor.role_arn
        if difusor.difusor_id in template_external_ids:
            literals[template_external_ids[difusor.difusor_id]] = difusor.external_id
    return literals


def _role(template: Template, logical_id: str, arn: str) -> Physical:
    """The role at ``arn``, which must carry the template's RoleName if it sets one."""
    configured = resources_of(template)[logical_id].get("Properties", {}).get("RoleName")
    name = arn.rsplit("/", 1)[-1]
    if configured and not name.startswith(str(configured)):
        raise ValueError(f"role {logical_id} is named {configured!r}, but is bound to {arn}")
    return Physical.role(arn)


def _stand_ins(template: Template) -> dict[str, Physical]:
    found: dict[str, Physical] = {}
    for lid, resource in resources_of(template).items():
        if resource.get("Type") == "AWS::Logs::LogGroup":
            found[lid] = Physical.log_group(f"/stand-in/{lid}", REGION, ORIGIN_ACCOUNT)
        elif resource.get("Type") == "AWS::Events::Rule":
            arn = f"arn:aws:events:{REGION}:{ORIGIN_ACCOUNT}:rule/{lid}"
            found[lid] = Physical(lid, {"Arn": arn})
    return found


def institute_binding(
    template: Template,
    deployment: LocalDeployment,
    secret_arn: str,
    literals: Mapping[str, str],
) -> Binding:
    """The institute's stack on the embedded default. ``secret_arn``: the signing secret's
    ARN (moto's, with its random suffix: ``describe_secret`` gives it)."""
    at = lambda path: logical_id_at(template, path)  # noqa: E731
    resources: dict[str, Physical] = {
        at("Origin/Bucket"): Physical.bucket(deployment.origin_bucket),
        at("Tables/Ledger"): Physical.table(deployment.ledger_table, REGION, ORIGIN_ACCOUNT),
        at("Tables/Registry"): Physical.table(deployment.registry_table, REGION, ORIGIN_ACCOUNT),
        at("Tables/Idempotency"): Physical.table(
            deployment.idempotency_table, REGION, ORIGIN_ACCOUNT
        ),
        at("SigningKey/Secret"): Physical.secret(secret_arn),
        at("SigningKey/EncryptionKey"): Physical.key(
            f"arn:aws:kms:{REGION}:{ORIGIN_ACCOUNT}:key/{at('SigningKey/EncryptionKey')}"
        ),
        **_stand_ins(template),
    }
    urls = {
        "ingest": deployment.ingest_queue_url,
        "sign": deployment.sign_queue_url,
        "deliveries": deployment.delivery_queue_url,
    }
    for path, queue in _QUEUES.items():
        for lid, url in (
            (at(path), urls[queue]),
            (at(f"{path}DeadLetters"), deployment.dead_letter_queue_urls[queue]),
        ):
            resources[lid] = Physical.queue(url, queue_arn(url, REGION))
    roles = function_roles(template)
    run_as = {
        "difusion-replicate": deployment.publisher_role_arn,
        "difusion-monitor": deployment.monitor_role_arn,
    }
    for path, function_name in FUNCTIONS.items():
        function_id = at(path)
        role_id = roles[function_id]
        resources[function_id] = Physical(function_name)
        arn = run_as.get(function_name, f"arn:aws:iam::{ORIGIN_ACCOUNT}:role/{role_id}")
        resources[role_id] = _role(template, role_id, arn)
    return Binding(ORIGIN_ACCOUNT, REGION, resources, literals)


def difusor_binding(template: Template, difusor: Difusor, literals: Mapping[str, str]) -> Binding:
    """One difusor's stack on the embedded default, from its registry entry."""
    at = lambda path: logical_id_at(template, path)  # noqa: E731
    resources = {
        at("Site/Site"): Physical.bucket(difusor.bucket),
        at("Cdn/Distribution"): Physical(difusor.distribution_id, {"Id": difusor.distribution_id}),
        at("Cdn/Versions/Pointer"): Physical(difusor.kvs_arn, {"Arn": difusor.kvs_arn}),
        at("Delivery/Role"): _role(template, at("Delivery/Role"), difusor.role_arn),
    }
    return Binding(difusor.account_id, topology.DIFUSOR_REGION, resources, literals)
