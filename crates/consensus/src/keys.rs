//! Validator keys: an ed25519 identity (the validator's name on the p2p network and in the
//! validator set) and a BLS12-381 key that signs consensus votes (aggregated into multisig
//! certificates), with a proof of possession so nobody can register a rogue aggregate key.
//!
//! Files are JSON with hex strings. A private key file holds both secrets and is written with
//! mode 0600; the public part ([`ValidatorInfo`]) goes into the genesis.

use std::{fs, path::Path};

use commonware_codec::{DecodeExt, Encode};
use commonware_cryptography::{
    Signer,
    bls12381::primitives::{
        group,
        ops::{self},
        variant::{MinPk, Variant},
    },
    ed25519,
};
use commonware_math::algebra::Random;
use serde::{Deserialize, Serialize};

/// A validator's identity on the network and in the validator set.
pub type Identity = ed25519::PublicKey;
/// A validator's BLS12-381 public key (G1, "min pk": small keys, aggregated signatures in G2).
pub type BlsPublic = <MinPk as Variant>::Public;
/// A BLS12-381 signature (G2).
pub type BlsSignature = <MinPk as Variant>::Signature;

/// Domain of every consensus signature (votes, certificates, proofs of possession).
pub const CONSENSUS_NAMESPACE: &[u8] = b"PHAROS_CONSENSUS";
/// Domain of the p2p handshake.
pub const P2P_NAMESPACE: &[u8] = b"PHAROS_P2P";

/// Why a key or a validator entry was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// A file is not the JSON it should be.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A hex field does not decode to the key it names.
    #[error("{field}: {message}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The proof of possession does not verify for the BLS key.
    #[error("validator {0}: the BLS proof of possession does not verify")]
    ProofOfPossession(String),
}

/// A validator's secrets.
#[derive(Clone)]
pub struct ValidatorKey {
    identity: ed25519::PrivateKey,
    bls: group::Private,
}

impl std::fmt::Debug for ValidatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatorKey")
            .field("identity", &self.identity.public_key())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    identity: String,
    bls: String,
}

fn decode_hex<T: DecodeExt<()>>(field: &'static str, text: &str) -> Result<T, KeyError> {
    let bytes = hex::decode(text.trim_start_matches("0x")).map_err(|e| KeyError::Field {
        field,
        message: e.to_string(),
    })?;
    T::decode(bytes).map_err(|e| KeyError::Field {
        field,
        message: e.to_string(),
    })
}

fn encode_hex(value: &impl Encode) -> String {
    hex::encode(value.encode())
}

impl ValidatorKey {
    /// Fresh keys from `rng` (use the operating system's generator outside tests).
    pub fn generate(rng: &mut impl rand::CryptoRng) -> Self {
        let identity = ed25519::PrivateKey::random(&mut *rng);
        let (bls, _) = ops::keypair::<_, MinPk>(rng);
        Self { identity, bls }
    }

    /// The ed25519 identity key.
    pub fn identity_key(&self) -> &ed25519::PrivateKey {
        &self.identity
    }

    /// The BLS private key.
    pub fn bls_key(&self) -> &group::Private {
        &self.bls
    }

    /// The public identity.
    pub fn identity(&self) -> Identity {
        self.identity.public_key()
    }

    /// What the genesis records about this validator.
    pub fn info(&self, stake: u64, address: impl Into<String>) -> ValidatorInfo {
        let bls: BlsPublic = ops::compute_public::<MinPk>(&self.bls);
        let pop = ops::sign_proof_of_possession::<MinPk>(&self.bls, CONSENSUS_NAMESPACE);
        ValidatorInfo {
            identity: encode_hex(&self.identity()),
            bls: encode_hex(&bls),
            pop: encode_hex(&pop),
            stake,
            address: address.into(),
        }
    }

    /// Writes the secrets to `path` (JSON, mode 0600; refuses to overwrite).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = KeyFile {
            identity: encode_hex(&self.identity),
            bls: encode_hex(&self.bls),
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| KeyError::Format {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(path).map_err(io)?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// Reads keys written by [`Self::save`].
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| KeyError::Format {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self {
            identity: decode_hex("identity", &file.identity)?,
            bls: decode_hex("bls", &file.bls)?,
        })
    }
}

/// A validator as the genesis lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorInfo {
    /// ed25519 public key, hex.
    pub identity: String,
    /// BLS12-381 public key (G1), hex.
    pub bls: String,
    /// Proof of possession of the BLS key, hex.
    pub pop: String,
    /// Stake, in whole tokens.
    pub stake: u64,
    /// Where its p2p endpoint listens (`IP:PORT`).
    pub address: String,
}

/// A [`ValidatorInfo`] with its keys decoded and its proof of possession checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validator {
    /// Identity.
    pub identity: Identity,
    /// Vote-signing key.
    pub bls: BlsPublic,
    /// Stake.
    pub stake: u64,
    /// p2p endpoint.
    pub address: String,
}

impl ValidatorInfo {
    /// Decodes the keys and checks the proof of possession.
    pub fn verify(&self) -> Result<Validator, KeyError> {
        let identity: Identity = decode_hex("identity", &self.identity)?;
        let bls: BlsPublic = decode_hex("bls", &self.bls)?;
        let pop: BlsSignature = decode_hex("pop", &self.pop)?;
        ops::verify_proof_of_possession::<MinPk>(&bls, CONSENSUS_NAMESPACE, &pop)
            .map_err(|_| KeyError::ProofOfPossession(self.identity.clone()))?;
        Ok(Validator {
            identity,
            bls,
            stake: self.stake,
            address: self.address.clone(),
        })
    }
}

/// Writes keys for `n` validators into `dir` (`validator-<i>.key.json`, mode 0600) and the
/// public list every node will share (`validators.json`: identities, BLS keys with proofs of
/// possession, equal stakes, p2p endpoints `127.0.0.1:<base_port + i>`). Refuses a directory
/// that already holds keys. Returns the path of `validators.json`.
pub fn init_testnet(
    dir: &Path,
    n: usize,
    stake: u64,
    base_port: u16,
    rng: &mut impl rand::CryptoRng,
) -> Result<std::path::PathBuf, KeyError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| KeyError::Io { path, source }
    };
    if n == 0 || base_port as usize + n - 1 > u16::MAX as usize {
        return Err(KeyError::Field {
            field: "validators",
            message: format!("{n} validators from port {base_port} do not fit the port range"),
        });
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    let list = dir.join("validators.json");
    if list.exists() {
        return Err(KeyError::Io {
            path: list.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a testnet was already initialized here",
            ),
        });
    }
    let mut infos = Vec::with_capacity(n);
    for i in 0..n {
        let key = ValidatorKey::generate(rng);
        let port = base_port as usize + i;
        key.save(&dir.join(format!("validator-{i}.key.json")))?;
        infos.push(key.info(stake, format!("127.0.0.1:{port}")));
    }
    let text = serde_json::to_string_pretty(&infos).map_err(|e| KeyError::Format {
        path: list.display().to_string(),
        message: e.to_string(),
    })?;
    fs::write(&list, text).map_err(io(&list))?;
    Ok(list)
}

/// Reads a `validators.json` written by [`init_testnet`] (or by hand).
pub fn load_validators(path: &Path) -> Result<Vec<ValidatorInfo>, KeyError> {
    let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| KeyError::Format {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}
