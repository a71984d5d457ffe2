"""`gatewise registry report MODEL [VERSION]`: one self-contained HTML page a regulator can read.

Everything on it is read from signed entries (history, show, the policy entries) after a full
`verify` of the registry, whose verdict and head digest the page states. Plain HTML and CSS: no
script, no network, no plotting library (the timeline is a row of proportional bars).
"""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from typing import Any

from gatewise.errors import RegistryError
from gatewise.registry.policy_entries import read_policies
from gatewise.registry.queries import show, story, stored_time

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } .ok { color: #116611; font-weight: bold; } .bad { color: #b00020; font-weight: bold; }
.waived { color: #8a5a00; font-weight: bold; } .mono { font-family: monospace; font-size: .9em; word-break: break-all; }
.timeline { display: flex; height: 2.2em; border: 1px solid #999; margin: .5em 0; }
.timeline div { overflow: hidden; white-space: nowrap; padding: .4em; color: #fff; font-size: .9em; border-right: 1px solid #fff; }
.status { padding: .6em 1em; border-radius: 4px; display: inline-block; }
.status.ok { background: #e6f4e6; } .status.bad { background: #fbe3e6; }
"""
_COLOURS = ("#1f5f99", "#2f8f5b", "#8a4fb3", "#b35f1f", "#3d7f8f", "#7f7f2f")


def model_report(registry: Any, model: str, version: str | None = None) -> str:
    """The page for ``model`` (and, when given, one of its versions in detail), as HTML text."""
    history = registry.history(model, 0)  # an unknown model is a RegistryError naming the known ones
    if version is not None:
        record = registry.version(version)
        if record.model != model:
            raise RegistryError(f"{version} is a version of model {record.model}, not {model}")
    report = registry.verify()
    head = report.head
    policies = {p.seq: p for p in read_policies(registry)}
    in_production = sorted({e["version"] for e in history["events"] if e["event"] != "waiver"},
                           key=lambda v: int(v.rsplit(":v", 1)[-1]))
    detailed = [version] if version is not None else in_production
    stories = {v: story(registry, v, model) for v in in_production}
    shown = {v: show(registry, v) for v in detailed}
    now = stored_time(datetime.now(timezone.utc))
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>gatewise: {escape(model)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Model {escape(model)}: production record</h1>",
        f"<p>Written {now} from the signed ledger. Production now: <b>{escape(history['production'] or 'none')}</b>.</p>",
        _verification(report, head),
        "<h2>Timeline: which version was in production when</h2>",
        _timeline(stories, now),
        "<h2>Decisions: promotions, rollbacks and waivers</h2>",
        _decisions(history, policies),
        "<h2>Gating policies</h2>",
        _policies(policies),
    ]
    for v in detailed:
        parts.append(f"<h2>Gate results of {escape(v)}</h2>")
        parts.append(_gates(shown[v], policies))
    parts.append("</body></html>")
    return "\n".join(parts)


def _verification(report: Any, head: Any) -> str:
    where = f"head entry {head[0]}, digest <span class='mono'>{escape(head[1])}</span>" if head else "an empty ledger"
    if report.ok:
        return (f"<p class='status ok'><span class='ok'>Verified</span>: {report.entries_checked} signed entries, every signature, "
                f"the chain, the key lifecycle and every table checked; this page describes {where}.</p>")
    problems = "".join(f"<li>{escape(str(p))}</li>" for p in report.problems[:20])
    return (f"<div class='status bad'><span class='bad'>Verification FAILED</span> ({len(report.problems)} problem(s)) "
            f"for {where}: do not rely on this page.<ul>{problems}</ul></div>")


def _timeline(stories: dict[str, dict[str, Any]], now: str) -> str:
    periods = sorted(((p["from"], p["until"] or now, v, p) for v, s in stories.items() for p in s["in_production"]))
    if not periods:
        return "<p>No version of this model has been in production.</p>"
    start, end = _seconds(periods[0][0]), _seconds(now)
    span = max(end - start, 1e-6)
    colour = {v: _COLOURS[i % len(_COLOURS)] for i, v in enumerate(stories)}
    bars = "".join(
        f"<div style='flex: 0 1 {max(100 * (_seconds(until) - _seconds(since)) / span, 0.8):.2f}%; background: {colour[v]}' "
        f"title='{escape(v)}'>{escape(v)}</div>"
        for since, until, v, _ in periods
    )
    rows = "".join(
        f"<tr><td>{escape(v)}</td><td>{escape(since)}</td><td>{escape(p['until'] or 'now (live)')}</td>"
        f"<td>{escape(p['by']['event'])} (entry {p['by']['seq']})</td>"
        f"<td>{escape(p['ended_by']['event'] + ' to ' + p['ended_by']['version'] + ' (entry ' + str(p['ended_by']['seq']) + ')') if p['ended_by'] else '-'}</td></tr>"
        for since, until, v, p in periods
    )
    return (f"<div class='timeline'>{bars}</div><table><tr><th>version</th><th>in production from</th><th>until</th>"
            f"<th>by</th><th>ended by</th></tr>{rows}</table>")


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _decisions(history: dict[str, Any], policies: dict[int, Any]) -> str:
    rows = []
    for e in history["events"]:
        who = f"approver {e['approver']}" if e.get("approver") else "the pipeline (all mandatory gates passed)"
        detail = ""
        if e["event"] == "waiver":
            gates = ", ".join(f"{g['gate']} (entry {g['seq']}, failed)" for g in e["gate_results"])
            detail = f"<span class='waived'>waives</span> {escape(gates)}: the results stay failed"
        elif e["event"] == "promotion":
            policy = e.get("policy")
            detail = (f"gated by policy entry {policy['seq']}, set by approver {escape(str(policy['approver']))}" if policy
                      else "gated by the built-in default thresholds (no signed policy)")
            if e.get("waivers"):
                detail += "; relies on waiver entr" + ("y " if len(e["waivers"]) == 1 else "ies ") + ", ".join(str(w["seq"]) for w in e["waivers"])
        else:
            detail = f"restores the promotion in entry {e['restores']['seq']}"
        moved = f" (from {escape(e['previous_version'] or '-')})" if e["event"] != "waiver" else ""
        rows.append(f"<tr><td>{escape(e['time'])}</td><td>{e['seq']}</td><td>{escape(e['event'])} {escape(e['version'])}{moved}</td>"
                    f"<td>{escape(who)}</td><td>{escape(e['reason'] or '')}</td><td>{detail}</td></tr>")
    if not rows:
        return "<p>No decisions recorded.</p>"
    return ("<table><tr><th>time (UTC)</th><th>entry</th><th>decision</th><th>signed by</th><th>reason</th><th>relied on</th></tr>"
            + "".join(rows) + "</table>")


def _policies(policies: dict[int, Any]) -> str:
    if not policies:
        return "<p>No gating policy was signed: runs were held to the thresholds of their own configuration.</p>"
    rows = "".join(
        f"<tr><td>{p.seq}</td><td>{escape(p.time)}</td><td>approver {escape(str(p.approver))}</td><td>{escape(str(p.reason))}</td>"
        f"<td class='mono'>{escape(str(p.policy_digest))}</td></tr>"
        for p in policies.values()
    )
    return f"<table><tr><th>entry</th><th>time (UTC)</th><th>signed by</th><th>reason</th><th>policy digest</th></tr>{rows}</table>"


def _gates(shown: dict[str, Any], policies: dict[int, Any]) -> str:
    latest: dict[str, dict[str, Any]] = {}
    for g in shown["gate_results"]:
        latest[g["gate"]] = g
    waived = {}
    for d in shown.get("decisions", []):
        if d["event"] == "waiver":
            for gate in d["gates"]:
                waived[gate] = d
    cited = next((p.get("policy") for p in shown["promotions"] if p.get("policy")), None)
    policy = (f"policy entry {cited['seq']} (set by approver {escape(str(cited['approver']))}: {escape(str(cited['reason']))})"
              if cited else "the built-in default thresholds" if shown["promotions"] else "the run's own thresholds (never promoted)")
    rows = []
    for gate, g in latest.items():
        if g["passed"]:
            verdict = "<span class='ok'>passed</span>"
        elif gate in waived:
            w = waived[gate]
            verdict = (f"<span class='bad'>failed</span>, <span class='waived'>waived</span> by approver {escape(str(w['approver']))} "
                       f"(entry {w['promotion']['seq']}): {escape(str(w['reason']))}")
        else:
            verdict = "<span class='bad'>failed</span>"
        value = "-" if g["value"] is None else f"{g['value']:.4g}"
        threshold = "-" if g["threshold"] is None else f"{g['threshold']:.4g}"
        rows.append(f"<tr><td>{escape(gate)}</td><td>{verdict}</td><td>{value}</td><td>{threshold}</td>"
                    f"<td>{escape(g['summary'] or '')}</td><td>{g['entry']['seq']}</td></tr>")
    return (f"<p>Held to {policy}. VALUE and THRESHOLD are each gate's headline measurement and its limit (docs/gates.md); "
            "the summary says every check.</p><table><tr><th>gate</th><th>verdict</th><th>value</th><th>threshold</th>"
            "<th>in plain words</th><th>entry</th></tr>" + "".join(rows) + "</table>")
