"""The HTTP routes of the seed (`/api/fintech/...`), each a few lines over uploads, runs and portfolios.

Every route but health needs `Authorization: Bearer <token>`, the OpenAPI docs included (there also as a Basic
password, see `security`); every authorised call (upload, clone, status, download, validate) is appended to the
DuckDB audit chain with the caller's token fingerprint (never the token).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import dagster as dg
import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..audit import AuditLog, canonical_json
from ..defs.config import CloneConfig
from ..defs.landing import FULL_READ_BYTES
from ..defs.resources import TwinStorage
from ..errors import TwinInputError
from ..options import resolve_options
from ..tables import read_table, sha256_file
from . import portfolios, uploads
from .runs import FILE_TAG, PORTFOLIO_TAG, RunLauncher
from .security import fingerprint, presented_token, token_matches

PREFIX = "/api/fintech"
DEFAULT_MAX_UPLOAD = 1 << 30  # 1 GiB
UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {  # read by hand
    "type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"}}}}}}}
AUDIT_WAIT_SECONDS = 30.0  # how long a call waits for run workers to release the DuckDB audit file


@dataclass
class Settings:
    data_dir: Path
    dagster_home: Path
    token: str
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    cors_origins: list[str] = field(default_factory=list)
    max_concurrent_runs: int | None = None


class CloneRequest(BaseModel):
    """The seed's clone-portfolio body; unknown fields are refused rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")
    file_id: str = Field(pattern=uploads.FILE_ID.pattern, description="The upload's file_id (RAW_...)")
    num_samples: int = Field(ge=1, description="Synthetic rows (borrowers) to generate")
    primary_key: Optional[str] = Field(default=None, description="Column with a unique id per row")
    k: Optional[int] = Field(default=None, ge=2, description="k-anonymity target (default 5)")
    quasi_identifiers: Optional[list[str]] = Field(default=None, description="Default: detected by name and kind")
    seed: Optional[int] = Field(default=None, description="Random seed (default 0): same seed, same twin")
    rules: Optional[Union[list, dict]] = Field(default=None, description="Declared business rules, the list "
                                               "itself (as in a rules file; never a path on the server)")


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    original_portfolio_id: str = Field(description="What the twin is measured against: an upload's real table "
                                                   "(RAW_...) or any completed portfolio's twin (TWIN_...)")
    synthetic_portfolio_id: str = Field(pattern=portfolios.PORTFOLIO_ID.pattern,
                                        description="A completed portfolio (TWIN_...): its twin is measured")


def create_app(settings: Settings) -> FastAPI:
    storage = TwinStorage(data_dir=str(settings.data_dir))
    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
        launcher = RunLauncher(instance, storage.root, settings.max_concurrent_runs)
        launcher.start()
        # One AuditLog for the server: its lock orders this process's appends (DuckDB lets threads of one
        # process open the file at once, and two first-time schema creations would conflict).
        state.update(instance=instance, launcher=launcher, audit=AuditLog(storage.audit_db, AUDIT_WAIT_SECONDS))
        try:
            yield
        finally:
            launcher.stop()
            instance.dispose()

    app = FastAPI(title="twin-pipeline", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  description="The seed's REST API over the Dagster pipeline: upload a credit table, clone it into a "
                              "privacy-safe twin, follow the run, download the twin and its reports.")
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    bearer = HTTPBearer(auto_error=False, description="TWIN_API_TOKEN (printed by `twin serve` when generated)")
    caller_print = fingerprint(settings.token)

    def caller(credentials: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> str:
        if credentials is None or not token_matches(credentials.credentials, settings.token):
            raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer $TWIN_API_TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})
        return caller_print

    def audit(operation: str, portfolio: str, data_hash: str, metadata: dict) -> None:
        """Append before answering; when the trail stays busy (run workers write to it too) the call is refused
        with 503, so nothing is uploaded, cloned or served unaudited."""
        try:
            state["audit"].append(operation, portfolio, data_hash, {**metadata, "via": "api"})
        except TimeoutError:
            raise HTTPException(503, "the audit trail is busy; retry in a few seconds",
                                headers={"Retry-After": "5"}) from None

    def docs_reader(request: Request) -> str:
        """The docs' guard: the token as a bearer header or as a Basic password; a browser is asked for it."""
        given = presented_token(request.headers.get("authorization"), basic=True)
        if given is None or not token_matches(given, settings.token):
            raise HTTPException(401, "the API docs need the token: Authorization: Bearer $TWIN_API_TOKEN, or in a "
                                     "browser the token as password (any user name)",
                                headers={"WWW-Authenticate": 'Basic realm="twin-pipeline API docs", charset="UTF-8"'})
        return caller_print

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_: str = Depends(docs_reader)) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(_: str = Depends(docs_reader)) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="twin-pipeline API")

    @app.get(f"{PREFIX}/health")
    def health() -> dict:
        launcher = state.get("launcher")
        return {"status": "healthy", "runs_executing": launcher.active() if launcher else 0}

    @app.post(f"{PREFIX}/upload-data", openapi_extra=UPLOAD_BODY)
    async def upload_data(request: Request, who: str = Depends(caller)) -> dict:
        try:
            record = await uploads.receive(request, storage.root, settings.max_upload_bytes)
        except uploads.UploadError as error:
            raise HTTPException(error.status, error.problem) from None
        try:
            await run_in_threadpool(audit, "UPLOAD_INGESTED", record["file_id"], record["sha256"], {
                "caller": who, "filename": record["filename"], "bytes": record["bytes"],
                "columns": len(record["detected_columns"])})
        except HTTPException:
            uploads.discard(storage.root, record["file_id"])
            raise
        return {"status": "success", "file_id": record["file_id"], "filename": record["filename"],
                "detected_columns": record["detected_columns"],
                "message": f"{len(record['detected_columns'])} columns detected; clone it with "
                           f"POST {PREFIX}/clone-portfolio"}

    @app.post(f"{PREFIX}/clone-portfolio")
    def clone_portfolio(body: CloneRequest, who: str = Depends(caller)) -> dict:
        upload = _upload(storage, body.file_id)
        config = _clone_config(body, upload)
        portfolio_id = portfolios.new_portfolio_id()
        partition = portfolios.partition_for(portfolio_id, upload["path"])
        source = upload["path"].with_name(f"{portfolio_id}{upload['path'].suffix}")
        try:
            os.link(upload["path"], source)  # the name the partition key is made of; the same bytes, not a copy
        except OSError:  # a file system without hard links
            shutil.copyfile(upload["path"], source)
        config = config.model_copy(update={"source": str(source)})
        executor = "in_process" if body.num_samples <= config.shard_rows else None
        audit("CLONE_INITIATED", partition, upload["sha256"], {  # first: no run starts unaudited
            "caller": who, "portfolio_id": portfolio_id, "file_id": body.file_id,
            "parameters": body.model_dump(exclude={"file_id"}, exclude_none=True)})
        run = state["launcher"].submit(partition, dg.RunConfig(ops={"raw_upload": config}).to_config_dict(),
                                       {PORTFOLIO_TAG: portfolio_id, FILE_TAG: body.file_id}, executor)
        return {"status": "initializing", "portfolio_id": portfolio_id, "run_id": run.run_id,
                "message": f"cloning {upload['filename'] or body.file_id} into {body.num_samples:,} rows; "
                           f"follow GET {PREFIX}/portfolio/{portfolio_id}"}

    @app.get(f"{PREFIX}/portfolio/{{portfolio_id}}")
    def portfolio(portfolio_id: str, who: str = Depends(caller)) -> dict:
        try:
            answer = portfolios.describe(state["instance"], storage, portfolio_id)
        except portfolios.NotFound as error:
            raise HTTPException(404, str(error)) from None
        audit("STATUS_READ", answer["dagster_partition"], _digest(answer), {
            "caller": who, "portfolio_id": portfolio_id, "status": answer["status"]})
        return answer

    @app.get(f"{PREFIX}/download/{{portfolio_id}}/{{file}}")
    def download(portfolio_id: str, file: str, who: str = Depends(caller)) -> FileResponse:
        try:
            path = portfolios.published_file(state["instance"], storage, portfolio_id, file)
        except portfolios.NotFound as error:
            raise HTTPException(404, str(error)) from None
        run = portfolios.run_of(state["instance"], portfolio_id)
        digest = sha256_file(path)
        audit("DOWNLOAD", run.tags["dagster/partition"], digest, {
            "caller": who, "portfolio_id": portfolio_id, "file": file, "bytes": path.stat().st_size})
        return FileResponse(path, media_type=portfolios.MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                            filename=f"{portfolio_id}_{path.name}")

    @app.post(f"{PREFIX}/validate")
    def validate(body: ValidateRequest, who: str = Depends(caller)) -> dict:
        try:
            answer = portfolios.compare(state["instance"], storage, body.original_portfolio_id,
                                        body.synthetic_portfolio_id)
        except uploads.UploadError as error:
            raise HTTPException(error.status, error.problem) from None
        except portfolios.NotFound as error:
            raise HTTPException(404, str(error)) from None
        except portfolios.TooLarge as error:
            raise HTTPException(413, str(error)) from None
        except (ValueError, TwinInputError) as error:
            raise HTTPException(422, str(error)) from None
        except LookupError as error:
            raise HTTPException(409, str(error)) from None
        audit("VALIDATED", answer["dagster_partition"], _digest(answer), {
            "caller": who, "original_portfolio_id": body.original_portfolio_id,
            "synthetic_portfolio_id": body.synthetic_portfolio_id, "passed": answer["passed"]})
        return answer

    return app


def _digest(answer: dict) -> str:
    """What the caller was told, as the audit entry's data hash: the SHA-256 of the answer's canonical JSON."""
    return hashlib.sha256(canonical_json(answer).encode()).hexdigest()


def _upload(storage: TwinStorage, file_id: str) -> dict:
    try:
        return uploads.describe(storage.root, file_id)
    except uploads.UploadError as error:
        raise HTTPException(error.status, error.problem) from None


def _clone_config(body: CloneRequest, upload: dict) -> CloneConfig:
    """The run config of the clone, checked now by `options.resolve_options` so a bad request is a 4xx, not a
    failed run: on the whole table when it is small enough to read here, else on its header (names only; the
    run's raw_upload step checks the key's uniqueness on the full table). Rules travel as JSON text, the form
    the run config takes inline rules in."""
    settings = {"rows": body.num_samples, "primary_key": body.primary_key, "k": body.k,
                "quasi_identifiers": body.quasi_identifiers, "seed": body.seed,
                "rules": None if body.rules is None else json.dumps(body.rules)}
    config = CloneConfig(**{name: value for name, value in settings.items() if value is not None})
    small = upload["bytes"] <= FULL_READ_BYTES
    try:
        table = read_table(upload["path"]) if small else pd.DataFrame(columns=upload["detected_columns"])
        resolve_options(table, config.to_options(), upload["filename"] or upload["file_id"])
    except TwinInputError as error:
        raise HTTPException(422, str(error)) from None
    return config
