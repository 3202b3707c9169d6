//! Regulated assets (`IAssetCompliance` at [`ASSET_COMPLIANCE`]): registration, rules, agent
//! actions, and [`on_transfer`], the check the EVM runs whenever a registered token emits
//! `Transfer(from, to, value)`.
//!
//! The token's balances are read where the token keeps them (`keccak256(holder . balancesSlot)`
//! in its own storage), after the token updated them (the event follows the update), so the
//! rules see the balances the transfer leaves. Forced transfers and recovery write those slots
//! directly and emit the token's `Transfer` event.
//!
//! Storage (keys see [`slot`]): `issuerRole(a)`; per token `asset(t)` (owner | registered << 160
//! | paused << 161), `balances(t)`, `holders(t)`, `agent(t, a)`, `claims(t)` (count) and
//! `claimAt(t, i)`, `allowedCount(t)` and `country(t, c)` (allowed bit 0, blocked bit 1),
//! `maxHolders(t)`, `maxBalance(t)`, `daily(t)`, `holder(t, a)` (counted as a holder),
//! `lockup(t, a)` (a = 0: the whole token),
//! `frozen(t, a)`, `frozenAmount(t, a)`, `spent(t, a, day)`.

use alloy_primitives::{Address, B256, Bytes, LogData, U256, b256, keccak256};
use alloy_sol_types::{SolCall, SolInterface};

use crate::env::{
    Cx, Env, Failure, Output, READ_GAS, address_word, akey, deny, nkey, slot, word_address,
};
use crate::identity::{
    admin, country_of_identity, has_valid_claim_of_identity, identity_of, recovered_to,
    require_admin, topic_name,
};
use crate::sanctions::is_sanctioned;
use crate::{ASSET_COMPLIANCE, IAssetCompliance as A};

/// `keccak256("Transfer(address,address,uint256)")`.
pub const TRANSFER_TOPIC: B256 =
    b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");

/// At most this many required claim topics per asset.
pub const MAX_REQUIRED_CLAIMS: usize = 8;

/// A registered asset's header.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The token.
    pub token: Address,
    /// Who registered it.
    pub owner: Address,
    /// Transfers paused.
    pub paused: bool,
}

/// The slot of `token`'s registration record (what the `LOG3` hook reads for every
/// `Transfer`).
pub fn registration_slot(token: Address) -> U256 {
    // Asked on every token `Transfer` and by every prediction of a contract call: a small
    // per-thread memo of recent tokens saves the hash.
    const WAYS: usize = 64;
    thread_local! {
        static MEMO: std::cell::RefCell<[Option<(Address, U256)>; WAYS]> =
            const { std::cell::RefCell::new([None; WAYS]) };
    }
    let way = usize::from(token.0[19] ^ token.0[0]) % WAYS;
    MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        match memo[way] {
            Some((t, s)) if t == token => s,
            _ => {
                let s = slot(b"asset", &[akey(token)]);
                memo[way] = Some((token, s));
                s
            }
        }
    })
}

/// The asset record of `token`, if registered.
pub fn asset<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    token: Address,
) -> Result<Option<Asset>, Failure> {
    let word = cx.read(ASSET_COMPLIANCE, registration_slot(token))?;
    Ok(asset_from_word(token, word))
}

/// The asset record stored in `word` (the value of [`registration_slot`]), if registered.
pub fn asset_from_word(token: Address, word: U256) -> Option<Asset> {
    word.bit(160).then(|| Asset {
        token,
        owner: word_address(word),
        paused: word.bit(161),
    })
}

fn write_asset<E: Env + ?Sized>(cx: &mut Cx<'_, E>, asset: &Asset) -> Result<(), Failure> {
    let word = address_word(asset.owner)
        | (U256::from(1) << 160)
        | (U256::from(asset.paused as u8) << 161);
    cx.write(ASSET_COMPLIANCE, slot(b"asset", &[akey(asset.token)]), word)?;
    Ok(())
}

fn require_asset<E: Env + ?Sized>(cx: &mut Cx<'_, E>, token: Address) -> Result<Asset, Failure> {
    match asset(cx, token)? {
        Some(asset) => Ok(asset),
        None => deny(format!("token {token} is not a registered asset")),
    }
}

/// Whether `caller` is the compliance administrator.
fn is_admin<E: Env + ?Sized>(cx: &mut Cx<'_, E>, caller: Address) -> Result<bool, Failure> {
    Ok(!caller.is_zero() && admin(cx)? == caller)
}

/// Fails unless `caller` owns `token`'s registration or is one of its agents.
fn require_manager<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    token: Address,
    caller: Address,
    owner_only: bool,
) -> Result<Asset, Failure> {
    let asset = require_asset(cx, token)?;
    if caller == asset.owner {
        return Ok(asset);
    }
    if !owner_only
        && !cx
            .read(
                ASSET_COMPLIANCE,
                slot(b"agent", &[akey(token), akey(caller)]),
            )?
            .is_zero()
    {
        return Ok(asset);
    }
    deny(format!(
        "{caller} is not the owner{} of asset {token}",
        if owner_only { "" } else { " or an agent" }
    ))
}

fn read_u<E: Env + ?Sized>(cx: &mut Cx<'_, E>, tag: &[u8], keys: &[B256]) -> Result<U256, Failure> {
    Ok(cx.read(ASSET_COMPLIANCE, slot(tag, keys))?)
}

/// Where `holder`'s balance of `token` lives in the token's storage.
pub fn balance_slot(holder: Address, balances_slot: U256) -> U256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(holder.into_word().as_slice());
    buf[32..].copy_from_slice(&balances_slot.to_be_bytes::<32>());
    U256::from_be_bytes(keccak256(buf).0)
}

fn balance_of<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    token: Address,
    holder: Address,
) -> Result<U256, Failure> {
    let base = read_u(cx, b"balances", &[akey(token)])?;
    Ok(cx.read(token, balance_slot(holder, base))?)
}

/// What the rules are asked about.
#[derive(Debug, Clone, Copy)]
struct Move {
    from: Address,
    to: Address,
    amount: U256,
    /// Balances once the transfer is done.
    from_after: U256,
    to_after: U256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A transfer the token made: every rule; counters updated.
    Transfer,
    /// An agent's forced transfer or recovery: recipient rules only; counters updated.
    Forced,
    /// `canTransfer`: every rule; nothing written.
    View,
}

/// Checks `m` against the rules of `asset`; with `Mode::Transfer`/`Forced` also updates holder
/// counts and daily totals. `Err(Revert(reason))` names the rule that denies it.
fn check<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    asset: &Asset,
    m: &Move,
    mode: Mode,
) -> Result<(), Failure> {
    let token = asset.token;
    let mint = m.from.is_zero();
    let burn = m.to.is_zero();
    let now = cx.timestamp();
    // An agent may seize from a listed wallet (forced transfer, recovery); nobody may pay one.
    if !mint && mode != Mode::Forced && is_sanctioned(cx, m.from)? {
        return deny(format!(
            "sanctions: sender {} is on the sanctions list",
            m.from
        ));
    }
    if !burn && is_sanctioned(cx, m.to)? {
        return deny(format!(
            "sanctions: recipient {} is on the sanctions list",
            m.to
        ));
    }
    if burn {
        return count_holders(cx, token, m, mode);
    }
    let sender_rules = !mint && mode != Mode::Forced;
    if sender_rules {
        if asset.paused {
            return deny(format!("paused: transfers of {token} are paused"));
        }
        if !read_u(cx, b"frozen", &[akey(token), akey(m.from)])?.is_zero() {
            return deny(format!("frozen: sender {} is frozen for {token}", m.from));
        }
    }
    if mode != Mode::Forced && !read_u(cx, b"frozen", &[akey(token), akey(m.to)])?.is_zero() {
        return deny(format!("frozen: recipient {} is frozen for {token}", m.to));
    }
    if sender_rules {
        let frozen = read_u(cx, b"frozenAmount", &[akey(token), akey(m.from)])?;
        if !frozen.is_zero() && m.from_after < frozen {
            return deny(format!(
                "partial freeze: sender {} would keep {} but {frozen} are frozen",
                m.from, m.from_after
            ));
        }
        let until: u64 =
            read_u(cx, b"lockup", &[akey(token), akey(Address::ZERO)])?.saturating_to();
        if until > now {
            return deny(format!("lock-up: {token} is locked until {until}"));
        }
        let until: u64 = read_u(cx, b"lockup", &[akey(token), akey(m.from)])?.saturating_to();
        if until > now {
            return deny(format!(
                "lock-up: sender {} is locked until {until}",
                m.from
            ));
        }
    }
    // Recipient: an identity, the required claims, its country.
    let id = identity_of(cx, m.to)?;
    if id == 0 {
        return deny(format!(
            "identity: recipient {} has no identity in the identity registry",
            m.to
        ));
    }
    let required: u64 = read_u(cx, b"claims", &[akey(token)])?.saturating_to();
    for i in 0..required.min(MAX_REQUIRED_CLAIMS as u64) {
        let topic = read_u(cx, b"claimAt", &[akey(token), nkey(i)])?;
        if !has_valid_claim_of_identity(cx, id, topic)? {
            let name = topic_name(cx, topic)?;
            return deny(format!(
                "required claim: recipient {} has no valid claim of topic {topic}{}",
                m.to,
                if name.is_empty() {
                    String::new()
                } else {
                    format!(" ({name})")
                }
            ));
        }
    }
    let country = country_of_identity(cx, id)?;
    let rule = read_u(cx, b"country", &[akey(token), nkey(country)])?;
    if rule.bit(1) {
        return deny(format!(
            "country: recipient {}'s country {country} is blocked for {token}",
            m.to
        ));
    }
    if !read_u(cx, b"allowedCount", &[akey(token)])?.is_zero() && !rule.bit(0) {
        return deny(format!(
            "country: recipient {}'s country {country} is not in the allowed list of {token}",
            m.to
        ));
    }
    let max_balance = read_u(cx, b"maxBalance", &[akey(token)])?;
    if !max_balance.is_zero() && m.to_after > max_balance {
        return deny(format!(
            "max balance: recipient {} would hold {}, the limit is {max_balance}",
            m.to, m.to_after
        ));
    }
    count_holders(cx, token, m, mode)?;
    // Daily limit on what a wallet sends.
    if sender_rules {
        let limit = read_u(cx, b"daily", &[akey(token)])?;
        if !limit.is_zero() {
            let day = now / 86_400;
            let spent_slot = slot(b"spent", &[akey(token), akey(m.from), nkey(day)]);
            let spent = cx.read(ASSET_COMPLIANCE, spent_slot)?;
            let total = spent.saturating_add(m.amount);
            if total > limit {
                return deny(format!(
                    "daily limit: sender {} would send {total} today, the limit is {limit}",
                    m.from
                ));
            }
            if mode != Mode::View {
                cx.write(ASSET_COMPLIANCE, spent_slot, total)?;
            }
        }
    }
    Ok(())
}

/// Holder count: a wallet counts once its balance leaves zero after registration (a flag per
/// wallet, so holders from before registration are never subtracted, and none is counted twice);
/// it stops counting when its balance returns to zero, burns included.
fn count_holders<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    token: Address,
    m: &Move,
    mode: Mode,
) -> Result<(), Failure> {
    let moves = !m.amount.is_zero() && m.from != m.to;
    if !moves {
        return Ok(());
    }
    let from_flag = slot(b"holder", &[akey(token), akey(m.from)]);
    let to_flag = slot(b"holder", &[akey(token), akey(m.to)]);
    let leaves = !m.from.is_zero()
        && m.from_after.is_zero()
        && !cx.read(ASSET_COMPLIANCE, from_flag)?.is_zero();
    let joins =
        !m.to.is_zero() && m.to_after == m.amount && cx.read(ASSET_COMPLIANCE, to_flag)?.is_zero();
    if !joins && !leaves {
        return Ok(());
    }
    let holders_slot = slot(b"holders", &[akey(token)]);
    let holders = cx.read(ASSET_COMPLIANCE, holders_slot)?;
    let after = (holders + U256::from(joins as u8)).saturating_sub(U256::from(leaves as u8));
    if joins {
        let max: u64 = read_u(cx, b"maxHolders", &[akey(token)])?.saturating_to();
        if max != 0 && after > U256::from(max) {
            return deny(format!(
                "max holders: {token} already has {holders} holders, the limit is {max}"
            ));
        }
    }
    if mode != Mode::View {
        cx.write(ASSET_COMPLIANCE, holders_slot, after)?;
        if joins {
            cx.write(ASSET_COMPLIANCE, to_flag, U256::from(1))?;
        }
        if leaves {
            cx.write(ASSET_COMPLIANCE, from_flag, U256::ZERO)?;
        }
    }
    Ok(())
}

/// The protocol's check of a `Transfer(from, to, value)` event emitted by the registered token
/// `asset` (the caller decoded its registration with [`asset_from_word`]): every rule, against
/// the balances the token just wrote (`Err(Revert(reason))` reverts the token's call frame).
pub fn on_transfer<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    asset: &Asset,
    from: Address,
    to: Address,
    amount: U256,
) -> Result<(), Failure> {
    // The registration record was read by the caller ([`asset_from_word`]); priced here.
    cx.charge(READ_GAS)?;
    let token = asset.token;
    let base = read_u(cx, b"balances", &[akey(token)])?;
    let mut balance = |holder: Address| -> Result<U256, Failure> {
        if holder.is_zero() {
            return Ok(U256::ZERO);
        }
        Ok(cx.read(token, balance_slot(holder, base))?)
    };
    let from_after = balance(from)?;
    let to_after = balance(to)?;
    check(
        cx,
        asset,
        &Move {
            from,
            to,
            amount,
            from_after,
            to_after,
        },
        Mode::Transfer,
    )
}

/// Moves `amount` of `token` from `from` to `to` in the token's storage and emits its
/// `Transfer` event (forced transfers and recovery).
fn move_balance<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    asset: &Asset,
    from: Address,
    to: Address,
    amount: U256,
) -> Result<(), Failure> {
    let token = asset.token;
    if to.is_zero() || from.is_zero() {
        return deny("forced transfers move between two wallets (not from or to the zero address)");
    }
    let base = read_u(cx, b"balances", &[akey(token)])?;
    let from_slot = balance_slot(from, base);
    let to_slot = balance_slot(to, base);
    let from_balance = cx.read(token, from_slot)?;
    let Some(from_after) = from_balance.checked_sub(amount) else {
        return deny(format!(
            "{from} holds {from_balance} of {token}, less than {amount}"
        ));
    };
    let to_after = if from == to {
        from_balance
    } else {
        let Some(v) = cx.read(token, to_slot)?.checked_add(amount) else {
            return deny("balance overflow");
        };
        v
    };
    let m = Move {
        from,
        to,
        amount,
        from_after: if from == to { from_balance } else { from_after },
        to_after,
    };
    check(cx, asset, &m, Mode::Forced)?;
    if from != to {
        cx.write(token, from_slot, from_after)?;
        cx.write(token, to_slot, to_after)?;
    }
    cx.emit_data(
        token,
        LogData::new_unchecked(
            vec![TRANSFER_TOPIC, from.into_word(), to.into_word()],
            Bytes::from(amount.to_be_bytes::<32>().to_vec()),
        ),
    )?;
    Ok(())
}

/// Runs a call to the asset-compliance contract.
pub fn call_assets<E: Env + ?Sized>(cx: &mut Cx<'_, E>, caller: Address, input: &[u8]) -> Output {
    use A::IAssetComplianceCalls as C;
    let Ok(call) = C::abi_decode(input) else {
        return deny("unknown function or malformed arguments for asset compliance");
    };
    let me = ASSET_COMPLIANCE;
    Ok(match call {
        C::setAssetIssuer(c) => {
            require_admin(cx, caller)?;
            cx.write(
                me,
                slot(b"issuerRole", &[akey(c.account)]),
                U256::from(c.enabled as u8),
            )?;
            cx.emit(
                me,
                &A::AssetIssuerSet {
                    account: c.account,
                    enabled: c.enabled,
                },
            )?;
            Bytes::new()
        }
        C::registerAsset(c) => {
            if c.token.is_zero() {
                return deny("the zero address is not a token");
            }
            // Consent: the token registers itself, the administrator registers it, or an asset
            // issuer registers a token it deployed (CREATE from its address with this nonce).
            let by_admin = is_admin(cx, caller)?;
            let deployed = caller.create(c.deployNonce) == c.token;
            if caller != c.token && !by_admin {
                let role = !cx.read(me, slot(b"issuerRole", &[akey(caller)]))?.is_zero();
                if !role {
                    return deny(format!(
                        "{caller} is not an asset issuer (the administrator appoints them with setAssetIssuer)"
                    ));
                }
                if !deployed {
                    return deny(format!(
                        "{caller} did not deploy {} with nonce {} (register a token you deployed, let the token register itself, or ask the administrator)",
                        c.token, c.deployNonce
                    ));
                }
            }
            if asset(cx, c.token)?.is_some() {
                return deny(format!("token {} is already registered", c.token));
            }
            write_asset(
                cx,
                &Asset {
                    token: c.token,
                    owner: caller,
                    paused: false,
                },
            )?;
            cx.write(me, slot(b"balances", &[akey(c.token)]), c.balancesSlot)?;
            cx.emit(
                me,
                &A::AssetRegistered {
                    token: c.token,
                    owner: caller,
                    balancesSlot: c.balancesSlot,
                },
            )?;
            Bytes::new()
        }
        C::deregisterAsset(c) => {
            let asset = require_asset(cx, c.token)?;
            if caller != asset.owner && !is_admin(cx, caller)? {
                return deny(format!(
                    "only the owner of {} or the administrator may deregister it",
                    c.token
                ));
            }
            cx.write(me, registration_slot(c.token), U256::ZERO)?;
            cx.emit(
                me,
                &A::AssetDeregistered {
                    token: c.token,
                    by: caller,
                },
            )?;
            Bytes::new()
        }
        C::setAssetOwner(c) => {
            let mut asset = require_asset(cx, c.token)?;
            if caller != asset.owner && !is_admin(cx, caller)? {
                return deny(format!(
                    "only the owner of {} or the administrator may hand it over",
                    c.token
                ));
            }
            if c.newOwner.is_zero() {
                return deny("the owner cannot be the zero address");
            }
            let previous = asset.owner;
            asset.owner = c.newOwner;
            write_asset(cx, &asset)?;
            cx.emit(
                me,
                &A::AssetOwnerSet {
                    token: c.token,
                    previousOwner: previous,
                    newOwner: c.newOwner,
                },
            )?;
            Bytes::new()
        }
        C::setAgent(c) => {
            require_manager(cx, c.token, caller, true)?;
            cx.write(
                me,
                slot(b"agent", &[akey(c.token), akey(c.agent)]),
                U256::from(c.enabled as u8),
            )?;
            cx.emit(
                me,
                &A::AssetAgentSet {
                    token: c.token,
                    agent: c.agent,
                    enabled: c.enabled,
                },
            )?;
            Bytes::new()
        }
        C::setRequiredClaims(c) => {
            require_manager(cx, c.token, caller, true)?;
            if c.topics.len() > MAX_REQUIRED_CLAIMS {
                return deny(format!(
                    "at most {MAX_REQUIRED_CLAIMS} required claim topics"
                ));
            }
            for (i, topic) in c.topics.iter().enumerate() {
                if topic_name(cx, *topic)?.is_empty() {
                    return deny(format!("claim topic {topic} is not registered"));
                }
                cx.write(
                    me,
                    slot(b"claimAt", &[akey(c.token), nkey(i as u64)]),
                    *topic,
                )?;
            }
            cx.write(
                me,
                slot(b"claims", &[akey(c.token)]),
                U256::from(c.topics.len()),
            )?;
            cx.emit(
                me,
                &A::RequiredClaimsSet {
                    token: c.token,
                    topics: c.topics,
                },
            )?;
            Bytes::new()
        }
        C::setCountryRule(c) => {
            require_manager(cx, c.token, caller, true)?;
            let key = slot(b"country", &[akey(c.token), nkey(c.country)]);
            let before = cx.read(me, key)?;
            let after = U256::from(c.allowed as u8) | (U256::from(c.blocked as u8) << 1);
            cx.write(me, key, after)?;
            let count_slot = slot(b"allowedCount", &[akey(c.token)]);
            if before.bit(0) != c.allowed {
                let count = cx.read(me, count_slot)?;
                let count = if c.allowed {
                    count + U256::from(1)
                } else {
                    count.saturating_sub(U256::from(1))
                };
                cx.write(me, count_slot, count)?;
            }
            cx.emit(
                me,
                &A::CountryRuleSet {
                    token: c.token,
                    country: c.country,
                    allowed: c.allowed,
                    blocked: c.blocked,
                },
            )?;
            Bytes::new()
        }
        C::setLimits(c) => {
            require_manager(cx, c.token, caller, true)?;
            cx.write(
                me,
                slot(b"maxHolders", &[akey(c.token)]),
                U256::from(c.maxHolders),
            )?;
            cx.write(me, slot(b"maxBalance", &[akey(c.token)]), c.maxBalance)?;
            cx.write(me, slot(b"daily", &[akey(c.token)]), c.dailyLimit)?;
            cx.emit(
                me,
                &A::LimitsSet {
                    token: c.token,
                    maxHolders: c.maxHolders,
                    maxBalance: c.maxBalance,
                    dailyLimit: c.dailyLimit,
                },
            )?;
            Bytes::new()
        }
        C::setLockup(c) => {
            require_manager(cx, c.token, caller, false)?;
            cx.write(
                me,
                slot(b"lockup", &[akey(c.token), akey(c.investor)]),
                U256::from(c.until),
            )?;
            cx.emit(
                me,
                &A::LockupSet {
                    token: c.token,
                    investor: c.investor,
                    until: c.until,
                },
            )?;
            Bytes::new()
        }
        C::setAddressFrozen(c) => {
            require_manager(cx, c.token, caller, false)?;
            cx.write(
                me,
                slot(b"frozen", &[akey(c.token), akey(c.investor)]),
                U256::from(c.frozen as u8),
            )?;
            cx.emit(
                me,
                &A::AddressFrozen {
                    token: c.token,
                    investor: c.investor,
                    frozen: c.frozen,
                    agent: caller,
                },
            )?;
            Bytes::new()
        }
        C::setFrozenTokens(c) => {
            require_manager(cx, c.token, caller, false)?;
            cx.write(
                me,
                slot(b"frozenAmount", &[akey(c.token), akey(c.investor)]),
                c.amount,
            )?;
            cx.emit(
                me,
                &A::TokensFrozen {
                    token: c.token,
                    investor: c.investor,
                    amount: c.amount,
                    agent: caller,
                },
            )?;
            Bytes::new()
        }
        C::setPaused(c) => {
            let mut asset = require_manager(cx, c.token, caller, false)?;
            asset.paused = c.paused;
            write_asset(cx, &asset)?;
            cx.emit(
                me,
                &A::Paused {
                    token: c.token,
                    paused: c.paused,
                    agent: caller,
                },
            )?;
            Bytes::new()
        }
        C::forcedTransfer(c) => {
            let asset = require_manager(cx, c.token, caller, false)?;
            move_balance(cx, &asset, c.from, c.to, c.amount)?;
            cx.emit(
                me,
                &A::ForcedTransfer {
                    token: c.token,
                    from: c.from,
                    to: c.to,
                    amount: c.amount,
                    agent: caller,
                },
            )?;
            Bytes::new()
        }
        C::recover(c) => {
            let asset = require_manager(cx, c.token, caller, false)?;
            if c.lostWallet == c.newWallet {
                return deny("recovery moves to another wallet");
            }
            let lost_id = identity_of(cx, c.lostWallet)?;
            let same_identity = lost_id != 0 && lost_id == identity_of(cx, c.newWallet)?;
            if !same_identity && recovered_to(cx, c.lostWallet)? != c.newWallet {
                return deny(format!(
                    "{} was not recovered to {} in the identity registry (recoverWallet first)",
                    c.lostWallet, c.newWallet
                ));
            }
            let amount = balance_of(cx, c.token, c.lostWallet)?;
            move_balance(cx, &asset, c.lostWallet, c.newWallet, amount)?;
            // Restrictions follow the holder; the stricter of the two wallets' values wins.
            for tag in [&b"frozenAmount"[..], b"lockup", b"frozen"] {
                let from = slot(tag, &[akey(c.token), akey(c.lostWallet)]);
                let value = cx.read(me, from)?;
                if !value.is_zero() {
                    let to = slot(tag, &[akey(c.token), akey(c.newWallet)]);
                    let current = cx.read(me, to)?;
                    cx.write(me, to, value.max(current))?;
                    cx.write(me, from, U256::ZERO)?;
                }
            }
            cx.emit(
                me,
                &A::Recovered {
                    token: c.token,
                    lostWallet: c.lostWallet,
                    newWallet: c.newWallet,
                    amount,
                    agent: caller,
                },
            )?;
            Bytes::new()
        }
        C::assetInfo(c) => {
            let info = asset(cx, c.token)?;
            let balances = read_u(cx, b"balances", &[akey(c.token)])?;
            let holders: u32 = read_u(cx, b"holders", &[akey(c.token)])?.saturating_to();
            A::assetInfoCall::abi_encode_returns(&A::assetInfoReturn {
                registered: info.is_some(),
                owner: info.map(|a| a.owner).unwrap_or_default(),
                paused: info.is_some_and(|a| a.paused),
                balancesSlot: balances,
                holders,
            })
            .into()
        }
        C::limits(c) => {
            let max_holders: u32 = read_u(cx, b"maxHolders", &[akey(c.token)])?.saturating_to();
            let max_balance = read_u(cx, b"maxBalance", &[akey(c.token)])?;
            let daily = read_u(cx, b"daily", &[akey(c.token)])?;
            A::limitsCall::abi_encode_returns(&A::limitsReturn {
                maxHolders: max_holders,
                maxBalance: max_balance,
                dailyLimit: daily,
            })
            .into()
        }
        C::requiredClaims(c) => {
            let n: u64 = read_u(cx, b"claims", &[akey(c.token)])?.saturating_to();
            let mut topics = Vec::new();
            for i in 0..n.min(MAX_REQUIRED_CLAIMS as u64) {
                topics.push(read_u(cx, b"claimAt", &[akey(c.token), nkey(i)])?);
            }
            A::requiredClaimsCall::abi_encode_returns(&topics).into()
        }
        C::isFrozen(c) => {
            let frozen = !read_u(cx, b"frozen", &[akey(c.token), akey(c.investor)])?.is_zero();
            A::isFrozenCall::abi_encode_returns(&frozen).into()
        }
        C::frozenTokens(c) => {
            let amount = read_u(cx, b"frozenAmount", &[akey(c.token), akey(c.investor)])?;
            A::frozenTokensCall::abi_encode_returns(&amount).into()
        }
        C::canTransfer(c) => {
            let asset = require_asset(cx, c.token)?;
            let from_before = if c.from.is_zero() {
                U256::ZERO
            } else {
                balance_of(cx, c.token, c.from)?
            };
            let to_before = if c.to.is_zero() {
                U256::ZERO
            } else {
                balance_of(cx, c.token, c.to)?
            };
            let m = Move {
                from: c.from,
                to: c.to,
                amount: c.amount,
                from_after: if c.from == c.to {
                    from_before
                } else {
                    from_before.saturating_sub(c.amount)
                },
                to_after: if c.from == c.to {
                    to_before
                } else {
                    to_before.saturating_add(c.amount)
                },
            };
            let verdict = match check(cx, &asset, &m, Mode::View) {
                Ok(()) => String::new(),
                Err(Failure::Revert(reason)) => reason,
                Err(stop) => return Err(stop),
            };
            A::canTransferCall::abi_encode_returns(&verdict).into()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_slot_memo_never_answers_for_another_token() {
        // Tokens sharing a memo way, asked in turns, and the zero address.
        let tokens: Vec<Address> = (0u8..=255)
            .flat_map(|b| [Address::repeat_byte(b), Address::with_last_byte(b)])
            .chain([Address::ZERO])
            .collect();
        for _ in 0..3 {
            for t in &tokens {
                assert_eq!(registration_slot(*t), slot(b"asset", &[akey(*t)]));
            }
        }
    }
}
