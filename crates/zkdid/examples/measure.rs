//! Measures the zkDID circuit: constraint count, setup, proving and verification time, proof
//! and key sizes.
//!
//! ```text
//! cargo run --release -p pharos-zkdid --example measure [-- ROUNDS]
//! ```

use std::time::{Duration, Instant};

use ark_std::rand::SeedableRng;
use pharos_zkdid::*;

fn main() -> Result<(), ZkError> {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("zkDID measurements ({threads} hardware threads, {rounds} rounds)");

    let t = Instant::now();
    let shape = circuit_shape()?;
    println!(
        "circuit: {} constraints, {} public inputs (+1), {} witness variables (synthesis {:?})",
        shape.constraints,
        shape.instance_variables - 1,
        shape.witness_variables,
        t.elapsed()
    );

    let t = Instant::now();
    let (pk, vk) = insecure_dev_setup(1)?;
    println!("insecure dev setup: {:?}", t.elapsed());
    let pk_bytes = pk.to_bytes()?;
    let vk_bytes = vk.to_bytes()?;
    println!(
        "proving key: {} bytes, verifying key: {} bytes",
        pk_bytes.len(),
        vk_bytes.len()
    );
    let t = Instant::now();
    let _ = ProvingKey::from_bytes(&pk_bytes)?;
    println!("proving key load (validated): {:?}", t.elapsed());

    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
    let issuer = IssuerKey::generate(&mut rng);
    let mut tree = RevocationTree::new();
    for n in 0..100 {
        tree.revoke(n * 7 + 1);
    }
    let secret = HolderSecret::generate(&mut rng);
    let wallet = Address20([0x42; 20]);
    let credential = Credential {
        holder: wallet,
        birth_date: days_from_civil(1990, 5, 17).expect("valid date"),
        country: 276,
        kyc_level: 2,
        expiry_date: days_from_civil(2030, 1, 1).expect("valid date"),
        revocation_nonce: 1000,
        secret_commitment: secret.commitment(),
    };
    let signed = SignedCredential::issue(&issuer, credential);
    let scope = scope_from_label(b"measure");
    let statement = PublicStatement {
        issuer: issuer.public(),
        revocation_root: tree.root(),
        wallet,
        date: days_from_civil(2026, 6, 1).expect("valid date"),
        requirements: Requirements::new(18, 1, &[408, 364, 760])?,
        scope,
        nullifier: secret.nullifier(&scope),
    };
    let path = tree.non_revocation_path(1000)?;

    let mut prove_total = Duration::ZERO;
    let mut verify_total = Duration::ZERO;
    let mut proof = None;
    for _ in 0..rounds {
        let t = Instant::now();
        let p = prove_with_rng(&pk, &signed, &secret, &path, &statement, &mut rng)?;
        prove_total += t.elapsed();
        let t = Instant::now();
        verify(&vk, &statement, p.as_bytes())?;
        verify_total += t.elapsed();
        proof = Some(p);
    }
    println!("prove: {:?} average", prove_total / rounds);
    println!(
        "verify (Groth16, prepared key): {:?} average",
        verify_total / rounds
    );
    if let Some(p) = proof {
        println!("proof: {} bytes", p.as_bytes().len());
    }
    println!("statement encoding: {STATEMENT_LEN} bytes");
    Ok(())
}
