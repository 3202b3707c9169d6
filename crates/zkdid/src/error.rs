//! The crate's one error type.

use std::path::PathBuf;

use crate::field::{Address20, Fr, fr_to_hex};

/// Everything that can go wrong, with messages meant for the user or the transaction receipt.
#[derive(Debug, thiserror::Error)]
pub enum ZkError {
    /// Proof bytes that do not decode as a compressed Groth16 proof (wrong length, a coordinate
    /// that is not a curve point, a point outside the prime-order subgroup, ...).
    #[error("proof is not a valid compressed Groth16 proof: {0}")]
    MalformedProof(String),
    /// A well-formed proof that does not verify for the statement.
    #[error("proof does not verify against the public statement")]
    InvalidProof,
    /// Statement bytes that do not decode.
    #[error("public statement is malformed: {0}")]
    MalformedStatement(String),
    /// A key file or key bytes that do not decode, or belong to another circuit.
    #[error("{kind} is malformed: {reason}")]
    MalformedKey {
        /// "proving key" or "verifying key".
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a key file failed.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The statement names an issuer the registry does not trust.
    #[error("untrusted issuer {0}")]
    UntrustedIssuer(String),
    /// The statement's revocation root is not the issuer's current root.
    #[error(
        "revocation root does not match the issuer's current root (the proof predates a revocation, or was made against a wrong root)"
    )]
    StaleRevocationRoot,
    /// The nullifier was already recorded for this scope.
    #[error("nullifier already used for this scope")]
    NullifierUsed,
    /// The statement's wallet is not the transaction sender.
    #[error("proof is bound to another wallet: statement names {statement}, sender is {sender}")]
    WrongWallet {
        /// Wallet in the statement.
        statement: Address20,
        /// The transaction sender.
        sender: Address20,
    },
    /// The statement's date is not (close enough to) the verifier's current date.
    #[error(
        "statement date {statement} (days since 1970) is not within {max_skew} day(s) before today ({today})"
    )]
    WrongDate {
        /// Date in the statement.
        statement: i32,
        /// The verifier's current date.
        today: i32,
        /// Allowed lag.
        max_skew: u32,
    },
    /// The statement's nullifier scope is not the one the registry's policy requires.
    #[error(
        "statement is for nullifier scope {}, the registry only accepts scope {}",
        fr_to_hex(.statement),
        fr_to_hex(.required)
    )]
    WrongScope {
        /// Scope in the statement.
        statement: Fr,
        /// The scope the policy requires.
        required: Fr,
    },
    /// A verifier was built with a verifying key from [`crate::insecure_dev_setup`] (or a key
    /// file flagged so), whose toxic waste is public, without explicitly allowing it.
    #[error(
        "the verifying key comes from the insecure development setup, so anyone can forge proofs for it; use keys from a trusted setup ceremony, or ClaimVerifier::new_allowing_insecure_dev on development networks only"
    )]
    InsecureDevKey,
    /// A registry policy that cannot be enforced as written.
    #[error("invalid registry policy: {0}")]
    InvalidPolicy(String),
    /// The statement asks for less than the registry's policy demands.
    #[error("statement does not meet the registry policy: {0}")]
    PolicyViolation(String),
    /// The nonce is revoked in the issuer's tree.
    #[error("credential is revoked (revocation nonce {0})")]
    Revoked(u32),
    /// The holder's data cannot satisfy the statement, so no proof is produced.
    #[error("cannot prove the statement: {0}")]
    Unprovable(Unprovable),
    /// Bad caller input (a key, date or encoding that is out of range).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The proving system failed (not a property of the inputs).
    #[error("proof system error: {0}")]
    ProofSystem(String),
}

impl From<ark_relations::gr1cs::SynthesisError> for ZkError {
    fn from(e: ark_relations::gr1cs::SynthesisError) -> Self {
        ZkError::ProofSystem(e.to_string())
    }
}

/// Why a credential cannot satisfy a statement (checked natively before proving, so the holder
/// gets a precise reason instead of a proof that would fail verification).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unprovable {
    /// The issuer's signature does not verify.
    #[error("the issuer signature on the credential does not verify")]
    BadSignature,
    /// The credential was signed by another issuer than the statement names.
    #[error("the credential was issued by another issuer than the statement names")]
    IssuerMismatch,
    /// The credential's holder is not the statement's wallet.
    #[error("the credential belongs to wallet {holder}, not {wallet}")]
    HolderMismatch {
        /// Holder in the credential.
        holder: Address20,
        /// Wallet in the statement.
        wallet: Address20,
    },
    /// Born after the latest allowed birth date.
    #[error("the holder is younger than {min_age_years} years")]
    Underage {
        /// Required age.
        min_age_years: u8,
    },
    /// The credential's country is on the blocked list.
    #[error("the credential's country {0} is blocked")]
    BlockedCountry(u16),
    /// Country code 0 is not a country.
    #[error("the credential's country code is 0, which is not a country")]
    InvalidCountry,
    /// KYC level below the statement's minimum.
    #[error("the credential's KYC level {have} is below the required {need}")]
    KycTooLow {
        /// Level in the credential.
        have: u8,
        /// Level required.
        need: u8,
    },
    /// The credential expired before the statement's date.
    #[error("the credential expired on day {expiry}, before the statement date {today}")]
    Expired {
        /// Expiry date.
        expiry: i32,
        /// Statement date.
        today: i32,
    },
    /// The non-revocation path is for another nonce.
    #[error("the non-revocation path is for nonce {path}, the credential's nonce is {credential}")]
    NonceMismatch {
        /// Nonce in the path.
        path: u32,
        /// Nonce in the credential.
        credential: u32,
    },
    /// The path does not lead to the statement's revocation root.
    #[error(
        "the non-revocation path does not lead to the statement's revocation root (revoked, or a stale path)"
    )]
    RevocationRootMismatch,
    /// The holder secret does not match the credential's commitment.
    #[error("the holder secret does not match the credential's secret commitment")]
    SecretMismatch,
    /// The statement's nullifier is not `Poseidon(secret, scope)`.
    #[error("the statement's nullifier is not derived from the holder secret and scope")]
    NullifierMismatch,
    /// A date computation left the representable range.
    #[error("the statement date is out of range")]
    DateOutOfRange,
}
