"""The IAM evaluator against AWS's documented evaluation logic and its own examples.

Each test names the IAM User Guide (or KMS Developer Guide) page whose rule or example it
encodes; policies are shaped as CDK synthesizes them, with intrinsics already resolved.

Every request a test decides is also put to an independent evaluator, the npm package
``@cloud-copilot/iam-simulate`` (``tests/iam_oracle``, one Node process for the module):
``evaluate_both`` fails the test where the two verdicts (allowed, explicitly or implicitly
denied) differ, unless ``KNOWN_DISAGREEMENTS`` lists the case with AWS's page (and then it
fails if they agree); ``test_condition_operators`` asks it about each Condition block too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import tests.iam_oracle
from difusion.local.iam import (
    Decision,
    Policy,
    PolicyError,
    Principal,
    Request,
    conditions_hold,
    evaluate,
)
from difusion.local.iam.record import DecisionRecorder, read_decisions
from tests.iam_oracle import (
    ALLOWED,
    IMPLICIT,
    KnownDisagreement,
    Oracle,
    OracleAnswer,
    OracleMissing,
    OracleRequest,
    disagreement,
    verdict_of,
)

Evaluate = Callable[..., Decision]


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    with Oracle() as running:
        yield running


@pytest.fixture
def evaluate_both(oracle: Oracle) -> Evaluate:
    """``evaluate``, and the oracle asked the same: the test fails where they disagree."""

    def decide(
        request: Request,
        identity_policies: Sequence[Policy] = (),
        resource_policy: Policy | None = None,
    ) -> Decision:
        ours = evaluate(request, identity_policies, resource_policy)
        asked = OracleRequest.of(request, identity_policies, resource_policy)
        problem = disagreement(asked, verdict_of(ours), oracle.ask(asked), KNOWN_DISAGREEMENTS)
        assert problem is None, f"{problem}; ours: {ours.reason}"
        return ours

    return decide


INSTITUTE = "111122223333"
DIFUSOR = "444455556666"
PUBLISHER = Principal.role(f"arn:aws:iam::{INSTITUTE}:role/prep-publisher", "replicate")
MONITOR = Principal.role(f"arn:aws:iam::{INSTITUTE}:role/prep-monitor", "monitor")
OTHER_INSTITUTE_ROLE = Principal.role(f"arn:aws:iam::{INSTITUTE}:role/someone-else", "s")
ORIGIN = "arn:aws:s3:::prep-origin"
SITE = "arn:aws:s3:::difusor-site"
DELIVERY_ROLE = f"arn:aws:iam::{DIFUSOR}:role/prep-delivery"
EXTERNAL_ID = "the-institute-sent-this-id"


def identity(*statements: dict[str, Any], name: str = "identity policy PublisherDefault") -> Policy:
    return Policy(name, {"Version": "2012-10-17", "Statement": list(statements)})


def resource(*statements: dict[str, Any], name: str = "bucket policy") -> Policy:
    return Policy(name, {"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str | list[str], resource_arn: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource_arn, **extra}


def root(account: str) -> dict[str, str]:
    return {"AWS": f"arn:aws:iam::{account}:root"}


def _listed(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def _statements(policy: Policy) -> list[dict[str, Any]]:
    statements = policy.document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def star_ends_a_segment_of_a_short_arn(request: OracleRequest) -> bool:
    """An identity statement's Resource has fewer than six ARN segments and a * ending one
    that is not the last (``arn:aws:dynamodb:us-*:table/ledger``)."""
    return any(
        pattern.startswith("arn:") and pattern.count(":") < 5 and "*:" in pattern
        for policy in request.identity_policies
        for statement in _statements(policy)
        for pattern in _listed(statement.get("Resource", []))
    )


KNOWN_DISAGREEMENTS = [
    KnownDisagreement(
        "a * ending an ARN segment expands past colons",
        ours=ALLOWED,
        oracle=IMPLICIT,
        why=(
            "IAM User Guide, 'IAM JSON policy elements: Resource' (https://docs.aws.amazon.com/"
            "IAM/latest/UserGuide/reference_policies_elements_resource.html): 'If the * "
            "wildcard is the last character of a resource ARN segment, it can expand to match "
            "beyond the colon boundaries'. iam-simulate pads an ARN of fewer than six segments "
            "with '*' segments and matches segment by segment, so us-* never reaches past the "
            "Region. No template writes such a pattern."
        ),
        applies=star_ends_a_segment_of_a_short_arn,
        example=(
            Request(
                PUBLISHER,
                "dynamodb:GetItem",
                f"arn:aws:dynamodb:us-east-1:{INSTITUTE}:table/ledger",
                INSTITUTE,
            ),
            [identity(allow("dynamodb:GetItem", "arn:aws:dynamodb:us-*:table/ledger"))],
            None,
        ),
    ),
]


# --- AWS's own examples -----------------------------------------------------------------

CARLOS = Principal(f"arn:aws:iam::{INSTITUTE}:user/carlossalazar")
CARLOS_POLICY = Policy(
    "identity policy of carlossalazar",
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowS3ListRead",
                "Effect": "Allow",
                "Action": [
                    "s3:GetBucketLocation",
                    "s3:GetAccountPublicAccessBlock",
                    "s3:ListAccessPoints",
                    "s3:ListAllMyBuckets",
                ],
                "Resource": "arn:aws:s3:::*",
            },
            {
                "Sid": "AllowS3Self",
                "Effect": "Allow",
                "Action": "s3:*",
                "Resource": [
                    "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar/*",
                    "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar",
                ],
            },
            {
                "Sid": "DenyS3Logs",
                "Effect": "Deny",
                "Action": "s3:*",
                "Resource": "arn:aws:s3:::*log*",
            },
        ],
    },
)
CARLOS_LOGS_BUCKET_POLICY = resource(
    {
        "Sid": "AllowCarlosToPutLogs",
        "Effect": "Allow",
        "Principal": {"AWS": CARLOS.arn},
        "Action": "s3:PutObject",
        "Resource": "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar-logs/*",
    },
    name="bucket policy of amzn-s3-demo-bucket-carlossalazar-logs",
)


@pytest.mark.parametrize(
    ("action", "resource_arn", "allowed", "decided_by"),
    [
        (
            "s3:PutObject",
            "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar-logs/today.log",
            False,
            "explicit deny in identity policy of carlossalazar statement DenyS3Logs",
        ),
        (
            "s3:PutObject",
            "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar/notes.txt",
            True,
            "statement AllowS3Self",
        ),
        ("s3:GetBucketLocation", "arn:aws:s3:::any-bucket", True, "statement AllowS3ListRead"),
        ("s3:DeleteBucket", "arn:aws:s3:::any-bucket", False, "implicit deny"),
    ],
)
def test_carlos_example_deny_in_identity_policy_beats_allow_in_bucket_policy(
    action: str, resource_arn: str, allowed: bool, decided_by: str, evaluate_both: Evaluate
) -> None:
    """IAM User Guide, "Policy evaluation for requests within a single account", example
    identity-based and resource-based policy evaluation: the bucket policy lets Carlos put
    into the -logs bucket, but his own DenyS3Logs wins."""
    # Given Carlos's identity policy and the logs bucket's policy from the page
    request = Request(CARLOS, action, resource_arn, INSTITUTE)

    # When he acts
    decision = evaluate_both(request, [CARLOS_POLICY], CARLOS_LOGS_BUCKET_POLICY)

    # Then the page's outcome, and the reason names the deciding statement
    assert decision.allowed is allowed
    assert decided_by in decision.reason


def test_by_default_every_request_is_implicitly_denied(evaluate_both: Evaluate) -> None:
    """IAM User Guide, "How AWS enforcement code logic evaluates requests to allow or deny
    access": by default all requests are implicitly denied."""
    # Given a role whose only statement is about another bucket
    policy = identity(allow("s3:GetObject", f"{SITE}/*"))

    # When it writes to the origin
    decision = evaluate_both(Request(PUBLISHER, "s3:PutObject", f"{ORIGIN}/a", INSTITUTE), [policy])

    # Then it is denied, and the reason names caller, action, resource and the policy read
    assert not decision.allowed
    assert "implicit deny" in decision.reason
    assert PUBLISHER.label in decision.reason
    assert f"s3:PutObject on {ORIGIN}/a" in decision.reason
    assert "identity policy PublisherDefault" in decision.reason


def test_explicit_deny_in_a_bucket_policy_overrides_an_identity_allow(
    evaluate_both: Evaluate,
) -> None:
    """IAM User Guide, "How AWS enforcement code logic evaluates requests": an explicit deny
    in any policy wins. Shaped like CDK's enforceSSL statement, using Bool
    aws:SecureTransport ("IAM JSON policy elements: Condition operators")."""
    # Given an identity allow and the bucket's deny of plain-HTTP requests
    grant = identity(allow("s3:*", [ORIGIN, f"{ORIGIN}/*"]))
    deny_insecure = resource(
        {
            "Sid": "DenyInsecure",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:*",
            "Resource": [ORIGIN, f"{ORIGIN}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        name="bucket policy of prep-origin",
    )

    def put(secure: bool) -> Request:
        context = {"aws:SecureTransport": secure}
        return Request(PUBLISHER, "s3:PutObject", f"{ORIGIN}/k", INSTITUTE, context)

    # When the same call is made over HTTP and over HTTPS
    insecure = evaluate_both(put(False), [grant], deny_insecure)
    secure = evaluate_both(put(True), [grant], deny_insecure)

    # Then only HTTPS gets through
    assert not insecure.allowed
    assert "explicit deny in bucket policy of prep-origin statement DenyInsecure" in (
        insecure.reason
    )
    assert secure.allowed


def test_within_an_account_a_resource_policy_naming_the_role_allows_on_its_own(
    evaluate_both: Evaluate,
) -> None:
    """IAM User Guide, "Policy evaluation for requests within a single account": if either
    the identity-based or the resource-based policy allows, the request is allowed."""
    # Given no identity policy, and a bucket policy naming the role (by its ARN with a path)
    bucket_policy = resource(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{INSTITUTE}:role/service/prep-publisher"},
            "Action": "s3:GetObject",
            "Resource": f"{ORIGIN}/*",
        }
    )
    # (the caller known only by its session ARN, as STS reports it)
    caller = Principal.from_arn(f"arn:aws:sts::{INSTITUTE}:assumed-role/prep-publisher/s")

    # When the role's session reads
    decision = evaluate_both(
        Request(caller, "s3:GetObject", f"{ORIGIN}/k", INSTITUTE), [], bucket_policy
    )

    # Then the bucket policy alone allows it
    assert decision.allowed, decision.reason
    assert "bucket policy statement #1" in decision.reason


def test_a_resource_policy_naming_only_the_account_delegates_to_identity_policies(
    evaluate_both: Evaluate,
) -> None:
    """IAM User Guide, "AWS JSON policy elements: Principal": naming an account delegates to
    it, so its identities also need an identity policy that allows the access."""
    # Given a bucket policy that names the account root, and a role with no identity allow
    bucket_policy = resource(
        {"Effect": "Allow", "Principal": root(INSTITUTE), "Action": "s3:*", "Resource": "*"}
    )
    request = Request(PUBLISHER, "s3:GetObject", f"{ORIGIN}/k", INSTITUTE)

    # When it reads, without and with an identity allow
    without = evaluate_both(request, [], bucket_policy)
    with_grant = evaluate_both(
        request, [identity(allow("s3:GetObject", f"{ORIGIN}/*"))], bucket_policy
    )

    # Then only the identity allow makes it through
    assert not without.allowed
    assert "names only the account" in without.reason
    assert with_grant.allowed


# --- cross-account ----------------------------------------------------------------------

SITE_POLICY = resource(
    {
        "Sid": "TheInstitutePublishes",
        "Effect": "Allow",
        "Principal": root(INSTITUTE),
        "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
        "Resource": f"{SITE}/*",
        "Condition": {
            "ArnEquals": {"aws:PrincipalArn": [PUBLISHER.arn, MONITOR.arn]},
        },
    },
    name="bucket policy of difusor-site",
)
PUBLISHER_WRITES_SITES = identity(
    allow(
        ["s3:PutObject", "s3:DeleteObject"],
        "arn:aws:s3:::*/*",
        Sid="WriteIntoDifusorSites",
        Condition={"StringEquals": {"aws:ResourceAccount": [DIFUSOR]}},
    )
)


@pytest.mark.parametrize(
    ("caller", "identity_policies", "bucket_policy", "allowed", "reason"),
    [
        (PUBLISHER, [PUBLISHER_WRITES_SITES], SITE_POLICY, True, "TheInstitutePublishes"),
        (PUBLISHER, [], SITE_POLICY, False, "it is cross-account and no identity policy"),
        (PUBLISHER, [PUBLISHER_WRITES_SITES], None, False, "no resource policy given"),
        (
            OTHER_INSTITUTE_ROLE,
            [PUBLISHER_WRITES_SITES],
            SITE_POLICY,
            False,
            "bucket policy of difusor-site does not allow it",
        ),
    ],
)
def test_cross_account_needs_both_the_identity_and_the_resource_policy(
    caller: Principal,
    identity_policies: list[Policy],
    bucket_policy: Policy | None,
    allowed: bool,
    reason: str,
    evaluate_both: Evaluate,
) -> None:
    """IAM User Guide, "Cross-account policy evaluation logic": the trusting account's
    resource policy and the trusted account's identity policy must both allow. The bucket
    policy names the institute's account with an ArnEquals aws:PrincipalArn condition
    ("AWS global condition context keys", aws:PrincipalArn)."""
    # Given the institute's role writing into a difusor's bucket in another account
    request = Request(caller, "s3:PutObject", f"{SITE}/index.html", DIFUSOR)

    # When IAM decides
    decision = evaluate_both(request, identity_policies, bucket_policy)

    # Then both sides were needed
    assert decision.allowed is allowed, decision.reason
    assert reason in decision.reason


# --- role trust policies ----------------------------------------------------------------

DELIVERY_TRUST = Policy(
    "trust policy of prep-delivery",
    {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Principal": root(INSTITUTE),
            "Condition": {
                "StringEquals": {"sts:ExternalId": EXTERNAL_ID},
                "ArnEquals": {"aws:PrincipalArn": [PUBLISHER.arn, MONITOR.arn]},
            },
        },
    },
)
MAY_ASSUME_DELIVERY_ROLE = identity(allow("sts:AssumeRole", DELIVERY_ROLE))


@pytest.mark.parametrize(
    ("caller", "external_id", "identity_policies", "allowed"),
    [
        (PUBLISHER, EXTERNAL_ID, [MAY_ASSUME_DELIVERY_ROLE], True),
        (MONITOR, EXTERNAL_ID, [MAY_ASSUME_DELIVERY_ROLE], True),
        (PUBLISHER, None, [MAY_ASSUME_DELIVERY_ROLE], False),
        (PUBLISHER, "a-guessed-external-id", [MAY_ASSUME_DELIVERY_ROLE], False),
        (OTHER_INSTITUTE_ROLE, EXTERNAL_ID, [MAY_ASSUME_DELIVERY_ROLE], False),
        (PUBLISHER, EXTERNAL_ID, [], False),
    ],
)
def test_trust_policy_wants_the_external_id_the_named_roles_and_an_identity_allow(
    caller: Principal,
    external_id: str | None,
    identity_policies: list[Policy],
    allowed: bool,
    evaluate_both: Evaluate,
) -> None:
    """IAM User Guide, "Cross-account policy evaluation logic" (a role trust policy is the
    role's resource-based policy) and "IAM JSON policy elements: Condition operators"
    (StringEquals on sts:ExternalId; a missing key makes the condition false)."""
    # Given the difusor's delivery role trusting the institute's account, its two roles and
    # the external id
    context = {"sts:ExternalId": external_id} if external_id is not None else {}
    request = Request(caller, "sts:AssumeRole", DELIVERY_ROLE, DIFUSOR, context)

    # When the caller assumes it
    decision = evaluate_both(request, identity_policies, DELIVERY_TRUST)

    # Then only the named roles, with the right id and their own allow, get in
    assert decision.allowed is allowed, decision.reason


def test_same_account_trust_policy_naming_the_role_needs_no_identity_allow(
    evaluate_both: Evaluate,
) -> None:
    """IAM User Guide, "Policy evaluation for requests within a single account": a trust
    policy that names the caller's role ARN allows on its own; naming the account does not."""
    # Given two trust policies in the caller's own account
    target = f"arn:aws:iam::{INSTITUTE}:role/target"
    by_role = Policy(
        "trust policy of target",
        {
            "Statement": {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"AWS": [PUBLISHER.arn]},
            }
        },
    )
    by_account = Policy(
        "trust policy of target",
        {
            "Statement": {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"AWS": INSTITUTE},
            }
        },
    )
    request = Request(PUBLISHER, "sts:AssumeRole", target, INSTITUTE)

    # When the role assumes the target with no identity policy
    # Then naming the role suffices, naming the account doesn't
    assert evaluate_both(request, [], by_role).allowed
    denied = evaluate_both(request, [], by_account)
    assert not denied.allowed
    assert "names only the account" in denied.reason


def test_no_identity_policy_can_assume_a_role_that_trusts_only_a_service(
    evaluate_both: Evaluate,
) -> None:
    """IAM User Guide, "How AWS enforcement code logic evaluates requests": a role's trust
    policy must allow the caller, even within the account."""
    # Given a Lambda execution role's trust policy, as CDK writes it, and an admin caller
    trust = Policy(
        "trust policy of IngestRole",
        {
            "Statement": [
                {
                    "Action": "sts:AssumeRole",
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                }
            ]
        },
    )
    admin = identity(allow("*", "*"))
    role_arn = f"arn:aws:iam::{INSTITUTE}:role/IngestRole"

    # When the admin and the Lambda service assume it
    by_admin = evaluate_both(
        Request(PUBLISHER, "sts:AssumeRole", role_arn, INSTITUTE), [admin], trust
    )
    lambda_ = Principal.service("lambda.amazonaws.com")
    by_lambda = evaluate_both(Request(lambda_, "sts:AssumeRole", role_arn, INSTITUTE), [], trust)

    # Then only the service gets in
    assert not by_admin.allowed
    assert "trust policy must allow" in by_admin.reason
    assert by_lambda.allowed


# --- KMS key policies -------------------------------------------------------------------

TOPIC_KEY = f"arn:aws:kms:us-east-1:{INSTITUTE}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DEFAULT_KEY_POLICY = Policy(
    "key policy of TopicKey",
    {
        "Statement": [
            {"Effect": "Allow", "Principal": root(INSTITUTE), "Action": "kms:*", "Resource": "*"}
        ]
    },
)
CLOUDWATCH = Principal.service("cloudwatch.amazonaws.com")


def test_a_key_policy_granting_only_the_account_does_not_let_cloudwatch_use_the_key(
    evaluate_both: Evaluate,
) -> None:
    """KMS Developer Guide, "Default key policy": the account-root statement lets IAM
    policies grant the key; a service principal has none, so it is not let in."""
    # Given CDK's default key policy on the alarm topic's key
    request = Request(CLOUDWATCH, "kms:GenerateDataKey", TOPIC_KEY, INSTITUTE)

    # When CloudWatch encrypts an alarm notification with it
    decision = evaluate_both(request, [identity(allow("kms:*", "*"))], DEFAULT_KEY_POLICY)

    # Then it is denied, and the reason says why
    assert not decision.allowed
    assert "cloudwatch.amazonaws.com" in decision.reason
    assert "key policy of TopicKey does not allow it" in decision.reason


def test_a_key_policy_naming_the_service_lets_it_use_the_key(evaluate_both: Evaluate) -> None:
    """KMS Developer Guide, "Default key policy": a key policy statement naming the
    principal grants it directly."""
    # Given a key policy statement for CloudWatch
    key_policy = Policy(
        "key policy of TopicKey",
        {
            "Statement": [
                *DEFAULT_KEY_POLICY.document["Statement"],
                {
                    "Sid": "CloudWatchAlarms",
                    "Effect": "Allow",
                    "Principal": {"Service": ["cloudwatch.amazonaws.com"]},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                },
            ]
        },
    )

    # When CloudWatch encrypts with it
    decision = evaluate_both(
        Request(CLOUDWATCH, "kms:GenerateDataKey", TOPIC_KEY, INSTITUTE), [], key_policy
    )

    # Then it is allowed by that statement
    assert decision.allowed
    assert "CloudWatchAlarms" in decision.reason


@pytest.mark.parametrize(
    ("identity_policies", "key_policy", "allowed"),
    [
        ([identity(allow("kms:Decrypt", TOPIC_KEY))], DEFAULT_KEY_POLICY, True),
        ([], DEFAULT_KEY_POLICY, False),
        ([identity(allow("kms:Decrypt", TOPIC_KEY))], None, False),
    ],
)
def test_a_role_uses_a_key_only_when_the_key_policy_and_its_identity_policy_allow(
    identity_policies: list[Policy],
    key_policy: Policy | None,
    allowed: bool,
    evaluate_both: Evaluate,
) -> None:
    """KMS Developer Guide, "Default key policy" ("Allows access to the AWS account and
    enables IAM policies"): no IAM policy alone gives access to a KMS key."""
    # Given a role of the key's account
    request = Request(PUBLISHER, "kms:Decrypt", TOPIC_KEY, INSTITUTE)

    # When it decrypts
    decision = evaluate_both(request, identity_policies, key_policy)

    # Then it needs both
    assert decision.allowed is allowed, decision.reason


# --- actions, resources, NotAction ------------------------------------------------------

# The oracle checks a request's resource against the types the action acts on (Service
# Authorization Reference), so each request names a resource of the right type.
DEADLETTERS = f"arn:aws:sqs:us-east-1:{INSTITUTE}:deadletters"


def resource_acted_on(action: str) -> str:
    return {"s3:listbucket": ORIGIN, "sqs:sendmessage": DEADLETTERS}.get(
        action.lower(), f"{ORIGIN}/k"
    )


def action_on(arn: str) -> str:
    if arn.startswith("arn:aws:dynamodb:"):
        return "dynamodb:GetItem"
    return "s3:GetObject" if "/" in arn else "s3:ListBucket"


@pytest.mark.parametrize(
    ("pattern", "action", "matches"),
    [
        ("s3:Get*", "s3:GetObject", True),
        ("s3:Get*", "s3:GetObjectVersion", True),
        ("s3:Get*", "s3:PutObject", False),
        ("s3:List*", "s3:ListBucket", True),
        ("S3:get*", "s3:GetObject", True),  # action names are case-insensitive
        ("s3:GetObject?ersion", "s3:GetObjectVersion", True),
        ("s3:GetObject?", "s3:GetObject", False),
        ("s3:*", "sqs:SendMessage", False),
        ("*", "sqs:SendMessage", True),
    ],
)
def test_action_wildcards(
    pattern: str, action: str, matches: bool, evaluate_both: Evaluate
) -> None:
    """IAM User Guide, "IAM JSON policy elements: Action": * and ? wildcards, and action
    names are not case-sensitive."""
    # Given a statement for the pattern
    policy = identity(allow(pattern, "*"))

    # When the action is requested (on a resource of a type it acts on)
    request = Request(PUBLISHER, action, resource_acted_on(action), INSTITUTE)
    decision = evaluate_both(request, [policy])

    # Then it applies or not
    assert decision.allowed is matches


@pytest.mark.parametrize(
    ("pattern", "arn", "matches"),
    [
        ("arn:aws:s3:::prep-origin/*", f"{ORIGIN}/manifests/1.json", True),
        ("arn:aws:s3:::prep-origin/*", ORIGIN, False),
        ("arn:aws:s3:::Prep-Origin/*", f"{ORIGIN}/k", False),  # resources are case-sensitive
        ("arn:aws:s3:::prep-origin/manifests/?.json", f"{ORIGIN}/manifests/1.json", True),
        ("arn:aws:s3:::*/*", f"{SITE}/index.html", True),
        ("arn:aws:s3:::*", SITE, True),
        (
            f"arn:aws:dynamodb:*:{INSTITUTE}:table/ledger",
            f"arn:aws:dynamodb:us-east-1:{INSTITUTE}:table/ledger",
            True,
        ),
        (  # a * that ends a segment may run past the colons ...
            "arn:aws:dynamodb:us-*:table/ledger",
            f"arn:aws:dynamodb:us-east-1:{INSTITUTE}:table/ledger",
            True,
        ),
        (  # ... one within a segment may not
            "arn:aws:dynamodb:u*1:table/ledger",
            f"arn:aws:dynamodb:us-east-1:{INSTITUTE}:table/ledger",
            False,
        ),
        ("arn:aws:s3:::*log*", "arn:aws:s3:::carlos-logs/today.log", True),
    ],
)
def test_resource_wildcards(pattern: str, arn: str, matches: bool, evaluate_both: Evaluate) -> None:
    """IAM User Guide, "IAM JSON policy elements: Resource": * and ? within ARN segments, a
    * ending a segment may expand past colons, and matching is case-sensitive."""
    # Given a statement for the resource pattern, on an action that acts on such resources
    action = action_on(arn)
    policy = identity(allow(action, pattern))

    # When that resource is requested
    decision = evaluate_both(Request(PUBLISHER, action, arn, INSTITUTE), [policy])

    # Then it applies or not
    assert decision.allowed is matches


def test_not_action_allows_everything_but_the_listed_actions(evaluate_both: Evaluate) -> None:
    """IAM User Guide, "IAM JSON policy elements: NotAction": Allow with NotAction grants
    every action not listed."""
    # Given an allow of everything except IAM
    policy = identity({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})

    def decide(action: str) -> bool:
        return evaluate_both(Request(PUBLISHER, action, "*", INSTITUTE), [policy]).allowed

    # When S3 and IAM actions are requested
    # Then only the unlisted one is allowed
    assert decide("s3:GetObject")
    assert not decide("iam:CreateUser")


def test_deny_with_not_resource_denies_everything_outside_the_listed_resources(
    evaluate_both: Evaluate,
) -> None:
    """IAM User Guide, "IAM JSON policy elements: NotResource"."""
    # Given an allow of all of S3 but a deny outside the origin
    policy = identity(
        allow("s3:*", "*"),
        {"Sid": "OnlyTheOrigin", "Effect": "Deny", "Action": "s3:*", "NotResource": f"{ORIGIN}/*"},
    )

    # When the origin and another bucket are read
    inside = evaluate_both(Request(PUBLISHER, "s3:GetObject", f"{ORIGIN}/k", INSTITUTE), [policy])
    outside = evaluate_both(Request(PUBLISHER, "s3:GetObject", f"{SITE}/k", INSTITUTE), [policy])

    # Then only the origin is readable
    assert inside.allowed
    assert not outside.allowed
    assert "statement OnlyTheOrigin" in outside.reason


def test_the_signing_key_secret_denies_every_principal_but_its_reader(
    evaluate_both: Evaluate,
) -> None:
    """IAM User Guide, "IAM JSON policy elements: Condition operators": ArnNotEquals is a
    negated operator, so it holds when aws:PrincipalArn is absent (a service caller)."""
    # Given the secret's resource policy, as the signing key construct writes it
    reader = Principal.role(f"arn:aws:iam::{INSTITUTE}:role/SignRole", "sign")
    secret = f"arn:aws:secretsmanager:us-east-1:{INSTITUTE}:secret:prep-key-AbCdEf"
    policy = resource(
        {
            "Sid": "OnlyTheSignFunctionReadsTheKey",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": reader.arn}},
        },
        name="secret policy of prep-key",
    )
    admin = identity(allow("*", "*"))

    def decide(caller: Principal) -> bool:
        request = Request(caller, "secretsmanager:GetSecretValue", secret, INSTITUTE)
        return evaluate_both(request, [admin], policy).allowed

    # When the reader, an admin role and a service read it
    # Then only the reader gets the key
    assert decide(reader)
    assert not decide(PUBLISHER)
    assert not decide(Principal.service("cloudwatch.amazonaws.com"))


# --- conditions -------------------------------------------------------------------------

CONDITION_TABLE = [
    # (condition, context, holds)
    ({"StringEquals": {"s3:prefix": "manifests/"}}, {"s3:prefix": "manifests/"}, True),
    ({"StringEquals": {"s3:prefix": "manifests/"}}, {"s3:prefix": "Manifests/"}, False),
    ({"StringEquals": {"s3:prefix": "manifests/"}}, {}, False),  # missing key
    ({"StringEquals": {"s3:prefix": ["a/", "b/"]}}, {"s3:prefix": "b/"}, True),  # values OR
    ({"StringNotEquals": {"s3:prefix": ["a/", "b/"]}}, {"s3:prefix": "b/"}, False),  # NOR
    ({"StringNotEquals": {"s3:prefix": ["a/", "b/"]}}, {"s3:prefix": "c/"}, True),
    ({"StringNotEquals": {"s3:prefix": "a/"}}, {}, True),  # negated: missing key holds
    ({"StringEqualsIgnoreCase": {"s3:prefix": "MANIFESTS/"}}, {"s3:prefix": "manifests/"}, True),
    ({"StringLike": {"s3:prefix": "manifests/*"}}, {"s3:prefix": "manifests/1"}, True),
    ({"StringLike": {"s3:prefix": "manifests/?"}}, {"s3:prefix": "manifests/12"}, False),
    ({"StringNotLike": {"s3:prefix": "drafts/*"}}, {"s3:prefix": "drafts/x"}, False),
    (
        {"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{INSTITUTE}:role/prep-*"}},
        {"aws:PrincipalArn": PUBLISHER.arn},
        True,
    ),
    (
        {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/prep-publisher"}},
        {"aws:PrincipalArn": PUBLISHER.arn},
        True,
    ),
    (
        {"ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::{INSTITUTE}:role/prep-*"}},
        {"aws:PrincipalArn": PUBLISHER.arn},
        False,
    ),
    ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": False}, True),
    ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": "true"}, False),
    ({"Bool": {"aws:SecureTransport": "false"}}, {}, False),
    ({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": 5}, True),
    ({"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}, True),
    ({"NumericGreaterThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}, False),
    ({"NumericGreaterThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "11"}, True),
    ({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "many"}, False),
    ({"Null": {"sts:ExternalId": "true"}}, {}, True),
    ({"Null": {"sts:ExternalId": "true"}}, {"sts:ExternalId": "x"}, False),
    ({"Null": {"sts:ExternalId": "false"}}, {"sts:ExternalId": "x"}, True),
    ({"StringEqualsIfExists": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}, {}, True),
    (
        {"StringEqualsIfExists": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
        {"kms:ViaService": "sqs.us-east-1.amazonaws.com"},
        False,
    ),
    ({"BoolIfExists": {"aws:PrincipalIsAWSService": "false"}}, {}, True),
    (  # multiple keys in one operator: AND
        {"StringEquals": {"sts:ExternalId": "x", "aws:ResourceAccount": DIFUSOR}},
        {"sts:ExternalId": "x", "aws:ResourceAccount": INSTITUTE},
        False,
    ),
    (  # multiple operators: AND
        {"StringEquals": {"sts:ExternalId": "x"}, "Bool": {"aws:SecureTransport": "true"}},
        {"sts:ExternalId": "x", "aws:SecureTransport": True},
        True,
    ),
    ({"StringEquals": {"AWS:ResourceAccount": DIFUSOR}}, {"aws:resourceaccount": DIFUSOR}, True),
    (
        {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["ELECTION#2027"]}},
        {"dynamodb:LeadingKeys": ["ELECTION#2027"]},
        True,
    ),
    (
        {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["ELECTION#2027"]}},
        {"dynamodb:LeadingKeys": ["ELECTION#2027", "ELECTION#2024"]},
        False,
    ),
    ({"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["ELECTION#2027"]}}, {}, True),
    (
        {"ForAnyValue:StringLike": {"aws:TagKeys": ["env*"]}},
        {"aws:TagKeys": ["owner", "environment"]},
        True,
    ),
    ({"ForAnyValue:StringLike": {"aws:TagKeys": ["env*"]}}, {"aws:TagKeys": ["owner"]}, False),
    ({"ForAnyValue:StringLike": {"aws:TagKeys": ["env*"]}}, {}, False),
]


def condition_probe(condition: dict[str, Any], context: dict[str, Any]) -> OracleRequest:
    """A Condition block as the only condition of an identity allow, on an action whose
    requests carry its keys (the oracle drops the keys an action's requests never carry)."""
    keys = {key.lower() for block in condition.values() for key in block}
    services = {key.split(":")[0] for key in keys} - {"aws"}
    action, resource_arn, key_policy = {
        "s3": ("s3:ListBucket", ORIGIN, None),
        "sts": ("sts:AssumeRole", f"arn:aws:iam::{INSTITUTE}:role/target", None),
        "kms": ("kms:Decrypt", TOPIC_KEY, DEFAULT_KEY_POLICY),
        "dynamodb": ("dynamodb:GetItem", f"arn:aws:dynamodb:us-east-1:{INSTITUTE}:table/t", None),
    }[services.pop() if services else "s3"]
    policy = identity(allow(action, resource_arn, Condition=condition))
    request = Request(PUBLISHER, action, resource_arn, INSTITUTE, context)
    return OracleRequest.of(request, [policy], key_policy)


@pytest.mark.parametrize(("condition", "context", "holds"), CONDITION_TABLE)
def test_condition_operators(
    condition: dict[str, Any], context: dict[str, Any], holds: bool, oracle: Oracle
) -> None:
    """IAM User Guide, "IAM JSON policy elements: Condition operators" (a missing key is
    false, except for negated operators, ...IfExists and Null), "Conditions with multiple
    context keys or values" (keys and operators AND, values OR, negated values NOR) and
    "Single-valued vs. multivalued context keys" (ForAllValues holds with no values,
    ForAnyValue doesn't)."""
    # Given a Condition block and a request context
    # When it is evaluated, and the oracle decides a request allowed only under it
    result = conditions_hold(condition, context)
    answer = oracle.ask(condition_probe(condition, context))

    # Then it holds as the guide says, and the oracle agrees
    assert result is holds
    assert answer.ignored_context_keys == ()
    assert (answer.result == ALLOWED) is holds, answer


def test_principal_keys_are_filled_from_the_caller(evaluate_both: Evaluate) -> None:
    """IAM User Guide, "AWS global condition context keys": aws:PrincipalArn is the role's
    ARN for a role session, aws:ResourceAccount the resource owner's account."""
    # Given a statement conditioned on both
    policy = identity(
        allow(
            "s3:GetObject",
            "*",
            Condition={
                "ArnEquals": {"aws:PrincipalArn": PUBLISHER.arn},
                "StringEquals": {"aws:ResourceAccount": INSTITUTE},
            },
        )
    )

    # When the role's session reads in its own account and the monitor tries the same
    # Then the keys were there without the caller spelling them out
    assert evaluate_both(
        Request(PUBLISHER, "s3:GetObject", f"{ORIGIN}/k", INSTITUTE), [policy]
    ).allowed
    assert not evaluate_both(
        Request(MONITOR, "s3:GetObject", f"{ORIGIN}/k", INSTITUTE), [policy]
    ).allowed


# --- forms the evaluator refuses --------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "side", "oracle_refuses"),
    [
        (
            identity({"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}),
            "identity",
            True,
        ),
        # (the oracle reads a statement with no Principal as matching no one)
        (resource({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}), "resource", False),
        (
            resource(
                {
                    "Effect": "Deny",
                    "NotPrincipal": root(INSTITUTE),
                    "Action": "s3:*",
                    "Resource": "*",
                }
            ),
            "resource",
            False,
        ),
        (identity(allow("s3:*", "arn:aws:s3:::${aws:username}/*")), "identity", False),
        (
            identity(allow("s3:*", "*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
            "identity",
            False,
        ),
        (identity({"Effect": "Maybe", "Action": "s3:*", "Resource": "*"}), "identity", True),
    ],
)
def test_forms_outside_the_templates_are_refused_not_guessed(
    policy: Policy, side: str, oracle_refuses: bool, oracle: Oracle
) -> None:
    """Principal in an identity policy, a resource statement without one, NotPrincipal,
    policy variables, IP conditions, bad effects: PolicyError, so a check can't pass by
    misreading a policy. (The oracle refuses the two invalid documents as well, and decides
    the rest: a refusal here is no verdict to compare.)"""
    # Given a policy in a form the evaluator doesn't model
    request = Request(PUBLISHER, "s3:GetObject", f"{ORIGIN}/k", INSTITUTE)
    identity_policies, resource_policy = ([policy], None) if side == "identity" else ([], policy)

    # When it is evaluated
    # Then it is refused
    with pytest.raises(PolicyError):
        evaluate(request, identity_policies, resource_policy)
    # And the oracle refuses the invalid documents
    answer = oracle.ask(OracleRequest.of(request, identity_policies, resource_policy))
    assert (answer.result == "error") is oracle_refuses, answer


def test_principal_from_a_session_arn_maps_to_its_role() -> None:
    """IAM User Guide, "AWS JSON policy elements: Principal" (role sessions)."""
    # Given the ARN STS reports for a session
    session = f"arn:aws:sts::{INSTITUTE}:assumed-role/prep-publisher/replicate"

    # When it is read as a principal
    principal = Principal.from_arn(session)

    # Then its role, account and label are the role's and the session's
    assert principal.arn == f"arn:aws:iam::{INSTITUTE}:role/prep-publisher"
    assert principal.account == INSTITUTE
    assert principal.label == session
    assert not principal.is_service


# --- the second opinion itself ----------------------------------------------------------


@pytest.mark.parametrize("entry", KNOWN_DISAGREEMENTS, ids=lambda entry: entry.name)
def test_each_listed_disagreement_still_disagrees(entry: KnownDisagreement, oracle: Oracle) -> None:
    """An entry whose disagreement is gone (the oracle fixed, or ours changed) fails here,
    so the list cannot keep excusing what no longer needs it."""
    # Given the entry's example
    assert entry.example is not None
    request, identity_policies, resource_policy = entry.example
    asked = OracleRequest.of(request, identity_policies, resource_policy)

    # When both evaluators decide it
    ours = verdict_of(evaluate(request, identity_policies, resource_policy))
    theirs = oracle.ask(asked).result

    # Then the entry covers it and they still disagree as listed
    assert entry.applies(asked)
    assert (ours, theirs) == (entry.ours, entry.oracle)


def test_a_verdict_the_oracle_does_not_share_fails_the_comparison(oracle: Oracle) -> None:
    # Given a request both evaluators allow
    request = Request(PUBLISHER, "s3:GetObject", f"{ORIGIN}/k", INSTITUTE)
    asked = OracleRequest.of(request, [identity(allow("s3:GetObject", f"{ORIGIN}/*"))])
    answer = oracle.ask(asked)

    # When the comparison is told ours denied it
    problem = disagreement(asked, IMPLICIT, answer, KNOWN_DISAGREEMENTS)

    # Then it says so, and with ours as it is it passes
    assert problem == "iam-simulate says Allowed, ours ImplicitlyDenied"
    assert disagreement(asked, ALLOWED, answer, KNOWN_DISAGREEMENTS) is None


def test_a_listed_disagreement_that_no_longer_occurs_fails_the_comparison() -> None:
    # Given an entry that covers every request, and a request both evaluators allow
    entry = replace(KNOWN_DISAGREEMENTS[0], applies=lambda _: True)
    asked = OracleRequest.of(Request(PUBLISHER, "s3:GetObject", f"{ORIGIN}/k", INSTITUTE))

    # When the oracle agrees with ours
    problem = disagreement(asked, ALLOWED, OracleAnswer(ALLOWED), [entry])

    # Then the entry is reported as stale
    assert problem is not None and "no longer holds" in problem


def test_an_answer_without_a_condition_key_the_policies_read_is_not_taken() -> None:
    """The oracle drops a context key it believes the action's requests never carry; an
    answer given without a key a condition reads would agree or disagree by chance."""
    # Given a request whose key policy reads aws:SourceVpce
    key_policy = resource(
        {
            "Effect": "Allow",
            "Principal": root(INSTITUTE),
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}},
        }
    )
    asked = OracleRequest.of(
        Request(PUBLISHER, "kms:Decrypt", TOPIC_KEY, INSTITUTE), [], key_policy
    )

    # When the oracle's answer (the same verdict as ours) was given without that key
    answer = OracleAnswer(IMPLICIT, ignored_context_keys=("aws:SourceVpce",))

    # Then the comparison refuses it; given with the key, it is taken
    assert disagreement(asked, IMPLICIT, answer, KNOWN_DISAGREEMENTS) == (
        "iam-simulate dropped ['aws:sourcevpce'], which a policy's condition reads"
    )
    assert disagreement(asked, IMPLICIT, OracleAnswer(IMPLICIT), KNOWN_DISAGREEMENTS) is None


@pytest.mark.parametrize(
    ("secret_read", "allowed"), [("prep-key-AbCdEf", True), ("other-Zz", False)]
)
def test_the_encryption_context_key_the_oracle_filters_out_is_put_back(
    secret_read: str, allowed: bool, oracle: Oracle, evaluate_both: Evaluate
) -> None:
    """iam-simulate 0.1.173 drops kms:EncryptionContext:SecretARN from a kms:Decrypt request
    (its list names kms:EncryptionContext:${EncryptionContextKey}, and it matches variable
    keys only after a "/"); AWS KMS documents the key ("AWS KMS condition keys",
    kms:EncryptionContext:context-key) and Secrets Manager sets SecretARN in it ("Secret
    encryption and decryption in AWS Secrets Manager"). simulate.mjs puts it back."""
    # Given a key policy that lets the role decrypt one secret's data keys only
    secret = f"arn:aws:secretsmanager:us-east-1:{INSTITUTE}:secret:"
    key_policy = resource(
        {
            "Effect": "Allow",
            "Principal": {"AWS": PUBLISHER.arn},
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:EncryptionContext:SecretARN": secret + "prep-key-AbCdEf"}
            },
        },
        name="key policy of SigningKey",
    )
    context = {"kms:EncryptionContext:SecretARN": secret + secret_read}
    request = Request(PUBLISHER, "kms:Decrypt", TOPIC_KEY, INSTITUTE, context)

    # When both decide the role's decryption for a secret
    decision = evaluate_both(request, [], key_policy)
    answer = oracle.ask(OracleRequest.of(request, [], key_policy))

    # Then only that secret's is allowed, by both, with the key seen by the oracle
    assert decision.allowed is allowed
    assert answer.restored_context_keys == ("kms:EncryptionContext:SecretARN",)
    assert answer.ignored_context_keys == ()


def test_the_recorder_gives_back_each_decision_as_the_evaluator_saw_it(tmp_path: Path) -> None:
    # Given two decisions under the same policies, recorded
    path = tmp_path / "decisions.jsonl"
    recorder = DecisionRecorder(path)
    requests = [
        Request(
            PUBLISHER, "s3:PutObject", f"{SITE}/index.html", DIFUSOR, {"aws:SecureTransport": True}
        ),
        Request(OTHER_INSTITUTE_ROLE, "s3:PutObject", f"{SITE}/a.json", DIFUSOR),
    ]
    decided = [
        (
            r,
            (PUBLISHER_WRITES_SITES,),
            SITE_POLICY,
            evaluate(r, [PUBLISHER_WRITES_SITES], SITE_POLICY),
        )
        for r in requests
    ]
    for request, identity_policies, resource_policy, decision in decided:
        recorder.record(request, identity_policies, resource_policy, decision)
    recorder.close()

    # When they are read back
    back = [
        (d.request, d.identity_policies, d.resource_policy, d.decision)
        for d in read_decisions(path)
    ]

    # Then each is as decided, one allowed and one denied, and each policy was written once
    assert back == decided
    assert [d.allowed for *_, d in back] == [True, False]
    assert recorder.count == 2
    assert sum('"kind": "policy"' in line for line in path.read_text().splitlines()) == 2


def test_without_the_npm_package_the_comparison_fails_saying_make_test_installs_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a checkout whose node_modules lacks the package
    monkeypatch.setattr(tests.iam_oracle, "PACKAGE", tmp_path / "absent" / "package.json")

    # When the oracle is started, Then it fails (no skip), saying what installs it
    with pytest.raises(OracleMissing, match=r"`make test` installs it"), Oracle():
        pass
