//! Proving and verifying.

use ark_bn254::Bn254;
use ark_groth16::{Groth16, Proof};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize, Compress, Validate};
use ark_snark::SNARK;
use ark_std::rand::{CryptoRng, RngCore};

use crate::circuit::ZkDidCircuit;
use crate::credential::{HolderSecret, SignedCredential};
use crate::error::{Unprovable, ZkError};
use crate::keys::{ProvingKey, VerifyingKey};
use crate::revocation::NonRevocationPath;
use crate::statement::PublicStatement;

/// Length of a compressed proof: A (G1, 32 bytes), B (G2, 64 bytes), C (G1, 32 bytes).
pub const PROOF_LEN: usize = 128;

/// A compressed Groth16 proof.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ProofBytes(pub [u8; PROOF_LEN]);

impl ProofBytes {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for ProofBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for ProofBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProofBytes(0x{})", hex::encode(self.0))
    }
}

/// Checks natively that the holder's data satisfies `statement`, reporting the first failed
/// condition. [`prove`] runs this first, so a proof is only produced when it will verify.
pub fn check_witness(
    statement: &PublicStatement,
    signed: &SignedCredential,
    secret: &HolderSecret,
    path: &NonRevocationPath,
) -> Result<(), ZkError> {
    let c = &signed.credential;
    let req = &statement.requirements;
    let fail = |reason| Err(ZkError::Unprovable(reason));
    if signed.issuer != statement.issuer {
        return fail(Unprovable::IssuerMismatch);
    }
    if !signed.verify() {
        return fail(Unprovable::BadSignature);
    }
    if c.holder != statement.wallet {
        return fail(Unprovable::HolderMismatch {
            holder: c.holder,
            wallet: statement.wallet,
        });
    }
    if secret.commitment() != c.secret_commitment {
        return fail(Unprovable::SecretMismatch);
    }
    if secret.nullifier(&statement.scope) != statement.nullifier {
        return fail(Unprovable::NullifierMismatch);
    }
    if c.country == 0 {
        return fail(Unprovable::InvalidCountry);
    }
    if req.blocks(c.country) {
        return fail(Unprovable::BlockedCountry(c.country));
    }
    if c.kyc_level < req.min_kyc_level {
        return fail(Unprovable::KycTooLow {
            have: c.kyc_level,
            need: req.min_kyc_level,
        });
    }
    let max_birth = statement
        .max_birth_date()
        .map_err(|_| ZkError::Unprovable(Unprovable::DateOutOfRange))?;
    if c.birth_date > max_birth {
        return fail(Unprovable::Underage {
            min_age_years: req.min_age_years,
        });
    }
    if c.expiry_date < statement.date {
        return fail(Unprovable::Expired {
            expiry: c.expiry_date,
            today: statement.date,
        });
    }
    if path.nonce != c.revocation_nonce {
        return fail(Unprovable::NonceMismatch {
            path: path.nonce,
            credential: c.revocation_nonce,
        });
    }
    if !path.verify(&statement.revocation_root) {
        return fail(Unprovable::RevocationRootMismatch);
    }
    Ok(())
}

/// Proves `statement` with randomness from the operating system. See [`prove_with_rng`].
pub fn prove(
    pk: &ProvingKey,
    signed: &SignedCredential,
    secret: &HolderSecret,
    path: &NonRevocationPath,
    statement: &PublicStatement,
) -> Result<ProofBytes, ZkError> {
    prove_with_rng(
        pk,
        signed,
        secret,
        path,
        statement,
        &mut ark_std::rand::rngs::OsRng,
    )
}

/// Checks the data with [`check_witness`], then produces a compressed Groth16 proof
/// ([`PROOF_LEN`] bytes). `rng` blinds the proof; it must be cryptographically secure.
pub fn prove_with_rng<R: RngCore + CryptoRng>(
    pk: &ProvingKey,
    signed: &SignedCredential,
    secret: &HolderSecret,
    path: &NonRevocationPath,
    statement: &PublicStatement,
    rng: &mut R,
) -> Result<ProofBytes, ZkError> {
    check_witness(statement, signed, secret, path)?;
    let circuit = ZkDidCircuit::new(statement, signed, secret, path)?;
    let proof = Groth16::<Bn254>::prove(&pk.inner, circuit, rng)?;
    let mut out = [0u8; PROOF_LEN];
    proof
        .serialize_compressed(&mut out[..])
        .map_err(|e| ZkError::ProofSystem(format!("serializing the proof: {e}")))?;
    Ok(ProofBytes(out))
}

/// Decodes compressed proof bytes, checking length, point encodings and subgroup membership.
pub fn decode_proof(bytes: &[u8]) -> Result<Proof<Bn254>, ZkError> {
    if bytes.len() != PROOF_LEN {
        return Err(ZkError::MalformedProof(format!(
            "expected {PROOF_LEN} bytes, got {}",
            bytes.len()
        )));
    }
    Proof::<Bn254>::deserialize_with_mode(bytes, Compress::Yes, Validate::Yes)
        .map_err(|e| ZkError::MalformedProof(e.to_string()))
}

/// Verifies proof bytes against a statement: [`ZkError::MalformedProof`] for bytes that are not a
/// proof, [`ZkError::InvalidProof`] for a proof of something else. Only the Groth16 check; the
/// registry's checks (trusted issuer, current root, nullifier, sender) are in
/// [`crate::ClaimVerifier`].
pub fn verify(
    vk: &VerifyingKey,
    statement: &PublicStatement,
    proof_bytes: &[u8],
) -> Result<(), ZkError> {
    let proof = decode_proof(proof_bytes)?;
    verify_decoded(vk, statement, &proof)
}

pub(crate) fn verify_decoded(
    vk: &VerifyingKey,
    statement: &PublicStatement,
    proof: &Proof<Bn254>,
) -> Result<(), ZkError> {
    let inputs = statement.public_inputs()?;
    if Groth16::<Bn254>::verify_with_processed_vk(&vk.prepared, &inputs, proof)? {
        Ok(())
    } else {
        Err(ZkError::InvalidProof)
    }
}
