// Bad input gets a clear JSON-RPC error, and the node keeps serving with nothing lost.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ethers } from 'ethers';
import { startNode, stopNode, removeDatadir, rpc, rpcRaw } from '../lib/node.mjs';

let node;
let provider;
const KEY = '0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97';

before(async () => {
  node = await startNode();
  provider = new ethers.JsonRpcProvider(node.url, undefined, { staticNetwork: true, pollingInterval: 100, cacheTimeout: -1 });
});
after(async () => {
  provider?.destroy();
  await stopNode(node);
  removeDatadir(node.datadir);
});

async function expectError(method, params, code, pattern) {
  await assert.rejects(rpc(node.url, method, params), (e) => {
    assert.equal(e.code, code, `${method}: code ${e.code} (${e.message})`);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

test('protocol-level garbage', async () => {
  let r = await rpcRaw(node.url, '{"jsonrpc":"2.0","id":1,"method":');
  assert.equal(r.json.error.code, -32700);
  r = await rpcRaw(node.url, 'null');
  assert.ok(r.json.error);
  r = await rpcRaw(node.url, { jsonrpc: '2.0', id: 1, method: 'eth_fillTransaction', params: [{}] });
  assert.equal(r.json.error.code, -32601, 'unknown methods answer -32601');
  await expectError('eth_getBalance', ['not-an-address', 'latest'], -32602);
  await expectError('eth_getBalance', [], -32602);
  await expectError('eth_getBlockByNumber', [{ nope: 1 }, false], -32602);
  await expectError('eth_getTransactionReceipt', ['0x1234'], -32602);
  // Subscriptions need a WebSocket; over HTTP they are refused with an error.
  await assert.rejects(rpc(node.url, 'eth_subscribe', ['newHeads']), (e) => typeof e.code === 'number');
});

test('batches: mixed, empty and over the limit', async () => {
  const batch = [
    { jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] },
    { jsonrpc: '2.0', id: 2, method: 'no_such_method', params: [] },
    { jsonrpc: '2.0', id: 3, method: 'eth_blockNumber', params: [] },
  ];
  let r = await rpcRaw(node.url, batch);
  assert.equal(r.json.length, 3);
  assert.equal(r.json.find((x) => x.id === 1).result, '0x539');
  assert.equal(r.json.find((x) => x.id === 2).error.code, -32601);
  r = await rpcRaw(node.url, []);
  assert.ok(r.json.error, 'empty batch is an error');
  const huge = Array.from({ length: 10_001 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'eth_chainId', params: [] }));
  r = await rpcRaw(node.url, huge);
  const err = Array.isArray(r.json) ? r.json[0].error : r.json.error;
  assert.ok(err, 'batch over the limit is refused');
  assert.match(err.message, /batch/i);
  // Over the body limit: refused with 413, or the connection is closed before the upload ends.
  try {
    r = await rpcRaw(node.url, { jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: ['x'.repeat(11 * 1024 * 1024)] });
    assert.ok(r.status === 413 || r.json?.error, 'oversized body refused');
  } catch (e) {
    assert.match(String(e.cause?.code ?? e.message), /ECONNRESET|EPIPE|UND_ERR|fetch failed|other side closed/);
  }
  assert.equal(await rpc(node.url, 'eth_chainId'), '0x539', 'still serving');
});

test('bad transactions get geth errors and do not disturb accepted ones', async () => {
  const wallet = new ethers.Wallet(KEY, provider);
  const first = await wallet.sendTransaction({ to: ethers.Wallet.createRandom().address, value: 1n });
  await first.wait();
  const good = await wallet.sendTransaction({ to: ethers.Wallet.createRandom().address, value: 1n });

  await expectError('eth_sendRawTransaction', ['0x'], -32000, /rlp|empty/);
  await expectError('eth_sendRawTransaction', ['0xdeadbeef'], -32000);
  await expectError('eth_sendRawTransaction', ['0x02f8'], -32000, /rlp/);
  await expectError('eth_sendRawTransaction', ['0x03c0'], -32000, /transaction type not supported/);
  await expectError('eth_sendRawTransaction', ['0x' + 'ff'.repeat(200_000)], -32000, /oversized/);
  await expectError('eth_sendRawTransaction', [123], -32602);

  const fee = await provider.getFeeData();
  const base = { to: wallet.address, value: 1n, gasLimit: 21000, maxFeePerGas: fee.maxFeePerGas, maxPriorityFeePerGas: fee.maxPriorityFeePerGas, type: 2 };
  const sign = (over) => wallet.signTransaction({ ...base, chainId: 1337n, nonce: good.nonce + 1, ...over });
  await expectError('eth_sendRawTransaction', [await sign({ chainId: 1n })], -32000, /invalid chain id for signer/);
  await expectError('eth_sendRawTransaction', [await sign({ nonce: 0 })], -32000, /nonce too low/);
  await expectError('eth_sendRawTransaction', [await sign({ gasLimit: 20000 })], -32000, /intrinsic gas too low/);
  await expectError('eth_sendRawTransaction', [await sign({ value: ethers.parseEther('100000000000') })], -32000, /insufficient funds for gas \* price \+ value/);
  await expectError('eth_sendRawTransaction', [await sign({ maxFeePerGas: 1n, maxPriorityFeePerGas: 1n })], -32000, /max fee per gas less than block base fee/);
  // A corrupted signature: flip bytes of s.
  const raw = ethers.getBytes(await sign({}));
  raw[raw.length - 5] ^= 0xff;
  await assert.rejects(rpc(node.url, 'eth_sendRawTransaction', [ethers.hexlify(raw)]), (e) => e.code === -32000);

  // Replacement: same nonce, same fee is underpriced.
  const queued = await sign({ nonce: good.nonce + 50 });
  await rpc(node.url, 'eth_sendRawTransaction', [queued]);
  await expectError('eth_sendRawTransaction', [queued], -32000, /already known/);
  await expectError('eth_sendRawTransaction', [await sign({ nonce: good.nonce + 50, value: 2n })], -32000, /replacement transaction underpriced/);
  const status = await rpc(node.url, 'txpool_status');
  assert.ok(BigInt(status.queued) >= 1n);

  // Everything accepted before still lands.
  const receipt = await good.wait();
  assert.equal(receipt.status, 1);
  assert.ok(Number(await rpc(node.url, 'eth_blockNumber')) >= receipt.blockNumber);
});

test('a batch of raw transactions: each gets its own answer, in order', async () => {
  const wallet = new ethers.Wallet('0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6', provider);
  const fee = await provider.getFeeData();
  const start = await provider.getTransactionCount(wallet.address, 'pending');
  const raws = [];
  for (let i = 0; i < 8; i++) {
    raws.push(await wallet.signTransaction({
      to: ethers.Wallet.createRandom().address, value: 1n, gasLimit: 21000, chainId: 1337n, type: 2,
      nonce: start + i, maxFeePerGas: fee.maxFeePerGas, maxPriorityFeePerGas: fee.maxPriorityFeePerGas,
    }));
  }
  raws.splice(3, 0, '0x02c0ffee');
  const batch = raws.map((raw, id) => ({ jsonrpc: '2.0', id, method: 'eth_sendRawTransaction', params: [raw] }));
  const { json } = await rpcRaw(node.url, batch);
  const byId = new Map(json.map((r) => [r.id, r]));
  assert.equal(byId.size, 9);
  assert.equal(byId.get(3).error.code, -32000);
  for (const [id, r] of byId) {
    if (id === 3) continue;
    assert.equal(r.result, ethers.keccak256(raws[id]), `answer ${id} is the hash of its own transaction`);
  }
  const last = await provider.waitForTransaction(ethers.keccak256(raws[8]));
  assert.equal(last.status, 1);
});

test('log queries over the range limit and unknown blocks', async () => {
  const r = await rpc(node.url, 'eth_getLogs', [{ fromBlock: '0x0', toBlock: 'latest' }]);
  assert.ok(Array.isArray(r));
  const head = Number(await rpc(node.url, 'eth_blockNumber'));
  assert.ok(head >= 2);
  assert.equal(await rpc(node.url, 'eth_getBlockByNumber', ['0xffffffff', false]), null);
  await expectError('eth_getBalance', [ethers.ZeroAddress, '0xffffffff'], -32000, /header not found/);
  await expectError('eth_getLogs', [{ fromBlock: ethers.toQuantity(head), toBlock: '0x1' }], -32602, /invalid block range/);
});
