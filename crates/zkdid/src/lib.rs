//! zkDID: zero-knowledge identity credentials.
//!
//! An issuer signs a credential off chain; the holder proves in zero knowledge that a credential
//! from a trusted issuer, not revoked, states age ≥ N, a country outside a blocked list and a KYC
//! level ≥ k — bound to the sending wallet and with a per-scope nullifier — without revealing the
//! attributes. The registry's verifier system contract checks the proof with [`ClaimVerifier`]
//! and records the returned [`Claim`].
//!
//! # What this crate owns, and what it must not touch
//! It owns the credential format, the issuer signature scheme, revocation trees, the circuit,
//! key generation and key files, proving and verification, and the registry-side verification
//! logic as a pure function of the registry state it is given. It must not touch chain state,
//! the EVM, storage, networking or the system clock: the system contract that calls it reads
//! and writes the registry's storage and passes the sender and date in.
//!
//! # Design
//! * **Field and proof system.** Everything lives in the BN254 scalar field; proofs are Groth16
//!   over BN254 (arkworks 0.6), compressed to [`PROOF_LEN`] = 128 bytes; BN254 is also the curve of the
//!   EVM's pairing precompiles, should proofs ever be checked by Solidity contracts.
//! * **Hash.** Poseidon with circomlib's parameters ([`poseidon`]); native and in-circuit
//!   implementations share the constants from `light-poseidon` and are tested equal.
//! * **Signatures.** EdDSA over Baby Jubjub in iden3's coordinates with Poseidon challenges
//!   and iden3's verification equation `S·B8 = R8 + 8·h·A` ([`eddsa`], [`babyjubjub`]).
//! * **Credential.** `Poseidon(tag, holder, birth, country, kyc, expiry, nonce, commitment)`
//!   ([`Credential`]); the holder keeps a [`HolderSecret`] and gives the issuer only its
//!   commitment, so the issuer cannot compute the holder's nullifiers.
//! * **Dates** are `i32` days since 1970-01-01 (negative before), biased by 2^31 in the circuit
//!   ([`date`]). The age test is `birth ≤ max_birth_date(date, min_age)`, the threshold computed
//!   by the verifier from the statement's date with calendar rules (29 February birthdays count
//!   from 1 March in common years).
//! * **Revocation.** Each issuer keeps a sparse Poseidon Merkle tree of depth 32 keyed by
//!   revocation nonce ([`RevocationTree`]); the proof shows the leaf at the credential's nonce is
//!   empty under the issuer's published root, and the registry accepts only the issuer's current
//!   root, so revoking a credential invalidates proofs made before.
//! * **Binding.** The circuit hashes the *public* wallet in place of the credential's holder,
//!   so a proof only exists for the wallet the credential names, and the registry requires that
//!   wallet to be the transaction sender. The nullifier `Poseidon(secret, scope)` makes one claim
//!   per credential per scope; Groth16 proofs are malleable, which the nullifier makes harmless.
//!   The registry's [`Policy::required_scope`] pins the scope, so a holder cannot claim again
//!   under a scope of their own choosing.
//! * **Statement.** [`PublicStatement`] has a fixed-length canonical encoding for calldata and
//!   derives the 17 public inputs itself; decoders reject malformed bytes and never panic.
//! * **Keys.** [`insecure_dev_setup`] is for development only (its toxic waste is derivable
//!   from the seed); production keys come from files ([`ProvingKey::load`],
//!   [`VerifyingKey::load`]) produced by a proper ceremony. Key files keep the insecure-dev flag
//!   under their checksum, and [`ClaimVerifier::new`] refuses flagged keys
//!   ([`ClaimVerifier::new_allowing_insecure_dev`] is for development networks).
//!
//! # Example
//! ```no_run
//! use pharos_zkdid::*;
//! # fn main() -> Result<(), ZkError> {
//! let mut rng = ark_std::rand::rngs::OsRng;
//! let (pk, vk) = insecure_dev_setup(42)?; // dev only!
//! let issuer = IssuerKey::generate(&mut rng);
//! let mut revocations = RevocationTree::new();
//! let secret = HolderSecret::generate(&mut rng);
//! let wallet = Address20([0x11; 20]);
//! let credential = Credential {
//!     holder: wallet,
//!     birth_date: days_from_civil(1990, 5, 17).unwrap(),
//!     country: 276,
//!     kyc_level: 2,
//!     expiry_date: days_from_civil(2030, 1, 1).unwrap(),
//!     revocation_nonce: 1,
//!     secret_commitment: secret.commitment(),
//! };
//! let signed = SignedCredential::issue(&issuer, credential);
//! let today = days_from_civil(2026, 6, 1).unwrap();
//! let scope = scope_from_label(b"example-app");
//! let statement = PublicStatement {
//!     issuer: issuer.public(),
//!     revocation_root: revocations.root(),
//!     wallet,
//!     date: today,
//!     requirements: Requirements::new(18, 1, &[408, 364])?,
//!     scope,
//!     nullifier: secret.nullifier(&scope),
//! };
//! let path = revocations.non_revocation_path(credential.revocation_nonce)?;
//! let proof = prove(&pk, &signed, &secret, &path, &statement)?;
//!
//! let mut registry = InMemoryRegistry::new();
//! registry.trust_issuer(issuer.public(), revocations.root());
//! let policy = Policy { required_scope: Some(scope), ..Policy::default() };
//! // Dev keys only: production code uses `ClaimVerifier::new` with ceremony keys.
//! let verifier = ClaimVerifier::new_allowing_insecure_dev(vk, policy)?;
//! let claim = registry.submit(&verifier, wallet, today, &statement.to_bytes(), proof.as_bytes())?;
//! assert_eq!(claim.wallet, wallet);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod babyjubjub;
pub mod circuit;
pub mod credential;
pub mod date;
pub mod eddsa;
pub mod error;
pub mod field;
pub mod keys;
pub mod poseidon;
pub mod proof;
pub mod registry;
pub mod revocation;
pub mod statement;

pub use circuit::{CircuitShape, ZkDidCircuit};
pub use credential::{Credential, HolderSecret, SignedCredential};
pub use date::{days_from_civil, max_birth_date};
pub use eddsa::{IssuerKey, IssuerPublicKey, Signature};
pub use error::{Unprovable, ZkError};
pub use field::{Address20, Fr, fr_from_bytes, fr_to_bytes, scope_from_label};
pub use keys::{ProvingKey, VerifyingKey, circuit_shape, insecure_dev_setup, trusted_setup};
pub use proof::{
    PROOF_LEN, ProofBytes, check_witness, decode_proof, prove, prove_with_rng, verify,
};
pub use registry::{Claim, ClaimVerifier, InMemoryRegistry, Policy, RegistryState};
pub use revocation::{NonRevocationPath, REVOCATION_TREE_DEPTH, RevocationTree};
pub use statement::{
    MAX_BLOCKED_COUNTRIES, NUM_PUBLIC_INPUTS, PublicStatement, Requirements, STATEMENT_LEN,
};
