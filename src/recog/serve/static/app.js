// recog web page: pick a model, drop or choose an image, see the top-k labels as bars (a detector's
// boxes: boxes.js), and with "Heatmap" why the model said that (POST :explain, showHeatmap).
// Modes: what a dropped photo is for. This file adds "classify"; search.js adds "search" (an index's
// most similar items as a grid); video.js adds "video" (a live annotated stream; no photo to drop). Each mode has controls #<mode>-controls, an output section, run(file)
// and load() (fill its select from the API).
// Served from this machine only (no CDN); talks to the same origin's /v1 API.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_BYTES_HINT = "Resize the image or send a smaller file.";
let models = [];
const modes = {};
// The photo last sent to :predict in the classify mode and the model that saw it: what a heatmap
// explains (boxes.js asks for one box of it); `ticket` drops answers overtaken by a newer request.
let shown = null;
let heatmapTicket = 0;
const METHOD_NAMES = { gradcam: "Grad-CAM", ig: "Integrated gradients", occlusion: "Occlusion" };

function apiKey() { return sessionStorage.getItem("recog-api-key") || ""; }

function headers() {
  const key = apiKey();
  return key ? { "Authorization": "Bearer " + key } : {};
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() { $("error").hidden = true; $("error").textContent = ""; }

async function problemMessage(resp) {
  let detail = "";
  let code = "";
  try {
    const body = await resp.json();
    detail = body.detail || body.title || "";
    code = body.code || "";
  } catch (e) { detail = resp.statusText; }
  if (resp.status === 401) { $("key-row").hidden = false; }
  if (resp.status === 413 && !detail.includes("Resize")) { detail += " " + MAX_BYTES_HINT; }
  const retry = resp.headers.get("Retry-After");  // 429 / 503: busy, not broken
  if (retry) { detail = `${detail.trim().replace(/\.?$/, ".")} Try again in ${retry} s.`; }
  return `Rejected (${resp.status}${code ? " " + code : ""}): ${detail}`;
}

// GET url and fill the <select> #selectId with its `field` list (value: name, text: label(item));
// returns the list, or null after showing the server's refusal.
async function fillSelect(url, field, selectId, label) {
  const resp = await fetch(url, { headers: headers() });
  if (!resp.ok) { showError(await problemMessage(resp)); return null; }
  clearError();
  const items = (await resp.json())[field];
  $(selectId).replaceChildren(...items.map((item) => {
    const opt = document.createElement("option");
    opt.value = item.name;
    opt.textContent = label(item);
    opt.selected = Boolean(item.default);
    return opt;
  }));
  return items;
}

async function loadModels() {
  models = (await fillSelect("/v1/models", "models", "model", (m) => `${m.name} (${m.num_labels} labels)`)) || models;
  describeModel();
}

function describeModel() {
  const m = models.find((x) => x.name === $("model").value);
  $("model-info").textContent = m ? `${m.task}, ${m.input_size[0]}x${m.input_size[1]} input, ${m.backend} backend, version ${m.version}` : "";
}

function renderResults(prediction) {
  const list = $("results");
  list.replaceChildren();
  for (const t of prediction.top) {
    const li = document.createElement("li");
    const row = document.createElement("div");
    row.className = "row";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = t.label;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = (100 * t.score).toFixed(1) + "%";
    row.append(label, score);
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = Math.max(0.5, 100 * t.score).toFixed(1) + "%";
    track.appendChild(fill);
    li.append(row, track);
    list.appendChild(li);
  }
  if (prediction.ood) {  // out-of-distribution verdict (recog.monitor.ood)
    const o = prediction.ood;
    const li = document.createElement("li");
    li.className = o.unknown ? "ood unknown" : "ood";
    li.textContent = o.unknown === null
      ? `OOD score ${o.score.toFixed(3)} (uncalibrated: ${o.method})`
      : o.unknown
        ? `Unknown input: stranger than ${(100 * o.score).toFixed(1)}% of validation images — the labels above are unreliable`
        : `In distribution (OOD score ${o.score.toFixed(3)}, threshold ${o.threshold})`;
    list.appendChild(li);
  }
}

// Show the dropped file in the mode's output section and POST it to url; returns the JSON answer, or
// null after showing the server's refusal (or that it could not be reached).
async function postImage(url, file, ids) {
  clearError();
  $(ids.output).hidden = false;
  $(ids.preview).src = URL.createObjectURL(file);
  const size = file.size < 1024 ? `${file.size} B` : `${(file.size / 1024).toFixed(0)} KB`;
  $(ids.name).textContent = `${file.name} · ${size}`;
  $(ids.timing).textContent = "working…";
  const form = new FormData();
  form.append("image", file, file.name);
  let resp;
  try {
    resp = await fetch(url, { method: "POST", body: form, headers: headers() });
  } catch (e) {
    resp = null;
  }
  $(ids.timing).textContent = "";
  if (resp === null || !resp.ok) {
    $(ids.output).hidden = true;
    showError(resp === null ? "The server could not be reached, or it closed the connection (a file over the size limit?)."
                            : await problemMessage(resp));
    return null;
  }
  return resp.json();
}

// A heatmap of the photo in `shown` (POST :explain with `query`: target=LABEL for a classifier, box=K
// for a detector) under the photo, next to the results; what(e) names what it explains. The figure's
// data-state is "working" until the overlay is shown ("done"; data-box: the explained box); a refusal
// (a method the model cannot use, 429/503 when the server is busy) hides it and shows the server's message.
async function showHeatmap(query, what) {
  if (!shown) return;
  const ticket = ++heatmapTicket;
  const figure = $("heatmap-figure");
  const method = $("explain-method").value;
  clearError();
  figure.dataset.state = "working";
  delete figure.dataset.box;
  $("heatmap").removeAttribute("src");
  $("heatmap-caption").textContent = "explaining…";
  figure.hidden = false;
  const form = new FormData();
  form.append("image", shown.file, shown.file.name);
  const params = new URLSearchParams({ method, output: "overlay", ...query });
  const url = `/v1/models/${encodeURIComponent(shown.name)}:explain?${params}`;
  const resp = await fetch(url, { method: "POST", body: form, headers: headers() }).catch(() => null);
  const message = resp === null ? "The server could not be reached for the heatmap."
    : resp.ok ? null : await problemMessage(resp);
  const body = message === null ? await resp.json() : null;
  if (ticket !== heatmapTicket) return;  // a newer photo or box was asked for meanwhile
  if (message !== null) {
    figure.hidden = true;
    delete figure.dataset.state;
    showError(`Heatmap: ${message}`);
    return;
  }
  const e = body.explanations[0];
  $("heatmap").src = "data:image/png;base64," + e.overlay_png;
  $("heatmap-caption").textContent = `${METHOD_NAMES[e.method] || e.method} ${what(e)}: bright is where the evidence for it lies`;
  if (e.box_index !== undefined) figure.dataset.box = String(e.box_index);
  figure.dataset.state = "done";
}

// boxes.js: explain box k of the detections shown (the same index :predict listed them with).
function explainBox(k) {
  showHeatmap({ box: String(k) }, (e) => `of box #${e.box_index} ${e.target} (${(100 * e.score).toFixed(0)}%)`);
}

async function classify(file) {
  const name = $("model").value;
  if (!file) return;
  if (!name) { showError("No model is loaded on this server."); return; }
  $("results").replaceChildren();
  $("heatmap-figure").hidden = true;
  shown = null;
  heatmapTicket++;  // an explanation still in flight belongs to the previous photo
  const topk = Math.min(20, Math.max(1, parseInt($("topk").value, 10) || 5));
  const model = models.find((m) => m.name === name);
  const anomaly = model && model.task === "anomaly";  // anomaly.js: verdict, score and heatmap overlay
  $("results-title").textContent = anomaly ? "Inspection" : model && model.task === "detect" ? "Detections" : "Top labels";
  const started = performance.now();
  const body = await postImage(`/v1/models/${encodeURIComponent(name)}:predict?` + (anomaly ? "overlay=true" : `top_k=${topk}`),
                               file, { output: "output", preview: "preview", name: "filename", timing: "timing" });
  if (body === null) return;
  $("timing").textContent = `(${(performance.now() - started).toFixed(0)} ms)`;
  if (anomaly) { renderAnomaly(body.predictions[0]); return; }
  shown = { file, name };
  const prediction = body.predictions[0];
  renderResults(prediction);
  if (!$("explain").checked || !model) return;
  if (model.task === "classify") showHeatmap({ target: prediction.label }, (e) => `for ${e.target}`);
  if (model.task === "detect" && prediction.boxes.length) (window.pickBox || explainBox)(0);  // top box; click another
}

// The drop zone (#drop, #file) calls onFile with the chosen file; the key row (#api-key) stores a key
// for this tab and calls reload.
function wireInputs(onFile, reload) {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { onFile(e.target.files[0]); e.target.value = ""; });
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) onFile(e.dataTransfer.files[0]); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
  $("key-save").addEventListener("click", () => {
    sessionStorage.setItem("recog-api-key", $("api-key").value.trim());
    $("key-row").hidden = true;
    reload();
  });
}

function currentMode() { return modes[$("mode").value] || modes.classify; }

function switchMode() {
  clearError();
  for (const [name, m] of Object.entries(modes)) {
    $(`${name}-controls`).hidden = m !== currentMode();
    $(m.output).hidden = true;
    if (m !== currentMode() && m.stop) m.stop();
  }
  $("drop").hidden = Boolean(currentMode().noDrop);  // the video mode shows a stream, not a dropped photo
  currentMode().load();
}

function setup() {
  modes.classify = { run: classify, load: loadModels, output: "output" };
  if (modes[location.hash.slice(1)]) $("mode").value = location.hash.slice(1);  // /#search, /#video
  wireInputs((file) => currentMode().run(file), () => currentMode().load());
  $("model").addEventListener("change", describeModel);
  $("mode").addEventListener("change", switchMode);
  switchMode();
}

document.addEventListener("DOMContentLoaded", setup);
