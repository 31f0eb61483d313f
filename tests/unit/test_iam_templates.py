"""Reading a synthesized template's policies: intrinsics resolved through a binding, what
is loaded for which resource, and a statement removed for a control."""

from __future__ import annotations

from typing import Any

import pytest

from difusion.local.iam import PolicyError
from difusion.local.iam.templates import (
    Binding,
    Physical,
    UnresolvedReference,
    load_stack,
    resolve,
    without_statement,
)

ACCOUNT = "111122223333"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/prep-publisher-ab12cd"
SECRET_ARN = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prep-key-AbCdEf"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/SigningKey"
BINDING = Binding(
    ACCOUNT,
    "us-east-1",
    {
        "Bucket": Physical.bucket("prep-origin-ab12cd"),
        "Role": Physical.role(ROLE_ARN),
        "Function": Physical("difusion-replicate"),
        "Secret": Physical.secret(SECRET_ARN),
        "Key": Physical.key(KEY_ARN),
    },
    literals={f"arn:aws:iam::{ACCOUNT}:role/prep-publisher": ROLE_ARN},
)


def arn_of(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "Bucket"}, "prep-origin-ab12cd"),
        (arn_of("Bucket"), "arn:aws:s3:::prep-origin-ab12cd"),
        (
            {"Fn::Join": ["", [arn_of("Bucket"), "/incoming/*"]]},
            "arn:aws:s3:::prep-origin-ab12cd/incoming/*",
        ),
        (
            {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":iam::",
                        {"Ref": "AWS::AccountId"},
                        ":root",
                    ],
                ]
            },
            f"arn:aws:iam::{ACCOUNT}:root",
        ),
        ({"Fn::Sub": "${Bucket.Arn}/keys/*"}, "arn:aws:s3:::prep-origin-ab12cd/keys/*"),
        (
            {"Fn::Sub": ["${B}-${AWS::Region}", {"B": {"Ref": "Bucket"}}]},
            "prep-origin-ab12cd-us-east-1",
        ),
        ({"Ref": "Secret"}, SECRET_ARN),
        # a literal the deployment names otherwise, translated only when it is the whole value
        (f"arn:aws:iam::{ACCOUNT}:role/prep-publisher", ROLE_ARN),
        (
            f"arn:aws:iam::{ACCOUNT}:role/prep-publisher*",
            f"arn:aws:iam::{ACCOUNT}:role/prep-publisher*",
        ),
    ],
)
def test_intrinsics_resolve_to_the_bound_names(value, expected):
    assert resolve(value, BINDING) == expected


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"Ref": "Ledger"}, "Ref Ledger"),
        (arn_of("Ledger"), "Fn::GetAtt Ledger.Arn"),
        ({"Fn::GetAtt": ["Bucket", "DomainName"]}, "Fn::GetAtt Bucket.DomainName"),
        ({"Fn::Sub": "${Ledger.Arn}/index/*"}, "Fn::GetAtt Ledger.Arn"),
    ],
)
def test_an_unbound_reference_raises_naming_the_logical_id(value, named):
    with pytest.raises(UnresolvedReference, match=named):
        resolve(value, BINDING)


def test_an_intrinsic_the_stacks_do_not_use_is_refused():
    with pytest.raises(PolicyError, match="Fn::If"):
        resolve({"Fn::If": ["IsProd", "a", "b"]}, BINDING)


def template() -> dict[str, Any]:
    allow_read = {
        "Effect": "Allow",
        "Action": "s3:GetObject*",
        "Resource": {"Fn::Join": ["", [arn_of("Bucket"), "/*"]]},
    }
    return {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {}},
            "BucketPolicy": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "Bucket"},
                    "PolicyDocument": document(
                        {
                            "Sid": "Readers",
                            "Effect": "Allow",
                            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/prep-publisher"},
                            "Action": "s3:GetObject",
                            "Resource": "*",
                        }
                    ),
                },
                "Metadata": {"aws:cdk:path": "Stack/Origin/Bucket/Policy/Resource"},
            },
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": document(
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ),
                    "Policies": [{"PolicyName": "inline", "PolicyDocument": document(allow_read)}],
                },
            },
            "RoleDefaultPolicy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyName": "RoleDefaultPolicy",
                    "Roles": [{"Ref": "Role"}],
                    "PolicyDocument": document(
                        {
                            "Sid": "ReadTheKey",
                            "Effect": "Allow",
                            "Action": "secretsmanager:GetSecretValue",
                            "Resource": {"Ref": "Secret"},
                        }
                    ),
                },
                "Metadata": {"aws:cdk:path": "Stack/Pipeline/Role/DefaultPolicy/Resource"},
            },
            "Function": {"Type": "AWS::Lambda::Function", "Properties": {"Role": arn_of("Role")}},
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "KeyPolicy": document(
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": arn_of("Role")},
                            "Action": "kms:Decrypt",
                            "Resource": "*",
                        }
                    )
                },
            },
            "Secret": {
                "Type": "AWS::SecretsManager::Secret",
                "Properties": {"KmsKeyId": arn_of("Key")},
            },
            # Not bound: not loaded, though its policy names nothing the binding has.
            "Unbound": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": {"Ref": "Nowhere"}},
            },
        }
    }


def test_a_stack_loads_what_the_binding_names_resolved():
    stack = load_stack(template(), BINDING, "Stack")
    assert stack.functions == {"difusion-replicate": ROLE_ARN}
    role = stack.roles[ROLE_ARN]
    assert [p.name for p in role.identity] == [
        "inline policy inline of Role",
        "identity policy Pipeline/Role/DefaultPolicy",
    ]
    assert role.identity[1].document["Statement"][0]["Resource"] == SECRET_ARN
    assert role.trust.document["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    bucket_policy = stack.buckets["prep-origin-ab12cd"]
    assert bucket_policy is not None and bucket_policy.name == "bucket policy Origin/Bucket/Policy"
    assert bucket_policy.document["Statement"][0]["Principal"] == {"AWS": ROLE_ARN}
    assert stack.keys[KEY_ARN].document["Statement"][0]["Principal"] == {"AWS": ROLE_ARN}
    assert stack.secrets[SECRET_ARN].key_arn == KEY_ARN


def test_a_customer_managed_key_on_a_bucket_is_not_silently_ignored():
    changed = template()
    changed["Resources"]["Bucket"]["Properties"]["BucketEncryption"] = {
        "ServerSideEncryptionConfiguration": [
            {
                "ServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": arn_of("Key"),
                }
            }
        ]
    }
    with pytest.raises(PolicyError, match="Bucket is encrypted with a customer-managed key"):
        load_stack(changed, BINDING)


def test_a_statement_is_removed_by_sid_only_where_asked():
    original = template()
    changed = without_statement(original, "ReadTheKey", "Pipeline/Role/DefaultPolicy")
    assert (
        changed["Resources"]["RoleDefaultPolicy"]["Properties"]["PolicyDocument"]["Statement"] == []
    )
    assert original["Resources"]["RoleDefaultPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    with pytest.raises(LookupError, match="no statement 'ReadTheKey' in Origin/Bucket/Policy"):
        without_statement(original, "ReadTheKey", "Origin/Bucket/Policy")
