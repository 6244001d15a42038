// The draw-a-digit page: pointer events on a canvas, throttled predictions while drawing.
"use strict";

const INK_WIDTH = 26;        // at the canvas's 280×280: strokes about as thick, relative to the digit, as MNIST's
const MIN_INTERVAL_MS = 120; // at most one request per interval while drawing, and one at a time

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d");
const state = { models: [], model: null, drawing: false, hasInk: false, last: null,
                inFlight: false, pending: false, lastSent: 0, timer: null, generation: 0 };

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  state.hasInk = false;
  state.generation += 1;     // answers to requests sent before the clear are dropped
  showResult(null);
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return { x: (event.clientX - box.left) * pad.width / box.width,
           y: (event.clientY - box.top) * pad.height / box.height };
}

function stroke(from, to) {
  ctx.strokeStyle = "#fff";
  ctx.fillStyle = "#fff";
  ctx.lineWidth = INK_WIDTH;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  if (from.x === to.x && from.y === to.y) {  // a tap: a zero-length line draws nothing
    ctx.arc(to.x, to.y, INK_WIDTH / 2, 0, 2 * Math.PI);
    ctx.fill();
  } else {
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
  }
  state.hasInk = true;
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  state.drawing = true;
  state.last = point(event);
  stroke(state.last, state.last);
  schedule();
});
pad.addEventListener("pointermove", (event) => {
  if (!state.drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of (events.length ? events : [event])) {
    const p = point(e);
    stroke(state.last, p);
    state.last = p;
  }
  schedule();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!state.drawing) return;
    state.drawing = false;
    schedule(true);
  });
}
$("clear").addEventListener("click", clearPad);

// Throttle: one request at a time, at most every MIN_INTERVAL_MS; the final state is always sent.
function schedule(final = false) {
  if (!state.hasInk) return;
  if (state.inFlight) { state.pending = true; return; }
  const wait = final ? 0 : Math.max(0, state.lastSent + MIN_INTERVAL_MS - performance.now());
  clearTimeout(state.timer);
  state.timer = setTimeout(sendCanvas, wait);
}

function sendCanvas() {
  if (!state.hasInk || !state.model) return;
  const generation = state.generation;
  state.inFlight = true;
  state.pending = false;
  state.lastSent = performance.now();
  pad.toBlob((blob) => predict(blob, "image/png", generation), "image/png");
}

async function predict(body, contentType, generation) {
  const url = `/v1/models/${encodeURIComponent(state.model.name)}/predict?include_input=true`;
  const options = { method: "POST", body };
  if (contentType) options.headers = { "Content-Type": contentType };
  try {
    const response = await fetch(url, options);
    const answer = await response.json();
    if (generation !== state.generation) return;
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
    showResult(answer[0]);
  } catch (error) {
    if (generation === state.generation) showError(error.message);
  } finally {
    state.inFlight = false;
    if (state.pending) schedule(!state.drawing);
  }
}

function percent(p) {
  return `${(100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1)} %`;
}

function showResult(result) {
  const best = $("best"), top = $("top"), seen = $("seen"), status = $("status");
  status.textContent = "";
  status.classList.remove("error");
  top.replaceChildren();
  if (!result) {
    best.textContent = "–";
    best.dataset.classIndex = "";
    $("best-prob").textContent = "";
    seen.hidden = true;
    return;
  }
  best.textContent = result.class_name;
  best.classList.toggle("long", result.class_name.length > 3);
  best.dataset.classIndex = String(result.class_index);
  $("best-prob").textContent = percent(result.probability);
  for (const entry of result.top_k) {
    const item = document.createElement("li");
    item.dataset.classIndex = String(entry.class_index);
    const name = Object.assign(document.createElement("span"), { className: "name", textContent: entry.class_name });
    const track = Object.assign(document.createElement("span"), { className: "track" });
    const fill = Object.assign(document.createElement("span"), { className: "fill" });
    fill.style.width = `${Math.max(1, 100 * entry.probability)}%`;
    track.append(fill);
    const pct = Object.assign(document.createElement("span"), { className: "pct", textContent: percent(entry.probability) });
    item.append(name, track, pct);
    top.append(item);
  }
  if (result.input_png) {
    seen.src = `data:image/png;base64,${result.input_png}`;
    seen.hidden = false;
  }
}

function showError(message) {
  const status = $("status");
  status.textContent = message;
  status.classList.add("error");
}

// Upload box (models of objects, e.g. Fashion-MNIST): the file goes as multipart, field "image".
function upload(file) {
  if (!file) return;
  const preview = $("preview");
  if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  const form = new FormData();
  form.append("image", file, file.name);
  state.generation += 1;
  state.inFlight = true;
  predict(form, null, state.generation);
}
$("file").addEventListener("change", (event) => upload(event.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  upload(event.dataTransfer.files[0]);
});

function chooseModel(name) {
  state.model = state.models.find((m) => m.name === name) || state.models[0];
  const m = state.model;
  const drawing = m.input_style === "digit";
  $("draw-box").hidden = !drawing;
  $("upload-box").hidden = drawing;
  const accuracy = m.test_accuracy == null ? "" : ` · test accuracy ${(100 * m.test_accuracy).toFixed(2)} %`;
  $("model-info").textContent = `${m.name}: trained on ${m.dataset} · ${m.parameters.toLocaleString("en")} parameters${accuracy}`;
  $("preview").hidden = true;
  $("file").value = "";
  $("seen-caption").textContent = drawing
    ? "What the model saw: 28×28 pixels, the digit centred as in MNIST."
    : "What the model saw: 28×28 pixels, the object fitted as in Fashion-MNIST.";
  clearPad();
}

async function start() {
  clearPad();
  try {
    const response = await fetch("/v1/models");
    if (!response.ok) throw new Error(`could not list the models (HTTP ${response.status})`);
    state.models = (await response.json()).models;
  } catch (error) {
    showError(error.message);
    return;
  }
  const select = $("model");
  for (const m of state.models) {
    select.append(new Option(m.default ? `${m.name} (default)` : m.name, m.name));
  }
  select.addEventListener("change", () => chooseModel(select.value));
  chooseModel(state.models.find((m) => m.default)?.name);
  document.body.dataset.ready = "true";
}
start();
