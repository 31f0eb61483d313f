"""The Ed25519 signing key in Secrets Manager, encrypted with a customer-managed KMS key."""

from __future__ import annotations

from aws_cdk import Acknowledgment, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

# The Sid of the reader's own kms:Decrypt statement (tests remove it for their controls).
DECRYPT_STATEMENT = "DecryptTheSigningKeyThroughSecretsManager"


class SigningKey(Construct):
    """Holds a placeholder until UCSI stores the real key with ``difusion keys store``."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.kms_key = kms.Key(
            self,
            "EncryptionKey",
            description="Encrypts the PREP manifest signing key",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            # A generated name (output SigningSecretName): a fixed one would allow one election
            # per account and could not be reused for 7–30 days after a deletion.
            description="minisign secret key (prep.key) that signs every PREP manifest",
            encryption_key=self.kms_key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        Validations.of(self.secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SMG4",
                reason="The signing key's public half is published and pinned by verifiers; "
                "replacing it is a ceremony (new prep.pub announced), not a timed rotation.",
            )
        )

    def allow_only(self, reader: iam.IRole) -> None:
        """Let ``reader`` read the key and deny every other principal, admins included."""
        self.secret.grant_read(reader)  # its own policy, and the key policy's kms:Decrypt
        # The same kms:Decrypt in the reader's own policy too: IAM's policy simulator, which
        # preflight asks, evaluates a role's own policies only (no key policy for a role
        # caller), and the key policy's first statement delegates to IAM policies anyway.
        # Only through Secrets Manager, for this secret ("Secret encryption and decryption
        # in AWS Secrets Manager"; kms:ViaService in "AWS KMS condition keys").
        reader.add_to_principal_policy(
            iam.PolicyStatement(
                sid=DECRYPT_STATEMENT,
                actions=["kms:Decrypt"],
                resources=[self.kms_key.key_arn],
                conditions={
                    "StringEquals": {
                        "kms:ViaService": f"secretsmanager.{Stack.of(self).region}.amazonaws.com",
                        "kms:EncryptionContext:SecretARN": self.secret.secret_arn,
                    }
                },
            )
        )
        self.secret.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTheSignFunctionReadsTheKey",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["secretsmanager:GetSecretValue"],
                resources=["*"],
                conditions={"ArnNotEquals": {"aws:PrincipalArn": reader.role_arn}},
            )
        )
