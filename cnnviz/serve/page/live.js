// cnnviz live page: draw, upload or pick an image; every answer of the server is drawn here.
// Plain JavaScript, nothing loaded from the network. window.cnnviz holds the last answer
// (the browser test reads it).
"use strict";

const state = {
  model: null, zoom: 1, base: null, drawing: false, last: null, lastPoint: null,
  inFlight: false, pending: false, explainWanted: false, requests: 0, answers: 0,
  inked: false, selected: {}, training: null, epochsSeen: [],
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

const DRAWING_SCALE = 4;  // a drawing goes to the server at 4× the model's side

function baseIsBlank() { return state.base.every((v) => v === 0); }

function drawingRows() {
  // what the person drew (over the base image), in gray at 4× the model's side, the canvas
  // downsampled by the browser (area-smoothed); the server prepares it for the model
  const [h, w] = inputShape(), c = channels(), H = h * DRAWING_SCALE, W = w * DRAWING_SCALE;
  const small = document.createElement("canvas");
  small.width = W; small.height = H;
  const ctx = small.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage($("base"), 0, 0, W, H);
  const base = ctx.getImageData(0, 0, W, H).data;
  ctx.clearRect(0, 0, W, H);
  ctx.drawImage($("ink"), 0, 0, W, H);
  const ink = ctx.getImageData(0, 0, W, H).data;
  const rows = [];
  for (let y = 0; y < H; y++) {
    const row = [];
    for (let x = 0; x < W; x++) {
      const q = 4 * (y * W + x), grey = (base[q] + base[q + 1] + base[q + 2]) / 3;
      row.push(Math.min(255, Math.round(grey + ink[q + 3])));
    }
    rows.push(row);
  }
  return rows;
}

function basePixels() {
  const [h, w] = inputShape(), c = channels(), rows = [];
  for (let y = 0; y < h; y++) {
    const row = [];
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * c, px = Array.from(state.base.slice(p, p + c));
      row.push(c === 1 ? px[0] : px);
    }
    rows.push(row);
  }
  return rows;
}

function requestBody() {
  // a drawing when there is ink, else the base image (a sample or an upload) as it is
  if (state.inked) return JSON.stringify({ drawing: drawingRows() });
  return JSON.stringify({ pixels: basePixels() });
}

function showRaw() {
  // the drawing straight at the model's size, unprepared: beside the input as fed
  const [h, w] = inputShape(), raw = $("raw");
  raw.width = w; raw.height = h;
  const ctx = raw.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, w, h);
  ctx.drawImage($("base"), 0, 0, w, h);
  ctx.drawImage($("ink"), 0, 0, w, h);
}

function setBase(payload) {
  state.base = decode(payload);
  const ink = $("ink").getContext("2d");
  ink.clearRect(0, 0, $("ink").width, $("ink").height);
  state.inked = false;
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
  state.inked = true;
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
    if (!upload && !state.inked && baseIsBlank()) { showEmpty(); return; }
    const body = upload || requestBody();
    const drawn = !upload && state.inked;
    showRaw();
    const type = upload ? (upload.type || "application/octet-stream") : "application/json";
    const answer = await post("/api/predict", body, type);
    if (upload) setBase(answer.input);
    state.last = answer; state.answers += 1;
    showAnswer(answer);
    $("fed-note").textContent = drawn ? `drawing ${state.model.drawing}` : "";
    status(answer.note || "");
    if (explain && $("explain-on").checked) {
      const why = await post("/api/explain", JSON.stringify({ pixels: toRows(answer.input) }),
        "application/json");
      state.explanation = why;
      showExplanation(why, answer.input);
    }
    await showMaps(answer.input);
  } catch (error) {
    status(String(error.message || error), true);
  } finally {
    state.inFlight = false;
    if (state.pending) send();
  }
}

function showEmpty() {
  // a blank canvas is no input: nothing is predicted
  state.last = null;
  $("bars").innerHTML = "";
  $("prediction").textContent = "";
  $("explain").innerHTML = "";
  $("fed-note").textContent = "";
  for (const id of ["fed", "raw"]) $(id).getContext("2d").clearRect(0, 0, $(id).width, $(id).height);
  status("draw something: the canvas is empty");
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
  // spatial (h, w, C): C tiles upscaled to ≥ 40 px, as many to a row as the width holds;
  // a vector (C,): one 16 px cell per unit, wrapped to the width
  const width = Math.max(200, $("layers").clientWidth - 4), pad = 2;
  if (shape.length === 3) {
    const [h, w, n] = shape, z = Math.max(1, Math.ceil(40 / Math.max(h, w)));
    const cols = Math.max(1, Math.min(n, Math.floor((width + pad) / (w * z + pad))));
    return { h, w, n, cols, rows: Math.ceil(n / cols), z };
  }
  const n = shape[shape.length - 1], z = 16;
  const cols = Math.max(1, Math.min(n, Math.floor((width + pad) / (z + pad))));
  return { h: 1, w: 1, n, cols, rows: Math.ceil(n / cols), z };
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
      div.innerHTML = "<h3></h3><canvas tabindex=\"0\" role=\"img\"></canvas>";
      box.appendChild(div);
      setupMapClicks(div.querySelector("canvas"), layer.name, layer.shape);
    }
    const g = layerGeometry(layer.shape), v = values[i];
    const [lo, hi] = range(v);
    div.querySelector("h3").textContent =
      `${layer.name}  (${layer.shape.join("×")}; min ${lo.toFixed(3)}, max ${hi.toFixed(3)})`;
    const canvas = div.querySelector("canvas");
    const unit = layer.shape.length === 3 ? "maps" : "units";
    canvas.setAttribute("aria-label", `${layer.name}: ${g.n} ${unit}` +
      (layer.shape.length === 3 ? ` of ${g.h}×${g.w}` : "") +
      `, from ${lo.toFixed(3)} to ${hi.toFixed(3)}; arrow keys choose one, Enter opens its card`);
    drawMosaic(canvas, v, g, mode === "global" ? global : [lo, hi], mode === "map");
    const chosen = state.selected[layer.name];
    if (chosen !== undefined) outline(canvas, chosen);
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
  canvas.dataset.tile = JSON.stringify([tw + pad, th + pad, g.cols, g.n, g.z, g.h, g.w]);
}

function mapAt(canvas, event) {
  const [tw, th, cols, n] = JSON.parse(canvas.dataset.tile || "[1,1,1,0]");
  const box = canvas.getBoundingClientRect();
  const x = (event.clientX - box.left) * canvas.width / box.width;
  const y = (event.clientY - box.top) * canvas.height / box.height;
  const m = Math.floor(y / th) * cols + Math.floor(x / tw);
  return m >= 0 && m < n ? m : null;
}

function positionAt(canvas, event) {
  // the (row, column) inside the clicked map tile, in the map's own positions
  const [tw, th, , , z, h, w] = JSON.parse(canvas.dataset.tile || "[1,1,1,0,1,1,1]");
  const box = canvas.getBoundingClientRect();
  const x = (event.clientX - box.left) * canvas.width / box.width;
  const y = (event.clientY - box.top) * canvas.height / box.height;
  const row = Math.floor((y % th) / z), col = Math.floor((x % tw) / z);
  return row < h && col < w ? [row, col] : null;
}

async function traceValue(name, m, at) {
  // the arithmetic behind one value, for the input the page shows now
  if (!state.last) return;
  const body = { pixels: toRows(state.last.input), layer: name, map: m, at };
  const panel = $("trace");
  try {
    const t = await post("/api/trace", JSON.stringify(body), "application/json");
    panel.hidden = false;
    Object.assign(panel.dataset, { layer: name, map: m, at: at ? at.join(",") : "",
                                   traced: t.traced, reported: t.reported, ok: t.ok });
    $("trace-summary").textContent = t.summary;
    $("trace-summary").className = t.ok ? "" : "error";
    $("trace-steps").textContent = t.steps.map((s) => `${s.layer}: ${s.text}`).join("\n");
    drawImage($("trace-input"), state.last.input);
    if (t.field) {
      const [top, left, bottom, right] = t.field, ctx = $("trace-input").getContext("2d");
      ctx.strokeStyle = "#dd8452"; ctx.lineWidth = 1;
      ctx.strokeRect(left + 0.5, top + 0.5, right - left - 1, bottom - top - 1);
    }
    const layer = state.model.layers.find((l) => l.name === name), link = $("trace-card");
    link.hidden = !(layer && layer.card);
    if (layer && layer.card) link.href = layer.card.replace("map-000", `map-${String(m).padStart(3, "0")}`);
  } catch (error) { status(String(error.message || error), true); }
}

function mapText(name, m) {
  // a map (or unit) in words: its layer, index and values for the current input
  const layer = state.last && state.last.layers.find((l) => l.name === name);
  if (!layer) return `${name} ${m}`;
  const v = decode(layer), n = layer.shape[layer.shape.length - 1];
  if (layer.shape.length !== 3) return `${name} unit ${m}: ${v[m].toFixed(3)}`;
  let sum = 0, hi = -Infinity, count = v.length / n;
  for (let p = 0; p < count; p++) { const x = v[p * n + m]; sum += x; if (x > hi) hi = x; }
  return `${name} map ${m}: mean ${(sum / count).toFixed(3)}, max ${hi.toFixed(3)}`;
}

function outline(canvas, m) {
  const [tw, th, cols, n] = JSON.parse(canvas.dataset.tile || "[1,1,1,0]");
  if (m >= n) return;
  const ctx = canvas.getContext("2d");
  ctx.strokeStyle = "#dd8452"; ctx.lineWidth = 2;
  ctx.strokeRect((m % cols) * tw + 1, Math.floor(m / cols) * th + 1, tw - 4, th - 4);
}

function openCard(name, m) {
  const layer = state.model.layers.find((l) => l.name === name);
  if (layer && layer.card) {
    window.open(layer.card.replace("map-000", `map-${String(m).padStart(3, "0")}`), "_blank");
  }
}

function setupMapClicks(canvas, name, shape) {
  const layer = state.model.layers.find((l) => l.name === name);
  canvas.addEventListener("mousemove", (e) => {
    const m = mapAt(canvas, e);
    canvas.title = m === null ? "" : mapText(name, m) + " (click: the arithmetic of this value)";
  });
  canvas.addEventListener("click", (e) => {
    const m = mapAt(canvas, e);
    if (m === null) return;
    state.selected[name] = m;
    traceValue(name, m, shape.length === 3 ? positionAt(canvas, e) : null);
  });
  canvas.addEventListener("keydown", (e) => {
    const [, , cols, n] = JSON.parse(canvas.dataset.tile || "[1,1,1,0]");
    const now = state.selected[name] ?? -1;
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols, Home: -n, End: n }[e.key];
    if (step !== undefined) {
      e.preventDefault();
      const m = Math.min(n - 1, Math.max(0, now < 0 ? 0 : now + step));
      state.selected[name] = m;
      if (state.last) drawLayers(state.last.layers);
      $("map-said").textContent = mapText(name, m);
    } else if (e.key === "Enter" && now >= 0) {
      openCard(name, now);
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

// ---- a run that is training: its curves, and every answer again after each epoch -------------

function drawCurve(canvas, history, metric) {
  const ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  const series = [[history[metric] || [], "#1f77b4", []], [history[`val_${metric}`] || [], "#ff7f0e", [5, 4]]];
  const values = series.flatMap(([v]) => v);
  const n = Math.max(...series.map(([v]) => v.length), 1);
  if (!values.length) return;
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi === lo) { lo -= 0.5; hi += 0.5; }
  const x = (i) => pad + (n === 1 ? 0.5 : i / (n - 1)) * (w - 2 * pad);
  const y = (v) => h - pad - (v - lo) / (hi - lo) * (h - 2 * pad);
  ctx.fillStyle = "#444"; ctx.font = "11px sans-serif";
  ctx.fillText(`${metric}  ${hi.toFixed(3)}`, 4, 12);
  ctx.fillText(lo.toFixed(3), 4, h - 4);
  ctx.fillText(`epoch ${n}`, w - 60, h - 4);
  for (const [v, colour, dash] of series) {
    ctx.strokeStyle = colour; ctx.setLineDash(dash); ctx.lineWidth = 2; ctx.beginPath();
    v.forEach((value, i) => (i ? ctx.lineTo(x(i), y(value)) : ctx.moveTo(x(i), y(value))));
    ctx.stroke();
  }
  ctx.setLineDash([]);
}

function showTraining(training) {
  if (!training) return;
  $("training-panel").hidden = false;
  const { status, epochs_completed: done, epochs, history } = training;
  $("training-line").textContent = `${status}: epoch ${done} of ${epochs}`;
  drawCurve($("training-accuracy"), history, "accuracy");
  drawCurve($("training-loss"), history, "loss");
}

async function followTraining() {
  // while the run trains: ask for its state every second; a new epoch redraws everything
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    let training;
    try { training = (await (await fetch("/api/training")).json()).training; } catch (error) { continue; }
    if (!training) return;
    const before = state.training ? state.training.epochs_completed : 0;
    state.training = training;
    showTraining(training);
    if (training.epochs_completed !== before) {
      state.epochsSeen.push(training.epochs_completed);
      state.maps = null;  // the layers' maps are made again for the new weights
      if (state.last) { state.explainWanted = true; send(); }
    }
    if (training.status !== "running") return;
  }
}

// ---- where the image lands on each layer's map ----------------------------------------------

const TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"];

async function showMaps(input) {
  if (!$("maps-on").checked || state.model.samples === null) return;
  if (!state.maps) {
    $("maps-line").textContent = "making the layers' maps of the test images (once)…";
    const response = await fetch("/api/geometry");
    const maps = await response.json();
    if (!response.ok) { $("maps-line").textContent = maps.error || response.statusText; return; }
    state.maps = maps;
    $("maps-line").textContent = `Each layer's map of ${maps.images.toLocaleString()} ` +
      `${maps.split} images: their places on the layer's first two principal axes, one colour ` +
      "per class. The black ring is this image.";
    $("maps-legend").innerHTML = maps.classes.map((name, k) =>
      `<span><i class="swatch" style="background:${TAB10[k % 10]}"></i>${name}</span>`).join(" ");
  }
  const placed = await post("/api/geometry", JSON.stringify({ pixels: toRows(input) }),
    "application/json");
  state.placed = placed;
  drawMaps(state.maps, placed);
}

function drawMaps(maps, placed) {
  const box = $("maps");
  box.innerHTML = "";
  maps.layers.forEach((layer, i) => {
    const points = decode(layer), at = placed.layers[i].at, n = points.length / 2;
    let [x0, x1, y0, y1] = [at[0], at[0], at[1], at[1]];
    for (let k = 0; k < n; k++) {
      x0 = Math.min(x0, points[2 * k]); x1 = Math.max(x1, points[2 * k]);
      y0 = Math.min(y0, points[2 * k + 1]); y1 = Math.max(y1, points[2 * k + 1]);
    }
    const size = 360, pad = 14, sx = (size - 2 * pad) / ((x1 - x0) || 1);
    const sy = (size - 2 * pad) / ((y1 - y0) || 1);
    const px = (x) => pad + (x - x0) * sx, py = (y) => size - pad - (y - y0) * sy;
    const canvas = document.createElement("canvas");
    canvas.width = size; canvas.height = size;
    const ctx = canvas.getContext("2d");
    ctx.globalAlpha = 0.6;
    for (let k = 0; k < n; k++) {
      ctx.fillStyle = TAB10[maps.labels[k] % 10];
      ctx.fillRect(px(points[2 * k]) - 1.5, py(points[2 * k + 1]) - 1.5, 3, 3);
    }
    ctx.globalAlpha = 1;
    ctx.beginPath();
    ctx.arc(px(at[0]), py(at[1]), 9, 0, 2 * Math.PI);
    ctx.lineWidth = 4; ctx.strokeStyle = "#000"; ctx.stroke();
    ctx.lineWidth = 2; ctx.strokeStyle = "#fff"; ctx.stroke();
    canvas.dataset.layer = layer.name;
    canvas.dataset.at = JSON.stringify([px(at[0]), py(at[1])]);
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `${layer.name}: this image at (${at[0].toFixed(2)}, ` +
      `${at[1].toFixed(2)}) among the test images`);
    const fig = document.createElement("figure");
    const caption = document.createElement("figcaption");
    const [a, b] = layer.share.map((v) => `${Math.round(100 * v)}%`);
    caption.textContent = `${layer.name} · PC1 ${a}, PC2 ${b} · ${layer.features}`;
    fig.append(canvas, caption);
    box.appendChild(fig);
  });
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
  if (m.samples === null) { $("sample-controls").hidden = true; $("maps-panel").hidden = true; }
  else $("sample-index").max = m.samples - 1;
  setupCanvas();
  setupDrawing();
  $("upload").addEventListener("change", () => {
    const file = $("upload").files[0];
    if (file) send(file);
  });
  $("sample-load").addEventListener("click", () => loadSample(`index=${$("sample-index").value}`));
  $("sample-class-load").addEventListener("click", () => loadSample(`class=${$("sample-class").value}`));
  $("maps-on").addEventListener("change", () => {
    if (!$("maps-on").checked) $("maps").innerHTML = "";
    else if (state.last) showMaps(state.last.input).catch((e) => status(String(e.message || e), true));
  });
  for (const radio of document.querySelectorAll('input[name="scale"]')) {
    radio.addEventListener("change", () => { if (state.last) drawLayers(state.last.layers); });
  }
  let resized = null;  // the mosaics follow the window's width
  window.addEventListener("resize", () => {
    clearTimeout(resized);
    resized = setTimeout(() => { if (state.last) drawLayers(state.last.layers); }, 150);
  });
  state.ready = true;
  state.training = m.training;
  showTraining(m.training);
  if (m.training && m.training.status === "running") followTraining();
  await send();
}

start().catch((error) => status(`cannot start: ${error.message || error}`, true));
