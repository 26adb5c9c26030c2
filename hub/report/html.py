"""The report as one self-contained HTML page: inline CSS and SVG, no script, no network.

:func:`render_html` takes the object :func:`hub.report.compute_figures` returned (the same one
``--json`` prints) and fills ``templates/report.html.j2``; the charts come from :mod:`hub.report.svg`.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from hub.report import svg

__all__ = ["FLOW_COLORS", "FLOW_LABELS", "render_html"]

FLOW_LABELS = {"earned": "earned 获得", "redeemed": "redeemed 兑换", "reversed": "reversed 冲正",
               "expired": "expired 过期", "transferred": "transferred 合并转移"}
FLOW_COLORS = {"earned": svg.PALETTE[2], "redeemed": svg.PALETTE[0], "reversed": svg.PALETTE[3],
               "expired": svg.PALETTE[5], "transferred": svg.PALETTE[6]}


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("hub.report", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["number"] = svg.number
    env.filters["lag"] = lag
    return env


def lag(seconds: int) -> str:
    """``90`` → ``1 min``; ``200000`` → ``2 d 7 h``: how long ago, for people."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def charts(figures: dict[str, Any]) -> dict[str, Any]:
    """Every chart of the page as inline SVG, drawn from ``figures``."""
    fans = figures["fans"]
    overlap = figures["overlap"]
    tiers = figures["tiers"]
    points = figures["points"]
    cards = figures["cards"]
    steps = [*tiers["order"], tiers["no_tier"]]
    labels = {**tiers["labels"], tiers["no_tier"]: "未分层"}
    return {
        "fans": svg.bar_rows("fans", "fans per account", [
            (f"{a['platform']} · {a['account_id']}", a["fans"], {"platform": a["platform"], "account": a["account_id"]})
            for a in fans["by_account"]]),
        "degrees": svg.bar_rows("overlap-degree", "people by number of platforms", [
            (f"{d['platforms']} 个平台", d["members"], {"degree": d["platforms"]}) for d in overlap["by_degree"]],
            label_width=90, width=420, color=svg.PALETTE[4]),
        "upset": svg.upset("upset", "people per combination of platforms",
                           sorted(overlap["set_sizes"], key=lambda p: (-overlap["set_sizes"][p], p)),
                           overlap["set_sizes"], overlap["combinations"]),
        "funnels": [(t["platform"], svg.funnel("tiers", f"tier funnel of {t['platform']}", t["platform"],
                                               [(k, labels[k], t["counts"][k]) for k in steps]))
                    for t in tiers["by_platform"]],
        "points": svg.diverging_columns("points", "points over time", points["series"], points["flows"], FLOW_COLORS),
        "cards": svg.split_rows("cards", "cards in step and behind per account", [
            (f"{a['platform']} · {a['account_id']}", a["in_step"], a["behind"],
             {"platform": a["platform"], "account": a["account_id"], "cards": a["cards"]})
            for a in cards["by_account"]], (svg.PALETTE[2], svg.PALETTE[1])),
    }


def render_html(figures: dict[str, Any], *, title: str = "siyu-hub report") -> str:
    """The page for ``figures`` (as returned by :func:`hub.report.compute_figures`).

    :param figures: the report's figures; nothing else is read.
    :param title: the page title.
    """
    template = _environment().get_template("report.html.j2")
    return template.render(f=figures, charts=charts(figures), title=title, flow_labels=FLOW_LABELS,
                           flow_colors=FLOW_COLORS)
