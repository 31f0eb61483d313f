"""The response headers policy as one value: what the stack deploys, the local sites apply."""

from __future__ import annotations

import pytest

from difusion.viewer_headers import OriginInvalid, ViewerHeaders, portal_origin


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://prep.ieebcs.org.mx", "https://prep.ieebcs.org.mx"),
        ("https://PREP.ieebcs.org.mx/", "https://prep.ieebcs.org.mx"),
        ("https://prep.ieebcs.org.mx:8443", "https://prep.ieebcs.org.mx:8443"),
        # browsers leave the default port out of Origin: so must the allow-list
        ("https://prep.ieebcs.org.mx:443", "https://prep.ieebcs.org.mx"),
    ],
)
def test_a_portal_is_named_by_its_origin(value, origin):
    assert portal_origin(value) == origin


@pytest.mark.parametrize(
    "value",
    [
        "https://prep.ieebcs.org.mx/difusores.html",  # a page, not an origin
        "http://prep.ieebcs.org.mx",  # plain http
        "*",
        "https://*.ieebcs.org.mx",
        "https://localhost",  # no dot: not a public host
        "http://127.0.0.1:8080",  # loopback only where allowed
    ],
)
def test_anything_else_is_refused(value):
    with pytest.raises(OriginInvalid):
        portal_origin(value)


def test_plain_http_on_loopback_only_for_the_embedded_default():
    assert portal_origin("http://127.0.0.1:8080", loopback=True) == "http://127.0.0.1:8080"
    with pytest.raises(OriginInvalid):
        portal_origin("http://prep.ieebcs.org.mx", loopback=True)


def test_only_the_portal_gets_an_allow_origin_and_everyone_revalidates():
    policy = ViewerHeaders(cors_origins=("https://prep.ieebcs.org.mx",))
    assert policy.for_response("https://prep.ieebcs.org.mx") == {
        "Cache-Control": "no-cache",
        "Access-Control-Allow-Origin": "https://prep.ieebcs.org.mx",
    }
    # a look-alike, a sub-domain, another scheme, no Origin at all: nothing opened
    for other in (
        "https://prep.ieebcs.org.mx.evil.example",
        "https://sub.prep.ieebcs.org.mx",
        "http://prep.ieebcs.org.mx",
        "null",
        None,
    ):
        assert policy.for_response(other) == {"Cache-Control": "no-cache"}
