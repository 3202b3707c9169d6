//! Byte encodings of external data: statements, proofs, signatures, keys and paths decode what
//! they encode and reject malformed input with a clear error, never a panic.

mod common;

use ark_bn254::{Bn254, G1Projective, G2Projective};
use ark_ec::{CurveGroup, PrimeGroup};
use ark_serialize::CanonicalSerialize;
use common::*;
use pharos_zkdid::eddsa::{PUBLIC_KEY_LEN, SIGNATURE_LEN};
use pharos_zkdid::revocation::PATH_LEN;
use pharos_zkdid::*;
use proptest::prelude::*;

/// The fields of the statement encoding: name, offset, length.
const STATEMENT_FIELDS: [(&str, usize, usize); 11] = [
    ("version", 0, 1),
    ("issuer.x", 1, 32),
    ("issuer.y", 33, 32),
    ("revocation root", 65, 32),
    ("wallet", 97, 20),
    ("date", 117, 4),
    ("min age", 121, 1),
    ("min kyc", 122, 1),
    ("blocked", 123, 16),
    ("scope", 139, 32),
    ("nullifier", 171, 32),
];

/// Decodes mutated statement bytes: they must either be rejected as a malformed statement or
/// decode to a statement that re-encodes to exactly these bytes. Returns whether they decoded.
fn rejected_or_canonical(bytes: &[u8]) -> bool {
    match PublicStatement::from_bytes(bytes) {
        Ok(statement) => {
            assert_eq!(statement.to_bytes().as_slice(), bytes, "not canonical");
            true
        }
        Err(ZkError::MalformedStatement(_)) => false,
        Err(other) => panic!("expected MalformedStatement, got {other:?}"),
    }
}

/// A key file around `body`: correct magic, version, input count and checksum.
fn key_file(kind: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    key_header(kind, 2, flags, NUM_PUBLIC_INPUTS as u8, body)
}

/// A well-formed (random, not from a setup) compressed verifying-key body.
fn random_vk_body(seed: u64) -> Vec<u8> {
    use ark_std::UniformRand;
    let mut rng = rng(seed);
    let g1 = |rng: &mut _| (G1Projective::generator() * ark_bn254::Fr::rand(rng)).into_affine();
    let g2 = |rng: &mut _| (G2Projective::generator() * ark_bn254::Fr::rand(rng)).into_affine();
    let vk = ark_groth16::VerifyingKey::<Bn254> {
        alpha_g1: g1(&mut rng),
        beta_g2: g2(&mut rng),
        gamma_g2: g2(&mut rng),
        delta_g2: g2(&mut rng),
        gamma_abc_g1: (0..=NUM_PUBLIC_INPUTS).map(|_| g1(&mut rng)).collect(),
    };
    let mut body = Vec::new();
    vk.serialize_compressed(&mut body).unwrap();
    body
}

fn statement_strategy() -> impl Strategy<Value = PublicStatement> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 20]>(),
        -1_000_000i32..1_000_000,
        any::<u8>(),
        any::<u8>(),
        any::<[u16; MAX_BLOCKED_COUNTRIES]>(),
        any::<[u8; 31]>(),
        any::<[u8; 31]>(),
    )
        .prop_map(|(seed, wallet, date, age, kyc, blocked, root, nullifier)| {
            let issuer = IssuerKey::from_seed(&seed);
            let fr = |b: [u8; 31]| {
                let mut full = [0u8; 32];
                full[1..].copy_from_slice(&b);
                fr_from_bytes(&full).unwrap()
            };
            PublicStatement {
                issuer: issuer.public(),
                revocation_root: fr(root),
                wallet: Address20(wallet),
                date,
                requirements: Requirements {
                    min_age_years: age,
                    min_kyc_level: kyc,
                    blocked_countries: blocked,
                },
                scope: scope_from_label(&seed),
                nullifier: fr(nullifier),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn statement_round_trips(statement in statement_strategy()) {
        let bytes = statement.to_bytes();
        prop_assert_eq!(bytes.len(), STATEMENT_LEN);
        prop_assert_eq!(PublicStatement::from_bytes(&bytes).unwrap(), statement);
        let json = serde_json::to_string(&statement).unwrap();
        prop_assert_eq!(serde_json::from_str::<PublicStatement>(&json).unwrap(), statement);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = PublicStatement::from_bytes(&bytes);
        let _ = decode_proof(&bytes);
        let _ = Signature::from_bytes(&bytes);
        let _ = IssuerPublicKey::from_bytes(&bytes);
        let _ = NonRevocationPath::from_bytes(&bytes);
        let _ = VerifyingKey::from_bytes(&bytes);
    }

    /// Random bytes of exactly the expected length get past every length check.
    #[test]
    fn exact_length_bytes_never_panic(
        statement in proptest::collection::vec(any::<u8>(), STATEMENT_LEN),
        proof in proptest::collection::vec(any::<u8>(), PROOF_LEN),
        path in proptest::collection::vec(any::<u8>(), PATH_LEN),
        signature in proptest::collection::vec(any::<u8>(), SIGNATURE_LEN),
        key in proptest::collection::vec(any::<u8>(), PUBLIC_KEY_LEN),
    ) {
        prop_assert_eq!(STATEMENT_LEN, 203);
        prop_assert_eq!(PROOF_LEN, 128);
        let _ = rejected_or_canonical(&statement);
        prop_assert!(matches!(decode_proof(&proof), Ok(_) | Err(ZkError::MalformedProof(_))));
        // Every 32-byte sibling below the modulus is a valid path (the nonce is any u32).
        if let Ok(decoded) = NonRevocationPath::from_bytes(&path) {
            prop_assert_eq!(decoded.to_bytes(), path);
        }
        if let Ok(decoded) = Signature::from_bytes(&signature) {
            prop_assert_eq!(decoded.to_bytes().to_vec(), signature);
        }
        if let Ok(decoded) = IssuerPublicKey::from_bytes(&key) {
            prop_assert_eq!(decoded.to_bytes().to_vec(), key);
        }
    }

    /// Key files whose header (checksum included) is valid, so the body reaches the decoder.
    #[test]
    fn key_files_with_valid_headers_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..1000),
        flags in 0u8..2,
    ) {
        for kind in [b'V', b'P'] {
            let file = key_file(kind, flags, &body);
            let err = if kind == b'V' {
                VerifyingKey::from_bytes(&file).unwrap_err()
            } else {
                ProvingKey::from_bytes(&file).unwrap_err()
            };
            prop_assert!(matches!(err, ZkError::MalformedKey { .. }), "{:?}", err);
        }
    }

    /// A well-formed verifying-key body with one byte changed (and the checksum recomputed):
    /// decodes to a valid key or is rejected, never panics. (A decoded key need not re-encode
    /// to the same bytes: arkworks ignores the x bytes of a point flagged as infinity.)
    #[test]
    fn mutated_verifying_key_bodies_never_panic(
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut body = random_vk_body(3);
        let i = position.index(body.len());
        body[i] = value;
        match VerifyingKey::from_bytes(&key_file(b'V', 0, &body)) {
            Ok(vk) => prop_assert!(VerifyingKey::from_bytes(&vk.to_bytes().unwrap()).is_ok()),
            Err(err) => prop_assert!(matches!(err, ZkError::MalformedKey { .. }), "{:?}", err),
        }
    }

    /// Start from a valid encoding and change one byte: the result is rejected with
    /// `MalformedStatement` or is itself a canonical encoding of a (different) statement.
    #[test]
    fn mutated_statement_bytes_are_rejected_or_canonical(
        statement in statement_strategy(),
        position in 0..STATEMENT_LEN,
        value in any::<u8>(),
    ) {
        let mut bytes = statement.to_bytes();
        let changed = bytes[position] != value;
        bytes[position] = value;
        if rejected_or_canonical(&bytes) {
            let decoded = PublicStatement::from_bytes(&bytes).unwrap();
            prop_assert_eq!(decoded != statement, changed);
        }
    }

    /// Start from a valid encoding and replace one whole field with random bytes.
    #[test]
    fn mutated_statement_fields_are_rejected_or_canonical(
        statement in statement_strategy(),
        field in 0..STATEMENT_FIELDS.len(),
        random in any::<[u8; 32]>(),
    ) {
        let (_, offset, len) = STATEMENT_FIELDS[field];
        let mut bytes = statement.to_bytes();
        bytes[offset..offset + len].copy_from_slice(&random[..len]);
        let _ = rejected_or_canonical(&bytes);
    }
}

/// Every single-byte change to a valid statement, with several masks: each is rejected clearly
/// or canonical, and both outcomes occur for the fields where they should.
#[test]
fn every_single_byte_mutation_is_rejected_or_canonical() {
    let good = Fixture::new(1).statement().to_bytes();
    assert_eq!(
        STATEMENT_FIELDS
            .iter()
            .map(|(_, _, len)| len)
            .sum::<usize>(),
        STATEMENT_LEN
    );
    for (name, offset, len) in STATEMENT_FIELDS {
        let (mut decoded, mut rejected) = (0, 0);
        for i in offset..offset + len {
            for mask in [0x01u8, 0x02, 0x40, 0x80, 0xff] {
                let mut bytes = good;
                bytes[i] ^= mask;
                if rejected_or_canonical(&bytes) {
                    decoded += 1;
                } else {
                    rejected += 1;
                }
            }
        }
        match name {
            // Any other version, and almost any change to a subgroup point, is refused.
            "version" | "issuer.x" | "issuer.y" => assert_eq!(decoded, 0, "{name}"),
            // Flipping the top bits of a field element leaves the field's range.
            "revocation root" | "scope" | "nullifier" => {
                assert!(
                    decoded > 0 && rejected > 0,
                    "{name}: {decoded} / {rejected}"
                )
            }
            // Plain integers and bytes: every value is valid. (So is every date reachable by one
            // byte change from 2026: out-of-range dates lie within a few years of i32::MIN.)
            _ => assert_eq!(rejected, 0, "{name}"),
        }
    }
}

fn malformed_statement(bytes: &[u8]) -> String {
    match PublicStatement::from_bytes(bytes) {
        Err(e @ ZkError::MalformedStatement(_)) => e.to_string(),
        other => panic!("expected MalformedStatement, got {other:?}"),
    }
}

#[test]
fn malformed_statements_are_rejected_clearly() {
    let good = Fixture::new(1).statement().to_bytes();

    let msg = malformed_statement(&[]);
    assert!(msg.contains("expected 203 bytes, got 0"), "{msg}");
    let msg = malformed_statement(&good[..STATEMENT_LEN - 1]);
    assert!(msg.contains("got 202"), "{msg}");
    let mut long = good.to_vec();
    long.push(0);
    malformed_statement(&long);

    let mut bad = good;
    bad[0] = 2;
    assert!(malformed_statement(&bad).contains("unknown version 2"));

    // Issuer x coordinate changed: no longer a curve point.
    let mut bad = good;
    bad[1 + 31] ^= 1;
    let msg = malformed_statement(&bad);
    assert!(msg.contains("issuer"), "{msg}");

    // Revocation root = 2^256 - 1: not canonical.
    let mut bad = good;
    bad[65..97].fill(0xff);
    let msg = malformed_statement(&bad);
    assert!(
        msg.contains("revocation root") && msg.contains("canonical"),
        "{msg}"
    );

    // Nullifier = the field modulus: not canonical (no reduction, so no second encoding).
    let mut bad = good;
    let modulus =
        hex::decode("30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001").unwrap();
    bad[STATEMENT_LEN - 32..].copy_from_slice(&modulus);
    let msg = malformed_statement(&bad);
    assert!(msg.contains("nullifier"), "{msg}");

    // A date so early that the age threshold leaves the day range.
    let mut statement = Fixture::new(1).statement();
    statement.date = i32::MIN;
    let msg = malformed_statement(&statement.to_bytes());
    assert!(msg.contains("out of range"), "{msg}");
}

/// Deserializing a statement (serde) checks what `from_bytes` checks.
#[test]
fn statement_serde_validates_like_from_bytes() {
    let good = Fixture::new(1).statement();
    let json = serde_json::to_value(good).unwrap();
    assert_eq!(
        serde_json::from_value::<PublicStatement>(json.clone()).unwrap(),
        good
    );
    let rejected = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut bad = json.clone();
        edit(&mut bad);
        serde_json::from_value::<PublicStatement>(bad)
            .unwrap_err()
            .to_string()
    };

    // A date whose age threshold leaves the day range: refused by both decoders.
    let mut early = good;
    early.date = i32::MIN;
    assert!(early.validate().is_err());
    assert!(PublicStatement::from_bytes(&early.to_bytes()).is_err());
    let msg = rejected(&|v| v["date"] = i32::MIN.into());
    assert_eq!(
        msg,
        "public statement is malformed: date -2147483648 is out of range"
    );
    // A minimum age that moves an early (but valid) date out of range.
    let mut old_enough = good;
    old_enough.date = i32::MIN + 365 * 100;
    old_enough.requirements.min_age_years = 0;
    assert!(old_enough.validate().is_ok());
    let msg = rejected(&|v| {
        v["date"] = (i32::MIN + 365 * 100).into();
        v["requirements"]["min_age_years"] = 255.into();
    });
    assert!(msg.contains("out of range"), "{msg}");
    // Field elements and the issuer key are validated by their own types.
    let modulus = "0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001";
    let msg = rejected(&|v| v["nullifier"] = modulus.into());
    assert!(msg.contains("canonical"), "{msg}");
    let msg = rejected(&|v| {
        let mut issuer = good.issuer.to_bytes();
        issuer[63] ^= 1;
        v["issuer"] = format!("0x{}", hex::encode(issuer)).into();
    });
    assert!(msg.contains("issuer public key"), "{msg}");
}

#[test]
fn malformed_proof_bytes_are_rejected_clearly() {
    for len in [0usize, 1, 64, 127, 129, 256] {
        let err = decode_proof(&vec![0u8; len]).unwrap_err();
        assert!(matches!(err, ZkError::MalformedProof(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("proof is not a valid compressed Groth16 proof: expected 128 bytes, got {len}")
        );
    }
    // Right length, but not curve points.
    let err = decode_proof(&[0xff; PROOF_LEN]).unwrap_err();
    assert!(matches!(err, ZkError::MalformedProof(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("proof is not a valid compressed Groth16 proof: ")
    );
}

#[test]
fn requirements_validate_length() {
    assert!(Requirements::new(18, 1, &[1; 8]).is_ok());
    let err = Requirements::new(18, 1, &[1; 9]).unwrap_err();
    assert!(err.to_string().contains("at most 8 blocked countries"));
}

#[test]
fn claim_and_credential_serde() {
    let f = Fixture::new(2);
    let json = serde_json::to_string(&f.credential()).unwrap();
    assert_eq!(
        serde_json::from_str::<Credential>(&json).unwrap(),
        f.credential()
    );
    assert!(json.contains("\"holder\":\"0xa1a1"));
}

/// A key file: header with a correct checksum (over the 13 header bytes before it and the body),
/// then `body`.
fn key_header(kind: u8, version: u8, flags: u8, inputs: u8, body: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = b"PHZKDID\0".to_vec();
    h.extend_from_slice(&[kind, version, flags, 0, inputs]);
    let digest = Sha256::new().chain_update(&h).chain_update(body).finalize();
    h.extend_from_slice(&digest);
    h.extend_from_slice(body);
    h
}

#[test]
fn key_file_headers_are_checked() {
    // Header-level checks need no real key.
    let err = VerifyingKey::from_bytes(b"short").unwrap_err();
    assert!(
        err.to_string().contains("shorter than the 45-byte header"),
        "{err}"
    );
    let err = VerifyingKey::from_bytes(&[0u8; 60]).unwrap_err();
    assert!(err.to_string().contains("bad magic"), "{err}");
    let err = VerifyingKey::from_bytes(&key_header(b'P', 2, 0, 17, &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "verifying key is malformed: the file holds a proving key"
    );
    let err = VerifyingKey::from_bytes(&key_header(b'V', 7, 0, 17, &[])).unwrap_err();
    assert!(
        err.to_string().contains("unsupported format version 7"),
        "{err}"
    );
    let err = VerifyingKey::from_bytes(&key_header(b'V', 1, 0, 17, &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "verifying key is malformed: unsupported format version 1 (expected 2)"
    );
    let err = VerifyingKey::from_bytes(&key_header(b'V', 2, 2, 17, &[])).unwrap_err();
    assert!(err.to_string().contains("unknown flags 0x02"), "{err}");
    let err = VerifyingKey::from_bytes(&key_header(b'V', 2, 0, 3, &[])).unwrap_err();
    assert!(err.to_string().contains("3 public inputs"), "{err}");
    let mut corrupted = key_header(b'V', 2, 0, 17, &[1, 2, 3]);
    *corrupted.last_mut().unwrap() = 4;
    let err = VerifyingKey::from_bytes(&corrupted).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    // The checksum covers the header too: flipping the insecure-dev flag either way is caught.
    for flags in [0u8, 1] {
        let mut edited = key_header(b'V', 2, flags, 17, &[1, 2, 3]);
        edited[10] ^= 1;
        let err = VerifyingKey::from_bytes(&edited).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }
    let err = VerifyingKey::from_bytes(&key_header(b'V', 2, 0, 17, &[1, 2, 3])).unwrap_err();
    assert!(
        err.to_string().contains("cannot decode the compressed key"),
        "{err}"
    );
    let err = ProvingKey::from_bytes(&key_header(b'P', 2, 0, 17, &[0xff; 64])).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("proving key is malformed: cannot decode"),
        "{err}"
    );
    let err = ProvingKey::load("/nonexistent/zkdid.pk").unwrap_err();
    assert!(matches!(err, ZkError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/zkdid.pk"), "{err}");
}
