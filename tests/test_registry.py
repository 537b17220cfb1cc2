"""The solver contract: the registry, categorized findings, the public switches."""

import os
import pickle
import subprocess
import sys

import probmodels
import pytest
from probmodels.solvers import CATEGORIES, REGISTRY, Finding, Solver
from probmodels.solvers.base import KINDS, RHAT


def test_registry_is_the_one_list_of_methods():
    assert tuple(REGISTRY) == probmodels.METHODS == ("mle", "map", "laplace", "vi", "nuts", "pathfinder")
    for name, s in REGISTRY.items():
        assert isinstance(s, Solver) and s.name == name and s.kind in KINDS and callable(s.solve)
        assert {"seed", "init"} <= set(s.defaults)
    assert len({s.label for s in REGISTRY.values()}) == len(REGISTRY)
    assert REGISTRY["pathfinder"].kind == "approximation" and REGISTRY["nuts"].batched is not None


def test_finding_is_a_str_with_a_category_and_pickles():
    w = Finding(RHAT, "r-hat is 1.05")
    assert w == "r-hat is 1.05" and "1.05" in w and w.category == RHAT
    back = pickle.loads(pickle.dumps(w))
    assert back == w and back.category == RHAT and isinstance(back, Finding)
    with pytest.raises(ValueError, match="unknown category"):
        Finding("nonsense", "text")
    assert CATEGORIES[-1] == "other"


def test_report_groups_findings_by_category_not_wording():
    from probmodels.report import findings

    class Stub:
        diagnostics = {"warnings": [Finding(RHAT, "chains disagree (wording free to change)"), "a plain string"]}

    out = findings({"NUTS": Stub()})
    assert ("r-hat", "NUTS", "chains disagree (wording free to change)") in out
    assert ("other", "NUTS", "a plain string") in out
    assert [c for c, label, _ in out if label is None] == [c for c in CATEGORIES[:-1] if c != "r-hat"]


def test_xla_options_switch():
    # PROBMODELS_XLA_OPTIONS=default: XLA's own options instead of probmodels' two CPU options
    code = "import probmodels, probmodels._config as c; print(sorted(c.compiler_options()))"
    env = dict(os.environ, PROBMODELS_CPU_DEVICES="1")
    own = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    default = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(env, PROBMODELS_XLA_OPTIONS="default"), check=True).stdout
    assert "xla_backend_optimization_level" in own and default.strip() == "[]"
