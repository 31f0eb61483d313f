"""The version pointer in a KeyValueStore, through boto3 as on AWS (SigV4A, the store's ETag).

The embedded default's data plane (``difusion.local.kvs``) keeps the documented rules: a
``PutKey`` whose ``IfMatch`` is not the store's ETag is a ``ConflictException``, every write
changes the ETag, a missing key is ``ResourceNotFoundException``, values are at most 1 KB.
"""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from difusion.adapters.pointer_store import KeyValueStorePointer, PointerConflict
from difusion.versions import Held, Pointer, PointerError

SHA_A, SHA_B = "a" * 64, "b" * 64


@pytest.fixture
def store(emulator, monkeypatch):
    for name, value in emulator.environment().items():
        monkeypatch.setenv(name, value)
    # A fresh name per test: id() of a fixture object is reused once it is collected, and
    # the emulator outlives the test.
    name = f"prueba-{uuid.uuid4().hex[:12]}"
    arn = boto3.client("cloudfront").create_key_value_store(Name=name)["KeyValueStore"]["ARN"]
    client = boto3.client("cloudfront-keyvaluestore", region_name="us-east-1")
    return KeyValueStorePointer(client, arn), client, arn


def test_a_new_store_has_no_pointer_and_the_first_write_makes_one(store):
    pointers, _, _ = store
    # Given a store nobody wrote
    empty = pointers.read()
    assert empty.pointer is None and empty.etag
    # When the first version is written at its ETag
    first = Pointer.first("a", Held(1, SHA_A))
    etag = pointers.write(first, empty.etag)
    # Then it reads back, at the new ETag
    again = pointers.read()
    assert again.pointer == first and again.etag == etag != empty.etag


def test_a_write_at_a_stale_etag_is_refused_and_overwrites_nothing(store):
    pointers, _, _ = store
    empty = pointers.read()
    first = Pointer.first("a", Held(1, SHA_A))
    pointers.write(first, empty.etag)
    # When someone writes with the ETag read before that write
    other = Pointer.first("b", Held(2, SHA_B))
    with pytest.raises(PointerConflict, match="not overwritten"):
        pointers.write(other, empty.etag)
    # Then the store still holds the first pointer
    assert pointers.read().pointer == first


def test_a_write_whose_answer_was_lost_and_was_retried_is_recognised_as_done(store):
    pointers, client, arn = store
    empty = pointers.read()
    first = Pointer.first("a", Held(1, SHA_A))
    # Given the write already happened (its answer lost), the store at a new ETag
    client.put_key(KvsARN=arn, Key="live", Value=first.to_text(), IfMatch=empty.etag)
    # When the same write is made again at the old ETag (what the SDK's retry does)
    etag = pointers.write(first, empty.etag)
    # Then it is the store's current ETag: the write is done, not a conflict
    assert etag == pointers.read().etag


def test_what_the_data_plane_refuses_as_aws_documents(store):
    pointers, client, arn = store
    etag = pointers.read().etag
    with pytest.raises(ClientError) as too_big:
        client.put_key(KvsARN=arn, Key="live", Value="x" * 1025, IfMatch=etag)
    assert too_big.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as missing:
        client.get_key(KvsARN=arn, Key="nothing")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    unknown = arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    with pytest.raises(ClientError) as gone:
        client.describe_key_value_store(KvsARN=unknown)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_value_that_is_not_a_pointer_is_an_error_not_a_guess(store):
    pointers, client, arn = store
    client.put_key(KvsARN=arn, Key="live", Value="{}", IfMatch=pointers.read().etag)
    with pytest.raises(PointerError):
        pointers.read()
