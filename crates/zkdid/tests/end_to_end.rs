//! Full Groth16 flow through the registry helper. One insecure dev setup and one valid proof are
//! shared by all tests (key generation and proving take seconds in an unoptimized test build).

mod common;

use std::sync::OnceLock;

use ark_bn254::Bn254;
use ark_groth16::Groth16;
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use common::*;
use pharos_zkdid::*;

fn keys() -> &'static (ProvingKey, VerifyingKey) {
    static KEYS: OnceLock<(ProvingKey, VerifyingKey)> = OnceLock::new();
    KEYS.get_or_init(|| insecure_dev_setup(2026).unwrap())
}

/// The fixture and a valid proof for its statement.
fn proven() -> &'static (Fixture, ProofBytes) {
    static PROVEN: OnceLock<(Fixture, ProofBytes)> = OnceLock::new();
    PROVEN.get_or_init(|| {
        let f = Fixture::new(77);
        let proof = prove_with_rng(
            &keys().0,
            &f.signed,
            &f.secret,
            &f.path(),
            &f.statement(),
            &mut rng(5),
        )
        .unwrap();
        (f, proof)
    })
}

/// A key file around `body` with the given flags and a correct checksum (over the header bytes
/// before it and the body).
fn with_header_flags(kind: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = b"PHZKDID\0".to_vec();
    h.extend_from_slice(&[kind, 2, flags, 0, NUM_PUBLIC_INPUTS as u8]);
    let digest = Sha256::new().chain_update(&h).chain_update(body).finalize();
    h.extend_from_slice(&digest);
    h.extend_from_slice(body);
    h
}

/// A key file around `body`, flagged insecure-dev, with a correct checksum.
fn with_header(kind: u8, body: &[u8]) -> Vec<u8> {
    with_header_flags(kind, 1, body)
}

/// A verifier with `policy` and the (insecure, so explicitly allowed) test key.
fn verifier_with(policy: Policy) -> ClaimVerifier {
    ClaimVerifier::new_allowing_insecure_dev(keys().1.clone(), policy).unwrap()
}

fn verifier() -> ClaimVerifier {
    verifier_with(Policy::default())
}

/// A proof that decodes (valid subgroup points) but proves nothing: the valid proof with `A`
/// negated.
fn decodable_wrong_proof(proof: &ProofBytes) -> Vec<u8> {
    let mut decoded = decode_proof(proof.as_bytes()).unwrap();
    decoded.a = -decoded.a;
    let mut bytes = Vec::new();
    decoded.serialize_compressed(&mut bytes).unwrap();
    assert_eq!(bytes.len(), PROOF_LEN);
    bytes
}

#[test]
fn valid_proof_is_accepted_and_recorded() {
    let (f, proof) = proven();
    assert_eq!(proof.as_bytes().len(), PROOF_LEN);
    assert!(keys().1.is_insecure_dev());
    verify(&keys().1, &f.statement(), proof.as_bytes()).unwrap();

    let mut registry = f.registry();
    let statement = f.statement().to_bytes();
    let claim = registry
        .submit(&verifier(), f.wallet, f.today, &statement, proof.as_bytes())
        .unwrap();
    assert_eq!(claim.wallet, f.wallet);
    assert_eq!(claim.issuer, f.issuer.public());
    assert_eq!(claim.scope, f.scope);
    assert_eq!(claim.nullifier, f.secret.nullifier(&f.scope));
    assert_eq!(claim.requirements, f.requirements);
    assert_eq!(claim.date, f.today);
    assert_eq!(registry.claims(), std::slice::from_ref(&claim));
    let json = serde_json::to_string(&claim).unwrap();
    assert_eq!(serde_json::from_str::<Claim>(&json).unwrap(), claim);

    // A proof made the day before is still accepted (one day of lag), not two days before.
    let fresh = f.registry();
    verifier()
        .verify(&fresh, f.wallet, f.today + 1, &statement, proof.as_bytes())
        .unwrap();
    let err = verifier()
        .verify(&fresh, f.wallet, f.today + 2, &statement, proof.as_bytes())
        .unwrap_err();
    assert!(matches!(err, ZkError::WrongDate { .. }), "{err}");
    // Never from the future.
    let err = verifier()
        .verify(&fresh, f.wallet, f.today - 1, &statement, proof.as_bytes())
        .unwrap_err();
    assert!(matches!(err, ZkError::WrongDate { .. }), "{err}");
}

#[test]
fn proof_for_another_wallet_is_rejected() {
    let (f, proof) = proven();
    let registry = f.registry();
    let mallory = Address20([0xee; 20]);

    // Alice's proof submitted from Mallory's account.
    let err = verifier()
        .verify(
            &registry,
            mallory,
            f.today,
            &f.statement().to_bytes(),
            proof.as_bytes(),
        )
        .unwrap_err();
    assert!(matches!(err, ZkError::WrongWallet { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("proof is bound to another wallet"),
        "{err}"
    );

    // Alice's proof with the statement rewritten to Mallory's wallet.
    let mut rewritten = f.statement();
    rewritten.wallet = mallory;
    let err = verifier()
        .verify(
            &registry,
            mallory,
            f.today,
            &rewritten.to_bytes(),
            proof.as_bytes(),
        )
        .unwrap_err();
    assert!(matches!(err, ZkError::InvalidProof), "{err:?}");
    assert_eq!(
        err.to_string(),
        "proof does not verify against the public statement"
    );

    // Mallory cannot make a proof for her wallet from Alice's credential.
    let err = prove(&keys().0, &f.signed, &f.secret, &f.path(), &rewritten).unwrap_err();
    assert!(
        matches!(err, ZkError::Unprovable(Unprovable::HolderMismatch { .. })),
        "{err:?}"
    );
}

#[test]
fn revoked_credential_is_rejected() {
    let (f, proof) = proven();
    let mut registry = f.registry();
    let mut tree = f.tree.clone();
    let nonce = f.credential().revocation_nonce;
    tree.revoke(nonce);
    registry
        .set_revocation_root(&f.issuer.public(), tree.root())
        .unwrap();

    // The proof made before the revocation is now against a stale root.
    let err = verifier()
        .verify(
            &registry,
            f.wallet,
            f.today,
            &f.statement().to_bytes(),
            proof.as_bytes(),
        )
        .unwrap_err();
    assert!(matches!(err, ZkError::StaleRevocationRoot), "{err:?}");
    assert!(err.to_string().contains("revocation root does not match"));

    // Claiming the new root with the old proof fails verification.
    let mut updated = f.statement();
    updated.revocation_root = tree.root();
    let err = verifier()
        .verify(
            &registry,
            f.wallet,
            f.today,
            &updated.to_bytes(),
            proof.as_bytes(),
        )
        .unwrap_err();
    assert!(matches!(err, ZkError::InvalidProof), "{err:?}");

    // And no new proof can be made: the tree refuses a path, and the old path does not match.
    let err = tree.non_revocation_path(nonce).unwrap_err();
    assert_eq!(
        err.to_string(),
        "credential is revoked (revocation nonce 42)"
    );
    let err = prove(&keys().0, &f.signed, &f.secret, &f.path(), &updated).unwrap_err();
    assert!(
        matches!(err, ZkError::Unprovable(Unprovable::RevocationRootMismatch)),
        "{err:?}"
    );
}

#[test]
fn reused_nullifier_is_rejected() {
    let (f, proof) = proven();
    let mut registry = f.registry();
    let statement = f.statement().to_bytes();
    registry
        .submit(&verifier(), f.wallet, f.today, &statement, proof.as_bytes())
        .unwrap();
    let err = registry
        .submit(&verifier(), f.wallet, f.today, &statement, proof.as_bytes())
        .unwrap_err();
    assert!(matches!(err, ZkError::NullifierUsed), "{err:?}");
    assert_eq!(err.to_string(), "nullifier already used for this scope");

    // A re-randomized proof (different bytes, equally valid) hits the same nullifier.
    let decoded = decode_proof(proof.as_bytes()).unwrap();
    let rerandomized = Groth16::<Bn254>::rerandomize_proof(keys().1.ark(), &decoded, &mut rng(6));
    let mut bytes = Vec::new();
    rerandomized.serialize_compressed(&mut bytes).unwrap();
    assert_ne!(bytes, proof.as_bytes());
    verify(&keys().1, &f.statement(), &bytes).unwrap();
    let err = registry
        .submit(&verifier(), f.wallet, f.today, &statement, &bytes)
        .unwrap_err();
    assert!(matches!(err, ZkError::NullifierUsed), "{err:?}");
    assert_eq!(registry.claims().len(), 1);

    // The nullifier is per scope: the same nullifier in another scope is unrelated state.
    assert!(!registry.is_nullifier_used(&scope_from_label(b"other"), &f.statement().nullifier));
}

#[test]
fn untrusted_issuer_is_rejected() {
    let (f, proof) = proven();
    let statement = f.statement().to_bytes();

    // The registry trusts some other issuer only.
    let mut registry = InMemoryRegistry::new();
    let other = IssuerKey::generate(&mut rng(123));
    registry.trust_issuer(other.public(), f.tree.root());
    let err = verifier()
        .verify(&registry, f.wallet, f.today, &statement, proof.as_bytes())
        .unwrap_err();
    assert!(matches!(err, ZkError::UntrustedIssuer(_)), "{err:?}");
    assert!(err.to_string().starts_with("untrusted issuer 0x"), "{err}");

    // Trust withdrawn.
    let mut registry = f.registry();
    assert!(registry.distrust_issuer(&f.issuer.public()));
    let err = verifier()
        .verify(&registry, f.wallet, f.today, &statement, proof.as_bytes())
        .unwrap_err();
    assert!(matches!(err, ZkError::UntrustedIssuer(_)), "{err:?}");

    // Relabelling the statement to a trusted issuer breaks the proof.
    let mut registry = f.registry();
    registry.trust_issuer(other.public(), f.tree.root());
    let mut relabelled = f.statement();
    relabelled.issuer = other.public();
    let err = verifier()
        .verify(
            &registry,
            f.wallet,
            f.today,
            &relabelled.to_bytes(),
            proof.as_bytes(),
        )
        .unwrap_err();
    assert!(matches!(err, ZkError::InvalidProof), "{err:?}");
}

#[test]
fn tampered_proof_is_rejected() {
    let (f, proof) = proven();
    let registry = f.registry();
    let statement = f.statement().to_bytes();
    let mut malformed = 0;
    let mut invalid = 0;
    for position in [0usize, 5, 31, 32, 60, 95, 96, 110, 127] {
        for mask in [0x01u8, 0x80] {
            let mut bytes = proof.0;
            bytes[position] ^= mask;
            let err = verifier()
                .verify(&registry, f.wallet, f.today, &statement, &bytes)
                .unwrap_err();
            match err {
                ZkError::MalformedProof(_) => malformed += 1,
                ZkError::InvalidProof => invalid += 1,
                other => panic!("byte {position} mask {mask:#x}: unexpected {other:?}"),
            }
        }
    }
    // Some flips leave a valid curve point (a different proof), others do not.
    assert!(
        malformed > 0 && invalid > 0,
        "{malformed} malformed, {invalid} invalid"
    );

    // Tampering with the statement instead: claim a higher KYC level.
    let mut stronger = f.statement();
    stronger.requirements.min_kyc_level = 2;
    assert_eq!(
        verify(&keys().1, &stronger, proof.as_bytes())
            .unwrap_err()
            .to_string(),
        "proof does not verify against the public statement"
    );
}

#[test]
fn malformed_bytes_are_rejected() {
    let (f, proof) = proven();
    let registry = f.registry();
    let statement = f.statement().to_bytes();
    let check = |bytes: &[u8]| {
        verifier()
            .verify(&registry, f.wallet, f.today, &statement, bytes)
            .unwrap_err()
    };
    let err = check(&[]);
    assert_eq!(
        err.to_string(),
        "proof is not a valid compressed Groth16 proof: expected 128 bytes, got 0"
    );
    let err = check(&proof.0[..100]);
    assert!(matches!(err, ZkError::MalformedProof(_)), "{err:?}");
    let mut long = proof.0.to_vec();
    long.push(0);
    assert!(matches!(check(&long), ZkError::MalformedProof(_)));
    let mut junk_rng = rng(9);
    for _ in 0..8 {
        let mut junk = [0u8; PROOF_LEN];
        ark_std::rand::RngCore::fill_bytes(&mut junk_rng, &mut junk);
        let err = check(&junk);
        assert!(
            matches!(err, ZkError::MalformedProof(_) | ZkError::InvalidProof),
            "{err:?}"
        );
    }
    assert!(matches!(
        check(&[0xff; PROOF_LEN]),
        ZkError::MalformedProof(_)
    ));

    // Malformed statement bytes with a valid proof.
    let err = verifier()
        .verify(
            &registry,
            f.wallet,
            f.today,
            &statement[..10],
            proof.as_bytes(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "public statement is malformed: expected 203 bytes, got 10"
    );
}

/// The policy is checked before the (expensive) proof: a statement below the policy is refused
/// with `PolicyViolation` even when its proof is well-formed but wrong, which a verifier checking
/// the proof first would report as `InvalidProof`.
#[test]
fn policy_is_enforced_before_verification() {
    let (f, proof) = proven();
    let registry = f.registry();
    let check = |policy: Policy, statement: &PublicStatement, proof: &[u8]| {
        // Control: the proof is decodable and does not verify for this statement.
        decode_proof(proof).unwrap();
        assert!(matches!(
            verify(&keys().1, statement, proof),
            Err(ZkError::InvalidProof)
        ));
        let err = verifier_with(policy)
            .verify(&registry, f.wallet, f.today, &statement.to_bytes(), proof)
            .unwrap_err();
        assert!(matches!(err, ZkError::PolicyViolation(_)), "{err:?}");
        err.to_string()
    };
    let weaker = |edit: &dyn Fn(&mut Requirements)| {
        let mut statement = f.statement();
        edit(&mut statement.requirements);
        statement
    };

    // Statements asking less than the policy, submitted with the proof made for the fixture's
    // (stronger) statement, which does not verify for them.
    let msg = check(
        Policy::default(),
        &weaker(&|r| r.min_age_years = 17),
        proof.as_bytes(),
    );
    assert!(
        msg.contains("proves age ≥ 17, the registry requires ≥ 18"),
        "{msg}"
    );
    let msg = check(
        Policy {
            min_kyc_level: 1,
            ..Policy::default()
        },
        &weaker(&|r| r.min_kyc_level = 0),
        proof.as_bytes(),
    );
    assert!(
        msg.contains("proves KYC level ≥ 0, the registry requires ≥ 1"),
        "{msg}"
    );
    let msg = check(
        Policy {
            required_blocked_countries: vec![760],
            ..Policy::default()
        },
        &weaker(&|r| r.blocked_countries[2] = 0),
        proof.as_bytes(),
    );
    assert!(msg.contains("does not exclude country 760"), "{msg}");

    // The fixture's own statement under stricter policies, with a well-formed wrong proof.
    let wrong = decodable_wrong_proof(proof);
    let statement = f.statement();
    let msg = check(
        Policy {
            min_age_years: 21,
            ..Policy::default()
        },
        &statement,
        &wrong,
    );
    assert!(msg.contains("requires ≥ 21"), "{msg}");
    let msg = check(
        Policy {
            min_kyc_level: 2,
            ..Policy::default()
        },
        &statement,
        &wrong,
    );
    assert!(
        msg.contains("proves KYC level ≥ 1, the registry requires ≥ 2"),
        "{msg}"
    );
    let msg = check(
        Policy {
            required_blocked_countries: vec![192],
            ..Policy::default()
        },
        &statement,
        &wrong,
    );
    assert!(msg.contains("does not exclude country 192"), "{msg}");

    // And with the correct proof a policy the statement meets accepts it.
    verifier_with(Policy {
        min_kyc_level: 1,
        required_blocked_countries: vec![760, 408],
        ..Policy::default()
    })
    .verify(
        &registry,
        f.wallet,
        f.today,
        &statement.to_bytes(),
        proof.as_bytes(),
    )
    .unwrap();
}

/// Every cheap registry check runs before the proof is decoded (point decompression and the
/// G2 subgroup check are the expensive part of rejecting junk).
#[test]
fn cheap_checks_come_before_proof_decoding() {
    let (f, _) = proven();
    let garbage = [0xffu8; PROOF_LEN];
    assert!(matches!(
        decode_proof(&garbage),
        Err(ZkError::MalformedProof(_))
    ));
    let statement = f.statement();
    let submit = |registry: &InMemoryRegistry,
                  verifier: &ClaimVerifier,
                  sender: Address20,
                  today: i32,
                  statement: &PublicStatement| {
        verifier
            .verify(registry, sender, today, &statement.to_bytes(), &garbage)
            .unwrap_err()
    };

    // Untrusted issuer.
    let untrusted = InMemoryRegistry::new();
    let err = submit(&untrusted, &verifier(), f.wallet, f.today, &statement);
    assert!(matches!(err, ZkError::UntrustedIssuer(_)), "{err:?}");
    // Stale root.
    let mut stale = f.registry();
    stale
        .set_revocation_root(&f.issuer.public(), Fr::from(7u64))
        .unwrap();
    let err = submit(&stale, &verifier(), f.wallet, f.today, &statement);
    assert!(matches!(err, ZkError::StaleRevocationRoot), "{err:?}");
    // Wrong scope.
    let scoped = verifier_with(Policy {
        required_scope: Some(scope_from_label(b"another registry")),
        ..Policy::default()
    });
    let err = submit(&f.registry(), &scoped, f.wallet, f.today, &statement);
    assert!(matches!(err, ZkError::WrongScope { .. }), "{err:?}");
    // Used nullifier.
    let mut used = f.registry();
    used.record(Claim {
        wallet: f.wallet,
        issuer: f.issuer.public(),
        scope: f.scope,
        nullifier: statement.nullifier,
        requirements: f.requirements,
        date: f.today,
        revocation_root: f.tree.root(),
    })
    .unwrap();
    let err = submit(&used, &verifier(), f.wallet, f.today, &statement);
    assert!(matches!(err, ZkError::NullifierUsed), "{err:?}");
    // Wrong sender, wrong date, policy.
    let registry = f.registry();
    let err = submit(
        &registry,
        &verifier(),
        Address20([0xee; 20]),
        f.today,
        &statement,
    );
    assert!(matches!(err, ZkError::WrongWallet { .. }), "{err:?}");
    let err = submit(&registry, &verifier(), f.wallet, f.today + 5, &statement);
    assert!(matches!(err, ZkError::WrongDate { .. }), "{err:?}");
    let mut young = statement;
    young.requirements.min_age_years = 16;
    let err = submit(&registry, &verifier(), f.wallet, f.today, &young);
    assert!(matches!(err, ZkError::PolicyViolation(_)), "{err:?}");
    // Everything else in order: now the proof is looked at.
    let err = submit(&registry, &verifier(), f.wallet, f.today, &statement);
    assert!(matches!(err, ZkError::MalformedProof(_)), "{err:?}");
}

/// `Policy::required_scope` pins the nullifier scope; a holder cannot claim again by picking
/// another scope (the nullifier only makes one claim per credential *per scope*).
#[test]
fn scope_is_enforced() {
    let (f, proof) = proven();
    let statement = f.statement();
    let pinned = verifier_with(Policy {
        required_scope: Some(f.scope),
        ..Policy::default()
    });
    let mut registry = f.registry();
    registry
        .submit(
            &pinned,
            f.wallet,
            f.today,
            &statement.to_bytes(),
            proof.as_bytes(),
        )
        .unwrap();

    // The same holder, another scope: a fresh nullifier, so only the scope check stops a
    // second claim. (The proof is for the first scope; the scope check comes first.)
    let other_scope = scope_from_label(b"scope of my choosing");
    let mut second = statement;
    second.scope = other_scope;
    second.nullifier = f.secret.nullifier(&other_scope);
    assert!(!registry.is_nullifier_used(&second.scope, &second.nullifier));
    let err = pinned
        .verify(
            &registry,
            f.wallet,
            f.today,
            &second.to_bytes(),
            proof.as_bytes(),
        )
        .unwrap_err();
    assert!(
        matches!(err, ZkError::WrongScope { statement, required }
            if statement == other_scope && required == f.scope),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("statement is for nullifier scope 0x")
            && msg.contains("the registry only accepts scope 0x"),
        "{msg}"
    );
    assert!(pinned.policy().check(&second).is_err());
    // Without a required scope the registry would go on to check the proof.
    let err = verifier()
        .verify(
            &registry,
            f.wallet,
            f.today,
            &second.to_bytes(),
            proof.as_bytes(),
        )
        .unwrap_err();
    assert!(matches!(err, ZkError::InvalidProof), "{err:?}");

    // A registry pinned to another scope refuses the valid proof outright.
    let elsewhere = verifier_with(Policy {
        required_scope: Some(other_scope),
        ..Policy::default()
    });
    let err = elsewhere
        .verify(
            &f.registry(),
            f.wallet,
            f.today,
            &statement.to_bytes(),
            proof.as_bytes(),
        )
        .unwrap_err();
    assert!(matches!(err, ZkError::WrongScope { .. }), "{err:?}");
}

/// A policy that no statement can meet, or that is ill-formed, is refused when the verifier is
/// built, not at the first submission.
#[test]
fn invalid_policies_are_refused() {
    let build = |countries: Vec<u16>| {
        verifier_with_result(Policy {
            required_blocked_countries: countries,
            ..Policy::default()
        })
    };
    assert!(build(vec![1, 2, 3, 4, 5, 6, 7, 8]).is_ok());
    let err = build(vec![1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap_err();
    assert!(matches!(err, ZkError::InvalidPolicy(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "invalid registry policy: it requires 9 blocked countries, a statement holds at most 8"
    );
    // Duplicates would let 9 entries look satisfiable; refused as such.
    let err = build(vec![1, 2, 3, 4, 5, 6, 7, 8, 8]).unwrap_err();
    assert!(matches!(err, ZkError::InvalidPolicy(_)), "{err:?}");
    let err = build(vec![408, 364, 408]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid registry policy: required blocked country 408 is listed twice"
    );
    let err = build(vec![408, 0]).unwrap_err();
    assert!(
        err.to_string()
            .contains("required blocked country 0 is padding"),
        "{err}"
    );
    // The same checks on the production constructor (with a key that is not flagged).
    let (_, vk) = production_like_keys();
    let err = ClaimVerifier::new(
        vk,
        Policy {
            required_blocked_countries: vec![0; 9],
            ..Policy::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ZkError::InvalidPolicy(_)), "{err:?}");
}

fn verifier_with_result(policy: Policy) -> Result<ClaimVerifier, ZkError> {
    ClaimVerifier::new_allowing_insecure_dev(keys().1.clone(), policy)
}

/// The test keys re-wrapped as if from a ceremony: the same body in a key file whose header is
/// not flagged insecure-dev (a valid file, checksum included).
fn production_like_keys() -> (Vec<u8>, VerifyingKey) {
    let body = keys().1.to_bytes().unwrap()[45..].to_vec();
    let file = with_header_flags(b'V', 0, &body);
    let vk = VerifyingKey::from_bytes(&file).unwrap();
    assert!(!vk.is_insecure_dev());
    (file, vk)
}

/// `ClaimVerifier::new` refuses keys flagged insecure-dev unless explicitly allowed, and the
/// flag cannot be cleared from a key file without breaking its checksum.
#[test]
fn insecure_dev_keys_are_refused_unless_allowed() {
    let (f, proof) = proven();
    let (_, vk) = keys();
    assert!(vk.is_insecure_dev());
    let err = ClaimVerifier::new(vk.clone(), Policy::default()).unwrap_err();
    assert!(matches!(err, ZkError::InsecureDevKey), "{err:?}");
    assert!(
        err.to_string()
            .contains("comes from the insecure development setup"),
        "{err}"
    );
    // Loaded from a file, the flag survives and is refused the same way.
    let loaded = VerifyingKey::from_bytes(&vk.to_bytes().unwrap()).unwrap();
    assert!(loaded.is_insecure_dev());
    assert!(matches!(
        ClaimVerifier::new(loaded.clone(), Policy::default()),
        Err(ZkError::InsecureDevKey)
    ));
    ClaimVerifier::new_allowing_insecure_dev(loaded, Policy::default()).unwrap();

    // Clearing the flag byte of a dev key file is detected.
    let mut cleared = vk.to_bytes().unwrap();
    assert_eq!(cleared[10], 1);
    cleared[10] = 0;
    let err = VerifyingKey::from_bytes(&cleared).unwrap_err();
    assert_eq!(
        err.to_string(),
        "verifying key is malformed: checksum mismatch: the file is corrupted or truncated"
    );
    let mut cleared_pk = keys().0.to_bytes().unwrap();
    assert_eq!(cleared_pk[10], 1);
    cleared_pk[10] = 0;
    let err = ProvingKey::from_bytes(&cleared_pk).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");

    // A key that is not flagged is accepted by the production constructor.
    let (_, production) = production_like_keys();
    let verifier = ClaimVerifier::new(production, Policy::default()).unwrap();
    verifier
        .verify(
            &f.registry(),
            f.wallet,
            f.today,
            &f.statement().to_bytes(),
            proof.as_bytes(),
        )
        .unwrap();
}

#[test]
fn keys_round_trip_through_files() {
    let (f, proof) = proven();
    let (pk, vk) = keys();
    let dir = std::env::temp_dir().join(format!("pharos-zkdid-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pk_path = dir.join("zkdid.pk");
    let vk_path = dir.join("zkdid.vk");
    pk.save(&pk_path).unwrap();
    vk.save(&vk_path).unwrap();

    let loaded_vk = VerifyingKey::load(&vk_path).unwrap();
    assert!(loaded_vk.is_insecure_dev());
    verify(&loaded_vk, &f.statement(), proof.as_bytes()).unwrap();
    let loaded_pk = ProvingKey::load(&pk_path).unwrap();
    assert!(loaded_pk.is_insecure_dev());
    assert_eq!(loaded_pk.to_bytes().unwrap(), pk.to_bytes().unwrap());
    assert_eq!(
        loaded_pk.verifying_key().to_bytes().unwrap(),
        vk.to_bytes().unwrap()
    );

    // Wrong kind of file.
    let err = ProvingKey::load(&vk_path).unwrap_err();
    assert_eq!(
        err.to_string(),
        "proving key is malformed: the file holds a verifying key"
    );
    // Truncated and corrupted files.
    let vk_bytes = std::fs::read(&vk_path).unwrap();
    let err = VerifyingKey::from_bytes(&vk_bytes[..vk_bytes.len() - 1]).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    let mut corrupted = vk_bytes.clone();
    corrupted[60] ^= 0x55;
    let err = VerifyingKey::from_bytes(&corrupted).unwrap_err();
    assert_eq!(
        err.to_string(),
        "verifying key is malformed: checksum mismatch: the file is corrupted or truncated"
    );
    let mut trailing = vk_bytes.clone();
    trailing.push(0);
    assert!(VerifyingKey::from_bytes(&trailing).is_err());
    // A well-formed key for a circuit with the same public inputs but other dimensions.
    let mut inner = ark_groth16::ProvingKey::<Bn254>::deserialize_compressed_unchecked(
        &pk.to_bytes().unwrap()[45..],
    )
    .unwrap();
    inner.l_query.pop();
    let mut body = Vec::new();
    inner.serialize_compressed(&mut body).unwrap();
    let err = ProvingKey::from_bytes(&with_header(b'P', &body)).unwrap_err();
    assert!(
        err.to_string().contains("generated for another circuit"),
        "{err}"
    );
    // Trailing bytes after a valid body (with a matching checksum).
    let mut vk_body = vk_bytes[45..].to_vec();
    vk_body.push(0);
    let err = VerifyingKey::from_bytes(&with_header(b'V', &vk_body)).unwrap_err();
    assert!(
        err.to_string().contains("1 unexpected trailing bytes"),
        "{err}"
    );

    std::fs::remove_dir_all(&dir).unwrap();
}
