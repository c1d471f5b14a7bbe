"""Executed notebook → one self-contained HTML file that opens offline.

nbconvert's ``lab`` template links require.js, MathJax and mermaid from CDNs;
the report template below drops those (reports need none of them: BokehJS and
Panel's CSS are already inlined by :func:`forestguard.reports.setup`) so the
file works from an e-mail attachment or an S3 link with no network.
"""

from __future__ import annotations

import re

import nbformat
from jinja2 import DictLoader
from nbconvert import HTMLExporter
from nbconvert.preprocessors import Preprocessor, TagRemovePreprocessor
from papermill.execute import ERROR_MARKER_TAG as PAPERMILL_ERROR_TAG
from traitlets import Unicode

#: Cells with this tag (Jupyter Book's convention) are notes for notebook users, not part of the report.
REMOVE_TAG = "remove-cell"

_TEMPLATE_NAME = "forestguard_report.html.j2"
_TEMPLATE = """\
{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block data_png scoped -%}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}"
 alt="{{ ((output | get_metadata('alt', 'image/png')) or 'Report figure') | escape_html }}"
{%- set width = output | get_metadata('width', 'image/png') -%}
{%- if width is not none %} width="{{ width | escape_html }}"{%- endif %}>
</div>
{%- endblock data_png -%}
{%- block extra_css -%}
<style type="text/css">
  body.jp-Notebook { max-width: 1000px; margin: 0 auto; padding: 24px 16px; }
  .jp-OutputArea-output, .jp-Cell { break-inside: avoid; }
  .jp-RenderedHTMLCommon table { font-size: 12px; }
</style>
{%- endblock extra_css -%}
"""

#: ``<script src=…>`` or ``<link href=…>`` pointing off the page: what an offline report must not have.
EXTERNAL_RESOURCE = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I)


class TidyReport(Preprocessor):
    """Make a failed report read as a report: a heading saying it could not be produced in place
    of papermill's execution notes, and nothing after the cell that raised (its headings would
    be empty). Also drops the empty display placeholders Panel leaves behind."""

    title = Unicode("")

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict) -> tuple[nbformat.NotebookNode, dict]:
        failed = False
        kept = []
        for cell in nb.cells:
            if PAPERMILL_ERROR_TAG in cell.metadata.get("tags", []):
                failed = True
                continue
            if "outputs" in cell:
                cell.outputs = [o for o in cell.outputs if o.get("output_type") != "display_data" or o.get("data")]
            kept.append(cell)
            if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
                break
        if failed:
            notice = f"# {self.title}\n\n**This report could not be produced.** The reason is below; nothing after it was run."
            kept.insert(0, nbformat.v4.new_markdown_cell(notice))
        nb.cells = kept
        return nb, resources


def export_html(nb: nbformat.NotebookNode, *, title: str, show_code: bool = False) -> str:
    """The report page: outputs only (``show_code`` keeps the code), JavaScript and images inline."""
    exporter = HTMLExporter(
        template_name="lab",
        template_file=_TEMPLATE_NAME,
        extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
        exclude_input=not show_code,
        exclude_input_prompt=not show_code,
        exclude_output_prompt=True,
        embed_images=True,
    )
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={REMOVE_TAG}), enabled=True)
    exporter.register_preprocessor(TidyReport(title=title), enabled=True)
    nb = nbformat.from_dict(nb)
    nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb)
    return body


def external_resources(html: str) -> list[str]:
    """Tags that would fetch from the network when the page opens (empty for a good report)."""
    return [match.group(0) for match in EXTERNAL_RESOURCE.finditer(html)]
