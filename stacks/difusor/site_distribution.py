"""CloudFront in front of the site bucket: HTTPS only, whole versions, fresh for everyone.

The viewer-request function routes every request to one whole version of the site (see
``site_versions.py`` and docs/serving.md). How long CloudFront may keep what it fetched is the
difusor's ``cache_mode``:

- ``versioned`` (default): a version's files never change while it is routed and each
  version has its own cache keys (the query string ``v`` the function sets is the only one in
  the key), so the edge keeps them for a year, compressed, with request collapsing and
  Origin Shield in front of the bucket. A new cut is a new version: nothing stale is served
  and nothing is invalidated.
- ``revalidate`` (literal "evitar caché"): minimum and default TTL 0, so every request is a
  conditional GET at the bucket (the copies carry ``Cache-Control: no-cache``). CloudFront
  caches nothing compressed with a minimum TTL of 0, so compression is off.

Browsers get ``Cache-Control: no-cache`` either way (response headers policy): they revalidate
with CloudFront on every load. The same policy lets the institute's portal, and only it, read
the site cross-origin (its verifier): ``difusion/viewer_headers.py``.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from constructs import Construct

from difusion.topology import DIFUSOR_REGION
from difusion.viewer_headers import CORS_ALLOW_HEADERS, CORS_MAX_AGE_SECONDS, CORS_METHODS
from stacks.config import DifusorConfig
from stacks.difusor.site_versions import SiteVersions

A_YEAR = Duration.days(365)


class SiteDistribution(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DifusorConfig,
        bucket: s3.IBucket,
        logs: s3.IBucket,
        web_acl_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        versioned = config.cache_mode == "versioned"
        self.cache_policy = cloudfront.CachePolicy(
            self,
            "Versioned" if versioned else "Revalidate",
            comment=(
                "PREP: immutable versions, kept at the edge"
                if versioned
                else "PREP: every request revalidated with the bucket"
            ),
            min_ttl=A_YEAR if versioned else Duration.seconds(0),
            default_ttl=A_YEAR if versioned else Duration.seconds(0),
            max_ttl=A_YEAR,
            # The version the function routed to: a slot's entries from an earlier version
            # are never served for a later one.
            query_string_behavior=cloudfront.CacheQueryStringBehavior.allow_list("v"),
            enable_accept_encoding_gzip=versioned,
            enable_accept_encoding_brotli=versioned,
        )
        viewer = config.viewer_headers
        self.headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="PREP: security headers; browsers revalidate every load; the portal reads",
            custom_headers_behavior=cloudfront.ResponseCustomHeadersBehavior(
                custom_headers=[
                    cloudfront.ResponseCustomHeader(
                        header="Cache-Control", value=viewer.cache_control, override=True
                    )
                ]
            ),
            # The institute's verifier reads the site from the institute's portal; no other
            # origin, no credentials, GET and HEAD only (difusion/viewer_headers.py).
            cors_behavior=cloudfront.ResponseHeadersCorsBehavior(
                access_control_allow_origins=list(viewer.cors_origins),
                access_control_allow_methods=list(CORS_METHODS),
                access_control_allow_headers=list(CORS_ALLOW_HEADERS),
                access_control_allow_credentials=False,
                access_control_max_age=Duration.seconds(CORS_MAX_AGE_SECONDS),
                origin_override=True,
            ),
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(365),
                    include_subdomains=True,
                    override=True,
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.SAMEORIGIN, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN,
                    override=True,
                ),
                xss_protection=cloudfront.ResponseHeadersXSSProtection(
                    protection=True, mode_block=True, override=True
                ),
            ),
        )
        self.versions = SiteVersions(self, "Versions", config=config)
        custom_domain: dict[str, Any] = {}
        if config.domain_name and config.certificate_arn:
            custom_domain = {
                "domain_names": [config.domain_name],
                "certificate": acm.Certificate.from_certificate_arn(
                    self, "Certificate", config.certificate_arn
                ),
                # Only a custom certificate lets the TLS policy be chosen.
                "minimum_protocol_version": cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            }
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"PREP — {config.name}",
            # No default root object: "/" is the function's (a redirect to the live version).
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(
                    bucket, origin_shield_enabled=True, origin_shield_region=DIFUSOR_REGION
                ),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=self.cache_policy,
                response_headers_policy=self.headers,
                # CloudFront compresses only what it caches with a minimum TTL above 0.
                compress=versioned,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=self.versions.function,
                        event_type=cloudfront.FunctionEventType.VIEWER_REQUEST,
                    )
                ],
            ),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_logging=True,
            log_bucket=logs,
            log_file_prefix="cloudfront/",
            web_acl_id=web_acl_arn,
            **custom_domain,
        )
        Validations.of(self.distribution).acknowledge(
            Acknowledgment(
                id="AwsSolutions-CFR1",
                reason="Preliminary results are public information for anyone, anywhere "
                "(RE art. 353.1): no geographic restriction.",
            ),
            *(
                []
                if custom_domain
                else [
                    Acknowledgment(
                        id="AwsSolutions-CFR4",
                        reason="Without a custom domain CloudFront serves its default "
                        "certificate, whose TLS policy cannot be set; set domain_name and "
                        "certificate_arn to enforce TLS 1.2.",
                    )
                ]
            ),
        )
