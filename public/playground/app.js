/* global window, document, fetch, Blob, FormData, URL, performance, navigator, createImageBitmap */
/**
 * The playground page: wires the box editor, the parameter form and the results to the service's
 * `/v1/diff`, `/v1/roi` and `/v1/backbone` routes (relative URLs, so the page works under any prefix).
 */
import { BoxEditor, boxColour } from './editor.js';
import { drawSampleScene, SAMPLE_BOXES, SAMPLE_HEIGHT, SAMPLE_WIDTH } from './scene.js';
import { curlCommand, parseBoxes, parseServerTiming, problemMessage, requestFields } from './request.js';

const $ = (id) => document.getElementById(id);

const state = {
  /** @type {{ blob: Blob, name: string, width: number, height: number, sample: boolean } | null} */
  image: null,
  /** Object URLs to revoke when replaced. */
  urls: {},
  /** Fields + image of the last successful run, for curl and downloads. */
  lastRun: null,
  running: false,
};

const editor = new BoxEditor($('editor'), {
  onChange: (boxes) => {
    writeBoxesJson(boxes);
    markStale();
  },
  onHover: (index) => highlightRow(index),
  onStatus: (text) => ($('editor-status').textContent = text),
});

// ---------------------------------------------------------------------------------------------- image

async function useSampleScene() {
  const canvas = drawSampleScene();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
  setImage(
    { blob, name: 'sample-scene.png', width: SAMPLE_WIDTH, height: SAMPLE_HEIGHT, sample: true },
    canvas,
  );
  editor.setBoxes(SAMPLE_BOXES);
  $('image-info').textContent =
    `Sample scene, ${SAMPLE_WIDTH} × ${SAMPLE_HEIGHT} px (generated in the browser)`;
}

async function useFile(file) {
  if (!file) return;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    showError(`${file.name}: this browser cannot display that image; try PNG, JPEG or WebP.`);
    return;
  }
  hideError();
  setImage(
    { blob: file, name: file.name || 'image.png', width: bitmap.width, height: bitmap.height, sample: false },
    bitmap,
  );
  editor.setBoxes([]);
  $('image-info').textContent = `${file.name}, ${bitmap.width} × ${bitmap.height} px`;
  $('editor-status').textContent = 'Drag on the image to draw a box (or focus it and press N).';
}

function setImage(image, drawable) {
  state.image = image;
  editor.setImage(drawable, image.width, image.height);
  setUrl('image', $('download-image'), image.sample ? image.blob : null);
  $('download-image').hidden = !image.sample;
  markStale();
}

$('sample-scene').addEventListener('click', () => useSampleScene());
$('image-file').addEventListener('change', (e) => useFile(e.target.files[0]));
const dropZone = $('drop-zone');
dropZone.addEventListener('dragover', (e) => {
  e.preventDefault();
  dropZone.classList.add('dragging');
});
dropZone.addEventListener('dragleave', () => dropZone.classList.remove('dragging'));
dropZone.addEventListener('drop', (e) => {
  e.preventDefault();
  dropZone.classList.remove('dragging');
  useFile(e.dataTransfer.files[0]);
});

// ---------------------------------------------------------------------------------------------- boxes

function writeBoxesJson(boxes) {
  $('boxes-json').value = boxes.length
    ? `[\n${boxes.map((b) => `  [${b.join(', ')}]`).join(',\n')}\n]`
    : '[]';
  $('boxes-error').textContent = '';
}

function applyBoxesJson(text) {
  try {
    const boxes = parseBoxes(text);
    editor.setBoxes(boxes);
    $('editor-status').textContent = `${boxes.length} box${boxes.length === 1 ? '' : 'es'} from JSON`;
    return true;
  } catch (e) {
    $('boxes-error').textContent = `Boxes: ${e.message}`;
    return false;
  }
}

$('apply-boxes').addEventListener('click', () => applyBoxesJson($('boxes-json').value));
$('clear-boxes').addEventListener('click', () => editor.setBoxes([]));
// Pasting JSON while the image has focus applies it directly.
$('editor').addEventListener('paste', (e) => {
  const text = e.clipboardData?.getData('text');
  if (text) {
    e.preventDefault();
    if (applyBoxesJson(text)) writeBoxesJson(editor.boxes);
  }
});
$('show-grid').addEventListener('change', (e) => editor.setShowGrid(e.target.checked));

// --------------------------------------------------------------------------------------------- params

/** The form's parameters, or throws an Error naming the field. */
function readParams() {
  const int = (id, label, min, max) => {
    const el = $(id);
    const v = Number(el.value);
    if (el.value.trim() === '' || !Number.isInteger(v) || v < min || v > max) {
      el.setAttribute('aria-invalid', 'true');
      el.focus();
      throw new Error(`${label}: expected a whole number from ${min} to ${max}, got "${el.value}".`);
    }
    el.removeAttribute('aria-invalid');
    return v;
  };
  const outputSize = [int('output-h', 'Output height', 1, 64), int('output-w', 'Output width', 1, 64)];
  const samplingRatio = int('sampling-ratio', 'Sampling ratio', -1, 64);
  const maxBoxes = int('max-boxes', 'Boxes with panels', 0, 32);
  const channel = $('channel').value.trim() || 'meanabs';
  if (!/^(meanabs|mean|max|\d+)$/.test(channel)) {
    $('channel').focus();
    throw new Error(`Heatmap channel: expected meanabs, mean, max or a channel index, got "${channel}".`);
  }
  return {
    boxes: editor.boxes.map((b) => [...b]),
    outputSize,
    samplingRatio,
    aligned: $('aligned').checked,
    mode: $('mode').value,
    maxBoxes,
    channel,
  };
}

function authHeaders() {
  const key = $('api-key').value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function formData(fields, image) {
  const form = new FormData();
  form.append('image', image.blob, image.name);
  for (const [name, value] of fields) form.append(name, value);
  return form;
}

/** POST a multipart request; returns { response, ms } or throws an Error with the problem's message. */
async function post(path, fields, image) {
  const t0 = performance.now();
  const response = await fetch(path, {
    method: 'POST',
    body: formData(fields, image),
    headers: authHeaders(),
  });
  if (!response.ok) {
    const type = response.headers.get('content-type') ?? '';
    const body = type.includes('json') ? await response.json().catch(() => null) : await response.text();
    throw new Error(problemMessage(response.status, body));
  }
  return { response, ms: performance.now() - t0 };
}

// -------------------------------------------------------------------------------------------------- run

let lastRunKey = '';

/** What a run depends on, as text: the image and the form's raw values (not validated, never throws). */
function runKey() {
  return JSON.stringify([
    state.image?.name,
    state.image?.width,
    editor.boxes,
    $('output-h').value,
    $('output-w').value,
    $('sampling-ratio').value,
    $('max-boxes').value,
    $('aligned').checked,
    $('mode').value,
    $('channel').value,
  ]);
}

function markStale() {
  if (!lastRunKey) return;
  $('results').classList.toggle('stale', runKey() !== lastRunKey);
}

$('controls').addEventListener('input', (e) => {
  e.target.removeAttribute?.('aria-invalid');
  markStale();
});

$('controls').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (state.running || !state.image) return;
  let params;
  try {
    params = readParams();
  } catch (err) {
    showError(err.message);
    return;
  }
  hideError();
  state.running = true;
  $('run').disabled = true;
  $('run-status').textContent = 'Running…';
  const image = state.image;
  // One request per run: the JSON answer has the sheet too (`images.sheet`, the same PNG bytes as
  // format "png"), so the backbone and the operators run once. The PNG fields are kept for the curl.
  const sheetFields = requestFields('diff', params);
  const jsonFields = requestFields('diff', { ...params, format: 'json' });
  try {
    const data = await post('v1/diff', jsonFields, image);
    const json = await data.response.json();
    const sheetBlob = new Blob([base64Bytes(json.images.sheet)], { type: 'image/png' });
    state.lastRun = { params, image, sheetFields, jsonFields };
    lastRunKey = runKey();
    $('results').classList.remove('stale');
    renderResults({ sheetBlob, data, json });
    $('run-status').textContent =
      `Done: ${params.boxes.length} box${params.boxes.length === 1 ? '' : 'es'}, ${Math.round(data.ms)} ms.`;
  } catch (err) {
    showError(err.message);
    $('run-status').textContent = 'Failed.';
  } finally {
    state.running = false;
    $('run').disabled = false;
  }
});

// ---------------------------------------------------------------------------------------------- results

/** The bytes of a base64 string. */
function base64Bytes(text) {
  const binary = window.atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function renderResults({ sheetBlob, data, json }) {
  $('results-empty').hidden = true;
  $('results-body').hidden = false;
  setUrl('sheet', $('download-sheet'), sheetBlob);
  $('sheet').src = state.urls.sheet;
  $('sheet-link').href = state.urls.sheet;
  $('sheet').onload = () => {
    const img = $('sheet');
    const scaled = img.clientWidth < img.naturalWidth;
    $('sheet-caption').textContent =
      `${img.naturalWidth} × ${img.naturalHeight} px${scaled ? ': shown smaller, click it for full size' : ''}.`;
  };

  // The fields are those of /v1/diff's JSON answer (diffResponseSchema in routes/diff.ts).
  $('feature-heatmap').src = `data:image/png;base64,${json.images.featureHeatmap}`;
  const { shape, stride } = json.featureMap;
  $('feature-caption').textContent =
    `shape [${shape.join(', ')}] · stride ${stride} px · channel: ${json.params.channel}`;
  setStride(stride);

  const notes = json.notes;
  $('notes').replaceChildren(
    ...notes.map((note) => {
      const li = document.createElement('li');
      li.textContent = note;
      return li;
    }),
  );
  $('notes').hidden = notes.length === 0;

  renderCoverage(json);
  renderStats(json);
  renderTimings(data);
  $('curl-text').value = curlFor(state.lastRun);
}

/** Per-box coverage rows: lost/gained as fractions of the box and IoU, for the ops that read other areas. */
function renderCoverage(json) {
  const list = json.coverage;
  // Align reads the exact box (0, 0, 1 always): only the two ops that snap to the grid get columns.
  const ops = list.length > 0 ? ['pool', 'warp'] : [];
  const thead = $('coverage').tHead;
  thead.innerHTML = '';
  const top = thead.insertRow();
  top.innerHTML = '<th scope="col" rowspan="2">box</th><th scope="col" rowspan="2">x1, y1, x2, y2</th>';
  const sub = thead.insertRow();
  for (const op of ops) {
    const th = document.createElement('th');
    th.scope = 'colgroup';
    th.colSpan = 3;
    th.textContent = op;
    top.append(th);
    for (const label of ['lost', 'gained', 'IoU']) {
      const s = document.createElement('th');
      s.scope = 'col';
      s.className = 'num';
      s.textContent = label;
      sub.append(s);
    }
  }
  const tbody = $('coverage').tBodies[0];
  tbody.innerHTML = '';
  list.forEach((entry, i) => {
    const row = tbody.insertRow();
    row.tabIndex = 0;
    row.dataset.index = String(i);
    // The response's boxes are canonical (b, x1, y1, x2, y2) rows.
    const box = json.boxes[i].slice(1);
    const head = document.createElement('th');
    head.scope = 'row';
    head.innerHTML = `<span class="swatch" style="background:${boxColour(i)}"></span>${i + 1}`;
    row.append(head);
    row.insertCell().textContent = box.map((v) => +v.toFixed(2)).join(', ');
    for (const op of ops) {
      const c = entry[op];
      for (const [value, key] of [
        [c.lostFraction, 'lost'],
        [c.gainedFraction, 'gained'],
        [c.iou, 'iou'],
      ]) {
        const cell = row.insertCell();
        cell.className = 'num';
        cell.dataset.op = op;
        cell.dataset.key = key;
        // Fractions as percent with one decimal, IoU with three.
        cell.textContent = key === 'iou' ? value.toFixed(3) : `${(value * 100).toFixed(1)} %`;
      }
    }
    row.addEventListener('mouseenter', () => editor.highlight(i));
    row.addEventListener('mouseleave', () => editor.highlight(-1));
    row.addEventListener('focus', () => editor.highlight(i));
    row.addEventListener('blur', () => editor.highlight(-1));
  });
  if (list.length === 0) {
    tbody.innerHTML = '<tr><td colspan="2">No boxes: draw one on the image.</td></tr>';
  }
}

/** Per box and pair of ops: mean / max absolute difference and relative L2. */
function renderStats(json) {
  const table = $('stats');
  table.tHead.innerHTML =
    '<tr><th scope="col">box</th><th scope="col">pair</th><th scope="col" class="num">mean |Δ|</th><th scope="col" class="num">max |Δ|</th><th scope="col" class="num">rel. L2</th></tr>';
  const tbody = table.tBodies[0];
  tbody.innerHTML = '';
  const rows = json.differences.flatMap(({ box, pairs }) =>
    Object.entries(pairs).map(([pair, s]) => [box, pair, s]),
  );
  for (const [boxIndex, pair, s] of rows) {
    const row = tbody.insertRow();
    row.insertCell().textContent = String(boxIndex + 1);
    row.insertCell().textContent = pair.replace(/[_-]/g, ' − ');
    for (const key of ['meanAbs', 'maxAbs', 'relL2']) {
      const cell = row.insertCell();
      cell.className = 'num';
      cell.textContent = typeof s[key] === 'number' ? s[key].toPrecision(3) : '–';
    }
  }
  if (rows.length === 0) tbody.innerHTML = '<tr><td colspan="5">No differences reported.</td></tr>';
}

/** One row per stage: the browser's round trip, then the server's `Server-Timing` stages. */
function renderTimings({ response, ms }) {
  const tbody = $('timings').tBodies[0];
  tbody.innerHTML = '';
  const stages = [
    { name: 'round trip (browser)', dur: ms },
    ...parseServerTiming(response.headers.get('server-timing')),
  ];
  for (const { name, dur } of stages) {
    const row = tbody.insertRow();
    row.insertCell().textContent = name;
    const cell = row.insertCell();
    cell.className = 'num';
    cell.textContent = Number.isFinite(dur) ? dur.toFixed(1) : '–';
  }
}

function highlightRow(index) {
  for (const row of $('coverage').tBodies[0].rows)
    row.classList.toggle('highlight', row.dataset.index === String(index));
}

// ------------------------------------------------------------------------------------- curl, downloads

function endpoint(path) {
  return new URL(path, document.baseURI).href;
}

function curlFor(run) {
  const withKey = Boolean($('api-key').value.trim());
  return [
    `# Save the input image as ${run.image.name} next to this command, then:`,
    curlCommand(endpoint('v1/diff'), run.sheetFields, run.image.name, 'roiserve-sheet.png', withKey),
    curlCommand(endpoint('v1/diff'), run.jsonFields, run.image.name, 'roiserve-diff.json', withKey),
  ].join('\n');
}

$('copy-curl').addEventListener('click', async () => {
  if (!state.lastRun) return;
  const text = curlFor(state.lastRun);
  $('curl-text').value = text;
  $('curl-details').open = true;
  try {
    await navigator.clipboard.writeText(text);
    $('run-status').textContent = 'curl command copied to the clipboard.';
  } catch {
    // No clipboard access (e.g. plain http on another host): select the text for Ctrl+C instead.
    $('curl-text').focus();
    $('curl-text').select();
    $('run-status').textContent = 'Clipboard not available: the command is selected, press Ctrl+C.';
  }
});

$('download-tensors').addEventListener('click', async () => {
  const run = state.lastRun;
  if (!run) return;
  const [format, op] = $('tensor-format').value.split(':');
  // Without `ops` the API runs all three (its default).
  const params = { ...run.params, format, ops: op ? [op] : undefined };
  const name = format === 'npy' ? `roiserve-${op}.npy` : 'roiserve-tensors.safetensors';
  $('run-status').textContent = `Fetching ${name}…`;
  try {
    const { response } = await post('v1/roi', requestFields('roi', params), run.image);
    const blob = await response.blob();
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    window.setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
    $('run-status').textContent = `Downloaded ${name} (${blob.size} bytes).`;
  } catch (err) {
    showError(err.message);
    $('run-status').textContent = 'Download failed.';
  }
});

function setUrl(key, anchor, blob) {
  if (state.urls[key]) URL.revokeObjectURL(state.urls[key]);
  state.urls[key] = blob ? URL.createObjectURL(blob) : '';
  if (anchor) anchor.href = state.urls[key] || '#';
}

// ------------------------------------------------------------------------------------------------ misc

function showError(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = false;
}

function hideError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

function setStride(stride) {
  $('stride').textContent = String(stride);
  editor.setStride(stride);
}

/** The stride for the grid, from `GET /v1/backbone`; retried while the backbone is still loading (503). */
async function loadBackbone(attempts = 20) {
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    try {
      const response = await fetch('v1/backbone', { headers: authHeaders() });
      if (response.ok) {
        setStride((await response.json()).stride);
        return;
      }
      if (response.status !== 503) return;
    } catch {
      // Network error: try again below.
    }
    await new Promise((resolve) => window.setTimeout(resolve, 1500));
  }
}

await useSampleScene();
document.body.dataset.ready = 'true';
// The grid appears when the stride is known; the page is usable before.
loadBackbone();
