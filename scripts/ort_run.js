#!/usr/bin/env node
// Reference runner on onnxruntime-node: run a model on .npy inputs, benchmark it, or make random inputs.
// Usage: see `node scripts/ort_run.js --help`. Output names are sanitized: [^A-Za-z0-9._-] -> '_'.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', 'node_modules', 'onnxruntime-node'));

const USAGE = `usage:
  ort_run.js run    MODEL [-i NAME=FILE.npy]... [--random] -o OUTDIR [--threads N]
  ort_run.js bench  MODEL [-i NAME=FILE.npy]... [--random] [--threads N] [--warmup W] [--iters K]
  ort_run.js inputs MODEL -o DIR [--seed S]
options for random inputs: --seed S, --shape NAME=1x3x224x224, --fill NAME=VALUE
  (symbolic dims -> 1; float: uniform[-1,1); integer: uniform in [0,100); bool: 0/1)`;

// ---------- .npy ----------
const DTYPES = { // numpy descr (without byte order) -> [ort type, TypedArray]
  f4: ['float32', Float32Array], f8: ['float64', Float64Array], i8: ['int64', BigInt64Array],
  i4: ['int32', Int32Array], u1: ['uint8', Uint8Array], i1: ['int8', Int8Array], b1: ['bool', Uint8Array],
};
const DESCR = { float32: '<f4', float64: '<f8', int64: '<i8', int32: '<i4', uint8: '|u1', int8: '|i1', bool: '|b1' };

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: fortran order not supported`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  if (descr[0] === '>') throw new Error(`${file}: big-endian not supported`);
  const dt = DTYPES[descr.slice(1)];
  if (!dt) throw new Error(`${file}: unsupported dtype ${descr}`);
  const count = shape.reduce((a, b) => a * b, 1);
  const off = hstart + hlen;
  const bytes = buf.subarray(off, off + count * dt[1].BYTES_PER_ELEMENT);
  const data = new dt[1](count);
  new Uint8Array(data.buffer).set(bytes); // copy: keeps alignment
  return { type: dt[0], data: dt[0] === 'bool' ? new Uint8Array(data) : data, dims: shape };
}

function writeNpy(file, type, data, dims) {
  const descr = DESCR[type];
  if (!descr) throw new Error(`cannot write dtype ${type}`);
  const shp = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shp}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1'); pre[6] = 1; pre[7] = 0; pre.writeUInt16LE(header.length, 8);
  const arr = type === 'bool' ? Uint8Array.from(data, v => (v ? 1 : 0)) : data;
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'),
    Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength)]));
}

const sanitize = name => name.replace(/[^A-Za-z0-9._-]/g, '_');

// ---------- args ----------
function parseArgs(argv) {
  const a = { cmd: argv[0], model: argv[1], inputs: [], shapes: {}, fills: {}, threads: 1,
    warmup: 5, iters: 20, seed: 0, random: false, out: null };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i], v = () => { if (i + 1 >= argv.length) throw new Error(`${k} needs a value`); return argv[++i]; };
    const kv = s => { const j = s.indexOf('='); if (j < 0) throw new Error(`${k} expects NAME=VALUE`); return [s.slice(0, j), s.slice(j + 1)]; };
    if (k === '-i') a.inputs.push(kv(v()));
    else if (k === '-o') a.out = v();
    else if (k === '--threads') a.threads = +v();
    else if (k === '--warmup') a.warmup = +v();
    else if (k === '--iters') a.iters = +v();
    else if (k === '--seed') a.seed = +v();
    else if (k === '--random') a.random = true;
    else if (k === '--json') { /* bench always prints JSON; accepted for CLI parity with onnxq */ }
    else if (k === '--shape') { const [n, s] = kv(v()); a.shapes[n] = s.split(/[x,]/).filter(t => t !== '').map(Number); }
    else if (k === '--fill') { const [n, s] = kv(v()); a.fills[n] = Number(s); }
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

// ---------- random inputs ----------
function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomInputs(session, a) {
  const feeds = {};
  session.inputMetadata.forEach((m, idx) => {
    if (!m.isTensor) throw new Error(`input ${m.name} is not a tensor`);
    const dims = a.shapes[m.name] || (m.shape || []).map(d => (typeof d === 'number' && d >= 0 ? d : 1));
    const n = dims.reduce((x, y) => x * y, 1);
    const rnd = mulberry32((a.seed * 1000003 + idx * 7919 + 1) >>> 0);
    const fill = a.fills[m.name];
    let data;
    switch (m.type) {
      case 'float32': case 'float64': {
        data = new (m.type === 'float32' ? Float32Array : Float64Array)(n);
        for (let i = 0; i < n; i++) data[i] = fill !== undefined ? fill : rnd() * 2 - 1;
        break;
      }
      case 'int64': data = new BigInt64Array(n);
        for (let i = 0; i < n; i++) data[i] = BigInt(fill !== undefined ? fill : Math.floor(rnd() * 100)); break;
      case 'int32': case 'int8': case 'uint8': {
        data = new { int32: Int32Array, int8: Int8Array, uint8: Uint8Array }[m.type](n);
        for (let i = 0; i < n; i++) data[i] = fill !== undefined ? fill : Math.floor(rnd() * 100); break;
      }
      case 'bool': data = new Uint8Array(n);
        for (let i = 0; i < n; i++) data[i] = fill !== undefined ? (fill ? 1 : 0) : (rnd() < 0.5 ? 1 : 0); break;
      default: throw new Error(`input ${m.name}: unsupported type ${m.type}`);
    }
    feeds[m.name] = { type: m.type, data, dims };
  });
  return feeds;
}

function buildFeeds(session, a) {
  const feeds = a.random || a.inputs.length === 0 ? randomInputs(session, a) : {};
  for (const [name, file] of a.inputs) feeds[name] = readNpy(file);
  const out = {};
  for (const [name, t] of Object.entries(feeds)) {
    if (!session.inputNames.includes(name)) throw new Error(`model has no input named '${name}'`);
    out[name] = new ort.Tensor(t.type, t.data, t.dims);
  }
  return out;
}

// ---------- main ----------
async function main() {
  const argv = process.argv.slice(2);
  if (argv.length < 2 || argv[0] === '--help' || argv[0] === '-h') { console.error(USAGE); process.exit(argv.length < 2 ? 2 : 0); }
  const a = parseArgs(argv);
  const session = await ort.InferenceSession.create(a.model, {
    intraOpNumThreads: a.threads, interOpNumThreads: 1,
    graphOptimizationLevel: 'all', executionMode: 'sequential', logSeverityLevel: 3,
  });
  if (a.cmd === 'inputs') {
    if (!a.out) throw new Error('inputs: -o DIR required');
    fs.mkdirSync(a.out, { recursive: true });
    const args = [];
    for (const [name, t] of Object.entries(randomInputs(session, a))) {
      const f = path.join(a.out, sanitize(name) + '.npy');
      writeNpy(f, t.type, t.data, t.dims);
      args.push(`-i ${name}=${f}`);
    }
    console.log(args.join(' '));
  } else if (a.cmd === 'run') {
    if (!a.out) throw new Error('run: -o OUTDIR required');
    const res = await session.run(buildFeeds(session, a));
    fs.mkdirSync(a.out, { recursive: true });
    for (const name of session.outputNames) {
      const t = res[name];
      writeNpy(path.join(a.out, sanitize(name) + '.npy'), t.type, t.data, t.dims);
    }
  } else if (a.cmd === 'bench') {
    const feeds = buildFeeds(session, a);
    for (let i = 0; i < a.warmup; i++) await session.run(feeds);
    const ms = [];
    for (let i = 0; i < a.iters; i++) {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    ms.sort((x, y) => x - y);
    const q = p => { const x = p * (ms.length - 1), lo = Math.floor(x), hi = Math.ceil(x); return ms[lo] + (ms[hi] - ms[lo]) * (x - lo); };
    const r3 = x => Math.round(x * 1000) / 1000;
    console.log(JSON.stringify({ median_ms: r3(q(0.5)), p10_ms: r3(q(0.1)), p90_ms: r3(q(0.9)), iters: a.iters }));
  } else throw new Error(`unknown command ${a.cmd}\n${USAGE}`);
}

main().catch(e => { console.error(`ort_run.js: ${e.message || e}`); process.exit(1); });
