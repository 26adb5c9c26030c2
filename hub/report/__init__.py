"""The report: the figures a brand looks at, as JSON and as one self-contained HTML page.

:func:`compute_figures` reads every figure from the database once; :func:`render_html` draws the
page from that same object (Jinja2 templates in ``templates/``, charts as inline SVG).
"""

from hub.report.figures import compute_figures
from hub.report.html import render_html

__all__ = ["compute_figures", "render_html"]
