// The enlarge page: input → model → output over the service's own API (/v1/models, /v1/upscale); page.js has
// what it shares with the in-browser page.
"use strict";

const TOKEN_KEY = "enlarge-token";         // sessionStorage: gone when the tab closes
const UPLOAD_SHARE = 30;                   // percent of the progress bar the upload fills

const state = { file: null, inputUrl: null, inputSize: null, outputUrl: null, busy: false, modelsLoaded: false };

function token() {
  return $("token").value.trim();
}

function authHeaders() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
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
  showInput(state, file, "(the browser cannot preview it; the server may still read it)", previewSize);
  updateButton();
}

// ------------------------------------------------------------------------------------------------ size

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
  await runBusy(state, updateButton, formProblem(), "Uploading", async (phase, progress) => {
    const request = await send(buildForm(), () => {
      phase.name = "Enlarging";
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
  });
}

function showResult(request) {
  if (state.outputUrl) URL.revokeObjectURL(state.outputUrl);
  state.outputUrl = URL.createObjectURL(request.response);
  const model = request.getResponseHeader("X-Enlarge-Model");
  const inputSize = request.getResponseHeader("X-Enlarge-Input-Size");
  const outputSize = request.getResponseHeader("X-Enlarge-Output-Size");
  const seconds = Number(request.getResponseHeader("X-Enlarge-Seconds"));
  showComparison(state.inputUrl, state.outputUrl, outputSize.split("x").map(Number));
  $("fact-model").textContent = model;
  $("fact-size").textContent = `${inputSize.replace("x", " × ")} → ${outputSize.replace("x", " × ")} px`;
  $("fact-time").textContent = `${seconds.toFixed(2)} s on the server`;
  const download = $("download");
  download.href = state.outputUrl;
  download.download = outputName(request);
  download.textContent = `Download ${download.download} (${formatBytes(request.response.size)})`;
  $("result").hidden = false;
  setStatus(`Done: ${outputSize.replace("x", " × ")} px with ${model} in ${seconds.toFixed(2)} s.`);
}

// ------------------------------------------------------------------------------------------------ start

function start() {
  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("token").addEventListener("change", () => {
    sessionStorage.setItem(TOKEN_KEY, token());
    loadModels();
  });
  setUpDrop(chooseFile);
  setUpCompare();
  setUpMode(previewSize);
  $("model").addEventListener("change", describeModel);
  $("settings").addEventListener("submit", enlarge);
  loadModels();
}

start();
