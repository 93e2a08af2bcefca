// cnnviz live page: draw, upload or pick an image; every answer of the server is drawn here.
// Plain JavaScript, nothing loaded from the network. window.cnnviz holds the last answer
// (the browser test reads it).
"use strict";

const state = {
  model: null, zoom: 1, base: null, drawing: false, last: null, lastPoint: null,
  inFlight: false, pending: false, explainWanted: false, requests: 0, answers: 0,
};
window.cnnviz = state;

const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
const DIVERGING = [[33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247],
  [253, 219, 199], [239, 138, 98], [178, 24, 43]];

const $ = (id) => document.getElementById(id);

function colour(table, t) {
  const x = Math.min(1, Math.max(0, t)) * (table.length - 1);
  const i = Math.min(table.length - 2, Math.floor(x)), f = x - i;
  return table[i].map((c, k) => c + f * (table[i + 1][k] - c));
}

function decode(payload) {
  if (typeof payload.data !== "string") return Float32Array.from(payload.data.flat(Infinity));
  const bytes = Uint8Array.from(atob(payload.data), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "dim error" : "dim";
}

// ---- the input: a base image (a sample or an upload) plus ink drawn over it -------------

function inputShape() { return state.model.input.shape; }

function setupCanvas() {
  const [h, w] = inputShape();
  state.zoom = Math.max(1, Math.floor(280 / Math.max(h, w)));
  for (const id of ["base", "ink"]) {
    $(id).width = w * state.zoom;
    $(id).height = h * state.zoom;
  }
  $("fed").width = w; $("fed").height = h;
  $("fed").style.width = `${w * Math.max(1, Math.floor(140 / Math.max(h, w)))}px`;
  state.base = new Float32Array(h * w * channels());
  drawBase();
}

function channels() { const s = inputShape(); return s.length === 3 ? s[2] : 1; }

function drawBase() {
  const [h, w] = inputShape(), c = channels(), z = state.zoom;
  const small = document.createElement("canvas");
  small.width = w; small.height = h;
  const ctx = small.getContext("2d"), img = ctx.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) img.data[4 * p + k] = state.base[p * c + (c === 3 ? k : 0)];
    img.data[4 * p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const big = $("base").getContext("2d");
  big.imageSmoothingEnabled = false;
  big.drawImage(small, 0, 0, w * z, h * z);
}

function fedPixels() {
  // base + ink, the ink downsampled to the model's size by the browser (area-smoothed)
  const [h, w] = inputShape(), c = channels();
  const small = document.createElement("canvas");
  small.width = w; small.height = h;
  const ctx = small.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage($("ink"), 0, 0, w, h);
  const ink = ctx.getImageData(0, 0, w, h).data;
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = [];
    for (let x = 0; x < w; x++) {
      const p = y * w + x, a = ink[4 * p + 3];
      const px = [];
      for (let k = 0; k < c; k++) px.push(Math.min(255, Math.round(state.base[p * c + k] + a)));
      row.push(c === 1 ? px[0] : px);
    }
    rows.push(row);
  }
  return rows;
}

function setBase(payload) {
  state.base = decode(payload);
  const ink = $("ink").getContext("2d");
  ink.clearRect(0, 0, $("ink").width, $("ink").height);
  drawBase();
}

function stroke(event) {
  const box = $("ink").getBoundingClientRect();
  const point = [event.clientX - box.left, event.clientY - box.top];
  const ctx = $("ink").getContext("2d");
  ctx.strokeStyle = "#fff";
  ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.lineWidth = parseFloat($("pen").value) * state.zoom;
  ctx.beginPath();
  const from = state.lastPoint || point;
  ctx.moveTo(from[0], from[1]);
  ctx.lineTo(point[0] + 0.01, point[1]);
  ctx.stroke();
  state.lastPoint = point;
}

function setupDrawing() {
  const ink = $("ink");
  ink.addEventListener("pointerdown", (e) => {
    state.drawing = true; state.lastPoint = null;
    ink.setPointerCapture(e.pointerId);
    stroke(e); schedule(false);
  });
  ink.addEventListener("pointermove", (e) => { if (state.drawing) { stroke(e); schedule(false); } });
  const end = () => { if (state.drawing) { state.drawing = false; state.lastPoint = null; schedule(true); } };
  ink.addEventListener("pointerup", end);
  ink.addEventListener("pointercancel", end);
  $("clear").addEventListener("click", () => {
    state.base.fill(0); setBase({ data: Array.from(state.base), shape: [state.base.length] });
    schedule(true);
  });
  const pen = () => { $("pen-value").textContent = `${$("pen").value} px`; };
  $("pen").addEventListener("input", pen); pen();
}

// ---- talking to the server ----------------------------------------------------------------

let timer = null;
function schedule(withExplain) {
  state.explainWanted = state.explainWanted || withExplain;
  clearTimeout(timer);
  state.scheduled = true;
  timer = setTimeout(() => { state.scheduled = false; send(); }, 40);  // debounced: one request per pause of the pen
}

async function post(url, body, type) {
  const response = await fetch(url, { method: "POST", body, headers: { "Content-Type": type } });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

async function send(upload = null) {
  if (state.inFlight) {  // one request at a time; the newest waiting one goes next
    state.pending = true;
    if (upload) state.pendingUpload = upload;
    return;
  }
  if (!upload && state.pendingUpload) { upload = state.pendingUpload; }
  state.pendingUpload = null;
  state.inFlight = true; state.pending = false;
  const explain = state.explainWanted || upload !== null;
  state.explainWanted = false;
  state.requests += 1;
  try {
    const body = upload || JSON.stringify({ pixels: fedPixels() });
    const type = upload ? (upload.type || "application/octet-stream") : "application/json";
    const answer = await post("/api/predict", body, type);
    if (upload) setBase(answer.input);
    state.last = answer; state.answers += 1;
    showAnswer(answer);
    status(answer.note || "");
    if (explain && $("explain-on").checked) {
      const why = await post("/api/explain", JSON.stringify({ pixels: toRows(answer.input) }),
        "application/json");
      state.explanation = why;
      showExplanation(why, answer.input);
    }
  } catch (error) {
    status(String(error.message || error), true);
  } finally {
    state.inFlight = false;
    if (state.pending) send();
  }
}

function toRows(payload) {
  const v = decode(payload), [h, w] = payload.shape, c = payload.shape[2] || 1;
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = [];
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * c;
      row.push(c === 1 ? v[p] : Array.from(v.slice(p, p + c)));
    }
    rows.push(row);
  }
  return rows;
}

async function loadSample(query) {
  try {
    const response = await fetch(`/api/sample?${query}`);
    const sample = await response.json();
    if (!response.ok) throw new Error(sample.error);
    setBase(sample.pixels);
    $("sample-index").value = sample.index;
    status(`test image ${sample.index}: ${sample.class}`);
    state.explainWanted = true;
    await send();
  } catch (error) { status(String(error.message || error), true); }
}

// ---- drawing the answers ------------------------------------------------------------------

function showAnswer(answer) {
  drawImage($("fed"), answer.input);
  const p = answer.prediction, classes = state.model.classes;
  const low = Math.min(0, ...p.scores), high = Math.max(...p.scores, 1e-9);
  $("bars").innerHTML = "";
  p.scores.forEach((s, k) => {
    const row = document.createElement("div");
    row.className = "bar" + (k === p.predicted ? " top" : "");
    row.dataset.cls = k;
    const left = ((Math.min(s, 0) - low) / (high - low)) * 100;
    const width = (Math.abs(s) / (high - low)) * 100;
    row.innerHTML = `<span class="name"></span><span class="track"><span class="fill" ` +
      `style="left:${left}%;width:${width}%"></span></span><span class="value">${s.toFixed(3)}</span>`;
    row.querySelector(".name").textContent = classes[k] ?? String(k);
    $("bars").appendChild(row);
  });
  $("prediction").textContent = classes[p.predicted] ?? String(p.predicted);
  drawLayers(answer.layers);
}

function drawImage(canvas, payload) {
  const v = decode(payload), [h, w] = payload.shape, c = payload.shape[2] || 1;
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) img.data[4 * p + k] = v[p * c + (c === 3 ? k : 0)];
    img.data[4 * p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function scaleMode() { return document.querySelector('input[name="scale"]:checked').value; }

function range(values) {
  let lo = Infinity, hi = -Infinity;
  for (const x of values) { if (x < lo) lo = x; if (x > hi) hi = x; }
  return [lo, hi];
}

function layerGeometry(shape) {
  // spatial (h, w, C): C tiles in a near-square grid, each upscaled to ≥ 24 px;
  // a vector (C,): one cell per unit, 32 to a row
  if (shape.length === 3) {
    const [h, w, n] = shape, cols = Math.ceil(Math.sqrt(n));
    return { h, w, n, cols, rows: Math.ceil(n / cols), z: Math.max(1, Math.ceil(28 / Math.max(h, w))) };
  }
  const n = shape[shape.length - 1], cols = Math.min(32, n);
  return { h: 1, w: 1, n, cols, rows: Math.ceil(n / cols), z: n > 256 ? 10 : 16 };
}

function drawLayers(layers) {
  const mode = scaleMode();
  const values = layers.map((l) => decode(l));
  const global = range(values.map((v) => range(v)).flat());
  const box = $("layers");
  if (box.children.length !== layers.length) box.innerHTML = "";
  layers.forEach((layer, i) => {
    let div = box.children[i];
    if (!div) {
      div = document.createElement("div");
      div.className = "layer"; div.id = `layer-${layer.name}`;
      div.innerHTML = "<h3></h3><canvas></canvas>";
      box.appendChild(div);
      setupMapClicks(div.querySelector("canvas"), layer.name, layer.shape);
    }
    const g = layerGeometry(layer.shape), v = values[i];
    const [lo, hi] = range(v);
    div.querySelector("h3").textContent =
      `${layer.name}  (${layer.shape.join("×")}; min ${lo.toFixed(3)}, max ${hi.toFixed(3)})`;
    drawMosaic(div.querySelector("canvas"), v, g, mode === "global" ? global : [lo, hi], mode === "map");
  });
}

function drawMosaic(canvas, v, g, [lo, hi], perMap) {
  const pad = 2, tw = g.w * g.z, th = g.h * g.z;
  canvas.width = g.cols * (tw + pad) - pad;
  canvas.height = g.rows * (th + pad) - pad;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(canvas.width, canvas.height);
  for (let m = 0; m < g.n; m++) {
    let a = lo, b = hi;
    if (perMap && g.h * g.w > 1) {
      a = Infinity; b = -Infinity;
      for (let p = 0; p < g.h * g.w; p++) { const x = v[p * g.n + m]; if (x < a) a = x; if (x > b) b = x; }
    }
    const span = b > a ? b - a : 1;
    const oy = Math.floor(m / g.cols) * (th + pad), ox = (m % g.cols) * (tw + pad);
    for (let y = 0; y < g.h; y++) {
      for (let x = 0; x < g.w; x++) {
        const rgb = colour(VIRIDIS, b > a ? (v[(y * g.w + x) * g.n + m] - a) / span : 0);
        for (let dy = 0; dy < g.z; dy++) {
          for (let dx = 0; dx < g.z; dx++) {
            const q = 4 * ((oy + y * g.z + dy) * canvas.width + ox + x * g.z + dx);
            img.data[q] = rgb[0]; img.data[q + 1] = rgb[1]; img.data[q + 2] = rgb[2]; img.data[q + 3] = 255;
          }
        }
      }
    }
  }
  ctx.putImageData(img, 0, 0);
  canvas.dataset.tile = JSON.stringify([tw + pad, th + pad, g.cols, g.n]);
}

function mapAt(canvas, event) {
  const [tw, th, cols, n] = JSON.parse(canvas.dataset.tile || "[1,1,1,0]");
  const box = canvas.getBoundingClientRect();
  const x = (event.clientX - box.left) * canvas.width / box.width;
  const y = (event.clientY - box.top) * canvas.height / box.height;
  const m = Math.floor(y / th) * cols + Math.floor(x / tw);
  return m >= 0 && m < n ? m : null;
}

function setupMapClicks(canvas, name, shape) {
  const layer = state.model.layers.find((l) => l.name === name);
  const unit = shape.length === 3 ? "map" : "unit";
  canvas.addEventListener("mousemove", (e) => {
    const m = mapAt(canvas, e);
    canvas.title = m === null ? "" : `${name} ${unit} ${m}` + (layer.card ? " (click: its card)" : "");
  });
  canvas.addEventListener("click", (e) => {
    const m = mapAt(canvas, e);
    if (m !== null && layer.card) {
      window.open(layer.card.replace("map-000", `map-${String(m).padStart(3, "0")}`), "_blank");
    }
  });
}

function showExplanation(why, input) {
  const box = $("explain");
  box.innerHTML = "";
  for (const map of why.maps) {
    const fig = document.createElement("figure");
    const canvas = document.createElement("canvas");
    canvas.className = "pixelated";
    overlay(canvas, decode(input), input.shape, decode(map), map.method === "saliency");
    canvas.style.width = "140px";
    const caption = document.createElement("figcaption");
    caption.textContent = `${map.method}${map.note ? ` (${map.note})` : ""}`;
    fig.append(canvas, caption);
    box.appendChild(fig);
  }
}

function overlay(canvas, pixels, shape, heat, positive) {
  // the image in grey with the attribution over it: red where it raises the logit, blue
  // where it lowers it (saliency and Grad-CAM are ≥ 0: red only), on a scale centred at 0
  const [h, w] = shape, c = shape[2] || 1;
  canvas.width = w; canvas.height = h;
  const [lo, hi] = range(heat), top = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    let grey = 0;
    for (let k = 0; k < c; k++) grey += pixels[p * c + k] / c;
    const t = heat[p] / top, rgb = colour(DIVERGING, positive ? 0.5 + 0.5 * Math.abs(t) : 0.5 + 0.5 * t);
    const a = Math.min(0.75, Math.abs(t) * 1.2);  // the image stays visible under the map
    for (let k = 0; k < 3; k++) img.data[4 * p + k] = (1 - a) * grey * 0.6 + a * rgb[k];
    img.data[4 * p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// ---- start ---------------------------------------------------------------------------------

async function start() {
  const response = await fetch("/api/model");
  state.model = await response.json();
  const m = state.model;
  document.title = `cnnviz live: ${m.name}`;
  $("model-name").textContent = m.name;
  $("model-line").textContent = `input ${m.input.shape.join("×")}, fed as ${m.input.convention}; ` +
    `${m.layers.length} layers`;
  $("prediction-kind").innerHTML = m.probabilities
    ? "Class probabilities (the network ends in a softmax). Predicted: <b id=\"prediction\"></b>"
    : "Class scores (logits: the network has no softmax, so these are not probabilities). " +
      "Predicted: <b id=\"prediction\"></b>";
  if (m.atlas) $("atlas-link").innerHTML = `<a href="${m.atlas}">the static atlas of this model</a>`;
  else $("atlas-link").textContent = `no atlas yet (cnnviz atlas ${m.name} builds one)`;
  m.classes.forEach((name, k) => {
    const option = document.createElement("option");
    option.value = k; option.textContent = name;
    $("sample-class").appendChild(option);
  });
  if (m.samples === null) $("sample-controls").hidden = true;
  else $("sample-index").max = m.samples - 1;
  setupCanvas();
  setupDrawing();
  $("upload").addEventListener("change", () => {
    const file = $("upload").files[0];
    if (file) send(file);
  });
  $("sample-load").addEventListener("click", () => loadSample(`index=${$("sample-index").value}`));
  $("sample-class-load").addEventListener("click", () => loadSample(`class=${$("sample-class").value}`));
  for (const radio of document.querySelectorAll('input[name="scale"]')) {
    radio.addEventListener("change", () => { if (state.last) drawLayers(state.last.layers); });
  }
  state.ready = true;
  await send();
}

start().catch((error) => status(`cannot start: ${error.message || error}`, true));
