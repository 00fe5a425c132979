// The enlarge page that runs in the browser: input → model (onnxruntime-web, WebAssembly) → output, on this device.
// It does what the Python tool does (enlarge/sizing.py, upscaler.py, engine/render.py, pixels.py): the same size
// plan, tiles, bands, alpha and Lanczos, so the pixels match the Python ONNX path within one level. page.js (the
// served page's) has what the two pages share.
"use strict";

const SETTINGS = window.ENLARGE_SETTINGS;  // models.js: the models and the engine's constants
const RGB = 3;
const RGBA = 4;
const MAX_8_BIT = 255;
const PIXELS_PER_MP = 1e6;
const LANCZOS_SUPPORT = 3;                 // Pillow's Lanczos: a = 3
const FORMAT_QUALITY = 0.95;               // JPEG / WEBP, as the Python writer's default of 95
const ROWS_PER_STEP = 256;                 // output rows handed to the PNG compressor or a canvas at a time
const MEDIA_TYPES = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp" };
const EXTENSIONS = { png: "png", jpeg: "jpg", webp: "webp" };
const PNG_GRAY_TYPES = new Set([0, 4]);    // PNG colour types that are grayscale (with or without alpha)
const PNG_COLOR_TYPE = { 1: 0, 2: 4, 3: 2, 4: 6 };  // channels → PNG colour type
const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const PNG_COLOR_TYPE_OFFSET = 25;
const PNG_CHUNK_OVERHEAD = 12;             // length, type, CRC
const PNG_ALPHA_CHANNELS = { 4: 2, 6: 4 }; // colour type → channels, for the types with alpha decoded here          // in the file: signature (8), IHDR length + type (8), 9 bytes of IHDR

const state = { file: null, inputUrl: null, inputSize: null, outputUrl: null, busy: false, ready: false };
const sessions = new Map();                // model name → { encoder, grid, phases, points (both or neither) }
const GRAPHS = ["grid", "phases", "points"];  // the decoder graphs a run may go through
const graphRuns = { grid: 0, phases: 0, points: 0 };  // decoder graph runs of the current enlargement
window.enlargeTimings = null;              // the last run's seconds and graph runs, for tests and benchmarks

function base64Bytes(text) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// The page's long loops (tiles and bands, PNG rows) hand the main thread back to the browser at least every
// BREATHE_MS, so it paints the progress bar and answers input (and a test driver) while a large image runs for
// minutes. A MessageChannel message is an ordinary task, run after whatever is queued, without the 4 ms clamp
// that nested timeouts get.
const BREATHE_MS = 100;
const breathing = { last: 0, channel: new MessageChannel(), waiting: [] };
breathing.channel.port1.onmessage = () => breathing.waiting.shift()();

async function breathe() {
  if (performance.now() - breathing.last < BREATHE_MS) return;
  await new Promise((resolve) => {
    breathing.waiting.push(resolve);
    breathing.channel.port2.postMessage(null);
  });
  breathing.last = performance.now();
}

// ------------------------------------------------------------------------------------------------ runtime

// onnxruntime-web from the page's own scripts: the binary from ort/wasm.js, its loader module from a blob: URL
// (file:// allows neither fetch nor import() of files). Threads only where the page is cross-origin isolated.
function setUpRuntime() {
  const wasm = window.ENLARGE_WASM;
  ort.env.wasm.wasmBinary = base64Bytes(wasm.binary);
  ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(new Blob([wasm.loader], { type: "text/javascript" })) };
  window.ENLARGE_WASM = null;
  const threads = self.crossOriginIsolated ? Math.max(1, navigator.hardwareConcurrency || 1) : 1;
  ort.env.wasm.numThreads = threads;
  $("runtime-info").textContent = `onnxruntime-web ${ort.env.versions?.web || ""}, WebAssembly SIMD, ${threads} `
    + `thread${threads === 1 ? "" : "s"}${self.crossOriginIsolated ? "" : " (threads need a cross-origin isolated host)"}.`;
  const select = $("model");
  SETTINGS.models.forEach((model, index) => {
    const option = new Option(model.name, model.name, index === 0, index === 0);
    option.dataset.description = model.description;
    select.append(option);
  });
  describeModel();
  state.ready = true;
  updateButton();
}

// The model's graphs as sessions: the encoder, the grid decoder and, where the model has them, the phase decoder
// and the point decoder (for the strips beside a phase block).
async function modelSessions(model) {
  if (!sessions.has(model.name)) {
    const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
    const create = (graph) => ort.InferenceSession.create(base64Bytes(graph), options);
    const encoder = await create(model.encoder);
    const grid = await create(model.grid);
    const phases = model.phases ? await create(model.phases) : null;
    const points = model.points ? await create(model.points) : null;
    sessions.set(model.name, { encoder, grid, phases, points });
  }
  return sessions.get(model.name);
}

function chosenModel() {
  return SETTINGS.models.find((m) => m.name === $("model").value) || SETTINGS.models[0];
}

function describeModel() {
  const option = $("model").selectedOptions[0];
  $("model-info").textContent = option ? option.dataset.description : "No model is available.";
}

// ------------------------------------------------------------------------------------------------ input

function chooseFile(file) {
  showInput(state, file, "(this browser cannot open it)", () => {
    previewSize();
    updateButton();
  });
  updateButton();
}

// The file's pixels as 8-bit RGBA, EXIF orientation applied, no colour management; whether it is grayscale
// (a PNG says so in its header; other files when every pixel has R = G = B).
async function decode(file) {
  const bitmap = await createImageBitmap(file, {
    premultiplyAlpha: "none", colorSpaceConversion: "none", imageOrientation: "from-image",
  });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();  // its pixels are in the canvas now: one copy fewer of a large input
  const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const header = new Uint8Array(await file.slice(0, PNG_COLOR_TYPE_OFFSET + 1).arrayBuffer());
  const isPng = PNG_SIGNATURE.every((byte, i) => header[i] === byte);
  let gray = isPng && PNG_GRAY_TYPES.has(header[PNG_COLOR_TYPE_OFFSET]);
  if (!isPng) {
    gray = true;
    for (let i = 0; i < rgba.length && gray; i += RGBA) gray = rgba[i] === rgba[i + 1] && rgba[i] === rgba[i + 2];
  }
  let alphaMin = MAX_8_BIT;
  let alphaMax = 0;
  for (let i = RGB; i < rgba.length; i += RGBA) {
    alphaMin = Math.min(alphaMin, rgba[i]);
    alphaMax = Math.max(alphaMax, rgba[i]);
  }
  const alpha = alphaMin === MAX_8_BIT ? "none" : alphaMin === alphaMax ? "constant" : "varying";
  const straight = alpha !== "none" && isPng ? await decodeStraight(file) : null;
  const exact = straight && straight.width === canvas.width && straight.height === canvas.height;
  return { width: canvas.width, height: canvas.height, rgba: exact ? straight.rgba : rgba, gray, alpha,
           constantAlpha: alphaMin / MAX_8_BIT };
}

// Straight (not premultiplied) RGBA as stored in an 8-bit PNG with alpha, decoded here: a canvas (and Chrome's
// ImageDecoder) keep colour premultiplied in 8 bits, which loses up to a level of premultiplied colour, and the
// model passes that on. Null for anything else (other formats, 16 bits, palettes, interlacing, an EXIF chunk):
// those go through the canvas.
async function decodeStraight(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const view = new DataView(bytes.buffer);
  let header = null;
  const data = [];
  for (let pos = PNG_SIGNATURE.length; pos + PNG_CHUNK_OVERHEAD <= bytes.length;) {
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const body = bytes.subarray(pos + 8, pos + 8 + length);
    if (type === "IHDR") header = body;
    else if (type === "IDAT") data.push(body);
    else if (type === "eXIf" || type === "IEND") { if (type === "eXIf") return null; break; }
    pos += PNG_CHUNK_OVERHEAD + length;
  }
  if (!header) return null;
  const head = new DataView(header.buffer, header.byteOffset, header.length);
  const [width, height] = [head.getUint32(0), head.getUint32(4)];
  const channels = PNG_ALPHA_CHANNELS[header[9]];
  if (header[8] !== 8 || !channels || header[12] !== 0) return null;
  const inflated = new Blob(data).stream().pipeThrough(new DecompressionStream("deflate"));
  const raw = new Uint8Array(await new Response(inflated).arrayBuffer());
  const stride = width * channels;
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = pixels.subarray(y * stride, (y + 1) * stride);
    const above = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? row[x - channels] : 0;
      const b = above[x];
      const c = x >= channels ? above[x - channels] : 0;
      row[x] = line[x] + pngPredict(filter, a, b, c);
    }
  }
  const rgba = new Uint8ClampedArray(width * height * RGBA);
  for (let o = 0; o < width * height; o++) {
    for (let k = 0; k < RGB; k++) rgba[o * RGBA + k] = pixels[o * channels + (channels === RGBA ? k : 0)];
    rgba[o * RGBA + RGB] = pixels[o * channels + channels - 1];
  }
  return { width, height, rgba };
}

// The PNG row filters: none, sub, up, average, Paeth (a: left, b: above, c: above left).
function pngPredict(filter, a, b, c) {
  if (filter === 1) return a;
  if (filter === 2) return b;
  if (filter === 3) return (a + b) >> 1;
  if (filter === 4) {
    const p = a + b - c;
    const pa = Math.abs(p - a);
    const pb = Math.abs(p - b);
    const pc = Math.abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
  }
  return 0;
}

// ------------------------------------------------------------------------------------------------ size

// The size plan of enlarge/sizing.py: render size, crop (cover) or pad (pad) box, final size; half-up rounding in
// exact integers where the inputs are integers.
function scaledSide(side, numerator, denominator) {
  return Math.max(1, Math.floor((2 * side * numerator + denominator) / (2 * denominator)));
}

function centred(inner, outer) {
  const left = Math.floor((outer[0] - inner[0]) / 2);
  const top = Math.floor((outer[1] - inner[1]) / 2);
  return { left, top, width: inner[0], height: inner[1] };
}

function request() {
  if (mode() === "scale") return { scale: Number($("scale").value) };
  return { width: Number($("width").value) || null, height: Number($("height").value) || null, fit: $("fit").value };
}

function sizePlan([w, h], asked) {
  const simple = (size) => ({ render: size, final: size, crop: null, pad: null });
  if (asked.scale !== undefined) return simple([roundHalfUp(w * asked.scale), roundHalfUp(h * asked.scale)]);
  const { width, height, fit } = asked;
  if (!height) return simple([width, scaledSide(h, width, w)]);
  if (!width) return simple([scaledSide(w, height, h), height]);
  const target = [width, height];
  if (fit === "stretch") return simple(target);
  const widthTighter = width * h <= height * w;
  const byWidth = [width, scaledSide(h, width, w)];
  const byHeight = [scaledSide(w, height, h), height];
  if (fit === "cover") {
    const render = width * h >= height * w ? byWidth : byHeight;
    const same = render[0] === width && render[1] === height;
    return { render, final: target, crop: same ? null : centred(target, render), pad: null };
  }
  const render = widthTighter ? byWidth : byHeight;
  if (fit === "pad") {
    const same = render[0] === width && render[1] === height;
    return { render, final: target, crop: null, pad: same ? null : centred(render, target) };
  }
  return simple(render);
}

// A message for what is wrong with the request, or null.
function formProblem() {
  if (!state.file) return "Choose an image first.";
  if (!state.inputSize) return "This browser cannot open the chosen file.";
  const asked = request();
  if (asked.scale !== undefined) {
    if (!(asked.scale > 0) || !Number.isFinite(asked.scale)) return "The scale must be a number above 0, e.g. 2.5.";
  } else if (!asked.width && !asked.height) {
    return "Give a width, a height, or both.";
  } else if ((asked.width && (asked.width < 1 || !Number.isInteger(asked.width)))
             || (asked.height && (asked.height < 1 || !Number.isInteger(asked.height)))) {
    return "Width and height are whole numbers of pixels, at least 1.";
  }
  const plan = sizePlan(state.inputSize, asked);
  for (const [what, [w, h]] of [["output", plan.final], ["intermediate render", plan.render]]) {
    if (w < 1 || h < 1) return `The ${what} would be empty; use a larger scale or size.`;
    if (w * h > SETTINGS.max_output_mp * PIXELS_PER_MP) {
      return `The ${what} ${w} × ${h} is above the ${SETTINGS.max_output_mp} MP limit; ask for a smaller size.`;
    }
  }
  return null;
}

function previewSize() {
  const problem = state.inputSize ? formProblem() : null;
  const plan = state.inputSize && !problem ? sizePlan(state.inputSize, request()) : null;
  $("size-preview").textContent = plan ? `Output ${plan.final[0]} × ${plan.final[1]} px.` : problem || "";
}

function updateButton() {
  $("go").disabled = state.busy || !state.ready || !state.file || !state.inputSize;
}

// NAME_{label}.EXT as enlarge/paths.py names outputs: x2.5, 640x480, w800, h600.
function outputName(asked, format) {
  const stem = state.file.name.replace(/\.[^.]*$/, "");
  let label;
  if (asked.scale !== undefined) label = `x${Number(asked.scale.toPrecision(6))}`;
  else if (asked.width && asked.height) label = `${asked.width}x${asked.height}`;
  else label = asked.width ? `w${asked.width}` : `h${asked.height}`;
  return `${stem}_${label}.${EXTENSIONS[format]}`;
}

// ------------------------------------------------------------------------------------------------ phases

// Python's round(): halves go to the even neighbour.
function roundHalfEven(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// The fraction [numerator, denominator] nearest to x with a denominator of at most `most` (the smallest such
// denominator on a tie of equal values): Fraction.limit_denominator wherever the lattice test can pass.
function nearestFraction(x, most) {
  let best = [0, 1];
  let error = Infinity;
  for (let d = 1; d <= most; d++) {
    const n = Math.round(x * d);
    if (Math.abs(x - n / d) < error) {
      error = Math.abs(x - n / d);
      best = [n, d];
    }
  }
  return best;
}

// models/phases.py axis_phases: the regular block [lo, hi) of output centres `coords` (float32, ascending) over n
// LR cells when they lie on a lattice of period p ≤ max_period advancing q cells, with each phase's lower cell
// and offsets to its two neighbour cells; null otherwise. Positions in units of 1/(2p) LR pixels are integers.
function axisPhases(coords, n) {
  const { max_period: maxPeriod, lattice_tolerance: tolerance, shifts } = SETTINGS.phases;
  const m = coords.length;
  if (m < 2) return null;
  const pos = Array.from(coords, (c) => ((c + 1) / 2) * n);
  const [q, p] = nearestFraction((pos[m - 1] - pos[0]) / (m - 1), maxPeriod);
  if (!(q > 0 && q <= maxPeriod)) return null;
  const a = roundHalfEven(pos[0] * 2 * p);
  for (let i = 0; i < m; i++) if (Math.abs(pos[i] - (a + 2 * q * i) / (2 * p)) > tolerance) return null;
  const lo = Math.max(0, Math.ceil((p - a) / (2 * q)));
  const hi = Math.min(m, Math.ceil((2 * p * n - p - a) / (2 * q)));
  if (hi - lo < p) return null;
  const phases = [];
  for (let r = 0; r < p; r++) {
    const x = a + 2 * q * (lo + r);
    const cells = shifts.map((v) => Math.floor((x + v * p) / (2 * p)));
    phases.push({ cell: cells[0], offsets: cells.map((c) => (x - 2 * p * c - p) / p) });
  }
  return { period: p, step: q, lo, hi, phases };
}

// models/phases.py centred_block: output pixels [start, start + periods·period) of an integer-scale axis, whole
// periods between the centres of LR cells first + k and first + k + 1, with each phase's two offsets (float32,
// period × 2); null when the axis is not of an integer scale or holds no whole such period.
function centredBlock(axis) {
  if (!axis || axis.step !== 1) return null;
  const p = axis.period;
  const base = axis.phases[0].cell;
  const found = axis.phases.findIndex((phase) => phase.cell !== base);
  const turn = found < 0 ? p : found;
  const start = axis.lo + (turn % p);
  const periods = Math.floor((axis.hi - start) / p);
  if (periods < 1) return null;
  const offsets = new Float32Array(2 * p);
  for (let r = 0; r < p; r++) offsets.set(axis.phases[(turn + r) % p].offsets, 2 * r);
  return { period: p, start, periods, first: base + (turn < p ? 1 : 0), offsets };
}

// ------------------------------------------------------------------------------------------------ engine

// Float32 arithmetic step by step, as PyTorch computes on float32 tensors: the same coordinates to the bit, which
// matters where a scale puts output centres exactly between two features (×1 on an axis).
const f32 = Math.fround;

// Centres of n output pixels along one axis in [-1, 1] (enlarge/coords.py axis_coords).
function axisCoords(n) {
  const out = new Float32Array(n);
  const radius = 1 / n;
  const first = f32(-1 + radius);
  const step = f32(2 * radius);
  for (let i = 0; i < n; i++) out[i] = f32(first + f32(step * i));
  return out;
}

// Output centres in LR pixels, (c + 1) / 2 · n (engine/tiling.py plan_tiles).
function lrPixels(coords, n) {
  return coords.map((v) => f32(f32(f32(v + 1) / 2) * n));
}

// Cores of at most `tile` along `length`, each widened by `margin` (engine/tiling.py spans).
function spans(length, tile, margin) {
  const out = [];
  for (let start = 0; start < length; start += tile) {
    const stop = Math.min(start + tile, length);
    out.push({ start, stop, padStart: Math.max(0, start - margin), padStop: Math.min(length, stop + margin) });
  }
  return out;
}

// [i0, i1): the output pixels whose centre (in LR pixels, ascending) lies in the span's core.
function ownedRange(centresLr, span) {
  const count = (bound) => centresLr.findIndex((v) => v >= bound);
  const i0 = count(span.start);
  const i1 = count(span.stop);
  return [i0 < 0 ? centresLr.length : i0, i1 < 0 ? centresLr.length : i1];
}

// The decoder runs of one tile, as OnnxGridModel.query_grid makes them: where the model has a phase graph and
// both axes are of an integer scale, the centred block through it in pieces of whole periods (about phase_band
// pixels: bands of periods of rows, of columns where one period of rows is more), the strips above and below the
// block through the grid graph and the strips beside it (a period or so wide) through the point graph; else the
// whole grid through the grid graph. A grid run is a band of rows about grid_band pixels over the wider of its
// columns and the tile's LR width (the graph gathers a band's rows across the whole LR width); a point run a band
// of about grid_band pixels (one run covers a narrow strip's height). Each run: its graph, the tile's output rows
// [r0, r1) and columns [c0, c1); a phase run also the LR cells its periods lie between (first row and column
// cell, and how many).
function tileRuns(ys, xs, h, w, model) {
  const band = model.grid_band;
  const runs = [];
  const bandRuns = (graph, r0, r1, c0, c1, width) => {
    if (r1 <= r0 || c1 <= c0) return;
    const rows = Math.max(1, Math.floor(band / width));
    for (let r = r0; r < r1; r += rows) runs.push({ graph, r0: r, r1: Math.min(r + rows, r1), c0, c1 });
  };
  const gridRuns = (r0, r1, c0, c1) => bandRuns("grid", r0, r1, c0, c1, Math.max(c1 - c0, w));
  const pointRuns = (r0, r1, c0, c1) => bandRuns("points", r0, r1, c0, c1, c1 - c0);
  const by = model.phases ? centredBlock(axisPhases(ys, h)) : null;
  const bx = by ? centredBlock(axisPhases(xs, w)) : null;
  if (!by || !bx) {
    gridRuns(0, ys.length, 0, xs.length);
    return { runs, block: null };
  }
  const cells = Math.max(1, Math.floor(model.phase_band / (by.period * bx.period)));  // LR cells per run
  const across = Math.min(bx.periods, cells);
  const down = Math.max(1, Math.floor(cells / across));
  for (let k = 0; k < by.periods; k += down) {
    const k1 = Math.min(k + down, by.periods);
    for (let j = 0; j < bx.periods; j += across) {
      const j1 = Math.min(j + across, bx.periods);
      runs.push({
        graph: "phases", r0: by.start + k * by.period, r1: by.start + k1 * by.period,
        c0: bx.start + j * bx.period, c1: bx.start + j1 * bx.period,
        rowCells: [by.first + k, k1 - k + 1], colCells: [bx.first + j, j1 - j + 1],
      });
    }
  }
  const [top, bottom] = [by.start, by.start + by.periods * by.period];
  const [left, right] = [bx.start, bx.start + bx.periods * bx.period];
  gridRuns(0, top, 0, xs.length);
  gridRuns(bottom, ys.length, 0, xs.length);
  pointRuns(top, bottom, 0, left);
  pointRuns(top, bottom, right, xs.length);
  return { runs, block: { rowOffsets: by.offsets, colOffsets: bx.offsets } };
}

// The tiles of engine/tiling.py plan_tiles: the LR window each encodes, the output rows and columns it owns, their
// coordinates in the window's own frame and the tile's decoder runs. Planned once per enlargement: the progress
// bar counts its runs and every pass renders it.
function planTiles(lrW, lrH, outW, outH, model) {
  const margin = model.receptive_field;
  const tile = lrW * lrH <= SETTINGS.tile.auto_max_pixels ? Math.max(lrW, lrH) : SETTINGS.tile.size;
  const rows = axisCoords(outH);
  const cols = axisCoords(outW);
  const rowsLr = lrPixels(rows, lrH);
  const colsLr = lrPixels(cols, lrW);
  const jobs = [];
  for (const sy of spans(lrH, tile, margin)) {
    const [r0, r1] = ownedRange(rowsLr, sy);
    for (const sx of spans(lrW, tile, margin)) {
      const [c0, c1] = ownedRange(colsLr, sx);
      if (r1 > r0 && c1 > c0) {
        const [h, w] = [sy.padStop - sy.padStart, sx.padStop - sx.padStart];
        const ys = toLocal(rows.subarray(r0, r1), sy.padStart, h, lrH);
        const xs = toLocal(cols.subarray(c0, c1), sx.padStart, w, lrW);
        jobs.push({ sy, sx, r0, r1, c0, c1, ys, xs, ...tileRuns(ys, xs, h, w, model) });
      }
    }
  }
  return { lrW, lrH, outW, outH, jobs };
}

// Map global coordinates into the crop's own [-1, 1] frame (engine/query.py to_local).
function toLocal(global, start, length, full) {
  const out = new Float32Array(global.length);
  const pixels = lrPixels(global, full);
  for (let i = 0; i < global.length; i++) out[i] = f32(f32(f32(f32(pixels[i] - start) / length) * 2) - 1);
  return out;
}

const floats = (values) => new ort.Tensor("float32", values, [values.length]);

// The point graph's inputs for the grid `rows` × `cols`: each pixel's (y, x) centre and the cell, 1 × Q × 2.
function pointInputs(rows, cols, cell) {
  const count = rows.length * cols.length;
  const coord = new Float32Array(2 * count);
  const cells = new Float32Array(2 * count);
  for (let y = 0; y < rows.length; y++) {
    for (let x = 0; x < cols.length; x++) {
      const q = 2 * (y * cols.length + x);
      coord[q] = rows[y];
      coord[q + 1] = cols[x];
      cells[q] = cell[0];
      cells[q + 1] = cell[1];
    }
  }
  const shape = [1, count, 2];
  return { coord: new ort.Tensor("float32", coord, shape), cell: new ort.Tensor("float32", cells, shape) };
}

// The point graph's 1 × Q × 3 output as 3 planes of Q values, the layout the grid and phase graphs give.
function toPlanes(interleaved, count) {
  const planes = new Float32Array(RGB * count);
  for (let q = 0; q < count; q++) for (let c = 0; c < RGB; c++) planes[c * count + q] = interleaved[q * RGB + c];
  return planes;
}
const cellRun = ([first, count]) => new ort.Tensor("int64", BigInt64Array.from({ length: count },
  (_, i) => BigInt(first + i)), [count]);

// The inputs of `session` among `values` (a graph drops inputs it does not use: bicubic's grid graph the cell).
function feedOf(session, values) {
  return Object.fromEntries(session.inputNames.map((name) => [name, values[name]]));
}

// Enlarge the input with `model` as `plan` (planTiles) says, tile by tile and run by run (engine/render.py).
// `crop(left, top, w, h)` gives a window of the input as 3 float planes in [0, 1]; `sink(row, col, rows, cols,
// planes)` takes each run's unclamped RGB planes; `step()` is called after every decoder run, and the page
// breathes after every encoder and decoder run.
async function render(model, plan, crop, sink, step) {
  const { lrW, lrH, outW, outH } = plan;
  const sessions = await modelSessions(model);
  for (const job of plan.jobs) {
    const { sy, sx, ys, xs, block } = job;
    const h = sy.padStop - sy.padStart;
    const w = sx.padStop - sx.padStart;
    const image = new ort.Tensor("float32", crop(sx.padStart, sy.padStart, w, h), [1, RGB, h, w]);
    const features = await sessions.encoder.run({ image });
    await breathe();
    const shared = { cell: floats(Float32Array.of(((2 / outH) * lrH) / h, ((2 / outW) * lrW) / w)) };
    for (const name of model.features) shared[name] = features[name];
    if (block) {
      shared.row_offsets = new ort.Tensor("float32", block.rowOffsets, [block.rowOffsets.length / 2, 2]);
      shared.col_offsets = new ort.Tensor("float32", block.colOffsets, [block.colOffsets.length / 2, 2]);
    }
    for (const run of job.runs) {
      const [rows, cols] = [ys.subarray(run.r0, run.r1), xs.subarray(run.c0, run.c1)];
      const session = sessions[run.graph];
      let planes;
      if (run.graph === "points") {
        const { rgb } = await session.run(feedOf(session, { ...shared, ...pointInputs(rows, cols, shared.cell.data) }));
        planes = toPlanes(rgb.data, rows.length * cols.length);
      } else {
        const values = { ...shared, ys: floats(rows), xs: floats(cols) };
        if (run.graph === "phases") {
          Object.assign(values, { row_cells: cellRun(run.rowCells), col_cells: cellRun(run.colCells) });
        }
        planes = (await session.run(feedOf(session, values))).rgb.data;
      }
      graphRuns[run.graph]++;
      sink(job.r0 + run.r0, job.c0 + run.c0, rows.length, cols.length, planes);
      step();
      await breathe();
    }
    for (const tensor of Object.values(features)) tensor.dispose();
  }
}

const workUnits = (plan) => plan.jobs.reduce((sum, job) => sum + job.runs.length, 0);

// A window of the decoded image as 3 float planes: colour (premultiplied by alpha when asked) or alpha.
function cropper(decoded, channel) {
  const { rgba, width } = decoded;
  return (left, top, w, h) => {
    const planes = new Float32Array(RGB * w * h);
    const size = w * h;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = ((top + y) * width + left + x) * RGBA;
        const o = y * w + x;
        for (let c = 0; c < RGB; c++) {
          const alpha = rgba[i + RGB] / MAX_8_BIT;
          let value;
          if (channel === "alpha") value = alpha;
          else if (channel === "premultiplied") value = Math.fround(rgba[i + c] / MAX_8_BIT) * alpha;
          else value = rgba[i + c] / MAX_8_BIT;
          planes[c * size + o] = value;
        }
      }
    }
    return planes;
  };
}

// Pillow's antialiased Lanczos on float planes (what enlarge/pixels.py lanczos calls): per axis that changes,
// horizontal first, weights normalised, sums in double.
function lanczosWeights(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = LANCZOS_SUPPORT * filterScale;
  const sinc = (x) => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));
  const filter = (x) => (x > -LANCZOS_SUPPORT && x < LANCZOS_SUPPORT ? sinc(x) * sinc(x / LANCZOS_SUPPORT) : 0);
  const out = [];
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    const first = Math.max(Math.trunc(centre - support + 0.5), 0);
    const last = Math.min(Math.trunc(centre + support + 0.5), inSize);
    const weights = [];
    let total = 0;
    for (let x = first; x < last; x++) {
      const weight = filter((x - centre + 0.5) / filterScale);
      weights.push(weight);
      total += weight;
    }
    out.push({ first, weights: total !== 0 ? weights.map((v) => v / total) : weights });
  }
  return out;
}

function lanczos(planes, channels, [inW, inH], [outW, outH]) {
  let current = planes;
  let w = inW;
  if (outW !== inW) {
    const table = lanczosWeights(inW, outW);
    const next = new Float32Array(channels * outW * inH);
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < inH; y++) {
        const row = c * inW * inH + y * inW;
        for (let x = 0; x < outW; x++) {
          const { first, weights } = table[x];
          let sum = 0;
          for (let k = 0; k < weights.length; k++) sum += current[row + first + k] * weights[k];
          next[c * outW * inH + y * outW + x] = sum;
        }
      }
    }
    current = next;
    w = outW;
  }
  if (outH !== inH) {
    const table = lanczosWeights(inH, outH);
    const next = new Float32Array(channels * w * outH);
    for (let c = 0; c < channels; c++) {
      for (let y = 0; y < outH; y++) {
        const { first, weights } = table[y];
        for (let x = 0; x < w; x++) {
          let sum = 0;
          for (let k = 0; k < weights.length; k++) sum += current[c * w * inH + (first + k) * w + x] * weights[k];
          next[c * w * outH + y * w + x] = sum;
        }
      }
    }
    current = next;
  }
  return current;
}

const clamp01 = (v) => Math.min(1, Math.max(0, v));

// One pass of upscaler.py _resample: the model up to the larger of input and target on each axis (`plan`, null
// when neither axis grows; clamped to [0, 1] unless `clamp` is false), then Lanczos down → 3 float planes of `size`.
async function resamplePass(model, decoded, channel, size, plan, step, clamp = true) {
  const crop = cropper(decoded, channel);
  const grown = plan ? [plan.outW, plan.outH] : [decoded.width, decoded.height];
  let planes;
  if (!plan) {
    planes = crop(0, 0, decoded.width, decoded.height);
  } else {
    const [outW, outH] = grown;
    planes = new Float32Array(RGB * outW * outH);
    const plane = outW * outH;
    await render(model, plan, crop, (row, col, rows, cols, rgb) => {
      for (let c = 0; c < RGB; c++) {
        for (let y = 0; y < rows; y++) {
          for (let x = 0; x < cols; x++) {
            const value = rgb[c * rows * cols + y * cols + x];
            planes[c * plane + (row + y) * outW + col + x] = clamp ? clamp01(value) : value;
          }
        }
      }
    }, step);
  }
  return grown[0] === size[0] && grown[1] === size[1] ? planes : lanczos(planes, RGB, grown, size);
}

// enlarge/fidelity.py: alpha kept inside the input alpha's local range; colour divided by the model's own alpha
// and, where alpha is faint or steps hard, pulled into the range of the visible input colours around it.
// Per axis, the input indices whose centres bracket each output centre (widened by its footprint when shrinking).
function neighbourhood(n, bigN) {
  const first = new Int32Array(bigN);
  const last = new Int32Array(bigN);
  const extra = Math.max(0, n - bigN);
  for (let i = 0; i < bigN; i++) {
    const num = (2 * i + 1) * n - bigN;
    first[i] = Math.min(n - 1, Math.max(0, Math.floor((num - extra) / (2 * bigN))));
    last[i] = Math.min(n - 1, Math.max(0, Math.ceil((num + extra) / (2 * bigN))));
  }
  return { first, last };
}

// How much alpha changes within one pixel of each input pixel (its 3×3 range, edges repeated).
function alphaSteps(alphaIn, w, h) {
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const v = alphaIn[Math.min(h - 1, Math.max(0, y + dy)) * w + Math.min(w - 1, Math.max(0, x + dx))];
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
      out[y * w + x] = hi - lo;
    }
  }
  return out;
}

function unpremultiply(decoded, premultiplied, alphaPlanes, [outW, outH]) {
  const { FAINT, TRUSTED, HARD, INVISIBLE } = {
    FAINT: SETTINGS.fidelity.faint_alpha, TRUSTED: SETTINGS.fidelity.trusted_alpha,
    HARD: SETTINGS.fidelity.hard_step, INVISIBLE: SETTINGS.fidelity.invisible_alpha,
  };
  const { width: w, height: h, rgba } = decoded;
  const alphaIn = new Float32Array(w * h);
  for (let i = 0; i < w * h; i++) alphaIn[i] = rgba[i * RGBA + RGB] / MAX_8_BIT;
  const steps = alphaSteps(alphaIn, w, h);
  const rows = neighbourhood(h, outH);
  const cols = neighbourhood(w, outW);
  const n = outW * outH;
  const colour = new Float32Array(n * RGB);
  const alpha = new Float32Array(n);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const o = y * outW + x;
      let aLo = Infinity;
      let aHi = -Infinity;
      let step = -Infinity;
      const lo = [Infinity, Infinity, Infinity];
      const hi = [-Infinity, -Infinity, -Infinity];
      for (let iy = rows.first[y]; iy <= rows.last[y]; iy++) {
        for (let ix = cols.first[x]; ix <= cols.last[x]; ix++) {
          const i = iy * w + ix;
          aLo = Math.min(aLo, alphaIn[i]);
          aHi = Math.max(aHi, alphaIn[i]);
          step = Math.max(step, steps[i]);
          if (alphaIn[i] > 0) {
            for (let c = 0; c < RGB; c++) {
              const v = rgba[i * RGBA + c] / MAX_8_BIT;
              lo[c] = Math.min(lo[c], v);
              hi[c] = Math.max(hi[c], v);
            }
          }
        }
      }
      const modelAlpha = (alphaPlanes[o] + alphaPlanes[n + o] + alphaPlanes[2 * n + o]) / RGB;
      const a = Math.min(aHi, Math.max(aLo, modelAlpha));
      const divisor = Math.max(modelAlpha, INVISIBLE);
      const trust = clamp01((a - FAINT) / (TRUSTED - FAINT));
      const pull = Math.max(1 - trust, clamp01(step / HARD));
      for (let c = 0; c < RGB; c++) {
        let v = clamp01(Math.max(premultiplied[c * n + o], 0) / divisor);
        if (lo[c] !== Infinity) v = (1 - pull) * v + pull * Math.min(hi[c], Math.max(lo[c], v));
        colour[o * RGB + c] = a >= INVISIBLE ? v : 0;
      }
      alpha[o] = a;
    }
  }
  return { colour, alpha };
}

// The rendered image (render size) as 8-bit interleaved channels: gray (1) or RGB (3), plus alpha if any.
// Opaque enlargements without shrinking go straight from the bands to bytes (no float copy of the output).
async function enlargeChannels(model, decoded, size, progress) {
  const [w, h] = size;
  const n = w * h;
  const lr = [decoded.width, decoded.height];
  const passes = decoded.alpha === "varying" ? 2 : 1;
  const enlarges = w > lr[0] || h > lr[1];
  const plan = enlarges ? planTiles(lr[0], lr[1], Math.max(w, lr[0]), Math.max(h, lr[1]), model) : null;
  const total = passes * (plan ? workUnits(plan) : 1);
  let done = 0;
  const step = () => progress(++done / total);
  const colour = decoded.gray ? 1 : RGB;
  const channels = colour + (decoded.alpha === "none" ? 0 : 1);
  const out = new Uint8ClampedArray(n * channels);
  const put = (o, c, value) => { out[o * channels + c] = value * MAX_8_BIT; };
  if (decoded.alpha !== "varying" && w >= lr[0] && h >= lr[1] && enlarges) {
    await render(model, plan, cropper(decoded, "colour"), (row, col, rows, cols, rgb) => {
      const plane = rows * cols;
      for (let y = 0; y < rows; y++) {
        for (let x = 0; x < cols; x++) {
          const i = y * cols + x;
          const o = (row + y) * w + col + x;
          if (colour === 1) {
            put(o, 0, clamp01((clamp01(rgb[i]) + clamp01(rgb[plane + i]) + clamp01(rgb[2 * plane + i])) / RGB));
          } else {
            for (let c = 0; c < RGB; c++) put(o, c, clamp01(rgb[c * plane + i]));
          }
        }
      }
    }, step);
  } else {
    const premultiply = decoded.alpha === "varying";
    // premultiplied passes stay unclamped until unpremultiply: a clamp on one pass only would skew their ratio
    const channel = premultiply ? "premultiplied" : "colour";
    const rgb = await resamplePass(model, decoded, channel, size, plan, step, !premultiply);
    const alpha = premultiply ? await resamplePass(model, decoded, "alpha", size, plan, step, false) : null;
    const faithful = alpha ? unpremultiply(decoded, rgb, alpha, size) : null;
    for (let o = 0; o < n; o++) {
      const values = faithful ? faithful.colour.subarray(o * RGB, o * RGB + RGB) : [rgb[o], rgb[n + o], rgb[2 * n + o]];
      if (colour === 1) put(o, 0, clamp01((values[0] + values[1] + values[2]) / RGB));
      else for (let c = 0; c < RGB; c++) put(o, c, clamp01(values[c]));
      if (faithful) put(o, colour, clamp01(faithful.alpha[o]));
    }
    if (!enlarges) progress(1);
  }
  if (decoded.alpha === "constant") for (let o = 0; o < n; o++) put(o, colour, decoded.constantAlpha);
  return { pixels: out, channels, width: w, height: h };
}

// Crop (cover) or pad (pad: transparent with alpha, else the pad colour) to the final size.
function finish(image, plan) {
  const box = plan.crop || plan.pad;
  if (!box) return image;
  const [fw, fh] = plan.final;
  const { channels } = image;
  const out = new Uint8ClampedArray(fw * fh * channels);
  const hasAlpha = channels === 2 || channels === RGBA;
  if (plan.pad && !hasAlpha) {
    const [r, g, b] = SETTINGS.pad_color;
    const fill = channels === 1 ? [Math.round(0.299 * r + 0.587 * g + 0.114 * b)] : [r, g, b];
    for (let o = 0; o < fw * fh; o++) for (let c = 0; c < channels; c++) out[o * channels + c] = fill[c];
  }
  const rowBytes = box.width * channels;
  for (let y = 0; y < box.height; y++) {
    if (plan.crop) {
      const from = ((box.top + y) * image.width + box.left) * channels;
      out.set(image.pixels.subarray(from, from + rowBytes), y * fw * channels);
    } else {
      const from = y * image.width * channels;
      out.set(image.pixels.subarray(from, from + rowBytes), ((box.top + y) * fw + box.left) * channels);
    }
  }
  return { pixels: out, channels, width: fw, height: fh };
}

// ------------------------------------------------------------------------------------------------ output

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function pngChunk(type, data) {
  const chunk = new Uint8Array(12 + data.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) chunk[4 + i] = type.charCodeAt(i);
  chunk.set(data, 8);
  let crc = 0xffffffff;
  for (let i = 4; i < 8 + data.length; i++) crc = CRC_TABLE[(crc ^ chunk[i]) & 0xff] ^ (crc >>> 8);
  view.setUint32(8 + data.length, (crc ^ 0xffffffff) >>> 0);
  return chunk;
}

// An 8-bit PNG of the exact bytes (a canvas would premultiply alpha and lose colour in transparent parts),
// compressed by the browser's own zlib (CompressionStream "deflate") a block of rows at a time, each compressed
// piece its own IDAT chunk as it comes out (a PNG's image data is the concatenation of its IDATs): no second
// whole copy of the compressed image is assembled, and the page breathes between blocks.
async function encodePng(image) {
  const { pixels, channels, width, height } = image;
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header[8] = 8;
  header[9] = PNG_COLOR_TYPE[channels];
  const parts = [Uint8Array.from(PNG_SIGNATURE), pngChunk("IHDR", header)];
  const stream = new CompressionStream("deflate");
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  const collected = (async () => {
    for (let piece = await reader.read(); !piece.done; piece = await reader.read()) {
      parts.push(pngChunk("IDAT", piece.value));
    }
  })();
  const rowBytes = width * channels;
  for (let start = 0; start < height; start += ROWS_PER_STEP) {
    const rows = Math.min(ROWS_PER_STEP, height - start);
    const chunk = new Uint8Array(rows * (rowBytes + 1));
    for (let y = 0; y < rows; y++) {
      const from = (start + y) * rowBytes;
      chunk.set(pixels.subarray(from, from + rowBytes), y * (rowBytes + 1) + 1);  // filter byte 0: none
    }
    await writer.write(chunk);
    await breathe();
  }
  await writer.close();
  await collected;
  parts.push(pngChunk("IEND", new Uint8Array(0)));
  return new Blob(parts, { type: MEDIA_TYPES.png });
}

// JPEG or WEBP through a canvas (lossy formats: the canvas's premultiplied storage does not matter there), filled
// a block of rows at a time (no whole-image RGBA copy beside the canvas; the page breathes between blocks).
async function encodeLossy(image, format) {
  const { pixels, channels, width, height } = image;
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d");
  for (let start = 0; start < height; start += ROWS_PER_STEP) {
    const block = new ImageData(width, Math.min(ROWS_PER_STEP, height - start));
    const rgba = block.data;
    for (let i = 0; i < block.width * block.height; i++) {
      const o = start * width + i;
      const colour = channels <= 2 ? [pixels[o * channels]] : pixels.subarray(o * channels, o * channels + RGB);
      for (let c = 0; c < RGB; c++) rgba[i * RGBA + c] = colour[colour.length === 1 ? 0 : c];
      rgba[i * RGBA + RGB] = channels === 2 || channels === RGBA ? pixels[o * channels + channels - 1] : MAX_8_BIT;
    }
    context.putImageData(block, 0, start);
    await breathe();
  }
  return canvas.convertToBlob({ type: MEDIA_TYPES[format], quality: FORMAT_QUALITY });
}

// ------------------------------------------------------------------------------------------------ enlarge

async function enlarge(event) {
  event.preventDefault();
  await runBusy(state, updateButton, formProblem(), "Reading the image", async (phase, progress, started) => {
    const asked = request();
    const format = $("format").value;
    const model = chosenModel();
    const decoded = await decode(state.file);
    if (decoded.alpha !== "none" && format === "jpeg") {
      throw new Error("the image has transparency, which JPEG cannot store: choose PNG or WEBP");
    }
    const plan = sizePlan([decoded.width, decoded.height], asked);
    phase.name = "Loading the model";
    await modelSessions(model);
    phase.name = "Enlarging";
    const renderStarted = performance.now();
    for (const graph of GRAPHS) graphRuns[graph] = 0;
    const image = finish(await enlargeChannels(model, decoded, plan.render, (fraction) => {
      progress.value = 100 * fraction;
    }), plan);
    const renderSeconds = (performance.now() - renderStarted) / 1000;
    phase.name = "Encoding";
    const blob = format === "png" ? await encodePng(image) : await encodeLossy(image, format);
    const seconds = (performance.now() - started) / 1000;
    window.enlargeTimings = { render: renderSeconds, total: seconds, runs: { ...graphRuns } };
    showResult(blob, model.name, [decoded.width, decoded.height], plan.final, seconds, outputName(asked, format));
  });
}

function showResult(blob, modelName, inputSize, outputSize, seconds, name) {
  if (state.outputUrl) URL.revokeObjectURL(state.outputUrl);
  state.outputUrl = URL.createObjectURL(blob);
  showComparison(state.inputUrl, state.outputUrl, outputSize);
  $("fact-model").textContent = modelName;
  $("fact-size").textContent = `${inputSize[0]} × ${inputSize[1]} → ${outputSize[0]} × ${outputSize[1]} px`;
  $("fact-time").textContent = `${seconds.toFixed(2)} s on this device`;
  const download = $("download");
  download.href = state.outputUrl;
  download.download = name;
  download.textContent = `Download ${name} (${formatBytes(blob.size)})`;
  $("result").hidden = false;
  setStatus(`Done: ${outputSize[0]} × ${outputSize[1]} px with ${modelName} in ${seconds.toFixed(2)} s.`);
}

// ------------------------------------------------------------------------------------------------ start

function start() {
  setUpDrop(chooseFile);
  setUpCompare();
  setUpMode(previewSize);
  $("model").addEventListener("change", describeModel);
  $("settings").addEventListener("submit", enlarge);
  try {
    setUpRuntime();
  } catch (error) {
    $("model-info").textContent = `The runtime did not load: ${error.message || error}`;
  }
}

start();
