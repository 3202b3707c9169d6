//! What the registry's verifier system contract does with a submitted proof, as a pure function
//! of the registry state it reads, plus an in-memory registry for tests and tools.
//!
//! The contract owns its storage (trusted issuers with their current revocation roots, used
//! nullifiers, recorded claims); this module only reads it through [`RegistryState`] and
//! returns the [`Claim`] to record. Recording the claim and marking the nullifier used is the
//! caller's job, in the same state transition.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::eddsa::IssuerPublicKey;
use crate::error::ZkError;
use crate::field::{Address20, Fr, serde_fr};
use crate::keys::VerifyingKey;
use crate::proof::{decode_proof, verify_decoded};
use crate::statement::{MAX_BLOCKED_COUNTRIES, PublicStatement, Requirements};

/// The registry state a verification reads.
pub trait RegistryState {
    /// The issuer's current revocation root, or `None` if the issuer is not trusted.
    fn revocation_root(&self, issuer: &IssuerPublicKey) -> Option<Fr>;
    /// Whether `nullifier` was already recorded in `scope`.
    fn is_nullifier_used(&self, scope: &Fr, nullifier: &Fr) -> bool;
}

/// The registry's minimum requirements: a statement must prove at least this much.
///
/// [`ClaimVerifier::new`] validates the policy ([`Policy::validate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Minimum `min_age_years` a statement may claim (18 for "adult").
    pub min_age_years: u8,
    /// Minimum `min_kyc_level` a statement may claim.
    pub min_kyc_level: u8,
    /// Countries every statement's blocked list must contain: at most
    /// [`MAX_BLOCKED_COUNTRIES`], distinct and non-zero (0 is padding, and always refused).
    pub required_blocked_countries: Vec<u16>,
    /// The only nullifier scope accepted ([`ZkError::WrongScope`] for others). The nullifier
    /// makes one claim per credential *per scope*; with `None` any scope is accepted, so a
    /// holder can claim again under each new scope they pick. A registry that means "one claim
    /// per credential" must set this.
    pub required_scope: Option<Fr>,
    /// How many days the statement date may lag the verifier's date (proofs made just before
    /// midnight). The date may never be in the future.
    pub max_date_lag_days: u32,
}

impl Default for Policy {
    /// Age 18, any KYC level, no required blocked countries, any scope, one day of lag.
    fn default() -> Self {
        Self {
            min_age_years: 18,
            min_kyc_level: 0,
            required_blocked_countries: Vec::new(),
            required_scope: None,
            max_date_lag_days: 1,
        }
    }
}

impl Policy {
    /// Checks that the policy can be met: [`ZkError::InvalidPolicy`] if it requires more blocked
    /// countries than a statement holds, or lists country 0 or a country twice.
    pub fn validate(&self) -> Result<(), ZkError> {
        let countries = &self.required_blocked_countries;
        if countries.len() > MAX_BLOCKED_COUNTRIES {
            return Err(ZkError::InvalidPolicy(format!(
                "it requires {} blocked countries, a statement holds at most {MAX_BLOCKED_COUNTRIES}",
                countries.len()
            )));
        }
        if countries.contains(&0) {
            return Err(ZkError::InvalidPolicy(
                "required blocked country 0 is padding, not a country (code 0 is always refused)"
                    .into(),
            ));
        }
        for (i, country) in countries.iter().enumerate() {
            if countries[..i].contains(country) {
                return Err(ZkError::InvalidPolicy(format!(
                    "required blocked country {country} is listed twice"
                )));
            }
        }
        Ok(())
    }

    /// Checks the statement's nullifier scope against [`Policy::required_scope`].
    pub fn check_scope(&self, statement: &PublicStatement) -> Result<(), ZkError> {
        match self.required_scope {
            Some(required) if required != statement.scope => Err(ZkError::WrongScope {
                statement: statement.scope,
                required,
            }),
            _ => Ok(()),
        }
    }

    /// Checks that `statement` proves at least what the policy demands, in the required scope.
    pub fn check(&self, statement: &PublicStatement) -> Result<(), ZkError> {
        self.check_scope(statement)?;
        let req = &statement.requirements;
        if req.min_age_years < self.min_age_years {
            return Err(ZkError::PolicyViolation(format!(
                "statement proves age ≥ {}, the registry requires ≥ {}",
                req.min_age_years, self.min_age_years
            )));
        }
        if req.min_kyc_level < self.min_kyc_level {
            return Err(ZkError::PolicyViolation(format!(
                "statement proves KYC level ≥ {}, the registry requires ≥ {}",
                req.min_kyc_level, self.min_kyc_level
            )));
        }
        for country in &self.required_blocked_countries {
            if !req.blocked_countries.contains(country) {
                return Err(ZkError::PolicyViolation(format!(
                    "statement does not exclude country {country}, which the registry blocks"
                )));
            }
        }
        Ok(())
    }
}

/// What the registry records for an accepted proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The wallet that proved (the transaction sender).
    pub wallet: Address20,
    /// The issuer whose credential backs the claim.
    pub issuer: IssuerPublicKey,
    /// The nullifier scope.
    #[serde(with = "serde_fr")]
    pub scope: Fr,
    /// The nullifier, now used in `scope`.
    #[serde(with = "serde_fr")]
    pub nullifier: Fr,
    /// What was proven: minimum age, minimum KYC level, excluded countries.
    pub requirements: Requirements,
    /// The date the age and expiry checks refer to (days since 1970-01-01).
    pub date: i32,
    /// The issuer revocation root the proof was checked against.
    #[serde(with = "serde_fr")]
    pub revocation_root: Fr,
}

/// Verifies submissions for a registry: one verifying key and one policy.
#[derive(Clone, Debug)]
pub struct ClaimVerifier {
    vk: VerifyingKey,
    policy: Policy,
}

impl ClaimVerifier {
    /// A verifier using `vk` and `policy`. Refuses a key flagged as coming from
    /// [`crate::insecure_dev_setup`] ([`ZkError::InsecureDevKey`]) and a policy that fails
    /// [`Policy::validate`] ([`ZkError::InvalidPolicy`]).
    pub fn new(vk: VerifyingKey, policy: Policy) -> Result<Self, ZkError> {
        if vk.is_insecure_dev() {
            return Err(ZkError::InsecureDevKey);
        }
        Self::new_allowing_insecure_dev(vk, policy)
    }

    /// **Development networks and tests only.** Like [`ClaimVerifier::new`], but also accepts a
    /// verifying key from [`crate::insecure_dev_setup`], for which anyone can forge proofs.
    pub fn new_allowing_insecure_dev(vk: VerifyingKey, policy: Policy) -> Result<Self, ZkError> {
        policy.validate()?;
        Ok(Self { vk, policy })
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The verifying key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.vk
    }

    /// Checks a submission and returns the claim to record. In order, cheap checks first: the
    /// statement decodes ([`ZkError::MalformedStatement`]); the issuer is trusted
    /// ([`ZkError::UntrustedIssuer`]); the revocation root is the issuer's current one
    /// ([`ZkError::StaleRevocationRoot`]); the scope is the policy's ([`ZkError::WrongScope`]);
    /// the nullifier is unused in the scope ([`ZkError::NullifierUsed`]); the wallet is the
    /// sender ([`ZkError::WrongWallet`]); the date is today or at most `max_date_lag_days`
    /// earlier ([`ZkError::WrongDate`]); the statement meets the policy
    /// ([`ZkError::PolicyViolation`]); and only then the proof decodes, with its costly subgroup
    /// checks ([`ZkError::MalformedProof`]), and the Groth16 proof verifies
    /// ([`ZkError::InvalidProof`]). Never panics on any input bytes.
    pub fn verify(
        &self,
        state: &impl RegistryState,
        sender: Address20,
        today: i32,
        statement_bytes: &[u8],
        proof_bytes: &[u8],
    ) -> Result<Claim, ZkError> {
        let statement = PublicStatement::from_bytes(statement_bytes)?;
        self.verify_statement(state, sender, today, &statement, proof_bytes)
    }

    /// [`ClaimVerifier::verify`] for an already decoded statement.
    pub fn verify_statement(
        &self,
        state: &impl RegistryState,
        sender: Address20,
        today: i32,
        statement: &PublicStatement,
        proof_bytes: &[u8],
    ) -> Result<Claim, ZkError> {
        let root = state
            .revocation_root(&statement.issuer)
            .ok_or_else(|| ZkError::UntrustedIssuer(statement.issuer.to_string()))?;
        if root != statement.revocation_root {
            return Err(ZkError::StaleRevocationRoot);
        }
        self.policy.check_scope(statement)?;
        if state.is_nullifier_used(&statement.scope, &statement.nullifier) {
            return Err(ZkError::NullifierUsed);
        }
        if statement.wallet != sender {
            return Err(ZkError::WrongWallet {
                statement: statement.wallet,
                sender,
            });
        }
        let lag = i64::from(today) - i64::from(statement.date);
        if lag < 0 || lag > i64::from(self.policy.max_date_lag_days) {
            return Err(ZkError::WrongDate {
                statement: statement.date,
                today,
                max_skew: self.policy.max_date_lag_days,
            });
        }
        self.policy.check(statement)?;
        // Expensive (point decompression and G2 subgroup check): only after every cheap check.
        let proof = decode_proof(proof_bytes)?;
        verify_decoded(&self.vk, statement, &proof)?;
        Ok(Claim {
            wallet: statement.wallet,
            issuer: statement.issuer,
            scope: statement.scope,
            nullifier: statement.nullifier,
            requirements: statement.requirements,
            date: statement.date,
            revocation_root: statement.revocation_root,
        })
    }
}

/// A registry kept in memory: trusted issuers with their roots, used nullifiers and claims.
#[derive(Clone, Debug, Default)]
pub struct InMemoryRegistry {
    issuers: HashMap<IssuerPublicKey, Fr>,
    nullifiers: HashSet<(Fr, Fr)>,
    claims: Vec<Claim>,
}

impl InMemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `issuer` with its current revocation root (or updates the root).
    pub fn trust_issuer(&mut self, issuer: IssuerPublicKey, revocation_root: Fr) {
        self.issuers.insert(issuer, revocation_root);
    }

    /// Stops trusting `issuer`; returns whether it was trusted.
    pub fn distrust_issuer(&mut self, issuer: &IssuerPublicKey) -> bool {
        self.issuers.remove(issuer).is_some()
    }

    /// Publishes a trusted issuer's new revocation root.
    pub fn set_revocation_root(
        &mut self,
        issuer: &IssuerPublicKey,
        revocation_root: Fr,
    ) -> Result<(), ZkError> {
        match self.issuers.get_mut(issuer) {
            Some(root) => {
                *root = revocation_root;
                Ok(())
            }
            None => Err(ZkError::UntrustedIssuer(issuer.to_string())),
        }
    }

    /// Records an accepted claim and marks its nullifier used.
    pub fn record(&mut self, claim: Claim) -> Result<(), ZkError> {
        if !self.nullifiers.insert((claim.scope, claim.nullifier)) {
            return Err(ZkError::NullifierUsed);
        }
        self.claims.push(claim);
        Ok(())
    }

    /// Verifies a submission and, if accepted, records it.
    pub fn submit(
        &mut self,
        verifier: &ClaimVerifier,
        sender: Address20,
        today: i32,
        statement_bytes: &[u8],
        proof_bytes: &[u8],
    ) -> Result<Claim, ZkError> {
        let claim = verifier.verify(self, sender, today, statement_bytes, proof_bytes)?;
        self.record(claim.clone())?;
        Ok(claim)
    }

    /// Claims recorded so far, oldest first.
    pub fn claims(&self) -> &[Claim] {
        &self.claims
    }
}

impl RegistryState for InMemoryRegistry {
    fn revocation_root(&self, issuer: &IssuerPublicKey) -> Option<Fr> {
        self.issuers.get(issuer).copied()
    }

    fn is_nullifier_used(&self, scope: &Fr, nullifier: &Fr) -> bool {
        self.nullifiers.contains(&(*scope, *nullifier))
    }
}
