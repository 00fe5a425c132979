// The enlarge page: input → model → output over the service's own API (/v1/models, /v1/upscale).
"use strict";

const TOKEN_KEY = "enlarge-token";         // sessionStorage: gone when the tab closes
const SLIDER_START = 50;                   // percent of the width showing the original
const TICK_MS = 100;                       // how often the elapsed time is redrawn while enlarging
const UPLOAD_SHARE = 30;                   // percent of the progress bar the upload fills
// How the original is laid over the output so both show the same scene, per fit.
const BEFORE_FIT = { contain: "fill", stretch: "fill", cover: "cover", pad: "contain" };

const $ = (id) => document.getElementById(id);
const state = { file: null, inputUrl: null, inputSize: null, outputUrl: null, busy: false, modelsLoaded: false };

function token() {
  return $("token").value.trim();
}

function authHeaders() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

// ------------------------------------------------------------------------------------------------ models

async function loadModels() {
  let response;
  try {
    response = await fetch("/v1/models", { headers: authHeaders() });
  } catch (error) {
    $("model-info").textContent = "Could not reach the server.";
    return;
  }
  if (response.status === 401) {
    $("token-field").hidden = false;
    $("model-info").textContent = "Enter the access token to see the models.";
    return;
  }
  if (!response.ok) {
    $("model-info").textContent = `Could not load the models (${response.status}).`;
    return;
  }
  const data = await response.json();
  const select = $("model");
  select.replaceChildren();
  for (const model of data.models.filter((m) => m.available)) {
    const option = new Option(model.name, model.name, false, model.name === data.default);
    option.dataset.description = model.description;
    option.dataset.adaptive = model.adaptive ? "true" : "";
    select.append(option);
  }
  describeModel();
  state.modelsLoaded = true;
  updateButton();
}

// The description of the chosen model, and the adaptive checkbox enabled only for a model that can route.
function describeModel() {
  const option = $("model").selectedOptions[0];
  $("model-info").textContent = option ? option.dataset.description : "No model is available.";
  const routable = Boolean(option && option.dataset.adaptive);
  const adaptive = $("adaptive");
  adaptive.disabled = !routable;
  if (!routable) adaptive.checked = false;
  $("adaptive-hint").textContent = routable
    ? "Spends more effort where the image has detail."
    : "Not available for this model.";
}

// ------------------------------------------------------------------------------------------------ input

function chooseFile(file) {
  if (!file) return;
  if (state.inputUrl) URL.revokeObjectURL(state.inputUrl);
  state.file = file;
  state.inputUrl = URL.createObjectURL(file);
  state.inputSize = null;
  const image = $("input-image");
  image.onload = () => {
    state.inputSize = [image.naturalWidth, image.naturalHeight];
    $("input-info").textContent = `${file.name}: ${image.naturalWidth} × ${image.naturalHeight} px, ${formatBytes(file.size)}`;
    previewSize();
  };
  image.onerror = () => {
    $("input-info").textContent = `${file.name}: ${formatBytes(file.size)} (the browser cannot preview it; the server may still read it)`;
    previewSize();
  };
  image.src = state.inputUrl;
  $("input-preview").hidden = false;
  $("result").hidden = true;
  setStatus("Ready: choose the size and model, then Enlarge.");
  updateButton();
}

function setUpDrop() {
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    chooseFile(event.dataTransfer.files[0]);
  });
  $("file").addEventListener("change", (event) => chooseFile(event.target.files[0]));
}

// ------------------------------------------------------------------------------------------------ size

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function roundHalfUp(value) {
  return Math.floor(value + 0.5);
}

// What the server will make, for the hint only; the response headers give the real size.
function expectedSize() {
  if (!state.inputSize) return null;
  const [w, h] = state.inputSize;
  if (mode() === "scale") {
    const scale = Number($("scale").value);
    return scale > 0 ? [roundHalfUp(w * scale), roundHalfUp(h * scale)] : null;
  }
  const width = Number($("width").value) || null;
  const height = Number($("height").value) || null;
  if (width && height) {
    const fit = $("fit").value;
    if (fit === "stretch" || fit === "pad" || fit === "cover") return [width, height];
    return width * h <= height * w ? [width, Math.max(1, roundHalfUp((h * width) / w))]
                                   : [Math.max(1, roundHalfUp((w * height) / h)), height];
  }
  if (width) return [width, Math.max(1, roundHalfUp((h * width) / w))];
  if (height) return [Math.max(1, roundHalfUp((w * height) / h)), height];
  return null;
}

function previewSize() {
  const size = expectedSize();
  $("size-preview").textContent = size ? `Output about ${size[0]} × ${size[1]} px.` : "";
}

function showMode() {
  const bySize = mode() === "size";
  $("scale-fields").hidden = bySize;
  $("size-fields").hidden = !bySize;
  previewSize();
}

// A message for what is missing, or null when the form can be sent.
function formProblem() {
  if (!state.file) return "Choose an image first.";
  if (mode() === "scale") {
    const scale = Number($("scale").value);
    if (!(scale > 0)) return "The scale must be a number above 0, e.g. 2.5.";
  } else if (!$("width").value && !$("height").value) {
    return "Give a width, a height, or both.";
  }
  return null;
}

function buildForm() {
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  if (mode() === "scale") {
    form.append("scale", $("scale").value);
  } else {
    if ($("width").value) form.append("width", $("width").value);
    if ($("height").value) form.append("height", $("height").value);
    form.append("fit", $("fit").value);
  }
  if ($("model").value) form.append("model", $("model").value);
  form.append("adaptive", $("adaptive").checked ? "true" : "false");
  form.append("format", $("format").value);
  return form;
}

function updateButton() {
  $("go").disabled = state.busy || !state.file || !state.modelsLoaded;
}

// ------------------------------------------------------------------------------------------------ enlarge

function send(form, onUploaded) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/upscale");
    request.responseType = "blob";
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) $("progress").value = (UPLOAD_SHARE * event.loaded) / event.total;
    };
    request.upload.onload = onUploaded;
    request.onload = () => resolve(request);
    request.onerror = () => reject(new Error("the connection to the server failed"));
    request.send(form);
  });
}

async function errorText(request) {
  try {
    const body = JSON.parse(await request.response.text());
    return body.error || `the server answered ${request.status}`;
  } catch {
    return `the server answered ${request.status}`;
  }
}

function outputName(request) {
  const header = request.getResponseHeader("Content-Disposition") || "";
  const match = header.match(/filename="([^"]+)"/);
  return match ? match[1] : "enlarged";
}

async function enlarge(event) {
  event.preventDefault();
  const problem = formProblem();
  if (problem) {
    setStatus(problem, true);
    return;
  }
  state.busy = true;
  updateButton();
  $("result").hidden = true;
  const progress = $("progress");
  progress.hidden = false;
  progress.value = 0;
  const started = performance.now();
  let phase = "Uploading";
  const timer = setInterval(() => {
    setStatus(`${phase}… ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }, TICK_MS);
  try {
    const request = await send(buildForm(), () => {
      phase = "Enlarging";
      progress.removeAttribute("value"); // indeterminate while the server works
    });
    if (request.status === 401) $("token-field").hidden = false;
    if (request.status !== 200) {
      const retry = request.getResponseHeader("Retry-After");
      const text = await errorText(request);
      setStatus(`Error: ${text}${retry ? ` (try again in ${retry} s)` : ""}`, true);
      return;
    }
    showResult(request);
  } catch (error) {
    setStatus(`Error: ${error.message}`, true);
  } finally {
    clearInterval(timer);
    progress.hidden = true;
    state.busy = false;
    updateButton();
  }
}

function showResult(request) {
  if (state.outputUrl) URL.revokeObjectURL(state.outputUrl);
  state.outputUrl = URL.createObjectURL(request.response);
  const model = request.getResponseHeader("X-Enlarge-Model");
  const inputSize = request.getResponseHeader("X-Enlarge-Input-Size");
  const outputSize = request.getResponseHeader("X-Enlarge-Output-Size");
  const seconds = Number(request.getResponseHeader("X-Enlarge-Seconds"));
  $("after").src = state.outputUrl;
  const before = $("before");
  before.src = state.inputUrl;
  before.style.objectFit = mode() === "size" && $("width").value && $("height").value
    ? BEFORE_FIT[$("fit").value] : "fill";
  const [w, h] = outputSize.split("x").map(Number);
  $("compare").style.aspectRatio = `${w} / ${h}`;
  $("fact-model").textContent = model;
  $("fact-size").textContent = `${inputSize.replace("x", " × ")} → ${outputSize.replace("x", " × ")} px`;
  $("fact-time").textContent = `${seconds.toFixed(2)} s on the server`;
  const download = $("download");
  download.href = state.outputUrl;
  download.download = outputName(request);
  download.textContent = `Download ${download.download} (${formatBytes(request.response.size)})`;
  setSplit(SLIDER_START);
  $("result").hidden = false;
  setStatus(`Done: ${outputSize.replace("x", " × ")} px with ${model} in ${seconds.toFixed(2)} s.`);
}

// ------------------------------------------------------------------------------------------------ compare

function setSplit(percent) {
  const value = Math.min(100, Math.max(0, Math.round(percent)));
  const slider = $("slider");
  slider.value = String(value);
  slider.setAttribute("aria-valuetext", `${value}% original, ${100 - value}% enlarged`);
  $("compare").style.setProperty("--split", `${value}%`);
}

function setUpCompare() {
  const slider = $("slider");
  slider.addEventListener("input", () => setSplit(Number(slider.value)));
  const compare = $("compare");
  const follow = (event) => {
    const box = compare.getBoundingClientRect();
    setSplit((100 * (event.clientX - box.left)) / box.width);
  };
  compare.addEventListener("pointerdown", (event) => {
    compare.setPointerCapture(event.pointerId);
    follow(event);
  });
  compare.addEventListener("pointermove", (event) => {
    if (compare.hasPointerCapture(event.pointerId)) follow(event);
  });
}

// ------------------------------------------------------------------------------------------------ start

function start() {
  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("token").addEventListener("change", () => {
    sessionStorage.setItem(TOKEN_KEY, token());
    loadModels();
  });
  setUpDrop();
  setUpCompare();
  for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", showMode);
  for (const id of ["scale", "width", "height", "fit"]) $(id).addEventListener("input", previewSize);
  $("model").addEventListener("change", describeModel);
  $("settings").addEventListener("submit", enlarge);
  setSplit(SLIDER_START);
  loadModels();
}

start();
