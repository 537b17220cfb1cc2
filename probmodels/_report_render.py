"""Writing a :class:`probmodels.report.Report`: report.md, a self-contained report.html (images
embedded as data URIs, no external resource), CSV tables, PNG figures, NetCDF fits."""

from __future__ import annotations

import base64
import html
import os
import time

import numpy as np
import pandas as pd

from . import _io, _report_helper

__all__ = ["write", "fit_files", "write_back", "markdown_table", "shown_findings", "timing_table"]

CAPTIONS = {
    "forest": "All methods side by side: 94% Wald intervals for the point fits (their Gaussian approximation) and 94% HDIs for the posteriors.",
    "densities": "Posterior densities with the MLE and MAP marked (and the true value, dashed, when known).",
    "trace": "NUTS traces: every chain should wander over the same region.",
    "rank": "NUTS rank plots: uniform histograms mean well-mixed chains.",
    "ppc": "Posterior predictive check: data simulated from the posterior against the observed data.",
    "prior_predictive": "Prior predictive check: data simulated from the priors alone against the observed data (are the priors plausible before the data?).",
    "predictive": "Predictions per method: for one input, the 90% band of the predictor (Wald by the delta method for MLE and MAP, posterior quantiles otherwise) and of a new observation (plug-in for MLE and MAP); otherwise replicated data against the observed.",
    "penalty_geometry": "The noise models compared, at their fitted scales: each one's negative log-likelihood against the residual (the loss it is) and its influence function.",
}
TABLE_TITLES = {
    "comparison": "Estimates by method",
    "latent": "Latent sites by method (conditional modes and sds for MLE and MAP)",
    "heldout": "Held-out comparison (log predictive density on 20% of the data, fits on the other 80%)",
    "loo": "Noise-model selection (az.compare on PSIS-LOO)",
    "criteria": "Information criteria on one scale (elpd: log-likelihood - k for MLE and MAP by AIC, PSIS-LOO for posteriors)",
    "sensitivity": "Prior sensitivity (power-scaling, Kallioinen et al. 2024): above 0.05 the prior or the likelihood moves the posterior",
}


def _fmt(v):
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "" if np.isnan(v) else str(v)
        return f"{v:.4g}"
    return str(v)


def _flat_columns(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    if isinstance(df.columns, pd.MultiIndex):
        df.columns = [" ".join(str(c) for c in col if c != "") for col in df.columns]
    return df


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    df = _flat_columns(df)
    names = [str(n or "") for n in df.index.names]
    head = names + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for idx, row in df.iterrows():
        idx = idx if isinstance(idx, tuple) else (idx,)
        lines.append("| " + " | ".join([str(i) for i in idx] + [_fmt(v) for v in row.values]) + " |")
    return "\n".join(lines)


def long_comparison(df: pd.DataFrame) -> pd.DataFrame:
    """``compare``'s wide table (one column group per fit) as one row per parameter and fit."""
    rows = []
    fits = [f for f in dict.fromkeys(df.columns.get_level_values(0)) if f != "truth"]
    for param in df.index:
        for f in fits:
            sub = df[f].loc[param]
            se_key = next(k for k in sub.index if k.startswith("se") or k == "sd")
            lo_key = next(k for k in sub.index if k.endswith("3%"))
            hi_key = next(k for k in sub.index if k.endswith("97%"))
            row = {
                "param": param,
                "fit": f,
                "estimate": sub["estimate"],
                "se / sd": sub[se_key],
                "interval": "Wald" if lo_key.startswith("wald") else "HDI",
                "3%": sub[lo_key],
                "97%": sub[hi_key],
                "shift from MLE (sd)": sub.get("shift_from_mle_sd", np.nan),
                "MLE in HDI": sub.get("mle_in_hdi", ""),
            }
            if ("truth", "value") in df.columns:
                row["truth"] = df[("truth", "value")].loc[param]
            rows.append(row)
    out = pd.DataFrame(rows).set_index(["param", "fit"])
    return out


STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.finding { margin: 0.3em 0; } .ok { color: #2a7a2a; } .bad { color: #b03030; }
figure { margin: 1em 0; } figcaption { font-size: 0.9em; color: #555; }
img { max-width: 100%; } .note { color: #666; font-size: 0.9em; } pre { background: #f6f6f6; padding: 0.6em; }
"""


def shown_findings(findings):
    """``(findings with something found, categories that found nothing)``: the clean categories
    collapse to one line."""
    clean = [c for c, label, text in findings if label is None and text == "none found"]
    return [f for f in findings if f[0] not in clean], clean


def timing_table(rep, write_s: float):
    """Add the time spent writing files and a remainder row, so the table sums to the total."""
    rep.timings["writing files"] = rep.timings.pop("writing files", 0.0) + write_s  # (files begun earlier too)
    rep.timings["total"] = rep.timings.get("total", 0.0) + write_s
    listed = sum(v for k, v in rep.timings.items() if k not in ("total", "other"))
    rep.timings["other"] = max(rep.timings["total"] - listed, 0.0)
    rep.timings["total"] = rep.timings.pop("total")  # last row


def fit_files(rep, out: str) -> list:
    """The fits' NetCDF files, ``[[helper task or None, InferenceData, path], ...]``, queued for
    the helper when the report has one, behind every other task (the report queues them before
    its predictive figures: the helper writes them when it would otherwise wait)."""
    os.makedirs(out, exist_ok=True)
    written = []
    for label, f in rep.fits.items():
        path = os.path.join(out, f"fit_{f.method}.nc")
        # what the report shows: a point fit's estimate and covariance (not 4000 draws of its
        # Gaussian approximation), a posterior's draws, the log-likelihood of NUTS and of the fit
        # whose LOO is shown (draws x observations: 7 MB for 4000 draws of 236 rows); probmodels.load
        # reads each back as a Fit (Fit.save writes the same file)
        idata = _io.netcdf_data(f, draws=not f.is_point, log_likelihood=f.method == "nuts" or label == rep.loo_fit)
        pending = rep.helper.submit("netcdf", idata, path, later=True) if rep.helper is not None else None
        written.append([pending, idata, path])
    return written


def write_back(written: list, one: bool = False) -> bool:
    """Write here the files of :func:`fit_files` that the helper has not started, taken from
    the back of its queue while it works from the front (so that neither waits while the other
    has work queued); ``one``: one file at most. True when it wrote any."""
    wrote = False
    for item in reversed(written):
        pending, idata, _ = item
        if idata is not None and _report_helper.take_back(pending):
            idata.to_netcdf(item[2])
            item[0] = item[1] = None
            wrote = True
            if one:
                return wrote
    return wrote


def write(rep, out: str, *, quick: bool = False, model_path: str = "") -> list:
    """Write every file of the report into ``out``; returns their paths."""
    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    files = []
    images = {}
    for key, df in rep.tables.items():
        path = os.path.join(out, f"{key}.csv")
        _flat_columns(df).to_csv(path)
        files.append(path)
    written = rep.pending_files or fit_files(rep, out)
    files += [path for _, _, path in written]
    write_back(written)
    pngs = {key: rep.pngs.get(key) for key in rep.figures}
    for key in reversed(list(pngs)):
        if _report_helper.take_back(pngs[key]):
            pngs[key] = _report_helper.render_png(rep.figures[key])
    for key, fig in rep.figures.items():
        got = pngs[key]
        data = got if isinstance(got, bytes) else _report_helper.resolve(got, lambda: _report_helper.render_png(fig))
        images[key] = data
        path = os.path.join(out, f"{key}.png")
        with open(path, "wb") as fh:
            fh.write(data)
        files.append(path)
    for pending, idata, path in written:  # (written by the helper, or here)
        if idata is not None:
            _report_helper.resolve(pending, lambda: idata.to_netcdf(path))
    rep.pending_files = []  # (written: their InferenceData need not stay in memory)
    timing_table(rep, time.perf_counter() - t0)

    md = [f"# {rep.title}", "", rep.description, ""]
    if quick:
        md += ["_Quick settings: short NUTS and VI runs (a preview, not a final analysis)._", ""]
    md += [f"Model file: `{model_path}`. Methods: {', '.join(rep.fits)}. Total time {rep.timings.get('total', 0):.0f} s.", ""]
    md += ["## Findings", ""]
    found, clean = shown_findings(rep.findings)
    for category, label, text in found:
        md.append(f"- **{category}**: " + (f"{label}: {text}" if label else text))
    if clean:
        md.append(f"- none found: {', '.join(clean)}")
    md += [""] + [f"- {n}" for n in rep.loo_notes + rep.notes]
    for key, df in rep.tables.items():
        shown = long_comparison(df) if key in ("comparison", "latent") else df
        md += ["", f"## {TABLE_TITLES.get(key, key)}", "", markdown_table(shown)]
    md += ["", "## Timing", "", markdown_table(pd.DataFrame({"seconds": {k: v for k, v in rep.timings.items()}}))]
    for key in rep.figures:
        md += ["", f"## {key.replace('_', ' ')}", "", f"![{key}]({key}.png)", "", CAPTIONS.get(key, "")]
    path = os.path.join(out, "report.md")
    with open(path, "w") as fh:
        fh.write("\n".join(md) + "\n")
    files.append(path)

    h = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(rep.title)}</title><style>{STYLE}</style></head><body>"]
    h.append(f"<h1>{html.escape(rep.title)}</h1><p>{html.escape(rep.description)}</p>")
    if quick:
        h.append("<p class='note'>Quick settings: short NUTS and VI runs (a preview, not a final analysis).</p>")
    h.append(f"<p class='note'>Model file: <code>{html.escape(model_path)}</code>. Methods: {', '.join(rep.fits)}. Total time {rep.timings.get('total', 0):.0f} s.</p>")
    h.append("<h2>Findings</h2>")
    for category, label, text in found:
        cls = "ok" if label is None else "bad"
        h.append(f"<div class='finding'><b>{html.escape(category)}</b>: <span class='{cls}'>{html.escape((label + ': ' if label else '') + text)}</span></div>")
    if clean:
        h.append(f"<div class='finding'><b>none found</b>: <span class='ok'>{html.escape(', '.join(clean))}</span></div>")
    for n in rep.loo_notes:
        h.append(f"<div class='finding bad'>{html.escape(n)}</div>")
    for n in rep.notes:
        h.append(f"<div class='finding note'>{html.escape(n)}</div>")
    for key, df in rep.tables.items():
        h.append(f"<h2>{html.escape(TABLE_TITLES.get(key, key))}</h2>")
        shown = long_comparison(df) if key in ("comparison", "latent") else _flat_columns(df)
        h.append(shown.to_html(float_format=lambda v: f"{v:.4g}", na_rep="", border=0))
    for key, data in images.items():
        b64 = base64.b64encode(data).decode()
        h.append(f"<h2>{html.escape(key.replace('_', ' '))}</h2><figure><img alt='{key}' src='data:image/png;base64,{b64}'><figcaption>{html.escape(CAPTIONS.get(key, ''))}</figcaption></figure>")
    h.append("</body></html>")
    path = os.path.join(out, "report.html")
    with open(path, "w") as fh:
        fh.write("\n".join(h))
    files.append(path)
    return files
