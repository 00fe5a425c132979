// What the two enlarge pages share — the served one (app.js here) and the in-browser one (`enlarge export --web`):
// the status line, the file drop, the size mode, and the before/after comparison.
"use strict";

const SLIDER_START = 50;                   // percent of the width showing the original
const TICK_MS = 100;                       // how often the elapsed time is redrawn while enlarging
// How the original is laid over the output so both show the same scene, per fit.
const BEFORE_FIT = { contain: "fill", stretch: "fill", cover: "cover", pad: "contain" };

const $ = (id) => document.getElementById(id);

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

// Dropping a file on the drop zone or choosing one calls `chooseFile(file)`.
function setUpDrop(chooseFile) {
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

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function roundHalfUp(value) {
  return Math.floor(value + 0.5);
}

// Show the scale field or the size fields, as the mode says, then call `changed()`.
function setUpMode(changed) {
  const show = () => {
    const bySize = mode() === "size";
    $("scale-fields").hidden = bySize;
    $("size-fields").hidden = !bySize;
    changed();
  };
  for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", show);
  for (const id of ["scale", "width", "height", "fit"]) $(id).addEventListener("input", changed);
}

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
  setSplit(SLIDER_START);
}

// The "before" image laid over the output as the fit places the input; the compare box takes the output's shape.
function showComparison(inputUrl, outputUrl, [width, height]) {
  $("after").src = outputUrl;
  const before = $("before");
  before.src = inputUrl;
  before.style.objectFit = mode() === "size" && $("width").value && $("height").value
    ? BEFORE_FIT[$("fit").value] : "fill";
  $("compare").style.aspectRatio = `${width} / ${height}`;
  setSplit(SLIDER_START);
}

// Unless `problem` (what is wrong with the form, or null) stops it, run `work(phase, progress, started)` with the
// form locked (`state.busy`, then `updateButton()`), the progress bar shown and the elapsed time ticking in the
// status line beside `phase.name`; an error becomes the status.
async function runBusy(state, updateButton, problem, firstPhase, work) {
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
  const phase = { name: firstPhase };
  const timer = setInterval(() => {
    setStatus(`${phase.name}… ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }, TICK_MS);
  try {
    await work(phase, progress, started);
  } catch (error) {
    setStatus(`Error: ${error.message || error}`, true);
  } finally {
    clearInterval(timer);
    progress.hidden = true;
    state.busy = false;
    updateButton();
  }
}

// Take `file` as the input: its preview, `state.file`, `state.inputUrl` and `state.inputSize` (null until the
// browser has read it, and where it cannot); `changed()` once the size is known or the browser gave up, when
// `unreadable` says what that means for the page.
function showInput(state, file, unreadable, changed) {
  if (!file) return;
  if (state.inputUrl) URL.revokeObjectURL(state.inputUrl);
  state.file = file;
  state.inputUrl = URL.createObjectURL(file);
  state.inputSize = null;
  const image = $("input-image");
  image.onload = () => {
    state.inputSize = [image.naturalWidth, image.naturalHeight];
    $("input-info").textContent = `${file.name}: ${image.naturalWidth} × ${image.naturalHeight} px, ${formatBytes(file.size)}`;
    changed();
  };
  image.onerror = () => {
    $("input-info").textContent = `${file.name}: ${formatBytes(file.size)} ${unreadable}`;
    changed();
  };
  image.src = state.inputUrl;
  $("input-preview").hidden = false;
  $("result").hidden = true;
  setStatus("Ready: choose the size and model, then Enlarge.");
}
