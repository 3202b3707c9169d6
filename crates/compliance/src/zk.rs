//! The zkDID credential verifier (`IZkCredentialVerifier` at [`ZK_VERIFIER`]): keeps the
//! verifying key, the policy, the trusted Baby Jubjub issuers with their revocation roots and
//! the used nullifiers; `submit` checks a proof with [`pharos_zkdid::ClaimVerifier`] and records
//! a claim on the sender's identity.
//!
//! Storage: slot 0 flags (bit 0: insecure development keys allowed, set only in a development
//! genesis), slot 1 the key's length in bytes, slot 2 its keccak256, the key's words at
//! `vk(i)`; slot 3 the policy (min age | min KYC << 8 | max date lag << 16 | claim validity
//! << 48 | blocked count << 112 | set << 120), slot 4 the required scope (0: any), slot 5 the
//! claim topic, slot 6 the required blocked countries (8 × 16 bits); `issuer(id)` → controller
//! | trusted << 160, `root(id)` → revocation root; `nullifier(scope, nullifier)` → 1.
//!
//! The parsed key is cached per process by its hash, so verification does not re-read and
//! re-validate 27 slots each time; gas is charged as if it did, so gas never depends on the
//! cache.

use std::sync::{Arc, Mutex};

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::{SolCall, SolInterface};
use pharos_zkdid::{
    Address20, ClaimVerifier, Fr, IssuerPublicKey, Policy, PublicStatement, RegistryState,
    VerifyingKey, ZkError, fr_from_bytes, fr_to_bytes,
};

use crate::env::{
    Cx, Env, Failure, Output, READ_GAS, ZK_VERIFY_GAS, address_word, deny, nkey, slot, word_address,
};
use crate::identity::{create_identity, identity_of, require_admin, write_claim};
use crate::{IZkCredentialVerifier as Z, ZK_VERIFIER};

/// Slot of the flags word.
pub const FLAGS_SLOT: U256 = U256::ZERO;
/// Flag: insecure development keys are accepted.
pub const FLAG_ALLOW_INSECURE_DEV: u64 = 1;
/// Slot of the key length.
pub const VK_LEN_SLOT: U256 = U256::from_limbs([1, 0, 0, 0]);
/// Slot of the key hash.
pub const VK_HASH_SLOT: U256 = U256::from_limbs([2, 0, 0, 0]);
/// Slot of the packed policy.
pub const POLICY_SLOT: U256 = U256::from_limbs([3, 0, 0, 0]);
/// Slot of the required scope.
pub const SCOPE_SLOT: U256 = U256::from_limbs([4, 0, 0, 0]);
/// Slot of the claim topic.
pub const TOPIC_SLOT: U256 = U256::from_limbs([5, 0, 0, 0]);
/// Slot of the packed blocked countries.
pub const BLOCKED_SLOT: U256 = U256::from_limbs([6, 0, 0, 0]);
/// Largest verifying key accepted, bytes.
pub const MAX_VK_LEN: usize = 4096;

/// The storage slot of word `i` of the verifying key.
pub fn vk_word_slot(i: usize) -> U256 {
    slot(b"vk", &[nkey(i as u64)])
}

/// The verifier's storage for `key`: `(slot, value)` pairs (genesis and `setVerifyingKey`).
pub fn vk_storage(key: &[u8]) -> Vec<(U256, U256)> {
    let mut out = vec![
        (VK_LEN_SLOT, U256::from(key.len())),
        (VK_HASH_SLOT, U256::from_be_bytes(keccak256(key).0)),
    ];
    for (i, chunk) in key.chunks(32).enumerate() {
        let mut word = [0u8; 32];
        word[..chunk.len()].copy_from_slice(chunk);
        out.push((vk_word_slot(i), U256::from_be_bytes(word)));
    }
    out
}

/// The verifier's policy as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// Minimum age a statement must prove.
    pub min_age_years: u8,
    /// Minimum KYC level a statement must prove.
    pub min_kyc_level: u8,
    /// Countries every statement's blocked list must contain.
    pub required_blocked: Vec<u16>,
    /// The only scope accepted (zero: any).
    pub required_scope: B256,
    /// Days a statement's date may lag.
    pub max_date_lag_days: u32,
    /// Topic of the recorded claim.
    pub claim_topic: U256,
    /// Seconds the recorded claim stays valid.
    pub claim_validity: u64,
}

impl StoredPolicy {
    /// `(slot, value)` pairs holding the policy.
    pub fn storage(&self) -> Vec<(U256, U256)> {
        let packed = U256::from(self.min_age_years)
            | (U256::from(self.min_kyc_level) << 8)
            | (U256::from(self.max_date_lag_days) << 16)
            | (U256::from(self.claim_validity) << 48)
            | (U256::from(self.required_blocked.len()) << 112)
            | (U256::from(1) << 120);
        let mut blocked = U256::ZERO;
        for (i, country) in self.required_blocked.iter().enumerate() {
            blocked |= U256::from(*country) << (16 * i);
        }
        vec![
            (POLICY_SLOT, packed),
            (SCOPE_SLOT, U256::from_be_bytes(self.required_scope.0)),
            (TOPIC_SLOT, self.claim_topic),
            (BLOCKED_SLOT, blocked),
        ]
    }
}

fn field(word: U256, shift: usize, bits: usize) -> u64 {
    ((word >> shift) & ((U256::from(1) << bits) - U256::from(1))).to::<u64>()
}

fn read_policy<E: Env + ?Sized>(cx: &mut Cx<'_, E>) -> Result<StoredPolicy, Failure> {
    let packed = cx.read(ZK_VERIFIER, POLICY_SLOT)?;
    if !packed.bit(120) {
        return deny("zkDID: no policy is set (the administrator calls setPolicy)");
    }
    let scope = cx.read(ZK_VERIFIER, SCOPE_SLOT)?;
    let topic = cx.read(ZK_VERIFIER, TOPIC_SLOT)?;
    let blocked_word = cx.read(ZK_VERIFIER, BLOCKED_SLOT)?;
    let count = field(packed, 112, 8) as usize;
    Ok(StoredPolicy {
        min_age_years: field(packed, 0, 8) as u8,
        min_kyc_level: field(packed, 8, 8) as u8,
        max_date_lag_days: field(packed, 16, 32) as u32,
        claim_validity: field(packed, 48, 64),
        required_blocked: (0..count.min(8))
            .map(|i| field(blocked_word, 16 * i, 16) as u16)
            .collect(),
        required_scope: scope.into(),
        claim_topic: topic,
    })
}

/// Parsed verifying keys by hash.
type KeyCache = Mutex<Vec<(B256, Arc<VerifyingKey>)>>;

/// Process-wide cache of parsed verifying keys by hash (a few entries).
fn key_cache() -> &'static KeyCache {
    static CACHE: std::sync::OnceLock<KeyCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(Vec::new()))
}

fn load_key<E: Env + ?Sized>(cx: &mut Cx<'_, E>) -> Result<Arc<VerifyingKey>, Failure> {
    let len: usize = cx.read(ZK_VERIFIER, VK_LEN_SLOT)?.saturating_to();
    if len == 0 {
        return deny("zkDID: no verifying key is set (the administrator calls setVerifyingKey)");
    }
    if len > MAX_VK_LEN {
        return deny(format!(
            "zkDID: the stored verifying key claims {len} bytes, more than {MAX_VK_LEN}"
        ));
    }
    let hash = B256::from(cx.read(ZK_VERIFIER, VK_HASH_SLOT)?);
    let words = len.div_ceil(32);
    // Priced as reading every word, whether or not the parsed key is cached.
    cx.charge(READ_GAS * words as u64)?;
    if let Ok(cache) = key_cache().lock()
        && let Some((_, key)) = cache.iter().find(|(h, _)| *h == hash)
    {
        return Ok(key.clone());
    }
    let mut bytes = Vec::with_capacity(words * 32);
    for i in 0..words {
        bytes.extend_from_slice(
            &cx.read_raw(ZK_VERIFIER, vk_word_slot(i))?
                .to_be_bytes::<32>(),
        );
    }
    bytes.truncate(len);
    // The cache is keyed by the stored hash: only words that hash to it may fill it (a state
    // override in a simulation, or a speculative read, could otherwise pair one key's hash with
    // another key's words).
    if keccak256(&bytes) != hash {
        return deny("zkDID: the stored verifying key does not match its stored hash");
    }
    let key = match VerifyingKey::from_bytes(&bytes) {
        Ok(key) => Arc::new(key),
        Err(e) => return deny(format!("zkDID: the stored verifying key is unusable: {e}")),
    };
    if let Ok(mut cache) = key_cache().lock() {
        if cache.len() >= 4 {
            cache.remove(0);
        }
        cache.push((hash, key.clone()));
    }
    Ok(key)
}

/// Whether `key` is the development key, whatever its file header says.
fn is_dev_key(key: &VerifyingKey) -> bool {
    static DEV: std::sync::OnceLock<Option<VerifyingKey>> = std::sync::OnceLock::new();
    DEV.get_or_init(|| VerifyingKey::from_bytes(crate::genesis::DEV_VERIFYING_KEY).ok())
        .as_ref()
        .is_some_and(|dev| dev.ark() == key.ark())
}

fn issuer_id(key: &IssuerPublicKey) -> B256 {
    keccak256(key.to_bytes())
}

fn parse_issuer(bytes: &[u8]) -> Result<IssuerPublicKey, Failure> {
    IssuerPublicKey::from_bytes(bytes).or_else(|e| {
        deny(format!(
            "zkDID: issuer key is not a 64-byte Baby Jubjub public key: {e}"
        ))
    })
}

/// Issuer root and nullifier flag read before verification.
struct Prefetched {
    issuer: IssuerPublicKey,
    root: Option<Fr>,
    scope: Fr,
    nullifier: Fr,
    used: bool,
}

impl RegistryState for Prefetched {
    fn revocation_root(&self, issuer: &IssuerPublicKey) -> Option<Fr> {
        (*issuer == self.issuer).then_some(self.root).flatten()
    }

    fn is_nullifier_used(&self, scope: &Fr, nullifier: &Fr) -> bool {
        (*scope == self.scope && *nullifier == self.nullifier) && self.used
    }
}

fn fr_word(value: &Fr) -> B256 {
    B256::from(fr_to_bytes(value))
}

fn zk_deny<T>(e: ZkError) -> Result<T, Failure> {
    deny(format!("zkDID: {e}"))
}

/// Runs a call to the verifier.
pub fn call_zk<E: Env + ?Sized>(cx: &mut Cx<'_, E>, caller: Address, input: &[u8]) -> Output {
    use Z::IZkCredentialVerifierCalls as C;
    let Ok(call) = C::abi_decode(input) else {
        return deny("unknown function or malformed arguments for the zkDID verifier");
    };
    let me = ZK_VERIFIER;
    Ok(match call {
        C::setVerifyingKey(c) => {
            require_admin(cx, caller)?;
            if c.key.is_empty() || c.key.len() > MAX_VK_LEN {
                return deny(format!("zkDID: a verifying key is 1 to {MAX_VK_LEN} bytes"));
            }
            let key = match VerifyingKey::from_bytes(&c.key) {
                Ok(key) => key,
                Err(e) => return zk_deny(e),
            };
            let allow_dev = cx.read(me, FLAGS_SLOT)?.bit(0);
            // The flag is the key file's own claim; the development key is known by its body.
            if (key.is_insecure_dev() || is_dev_key(&key)) && !allow_dev {
                return deny(
                    "zkDID: this verifying key comes from the insecure development setup; this chain only accepts keys from a ceremony",
                );
            }
            let old_len: usize = cx.read(me, VK_LEN_SLOT)?.saturating_to();
            let storage = vk_storage(&c.key);
            for (slot, value) in &storage {
                cx.write(me, *slot, *value)?;
            }
            for i in c.key.len().div_ceil(32)..old_len.div_ceil(32) {
                cx.write(me, vk_word_slot(i), U256::ZERO)?;
            }
            cx.emit(
                me,
                &Z::VerifyingKeySet {
                    keyHash: keccak256(&c.key),
                    insecureDev: key.is_insecure_dev(),
                },
            )?;
            Bytes::new()
        }
        C::setPolicy(c) => {
            require_admin(cx, caller)?;
            let policy = StoredPolicy {
                min_age_years: c.minAgeYears,
                min_kyc_level: c.minKycLevel,
                required_blocked: c.requiredBlockedCountries.clone(),
                required_scope: c.requiredScope,
                max_date_lag_days: c.maxDateLagDays,
                claim_topic: c.claimTopic,
                claim_validity: c.claimValiditySeconds,
            };
            to_zk_policy(&policy)?;
            if crate::identity::topic_name(cx, c.claimTopic)?.is_empty() {
                return deny(format!("claim topic {} is not registered", c.claimTopic));
            }
            for (slot, value) in policy.storage() {
                cx.write(me, slot, value)?;
            }
            cx.emit(
                me,
                &Z::PolicySet {
                    minAgeYears: c.minAgeYears,
                    minKycLevel: c.minKycLevel,
                    requiredBlockedCountries: c.requiredBlockedCountries,
                    requiredScope: c.requiredScope,
                    maxDateLagDays: c.maxDateLagDays,
                    claimTopic: c.claimTopic,
                    claimValiditySeconds: c.claimValiditySeconds,
                },
            )?;
            Bytes::new()
        }
        C::setIssuer(c) => {
            require_admin(cx, caller)?;
            let issuer = parse_issuer(&c.issuerKey)?;
            if fr_from_bytes(c.revocationRoot.as_slice()).is_err() {
                return deny("zkDID: the revocation root is not a BN254 field element");
            }
            let id = issuer_id(&issuer);
            cx.write(
                me,
                slot(b"issuer", &[id]),
                address_word(c.controller) | (U256::from(1) << 160),
            )?;
            cx.write(me, slot(b"root", &[id]), c.revocationRoot.into())?;
            cx.emit(
                me,
                &Z::ZkIssuerSet {
                    issuerId: id,
                    controller: c.controller,
                    revocationRoot: c.revocationRoot,
                },
            )?;
            Bytes::new()
        }
        C::removeIssuer(c) => {
            require_admin(cx, caller)?;
            let id = issuer_id(&parse_issuer(&c.issuerKey)?);
            if !cx.read(me, slot(b"issuer", &[id]))?.bit(160) {
                return deny("zkDID: this issuer is not trusted");
            }
            cx.write(me, slot(b"issuer", &[id]), U256::ZERO)?;
            cx.emit(me, &Z::ZkIssuerRemoved { issuerId: id })?;
            Bytes::new()
        }
        C::setRevocationRoot(c) => {
            let id = issuer_id(&parse_issuer(&c.issuerKey)?);
            let word = cx.read(me, slot(b"issuer", &[id]))?;
            if !word.bit(160) {
                return deny("zkDID: this issuer is not trusted");
            }
            if word_address(word) != caller {
                return deny(format!(
                    "zkDID: only the issuer's controller ({}) publishes its revocation root",
                    word_address(word)
                ));
            }
            if fr_from_bytes(c.revocationRoot.as_slice()).is_err() {
                return deny("zkDID: the revocation root is not a BN254 field element");
            }
            cx.write(me, slot(b"root", &[id]), c.revocationRoot.into())?;
            cx.emit(
                me,
                &Z::RevocationRootUpdated {
                    issuerId: id,
                    revocationRoot: c.revocationRoot,
                },
            )?;
            Bytes::new()
        }
        C::submit(c) => {
            let id = submit(cx, caller, &c.statement, &c.proof)?;
            Z::submitCall::abi_encode_returns(&id).into()
        }
        C::verifyingKeyHash(_) => {
            let hash = B256::from(cx.read(me, VK_HASH_SLOT)?);
            Z::verifyingKeyHashCall::abi_encode_returns(&hash).into()
        }
        C::revocationRoot(c) => {
            let id = issuer_id(&parse_issuer(&c.issuerKey)?);
            let trusted = cx.read(me, slot(b"issuer", &[id]))?.bit(160);
            let root = B256::from(cx.read(me, slot(b"root", &[id]))?);
            Z::revocationRootCall::abi_encode_returns(&Z::revocationRootReturn { trusted, root })
                .into()
        }
        C::isNullifierUsed(c) => {
            let used = !cx
                .read(me, slot(b"nullifier", &[c.scope, c.nullifier]))?
                .is_zero();
            Z::isNullifierUsedCall::abi_encode_returns(&used).into()
        }
    })
}

fn to_zk_policy(p: &StoredPolicy) -> Result<Policy, Failure> {
    let required_scope = if p.required_scope.is_zero() {
        None
    } else {
        match fr_from_bytes(p.required_scope.as_slice()) {
            Ok(fr) => Some(fr),
            Err(_) => return deny("zkDID: the required scope is not a BN254 field element"),
        }
    };
    let policy = Policy {
        min_age_years: p.min_age_years,
        min_kyc_level: p.min_kyc_level,
        required_blocked_countries: p.required_blocked.clone(),
        required_scope,
        max_date_lag_days: p.max_date_lag_days,
    };
    if let Err(e) = policy.validate() {
        return zk_deny(e);
    }
    Ok(policy)
}

fn submit<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    caller: Address,
    statement_bytes: &[u8],
    proof: &[u8],
) -> Result<u64, Failure> {
    let me = ZK_VERIFIER;
    let statement = match PublicStatement::from_bytes(statement_bytes) {
        Ok(s) => s,
        Err(e) => return zk_deny(e),
    };
    let policy = read_policy(cx)?;
    let zk_policy = to_zk_policy(&policy)?;
    let key = load_key(cx)?;
    let allow_dev = cx.read(me, FLAGS_SLOT)?.bit(0);
    let verifier = if allow_dev {
        ClaimVerifier::new_allowing_insecure_dev((*key).clone(), zk_policy)
    } else {
        ClaimVerifier::new((*key).clone(), zk_policy)
    };
    let verifier = match verifier {
        Ok(v) => v,
        Err(e) => return zk_deny(e),
    };
    let id = issuer_id(&statement.issuer);
    let trusted = cx.read(me, slot(b"issuer", &[id]))?.bit(160);
    let root_word = cx.read(me, slot(b"root", &[id]))?;
    let root = if trusted {
        fr_from_bytes(&root_word.to_be_bytes::<32>()).ok()
    } else {
        None
    };
    let scope_word = fr_word(&statement.scope);
    let nullifier_word = fr_word(&statement.nullifier);
    let nullifier_slot = slot(b"nullifier", &[scope_word, nullifier_word]);
    let used = !cx.read(me, nullifier_slot)?.is_zero();
    let state = Prefetched {
        issuer: statement.issuer,
        root,
        scope: statement.scope,
        nullifier: statement.nullifier,
        used,
    };
    let today = i32::try_from(cx.timestamp() / 86_400).unwrap_or(i32::MAX);
    cx.charge(ZK_VERIFY_GAS)?;
    let claim =
        match verifier.verify_statement(&state, Address20(caller.0.0), today, &statement, proof) {
            Ok(claim) => claim,
            Err(e) => return zk_deny(e),
        };
    cx.write(me, nullifier_slot, U256::from(1))?;
    let mut identity = identity_of(cx, caller)?;
    if identity == 0 {
        // Country 0: undisclosed (the proof only says which countries it is not).
        identity = create_identity(cx, caller, 0)?;
    } else if crate::identity::claim_of(cx, identity, policy.claim_topic)?
        .is_some_and(|claim| claim.revoked)
    {
        // A revoked claim stays revoked: a new proof (another scope, another credential) must
        // not quietly restore it.
        return deny(format!(
            "zkDID: identity {identity}'s claim of topic {} was revoked",
            policy.claim_topic
        ));
    }
    let expiry = if policy.claim_validity == 0 {
        0
    } else {
        cx.timestamp().saturating_add(policy.claim_validity)
    };
    let mut data = [0u8; 32];
    data[0] = claim.requirements.min_age_years;
    data[1] = claim.requirements.min_kyc_level;
    data[2..6].copy_from_slice(&claim.date.to_be_bytes());
    write_claim(
        cx,
        identity,
        policy.claim_topic,
        me,
        expiry,
        B256::from(data),
    )?;
    cx.emit(
        me,
        &Z::CredentialProofAccepted {
            identity,
            wallet: caller,
            nullifier: nullifier_word,
            issuerId: id,
            minAgeYears: claim.requirements.min_age_years,
            minKycLevel: claim.requirements.min_kyc_level,
        },
    )?;
    Ok(identity)
}
