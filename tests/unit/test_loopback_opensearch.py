"""The OpenSearch stand-in answers opensearch-py (real HTTP) the way JobParametersDB needs."""

import threading

import pytest
from opensearchpy import NotFoundError, OpenSearch
from werkzeug.serving import make_server

from dev.loopback.opensearch import OpenSearchStandIn


@pytest.fixture
def client():
    server = make_server("127.0.0.1", 0, OpenSearchStandIn(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield OpenSearch(hosts=[{"host": "127.0.0.1", "port": server.server_port}], use_ssl=False, timeout=5)
    finally:
        server.shutdown()
        thread.join(5)


def test_info_and_templates(client):
    assert client.info()["version"]["distribution"] == "opensearch"
    assert client.indices.put_index_template(name="t", body={"index_patterns": ["job_*"]})["acknowledged"]


def test_documents_are_indexed_updated_and_fetched(client):
    assert not client.indices.exists(index="job_parameters_vo_0m")
    client.indices.create(index="job_parameters_vo_0m")
    assert client.indices.exists(index="job_parameters_vo_0m")
    client.index(index="job_parameters_vo_0m", body={"JobID": 7, "CPU": "1"}, id="7")
    assert client.exists(index="job_parameters_vo_0m", id="7")
    client.update(index="job_parameters_vo_0m", id="7", body={"doc": {"Memory": "2"}})
    assert client.get(index="job_parameters_vo_0m", id="7")["_source"] == {
        "JobID": 7,
        "CPU": "1",
        "Memory": "2",
    }
    docs = client.mget(
        body={
            "docs": [
                {"_index": "job_parameters_vo_0m", "_id": "7"},
                {"_index": "job_parameters_vo_0m", "_id": "8"},
            ]
        }
    )["docs"]
    assert [d["found"] for d in docs] == [True, False]


def test_missing_document_and_index_are_404(client):
    with pytest.raises(NotFoundError):
        client.get(index="nothing_here", id="1")
    client.indices.create(index="idx")
    with pytest.raises(NotFoundError):
        client.delete(index="idx", id="1")
