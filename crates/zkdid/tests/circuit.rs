//! Constraint-system satisfiability of the zkDID circuit: satisfied for a valid witness, not
//! satisfied for each violated condition, and the native pre-check names the same violation.
//! These synthesize the circuit without proving, so they are fast.

mod common;

use common::*;
use pharos_zkdid::*;

/// Builds the circuit for the given data and reports satisfiability, after checking that the
/// native pre-check agrees (`expected` is the reason it must give, `None` if valid).
fn satisfied(
    statement: &PublicStatement,
    signed: &SignedCredential,
    secret: &HolderSecret,
    path: &NonRevocationPath,
    expected: Option<Unprovable>,
) -> bool {
    let native = check_witness(statement, signed, secret, path);
    match (&native, &expected) {
        (Ok(()), None) => {}
        (Err(ZkError::Unprovable(got)), Some(want)) => assert_eq!(got, want),
        _ => panic!("native check gave {native:?}, expected {expected:?}"),
    }
    ZkDidCircuit::new(statement, signed, secret, path)
        .unwrap()
        .is_satisfied()
        .unwrap()
}

fn fixture_satisfied(f: &Fixture, expected: Option<Unprovable>) -> bool {
    satisfied(&f.statement(), &f.signed, &f.secret, &f.path(), expected)
}

#[test]
fn valid_witness_satisfies_the_circuit() {
    let f = Fixture::new(1);
    assert!(fixture_satisfied(&f, None));
}

#[test]
fn shape_is_stable() {
    let shape = circuit_shape().unwrap();
    assert_eq!(shape.instance_variables, NUM_PUBLIC_INPUTS + 1);
    // Guard against accidental blow-ups (14,882 today, including the public range checks).
    assert!((10_000..20_000).contains(&shape.constraints), "{shape:?}");
}

#[test]
fn age_boundaries() {
    let today = Fixture::new(2).today; // 2026-06-15
    // Turns 18 today: accepted.
    let f = Fixture::new(2).with_credential(|c| c.birth_date = date(2008, 6, 15));
    assert_eq!(f.today, today);
    assert!(fixture_satisfied(&f, None));
    // Turns 18 tomorrow (age 17): rejected.
    let f = Fixture::new(2).with_credential(|c| c.birth_date = date(2008, 6, 16));
    assert!(!fixture_satisfied(
        &f,
        Some(Unprovable::Underage { min_age_years: 18 })
    ));
    // Born before 1970 (negative day number): accepted.
    let f = Fixture::new(2).with_credential(|c| c.birth_date = date(1941, 12, 7));
    assert!(fixture_satisfied(&f, None));
}

#[test]
fn blocked_country_is_rejected() {
    let f = Fixture::new(3).with_credential(|c| c.country = 364);
    assert!(!fixture_satisfied(
        &f,
        Some(Unprovable::BlockedCountry(364))
    ));
    // Last slot of a full list.
    let mut f = Fixture::new(3).with_credential(|c| c.country = 8);
    f.requirements.blocked_countries = [1, 2, 3, 4, 5, 6, 7, 8];
    assert!(!fixture_satisfied(&f, Some(Unprovable::BlockedCountry(8))));
}

#[test]
fn country_zero_is_rejected_even_with_a_full_list() {
    let mut f = Fixture::new(4).with_credential(|c| c.country = 0);
    f.requirements.blocked_countries = [1, 2, 3, 4, 5, 6, 7, 8];
    assert!(!fixture_satisfied(&f, Some(Unprovable::InvalidCountry)));
}

#[test]
fn low_kyc_is_rejected() {
    let f = Fixture::new(5).with_credential(|c| c.kyc_level = 0);
    assert!(!fixture_satisfied(
        &f,
        Some(Unprovable::KycTooLow { have: 0, need: 1 })
    ));
    let mut f = Fixture::new(5).with_credential(|c| c.kyc_level = 3);
    f.requirements.min_kyc_level = 3;
    assert!(fixture_satisfied(&f, None));
    f.requirements.min_kyc_level = 255;
    assert!(!fixture_satisfied(
        &f,
        Some(Unprovable::KycTooLow { have: 3, need: 255 })
    ));
}

#[test]
fn expiry_boundaries() {
    let f = Fixture::new(6);
    let today = f.today;
    let f = f.with_credential(|c| c.expiry_date = today);
    assert!(fixture_satisfied(&f, None), "valid through its expiry day");
    let f = f.with_credential(|c| c.expiry_date = today - 1);
    assert!(!fixture_satisfied(
        &f,
        Some(Unprovable::Expired {
            expiry: today - 1,
            today
        })
    ));
}

#[test]
fn wrong_holder_is_rejected() {
    let f = Fixture::new(7);
    let mut statement = f.statement();
    statement.wallet = Address20([0xb2; 20]);
    assert!(!satisfied(
        &statement,
        &f.signed,
        &f.secret,
        &f.path(),
        Some(Unprovable::HolderMismatch {
            holder: f.wallet,
            wallet: statement.wallet
        })
    ));
}

#[test]
fn bad_signature_is_rejected() {
    let f = Fixture::new(8);
    // A signature over different attributes.
    let mut forged = f.signed;
    forged.credential.kyc_level = 9;
    assert!(!satisfied(
        &f.statement(),
        &forged,
        &f.secret,
        &f.path(),
        Some(Unprovable::BadSignature)
    ));
    // A tampered response scalar.
    let mut tampered = f.signed;
    tampered.signature.s += ark_ed_on_bn254::Fr::from(1u64);
    assert!(!satisfied(
        &f.statement(),
        &tampered,
        &f.secret,
        &f.path(),
        Some(Unprovable::BadSignature)
    ));
    // Signed by another key that claims to be the trusted issuer.
    let impostor = IssuerKey::generate(&mut rng(99));
    let mut wrong_key = SignedCredential::issue(&impostor, f.credential());
    wrong_key.issuer = f.issuer.public();
    assert!(!satisfied(
        &f.statement(),
        &wrong_key,
        &f.secret,
        &f.path(),
        Some(Unprovable::BadSignature)
    ));
}

#[test]
fn other_issuer_in_statement_is_rejected() {
    let f = Fixture::new(9);
    let other = IssuerKey::generate(&mut rng(100));
    let mut statement = f.statement();
    statement.issuer = other.public();
    assert!(!satisfied(
        &statement,
        &f.signed,
        &f.secret,
        &f.path(),
        Some(Unprovable::IssuerMismatch)
    ));
}

#[test]
fn revoked_credential_is_rejected() {
    let mut f = Fixture::new(10);
    let old_path = f.path();
    f.tree.revoke(f.credential().revocation_nonce);
    assert!(matches!(
        f.tree.non_revocation_path(f.credential().revocation_nonce),
        Err(ZkError::Revoked(42))
    ));
    // The old path against the new root.
    assert!(!satisfied(
        &f.statement(),
        &f.signed,
        &f.secret,
        &old_path,
        Some(Unprovable::RevocationRootMismatch)
    ));
    // Borrowing another position's path does not help. The circuit takes only the siblings and
    // places the empty leaf at the *credential's* nonce (`path.nonce` is not a circuit input),
    // so a revoked credential with nonce 44 cannot use the valid path of unrevoked nonce 42.
    let mut revoked = Fixture::new(10).with_credential(|c| c.revocation_nonce = 44);
    revoked.tree.revoke(44);
    let borrowed = revoked.tree.non_revocation_path(42).unwrap();
    assert!(borrowed.verify(&revoked.tree.root()));
    // Labelled 42, the native check sees the mismatch; relabelled 44, it passes that check and
    // fails on the root. The circuit gets the same siblings either way and is unsatisfiable.
    assert!(matches!(
        check_witness(
            &revoked.statement(),
            &revoked.signed,
            &revoked.secret,
            &borrowed
        ),
        Err(ZkError::Unprovable(Unprovable::NonceMismatch {
            path: 42,
            credential: 44
        }))
    ));
    let mut relabelled = borrowed.clone();
    relabelled.nonce = 44;
    assert!(!satisfied(
        &revoked.statement(),
        &revoked.signed,
        &revoked.secret,
        &relabelled,
        Some(Unprovable::RevocationRootMismatch)
    ));
}

#[test]
fn wrong_nullifier_or_secret_is_rejected() {
    let f = Fixture::new(11);
    let mut statement = f.statement();
    statement.nullifier = f.secret.nullifier(&scope_from_label(b"another scope"));
    assert!(!satisfied(
        &statement,
        &f.signed,
        &f.secret,
        &f.path(),
        Some(Unprovable::NullifierMismatch)
    ));
    // A different secret (whose nullifier the statement uses) does not open the commitment.
    let other = HolderSecret::generate(&mut rng(101));
    let mut statement = f.statement();
    statement.nullifier = other.nullifier(&f.scope);
    assert!(!satisfied(
        &statement,
        &f.signed,
        &other,
        &f.path(),
        Some(Unprovable::SecretMismatch)
    ));
}

#[test]
fn leap_day_birthday() {
    // Born 2008-02-29: not 18 on 2026-02-28, 18 on 2026-03-01.
    let mut f = Fixture::new(12).with_credential(|c| c.birth_date = date(2008, 2, 29));
    f.today = date(2026, 2, 28);
    assert!(!fixture_satisfied(
        &f,
        Some(Unprovable::Underage { min_age_years: 18 })
    ));
    f.today = date(2026, 3, 1);
    assert!(fixture_satisfied(&f, None));
}

/// Satisfiability of the fixture's witness with its public inputs, as raw field elements,
/// edited by `edit` (bypassing `PublicStatement`, which only produces in-range values).
fn satisfied_with_raw_inputs(f: &Fixture, edit: impl FnOnce(&mut [Fr; NUM_PUBLIC_INPUTS])) -> bool {
    let circuit = ZkDidCircuit::new(&f.statement(), &f.signed, &f.secret, &f.path()).unwrap();
    let mut inputs = *circuit.public_inputs();
    edit(&mut inputs);
    circuit
        .with_raw_public_inputs(inputs)
        .is_satisfied()
        .unwrap()
}

/// `date`, `max_birth_date` and `min_kyc` are range checked in the circuit, not only by the
/// typed statement: a verifier fed raw field elements (an EVM verifier contract, say) cannot be
/// made to accept wrapped-around values. Each case below satisfies every comparison if the
/// public side is not range checked.
#[test]
fn out_of_range_public_inputs_are_unsatisfiable() {
    const DATE: usize = 4;
    const MAX_BIRTH: usize = 5;
    const MIN_KYC: usize = 6;
    let p_minus = |k: u64| -Fr::from(k);
    // The native check names the violation each forged witness below hides.
    let unprovable =
        |f: &Fixture| match check_witness(&f.statement(), &f.signed, &f.secret, &f.path()) {
            Err(ZkError::Unprovable(reason)) => reason,
            other => panic!("expected Unprovable, got {other:?}"),
        };

    // Control: the raw inputs as derived from the statement are fine.
    assert!(satisfied_with_raw_inputs(&Fixture::new(20), |_| {}));

    // An expired credential, claimed for `date = p - k` ("before" every expiry date).
    let f = Fixture::new(20);
    let today = f.today;
    let expired = f.with_credential(|c| c.expiry_date = today - 1);
    assert!(matches!(unprovable(&expired), Unprovable::Expired { .. }));
    for k in [1u64, 1 << 31] {
        assert!(
            !satisfied_with_raw_inputs(&expired, |i| i[DATE] = p_minus(k)),
            "date = p - {k} must not hide expiry"
        );
    }

    // A holder aged 6, with `max_birth_date` just above 32 bits (so `max - birth` still fits).
    let child = Fixture::new(21).with_credential(|c| c.birth_date = date(2020, 1, 1));
    assert!(matches!(unprovable(&child), Unprovable::Underage { .. }));
    assert!(
        !satisfied_with_raw_inputs(&child, |i| i[MAX_BIRTH] = Fr::from(1u64 << 32)),
        "max_birth_date = 2^32 must not make a child an adult"
    );

    // KYC level 0 against `min_kyc = p - k` ("below" every level).
    let unverified = Fixture::new(22).with_credential(|c| c.kyc_level = 0);
    assert!(matches!(
        unprovable(&unverified),
        Unprovable::KycTooLow { .. }
    ));
    assert!(
        !satisfied_with_raw_inputs(&unverified, |i| i[MIN_KYC] = p_minus(1)),
        "min_kyc = p - 1 must not pass KYC level 0"
    );
}
