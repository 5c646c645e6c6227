// The page end to end in headless Chromium, driven by playwright-core, served by `descent web`:
// load, train a short run
// on a small subset, draw a digit with pointer events, see a prediction, download the
// checkpoint (checked by `descent eval` in run.sh), reject a file that is not a checkpoint,
// load the downloaded one back. Writes OUT/page.png (after training) and OUT/web.safetensors.
//
//   DESCENT=target/release/descent node web/tests/e2e.mjs DIST OUT   (run.sh does this)
import { execFileSync, spawn } from 'node:child_process';
import { copyFile, readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [dist, out] = process.argv.slice(2);
if (!dist || !out) {
  console.error('usage: node e2e.mjs DIST OUT');
  process.exit(2);
}
await mkdir(out, { recursive: true });

// Served by `descent web`, as a user would: DIST, and a copy of the page without its data.
const descent = process.env.DESCENT;
if (!descent) {
  console.error('set DESCENT to the descent binary');
  process.exit(2);
}
const nodataDir = join(out, 'nodata');
await mkdir(nodataDir, { recursive: true });
for (const f of ['index.html', 'app.js', 'descent_web.js', 'descent_web_bg.wasm']) {
  await copyFile(join(dist, f), join(nodataDir, f));
}
const servers = [];
async function serve(dir) {
  const child = spawn(descent, ['web', '--dir', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.push(child);
  const line = await new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(String(d)));
    child.once('exit', (code) => reject(new Error(`descent web exited with ${code}`)));
  });
  const m = line.match(/http:\/\/127\.0\.0\.1:\d+\//);
  if (!m) throw new Error(`no address in: ${line}`);
  return m[0];
}
const url = await serve(dist);
const nodataUrl = await serve(nodataDir);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run'],
});
let failed = false;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed = true;
};
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 }, acceptDownloads: true });
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(url);
  await page.waitForFunction(() => !document.getElementById('train').disabled, null, { timeout: 120000 });
  check((await page.textContent('#status')).includes('60000 training'), 'MNIST loads and is checked');
  // Chromium runs with --enable-unsafe-webgpu: descent's GPU path opens its adapter (the kernels
  // compile and a buffer reads back through the async readback).
  await page.waitForFunction(() => !/Checking|compiling/.test(document.getElementById('notice').textContent),
    null, { timeout: 300000 });
  const notice = await page.textContent('#notice');
  check(/^WebGPU adapter .*software one.*same WGSL kernels/.test(notice) &&
    !(await page.locator('#device-gpu').isDisabled()),
  `descent's GPU path opens the browser's adapter (SwiftShader: the CPU is preselected): ${notice}`);

  // Kernel parity on the browser's adapter: each kernel against its CPU twin (in wasm).
  const rows = await page.evaluate(() => window.descentVerify());
  const bad = rows.filter((r) => !r.pass);
  const worst = rows.reduce((a, r) => (r.max_rel > a.max_rel ? r : a), rows[0]);
  check(rows.length >= 20 && bad.length === 0,
    `${rows.length} kernel parity checks on the browser's adapter, ${bad.length} failed ` +
    `(${bad.map((r) => `${r.kernel} ${r.shape}`).join('; ')}); worst ${worst.kernel} ${worst.shape}: ` +
    `abs ${worst.max_abs.toExponential(2)}, rel ${worst.max_rel.toExponential(2)}`);

  // A short run through the form: 2 epochs of 3000 samples, on `device`.
  const runPage = async (device, hidden) => {
    await page.selectOption('#device', device);
    await page.fill('#hidden', hidden);
    await page.fill('#limit', '3000');
    await page.fill('#epochs', '2');
    const t0 = Date.now();
    await page.click('#train');
    await page.waitForFunction(() => /Done/.test(document.getElementById('status').textContent) &&
      window.descentRecords.length === 2, null, { timeout: 300000 });
    const secs = (Date.now() - t0) / 1000;
    const acc = await page.textContent('#accuracy');
    const speed = await page.textContent('#speed');
    console.log(`${device}: trained in ${secs.toFixed(1)} s: ${await page.textContent('#status')} | ${speed}`);
    check(/^\d+\.\d\d%$/.test(acc) && parseFloat(acc) > 80, `${device}: test accuracy after 2 epochs of 3000 samples: ${acc}`);
    const info = await page.textContent('#model-info');
    check(info.includes(device === 'gpu' ? 'on gpu:' : 'on cpu'), `${device}: ${info}`);
    return { acc, records: await page.evaluate(() => window.descentRecords) };
  };
  // The same run natively, same flags and seed: `descent train --device DEVICE`.
  const runNative = (device, hidden) => {
    const metrics = join(out, `native-${device}-${hidden}.jsonl`);
    execFileSync(descent, ['train', '--device', device, '--hidden', hidden, '--limit', '3000',
      '--epochs', '2', '--quiet', '--metrics', metrics, '--data-dir', join(out, 'mnist'),
      '--mirror', process.env.MNIST_MIRROR], { stdio: ['ignore', 'ignore', 'inherit'] });
    return readFile(metrics, 'utf8').then((t) => t.trim().split('\n').map((l) => JSON.parse(l)));
  };
  const rel = (a, b) => Math.abs(a - b) / Math.abs(b);
  const same = (what, records, native, tol) => {
    check(records.length === 2 && native.length === 2, `${what}: two epochs each (${records.length}, ${native.length})`);
    for (let i = 0; i < Math.min(records.length, native.length); i++) {
      const [w, n] = [records[i], native[i]];
      check(rel(w.train_loss, n.train_loss) < tol && rel(w.test_loss, n.test_loss) < tol &&
        Math.abs(w.test_accuracy - n.test_accuracy) <= (tol < 1e-5 ? 0 : 2e-4),
      `${what}, epoch ${i + 1}: train loss ${w.train_loss} vs ${n.train_loss}, ` +
        `test loss ${w.test_loss} vs ${n.test_loss}, accuracy ${w.test_accuracy} vs ${n.test_accuracy}`);
    }
  };

  // The CPU path in wasm computes what the native CPU path does, to float rounding.
  const cpu = await runPage('cpu', '128');
  same('the browser\'s CPU path = native CPU', cpu.records, await runNative('cpu', '128'), 1e-5);
  // WebGPU: the same WGSL kernels as natively, within the parity tolerance of the native CPU
  // path and of the native GPU path (lavapipe here).
  const web = await runPage('gpu', '32');
  same('the browser\'s WebGPU path = native CPU', web.records, await runNative('cpu', '32'), 1e-4);
  same('the browser\'s WebGPU path = native GPU', web.records, await runNative('gpu', '32'), 1e-4);
  const acc = web.acc;

  // A blank canvas: no prediction, a hint.
  check((await page.textContent('#prediction')) === '–', 'no prediction before drawing');
  // Draw a "1": one vertical stroke with pointer events.
  const box = await page.locator('#draw').boundingBox();
  await page.mouse.move(box.x + 140, box.y + 50);
  await page.mouse.down();
  for (let y = 50; y <= 230; y += 10) await page.mouse.move(box.x + 142, box.y + y);
  await page.mouse.up();
  await page.waitForFunction(() => /^\d$/.test(document.getElementById('prediction').textContent));
  const pred = await page.textContent('#prediction');
  const bars = await page.locator('#bars .bar').count();
  check(pred === '1', `a drawn vertical stroke reads as ${pred}`);
  check(bars === 3, `top-3 bars shown (${bars})`);
  await page.screenshot({ path: join(out, 'page.png'), fullPage: true });

  // Download the checkpoint.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  const ck = join(out, 'web.safetensors');
  await download.saveAs(ck);
  check(download.suggestedFilename().endsWith('.safetensors'), `downloaded ${download.suggestedFilename()}`);

  // A file that is not a checkpoint: a clear message in the page.
  await writeFile(join(out, 'junk.safetensors'), 'this is not a checkpoint');
  await page.setInputFiles('#load', join(out, 'junk.safetensors'));
  await page.waitForFunction(() => document.getElementById('error').textContent.length > 0);
  const err = await page.textContent('#error');
  check(/junk\.safetensors/.test(err) && /not a safetensors/.test(err), `junk is refused: ${err}`);

  // The downloaded checkpoint loads back and scores the same.
  await page.setInputFiles('#load', ck);
  await page.waitForFunction(() => /Loaded .*test accuracy/.test(document.getElementById('status').textContent), null, { timeout: 60000 });
  const acc2 = await page.textContent('#accuracy');
  check(acc2 === acc, `the downloaded checkpoint loads back with the same accuracy (${acc2})`);

  // Data files missing: a message naming the file, training off, never a blank page.
  await page.goto(nodataUrl);
  await page.waitForFunction(() => document.getElementById('error').textContent.length > 0, null, { timeout: 60000 });
  const nodata = await page.textContent('#error');
  check(/ubyte\.gz/.test(nodata) && /404/.test(nodata), `missing data is named: ${nodata}`);
  check(await page.locator('#train').isDisabled(), 'training is off without data');

  // A browser without WebGPU (no --enable-unsafe-webgpu: requestAdapter gives null here): the
  // notice says so, the CPU path is chosen and the WebGPU choice is off, and training works.
  const plain = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  try {
    const p2 = await plain.newPage();
    await p2.goto(url);
    await p2.waitForFunction(() => !document.getElementById('train').disabled &&
      !/Checking|compiling/.test(document.getElementById('notice').textContent), null, { timeout: 120000 });
    const text = await p2.textContent('#notice');
    check(/not available/.test(text) && (await p2.inputValue('#device')) === 'cpu' &&
      await p2.locator('#device-gpu').isDisabled(), `without WebGPU: ${text}`);
    await p2.fill('#limit', '640');
    await p2.fill('#epochs', '1');
    await p2.click('#train');
    await p2.waitForFunction(() => /Done/.test(document.getElementById('status').textContent) &&
      window.descentRecords.length === 1, null, { timeout: 120000 });
    check(/^\d+\.\d\d%$/.test(await p2.textContent('#accuracy')), 'without WebGPU, the CPU path trains');
  } finally {
    await plain.close();
  }
  if (failed) console.log(logs.join('\n'));
  await writeFile(join(out, 'accuracy.txt'), `${acc}\n`);
} finally {
  await browser.close();
  for (const child of servers) child.kill();
}
process.exit(failed ? 1 : 0);
