"""Publishing all outputs at once: a process killed (SIGKILL) at any point of a publication or of a clone leaves
the download paths holding one complete set, the old or the new, never a mix."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twin_pipeline import publish
from twin_pipeline.tables import atomic_path, sha256_file

OLD = {"synthetic.csv": "old twin", "model.json": "old model", "quality_report.json": "old report",
       "shards/shard-00000.parquet": "old shard", "synthetic.parquet": "old parquet twin"}
NEW = {"synthetic.csv": "new twin", "model.json": "new model", "quality_report.json": "new report",
       "shards/shard-00000.parquet": "new shard", "privacy_report.json": "new privacy report"}

# Runs publish() in a child that SIGKILLs itself at its N-th file-system change (rename, link, unlink, rmtree).
KILLER = """
import importlib.util, os, shutil, signal, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("publish", sys.argv[4])  # alone: no package import, a fast child
publish = importlib.util.module_from_spec(spec)
spec.loader.exec_module(publish)
folder, version, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
calls = [0]
def counted(function):
    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return function(*args, **kwargs)
    return wrapper
for module, name in ((os, "replace"), (os, "symlink"), (os, "unlink"), (os, "rename"), (shutil, "rmtree"),
                     (Path, "unlink")):
    setattr(module, name, counted(getattr(module, name)))
publish.publish(folder, version)
print(calls[0])
"""


def make_version(folder: Path, name: str, files: dict[str, str]) -> Path:
    staged = publish.version(folder, name, inherit=False)
    for relative, text in files.items():
        (staged / relative).parent.mkdir(parents=True, exist_ok=True)
        (staged / relative).write_text(text)
    return staged


def visible(folder: Path) -> dict[str, str]:
    """What a reader of the download paths sees."""
    found = {}
    for relative in set(OLD) | set(NEW):
        path = folder / relative
        if path.exists():
            found[relative] = path.read_text()
    return found


def run_killer(folder: Path, version: Path, kill_at: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-c", KILLER, str(folder), str(version), str(kill_at), publish.__file__],
                          env=env, capture_output=True, text=True, timeout=60)


def test_a_publication_killed_at_any_step_shows_the_old_set_or_the_new_set_never_a_mix(tmp_path):
    setup = tmp_path / "count"
    publish.publish(setup, make_version(setup, "old", OLD))
    done = run_killer(setup, make_version(setup, "new", NEW), kill_at=0)
    steps = int(done.stdout)
    assert steps >= 3 and visible(setup) == NEW
    outcomes = []
    for kill_at in range(1, steps + 1):
        folder = tmp_path / f"kill-{kill_at}"
        publish.publish(folder, make_version(folder, "old", OLD))
        killed = run_killer(folder, make_version(folder, "new", NEW), kill_at)
        assert killed.returncode == -signal.SIGKILL
        seen = visible(folder)
        assert seen in (OLD, NEW), f"killed at step {kill_at}: a mix {seen}"
        outcomes.append("new" if seen == NEW else "old")
        publish.publish(folder, publish.version(folder, "new"))  # publishing again completes it
        assert visible(folder) == NEW
    assert outcomes[0] == "old" and outcomes[-1] == "new"


def test_a_version_builds_on_the_published_one_without_changing_it(tmp_path):
    publish.publish(tmp_path, make_version(tmp_path, "old", OLD))
    staged = publish.version(tmp_path, "next")
    with atomic_path(staged / "model.json") as tmp:  # how every output is written: a new file renamed into place
        tmp.write_text("replaced")
    assert (staged / "synthetic.csv").read_text() == "old twin" and (tmp_path / "model.json").read_text() == "old model"
    (staged / "model.json").unlink()
    publish.publish(tmp_path, staged)
    assert not (tmp_path / "model.json").exists() and (tmp_path / "synthetic.csv").read_text() == "old twin"


CLONE = """
import sys
from twin_pipeline.cli import main
sys.exit(main(["clone", sys.argv[1], "--out", sys.argv[2], "--seed", sys.argv[3]]))
"""


@pytest.mark.slow  # clones in child processes, one killed mid-write
def test_twin_clone_killed_while_writing_leaves_the_previous_outputs_whole(tmp_path, credit_data):
    source = tmp_path / "loans.csv"
    credit_data.head(400).to_csv(source, index=False)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", CLONE, str(source), str(out), "1"], env=env, check=True,
                   capture_output=True, timeout=300)
    names = ["synthetic.csv", "model.json", "quality_report.json", "privacy_report.json"]
    before = {name: sha256_file(out / name) for name in names}

    child = subprocess.Popen([sys.executable, "-c", CLONE, str(source), str(out), "2"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list((out / publish.VERSIONS).glob("*/.shards-*")) and time.monotonic() < deadline:
        time.sleep(0.01)  # until the new clone is making its shards in its staged version
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert {name: sha256_file(out / name) for name in names} == before
    if Path("/proc").is_dir():  # nor is its helper process left behind, waiting for work forever
        deadline = time.monotonic() + 30
        while _processes_naming(out) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _processes_naming(out)


def _processes_naming(path: Path) -> list[int]:
    """Live processes whose command line names `path` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and str(path).encode() in (entry / "cmdline").read_bytes() \
                    and (entry / "stat").read_text().split(") ")[-1][0] != "Z":
                found.append(int(entry.name))
        except OSError:  # ended meanwhile
            continue
    return found
