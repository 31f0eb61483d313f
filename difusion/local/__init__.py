"""The embedded default: a local AWS emulator (moto server on 127.0.0.1) on which the very
handlers the Lambdas run carry the whole pipeline. Not shipped in the Lambda layer."""
