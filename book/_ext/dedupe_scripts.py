"""Sphinx extension: drop repeated <script> entries from each page.

Under jupyter-book 1.0.4 (Sphinx 7.4, sphinx-thebe 0.3.1) the thebe configuration
script and the togglebutton script are registered twice, so every page declares
``const THEBE_JS_URL`` twice and the browser logs a SyntaxError.  This keeps the
first of identical entries (same file, same attributes and inline body).
Loaded through ``sphinx.local_extensions`` in ``_config.yml``.
"""
from __future__ import annotations


def _key(script) -> tuple[str, str]:
    attrs = getattr(script, "attributes", {}) or {}
    # an inline script's filename is None or "" depending on who added it
    return str(getattr(script, "filename", script) or ""), repr(sorted((k, str(v)) for k, v in attrs.items()))


def _dedupe(app, pagename, templatename, context, doctree) -> None:
    seen, kept = set(), []
    for script in context.get("script_files", []):
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
