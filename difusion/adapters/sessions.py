"""AWS sessions that share one loader of botocore's service models.

Every ``boto3.session.Session()`` builds its own loader and reads the service models,
endpoint rules and partitions from disk again: about 0.1 s of JSON per client. A function
builds its clients once per execution environment, but it builds several (and one session
per difusor account it assumes a role in), and the embedded default builds hundreds. The
models are read-only data, so every session here reads them through one loader, which
caches what it has read. Each session is still a session of its own: credentials, region and
endpoint come from its own arguments and the standard configuration chain, as before.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.loaders
import botocore.session


class _SearchPaths(list[str]):
    """The loader's search paths. ``boto3.session.Session`` appends boto3's own data
    folder to its loader's paths; with one loader for every session, the folder is added
    once instead of once per session."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


_LOADER = botocore.loaders.Loader(extra_search_paths=_SearchPaths())


def new_session(**kwargs: Any) -> boto3.session.Session:
    """``boto3.session.Session(**kwargs)``, reading service models through the shared
    loader."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _LOADER)
    return boto3.session.Session(botocore_session=core, **kwargs)
