"""The institute's verifier, in headless Chromium: on the institute's portal, with its key
pinned in the page, reading each difusor's site cross-origin; every file and every acta; one
acta by its casilla's key; and the CORS that lets only the portal read the sites."""

from __future__ import annotations

import csv
import io
import re
import urllib.request

import pytest

from difusion.publication import (
    MANIFEST_PATH,
    SIGNATURE_PATH,
    VERIFY_PAGE_PATH,
    history_path,
    history_signature_path,
)
from tests.integration.test_verify import open_page

pytestmark = pytest.mark.integration


@pytest.fixture
def portal(pipeline, packages):
    """Three cuts delivered and one monitor period run: the board and the verifier are on
    the institute's portal."""
    for package in packages:
        assert pipeline.process(package)["status"] == "accepted"
    pipeline.run_monitor_period()
    return pipeline.portal_url


def verifier(portal: str, **params: str) -> str:
    query = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in params.items())
    return f"{portal}/verificador.html?{query}"


def acta_rows(pipeline, difusor_id: str) -> list[dict[str, str]]:
    """Every acta row of the databases the site serves, with the image it names."""
    objects = pipeline.site_objects(difusor_id)
    rows = []
    for path, body in sorted(objects.items()):
        if not (path.startswith("assets/csv/") and path.endswith(".csv")):
            continue
        lines = list(csv.reader(io.StringIO(body.decode("utf-8"))))
        header = next(i for i, row in enumerate(lines) if "CLAVE_ACTA" in row)
        for values in lines[header + 1 :]:
            row = dict(zip(lines[header], values, strict=True))
            election = path.rsplit("/", 1)[-1].split("_BCS_")[0]
            row["IMAGEN"] = f"assets/actas/{election}/{row['CLAVE_ACTA']}.png"
            rows.append(row)
    return rows


def test_the_institutes_page_verifies_every_difusor_cross_origin(
    pipeline, portal, chromium, tmp_path
):
    head = pipeline.ledger.head()
    for difusor in pipeline.deployment.difusores:
        state, dom = open_page(
            chromium,
            verifier(portal, difusor=difusor.difusor_id),
            f"instituto-{difusor.difusor_id}.png",
            tmp_path / difusor.difusor_id,
        )
        assert state == "verificado", dom[-2500:]
        # read from the difusor's own site (another origin), pinned to the version it serves
        assert f"{pipeline.sites[difusor.difusor_id].url}/v/" in dom
        # with the key in the page, said plainly, and every acta checked
        assert pipeline.secret_key.public_key.fingerprint in dom
        assert pipeline.secret_key.public_key.base64 in dom
        actas = len(acta_rows(pipeline, difusor.difusor_id))
        assert actas > 10 and f"{actas:,} actas revisadas; 0 no corresponden" in dom
        # and what it serves is what the institute last signed
        assert 'data-comparacion="igual"' in dom and head.manifest_sha256 in dom


def test_the_institutes_page_names_each_way_a_site_can_differ(pipeline, portal, chromium, tmp_path):
    site = "uabcs"
    objects = pipeline.site_objects(site)
    page = verifier(portal, difusor=site)
    # An altered file: named
    victim = next(p for p in objects if p.startswith("assets/JSON/"))
    pipeline.tamper(site, victim, objects[victim] + b" ")
    state, dom = open_page(chromium, page, "instituto-archivo-alterado.png", tmp_path / "a")
    assert state == "fallido" and 'data-problema="alterado"' in dom
    assert re.search(r'<section id="alterados">.*' + re.escape(victim), dom, re.S)
    pipeline.tamper(site, victim, objects[victim])
    # An altered acta image: the file, and its CODIGO_INTEGRIDAD mismatch named by casilla
    row = acta_rows(pipeline, site)[3]
    image = row["IMAGEN"]
    pipeline.tamper(site, image, objects[image][:-1] + bytes([objects[image][-1] ^ 1]))
    state, dom = open_page(chromium, page, "instituto-acta-alterada.png", tmp_path / "b")
    assert state == "fallido" and image in dom
    mismatch = re.search(r'<section id="actas-distintas">.*?</section>', dom, re.S)
    assert mismatch, dom[-2500:]
    assert f'data-casilla="{row["CLAVE_CASILLA"]}"' in mismatch[0]
    assert row["CODIGO_INTEGRIDAD"] in mismatch[0]
    assert mismatch[0].count("<tr data-casilla") == 1
    pipeline.tamper(site, image, objects[image])
    # A swapped signature
    pipeline.tamper(site, SIGNATURE_PATH, objects[history_signature_path(2)])
    state, dom = open_page(chromium, page, "instituto-firma-cambiada.png", tmp_path / "c")
    assert state == "fallido" and 'data-problema="firma"' in dom
    # An older manifest replayed with its own valid signature
    pipeline.tamper(site, MANIFEST_PATH, objects[history_path(2)])
    state, dom = open_page(chromium, page, "instituto-manifiesto-anterior.png", tmp_path / "d")
    assert state == "fallido" and 'data-problema="desactualizado"' in dom


def test_a_site_that_fakes_its_own_verification_page_is_caught_by_the_institutes(
    pipeline, portal, chromium, tmp_path
):
    site = "diario-peninsular"
    fake = (
        b'<!doctype html><html lang="es"><body><div id="veredicto" data-estado="verificado">'
        b"VERIFICADO: todo en orden.</div></body></html>"
    )
    pipeline.tamper(site, VERIFY_PAGE_PATH, fake, "text/html; charset=utf-8")
    # The site's own page now says whatever the site wants...
    own = f"{pipeline.sites[site].url}/{VERIFY_PAGE_PATH}"
    state, _ = open_page(chromium, own, "pagina-falsa.png", tmp_path / "own")
    assert state == "verificado"
    # ...the institute's, which runs nothing of the site's, names the fake
    state, dom = open_page(
        chromium, verifier(portal, difusor=site), "instituto-pagina-falsa.png", tmp_path / "inst"
    )
    assert state == "fallido" and 'data-problema="alterado"' in dom
    assert re.search(r'<section id="alterados">.*' + re.escape(VERIFY_PAGE_PATH), dom, re.S)


def test_one_acta_by_its_casillas_key_side_by_side(pipeline, portal, chromium, tmp_path):
    site = "canal-10-los-cabos"
    rows = acta_rows(pipeline, site)
    casilla = next(
        r["CLAVE_CASILLA"]
        for r in rows
        if sum(1 for o in rows if o["CLAVE_CASILLA"] == r["CLAVE_CASILLA"]) == 2
    )
    both = [r for r in rows if r["CLAVE_CASILLA"] == casilla]
    page = verifier(portal, difusor=site, acta=casilla)
    # Both actas of the casilla (its two elections): image, row, hash and code side by side
    state, dom = open_page(chromium, page, "instituto-acta-coincide.png", tmp_path / "a")
    assert state == "verificado"
    for row in both:
        article = re.search(
            rf'<article class="acta" data-acta="{row["CLAVE_ACTA"]}"[^>]*>.*?</article>', dom, re.S
        )
        assert article, dom[-3000:]
        assert 'data-coincide="si"' in article[0] and "COINCIDE" in article[0]
        code = row["CODIGO_INTEGRIDAD"]
        assert f'<code class="codigo">{code}</code>' in article[0]
        assert f'<code class="calculado">{code}</code>' in article[0]  # computed in the browser
        assert '<img src="blob:' in article[0]
        assert f"<td>{row['TOTAL_VOTOS_CALCULADO']}</td>" in article[0]
    # The same lookup on the site's own page
    own = f"{pipeline.sites[site].url}/{VERIFY_PAGE_PATH}?acta={casilla}"
    state, dom = open_page(chromium, own, "sitio-acta-coincide.png", tmp_path / "b")
    assert dom.count('data-coincide="si"') == 2
    # An acta image the site altered: a clear mismatch, the two hashes differing
    altered = both[0]
    objects = pipeline.site_objects(site)
    pipeline.tamper(site, altered["IMAGEN"], objects[altered["IMAGEN"]] + b"\0")
    state, dom = open_page(chromium, page, "instituto-acta-no-coincide.png", tmp_path / "c")
    article = re.search(
        rf'<article class="acta" data-acta="{altered["CLAVE_ACTA"]}"[^>]*>.*?</article>', dom, re.S
    )
    assert 'data-coincide="no"' in article[0] and "NO COINCIDE" in article[0]
    code = altered["CODIGO_INTEGRIDAD"]
    assert f'<code class="codigo">{code}</code>' in article[0]
    assert f'<code class="calculado">{code}</code>' not in article[0]
    assert re.search(r'<code class="calculado">[0-9a-f]{64}</code>', article[0])
    other = re.search(rf'<article class="acta" data-acta="{both[1]["CLAVE_ACTA"]}"[^>]*>', dom)
    assert 'data-coincide="si"' in other[0]
    # A key no database has
    state, dom = open_page(
        chromium, verifier(portal, difusor=site, acta="039999X9999"), "sin-acta.png", tmp_path / "d"
    )
    assert 'id="sin-acta"' in dom


def test_only_the_institutes_portal_may_read_a_site_cross_origin(
    pipeline, portal, chromium, tmp_path
):
    site = pipeline.sites["uabcs"].url

    def get(url: str, origin: str) -> tuple[int, dict[str, str]]:
        request = urllib.request.Request(url, headers={"Origin": origin})
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(request, timeout=10) as response:
                return response.status, dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers)

    # The function's redirect to the live version is readable by anyone (it says only where
    # the version is)...
    status, headers = get(f"{site}/{MANIFEST_PATH}", "http://otro.example")
    assert status == 302 and headers["access-control-allow-origin"] == "*"
    versioned = site + headers["location"]
    # ...the files themselves only by the portal
    status, headers = get(versioned, portal)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == portal
    status, headers = get(versioned, "http://otro.example")
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    # So the same verifier served from another origin cannot read the site: the browser
    # refuses, and the page says it could not verify (nothing is claimed)
    other = verifier(portal.replace("127.0.0.1", "localhost"), difusor="uabcs")
    state, dom = open_page(chromium, other, "otro-origen.png", tmp_path / "other")
    assert state == "error" and 'data-problema="inaccesible"' in dom


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
