"""The smoke study: the real pipeline on a tiny generated benchmark, in a temporary copy of the project.

``make smoke`` (``python -m ragalign.smoke``) copies the project without data, results or caches,
writes a tiny benchmark in the chosen dataset's own format, applies ``params.smoke.yaml`` on top of
``params.yaml``, and runs ``dvc repro`` there with the network blocked. The end-to-end tests build
their studies with the same functions, so what a developer runs by hand is what CI runs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ragalign.core import cost
from ragalign.core.params import validate

ROOT = Path(__file__).resolve().parents[2]
SKIP_TOP = {".git", ".venv", ".cache", "results", "data", "reports", "figures", "data.dvc", "dvc.lock", ".pytest_cache", ".ruff_cache", ".whl"}

NETWORK_GUARD = """
import socket

_connect = socket.socket.connect


def _local(address):
    host = str(address[0] if isinstance(address, tuple) else address)
    return host in ("localhost", "::1") or host.startswith("127.") or not host or host.startswith("/")


def _guarded(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address):
        raise OSError(f"network blocked by the offline test: {address}")
    return _connect(self, address)


socket.socket.connect = _guarded
socket.socket.connect_ex = lambda self, address: _guarded(self, address) or 0
"""


# ---- tiny benchmarks, one per dataset format -----------------------------------------------------
def hotpot_record(i: int, n_distractors: int = 3) -> dict:
    """A HotpotQA-format record whose two gold paragraphs name the answer."""
    answer = f"City{i}"
    gold = [[f"Gold A{i}", [f"Person{i} was born in {answer}.", " They lived there."]], [f"Gold B{i}", [f"{answer} is a port."]]]
    distract = [[f"Other {i}-{j}", [f"Unrelated text number {j} about topic {i}."]] for j in range(n_distractors)]
    return {
        "id": f"q{i}",
        "question": f"Where was Person{i} born?",
        "answer": answer,
        "type": "bridge",
        "level": "hard",
        "supporting_facts": [[f"Gold A{i}", 0], [f"Gold B{i}", 0]],
        "context": gold + distract,
    }


def squad_paragraph(i: int) -> dict:
    """A SQuAD-format paragraph with two questions it answers."""
    return {
        "title": f"Town {i}",
        "context": f"Person{i} was born in City{i}. City{i} is a port with {i + 3} bridges.",
        "qas": [
            {"id": f"s{i}a", "question": f"Where was Person{i} born?", "answers": [f"City{i}"]},
            {"id": f"s{i}b", "question": f"How many bridges has City{i}?", "answers": [str(i + 3)]},
        ],
    }


def nq_record(i: int) -> dict:
    """An NQ-open record with its gold passage (and a non-gold one the reader must skip)."""
    return {
        "question": f"where was person{i} born",
        "answers": [f"City{i}"],
        "ctxs": [
            {"title": f"Person{i}", "text": f"Person{i} was born in City{i}.", "hasanswer": True, "isgold": True},
            {"title": "Noise", "text": "Unrelated text.", "hasanswer": False, "isgold": False},
        ],
        "nq_annotated_gold": {"title": f"Person{i}"},
    }


def write_benchmark(repo: Path, dataset: str, n: int = 40) -> None:
    """A tiny benchmark in the dataset's own format, at the path the study reads it from."""
    from ragalign.core.benchmarks import DEFAULT_PATHS

    path = repo / DEFAULT_PATHS[dataset]
    path.parent.mkdir(parents=True, exist_ok=True)
    if dataset == "hotpotqa":
        path.write_text("".join(json.dumps(hotpot_record(i, n_distractors=6)) + "\n" for i in range(n)))
    elif dataset == "squad":
        path.write_text(json.dumps([squad_paragraph(i) for i in range(n // 2)]))
    else:
        with gzip.open(path, "wt") as fh:
            fh.write("".join(json.dumps(nq_record(i)) + "\n" for i in range(n)))


# ---- the study ------------------------------------------------------------------------------------
def smoke_params(root: Path = ROOT) -> dict:
    """``params.yaml`` with the keys of ``params.smoke.yaml`` replaced."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in yaml.safe_load((root / "params.smoke.yaml").read_text()).items():
        params.setdefault(section, {}).update(values)
    return params


def make_study(repo: Path, cache: Path, guard: Path, dataset: str = "hotpotqa") -> dict[str, str]:
    """Copy the project into ``repo`` (no data, results or caches) on a tiny benchmark; returns its environment.

    ``cache`` becomes the study's LLM cache (``RAGALIGN_CACHE``, the converted generator linked in),
    ``guard`` holds a ``sitecustomize.py`` that blocks every non-local connection of the pipeline.
    """

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder)
        if here == ROOT:
            return SKIP_TOP & set(names)
        if here == ROOT / ".dvc":
            return {"cache", "tmp"} & set(names)
        return {"__pycache__"} & set(names)

    shutil.copytree(ROOT, repo, ignore=ignore, dirs_exist_ok=True)
    (repo / "results" / "metrics").mkdir(parents=True, exist_ok=True)
    write_benchmark(repo, dataset)
    params = smoke_params()
    params["data"]["dataset"] = dataset
    extra = params["reader"].get("extra_dataset", "squad")
    if extra == dataset:  # the reader's extra questions come from another benchmark than the study's
        params["reader"]["extra_questions"] = 0
    elif params["reader"].get("extra_questions"):
        write_benchmark(repo, extra)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    from ragalign.core.models import generator_path

    (cache / "models").mkdir(parents=True, exist_ok=True)
    link = cache / "models" / "smollm2-135m-instruct"
    if not link.exists():
        link.symlink_to(generator_path("smollm2-135m-instruct"))
    guard.mkdir(parents=True, exist_ok=True)
    (guard / "sitecustomize.py").write_text(NETWORK_GUARD)
    env = {
        **os.environ,
        "RAGALIGN_CACHE": str(cache),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        # every process of the pipeline runs with the network blocked, and runs the copied study's own library
        "PYTHONPATH": os.pathsep.join([str(guard), str(repo / "lib")]),
    }
    env.pop("HF_HUB_OFFLINE", None)  # the library must set it by itself
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole pipeline on a tiny benchmark in a temporary copy.")
    parser.add_argument("--dataset", default="hotpotqa", choices=["hotpotqa", "squad", "nq_open"])
    parser.add_argument("--keep", action="store_true", help="keep the temporary study (its path is printed)")
    parser.add_argument("--record", action="store_true", help=f"record this cold run as the estimate's reference ({cost.SMOKE_COLD})")
    args = parser.parse_args(argv)
    params = validate(smoke_params())
    probes_s = cost.probes(params)  # before the run, on an idle machine
    minutes, said = cost.smoke_estimate(params, probes_s, ROOT)
    print(f"[smoke] {said}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="ragalign-smoke-"))
    start = time.perf_counter()
    try:
        env = make_study(work / "study", work / "cache", work / "guard", args.dataset)
        print(f"[smoke] {args.dataset} study in {work / 'study'}; running dvc repro", flush=True)
        subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=work / "study", env=env, check=True)
        summary = json.loads((work / "study" / "results/metrics/summary.json").read_text())
        failed = summary.get("validity", {}).get("failed", [])
        took = (time.perf_counter() - start) / 60
        print(f"[smoke] done in {took:.1f} min; {len(summary['variants'])} variants; failed gates: {failed or 'none'}")
        if minutes:
            print(f"[smoke] cold; the estimate of {minutes:.1f} min was off by {cost.off_by(minutes, took)}")
        if args.record:
            cost.smoke_record(params, probes_s, took * 60, work / "study", ROOT)
            print(f"[smoke] recorded as the estimate's reference: {cost.SMOKE_COLD}")
        return 0
    except subprocess.CalledProcessError as err:
        print(f"[smoke] failed after {(time.perf_counter() - start) / 60:.1f} min: {err}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"[smoke] kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
