// The page: fetches MNIST, trains through the wasm module a few steps at a time (yielding to
// the browser in between), draws the curves, classifies the drawing, saves and loads models.
import init, { Mnist, Session, Model, mnistFiles, prepareDrawing, openGpu } from './descent_web.js';

const $ = (id) => document.getElementById(id);
const status = (text) => { $('status').textContent = text; };
const showError = (text) => { $('error').textContent = text; };

let mnist = null;      // the loaded data
let gpu = null;        // the browser's WebGPU adapter, opened by descent's GPU path
let session = null;    // the model being trained
let snapshot = null;   // its weights as last read back: what the drawing is classified with
let loaded = null;     // a model loaded from a checkpoint
let stopAsked = false;
let training = false;

// The curves: training loss per batch of steps, test loss and accuracy per epoch; x in epochs.
const curves = { train: [], test: [], acc: [] };

// Milliseconds of training between yields: long enough to amortise a call, short enough that
// drawing on the canvas stays smooth.
const SLICE_MS = 40;

// Opens the adapter through descent's own GPU path (every WGSL kernel compiled, a buffer read
// back); training then runs on it unless the CPU is chosen.
async function webgpuNotice() {
  const cpuOnly = (why) => {
    $('notice').textContent = `${why}: training runs on the CPU path (WebAssembly, one thread), slower but the same maths.`;
    $('device').value = 'cpu';
    $('device-gpu').disabled = true;
  };
  let adapter = null;
  try {
    adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
  } catch (e) {
    adapter = null;
  }
  if (!adapter) {
    cpuOnly('WebGPU is not available in this browser');
    return;
  }
  $('notice').textContent = 'WebGPU adapter found: compiling descent\'s kernels on it…';
  try {
    gpu = await openGpu();
  } catch (e) {
    cpuOnly(`WebGPU is present but descent's GPU path could not open it (${e.message || e})`);
    return;
  }
  const i = adapter.info || {};
  const name = [i.vendor, i.architecture, i.description].filter((s) => s).join(' ') || 'unnamed';
  $('device-gpu').disabled = false;
  if (gpu.isSoftware()) {
    // A software adapter runs the kernels on the CPU, through more layers than the CPU path.
    $('notice').textContent = `WebGPU adapter ${name} (${gpu.kind()}) is a software one, running on this computer's CPU: choose WebGPU to train on it with the same WGSL kernels as the descent command line (slower here than the CPU path, which is selected).`;
    $('device').value = 'cpu';
  } else {
    $('notice').textContent = `WebGPU adapter ${name} (${gpu.kind()}): training runs on it, with the same WGSL kernels as the descent command line.`;
    $('device').value = 'gpu';
  }
  // For scripts and the browser tests: kernel parity on this adapter.
  window.descentVerify = async () => JSON.parse(await gpu.verifyKernels());
}

async function fetchFile(name) {
  let resp;
  try {
    resp = await fetch(name);
  } catch (e) {
    throw new Error(`could not fetch ${name}: ${e.message}`);
  }
  if (!resp.ok) {
    throw new Error(`could not fetch ${name}: HTTP ${resp.status} ${resp.statusText}. Serve the four MNIST *-ubyte.gz files beside index.html (web/build.sh copies them there).`);
  }
  return new Uint8Array(await resp.arrayBuffer());
}

async function loadData() {
  const names = mnistFiles();
  status(`Fetching MNIST (${names.join(', ')})…`);
  const bytes = await Promise.all(names.map(fetchFile));
  status('Checking and unpacking MNIST…');
  await yieldToBrowser();
  const base = new URL('.', location.href).href;
  mnist = new Mnist(bytes[0], bytes[1], bytes[2], bytes[3], base);
  status(`MNIST ready: ${mnist.trainLen()} training and ${mnist.testLen()} test images.`);
}

const yieldToBrowser = () => new Promise((resolve) => setTimeout(resolve, 0));

function readForm() {
  const num = (id) => Number($(id).value);
  return {
    hidden: $('hidden').value,
    optimizer: $('optimizer').value,
    batch: num('batch'),
    lr: num('lr'),
    epochs: num('epochs'),
    limit: num('limit'),
    device: $('device').value,
  };
}

async function train() {
  if (training || !mnist) return;
  showError('');
  const f = readForm();
  for (const [name, v] of [['batch size', f.batch], ['epochs', f.epochs], ['training samples', f.limit]]) {
    if (!Number.isInteger(v) || v < 1) {
      showError(`${name}: give a whole number, at least 1`);
      return;
    }
  }
  if (!(f.lr > 0)) {
    showError('learning rate: give a number above 0');
    return;
  }
  if (session) session.free();
  session = null;
  setSnapshot(null);
  try {
    session = f.device === 'gpu' && gpu
      ? Session.onGpu(gpu, mnist, f.hidden, f.optimizer, f.batch, f.lr, f.epochs, f.limit, 0)
      : new Session(mnist, f.hidden, f.optimizer, f.batch, f.lr, f.epochs, f.limit, 0);
  } catch (e) {
    showError(String(e.message || e));
    return;
  }
  status(`Starting: ${session.describe()} on ${session.device()}…`);
  curves.train = []; curves.test = []; curves.acc = [];
  // Each epoch's evaluation, as a `--metrics` line, for scripts (and the browser tests).
  window.descentRecords = [];
  drawCharts();
  $('accuracy').textContent = '–';
  training = true;
  stopAsked = false;
  $('train').disabled = true;
  $('stop').disabled = false;
  $('download').disabled = true;  // until the first weights are read back
  $('model-info').textContent = `Training ${session.describe()} on ${session.device()}.`;
  const batch = session.batchSize();
  const steps = session.stepsPerEpoch();
  let k = 1;            // steps per slice, adapted to SLICE_MS
  let speed = null;     // samples/s, smoothed
  let refreshed = performance.now();
  try {
    for (;;) {
      if (stopAsked) {
        status('Stopped.');
        break;
      }
      const t0 = performance.now();
      const p = JSON.parse(await session.steps(k));
      if (p.kind === 'step') {
        // A call that leaves the epoch unfinished ran all k steps. On the GPU they are only
        // queued: the loss readback waits for them, so the time is taken after it.
        const ran = k;
        const loss = await session.recentLoss(ran);
        const dt = performance.now() - t0;
        const s = (ran * batch) / (dt / 1000);
        speed = speed === null ? s : 0.8 * speed + 0.2 * s;
        if (loss !== undefined && loss !== null) {
          curves.train.push([p.epoch - 1 + p.step / p.steps, loss]);
        }
        status(`epoch ${p.epoch}/${f.epochs}, step ${p.step}/${p.steps}`);
        $('speed').textContent = `${Math.round(speed).toLocaleString('en')} samples/s`;
        k = Math.max(1, Math.min(steps, Math.round(k * SLICE_MS / Math.max(dt, 1))));
        // A drawing on the canvas is read by the weights of a second ago at most.
        if (hasInk && performance.now() - refreshed > 1000) {
          setSnapshot(await session.model());
          refreshed = performance.now();
          classify();
        }
      } else if (p.kind === 'epoch') {
        const r = p.record;
        window.descentRecords.push(r);
        curves.test.push([r.epoch, r.test_loss]);
        curves.acc.push([r.epoch, 100 * r.test_accuracy]);
        $('accuracy').textContent = `${(100 * r.test_accuracy).toFixed(2)}%`;
        status(`epoch ${r.epoch}/${f.epochs}: train loss ${r.train_loss.toFixed(4)}, test loss ${r.test_loss.toFixed(4)}, ` +
          `test accuracy ${(100 * r.test_accuracy).toFixed(2)}%, ${Math.round(r.samples_per_second).toLocaleString('en')} samples/s`);
        if (r.warning) showError(r.warning);
        setSnapshot(await session.model());
        refreshed = performance.now();
      } else {
        status(`Done (${p.outcome.toLowerCase()}). ${$('status').textContent}`);
        break;
      }
      drawCharts();
      await yieldToBrowser();
    }
  } catch (e) {
    showError(String(e.message || e));
  }
  try {
    setSnapshot(await session.model());
  } catch (e) {
    showError(String(e.message || e));
  }
  training = false;
  $('train').disabled = false;
  $('stop').disabled = true;
  $('model-info').textContent = `Trained ${session.describe()} on ${session.device()}.`;
  classify();
}

// ---- charts ----

function drawChart(canvas, { title, ylabel, series, ymin, ymax, xmax }) {
  const ctx = canvas.getContext('2d');
  const W = canvas.width, H = canvas.height;
  const L = 58, R = 12, T = 26, B = 40;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, W, H);
  ctx.fillStyle = '#222';
  ctx.font = 'bold 13px system-ui, sans-serif';
  ctx.textAlign = 'center';
  ctx.fillText(title, W / 2, 16);
  const pts = series.flatMap((s) => s.points);
  let lo = ymin ?? Math.min(...pts.map((p) => p[1]), Infinity);
  let hi = ymax ?? Math.max(...pts.map((p) => p[1]), -Infinity);
  if (!isFinite(lo) || !isFinite(hi)) { lo = 0; hi = 1; }
  if (hi - lo < 1e-9) { hi = lo + 1; }
  const x = (v) => L + (v / xmax) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  // axes, ticks and labels
  ctx.strokeStyle = '#888';
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(L, T); ctx.lineTo(L, H - B); ctx.lineTo(W - R, H - B);
  ctx.stroke();
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#444';
  ctx.textAlign = 'right';
  for (let i = 0; i <= 4; i++) {
    const v = lo + (i / 4) * (hi - lo);
    ctx.fillText(v.toFixed(hi - lo < 1 ? 3 : hi - lo < 10 ? 2 : 1), L - 4, y(v) + 4);
    ctx.strokeStyle = '#eee';
    ctx.beginPath(); ctx.moveTo(L + 1, y(v)); ctx.lineTo(W - R, y(v)); ctx.stroke();
  }
  ctx.textAlign = 'center';
  const xstep = Math.max(1, Math.ceil(xmax / 10));
  for (let e = 0; e <= xmax; e += xstep) ctx.fillText(String(e), x(e), H - B + 14);
  ctx.fillText('epoch', (L + W - R) / 2, H - 6);
  ctx.save();
  ctx.translate(14, (T + H - B) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(ylabel, 0, 0);
  ctx.restore();
  // series
  for (const s of series) {
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    ctx.lineWidth = s.width || 1.5;
    ctx.beginPath();
    s.points.forEach(([px, py], i) => (i ? ctx.lineTo(x(px), y(py)) : ctx.moveTo(x(px), y(py))));
    ctx.stroke();
    if (s.dots) for (const [px, py] of s.points) { ctx.beginPath(); ctx.arc(x(px), y(py), 3, 0, 7); ctx.fill(); }
  }
  // legend, top right
  ctx.textAlign = 'left';
  let ly = T + 4;
  for (const s of series) {
    const lx = W - R - 110;
    ctx.fillStyle = s.color;
    ctx.fillRect(lx, ly, 14, 3);
    ctx.fillStyle = '#333';
    ctx.fillText(s.name, lx + 20, ly + 5);
    ly += 15;
  }
}

function drawCharts() {
  const xmax = Math.max(1, Number($('epochs').value) || 1, ...curves.acc.map((p) => p[0]));
  drawChart($('loss-chart'), {
    title: 'Loss (cross-entropy)', ylabel: 'loss', xmax, ymin: 0,
    series: [
      { name: 'training', color: '#3b6fb6', points: curves.train },
      { name: 'test', color: '#d9622b', points: curves.test, dots: true, width: 2 },
    ],
  });
  const accs = curves.acc.map((p) => p[1]);
  drawChart($('acc-chart'), {
    title: 'Test accuracy', ylabel: 'accuracy (%)', xmax,
    ymin: accs.length ? Math.max(0, Math.floor(Math.min(...accs) - 2)) : 0, ymax: 100,
    series: [{ name: 'test', color: '#2a9d55', points: curves.acc, dots: true, width: 2 }],
  });
}

// ---- drawing ----

const draw = $('draw');
const dctx = draw.getContext('2d');
let hasInk = false;   // something is drawn
function clearCanvas() {
  hasInk = false;
  dctx.fillStyle = '#fff';
  dctx.fillRect(0, 0, draw.width, draw.height);
  const p = $('preview').getContext('2d');
  p.fillStyle = '#000';
  p.fillRect(0, 0, 28, 28);
  $('prediction').textContent = '–';
  $('bars').textContent = '';
  $('hint').textContent = currentModel() ? 'Draw a digit in the box.' : 'Train a model or load a checkpoint, then draw.';
}

let last = null;
let pending = false;
draw.addEventListener('pointerdown', (e) => {
  draw.setPointerCapture(e.pointerId);
  last = [e.offsetX, e.offsetY];
  stroke(e);
});
draw.addEventListener('pointermove', (e) => { if (last) stroke(e); });
const end = () => { last = null; classify(); };
draw.addEventListener('pointerup', end);
draw.addEventListener('pointercancel', end);

function stroke(e) {
  hasInk = true;
  dctx.strokeStyle = '#000';
  dctx.lineWidth = 18;
  dctx.lineCap = 'round';
  dctx.lineJoin = 'round';
  dctx.beginPath();
  dctx.moveTo(last[0], last[1]);
  dctx.lineTo(e.offsetX + 0.01, e.offsetY);
  dctx.stroke();
  last = [e.offsetX, e.offsetY];
  // Classify live, at most once a frame.
  if (!pending) {
    pending = true;
    requestAnimationFrame(() => { pending = false; classify(); });
  }
}

function setSnapshot(model) {
  if (snapshot) snapshot.free();
  snapshot = model;
  // Only weights already read back can be downloaded (a read mid-step would re-enter the session).
  $('download').disabled = !currentModel();
}

// The trained weights as last read back, else a loaded checkpoint.
function currentModel() {
  return session ? snapshot : loaded;
}

function classify() {
  const img = dctx.getImageData(0, 0, draw.width, draw.height);
  let x;
  try {
    x = prepareDrawing(new Uint8Array(img.data.buffer), img.width, img.height);
  } catch (e) {
    $('prediction').textContent = '–';
    $('bars').textContent = '';
    $('hint').textContent = 'Draw a digit in the box (the canvas is blank).';
    return;
  }
  showPreview(x);
  const model = currentModel();
  if (!model) {
    $('hint').textContent = 'Train a model or load a checkpoint to read the drawing.';
    return;
  }
  const probs = model.predict(x);
  const top = [...probs.keys()].sort((a, b) => probs[b] - probs[a]).slice(0, 3);
  $('prediction').textContent = String(top[0]);
  $('bars').innerHTML = top.map((c) =>
    `<div class="bar"><span>${c}</span><span class="fill" style="width:${Math.round(160 * probs[c])}px"></span>` +
    `<span>${(100 * probs[c]).toFixed(1)}%</span></div>`).join('');
  $('hint').textContent = '';
}

function showPreview(x) {
  const p = $('preview').getContext('2d');
  const img = p.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = Math.round(255 * x[i]);
    img.data.set([v, v, v, 255], 4 * i);
  }
  p.putImageData(img, 0, 0);
}

// ---- checkpoints ----

function download() {
  const model = currentModel();
  if (!model) return;
  const bytes = model.checkpoint();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  a.download = 'descent-mnist.safetensors';
  document.body.appendChild(a);
  a.click();
  a.remove();
}

async function loadCheckpoint(file) {
  showError('');
  const bytes = new Uint8Array(await file.arrayBuffer());
  let model;
  try {
    model = Model.load(bytes, file.name);
  } catch (e) {
    showError(String(e.message || e));
    return;
  }
  if (training) {
    // Let the training loop finish its slice and let go of the session first.
    stopAsked = true;
    while (training) await yieldToBrowser();
  }
  if (session) { session.free(); session = null; }
  setSnapshot(null);
  if (loaded) loaded.free();
  loaded = model;
  $('download').disabled = false;
  curves.train = []; curves.test = []; curves.acc = [];
  drawCharts();
  $('model-info').textContent = `Loaded ${file.name}: ${model.describe()}.`;
  if (mnist) {
    status(`Evaluating ${file.name} on the ${mnist.testLen()} test images…`);
    await yieldToBrowser();
    const acc = model.accuracy(mnist);
    $('accuracy').textContent = `${(100 * acc).toFixed(2)}%`;
    status(`Loaded ${file.name}: test accuracy ${(100 * acc).toFixed(2)}%.`);
  }
  classify();
}

// ---- start ----

$('optimizer').addEventListener('change', () => {
  // The command line's mini-batch defaults for each rule.
  $('lr').value = $('optimizer').value.startsWith('adam') ? '0.001' : '0.05';
});
$('train').addEventListener('click', train);
$('stop').addEventListener('click', () => { stopAsked = true; });
$('clear').addEventListener('click', clearCanvas);
$('download').addEventListener('click', download);
$('load').addEventListener('change', (e) => { if (e.target.files[0]) loadCheckpoint(e.target.files[0]); });

async function main() {
  clearCanvas();
  drawCharts();
  try {
    await init();
  } catch (e) {
    status('');
    showError(`could not load the WebAssembly module (descent_web_bg.wasm): ${e.message || e}`);
    return;
  }
  // Not awaited: compiling the kernels on a software adapter takes a while, and the data and
  // the CPU training need none of it.
  webgpuNotice();
  try {
    await loadData();
    $('train').disabled = false;
  } catch (e) {
    status('No data: training is off; a loaded checkpoint can still read drawings.');
    showError(String(e.message || e));
  }
}
main();
