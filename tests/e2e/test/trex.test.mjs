// The real ERC-3643 (T-REX 4.1.6) suite, deployed from the compiled artifacts of its npm package
// (and of @onchain-id/solidity 2.1.0, the OnchainID release T-REX 4.1.6 is locked to) on a started
// `pharos node --dev`, driven with ethers the way T-REX's own fixture (test/fixtures/deploy-full-suite)
// does: implementations behind a TREXImplementationAuthority, OnchainID identities from an IdFactory,
// then a token suite from TREXFactory.deployTREXSuite (proxies deployed with CREATE2).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { ethers } from 'ethers';
import { startNode, stopNode, removeDatadir, rpc } from '../lib/node.mjs';

const require = createRequire(import.meta.url);
const TREX = require('@tokenysolutions/t-rex').contracts;
const OID = require('@onchain-id/solidity').contracts;

const DEV_MNEMONIC = 'test test test test test test test test test test test junk';
const KYC = 1n; // claim topic
const SALT = 'pharos-trex-e2e';
const FRANCE = 250;
const GERMANY = 276;
const USA = 840;
const coder = ethers.AbiCoder.defaultAbiCoder();

let node;
let provider;
// Dev accounts: 0 deployer/owner, 1 token agent, 2 claim issuer, 3.. investors.
let deployer, agent, issuerWallet, alice, bob, charlie, david, erin;
const claimSigner = ethers.Wallet.createRandom(); // the claim issuer's CLAIM (purpose 3) key
let c = {}; // deployed contracts
const ids = {}; // investor wallet address -> Identity contract
const claims = {}; // investor name -> {signature, data}

function deploy(artifact, signer, args = [], overrides = {}) {
  return new ethers.ContractFactory(artifact.abi, artifact.bytecode, signer).deploy(...args, overrides)
    .then(async (contract) => { await contract.waitForDeployment(); return contract; });
}

const at = (artifact, address, signer) => new ethers.Contract(address, artifact.abi, signer);

async function mined(txPromise) {
  const tx = await txPromise;
  const receipt = await tx.wait();
  assert.equal(receipt.status, 1);
  return receipt;
}

/** Deploys several contracts from one account in parallel, with consecutive explicit nonces. */
async function deployMany(signer, list) {
  const nonce = await provider.getTransactionCount(signer.address, 'pending');
  return Promise.all(list.map(([artifact, args], i) => deploy(artifact, signer, args, { nonce: nonce + i })));
}

/** Asserts that `promise` is rejected by a revert with exactly this reason string. */
async function reverts(promise, reason) {
  await assert.rejects(promise, (e) => {
    assert.equal(e.code, 'CALL_EXCEPTION', `expected a revert, got ${e.code}: ${e.message}`);
    assert.equal(e.reason, reason);
    return true;
  });
}

const signClaim = (identity, topic, data) =>
  claimSigner.signMessage(ethers.getBytes(ethers.keccak256(coder.encode(['address', 'uint256', 'bytes'], [identity, topic, data]))));

const claimId = (issuer, topic) => ethers.keccak256(coder.encode(['address', 'uint256'], [issuer, topic]));

async function balances(...wallets) {
  return Promise.all(wallets.map((w) => c.token.balanceOf(w.address)));
}

before(async () => {
  node = await startNode();
  provider = new ethers.JsonRpcProvider(node.url, undefined, { staticNetwork: true, pollingInterval: 100, cacheTimeout: -1 });
  const root = ethers.HDNodeWallet.fromPhrase(DEV_MNEMONIC, undefined, "m/44'/60'/0'/0");
  const wallets = Array.from({ length: 8 }, (_, i) => new ethers.Wallet(root.deriveChild(i).privateKey, provider));
  [deployer, agent, issuerWallet, alice, bob, charlie, david, erin] = wallets;
  assert.equal(deployer.privateKey, '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80');
  const accounts = (await rpc(node.url, 'eth_accounts')).map((a) => ethers.getAddress(a));
  for (const w of wallets) assert.ok(accounts.includes(w.address), `${w.address} is a funded dev account`);
});

after(async () => {
  provider?.destroy();
  if (node) {
    await stopNode(node);
    removeDatadir(node.datadir);
  }
});

test('deploy the T-REX implementations, authorities and factories', async () => {
  // Implementations, the OnchainID identity library, the claim issuer and a compliance module.
  const [ctrImpl, tirImpl, irsImpl, irImpl, mcImpl, tokenImpl, identityImpl, trexIA, countryAllowImpl] = await deployMany(deployer, [
    [TREX.ClaimTopicsRegistry],
    [TREX.TrustedIssuersRegistry],
    [TREX.IdentityRegistryStorage],
    [TREX.IdentityRegistry],
    [TREX.ModularCompliance],
    [TREX.Token],
    [OID.Identity, [deployer.address, true]],
    [TREX.TREXImplementationAuthority, [true, ethers.ZeroAddress, ethers.ZeroAddress]],
    [TREX.CountryAllowModule],
  ]);
  c.claimIssuer = await deploy(OID.ClaimIssuer, issuerWallet, [issuerWallet.address]);

  const ia = await deploy(OID.ImplementationAuthority, deployer, [await identityImpl.getAddress()]);
  c.idFactory = await deploy(OID.Factory, deployer, [await ia.getAddress()]);
  c.identityIA = ia;
  const addresses = {
    tokenImplementation: await tokenImpl.getAddress(),
    ctrImplementation: await ctrImpl.getAddress(),
    irImplementation: await irImpl.getAddress(),
    irsImplementation: await irsImpl.getAddress(),
    tirImplementation: await tirImpl.getAddress(),
    mcImplementation: await mcImpl.getAddress(),
  };
  await mined(trexIA.addAndUseTREXVersion({ major: 4, minor: 1, patch: 6 }, addresses));
  assert.equal(await trexIA.getTokenImplementation(), addresses.tokenImplementation);
  assert.deepEqual((await trexIA.getCurrentVersion()).toArray(), [4n, 1n, 6n]);
  c.trexIA = trexIA;

  c.trexFactory = await deploy(TREX.TREXFactory, deployer, [await trexIA.getAddress(), await c.idFactory.getAddress()]);
  await mined(c.idFactory.addTokenFactory(await c.trexFactory.getAddress()));
  assert.equal(await c.idFactory.isTokenFactory(await c.trexFactory.getAddress()), true);

  // The claim issuer's signing key gets the CLAIM purpose (3) with ECDSA type (1).
  await mined(c.claimIssuer.addKey(ethers.keccak256(coder.encode(['address'], [claimSigner.address])), 3, 1));

  // Compliance module behind its proxy, initialized through the proxy constructor (as T-REX tests do).
  const moduleProxy = await deploy(TREX.ModuleProxy, deployer,
    [await countryAllowImpl.getAddress(), countryAllowImpl.interface.encodeFunctionData('initialize')]);
  c.countryAllow = at(TREX.CountryAllowModule, await moduleProxy.getAddress(), deployer);
  assert.equal(await c.countryAllow.name(), 'CountryAllowModule');
  assert.equal(await c.countryAllow.owner(), deployer.address);
});

test('TREXFactory.deployTREXSuite deploys the token suite with CREATE2', async () => {
  const factoryAddress = await c.trexFactory.getAddress();
  const trexIAAddress = await c.trexIA.getAddress();
  const claimIssuerAddress = await c.claimIssuer.getAddress();
  const moduleAddress = await c.countryAllow.getAddress();
  const allow = c.countryAllow.interface.encodeFunctionData('batchAllowCountries', [[FRANCE, GERMANY]]);
  const tokenDetails = {
    owner: deployer.address,
    name: 'Pharos Security Token',
    symbol: 'PST',
    decimals: 0,
    irs: ethers.ZeroAddress,
    ONCHAINID: ethers.ZeroAddress,
    irAgents: [agent.address],
    tokenAgents: [agent.address],
    complianceModules: [moduleAddress],
    complianceSettings: [allow],
  };
  const claimDetails = { claimTopics: [KYC], issuers: [claimIssuerAddress], issuerClaims: [[KYC]] };
  const receipt = await mined(c.trexFactory.deployTREXSuite(SALT, tokenDetails, claimDetails));

  const parsed = receipt.logs
    .filter((l) => l.address === factoryAddress)
    .map((l) => c.trexFactory.interface.parseLog(l));
  const deployed = parsed.filter((e) => e.name === 'Deployed').map((e) => e.args[0]);
  assert.equal(deployed.length, 6, 'TIR, CTR, MC, IRS, IR and token proxies');
  const suite = parsed.find((e) => e.name === 'TREXSuiteDeployed').args;
  assert.deepEqual(deployed, [suite._tir, suite._ctr, suite._mc, suite._irs, suite._ir, suite._token]);
  assert.equal(await c.trexFactory.getToken(SALT), suite._token);

  // The CREATE2 addresses are the ones computed from the packaged proxy creation code.
  const salt = ethers.id(SALT);
  const create2 = (artifact, types, args) => ethers.getCreate2Address(factoryAddress, salt,
    ethers.keccak256(ethers.concat([artifact.bytecode, coder.encode(types, args)])));
  assert.equal(create2(TREX.TrustedIssuersRegistryProxy, ['address'], [trexIAAddress]), suite._tir);
  assert.equal(create2(TREX.IdentityRegistryProxy, ['address', 'address', 'address', 'address'],
    [trexIAAddress, suite._tir, suite._ctr, suite._irs]), suite._ir);
  assert.equal(create2(TREX.TokenProxy, ['address', 'address', 'address', 'string', 'string', 'uint8', 'address'],
    [trexIAAddress, suite._ir, suite._mc, tokenDetails.name, tokenDetails.symbol, 0, ethers.ZeroAddress]), suite._token);

  c.token = at(TREX.Token, suite._token, agent);
  c.ir = at(TREX.IdentityRegistry, suite._ir, agent);
  c.irs = at(TREX.IdentityRegistryStorage, suite._irs, deployer);
  c.ctr = at(TREX.ClaimTopicsRegistry, suite._ctr, deployer);
  c.tir = at(TREX.TrustedIssuersRegistry, suite._tir, deployer);
  c.mc = at(TREX.ModularCompliance, suite._mc, deployer);

  assert.equal(await c.token.name(), tokenDetails.name);
  assert.equal(await c.token.symbol(), 'PST');
  assert.equal(await c.token.decimals(), 0n);
  assert.equal(await c.token.version(), '4.1.3', 'the version constant T-REX 4.1.6 ships in TokenStorage.sol');
  assert.equal(await c.token.owner(), deployer.address);
  assert.equal(await c.token.paused(), true, 'a new T-REX token starts paused');
  assert.equal(await c.token.isAgent(agent.address), true);
  assert.equal(await c.token.identityRegistry(), suite._ir);
  assert.equal(await c.token.compliance(), suite._mc);
  // The token's own ONCHAINID, created by the IdFactory on behalf of the TREXFactory.
  const tokenOID = await c.token.onchainID();
  assert.notEqual(tokenOID, ethers.ZeroAddress);
  assert.equal(await c.idFactory.getIdentity(suite._token), tokenOID);
  assert.equal(await c.idFactory.getToken(tokenOID), suite._token);

  assert.equal(await c.ir.isAgent(agent.address), true);
  assert.equal(await c.ir.isAgent(suite._token), true);
  assert.equal(await c.ir.identityStorage(), suite._irs);
  assert.deepEqual((await c.irs.linkedIdentityRegistries()).toArray(), [suite._ir]);
  assert.deepEqual((await c.ctr.getClaimTopics()).toArray(), [KYC]);
  assert.deepEqual((await c.tir.getTrustedIssuers()).toArray(), [claimIssuerAddress]);
  assert.deepEqual((await c.tir.getTrustedIssuerClaimTopics(claimIssuerAddress)).toArray(), [KYC]);
  assert.equal(await c.mc.getTokenBound(), suite._token);
  assert.deepEqual((await c.mc.getModules()).toArray(), [moduleAddress]);
  assert.equal(await c.countryAllow.isCountryAllowed(suite._mc, FRANCE), true);
  assert.equal(await c.countryAllow.isCountryAllowed(suite._mc, USA), false);
  for (const x of [c.ir, c.tir, c.ctr, c.mc]) assert.equal(await x.owner(), deployer.address);
});

test('investor ONCHAINIDs with KYC claims signed by the trusted claim issuer', async () => {
  const factoryAddress = await c.idFactory.getAddress();
  const iaAddress = await c.identityIA.getAddress();
  const investors = { alice, bob, charlie, erin };
  // IdFactory.createIdentity (owner only), in parallel with explicit nonces.
  const nonce = await provider.getTransactionCount(deployer.address, 'pending');
  await Promise.all(Object.entries(investors).map(([name, w], i) =>
    mined(c.idFactory.createIdentity(w.address, name, { nonce: nonce + i }))));
  for (const [name, w] of Object.entries(investors)) {
    const address = await c.idFactory.getIdentity(w.address);
    const expected = ethers.getCreate2Address(factoryAddress, ethers.id(`OID${name}`),
      ethers.keccak256(ethers.concat([OID.IdentityProxy.bytecode, coder.encode(['address', 'address'], [iaAddress, w.address])])));
    assert.equal(address, expected, `${name}'s identity at its CREATE2 address`);
    ids[w.address] = at(OID.Identity, address, w);
    // The wallet is the identity's management key.
    assert.equal(await ids[w.address].keyHasPurpose(ethers.keccak256(coder.encode(['address'], [w.address])), 1), true);
  }
  assert.equal(await c.idFactory.getIdentity(david.address), ethers.ZeroAddress);

  // A claim signed by a key the issuer does not hold is refused by the identity itself.
  const aliceId = ids[alice.address];
  const aliceIdAddress = await aliceId.getAddress();
  const issuer = await c.claimIssuer.getAddress();
  const data = ethers.hexlify(ethers.toUtf8Bytes('KYC approved'));
  const forged = await ethers.Wallet.createRandom().signMessage(ethers.getBytes(
    ethers.keccak256(coder.encode(['address', 'uint256', 'bytes'], [aliceIdAddress, KYC, data]))));
  assert.equal(await c.claimIssuer.isClaimValid(aliceIdAddress, KYC, forged, data), false);
  await reverts(aliceId.addClaim.staticCall(KYC, 1, issuer, forged, data, ''), 'invalid claim');
  // Only a CLAIM key of the identity may add claims.
  await reverts(aliceId.connect(bob).addClaim.staticCall(KYC, 1, issuer, forged, data, ''),
    'Permissions: Sender does not have claim signer key');

  // Alice, Bob and Erin get a KYC claim; Charlie does not.
  await Promise.all([['alice', alice], ['bob', bob], ['erin', erin]].map(async ([name, w]) => {
    const id = ids[w.address];
    const idAddress = await id.getAddress();
    const signature = await signClaim(idAddress, KYC, data);
    claims[name] = { signature, data };
    assert.equal(await c.claimIssuer.isClaimValid(idAddress, KYC, signature, data), true);
    const receipt = await mined(id.addClaim(KYC, 1, issuer, signature, data, ''));
    const added = receipt.logs.map((l) => id.interface.parseLog(l)).find((e) => e?.name === 'ClaimAdded');
    assert.equal(added.args.claimId, claimId(issuer, KYC));
    const stored = await id.getClaim(claimId(issuer, KYC));
    assert.equal(stored.topic, KYC);
    assert.equal(stored.issuer, issuer);
    assert.equal(stored.signature, signature);
    assert.equal(stored.data, data);
  }));
  assert.deepEqual((await ids[charlie.address].getClaimIdsByTopic(KYC)).toArray(), []);

  // The agent registers the wallets with their identities and countries.
  const registered = [alice, bob, charlie, erin];
  await mined(c.ir.batchRegisterIdentity(
    registered.map((w) => w.address),
    await Promise.all(registered.map((w) => ids[w.address].getAddress())),
    [FRANCE, GERMANY, FRANCE, USA],
  ));
  assert.equal(await c.ir.investorCountry(bob.address), BigInt(GERMANY));
  assert.equal(await c.ir.identity(erin.address), await ids[erin.address].getAddress());
  await reverts(c.ir.connect(david).registerIdentity.staticCall(david.address, aliceIdAddress, FRANCE),
    'AgentRole: caller does not have the Agent role');

  assert.equal(await c.ir.isVerified(alice.address), true);
  assert.equal(await c.ir.isVerified(bob.address), true);
  assert.equal(await c.ir.isVerified(erin.address), true, 'verified, though from a country the compliance does not allow');
  assert.equal(await c.ir.isVerified(charlie.address), false, 'identity without a KYC claim');
  assert.equal(await c.ir.isVerified(david.address), false, 'no identity');
});

test('mint to verified investors and unpause', async () => {
  assert.equal(await c.token.totalSupply(), 0n);
  await reverts(c.token.mint.staticCall(david.address, 10), 'Identity is not verified.');
  await reverts(c.token.mint.staticCall(charlie.address, 10), 'Identity is not verified.');
  await reverts(c.token.mint.staticCall(erin.address, 10), 'Compliance not followed');
  await reverts(c.token.connect(alice).mint.staticCall(alice.address, 10), 'AgentRole: caller does not have the Agent role');

  await mined(c.token.mint(alice.address, 1000));
  await mined(c.token.mint(bob.address, 500));
  assert.deepEqual(await balances(alice, bob), [1000n, 500n]);
  assert.equal(await c.token.totalSupply(), 1500n);

  // Paused: even a compliant transfer is refused.
  await reverts(c.token.connect(alice).transfer.staticCall(bob.address, 1), 'Pausable: paused');
  await mined(c.token.unpause());
  assert.equal(await c.token.paused(), false);
});

test('a compliant transfer between verified investors moves the tokens', async () => {
  assert.equal(await c.mc.canTransfer(alice.address, bob.address, 100), true);
  const est = await c.token.connect(alice).transfer.estimateGas(bob.address, 100);
  const receipt = await mined(c.token.connect(alice).transfer(bob.address, 100, { gasLimit: est }));
  assert.ok(receipt.gasUsed <= est, `used ${receipt.gasUsed} <= estimate ${est}`);
  const transfers = receipt.logs.filter((l) => l.address === c.token.target).map((l) => c.token.interface.parseLog(l));
  assert.equal(transfers.length, 1);
  assert.equal(transfers[0].name, 'Transfer');
  assert.deepEqual(transfers[0].args.toArray(), [alice.address, bob.address, 100n]);
  assert.deepEqual(await balances(alice, bob), [900n, 600n]);
  assert.equal(await c.token.totalSupply(), 1500n);
});

test('non-compliant transfers revert with "Transfer not possible" and change nothing', async () => {
  const before = await balances(alice, bob, charlie, david, erin);
  assert.deepEqual(before, [900n, 600n, 0n, 0n, 0n]);
  const fromAlice = c.token.connect(alice);
  // No identity; an identity without the KYC claim; verified but from a country the compliance module refuses.
  for (const to of [david, charlie, erin]) {
    await reverts(fromAlice.transfer.staticCall(to.address, 10), 'Transfer not possible');
    await reverts(fromAlice.transfer.estimateGas(to.address, 10), 'Transfer not possible');
  }
  assert.equal(await c.mc.canTransfer(alice.address, erin.address, 10), false);
  await reverts(fromAlice.transfer.staticCall(bob.address, 901), 'Insufficient Balance');

  // The revert from inside the proxied implementation reaches a raw eth_call intact.
  const data = c.token.interface.encodeFunctionData('transfer', [david.address, 10]);
  await assert.rejects(rpc(node.url, 'eth_call', [{ from: alice.address, to: c.token.target, data }, 'latest']), (e) => {
    assert.equal(e.code, 3);
    assert.equal(e.message, 'execution reverted: Transfer not possible');
    assert.equal(e.data, ethers.concat(['0x08c379a0', coder.encode(['string'], ['Transfer not possible'])]));
    return true;
  });

  // Mined anyway (explicit gas limit, no estimate): status 0, no Transfer log, balances unchanged.
  const tx = await fromAlice.transfer(david.address, 10, { gasLimit: 500_000 });
  await assert.rejects(tx.wait(), (e) => e.code === 'CALL_EXCEPTION' && e.receipt?.status === 0);
  const receipt = await provider.getTransactionReceipt(tx.hash);
  assert.equal(receipt.status, 0);
  assert.equal(receipt.logs.length, 0);
  assert.deepEqual(await balances(alice, bob, charlie, david, erin), before);
  assert.equal(await c.token.totalSupply(), 1500n);
});

test('a frozen wallet cannot transfer; the agent can force a transfer', async () => {
  await mined(c.token.setAddressFrozen(alice.address, true));
  assert.equal(await c.token.isFrozen(alice.address), true);
  await reverts(c.token.connect(alice).transfer.staticCall(bob.address, 10), 'wallet is frozen');
  await reverts(c.token.connect(bob).transfer.staticCall(alice.address, 10), 'wallet is frozen');

  await reverts(c.token.connect(alice).forcedTransfer.staticCall(alice.address, bob.address, 10),
    'AgentRole: caller does not have the Agent role');
  await reverts(c.token.forcedTransfer.staticCall(alice.address, david.address, 10), 'Transfer not possible');
  await mined(c.token.forcedTransfer(alice.address, bob.address, 50));
  assert.deepEqual(await balances(alice, bob), [850n, 650n]);

  await mined(c.token.setAddressFrozen(alice.address, false));
  await mined(c.token.connect(alice).transfer(bob.address, 25));
  assert.deepEqual(await balances(alice, bob), [825n, 675n]);

  // Partially frozen tokens are not spendable.
  await mined(c.token.freezePartialTokens(bob.address, 600));
  assert.equal(await c.token.getFrozenTokens(bob.address), 600n);
  await reverts(c.token.connect(bob).transfer.staticCall(alice.address, 76), 'Insufficient Balance');
  await mined(c.token.connect(bob).transfer(alice.address, 75));
  assert.deepEqual(await balances(alice, bob), [900n, 600n]);
});

test('a revoked claim makes the receiver ineligible', async () => {
  const bobIdAddress = await ids[bob.address].getAddress();
  await mined(c.claimIssuer.revokeClaimBySignature(claims.bob.signature));
  assert.equal(await c.claimIssuer.isClaimRevoked(claims.bob.signature), true);
  assert.equal(await c.claimIssuer.isClaimValid(bobIdAddress, KYC, claims.bob.signature, claims.bob.data), false);
  assert.equal(await c.ir.isVerified(bob.address), false);
  await reverts(c.token.connect(alice).transfer.staticCall(bob.address, 1), 'Transfer not possible');
  await reverts(c.token.mint.staticCall(bob.address, 1), 'Identity is not verified.');
  assert.deepEqual(await balances(alice, bob), [900n, 600n]);
});
