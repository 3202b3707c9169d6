//! The zkDID R1CS circuit.
//!
//! Public inputs are [`PublicStatement::public_inputs`]. Private inputs are the credential's
//! attributes, the holder secret, the issuer's signature and the non-revocation path. The circuit
//! enforces:
//!
//! 1. `A = (x, y)` (the issuer key input) is on the curve;
//! 2. `commitment = Poseidon(secret)` and `M = Poseidon(tag, wallet, birth, country, kyc,
//!    expiry, nonce, commitment)` — the *public* wallet is hashed in the holder's place, so the
//!    signature only verifies if the credential's holder is the wallet;
//! 3. the EdDSA-Poseidon signature `(R8, S)` on `M` verifies under `A` ([`crate::eddsa`]);
//! 4. `birth ≤ max_birth_date` and `date ≤ expiry` (32-bit range-checked comparisons),
//!    `kyc ≥ min_kyc` (8-bit), `country ∉ blocked` and `country ≠ 0`;
//! 5. the leaf at position `nonce` is empty under the revocation root;
//! 6. `nullifier = Poseidon(secret, scope)`.
//!
//! Comparisons decompose the difference into bits: `a ≤ b` for `a, b < 2^n` holds exactly when
//! `b − a` has an `n`-bit decomposition, so no field wrap-around can fake them. Every integer
//! that enters a comparison is range checked to its width in the circuit itself — the private
//! attributes *and* the public `date`, `max_birth_date` (32 bits) and `min_kyc` (8 bits). The
//! typed [`PublicStatement`] can only produce in-range values, but a verifier that takes raw
//! field elements as public inputs (for example an EVM verifier contract) must not be able to
//! accept `date = p − 1` (every credential unexpired), a huge `max_birth_date` (every holder
//! old enough) or `min_kyc = p − k` (every KYC level high enough).

use ark_ed_on_bn254::Fr as Scalar;
use ark_ff::{AdditiveGroup, BigInteger, Field, PrimeField, Zero};
use ark_r1cs_std::{
    GR1CSVar,
    alloc::AllocVar,
    boolean::Boolean,
    eq::EqGadget,
    fields::{FieldVar, fp::FpVar},
};
use ark_relations::gr1cs::{
    ConstraintSynthesizer, ConstraintSystem, ConstraintSystemRef, OptimizationGoal, SynthesisError,
    SynthesisMode,
};

use crate::babyjubjub::{Point, PointVar};
use crate::credential::{Credential, HolderSecret, SignedCredential, credential_schema_tag};
use crate::date::date_to_circuit;
use crate::eddsa::{S_BITS, s_to_bits, verify_var};
use crate::error::ZkError;
use crate::field::{Address20, Fr};
use crate::poseidon;
use crate::revocation::{NonRevocationPath, REVOCATION_TREE_DEPTH, root_var};
use crate::statement::{MAX_BLOCKED_COUNTRIES, NUM_PUBLIC_INPUTS, PublicStatement};

/// The private inputs.
#[derive(Clone, Debug)]
struct Witness {
    credential: Credential,
    secret: Fr,
    r8: Point,
    s: Scalar,
    siblings: [Fr; REVOCATION_TREE_DEPTH],
}

/// One instance of the zkDID circuit: public inputs plus the holder's private data.
///
/// Building one performs no checks, so tests can construct instances with violated conditions;
/// [`crate::prove`] checks the data natively first and reports precise reasons.
#[derive(Clone, Debug)]
pub struct ZkDidCircuit {
    inputs: [Fr; NUM_PUBLIC_INPUTS],
    witness: Witness,
}

/// Size of the circuit's constraint system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitShape {
    /// R1CS constraints.
    pub constraints: usize,
    /// Instance variables, including the constant one.
    pub instance_variables: usize,
    /// Witness variables.
    pub witness_variables: usize,
}

impl ZkDidCircuit {
    /// An instance for proving `statement` with the given private data.
    pub fn new(
        statement: &PublicStatement,
        signed: &SignedCredential,
        secret: &HolderSecret,
        path: &NonRevocationPath,
    ) -> Result<Self, ZkError> {
        Ok(Self {
            inputs: statement.public_inputs()?,
            witness: Witness {
                credential: signed.credential,
                secret: secret.value(),
                r8: signed.signature.r8,
                s: signed.signature.s,
                siblings: path.siblings,
            },
        })
    }

    /// An instance with placeholder values, for key generation (values are not used then).
    pub fn blank() -> Self {
        Self {
            inputs: [Fr::from(0u64); NUM_PUBLIC_INPUTS],
            witness: Witness {
                credential: Credential {
                    holder: Address20::default(),
                    birth_date: 0,
                    country: 0,
                    kyc_level: 0,
                    expiry_date: 0,
                    revocation_nonce: 0,
                    secret_commitment: Fr::from(0u64),
                },
                secret: Fr::from(0u64),
                r8: Point::IDENTITY,
                s: Scalar::from(0u64),
                siblings: [Fr::from(0u64); REVOCATION_TREE_DEPTH],
            },
        }
    }

    /// Replaces the public inputs with raw field elements, bypassing [`PublicStatement`]'s typed
    /// derivation (which can only produce in-range values). Performs no checks: this is for
    /// testing what the circuit *alone* enforces, as seen by a verifier that takes public inputs
    /// as arbitrary field elements (for example an EVM verifier contract).
    pub fn with_raw_public_inputs(mut self, inputs: [Fr; NUM_PUBLIC_INPUTS]) -> Self {
        self.inputs = inputs;
        self
    }

    /// The public inputs, in [`PublicStatement::public_inputs`] order.
    pub fn public_inputs(&self) -> &[Fr; NUM_PUBLIC_INPUTS] {
        &self.inputs
    }

    /// Synthesizes the instance and reports whether every constraint holds (fast: no proving).
    pub fn is_satisfied(self) -> Result<bool, ZkError> {
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        self.generate_constraints(cs.clone())?;
        cs.finalize();
        Ok(cs.is_satisfied()?)
    }

    /// The name of the first unsatisfied constraint, if any (for debugging).
    pub fn which_is_unsatisfied(self) -> Result<Option<String>, ZkError> {
        let cs = ConstraintSystem::<Fr>::new_ref();
        self.generate_constraints(cs.clone())?;
        Ok(cs.which_is_unsatisfied()?)
    }

    /// The constraint system's size, as key generation sees it.
    pub fn shape() -> Result<CircuitShape, ZkError> {
        let cs = ConstraintSystem::<Fr>::new_ref();
        cs.set_optimization_goal(OptimizationGoal::Constraints);
        cs.set_mode(SynthesisMode::Setup);
        Self::blank().generate_constraints(cs.clone())?;
        cs.finalize();
        Ok(CircuitShape {
            constraints: cs.num_constraints(),
            instance_variables: cs.num_instance_variables(),
            witness_variables: cs.num_witness_variables(),
        })
    }
}

impl ConstraintSynthesizer<Fr> for ZkDidCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let w = self.witness;
        let c = w.credential;

        // Public inputs, in `PublicStatement::public_inputs` order.
        let inputs = self
            .inputs
            .iter()
            .map(|v| FpVar::new_input(cs.clone(), || Ok(*v)))
            .collect::<Result<Vec<_>, _>>()?;
        let issuer = PointVar {
            x: inputs[0].clone(),
            y: inputs[1].clone(),
        };
        let revocation_root = &inputs[2];
        let wallet = &inputs[3];
        let date = &inputs[4];
        let max_birth_date = &inputs[5];
        let min_kyc = &inputs[6];
        let blocked = &inputs[7..7 + MAX_BLOCKED_COUNTRIES];
        let scope = &inputs[7 + MAX_BLOCKED_COUNTRIES];
        let nullifier = &inputs[8 + MAX_BLOCKED_COUNTRIES];

        // 1. The issuer key is a curve point.
        issuer.enforce_on_curve()?;

        // Public integers, range checked in the circuit so the comparisons below are sound for
        // any field elements a verifier may be given (not only those `PublicStatement` makes).
        enforce_bits(date, 32)?;
        enforce_bits(max_birth_date, 32)?;
        enforce_bits(min_kyc, 8)?;

        // Private attributes, each range checked to its width.
        let witness = |v: Fr| FpVar::new_witness(cs.clone(), || Ok(v));
        let birth = witness(date_to_circuit(c.birth_date))?;
        enforce_bits(&birth, 32)?;
        let country = witness(Fr::from(c.country))?;
        enforce_bits(&country, 16)?;
        let kyc = witness(Fr::from(c.kyc_level))?;
        enforce_bits(&kyc, 8)?;
        let expiry = witness(date_to_circuit(c.expiry_date))?;
        enforce_bits(&expiry, 32)?;
        let nonce_bits = (0..REVOCATION_TREE_DEPTH)
            .map(|i| Boolean::new_witness(cs.clone(), || Ok((c.revocation_nonce >> i) & 1 == 1)))
            .collect::<Result<Vec<_>, _>>()?;
        let nonce = bits_to_fp(&nonce_bits);
        let secret = witness(w.secret)?;

        // 2. Commitment and credential hash, with the public wallet as holder.
        let commitment = poseidon::hash_var(std::slice::from_ref(&secret))?;
        let message = poseidon::hash_var(&[
            FpVar::Constant(credential_schema_tag()),
            wallet.clone(),
            birth.clone(),
            country.clone(),
            kyc.clone(),
            expiry.clone(),
            nonce,
            commitment,
        ])?;

        // 3. Issuer signature.
        let r8 = PointVar::new_witness_on_curve(cs.clone(), || Ok(w.r8))?;
        let s_bits = s_to_bits(&w.s)
            .into_iter()
            .map(|b| Boolean::new_witness(cs.clone(), || Ok(b)))
            .collect::<Result<Vec<_>, _>>()?;
        debug_assert_eq!(s_bits.len(), S_BITS);
        verify_var(&issuer, &message, &r8, &s_bits)?;

        // 4. Attribute predicates.
        enforce_le(&birth, max_birth_date, 32)?;
        enforce_le(date, &expiry, 32)?;
        enforce_le(min_kyc, &kyc, 8)?;
        enforce_nonzero(&country)?;
        for b in blocked {
            enforce_nonzero(&(&country - b))?;
        }

        // 5. Not revoked.
        let siblings = w
            .siblings
            .iter()
            .map(|s| witness(*s))
            .collect::<Result<Vec<_>, _>>()?;
        root_var(&nonce_bits, &siblings)?.enforce_equal(revocation_root)?;

        // 6. Nullifier.
        poseidon::hash_var(&[secret, scope.clone()])?.enforce_equal(nullifier)?;
        Ok(())
    }
}

/// `Σ bits[i]·2^i`.
fn bits_to_fp(bits: &[Boolean<Fr>]) -> FpVar<Fr> {
    let mut coeff = Fr::from(1u64);
    let mut sum = FpVar::Constant(Fr::from(0u64));
    for bit in bits {
        sum += FpVar::from(bit.clone()) * coeff;
        coeff.double_in_place();
    }
    sum
}

/// Enforces `0 ≤ value < 2^n` by an `n`-bit decomposition (`n + 1` constraints). With an
/// out-of-range value the witness bits are the low `n` bits and the sum constraint fails.
fn enforce_bits(value: &FpVar<Fr>, n: usize) -> Result<(), SynthesisError> {
    debug_assert!(n < 64);
    if let FpVar::Constant(v) = value {
        let big = v.into_bigint();
        return if big.num_bits() as usize <= n {
            Ok(())
        } else {
            Err(SynthesisError::Unsatisfiable)
        };
    }
    let cs = value.cs();
    let low = value.value().ok().map(|v| v.into_bigint().as_ref()[0]);
    let bits = (0..n)
        .map(|i| {
            Boolean::new_witness(cs.clone(), || {
                low.map(|l| (l >> i) & 1 == 1)
                    .ok_or(SynthesisError::AssignmentMissing)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    bits_to_fp(&bits).enforce_equal(value)
}

/// Enforces `a ≤ b` for values already known to be below `2^n`.
fn enforce_le(a: &FpVar<Fr>, b: &FpVar<Fr>, n: usize) -> Result<(), SynthesisError> {
    enforce_bits(&(b - a), n)
}

/// Enforces `value ≠ 0` by exhibiting its inverse (one constraint). For a zero value the
/// witness is zero and the constraint fails.
fn enforce_nonzero(value: &FpVar<Fr>) -> Result<(), SynthesisError> {
    if let FpVar::Constant(v) = value {
        return if v.is_zero() {
            Err(SynthesisError::Unsatisfiable)
        } else {
            Ok(())
        };
    }
    let inverse = FpVar::new_witness(value.cs(), || {
        Ok(value.value()?.inverse().unwrap_or_default())
    })?;
    value.mul_equals(&inverse, &FpVar::Constant(Fr::from(1u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_le(a: u64, b: u64, n: usize) -> bool {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let av = FpVar::new_witness(cs.clone(), || Ok(Fr::from(a))).unwrap();
        let bv = FpVar::new_witness(cs.clone(), || Ok(Fr::from(b))).unwrap();
        enforce_le(&av, &bv, n).unwrap();
        cs.is_satisfied().unwrap()
    }

    #[test]
    fn comparisons_do_not_wrap() {
        assert!(check_le(3, 5, 8));
        assert!(check_le(5, 5, 8));
        assert!(!check_le(6, 5, 8));
        assert!(check_le(0, 255, 8));
        assert!(!check_le(255, 0, 8));
        assert!(check_le(0, u32::MAX as u64, 32));
        assert!(!check_le(u32::MAX as u64, 0, 32));
        assert!(!check_le(1 << 40, 0, 32));
    }

    #[test]
    fn range_check_rejects_negative() {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let v = FpVar::new_witness(cs.clone(), || Ok(-Fr::from(1u64))).unwrap();
        enforce_bits(&v, 32).unwrap();
        assert!(!cs.is_satisfied().unwrap());
    }

    #[test]
    fn nonzero() {
        for (v, ok) in [(0u64, false), (5, true)] {
            let cs = ConstraintSystem::<Fr>::new_ref();
            let x = FpVar::new_witness(cs.clone(), || Ok(Fr::from(v))).unwrap();
            enforce_nonzero(&x).unwrap();
            assert_eq!(cs.is_satisfied().unwrap(), ok);
        }
    }
}
