"""CloudFront standard logs (legacy): the files a difusor's distribution writes.

Each file is gzip'd text: a ``#Version: 1.0`` line, a ``#Fields:`` line, then one request per
line, 33 tab-separated fields, in no particular time order. Times are UTC and are when the
edge finished the response. Empty fields are ``-``. Files are named for the hour in which
their requests *occurred*, ``<prefix><distribution>.YYYY-MM-DD-HH.<unique>.gz``; several
files may share an hour, and entries can arrive up to 24 hours late (in a file named for
the hour they occurred). Delivery is best-effort.
(CloudFront Developer Guide, "Standard logging reference".)
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

# The 33 fields, in file order, as the #Fields line names them.
FIELDS: tuple[str, ...] = (
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
)


def column_name(field: str) -> str:
    """A field's SQL column name: ``cs(User-Agent)`` → ``cs_user_agent``."""
    return re.sub(r"[^a-z0-9]+", "_", field.lower()).strip("_")


COLUMNS: tuple[str, ...] = tuple(column_name(f) for f in FIELDS)

HEADER = "#Version: 1.0\n#Fields: " + " ".join(FIELDS) + "\n"

# <distribution>.YYYY-MM-DD-HH.<unique>.gz, under any prefix
FILE_NAME = re.compile(
    r"^(?P<distribution>[A-Z0-9]+)\.(?P<hour>\d{4}-\d{2}-\d{2}-\d{2})\.[^./]+\.gz$"
)


def file_name(distribution: str, hour: datetime, unique: str) -> str:
    """The name CloudFront gives a file of requests that occurred in ``hour`` (UTC)."""
    return f"{distribution}.{hour.astimezone(UTC):%Y-%m-%d-%H}.{unique}.gz"


def hour_of(name: str) -> datetime | None:
    """The UTC hour a log file's name says its requests occurred in; None for a name that
    is not a CloudFront log file's."""
    match = FILE_NAME.match(name.rsplit("/", 1)[-1])
    if match is None:
        return None
    return datetime.strptime(match["hour"], "%Y-%m-%d-%H").replace(tzinfo=UTC)


@lru_cache(maxsize=8192)  # a log repeats few paths, agents and referers
def encode(value: str) -> str:
    """A field as CloudFront writes it: URL-encoded (spaces as %20, ``%`` as %25, ``~`` and
    ``'`` too), ``-`` when empty. A path or referer the browser already encoded is thus
    encoded twice (``%C3%BA`` becomes ``%25C3%25BA``)."""
    if value == "":
        return "-"
    return urllib.parse.quote(value, safe="/:;,=@!$&()*+?-._")


@dataclass(frozen=True)
class LogRecord:
    """One request, with the fields the memoria reads; the rest are written as CloudFront
    would for an HTTPS GET."""

    at: datetime  # when the edge finished responding (UTC)
    edge_location: str
    client_ip: str
    method: str
    path: str
    status: int  # 0: the viewer closed the connection before the response ("000")
    referer: str
    user_agent: str
    result_type: str  # Hit | RefreshHit | Miss | Error | ...
    response_bytes: int
    time_taken: float
    time_to_first_byte: float
    content_type: str
    host: str = "d111111abcdef8.cloudfront.net"
    request_id: str = "-"
    query: str = ""
    detailed_result_type: str = ""

    def line(self) -> str:
        status = f"{self.status:03d}"
        detailed = self.detailed_result_type or self.result_type
        length = str(self.response_bytes - 300) if self.response_bytes > 300 else "-"
        values = (
            self.at.astimezone(UTC).strftime("%Y-%m-%d\t%H:%M:%S"),
            self.edge_location,
            str(self.response_bytes),
            self.client_ip,
            self.method,
            self.host,
            encode(self.path),
            status,
            encode(self.referer),
            encode(self.user_agent),
            encode(self.query),
            "-",
            self.result_type,
            self.request_id,
            _HTTPS_GET,
            f"{self.time_taken:.3f}",
            _TLS,
            self.result_type,
            _PROTOCOL,
            f"{self.time_to_first_byte:.3f}",
            detailed,
            self.content_type or "-",
            length,
            "-\t-",
        )
        return "\t".join(values)


# The fields every synthetic request shares, between the ones that vary.
_HTTPS_GET = "resultados.example.mx\thttps\t420"
_TLS = "-\tTLSv1.3\tTLS_AES_128_GCM_SHA256"
_PROTOCOL = "HTTP/2.0\t-\t-\t443"
