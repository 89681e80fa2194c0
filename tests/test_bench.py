"""bench.py returns well-formed numbers, and core_latency.c measures what it says."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT, run_script


@pytest.mark.slow
def test_bench_runs_and_reports_well_formed_numbers():
    result = run_script("bench.py", "--seconds", "0.2", "--repeats", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [c["name"] for c in report["configs"]] == ["part1", "part2", "part2-bidir"]
    with_torch = importlib.util.find_spec("torch") is not None
    keys = ["ours_examples_per_s", "blocklstm_examples_per_s", "textbook_examples_per_s",
            "ratio_vs_blocklstm", "peak_rss_mb"]
    if with_torch:  # PyTorch's mirror took its turns, with as many threads as TensorFlow's cores
        keys += ["torch_examples_per_s", "ratio_vs_torch"]
        assert report["torch"]["threads"] == len(os.sched_getaffinity(0))
    else:
        assert "torch is not installed" in report["torch_skipped"]
    for config in report["configs"]:
        for key in keys:
            assert np.isfinite(config[key]) and config[key] > 0, key
        assert config["ratio_vs_blocklstm"] == pytest.approx(
            config["ours_examples_per_s"] / config["blocklstm_examples_per_s"])
        if with_torch:
            assert config["ratio_vs_torch"] == pytest.approx(
                config["ours_examples_per_s"] / config["torch_examples_per_s"])
            assert config["inference"]["torch"] > 0
        assert 0 < config["input_share"] < 1


@pytest.mark.slow
def test_bench_without_torch_says_the_reference_is_skipped():
    # sys.modules["torch"] = None is how Python spells "not installed" for one process.
    run_bench = ("import runpy, sys; sys.modules['torch'] = None; sys.argv[0] = {script!r}; "
                 "runpy.run_path({script!r}, run_name='__main__')")
    script = os.path.join(ROOT, "scripts", "bench.py")
    result = subprocess.run(
        [sys.executable, "-c", run_bench.format(script=script), "--configs", "part1",
         "--seconds", "0", "--repeats", "1"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "PyTorch reference skipped: torch is not installed" in result.stderr
    assert "pip install torch --index-url" in result.stderr  # how to get a CPU build
    header, _, row = result.stdout.splitlines()[:3]
    assert "ours/BlockLSTM" in header and "PyTorch" not in header
    assert row.startswith("| part1 |") and row.count("|") == header.count("|")


@pytest.fixture(scope="module")
def core_latency(tmp_path_factory):
    """benchmarks/core_latency.c compiled once for this module's tests: the program's path."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    binary = tmp_path_factory.mktemp("core_latency") / "core_latency"
    subprocess.run([compiler, "-O2", "-pthread", os.path.join(ROOT, "benchmarks", "core_latency.c"),
                    "-o", str(binary)], check=True)
    return str(binary)


def test_core_latency_measures_a_round_trip_between_two_cpus(core_latency):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    result = subprocess.run([core_latency, str(cpus[0]), str(cpus[1])],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # Nanoseconds: a cache line crosses between cores in tens to hundreds of them, never none.
    assert 1 <= int(result.stdout) < 100_000


def test_core_latency_refuses_a_cpu_it_cannot_run_on(core_latency):
    cpus = os.sched_getaffinity(0)
    present, missing = min(cpus), max(cpus) + 1
    result = subprocess.run([core_latency, str(present), str(missing)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"core_latency: cannot run threads on CPUs {present} and "
                                    f"{missing}")
    assert result.stdout == ""


@pytest.mark.parametrize("arguments", [["0"], ["0", "one"], ["0", "-1"], ["0", "1", "2"]])
def test_core_latency_explains_its_arguments_when_they_are_wrong(core_latency, arguments):
    result = subprocess.run([core_latency] + arguments, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: core_latency [CPU_A CPU_B]")
    assert result.stdout == ""
