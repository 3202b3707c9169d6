// Compiles the contracts the Rust load generator and benchmarks deploy, and writes their
// artifacts into crates/loadgen/artifacts. test/artifacts.test.mjs checks they are up to date.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import solc from 'solc';
import { compile } from '../lib/compile.mjs';
import { repoRoot } from '../lib/node.mjs';

export function artifacts() {
  const { TestToken } = compile('TestToken.sol');
  return {
    'TestToken.json': {
      contractName: 'TestToken',
      source: 'tests/e2e/contracts/TestToken.sol (OpenZeppelin ERC20 5.x, MIT)',
      compiler: `solc ${solc.version()} --optimize --optimize-runs 200`,
      abi: TestToken.abi,
      bytecode: TestToken.bytecode,
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const [name, content] of Object.entries(artifacts())) {
    const out = path.join(repoRoot, 'crates', 'loadgen', 'artifacts', name);
    writeFileSync(out, JSON.stringify(content, null, 2) + '\n');
    console.log(`wrote ${out}`);
  }
}
