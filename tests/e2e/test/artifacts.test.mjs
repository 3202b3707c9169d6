// The compiled artifacts committed for the Rust load generator match a fresh compile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { artifacts } from '../scripts/build-artifacts.mjs';
import { repoRoot } from '../lib/node.mjs';

test('committed artifacts are up to date (run: node scripts/build-artifacts.mjs)', () => {
  for (const [name, content] of Object.entries(artifacts())) {
    const committed = JSON.parse(readFileSync(path.join(repoRoot, 'tests', 'artifacts', name), 'utf8'));
    assert.equal(committed.bytecode, content.bytecode, `${name} bytecode`);
    assert.deepEqual(committed.abi, content.abi, `${name} abi`);
  }
});
