// Compiles Solidity with solc-js, resolving imports from node_modules (OpenZeppelin, ...).
import solc from 'solc';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.join(here, '..', 'node_modules');
const contracts = path.join(here, '..', 'contracts');

function findImports(importPath) {
  for (const base of [modules, contracts]) {
    const p = path.join(base, importPath);
    if (existsSync(p)) return { contents: readFileSync(p, 'utf8') };
  }
  return { error: `not found: ${importPath}` };
}

const cache = new Map();

/** Compiles contracts/<file> and returns {Name: {abi, bytecode}} for every contract in it. */
export function compile(file) {
  if (cache.has(file)) return cache.get(file);
  const input = {
    language: 'Solidity',
    sources: { [file]: { content: readFileSync(path.join(contracts, file), 'utf8') } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (out.errors || []).filter((e) => e.severity === 'error');
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join('\n'));
  const result = {};
  for (const [name, c] of Object.entries(out.contracts[file])) {
    result[name] = { abi: c.abi, bytecode: '0x' + c.evm.bytecode.object };
  }
  cache.set(file, result);
  return result;
}
