import json
import subprocess
import sys
from pathlib import Path

import yaml

from ragalign.runner import strip_volatile

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


def test_every_stage_has_a_notebook_paired_with_its_report():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        assert stage["cmd"] == f"python -m ragalign.runner {name}"
        source = ROOT / "notebooks" / f"{name}.py"
        assert source.exists(), source
        paired = subprocess.run([sys.executable, "-m", "jupytext", "--paired-paths", str(source)], capture_output=True, text=True, cwd=ROOT)
        assert f"reports/{name}.ipynb" in paired.stdout, paired.stderr
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
        assert f"reports/{name}.ipynb" in outs and f"results/timings/{name}.json" in outs
        assert f"notebooks/{name}.py" in stage["deps"]


def test_runner_rejects_bad_params_before_any_kernel(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("gain:\n  alpha: -2\n")
    out = subprocess.run([sys.executable, "-m", "ragalign.runner", "01_prepare_data", "--params", str(bad)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1 and "gain.alpha" in out.stderr
