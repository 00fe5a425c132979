"""The FastAPI app of `enlarge serve`: the HTTP API over the worker pool, and the web page from package files.

The app only validates fields, hands each upload to a worker (`worker.enlarge_job`) and maps the outcome to a
response; it holds no enlarging logic. Every error a client can cause comes back as a 4xx JSON body
`{"error": "one line"}`:

- 400: a bad field or image (not an image, truncated, bad scale or size, unknown model, adaptive asked of a model
  without a little path);
- 401: the token is missing or wrong (only when the server has one);
- 413: the upload, or the image it holds, is above the server's limits;
- 422: a field of the wrong type, missing (`file`), unknown (a misspelt name) or given twice;
- 429: every worker is busy and the waiting line is full (`Retry-After` says when to retry);
- 503: a worker died during the job; 504: the job ran past the time limit and was stopped.

Worker processes start with forkserver, so a script that builds the app itself must guard its entry point with
`if __name__ == "__main__":` (the `enlarge` command does).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from enlarge import __version__
from enlarge.errors import EnlargeError, ImageTooLargeError, ModelError, SizeError
from enlarge.catalogue import is_registered, list_models, routable_models
from enlarge.formats import JPEG, MEDIA_TYPES, PNG, WEBP, usual_extension
from enlarge.serve.config import ServeConfig
from enlarge.serve.errors import QueueFullError, RequestError, TimeLimitError, WorkerLostError
from enlarge.serve.guard import PROTECTED_PREFIX, Guard
from enlarge.serve.pool import WorkerPool
from enlarge.serve.worker import Job, enlarge_job, init_worker
from enlarge.sizing import DEFAULT_FIT, PIXELS_PER_MP, SizeRequest
from enlarge.models.specs import DEFAULT_MODEL
from enlarge.paths import output_name

Fit = Literal["contain", "cover", "pad", "stretch"]
OutputFormat = Literal["png", "jpeg", "webp"]
FORMATS: dict[str, str] = {"png": PNG, "jpeg": JPEG, "webp": WEBP}  # the form's names → the formats they are
DEFAULT_FORMAT: OutputFormat = "png"
FORM_DEFAULT_FIT = cast(Fit, DEFAULT_FIT)  # the library's default, typed for the form
STATIC_PACKAGE = "enlarge.serve"
STATIC_FOLDER = "static"
PAGE = "index.html"
# The page loads nothing from elsewhere; blob: and data: carry the images it shows.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ERROR_STATUS: tuple[tuple[type[EnlargeError], int], ...] = (  # first match wins: subclasses before their bases
    (QueueFullError, 429),
    (TimeLimitError, 504),
    (WorkerLostError, 503),
    (ImageTooLargeError, 413),
    (EnlargeError, 400),
)
VALIDATION_STATUS = 422
FORM_MEDIA_TYPE = "multipart/form-data"
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_CHARS = 64
MAX_ECHO_CHARS = 40  # how much of a client's unknown model name an error repeats
FALLBACK_STEM = "image"
SIZE_SIDES = ("width", "height")
# Every field of the upload form, as sent (`format` is the form's name for output_format).
FORM_FIELDS = ("file", "scale", "width", "height", "fit", "model", "adaptive", "format")
ROUTED_DIGITS = 4  # decimals of X-Enlarge-Routed-Fraction


class ErrorBody(BaseModel):
    """Every error response: one line saying what was wrong and what to do."""

    error: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


UPSCALE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The enlarged image. Headers: X-Enlarge-Model (the model, or `lanczos` / `copy` when "
        "nothing was enlarged), X-Enlarge-Input-Size and X-Enlarge-Output-Size (`WxH`), X-Enlarge-Seconds; "
        "adaptive, when the model ran: X-Enlarge-Routed-Fraction (share of the output the big model decoded, 0-1); "
        "with the default model: X-Enlarge-Choice (why this model: a compressed JPEG goes to the robust twin).",
        "content": {
            MEDIA_TYPES[fmt]: {"schema": {"type": "string", "format": "binary"}} for fmt in FORMATS.values()
        },
    },
    400: _error("Not an image, a truncated one, a bad scale or size, an unknown model, or adaptive asked of a model "
                "without a little path (or without an adaptive calibration)"),
    401: _error("Missing or wrong bearer token"),
    413: _error("The upload or its image is above the server's size limits"),
    422: _error("A field is missing, of the wrong type, unknown, or given more than once"),
    429: _error("Busy: every worker is working and the waiting line is full; see Retry-After"),
    503: _error("A worker process died during the job; retry"),
    504: _error("The job ran past the server's time limit and was stopped"),
}
API_ERRORS: dict[int | str, dict[str, Any]] = {401: UPSCALE_RESPONSES[401]}


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The service for `config` (defaults: every core a worker, no token); workers start with the app."""
    config = config or ServeConfig()
    catalogue = list_models()
    offered = tuple(info.name for info in catalogue if info.available)
    adaptive_models = routable_models(offered)
    pool = WorkerPool(config.workers, config.queue, init_worker, (offered, config.threads_per_worker))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.start()
        try:
            yield
        finally:
            await pool.close()

    models_info = {  # computed once: it builds every model on the meta device
        "default": DEFAULT_MODEL,
        "models": [{**info.to_dict(), "adaptive": info.name in adaptive_models} for info in catalogue],
    }
    app = FastAPI(
        title="enlarge",
        version=__version__,
        description="Enlarge images by any factor: upload an image, choose a scale or a size, get the image back.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load their scripts from a CDN; the schema itself is at /openapi.json
        redoc_url=None,
    )
    app.add_middleware(Guard, token=config.token, max_body_bytes=config.max_upload_bytes)
    _add_error_handlers(app)
    _install_openapi(app, bearer=config.token is not None)
    static = Path(str(resources.files(STATIC_PACKAGE).joinpath(STATIC_FOLDER)))
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(static / PAGE, headers=PAGE_HEADERS)

    @app.get("/healthz", summary="Liveness and load")
    async def healthz() -> dict[str, Any]:
        """`ok` with the number of workers alive, busy, and jobs waiting; no token needed."""
        return {"status": "ok", **pool.stats()}

    @app.get("/v1/models", summary="The models this server offers", responses=API_ERRORS)
    async def models() -> dict[str, Any]:
        """Every registered model: `available` ones usable by name, `adaptive` ones able to route; the default."""
        return models_info

    @app.post(
        "/v1/upscale",
        summary="Enlarge one image",
        response_class=Response,
        responses=UPSCALE_RESPONSES,
    )
    async def upscale(
        http_request: Request,
        file: Annotated[UploadFile, File(description="the image: PNG, JPEG, WEBP, TIFF, BMP or GIF")],
        scale: Annotated[float | None, Form(description="scale factor, e.g. 2.5; or give width/height")] = None,
        width: Annotated[int | None, Form(description="output width; alone, the height keeps the aspect")] = None,
        height: Annotated[int | None, Form(description="output height; alone, the width keeps the aspect")] = None,
        fit: Annotated[Fit, Form(description="how the image meets width and height together")] = FORM_DEFAULT_FIT,
        model: Annotated[str | None, Form(description="a model name from /v1/models; default: the default")] = None,
        adaptive: Annotated[
            bool, Form(description="the big model only where the image has detail (models marked adaptive)")
        ] = False,
        output_format: Annotated[OutputFormat, Form(alias="format", description="output format")] = DEFAULT_FORMAT,
    ) -> Response:
        """Enlarge `file` by `scale`, or to `width` and/or `height` (with `fit` when both are given)."""
        _check_form_fields(await http_request.form())
        request = _size_request(scale, width, height, fit, config)
        name = _model_name(model, offered)  # None: the default, which sends compressed JPEGs to its robust twin
        if adaptive and (name or DEFAULT_MODEL) not in adaptive_models:
            raise RequestError(_no_little_path(name or DEFAULT_MODEL, adaptive_models))
        job = Job(
            await file.read(), request, name, output_format, config.max_input_pixels, config.timeout_s, adaptive
        )
        result = await pool.run(enlarge_job, job, time_limit_s=config.timeout_s)
        headers = {
            "X-Enlarge-Model": result.model,
            "X-Enlarge-Input-Size": _size_text(result.input_size),
            "X-Enlarge-Output-Size": _size_text(result.output_size),
            "X-Enlarge-Seconds": f"{result.seconds:.3f}",
            "Content-Disposition": f'inline; filename="{_output_name(file.filename, request, output_format)}"',
        }
        if result.routed_fraction is not None:
            headers["X-Enlarge-Routed-Fraction"] = f"{result.routed_fraction:.{ROUTED_DIGITS}f}"
        if result.choice is not None:
            headers["X-Enlarge-Choice"] = result.choice
        return Response(result.data, media_type=MEDIA_TYPES[FORMATS[output_format]], headers=headers)

    return app


def _check_form_fields(form: FormData) -> None:
    """422 for a field the form does not have (a typo would otherwise be ignored) or one given twice (only one
    would be used), named in the message as FastAPI names a field of the wrong type."""
    counts = Counter(name for name, _ in form.multi_items())
    for name, count in counts.items():
        if name not in FORM_FIELDS:
            problem = f"unknown field; the fields are {', '.join(FORM_FIELDS)}"
        elif count > 1:
            problem = f"given {count} times; give it once"
        else:
            continue
        raise RequestValidationError([{"loc": ("body", name[:MAX_ECHO_CHARS]), "msg": problem, "type": "form_field"}])


def _size_request(
    scale: float | None, width: int | None, height: int | None, fit: str, config: ServeConfig
) -> SizeRequest:
    """Exactly a scale, or a width and/or height; SizeRequest validates the values and plans the sizes."""
    sides = [side for side, value in zip(SIZE_SIDES, (width, height), strict=True) if value is not None]
    if scale is None and not sides:
        raise RequestError("give scale, or width and/or height")
    if scale is not None and sides:
        raise RequestError(f"give scale or {' and '.join(sides)}, not both")
    # No image is smaller than 1x1, so a larger scale is over the output limit for every input.
    largest_scale = math.sqrt(config.max_output_mp * PIXELS_PER_MP) + 1
    if scale is not None and math.isfinite(scale) and scale > largest_scale:
        raise SizeError(f"scale {scale:g} is above the largest this server allows ({largest_scale:.0f}); ask for less")
    return SizeRequest(scale=scale, width=width, height=height, fit=fit, max_output_mp=config.max_output_mp)


def _model_name(model: str | None, offered: tuple[str, ...]) -> str | None:
    """A model name this server has loaded, or None for the default; never a path."""
    if model is None or model == "":
        return None
    if model in offered:
        return model
    shown = model if len(model) <= MAX_ECHO_CHARS else model[:MAX_ECHO_CHARS] + "…"
    why = "has no weights on this server" if is_registered(model) else "is not a model name"
    raise ModelError(f"model {shown!r} {why}; use one of: {', '.join(offered)} (see /v1/models)")


def _no_little_path(name: str, adaptive_models: tuple[str, ...]) -> str:
    """Why `name` cannot enlarge adaptively, and what to send instead."""
    instead = f"choose one of: {', '.join(adaptive_models)}" if adaptive_models else "none on this server can"
    return (f"model {name!r} has no cheap little path, so it cannot enlarge adaptively; send adaptive=false, "
            f"or a model that can ({instead}; see /v1/models)")


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _output_name(upload_name: str | None, request: SizeRequest, output_format: str) -> str:
    """`STEM_LABEL.EXT` from the upload's name, cut down to safe characters (it is only ever a header)."""
    stem = SAFE_NAME.sub("_", Path(upload_name or "").stem).strip("._")[:MAX_NAME_CHARS] or FALLBACK_STEM
    return output_name(stem, request.label, usual_extension(FORMATS[output_format]))


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure a client can cause → its status and `{"error": "..."}`; anything else → 500."""

    @app.exception_handler(EnlargeError)
    async def enlarge_error(request: Request, exc: EnlargeError) -> JSONResponse:
        status = next(code for kind, code in ERROR_STATUS if isinstance(exc, kind))
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, QueueFullError) else None
        return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_field(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_line(exc)}, status_code=VALIDATION_STATUS)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)  # a bug, not the client's doing: the server logs the traceback
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "internal error; the server log has the details"}, status_code=500)


def _validation_line(exc: RequestValidationError) -> str:
    """The first problem FastAPI found, as `field: what is wrong` (and how many more there are)."""
    errors = exc.errors()
    if not errors:
        return "the request is not valid"
    first = errors[0]
    field = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{field}: {first.get('msg', 'invalid')}{more}"


def _install_openapi(app: FastAPI, bearer: bool) -> None:
    """FastAPI's schema with two corrections: a form field is never null (a form leaves a field out instead), and,
    with a token, the /v1/ operations declare bearer auth (which the Guard enforces)."""
    build = app.openapi  # FastAPI's own: builds the schema once and keeps it in `app.openapi_schema`

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.get("components", {})
            for path, operations in schema["paths"].items():
                for operation in operations.values():
                    form = operation.get("requestBody", {}).get("content", {}).get(FORM_MEDIA_TYPE)
                    if form is not None:
                        name = form["schema"]["$ref"].rsplit("/", 1)[-1]
                        for field in components["schemas"][name]["properties"].values():
                            _drop_null(field)
                    if bearer and path.startswith(PROTECTED_PREFIX):
                        operation["security"] = [{"bearer": []}]
            if bearer:
                components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
                schema["components"] = components
            return schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _drop_null(field: dict[str, Any]) -> None:
    """`anyOf: [X, null]` with a null default → X, no default: how an optional form field really behaves."""
    options = field.get("anyOf", [])
    kept = [option for option in options if option != {"type": "null"}]
    if len(kept) == 1 and len(options) == 2:
        del field["anyOf"]
        field.update(kept[0])
        if field.get("default", "") is None:
            del field["default"]
