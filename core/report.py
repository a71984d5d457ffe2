"""One self-contained HTML page about one run: candidates x gates, per-group bars, weighted drift,
accuracy against latency and size. Read from the signed entries (``Registry.show``), drawn with plotly.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewise.errors import UsageError
from gatewise.gate_names import MANDATORY_GATES

if TYPE_CHECKING:
    from gatewise.registry import Registry

PASS_COLOUR = "#2e7d32"
FAIL_COLOUR = "#c62828"


def run_versions(registry: Registry, run_id: str) -> list[dict[str, Any]]:
    """Everything signed about each candidate of ``run_id``, parent first; a UsageError when none."""
    shown = [registry.show(info.version) for info in registry.versions() if info.run_id == run_id]
    if not shown:
        raise UsageError(f"no run '{run_id}' in the registry (see `gatewise registry ls`)")
    return sorted(shown, key=lambda v: (v["parent"] is not None, v["number"]))


def _latest(version: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The newest signed result of each gate for one version."""
    results: dict[str, dict[str, Any]] = {}
    for result in version["gate_results"]:
        results[result["gate"]] = result
    return results


def _cell(result: dict[str, Any] | None) -> str:
    if result is None:
        return '<td class="missing">no result</td>'
    value = "-" if result["value"] is None else f"{result['value']:.3f}"
    if result["passed"]:
        return f'<td class="pass" style="background:{PASS_COLOUR};color:white">pass {value}</td>'
    reason = (result.get("details") or {}).get("reason") or result["summary"]
    return (
        f'<td class="fail" style="background:{FAIL_COLOUR};color:white">FAIL {value}'
        f'<div class="reason">{html.escape(str(reason))}</div></td>'
    )


def _gate_table(versions: list[dict[str, Any]]) -> str:
    header = "".join(f"<th>{name}</th>" for name in MANDATORY_GATES)
    rows = []
    for version in versions:
        results = _latest(version)
        label = f"{html.escape(version['candidate'] or '')} ({html.escape(version['version'])})"
        live = " &#9733; promoted" if version["production"] else ""
        if version["status"] != "ok":
            cells = f'<td colspan="{len(MANDATORY_GATES)}" class="errored">errored: {html.escape(str(version["error"]))}</td>'
        else:
            cells = "".join(_cell(results.get(name)) for name in MANDATORY_GATES)
        rows.append(f"<tr><th>{label}{live}</th>{cells}</tr>")
    return f'<table class="gates"><tr><th>candidate</th>{header}</tr>{"".join(rows)}</table>'


def _figure_html(figure: Any) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displayModeBar": False})


def _group_figures(versions: list[dict[str, Any]]) -> list[str]:
    """Per candidate and view: each judged group's primary metric beside the parent's and the champion's."""
    import plotly.graph_objects as go

    figures = []
    for version in versions:
        fairness = _latest(version).get("fairness")
        details = (fairness or {}).get("details") or {}
        metric = details.get("metric", "balanced_accuracy")
        for view, report in (details.get("columns") or {}).items():
            groups = report.get("groups") or {}
            names = list(groups)
            figure = go.Figure()
            for series, key in (("candidate", metric), ("parent", f"parent_{metric}"), ("champion", f"champion_{metric}")):
                values = [groups[g].get(key) for g in names]
                if any(v is not None for v in values):
                    figure.add_bar(name=series, x=names, y=values)
            too_small = [g for g in names if not groups[g].get("judged", True)]
            title = f"{version['candidate']}: {metric} per group of {view}"
            if too_small:
                title += f" (too small to judge: {', '.join(too_small)})"
            figure.update_layout(title=title, barmode="group", height=320, margin={"t": 50, "b": 40})
            figures.append(_figure_html(figure))
    return figures


def _drift_figure(versions: list[dict[str, Any]]) -> str | None:
    import plotly.graph_objects as go

    drift = next((_latest(v).get("drift") for v in versions if _latest(v).get("drift")), None)
    columns = ((drift or {}).get("details") or {}).get("columns") or {}
    if not columns:
        return None
    names = list(columns)
    figure = go.Figure()
    figure.add_bar(name="drift distance", x=names, y=[columns[c].get("value") for c in names])
    figure.add_bar(name="importance weight", x=names, y=[columns[c].get("weight") for c in names])
    figure.add_bar(name="weighted drift", x=names, y=[columns[c].get("weighted_drift") for c in names])
    figure.update_layout(title=f"drift per column, weighted by importance ({versions[0]['candidate']})",
                         barmode="group", height=340, margin={"t": 50, "b": 40})
    return _figure_html(figure)


def _tradeoff_figure(versions: list[dict[str, Any]]) -> str | None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    points = []
    for version in versions:
        accuracy = _latest(version).get("accuracy_regression")
        if accuracy is None:
            continue
        benchmark = (accuracy.get("evidence") or {}).get("benchmark") or {}
        points.append((version["candidate"], accuracy["value"], benchmark.get("p50_ms_batch1"), version["size_bytes"]))
    if not points:
        return None
    metric = ((_latest(versions[0]).get("accuracy_regression") or {}).get("details") or {}).get("metric", "metric")
    figure = make_subplots(rows=1, cols=2, subplot_titles=("against batch-1 p50 latency (ms)", "against file size (kB)"))
    names = [p[0] for p in points]
    figure.add_scatter(x=[p[2] for p in points], y=[p[1] for p in points], text=names, mode="markers+text",
                       textposition="top center", name="latency", row=1, col=1)
    figure.add_scatter(x=[(p[3] or 0) / 1024 for p in points], y=[p[1] for p in points], text=names,
                       mode="markers+text", textposition="top center", name="size", row=1, col=2)
    figure.update_yaxes(title_text=metric)
    figure.update_layout(title=f"{metric} against latency and size", height=380, showlegend=False, margin={"t": 70})
    return _figure_html(figure)


def render_report(run_id: str, versions: list[dict[str, Any]]) -> str:
    """The page: one file, plotly.js inlined once, no network needed to open it."""
    from plotly.offline import get_plotlyjs

    run = next((v["run"] for v in versions if v.get("run")), None) or {}
    promoted = next((v["version"] for v in versions if v["production"]), None)
    sections = [
        f"<h1>gatewise run {html.escape(run_id)}</h1>",
        f"<p>model <b>{html.escape(versions[0]['model'])}</b>; created {html.escape(str(run.get('created', '')))}; "
        f"settings digest <code>{html.escape(str(run.get('settings_digest', ''))[:16])}</code>; "
        f"promoted: <b>{html.escape(promoted or 'nothing')}</b></p>",
        "<h2>Candidates x gates</h2>",
        _gate_table(versions),
    ]
    tradeoff = _tradeoff_figure(versions)
    if tradeoff:
        sections += ["<h2>Accuracy against latency and size</h2>", tradeoff]
    drift = _drift_figure(versions)
    if drift:
        sections += ["<h2>Drift per column</h2>", drift]
    groups = _group_figures(versions)
    if groups:
        sections += ["<h2>Per-group metric against the parent and the champion</h2>", *groups]
    style = (
        "body{font-family:sans-serif;margin:24px;} table.gates{border-collapse:collapse;}"
        "table.gates td,table.gates th{border:1px solid #999;padding:6px;vertical-align:top;max-width:260px;}"
        ".reason{font-size:11px;margin-top:4px;} td.errored{background:#9e9e9e;color:white;}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>gatewise run {html.escape(run_id)}</title>"
        f"<style>{style}</style><script>{get_plotlyjs()}</script></head><body>{''.join(sections)}</body></html>"
    )


def write_report(registry: Registry, run_id: str, path: Path) -> Path:
    """Render ``run_id``'s page to ``path`` (folders made as needed); returns the path."""
    page = render_report(run_id, run_versions(registry, run_id))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
