//! EdDSA over Baby Jubjub with Poseidon challenges, iden3's verification equation.
//!
//! * Secret key `sk` is a non-zero scalar mod `l`; public key `A = sk·B8`.
//! * Sign `M` (a field element): deterministic nonce `r = SHA-512(tag ‖ sk ‖ M) mod l`,
//!   `R8 = r·B8`, challenge `h = Poseidon(R8.x, R8.y, A.x, A.y, M)`,
//!   `S = r + 8·h·sk mod l`.
//! * Verify: `S < l` and `S·B8 = R8 + (8·h)·A`.
//!
//! This is exactly circomlib's `EdDSAPoseidonVerifier` equation (iden3 keeps `s = 8·sk` and
//! computes `S = r + h·s`, which is the same value). Only key derivation and nonce generation
//! differ from iden3's (which hash a seed with BLAKE-512). By construction a signature made here
//! satisfies iden3's verification equation for the same public key, but this crate has no
//! iden3-produced test vectors to prove byte-for-byte interoperability.

use std::fmt;

use ark_ed_on_bn254::Fr as Scalar;
use ark_ff::{BigInteger, PrimeField, UniformRand, Zero};
use ark_r1cs_std::{boolean::Boolean, fields::fp::FpVar, prelude::ToBitsGadget};
use ark_relations::gr1cs::SynthesisError;
use ark_std::rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use crate::babyjubjub::{Point, PointVar, fr_to_scalar};
use crate::error::ZkError;
use crate::field::{FR_LEN, Fr, fr_from_bytes, fr_to_bytes};
use crate::poseidon;

/// An issuer's signing key. Debug output never shows the secret.
#[derive(Clone)]
pub struct IssuerKey {
    secret: Scalar,
    public: IssuerPublicKey,
}

impl IssuerKey {
    /// A fresh random key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        loop {
            let secret = Scalar::rand(rng);
            if !secret.is_zero() {
                return Self::from_scalar(secret);
            }
        }
    }

    /// Derives a key from 32 bytes of seed material (SHA-512, reduced mod `l`).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let digest = Sha512::new()
            .chain_update(b"pharos-zkdid/eddsa-key/v1")
            .chain_update(seed)
            .finalize();
        let secret = Scalar::from_le_bytes_mod_order(&digest);
        // A zero reduction has probability 2^-251; map it to one rather than fail.
        Self::from_scalar(if secret.is_zero() {
            Scalar::from(1u64)
        } else {
            secret
        })
    }

    /// Restores a key from [`IssuerKey::secret_bytes`]: 32 little-endian bytes of a canonical,
    /// non-zero scalar.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, ZkError> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| {
            ZkError::InvalidInput(format!(
                "an issuer secret key is 32 bytes, got {}",
                bytes.len()
            ))
        })?;
        let secret = Scalar::from_le_bytes_mod_order(&array);
        if secret.into_bigint().to_bytes_le() != array {
            return Err(ZkError::InvalidInput(
                "issuer secret key is not a canonical Baby Jubjub scalar".into(),
            ));
        }
        if secret.is_zero() {
            return Err(ZkError::InvalidInput("issuer secret key is zero".into()));
        }
        Ok(Self::from_scalar(secret))
    }

    /// The secret scalar as 32 little-endian bytes. Keep it secret.
    pub fn secret_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.secret.into_bigint().to_bytes_le());
        out
    }

    fn from_scalar(secret: Scalar) -> Self {
        let point = Point::base8_mul(&secret);
        Self {
            secret,
            public: IssuerPublicKey { point },
        }
    }

    /// The public key.
    pub fn public(&self) -> IssuerPublicKey {
        self.public
    }

    /// Signs a field element (a credential hash).
    pub fn sign(&self, message: &Fr) -> Signature {
        let digest = Sha512::new()
            .chain_update(b"pharos-zkdid/eddsa-nonce/v1")
            .chain_update(self.secret.into_bigint().to_bytes_le())
            .chain_update(fr_to_bytes(message))
            .finalize();
        let r = Scalar::from_le_bytes_mod_order(&digest);
        let r8 = Point::base8_mul(&r);
        let h = challenge(&r8, &self.public.point, message);
        let s = r + Scalar::from(8u64) * fr_to_scalar(&h) * self.secret;
        Signature { r8, s }
    }
}

impl fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// `h = Poseidon(R8.x, R8.y, A.x, A.y, M)`.
fn challenge(r8: &Point, a: &Point, message: &Fr) -> Fr {
    poseidon::hash(&[r8.x, r8.y, a.x, a.y, *message])
}

/// An issuer's public key `A = sk·B8`: on the curve, in the prime-order subgroup, not the
/// identity (every constructor checks this).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IssuerPublicKey {
    point: Point,
}

/// Length of an encoded public key: x then y, 32 bytes big-endian each.
pub const PUBLIC_KEY_LEN: usize = 64;

impl IssuerPublicKey {
    /// Validates coordinates (iden3 form) as a public key.
    pub fn from_coordinates(x: Fr, y: Fr) -> Result<Self, ZkError> {
        let point = Point { x, y };
        if !point.is_on_curve() {
            return Err(ZkError::InvalidInput(
                "issuer public key is not a Baby Jubjub point".into(),
            ));
        }
        if point.is_identity() {
            return Err(ZkError::InvalidInput(
                "issuer public key is the identity point".into(),
            ));
        }
        if !point.is_in_subgroup() {
            return Err(ZkError::InvalidInput(
                "issuer public key is not in the prime-order subgroup".into(),
            ));
        }
        Ok(Self { point })
    }

    /// The point.
    pub fn point(&self) -> Point {
        self.point
    }

    /// x coordinate (iden3 form).
    pub fn x(&self) -> Fr {
        self.point.x
    }

    /// y coordinate (iden3 form).
    pub fn y(&self) -> Fr {
        self.point.y
    }

    /// 64 bytes: x then y, big-endian.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out[..FR_LEN].copy_from_slice(&fr_to_bytes(&self.point.x));
        out[FR_LEN..].copy_from_slice(&fr_to_bytes(&self.point.y));
        out
    }

    /// Decodes and validates [`IssuerPublicKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ZkError> {
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(ZkError::InvalidInput(format!(
                "an issuer public key is {PUBLIC_KEY_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        let coord = |b: &[u8], name: &str| {
            fr_from_bytes(b)
                .map_err(|e| ZkError::InvalidInput(format!("issuer public key {name}: {e}")))
        };
        Self::from_coordinates(coord(&bytes[..FR_LEN], "x")?, coord(&bytes[FR_LEN..], "y")?)
    }

    /// Verifies a signature on `message`.
    pub fn verify(&self, message: &Fr, signature: &Signature) -> bool {
        if !signature.r8.is_on_curve() {
            return false;
        }
        let h = challenge(&signature.r8, &self.point, message);
        // A is in the subgroup, so (8h mod l)·A = 8h·A; R8 may be any curve point.
        let eight_h = Scalar::from(8u64) * fr_to_scalar(&h);
        let lhs = Point::base8_mul(&signature.s);
        let rhs = signature.r8.add(&self.point.mul(&eight_h));
        lhs == rhs
    }
}

impl fmt::Display for IssuerPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.to_bytes()))
    }
}

impl fmt::Debug for IssuerPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuerPublicKey({self})")
    }
}

impl Serialize for IssuerPublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for IssuerPublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let digits = text.strip_prefix("0x").unwrap_or(&text);
        let bytes = hex::decode(digits).map_err(serde::de::Error::custom)?;
        Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// An EdDSA-Poseidon signature `(R8, S)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The commitment point `R8 = r·B8`.
    pub r8: Point,
    /// The response `S`, a canonical scalar mod `l`.
    pub s: Scalar,
}

/// Length of an encoded signature: R8.x, R8.y (big-endian) and S (big-endian), 32 bytes each.
pub const SIGNATURE_LEN: usize = 96;

impl Signature {
    /// 96 bytes: R8.x, R8.y, S, each 32 bytes big-endian.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        out[..32].copy_from_slice(&fr_to_bytes(&self.r8.x));
        out[32..64].copy_from_slice(&fr_to_bytes(&self.r8.y));
        out[64..].copy_from_slice(&self.s.into_bigint().to_bytes_be());
        out
    }

    /// Decodes [`Signature::to_bytes`], rejecting non-canonical values and off-curve `R8`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ZkError> {
        if bytes.len() != SIGNATURE_LEN {
            return Err(ZkError::InvalidInput(format!(
                "a signature is {SIGNATURE_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        let bad = |what: &str| ZkError::InvalidInput(format!("signature {what}"));
        let x = fr_from_bytes(&bytes[..32]).map_err(|e| bad(&format!("R8.x: {e}")))?;
        let y = fr_from_bytes(&bytes[32..64]).map_err(|e| bad(&format!("R8.y: {e}")))?;
        let r8 = Point { x, y };
        if !r8.is_on_curve() {
            return Err(bad("R8 is not a Baby Jubjub point"));
        }
        let s = Scalar::from_be_bytes_mod_order(&bytes[64..]);
        if s.into_bigint().to_bytes_be() != bytes[64..] {
            return Err(bad("S is not below the subgroup order"));
        }
        Ok(Self { r8, s })
    }
}

/// In-circuit signature check: `S < l`, `R8` on the curve and `S·B8 = R8 + (8·h)·A` with
/// `h = Poseidon(R8.x, R8.y, A.x, A.y, M)` decomposed strictly (as circomlib does). `A` must
/// already be constrained to the curve by the caller.
pub(crate) fn verify_var(
    public_key: &PointVar,
    message: &FpVar<Fr>,
    r8: &PointVar,
    s_bits: &[Boolean<Fr>],
) -> Result<(), SynthesisError> {
    // S < l, with S given as 251 little-endian bits (l < 2^251).
    let mut l_minus_one = Scalar::MODULUS;
    l_minus_one.sub_with_borrow(&1u64.into());
    Boolean::enforce_smaller_or_equal_than_le(s_bits, l_minus_one)?;

    let h = poseidon::hash_var(&[
        r8.x.clone(),
        r8.y.clone(),
        public_key.x.clone(),
        public_key.y.clone(),
        message.clone(),
    ])?;
    let h_bits = h.to_bits_le()?;
    let a8 = public_key.double()?.double()?.double()?;
    let rhs = r8.add(&a8.scalar_mul_le(&h_bits)?)?;
    let lhs = PointVar::fixed_base_mul_le(Point::base8(), s_bits)?;
    lhs.enforce_equal(&rhs)
}

/// Number of bits of `S` the circuit takes (`l < 2^251`).
pub(crate) const S_BITS: usize = 251;

/// `S` as [`S_BITS`] little-endian bits.
pub(crate) fn s_to_bits(s: &Scalar) -> Vec<bool> {
    let mut bits = s.into_bigint().to_bits_le();
    bits.truncate(S_BITS);
    bits
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_r1cs_std::alloc::AllocVar;
    use ark_relations::gr1cs::ConstraintSystem;
    use ark_std::rand::SeedableRng;

    #[test]
    fn sign_and_verify() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        let key = IssuerKey::generate(&mut rng);
        let other = IssuerKey::generate(&mut rng);
        let msg = Fr::rand(&mut rng);
        let sig = key.sign(&msg);
        assert!(key.public().verify(&msg, &sig));
        assert!(
            !key.public().verify(&(msg + Fr::from(1u64)), &sig),
            "tampered message"
        );
        assert!(!other.public().verify(&msg, &sig), "other key");
        let mut bad_s = sig;
        bad_s.s += Scalar::from(1u64);
        assert!(!key.public().verify(&msg, &bad_s), "tampered S");
        let mut bad_r = sig;
        bad_r.r8 = bad_r.r8.add(&Point::base8());
        assert!(!key.public().verify(&msg, &bad_r), "tampered R8");
        // Deterministic.
        assert_eq!(key.sign(&msg), sig);
    }

    #[test]
    fn key_and_signature_encodings() {
        let key = IssuerKey::from_seed(&[5u8; 32]);
        let restored = IssuerKey::from_secret_bytes(&key.secret_bytes()).unwrap();
        assert_eq!(restored.public(), key.public());
        assert!(IssuerKey::from_secret_bytes(&[0u8; 32]).is_err());
        assert!(IssuerKey::from_secret_bytes(&[0xff; 32]).is_err());
        let pk = key.public();
        assert_eq!(IssuerPublicKey::from_bytes(&pk.to_bytes()).unwrap(), pk);
        let mut off_curve = pk.to_bytes();
        off_curve[63] ^= 1;
        assert!(IssuerPublicKey::from_bytes(&off_curve).is_err());
        assert!(IssuerPublicKey::from_coordinates(Fr::from(0u64), Fr::from(1u64)).is_err());
        // A point of order 2 (0, -1) is on the curve but outside the subgroup.
        assert!(IssuerPublicKey::from_coordinates(Fr::from(0u64), -Fr::from(1u64)).is_err());
        let sig = key.sign(&Fr::from(42u64));
        assert_eq!(Signature::from_bytes(&sig.to_bytes()).unwrap(), sig);
        let mut bad = sig.to_bytes();
        bad[64] = 0xff;
        assert!(Signature::from_bytes(&bad).is_err());
        assert!(Signature::from_bytes(&bad[..95]).is_err());
    }

    fn circuit_accepts(pk: &IssuerPublicKey, msg: Fr, sig: &Signature) -> bool {
        circuit_accepts_raw(pk, msg, sig.r8, &s_to_bits(&sig.s))
    }

    /// The gadget with an arbitrary `R8` and arbitrary [`S_BITS`] bits for `S` (a malicious
    /// prover's witness, which need not come from a [`Signature`]).
    fn circuit_accepts_raw(pk: &IssuerPublicKey, msg: Fr, r8: Point, s_bits: &[bool]) -> bool {
        assert_eq!(s_bits.len(), S_BITS);
        let cs = ConstraintSystem::<Fr>::new_ref();
        let a = PointVar::new_witness_on_curve(cs.clone(), || Ok(pk.point())).unwrap();
        let m = FpVar::new_witness(cs.clone(), || Ok(msg)).unwrap();
        let r8 = PointVar::new_witness_on_curve(cs.clone(), || Ok(r8)).unwrap();
        let s_bits: Vec<Boolean<Fr>> = s_bits
            .iter()
            .map(|b| Boolean::new_witness(cs.clone(), || Ok(*b)).unwrap())
            .collect();
        verify_var(&a, &m, &r8, &s_bits).unwrap();
        cs.is_satisfied().unwrap()
    }

    #[test]
    fn circuit_agrees_with_native() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
        let key = IssuerKey::generate(&mut rng);
        let msg = Fr::rand(&mut rng);
        let sig = key.sign(&msg);
        assert!(circuit_accepts(&key.public(), msg, &sig));
        assert!(!circuit_accepts(&key.public(), msg + Fr::from(1u64), &sig));
        let other = IssuerKey::generate(&mut rng);
        assert!(!circuit_accepts(&other.public(), msg, &sig));
    }

    /// `S' = S + l` is the same scalar mod `l`, so `S'·B8 = S·B8` and the verification equation
    /// still holds; only the in-circuit `S < l` check rejects it (signature malleability).
    #[test]
    fn circuit_rejects_s_plus_subgroup_order() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(13);
        let key = IssuerKey::generate(&mut rng);
        let l = Scalar::MODULUS;
        // Find a signature whose S + l still fits the circuit's 251 bits (S < 2^251 - l,
        // about a third of them).
        let (msg, sig, bits) = (0..64)
            .find_map(|_| {
                let msg = Fr::rand(&mut rng);
                let sig = key.sign(&msg);
                let mut big = sig.s.into_bigint();
                assert!(!big.add_with_carry(&l));
                let bits = big.to_bits_le();
                bits[S_BITS..]
                    .iter()
                    .all(|b| !b)
                    .then(|| (msg, sig, bits[..S_BITS].to_vec()))
            })
            .expect("some S < 2^251 - l");
        assert!(circuit_accepts(&key.public(), msg, &sig));
        // The forged S' acts exactly like S on the base point...
        assert_eq!(Point::base8().mul_bits_le(&bits), Point::base8_mul(&sig.s));
        // ...so it is the range check that must (and does) reject it.
        assert!(!circuit_accepts_raw(&key.public(), msg, sig.r8, &bits));
        // Natively the encoding of S' does not even decode.
        let mut encoded = sig.to_bytes();
        let mut big = sig.s.into_bigint();
        big.add_with_carry(&l);
        encoded[64..].copy_from_slice(&big.to_bytes_be());
        assert!(Signature::from_bytes(&encoded).is_err());
    }

    /// The small-order points of Baby Jubjub: orders 2, 4 and 8.
    fn torsion_points() -> [Point; 3] {
        let g = Point {
            x: crate::babyjubjub::GENERATOR_X,
            y: crate::babyjubjub::GENERATOR_Y,
        };
        // l·G has order 8 (G generates the whole group, of order 8·l).
        let t8 = g.mul_bits_le(&Scalar::MODULUS.to_bits_le());
        let t4 = t8.add(&t8);
        let t2 = t4.add(&t4);
        assert_eq!(
            t2,
            Point {
                x: Fr::from(0u64),
                y: -Fr::from(1u64)
            }
        );
        for (t, order) in [(t2, 2u8), (t4, 4), (t8, 8)] {
            assert!(t.is_on_curve() && !t.is_identity() && !t.is_in_subgroup());
            let multiple = t.mul_bits_le(&[
                order & 1 == 1,
                order & 2 == 2,
                order & 4 == 4,
                order & 8 == 8,
            ]);
            assert!(multiple.is_identity(), "order {order}");
        }
        [t2, t4, t8]
    }

    /// `R8 + T` for a small-order `T` must not verify: neither with the original `S`, nor when
    /// the signer consistently used `R8 + T` in the challenge (the equation is not cofactored).
    #[test]
    fn circuit_rejects_r8_plus_torsion() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(14);
        let key = IssuerKey::generate(&mut rng);
        let msg = Fr::rand(&mut rng);
        let sig = key.sign(&msg);
        assert!(circuit_accepts(&key.public(), msg, &sig));

        // A signature whose nonce point is `r·B8 + t`, with the challenge over that point.
        let r = Scalar::rand(&mut rng);
        let sign_with_offset = |t: Point| {
            let r8 = Point::base8_mul(&r).add(&t);
            let h = challenge(&r8, &key.public().point(), &msg);
            let s = r + Scalar::from(8u64) * fr_to_scalar(&h) * key.secret;
            Signature { r8, s }
        };
        // Control: with no offset the construction is an ordinary valid signature.
        let honest = sign_with_offset(Point::IDENTITY);
        assert!(key.public().verify(&msg, &honest));
        assert!(circuit_accepts(&key.public(), msg, &honest));

        for t in torsion_points() {
            let shifted = Signature {
                r8: sig.r8.add(&t),
                s: sig.s,
            };
            assert!(shifted.r8.is_on_curve());
            assert!(!key.public().verify(&msg, &shifted));
            assert!(!circuit_accepts(&key.public(), msg, &shifted));

            let resigned = sign_with_offset(t);
            assert!(!key.public().verify(&msg, &resigned));
            assert!(!circuit_accepts(&key.public(), msg, &resigned));
        }
    }
}
