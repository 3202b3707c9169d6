//! Poseidon over the BN254 scalar field with circomlib's parameters, natively and in-circuit.
//!
//! The round constants and MDS matrices come from `light-poseidon`'s `bn254_x5` tables, which are
//! circomlib's (x^5 S-box, 8 full rounds, 56–68 partial rounds by width). As in circomlib the
//! state is `[0, input_1, …, input_n]` and the output is `state[0]` after the permutation, so
//! `hash(&[a, b])` equals circomlib's `Poseidon(2)([a, b])` and iden3's hashes.
//!
//! Both implementations below follow the same round structure line by line; tests check they
//! agree with each other and with `light-poseidon`'s own hasher.

use std::sync::OnceLock;

use ark_ff::Field;
use ark_r1cs_std::fields::{FieldVar, fp::FpVar};
use ark_relations::gr1cs::SynthesisError;
use light_poseidon::PoseidonParameters;

use crate::field::Fr;

/// The most inputs one Poseidon call takes (circomlib's widths go up to 13, i.e. 12 inputs).
pub const MAX_INPUTS: usize = 12;

struct Params {
    /// Round constants, `width` per round.
    ark: Vec<Fr>,
    /// `mds[i][j]` multiplies `state[j]` into `state[i]`.
    mds: Vec<Vec<Fr>>,
    full_rounds: usize,
    partial_rounds: usize,
    width: usize,
}

fn params(n_inputs: usize) -> &'static Params {
    static CACHE: [OnceLock<Params>; MAX_INPUTS] = [const { OnceLock::new() }; MAX_INPUTS];
    assert!(
        (1..=MAX_INPUTS).contains(&n_inputs),
        "Poseidon takes 1..={MAX_INPUTS} inputs, got {n_inputs} (a bug in this crate)"
    );
    CACHE[n_inputs - 1].get_or_init(|| {
        let width = n_inputs + 1;
        // `width` is in 2..=13, every width the light-poseidon tables cover, so this cannot fail.
        let p: PoseidonParameters<Fr> =
            light_poseidon::parameters::bn254_x5::get_poseidon_parameters::<Fr>(width as u8)
                .expect("light-poseidon ships parameters for widths 2..=13");
        assert_eq!(p.alpha, 5, "circomlib Poseidon uses the x^5 S-box");
        assert_eq!(p.width, width);
        Params {
            ark: p.ark,
            mds: p.mds,
            full_rounds: p.full_rounds,
            partial_rounds: p.partial_rounds,
            width,
        }
    })
}

/// Poseidon hash of 1 to 12 field elements (circomlib-compatible).
///
/// # Panics
/// If `inputs` is empty or longer than [`MAX_INPUTS`]; every caller in this crate passes a fixed
/// number of inputs, never a length taken from external data.
pub fn hash(inputs: &[Fr]) -> Fr {
    let p = params(inputs.len());
    let mut state = Vec::with_capacity(p.width);
    state.push(Fr::from(0u64));
    state.extend_from_slice(inputs);
    let half = p.full_rounds / 2;
    for round in 0..p.full_rounds + p.partial_rounds {
        for (i, s) in state.iter_mut().enumerate() {
            *s += p.ark[round * p.width + i];
        }
        let full = round < half || round >= half + p.partial_rounds;
        if full {
            for s in state.iter_mut() {
                *s = sbox(*s);
            }
        } else {
            state[0] = sbox(state[0]);
        }
        state = (0..p.width)
            .map(|i| {
                state
                    .iter()
                    .zip(&p.mds[i])
                    .fold(Fr::from(0u64), |acc, (s, m)| acc + *s * m)
            })
            .collect();
    }
    state[0]
}

fn sbox(x: Fr) -> Fr {
    let x2 = x.square();
    x2.square() * x
}

/// In-circuit Poseidon, constraint-for-constraint the same permutation as [`hash`]: three
/// multiplication constraints per S-box, linear layers free.
///
/// # Panics
/// Same contract as [`hash`].
pub fn hash_var(inputs: &[FpVar<Fr>]) -> Result<FpVar<Fr>, SynthesisError> {
    let p = params(inputs.len());
    let mut state = Vec::with_capacity(p.width);
    state.push(FpVar::constant(Fr::from(0u64)));
    state.extend_from_slice(inputs);
    let half = p.full_rounds / 2;
    for round in 0..p.full_rounds + p.partial_rounds {
        for (i, s) in state.iter_mut().enumerate() {
            *s += p.ark[round * p.width + i];
        }
        let full = round < half || round >= half + p.partial_rounds;
        if full {
            for s in state.iter_mut() {
                *s = sbox_var(s)?;
            }
        } else {
            state[0] = sbox_var(&state[0])?;
        }
        state = (0..p.width)
            .map(|i| {
                state
                    .iter()
                    .zip(&p.mds[i])
                    .fold(FpVar::constant(Fr::from(0u64)), |acc, (s, m)| acc + s * *m)
            })
            .collect();
    }
    Ok(state.swap_remove(0))
}

fn sbox_var(x: &FpVar<Fr>) -> Result<FpVar<Fr>, SynthesisError> {
    let x2 = x.square()?;
    let x4 = x2.square()?;
    Ok(x4 * x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::fr_from_hex;
    use ark_ff::UniformRand;
    use ark_r1cs_std::{GR1CSVar, alloc::AllocVar};
    use ark_relations::gr1cs::ConstraintSystem;
    use ark_std::rand::SeedableRng;
    use light_poseidon::{Poseidon, PoseidonHasher};

    #[test]
    fn matches_circomlib_vectors() {
        // circomlib / iden3: Poseidon([1, 2]).
        let expected =
            fr_from_hex("0x115cc0f5e7d690413df64c6b9662e9cf2a3617f2743245519e19607a4417189a")
                .unwrap();
        assert_eq!(hash(&[Fr::from(1u64), Fr::from(2u64)]), expected);
    }

    #[test]
    fn matches_light_poseidon_for_every_width() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        for n in 1..=MAX_INPUTS {
            let inputs: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
            let mut reference = Poseidon::<Fr>::new_circom(n).unwrap();
            assert_eq!(
                hash(&inputs),
                reference.hash(&inputs).unwrap(),
                "width {}",
                n + 1
            );
        }
    }

    #[test]
    fn circuit_matches_native_on_random_inputs() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
        for n in [1usize, 2, 5, 8] {
            for _ in 0..3 {
                let cs = ConstraintSystem::<Fr>::new_ref();
                let inputs: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
                let vars: Vec<FpVar<Fr>> = inputs
                    .iter()
                    .map(|v| FpVar::new_witness(cs.clone(), || Ok(*v)).unwrap())
                    .collect();
                let out = hash_var(&vars).unwrap();
                assert_eq!(out.value().unwrap(), hash(&inputs));
                assert!(cs.is_satisfied().unwrap());
                // Changing the claimed output must break satisfiability.
                let wrong =
                    FpVar::new_witness(cs.clone(), || Ok(hash(&inputs) + Fr::from(1u64))).unwrap();
                use ark_r1cs_std::eq::EqGadget;
                out.enforce_equal(&wrong).unwrap();
                assert!(!cs.is_satisfied().unwrap());
            }
        }
    }

    #[test]
    fn constraint_cost_is_three_per_sbox() {
        let cs = ConstraintSystem::<Fr>::new_ref();
        let vars: Vec<FpVar<Fr>> = (0..2)
            .map(|i| FpVar::new_witness(cs.clone(), || Ok(Fr::from(i as u64))).unwrap())
            .collect();
        let _ = hash_var(&vars).unwrap();
        // Width 3: 8 full rounds × 3 S-boxes + 57 partial rounds × 1 S-box, 3 constraints each,
        // less the first S-box on the constant capacity element, which is free.
        assert_eq!(cs.num_constraints(), (8 * 3 + 57) * 3 - 3);
    }
}
