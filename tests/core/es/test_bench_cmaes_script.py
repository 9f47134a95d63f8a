"""benchmarks/bench_cmaes.py must keep running: its smoke mode prints both tables and writes the JSON asked for."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_quick_benchmark_prints_the_tables(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_cmaes.py"), "--quick",
                             "--json", str(tmp_path / "cmaes.json"), "--markdown", str(tmp_path / "cmaes.md")],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "| function | n | ours: solved, median evals | pycma | cmaes |" in out
    assert "| sphere | 5 | 3/3," in out and "rastrigin" not in out   # restarts have a table of their own
    assert "| full | 100 |" in out and "| separable | 100 |" in out and "(2) |" in out
    data = json.loads((tmp_path / "cmaes.json").read_text())
    assert data["quick"] and len(data["timing"]) == 2
    assert all(row["ours"]["successes"] == 3 for row in data["convergence"] if row["function"] == "sphere")
    assert all(row[e]["s_per_generation"] > 0 for row in data["timing"] for e in ("ours", "pycma", "cmaes"))
    assert "CMA-ES benchmark" in (tmp_path / "cmaes.md").read_text()


@pytest.mark.slow
def test_quick_restart_table_has_every_engine_and_strategy(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_cmaes.py"), "--restarts", "--quick",
                             "--json", str(tmp_path / "restarts.json"), "--markdown", str(tmp_path / "restarts.md")],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "| function | n | budget | ours IPOP | ours BIPOP | pycma IPOP | pycma BIPOP | cmaes IPOP | cmaes BIPOP |" in out
    assert "| rastrigin | 2 | 100,000 | 3/3, " in out and "| griewank | 2 | 100,000 | " in out
    rows = json.loads((tmp_path / "restarts.json").read_text())["restarts"]
    assert [(r["function"], r["n"]) for r in rows] == [("rastrigin", 2), ("griewank", 2)]
    assert all(r[engine]["solved"] == 3 and r[engine]["mean"] > 0 for r in rows
               for engine in ("ours IPOP", "ours BIPOP", "pycma IPOP", "pycma BIPOP", "cmaes IPOP", "cmaes BIPOP"))
    assert "CMA-ES restarts" in (tmp_path / "restarts.md").read_text()
