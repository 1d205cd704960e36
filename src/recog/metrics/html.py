"""Self-contained HTML report pages: one stylesheet, escaping, numbers, inlined images.

Every report (classification, anomaly, detection, audit) is one file that
needs nothing but itself: images are base64 data URIs, the CSS is inline,
there is no script, and a Content-Security-Policy meta tag forbids loading
anything external. Every string from data (labels, paths, model info) goes
through :func:`escape`.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any, Iterable, Sequence

import numpy as np

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;
padding:24px;color:#1d2330;background:#fff;line-height:1.4}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:32px 0 8px;border-bottom:1px solid #dde;
padding-bottom:4px}
table{border-collapse:collapse;font-size:.9em;margin:4px 0}
th,td{padding:3px 10px;border-bottom:1px solid #e6e8ee;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{background:#e5f5ea}tr.worst td{background:#fbe4e4}
.kv th{color:#556;font-weight:600}
figure{margin:0;border:1px solid #e6e8ee;padding:6px;background:#fafbfc;box-sizing:border-box;max-width:720px}
figure img{width:100%;height:auto;display:block}
figcaption{font-size:.85em;color:#556;margin-top:4px}
.plots{display:flex;flex-wrap:wrap;gap:16px}
.plots figure{flex:1 1 calc(50% - 8px);min-width:320px;max-width:calc(50% - 8px)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.grid.wide{grid-template-columns:repeat(auto-fill,minmax(220px,1fr))}
.card{border:1px solid #e6e8ee;padding:6px;font-size:.8em;background:#fafbfc;overflow-wrap:anywhere}
.card img{display:block;margin:0 auto 4px;max-width:100%}
.card .missing{height:80px;display:flex;align-items:center;justify-content:center;color:#a33;background:#f4eeee}
.muted{color:#667}.true,.ok{color:#176b38}.pred,.bad{color:#a12020}
.scroll{max-height:520px;overflow:auto;border:1px solid #e6e8ee}
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def escape(value: Any) -> str:
    """HTML-escape anything (quotes too)."""
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 4) -> str:
    """An integer with thousands separators, a float with ``digits`` decimals, ``None`` as a muted n/a."""
    if value is None:
        return '<span class="muted">n/a</span>'
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def jpeg_uri(image: Any, side: int = 256, quality: int = 85) -> str:
    """A JPEG data URI of an ``(H, W, 3)`` uint8 array or PIL image, its longest side at most ``side``."""
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    img = img.convert("RGB")
    img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return data_uri(buf.getvalue(), "image/jpeg")


def kv_table(rows: Sequence[tuple[str, str]]) -> str:
    """A two-column table: escaped keys, values given as HTML."""
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def page(title: str, body: Iterable[str], *, css: str = "") -> str:
    """The whole document: head (charset, viewport, CSP, :data:`CSS` + ``css``), ``<h1>title``, ``body``."""
    head = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f"<title>{escape(title)}</title><style>{CSS}{css}</style></head><body>")
    return "\n".join([head, f"<h1>{escape(title)}</h1>", *body, "</body></html>\n"])
