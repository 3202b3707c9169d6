//! Groth16 proving and verifying keys: the insecure development setup, and key files.
//!
//! A key file is a 45-byte header followed by the arkworks compressed serialization (the body):
//! `b"PHZKDID\0" ‖ kind (b'P' or b'V') ‖ format version (2) ‖ flags ‖ public inputs (u16 BE) ‖
//! SHA-256(the 13 header bytes before it ‖ body)`. Flag bit 0 marks keys made by
//! [`insecure_dev_setup`]. The digest catches corrupted or truncated files (a flipped bit in a
//! compressed point often still decodes to a valid, different point) and, since it covers the
//! header too, an edited header — in particular a cleared insecure-dev flag. (Version 1 files
//! hashed only the body; they are refused.) It is not a signature, so key files must come from
//! a trusted source. Loading also validates every curve point (on curve, in the prime-order
//! subgroup), the public-input count and, for proving keys, that the key's dimensions match
//! this circuit.

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use ark_bn254::Bn254;
use ark_groth16::{Groth16, PreparedVerifyingKey, prepare_verifying_key};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Compress, Validate};
use ark_snark::SNARK;
use ark_std::rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

use crate::circuit::{CircuitShape, ZkDidCircuit};
use crate::error::ZkError;
use crate::statement::NUM_PUBLIC_INPUTS;

const MAGIC: &[u8; 8] = b"PHZKDID\0";
const KIND_PROVING: u8 = b'P';
const KIND_VERIFYING: u8 = b'V';
const FORMAT_VERSION: u8 = 2;
const FLAG_INSECURE_DEV: u8 = 1;
/// The header bytes before the checksum (all covered by it).
const CHECKED_HEADER_LEN: usize = 13;
const HEADER_LEN: usize = CHECKED_HEADER_LEN + 32;

/// SHA-256 over the header fields before the checksum, then the body.
fn checksum(checked_header: &[u8], body: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(checked_header)
        .chain_update(body)
        .finalize()
        .into()
}

/// A Groth16 proving key for the zkDID circuit.
#[derive(Clone)]
pub struct ProvingKey {
    pub(crate) inner: ark_groth16::ProvingKey<Bn254>,
    insecure_dev: bool,
}

/// A Groth16 verifying key for the zkDID circuit, prepared for fast verification.
#[derive(Clone)]
pub struct VerifyingKey {
    inner: ark_groth16::VerifyingKey<Bn254>,
    pub(crate) prepared: PreparedVerifyingKey<Bn254>,
    insecure_dev: bool,
}

impl std::fmt::Debug for ProvingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvingKey")
            .field("insecure_dev", &self.insecure_dev)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("insecure_dev", &self.insecure_dev)
            .finish_non_exhaustive()
    }
}

/// **INSECURE — development and tests only.** Generates keys from a deterministic RNG seeded
/// with `seed`, so the Groth16 "toxic waste" (α, β, γ, δ, τ) is known to anyone who knows the
/// seed, and with it anyone can forge proofs of anything. Production keys must come from a
/// multi-party ceremony and be loaded with [`ProvingKey::load`] / [`VerifyingKey::load`].
/// Keys made here are flagged [`VerifyingKey::is_insecure_dev`] and keep that flag in files.
pub fn insecure_dev_setup(seed: u64) -> Result<(ProvingKey, VerifyingKey), ZkError> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (pk, vk) = Groth16::<Bn254>::circuit_specific_setup(ZkDidCircuit::blank(), &mut rng)?;
    Ok((
        ProvingKey {
            inner: pk,
            insecure_dev: true,
        },
        VerifyingKey::new(vk, true),
    ))
}

/// A single-party trusted setup with randomness from `rng` (use the operating system's): the
/// toxic waste lives only in this function's memory and is dropped on return, so the keys are
/// sound as long as the machine and process that ran it were not compromised. The keys are not
/// flagged insecure. A public network should prefer a multi-party ceremony (sound if any one
/// participant was honest) and load its result with [`ProvingKey::load`] /
/// [`VerifyingKey::load`].
pub fn trusted_setup<R: RngCore + CryptoRng>(
    rng: &mut R,
) -> Result<(ProvingKey, VerifyingKey), ZkError> {
    let (pk, vk) = Groth16::<Bn254>::circuit_specific_setup(ZkDidCircuit::blank(), rng)?;
    Ok((
        ProvingKey {
            inner: pk,
            insecure_dev: false,
        },
        VerifyingKey::new(vk, false),
    ))
}

/// The circuit's shape, computed once.
pub fn circuit_shape() -> Result<CircuitShape, ZkError> {
    static SHAPE: OnceLock<CircuitShape> = OnceLock::new();
    if let Some(shape) = SHAPE.get() {
        return Ok(*shape);
    }
    let shape = ZkDidCircuit::shape()?;
    Ok(*SHAPE.get_or_init(|| shape))
}

fn header(kind: u8, insecure_dev: bool, body: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8] = kind;
    h[9] = FORMAT_VERSION;
    h[10] = if insecure_dev { FLAG_INSECURE_DEV } else { 0 };
    h[11..CHECKED_HEADER_LEN].copy_from_slice(&(NUM_PUBLIC_INPUTS as u16).to_be_bytes());
    let digest = checksum(&h[..CHECKED_HEADER_LEN], body);
    h[CHECKED_HEADER_LEN..].copy_from_slice(&digest);
    h
}

/// Checks the header; returns the insecure-dev flag and the body.
fn parse_header<'a>(
    bytes: &'a [u8],
    kind: u8,
    what: &'static str,
) -> Result<(bool, &'a [u8]), ZkError> {
    let bad = |reason: String| ZkError::MalformedKey { kind: what, reason };
    if bytes.len() < HEADER_LEN {
        return Err(bad(format!(
            "{} bytes is shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(bad("not a zkDID key file (bad magic bytes)".into()));
    }
    if bytes[8] != kind {
        let found = match bytes[8] {
            KIND_PROVING => "a proving key",
            KIND_VERIFYING => "a verifying key",
            _ => "an unknown key kind",
        };
        return Err(bad(format!("the file holds {found}")));
    }
    if bytes[9] != FORMAT_VERSION {
        return Err(bad(format!(
            "unsupported format version {} (expected {FORMAT_VERSION})",
            bytes[9]
        )));
    }
    if bytes[10] & !FLAG_INSECURE_DEV != 0 {
        return Err(bad(format!("unknown flags {:#04x}", bytes[10])));
    }
    let inputs = u16::from_be_bytes([bytes[11], bytes[12]]) as usize;
    if inputs != NUM_PUBLIC_INPUTS {
        return Err(bad(format!(
            "made for a circuit with {inputs} public inputs, this one has {NUM_PUBLIC_INPUTS}"
        )));
    }
    let body = &bytes[HEADER_LEN..];
    if checksum(&bytes[..CHECKED_HEADER_LEN], body)[..] != bytes[CHECKED_HEADER_LEN..HEADER_LEN] {
        return Err(bad(
            "checksum mismatch: the file is corrupted or truncated".into()
        ));
    }
    Ok((bytes[10] & FLAG_INSECURE_DEV != 0, body))
}

fn deserialize<T: CanonicalDeserialize>(body: &[u8], what: &'static str) -> Result<T, ZkError> {
    let mut reader = body;
    let value =
        T::deserialize_with_mode(&mut reader, Compress::Yes, Validate::Yes).map_err(|e| {
            ZkError::MalformedKey {
                kind: what,
                reason: format!("cannot decode the compressed key: {e}"),
            }
        })?;
    if !reader.is_empty() {
        return Err(ZkError::MalformedKey {
            kind: what,
            reason: format!("{} unexpected trailing bytes", reader.len()),
        });
    }
    Ok(value)
}

fn serialize(
    value: &impl CanonicalSerialize,
    kind: u8,
    insecure_dev: bool,
) -> Result<Vec<u8>, ZkError> {
    let mut out = vec![0u8; HEADER_LEN];
    out.reserve(value.compressed_size());
    value
        .serialize_compressed(&mut out)
        .map_err(|e| ZkError::ProofSystem(format!("serializing a key: {e}")))?;
    let head = header(kind, insecure_dev, &out[HEADER_LEN..]);
    out[..HEADER_LEN].copy_from_slice(&head);
    Ok(out)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ZkError> {
    let io = |source| ZkError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    fs::write(&tmp, bytes).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

fn read_file(path: &Path) -> Result<Vec<u8>, ZkError> {
    fs::read(path).map_err(|source| ZkError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn check_vk(vk: &ark_groth16::VerifyingKey<Bn254>, what: &'static str) -> Result<(), ZkError> {
    if vk.gamma_abc_g1.len() != NUM_PUBLIC_INPUTS + 1 {
        return Err(ZkError::MalformedKey {
            kind: what,
            reason: format!(
                "it has {} public inputs, the circuit has {NUM_PUBLIC_INPUTS}",
                vk.gamma_abc_g1.len().saturating_sub(1)
            ),
        });
    }
    Ok(())
}

impl ProvingKey {
    /// The matching verifying key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::new(self.inner.vk.clone(), self.insecure_dev)
    }

    /// Whether this key came from [`insecure_dev_setup`] (or a file saying so).
    pub fn is_insecure_dev(&self) -> bool {
        self.insecure_dev
    }

    /// The key-file encoding.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ZkError> {
        serialize(&self.inner, KIND_PROVING, self.insecure_dev)
    }

    /// Decodes and validates a key file's contents.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ZkError> {
        const WHAT: &str = "proving key";
        let (insecure_dev, body) = parse_header(bytes, KIND_PROVING, WHAT)?;
        let inner: ark_groth16::ProvingKey<Bn254> = deserialize(body, WHAT)?;
        check_vk(&inner.vk, WHAT)?;
        let shape = circuit_shape()?;
        let variables = shape.instance_variables + shape.witness_variables;
        if inner.a_query.len() != variables
            || inner.b_g1_query.len() != variables
            || inner.b_g2_query.len() != variables
            || inner.l_query.len() != shape.witness_variables
        {
            return Err(ZkError::MalformedKey {
                kind: WHAT,
                reason: format!(
                    "it was generated for another circuit ({} variables, this circuit has {variables})",
                    inner.a_query.len()
                ),
            });
        }
        Ok(Self {
            inner,
            insecure_dev,
        })
    }

    /// Writes the key file (via a temporary file and a rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ZkError> {
        write_file(path.as_ref(), &self.to_bytes()?)
    }

    /// Reads and validates a key file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ZkError> {
        Self::from_bytes(&read_file(path.as_ref())?)
    }
}

impl VerifyingKey {
    fn new(inner: ark_groth16::VerifyingKey<Bn254>, insecure_dev: bool) -> Self {
        let prepared = prepare_verifying_key(&inner);
        Self {
            inner,
            prepared,
            insecure_dev,
        }
    }

    /// The underlying arkworks key (for example to export an EVM verifier).
    pub fn ark(&self) -> &ark_groth16::VerifyingKey<Bn254> {
        &self.inner
    }

    /// Whether this key came from [`insecure_dev_setup`] (or a file saying so). A node should
    /// refuse such keys outside development networks; [`crate::ClaimVerifier::new`] does.
    pub fn is_insecure_dev(&self) -> bool {
        self.insecure_dev
    }

    /// The key-file encoding.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ZkError> {
        serialize(&self.inner, KIND_VERIFYING, self.insecure_dev)
    }

    /// Decodes and validates a key file's contents.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ZkError> {
        const WHAT: &str = "verifying key";
        let (insecure_dev, body) = parse_header(bytes, KIND_VERIFYING, WHAT)?;
        let inner: ark_groth16::VerifyingKey<Bn254> = deserialize(body, WHAT)?;
        check_vk(&inner, WHAT)?;
        Ok(Self::new(inner, insecure_dev))
    }

    /// Writes the key file (via a temporary file and a rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ZkError> {
        write_file(path.as_ref(), &self.to_bytes()?)
    }

    /// Reads and validates a key file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ZkError> {
        Self::from_bytes(&read_file(path.as_ref())?)
    }
}
