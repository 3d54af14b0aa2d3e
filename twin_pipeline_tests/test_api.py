"""`twin serve` as a client sees it: a real server process on a free loopback port, plain HTTP (httpx).

The fast tests check refusals (no token, bad uploads, bad ids, bad clone requests); the tests marked slow wait
for real Dagster runs (tens of seconds each): the seed's five calls end to end, a failed run's status, and
concurrent clones, each checked in the Dagster instance and the audit chain too.
"""

import io
import json
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd
import pytest
from conftest import SAMPLES, stop_process_group
from shapes import lending_table, narrow_table, overdraft_table

from twin_pipeline.audit import AuditLog
from twin_pipeline.api.portfolios import compatible_columns
from twin_pipeline.api.security import fingerprint, presented_token

REPOSITORY = Path(__file__).resolve().parents[1]
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
UPLOAD_LIMIT = 200_000  # bytes: small, so the oversized uploads are cheap
RUN_DEADLINE = 300
API = "/api/fintech"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, root: Path, extra_args: tuple[str, ...] = (), verify: ssl.SSLContext | bool = True):
        self.data, self.home = root / "data", root / "dagster_home"
        self.home.mkdir(parents=True)
        shutil.copyfile(REPOSITORY / "dagster.yaml", self.home / "dagster.yaml")
        self.port = _free_port()
        self.url = f"{'https' if extra_args else 'http'}://127.0.0.1:{self.port}"
        self.log_path = root / "server.log"
        env = {**os.environ, "TWIN_API_TOKEN": TOKEN, "DAGSTER_HOME": str(self.home),
               "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")])}
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "twin_pipeline.cli", "serve", "--port", str(self.port), "--data-dir",
             str(self.data), "--max-upload", str(UPLOAD_LIMIT), *extra_args],
            cwd=REPOSITORY, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.client = httpx.Client(base_url=self.url, timeout=60, verify=verify)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                if self.client.get(f"{API}/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.5)
        raise AssertionError(f"server not up in 120 s:\n{self.log_path.read_text()}")

    def uploads(self) -> list[str]:
        folder = self.data / "raw" / "uploads"
        return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []

    def upload(self, name: str, content: bytes) -> httpx.Response:
        return self.client.post(f"{API}/upload-data", headers=AUTH, files={"file": (name, content, "text/csv")})

    def wait(self, portfolio_id: str) -> dict:
        deadline = time.monotonic() + RUN_DEADLINE
        while time.monotonic() < deadline:
            answer = self.client.get(f"{API}/portfolio/{portfolio_id}", headers=AUTH).json()
            if answer["status"] in ("COMPLETED", "FAILED"):
                return answer
            time.sleep(2)
        raise AssertionError(f"{portfolio_id} not finished in {RUN_DEADLINE} s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self):
        self.client.close()
        stop_process_group(self.process, signal.SIGINT)
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("api"))
    yield running
    running.stop()


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def test_health_is_open_and_every_other_call_needs_the_token(server):
    assert server.client.get(f"{API}/health").json()["status"] == "healthy"
    calls = [("post", f"{API}/upload-data"), ("post", f"{API}/clone-portfolio"),
             ("get", f"{API}/portfolio/TWIN_20250101T000000Z_0123456789ab"),
             ("get", f"{API}/download/TWIN_20250101T000000Z_0123456789ab/synthetic.csv"), ("post", f"{API}/validate")]
    for method, path in calls:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
            answer = server.client.request(method, path, headers=headers)
            assert answer.status_code == 401, (method, path, headers, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer" and "token" in answer.json()["detail"]
    for path in ("/openapi.json", "/docs", "/redoc"):  # the docs need the token too; there is no ReDoc page
        answer = server.client.get(path)
        assert answer.status_code in (401, 404) and TOKEN not in answer.text, path
    assert server.client.get("/docs").headers["www-authenticate"].startswith("Basic")  # a browser asks for it
    spec = server.client.get("/openapi.json", headers=AUTH).json()
    assert spec["paths"].keys() >= {f"{API}/upload-data", f"{API}/validate"} and "/docs" not in spec["paths"]
    for user in ("", "anyone"):  # in a browser: the token as the password of the Basic prompt
        browser = server.client.get("/docs", auth=(user, TOKEN))
        assert browser.status_code == 200 and "/openapi.json" in browser.text
    assert server.client.get("/docs", auth=("anyone", "wrong-token-0123456789")).status_code == 401
    basic = server.client.get(f"{API}/portfolio/TWIN_20250101T000000Z_0123456789ab", auth=("anyone", TOKEN))
    assert basic.status_code == 401  # a browser's remembered Basic password never calls the API itself
    assert "access-control-allow-origin" not in server.client.get(
        f"{API}/health", headers={"Origin": "https://elsewhere.example"}).headers  # CORS off by default


def test_upload_is_validated_private_and_never_named_by_the_client(server):
    table = lending_table(n=300).head(300)
    content = _csv(table)
    assert len(content) < UPLOAD_LIMIT
    answer = server.upload("../../../../escape.csv", content)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "success" and re.fullmatch(r"RAW_[0-9a-f]{32}", body["file_id"])
    assert body["filename"] == "../../../../escape.csv" and body["detected_columns"] == list(table.columns)
    folder = server.data / "raw" / "uploads" / body["file_id"]
    assert sorted(path.name for path in folder.iterdir()) == ["upload.csv", "upload.json"]
    assert (folder / "upload.csv").read_bytes() == content
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE((folder / "upload.csv").stat().st_mode) == 0o600
    assert not any(server.data.parent.rglob("escape.csv"))
    entry = AuditLog(server.data / "twin.duckdb").entries(body["file_id"]).iloc[-1]
    assert entry["operation"] == "UPLOAD_INGESTED" and entry["metadata"]["caller"] == fingerprint(TOKEN)


def test_bad_uploads_get_a_4xx_naming_the_problem_and_leave_nothing(server):
    before = server.uploads()
    oversized = _csv(narrow_table(n=20_000))
    assert len(oversized) > UPLOAD_LIMIT
    cases = {
        "garbage": (server.upload("loans.csv", bytes(range(256)) * 50), 400, "binary"),
        "empty": (server.upload("loans.csv", b""), 400, "empty"),
        "header only": (server.upload("loans.csv", b"a,b,c\n"), 400, "no data rows"),
        "one row": (server.upload("loans.csv", b"a,b\n1,2\n"), 400, "only 1 data row"),
        "oversized": (server.upload("loans.csv", oversized), 413, "upload limit"),
        "no file field": (server.client.post(f"{API}/upload-data", headers=AUTH, files={"other": ("x.csv", b"a,b\n1,2\n3,4\n")}),
                          400, "'file'"),
        "not multipart": (server.client.post(f"{API}/upload-data", headers=AUTH, content=b"a,b\n1,2\n"), 415, "multipart"),
    }
    for case, (answer, status, words) in cases.items():
        assert answer.status_code == status, (case, answer.text)
        assert words in answer.json()["detail"], (case, answer.json())
    assert server.uploads() == before


def test_oversized_upload_without_a_length_is_cut_off_while_streaming(server):
    """No Content-Length to refuse up front: the server stops reading once the file passes the limit."""
    before = server.uploads()
    boundary = "twinboundary"
    sent = {"bytes": 0}

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
               "Content-Type: text/csv\r\n\r\na,b\r\n").encode()
        for _ in range(200):  # 200 x 10 kB = 2 MB, ten times the limit
            sent["bytes"] += 10_000
            yield b"1,2\r\n" * 2_000
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        answer = server.client.post(f"{API}/upload-data", headers={**AUTH, "Content-Type":
                                                                   f"multipart/form-data; boundary={boundary}"},
                                    content=body())
        assert answer.status_code == 413 and "upload limit" in answer.json()["detail"]
    except httpx.TransportError:
        pass  # the server may close the connection while the client is still sending: refused as well
    assert server.uploads() == before


def test_bad_clone_requests_are_refused_before_any_run(server):
    upload = server.upload("overdraft.csv", _csv(overdraft_table())).json()
    cases = [
        ({"file_id": "RAW_" + "0" * 32, "num_samples": 10}, 404, "no upload"),
        ({"file_id": "../../etc/passwd", "num_samples": 10}, 422, None),
        ({"file_id": upload["file_id"], "num_samples": 0}, 422, None),
        ({"file_id": upload["file_id"], "num_samples": 10, "k": 1}, 422, None),
        ({"file_id": upload["file_id"], "num_samples": 10, "primary_key": "nope"}, 422, "nope"),
        ({"file_id": upload["file_id"], "num_samples": 10, "quasi_identifiers": ["age", "zip"]}, 422, "zip"),
        ({"file_id": upload["file_id"], "num_samples": 10, "colour": "red"}, 422, None),
        ({"file_id": upload["file_id"], "num_samples": 10, "rules": "/etc/passwd"}, 422, None),  # never a path
        ({"file_id": upload["file_id"], "num_samples": 10,
          "rules": [{"type": "inequality", "low": "age", "high": "salary"}]}, 422, "salary"),
    ]
    for body, status, words in cases:
        answer = server.client.post(f"{API}/clone-portfolio", headers=AUTH, json=body)
        assert answer.status_code == status, (body, answer.text)
        assert words is None or words in json.dumps(answer.json()), (body, answer.json())
    for path in (f"{API}/portfolio/TWIN_20250101T000000Z_0123456789ab", f"{API}/portfolio/..%2F..%2Fetc",
                 f"{API}/portfolio/twin-x"):
        assert server.client.get(path, headers=AUTH).status_code == 404, path
    unknown = "TWIN_20250101T000000Z_0123456789ab"
    for original, synthetic, status in ((upload["file_id"], unknown, 404), ("RAW_" + "0" * 32, unknown, 404),
                                        (unknown, unknown, 404), ("../etc", unknown, 404),
                                        (upload["file_id"], "twin-x", 422)):
        answer = server.client.post(f"{API}/validate", headers=AUTH, json={
            "original_portfolio_id": original, "synthetic_portfolio_id": synthetic})
        assert answer.status_code == status, (original, synthetic, answer.text)
    with dg.DagsterInstance.from_config(str(server.home)) as instance:
        assert instance.get_runs() == []


@pytest.mark.slow
def test_tls_serves_uploads_over_https_only(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    tls = Server(tmp_path / "server", ("--ssl-certfile", str(cert), "--ssl-keyfile", str(key)),
                 verify=ssl.create_default_context(cafile=str(cert)))
    try:
        answer = tls.upload("loans.csv", _csv(lending_table(n=100)))
        assert answer.status_code == 200 and answer.json()["file_id"].startswith("RAW_"), answer.text
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{tls.port}{API}/health", timeout=10)
    finally:
        tls.stop()


@pytest.mark.slow
def test_the_seeds_five_calls_end_to_end(server):
    """Upload the bundled 1,319-row credit_card.csv, clone, follow, download, validate; then the same run in
    the Dagster instance, and the calls in the audit chain."""
    content = (SAMPLES / "credit_card.csv").read_bytes()
    upload = server.upload("credit_card.csv", content).json()
    clone = server.client.post(f"{API}/clone-portfolio", headers=AUTH, json={
        "file_id": upload["file_id"], "num_samples": 2000, "k": 5, "seed": 3,
        "quasi_identifiers": ["age", "income", "owner"], "rules": [{"type": "range", "column": "expenditure", "min": 0}]})
    assert clone.status_code == 200, clone.text
    portfolio_id = clone.json()["portfolio_id"]
    assert clone.json()["status"] == "initializing" and re.fullmatch(r"TWIN_\d{8}T\d{6}Z_[0-9a-f]{12}", portfolio_id)
    early = server.client.get(f"{API}/portfolio/{portfolio_id}", headers=AUTH).json()
    assert early["status"] in ("PENDING", "RUNNING") and early["download_urls"] is None
    assert server.client.get(f"{API}/download/{portfolio_id}/synthetic.csv", headers=AUTH).status_code == 404

    status = server.wait(portfolio_id)
    assert status["status"] == "COMPLETED", status
    assert status["source"] == "CLONE" and 0.99 * 2000 <= status["num_borrowers"] <= 2000
    figures = status["stats_json"]
    assert figures["quality_score"] > 85 and figures["correlation_error"] < 0.1
    assert figures["k_anonymity"] >= 5 and figures["bank_compliant"] is True
    assert figures["rules"]["declared"] == 1 and figures["rules"]["declared_broken"] == []  # the request's rule
    urls = status["download_urls"]
    assert set(urls) == {"synthetic", "quality_report", "privacy_report", "report_html"}
    assert figures["quality_vs_ceiling"] > 0 and figures["tstr"] is not None
    page = server.client.get(urls["report_html"], headers=AUTH)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")

    twin = pd.read_csv(io.BytesIO(server.client.get(urls["synthetic"], headers=AUTH).content))
    assert len(twin) == status["num_borrowers"] and list(twin.columns) == upload["detected_columns"]
    report = server.client.get(urls["quality_report"], headers=AUTH).json()
    assert report["similarity_score"] == pytest.approx(figures["quality_score"])
    validated = server.client.post(f"{API}/validate", headers=AUTH, json={
        "original_portfolio_id": upload["file_id"], "synthetic_portfolio_id": portfolio_id}).json()
    assert validated["passed"] is True and {check["name"] for check in validated["checks"]} >= {
        "k_anonymity_at_least_k", "no_exact_copies", "similarity_score_at_least_85"}
    assert validated["quality"]["similarity_score"] == pytest.approx(figures["quality_score"])

    for escape in ("..%2F..%2Fraw_upload.json", "..%2Fmodel.json", "model.json", "raw_upload.json",
                   "%2Fetc%2Fpasswd", "shards.json", "..", "synthetic.csv%00.json"):
        answer = server.client.get(f"{API}/download/{portfolio_id}/{escape}", headers=AUTH)
        assert answer.status_code == 404 and b"card,reports" not in answer.content, escape

    with dg.DagsterInstance.from_config(str(server.home)) as instance:  # what `dagster dev` on this home shows
        run = instance.get_run_by_id(status["run_id"])
        assert run.job_name == "clone_portfolio" and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition"] == status["dagster_partition"]
        assert instance.has_dynamic_partition("portfolios", status["dagster_partition"])
        materialized = instance.get_materialized_partitions(dg.AssetKey("k_anonymized_output"))
        assert status["dagster_partition"] in materialized

    # validate takes any two tables: the twin against itself, against a part of the real table uploaded again,
    # and a table of other columns is refused naming them
    itself = server.client.post(f"{API}/validate", headers=AUTH, json={
        "original_portfolio_id": portfolio_id, "synthetic_portfolio_id": portfolio_id}).json()
    assert itself["quality"]["similarity_score"] > 99 and itself["rows"] == {"original": len(twin), "synthetic": len(twin)}
    half = server.upload("half.csv", _csv(pd.read_csv(io.BytesIO(content)).head(660))).json()
    other = server.client.post(f"{API}/validate", headers=AUTH, json={
        "original_portfolio_id": half["file_id"], "synthetic_portfolio_id": portfolio_id}).json()
    assert other["rows"]["original"] == 660 and 50 < other["quality"]["similarity_score"] <= 100
    overdraft = server.upload("overdraft.csv", _csv(overdraft_table())).json()
    refused = server.client.post(f"{API}/validate", headers=AUTH, json={
        "original_portfolio_id": overdraft["file_id"], "synthetic_portfolio_id": portfolio_id})
    assert refused.status_code == 422 and "incompatible columns" in refused.json()["detail"]

    log = AuditLog(server.data / "twin.duckdb")
    assert log.verify().ok
    operations = log.entries(status["dagster_partition"])
    api_calls = operations[operations["metadata"].map(lambda meta: meta.get("via") == "api")]
    calls = list(api_calls["operation"])  # every answered call: status polls and validations too
    assert calls[0] == "CLONE_INITIATED" and calls.count("DOWNLOAD") == 3 and calls.count("VALIDATED") == 3
    assert calls.count("STATUS_READ") >= 2 and set(calls) == {"CLONE_INITIATED", "STATUS_READ", "DOWNLOAD", "VALIDATED"}
    assert all(meta["caller"] == fingerprint(TOKEN) for meta in api_calls["metadata"])
    assert TOKEN.encode() not in (server.data / "twin.duckdb").read_bytes()


@pytest.mark.slow
def test_a_failed_run_reports_its_step_and_message(server):
    """The upload changes on disk between the clone call and the run (tampering, a disk fault): the run's
    raw_upload step refuses bytes that no longer hash to the portfolio, and the status says where and why."""
    upload = server.upload("loans.csv", _csv(lending_table(seed=5, n=300))).json()
    portfolio_id = server.client.post(f"{API}/clone-portfolio", headers=AUTH, json={
        "file_id": upload["file_id"], "num_samples": 100}).json()["portfolio_id"]
    stored = server.data / "raw" / "uploads" / upload["file_id"] / "upload.csv"
    with open(stored, "r+b") as handle:  # the run reads it seconds later, in a worker process
        handle.write(b"X")
    status = server.wait(portfolio_id)
    assert status["status"] == "FAILED" and status["download_urls"] is None
    assert status["failed_step"] == "raw_upload" and "not twin_" in status["error"], status
    assert server.client.get(f"{API}/download/{portfolio_id}/synthetic.csv", headers=AUTH).status_code == 404
    refused = server.client.post(f"{API}/validate", headers=AUTH, json={
        "original_portfolio_id": upload["file_id"], "synthetic_portfolio_id": portfolio_id})
    assert refused.status_code == 409 and "FAILED" in refused.json()["detail"]


@pytest.mark.slow
def test_concurrent_uploads_and_clones_each_get_their_own_portfolio(server):
    credit_card = pd.read_csv(SAMPLES / "credit_card.csv")
    tables = [lending_table(seed=1, n=500), lending_table(seed=2, n=700).iloc[:, :30],
              credit_card.sample(900, random_state=3)]
    qis = [["state", "homeownership"], ["emp_length", "state"], None]  # ten detected QIs need more rows than 500
    results: list = [None] * len(tables)

    def upload_and_clone(index: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            upload = client.post(f"{API}/upload-data", headers=AUTH,
                                 files={"file": ("same_name.csv", _csv(tables[index]), "text/csv")}).json()
            results[index] = client.post(f"{API}/clone-portfolio", headers=AUTH, json={
                "file_id": upload["file_id"], "num_samples": 500, "seed": index,
                "quasi_identifiers": qis[index]}).json()

    threads = [threading.Thread(target=upload_and_clone, args=(index,)) for index in range(len(tables))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [result["portfolio_id"] for result in results]
    assert len(set(ids)) == len(tables)
    finished = [server.wait(portfolio_id) for portfolio_id in ids]
    assert [status["status"] for status in finished] == ["COMPLETED"] * len(tables), finished
    assert len({status["dagster_partition"] for status in finished}) == len(tables)
    for table, status in zip(tables, finished):
        twin = pd.read_csv(io.BytesIO(server.client.get(status["download_urls"]["synthetic"], headers=AUTH).content))
        assert list(twin.columns) == list(table.columns)
        assert len(twin) == status["num_borrowers"] >= 0.99 * 500  # k-anonymity may suppress up to 1 %
    assert AuditLog(server.data / "twin.duckdb").verify().ok


def test_serve_settings_refuse_what_would_be_unsafe(tmp_path, monkeypatch):
    from twin_pipeline.api.security import api_token
    from twin_pipeline.api.server import ServeError, parse_size, serve

    assert parse_size("1GiB") == 2**30 and parse_size("500MB") == 500 * 10**6 and parse_size("4096") == 4096
    for text in ("lots", "0", "1TB!"):
        with pytest.raises(ValueError, match="size"):
            parse_size(text)
    generated, fresh = api_token({})
    assert fresh and len(generated) >= 32 and api_token({})[0] != generated
    assert api_token({"TWIN_API_TOKEN": TOKEN}) == (TOKEN, False)
    with pytest.raises(ValueError, match="too short"):
        api_token({"TWIN_API_TOKEN": "secret"})
    assert TOKEN not in fingerprint(TOKEN) and fingerprint(TOKEN) != fingerprint(TOKEN + "x")
    monkeypatch.setenv("TWIN_API_TOKEN", TOKEN)
    settings = {"max_upload_bytes": 1 << 20, "cors_origins": []}
    with pytest.raises(ServeError, match="TLS"):
        serve("0.0.0.0", 8000, tmp_path, **settings)
    with pytest.raises(ServeError, match="go together"):
        serve("127.0.0.1", 8000, tmp_path, ssl_certfile=str(tmp_path / "cert.pem"), **settings)
    with pytest.raises(ServeError, match="not found"):
        serve("127.0.0.1", 8000, tmp_path, ssl_certfile=str(tmp_path / "cert.pem"),
              ssl_keyfile=str(tmp_path / "key.pem"), **settings)


def test_validate_compares_tables_whose_columns_match_and_names_the_ones_that_do_not():
    real = overdraft_table()
    twin = real.sample(frac=1.0, random_state=0).reset_index(drop=True)
    assert compatible_columns(real, twin) == list(real.columns)
    assert compatible_columns(real, twin.iloc[:, 1:]) == list(real.columns[1:])  # a twin that dropped a column
    with pytest.raises(ValueError, match="incompatible columns: colour"):
        compatible_columns(real, twin.assign(colour="red"))
    numeric = real.select_dtypes("number").columns[0]
    with pytest.raises(ValueError, match=f"incompatible columns: {numeric} hold numbers"):
        compatible_columns(real, twin.assign(**{numeric: "text"}))


def test_a_token_is_read_from_a_bearer_header_and_for_the_docs_from_a_basic_password():
    import base64
    basic = "Basic " + base64.b64encode(f"me:{TOKEN}".encode()).decode()
    assert presented_token(f"Bearer {TOKEN}") == TOKEN and presented_token(basic) is None
    assert presented_token(basic, basic=True) == TOKEN
    assert presented_token("Basic %%%", basic=True) is None and presented_token(None) is None


def test_the_dagster_internals_the_run_workers_use_still_have_the_shape_the_server_builds(tmp_path):
    """runs.py explains why the API's run workers use `dagster api execute_run` (no public way to execute a
    run that already exists); a Dagster upgrade that changes its argument type must fail here."""
    import inspect

    from dagster._cli.api import execute_run_command
    from dagster._grpc.types import ExecuteRunArgs
    from dagster._serdes import deserialize_value, serialize_value

    from twin_pipeline.api.runs import clone_job

    assert {"job_origin", "run_id", "instance_ref", "set_exit_code_on_failure"} <= set(
        inspect.signature(ExecuteRunArgs).parameters)
    with dg.instance_for_test() as instance:
        origin = clone_job(tmp_path, None).get_python_origin()
        args = ExecuteRunArgs(job_origin=origin, run_id="r", instance_ref=instance.get_ref(), set_exit_code_on_failure=True)
        assert deserialize_value(serialize_value(args), ExecuteRunArgs).run_id == "r"
    assert execute_run_command.name == "execute_run"
