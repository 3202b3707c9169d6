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

/// A key file around `body`, with a correct checksum.
fn with_header(kind: u8, body: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = b"PHZKDID\0".to_vec();
    h.extend_from_slice(&[kind, 1, 1, 0, NUM_PUBLIC_INPUTS as u8]);
    h.extend_from_slice(&Sha256::digest(body));
    h.extend_from_slice(body);
    h
}

fn verifier() -> ClaimVerifier {
    ClaimVerifier::new(keys().1.clone(), Policy::default())
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

#[test]
fn policy_is_enforced_before_verification() {
    let (f, proof) = proven();
    let registry = f.registry();
    let strict = ClaimVerifier::new(
        keys().1.clone(),
        Policy {
            min_age_years: 21,
            ..Policy::default()
        },
    );
    let err = strict
        .verify(
            &registry,
            f.wallet,
            f.today,
            &f.statement().to_bytes(),
            proof.as_bytes(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("requires ≥ 21"), "{err}");
    let blocks_cuba = ClaimVerifier::new(
        keys().1.clone(),
        Policy {
            required_blocked_countries: vec![192],
            ..Policy::default()
        },
    );
    let err = blocks_cuba
        .verify(
            &registry,
            f.wallet,
            f.today,
            &f.statement().to_bytes(),
            proof.as_bytes(),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("does not exclude country 192"),
        "{err}"
    );
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
