"""CloudFront in front of the site bucket: HTTPS only, every request revalidated."""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import DifusorConfig

# Directory URLs (/, /diputaciones/) serve their index.html, as the institute's site does.
INDEX_FUNCTION = """
function handler(event) {
  var request = event.request;
  var uri = request.uri;
  if (uri.endsWith('/')) {
    request.uri = uri + 'index.html';
  } else if (!uri.split('/').pop().includes('.')) {
    request.uri = uri + '/index.html';
  }
  return request;
}
"""


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
        # All TTLs 0: CloudFront revalidates every request at the bucket, so the public never
        # sees a stale cut (a MinTTL above 0 would cache even no-cache responses). With
        # caching disabled CloudFront rejects the gzip and brotli flags ("invalid for policy
        # with caching disabled") and compresses nothing, so neither is set.
        self.cache_policy = cloudfront.CachePolicy(
            self,
            "Revalidate",
            comment="PREP: revalidate every request",
            min_ttl=Duration.seconds(0),
            default_ttl=Duration.seconds(0),
            max_ttl=Duration.seconds(0),
            enable_accept_encoding_gzip=False,
            enable_accept_encoding_brotli=False,
        )
        self.headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="PREP: security headers",
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
        self.index_function = cloudfront.Function(
            self,
            "DirectoryIndex",
            code=cloudfront.FunctionCode.from_inline(INDEX_FUNCTION),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            comment="Serve index.html for directory URLs",
        )
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
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=self.cache_policy,
                response_headers_policy=self.headers,
                # CloudFront compresses only what it caches; with caching off it would not.
                compress=False,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=self.index_function,
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
