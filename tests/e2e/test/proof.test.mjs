// eth_getProof (EIP-1186) checked by an independent verifier: @ethereumjs/mpt rebuilds the
// trie from the returned nodes and must find the same account and slot values under the
// block's stateRoot. foundry's `cast proof` must read the same response.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ethers } from 'ethers';
import { verifyMerkleProof } from '@ethereumjs/mpt';
import { RLP } from '@ethereumjs/rlp';
import { hexToBytes, bytesToHex } from '@ethereumjs/util';
import { startNode, stopNode, removeDatadir, castBin, rpc, rpcRaw } from '../lib/node.mjs';
import { compile } from '../lib/compile.mjs';

const KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const EMPTY_ROOT = '0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421';
const EMPTY_CODE = '0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470';

let node;
let provider;
let wallet;
let tokenAddress;
const holders = [];

/** Slot of `holder` in OpenZeppelin 5's `_balances` mapping (slot 0). */
function balanceSlot(holder) {
  return ethers.keccak256(ethers.AbiCoder.defaultAbiCoder().encode(['address', 'uint256'], [holder, 0]));
}

/** A proof of `address` and `slots` at a block that stays the head while we ask. */
async function proofAtHead(address, slots) {
  for (let i = 0; i < 10; i++) {
    const block = await rpc(node.url, 'eth_getBlockByNumber', ['latest', false]);
    try {
      const proof = await rpc(node.url, 'eth_getProof', [address, slots, block.number]);
      return { proof, block };
    } catch (e) {
      if (!/no longer the head|not available/.test(e.message)) throw e;
    }
  }
  throw new Error('the head kept moving');
}

/** Verifies an account proof independently; returns the decoded account fields or null. */
async function verifyAccount(stateRoot, address, proof) {
  const key = hexToBytes(ethers.keccak256(address));
  const leaf = await verifyMerkleProof(key, proof.accountProof.map(hexToBytes), {
    root: hexToBytes(stateRoot),
  });
  if (leaf === null) return null;
  const [nonce, balance, storageRoot, codeHash] = RLP.decode(leaf);
  return {
    nonce: BigInt(nonce.length ? bytesToHex(nonce) : 0),
    balance: BigInt(balance.length ? bytesToHex(balance) : 0),
    storageRoot: bytesToHex(storageRoot),
    codeHash: bytesToHex(codeHash),
  };
}

async function verifySlot(storageRoot, slot, nodes) {
  const key = hexToBytes(ethers.keccak256(ethers.zeroPadValue(slot, 32)));
  const value = await verifyMerkleProof(key, nodes.map(hexToBytes), { root: hexToBytes(storageRoot) });
  if (value === null) return 0n;
  const raw = RLP.decode(value);
  return BigInt(raw.length ? bytesToHex(raw) : 0);
}

before(async () => {
  node = await startNode();
  provider = new ethers.JsonRpcProvider(node.url, undefined, { staticNetwork: true, pollingInterval: 100, cacheTimeout: -1 });
  wallet = new ethers.Wallet(KEY, provider);
  const { TestToken } = compile('TestToken.sol');
  const factory = new ethers.ContractFactory(TestToken.abi, TestToken.bytecode, wallet);
  const token = await factory.deploy(ethers.parseUnits('1000000', 18));
  await token.waitForDeployment();
  tokenAddress = await token.getAddress();
  for (let i = 1; i <= 3; i++) {
    const to = ethers.Wallet.createRandom().address;
    holders.push(to);
    await (await token.transfer(to, ethers.parseUnits(String(i * 7), 18))).wait();
  }
});

after(async () => {
  provider?.destroy();
  if (node) {
    await stopNode(node);
    removeDatadir(node.datadir);
  }
});

test('account and storage proofs of an ERC-20 verify against the block state root', async () => {
  const slots = [balanceSlot(wallet.address), ...holders.map(balanceSlot), ethers.toBeHex(12345, 32)];
  const { proof, block } = await proofAtHead(tokenAddress, slots);
  const account = await verifyAccount(block.stateRoot, tokenAddress, proof);
  assert.ok(account, 'the token account is proven to exist');
  assert.equal(account.nonce, BigInt(proof.nonce));
  assert.equal(account.balance, BigInt(proof.balance));
  assert.equal(account.storageRoot, proof.storageHash);
  assert.equal(account.codeHash, proof.codeHash);
  assert.equal(proof.codeHash, ethers.keccak256(await provider.getCode(tokenAddress)));
  assert.notEqual(proof.storageHash, EMPTY_ROOT);

  assert.equal(proof.storageProof.length, slots.length);
  for (const [i, entry] of proof.storageProof.entries()) {
    const proven = await verifySlot(proof.storageHash, slots[i], entry.proof);
    assert.equal(proven, BigInt(entry.value), `slot ${i} proven value matches the response`);
    // No transaction touches the token any more: the head's value is the proven block's.
    const read = await provider.getStorage(tokenAddress, slots[i], 'latest');
    assert.equal(proven, BigInt(read), `slot ${i} matches eth_getStorageAt`);
  }
  // The holders' balances are what we sent; the unused slot is proven absent (zero).
  for (let i = 0; i < holders.length; i++) {
    assert.equal(BigInt(proof.storageProof[i + 1].value), ethers.parseUnits(String((i + 1) * 7), 18));
  }
  assert.equal(BigInt(proof.storageProof[slots.length - 1].value), 0n);
});

test('an externally owned account and an absent account are proven', async () => {
  const { proof, block } = await proofAtHead(wallet.address, []);
  const account = await verifyAccount(block.stateRoot, wallet.address, proof);
  // Nothing of this wallet is in flight, so its nonce and balance are the same at the head
  // (the node keeps the head's state only, and the head may have moved since the proof).
  assert.equal(account.nonce, BigInt(await provider.getTransactionCount(wallet.address, 'latest')));
  assert.equal(account.balance, await provider.getBalance(wallet.address, 'latest'));
  assert.equal(account.storageRoot, EMPTY_ROOT);
  assert.equal(account.codeHash, EMPTY_CODE);

  const nobody = ethers.Wallet.createRandom().address;
  const absent = await proofAtHead(nobody, [ethers.ZeroHash]);
  assert.equal(await verifyAccount(absent.block.stateRoot, nobody, absent.proof), null, 'proof of absence');
  assert.equal(BigInt(absent.proof.balance), 0n);
  assert.equal(absent.proof.storageHash, EMPTY_ROOT);
  assert.equal(absent.proof.storageProof[0].value, '0x0');
});

test('a tampered proof fails the independent verifier', async () => {
  const { proof, block } = await proofAtHead(tokenAddress, []);
  const nodes = proof.accountProof.slice();
  const last = hexToBytes(nodes[nodes.length - 1]);
  last[last.length - 1] ^= 1;
  nodes[nodes.length - 1] = bytesToHex(last);
  await assert.rejects(verifyAccount(block.stateRoot, tokenAddress, { accountProof: nodes }));
});

test('cast proof reads the response', async () => {
  const out = execFileSync(castBin(), ['proof', tokenAddress, balanceSlot(holders[0]), '--rpc-url', node.url], {
    encoding: 'utf8',
  });
  const parsed = JSON.parse(out);
  assert.equal(ethers.getAddress(parsed.address), tokenAddress);
  assert.equal(BigInt(parsed.storageProof[0].value), ethers.parseUnits('7', 18));
});

test('bad eth_getProof requests get clear errors and the node keeps serving', async () => {
  const tooMany = Array.from({ length: 1025 }, (_, i) => ethers.toBeHex(i, 32));
  const cases = [
    ['0x1234', []],
    [tokenAddress, 'not-a-list'],
    [tokenAddress, tooMany],
    [tokenAddress, [], '0xffffffff'],
  ];
  for (const params of cases) {
    const { json } = await rpcRaw(node.url, { jsonrpc: '2.0', id: 1, method: 'eth_getProof', params });
    assert.ok(json.error, `expected an error for ${JSON.stringify(params).slice(0, 80)}`);
    assert.ok(json.error.message.length > 0);
  }
  assert.ok((await provider.getBlockNumber()) >= 0);
});
