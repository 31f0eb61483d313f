"""The version pointer and the function that routes by it (docs/serving.md).

A CloudFront KeyValueStore holds one key, ``live``: which slot of the site bucket serves which
site version. The viewer-request function (``edge/viewer_request.js``, deployed byte for byte
from the repository: ``cf.kvs()`` names the one store associated with it) redirects every
unversioned URL to the live version and sends ``/v/<N>/…`` to ``/_v/<slot>/…?v=N``. The
institute writes the pointer through the delivery role; nobody else does.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_cloudfront as cloudfront
from constructs import Construct

from stacks.config import DifusorConfig

FUNCTION_FILE = Path(__file__).resolve().parents[2] / "edge" / "viewer_request.js"


class SiteVersions(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: DifusorConfig) -> None:
        super().__init__(scope, construct_id)
        # No name: store names are unique in an account (CreateKeyValueStore), and a drill's
        # stack deploys beside the election's; CDK derives one from the stack. The comment
        # is fixed: the API allows 128 characters, a difusor's name may be longer.
        self.store = cloudfront.KeyValueStore(
            self,
            "Pointer",
            comment="PREP: the live site version (written by the institute)",
        )
        self.function = cloudfront.Function(
            self,
            "Router",
            code=cloudfront.FunctionCode.from_file(file_path=str(FUNCTION_FILE)),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            key_value_store=self.store,
            comment="PREP: route every request to one whole site version",
        )
        # Reported once: the association may be attempted before the store is ready.
        self.function.node.add_dependency(self.store)
