"""landing_sensor ticks with build_sensor_context: settle, clone once, reject bad files, survive restarts."""

import json
import os

import pytest

from twin_pipeline.defs.partitions import portfolios, table_key


@pytest.fixture
def table(credit_data):
    return credit_data.head(60).to_csv(index=False)


def test_a_new_file_is_cloned_once_it_has_settled_with_its_partition_and_source(landing, table):
    path = landing.drop("Q3 Loans (final).csv", table)
    assert landing.tick().run_requests == []  # first look: the copy may still be in progress
    requests = landing.tick().run_requests
    key = table_key(path.name, path)
    assert key.startswith("q3_loans_final-") and len(key.split("-")[-1]) == 16  # 64 bits of the SHA-256
    assert [r.partition_key for r in requests] == [key] and requests[0].run_key == key
    assert requests[0].run_config["ops"]["raw_upload"]["config"]["source"] == str(path)
    assert landing.instance.has_dynamic_partition(portfolios.name, key)
    assert landing.tick().run_requests == []


def test_files_still_being_written_are_left_alone(landing, table):
    landing.drop(".hidden.csv", table)
    landing.drop("upload.csv.part", table)
    landing.drop("upload.csv.tmp", table)
    growing = landing.drop("growing.csv", table[:200])
    assert landing.tick().run_requests == []
    growing.write_text(table)  # the writer is not done: the size changed since the last look
    assert landing.tick().run_requests == []
    requests = landing.tick().run_requests
    assert [r.tags["twin/landed_file"] for r in requests] == ["growing.csv"]
    assert sorted(p.name for p in landing.storage.landing.iterdir()) == [".hidden.csv", "growing.csv",
                                                                         "upload.csv.part", "upload.csv.tmp"]


def test_the_same_bytes_landing_twice_start_no_second_run(landing, table):
    first = landing.drop("loans.csv", table)
    landing.tick(), landing.tick()
    first.unlink()
    landing.drop("loans.csv", table)          # the same file again
    landing.drop("copy of loans.csv", table)  # the same bytes under another name
    assert landing.tick().run_requests == [] and landing.tick().run_requests == []
    assert landing.instance.get_dynamic_partitions(portfolios.name) == [table_key("loans.csv", landing.storage.landing / "loans.csv")]


def test_bad_files_go_to_rejected_with_a_reason_and_do_not_stop_the_good_one(landing, table):
    landing.drop("scan.csv", bytes(range(256)) * 40)
    empty = landing.drop("empty.csv", b"")
    os.utime(empty, (1_000_000_000, 1_000_000_000))  # empty for long enough: not a copy about to start
    landing.drop("notes.csv", "just one line of prose, no table here\n")
    landing.drop("good.csv", table)
    landing.tick()
    requests = landing.tick().run_requests
    assert [r.tags["twin/landed_file"] for r in requests] == ["good.csv"]
    rejected = landing.storage.rejected
    reasons = {name: (rejected / f"{name}.reason.txt").read_text() for name in ("scan.csv", "empty.csv", "notes.csv")}
    assert "binary" in reasons["scan.csv"] and "empty" in reasons["empty.csv"]
    assert all((rejected / name).exists() for name in reasons)
    assert sorted(p.name for p in landing.storage.landing.iterdir()) == ["good.csv"]


def test_a_sensor_restarted_with_its_cursor_does_not_rerun_and_picks_up_only_new_files(landing, table, credit_data):
    landing.drop("loans.csv", table)
    landing.tick(), landing.tick()
    restarted = type(landing).__new__(type(landing))
    restarted.__dict__.update(landing.__dict__)  # same folder, instance and saved cursor: a daemon restart
    assert restarted.tick().run_requests == []
    landing.drop("more.csv", credit_data.iloc[60:120].to_csv(index=False))
    restarted.tick()
    assert [r.tags["twin/landed_file"] for r in restarted.tick().run_requests] == ["more.csv"]


def test_a_sidecar_json_sets_the_run_config_and_a_bad_one_rejects_its_table(landing, table):
    landing.drop("loans.csv", table)
    landing.drop("loans.csv.json", json.dumps({"k": 7, "scale": 2.0, "quasi_identifiers": ["Age", "Home"]}))
    landing.drop("other.csv", table.replace("good", "fine"))
    landing.drop("other.json", json.dumps({"k": 7, "colour": "blue"}))
    landing.tick()
    requests = landing.tick().run_requests
    config = requests[0].run_config["ops"]["raw_upload"]["config"]
    assert [r.tags["twin/landed_file"] for r in requests] == ["loans.csv"]
    assert config["k"] == 7 and config["scale"] == 2.0 and config["quasi_identifiers"] == ["Age", "Home"]
    reason = (landing.storage.rejected / "other.csv.reason.txt").read_text()
    assert "colour" in reason and (landing.storage.rejected / "other.csv.json").exists()


@pytest.mark.parametrize("settings, problem", [
    ({"k": 1}, "k must be a whole number of at least 2"),
    ({"scale": -1}, "scale must be a positive number"),
    ({"generalize": "foo"}, "generalize must be one of bands"),
    ({"max_suppression": 5}, "max_suppression must be a share"),
    ({"column_kinds": {"Age": "weird"}}, "unknown kind(s) Age=weird"),
    ({"rows": 10**12}, "rows must be a whole number from 1 to"),
])
def test_a_sidecar_asking_for_what_no_run_can_do_rejects_its_table_before_any_run(landing, table, settings, problem):
    landing.drop("loans.csv", table)
    landing.drop("loans.csv.json", json.dumps(settings))
    landing.tick()
    assert landing.tick().run_requests == []
    assert problem in (landing.storage.rejected / "loans.csv.reason.txt").read_text()
