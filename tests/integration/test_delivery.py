"""The pipeline end to end on the emulator: three difusor accounts, real handlers."""

from __future__ import annotations

import hashlib
import json

import pytest

from difusion.manifest import Manifest
from difusion.publication import (
    MANIFEST_PATH,
    PUBLIC_KEY_PATH,
    SIGNATURE_PATH,
    VERIFY_PAGE_PATH,
    history_path,
    history_signature_path,
)
from difusion.signing import PublicKey, verify
from difusion.web import verification_page

pytestmark = pytest.mark.integration
TRIO = {MANIFEST_PATH, SIGNATURE_PATH, PUBLIC_KEY_PATH}


def history(sequence: int) -> set[str]:
    """The chain's entry for ``sequence``: its manifest and signature."""
    return {history_path(sequence), history_signature_path(sequence)}


def test_an_accepted_package_reaches_every_difusor_signed_and_unaltered(
    pipeline, packages, series, secret_key
):
    # When UCSI drops the first cut into the origin bucket
    record = pipeline.process(packages[0])
    # Then it is accepted as the first link of the chain
    assert record["status"] == "accepted"
    assert record["sequence"] == 1
    snapshot = series[0]
    for difusor in pipeline.deployment.difusores:
        # ...and each difusor's bucket, in its own account, holds exactly the site
        objects = pipeline.site_objects(difusor.difusor_id)
        # the package's files, the institute's verification page, the signed manifest with
        # its signature and key, and the history of the chain so far
        assert set(objects) == set(snapshot.files) | {VERIFY_PAGE_PATH} | TRIO | history(1)
        for path, data in snapshot.files.items():
            assert objects[path] == data, path
        assert objects[VERIFY_PAGE_PATH] == verification_page()
        assert objects[history_path(1)] == objects[MANIFEST_PATH]
        assert objects[history_signature_path(1)] == objects[SIGNATURE_PATH]
        # ...with a manifest that verifies against the institute's key
        trusted = verify(
            objects[MANIFEST_PATH], objects[SIGNATURE_PATH].decode(), secret_key.public_key
        )
        manifest = Manifest.from_bytes(objects[MANIFEST_PATH])
        assert f"snapshot:{snapshot.snapshot_id}" in trusted
        assert f"manifest_sha256:{manifest.sha256}" in trusted
        assert PublicKey.from_text(objects[PUBLIC_KEY_PATH].decode()) == secret_key.public_key
        assert {f.path: f.sha256 for f in manifest.files} == {
            p: hashlib.sha256(d).hexdigest()
            for p, d in {**snapshot.files, VERIFY_PAGE_PATH: verification_page()}.items()
        }
        assert manifest.previous_manifest_sha256 is None
    assert pipeline.dispatcher.handler_errors == []


def test_difusor_objects_carry_type_revalidation_and_hash(pipeline, packages):
    pipeline.process(packages[0])
    difusor = pipeline.deployment.difusores[0]
    s3 = pipeline.difusor_s3(difusor.difusor_id)
    key = pipeline.served_prefix(difusor.difusor_id) + "index.html"
    assert key == "_v/a/index.html"  # the first version, in the first slot
    head = s3.head_object(Bucket=difusor.bucket, Key=key)
    assert head["ContentType"] == "text/html; charset=utf-8"
    assert head["CacheControl"] == "no-cache"
    assert (
        head["Metadata"]["sha256"]
        == hashlib.sha256(s3.get_object(Bucket=difusor.bucket, Key=key)["Body"].read()).hexdigest()
    )


def test_every_delivery_is_recorded_and_switches_the_version_once(pipeline, packages):
    pipeline.process(packages[0])
    pipeline.process(packages[1])
    deliveries = pipeline.ledger.items("DELIVERY#")
    assert {d["difusor_id"] for d in deliveries} == {
        d.difusor_id for d in pipeline.deployment.difusores
    }
    for delivery in deliveries:
        assert delivery["status"] == "delivered"
        assert delivery["attempts"] == 1
        assert delivery["objects_copied"] > 0 and delivery["bytes_copied"] > 0
        assert delivery["started_at"] <= delivery["finished_at"]
        # cut 1 is the site's first version, in slot a; cut 2 the next one, in slot b
        first = pipeline.versions_made(delivery["difusor_id"])[0]
        assert (delivery["site_version"] - first, delivery["slot"]) == (
            delivery["sequence"] - 1,
            "ab"[delivery["sequence"] - 1],
        )
    for difusor in pipeline.deployment.difusores:
        # The pointer names the live version (cut 2) and keeps cut 1 routable
        pointer = pipeline.pointer(difusor.difusor_id)
        first, second = pipeline.versions_made(difusor.difusor_id)
        assert (pointer.live.version, pointer.live.slot, pointer.live.held.sequence) == (
            second,
            "b",
            2,
        )
        assert (pointer.previous.version, pointer.previous.slot) == (first, "a")
        assert second == first + 1
        head = pipeline.ledger.head()
        assert pointer.live.held.manifest_sha256 == head.manifest_sha256
        # and no cut needed an invalidation: a version is new cache keys
        cloudfront = _difusor_client(pipeline, difusor, "cloudfront")
        invalidations = cloudfront.list_invalidations(DistributionId=difusor.distribution_id)
        assert invalidations["InvalidationList"].get("Items", []) == []


def test_a_later_cut_copies_only_what_changed_and_extends_the_chain(pipeline, packages, series):
    first = pipeline.process(packages[0])
    second = pipeline.process(packages[1])
    assert second["status"] == "accepted" and second["sequence"] == 2
    assert second["previous_manifest_sha256"] == first["manifest_sha256"]
    pipeline.process(packages[2])
    # The first two cuts fill the two slots; the third refreshes slot a, which holds cut 1:
    # what changed since cut 1, the two new history entries, the signed manifest trio
    changed = {p for p, d in series[2].files.items() if series[0].files.get(p) != d}
    assert 0 < len(changed) < len(series[2].files)
    for delivery in pipeline.ledger.items(f"DELIVERY#{series[2].snapshot_id}#"):
        first = pipeline.versions_made(delivery["difusor_id"])[0]
        assert delivery["slot"] == "a" and delivery["site_version"] == first + 2
        assert delivery["objects_copied"] == len(changed) + len(history(2) | history(3)) + len(TRIO)
    objects = pipeline.site_objects(pipeline.deployment.difusores[1].difusor_id)
    assert {p: objects[p] for p in series[2].files} == series[2].files
    assert history(1) | history(2) | history(3) <= set(objects)


def test_staging_uploads_each_content_once(pipeline, packages, series):
    pipeline.process(packages[0])
    pipeline.process(packages[1])
    staged = _keys(pipeline, "objects/sha256/")
    hashes = {hashlib.sha256(d).hexdigest() for s in series[:2] for d in s.files.values()}
    hashes.add(hashlib.sha256(verification_page()).hexdigest())
    assert {k.rsplit("/", 1)[-1] for k in staged} == hashes


def test_files_dropped_from_a_cut_are_removed_after_everything_else(pipeline, tmp_path, series):
    from tests.builders import SITE, zip_bytes

    new = {"index.html": b"<html>nuevo corte</html>"}
    cuts = [
        {**SITE, "aviso.html": b"temporal"},
        {**SITE, "aviso.html": b"temporal", **new},
        {**SITE, **new},
    ]
    for minute, files in zip(("2000", "2020", "2040"), cuts, strict=True):
        package = tmp_path / f"20240602_{minute}_PREP_DIP_LOC_BCS.zip"
        package.write_bytes(zip_bytes(files))
        pipeline.process(package)
    for difusor in pipeline.deployment.difusores:
        objects = pipeline.site_objects(difusor.difusor_id)
        assert "aviso.html" not in objects
        assert objects["index.html"] == b"<html>nuevo corte</html>"
        assert "_v/a/aviso.html" not in pipeline.bucket_objects(difusor.difusor_id, "_v/a/")
    # The third cut refreshed slot a (cut 1): the page that changed since, the history of
    # cuts 2 and 3, the signed trio; and the file cut 3 dropped
    delivery = pipeline.ledger.items("DELIVERY#20240602_2040_PREP_DIP_LOC_BCS#")[0]
    assert delivery["objects_deleted"] == 1
    assert delivery["objects_copied"] == 1 + len(history(2) | history(3)) + len(TRIO)


def test_tar_gz_packages_are_published_like_zips(pipeline, series, tmp_path):
    package = series[0].write_package(tmp_path, "tar.gz")
    assert pipeline.process(package)["status"] == "accepted"
    objects = pipeline.site_objects(pipeline.deployment.difusores[0].difusor_id)
    assert {p: objects[p] for p in series[0].files} == series[0].files


def test_the_origin_keeps_the_package_and_every_signed_manifest(pipeline, packages):
    pipeline.process(packages[0])
    pipeline.process(packages[1])
    assert _keys(pipeline, "incoming/") == {f"incoming/{p.name}" for p in packages[:2]}
    manifests = sorted(_keys(pipeline, "manifests/"))
    assert [m.split("/")[1][:6] for m in manifests if m.endswith(".json")] == ["000001", "000002"]
    assert sum(m.endswith(".minisig") for m in manifests) == 2


def _keys(pipeline, prefix: str) -> set[str]:
    s3 = pipeline.s3
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=pipeline.deployment.origin_bucket, Prefix=prefix
    ):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def _difusor_client(pipeline, difusor, service: str):
    from difusion.local.provision import account_session

    return account_session(difusor.account_id).client(service)


def test_report_lists_snapshots_and_deliveries(pipeline, packages):
    pipeline.process(packages[0])
    report = json.loads(json.dumps(pipeline.report(), default=str))
    assert [s["status"] for s in report["snapshots"]] == ["accepted"]
    assert len(report["deliveries"]) == 3
    assert all("external_id" not in d for d in report["difusores"])


def test_a_delivery_in_shards_publishes_nothing_until_every_shard_is_done(pipeline, packages):
    import os
    from concurrent.futures import ThreadPoolExecutor

    from difusion.adapters.factory import replicate_service
    from difusion.models import DeliveryRequest, DeliveryScope
    from difusion.settings import ReplicateSettings

    pipeline.process(packages[0])
    pipeline.process(packages[1])
    # Given a difusor whose site is rebuilt from nothing, in three shards per tier (the
    # standby slot emptied: nothing in it is trusted)
    target = pipeline.difusor("uabcs")
    s3 = pipeline.difusor_s3("uabcs")
    for key in pipeline.bucket_objects("uabcs", "_v/a/"):
        s3.delete_object(Bucket=target.bucket, Key=key)
    before = pipeline.site_objects("uabcs")
    service = replicate_service(ReplicateSettings.from_env(os.environ))
    request = DeliveryRequest.for_head(
        pipeline.deployment.election,
        "uabcs",
        pipeline.ledger.head(),
        reason="rebuild",
        scope=DeliveryScope.FULL,
    )
    plan = service.plan(request)
    count = 3
    # When one shard of the first tier has not run (its worker failed)
    first = plan.content_tiers[0]
    copied = [service.copy_shard(request, first, index, count) for index in (0, 1)]
    # Then part of the content is in the standby slot, and the site still serves cut 2 whole
    partial = pipeline.bucket_objects("uabcs", "_v/a/")
    assert 0 < len(partial) == sum(copied)
    assert "_v/a/" + MANIFEST_PATH not in partial
    assert pipeline.site_objects("uabcs") == before and pipeline.pointer("uabcs").live.slot == "b"
    # When every shard of every tier runs (the failed one retried), tier after tier
    for tier in plan.content_tiers:
        with ThreadPoolExecutor(max_workers=count) as workers:
            list(workers.map(lambda i, t=tier: service.copy_shard(request, t, i, count), range(3)))
    outcome = service.commit(request)
    # Then the site is exactly what a delivery in one piece publishes, and it is recorded
    assert pipeline.site_objects("uabcs") == pipeline.site_objects("diario-peninsular")
    first = pipeline.versions_made("uabcs")[0]
    assert (outcome.site_version, outcome.slot) == (first + 2, "a")
    assert outcome.objects_copied == len(plan.copies)
    [record] = pipeline.ledger.items(f"DELIVERY#{request.snapshot_id}#uabcs#rebuild")
    assert record["status"] == "delivered"
