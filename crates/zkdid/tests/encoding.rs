//! Byte encodings of external data: statements, proofs, signatures, keys and paths decode what
//! they encode and reject malformed input with a clear error, never a panic.

mod common;

use common::*;
use pharos_zkdid::*;
use proptest::prelude::*;

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

    #[test]
    fn full_length_garbage_is_rejected_or_canonical(bytes in proptest::collection::vec(any::<u8>(), STATEMENT_LEN)) {
        // Anything that decodes must re-encode to the same bytes (the encoding is canonical).
        if let Ok(statement) = PublicStatement::from_bytes(&bytes) {
            prop_assert_eq!(statement.to_bytes().to_vec(), bytes);
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

/// A key-file header with a correct checksum for `body`.
fn key_header(kind: u8, version: u8, inputs: u8, body: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = b"PHZKDID\0".to_vec();
    h.extend_from_slice(&[kind, version, 0, 0, inputs]);
    h.extend_from_slice(&Sha256::digest(body));
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
    let err = VerifyingKey::from_bytes(&key_header(b'P', 1, 17, &[])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "verifying key is malformed: the file holds a proving key"
    );
    let err = VerifyingKey::from_bytes(&key_header(b'V', 7, 17, &[])).unwrap_err();
    assert!(
        err.to_string().contains("unsupported format version 7"),
        "{err}"
    );
    let err = VerifyingKey::from_bytes(&key_header(b'V', 1, 3, &[])).unwrap_err();
    assert!(err.to_string().contains("3 public inputs"), "{err}");
    let mut corrupted = key_header(b'V', 1, 17, &[1, 2, 3]);
    *corrupted.last_mut().unwrap() = 4;
    let err = VerifyingKey::from_bytes(&corrupted).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    let err = VerifyingKey::from_bytes(&key_header(b'V', 1, 17, &[1, 2, 3])).unwrap_err();
    assert!(
        err.to_string().contains("cannot decode the compressed key"),
        "{err}"
    );
    let err = ProvingKey::from_bytes(&key_header(b'P', 1, 17, &[0xff; 64])).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("proving key is malformed: cannot decode"),
        "{err}"
    );
    let err = ProvingKey::load("/nonexistent/zkdid.pk").unwrap_err();
    assert!(matches!(err, ZkError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/zkdid.pk"), "{err}");
}
