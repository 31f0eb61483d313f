"""IAM checks for the tests: would AWS allow what a function does, under the templates'
policies? ``evaluate`` decides one request; ``operations`` says which requests a botocore
call makes. Dev-only: not shipped to Lambda."""

from difusion.local.iam.evaluate import (
    Decision,
    Policy,
    PolicyError,
    Principal,
    Request,
    conditions_hold,
    evaluate,
)
from difusion.local.iam.operations import Permission, UnknownOperation, required_permissions

__all__ = [
    "Decision",
    "Permission",
    "Policy",
    "PolicyError",
    "Principal",
    "Request",
    "UnknownOperation",
    "conditions_hold",
    "evaluate",
    "required_permissions",
]
