"""Fuzz `enlarge serve` from its own OpenAPI schema: valid and invalid fields, real, broken and random files.

Two runs, both asserting that no answer is a 5xx:

- schemathesis derives requests from the schema the app serves (every operation, valid and invalid data, wrong
  methods) and also checks that each status and content type is one the schema declares and that each JSON
  body matches its model;
- a Hypothesis run builds upload forms from the same schema's fields and enums, shaped so most get past the
  field checks (a scale, or a width and/or height) and reach a worker: the decoder, the model and the encoder.

The `file` field is drawn from small real images in every mode and format, cut-short ones and random bytes.
Limits are small so each case is quick.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from enlarge.serve import ServeConfig, create_app  # noqa: E402

with warnings.catch_warnings():  # Starlette's notice that it prefers httpx2 to the installed httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

EXAMPLES_PER_OPERATION = 40
FORM_EXAMPLES = 120
UPLOAD_BODY = "Body_upscale_v1_upscale_post"  # FastAPI's name for the upload form in the schema
MAX_SIDE = 24
IMAGE_FORMAT = "enlarge-test-image"  # a format name given to the `file` field in the fuzzed copy of the schema
MODES = ("L", "LA", "RGB", "RGBA", "I;16")
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
FUZZ_CONFIG = ServeConfig(workers=1, queue=8, max_upload_mb=1, max_input_mp=0.25, max_output_mp=0.25, timeout_s=20)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Cheap to build: schemathesis starts the app's lifespan (and so its worker) with each test's first request
# and stops it when the test ends.
APP = create_app(FUZZ_CONFIG)


@st.composite
def image_files(draw: st.DrawFn) -> bytes:
    """A small image in any mode and format (as PNG where the format cannot hold the mode)."""
    width, height = draw(st.integers(1, MAX_SIDE)), draw(st.integers(1, MAX_SIDE))
    mode, fmt = draw(st.sampled_from(MODES)), draw(st.sampled_from(FORMATS))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        pixels = rng.integers(0, 2**16, (height, width), dtype=np.uint16)
    else:
        pixels = rng.integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
        pixels = pixels[..., 0] if len(mode) == 1 else pixels
    image = Image.fromarray(pixels)  # the mode follows the dtype and the channels
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError):  # e.g. JPEG with alpha: send the PNG instead
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
    return buffer.getvalue()


def cut_short(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


FILES = st.one_of(
    image_files(),
    st.builds(cut_short, image_files(), st.floats(0.0, 0.99)),
    st.binary(max_size=256),
)


def fuzz_schema(positive_only: bool) -> schemathesis.BaseSchema:
    """The schema the app serves at /openapi.json, its `file` field drawn from FILES."""
    fuzzed = copy.deepcopy(APP.openapi())
    body = fuzzed["components"]["schemas"][UPLOAD_BODY]["properties"]["file"]
    body["format"] = IMAGE_FORMAT
    loaded = schemathesis.openapi.from_dict(fuzzed)
    if positive_only:
        loaded.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE])
    return loaded


schemathesis.openapi.format(IMAGE_FORMAT, FILES)
schema = fuzz_schema(positive_only=False)  # valid and invalid requests
valid_schema = fuzz_schema(positive_only=True)  # only requests the schema allows, so more get past validation


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure here is reproducible
    database=None,  # nothing saved between runs, nothing written into the checkout
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_no_server_errors(case: schemathesis.Case) -> None:
    case.call_and_validate(app=APP, checks=CHECKS)


@valid_schema.parametrize()
@FUZZ_SETTINGS
def test_no_server_errors_on_valid_requests(case: schemathesis.Case) -> None:
    case.call_and_validate(app=APP, checks=CHECKS)


# ---------------------------------------------------------------------------------------------------- forms

FORM = APP.openapi()["components"]["schemas"][UPLOAD_BODY]["properties"]
SCALES = st.one_of(
    st.floats(0.01, 40.0),
    st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.7]),
    st.floats(allow_nan=True, allow_infinity=True),
)
SIDES = st.one_of(st.integers(1, 600), st.integers(-5, 0), st.integers(10**6, 10**12))
SIZE_FIELDS = st.sampled_from([("scale",), ("width",), ("height",), ("width", "height")])


def enum(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from(FORM[name]["enum"])


@st.composite
def forms(draw: st.DrawFn) -> dict[str, str]:
    """Text fields of an upload form: one way to give the size, and any of the optional fields."""
    fields = {name: repr(draw(SCALES)) if name == "scale" else str(draw(SIDES)) for name in draw(SIZE_FIELDS)}
    for name in ("fit", "format"):
        if draw(st.booleans()):
            fields[name] = draw(enum(name))
    if draw(st.booleans()):
        fields["model"] = draw(st.sampled_from(["bicubic", "lite", "no-such-model", "../weights/x.pth"]))
    if draw(st.integers(0, 9)) == 9:  # rarely: Hypothesis leans to small numbers
        fields["adaptive"] = "true"
    assert set(fields) <= set(FORM), "the form strayed from the schema"
    return fields


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(FUZZ_CONFIG)) as test_client:
        yield test_client


@pytest.mark.slow
@given(file=FILES, fields=forms())
@settings(FUZZ_SETTINGS, max_examples=FORM_EXAMPLES)
def test_forms_that_reach_a_worker_never_fail(client: TestClient, file: bytes, fields: dict[str, str]) -> None:
    response = client.post("/v1/upscale", files={"file": ("upload", file, "application/octet-stream")}, data=fields)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        output = Image.open(io.BytesIO(response.content))
        assert f"{output.width}x{output.height}" == response.headers["x-enlarge-output-size"]
    else:
        assert set(response.json()) == {"error"}
