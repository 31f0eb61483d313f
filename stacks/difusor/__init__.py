"""The difusor's stack and its constructs (the difusor's own account, us-east-1)."""
