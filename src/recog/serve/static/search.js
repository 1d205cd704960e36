// The web page's "search" mode: pick an index, drop a photo, see the most similar items as a grid.
// Uses the helpers of app.js (loaded first): $, headers, showError, clearError, fillSelect, postImage, modes.
"use strict";

let indexes = [];

async function loadIndexes() {
  const listed = await fillSelect("/v1/indexes", "indexes", "index", (ix) => `${ix.name} (${ix.items} items)`);
  if (listed === null) return;
  indexes = listed;
  if (!indexes.length) showError("This server has no search index yet: build one with `recog search index build FOLDER --name NAME`.");
  describeIndex();
}

function describeIndex() {
  const ix = indexes.find((x) => x.name === $("index").value);
  $("index-info").textContent = ix ? `${ix.model.name}, ${ix.vectors} vectors, ${ix.kind}` : "";
}

function hitCard(index, hit) {
  const li = document.createElement("li");
  const img = document.createElement("img");
  img.alt = hit.id;
  img.loading = "lazy";
  // thumbnails need the API key header, so they are fetched and shown as blob: URLs
  fetch(`/v1/indexes/${encodeURIComponent(index)}/items/${encodeURIComponent(hit.id)}/thumbnail?size=160`,
        { headers: headers() })
    .then((r) => (r.ok ? r.blob() : null))
    .then((b) => { if (b) { img.src = URL.createObjectURL(b); } else { img.classList.add("missing"); } })
    .catch(() => img.classList.add("missing"));
  const id = document.createElement("div");
  id.className = "id";
  id.textContent = hit.id;
  const score = document.createElement("div");
  score.className = "score";
  score.textContent = `similarity ${hit.score.toFixed(3)}`;
  li.append(img, id, score);
  const fields = Object.entries(hit.metadata || {});
  if (fields.length) {
    const meta = document.createElement("div");
    meta.className = "meta muted";
    meta.textContent = fields.map(([k, v]) => `${k}: ${v}`).join(" · ");
    li.appendChild(meta);
  }
  return li;
}

async function search(file) {
  const index = $("index").value;
  if (!file) return;
  if (!index) { showError("Pick an index first."); return; }
  $("hits").replaceChildren();
  const k = Math.min(100, Math.max(1, parseInt($("k").value, 10) || 12));
  const where = $("where").value.trim();
  const started = performance.now();
  const body = await postImage(`/v1/indexes/${encodeURIComponent(index)}:query?k=${k}` +
                               (where ? `&where=${encodeURIComponent(where)}` : ""), file,
                               { output: "search-output", preview: "query-preview", name: "query-name", timing: "search-timing" });
  if (body === null) return;
  const result = body.results[0];
  $("search-timing").textContent = `(${result.hits.length} in ${(performance.now() - started).toFixed(0)} ms${result.exact ? "" : ", approximate"})`;
  for (const hit of result.hits) $("hits").appendChild(hitCard(index, hit));
}

modes.search = { run: search, load: loadIndexes, output: "search-output" };
document.addEventListener("DOMContentLoaded", () => $("index").addEventListener("change", describeIndex));
