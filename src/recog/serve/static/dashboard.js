// recog dashboard: polls /v1/monitor/{model} and draws plain canvas charts (no library, no CDN).
"use strict";
const $ = (id) => document.getElementById(id);
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

function headers() {
  const key = sessionStorage.getItem("recog-api-key") || "";
  return key ? { "Authorization": "Bearer " + key } : {};
}

function showError(text) { $("error").textContent = text; $("error").hidden = !text; }

async function getJSON(url) {
  const resp = await fetch(url, { headers: headers() });
  if (resp.status === 401) $("key-row").hidden = false;
  const body = await resp.json();
  if (!resp.ok) throw new Error(body.detail || resp.statusText);
  return body;
}

function axes(ctx, w, h, max) {
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#ccc";
  ctx.strokeRect(30, 5, w - 35, h - 20);
  ctx.fillStyle = "#555";
  ctx.font = "10px sans-serif";
  ctx.fillText(max.toPrecision(2), 0, 12);
  ctx.fillText("0", 18, h - 15);
}

function lines(canvas, series, fixedMax) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  const values = series.flatMap((s) => s.values.filter((v) => v !== null));
  const max = fixedMax || Math.max(1e-9, ...values);
  axes(ctx, w, h, max);
  series.forEach((s, k) => {
    ctx.strokeStyle = COLORS[k % COLORS.length];
    ctx.beginPath();
    let started = false;
    s.values.forEach((v, i) => {
      if (v === null) { started = false; return; }
      const x = 30 + (i + 0.5) * (w - 35) / s.values.length;
      const y = h - 15 - (v / max) * (h - 20);
      if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
    });
    ctx.stroke();
  });
}

function stacked(canvas, buckets, labels) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  axes(ctx, w, h, 1);
  const bw = (w - 35) / Math.max(1, buckets.length);
  buckets.forEach((b, i) => {
    const total = Object.values(b.classes).reduce((a, c) => a + c, 0);
    let y = h - 15;
    labels.forEach((lab, k) => {
      const share = total ? (b.classes[lab] || 0) / total : 0;
      const bh = share * (h - 20);
      ctx.fillStyle = COLORS[k % COLORS.length];
      ctx.fillRect(30 + i * bw + 1, y - bh, Math.max(1, bw - 2), bh);
      y -= bh;
    });
  });
}

async function refresh() {
  const name = $("model").value;
  if (!name) return;
  let d;
  try {
    d = await getJSON(`/v1/monitor/${encodeURIComponent(name)}?minutes=${$("minutes").value}`);
    showError(d.error || "");
  } catch (e) { showError(e.message); return; }
  const b = d.buckets;
  lines($("rate"), [{ values: b.map((x) => x.per_minute) }]);
  lines($("latency"), [{ values: b.map((x) => x.latency_p50_ms) }, { values: b.map((x) => x.latency_p95_ms) }]);
  lines($("ood"), [{ values: b.map((x) => x.ood_rate) }], 1);
  const labels = [...new Set(b.flatMap((x) => Object.keys(x.classes)))].sort();
  stacked($("classes"), b, labels);
  $("legend").replaceChildren(...labels.map((lab, k) => {
    const li = document.createElement("li");
    li.style.color = COLORS[k % COLORS.length];
    li.textContent = lab;
    return li;
  }));
  const drift = d.drift ? `${d.drift.status} (p ${d.drift.p_value === null || d.drift.p_value === undefined ? "n/a" : d.drift.p_value.toPrecision(2)}, last ${d.drift.images} predictions)` : "not computed yet (after 500 predictions, then at most every 30 s)";
  const fb = d.feedback.count ? `${(100 * d.feedback.accuracy).toFixed(1)}% right of ${d.feedback.count} with feedback` : "no feedback yet";
  const ood = d.ood_rate === null || d.ood_rate === undefined ? "n/a (no OOD verdicts)" : `${(100 * d.ood_rate).toFixed(1)}%`;
  $("status").textContent = `${d.total} predictions in the span · OOD rate: ${ood} · drift: ${drift} · feedback: ${fb} · log: ${d.log.status}${d.log.reason ? " (" + d.log.reason + ")" : ""}`;
  // the figures as attributes too: tests and scrapers read them without parsing the sentence
  Object.assign($("status").dataset, {
    model: name, total: String(d.total), oodRate: d.ood_rate === null || d.ood_rate === undefined ? "" : d.ood_rate.toFixed(4),
    drift: d.drift ? d.drift.status : "", feedback: String(d.feedback.count), log: d.log.status,
  });
}

async function init() {
  try {
    const models = (await getJSON("/v1/models")).models;
    $("model").replaceChildren(...models.map((m) => new Option(m.name, m.name)));
  } catch (e) { showError(e.message); }
  $("model").addEventListener("change", refresh);
  $("minutes").addEventListener("change", refresh);
  $("key-save").addEventListener("click", () => {
    sessionStorage.setItem("recog-api-key", $("api-key").value.trim());
    $("key-row").hidden = true;
    init();
  });
  refresh();
  setInterval(refresh, 5000);
}

init();
