"""The pipeline's steps as plain classes over adapters: ingest, sign, replicate."""
