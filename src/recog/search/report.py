"""The audit's ``report.html``: one self-contained file (inline CSS, thumbnails as data URIs), every value escaped."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from recog.metrics.html import escape, jpeg_uri, page

if TYPE_CHECKING:
    from recog.search.audit import AuditResult

_CSS = """
.badge{display:inline-block;padding:1px 6px;border-radius:8px;font-size:12px;margin-right:4px}
.badge.leak{background:#fdd;color:#900}.badge.conflict{background:#ffe6b3;color:#850}.badge.ok{background:#e6f4e6;color:#264}
.thumbs{display:flex;flex-wrap:wrap;gap:6px}.thumb{font-size:11px;width:104px;word-break:break-all}
.thumb img{width:96px;height:96px;object-fit:contain;background:#eee;display:block}
.bar{background:#7a9cc6;height:10px;display:inline-block}
"""


def _thumb_uri(path: Path, size: int = 96) -> str:
    from recog.search.files import thumbnail

    return jpeg_uri(thumbnail(path, size), size, quality=80)


def _thumb(root: Path, rel: str, caption: str) -> str:
    return (f'<div class="thumb"><img alt="{escape(rel)}" src="{_thumb_uri(root / rel)}">'
            f"{escape(caption)}</div>")


def _table(head: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def render_html(result: "AuditResult", *, max_rows: int = 200) -> str:
    """The report page for an audit result (at most ``max_rows`` per section, the worst first)."""
    root = Path(result.root)
    s = result.summary()
    parts = [f"<p class='muted'>model: {escape(str(result.model or 'given features'))}</p>"]
    rows = [["images", str(s["images"])], ["classes", str(s["classes"])],
            ["corrupt files", str(s["corrupt_files"])],
            ["duplicate groups (exact)", f"{s['duplicate_groups']} ({s['exact_duplicate_groups']})"],
            ["groups across splits (leakage)", str(s["cross_split_groups"])],
            ["groups with conflicting labels", str(s["conflicting_label_groups"])],
            ["likely label errors", str(s["label_issues"])], ["outliers", str(s["outliers"])],
            ["largest / smallest class", str(s["imbalance_ratio"])]]
    parts.append("<h2>Summary</h2>" + _table(["check", "found"], [[escape(a), escape(b)] for a, b in rows]))

    parts.append("<h2>Corrupt or unreadable files</h2>")
    parts.append(_table(["file", "reason"], [[escape(c["path"]), escape(c["reason"])]
                                             for c in result.corrupt[:max_rows]])
                 if result.corrupt else "<p>None: every file decodes.</p>")

    parts.append("<h2>Duplicates and leakage</h2>")
    if result.near_threshold:
        t = result.near_threshold
        parts.append(f"<p class='muted'>near duplicates: {escape(t['unit'])} {t['value']} ({escape(t['chosen'])}: "
                     f"{escape(t['rule'])})</p>")
    if not result.duplicate_groups:
        parts.append("<p>No duplicates found.</p>")
    for g in result.duplicate_groups[:max_rows]:
        badges = (("<span class='badge leak'>across splits: " + escape(", ".join(g["splits"])) + "</span>")
                  if g["across_splits"] else "<span class='badge ok'>one split</span>")
        if g["conflicting_labels"]:
            badges += "<span class='badge conflict'>different labels</span>"
        thumbs = "".join(_thumb(root, m["path"], f"{m['split']}/{m['label']} · {m['match']}"
                                + (f" {m['score']:.3f}" if "score" in m else "") + f" · {m['path']}")
                         for m in g["members"])
        parts.append(f"<p>group {g['group']} ({escape(g['kind'])}) {badges}</p><div class='thumbs'>{thumbs}</div>")

    parts.append("<h2>Likely label errors</h2>")
    m = result.label_method
    parts.append("<p class='muted'>" + escape("; ".join(f"{k}: {v}" for k, v in m.items())) + "</p>")
    if result.label_issues:
        parts.append(_table(["image", "file", "split", "given", "suggested", "p(given)", "p(suggested)"], [
            [f"<img alt='' src='{_thumb_uri(root / i['path'], 64)}' width=64>", escape(i["path"]),
             escape(i["split"]), escape(i["given"]), escape(i["suggested"]), f"{i['p_given']:.3f}",
             f"{i['p_suggested']:.3f}"] for i in result.label_issues[:max_rows]]))
    else:
        parts.append("<p>None flagged.</p>")

    parts.append("<h2>Outliers</h2>")
    if result.outlier_rule:
        parts.append("<p class='muted'>" + escape(f"{result.outlier_rule['score']}; flagged above "
                                                  f"{result.outlier_rule['cutoff']} "
                                                  f"({result.outlier_rule['rule']})") + "</p>")
    if result.outliers:
        parts.append("<div class='thumbs'>" + "".join(
            _thumb(root, o["path"], f"{o['split']}/{o['label']} · {o['score']:.3f}") for o in result.outliers[:max_rows])
            + "</div>")
    else:
        parts.append("<p>None flagged.</p>")

    parts.append("<h2>Class balance</h2>")
    splits = list(result.counts)
    top = max([v for per in result.counts.values() for v in per.values()] + [1])
    parts.append(_table(["class"] + splits, [
        [escape(lab)] + [f"<span class='bar' style='width:{int(100 * result.counts[sp].get(lab, 0) / top)}px'>"
                         f"</span> {result.counts[sp].get(lab, 0)}" for sp in splits] for lab in result.labels]))
    imb = result.imbalance
    notes = [f"largest / smallest class: {imb.get('ratio')}"]
    if imb.get("small_classes"):
        notes.append("under half the mean count: " + ", ".join(imb["small_classes"]))
    for sp, d in imb.get("per_split", {}).items():
        if d["missing_classes"]:
            notes.append(f"{sp} lacks: {', '.join(d['missing_classes'])}")
    if "splits_differ" in imb:
        d = imb["splits_differ"]
        notes.append(f"class shares {'differ' if d['differ_at_0.01'] else 'do not differ'} between splits "
                     f"({d['test']}, p = {d['p_value']})")
    parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    return page(f"Dataset audit: {root.name}", parts, css=_CSS)
