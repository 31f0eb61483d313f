"""The difusor's stack, deployed by each difusor in its own account, in us-east-1
(CloudFront's WAF web ACLs and Shield protections live there)."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_shield as shield
from constructs import Construct

from difusion.topology import DIFUSOR_REGION
from stacks.config import DifusorConfig
from stacks.difusor.delivery_role import DeliveryRole
from stacks.difusor.site_bucket import SiteBucket
from stacks.difusor.site_distribution import SiteDistribution
from stacks.difusor.web_acl import SiteWebAcl


class DifusorStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DifusorConfig, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.site = SiteBucket(self, "Site")
        self.web_acl = SiteWebAcl(self, "Waf", rate_limit=config.rate_limit_per_5_minutes)
        self.distribution = SiteDistribution(
            self,
            "Cdn",
            config=config,
            bucket=self.site.bucket,
            logs=self.site.logs,
            web_acl_arn=self.web_acl.web_acl.attr_arn,
        )
        self.delivery = DeliveryRole(
            self,
            "Delivery",
            config=config,
            bucket=self.site.bucket,
            store=self.distribution.versions.store,
        )
        # Shield Standard protects every CloudFront distribution at no cost. Difusores with
        # a Shield Advanced subscription set shield_advanced to protect this one too.
        if config.shield_advanced:
            shield.CfnProtection(
                self,
                "ShieldAdvanced",
                name=f"prep-{config.difusor_id}",
                resource_arn=self.format_arn(
                    service="cloudfront",
                    region="",
                    resource="distribution",
                    resource_name=self.distribution.distribution.distribution_id,
                ),
            )
        domain = config.domain_name or self.distribution.distribution.distribution_domain_name
        outputs = {
            "DifusorId": config.difusor_id,
            "DifusorName": config.name,
            "AccountId": self.account,
            "SiteBucketName": self.site.bucket.bucket_name,
            # CloudFront's standard logs, under cloudfront/: what `difusion memoria` reads
            "LogBucketName": self.site.logs.bucket_name,
            "DistributionId": self.distribution.distribution.distribution_id,
            "KeyValueStoreArn": self.distribution.versions.store.key_value_store_arn,
            "CacheMode": config.cache_mode,
            "DeliveryRoleArn": self.delivery.role.role_arn,
            "ExternalId": config.external_id,
            "ElectionId": config.election_id,
            "SiteRegion": DIFUSOR_REGION,
            "PublicUrl": f"https://{domain}",
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
