// Compiles the contracts the Rust load generator and benchmarks deploy, and writes their
// artifacts into tests/artifacts. test/artifacts.test.mjs checks they are up to date.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import solc from 'solc';
import { compile } from '../lib/compile.mjs';
import { repoRoot } from '../lib/node.mjs';

function artifact(file, name, source) {
  const c = compile(file)[name];
  return {
    contractName: name,
    source,
    compiler: `solc ${solc.version()} --optimize --optimize-runs 200`,
    abi: c.abi,
    bytecode: c.bytecode,
  };
}

export function artifacts() {
  return {
    'TestToken.json': artifact('TestToken.sol', 'TestToken', 'tests/e2e/contracts/TestToken.sol (OpenZeppelin ERC20 5.x, MIT)'),
    'Chaos.json': artifact('Chaos.sol', 'Chaos', 'tests/e2e/contracts/Chaos.sol'),
    'SwapHelper.json': artifact('SwapHelper.sol', 'SwapHelper', 'tests/e2e/contracts/SwapHelper.sol'),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [name, content] of Object.entries(artifacts())) {
    const out = path.join(repoRoot, 'tests', 'artifacts', name);
    writeFileSync(out, JSON.stringify(content, null, 2) + '\n');
    console.log(`wrote ${out}`);
  }
}
