"""How long the landing sensor spends on hostile files (the issue's reproductions), each landed beside a good CSV:
a 130,000-column header-only CSV, a 40,000-entry zip, a 1 GB zip bomb, an encrypted zip and a symlink.

    python bench/bench_landing.py        # results in bench/results/landing.json
"""

import io
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "twin_pipeline_tests")]

from conftest import Landing  # noqa: E402  the sensor harness of the tests: a folder, an instance, ticks
from twin_pipeline_tests.shapes import lending_table  # noqa: E402

GOOD = lending_table(n=2000).to_csv(index=False)


def wide_header(path: Path) -> None:
    path.write_text(",".join(f"c{i}" for i in range(130_000)) + "\n")


def many_entries(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for index in range(40_000):
            archive.writestr(f"t{index}.csv", "a,b\n1,2\n")


def zip_bomb(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("borrowers.csv", "w", force_zip64=True) as member:
            member.write(b"a,b\n")
            zeros = b"0" * (1 << 20)
            for _ in range(1024):
                member.write(zeros)
        archive.writestr("loans.csv", "a,b\n1,2\n")
        archive.writestr("relationships.json", json.dumps({"foreign_keys": ["loans.a=borrowers.a"]}))


def encrypted(path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", GOOD)
        archive.writestr("relationships.json", "{}")
    data = bytearray(buffer.getvalue())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + offset] |= 1
            start += 4
    path.write_bytes(bytes(data))


def symlink(path: Path) -> None:
    outside = path.parent.parent / "outside.csv"
    outside.write_text(GOOD)
    path.symlink_to(outside)


CASES = {"wide_header.csv": wide_header, "many_entries.zip": many_entries, "bomb.zip": zip_bomb,
         "locked.zip": encrypted, "link.csv": symlink}


def measure(name: str, make) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        landing = Landing(Path(scratch) / "data")
        make(landing.storage.landing / name)
        landing.drop("good.csv", GOOD)
        size = (landing.storage.landing / name).lstat().st_size
        landing.tick()  # first look: files settle
        started = time.perf_counter()
        result = landing.tick()
        seconds = time.perf_counter() - started
        reason = (landing.storage.rejected / f"{name}.reason.txt").read_text().split(": ", 1)[-1].strip()
        return {"file": name, "bytes": size, "tick_seconds": round(seconds, 2),
                "launched": sorted(r.tags["twin/landed_file"] for r in result.run_requests), "rejected_because": reason}


def main() -> None:
    results = [measure(name, make) for name, make in CASES.items()]
    for row in results:
        print(f"{row['file']:18s} {row['bytes']:>13,} B  tick {row['tick_seconds']:6.2f} s  launched {row['launched']}  "
              f"rejected: {row['rejected_because'][:80]}")
    out = ROOT / "bench" / "results" / "landing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python bench/bench_landing.py", "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
