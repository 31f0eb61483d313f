"""``difusion preflight``: read-only checks of a real deployment before drills and election
night, each line ✓ or ✗ with a reason.

Two modes, both read-only:

- **institute** (UCSI's credentials in the institute's account): every permission the
  pipeline's functions need, asked of IAM's policy simulator (``requirements`` is the one
  table of them); the signing secret readable by the sign function only; a confirmed
  subscription on the alarm topic; the window timer; and each registered difusor's delivery
  role, from the difusor's own report.
- **difusor** (read-only credentials in a difusor's account): its distribution deployed,
  HTTPS-only, behind its WAF and reading its private bucket with origin access control;
  the bucket's policy letting the institute's two roles write; the delivery role
  assumable by them with the external id (and not without), allowed only to invalidate.

``checks`` and ``difusor_checks`` are pure functions over AWS's responses; ``collect``
makes the calls; ``report`` prints the table or JSON; ``command`` is the CLI's part.
Not shipped to Lambda: it imports the dev-only IAM evaluator (``difusion.local.iam``).
"""
