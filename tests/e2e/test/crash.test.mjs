// SIGKILL under load: every block the node reported before the kill is there after restart,
// with the same hash, and every receipt it reported is there too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ethers } from 'ethers';
import { startNode, stopNode, removeDatadir, rpc, sleep } from '../lib/node.mjs';

const KEYS = [
  '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6',
  '0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a',
  '0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba',
];

test('SIGKILL under load loses nothing that was reported committed', async () => {
  let node = await startNode();
  try {
    const provider = new ethers.JsonRpcProvider(node.url, undefined, { staticNetwork: true, cacheTimeout: -1 });
    const wallets = KEYS.map((k) => new ethers.Wallet(k, provider));
    const feeData = await provider.getFeeData();
    const nonces = await Promise.all(wallets.map((w) => provider.getTransactionCount(w.address)));
    const sink = ethers.Wallet.createRandom().address;

    // Submit a bounded stream of transfers while watching blocks.
    const sent = [];
    const reportedBlocks = new Map();
    const reportedReceipts = new Map();
    const deadline = Date.now() + 4000;
    let round = 0;
    while (Date.now() < deadline && round < 200) {
      for (let i = 0; i < wallets.length; i++) {
        const tx = await wallets[i].signTransaction({
          to: sink, value: 1n, nonce: nonces[i]++, gasLimit: 21000, chainId: 1337n, type: 2,
          maxFeePerGas: feeData.maxFeePerGas * 2n, maxPriorityFeePerGas: feeData.maxPriorityFeePerGas,
        });
        sent.push(await rpc(node.url, 'eth_sendRawTransaction', [tx]));
      }
      round++;
      const head = await rpc(node.url, 'eth_getBlockByNumber', ['latest', false]);
      reportedBlocks.set(Number(head.number), head.hash);
      const probe = sent[Math.floor(sent.length / 2)];
      const r = await rpc(node.url, 'eth_getTransactionReceipt', [probe]);
      if (r) reportedReceipts.set(probe, r.blockHash);
      await sleep(20);
    }
    assert.ok(reportedReceipts.size > 0, 'some transactions were mined before the kill');
    await stopNode(node, 'SIGKILL');
    provider.destroy();

    node = await startNode({ datadir: node.datadir });
    for (const [number, hash] of reportedBlocks) {
      const b = await rpc(node.url, 'eth_getBlockByNumber', [ethers.toQuantity(number), false]);
      assert.ok(b, `block ${number} survived`);
      assert.equal(b.hash, hash, `block ${number} has the same hash`);
    }
    for (const [txHash, blockHash] of reportedReceipts) {
      const r = await rpc(node.url, 'eth_getTransactionReceipt', [txHash]);
      assert.equal(r?.blockHash, blockHash, `receipt of ${txHash} survived`);
    }
    // The state after restart is the state of the head block: balance equals the transfers it holds.
    const head = Number(await rpc(node.url, 'eth_blockNumber'));
    let mined = 0;
    for (let n = 1; n <= head; n++) {
      const b = await rpc(node.url, 'eth_getBlockByNumber', [ethers.toQuantity(n), true]);
      mined += b.transactions.filter((t) => t.to?.toLowerCase() === sink.toLowerCase()).length;
    }
    assert.equal(BigInt(await rpc(node.url, 'eth_getBalance', [sink, 'latest'])), BigInt(mined));
    // And it keeps producing blocks.
    await sleep(1200);
    assert.ok(Number(await rpc(node.url, 'eth_blockNumber')) > head);
  } finally {
    await stopNode(node);
    removeDatadir(node.datadir);
  }
});
