"""benchmarks/compare.py runs end to end against the real engine: a quick run without peers
writes a JSON report of the documented shape and a PNG chart, and leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPARE = ROOT / "benchmarks" / "compare.py"
OPERATIONS = {"cold_first_result", "setup", "execute", "restart", "cleanup", "pooled_first_result"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(180)
def test_a_quick_comparison_writes_its_report_and_chart(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    out, chart = tmp_path / "compare.json", tmp_path / "compare.png"
    run = subprocess.run(
        [sys.executable, str(COMPARE), "--quick", "--no-peers", "--out", str(out),
         "--chart", str(chart)],
        capture_output=True, text=True, timeout=170, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]

    document = json.loads(out.read_text())
    assert {"nproc", "memory_gib", "kernel", "docker", "date"} <= document["machine"].keys()
    assert document["leftovers"] == []
    assert set(document["subjects"]) == {"ours", "local"}  # llm-sandbox skipped, and said so
    assert "--no-peers" in document["peers"]
    ours, local = document["subjects"]["ours"], document["subjects"]["local"]
    assert set(ours["operations"]) == set(local["operations"]) == OPERATIONS
    for operation in OPERATIONS:
        figures = ours["operations"][operation]
        assert 0 < figures["p50_ms"] <= figures["p90_ms"], operation
        assert figures["n"] == len(figures["samples_ms"]) >= 2
    assert local["operations"]["pooled_first_result"] is None
    assert "pooled_first_result" in local["not_offered"]
    for subject in (ours, local):
        assert subject["throughput"]["completed"] >= 1
        assert subject["throughput"]["per_minute"] > 0
    assert document["ratios"]["setup"]["ours/local"] > 0
    assert document["ratios"]["pooled_first_result"]["ours/local"] is None

    assert chart.read_bytes().startswith(PNG_SIGNATURE)
    assert "| cold create -> first `print(1+1)` result |" in run.stdout
