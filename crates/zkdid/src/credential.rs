//! Credentials: what an issuer attests about a holder, and the holder's nullifier secret.

use std::fmt;

use ark_ff::{PrimeField, UniformRand, Zero};
use ark_std::rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::date::date_to_circuit;
use crate::eddsa::{IssuerKey, IssuerPublicKey, Signature};
use crate::error::ZkError;
use crate::field::{Address20, Fr, fr_from_bytes, fr_to_bytes, serde_fr};
use crate::poseidon;

/// Domain tag hashed first into every credential: the big-endian bytes of
/// `"pharos.zkdid.credential.v1"` as a field element. A new credential layout gets a new tag.
pub fn credential_schema_tag() -> Fr {
    Fr::from_be_bytes_mod_order(b"pharos.zkdid.credential.v1")
}

/// The attributes an issuer signs about one holder.
///
/// The issuer signs [`Credential::hash`]; the holder later proves statements about these fields
/// without revealing them. `secret_commitment` is `Poseidon(secret)` for a [`HolderSecret`] the
/// holder generated and never shows the issuer, so the issuer cannot compute the holder's
/// nullifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The wallet the credential is issued to; proofs are bound to it.
    pub holder: Address20,
    /// Birth date, days since 1970-01-01 (negative before 1970).
    pub birth_date: i32,
    /// Country of residence, ISO 3166-1 numeric (`0` is not a country and is never accepted).
    pub country: u16,
    /// KYC level the issuer verified (issuer-defined scale; higher is stronger).
    pub kyc_level: u8,
    /// Last day the credential is valid, days since 1970-01-01.
    pub expiry_date: i32,
    /// The credential's index in its issuer's revocation tree (unique per issuer).
    pub revocation_nonce: u32,
    /// `Poseidon(secret)` of the holder's [`HolderSecret`].
    #[serde(with = "serde_fr")]
    pub secret_commitment: Fr,
}

impl Credential {
    /// The signed message: `Poseidon(tag, holder, birth + 2^31, country, kyc, expiry + 2^31,
    /// nonce, secret_commitment)` (dates biased to be non-negative, see [`crate::date`]).
    pub fn hash(&self) -> Fr {
        poseidon::hash(&self.hash_inputs())
    }

    pub(crate) fn hash_inputs(&self) -> [Fr; 8] {
        [
            credential_schema_tag(),
            self.holder.to_fr(),
            date_to_circuit(self.birth_date),
            Fr::from(self.country),
            Fr::from(self.kyc_level),
            date_to_circuit(self.expiry_date),
            Fr::from(self.revocation_nonce),
            self.secret_commitment,
        ]
    }
}

/// The holder's secret behind its nullifiers. Generate it on the holder's device and give the
/// issuer only [`HolderSecret::commitment`]. Debug output never shows it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HolderSecret(Fr);

impl HolderSecret {
    /// A fresh random secret.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        loop {
            let v = Fr::rand(rng);
            if !v.is_zero() {
                return Self(v);
            }
        }
    }

    /// Wraps an existing secret value.
    pub fn from_fr(value: Fr) -> Self {
        Self(value)
    }

    /// Restores from 32 canonical big-endian bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ZkError> {
        fr_from_bytes(bytes)
            .map(Self)
            .map_err(|e| ZkError::InvalidInput(format!("holder secret: {e}")))
    }

    /// 32 big-endian bytes. Keep them secret.
    pub fn to_bytes(&self) -> [u8; 32] {
        fr_to_bytes(&self.0)
    }

    /// The secret value.
    pub fn value(&self) -> Fr {
        self.0
    }

    /// `Poseidon(secret)`: what goes into the credential.
    pub fn commitment(&self) -> Fr {
        poseidon::hash(&[self.0])
    }

    /// `Poseidon(secret, scope)`: the per-scope nullifier. The same credential always yields the
    /// same nullifier in one scope, and unlinkable ones across scopes.
    pub fn nullifier(&self, scope: &Fr) -> Fr {
        poseidon::hash(&[self.0, *scope])
    }
}

impl fmt::Debug for HolderSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HolderSecret(..)")
    }
}

/// A credential with its issuer's signature: what the issuer hands to the holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedCredential {
    /// The attributes.
    pub credential: Credential,
    /// Who signed them.
    pub issuer: IssuerPublicKey,
    /// The signature over [`Credential::hash`].
    pub signature: Signature,
}

impl SignedCredential {
    /// Issues (signs) a credential.
    pub fn issue(key: &IssuerKey, credential: Credential) -> Self {
        Self {
            signature: key.sign(&credential.hash()),
            issuer: key.public(),
            credential,
        }
    }

    /// Whether the signature is valid for the credential and issuer.
    pub fn verify(&self) -> bool {
        self.issuer.verify(&self.credential.hash(), &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_std::rand::SeedableRng;

    #[test]
    fn hash_binds_every_field() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(21);
        let secret = HolderSecret::generate(&mut rng);
        let base = Credential {
            holder: Address20([1; 20]),
            birth_date: -3000,
            country: 276,
            kyc_level: 2,
            expiry_date: 21_000,
            revocation_nonce: 9,
            secret_commitment: secret.commitment(),
        };
        let edits: [fn(&mut Credential); 7] = [
            |c| c.holder.0[19] ^= 1,
            |c| c.birth_date += 1,
            |c| c.country += 1,
            |c| c.kyc_level += 1,
            |c| c.expiry_date += 1,
            |c| c.revocation_nonce += 1,
            |c| c.secret_commitment += Fr::from(1u64),
        ];
        for edit in edits {
            let mut changed = base;
            edit(&mut changed);
            assert_ne!(changed.hash(), base.hash());
        }
        let key = IssuerKey::from_seed(&[3; 32]);
        let signed = SignedCredential::issue(&key, base);
        assert!(signed.verify());
        let mut tampered = signed;
        tampered.credential.kyc_level = 5;
        assert!(!tampered.verify());
    }

    #[test]
    fn secret_derivations() {
        let secret = HolderSecret::from_fr(Fr::from(5u64));
        assert_eq!(
            HolderSecret::from_bytes(&secret.to_bytes()).unwrap(),
            secret
        );
        let (a, b) = (Fr::from(1u64), Fr::from(2u64));
        assert_ne!(secret.nullifier(&a), secret.nullifier(&b));
        assert_ne!(secret.nullifier(&a), secret.commitment());
        assert_eq!(format!("{secret:?}"), "HolderSecret(..)");
    }
}
