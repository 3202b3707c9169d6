//! Shared test fixtures: an issuer, a revocation tree, a holder and a valid credential.
#![allow(dead_code)]

use ark_std::rand::SeedableRng;
use pharos_zkdid::*;
use rand_chacha::ChaCha20Rng;

/// Blocked countries used by the fixture statement (North Korea, Iran, Syria).
pub const BLOCKED: [u16; 3] = [408, 364, 760];
/// Germany.
pub const GERMANY: u16 = 276;

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn date(y: i32, m: u32, d: u32) -> i32 {
    days_from_civil(y, m, d).unwrap()
}

/// Everything needed to build a valid statement and witness.
#[derive(Clone)]
pub struct Fixture {
    pub issuer: IssuerKey,
    pub tree: RevocationTree,
    pub secret: HolderSecret,
    pub wallet: Address20,
    pub signed: SignedCredential,
    pub today: i32,
    pub scope: Fr,
    pub requirements: Requirements,
}

impl Fixture {
    pub fn new(seed: u64) -> Self {
        let mut rng = rng(seed);
        let issuer = IssuerKey::generate(&mut rng);
        let mut tree = RevocationTree::new();
        // Some other credentials are already revoked, including the neighbour of ours.
        for n in [1u32, 2, 3, 41, 43, 1 << 20, u32::MAX] {
            tree.revoke(n);
        }
        let secret = HolderSecret::generate(&mut rng);
        let wallet = Address20([0xa1; 20]);
        let credential = Credential {
            holder: wallet,
            birth_date: date(1990, 5, 17),
            country: GERMANY,
            kyc_level: 2,
            expiry_date: date(2030, 1, 1),
            revocation_nonce: 42,
            secret_commitment: secret.commitment(),
        };
        let signed = SignedCredential::issue(&issuer, credential);
        Self {
            issuer,
            tree,
            secret,
            wallet,
            signed,
            today: date(2026, 6, 15),
            scope: scope_from_label(b"pharos-test-scope"),
            requirements: Requirements::new(18, 1, &BLOCKED).unwrap(),
        }
    }

    /// Re-issues the credential after `f` edits it (a validly signed credential).
    pub fn with_credential(mut self, f: impl FnOnce(&mut Credential)) -> Self {
        let mut credential = self.signed.credential;
        f(&mut credential);
        self.signed = SignedCredential::issue(&self.issuer, credential);
        self
    }

    pub fn credential(&self) -> Credential {
        self.signed.credential
    }

    pub fn statement(&self) -> PublicStatement {
        PublicStatement {
            issuer: self.issuer.public(),
            revocation_root: self.tree.root(),
            wallet: self.wallet,
            date: self.today,
            requirements: self.requirements,
            scope: self.scope,
            nullifier: self.secret.nullifier(&self.scope),
        }
    }

    pub fn path(&self) -> NonRevocationPath {
        self.tree
            .non_revocation_path(self.credential().revocation_nonce)
            .unwrap()
    }

    /// A registry trusting this fixture's issuer at its current root.
    pub fn registry(&self) -> InMemoryRegistry {
        let mut registry = InMemoryRegistry::new();
        registry.trust_issuer(self.issuer.public(), self.tree.root());
        registry
    }
}
