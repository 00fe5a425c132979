"""`enlarge serve`: run the HTTP API and the web page (needs the `serve` extra: FastAPI, uvicorn).

Binds to 127.0.0.1 unless told otherwise; a server reachable from other machines should have a token
(`--token`, or better the ENLARGE_TOKEN environment variable, which `ps` does not show).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from enlarge.errors import EnlargeError
from enlarge.serve.config import (
    AUTO_WORKERS,
    DEFAULT_MAX_INPUT_MP,
    DEFAULT_MAX_OUTPUT_MP,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_QUEUE,
    DEFAULT_TIMEOUT_S,
    ServeConfig,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
TOKEN_ENV = "ENLARGE_TOKEN"
LOCAL_NAMES = frozenset({"localhost"})
MAX_PORT = 65_535
SERVE_PACKAGES = frozenset({"fastapi", "uvicorn", "starlette", "multipart", "python_multipart"})

# The library's setting names (EnlargeError.setting) that this command spells otherwise than `--name-with-dashes`.
FLAGS = {"timeout_s": "--timeout"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `serve` command to the `enlarge` parser."""
    parser = sub.add_parser(
        "serve",
        description="Serve POST /v1/upscale, GET /v1/models, GET /healthz, the OpenAPI schema (/openapi.json) "
        "and a web page at /. Enlargement runs in worker processes that keep the models loaded.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    parser.add_argument(
        "--workers", type=int, default=AUTO_WORKERS, metavar="N",
        help="worker processes, each loading models as requests need them (default 0: one per core, as many as "
        "the memory holds at --max-output-mp; threads per worker: the free CPUs shared out)",
    )
    parser.add_argument(
        "--token", metavar="T",
        help=f"require Authorization: Bearer T on /v1/ (default: ${TOKEN_ENV} if set, else no token)",
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
        help="largest upload accepted (default %(default)g)",
    )
    parser.add_argument(
        "--max-input-mp", type=float, default=DEFAULT_MAX_INPUT_MP, metavar="MP",
        help="largest input image in megapixels (default %(default)g)",
    )
    parser.add_argument(
        "--max-output-mp", type=float, default=DEFAULT_MAX_OUTPUT_MP, metavar="MP",
        help="largest output image in megapixels (default %(default)g)",
    )
    parser.add_argument(
        "--queue", type=int, default=DEFAULT_QUEUE, metavar="N",
        help="requests that may wait for a worker; more get 429 (default %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
        help="seconds one enlargement may run before it is stopped (default %(default)g)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Start the server in the foreground until interrupted."""
    if not 0 <= args.port <= MAX_PORT:
        raise EnlargeError(f"--port must be from 0 to {MAX_PORT}, got {args.port}")
    try:
        import uvicorn

        from enlarge.serve.app import create_app
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in SERVE_PACKAGES:
            raise
        raise EnlargeError(f"enlarge serve needs {exc.name}: pip install 'enlarge[serve]'") from None
    config = ServeConfig(
        workers=args.workers,
        token=args.token if args.token is not None else os.environ.get(TOKEN_ENV),
        max_upload_mb=args.max_upload_mb,
        max_input_mp=args.max_input_mp,
        max_output_mp=args.max_output_mp,
        queue=args.queue,
        timeout_s=args.timeout,
    )
    if config.token is None and not is_loopback(args.host):
        print(f"warning: serving on {args.host} without a token; anyone who can reach it can use it "
              f"(set {TOKEN_ENV})", file=sys.stderr)
    uvicorn.run(create_app(config), host=args.host, port=args.port)
    return 0


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine."""
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
