"""The REST API's targets, measured on a real `twin serve` on this machine; results in bench/results/api.json.

1. The seed's five calls, as the README's curl lines (plus the token header), end to end on the bundled
   1,319-row credit_card.csv: upload, clone, poll the status until COMPLETED, download the twin, validate.
2. 10 concurrent uploads + clones (tables of other shapes), all completed, then the audit chain verified.
3. An upload 4x larger than the limit, streamed without a Content-Length: refused, the most ever on disk, and
   what is left afterwards.

    python bench/bench_api.py            # about 5 minutes on 2 cores
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pandas as pd

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from twin_pipeline.audit import AuditLog  # noqa: E402
from twin_pipeline_tests.shapes import lending_table  # noqa: E402

TOKEN = "bench-token-" + "0" * 20
API = "/api/fintech"
SAMPLE = REPOSITORY / "twin_pipeline" / "samples" / "credit_card.csv"
CONCURRENT = 10
LIMIT = 256 << 20
OVERSIZED = 4 * LIMIT
RESULTS = REPOSITORY / "bench" / "results" / "api.json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(root: Path, limit: int) -> tuple[subprocess.Popen, str, float]:
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copyfile(REPOSITORY / "dagster.yaml", home / "dagster.yaml")
    port = free_port()
    env = {**os.environ, "TWIN_API_TOKEN": TOKEN, "DAGSTER_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "twin_pipeline.cli", "serve", "--port", str(port),
                                "--data-dir", str(root / "data"), "--max-upload", str(limit)],
                               env=env, stdout=open(root / "server.log", "w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{url}{API}/health").status_code == 200:
                return process, url, time.perf_counter() - started
        except httpx.TransportError:
            time.sleep(0.2)
        if process.poll() is not None:
            raise SystemExit((root / "server.log").read_text())


def stop_server(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def curl(*args: str) -> dict:
    """One of the README's curl lines; the JSON answer."""
    out = subprocess.run(["curl", "-sS", "--fail-with-body", "-H", f"Authorization: Bearer {TOKEN}", *args],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out) if out.lstrip().startswith("{") else {"bytes": len(out)}


def five_calls(url: str, work: Path) -> dict:
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def timed(name, *args):
        begin = time.perf_counter()
        answer = curl(*args)
        timings[name] = round(time.perf_counter() - begin, 3)
        return answer

    upload = timed("upload-data", "-F", f"file=@{SAMPLE}", f"{url}{API}/upload-data")
    clone = timed("clone-portfolio", "-H", "Content-Type: application/json", "-d",
                  json.dumps({"file_id": upload["file_id"], "num_samples": 5000}), f"{url}{API}/clone-portfolio")
    portfolio_id = clone["portfolio_id"]
    polls, status = 0, {}
    wait_started = time.perf_counter()
    while status.get("status") not in ("COMPLETED", "FAILED"):
        time.sleep(1)
        status = curl(f"{url}{API}/portfolio/{portfolio_id}")
        polls += 1
    timings["clone run (polled until COMPLETED)"] = round(time.perf_counter() - wait_started, 3)
    if status["status"] != "COMPLETED":
        raise SystemExit(f"run failed: {status}")
    timed("download synthetic.csv", "-o", str(work / "synthetic.csv"), f"{url}{API}/download/{portfolio_id}/synthetic.csv")
    validated = timed("validate", "-H", "Content-Type: application/json", "-d",
                      json.dumps({"original_portfolio_id": upload["file_id"], "synthetic_portfolio_id": portfolio_id}),
                      f"{url}{API}/validate")
    return {"table": "twin_pipeline/samples/credit_card.csv (1,319 rows x 12)", "num_samples": 5000,
            "end_to_end_seconds": round(time.perf_counter() - started, 2), "calls_seconds": timings,
            "status_polls": polls, "stats_json": status["stats_json"], "validate_passed": validated["passed"],
            "twin_rows": sum(1 for _ in open(work / "synthetic.csv")) - 1}


def concurrent_clones(url: str, data: Path) -> dict:
    credit_card = pd.read_csv(SAMPLE)
    tables = [lending_table(seed=i, n=600) if i % 2 else credit_card.sample(900, random_state=i)
              for i in range(CONCURRENT)]
    qis = [["state", "homeownership"] if i % 2 else None for i in range(CONCURRENT)]
    answers: list = [None] * CONCURRENT
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def one(index: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            upload = client.post(f"{API}/upload-data", headers=headers, files={
                "file": ("loans.csv", tables[index].to_csv(index=False).encode(), "text/csv")}).json()
            answers[index] = client.post(f"{API}/clone-portfolio", headers=headers, json={
                "file_id": upload["file_id"], "num_samples": 1000, "seed": index,
                "quasi_identifiers": qis[index]}).json()

    started = time.perf_counter()
    threads = [threading.Thread(target=one, args=(index,)) for index in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted = time.perf_counter() - started
    statuses = {}
    with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
        while len(statuses) < CONCURRENT:
            for answer in answers:
                status = client.get(f"{API}/portfolio/{answer['portfolio_id']}").json()
                if status["status"] in ("COMPLETED", "FAILED"):
                    statuses[answer["portfolio_id"]] = status
            time.sleep(2)
    verified = AuditLog(data / "twin.duckdb").verify()
    return {"clones": CONCURRENT, "tables": "5 x lending_table (600 x 55, QIs state + homeownership), "
                                            "5 x credit_card.csv samples (900 x 12, QIs detected)",
            "all_uploads_and_clones_accepted_seconds": round(accepted, 2),
            "all_completed_seconds": round(time.perf_counter() - started, 2),
            "completed": sum(status["status"] == "COMPLETED" for status in statuses.values()),
            "failed": {pid: status.get("error") for pid, status in statuses.items() if status["status"] == "FAILED"},
            "distinct_partitions": len({status["dagster_partition"] for status in statuses.values()}),
            "audit_chain_ok": verified.ok, "audit_entries": verified.checked}


def oversized_upload(url: str, data: Path) -> dict:
    uploads = data / "raw" / "uploads"
    peak = {"bytes": 0}
    done = threading.Event()

    def watch():
        while not done.is_set():
            size = sum(path.stat().st_size for path in uploads.rglob("*") if path.is_file()) if uploads.exists() else 0
            peak["bytes"] = max(peak["bytes"], size)
            time.sleep(0.05)

    def body():
        yield (b'--b\r\nContent-Disposition: form-data; name="file"; filename="huge.csv"\r\n'
               b"Content-Type: text/csv\r\n\r\na,b\r\n")
        chunk = b"1,2\r\n" * (1 << 18)
        for _ in range(OVERSIZED // len(chunk)):
            yield chunk
        yield b"\r\n--b--\r\n"

    before = sorted(uploads.iterdir()) if uploads.exists() else []
    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.perf_counter()
    try:
        answer = httpx.post(f"{url}{API}/upload-data", content=body(), timeout=300, headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "multipart/form-data; boundary=b"})
        outcome = f"{answer.status_code} {answer.json()['detail']}"
    except httpx.TransportError as error:
        outcome = f"connection closed by the server while sending ({type(error).__name__})"
    elapsed = time.perf_counter() - started
    done.set()
    watcher.join()
    after = sorted(uploads.iterdir()) if uploads.exists() else []
    return {"limit_bytes": LIMIT, "sent_bytes": OVERSIZED, "outcome": outcome, "seconds": round(elapsed, 2),
            "peak_bytes_on_disk": peak["bytes"], "uploads_left_behind": len(after) - len(before)}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    load_at_start = os.getloadavg()
    try:
        process, url, startup = start_server(work, LIMIT)
        try:
            results = {"server_start_seconds": round(startup, 2), "five_calls": five_calls(url, work),
                       "concurrent": concurrent_clones(url, work / "data"),
                       "oversized_upload": oversized_upload(url, work / "data")}
        finally:
            stop_server(process)
        results["machine"] = {"cpus": os.cpu_count(), "load_average_at_start": load_at_start,
                              "load_average_at_end": os.getloadavg()}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
