// The Pharos compliance system contracts as a client sees them: their fixed addresses and the
// ABIs compiled with solc-js from crates/compliance/solidity/IPharosCompliance.sol (the file the
// node's own bindings are generated from), plus a small anvil launcher for gas comparisons.
import solc from 'solc';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { repoRoot, anvilBin } from './node.mjs';

export const INTERFACE_SOURCE = path.join(repoRoot, 'crates', 'compliance', 'solidity', 'IPharosCompliance.sol');

export const ADDRESSES = {
  IIdentityRegistry: '0x7068000000000000000000000000000000000001',
  ITrustedIssuersRegistry: '0x7068000000000000000000000000000000000002',
  IZkCredentialVerifier: '0x7068000000000000000000000000000000000003',
  IAssetCompliance: '0x7068000000000000000000000000000000000004',
  ISanctionsList: '0x7068000000000000000000000000000000000005',
};

let cached;

/** {IIdentityRegistry: abi, ...} for every interface in IPharosCompliance.sol. */
export function complianceAbis() {
  if (cached) return cached;
  const file = 'IPharosCompliance.sol';
  const input = {
    language: 'Solidity',
    sources: { [file]: { content: readFileSync(INTERFACE_SOURCE, 'utf8') } },
    settings: { outputSelection: { '*': { '*': ['abi'] } } },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (out.errors || []).filter((e) => e.severity === 'error');
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join('\n'));
  cached = Object.fromEntries(Object.entries(out.contracts[file]).map(([name, c]) => [name, c.abi]));
  for (const name of Object.keys(ADDRESSES)) {
    if (!cached[name]) throw new Error(`${name} missing from ${INTERFACE_SOURCE}`);
  }
  return cached;
}

/** Compiles one inline Solidity source; returns {Name: {abi, bytecode}}. */
export function compileInline(source, file = 'Inline.sol') {
  const input = {
    language: 'Solidity',
    sources: { [file]: { content: source } },
    settings: { optimizer: { enabled: true, runs: 200 }, outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (out.errors || []).filter((e) => e.severity === 'error');
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join('\n'));
  return Object.fromEntries(Object.entries(out.contracts[file])
    .map(([name, c]) => [name, { abi: c.abi, bytecode: '0x' + c.evm.bytecode.object }]));
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts anvil (same dev mnemonic accounts) on a free port; resolves with {url, proc}. */
export async function startAnvil(args = []) {
  const port = await freePort();
  const proc = spawn(anvilBin(), ['--port', String(port), '--silent', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`anvil exited with ${proc.exitCode}:\n${output}`);
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      });
      if (res.ok) return { url, proc };
    } catch { /* not up yet */ }
    if (Date.now() > deadline) { proc.kill(); throw new Error(`anvil did not start:\n${output}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function stopAnvil(anvil) {
  if (!anvil || anvil.proc.exitCode !== null || anvil.proc.signalCode !== null) return;
  await new Promise((resolve) => { anvil.proc.once('exit', resolve); anvil.proc.kill('SIGTERM'); });
}
