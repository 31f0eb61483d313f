"""Sessions share one loader of service models, and nothing else."""

from __future__ import annotations

from difusion.adapters.sessions import new_session


def test_sessions_share_the_loader_but_keep_their_own_credentials_and_region():
    first = new_session(aws_access_key_id="AKIAFIRST", aws_secret_access_key="s1")
    second = new_session(
        aws_access_key_id="AKIASECOND", aws_secret_access_key="s2", region_name="us-west-2"
    )
    loader = first._session.get_component("data_loader")
    assert second._session.get_component("data_loader") is loader
    assert first.get_credentials().access_key == "AKIAFIRST"
    assert second.get_credentials().access_key == "AKIASECOND"
    assert second.region_name == "us-west-2"


def test_boto3s_own_models_are_on_the_path_once_however_many_sessions():
    sessions = [new_session(region_name="us-east-1") for _ in range(5)]
    paths = sessions[0]._session.get_component("data_loader").search_paths
    boto3_data = [p for p in paths if p.endswith("boto3/data")]
    assert len(boto3_data) == 1
    assert len(paths) == len(set(paths))
    # resources read boto3's models through the shared loader
    table = sessions[-1].resource("dynamodb").Table("ledger")
    assert table.name == "ledger"
    assert sessions[-1].client("s3").meta.service_model.service_name == "s3"
