// The web page's "video" mode: watch a live annotated stream this server was started with
// (`recog video BUNDLE SOURCE --live`). The page only picks a stream by name: the server never opens a
// URL or a camera a page names. The MJPEG body (multipart/x-mixed-replace) is read with fetch, so the
// API key header goes with it (an <img src> could not send it), cut into JPEGs by each part's
// Content-Length, and each frame shown as a blob: URL.
// Uses the helpers of app.js (loaded first): $, headers, showError, clearError, fillSelect, problemMessage, modes.
"use strict";

let watching = null;  // AbortController of the stream being read

async function loadStreams() {
  const streams = await fillSelect("/v1/video/streams", "streams", "stream", (s) => `${s.name} (${s.model})`);
  if (streams === null) return;
  if (!streams.length) {
    showError("This server streams no video: start one with `recog video BUNDLE SOURCE --live`.");
    return;
  }
  watch();
}

function stopWatching() {
  if (watching) { watching.abort(); watching = null; }
}

function indexOf(buf, seq) {
  outer: for (let i = 0; i + seq.length <= buf.length; i++) {
    for (let j = 0; j < seq.length; j++) { if (buf[i + j] !== seq[j]) continue outer; }
    return i;
  }
  return -1;
}

const HEAD_END = new TextEncoder().encode("\r\n\r\n");

// The first complete part at the start of buf: { jpeg, end }, or null until it has fully arrived.
function nextPart(buf) {
  const sep = indexOf(buf, HEAD_END);
  if (sep < 0) return null;
  const length = /Content-Length: *(\d+)/i.exec(new TextDecoder().decode(buf.subarray(0, sep)));
  if (!length) return null;
  const start = sep + HEAD_END.length;
  const end = start + parseInt(length[1], 10);
  return buf.length < end ? null : { jpeg: buf.slice(start, end), end };
}

function showFrame(jpeg) {
  const img = $("live-frame");
  const old = img.src;
  img.src = URL.createObjectURL(new Blob([jpeg], { type: "image/jpeg" }));
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
}

async function watch() {
  stopWatching();
  const name = $("stream").value;
  if (!name) return;
  const controller = new AbortController();
  watching = controller;
  $("video-output").hidden = false;
  $("live-info").textContent = "connecting…";
  let resp;
  try {
    resp = await fetch(`/v1/video/streams/${encodeURIComponent(name)}/mjpeg`, { headers: headers(), signal: controller.signal });
  } catch (e) {
    if (!controller.signal.aborted) showError("The server could not be reached.");
    return;
  }
  if (!resp.ok) { showError(await problemMessage(resp)); return; }
  clearError();
  const reader = resp.body.getReader();
  const started = performance.now();
  let buf = new Uint8Array(0);
  let frames = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const joined = new Uint8Array(buf.length + value.length);
      joined.set(buf);
      joined.set(value, buf.length);
      buf = joined;
      for (let part = nextPart(buf); part !== null; part = nextPart(buf)) {
        buf = buf.slice(part.end);
        showFrame(part.jpeg);
        frames += 1;
      }
      const seconds = (performance.now() - started) / 1000;
      $("live-info").textContent = `${name}: ${frames} frames, ${(frames / Math.max(seconds, 0.001)).toFixed(1)} fps`;
    }
    $("live-info").textContent += " (the stream ended)";
  } catch (e) {
    if (!controller.signal.aborted) showError("The stream was interrupted.");
  }
}

modes.video = { run: () => {}, load: loadStreams, output: "video-output", noDrop: true, stop: stopWatching };
document.addEventListener("DOMContentLoaded", () => $("stream").addEventListener("change", watch));
