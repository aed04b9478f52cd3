"""The aioredis-suite runner's bookkeeping: ids, the differences list, the verdict."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "aioredis_suite"))

import run


def test_normalize_drops_the_server_version() -> None:
    assert run.normalize("t.py::test_a[redis_v7.0.15-single]") == "t.py::test_a[single]"
    assert run.normalize("t.py::test_b[redis_v7.0.15]") == "t.py::test_b"
    assert run.normalize("t.py::test_c[None]") == "t.py::test_c[None]"


def test_differences_have_reasons_and_no_duplicates() -> None:
    listed = run.load_differences()
    assert listed and all(reason.strip() for reason in listed.values())
    assert all("redis_v" not in test for test in listed)
    normal_only = "tests/pyreader_test.py::test_error_string"
    assert normal_only in run.load_differences("clustermgr")
    assert normal_only not in run.load_differences("strict")


def test_compare_flags_only_unlisted_regressions() -> None:
    baseline = {"a": "passed", "b": "passed", "c": "failed", "d": "passed"}
    ours = {"a": "failed", "b": "passed", "c": "failed", "d": "failed"}
    regressions, stale = run.compare(baseline, ours, {"d": "known", "b": "fixed now"})
    assert regressions == ["a"]
    assert stale == ["b"]


def test_every_kept_difference_is_documented() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "migration.md").read_text()
    data = run.tomllib.loads((run.HERE / "differences.toml").read_text())
    kinds = [entry["kind"] for entry in data["difference"]]
    # Nothing left waiting for a fix; "cluster": cannot hold on a cluster pool.
    assert set(kinds) <= {"kept", "internals", "cluster"}
    for entry in data["difference"]:
        for test in entry["tests"]:
            name = test.split("::")[1].split("[")[0]
            assert name in docs, f"{test} ({entry['reason']}) is not in docs/migration.md"


@pytest.mark.parametrize("mode", ["clustermgr", "strict"])
def test_at_most_ten_behaviour_difference_tests(mode: str) -> None:
    """The issue's bound: kept behaviour differences, counted in tests (not reasons);
    private attributes, repr and log text ("internals") excluded."""
    data = run.tomllib.loads((run.HERE / "differences.toml").read_text())
    kept = {
        test for entry in data["difference"]
        if entry["kind"] == "kept" and mode in entry.get("modes", (mode,))
        for test in entry["tests"]
    }
    assert len(kept) <= 10, sorted(kept)


def test_baseline_is_cached_only_when_complete(tmp_path: Path, monkeypatch: Any) -> None:
    runs: list[str] = []
    size = {"n": 10}

    def fake_run(mode: str, extra: list[str], timeout: float) -> dict[str, str]:
        runs.append(mode)
        return {f"t{i}": "passed" for i in range(size["n"])}

    monkeypatch.setattr(run, "run_mode", fake_run)
    monkeypatch.setattr(run, "baseline_key", lambda: "key")
    run.baseline([], 1.0, tmp_path)  # interrupted: not cached
    assert not (tmp_path / "key.json").exists()
    size["n"] = run._COMPLETE_RUN
    first = run.baseline([], 1.0, tmp_path)
    assert (tmp_path / "key.json").exists()
    assert run.baseline([], 1.0, tmp_path) == first
    assert run.baseline(["-k", "x"], 1.0, tmp_path) == first  # a selection is never cached
    assert runs == ["aioredis"] * 3


def test_a_mode_running_some_files_is_compared_on_those_only() -> None:
    baseline = {"tests/pool_test.py::a": "passed", "tests/other_test.py::b": "passed"}
    ours = {"tests/pool_test.py::a": "failed"}
    assert run.compare(baseline, ours, {}, ["tests/pool_test.py"]) == (
        ["tests/pool_test.py::a"], [],
    )
    assert run.compare(baseline, ours, {}) == (
        ["tests/other_test.py::b", "tests/pool_test.py::a"], [],
    )
