// A started `pharos node --dev` driven by ethers and foundry's cast, as a user would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ethers } from 'ethers';
import { startNode, stopNode, removeDatadir, castBin, rpc, sleep } from '../lib/node.mjs';
import { compile } from '../lib/compile.mjs';

const KEYS = [
  '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
  '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
];

let node;
let provider;
let wallets;
let token;
let tokenAddress;
let transferTx;

function cast(...args) {
  return execFileSync(castBin(), [...args, '--rpc-url', node.url], { encoding: 'utf8' }).trim();
}

before(async () => {
  node = await startNode();
  provider = new ethers.JsonRpcProvider(node.url, undefined, { staticNetwork: true, pollingInterval: 100, cacheTimeout: -1 });
  wallets = KEYS.map((k) => new ethers.Wallet(k, provider));
});

after(async () => {
  provider?.destroy();
  if (node) {
    await stopNode(node);
    removeDatadir(node.datadir);
  }
});

test('chain identity and genesis allocation', async () => {
  const net = await provider.getNetwork();
  assert.equal(net.chainId, 1337n);
  assert.equal(await rpc(node.url, 'net_version'), '1337');
  const accounts = await rpc(node.url, 'eth_accounts');
  assert.equal(accounts.length, 10);
  assert.equal(ethers.getAddress(accounts[0]), wallets[0].address);
  // 10,000,000 tokens each for the test accounts (minus what other tests spent).
  const b = await provider.getBalance(wallets[2].address);
  assert.ok(b > ethers.parseEther('9999000'));
  const block = await provider.getBlock('latest');
  assert.ok(block.baseFeePerGas > 0n, 'blocks carry baseFeePerGas');
  assert.ok(block.gasLimit >= 1_000_000_000n);
});

test('deploy an OpenZeppelin ERC-20 and transfer with ethers', async () => {
  const { TestToken } = compile('TestToken.sol');
  const factory = new ethers.ContractFactory(TestToken.abi, TestToken.bytecode, wallets[0]);
  token = await factory.deploy(ethers.parseUnits('1000000', 18));
  await token.waitForDeployment();
  tokenAddress = await token.getAddress();
  assert.notEqual(await provider.getCode(tokenAddress), '0x');
  assert.equal(await token.symbol(), 'TST');

  transferTx = await token.transfer(wallets[1].address, ethers.parseUnits('1000', 18));
  const receipt = await transferTx.wait();
  assert.equal(receipt.status, 1);
  assert.equal(receipt.logs.length, 1);
  assert.equal(await token.balanceOf(wallets[1].address), ethers.parseUnits('1000', 18));
  assert.equal(await token.balanceOf(wallets[0].address), ethers.parseUnits('999000', 18));

  const tx = await provider.getTransaction(transferTx.hash);
  assert.equal(tx.blockNumber, receipt.blockNumber);
  const block = await provider.getBlock(receipt.blockNumber, true);
  assert.ok(block.transactions.includes(transferTx.hash));
  const byHash = await provider.getBlock(block.hash);
  assert.equal(byHash.number, block.number);
  const receipts = await rpc(node.url, 'eth_getBlockReceipts', [ethers.toQuantity(receipt.blockNumber)]);
  assert.ok(receipts.some((r) => r.transactionHash === transferTx.hash));
});

test('query logs with filters', async () => {
  const transfers = await token.queryFilter(token.filters.Transfer(), 0, 'latest');
  assert.equal(transfers.length, 2, 'mint and transfer');
  assert.equal(transfers[1].args.to, wallets[1].address);
  const toOne = await token.queryFilter(token.filters.Transfer(null, wallets[1].address));
  assert.equal(toOne.length, 1);
  const none = await provider.getLogs({ address: wallets[2].address, fromBlock: 0, toBlock: 'latest' });
  assert.equal(none.length, 0);
  const topicOnly = await provider.getLogs({ topics: [ethers.id('Transfer(address,address,uint256)')], fromBlock: 0 });
  assert.ok(topicOnly.length >= 2);
  const byHash = await provider.getLogs({ blockHash: transfers[1].blockHash });
  assert.ok(byHash.some((l) => l.transactionHash === transfers[1].transactionHash));
});

test('estimate gas, and a transaction with exactly the estimate succeeds', async () => {
  const to = ethers.Wallet.createRandom().address;
  const est = await token.transfer.estimateGas(to, 5n);
  assert.ok(est > 30_000n && est < 80_000n, `estimate ${est}`);
  const tx = await token.transfer(to, 5n, { gasLimit: est });
  const r = await tx.wait();
  assert.equal(r.status, 1);
  assert.ok(r.gasUsed <= est);
  const plain = await provider.estimateGas({ from: wallets[0].address, to, value: 1n });
  assert.equal(plain, 21000n);
});

test('revert reasons reach the client', async () => {
  const { Reverter } = compile('TestToken.sol');
  const r = await new ethers.ContractFactory(Reverter.abi, Reverter.bytecode, wallets[0]).deploy();
  await r.waitForDeployment();
  await assert.rejects(r.failWithReason.staticCall(), (e) => {
    assert.equal(e.code, 'CALL_EXCEPTION');
    assert.equal(e.reason, 'reverter says no');
    return true;
  });
  await assert.rejects(r.failWithCustom.staticCall(), (e) => {
    assert.equal(e.revert?.name, 'Custom');
    assert.equal(e.revert?.args[0], 42n);
    return true;
  });
  await assert.rejects(r.failWithPanic.staticCall(), (e) => {
    assert.equal(e.code, 'CALL_EXCEPTION');
    assert.match(String(e.reason ?? e.shortMessage), /ARRAY_RANGE_ERROR|out-of-bounds/i);
    return true;
  });
  // Raw JSON-RPC: code 3, the geth message, and the revert data.
  const data = r.interface.encodeFunctionData('failWithReason');
  await assert.rejects(
    rpc(node.url, 'eth_call', [{ to: await r.getAddress(), data }, 'latest']),
    (e) => e.code === 3 && e.message === 'execution reverted: reverter says no' && e.data.startsWith('0x08c379a0'),
  );
  // estimateGas of a reverting call says why.
  await assert.rejects(r.failWithReason.estimateGas(), (e) => e.reason === 'reverter says no');
  // A mined reverting transaction has status 0.
  const tx = await r.failWithState({ gasLimit: 100_000 });
  await assert.rejects(tx.wait(), (e) => e.code === 'CALL_EXCEPTION' && e.receipt?.status === 0);
  // ERC-20 custom error from OpenZeppelin.
  await assert.rejects(token.connect(wallets[2]).transfer.staticCall(wallets[0].address, 1n), (e) => e.revert?.name === 'ERC20InsufficientBalance');
});

test('native value transfers, legacy and EIP-2930 transactions', async () => {
  const to = ethers.Wallet.createRandom().address;
  const tx = await wallets[1].sendTransaction({ to, value: ethers.parseEther('1.5') });
  await tx.wait();
  assert.equal(await provider.getBalance(to), ethers.parseEther('1.5'));
  const gasPrice = (await provider.getFeeData()).gasPrice;
  const legacy = await wallets[1].sendTransaction({ to, value: 1n, type: 0, gasPrice });
  assert.equal((await legacy.wait()).status, 1);
  const al = await wallets[1].sendTransaction({ to, value: 1n, type: 1, gasPrice, accessList: [{ address: to, storageKeys: [] }] });
  assert.equal((await al.wait()).status, 1);
  assert.equal(await provider.getBalance(to), ethers.parseEther('1.5') + 2n);
  const fees = await provider.send('eth_feeHistory', ['0x5', 'latest', [25, 75]]);
  assert.equal(fees.baseFeePerGas.length, 6);
  assert.equal(fees.reward.length, 5);
});

test('foundry cast works unmodified', async () => {
  assert.equal(cast('chain-id'), '1337');
  const bal = cast('call', tokenAddress, 'balanceOf(address)(uint256)', wallets[1].address);
  assert.match(bal, /^1000000000000000000000/);
  const out = cast('send', tokenAddress, 'transfer(address,uint256)', wallets[2].address, '7', '--private-key', KEYS[1], '--json');
  const receipt = JSON.parse(out);
  assert.equal(receipt.status, '0x1');
  assert.equal(cast('call', tokenAddress, 'balanceOf(address)(uint256)', wallets[2].address), '7');
  const fetched = JSON.parse(cast('receipt', receipt.transactionHash, '--json'));
  assert.equal(fetched.blockHash, receipt.blockHash);
  const logs = cast('logs', '--address', tokenAddress, '--from-block', '0', 'Transfer(address indexed,address indexed,uint256)');
  assert.ok(logs.includes(receipt.transactionHash));
  // Unlocked dev account: cast send --unlocked uses eth_sendTransaction.
  const unlocked = JSON.parse(cast('send', '--unlocked', '--from', wallets[2].address, wallets[0].address, '--value', '1', '--json'));
  assert.equal(unlocked.status, '0x1');
  const access = JSON.parse(cast('access-list', tokenAddress, 'transfer(address,uint256)', wallets[2].address, '1', '--from', wallets[1].address, '--json'));
  const entry = access.accessList.find((i) => i.address.toLowerCase() === tokenAddress.toLowerCase());
  assert.equal(entry?.storageKeys.length, 2, 'the two balance slots of the token');
});

test('websocket: newHeads and logs subscriptions', async () => {
  const ws = new ethers.WebSocketProvider(node.ws);
  try {
    const heads = [];
    await new Promise((resolve) => {
      ws.on('block', (n) => { heads.push(n); if (heads.length >= 2) resolve(); });
    });
    assert.ok(heads[1] > heads[0]);
    await ws.removeAllListeners('block');

    const wsToken = token.connect(ws);
    const seen = new Promise((resolve) => wsToken.on('Transfer', (from, to, value) => resolve({ from, to, value })));
    await sleep(300);
    const tx = await token.transfer(wallets[2].address, 11n);
    await tx.wait();
    const ev = await seen;
    assert.equal(ev.to, wallets[2].address);
    assert.equal(ev.value, 11n);
    await wsToken.removeAllListeners();
  } finally {
    await ws.destroy();
  }
});

test('restart keeps blocks, receipts, logs and state', async () => {
  const height = await provider.getBlockNumber();
  const balance = await token.balanceOf(wallets[1].address);
  const nonce = await provider.getTransactionCount(wallets[0].address);
  const blockHash = (await provider.getBlock(height)).hash;
  provider.destroy();
  await stopNode(node);

  node = await startNode({ datadir: node.datadir });
  provider = new ethers.JsonRpcProvider(node.url, undefined, { staticNetwork: true, pollingInterval: 100, cacheTimeout: -1 });
  token = token.connect(new ethers.Wallet(KEYS[0], provider));
  assert.ok((await provider.getBlockNumber()) >= height);
  assert.equal((await provider.getBlock(height)).hash, blockHash);
  assert.equal(await token.balanceOf(wallets[1].address), balance);
  assert.equal(await provider.getTransactionCount(wallets[0].address), nonce);
  const receipt = await provider.getTransactionReceipt(transferTx.hash);
  assert.equal(receipt.status, 1);
  const logs = await token.queryFilter(token.filters.Transfer(), 0);
  assert.ok(logs.length >= 3);
  // And the chain goes on.
  const tx = await token.transfer(wallets[1].address, 1n);
  assert.equal((await tx.wait()).status, 1);
});
