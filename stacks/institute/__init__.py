"""The institute's stack and its constructs (origin account)."""
