// recog web page, anomaly models (visual quality control): the verdict, the score against the
// threshold (normalised: 1.00 = threshold, above fails), the defect regions and the heatmap overlay
// (POST :predict?overlay=true) beside the photo. app.js calls renderAnomaly for models whose task is anomaly.
"use strict";

function renderAnomaly(prediction) {
  const list = document.getElementById("results");
  list.replaceChildren();
  const norm = prediction.normalized_score;
  const verdict = document.createElement("li");
  verdict.className = `verdict ${prediction.verdict}`;
  verdict.textContent = prediction.verdict === "fail" ? "FAIL: defect suspected"
    : prediction.verdict === "pass" ? "PASS" : "no threshold: verdict unknown";
  const score = document.createElement("li");
  const row = document.createElement("div");
  row.className = "row";
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = "anomaly score";
  const value = document.createElement("span");
  value.className = "score";
  value.textContent = norm === null ? prediction.score.toFixed(3)
    : `${norm.toFixed(2)} × threshold (${prediction.score.toFixed(3)} / ${prediction.threshold.toFixed(3)})`;
  row.append(label, value);
  score.appendChild(row);
  if (norm !== null) {  // a gauge from 0 to 2 x threshold, the threshold in the middle
    const track = document.createElement("div");
    track.className = "track gauge";
    const fill = document.createElement("div");
    fill.className = `fill ${prediction.verdict}`;
    fill.style.width = `${Math.min(100, 50 * norm).toFixed(1)}%`;
    track.appendChild(fill);
    score.appendChild(track);
  }
  const regions = document.createElement("li");
  regions.className = "regions";
  regions.textContent = prediction.boxes.length
    ? `${prediction.boxes.length} region(s) above the threshold: ` + prediction.boxes.map(
      (b, i) => `[${b.map((v) => Math.round(v)).join(", ")}] ${prediction.scores[i].toFixed(2)}`).join("; ")
    : "no region above the threshold";
  list.append(verdict, score, regions);
  if (prediction.overlay_png) {
    document.getElementById("heatmap").src = "data:image/png;base64," + prediction.overlay_png;
    document.getElementById("heatmap-caption").textContent =
      "anomaly heatmap: coloured from 0.6 x threshold, red boxes above it";
    document.getElementById("heatmap-figure").hidden = false;
  }
}
