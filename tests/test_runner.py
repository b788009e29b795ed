import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ragalign.runner import cell_timings, findings_first, strip_volatile

ROOT = Path(__file__).resolve().parents[1]


def test_strip_volatile_drops_timings_and_stderr_only():
    nb = {
        "metadata": {"papermill": {"start_time": "x"}, "kernelspec": {"name": "python3"}},
        "cells": [
            {
                "cell_type": "code",
                "id": "a1b2c3-random",
                "metadata": {"papermill": {"duration": 1.2}, "execution": {"iopub.status.busy": "t"}, "tags": ["parameters"]},
                "outputs": [{"name": "stderr", "output_type": "stream", "text": "100%|██| 3/3 [00:01<00:00]"}, {"name": "stdout", "output_type": "stream", "text": "kept"}],
            }
        ],
    }
    out = strip_volatile(json.loads(json.dumps(nb)))
    assert out["metadata"] == {"kernelspec": {"name": "python3"}}
    assert out["cells"][0]["metadata"] == {"tags": ["parameters"]}
    assert out["cells"][0]["id"] == "cell-000"
    assert out["cells"][0]["outputs"] == [{"name": "stdout", "output_type": "stream", "text": "kept"}]


def test_cell_timings_lists_the_slowest_code_cells():
    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {"papermill": {"duration": 9.0}}, "source": "# title"},
            {"cell_type": "code", "metadata": {"papermill": {"duration": 0.21}}, "source": "import x"},
            {"cell_type": "code", "metadata": {"papermill": {"duration": 42.04}}, "source": ["labels = score(pairs)\n", "labels"]},
            {"cell_type": "code", "metadata": {}, "source": "never ran"},
        ]
    }
    assert cell_timings(nb) == [
        {"cell": 2, "code": "labels = score(pairs)", "seconds": 42.0},
        {"cell": 1, "code": "import x", "seconds": 0.2},
    ]
    assert cell_timings(nb, top=1) == [{"cell": 2, "code": "labels = score(pairs)", "seconds": 42.0}]


def test_findings_open_the_report():
    findings = {"text/markdown": "Recall rose from **0.70** to 0.74.", "text/plain": "<Markdown>"}
    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# 02 · retrieval\nWhat does dense add?"},
            {"cell_type": "code", "metadata": {}, "outputs": []},
            {"cell_type": "code", "metadata": {"tags": ["findings"]}, "outputs": [{"output_type": "execute_result", "data": findings}]},
        ]
    }
    out = strip_volatile(findings_first(nb))
    assert [c["cell_type"] for c in out["cells"]] == ["markdown", "markdown", "code", "code"]
    assert out["cells"][1]["source"] == "## What it found\n\nRecall rose from **0.70** to 0.74."
    assert out["cells"][1]["id"] == "cell-001"  # deterministic, like every other cell id
    # a notebook without a findings output is left as it is
    bare = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# x"}]}
    assert findings_first(json.loads(json.dumps(bare))) == bare


def test_every_stage_notebook_ends_with_one_findings_cell():
    import jupytext

    for source in sorted((ROOT / "notebooks").glob("*.py")):
        cells = jupytext.read(source).cells
        tagged = [i for i, c in enumerate(cells) if "findings" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{source.name}: {len(tagged)} cells tagged 'findings'"
        assert "Markdown(" in cells[tagged[0]].source, source.name
        assert cells[0].cell_type == "markdown", f"{source.name} must open with the question it asks"


def test_every_stage_has_a_notebook_paired_with_its_report():
    """Each stage runs its notebook through the runner, and jupytext (as `jupytext --paired-paths` reads the
    repo's config) pairs the notebook with the report the stage declares."""
    from jupytext.cli import get_formats_from_notebook_path
    from jupytext.paired_paths import paired_paths

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        assert stage["cmd"] == f"python -m ragalign.runner {name}"
        source = ROOT / "notebooks" / f"{name}.py"
        assert source.exists(), source
        paired = [Path(p) for p, _ in paired_paths(str(source), None, get_formats_from_notebook_path(str(source), None))]
        assert ROOT / "reports" / f"{name}.ipynb" in paired, paired
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
        assert f"reports/{name}.ipynb" in outs and f"results/timings/{name}.json" in outs
        assert f"notebooks/{name}.py" in stage["deps"]


def test_runner_rejects_bad_params_before_any_kernel(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("gain:\n  alpha: -2\n")
    out = subprocess.run([sys.executable, "-m", "ragalign.runner", "01_prepare_data", "--params", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1 and "gain.alpha" in out.stderr


LIB = ROOT / "lib" / "ragalign"


def _module_file(module: str) -> Path:
    """``core.lm`` -> lib/ragalign/core/lm.py."""
    return LIB / (module.replace(".", "/") + ".py")


def _ragalign_imports(source: str) -> set[str]:
    """The library modules a source imports, dotted below ``ragalign`` (``core.lm``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ragalign":
            below = node.module.split(".")[1:]
            if below and _module_file(".".join(below)).exists():
                found.add(".".join(below))  # from ragalign.core.lm import LM
            else:
                found |= {".".join([*below, alias.name]) for alias in node.names if _module_file(".".join([*below, alias.name])).exists()}
        elif isinstance(node, ast.Import):
            found |= {".".join(a.name.split(".")[1:]) for a in node.names if a.name.startswith("ragalign.")}
    return found


def _closure(source: str, extra: tuple[str, ...] = ()) -> set[str]:
    """Every library module ``source`` runs, directly or through other modules."""
    needed, todo = set(), list(_ragalign_imports(source) | set(extra))
    while todo:
        module = todo.pop()
        if module not in needed:
            needed.add(module)
            todo += _ragalign_imports(_module_file(module).read_text())
    return needed


def test_every_stage_depends_on_all_the_library_code_it_runs():
    """dvc.yaml lists, per stage, every library module its notebook imports, directly or not (and the runner)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        needed = _closure((ROOT / "notebooks" / f"{name}.py").read_text(), ("runner",))
        declared = {d.removeprefix("lib/ragalign/").removesuffix(".py").replace("/", ".") for d in stage["deps"] if d.startswith("lib/ragalign/")}
        assert declared == needed, f"{name}: missing {sorted(needed - declared)}, not imported {sorted(declared - needed)}"


def _artifact_refs(source: str) -> set[str]:
    """Paths of the artifacts a source names (``artifacts.DENSE``, collections such as ``artifacts.ANSWER_TABLES`` expanded)."""
    from ragalign.core import artifacts

    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "artifacts":
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module == "ragalign.core.artifacts":
            names |= {alias.name for alias in node.names}
    found = set()
    for name in names:
        value = getattr(artifacts, name, None)
        members = value.values() if isinstance(value, dict) else value if isinstance(value, tuple) else [value]
        found |= {a.path for a in members if isinstance(a, artifacts.Artifact)}
    return found


def _path_literals(source: str) -> set[str]:
    """String literals (and f-string heads) that name a project file: results/, figures/, reports/, data/, README.md."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            text = str(node.values[0].value).rsplit("/", 1)[0] + "/"  # f"results/{d}/x": the folder it reads under
        else:
            continue
        if text.startswith(("results/", "figures/", "reports/")) or text == "README.md":
            found.add(text)
    return found


def test_every_file_a_stage_reads_or_writes_is_declared():
    """Each path a stage's notebook (or a library module it imports) names is a dep, an out or a metric
    of that stage in dvc.yaml, or lies under (or above) one of them."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    problems = []
    for name, stage in stages.items():
        declared = _declared(stage, ("deps", "outs", "metrics"))
        texts = _sources(name)
        named = set().union(*(_path_literals(s) | _artifact_refs(s) for s in texts))
        named = {p for p in named if not p.startswith("results/timings/") or name == "11_summary"}  # the runner writes each stage's own timings
        undeclared = [p for p in named if not any(p == d or p.startswith(d.rstrip("/") + "/") or d.startswith(p.rstrip("/") + "/") for d in declared)]
        if undeclared:
            problems.append(f"{name} names {sorted(undeclared)} but dvc.yaml does not declare them")
    assert not problems, "\n".join(problems)


def _sources(stage: str) -> list[str]:
    """A stage's notebook and every library module it runs, but the artifact contract (which names every path)."""
    notebook = (ROOT / "notebooks" / f"{stage}.py").read_text()
    return [notebook] + [_module_file(m).read_text() for m in sorted(_closure(notebook)) if m != "core.artifacts"]


def _declared(stage: dict, kinds: tuple[str, ...]) -> list[str]:
    return [e if isinstance(e, str) else next(iter(e)) for kind in kinds for e in stage.get(kind, [])]


def _covered(path: str, declared: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared)


def test_every_artifact_is_an_output_of_its_stage_and_a_dependency_of_its_readers():
    """The artifact contract and dvc.yaml agree: the writer declares each artifact as an out (or metric),
    and every other stage whose code names it declares it as a dependency."""
    from ragalign.core import artifacts

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    problems = []
    for a in artifacts.all_artifacts():
        if not _covered(a.path, _declared(stages[a.stage], ("outs", "metrics"))):
            problems.append(f"{a.stage} writes {a.path} but does not declare it as an out")
    for name, stage in stages.items():
        named = set().union(*(_artifact_refs(t) for t in _sources(name)))
        own = {a.path for a in artifacts.all_artifacts() if a.stage == name}
        for path in sorted(named - own):
            if not _covered(path, _declared(stage, ("deps",))):
                problems.append(f"{name} reads {path} but does not declare it as a dependency")
    assert not problems, "\n".join(problems)


# What a notebook may not call: aggregates and verdicts belong in the library (stage results, report
# helpers), so that a report only reads artifacts, formats and draws. Plotting, display and formatting
# (f-strings, `describe`, `Markdown`, `pd.DataFrame` of given numbers) stay allowed.
COMPUTING_METHODS = {"groupby", "agg", "aggregate", "mean", "median", "sum", "std", "var", "quantile", "corr", "value_counts",
                     "pivot_table", "apply", "merge", "crosstab", "count", "nunique", "cumsum"}
COMPUTING_FUNCTIONS = {"paired_interval", "paired_difference", "bootstrap_ci", "verdict", "with_verdict", "paired_outcomes",
                       "minimum_detectable_difference", "spearmanr", "pearsonr"}
COMPUTING_MODULES = {"np", "numpy", "scipy", "stats"}


def computing_calls(source: str) -> list[str]:
    """The calls in a cell's code that compute an aggregate or a verdict (see the lists above)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
        owner = fn.value.id if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) else ""
        if name in COMPUTING_METHODS or name in COMPUTING_FUNCTIONS or owner in COMPUTING_MODULES:
            found.append(f"{owner + '.' if owner else ''}{name}")
    return found


def test_the_checker_sees_aggregates_and_verdicts():
    assert sorted(computing_calls("x = df.groupby('a').b.mean()")) == ["df.groupby", "mean"]
    assert computing_calls("w = verdict(d)") == ["verdict"] and computing_calls("m = np.mean(v)") == ["np.mean"]
    assert computing_calls("plots.save(fig, 'a.png'); Markdown(f'{r.x:.2f}')") == []


def test_notebooks_only_read_artifacts_and_draw():
    """No report computes an aggregate or a verdict in a cell: the stage function (or a report helper) does."""
    import jupytext

    offenders = {}
    for source in sorted((ROOT / "notebooks").glob("*.py")):
        calls = [c for cell in jupytext.read(source).cells if cell.cell_type == "code" and not cell.source.lstrip().startswith("%")
                 for c in computing_calls(cell.source)]
        if calls:
            offenders[source.name] = calls
    assert not offenders, f"notebooks compute (move it into the library): {offenders}"


def test_a_warm_rerun_keeps_the_last_cold_figure():
    from ragalign.runner import last_cold

    host = {"cpu": "X", "dtype": "bfloat16"}
    cold = {"stage": "s", "wall_s": 600.0, "peak_rss_mib": 4096, "cold": True, "cache": {"lm": {"hits": 0, "computed": 9}}, "host": host}
    warm = {"stage": "s", "wall_s": 20.0, "peak_rss_mib": 1024, "cold": False, "cache": {"lm": {"hits": 9, "computed": 0}}, "host": host}
    kept = last_cold(cold, warm)
    assert kept == {"wall_s": 600.0, "peak_rss_mib": 4096, "cache": cold["cache"], "host": host}
    assert last_cold({**warm, "last_cold": kept}, warm) == kept  # carried through any number of warm runs
    assert last_cold({**warm, "last_cold": kept}, cold) is None  # a cold run is its own figure
    assert last_cold(None, warm) is None and last_cold(warm, warm) is None  # nothing cold to keep


def test_the_previous_record_is_the_committed_one_when_dvc_removed_the_file(tmp_path, monkeypatch):
    from ragalign.runner import previous_record

    monkeypatch.chdir(tmp_path)
    record = Path("results/timings/03_rag_baselines.json")
    assert previous_record(record) is None  # not a git repository
    subprocess.run(["git", "init", "-q"], check=True)
    record.parent.mkdir(parents=True)
    record.write_text('{"wall_s": 600.0, "cold": true}')
    assert previous_record(record) == {"wall_s": 600.0, "cold": True}  # the file, when it is there
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "a cold run"], check=True)
    record.unlink()  # what `dvc repro` does before it runs the stage
    assert previous_record(record) == {"wall_s": 600.0, "cold": True}


def test_a_stage_kernel_runs_the_runners_own_python_whatever_kernelspec_was_left_elsewhere(tmp_path, monkeypatch):
    """A venv shared with another clone once held a kernelspec naming that clone's Python (and its library):
    every stage ran the other clone's code. The runner's kernel is its own interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager

    from ragalign.runner import KERNEL, own_kernel

    stale = tmp_path / "stale" / "kernels" / KERNEL
    stale.mkdir(parents=True)
    (stale / "kernel.json").write_text(json.dumps({"argv": ["/elsewhere/.venv/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                                   "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "stale"))
    assert KernelSpecManager().get_kernel_spec(KERNEL).argv[0] == "/elsewhere/.venv/bin/python"
    own_kernel(tmp_path / "own")
    assert KernelSpecManager().get_kernel_spec(KERNEL).argv[0] == sys.executable


def test_the_runner_refuses_a_library_imported_from_another_clone(tmp_path, monkeypatch):
    import ragalign
    from ragalign.runner import check_library

    check_library(ROOT)  # this checkout's own lib/
    monkeypatch.setattr(ragalign, "__file__", str(tmp_path / "other" / "lib" / "ragalign" / "__init__.py"))
    with pytest.raises(RuntimeError, match=r"imports ragalign from .*other/lib.*run `make venv`"):
        check_library(ROOT)


def test_the_runner_reexecutes_itself_on_the_projects_own_library(tmp_path, monkeypatch):
    """A queued DVC experiment runs in a copy of the project while the venv's editable install points at the
    workspace: the runner re-executes itself with the copy's lib/ first, once; a second miss is an error."""
    import ragalign
    from ragalign import runner

    calls = []
    monkeypatch.setattr(runner.os, "execve", lambda exe, args, env: calls.append((args, env)))
    monkeypatch.delenv(runner.OWN_LIBRARY, raising=False)
    runner.use_own_library(ROOT, ["03_rag_baselines"])
    assert not calls  # already this checkout's own lib/
    monkeypatch.setattr(ragalign, "__file__", str(tmp_path / "other" / "lib" / "ragalign" / "__init__.py"))
    runner.use_own_library(ROOT, ["03_rag_baselines"])
    (args, env), = calls
    assert args[1:] == ["-m", "ragalign.runner", "03_rag_baselines"] and env[runner.OWN_LIBRARY] == "1"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str((ROOT / "lib").resolve())
    monkeypatch.setenv(runner.OWN_LIBRARY, "1")
    with pytest.raises(RuntimeError, match="imports ragalign from"):
        runner.use_own_library(ROOT, ["03_rag_baselines"])
