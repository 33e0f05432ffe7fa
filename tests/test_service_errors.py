"""HTTP status codes of the service for what is not a well-formed request: text that is not Unicode
text (a lone surrogate escape) is a 422 naming the field; a failure inside the service is a 500
with a short generic message (the detail goes to the log); only a request arriving while the
service shuts down is a 503."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from blurbkit.errors import BlurbkitError
from blurbkit.inference.pipeline import Pipeline
from blurbkit.inference.service import Limits, create_app

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_models"
JSON = {"content-type": "application/json"}


class FailingPipeline:
    """A pipeline whose every call fails the way a broken runtime would."""

    ner, relations = [], []

    def __call__(self, documents):
        raise RuntimeError("CUDA error: device-side assert at /secret/path/kernel.cu:12")


@pytest.fixture(scope="module")
def service():
    with TestClient(create_app(Pipeline.load(ner=[FIXTURES / "ner_bio"]), Limits(max_wait_ms=1))) as client:
        yield client


@pytest.mark.parametrize(("body", "where"), [
    (b'{"documents": [{"text": "\\ud800 x"}]}', "body.documents.0.text"),
    (b'{"documents": [{"text": "ok"}, {"title": "\\udfff", "text": "x"}]}', "body.documents.1.title"),
    (b'{"documents": [{"id": "\\ud800", "text": "x"}]}', "body.documents.0.id"),
])
def test_a_lone_surrogate_is_a_422_naming_the_field(service, body, where):
    response = service.post("/annotate", content=body, headers=JSON)
    assert response.status_code == 422
    assert response.json()["error"].startswith(f"{where}: holds a lone surrogate")
    ok = service.post("/annotate", content='{"documents": [{"text": "aspirin \\ud83d\\ude00"}]}', headers=JSON)
    assert ok.status_code == 200  # a surrogate pair is one character


def test_the_pipeline_api_refuses_a_lone_surrogate_in_one_line():
    pipe = Pipeline.load(ner=[FIXTURES / "ner_bio"])
    with pytest.raises(BlurbkitError, match="^document 1: 'text' holds a lone surrogate"):
        pipe(["aspirin", {"text": "\ud800 x"}])


def test_a_failure_inside_the_service_is_a_generic_500_logged_in_full(caplog):
    with TestClient(create_app(FailingPipeline(), Limits(max_wait_ms=1))) as client, caplog.at_level(logging.ERROR):
        response = client.post("/annotate", json={"documents": [{"text": "aspirin"}]})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error while annotating (logged by the service)"}
    assert "secret" not in response.text
    assert any("secret" in str(record.exc_info[1]) for record in caplog.records if record.exc_info)


def test_only_a_request_during_shutdown_is_a_503():
    with TestClient(create_app(FailingPipeline(), Limits(max_wait_ms=1))) as client:
        client.app.state.batcher.close()
        response = client.post("/annotate", json={"documents": [{"text": "aspirin"}]})
    assert response.status_code == 503 and response.json() == {"error": "the service is shutting down"}
