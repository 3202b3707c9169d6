// Starts and stops a real `pharos node --dev` process for the tests.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..', '..');

/** Path of the pharos binary: $PHAROS_BIN, else the debug build in the target directory. */
export function pharosBin() {
  if (process.env.PHAROS_BIN) return process.env.PHAROS_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(repoRoot, 'target');
  for (const profile of ['debug', 'release']) {
    const p = path.join(target, profile, 'pharos');
    if (existsSync(p)) return p;
  }
  throw new Error('pharos binary not found: build it (cargo build) or set PHAROS_BIN');
}

export function castBin() {
  return path.join(here, '..', 'node_modules', '@foundry-rs', 'cast-linux-amd64', 'bin', 'cast');
}

export function anvilBin() {
  return path.join(here, '..', 'node_modules', '@foundry-rs', 'anvil-linux-amd64', 'bin', 'anvil');
}

export function freshDatadir(name = 'pharos-e2e-') {
  return mkdtempSync(path.join(tmpdir(), name));
}

/**
 * Starts a dev node on a free port. Resolves once it prints its RPC address.
 * @returns {{url: string, ws: string, proc: import('node:child_process').ChildProcess, datadir: string, log: () => string}}
 */
export async function startNode({ datadir = freshDatadir(), args = [], port = 0 } = {}) {
  const proc = spawn(
    pharosBin(),
    ['node', '--dev', '--datadir', datadir, '--http.port', String(port), ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' } },
  );
  let output = '';
  proc.stderr.on('data', (d) => { output += d; });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start in time:\n${output}`)), 60_000);
    proc.stdout.on('data', (d) => {
      output += d;
      const m = /JSON-RPC: http:\/\/(\S+)/.exec(output);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`node exited with ${code}:\n${output}`)); });
  });
  proc.removeAllListeners('exit');
  return { url: `http://${url}`, ws: `ws://${url}`, proc, datadir, log: () => output };
}

/** Sends SIGTERM and waits for the process to exit. */
export async function stopNode(node, signal = 'SIGTERM') {
  if (node.proc.exitCode !== null || node.proc.signalCode !== null) return;
  await new Promise((resolve) => {
    node.proc.once('exit', resolve);
    node.proc.kill(signal);
  });
}

export function removeDatadir(dir) {
  rmSync(dir, { recursive: true, force: true });
}

/** Raw JSON-RPC over HTTP: returns the parsed response body (object or array). */
export async function rpcRaw(url, body) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  try { return { status: res.status, json: JSON.parse(text) }; } catch { return { status: res.status, text }; }
}

export async function rpc(url, method, params = []) {
  const { json } = await rpcRaw(url, { jsonrpc: '2.0', id: 1, method, params });
  if (json.error) {
    const e = new Error(json.error.message);
    e.code = json.error.code;
    e.data = json.error.data;
    throw e;
  }
  return json.result;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
