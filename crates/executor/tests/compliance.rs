//! The compliance system contracts through the executors: identities, claims, regulated-asset
//! rules on a real OpenZeppelin ERC-20 (every path that moves it), agent actions, sanctions on
//! native coin; and the parallel executor equal to the sequential one on blocks full of
//! compliance checks.

use std::{collections::HashMap, sync::Arc};

use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_sol_types::{SolCall, SolValue, sol};
use pharos_compliance::{
    ASSET_COMPLIANCE, IAssetCompliance as A, IDENTITY_REGISTRY, IIdentityRegistry as I,
    ISanctionsList as S, ITrustedIssuersRegistry as T, SANCTIONS_LIST, TRUSTED_ISSUERS,
    genesis::ComplianceGenesis,
};
use pharos_evm::{BlockContext, decode_revert_reason};
use pharos_executor::{
    BlockExecutor, BlockOutput, CodeCache, MemoryState, ParallelConfig, ParallelExecutor,
    SequentialExecutor, Strategy, TxOutcome, TxStatus,
};
use pharos_primitives::RecoveredTx;
use pharos_workload::{TxBuilder, Wallet};

const CHAIN: u64 = 1337;
const DAY: u64 = 86_400;
const START: u64 = 1_800_000_000;

sol! {
    function transfer(address to, uint256 amount) returns (bool);
    function transferFrom(address from, address to, uint256 amount) returns (bool);
    function approve(address spender, uint256 amount) returns (bool);
    function balanceOf(address owner) returns (uint256);
}

fn token_code(supply: U256) -> Bytes {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/artifacts/TestToken.json"
    );
    let text = std::fs::read_to_string(path).expect("TestToken artifact");
    let json: serde_json::Value = serde_json::from_str(&text).expect("artifact json");
    let hex = json["bytecode"].as_str().expect("bytecode");
    let mut code = alloy_primitives::hex::decode(hex).expect("hex");
    code.extend_from_slice(&supply.abi_encode());
    code.into()
}

struct Chain {
    state: MemoryState,
    number: u64,
    timestamp: u64,
    nonces: HashMap<Address, u64>,
    builder: TxBuilder,
}

impl Chain {
    fn new(wallets: &[&Wallet], admin: Address) -> Self {
        let mut state = MemoryState::default();
        for w in wallets {
            state.insert_account(w.address(), 0, U256::from(10u128.pow(24)), None, []);
        }
        for (address, account) in ComplianceGenesis::dev(admin).accounts() {
            let storage = account
                .storage
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (U256::from_be_bytes(k.0), U256::from_be_bytes(v.0)));
            state.insert_account(
                address,
                account.nonce.unwrap_or_default(),
                account.balance,
                account.code,
                storage,
            );
        }
        Self {
            state,
            number: 1,
            timestamp: START,
            nonces: HashMap::new(),
            builder: TxBuilder::new(CHAIN),
        }
    }

    fn block(&self) -> BlockContext {
        BlockContext {
            number: self.number,
            timestamp: self.timestamp,
            beneficiary: Address::repeat_byte(0xcb),
            gas_limit: 1_000_000_000,
            base_fee: 1_000_000_000,
            prevrandao: B256::repeat_byte(7),
            excess_blob_gas: 0,
        }
    }

    fn tx(&mut self, from: &Wallet, to: TxKind, value: U256, data: Bytes) -> RecoveredTx {
        let nonce = self.nonces.entry(from.address()).or_default();
        let tx = self.builder.eip1559(*nonce, to, value, data, 3_000_000);
        *nonce += 1;
        from.sign_recovered(tx)
    }

    /// Executes `txs` as one block sequentially, applies it, and returns the output.
    fn run(&mut self, txs: Vec<RecoveredTx>) -> BlockOutput {
        let exec = SequentialExecutor::new(CHAIN, Arc::new(CodeCache::default()));
        let txs: Vec<Arc<RecoveredTx>> = txs.into_iter().map(Arc::new).collect();
        let out = exec
            .execute(&self.block(), &txs, &self.state)
            .expect("block executes");
        self.state.apply(&out.diff);
        self.number += 1;
        self.timestamp += 1;
        out
    }

    fn send(&mut self, from: &Wallet, to: Address, data: Bytes) -> TxOutcome {
        let tx = self.tx(from, TxKind::Call(to), U256::ZERO, data);
        let out = self.run(vec![tx]);
        out.results[0].outcome().expect("included").clone()
    }

    fn ok(&mut self, from: &Wallet, to: Address, data: Vec<u8>) -> TxOutcome {
        let outcome = self.send(from, to, data.into());
        assert!(
            outcome.success(),
            "expected success, reverted: {:?}",
            decode_revert_reason(&outcome.output)
        );
        outcome
    }

    fn denied(&mut self, from: &Wallet, to: Address, data: Vec<u8>, reason: &str) {
        let outcome = self.send(from, to, data.into());
        assert_eq!(
            outcome.status,
            TxStatus::Revert,
            "expected a revert ({reason})"
        );
        let got = decode_revert_reason(&outcome.output).unwrap_or_default();
        assert!(
            got.starts_with("compliance: ") && got.contains(reason),
            "revert reason {got:?} does not name {reason:?}"
        );
        assert!(outcome.logs.is_empty());
    }

    fn storage(&self, address: Address, slot: U256) -> U256 {
        self.state
            .storage
            .get(&address)
            .and_then(|s| s.get(&slot))
            .copied()
            .unwrap_or_default()
    }

    fn balance(&self, token: Address, holder: Address) -> U256 {
        self.storage(
            token,
            pharos_compliance::assets::balance_slot(holder, U256::ZERO),
        )
    }
}

struct Cast {
    admin: Wallet,
    agent: Wallet,
    kyc: Wallet,
    issuer: Wallet,
    alice: Wallet,
    bob: Wallet,
    carol: Wallet,
    erin: Wallet,
    dave: Wallet,
}

fn cast() -> Cast {
    Cast {
        admin: Wallet::from_index(101),
        agent: Wallet::from_index(102),
        kyc: Wallet::from_index(103),
        issuer: Wallet::from_index(104),
        alice: Wallet::from_index(105),
        bob: Wallet::from_index(106),
        carol: Wallet::from_index(107),
        erin: Wallet::from_index(108),
        dave: Wallet::from_index(109),
    }
}

/// Roles, identities (alice FR, bob DE, carol US, erin FR without a claim; dave none), KYC
/// claims, and an OpenZeppelin ERC-20 of 1,000,000 held by the issuer, registered with rules:
/// KYC required, US blocked, at most 10,000 per investor.
fn setup(c: &Cast) -> (Chain, Address) {
    let mut chain = Chain::new(
        &[
            &c.admin, &c.agent, &c.kyc, &c.issuer, &c.alice, &c.bob, &c.carol, &c.erin, &c.dave,
        ],
        c.admin.address(),
    );
    chain.ok(
        &c.admin,
        IDENTITY_REGISTRY,
        I::setAgentCall {
            agent: c.agent.address(),
            enabled: true,
        }
        .abi_encode(),
    );
    chain.ok(
        &c.admin,
        TRUSTED_ISSUERS,
        T::addTrustedIssuerCall {
            issuer: c.kyc.address(),
            topics: vec![U256::from(1)],
        }
        .abi_encode(),
    );
    chain.ok(
        &c.admin,
        ASSET_COMPLIANCE,
        A::setAssetIssuerCall {
            account: c.issuer.address(),
            enabled: true,
        }
        .abi_encode(),
    );
    for (who, country) in [
        (&c.alice, 250u16),
        (&c.bob, 276),
        (&c.carol, 840),
        (&c.erin, 250),
    ] {
        chain.ok(
            &c.agent,
            IDENTITY_REGISTRY,
            I::registerIdentityCall {
                wallet: who.address(),
                country,
            }
            .abi_encode(),
        );
    }
    for id in [1u64, 2, 3] {
        chain.ok(
            &c.kyc,
            IDENTITY_REGISTRY,
            I::addClaimCall {
                identity: id,
                topic: U256::from(1),
                expiry: START + 30 * DAY,
                data: B256::with_last_byte(2),
            }
            .abi_encode(),
        );
    }
    let deploy = chain.tx(
        &c.issuer,
        TxKind::Create,
        U256::ZERO,
        token_code(U256::from(1_000_000)),
    );
    let out = chain.run(vec![deploy]);
    let token = out.results[0]
        .outcome()
        .and_then(|o| o.created)
        .expect("token deployed");
    chain.ok(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::registerAssetCall {
            token,
            balancesSlot: U256::ZERO,
            deployNonce: 0,
        }
        .abi_encode(),
    );
    chain.ok(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::setRequiredClaimsCall {
            token,
            topics: vec![U256::from(1)],
        }
        .abi_encode(),
    );
    chain.ok(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::setCountryRuleCall {
            token,
            country: 840,
            allowed: false,
            blocked: true,
        }
        .abi_encode(),
    );
    chain.ok(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::setLimitsCall {
            token,
            maxHolders: 0,
            maxBalance: U256::from(10_000),
            dailyLimit: U256::ZERO,
        }
        .abi_encode(),
    );
    chain.ok(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::setAgentCall {
            token,
            agent: c.agent.address(),
            enabled: true,
        }
        .abi_encode(),
    );
    (chain, token)
}

fn xfer(to: &Wallet, amount: u64) -> Vec<u8> {
    transferCall {
        to: to.address(),
        amount: U256::from(amount),
    }
    .abi_encode()
}

#[test]
fn identities_claims_and_dids() {
    let c = cast();
    let (mut chain, _) = setup(&c);
    let out = chain.ok(
        &c.alice,
        IDENTITY_REGISTRY,
        I::didOfCall {
            wallet: c.alice.address(),
        }
        .abi_encode(),
    );
    let did = I::didOfCall::abi_decode_returns(&out.output).expect("string");
    assert_eq!(
        did,
        format!(
            "did:pharos:{}",
            c.alice.address().to_string().to_lowercase()
        )
    );
    let valid = |chain: &mut Chain, who: &Wallet| {
        let out = chain.ok(
            &c.dave,
            IDENTITY_REGISTRY,
            I::hasValidClaimCall {
                wallet: who.address(),
                topic: U256::from(1),
            }
            .abi_encode(),
        );
        I::hasValidClaimCall::abi_decode_returns(&out.output).expect("bool")
    };
    assert!(valid(&mut chain, &c.alice));
    assert!(!valid(&mut chain, &c.erin));
    // Only agents register; only trusted issuers add claims; only the admin trusts issuers.
    chain.denied(
        &c.dave,
        IDENTITY_REGISTRY,
        I::registerIdentityCall {
            wallet: c.dave.address(),
            country: 1,
        }
        .abi_encode(),
        "not an identity agent",
    );
    chain.denied(
        &c.dave,
        IDENTITY_REGISTRY,
        I::addClaimCall {
            identity: 4,
            topic: U256::from(1),
            expiry: 0,
            data: B256::ZERO,
        }
        .abi_encode(),
        "not a trusted issuer for claim topic 1",
    );
    chain.denied(
        &c.agent,
        TRUSTED_ISSUERS,
        T::addTrustedIssuerCall {
            issuer: c.dave.address(),
            topics: vec![U256::from(1)],
        }
        .abi_encode(),
        "only the compliance administrator",
    );
    chain.denied(
        &c.agent,
        IDENTITY_REGISTRY,
        I::registerIdentityCall {
            wallet: c.alice.address(),
            country: 1,
        }
        .abi_encode(),
        "already belongs to identity 1",
    );
    // Claims expire, and stop counting when their issuer is no longer trusted.
    chain.timestamp = START + 31 * DAY;
    assert!(!valid(&mut chain, &c.alice));
    chain.timestamp = START + DAY;
    assert!(valid(&mut chain, &c.bob));
    chain.ok(
        &c.admin,
        TRUSTED_ISSUERS,
        T::removeTrustedIssuerCall {
            issuer: c.kyc.address(),
        }
        .abi_encode(),
    );
    assert!(!valid(&mut chain, &c.bob));
    // Several wallets per identity; a static call cannot write.
    let extra = Wallet::from_index(200);
    chain.ok(
        &c.agent,
        IDENTITY_REGISTRY,
        I::addWalletCall {
            identity: 1,
            wallet: extra.address(),
        }
        .abi_encode(),
    );
    let out = chain.ok(
        &c.dave,
        IDENTITY_REGISTRY,
        I::walletCountCall { identity: 1 }.abi_encode(),
    );
    assert_eq!(
        I::walletCountCall::abi_decode_returns(&out.output).expect("u32"),
        2
    );
    // Malformed calldata is a clear revert, never a crash.
    chain.denied(
        &c.dave,
        IDENTITY_REGISTRY,
        vec![1, 2, 3],
        "unknown function",
    );
    chain.denied(&c.dave, ASSET_COMPLIANCE, vec![], "unknown function");
}

#[test]
fn asset_rules_apply_on_every_transfer_path() {
    let c = cast();
    let (mut chain, token) = setup(&c);
    chain.ok(&c.issuer, token, xfer(&c.alice, 9_000));
    assert_eq!(chain.balance(token, c.alice.address()), U256::from(9_000));
    chain.denied(&c.issuer, token, xfer(&c.dave, 10), "identity: recipient");
    chain.denied(
        &c.issuer,
        token,
        xfer(&c.erin, 10),
        "required claim: recipient",
    );
    chain.denied(&c.issuer, token, xfer(&c.erin, 10), "topic 1 (KYC)");
    chain.denied(
        &c.issuer,
        token,
        xfer(&c.carol, 10),
        "country 840 is blocked",
    );
    chain.denied(&c.issuer, token, xfer(&c.bob, 10_001), "max balance");
    // transferFrom by a spender is the same transfer to the rules.
    chain.ok(
        &c.alice,
        token,
        approveCall {
            spender: c.dave.address(),
            amount: U256::from(1_000),
        }
        .abi_encode(),
    );
    chain.denied(
        &c.dave,
        token,
        transferFromCall {
            from: c.alice.address(),
            to: c.carol.address(),
            amount: U256::from(5),
        }
        .abi_encode(),
        "country 840 is blocked",
    );
    chain.ok(
        &c.dave,
        token,
        transferFromCall {
            from: c.alice.address(),
            to: c.bob.address(),
            amount: U256::from(5),
        }
        .abi_encode(),
    );
    assert_eq!(chain.balance(token, c.bob.address()), U256::from(5));
    // Denied transfers changed nothing.
    assert_eq!(chain.balance(token, c.alice.address()), U256::from(8_995));
    assert_eq!(chain.balance(token, c.carol.address()), U256::ZERO);

    // Freezes, pause, lock-up, each undone.
    let set = |frozen| A::setAddressFrozenCall {
        token,
        investor: c.alice.address(),
        frozen,
    };
    chain.ok(&c.agent, ASSET_COMPLIANCE, set(true).abi_encode());
    chain.denied(&c.alice, token, xfer(&c.bob, 1), "frozen: sender");
    chain.denied(&c.bob, token, xfer(&c.alice, 1), "frozen: recipient");
    chain.ok(&c.agent, ASSET_COMPLIANCE, set(false).abi_encode());
    chain.ok(
        &c.agent,
        ASSET_COMPLIANCE,
        A::setFrozenTokensCall {
            token,
            investor: c.alice.address(),
            amount: U256::from(8_000),
        }
        .abi_encode(),
    );
    chain.denied(&c.alice, token, xfer(&c.bob, 996), "partial freeze");
    chain.ok(&c.alice, token, xfer(&c.bob, 995));
    chain.ok(
        &c.agent,
        ASSET_COMPLIANCE,
        A::setPausedCall {
            token,
            paused: true,
        }
        .abi_encode(),
    );
    chain.denied(&c.bob, token, xfer(&c.alice, 1), "paused");
    chain.ok(
        &c.agent,
        ASSET_COMPLIANCE,
        A::setPausedCall {
            token,
            paused: false,
        }
        .abi_encode(),
    );
    let until = chain.timestamp + 100;
    chain.ok(
        &c.agent,
        ASSET_COMPLIANCE,
        A::setLockupCall {
            token,
            investor: c.bob.address(),
            until,
        }
        .abi_encode(),
    );
    chain.denied(&c.bob, token, xfer(&c.alice, 1), "lock-up: sender");
    chain.timestamp = until;
    chain.ok(&c.bob, token, xfer(&c.alice, 1));

    // Daily limit: per sender and UTC day.
    chain.ok(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::setLimitsCall {
            token,
            maxHolders: 0,
            maxBalance: U256::ZERO,
            dailyLimit: U256::from(600),
        }
        .abi_encode(),
    );
    chain.ok(&c.bob, token, xfer(&c.alice, 400));
    chain.denied(&c.bob, token, xfer(&c.alice, 201), "daily limit");
    chain.ok(&c.bob, token, xfer(&c.alice, 200));
    chain.timestamp += DAY;
    chain.ok(&c.bob, token, xfer(&c.alice, 300));

    // canTransfer says the same without sending.
    let out = chain.ok(
        &c.dave,
        ASSET_COMPLIANCE,
        A::canTransferCall {
            token,
            from: c.alice.address(),
            to: c.carol.address(),
            amount: U256::from(1),
        }
        .abi_encode(),
    );
    let verdict = A::canTransferCall::abi_decode_returns(&out.output).expect("string");
    assert!(verdict.contains("country 840 is blocked"), "{verdict}");
}

#[test]
fn holder_limit_forced_transfer_and_recovery() {
    let c = cast();
    let (mut chain, token) = setup(&c);
    chain.ok(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::setLimitsCall {
            token,
            maxHolders: 1,
            maxBalance: U256::ZERO,
            dailyLimit: U256::ZERO,
        }
        .abi_encode(),
    );
    chain.ok(&c.issuer, token, xfer(&c.alice, 500));
    chain.denied(&c.issuer, token, xfer(&c.bob, 1), "max holders");
    // Alice leaving and bob joining in one transfer keeps one holder.
    chain.ok(&c.alice, token, xfer(&c.bob, 500));
    let info = |chain: &mut Chain| {
        let out = chain.ok(
            &c.dave,
            ASSET_COMPLIANCE,
            A::assetInfoCall { token }.abi_encode(),
        );
        A::assetInfoCall::abi_decode_returns(&out.output).expect("info")
    };
    assert_eq!(info(&mut chain).holders, 1);
    chain.ok(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::setLimitsCall {
            token,
            maxHolders: 2,
            maxBalance: U256::ZERO,
            dailyLimit: U256::ZERO,
        }
        .abi_encode(),
    );

    // Forced transfer by an agent ignores the sender's freeze, not the recipient's identity.
    chain.ok(
        &c.agent,
        ASSET_COMPLIANCE,
        A::setAddressFrozenCall {
            token,
            investor: c.bob.address(),
            frozen: true,
        }
        .abi_encode(),
    );
    chain.denied(
        &c.agent,
        ASSET_COMPLIANCE,
        A::forcedTransferCall {
            token,
            from: c.bob.address(),
            to: c.dave.address(),
            amount: U256::from(1),
        }
        .abi_encode(),
        "identity: recipient",
    );
    chain.denied(
        &c.dave,
        ASSET_COMPLIANCE,
        A::forcedTransferCall {
            token,
            from: c.bob.address(),
            to: c.alice.address(),
            amount: U256::from(1),
        }
        .abi_encode(),
        "not the owner or an agent",
    );
    let out = chain.ok(
        &c.agent,
        ASSET_COMPLIANCE,
        A::forcedTransferCall {
            token,
            from: c.bob.address(),
            to: c.alice.address(),
            amount: U256::from(200),
        }
        .abi_encode(),
    );
    assert_eq!(chain.balance(token, c.alice.address()), U256::from(200));
    assert_eq!(chain.balance(token, c.bob.address()), U256::from(300));
    // The token's own Transfer event and the audit event.
    assert_eq!(out.logs.len(), 2);
    assert_eq!(out.logs[0].address, token);
    assert_eq!(out.logs[1].address, ASSET_COMPLIANCE);

    // Bob loses his wallet: the agent recovers the identity, then the tokens, freeze included.
    let bob2 = Wallet::from_index(300);
    chain.denied(
        &c.agent,
        ASSET_COMPLIANCE,
        A::recoverCall {
            token,
            lostWallet: c.bob.address(),
            newWallet: bob2.address(),
        }
        .abi_encode(),
        "recoverWallet first",
    );
    chain.ok(
        &c.agent,
        IDENTITY_REGISTRY,
        I::recoverWalletCall {
            lostWallet: c.bob.address(),
            newWallet: bob2.address(),
        }
        .abi_encode(),
    );
    chain.ok(
        &c.agent,
        ASSET_COMPLIANCE,
        A::recoverCall {
            token,
            lostWallet: c.bob.address(),
            newWallet: bob2.address(),
        }
        .abi_encode(),
    );
    assert_eq!(chain.balance(token, bob2.address()), U256::from(300));
    assert_eq!(chain.balance(token, c.bob.address()), U256::ZERO);
    let out = chain.ok(
        &c.dave,
        ASSET_COMPLIANCE,
        A::isFrozenCall {
            token,
            investor: bob2.address(),
        }
        .abi_encode(),
    );
    assert!(A::isFrozenCall::abi_decode_returns(&out.output).expect("bool"));
    // Same identity, same claims, same DID.
    let out = chain.ok(
        &c.dave,
        IDENTITY_REGISTRY,
        I::didOfCall {
            wallet: bob2.address(),
        }
        .abi_encode(),
    );
    let did = I::didOfCall::abi_decode_returns(&out.output).expect("did");
    assert_eq!(
        did,
        format!("did:pharos:{}", c.bob.address().to_string().to_lowercase())
    );
    let out = chain.ok(
        &c.dave,
        IDENTITY_REGISTRY,
        I::hasValidClaimCall {
            wallet: bob2.address(),
            topic: U256::from(1),
        }
        .abi_encode(),
    );
    assert!(I::hasValidClaimCall::abi_decode_returns(&out.output).expect("bool"));
    // Alice and bob2 hold it; the issuer held its supply from before registration, so when it
    // sends all of it away the count stays (it was never counted).
    assert_eq!(info(&mut chain).holders, 2);
    let rest = chain.balance(token, c.issuer.address());
    chain.ok(
        &c.issuer,
        token,
        transferCall {
            to: c.alice.address(),
            amount: rest,
        }
        .abi_encode(),
    );
    assert_eq!(chain.balance(token, c.issuer.address()), U256::ZERO);
    assert_eq!(info(&mut chain).holders, 2);
}

#[test]
fn sanctions_block_native_coin_and_regulated_transfers() {
    let c = cast();
    let (mut chain, token) = setup(&c);
    chain.ok(&c.issuer, token, xfer(&c.alice, 100));
    chain.denied(
        &c.dave,
        SANCTIONS_LIST,
        S::setSanctionedCall {
            accounts: vec![c.bob.address()],
            listed: true,
        }
        .abi_encode(),
        "not a sanctions officer",
    );
    chain.ok(
        &c.admin,
        SANCTIONS_LIST,
        S::setOfficerCall {
            officer: c.agent.address(),
            enabled: true,
        }
        .abi_encode(),
    );
    chain.ok(
        &c.agent,
        SANCTIONS_LIST,
        S::setSanctionedCall {
            accounts: vec![c.bob.address()],
            listed: true,
        }
        .abi_encode(),
    );
    chain.denied(&c.alice, token, xfer(&c.bob, 1), "sanctions: recipient");
    // Native coin to and from a listed address: the transaction reverts, the coin stays.
    let before = chain.state.accounts[&c.bob.address()].balance;
    let tx = chain.tx(
        &c.alice,
        TxKind::Call(c.bob.address()),
        U256::from(7),
        Bytes::new(),
    );
    let out = chain.run(vec![tx]);
    let outcome = out.results[0].outcome().expect("included");
    assert_eq!(outcome.status, TxStatus::Revert);
    assert!(
        decode_revert_reason(&outcome.output)
            .unwrap_or_default()
            .contains("sanctions: recipient")
    );
    let tx = chain.tx(
        &c.bob,
        TxKind::Call(c.alice.address()),
        U256::from(7),
        Bytes::new(),
    );
    let out = chain.run(vec![tx]);
    let outcome = out.results[0].outcome().expect("included");
    assert_eq!(outcome.status, TxStatus::Revert);
    assert!(
        decode_revert_reason(&outcome.output)
            .unwrap_or_default()
            .contains("sanctions: sender")
    );
    // Bob paid gas for his attempt, and received nothing.
    assert!(chain.state.accounts[&c.bob.address()].balance < before);
    chain.ok(
        &c.agent,
        SANCTIONS_LIST,
        S::setSanctionedCall {
            accounts: vec![c.bob.address()],
            listed: false,
        }
        .abi_encode(),
    );
    chain.ok(&c.alice, token, xfer(&c.bob, 1));
    let tx = chain.tx(
        &c.alice,
        TxKind::Call(c.bob.address()),
        U256::from(7),
        Bytes::new(),
    );
    assert!(
        chain.run(vec![tx]).results[0]
            .outcome()
            .expect("included")
            .success()
    );
}

#[test]
fn unregistered_tokens_and_plain_transfers_are_unaffected() {
    let c = cast();
    let (mut chain, _) = setup(&c);
    let deploy = chain.tx(
        &c.dave,
        TxKind::Create,
        U256::ZERO,
        token_code(U256::from(1_000)),
    );
    let out = chain.run(vec![deploy]);
    let plain = out.results[0]
        .outcome()
        .and_then(|o| o.created)
        .expect("deployed");
    // No identity needed; gas does not depend on the recipient's compliance state (equality
    // with anvil's gas is checked end to end in tests/e2e/test/native-compliance.test.mjs).
    let out = chain.ok(&c.dave, plain, xfer(&c.carol, 10));
    let out2 = chain.ok(&c.dave, plain, xfer(&c.erin, 10));
    assert_eq!(out.gas_used, out2.gas_used);
    let tx = chain.tx(
        &c.dave,
        TxKind::Call(c.erin.address()),
        U256::from(1),
        Bytes::new(),
    );
    assert_eq!(
        chain.run(vec![tx]).results[0]
            .outcome()
            .expect("included")
            .gas_used,
        21_000
    );
}

/// A block of many regulated and plain transfers, some denied, among a few hot accounts: the
/// parallel executor (1, 2, 4, 8 threads, each strategy) equals the sequential one.
#[test]
fn parallel_equals_sequential_on_compliance_heavy_blocks() {
    let c = cast();
    let (mut chain, token) = setup(&c);
    chain.ok(&c.issuer, token, xfer(&c.alice, 5_000));
    chain.ok(&c.issuer, token, xfer(&c.bob, 5_000));
    chain.ok(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::setLimitsCall {
            token,
            maxHolders: 3,
            maxBalance: U256::from(9_000),
            dailyLimit: U256::from(3_000),
        }
        .abi_encode(),
    );
    let senders = [&c.alice, &c.bob, &c.issuer, &c.dave];
    let recipients = [&c.alice, &c.bob, &c.carol, &c.erin, &c.dave];
    let mut txs = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..240 {
        let from = senders[(next() % senders.len() as u64) as usize];
        let to = recipients[(next() % recipients.len() as u64) as usize];
        let amount = next() % 900;
        let tx = match i % 7 {
            0 => chain.tx(
                from,
                TxKind::Call(to.address()),
                U256::from(amount),
                Bytes::new(),
            ),
            1 => chain.tx(
                &c.agent,
                TxKind::Call(ASSET_COMPLIANCE),
                U256::ZERO,
                A::setAddressFrozenCall {
                    token,
                    investor: to.address(),
                    frozen: next() % 2 == 0,
                }
                .abi_encode()
                .into(),
            ),
            2 => chain.tx(
                &c.agent,
                TxKind::Call(SANCTIONS_LIST),
                U256::ZERO,
                S::setSanctionedCall {
                    accounts: vec![to.address()],
                    listed: next() % 3 == 0,
                }
                .abi_encode()
                .into(),
            ),
            _ => chain.tx(
                from,
                TxKind::Call(token),
                U256::ZERO,
                xfer(to, amount).into(),
            ),
        };
        txs.push(Arc::new(tx));
    }
    // The agent must be an officer for the sanctions transactions to do something.
    let officer = chain.tx(
        &c.admin,
        TxKind::Call(SANCTIONS_LIST),
        U256::ZERO,
        S::setOfficerCall {
            officer: c.agent.address(),
            enabled: true,
        }
        .abi_encode()
        .into(),
    );
    let mut block_txs = vec![Arc::new(officer)];
    block_txs.extend(txs);
    let block = chain.block();
    let codes = Arc::new(CodeCache::default());
    let expected = SequentialExecutor::new(CHAIN, codes.clone())
        .execute(&block, &block_txs, &chain.state)
        .expect("sequential");
    let statuses: Vec<TxStatus> = expected
        .results
        .iter()
        .filter_map(|r| r.outcome().map(|o| o.status.clone()))
        .collect();
    let reverted = statuses.iter().filter(|s| **s == TxStatus::Revert).count();
    assert!(
        reverted > 20 && reverted < 200,
        "a mixed block: {reverted} of {} reverted",
        statuses.len()
    );
    let mut root = chain.state.clone();
    root.apply(&expected.diff);
    let expected_root = root.state_root();
    for threads in [1, 2, 4, 8] {
        for strategy in [Strategy::Auto, Strategy::Groups, Strategy::BlockStm] {
            let mut config = ParallelConfig::with_threads(threads);
            config.strategy = strategy;
            let got = ParallelExecutor::new(CHAIN, codes.clone(), config)
                .execute(&block, &block_txs, &chain.state)
                .expect("parallel");
            if let Some(i) =
                (0..expected.results.len()).find(|i| got.results[*i] != expected.results[*i])
            {
                panic!(
                    "{threads} threads, {strategy:?}: transaction {i} differs:\n parallel {:?}\n sequential {:?}",
                    got.results[i], expected.results[i]
                );
            }
            assert_eq!(got.diff, expected.diff, "{threads} threads, {strategy:?}");
            let mut state = chain.state.clone();
            state.apply(&got.diff);
            assert_eq!(state.state_root(), expected_root);
        }
    }
}

/// zkDID through the verifier system contract, with real Groth16 proofs (development keys of
/// the dev genesis): a valid proof is accepted and records a claim that regulated transfers
/// accept; another wallet, a reused nullifier, an untrusted issuer, a revoked credential, a
/// tampered proof and malformed bytes are each refused with a clear reason.
#[test]
fn zk_credentials_on_chain() {
    use pharos_compliance::{IZkCredentialVerifier as Z, ZK_VERIFIER, genesis::DEV_ZK_SEED};
    use pharos_zkdid::{
        Address20, Credential, HolderSecret, IssuerKey, PublicStatement, Requirements,
        RevocationTree, SignedCredential, days_from_civil, fr_to_bytes, insecure_dev_setup, prove,
        scope_from_label,
    };

    let c = cast();
    let (mut chain, token) = setup(&c);
    let (pk, _) = insecure_dev_setup(DEV_ZK_SEED).expect("dev keys");
    let issuer = IssuerKey::from_seed(&[7; 32]);
    let issuer_key = Bytes::from(issuer.public().to_bytes().to_vec());
    let mut revocations = RevocationTree::new();
    let root = |tree: &RevocationTree| B256::from(fr_to_bytes(&tree.root()));
    let today = (chain.timestamp / DAY) as i32;
    let wallet = |w: &Wallet| Address20(w.address().0.0);
    // Dave has no identity and proves he is an adult, KYC >= 1, not North Korean.
    let credential = |w: &Wallet, secret: &HolderSecret, nonce: u32| Credential {
        holder: wallet(w),
        birth_date: days_from_civil(1990, 5, 17).expect("date"),
        country: 276,
        kyc_level: 2,
        expiry_date: days_from_civil(2040, 1, 1).expect("date"),
        revocation_nonce: nonce,
        secret_commitment: secret.commitment(),
    };
    let make =
        |w: &Wallet, secret: &HolderSecret, nonce: u32, label: &[u8], tree: &RevocationTree| {
            let signed = SignedCredential::issue(&issuer, credential(w, secret, nonce));
            let scope = scope_from_label(label);
            let statement = PublicStatement {
                issuer: issuer.public(),
                revocation_root: tree.root(),
                wallet: wallet(w),
                date: today,
                requirements: Requirements::new(18, 1, &[408]).expect("requirements"),
                scope,
                nullifier: secret.nullifier(&scope),
            };
            let proof = tree
                .non_revocation_path(nonce)
                .and_then(|path| prove(&pk, &signed, secret, &path, &statement));
            (
                statement.to_bytes().to_vec(),
                proof.map(|p| p.as_bytes().to_vec()),
            )
        };
    let submit = |statement: &[u8], proof: &[u8]| {
        Z::submitCall {
            statement: statement.to_vec().into(),
            proof: proof.to_vec().into(),
        }
        .abi_encode()
    };
    let dave_secret = HolderSecret::from_fr(pharos_zkdid::Fr::from(11u64));
    let (statement, proof) = make(&c.dave, &dave_secret, 1, b"rwa-onboarding", &revocations);
    let proof = proof.expect("proof");

    // Not trusted yet.
    chain.denied(
        &c.dave,
        ZK_VERIFIER,
        submit(&statement, &proof),
        "zkDID: untrusted issuer",
    );
    chain.denied(
        &c.dave,
        ZK_VERIFIER,
        Z::setIssuerCall {
            issuerKey: issuer_key.clone(),
            controller: c.kyc.address(),
            revocationRoot: root(&revocations),
        }
        .abi_encode(),
        "only the compliance administrator",
    );
    chain.ok(
        &c.admin,
        ZK_VERIFIER,
        Z::setIssuerCall {
            issuerKey: issuer_key.clone(),
            controller: c.kyc.address(),
            revocationRoot: root(&revocations),
        }
        .abi_encode(),
    );
    // Someone else cannot use Dave's proof; bytes that are not a statement or a proof fail.
    chain.denied(
        &c.erin,
        ZK_VERIFIER,
        submit(&statement, &proof),
        "bound to another wallet",
    );
    chain.denied(
        &c.dave,
        ZK_VERIFIER,
        submit(&statement[..40], &proof),
        "statement is malformed",
    );
    chain.denied(
        &c.dave,
        ZK_VERIFIER,
        submit(&statement, &proof[..100]),
        "not a valid compressed Groth16 proof",
    );
    let mut tampered = proof.clone();
    tampered[5] ^= 1;
    let outcome = chain.send(&c.dave, ZK_VERIFIER, submit(&statement, &tampered).into());
    let reason = decode_revert_reason(&outcome.output).unwrap_or_default();
    assert!(
        reason.contains("not a valid compressed Groth16 proof")
            || reason.contains("does not verify"),
        "{reason}"
    );

    // The valid proof: accepted, identity created (country undisclosed), claim recorded.
    let out = chain.ok(&c.dave, ZK_VERIFIER, submit(&statement, &proof));
    let identity = Z::submitCall::abi_decode_returns(&out.output).expect("identity");
    assert_eq!(identity, 5);
    assert!(
        out.gas_used > 250_000,
        "verification is priced: {}",
        out.gas_used
    );
    let accepted = out.logs.iter().filter(|l| l.address == ZK_VERIFIER).count();
    assert_eq!(accepted, 1);
    let out = chain.ok(
        &c.erin,
        IDENTITY_REGISTRY,
        I::hasValidClaimCall {
            wallet: c.dave.address(),
            topic: U256::from(5),
        }
        .abi_encode(),
    );
    assert!(I::hasValidClaimCall::abi_decode_returns(&out.output).expect("bool"));
    // A token that requires the zero-knowledge claim accepts Dave now, and Erin not.
    chain.ok(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::setRequiredClaimsCall {
            token,
            topics: vec![U256::from(5)],
        }
        .abi_encode(),
    );
    chain.ok(&c.issuer, token, xfer(&c.dave, 10));
    chain.denied(
        &c.issuer,
        token,
        xfer(&c.erin, 10),
        "topic 5 (ZK_CREDENTIAL)",
    );
    // Once only per scope.
    chain.denied(
        &c.dave,
        ZK_VERIFIER,
        submit(&statement, &proof),
        "nullifier already used",
    );
    // A claim the administrator revoked stays revoked: a proof under another scope is refused,
    // and the token no longer admits Dave.
    chain.ok(
        &c.admin,
        IDENTITY_REGISTRY,
        I::revokeClaimCall {
            identity,
            topic: U256::from(5),
        }
        .abi_encode(),
    );
    let (other_statement, other_proof) =
        make(&c.dave, &dave_secret, 1, b"another-scope", &revocations);
    chain.denied(
        &c.dave,
        ZK_VERIFIER,
        submit(&other_statement, &other_proof.expect("proof")),
        "claim of topic 5 was revoked",
    );
    chain.denied(
        &c.issuer,
        token,
        xfer(&c.dave, 10),
        "topic 5 (ZK_CREDENTIAL)",
    );

    // Revocation: Erin's credential (nonce 2) is revoked after she made her proof; the issuer's
    // controller publishes the new root and the proof is refused; a new proof cannot be made.
    let erin_secret = HolderSecret::from_fr(pharos_zkdid::Fr::from(12u64));
    let (erin_statement, erin_proof) =
        make(&c.erin, &erin_secret, 2, b"rwa-onboarding", &revocations);
    let erin_proof = erin_proof.expect("proof");
    revocations.revoke(2);
    chain.denied(
        &c.erin,
        ZK_VERIFIER,
        Z::setRevocationRootCall {
            issuerKey: issuer_key.clone(),
            revocationRoot: root(&revocations),
        }
        .abi_encode(),
        "only the issuer's controller",
    );
    chain.ok(
        &c.kyc,
        ZK_VERIFIER,
        Z::setRevocationRootCall {
            issuerKey: issuer_key.clone(),
            revocationRoot: root(&revocations),
        }
        .abi_encode(),
    );
    chain.denied(
        &c.erin,
        ZK_VERIFIER,
        submit(&erin_statement, &erin_proof),
        "revocation root does not match",
    );
    assert!(
        make(&c.erin, &erin_secret, 2, b"rwa-onboarding", &revocations)
            .1
            .is_err()
    );

    // A development key is refused where the chain does not allow it.
    chain
        .state
        .storage
        .entry(ZK_VERIFIER)
        .or_default()
        .remove(&pharos_compliance::zk::FLAGS_SLOT);
    chain.denied(
        &c.admin,
        ZK_VERIFIER,
        Z::setVerifyingKeyCall {
            key: pharos_compliance::genesis::DEV_VERIFYING_KEY
                .to_vec()
                .into(),
        }
        .abi_encode(),
        "insecure development setup",
    );
}

/// Registration needs the token's consent; the owner or the administrator can undo it.
#[test]
fn registration_needs_consent_and_can_be_undone() {
    let c = cast();
    let (mut chain, token) = setup(&c);
    // Dave becomes an asset issuer; he may not register a token someone else deployed.
    chain.ok(
        &c.admin,
        ASSET_COMPLIANCE,
        A::setAssetIssuerCall {
            account: c.dave.address(),
            enabled: true,
        }
        .abi_encode(),
    );
    let deploy = chain.tx(
        &c.issuer,
        TxKind::Create,
        U256::ZERO,
        token_code(U256::from(1_000)),
    );
    let out = chain.run(vec![deploy]);
    let other = out.results[0]
        .outcome()
        .and_then(|o| o.created)
        .expect("deployed");
    let issuer_nonce = chain.nonces[&c.issuer.address()] - 1;
    for nonce in [0, issuer_nonce] {
        chain.denied(
            &c.dave,
            ASSET_COMPLIANCE,
            A::registerAssetCall {
                token: other,
                balancesSlot: U256::ZERO,
                deployNonce: nonce,
            }
            .abi_encode(),
            "did not deploy",
        );
    }
    chain.denied(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::registerAssetCall {
            token: other,
            balancesSlot: U256::ZERO,
            deployNonce: issuer_nonce + 1,
        }
        .abi_encode(),
        "did not deploy",
    );
    // The administrator may (remediation, tokens deployed by factories).
    chain.ok(
        &c.admin,
        ASSET_COMPLIANCE,
        A::registerAssetCall {
            token: other,
            balancesSlot: U256::ZERO,
            deployNonce: 0,
        }
        .abi_encode(),
    );
    chain.denied(&c.issuer, other, xfer(&c.dave, 1), "identity: recipient");
    // Deregistered: no rules any more. Only the owner or the administrator may.
    chain.denied(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::deregisterAssetCall { token: other }.abi_encode(),
        "only the owner",
    );
    chain.ok(
        &c.admin,
        ASSET_COMPLIANCE,
        A::deregisterAssetCall { token: other }.abi_encode(),
    );
    chain.ok(&c.issuer, other, xfer(&c.dave, 1));
    // Ownership moves; the old owner loses its powers.
    chain.ok(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::setAssetOwnerCall {
            token,
            newOwner: c.dave.address(),
        }
        .abi_encode(),
    );
    chain.denied(
        &c.issuer,
        ASSET_COMPLIANCE,
        A::setPausedCall {
            token,
            paused: true,
        }
        .abi_encode(),
        "is not the owner or an agent",
    );
    chain.ok(
        &c.dave,
        ASSET_COMPLIANCE,
        A::setPausedCall {
            token,
            paused: true,
        }
        .abi_encode(),
    );
}

/// Coin cannot leave through SELFDESTRUCT to a listed address, out of a listed contract, or
/// into a CREATE funded by a listed contract.
#[test]
fn sanctions_cover_selfdestruct_and_create() {
    let c = cast();
    let (mut chain, _) = setup(&c);
    // Init code returning `runtime` (a 12-byte prefix).
    let deployer = |runtime: &[u8]| -> Bytes {
        let n = runtime.len() as u8;
        let mut code = vec![
            0x60, n, 0x60, 0x0c, 0x60, 0x00, 0x39, 0x60, n, 0x60, 0x00, 0xf3,
        ];
        code.extend_from_slice(runtime);
        code.into()
    };
    // SELFDESTRUCT(CALLDATALOAD(0)); CREATE(value 1, empty code).
    let destroyer = deployer(&[0x60, 0x00, 0x35, 0xff]);
    let creator = deployer(&[0x60, 0x00, 0x60, 0x00, 0x60, 0x01, 0xf0, 0x00]);
    let deploy = |chain: &mut Chain, code: Bytes| {
        let tx = chain.tx(&c.dave, TxKind::Create, U256::from(1_000), code);
        let out = chain.run(vec![tx]);
        out.results[0]
            .outcome()
            .and_then(|o| o.created)
            .expect("deployed")
    };
    let d1 = deploy(&mut chain, destroyer.clone());
    let d2 = deploy(&mut chain, destroyer);
    let creator = deploy(&mut chain, creator);
    chain.ok(
        &c.admin,
        SANCTIONS_LIST,
        S::setSanctionedCall {
            accounts: vec![c.bob.address(), d2, creator],
            listed: true,
        }
        .abi_encode(),
    );
    let to = |w: Address| w.into_word().to_vec();
    chain.denied(&c.alice, d1, to(c.bob.address()), "sanctions: recipient");
    chain.denied(&c.alice, d2, to(c.alice.address()), "sanctions: sender");
    chain.denied(&c.alice, creator, vec![], "sanctions: sender");
    assert_eq!(chain.state.accounts[&d1].balance, U256::from(1_000));
    // A listed account's own contract creation with coin: the init code may not complete,
    // whether it returns code, stops, or passes the coin on with SELFDESTRUCT.
    let mut forward = vec![0x73];
    forward.extend_from_slice(c.alice.address().as_slice());
    forward.push(0xff);
    let alice_before = chain.state.accounts[&c.alice.address()].balance;
    for init in [deployer(&[0x00]), Bytes::new(), Bytes::from(forward)] {
        let tx = chain.tx(&c.bob, TxKind::Create, U256::from(500), init);
        let out = chain.run(vec![tx]);
        let outcome = out.results[0].outcome().expect("included");
        assert_eq!(outcome.status, TxStatus::Revert, "{outcome:?}");
        assert!(
            decode_revert_reason(&outcome.output)
                .unwrap_or_default()
                .contains("sanctions: sender"),
            "{outcome:?}"
        );
        assert_eq!(outcome.created, None);
    }
    assert_eq!(
        chain.state.accounts[&c.alice.address()].balance,
        alice_before
    );
    // Without coin, or once delisted, creation works.
    let tx = chain.tx(&c.bob, TxKind::Create, U256::ZERO, deployer(&[0x00]));
    assert!(
        chain.run(vec![tx]).results[0]
            .outcome()
            .expect("included")
            .success()
    );
    // Unlisted paths still work.
    let before = chain.state.accounts[&c.alice.address()].balance;
    chain.ok(&c.erin, d1, to(c.alice.address()));
    assert_eq!(
        chain.state.accounts[&c.alice.address()].balance,
        before + U256::from(1_000)
    );
}
