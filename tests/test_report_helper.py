"""The report's helper process (probmodels/_report_helper.py): the same report with and without
it, and the main process redoes whatever the helper cannot serve."""

import io
import os
import textwrap

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import probmodels
from probmodels import _report_helper
from probmodels.report import report

pytestmark = pytest.mark.skipif(not _report_helper.available(), reason="one core: reports never use a helper")


def _same_reports(a, b):
    assert list(a.tables) == list(b.tables)
    for key in a.tables:  # the same functions and seeds in either process: equal, not close
        pd.testing.assert_frame_equal(a.tables[key], b.tables[key], check_exact=True)
    assert a.notes == b.notes and a.loo_notes == b.loo_notes
    assert [f[:2] for f in a.findings] == [f[:2] for f in b.findings], ([f for f in a.findings if f[0] == "library warnings"], [f for f in b.findings if f[0] == "library warnings"])
    assert list(a.figures) == list(b.figures)
    assert list(a.alternative_fits) == list(b.alternative_fits)
    for label, f in a.alternative_fits.items():
        g = b.alternative_fits[label]
        for k in f.estimate:
            np.testing.assert_array_equal(f.estimate[k], g.estimate[k])
        np.testing.assert_array_equal(f.pointwise_log_likelihood(), g.pointwise_log_likelihood())


def _same_files(a, b):
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    for name in names:
        if name.endswith(".png"):  # rendered in either process: the same image size
            with Image.open(os.path.join(a, name)) as x, Image.open(os.path.join(b, name)) as y:
                assert x.size == y.size, name
        if name.endswith(".nc"):  # written by either process: the same fit read back
            x, y = probmodels.load(os.path.join(a, name)), probmodels.load(os.path.join(b, name))
            assert x.method == y.method
            for k in x.estimate:
                np.testing.assert_array_equal(x.estimate[k], y.estimate[k])


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The built-in example's quick report made in one process, and its folder."""
    out = tmp_path_factory.mktemp("alone")
    rep = report(out=str(out), quick=True, quiet=True, helper=False)
    assert rep.helper is None and all(isinstance(v, bytes) for v in rep.pngs.values())
    assert "loo" in rep.tables and "prior_predictive" in rep.figures  # every task has its section
    return rep, out


def test_helper_gives_the_same_report(tmp_path, alone):
    h = _report_helper.helper()
    before = h.answered
    with_helper = report(out=str(tmp_path), quick=True, quiet=True, helper=True)
    # the alternatives' fits and the prior predictive check (drawn and rendered there) first, then
    # those of the other PNGs and NetCDF files that the main process did not take back
    assert 2 <= h.answered - before <= 2 + (len(with_helper.figures) - 1) + len(with_helper.fits)
    assert with_helper.alternative_fits and "prior_predictive" in with_helper.figures
    _same_reports(with_helper, alone[0])
    _same_files(tmp_path, alone[1])


def test_failed_helper_tasks_are_redone_here(tmp_path, monkeypatch, alone):
    """Every task the helper fails (here: all of them) is done in the main process instead."""

    def failing(self, task, *args):
        future = _report_helper.Future()
        future.set_exception(RuntimeError(f"{task}: simulated failure"))
        return future

    monkeypatch.setattr(_report_helper.Helper, "submit", failing)
    failed = report(out=str(tmp_path), quick=True, quiet=True, helper=True)
    _same_reports(failed, alone[0])
    _same_files(tmp_path, alone[1])


def test_a_dead_helper_fails_its_tasks_and_is_replaced():
    h = _report_helper.Helper()
    h.proc.kill()
    h.proc.wait()
    future = h.submit("netcdf", None, os.devnull)
    with pytest.raises(RuntimeError, match="helper process stopped"):
        future.result(timeout=30)  # an error, not a hang
    h.close()
    session = _report_helper.helper()
    session.proc.kill()
    session.proc.wait()
    assert _report_helper.helper() is not session and _report_helper.helper().alive()


def test_a_task_taken_back_is_not_run(tmp_path):
    """The main process takes queued tasks back (write: from the back of the queue); the helper
    never runs them, and the tasks before them still run."""
    import pickle

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(np.arange(100_000.0))  # > 64 kB pickled: the pipe holds it until the helper reads
    h = _report_helper.Helper()
    try:
        first = h.submit("render", pickle.dumps(fig))
        second = h.submit("netcdf", None, str(tmp_path / "never.nc"))
        assert _report_helper.take_back(second) and second.cancelled()
        assert _report_helper.resolve(first, lambda: None).startswith(b"\x89PNG")
        assert not _report_helper.take_back(first)  # done: nothing to take back
    finally:
        h.close()
        plt.close(fig)
    assert not (tmp_path / "never.nc").exists()


ERRING = textwrap.dedent(
    '''
    """A line whose alternative program is broken."""
    import numpy as np
    import numpyro.distributions as dist
    from probmodels import noise, observe, param


    def program(u, x=None):
        slope = param("slope", prior=dist.Normal(0.0, 10.0))
        scale = param("scale", prior=dist.HalfNormal(5.0))
        return observe("x", slope * u + noise.Gaussian(scale), obs=x)


    def broken(u, x=None):
        raise ValueError("broken alternative: no such noise model")


    ALTERNATIVES = {"broken": broken}


    def data():
        u = np.linspace(-2, 2, 30)
        return {"u": u, "x": 0.5 * u + np.random.default_rng(0).normal(size=30)}
    '''
)


def test_helper_is_a_switch():
    with pytest.raises(ValueError, match="helper is True, False or None"):
        report(helper="no")


def test_an_error_in_the_helper_is_raised_here(tmp_path):
    """A genuine error (a broken alternative program) is raised as it is without the helper."""
    path = tmp_path / "erring.py"
    path.write_text(ERRING)
    with pytest.raises(ValueError, match="broken alternative"):
        report(str(path), methods=["mle", "laplace"], quiet=True, helper=True)


def test_a_loaded_posterior_gives_its_saved_log_likelihood(tmp_path):
    """A fit read back (or unpickled, as the helper's fits are) scores its own data from the
    saved log-likelihood, the same numbers; anything else needs the program and says so."""
    import pickle

    from probmodels.examples import robust_line as spec

    f = probmodels.fit(spec.program, spec.data(), "laplace")
    f.save(str(tmp_path / "f.nc"))
    for back in (probmodels.load(str(tmp_path / "f.nc")), pickle.loads(pickle.dumps(f))):
        np.testing.assert_allclose(back.pointwise_log_likelihood(), f.pointwise_log_likelihood(), rtol=1e-12)
        with pytest.raises(ValueError, match="holds no program"):
            back.pointwise_log_likelihood(data=spec.data())
