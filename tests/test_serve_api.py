"""`enlarge serve` through its HTTP API: the happy path, every bad input as a 4xx JSON line, auth, the queue,
the time limit, and the worker pool's kill-and-replace.

Small images and the weight-free bicubic model keep it fast; each app starts one worker process. The service
offers only bundled models, so the adaptive happy path runs at the worker function with a tiny random `lite`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import struct
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed")

from conftest import REPO, descendants, survivors
from enlarge.engine.adaptive import CALIBRATION_KEY, block_errors, fit_calibration, little_model
from enlarge.errors import ConfigError, ModelError
from enlarge.models.card import ModelCard
from enlarge.models.registry import LoadedModel, build, describe
from enlarge.models.specs import DEFAULT_MODEL
from enlarge.serve import ServeConfig, create_app
from enlarge.serve.errors import QueueFullError, TimeLimitError, WorkerLostError
from enlarge.serve.launch import ServeProcess
from enlarge.serve.pool import KILL_GRACE_S, WorkerPool
from enlarge.serve.worker import Job, add_model, enlarge_job, init_worker
from enlarge.sizing import FITS, PIXELS_PER_MP, SizeRequest
from enlarge.threads import usable_cpus

with warnings.catch_warnings():  # Starlette's notice that it prefers httpx2 to the installed httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

SMALL = (16, 12)
MAX_UPLOAD_MB = 0.5
MAX_INPUT_MP = 0.01  # 10,000 pixels: a 100x100 input
MAX_INPUT_PIXELS = int(MAX_INPUT_MP * PIXELS_PER_MP)
MAX_OUTPUT_MP = 0.25
TIGHT_TIMEOUT_S = 0.5
ORPHAN_WAIT_S = 5.0  # the workers' parent watch checks every second
ISSUE_TIMEOUT_S = 2.0  # the limit of the report in issue 19
SLOW_INPUT = (1000, 1000)  # ×4 is 16 MP in many tiles: far longer than TIGHT_TIMEOUT_S on any CPU
SLOW_SCALE = 4
WAIT_S = 30.0  # for a worker to start or a job to show up in /healthz
POLL_S = 0.02
TOKEN = "s3cret-token"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY_LITE = {"n_feats": 8, "n_resblocks": 1, "hidden": 16, "head": [8]}
CALIBRATION_SIDE = 32  # HR side of the one image the tiny model is calibrated on
MAGIC = {"png": PNG_SIGNATURE, "jpeg": b"\xff\xd8\xff", "webp": b"RIFF"}


def image_bytes(size: tuple[int, int] = SMALL, mode: str = "RGB", fmt: str = "PNG", smooth: bool = False) -> bytes:
    """A small test image: random pixels, or a gradient (which compresses to almost nothing)."""
    width, height = size
    channels = len(mode)
    if smooth:
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        pixels = np.broadcast_to(ramp, (height, width, channels)).astype(np.uint8)
    else:
        pixels = np.random.default_rng(0).integers(0, 256, (height, width, channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(buffer, fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says `width`×`height` but whose data holds a few bytes: a decompression bomb's shape."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def animated_gif() -> bytes:
    frames = [Image.new("RGB", SMALL, color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def tiny_lite(name: str, calibrated: bool) -> LoadedModel:
    """A random-weight `lite` small enough to run in milliseconds; `calibrated`: with an adaptive calibration in
    its card, fit on one random image at ×2 (enough for the default threshold to apply)."""
    torch.manual_seed(0)
    module = build("lite", TINY_LITE).eval()
    model = LoadedModel(module, describe(name, "lite", TINY_LITE, module, has_weights=False))
    if calibrated:
        hr = torch.rand(1, 3, CALIBRATION_SIDE, CALIBRATION_SIDE, generator=torch.Generator().manual_seed(0))
        hr = (hr * 255).round() / 255
        errors = block_errors(model, little_model(model), torch.nn.functional.avg_pool2d(hr, 2), hr)
        calibration = fit_calibration([errors], "bicubic", {})
        model.descriptor.card = ModelCard(name, "lite", TINY_LITE, extra={CALIBRATION_KEY: calibration.to_dict()})
    return model


def upload(data: bytes, name: str = "photo.png") -> dict[str, tuple[str, bytes, str]]:
    return {"file": (name, data, "application/octet-stream")}


def assert_json_error(response, status: int) -> str:
    """`status`, a JSON body that is exactly {"error": one line}; returns the line."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    message = body["error"]
    assert message and "\n" not in message and "Traceback" not in message
    return message


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(POLL_S)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    config = ServeConfig(
        workers=1, max_upload_mb=MAX_UPLOAD_MB, max_input_mp=MAX_INPUT_MP, max_output_mp=MAX_OUTPUT_MP, queue=2
    )
    with TestClient(create_app(config)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def tight() -> Iterator[TestClient]:
    """One worker, no waiting line, a short time limit: for the queue and the time limit."""
    config = ServeConfig(workers=1, queue=0, timeout_s=TIGHT_TIMEOUT_S)
    with TestClient(create_app(config)) as test_client:
        yield test_client


# ---------------------------------------------------------------------------------------------------- happy path


def test_enlarge_by_scale_with_headers(client: TestClient) -> None:
    response = client.post("/v1/upscale", files=upload(image_bytes()), data={"scale": "2.5", "model": "bicubic"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-enlarge-model"] == "bicubic"
    assert response.headers["x-enlarge-input-size"] == "16x12"
    assert response.headers["x-enlarge-output-size"] == "40x30"
    assert float(response.headers["x-enlarge-seconds"]) >= 0
    assert 'filename="photo_x2.5.png"' in response.headers["content-disposition"]
    assert Image.open(io.BytesIO(response.content)).size == (40, 30)


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        ({"width": "40"}, (40, 30)),
        ({"height": "24"}, (32, 24)),
        ({"width": "50", "height": "20", "fit": "pad"}, (50, 20)),
        ({"width": "50", "height": "20", "fit": "cover"}, (50, 20)),
        ({"width": "50", "height": "20"}, (27, 20)),  # contain by default
    ],
)
def test_enlarge_to_a_size(client: TestClient, fields: dict[str, str], size: tuple[int, int]) -> None:
    response = client.post("/v1/upscale", files=upload(image_bytes()), data=fields)
    assert response.status_code == 200, response.text
    assert response.headers["x-enlarge-output-size"] == f"{size[0]}x{size[1]}"
    assert Image.open(io.BytesIO(response.content)).size == size


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_output_formats(client: TestClient, fmt: str) -> None:
    response = client.post("/v1/upscale", files=upload(image_bytes()), data={"scale": "2", "format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"image/{fmt}"
    assert response.content.startswith(MAGIC[fmt])


def test_shrink_is_reported_as_lanczos(client: TestClient) -> None:
    response = client.post("/v1/upscale", files=upload(image_bytes()), data={"scale": "0.5"})
    assert response.status_code == 200, response.text
    assert response.headers["x-enlarge-model"] == "lanczos"


def test_models_health_schema_and_page(client: TestClient) -> None:
    models = client.get("/v1/models").json()
    assert models["default"] in {m["name"] for m in models["models"] if m["available"]}
    adaptive = {m["name"]: m["adaptive"] for m in models["models"]}
    assert adaptive["bicubic"] is False  # no little path
    assert all(m["available"] for m in models["models"] if m["adaptive"])  # offered only where it can run
    assert client.get("/healthz").json() == {"status": "ok", "workers": 1, "busy": 0, "waiting": 0}
    schema = client.get("/openapi.json").json()
    assert {"/v1/upscale", "/v1/models", "/healthz"} <= set(schema["paths"])
    form = schema["components"]["schemas"]["Body_upscale_v1_upscale_post"]["properties"]
    assert form["fit"]["enum"] == list(FITS)  # the API's choices follow the library's
    assert form["scale"] == {"title": "Scale", "description": form["scale"]["description"], "type": "number"}
    page = client.get("/")
    assert page.status_code == 200 and "<main" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


# ---------------------------------------------------------------------------------------------------- bad input

BAD_FIELDS = [
    ({"scale": "0"}, 400, "scale"),
    ({"scale": "-2"}, 400, "scale"),
    ({"scale": "nan"}, 400, "scale"),
    ({"scale": "inf"}, 400, "scale"),
    ({"scale": "1e308"}, 400, "scale"),
    ({"scale": "abc"}, 422, "scale"),
    ({"width": "0"}, 400, "width"),
    ({"height": "-5"}, 400, "height"),
    ({"width": "1.5"}, 422, "width"),
    ({"width": "99999999999999999999999"}, 400, "limit"),
    ({}, 400, "give scale"),
    ({"scale": "2", "width": "20"}, 400, "not both"),
    ({"scale": "100"}, 400, "limit"),  # 1600x1200 is above the 0.25 MP output limit
    ({"scale": "2", "fit": "squash"}, 422, "fit"),
    ({"scale": "2", "format": "gif"}, 422, "format"),
    ({"scale": "2", "model": "no-such-model"}, 400, "not a model name"),
    ({"scale": "2", "model": "/etc/passwd"}, 400, "not a model name"),
    ({"scale": "2", "model": "../src/enlarge/weights/lite.safetensors"}, 400, "not a model name"),
    ({"scale": "2", "model": "liif-rdn"}, 400, "no weights"),
    ({"scale": "2", "model": "bicubic", "adaptive": "true"}, 400, "'bicubic' has no cheap little path"),
    ({"scale": "2", "adaptive": "maybe"}, 422, "adaptive"),
]


@pytest.mark.parametrize(("fields", "status", "says"), BAD_FIELDS, ids=[str(f) for f, _, _ in BAD_FIELDS])
def test_bad_fields(client: TestClient, fields: dict[str, str], status: int, says: str) -> None:
    response = client.post("/v1/upscale", files=upload(image_bytes()), data=fields)
    message = assert_json_error(response, status)
    assert says in message
    assert "--" not in message  # a library message names settings, never the CLI's flags


@pytest.mark.parametrize(("form", "says"), [
    ([("scale", "2"), ("scael", "3")], "scael: unknown field; the fields are file, scale"),
    ([("scale", "2"), ("scale", "3")], "scale: given 2 times"),
    ([("scale", "2"), ("file", ("b.png", b"x", "image/png"))], "file: given 2 times"),
])
def test_unknown_and_repeated_fields_are_422(client: TestClient, form: list, says: str) -> None:
    """A misspelt or repeated field used to be ignored silently (the request then did something else)."""
    files = [("file", ("photo.png", image_bytes(), "image/png"))]
    files += [(name, value) for name, value in form if isinstance(value, tuple)]
    data: dict[str, list[str]] = {}
    for name, value in form:
        if not isinstance(value, tuple):
            data.setdefault(name, []).append(value)
    response = client.post("/v1/upscale", files=files, data=data)
    assert says in assert_json_error(response, 422)


BAD_FILES = [
    ("not an image", b"hello, this is text", 400, "not an image"),
    ("empty", b"", 400, "empty"),
    ("truncated", image_bytes((64, 64))[:200], 400, "truncated"),
    ("header only", png_claiming(64, 64), 400, "truncated"),
    ("bomb header", png_claiming(60_000, 60_000), 413, "input limit"),
    ("bomb pixels", image_bytes((3000, 3000), "L", smooth=True), 413, "input limit"),
    ("animated", animated_gif(), 400, "frames"),
    ("pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", 400, "not an image"),
]


@pytest.mark.parametrize(("data", "status", "says"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_files(client: TestClient, data: bytes, status: int, says: str) -> None:
    response = client.post("/v1/upscale", files=upload(data), data={"scale": "2"})
    assert says in assert_json_error(response, status)


def test_transparent_image_to_jpeg(client: TestClient) -> None:
    response = client.post("/v1/upscale", files=upload(image_bytes(mode="RGBA")), data={"scale": "2", "format": "jpeg"})
    assert "transparency" in assert_json_error(response, 400)


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"data": {"scale": "2"}},  # no file at all
        {"data": {"scale": "2", "file": "not a file"}},  # file as a text field
        {"json": {"scale": 2}},  # not multipart
        {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data; boundary=x"}},
    ],
    ids=["missing file", "file as text", "json body", "broken multipart"],
)
def test_malformed_requests(client: TestClient, request_kwargs: dict) -> None:
    response = client.post("/v1/upscale", **request_kwargs)
    assert 400 <= response.status_code < 500
    assert_json_error(response, response.status_code)


def test_upload_over_the_limit_is_refused(client: TestClient) -> None:
    too_big = b"\0" * int(MAX_UPLOAD_MB * 1024 * 1024 + 1)
    response = client.post("/v1/upscale", files=upload(too_big), data={"scale": "2"})
    assert "MB limit" in assert_json_error(response, 413)


def test_streamed_upload_over_the_limit_is_refused(client: TestClient) -> None:
    """No Content-Length (chunked): counted as it arrives."""
    chunk = b"\0" * 65536
    chunks = int(MAX_UPLOAD_MB * 1024 * 1024 / len(chunk)) + 2
    response = client.post(
        "/v1/upscale", content=(chunk for _ in range(chunks)),
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert "MB limit" in assert_json_error(response, 413)


def test_declared_length_over_the_limit_is_refused_unread(client: TestClient) -> None:
    response = client.post(
        "/v1/upscale", content=b"", headers={"content-length": str(10**12), "content-type": "multipart/form-data"}
    )
    assert_json_error(response, 413)


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_json_error(client.get("/v1/nothing"), 404)
    assert_json_error(client.get("/v1/upscale"), 405)


# ---------------------------------------------------------------------------------------------------- adaptive


def test_adaptive_job_reports_the_routed_fraction() -> None:
    """The worker function with a calibrated tiny `lite`: adaptive jobs report their routed share (which the app
    sends as X-Enlarge-Routed-Fraction), plain ones none."""
    name = add_model(tiny_lite("tiny-calibrated", calibrated=True))
    job = Job(image_bytes(), SizeRequest(scale=2.5), name, "png", MAX_INPUT_PIXELS, WAIT_S, adaptive=True)
    result = enlarge_job(job)
    assert result.model == name and result.output_size == (40, 30)
    assert result.routed_fraction is not None and 0.0 <= result.routed_fraction <= 1.0
    assert Image.open(io.BytesIO(result.data)).size == (40, 30)
    assert enlarge_job(dataclasses.replace(job, adaptive=False)).routed_fraction is None
    shrink = enlarge_job(dataclasses.replace(job, request=SizeRequest(scale=0.5)))
    assert shrink.model == "lanczos" and shrink.routed_fraction is None  # no model ran, nothing routed


def test_adaptive_job_without_a_calibration_is_a_typed_error() -> None:
    name = add_model(tiny_lite("tiny-uncalibrated", calibrated=False))
    job = Job(image_bytes(), SizeRequest(scale=2), name, "png", MAX_INPUT_PIXELS, WAIT_S, adaptive=True)
    with pytest.raises(ModelError, match="no adaptive calibration"):
        enlarge_job(job)
    assert enlarge_job(dataclasses.replace(job, adaptive=False)).routed_fraction is None  # the model still works


# ---------------------------------------------------------------------------------------------------- auth


def test_token_is_required_on_the_api_only() -> None:
    with TestClient(create_app(ServeConfig(workers=1, token=TOKEN))) as client:
        files, fields = upload(image_bytes()), {"scale": "2"}
        response = client.post("/v1/upscale", files=files, data=fields)
        assert "token" in assert_json_error(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        wrong = client.post("/v1/upscale", files=files, data=fields, headers={"Authorization": "Bearer nope"})
        assert_json_error(wrong, 401)
        assert_json_error(client.get("/v1/models"), 401)
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert client.post("/v1/upscale", files=files, data=fields, headers=right).status_code == 200
        assert client.get("/v1/models", headers=right).status_code == 200
        for open_path in ("/healthz", "/", "/static/app.js", "/openapi.json"):
            assert client.get(open_path).status_code == 200, open_path
        schema = client.get("/openapi.json").json()
        assert schema["paths"]["/v1/upscale"]["post"]["security"] == [{"bearer": []}]


# ---------------------------------------------------------------------------------------------------- queue, time limit


def slow_upload() -> tuple[dict, dict[str, str]]:
    return upload(image_bytes(SLOW_INPUT, smooth=True)), {"scale": str(SLOW_SCALE)}


def test_full_queue_answers_429_with_retry_after(tight: TestClient) -> None:
    wait_for(lambda: tight.get("/healthz").json()["workers"] == 1, "the worker")
    files, fields = slow_upload()
    outcome: dict[str, int] = {}
    runner = threading.Thread(
        target=lambda: outcome.update(status=tight.post("/v1/upscale", files=files, data=fields).status_code)
    )
    runner.start()
    try:
        wait_for(lambda: tight.get("/healthz").json()["busy"] == 1, "the slow job to start")
        response = tight.post("/v1/upscale", files=upload(image_bytes()), data={"scale": "2"})
        assert "busy" in assert_json_error(response, 429)
        assert int(response.headers["retry-after"]) >= 1
    finally:
        runner.join()
    assert outcome["status"] == 504  # the slow job itself runs into the time limit


def test_time_limit_stops_the_job_and_the_server_carries_on(tight: TestClient) -> None:
    wait_for(lambda: tight.get("/healthz").json()["workers"] == 1, "the worker")
    files, fields = slow_upload()
    started = time.monotonic()
    response = tight.post("/v1/upscale", files=files, data=fields)
    elapsed = time.monotonic() - started
    assert "limit" in assert_json_error(response, 504)
    assert elapsed < TIGHT_TIMEOUT_S + KILL_GRACE_S + 5  # stopped, not run to the end
    wait_for(lambda: tight.get("/healthz").json()["workers"] == 1, "the worker to be back")
    quick = {"scale": "2", "model": "bicubic"}  # the default model may be slower than the tight limit on a busy CPU
    assert tight.post("/v1/upscale", files=upload(image_bytes()), data=quick).status_code == 200


def test_a_request_right_after_a_timed_out_one_is_served() -> None:
    """Issue 19: the job that overran is killed and its worker replaced, and the next request, sent at once (not
    after the replacement is up), gets the fresh worker with the default model already loaded and warm."""
    config = ServeConfig(workers=1, queue=1, timeout_s=ISSUE_TIMEOUT_S)
    with TestClient(create_app(config)) as client:
        files, fields = slow_upload()
        assert_json_error(client.post("/v1/upscale", files=files, data=fields), 504)
        response = client.post("/v1/upscale", files=upload(image_bytes()), data={"scale": "2"})
        assert response.status_code == 200, response.text
        assert response.headers["x-enlarge-model"] == DEFAULT_MODEL


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_server() -> None:
    """kill -9 of `enlarge serve`: its forkserver, workers and resource tracker go too."""
    server = ServeProcess(["--workers", "2"], cwd=REPO)
    try:
        children = descendants(server.process.pid)
        assert len(children) >= 3  # forkserver, two workers (and the resource tracker)
    finally:
        server.process.kill()
        server.stop()
    assert survivors(children, ORPHAN_WAIT_S) == []


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_a_real_server_serves_a_tiny_request_right_after_timed_out_ones(workers: int) -> None:
    """Issue 19 against `enlarge serve --timeout 2` itself: a job per worker overruns the limit (each worker is
    killed and replaced), and a tiny request sent at once is served: no deadline spills onto the next request."""
    server = ServeProcess(["--workers", str(workers), "--timeout", str(ISSUE_TIMEOUT_S)], cwd=REPO)
    base = server.url
    try:
        with httpx.Client(base_url=base, timeout=WAIT_S) as http:
            files, fields = slow_upload()
            with ThreadPoolExecutor(workers) as threads:
                slow = list(threads.map(lambda _: http.post("/v1/upscale", files=files, data=fields), range(workers)))
            assert [response.status_code for response in slow] == [504] * workers
            response = http.post("/v1/upscale", files=upload(image_bytes()), data={"scale": "2"})
            assert response.status_code == 200, response.text
            assert response.headers["x-enlarge-model"] == DEFAULT_MODEL
    finally:
        server.stop()


def test_automatic_workers_fit_the_machine() -> None:
    config = ServeConfig(workers=0)
    assert 1 <= config.workers <= usable_cpus()
    assert config.threads_per_worker >= 1


def test_pool_kills_a_runaway_job_and_replaces_its_worker() -> None:
    """A job stuck where the engine cannot check the clock (here: a sleep) is stopped by killing its process."""

    async def scenario() -> None:
        pool = WorkerPool(1, 0, init_worker, ((), 1))
        await pool.start()
        try:
            first = await pool.run(os.getpid, time_limit_s=WAIT_S)
            started = time.monotonic()
            with pytest.raises(TimeLimitError):
                await pool.run(time.sleep, WAIT_S, time_limit_s=0.1)
            assert time.monotonic() - started < 0.1 + KILL_GRACE_S + 1
            second = await pool.run(os.getpid, time_limit_s=WAIT_S)
            assert second != first
            with pytest.raises(WorkerLostError):
                await pool.run(os._exit, 1, time_limit_s=WAIT_S)  # a worker dying mid-job
            assert await pool.run(os.getpid, time_limit_s=WAIT_S) not in {first, second}
            busy = asyncio.ensure_future(pool.run(time.sleep, 0.5, time_limit_s=WAIT_S))
            await asyncio.sleep(0.05)
            with pytest.raises(QueueFullError):
                await pool.run(os.getpid, time_limit_s=WAIT_S)
            await busy
        finally:
            await pool.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "settings",
    [{"workers": -1}, {"queue": -1}, {"token": " "}, {"timeout_s": 0.0}, {"max_upload_mb": float("nan")}],
)
def test_bad_settings_fail_at_start(settings: dict) -> None:
    with pytest.raises(ConfigError):
        ServeConfig(**settings)
