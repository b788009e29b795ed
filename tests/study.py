"""The end-to-end tests' helpers: a smoke study in a temporary folder, run and compared like a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from ragalign.smoke import make_study as build_study


def stage_outputs(repo: Path) -> list[Path]:
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                name = entry if isinstance(entry, str) else next(iter(entry))
                paths.append(repo / name)
    return paths


def run(cmd: list[str], repo: Path, env: dict) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}"
    return out


def run_together(runs: list[tuple[list[str], Path, dict]]) -> None:
    """Each ``(cmd, repo, env)`` at once (each its own process tree), each required to succeed."""
    procs = [(cmd, repo, subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) for cmd, repo, env in runs]
    for cmd, repo, proc in procs:
        stdout, stderr = proc.communicate()
        assert proc.returncode == 0, f"{' '.join(cmd)} failed in {repo.name}:\n{stdout[-3000:]}\n{stderr[-6000:]}"


def make_study(tmp_path_factory, dataset: str = "hotpotqa") -> tuple[Path, Path, dict]:
    """The smoke study (params.smoke.yaml) of ``dataset`` in a temporary folder, and its environment."""
    repo, cache, guard = (tmp_path_factory.mktemp(name) for name in (f"study_{dataset}", "cache", "guard"))
    env = build_study(repo, cache, guard, dataset)
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('1.1.1.1', 443), timeout=5)"], env=env, capture_output=True, text=True)
    assert "network blocked by the offline test" in probe.stderr
    return repo, cache, env


def snapshot(repo: Path) -> dict[str, bytes]:
    files = sorted((repo / "results" / "metrics").glob("*.json")) + sorted((repo / "reports").glob("*.ipynb"))
    return {str(f.relative_to(repo)): f.read_bytes() for f in files}
