// The protocol's native compliance (system contracts at 0x7068…01-05) through a started
// `pharos node --dev`, driven with ethers the way a dApp would: ABIs compiled with solc-js from
// crates/compliance/solidity/IPharosCompliance.sol, an OpenZeppelin ERC-20 (tests/artifacts/
// TestToken.json) registered as a regulated asset, and every rule checked on the client side:
// the exact Error(string) reason from eth_call, eth_estimateGas and ethers' send, a transaction
// mined with a fixed gas limit ending with status 0, and balances unchanged by every denial.
// Mirrors crates/executor/tests/compliance.rs (the same scenario at executor level).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ethers } from 'ethers';
import { startNode, stopNode, removeDatadir, rpc, repoRoot, sleep } from '../lib/node.mjs';
import { complianceAbis, compileInline, ADDRESSES, startAnvil, stopAnvil } from '../lib/compliance.mjs';

const DEV_MNEMONIC = 'test test test test test test test test test test test junk';
const ADMIN_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const KYC = 1n;
const FR = 250;
const DE = 276;
const US = 840;
const SUPPLY = 1_000_000n;
const MAX_BALANCE = 10_000n;
const DAILY = 600n;
const DAY = 86_400;
const TOKEN_ARTIFACT = JSON.parse(readFileSync(path.join(repoRoot, 'tests', 'artifacts', 'TestToken.json'), 'utf8'));
const ERROR_SELECTOR = '0x08c379a0';
const coder = ethers.AbiCoder.defaultAbiCoder();
// Moves native coin one call deeper than the transaction (sanctions apply at any depth).
const FORWARDER_SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;
contract Forwarder {
    /// Sends msg.value on to \`to\`; a failure reverts with the inner call's revert data.
    function forward(address to) external payable {
        (bool ok, bytes memory data) = to.call{value: msg.value}("");
        if (!ok) assembly { revert(add(data, 32), mload(data)) }
    }
    /// Same, but a failure is swallowed (the value stays here).
    function tryForward(address to) external payable returns (bool ok) {
        (ok, ) = to.call{value: msg.value}("");
    }
}`;

let node;
let provider;
// Dev accounts 0..9: admin, agent (identity agent, token agent, sanctions officer), kyc (claim
// issuer), issuer (token deployer and registrant), alice FR, bob DE, carol US, erin FR without a
// claim, dave without identity (also the approved spender), frank DE.
let admin, agent, kyc, issuer, alice, bob, carol, erin, dave, frank;
let bob2; // bob's new wallet after recovery
let abis;
let ir, tir, ac, sl; // system contracts (connected to the admin)
let token; // the regulated TestToken
let tokenAddress;
const ids = {};
const model = new Map(); // address -> expected token balance
let who; // address -> name, for messages

const reasonData = (reason) => ERROR_SELECTOR + coder.encode(['string'], [reason]).slice(2);

/** The expected balances of every tracked wallet equal the token's. */
async function expectBalances(label = '') {
  for (const [address, expected] of model) {
    assert.equal(await token.balanceOf(address), expected, `${label}: balance of ${who[address] ?? address}`);
  }
}

/** Moves `amount` in the model. */
function moved(from, to, amount) {
  model.set(from.address, model.get(from.address) - amount);
  model.set(to.address, (model.get(to.address) ?? 0n) + amount);
}

/** Everything a denied transfer must leave as it was. */
async function snapshot() {
  if (!token) return {}; // before the token exists
  const addresses = [...model.keys()];
  const [balances, allowance, info, supply] = await Promise.all([
    Promise.all(addresses.map((a) => token.balanceOf(a))),
    token.allowance(alice.address, dave.address),
    ac.assetInfo(tokenAddress),
    token.totalSupply(),
  ]);
  return { ...Object.fromEntries(addresses.map((a, i) => [a, balances[i]])), allowance, holders: info.holders, supply };
}

async function mined(txPromise) {
  const tx = await txPromise;
  const receipt = await tx.wait();
  assert.equal(receipt.status, 1);
  return receipt;
}

/** Sends `contract.method(args)` from `signer` with exactly the node's gas estimate. */
async function sendWithEstimate(contract, signer, method, args, overrides = {}) {
  const c = contract.connect(signer);
  const estimate = await c[method].estimateGas(...args, overrides);
  const receipt = await mined(c[method](...args, { ...overrides, gasLimit: estimate }));
  assert.ok(receipt.gasUsed <= estimate, `${method}: used ${receipt.gasUsed} > estimate ${estimate}`);
  return receipt;
}

function isRevert(reason) {
  return (e) => {
    assert.equal(e.code, 'CALL_EXCEPTION', `expected a revert, got ${e.code}: ${e.message}`);
    assert.equal(e.reason, reason);
    assert.equal(e.shortMessage, `execution reverted: ${JSON.stringify(reason)}`);
    assert.equal(e.revert?.name, 'Error');
    assert.equal(e.data, reasonData(reason));
    return true;
  };
}

/** Raw JSON-RPC: `method` fails with code 3, the geth message and the Error(string) data. */
async function rawReverts(method, call, reason) {
  await assert.rejects(rpc(node.url, method, method === 'eth_call' ? [call, 'latest'] : [call]), (e) => {
    assert.equal(e.code, 3, `${method}: ${e.message}`);
    assert.equal(e.message, `execution reverted: ${reason}`);
    assert.equal(e.data, reasonData(reason));
    return true;
  });
}

/** Waits for the receipt of a transaction expected to revert on chain; checks it failed cleanly. */
async function minedReverted(tx, gasLimit) {
  await assert.rejects(tx.wait(), (e) => e.code === 'CALL_EXCEPTION' && e.receipt?.status === 0);
  const receipt = await provider.getTransactionReceipt(tx.hash);
  assert.equal(receipt.status, 0);
  assert.equal(receipt.logs.length, 0, 'a denied transaction leaves no logs');
  assert.ok(receipt.gasUsed < gasLimit, `reverted, not out of gas (${receipt.gasUsed} of ${gasLimit})`);
  return receipt;
}

/**
 * `contract.method(args)` from `signer` is denied with exactly `reason`: eth_call and
 * eth_estimateGas (through ethers and raw), ethers' send (which estimates first), and, unless
 * `mine` is false, a transaction sent with a fixed gas limit mined with status 0. Nothing changes.
 * `can`: [from, to, amount] whose canTransfer verdict must be the same reason.
 */
async function denied(contract, signer, method, args, reason, { mine = true, gasLimit = 300_000n, can } = {}) {
  assert.ok(reason.startsWith('compliance: '));
  const c = contract.connect(signer);
  const before = await snapshot();
  const call = { from: signer.address, to: await contract.getAddress(), data: c.interface.encodeFunctionData(method, args) };
  await Promise.all([
    assert.rejects(c[method].staticCall(...args), isRevert(reason), `${method} eth_call`),
    assert.rejects(c[method].estimateGas(...args), isRevert(reason), `${method} estimateGas`),
    assert.rejects(c[method](...args), isRevert(reason), `${method} send`), // estimates first: nothing is sent
    rawReverts('eth_call', call, reason),
    rawReverts('eth_estimateGas', call, reason),
    can && ac.canTransfer(tokenAddress, ...can).then((v) => assert.equal(v, reason, 'canTransfer gives the same reason')),
  ]);
  if (mine) {
    const nonce = await provider.getTransactionCount(signer.address);
    const tx = await c[method](...args, { gasLimit });
    await minedReverted(tx, gasLimit);
    assert.equal(await provider.getTransactionCount(signer.address), nonce + 1, 'the failed transaction was included');
  }
  assert.deepEqual(await snapshot(), before, `${method}: a denied call changed nothing`);
}

/** A token transfer from `from` to `to` is denied with `reason` (canTransfer agrees). */
const deniedTransfer = (from, to, amount, reason, opts = {}) =>
  denied(token, from, 'transfer', [to.address, amount], reason, { can: [from.address, to.address, amount], ...opts });

/** A compliant token transfer: succeeds with the node's estimate, one Transfer event, balances move. */
async function transfer(from, to, amount) {
  assert.equal(await ac.canTransfer(tokenAddress, from.address, to.address, amount), '');
  const receipt = await sendWithEstimate(token, from, 'transfer', [to.address, amount]);
  assert.equal(receipt.logs.length, 1);
  const ev = token.interface.parseLog(receipt.logs[0]);
  assert.equal(ev.name, 'Transfer');
  assert.deepEqual([ev.args.from, ev.args.to, ev.args.value], [from.address, to.address, amount]);
  moved(from, to, amount);
  await expectBalances(`transfer ${who[from.address]} -> ${who[to.address]}`);
  return receipt;
}

const holders = async () => (await ac.assetInfo(tokenAddress)).holders;

/** The compliance events a receipt carries from `address`, parsed with `abi`. */
function events(receipt, address, abi) {
  const iface = new ethers.Interface(abi);
  return receipt.logs.filter((l) => l.address === ethers.getAddress(address)).map((l) => iface.parseLog(l));
}

/** Avoids a UTC day boundary inside the daily-limit checks (the node's clock cannot be moved). */
async function sameUtcDayFor(seconds) {
  const { timestamp } = await provider.getBlock('latest');
  const left = DAY - (timestamp % DAY);
  if (left < seconds) await sleep((left + 2) * 1000);
}

before(async () => {
  abis = complianceAbis();
  node = await startNode({ args: ['--block-time', '100ms'] });
  // cacheTimeout -1: ethers otherwise reuses an identical request's result for 250 ms, e.g. the
  // pending nonce fetched before the previous transaction was mined (blocks come every 100 ms).
  provider = new ethers.JsonRpcProvider(node.url, undefined, { staticNetwork: true, pollingInterval: 50, cacheTimeout: -1 });
  const root = ethers.HDNodeWallet.fromPhrase(DEV_MNEMONIC, undefined, "m/44'/60'/0'/0");
  const wallets = Array.from({ length: 10 }, (_, i) => new ethers.Wallet(root.deriveChild(i).privateKey, provider));
  [admin, agent, kyc, issuer, alice, bob, carol, erin, dave, frank] = wallets;
  assert.equal(admin.privateKey, ADMIN_KEY);
  who = Object.fromEntries(['admin', 'agent', 'kyc', 'issuer', 'alice', 'bob', 'carol', 'erin', 'dave', 'frank']
    .map((n, i) => [wallets[i].address, n]));
  ir = new ethers.Contract(ADDRESSES.IIdentityRegistry, abis.IIdentityRegistry, admin);
  tir = new ethers.Contract(ADDRESSES.ITrustedIssuersRegistry, abis.ITrustedIssuersRegistry, admin);
  ac = new ethers.Contract(ADDRESSES.IAssetCompliance, abis.IAssetCompliance, admin);
  sl = new ethers.Contract(ADDRESSES.ISanctionsList, abis.ISanctionsList, admin);
});

after(async () => {
  provider?.destroy();
  if (node) {
    await stopNode(node);
    removeDatadir(node.datadir);
  }
});

test('system contracts, roles, identities, claims and a registered OpenZeppelin ERC-20', async () => {
  for (const address of Object.values(ADDRESSES)) assert.equal(await provider.getCode(address), '0xfe');
  assert.equal(await ir.admin(), admin.address);
  assert.equal(await tir.claimTopicName(KYC), 'KYC');

  // Only the administrator appoints.
  const onlyAdmin = `compliance: only the compliance administrator (${admin.address}) may do this`;
  await denied(ir, dave, 'setAgent', [dave.address, true], onlyAdmin);
  await denied(tir, agent, 'addTrustedIssuer', [kyc.address, [KYC]], onlyAdmin, { mine: false });

  const r1 = await mined(ir.setAgent(agent.address, true));
  assert.deepEqual(events(r1, ADDRESSES.IIdentityRegistry, abis.IIdentityRegistry).map((e) => e.name), ['AgentSet']);
  await mined(tir.addTrustedIssuer(kyc.address, [KYC]));
  await mined(ac.setAssetIssuer(issuer.address, true));
  assert.equal(await ir.isAgent(agent.address), true);
  assert.equal(await tir.isTrustedIssuer(kyc.address, KYC), true);
  assert.equal(await tir.isTrustedIssuer(dave.address, KYC), false);

  // The agent registers identities; dave gets none.
  await denied(ir, dave, 'registerIdentity', [dave.address, FR],
    `compliance: ${dave.address} is not an identity agent (the administrator appoints agents with setAgent)`, { mine: false });
  for (const [w, country] of [[alice, FR], [bob, DE], [carol, US], [erin, FR], [frank, DE]]) {
    const receipt = await mined(ir.connect(agent).registerIdentity(w.address, country));
    const [ev] = events(receipt, ADDRESSES.IIdentityRegistry, abis.IIdentityRegistry);
    assert.equal(ev.name, 'IdentityRegistered');
    assert.equal(ev.args.wallet, w.address);
    assert.equal(ev.args.country, BigInt(country));
    ids[w.address] = ev.args.identity;
    assert.equal(await ir.identityOf(w.address), ev.args.identity);
    assert.equal(await ir.countryOf(w.address), BigInt(country));
  }
  assert.equal(new Set(Object.values(ids)).size, 5, 'five distinct identities');
  assert.equal(await ir.identityOf(dave.address), 0n);
  assert.equal(await ir.didOf(dave.address), '');
  assert.equal(await ir.didOf(alice.address), `did:pharos:${alice.address.toLowerCase()}`);
  await denied(ir, agent, 'registerIdentity', [alice.address, DE],
    `compliance: wallet ${alice.address} already belongs to identity ${ids[alice.address]}`, { mine: false });

  // KYC claims from the trusted issuer for everyone but erin; an untrusted one is refused.
  await denied(ir, dave, 'addClaim', [ids[erin.address], KYC, 0, ethers.ZeroHash],
    `compliance: ${dave.address} is not a trusted issuer for claim topic 1`, { mine: false });
  const { timestamp } = await provider.getBlock('latest');
  for (const w of [alice, bob, carol, frank]) {
    await mined(ir.connect(kyc).addClaim(ids[w.address], KYC, timestamp + 30 * DAY, ethers.zeroPadValue('0x02', 32)));
  }
  for (const w of [alice, bob, carol, frank]) assert.equal(await ir.hasValidClaim(w.address, KYC), true);
  assert.equal(await ir.hasValidClaim(erin.address, KYC), false);
  assert.equal(await ir.hasValidClaim(dave.address, KYC), false);
  const claim = await ir.getClaim(ids[alice.address], KYC);
  assert.equal(claim.issuer, kyc.address);
  assert.equal(claim.revoked, false);

  // The issuer deploys an OpenZeppelin ERC-20 (all minted to the issuer) and registers it.
  const factory = new ethers.ContractFactory(TOKEN_ARTIFACT.abi, TOKEN_ARTIFACT.bytecode, issuer);
  token = await factory.deploy(SUPPLY);
  await token.waitForDeployment();
  tokenAddress = await token.getAddress();
  // Registration needs the token's consent: the issuer proves it deployed it (its CREATE nonce).
  const deployNonce = token.deploymentTransaction().nonce;
  assert.equal(ethers.getCreateAddress({ from: issuer.address, nonce: deployNonce }), tokenAddress);
  assert.equal(await token.balanceOf(issuer.address), SUPPLY);
  for (const w of [issuer, alice, bob, carol, erin, dave, frank]) model.set(w.address, w === issuer ? SUPPLY : 0n);
  await denied(ac, dave, 'registerAsset', [tokenAddress, 0, deployNonce],
    `compliance: ${dave.address} is not an asset issuer (the administrator appoints them with setAssetIssuer)`);
  await denied(ac, issuer, 'registerAsset', [tokenAddress, 0, deployNonce + 1],
    `compliance: ${issuer.address} did not deploy ${tokenAddress} with nonce ${deployNonce + 1} (register a token you deployed, let the token register itself, or ask the administrator)`, { mine: false });
  const reg = await mined(ac.connect(issuer).registerAsset(tokenAddress, 0, deployNonce));
  const [registered] = events(reg, ADDRESSES.IAssetCompliance, abis.IAssetCompliance);
  assert.equal(registered.name, 'AssetRegistered');
  assert.deepEqual([registered.args.token, registered.args.owner, registered.args.balancesSlot], [tokenAddress, issuer.address, 0n]);
  await denied(ac, issuer, 'registerAsset', [tokenAddress, 0, deployNonce], `compliance: token ${tokenAddress} is already registered`, { mine: false });

  const i = ac.connect(issuer);
  await mined(i.setRequiredClaims(tokenAddress, [KYC]));
  await mined(i.setCountryRule(tokenAddress, US, false, true));
  await mined(i.setLimits(tokenAddress, 0, MAX_BALANCE, 0));
  await mined(i.setAgent(tokenAddress, agent.address, true));
  // Rules are the owner's alone.
  await denied(ac, agent, 'setLimits', [tokenAddress, 0, 0, 0],
    `compliance: ${agent.address} is not the owner of asset ${tokenAddress}`, { mine: false });

  const info = await ac.assetInfo(tokenAddress);
  assert.deepEqual([info.registered, info.owner, info.paused, info.balancesSlot, info.holders], [true, issuer.address, false, 0n, 0n],
    'holders are counted from registration on: the issuer, minted before, is not counted');
  assert.deepEqual((await ac.requiredClaims(tokenAddress)).toArray(), [KYC]);
  assert.deepEqual((await ac.limits(tokenAddress)).toArray(), [0n, MAX_BALANCE, 0n]);
  await expectBalances('setup');
});

test('a compliant transfer succeeds with the estimated gas and one Transfer event', async () => {
  assert.equal(await ac.canTransfer(tokenAddress, issuer.address, alice.address, 9_000n), '');
  await transfer(issuer, alice, 9_000n);
  assert.equal(await holders(), 1n);
  await transfer(issuer, bob, 5_000n);
  assert.equal(await holders(), 2n);
});

test('identity, required claim, blocked country, max balance and daily limit deny transfers', async () => {
  await deniedTransfer(issuer, dave, 10n,
    `compliance: identity: recipient ${dave.address} has no identity in the identity registry`);
  await deniedTransfer(issuer, erin, 10n,
    `compliance: required claim: recipient ${erin.address} has no valid claim of topic 1 (KYC)`);
  await deniedTransfer(issuer, carol, 10n,
    `compliance: country: recipient ${carol.address}'s country 840 is blocked for ${tokenAddress}`);
  await deniedTransfer(issuer, bob, 5_001n,
    `compliance: max balance: recipient ${bob.address} would hold 10001, the limit is 10000`);
  await transfer(issuer, bob, 5_000n); // exactly the limit is fine
  assert.equal(model.get(bob.address), MAX_BALANCE);
  // The issuer itself has no identity: it may send, but not receive.
  await deniedTransfer(bob, issuer, 1n,
    `compliance: identity: recipient ${issuer.address} has no identity in the identity registry`);
  await transfer(bob, frank, 5_000n);
  assert.equal(await holders(), 3n);

  // Daily limit: what one wallet sends per UTC day.
  await sameUtcDayFor(60);
  await mined(ac.connect(issuer).setLimits(tokenAddress, 0, MAX_BALANCE, DAILY));
  assert.deepEqual((await ac.limits(tokenAddress)).toArray(), [0n, MAX_BALANCE, DAILY]);
  await transfer(alice, bob, 400n);
  await deniedTransfer(alice, bob, 201n,
    `compliance: daily limit: sender ${alice.address} would send 601 today, the limit is 600`);
  await transfer(alice, bob, 200n);
  await deniedTransfer(alice, bob, 1n,
    `compliance: daily limit: sender ${alice.address} would send 601 today, the limit is 600`);
  await transfer(bob, alice, 600n); // per wallet: bob has his own 600
  await deniedTransfer(bob, alice, 1n,
    `compliance: daily limit: sender ${bob.address} would send 601 today, the limit is 600`);
});

test('the same rules apply to transferFrom by an approved spender', async () => {
  // dave, who has no identity, is the spender: only the holder and the recipient matter.
  await mined(token.connect(alice).approve(dave.address, 6_000n));
  assert.equal(await token.allowance(alice.address, dave.address), 6_000n);
  const from = (to, amount, reason) => denied(token, dave, 'transferFrom', [alice.address, to.address, amount], reason,
    { can: [alice.address, to.address, amount] });
  await from(dave, 5n, `compliance: identity: recipient ${dave.address} has no identity in the identity registry`);
  await from(erin, 5n, `compliance: required claim: recipient ${erin.address} has no valid claim of topic 1 (KYC)`);
  await from(carol, 5n, `compliance: country: recipient ${carol.address}'s country 840 is blocked for ${tokenAddress}`);
  const over = MAX_BALANCE - model.get(bob.address) + 1n;
  assert.ok(over <= 6_000n && over <= model.get(alice.address));
  await from(bob, over, `compliance: max balance: recipient ${bob.address} would hold 10001, the limit is 10000`);
  // alice already sent 600 today, whoever moves her tokens.
  await from(bob, 5n, `compliance: daily limit: sender ${alice.address} would send 605 today, the limit is 600`);
  assert.equal(await token.allowance(alice.address, dave.address), 6_000n, 'denied transfers used no allowance');

  await mined(ac.connect(issuer).setLimits(tokenAddress, 0, MAX_BALANCE, 0));
  const receipt = await sendWithEstimate(token, dave, 'transferFrom', [alice.address, bob.address, 5n]);
  assert.equal(receipt.logs.length, 1);
  const ev = token.interface.parseLog(receipt.logs[0]);
  assert.deepEqual([ev.name, ev.args.from, ev.args.to, ev.args.value], ['Transfer', alice.address, bob.address, 5n]);
  moved(alice, bob, 5n);
  await expectBalances('transferFrom');
  assert.equal(await token.allowance(alice.address, dave.address), 5_995n);
});

test('max holders: a new holder beyond the limit is refused, a holder replacing another is not', async () => {
  assert.equal(await holders(), 3n); // alice, bob, frank
  await mined(ac.connect(issuer).setLimits(tokenAddress, 3, MAX_BALANCE, 0));
  // erin gets her KYC claim, which makes the holder limit the rule that stops her.
  await mined(ir.connect(kyc).addClaim(ids[erin.address], KYC, 0, ethers.zeroPadValue('0x01', 32)));
  assert.equal(await ir.hasValidClaim(erin.address, KYC), true);
  await deniedTransfer(issuer, erin, 1n,
    `compliance: max holders: ${tokenAddress} already has 3 holders, the limit is 3`);
  await deniedTransfer(alice, erin, 1n,
    `compliance: max holders: ${tokenAddress} already has 3 holders, the limit is 3`);
  // frank leaving and erin joining in one transfer keeps three holders.
  await transfer(frank, erin, model.get(frank.address));
  assert.equal(await holders(), 3n);
  await deniedTransfer(alice, frank, 1n,
    `compliance: max holders: ${tokenAddress} already has 3 holders, the limit is 3`);
  await transfer(erin, frank, model.get(erin.address));
  assert.equal(await holders(), 3n);
  // The claim's issuer revokes it: erin is refused for the claim again.
  await mined(ir.connect(kyc).revokeClaim(ids[erin.address], KYC));
  assert.equal(await ir.hasValidClaim(erin.address, KYC), false);
  assert.equal((await ir.getClaim(ids[erin.address], KYC)).revoked, true);
  await mined(ac.connect(issuer).setLimits(tokenAddress, 10, MAX_BALANCE, 0));
  await deniedTransfer(issuer, erin, 1n,
    `compliance: required claim: recipient ${erin.address} has no valid claim of topic 1 (KYC)`, { mine: false });
});

test('freeze, partial freeze, pause and lock-up', async () => {
  const agentAc = ac.connect(agent);
  await denied(ac, dave, 'setAddressFrozen', [tokenAddress, alice.address, true],
    `compliance: ${dave.address} is not the owner or an agent of asset ${tokenAddress}`);

  // Freeze: neither sending nor receiving, on any path.
  const fr = await mined(agentAc.setAddressFrozen(tokenAddress, alice.address, true));
  const [ev] = events(fr, ADDRESSES.IAssetCompliance, abis.IAssetCompliance);
  assert.deepEqual([ev.name, ev.args.investor, ev.args.frozen, ev.args.agent], ['AddressFrozen', alice.address, true, agent.address]);
  assert.equal(await ac.isFrozen(tokenAddress, alice.address), true);
  await deniedTransfer(alice, bob, 1n, `compliance: frozen: sender ${alice.address} is frozen for ${tokenAddress}`);
  await deniedTransfer(bob, alice, 1n, `compliance: frozen: recipient ${alice.address} is frozen for ${tokenAddress}`);
  await denied(token, dave, 'transferFrom', [alice.address, bob.address, 1n],
    `compliance: frozen: sender ${alice.address} is frozen for ${tokenAddress}`);
  await mined(agentAc.setAddressFrozen(tokenAddress, alice.address, false));
  assert.equal(await ac.isFrozen(tokenAddress, alice.address), false);
  await transfer(alice, bob, 1n);

  // Partial freeze: all but 100 of alice's balance stays.
  const keep = model.get(alice.address) - 100n;
  await mined(agentAc.setFrozenTokens(tokenAddress, alice.address, keep));
  assert.equal(await ac.frozenTokens(tokenAddress, alice.address), keep);
  await deniedTransfer(alice, bob, 101n,
    `compliance: partial freeze: sender ${alice.address} would keep ${keep - 1n} but ${keep} are frozen`);
  await transfer(alice, bob, 100n);
  await deniedTransfer(alice, bob, 1n,
    `compliance: partial freeze: sender ${alice.address} would keep ${keep - 1n} but ${keep} are frozen`);
  await transfer(bob, alice, 50n); // receiving is fine
  await mined(agentAc.setFrozenTokens(tokenAddress, alice.address, 0));
  await transfer(alice, bob, 60n);

  // Pause.
  await mined(agentAc.setPaused(tokenAddress, true));
  assert.equal((await ac.assetInfo(tokenAddress)).paused, true);
  await deniedTransfer(bob, alice, 1n, `compliance: paused: transfers of ${tokenAddress} are paused`);
  await denied(token, dave, 'transferFrom', [alice.address, bob.address, 1n],
    `compliance: paused: transfers of ${tokenAddress} are paused`);
  await mined(agentAc.setPaused(tokenAddress, false));
  assert.equal((await ac.assetInfo(tokenAddress)).paused, false);
  await transfer(bob, alice, 1n);

  // Lock-up in the future (the node's clock cannot be moved): per investor, then the whole token.
  const until = (await provider.getBlock('latest')).timestamp + 3_600;
  await mined(agentAc.setLockup(tokenAddress, bob.address, until));
  await deniedTransfer(bob, alice, 1n, `compliance: lock-up: sender ${bob.address} is locked until ${until}`);
  await transfer(alice, bob, 1n); // only sending is locked
  await mined(agentAc.setLockup(tokenAddress, bob.address, 0));
  await transfer(bob, alice, 1n);
  await mined(agentAc.setLockup(tokenAddress, ethers.ZeroAddress, until));
  await deniedTransfer(alice, bob, 1n, `compliance: lock-up: ${tokenAddress} is locked until ${until}`);
  await denied(token, dave, 'transferFrom', [alice.address, bob.address, 1n],
    `compliance: lock-up: ${tokenAddress} is locked until ${until}`);
  await mined(agentAc.setLockup(tokenAddress, ethers.ZeroAddress, 0));
  await transfer(alice, bob, 1n);
  // A lock-up that has passed does not block.
  await mined(agentAc.setLockup(tokenAddress, bob.address, 1));
  await transfer(bob, alice, 1n);
  await mined(agentAc.setLockup(tokenAddress, bob.address, 0));
});

test('agent forced transfer: works on a frozen sender, emits Transfer and ForcedTransfer; others are refused', async () => {
  await mined(ac.connect(agent).setAddressFrozen(tokenAddress, bob.address, true));
  await deniedTransfer(bob, alice, 1n, `compliance: frozen: sender ${bob.address} is frozen for ${tokenAddress}`);
  await denied(ac, dave, 'forcedTransfer', [tokenAddress, bob.address, alice.address, 1n],
    `compliance: ${dave.address} is not the owner or an agent of asset ${tokenAddress}`);
  // Recipient checks still apply.
  await denied(ac, agent, 'forcedTransfer', [tokenAddress, bob.address, dave.address, 1n],
    `compliance: identity: recipient ${dave.address} has no identity in the identity registry`);
  await denied(ac, agent, 'forcedTransfer', [tokenAddress, bob.address, carol.address, 1n],
    `compliance: country: recipient ${carol.address}'s country 840 is blocked for ${tokenAddress}`);
  const over = MAX_BALANCE - model.get(alice.address) + 1n;
  assert.ok(over <= model.get(bob.address));
  await denied(ac, agent, 'forcedTransfer', [tokenAddress, bob.address, alice.address, over],
    `compliance: max balance: recipient ${alice.address} would hold 10001, the limit is 10000`);
  const bobBalance = model.get(bob.address);
  await denied(ac, agent, 'forcedTransfer', [tokenAddress, bob.address, alice.address, bobBalance + 1n],
    `compliance: ${bob.address} holds ${bobBalance} of ${tokenAddress}, less than ${bobBalance + 1n}`);

  const receipt = await sendWithEstimate(ac, agent, 'forcedTransfer', [tokenAddress, bob.address, alice.address, 200n]);
  assert.equal(receipt.logs.length, 2);
  assert.equal(receipt.logs[0].address, tokenAddress);
  const t = token.interface.parseLog(receipt.logs[0]);
  assert.deepEqual([t.name, t.args.from, t.args.to, t.args.value], ['Transfer', bob.address, alice.address, 200n]);
  assert.equal(receipt.logs[1].address, ethers.getAddress(ADDRESSES.IAssetCompliance));
  const f = ac.interface.parseLog(receipt.logs[1]);
  assert.deepEqual([f.name, f.args.token, f.args.from, f.args.to, f.args.amount, f.args.agent],
    ['ForcedTransfer', tokenAddress, bob.address, alice.address, 200n, agent.address]);
  moved(bob, alice, 200n);
  await expectBalances('forced transfer');
  // Both events are visible to log filters like any other.
  const logs = await token.queryFilter(token.filters.Transfer(bob.address, alice.address), receipt.blockNumber, receipt.blockNumber);
  assert.equal(logs.length, 1);
  const audit = await ac.queryFilter(ac.filters.ForcedTransfer(tokenAddress, bob.address, alice.address), receipt.blockNumber, receipt.blockNumber);
  assert.equal(audit.length, 1);
  assert.equal(audit[0].transactionHash, receipt.hash);
  assert.equal(await ac.isFrozen(tokenAddress, bob.address), true, 'bob is still frozen');
});

test('recovery: the lost wallet\'s identity, claims, DID, tokens and freeze move to the new wallet', async () => {
  bob2 = ethers.Wallet.createRandom(provider);
  who[bob2.address] = 'bob2';
  const bobId = ids[bob.address];
  const did = await ir.didOf(bob.address);
  assert.equal(did, `did:pharos:${bob.address.toLowerCase()}`);
  const amount = model.get(bob.address);
  assert.ok(amount > 0n);
  const holdersBefore = await holders();

  await denied(ac, agent, 'recover', [tokenAddress, bob.address, bob2.address],
    `compliance: ${bob.address} was not recovered to ${bob2.address} in the identity registry (recoverWallet first)`);
  await denied(ir, dave, 'recoverWallet', [bob.address, bob2.address],
    `compliance: ${dave.address} is not an identity agent (the administrator appoints agents with setAgent)`);
  const rw = await mined(ir.connect(agent).recoverWallet(bob.address, bob2.address));
  const [ev] = events(rw, ADDRESSES.IIdentityRegistry, abis.IIdentityRegistry).filter((e) => e.name === 'WalletRecovered');
  assert.deepEqual([ev.args.identity, ev.args.lostWallet, ev.args.newWallet], [bobId, bob.address, bob2.address]);
  await denied(ac, dave, 'recover', [tokenAddress, bob.address, bob2.address],
    `compliance: ${dave.address} is not the owner or an agent of asset ${tokenAddress}`);

  const receipt = await sendWithEstimate(ac, agent, 'recover', [tokenAddress, bob.address, bob2.address]);
  assert.equal(receipt.logs.length, 2);
  const t = token.interface.parseLog(receipt.logs[0]);
  assert.deepEqual([receipt.logs[0].address, t.name, t.args.from, t.args.to, t.args.value],
    [tokenAddress, 'Transfer', bob.address, bob2.address, amount]);
  const r = ac.interface.parseLog(receipt.logs[1]);
  assert.deepEqual([r.name, r.args.token, r.args.lostWallet, r.args.newWallet, r.args.amount, r.args.agent],
    ['Recovered', tokenAddress, bob.address, bob2.address, amount, agent.address]);
  model.set(bob2.address, 0n);
  moved(bob, bob2, amount);
  await expectBalances('recover');
  assert.equal(await holders(), holdersBefore);

  // Same identity, claims, country and DID; the old wallet has none; the freeze moved along.
  assert.equal(await ir.identityOf(bob2.address), bobId);
  assert.equal(await ir.identityOf(bob.address), 0n);
  assert.equal(await ir.didOf(bob2.address), did);
  assert.equal(await ir.countryOf(bob2.address), BigInt(DE));
  assert.equal(await ir.hasValidClaim(bob2.address, KYC), true);
  assert.equal(await ir.walletCount(bobId), 1n);
  assert.equal(await ac.isFrozen(tokenAddress, bob2.address), true);
  assert.equal(await ac.isFrozen(tokenAddress, bob.address), false);

  // The new wallet works once unfrozen; the lost one is no longer an eligible recipient.
  await mined(admin.sendTransaction({ to: bob2.address, value: ethers.parseEther('1') }));
  await deniedTransfer(bob2, alice, 1n, `compliance: frozen: sender ${bob2.address} is frozen for ${tokenAddress}`);
  await mined(ac.connect(agent).setAddressFrozen(tokenAddress, bob2.address, false));
  await transfer(bob2, alice, 1n);
  await deniedTransfer(alice, bob, 1n,
    `compliance: identity: recipient ${bob.address} has no identity in the identity registry`);
});

test('sanctions: listed wallets can neither receive nor send regulated tokens or native coin', async () => {
  await denied(sl, dave, 'setSanctioned', [[frank.address], true],
    `compliance: ${dave.address} is not a sanctions officer (the administrator appoints officers)`);
  await denied(sl, agent, 'setOfficer', [agent.address, true],
    `compliance: only the compliance administrator (${admin.address}) may do this`, { mine: false });
  await mined(sl.setOfficer(agent.address, true));
  const listing = await mined(sl.connect(agent).setSanctioned([frank.address], true));
  const [ev] = events(listing, ADDRESSES.ISanctionsList, abis.ISanctionsList);
  assert.deepEqual([ev.name, ev.args.account, ev.args.listed, ev.args.officer], ['Sanctioned', frank.address, true, agent.address]);
  assert.equal(await sl.isSanctioned(frank.address), true);
  assert.equal(await sl.listedCount(), 1n);

  const toFrank = `compliance: sanctions: recipient ${frank.address} is on the sanctions list`;
  const fromFrank = `compliance: sanctions: sender ${frank.address} is on the sanctions list`;
  await deniedTransfer(alice, frank, 1n, toFrank);
  await deniedTransfer(frank, alice, 1n, fromFrank);

  // Native coin, both directions: estimate and call fail with the reason; a transaction sent with
  // 21,000 gas is mined with status 0, the value stays, the sender pays only the fee.
  for (const [from, to, reason] of [[alice, frank, toFrank], [frank, alice, fromFrank]]) {
    const call = { from: from.address, to: to.address, value: ethers.toQuantity(7n) };
    await rawReverts('eth_call', call, reason);
    await rawReverts('eth_estimateGas', call, reason);
    await assert.rejects(provider.estimateGas({ from: from.address, to: to.address, value: 7n }), isRevert(reason));
    await assert.rejects(from.sendTransaction({ to: to.address, value: 7n }), isRevert(reason));
    const [fromBefore, toBefore] = await Promise.all([provider.getBalance(from.address), provider.getBalance(to.address)]);
    const tx = await from.sendTransaction({ to: to.address, value: 7n, gasLimit: 21_000n });
    await assert.rejects(tx.wait(), (e) => e.code === 'CALL_EXCEPTION' && e.receipt?.status === 0);
    const receipt = await provider.getTransactionReceipt(tx.hash);
    assert.equal(receipt.status, 0);
    assert.equal(receipt.gasUsed, 21_000n);
    assert.equal(await provider.getBalance(to.address), toBefore, 'the value did not arrive');
    assert.equal(await provider.getBalance(from.address), fromBefore - receipt.gasUsed * receipt.gasPrice, 'only the fee was paid');
  }

  // One call deeper: a contract forwarding coin to the listed wallet. The inner frame is refused;
  // bubbled up, the transaction fails with the reason; swallowed, the outer call goes on and the
  // coin stays in the contract. A listed sender cannot call it with value either.
  const { Forwarder } = compileInline(FORWARDER_SOURCE);
  const fwd = await new ethers.ContractFactory(Forwarder.abi, Forwarder.bytecode, alice).deploy();
  await fwd.waitForDeployment();
  const fwdAddress = await fwd.getAddress();
  const frankBefore = await provider.getBalance(frank.address);
  await assert.rejects(fwd.forward.staticCall(frank.address, { value: 7n }), isRevert(toFrank));
  await assert.rejects(fwd.forward.estimateGas(frank.address, { value: 7n }), isRevert(toFrank));
  await assert.rejects(fwd.forward(frank.address, { value: 7n }), isRevert(toFrank));
  await minedReverted(await fwd.forward(frank.address, { value: 7n, gasLimit: 100_000n }), 100_000n);
  assert.equal(await fwd.tryForward.staticCall(frank.address, { value: 7n }), false);
  await sendWithEstimate(fwd, alice, 'tryForward', [frank.address], { value: 7n });
  assert.equal(await provider.getBalance(fwdAddress), 7n, 'the refused coin stayed in the contract');
  await assert.rejects(fwd.connect(frank).forward.staticCall(alice.address, { value: 7n }), isRevert(fromFrank));
  await assert.rejects(fwd.connect(frank).tryForward.estimateGas(alice.address, { value: 7n }), isRevert(fromFrank));
  assert.equal(await fwd.tryForward.staticCall(frank.address, { value: 0n }), true, 'a call without value is not refused');
  assert.equal(await provider.getBalance(frank.address), frankBefore);

  // Delisting restores all of it.
  await mined(sl.connect(agent).setSanctioned([frank.address], false));
  assert.equal(await sl.isSanctioned(frank.address), false);
  assert.equal(await sl.listedCount(), 0n);
  await transfer(alice, frank, 1n);
  await transfer(frank, alice, 1n);
  const before = await provider.getBalance(frank.address);
  await mined(alice.sendTransaction({ to: frank.address, value: 7n }));
  assert.equal(await provider.getBalance(frank.address), before + 7n);
  assert.equal(await provider.estimateGas({ from: frank.address, to: alice.address, value: 7n }), 21_000n);
  await sendWithEstimate(fwd, alice, 'forward', [frank.address], { value: 5n });
  assert.equal(await provider.getBalance(frank.address), before + 12n);
});

test('canTransfer: "" when allowed, the rule\'s reason otherwise', async () => {
  const can = (from, to, amount) => ac.canTransfer(tokenAddress, from.address, to.address, amount);
  const holdersBefore = await holders();
  assert.equal(holdersBefore, 3n); // alice, frank and bob2 (bob's recovered wallet)
  assert.equal(await can(alice, frank, 1n), '');
  assert.equal(await can(issuer, alice, 1n), '');
  assert.equal(await can(alice, carol, 1n), `compliance: country: recipient ${carol.address}'s country 840 is blocked for ${tokenAddress}`);
  assert.equal(await can(alice, dave, 1n), `compliance: identity: recipient ${dave.address} has no identity in the identity registry`);
  assert.equal(await can(alice, erin, 1n), `compliance: required claim: recipient ${erin.address} has no valid claim of topic 1 (KYC)`);
  const over = MAX_BALANCE - model.get(frank.address) + 1n;
  assert.ok(over <= model.get(alice.address));
  assert.equal(await can(alice, frank, over), `compliance: max balance: recipient ${frank.address} would hold 10001, the limit is 10000`);
  // A view: asking about a new holder wrote nothing.
  assert.equal(await can(alice, erin, 0n), `compliance: required claim: recipient ${erin.address} has no valid claim of topic 1 (KYC)`);
  assert.equal(await holders(), holdersBefore);
});

test('an unregistered token moves freely, at exactly the gas anvil charges', async () => {
  const factory = new ethers.ContractFactory(TOKEN_ARTIFACT.abi, TOKEN_ARTIFACT.bytecode, dave);
  const plain = await factory.deploy(1_000n);
  const deployReceipt = await plain.deploymentTransaction().wait();
  const plainAddress = await plain.getAddress();
  assert.equal((await ac.assetInfo(plainAddress)).registered, false);
  await assert.rejects(ac.canTransfer(plainAddress, dave.address, erin.address, 1n),
    isRevert(`compliance: token ${plainAddress} is not a registered asset`));
  const stranger = ethers.Wallet.createRandom().address;
  const estimate = await plain.transfer.estimateGas(stranger, 10n);
  const receipt = await mined(plain.transfer(stranger, 10n, { gasLimit: estimate }));
  assert.equal(await plain.balanceOf(stranger), 10n);
  await mined(plain.transfer(erin.address, 10n));
  await mined(plain.connect(erin).transfer(dave.address, 1n));
  assert.equal(await plain.balanceOf(dave.address), 981n);

  const anvil = await startAnvil(['--hardfork', 'osaka']);
  try {
    const ap = new ethers.JsonRpcProvider(anvil.url, undefined, { staticNetwork: true, pollingInterval: 50, cacheTimeout: -1 });
    try {
      const aDave = new ethers.Wallet(dave.privateKey, ap);
      const aToken = await new ethers.ContractFactory(TOKEN_ARTIFACT.abi, TOKEN_ARTIFACT.bytecode, aDave).deploy(1_000n);
      const aDeploy = await aToken.deploymentTransaction().wait();
      assert.equal(deployReceipt.gasUsed, aDeploy.gasUsed, 'deployment gas equals anvil\'s');
      const aEstimate = await aToken.transfer.estimateGas(stranger, 10n);
      const aReceipt = await (await aToken.transfer(stranger, 10n)).wait();
      assert.equal(receipt.gasUsed, aReceipt.gasUsed, 'transfer gas equals anvil\'s');
      // anvil estimates the exact minimum; the node, like geth, stops its search within 1.5%.
      assert.ok(estimate >= aEstimate && (estimate - aEstimate) * 1000n <= aEstimate * 15n,
        `estimate ${estimate} vs anvil's ${aEstimate}`);
    } finally {
      ap.destroy();
    }
  } finally {
    await stopAnvil(anvil);
  }
});

test('the node is still running and logged no panic', async () => {
  assert.equal(node.proc.exitCode, null);
  assert.equal(node.proc.signalCode, null);
  assert.doesNotMatch(node.log(), /panick?ed/i);
});
