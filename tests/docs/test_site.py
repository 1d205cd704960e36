"""The documentation site builds with no warnings (broken links and anchors included) and loads nothing remote."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tests.docs.fixtures import REPO

# An asset the browser would fetch from elsewhere: a script, stylesheet, font or image by absolute URL.
_REMOTE_ASSET = re.compile(r"""(?:<script[^>]*\ssrc|<link[^>]*\shref|<img[^>]*\ssrc)=["'](?:https?:)?//""", re.I)
_REMOTE_CSS = re.compile(r"""url\(\s*["']?(?:https?:)?//|@import\s+["']?(?:url\()?(?:https?:)?//""", re.I)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed: pip install -c constraints.txt -e '.[docs]' (make test does)")
def test_site_builds_strict_and_offline(tmp_path):
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "WARNING" not in done.stderr, done.stderr[-4000:]
    pages = sorted(site.rglob("*.html"))
    for page in ("index.html", "reference/cli.html", "reference/http.html", "reference/python.html"):
        assert (site / page).is_file(), f"{page} was not built"
    cli = (site / "reference/cli.html").read_text(encoding="utf-8")
    assert "recog train" in cli and "recog faces enroll" in cli
    http = (site / "reference/http.html").read_text(encoding="utf-8")
    assert "/v1/models/{name}:predict" in http
    remote = [f"{p.relative_to(site)}: {m.group(0)}" for p in pages
              for m in _REMOTE_ASSET.finditer(p.read_text(encoding="utf-8"))]
    remote += [f"{p.relative_to(site)}: {m.group(0)}" for p in site.rglob("*.css")
               for m in _REMOTE_CSS.finditer(p.read_text(encoding="utf-8"))]
    assert not remote, "remote assets in the built site:\n" + "\n".join(remote[:20])


def test_readme_links_resolve():
    """The README is not part of the site build, so its relative links are checked here."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from docs_reference import CLI_PAGE, HTTP_PAGE  # pages that exist only in the built site
    finally:
        sys.path.remove(str(REPO / "scripts"))
    generated = {f"docs/{CLI_PAGE}", f"docs/{HTTP_PAGE}"}
    text = (REPO / "README.md").read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        path = target.split("#", 1)[0]
        if not path or re.match(r"[a-z]+:", path):  # an anchor in the README itself, or a URL
            continue
        if path not in generated and not (REPO / path).exists():
            broken.append(target)
    assert not broken, f"README.md links to missing files: {broken}"
