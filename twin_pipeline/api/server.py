"""`twin serve`: the API on uvicorn, over one data directory and the Dagster instance at $DAGSTER_HOME."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from ..defs.demo import prepare_home
from .app import Settings, create_app
from .security import TOKEN_ENV, api_token


class ServeError(ValueError):
    """A setting `twin serve` cannot start with (one line for the CLI)."""


def dagster_home(data: Path) -> Path:
    """$DAGSTER_HOME (what `dagster dev` uses), else <data>/dagster_home as `twin demo` prepares it."""
    configured = os.environ.get("DAGSTER_HOME")
    if configured:
        home = Path(configured).absolute()
        if not home.is_dir():
            raise ServeError(f"DAGSTER_HOME={home}: not a directory")
        return home
    return prepare_home(data / "dagster_home") if not (data / "dagster_home" / "dagster.yaml").exists() \
        else data / "dagster_home"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(host: str, port: int, data: Path, *, ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
          max_upload_bytes: int, cors_origins: list[str], insecure_http: bool = False,
          max_concurrent_runs: int | None = None) -> None:
    """Start the server; prints the token when it generated one. Plain HTTP only on loopback unless told."""
    import uvicorn

    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise ServeError("--ssl-certfile and --ssl-keyfile go together")
    for path in filter(None, (ssl_certfile, ssl_keyfile)):
        if not Path(path).is_file():
            raise ServeError(f"{path}: file not found")
    if not ssl_certfile and not _loopback(host) and not insecure_http:
        raise ServeError(f"--host {host} is reachable from other machines: uploads must use TLS "
                         "(--ssl-certfile/--ssl-keyfile), or pass --insecure-http behind a TLS proxy")
    try:
        token, generated = api_token()
    except ValueError as error:
        raise ServeError(str(error)) from None
    os.environ.pop(TOKEN_ENV, None)  # run workers and their steps inherit the environment: not the token
    data = data.absolute()
    home = dagster_home(data)
    settings = Settings(data_dir=data, dagster_home=home, token=token, max_upload_bytes=max_upload_bytes,
                        cors_origins=cors_origins, max_concurrent_runs=max_concurrent_runs)
    scheme = "https" if ssl_certfile else "http"
    print(f"twin serve: {scheme}://{host}:{port}/api/fintech (docs: {scheme}://{host}:{port}/docs)\n"
          f"  data directory {data}\n  Dagster instance {home} "
          f"(see the runs: DAGSTER_HOME={home} TWIN_DATA_DIR={data} dagster dev -w workspace.yaml)", flush=True)
    if generated:
        print(f"  {TOKEN_ENV} was not set; this server's token: {token}", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
                log_level="warning", server_header=False)


def parse_size(text: str) -> int:
    """`1GiB`, `500MB`, `1048576`: bytes."""
    units = {"k": 10**3, "m": 10**6, "g": 10**9, "kb": 10**3, "mb": 10**6, "gb": 10**9,
             "kib": 2**10, "mib": 2**20, "gib": 2**30, "b": 1, "": 1}
    number = text.strip()
    digits = len(number) - len(number.lstrip("0123456789."))
    value, unit = number[:digits], number[digits:].strip().lower()
    if not value or unit not in units:
        raise ValueError(f"expected a size such as 1GiB, 500MB or 1048576, got {text!r}")
    size = int(float(value) * units[unit])
    if size < 1:
        raise ValueError(f"the upload size limit must be at least 1 byte, got {text!r}")
    return size
