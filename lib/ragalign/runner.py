"""Run one stage notebook: validate params, jupytext -> papermill -> strip volatile metadata.

``python -m ragalign.runner 02_retrieval`` executes ``notebooks/02_retrieval.py`` with every
section of ``params.yaml`` injected, writes the executed report to ``reports/02_retrieval.ipynb``
and the stage's wall time, peak memory, slowest cells (the per-step timings, also printed to
the log), seconds per kind of work (``core.stopwatch``) and LLM-cache tally to ``results/timings/02_retrieval.json``.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ragalign.core.io import SPENT_ENV, STUDY_START_ENV, TALLY_ENV, atomic_write_text
from ragalign.core.numerics import NumericsMismatch, check_recorded
from ragalign.core.params import ParamsError, load

OUTPUT_DIRS = ("reports", "figures", "results/metrics", "results/timings", "results/plots")
KERNEL = "python3"  # the kernel name papermill asks for; :func:`own_kernel` decides what it runs


class _QuietUnknownParameters(logging.Filter):
    """Every section of params.yaml is injected; a notebook declares only those it reads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Passed unknown parameter" not in record.getMessage()


def strip_volatile(nb: dict) -> dict:
    """Drop what changes between identical runs: papermill timings, execution metadata, stderr."""
    nb.get("metadata", {}).pop("papermill", None)
    for number, cell in enumerate(nb.get("cells", [])):
        if "id" in cell:
            cell["id"] = f"cell-{number:03d}"  # jupytext draws random cell ids on every conversion
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
        if "outputs" in cell:
            # stderr carries progress bars and warnings with timings: shown live, not kept
            cell["outputs"] = [o for o in cell["outputs"] if o.get("name") != "stderr"]
    return nb


def cell_timings(nb: dict, top: int = 5) -> list[dict]:
    """The ``top`` slowest cells of an executed notebook: index, first source line and seconds.

    Read from papermill's per-cell metadata before :func:`strip_volatile` removes it.
    """
    rows = []
    for number, cell in enumerate(nb.get("cells", [])):
        seconds = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if cell.get("cell_type") == "code" and seconds is not None:
            source = "".join(cell.get("source", "")).strip().splitlines()
            rows.append({"cell": number, "code": (source[0][:60] if source else ""), "seconds": round(float(seconds), 1)})
    return sorted(rows, key=lambda r: -r["seconds"])[:top]


def findings_first(nb: dict) -> dict:
    """Open the report with what the stage found: copy the ``findings`` cell's text under the title.

    Each notebook ends with a cell tagged ``findings`` that writes, from the numbers it computed, a
    short Markdown paragraph. It can only run last, so the runner repeats its output as a Markdown
    cell right after the opening cell (the question the stage asks); the reader gets both at once.
    """
    cells = nb.get("cells", [])
    tagged = [c for c in cells if "findings" in c.get("metadata", {}).get("tags", [])]
    texts = [o["data"]["text/markdown"] for c in tagged for o in c.get("outputs", []) if "text/markdown" in o.get("data", {})]
    if not texts or not cells:
        return nb
    text = "".join(texts[-1]) if isinstance(texts[-1], list) else texts[-1]
    cell = {"cell_type": "markdown", "id": "findings", "metadata": {"tags": ["findings-summary"]}, "source": "## What it found\n\n" + text}
    nb["cells"] = cells[:1] + [cell] + cells[1:]
    return nb


def study_started(default: float) -> float:
    """When the study run began: ``STUDY_START_ENV`` when set, else the start of the outermost ``dvc repro`` or
    ``dvc exp run`` process above this one, else ``default`` (the stage run by hand is its own study run)."""
    import psutil

    if os.environ.get(STUDY_START_ENV):
        return float(os.environ[STUDY_START_ENV])
    started = default
    for process in psutil.Process().parents():
        try:
            words = [Path(w).name for w in process.cmdline()[:4]]
        except psutil.Error:
            continue
        if "dvc" in words and ("repro" in words or "exp" in words):
            started = min(started, process.create_time())
    return started


def temperature(values: dict[str, dict[str, int]]) -> dict:
    """Whether a stage ran cold: ``cache`` (per namespace, ``core.cache.tally``: values computed, values an
    earlier stage of the same study run computed, ``shared``, and values an earlier run left, ``hits``) and
    ``cold`` (True when there was no hit: its time is what a cold study spends on it; False when there was,
    a warm time that :mod:`ragalign.core.cost` never scales)."""
    hits = sum(v["hits"] for v in values.values())
    return {"cache": values, "cold": hits == 0}


def last_cold(previous: dict | None, now: dict) -> dict | None:
    """The cold figure a warm run keeps: none when it ran cold (its own record is one), else the last cold
    one (the previous record, or what that record kept). A warm re-run never erases what a cold run
    measured, and :mod:`ragalign.core.cost` scales only cold figures."""
    if now.get("cold") or not previous:
        return None
    if previous.get("cold"):
        return {k: previous[k] for k in ("wall_s", "peak_rss_mib", "spent_s", "cache", "host") if k in previous}
    return previous.get("last_cold")


def previous_record(path: Path) -> dict | None:
    """A stage's previous timing record: the file when it is there (the runner run by hand), else the committed
    one (``git show HEAD:path``: ``dvc repro`` removes a stage's outputs before it runs it, and a ``persist``
    output would cost the stage DVC's run cache). None outside git or before the first commit."""
    if path.exists():
        return json.loads(path.read_text())
    shown = subprocess.run(["git", "show", f"HEAD:{path.as_posix()}"], capture_output=True, text=True)
    return json.loads(shown.stdout) if shown.returncode == 0 else None


def run_host(params) -> dict:
    """The machine and numerics a stage time holds for: CPU model, kernel capability, native bf16, dtype, device."""
    from ragalign.core.numerics import cpu, resolve

    n, c = resolve(params), cpu()
    return {"cpu": c.get("model"), "capability": c.get("capability"), "bf16_flags": c.get("bf16_flags"), "dtype": n.dtype, "device": n.device}


OWN_LIBRARY = "RAGALIGN_OWN_LIBRARY"  # set when the runner has re-executed itself on the project's own lib/


def check_library(root: Path) -> None:
    """The library this Python imports must be the project's own ``lib/``: an editable install made from
    another clone (or a venv shared with one) would run other code than the files dvc.yaml lists as deps."""
    import ragalign

    lib = Path(ragalign.__file__).resolve().parent.parent
    if lib != (root / "lib").resolve():
        raise RuntimeError(f"this Python imports ragalign from {lib}, not from this project's {root / 'lib'}: "
                           f"run `make venv` in {root}, or put {root / 'lib'} first on PYTHONPATH")


def use_own_library(root: Path, argv: list[str]) -> None:
    """Re-execute the runner with ``root/lib`` first on ``PYTHONPATH`` (the stage's kernel inherits it) when
    this Python imports ragalign from elsewhere. A queued DVC experiment runs in a copy of the project
    (``.dvc/tmp/exps/...``) while the venv's editable install points at the workspace's ``lib/``; a venv made
    in another clone points at that clone's. Either way the stage must run the code its dvc.yaml deps name."""
    try:
        check_library(root)
        return
    except RuntimeError:
        if os.environ.get(OWN_LIBRARY) or not (root / "lib" / "ragalign").is_dir():
            raise
    path = os.pathsep.join([str((root / "lib").resolve()), *filter(None, [os.environ.get("PYTHONPATH")])])
    os.execve(sys.executable, [sys.executable, "-m", "ragalign.runner", *argv], {**os.environ, OWN_LIBRARY: "1", "PYTHONPATH": path})


def own_kernel(folder: Path) -> None:
    """Make :data:`KERNEL` run this very interpreter: a kernelspec in ``folder``, searched before every other
    (``JUPYTER_PATH``), so a kernelspec another install left in the venv or the user's folders never runs a stage."""
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(folder), *filter(None, [os.environ.get("JUPYTER_PATH")])])


def run_stage(stage: str, params_path: str = "params.yaml", root: str | Path = ".") -> Path:
    """Execute a stage notebook and return the path of its report."""
    import jupytext
    import papermill

    logging.getLogger("papermill").addFilter(_QuietUnknownParameters())
    root = Path(root).resolve()
    os.chdir(root)
    check_library(root)
    params = load(params_path)  # fail before any kernel starts
    if stage != "00_numerics":
        check_recorded(params)  # one study never mixes dtypes
    source = Path("notebooks") / f"{stage}.py"
    if not source.exists():
        raise FileNotFoundError(f"no notebook for stage {stage!r}: {source}")
    for folder in OUTPUT_DIRS:
        Path(folder).mkdir(parents=True, exist_ok=True)
    parameters = yaml.safe_load(Path(params_path).read_text()) or {}
    report = Path("reports") / f"{stage}.ipynb"
    start = time.time()
    slowest: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tally_file, spent_file = Path(tmp) / "cache_tally.json", Path(tmp) / "spent.json"
        os.environ[TALLY_ENV] = str(tally_file)  # the kernel inherits it and reports its cache hits there
        os.environ[SPENT_ENV] = str(spent_file)  # ... and its seconds per kind of work (core.stopwatch)
        preset, jupyter_path = os.environ.get(STUDY_START_ENV), os.environ.get("JUPYTER_PATH")
        own_kernel(Path(tmp) / "jupyter")
        os.environ[STUDY_START_ENV] = str(study_started(start))  # values written since are shared, not hits
        src_nb = Path(tmp) / f"{stage}.ipynb"
        jupytext.write(jupytext.read(source), src_nb)
        out_nb = Path(tmp) / "executed.ipynb"
        try:
            papermill.execute_notebook(
                str(src_nb), str(out_nb), parameters=parameters, kernel_name=KERNEL, cwd=str(root), log_output=True, progress_bar=False
            )
        finally:
            if out_nb.exists():
                executed = findings_first(json.loads(out_nb.read_text()))
                slowest = cell_timings(executed)  # numbered as the report's cells (cell-NNN)
                nb = strip_volatile(executed)
                atomic_write_text(report, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            values = json.loads(tally_file.read_text()) if tally_file.exists() else {}
            spent = json.loads(spent_file.read_text()) if spent_file.exists() else {}
            os.environ.pop(TALLY_ENV, None)
            os.environ.pop(SPENT_ENV, None)
            for name, value in ((STUDY_START_ENV, preset), ("JUPYTER_PATH", jupyter_path)):
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    timing = {"stage": stage, "wall_s": round(time.time() - start, 1), "peak_rss_mib": round(peak_mib), "slowest_cells": slowest,
              "spent_s": spent, **temperature(values), "host": run_host(params)}
    record = Path("results/timings") / f"{stage}.json"
    kept = last_cold(previous_record(record), timing)
    if kept:
        timing["last_cold"] = kept
    atomic_write_text(record, json.dumps(timing, indent=1, ensure_ascii=False) + "\n")
    print(f"[ragalign] {stage}: {timing['wall_s']} s, peak memory {timing['peak_rss_mib']} MiB -> {report}")
    for row in slowest:
        print(f"[ragalign]   cell {row['cell']:>3}: {row['seconds']:>7.1f} s  {row['code']}")
    return report


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] != "--params"):
        print("usage: python -m ragalign.runner STAGE [--params PATH]   (e.g. 01_prepare_data)", file=sys.stderr)
        return 2
    use_own_library(Path.cwd(), argv)
    try:
        run_stage(argv[0], params_path=argv[2] if len(argv) == 3 else "params.yaml")
    except ParamsError as err:
        print(f"params.yaml: {err}", file=sys.stderr)
        return 1
    except NumericsMismatch as err:
        print(f"[ragalign] stage {argv[0]}: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - report the failing stage and its report
        print(f"[ragalign] stage {argv[0]} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
