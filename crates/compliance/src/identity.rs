//! The identity registry (`IIdentityRegistry` at [`IDENTITY_REGISTRY`]) and the trusted-issuer
//! and claim-topic registry (`ITrustedIssuersRegistry` at [`TRUSTED_ISSUERS`]).
//!
//! Storage of the identity registry: slot 0 the administrator, slot 1 the last identity number;
//! keyed (see [`slot`]): `agent(a)`, `wallet(w)` → identity, `recovered(w)` → the wallet a lost
//! wallet was recovered to, and per identity `country(id)`, `primary(id)` (the wallet its DID
//! names), `wallets(id)` (count), `claim(id, topic)` (issuer | expiry << 160 | revoked << 224 |
//! 1 << 232) and `claimData(id, topic)`.
//!
//! Storage of the trusted-issuer registry: slot 0 the last issuer generation; `issuer(a)` → the
//! issuer's generation (0: not trusted), `trusted(a, generation, topic)` → 1, `topic(t)` → the
//! topic's name (bytes left-aligned, length in the low byte).

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{SolCall, SolInterface};

use crate::env::{Cx, Env, Failure, Output, address_word, akey, deny, nkey, slot, word_address};
use crate::{
    IDENTITY_REGISTRY, IIdentityRegistry as I, ITrustedIssuersRegistry as T, TRUSTED_ISSUERS,
    ZK_VERIFIER,
};

/// Slot of the compliance administrator (in the identity registry).
pub const ADMIN_SLOT: U256 = U256::ZERO;
const NEXT_ID_SLOT: U256 = U256::from_limbs([1, 0, 0, 0]);
const ISSUER_GEN_SLOT: U256 = U256::ZERO;

/// Claim topics registered at genesis, with their names.
pub const GENESIS_TOPICS: [(u64, &str); 5] = [
    (TOPIC_KYC, "KYC"),
    (TOPIC_ACCREDITED, "ACCREDITED_INVESTOR"),
    (TOPIC_AML, "AML_SCREENED"),
    (TOPIC_JURISDICTION, "JURISDICTION"),
    (TOPIC_ZK_CREDENTIAL, "ZK_CREDENTIAL"),
];
/// Topic: KYC (data: the level).
pub const TOPIC_KYC: u64 = 1;
/// Topic: accredited investor.
pub const TOPIC_ACCREDITED: u64 = 2;
/// Topic: AML screened.
pub const TOPIC_AML: u64 = 3;
/// Topic: jurisdiction.
pub const TOPIC_JURISDICTION: u64 = 4;
/// Topic: a zero-knowledge credential proof accepted by the verifier.
pub const TOPIC_ZK_CREDENTIAL: u64 = 5;

/// The compliance administrator.
pub fn admin<E: Env + ?Sized>(cx: &mut Cx<'_, E>) -> Result<Address, Failure> {
    Ok(cx.read_address(IDENTITY_REGISTRY, ADMIN_SLOT)?)
}

/// Fails unless `caller` is the compliance administrator.
pub fn require_admin<E: Env + ?Sized>(cx: &mut Cx<'_, E>, caller: Address) -> Result<(), Failure> {
    let admin = admin(cx)?;
    if admin.is_zero() {
        return deny("no compliance administrator is set on this chain");
    }
    if caller != admin {
        return deny(format!(
            "only the compliance administrator ({admin}) may do this"
        ));
    }
    Ok(())
}

fn is_agent<E: Env + ?Sized>(cx: &mut Cx<'_, E>, who: Address) -> Result<bool, Failure> {
    Ok(!cx
        .read(IDENTITY_REGISTRY, slot(b"agent", &[akey(who)]))?
        .is_zero())
}

fn require_agent<E: Env + ?Sized>(cx: &mut Cx<'_, E>, caller: Address) -> Result<(), Failure> {
    if is_agent(cx, caller)? || admin(cx)? == caller && !caller.is_zero() {
        return Ok(());
    }
    deny(format!(
        "{caller} is not an identity agent (the administrator appoints agents with setAgent)"
    ))
}

/// The identity number of `wallet` (0: none).
pub fn identity_of<E: Env + ?Sized>(cx: &mut Cx<'_, E>, wallet: Address) -> Result<u64, Failure> {
    let id = cx.read(IDENTITY_REGISTRY, slot(b"wallet", &[akey(wallet)]))?;
    Ok(id.saturating_to())
}

/// The country of identity `id`.
pub fn country_of_identity<E: Env + ?Sized>(cx: &mut Cx<'_, E>, id: u64) -> Result<u16, Failure> {
    Ok(cx
        .read(IDENTITY_REGISTRY, slot(b"country", &[nkey(id)]))?
        .saturating_to())
}

/// The wallet a lost wallet was recovered to (zero: none).
pub fn recovered_to<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    lost: Address,
) -> Result<Address, Failure> {
    Ok(cx.read_address(IDENTITY_REGISTRY, slot(b"recovered", &[akey(lost)]))?)
}

fn require_identity<E: Env + ?Sized>(cx: &mut Cx<'_, E>, id: u64) -> Result<(), Failure> {
    let last: u64 = cx.read(IDENTITY_REGISTRY, NEXT_ID_SLOT)?.saturating_to();
    if id == 0 || id > last {
        return deny(format!("identity {id} does not exist"));
    }
    Ok(())
}

fn link_wallet<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    id: u64,
    wallet: Address,
) -> Result<(), Failure> {
    if wallet.is_zero() {
        return deny("the zero address cannot be a wallet");
    }
    let existing = identity_of(cx, wallet)?;
    if existing != 0 {
        return deny(format!(
            "wallet {wallet} already belongs to identity {existing}"
        ));
    }
    cx.write(
        IDENTITY_REGISTRY,
        slot(b"wallet", &[akey(wallet)]),
        U256::from(id),
    )?;
    let count_slot = slot(b"wallets", &[nkey(id)]);
    let count = cx.read(IDENTITY_REGISTRY, count_slot)?;
    cx.write(IDENTITY_REGISTRY, count_slot, count + U256::from(1))?;
    Ok(())
}

fn unlink_wallet<E: Env + ?Sized>(cx: &mut Cx<'_, E>, wallet: Address) -> Result<u64, Failure> {
    let id = identity_of(cx, wallet)?;
    if id == 0 {
        return deny(format!("wallet {wallet} has no identity"));
    }
    cx.write(
        IDENTITY_REGISTRY,
        slot(b"wallet", &[akey(wallet)]),
        U256::ZERO,
    )?;
    let count_slot = slot(b"wallets", &[nkey(id)]);
    let count = cx.read(IDENTITY_REGISTRY, count_slot)?;
    cx.write(
        IDENTITY_REGISTRY,
        count_slot,
        count.saturating_sub(U256::from(1)),
    )?;
    Ok(id)
}

/// Creates an identity for `wallet` (used by agents and by the zkDID verifier).
pub fn create_identity<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    wallet: Address,
    country: u16,
) -> Result<u64, Failure> {
    let id: u64 = cx
        .read(IDENTITY_REGISTRY, NEXT_ID_SLOT)?
        .saturating_to::<u64>()
        .saturating_add(1);
    link_wallet(cx, id, wallet)?;
    cx.write(IDENTITY_REGISTRY, NEXT_ID_SLOT, U256::from(id))?;
    cx.write(
        IDENTITY_REGISTRY,
        slot(b"primary", &[nkey(id)]),
        address_word(wallet),
    )?;
    cx.write(
        IDENTITY_REGISTRY,
        slot(b"country", &[nkey(id)]),
        U256::from(country),
    )?;
    cx.emit(
        IDENTITY_REGISTRY,
        &I::IdentityRegistered {
            identity: id,
            wallet,
            country,
        },
    )?;
    Ok(id)
}

/// A stored claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredClaim {
    /// Issuer address (the verifier's address for zkDID claims).
    pub issuer: Address,
    /// Expiry, seconds (0: none).
    pub expiry: u64,
    /// Revoked.
    pub revoked: bool,
}

/// The claim of `topic` on identity `id`, if any.
pub fn claim_of<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    id: u64,
    topic: U256,
) -> Result<Option<StoredClaim>, Failure> {
    read_claim(cx, id, topic)
}

fn read_claim<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    id: u64,
    topic: U256,
) -> Result<Option<StoredClaim>, Failure> {
    let word = cx.read(IDENTITY_REGISTRY, slot(b"claim", &[nkey(id), nkey(topic)]))?;
    if word.is_zero() {
        return Ok(None);
    }
    Ok(Some(StoredClaim {
        issuer: word_address(word),
        expiry: ((word >> 160usize) & U256::from(u64::MAX)).to::<u64>(),
        revoked: word.bit(224),
    }))
}

fn claim_word(claim: &StoredClaim) -> U256 {
    address_word(claim.issuer)
        | (U256::from(claim.expiry) << 160)
        | (U256::from(claim.revoked as u8) << 224)
        | (U256::from(1) << 232)
}

/// Records a claim (topic) on identity `id`, replacing an older one.
pub fn write_claim<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    id: u64,
    topic: U256,
    issuer: Address,
    expiry: u64,
    data: alloy_primitives::B256,
) -> Result<(), Failure> {
    let claim = StoredClaim {
        issuer,
        expiry,
        revoked: false,
    };
    cx.write(
        IDENTITY_REGISTRY,
        slot(b"claim", &[nkey(id), nkey(topic)]),
        claim_word(&claim),
    )?;
    cx.write(
        IDENTITY_REGISTRY,
        slot(b"claimData", &[nkey(id), nkey(topic)]),
        U256::from_be_bytes(data.0),
    )?;
    cx.emit(
        IDENTITY_REGISTRY,
        &I::ClaimAdded {
            identity: id,
            topic,
            issuer,
            expiry,
            data,
        },
    )?;
    Ok(())
}

/// Whether `issuer` is trusted for `topic`.
pub fn is_trusted_issuer<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    issuer: Address,
    topic: U256,
) -> Result<bool, Failure> {
    let generation = cx.read(TRUSTED_ISSUERS, slot(b"issuer", &[akey(issuer)]))?;
    if generation.is_zero() {
        return Ok(false);
    }
    Ok(!cx
        .read(
            TRUSTED_ISSUERS,
            slot(b"trusted", &[akey(issuer), nkey(generation), nkey(topic)]),
        )?
        .is_zero())
}

/// Whether identity `id` holds a valid claim of `topic`: present, not revoked, not expired, and
/// its issuer still trusted for the topic (the zkDID verifier always is).
pub fn has_valid_claim_of_identity<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    id: u64,
    topic: U256,
) -> Result<bool, Failure> {
    if id == 0 {
        return Ok(false);
    }
    let Some(claim) = read_claim(cx, id, topic)? else {
        return Ok(false);
    };
    if claim.revoked || (claim.expiry != 0 && claim.expiry <= cx.timestamp()) {
        return Ok(false);
    }
    if claim.issuer == ZK_VERIFIER {
        return Ok(true);
    }
    is_trusted_issuer(cx, claim.issuer, topic)
}

/// A topic's registered name ("" if none).
pub fn topic_name<E: Env + ?Sized>(cx: &mut Cx<'_, E>, topic: U256) -> Result<String, Failure> {
    let word = cx.read(TRUSTED_ISSUERS, slot(b"topic", &[nkey(topic)]))?;
    Ok(decode_short_string(word))
}

/// A name of 1 to 31 bytes packed in one word (bytes left-aligned, length in the low byte).
pub fn encode_short_string(name: &str) -> Option<U256> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 31 {
        return None;
    }
    let mut word = [0u8; 32];
    word[..bytes.len()].copy_from_slice(bytes);
    word[31] = bytes.len() as u8;
    Some(U256::from_be_bytes(word))
}

fn decode_short_string(word: U256) -> String {
    let bytes = word.to_be_bytes::<32>();
    let len = (bytes[31] as usize).min(31);
    String::from_utf8_lossy(&bytes[..len]).into_owned()
}

/// Runs a call to the identity registry.
pub fn call_identity<E: Env + ?Sized>(cx: &mut Cx<'_, E>, caller: Address, input: &[u8]) -> Output {
    use I::IIdentityRegistryCalls as C;
    let Ok(call) = C::abi_decode(input) else {
        return deny("unknown function or malformed arguments for the identity registry");
    };
    Ok(match call {
        C::admin(_) => I::adminCall::abi_encode_returns(&admin(cx)?).into(),
        C::transferAdmin(c) => {
            require_admin(cx, caller)?;
            if c.newAdmin.is_zero() {
                return deny("the administrator cannot be the zero address");
            }
            cx.write(IDENTITY_REGISTRY, ADMIN_SLOT, address_word(c.newAdmin))?;
            cx.emit(
                IDENTITY_REGISTRY,
                &I::AdminTransferred {
                    previousAdmin: caller,
                    newAdmin: c.newAdmin,
                },
            )?;
            Bytes::new()
        }
        C::setAgent(c) => {
            require_admin(cx, caller)?;
            cx.write(
                IDENTITY_REGISTRY,
                slot(b"agent", &[akey(c.agent)]),
                U256::from(c.enabled as u8),
            )?;
            cx.emit(
                IDENTITY_REGISTRY,
                &I::AgentSet {
                    agent: c.agent,
                    enabled: c.enabled,
                },
            )?;
            Bytes::new()
        }
        C::isAgent(c) => I::isAgentCall::abi_encode_returns(&is_agent(cx, c.account)?).into(),
        C::registerIdentity(c) => {
            require_agent(cx, caller)?;
            let id = create_identity(cx, c.wallet, c.country)?;
            I::registerIdentityCall::abi_encode_returns(&id).into()
        }
        C::addWallet(c) => {
            require_agent(cx, caller)?;
            require_identity(cx, c.identity)?;
            link_wallet(cx, c.identity, c.wallet)?;
            cx.emit(
                IDENTITY_REGISTRY,
                &I::WalletAdded {
                    identity: c.identity,
                    wallet: c.wallet,
                },
            )?;
            Bytes::new()
        }
        C::removeWallet(c) => {
            require_agent(cx, caller)?;
            let id = unlink_wallet(cx, c.wallet)?;
            cx.emit(
                IDENTITY_REGISTRY,
                &I::WalletRemoved {
                    identity: id,
                    wallet: c.wallet,
                },
            )?;
            Bytes::new()
        }
        C::recoverWallet(c) => {
            require_agent(cx, caller)?;
            let id = unlink_wallet(cx, c.lostWallet)?;
            link_wallet(cx, id, c.newWallet)?;
            let primary = slot(b"primary", &[nkey(id)]);
            // The DID stays as it was: it names the identity, not the wallet in use.
            if cx.read_address(IDENTITY_REGISTRY, primary)?.is_zero() {
                cx.write(IDENTITY_REGISTRY, primary, address_word(c.newWallet))?;
            }
            cx.write(
                IDENTITY_REGISTRY,
                slot(b"recovered", &[akey(c.lostWallet)]),
                address_word(c.newWallet),
            )?;
            cx.emit(
                IDENTITY_REGISTRY,
                &I::WalletRecovered {
                    identity: id,
                    lostWallet: c.lostWallet,
                    newWallet: c.newWallet,
                },
            )?;
            Bytes::new()
        }
        C::setCountry(c) => {
            require_agent(cx, caller)?;
            require_identity(cx, c.identity)?;
            cx.write(
                IDENTITY_REGISTRY,
                slot(b"country", &[nkey(c.identity)]),
                U256::from(c.country),
            )?;
            cx.emit(
                IDENTITY_REGISTRY,
                &I::CountryUpdated {
                    identity: c.identity,
                    country: c.country,
                },
            )?;
            Bytes::new()
        }
        C::identityOf(c) => {
            I::identityOfCall::abi_encode_returns(&identity_of(cx, c.wallet)?).into()
        }
        C::didOf(c) => {
            let id = identity_of(cx, c.wallet)?;
            let did = if id == 0 {
                String::new()
            } else {
                let primary = cx.read_address(IDENTITY_REGISTRY, slot(b"primary", &[nkey(id)]))?;
                format!("did:pharos:{}", primary.to_string().to_lowercase())
            };
            I::didOfCall::abi_encode_returns(&did).into()
        }
        C::countryOf(c) => {
            let id = identity_of(cx, c.wallet)?;
            let country = if id == 0 {
                0
            } else {
                country_of_identity(cx, id)?
            };
            I::countryOfCall::abi_encode_returns(&country).into()
        }
        C::walletCount(c) => {
            let count: u32 = cx
                .read(IDENTITY_REGISTRY, slot(b"wallets", &[nkey(c.identity)]))?
                .saturating_to();
            I::walletCountCall::abi_encode_returns(&count).into()
        }
        C::addClaim(c) => {
            require_identity(cx, c.identity)?;
            if !is_trusted_issuer(cx, caller, c.topic)? {
                return deny(format!(
                    "{caller} is not a trusted issuer for claim topic {}",
                    c.topic
                ));
            }
            if c.expiry != 0 && c.expiry <= cx.timestamp() {
                return deny(format!("claim expiry {} is in the past", c.expiry));
            }
            write_claim(cx, c.identity, c.topic, caller, c.expiry, c.data)?;
            Bytes::new()
        }
        C::revokeClaim(c) => {
            let Some(mut claim) = read_claim(cx, c.identity, c.topic)? else {
                return deny(format!(
                    "identity {} has no claim of topic {}",
                    c.identity, c.topic
                ));
            };
            if caller != claim.issuer {
                require_admin(cx, caller).map_err(|e| match e {
                    Failure::Revert(_) => Failure::Revert(format!(
                        "compliance: only the claim's issuer ({}) or the administrator may revoke it",
                        claim.issuer
                    )),
                    stop => stop,
                })?;
            }
            claim.revoked = true;
            cx.write(
                IDENTITY_REGISTRY,
                slot(b"claim", &[nkey(c.identity), nkey(c.topic)]),
                claim_word(&claim),
            )?;
            cx.emit(
                IDENTITY_REGISTRY,
                &I::ClaimRevoked {
                    identity: c.identity,
                    topic: c.topic,
                    issuer: claim.issuer,
                },
            )?;
            Bytes::new()
        }
        C::getClaim(c) => {
            let claim = read_claim(cx, c.identity, c.topic)?;
            let data = cx.read(
                IDENTITY_REGISTRY,
                slot(b"claimData", &[nkey(c.identity), nkey(c.topic)]),
            )?;
            let (issuer, expiry, revoked) = claim
                .map(|c| (c.issuer, c.expiry, c.revoked))
                .unwrap_or_default();
            I::getClaimCall::abi_encode_returns(&I::getClaimReturn {
                issuer,
                expiry,
                data: data.into(),
                revoked,
            })
            .into()
        }
        C::hasValidClaim(c) => {
            let id = identity_of(cx, c.wallet)?;
            I::hasValidClaimCall::abi_encode_returns(&has_valid_claim_of_identity(cx, id, c.topic)?)
                .into()
        }
    })
}

/// Runs a call to the trusted-issuer and claim-topic registry.
pub fn call_issuers<E: Env + ?Sized>(cx: &mut Cx<'_, E>, caller: Address, input: &[u8]) -> Output {
    use T::ITrustedIssuersRegistryCalls as C;
    let Ok(call) = C::abi_decode(input) else {
        return deny("unknown function or malformed arguments for the trusted-issuer registry");
    };
    Ok(match call {
        C::addTrustedIssuer(c) => {
            require_admin(cx, caller)?;
            if c.issuer.is_zero() {
                return deny("the zero address cannot be an issuer");
            }
            if c.topics.is_empty() || c.topics.len() > 32 {
                return deny("an issuer is trusted for 1 to 32 topics");
            }
            let generation = cx.read(TRUSTED_ISSUERS, ISSUER_GEN_SLOT)? + U256::from(1);
            cx.write(TRUSTED_ISSUERS, ISSUER_GEN_SLOT, generation)?;
            for topic in &c.topics {
                if topic_name(cx, *topic)?.is_empty() {
                    return deny(format!(
                        "claim topic {topic} is not registered (addClaimTopic first)"
                    ));
                }
                cx.write(
                    TRUSTED_ISSUERS,
                    slot(
                        b"trusted",
                        &[akey(c.issuer), nkey(generation), nkey(*topic)],
                    ),
                    U256::from(1),
                )?;
            }
            cx.write(
                TRUSTED_ISSUERS,
                slot(b"issuer", &[akey(c.issuer)]),
                generation,
            )?;
            cx.emit(
                TRUSTED_ISSUERS,
                &T::TrustedIssuerAdded {
                    issuer: c.issuer,
                    topics: c.topics,
                },
            )?;
            Bytes::new()
        }
        C::removeTrustedIssuer(c) => {
            require_admin(cx, caller)?;
            let key = slot(b"issuer", &[akey(c.issuer)]);
            if cx.read(TRUSTED_ISSUERS, key)?.is_zero() {
                return deny(format!("{} is not a trusted issuer", c.issuer));
            }
            cx.write(TRUSTED_ISSUERS, key, U256::ZERO)?;
            cx.emit(
                TRUSTED_ISSUERS,
                &T::TrustedIssuerRemoved { issuer: c.issuer },
            )?;
            Bytes::new()
        }
        C::isTrustedIssuer(c) => {
            T::isTrustedIssuerCall::abi_encode_returns(&is_trusted_issuer(cx, c.issuer, c.topic)?)
                .into()
        }
        C::addClaimTopic(c) => {
            require_admin(cx, caller)?;
            let Some(word) = encode_short_string(&c.name) else {
                return deny("a claim topic name is 1 to 31 bytes");
            };
            cx.write(TRUSTED_ISSUERS, slot(b"topic", &[nkey(c.topic)]), word)?;
            cx.emit(
                TRUSTED_ISSUERS,
                &T::ClaimTopicAdded {
                    topic: c.topic,
                    name: c.name,
                },
            )?;
            Bytes::new()
        }
        C::removeClaimTopic(c) => {
            require_admin(cx, caller)?;
            let key = slot(b"topic", &[nkey(c.topic)]);
            if cx.read(TRUSTED_ISSUERS, key)?.is_zero() {
                return deny(format!("claim topic {} is not registered", c.topic));
            }
            cx.write(TRUSTED_ISSUERS, key, U256::ZERO)?;
            cx.emit(TRUSTED_ISSUERS, &T::ClaimTopicRemoved { topic: c.topic })?;
            Bytes::new()
        }
        C::claimTopicName(c) => {
            T::claimTopicNameCall::abi_encode_returns(&topic_name(cx, c.topic)?).into()
        }
    })
}
