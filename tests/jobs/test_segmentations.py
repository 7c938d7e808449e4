"""``POST /v1/segmentations``: the synchronous convenience on the same job path, with an
image uploaded through the official SDK's files client and the weight-free ``boxseg`` model."""

from __future__ import annotations

import io

import numpy as np
import openai
from PIL import Image

from testkit.openai_errors import assert_openai_error
from tests.jobs.helpers import JobStack, http


def _png() -> bytes:
    image = np.zeros((64, 64), dtype=np.uint8)
    image[20:40, 10:30] = 220  # one bright square "cell"
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def test_a_small_segmentation_is_answered_in_the_request(stack: JobStack) -> None:
    api = stack.api()
    stack.worker()
    sdk = openai.OpenAI(base_url=f"{api.url}/v1", api_key="unused", max_retries=0)
    image = sdk.files.create(file=("cells.png", _png(), "image/png"), purpose="user_data")
    client = http(api.url)
    body = {"model": "boxseg", "input": {"image_file_id": image.id, "boxes": [[6, 16, 34, 44]]}}
    answer = client.post("/v1/segmentations", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["object"] == "job.result" and result["task"] == "segmentation"
    job = client.get(f"/v1/jobs/{result['job_id']}").json()
    assert job["status"] == "succeeded"
    assert result["data"]  # the masks, as the segmentation model shapes them

    pending = client.post("/v1/segmentations", json={**body, "timeout": 0.001})
    assert pending.status_code == 202
    assert pending.headers["location"] == f"/v1/jobs/{pending.json()['id']}"
    assert client.get(pending.headers["location"], params={"wait": 30}).json()["status"] == (
        "succeeded"
    )

    outside = {**body, "input": {**body["input"], "boxes": [[50, 50, 90, 90]]}}
    failed = client.post("/v1/segmentations", json=outside)
    assert_openai_error(failed, 400, code="invalid_input", contains="failed")
    unknown = client.post("/v1/segmentations", json={**body, "priority": 1})
    assert_openai_error(unknown, 400, code="unknown_parameter", param="priority")
