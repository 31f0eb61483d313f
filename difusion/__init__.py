"""difusion: signed, verifiable delivery of PREP snapshots to the difusores oficiales.

The package holds the domain (package names, archive safety, manifests, signatures,
publication plans), the services that apply it, the AWS adapters they run on, and the
embedded default (``difusion.local``) that runs the same handlers on a local emulator.
"""
