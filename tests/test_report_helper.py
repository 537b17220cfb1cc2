"""The report's helper process (probmodels/_report_helper.py): the same report with and without
it, and the main process redoes whatever the helper cannot serve."""

import io
import os
import textwrap

import numpy as np
import numpyro.distributions as dist
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

    def failing(self, task, *args, **options):
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


def test_tasks_asked_for_later_wait_for_the_others(tmp_path):
    """A task submitted with later=True (the report's NetCDF files) goes to the helper after
    every other task queued before the helper is free, whenever that one was queued."""
    import pickle

    import arviz as az
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0.0, 1.0])
    idata = az.from_dict(posterior={"a": np.zeros((1, 5))})
    done = []
    h = _report_helper.Helper()
    try:
        busy = h.submit("render", pickle.dumps(fig))  # sent at once: the helper busy with it (and its imports)
        files = [h.submit("netcdf", idata, str(tmp_path / f"f{i}.nc"), later=True) for i in range(2)]
        figure = h.submit("render", pickle.dumps(fig))
        for name, fut in [("busy", busy), ("file 0", files[0]), ("file 1", files[1]), ("figure", figure)]:
            fut.add_done_callback(lambda f, name=name: done.append(name))
        assert _report_helper.resolve(figure, lambda: None).startswith(b"\x89PNG")
        for f in files:
            _report_helper.resolve(f, lambda: None)
        assert done == ["busy", "figure", "file 0", "file 1"]  # the figure first, the files in their order
        assert all((tmp_path / f"f{i}.nc").exists() for i in range(2))
    finally:
        plt.close(fig)
        h.close()


def test_fits_and_timings_in_the_order_asked_for(alone):
    """The report fits its MCMC run first (its figures are drawn while the rest fit) but lists
    the fits, its tables and its timings in the order of the methods asked for."""
    from probmodels.report import LABELS, REPORT_METHODS

    rep = alone[0]
    labels = [LABELS[m] for m in REPORT_METHODS]
    assert REPORT_METHODS[-1] == "nuts" and list(rep.fits) == labels
    assert [k for k in rep.timings if k in labels] == labels
    assert list(rep.tables["criteria"].index) != [] and set(rep.tables["criteria"].index) == set(labels)
    assert [k for k in rep.figures if k in ("trace", "rank", "ppc")] == ["trace", "rank", "ppc"]


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


def test_the_command_starts_the_helper_before_its_imports(tmp_path):
    """``probmodels report`` (probmodels_launch.console) starts the helper before importing
    probmodels, and the report takes that one over; other commands start none."""
    import subprocess
    import sys

    import probmodels_launch

    assert probmodels_launch._reports(["report", "models/x.py", "--quick"])
    assert not probmodels_launch._reports(["report", "--help"]) and not probmodels_launch._reports([])
    script = textwrap.dedent(
        f"""
        import sys
        import probmodels_launch as launch
        started = []
        take = launch.take_early
        def taken():
            early = take()
            print("early helper", early is not None and early[0].pid == started[0].pid, flush=True)
            return early
        spawn = launch.spawn
        def spawned():
            print("spawned before probmodels:", "probmodels" not in sys.modules, flush=True)
            got = spawn()
            started.append(got[0])
            return got
        launch.take_early, launch.spawn = taken, spawned
        sys.argv = ["probmodels", "report", "--out", {str(tmp_path / "out")!r}, "--quick", "--quiet"]
        launch.console()
        """
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=dict(os.environ, PROBMODELS_REPORT_HELPER="1"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "spawned before probmodels: True" in res.stdout and "early helper True" in res.stdout, res.stdout
    assert (tmp_path / "out" / "report.html").exists()


def test_an_early_helper_is_taken_over_once():
    import probmodels_launch

    _report_helper.close(wait=True)
    probmodels_launch._EARLY = probmodels_launch.spawn()
    pid = probmodels_launch._EARLY[0].pid
    h = _report_helper.helper()
    assert h.proc.pid == pid and probmodels_launch.take_early() is None
    assert _report_helper.resolve(h.submit("clear"), lambda: "here") is None  # served there


def test_the_command_collects_garbage_less_often():
    """The command's imports run with the collector off; then their objects are frozen and full
    collections are ten times rarer (probmodels_launch.imported)."""
    import subprocess
    import sys

    script = (
        "import gc, probmodels_launch\n"
        "with probmodels_launch.imported():\n"
        "    assert not gc.isenabled()\n"
        "    import probmodels\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 10000, gc.get_threshold()[2])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["True", "True", "100"]


@pytest.mark.parametrize("where", ["inside", "past the edge"])
def test_render_png_is_savefig_tight(where):
    """One drawing, cut and framed, where the figure lies on its canvas: the image savefig's
    bbox_inches="tight" gives (its size; its pixels up to sub-pixel placement); savefig itself
    where the figure reaches past the canvas. The figure is left as it was."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(np.sin(np.linspace(0, 6, 200)))
    ax.set_title("a title", y=1.2 if where == "past the edge" else 1.0)
    ax.set_xlabel("x")
    fig.tight_layout() if where == "inside" else None
    canvas, dpi = fig.canvas, fig.dpi
    calls = []
    fig.savefig = lambda *a, **k: calls.append(1) or type(fig).savefig(fig, *a, **k)
    got = _report_helper.render_png(fig)
    del fig.savefig
    assert len(calls) == (0 if where == "inside" else 1)  # one drawing where it fits
    assert fig.canvas is canvas and fig.dpi == dpi
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_report_helper.DPI, bbox_inches="tight")
    plt.close(fig)
    a = np.asarray(Image.open(io.BytesIO(got)).convert("L"), dtype=float)
    b = np.asarray(Image.open(buf).convert("L"), dtype=float)
    assert a.shape == b.shape
    # the same picture in the same place (savefig places it to a fraction of a pixel, the cut to
    # whole pixels): the same ink, centred within a pixel
    ink_a, ink_b = 255.0 - a, 255.0 - b
    assert abs(ink_a.sum() / ink_b.sum() - 1.0) < 0.01
    rows, cols = np.indices(a.shape)
    for grid in (rows, cols):
        assert abs((grid * ink_a).sum() / ink_a.sum() - (grid * ink_b).sum() / ink_b.sum()) < 1.0


def test_noise_models_are_read_off_the_program_as_when_it_runs_eagerly():
    """Reference: the program run op by op (numpyro's handlers outside any trace). The staged
    run gives the same noise models; a noise scale the program computes with JAX (a tracer when
    staged) makes it run eagerly, so the figure still gets its value."""
    import jax.numpy as jnp
    from numpyro import handlers

    from probmodels import noise, observe, param
    from probmodels._report_figures import noise_models_at

    def eager(program, data, values):
        tr = handlers.trace(handlers.substitute(program, data=values)).get_trace(**data)
        return [s["infer"]["noise"] for s in tr.values() if s.get("infer", {}).get("noise") is not None]

    def plain(u, x=None):
        s = param("s", prior=dist.HalfNormal(1.0))
        return observe("x", 1.0 + u + noise.StudentT(df=3.0, scale=s), obs=x)

    def computed(u, x=None):
        log_s = param("log_s")
        return observe("x", 1.0 + u + noise.Laplace(jnp.exp(log_s) * jnp.ones_like(u)), obs=x)

    u = np.linspace(0, 1, 20)
    data = {"u": u, "x": u + 0.1}
    for program, values in ((plain, {"s": np.array(0.7)}), (computed, {"log_s": np.array(-1.0)})):
        got = list(noise_models_at(program, data, values, "program").values())
        want = eager(program, data, values)
        assert [type(m) for m in got] == [type(m) for m in want]
        for g, w in zip(got, want):
            assert float(g.scale) == pytest.approx(float(np.median(np.asarray(w.scale))), rel=1e-15)
