"""The CDK app's stacks: the institute's (origin account) and the difusor's (its own account)."""
