//! Agreement among validators: validator keys, the validator set of the genesis, and the glue
//! between Pharos and commonware's BFT engine (`simplex` with BLS12-381 multisig certificates).
//!
//! Owns: key generation and key files ([`keys`]), the decoded and checked validator set
//! ([`ValidatorSet`]), the signing scheme each validator votes with. Must not touch: state,
//! execution or storage of the chain — consensus orders opaque digests; executing finalized
//! blocks is the node's job.
//!
//! The engine is `commonware-consensus` 2026.10.0 (`simplex`): every view has a leader that
//! proposes a digest; 2f+1 notarize votes make a notarization, 2f+1 finalize votes a
//! finalization, with f < n/3 faulty validators. Votes are BLS12-381 signatures aggregated into
//! multisig certificates ("min pk": 48-byte keys, 96-byte signatures).
#![warn(missing_docs)]

pub mod app;
pub mod keys;
pub mod lanes;
pub mod roots;
pub mod validator;

/// Helpers for tests that run validators on 127.0.0.1 (this crate's and the node's).
#[doc(hidden)]
pub mod testing {
    /// A free port below the kernel's ephemeral range (32768+), so a node's own `:0` binds
    /// (its RPC server) can never take it between this check and a validator binding it.
    pub fn free_port() -> u16 {
        use std::sync::atomic::{AtomicU16, Ordering};
        static NEXT: AtomicU16 = AtomicU16::new(0);
        let start = 20_000 + (std::process::id() % 300) as u16 * 20;
        loop {
            let port = start + NEXT.fetch_add(1, Ordering::Relaxed) % 6_000;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
}

use commonware_consensus::simplex::scheme::bls12381_multisig;
use commonware_cryptography::bls12381::primitives::variant::MinPk;
use commonware_utils::{TryFromIterator, ordered::BiMap};

pub use keys::{
    BlsPublic, CONSENSUS_NAMESPACE, Identity, KeyError, P2P_NAMESPACE, Validator, ValidatorInfo,
    ValidatorKey, init_testnet, load_validators,
};

/// A cryptographically secure generator seeded by the operating system, for keys.
pub fn secure_rng() -> impl rand::CryptoRng {
    rand::rng()
}

/// The 32-byte SHA-256 digest naming blocks and lane batches.
pub use commonware_cryptography::sha256::Digest;

/// The signing scheme of consensus votes and certificates.
pub type Scheme = bls12381_multisig::Scheme<Identity, MinPk>;

/// Why a validator set was refused.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// No validators.
    #[error("the validator set is empty")]
    Empty,
    /// An entry does not decode or its proof of possession fails.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Two entries share an identity or a BLS key.
    #[error("validator {0} is listed twice (same identity or same BLS key)")]
    Duplicate(String),
    /// A validator without stake.
    #[error("validator {0} has no stake")]
    NoStake(String),
    /// Unequal stakes: simplex counts every validator's vote once.
    #[error(
        "validator {identity} has stake {stake}, others {expected}: votes are counted per validator, so every validator must bond the same stake"
    )]
    UnequalStake {
        /// The validator.
        identity: String,
        /// Its stake.
        stake: u64,
        /// The first validator's stake.
        expected: u64,
    },
}

/// The validators of the chain, decoded, checked and in the order consensus indexes them
/// (sorted by identity).
#[derive(Debug, Clone)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
}

impl ValidatorSet {
    /// Checks every entry (keys decode, proofs of possession verify, no duplicates, equal
    /// positive stake) and orders them by identity.
    pub fn new(infos: &[ValidatorInfo]) -> Result<Self, SetError> {
        let first = infos.first().ok_or(SetError::Empty)?;
        let mut validators = Vec::with_capacity(infos.len());
        for info in infos {
            if info.stake == 0 {
                return Err(SetError::NoStake(info.identity.clone()));
            }
            if info.stake != first.stake {
                return Err(SetError::UnequalStake {
                    identity: info.identity.clone(),
                    stake: info.stake,
                    expected: first.stake,
                });
            }
            validators.push(info.verify()?);
        }
        validators.sort_by(|a, b| a.identity.cmp(&b.identity));
        for pair in validators.windows(2) {
            if pair[0].identity == pair[1].identity {
                return Err(SetError::Duplicate(pair[0].identity.to_string()));
            }
        }
        let set = Self { validators };
        // A BLS key used twice is refused by the participant map.
        BiMap::try_from_iter(set.pairs()).map_err(|_| SetError::Duplicate("a BLS key".into()))?;
        Ok(set)
    }

    fn pairs(&self) -> impl Iterator<Item = (Identity, BlsPublic)> + '_ {
        self.validators.iter().map(|v| (v.identity.clone(), v.bls))
    }

    fn participants(&self) -> BiMap<Identity, BlsPublic> {
        // Checked in `new`.
        BiMap::try_from_iter(self.pairs()).unwrap_or_default()
    }

    /// The validators, in consensus order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Never true for a set built by [`Self::new`].
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// The most faulty validators the set tolerates: f with 3f < n.
    pub fn max_faults(&self) -> usize {
        (self.validators.len() - 1) / 3
    }

    /// The position of `identity` in the set.
    pub fn index_of(&self, identity: &Identity) -> Option<usize> {
        self.validators.iter().position(|v| &v.identity == identity)
    }

    /// The scheme `key` votes with; `None` if it is not a validator of this set.
    pub fn signer(&self, key: &ValidatorKey) -> Option<Scheme> {
        Scheme::signer(
            CONSENSUS_NAMESPACE,
            self.participants(),
            key.bls_key().clone(),
        )
    }

    /// A scheme that checks votes and certificates of this set without signing.
    pub fn verifier(&self) -> Scheme {
        Scheme::verifier(CONSENSUS_NAMESPACE, self.participants())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<ValidatorKey> {
        let mut rng = rand::rng();
        (0..n).map(|_| ValidatorKey::generate(&mut rng)).collect()
    }

    #[test]
    fn a_set_checks_its_entries() {
        let keys = keys(4);
        let infos: Vec<ValidatorInfo> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| k.info(1_000, format!("127.0.0.1:{}", 30000 + i)))
            .collect();
        let set = ValidatorSet::new(&infos).expect("valid set");
        assert_eq!(set.len(), 4);
        assert_eq!(set.max_faults(), 1);
        for k in &keys {
            assert!(set.index_of(&k.identity()).is_some());
            assert!(set.signer(k).is_some(), "a member signs");
        }
        let outsider = &self::keys(1)[0];
        assert!(set.signer(outsider).is_none(), "an outsider does not");

        // A proof of possession made by another key is refused.
        let mut forged = infos.clone();
        forged[1].pop = infos[2].pop.clone();
        assert!(matches!(
            ValidatorSet::new(&forged),
            Err(SetError::Key(KeyError::ProofOfPossession(_)))
        ));
        // Twice the same validator.
        let mut twice = infos.clone();
        twice[3] = infos[0].clone();
        assert!(matches!(
            ValidatorSet::new(&twice),
            Err(SetError::Duplicate(_))
        ));
        // Unequal or zero stake, malformed keys, nothing at all.
        let mut unequal = infos.clone();
        unequal[2].stake = 5;
        assert!(matches!(
            ValidatorSet::new(&unequal),
            Err(SetError::UnequalStake { .. })
        ));
        let mut zero = infos.clone();
        for v in &mut zero {
            v.stake = 0;
        }
        assert!(matches!(
            ValidatorSet::new(&zero),
            Err(SetError::NoStake(_))
        ));
        let mut garbage = infos.clone();
        garbage[0].bls = "zz".into();
        assert!(matches!(
            ValidatorSet::new(&garbage),
            Err(SetError::Key(KeyError::Field { field: "bls", .. }))
        ));
        let mut short = infos;
        short[0].identity.truncate(10);
        assert!(ValidatorSet::new(&short).is_err());
        assert!(matches!(ValidatorSet::new(&[]), Err(SetError::Empty)));
    }

    #[test]
    fn a_testnet_directory_holds_keys_and_a_valid_set() {
        let dir = std::env::temp_dir().join(format!("pharos-testnet-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let list = init_testnet(&dir, 4, 1_000, 30_300, &mut rand::rng()).expect("init");
        let infos = load_validators(&list).expect("load");
        let set = ValidatorSet::new(&infos).expect("a valid set");
        assert_eq!(set.len(), 4);
        for (i, info) in infos.iter().enumerate() {
            let key =
                ValidatorKey::load(&dir.join(format!("validator-{i}.key.json"))).expect("key");
            assert!(set.signer(&key).is_some(), "validator {i} signs in the set");
            assert_eq!(info.address, format!("127.0.0.1:{}", 30_300 + i));
        }
        assert!(
            init_testnet(&dir, 4, 1_000, 30_300, &mut rand::rng()).is_err(),
            "never overwrites a testnet"
        );
        let too_high = dir.join("x");
        assert!(init_testnet(&too_high, 4, 1, 65_534, &mut rand::rng()).is_err());
        assert!(!too_high.exists(), "nothing written for a refused request");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn key_files_round_trip_and_are_private() {
        let dir = std::env::temp_dir().join(format!("pharos-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("validator.key.json");
        let _ = std::fs::remove_file(&path);
        let key = &keys(1)[0];
        key.save(&path).expect("save");
        assert!(key.save(&path).is_err(), "never overwrites a key");
        let loaded = ValidatorKey::load(&path).expect("load");
        assert_eq!(loaded.identity(), key.identity());
        assert_eq!(loaded.info(1, "a"), key.info(1, "a"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "{\"identity\": \"00\", \"bls\": \"00\"}").expect("write");
        assert!(ValidatorKey::load(&path).is_err());
        std::fs::write(&path, "not json").expect("write");
        assert!(ValidatorKey::load(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
