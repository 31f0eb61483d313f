"""Start and stop a moto server on loopback, owned by this process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from difusion.local.kvs import HOST_SUFFIX as KVS_HOST_SUFFIX
from difusion.local.kvs import PORT_VARIABLE as KVS_PORT_VARIABLE

REGION = "us-east-1"
ORIGIN_ACCOUNT = "123456789012"  # moto's default account: the institute's


class EmulatorError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalEmulator:
    """A moto server subprocess on 127.0.0.1. Use as a context manager."""

    def __init__(
        self, log_path: Path | None = None, port: int | None = None, kvs_port: int | None = None
    ) -> None:
        """``port`` and ``kvs_port`` name a running emulator to attach to (a worker process);
        by default, free ports for one :meth:`start` starts."""
        self.port = port or _free_port()
        self.kvs_port = kvs_port or _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalEmulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> None:
        log = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "MOTO_PORT": str(self.port), KVS_PORT_VARIABLE: str(self.kvs_port)}
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "difusion.local.motoserver",
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            stdout=log,
            stderr=log,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmulatorError(f"moto server exited with code {self._process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise EmulatorError(f"moto server did not answer on {self.endpoint}")
        self.configure({"stepfunctions": {"execute_state_machine": True}})

    def configure(self, config: dict[str, object]) -> None:
        self._post("/moto-api/config", config)

    def reset(self) -> None:
        """Forget every resource (between tests)."""
        self._post("/moto-api/reset", {})

    def _post(self, path: str, body: dict[str, object]) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def environment(self) -> dict[str, str]:
        """The standard AWS settings that point every SDK client at this emulator.

        CloudFront KeyValueStore's data plane is the exception: the SDK puts the account
        in front of the endpoint's host, so it is named by a host that never resolves and
        reached through the emulator as an HTTP proxy for that host alone (see
        :mod:`difusion.local.kvs`); everything on loopback bypasses the proxy."""
        proxy = f"http://127.0.0.1:{self.kvs_port}"
        loopback = "127.0.0.1,localhost"
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_CLOUDFRONT_KEYVALUESTORE": f"http://{KVS_HOST_SUFFIX}",
            "HTTP_PROXY": proxy,
            "http_proxy": proxy,
            "NO_PROXY": loopback,
            "no_proxy": loopback,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
