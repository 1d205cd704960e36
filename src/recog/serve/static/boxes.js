// recog web page, detect models: draw the predicted boxes over the uploaded image and list the
// objects per class, then each box as a button. Clicking a box (in the picture or the list) asks
// app.js's explainBox for its heatmap, shown beside the detections. Loaded after app.js; wraps its
// renderResults (classification results pass through).
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#e6194b", "#3cb44b", "#0082c8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#d2f53c"];
  const classify = window.renderResults;
  const LISTED = 20;  // boxes listed as buttons; the others are picked in the picture

  // Mark box k as the one explained, in the picture and in the list, and ask for its heatmap.
  function pick(k) {
    for (const el of document.querySelectorAll("#box-layer rect, #results button.box-pick")) {
      const picked = el.dataset.box === String(k);
      el.classList.toggle("picked", picked);
      if (el.dataset.stroke) el.setAttribute("stroke-width", picked ? 2.5 * el.dataset.stroke : el.dataset.stroke);
    }
    explainBox(k);
  }

  function clearBoxes() {
    const old = document.getElementById("box-layer");
    if (old) old.remove();
  }

  function drawBoxes(prediction) {
    const img = document.getElementById("preview");
    const [w, h] = prediction.image_size;
    const layer = document.createElementNS(SVG, "svg");
    layer.id = "box-layer";
    layer.setAttribute("viewBox", `0 0 ${w} ${h}`);
    layer.setAttribute("preserveAspectRatio", "none");
    layer.setAttribute("aria-label", `${prediction.boxes.length} detected objects`);
    const place = () => {  // over the image as laid out (CSSOM, allowed by the page's CSP)
      layer.style.position = "absolute";
      layer.style.left = `${img.offsetLeft}px`;
      layer.style.top = `${img.offsetTop}px`;
      layer.style.width = `${img.clientWidth}px`;
      layer.style.height = `${img.clientHeight}px`;
      layer.style.pointerEvents = "none";
    };
    img.parentElement.style.position = "relative";
    const stroke = Math.max(1, Math.max(w, h) / 300);
    prediction.boxes.forEach((b, i) => {
      const color = COLORS[prediction.class_ids[i] % COLORS.length];
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", b[0]);
      rect.setAttribute("y", b[1]);
      rect.setAttribute("width", Math.max(0, b[2] - b[0]));
      rect.setAttribute("height", Math.max(0, b[3] - b[1]));
      rect.setAttribute("fill", "none");
      rect.setAttribute("stroke", color);
      rect.setAttribute("stroke-width", stroke);
      rect.dataset.box = String(i);
      rect.dataset.stroke = String(stroke);
      rect.style.pointerEvents = "all";  // the layer lets clicks through; its boxes take them
      rect.style.cursor = "pointer";
      rect.addEventListener("click", () => pick(i));
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${prediction.labels[i]} ${(100 * prediction.scores[i]).toFixed(0)}%`;
      rect.appendChild(title);
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", b[0] + stroke);
      text.setAttribute("y", Math.max(b[1] - stroke, 10 * stroke));
      text.setAttribute("fill", color);
      text.setAttribute("font-size", 10 * stroke);
      text.textContent = title.textContent;
      layer.append(rect, text);
    });
    img.parentElement.appendChild(layer);
    if (img.complete) place(); else img.addEventListener("load", place, { once: true });
    window.addEventListener("resize", place);
  }

  function listCounts(prediction) {
    const list = document.getElementById("results");
    list.replaceChildren();
    const total = document.createElement("li");
    total.textContent = `${prediction.boxes.length} object(s) at score ≥ the model's floor`;
    list.appendChild(total);
    for (const [label, n] of Object.entries(prediction.counts)) {
      const li = document.createElement("li");
      li.className = "count";
      li.textContent = `${label}: ${n}`;
      list.appendChild(li);
    }
    if (!prediction.boxes.length) return;
    const hint = document.createElement("li");
    hint.className = "muted";
    hint.textContent = "Click a box for its heatmap:";
    list.appendChild(hint);
    prediction.boxes.slice(0, LISTED).forEach((b, i) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "box-pick";
      button.dataset.box = String(i);
      button.textContent = `#${i} ${prediction.labels[i]} ${(100 * prediction.scores[i]).toFixed(0)}%`;
      button.addEventListener("click", () => pick(i));
      li.appendChild(button);
      list.appendChild(li);
    });
    if (prediction.boxes.length > LISTED) {
      const more = document.createElement("li");
      more.className = "muted";
      more.textContent = `…and ${prediction.boxes.length - LISTED} more: click them in the picture`;
      list.appendChild(more);
    }
  }

  window.pickBox = pick;  // app.js: the top box, when "Heatmap" is ticked

  window.renderResults = function (prediction) {
    clearBoxes();
    if (!prediction || !Array.isArray(prediction.boxes) || !Array.isArray(prediction.class_ids)) {
      return classify(prediction);
    }
    drawBoxes(prediction);
    listCounts(prediction);
  };
})();
