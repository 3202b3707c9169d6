//! The public statement a proof is about, its canonical byte encoding and the Groth16 public
//! inputs derived from it.

use serde::{Deserialize, Serialize};

use crate::date::{date_to_circuit, max_birth_date};
use crate::eddsa::{IssuerPublicKey, PUBLIC_KEY_LEN};
use crate::error::ZkError;
use crate::field::{Address20, FR_LEN, Fr, fr_from_bytes, fr_to_bytes, serde_fr};

/// Length of the blocked-country list in every statement (unused entries are 0).
pub const MAX_BLOCKED_COUNTRIES: usize = 8;

/// Number of Groth16 public inputs (see [`PublicStatement::public_inputs`]).
pub const NUM_PUBLIC_INPUTS: usize = 9 + MAX_BLOCKED_COUNTRIES;

/// Version byte that starts every encoded statement.
pub const STATEMENT_VERSION: u8 = 1;

/// Length of an encoded statement.
pub const STATEMENT_LEN: usize = 1 // version
    + PUBLIC_KEY_LEN // issuer
    + FR_LEN // revocation root
    + 20 // wallet
    + 4 // date
    + 1 // min age
    + 1 // min kyc
    + 2 * MAX_BLOCKED_COUNTRIES
    + FR_LEN // scope
    + FR_LEN; // nullifier

/// What a proof claims about the holder's hidden attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Requirements {
    /// The holder is at least this many years old on the statement date.
    pub min_age_years: u8,
    /// The credential's KYC level is at least this.
    pub min_kyc_level: u8,
    /// The credential's country is none of these (ISO 3166-1 numeric; 0 entries are padding).
    pub blocked_countries: [u16; MAX_BLOCKED_COUNTRIES],
}

impl Requirements {
    /// Builds requirements from a list of at most [`MAX_BLOCKED_COUNTRIES`] blocked countries,
    /// padding with zeros.
    pub fn new(min_age_years: u8, min_kyc_level: u8, blocked: &[u16]) -> Result<Self, ZkError> {
        if blocked.len() > MAX_BLOCKED_COUNTRIES {
            return Err(ZkError::InvalidInput(format!(
                "at most {MAX_BLOCKED_COUNTRIES} blocked countries fit in a statement, got {}",
                blocked.len()
            )));
        }
        let mut blocked_countries = [0u16; MAX_BLOCKED_COUNTRIES];
        blocked_countries[..blocked.len()].copy_from_slice(blocked);
        Ok(Self {
            min_age_years,
            min_kyc_level,
            blocked_countries,
        })
    }

    /// Whether `country` is blocked (0 is always refused by the circuit as well).
    pub fn blocks(&self, country: u16) -> bool {
        country == 0 || self.blocked_countries.contains(&country)
    }
}

/// The public statement: everything the verifier sees.
///
/// A proof for it shows that the holder of `wallet` has a credential signed by `issuer`, not
/// revoked under `revocation_root`, unexpired on `date`, whose holder is `wallet`, whose birth
/// date makes the holder at least `min_age_years` old on `date`, whose KYC level is at least
/// `min_kyc_level`, whose country is not blocked, and that `nullifier = Poseidon(secret, scope)`
/// for the secret the credential commits to.
///
/// Deserializing (serde) validates like [`PublicStatement::from_bytes`]: the issuer key and the
/// field elements must be valid and canonical, and the date's age threshold in range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedStatement")]
pub struct PublicStatement {
    /// The issuer that signed the credential.
    pub issuer: IssuerPublicKey,
    /// The issuer's revocation-tree root the proof was made against.
    #[serde(with = "serde_fr")]
    pub revocation_root: Fr,
    /// The wallet the proof is bound to (must be the transaction sender).
    pub wallet: Address20,
    /// The date the age and expiry checks refer to, days since 1970-01-01.
    pub date: i32,
    /// What is proven about the hidden attributes.
    pub requirements: Requirements,
    /// The nullifier scope (for example [`crate::scope_from_label`] of an application name).
    #[serde(with = "serde_fr")]
    pub scope: Fr,
    /// `Poseidon(secret, scope)`: one per credential and scope.
    #[serde(with = "serde_fr")]
    pub nullifier: Fr,
}

/// [`PublicStatement`]'s serde form, before [`PublicStatement::validate`].
#[derive(Deserialize)]
struct UncheckedStatement {
    issuer: IssuerPublicKey,
    #[serde(with = "serde_fr")]
    revocation_root: Fr,
    wallet: Address20,
    date: i32,
    requirements: Requirements,
    #[serde(with = "serde_fr")]
    scope: Fr,
    #[serde(with = "serde_fr")]
    nullifier: Fr,
}

impl TryFrom<UncheckedStatement> for PublicStatement {
    type Error = ZkError;

    fn try_from(u: UncheckedStatement) -> Result<Self, ZkError> {
        let statement = Self {
            issuer: u.issuer,
            revocation_root: u.revocation_root,
            wallet: u.wallet,
            date: u.date,
            requirements: u.requirements,
            scope: u.scope,
            nullifier: u.nullifier,
        };
        statement.validate()?;
        Ok(statement)
    }
}

impl PublicStatement {
    /// The checks decoders make beyond the types' own ([`ZkError::MalformedStatement`]): the
    /// age threshold derived from the date and minimum age must be a representable date.
    pub fn validate(&self) -> Result<(), ZkError> {
        self.max_birth_date().map_err(|_| {
            ZkError::MalformedStatement(format!("date {} is out of range", self.date))
        })?;
        Ok(())
    }

    /// The latest birth date meeting the age requirement on the statement date.
    pub fn max_birth_date(&self) -> Result<i32, ZkError> {
        max_birth_date(self.date, self.requirements.min_age_years).ok_or_else(|| {
            ZkError::InvalidInput(format!("statement date {} is out of range", self.date))
        })
    }

    /// The Groth16 public inputs, in circuit order:
    ///
    /// | index | input |
    /// |---|---|
    /// | 0, 1 | issuer public key x, y (iden3 coordinates) |
    /// | 2 | revocation root |
    /// | 3 | wallet address as an integer |
    /// | 4 | statement date + 2^31 |
    /// | 5 | latest allowed birth date + 2^31 (derived from date and minimum age) |
    /// | 6 | minimum KYC level |
    /// | 7–14 | blocked countries |
    /// | 15 | scope |
    /// | 16 | nullifier |
    ///
    /// The verifier derives these from the typed statement itself, so a prover cannot choose
    /// the age threshold independently of the date.
    pub fn public_inputs(&self) -> Result<[Fr; NUM_PUBLIC_INPUTS], ZkError> {
        let mut inputs = [Fr::from(0u64); NUM_PUBLIC_INPUTS];
        inputs[0] = self.issuer.x();
        inputs[1] = self.issuer.y();
        inputs[2] = self.revocation_root;
        inputs[3] = self.wallet.to_fr();
        inputs[4] = date_to_circuit(self.date);
        inputs[5] = date_to_circuit(self.max_birth_date()?);
        inputs[6] = Fr::from(self.requirements.min_kyc_level);
        for (slot, country) in inputs[7..7 + MAX_BLOCKED_COUNTRIES]
            .iter_mut()
            .zip(self.requirements.blocked_countries)
        {
            *slot = Fr::from(country);
        }
        inputs[7 + MAX_BLOCKED_COUNTRIES] = self.scope;
        inputs[8 + MAX_BLOCKED_COUNTRIES] = self.nullifier;
        Ok(inputs)
    }

    /// Canonical encoding, [`STATEMENT_LEN`] bytes, all integers big-endian:
    /// `version(1) ‖ issuer.x(32) ‖ issuer.y(32) ‖ revocation_root(32) ‖ wallet(20) ‖
    /// date(i32, 4) ‖ min_age(1) ‖ min_kyc(1) ‖ blocked(8 × u16) ‖ scope(32) ‖ nullifier(32)`.
    pub fn to_bytes(&self) -> [u8; STATEMENT_LEN] {
        let mut out = [0u8; STATEMENT_LEN];
        let mut w = Writer {
            buf: &mut out,
            pos: 0,
        };
        w.put(&[STATEMENT_VERSION]);
        w.put(&self.issuer.to_bytes());
        w.put(&fr_to_bytes(&self.revocation_root));
        w.put(&self.wallet.0);
        w.put(&self.date.to_be_bytes());
        w.put(&[
            self.requirements.min_age_years,
            self.requirements.min_kyc_level,
        ]);
        for c in self.requirements.blocked_countries {
            w.put(&c.to_be_bytes());
        }
        w.put(&fr_to_bytes(&self.scope));
        w.put(&fr_to_bytes(&self.nullifier));
        debug_assert_eq!(w.pos, STATEMENT_LEN);
        out
    }

    /// Decodes [`PublicStatement::to_bytes`]. Rejects a wrong length or version, field elements
    /// that are not canonical, an issuer key that is not a valid subgroup point and dates whose
    /// age threshold is out of range. Never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ZkError> {
        let malformed = ZkError::MalformedStatement;
        if bytes.len() != STATEMENT_LEN {
            return Err(malformed(format!(
                "expected {STATEMENT_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.take::<1>()[0];
        if version != STATEMENT_VERSION {
            return Err(malformed(format!(
                "unknown version {version} (expected {STATEMENT_VERSION})"
            )));
        }
        let issuer = IssuerPublicKey::from_bytes(&r.take::<PUBLIC_KEY_LEN>())
            .map_err(|e| malformed(format!("issuer: {e}")))?;
        let field = |b: [u8; FR_LEN], name: &str| {
            fr_from_bytes(&b).map_err(|e| malformed(format!("{name}: {e}")))
        };
        let revocation_root = field(r.take(), "revocation root")?;
        let wallet = Address20(r.take());
        let date = i32::from_be_bytes(r.take());
        let [min_age_years, min_kyc_level] = r.take();
        let mut blocked_countries = [0u16; MAX_BLOCKED_COUNTRIES];
        for c in &mut blocked_countries {
            *c = u16::from_be_bytes(r.take());
        }
        let scope = field(r.take(), "scope")?;
        let nullifier = field(r.take(), "nullifier")?;
        let statement = Self {
            issuer,
            revocation_root,
            wallet,
            date,
            requirements: Requirements {
                min_age_years,
                min_kyc_level,
                blocked_countries,
            },
            scope,
            nullifier,
        };
        statement.validate()?;
        Ok(statement)
    }
}

struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
        self.pos += bytes.len();
    }
}

/// Reads fixed-size chunks from a buffer whose total length was checked up front.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        out
    }
}
