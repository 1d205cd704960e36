// recog web page: pick a model, drop or choose an image, see the top-k labels as bars.
// Served from this machine only (no CDN); talks to the same origin's /v1 API.
"use strict";

const $ = (id) => document.getElementById(id);
const MAX_BYTES_HINT = "Resize the image or send a smaller file.";
let models = [];

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
  return `Rejected (${resp.status}${code ? " " + code : ""}): ${detail}`;
}

async function loadModels() {
  const resp = await fetch("/v1/models", { headers: headers() });
  if (!resp.ok) { showError(await problemMessage(resp)); return; }
  clearError();
  models = (await resp.json()).models;
  const select = $("model");
  select.replaceChildren();
  for (const m of models) {
    const opt = document.createElement("option");
    opt.value = m.name;
    opt.textContent = `${m.name} (${m.num_labels} labels)`;
    if (m.default) opt.selected = true;
    select.appendChild(opt);
  }
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

async function classify(file) {
  clearError();
  if (!file) return;
  const name = $("model").value;
  if (!name) { showError("No model is loaded on this server."); return; }
  $("output").hidden = false;
  $("preview").src = URL.createObjectURL(file);
  const size = file.size < 1024 ? `${file.size} B` : `${(file.size / 1024).toFixed(0)} KB`;
  $("filename").textContent = `${file.name} · ${size}`;
  $("results").replaceChildren();
  $("timing").textContent = "classifying…";
  const form = new FormData();
  form.append("image", file, file.name);
  const topk = Math.min(20, Math.max(1, parseInt($("topk").value, 10) || 5));
  const started = performance.now();
  let resp;
  try {
    resp = await fetch(`/v1/models/${encodeURIComponent(name)}:predict?top_k=${topk}`,
                       { method: "POST", body: form, headers: headers() });
  } catch (e) {
    $("timing").textContent = "";
    showError("The server could not be reached, or it closed the connection (a file over the size limit?).");
    return;
  }
  $("timing").textContent = "";
  if (!resp.ok) {
    $("output").hidden = true;
    showError(await problemMessage(resp));
    return;
  }
  const body = await resp.json();
  $("timing").textContent = `(${(performance.now() - started).toFixed(0)} ms)`;
  renderResults(body.predictions[0]);
}

function setup() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => { classify(e.target.files[0]); e.target.value = ""; });
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) classify(e.dataTransfer.files[0]); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
  $("model").addEventListener("change", describeModel);
  $("key-save").addEventListener("click", () => {
    sessionStorage.setItem("recog-api-key", $("api-key").value.trim());
    $("key-row").hidden = true;
    loadModels();
  });
  loadModels();
}

document.addEventListener("DOMContentLoaded", setup);
