//! Certified execution results: after executing finalized block `h`, every validator signs the
//! hash of its executed block (which commits to the state root, receipts and gas) and sends the
//! signature to the others; a quorum (n − f) of signatures on the same hash is a
//! [`StateCert`]. Leaders carry the newest certificate in their blocks, so the finalized chain
//! records which state a quorum computed; a validator whose own hash at a certified height
//! differs has diverged and halts loudly instead of forking silently.

use commonware_codec::{DecodeExt, Encode};
use commonware_cryptography::{Signer, Verifier, ed25519, sha256::Digest};

use crate::{
    Identity,
    lanes::{LaneError, Reader},
};

/// First byte of a state vote.
pub(crate) const STATE_VOTE: u8 = 0xf6;
/// Domain of state-vote signatures.
pub const STATE_NAMESPACE: &[u8] = b"PHAROS_STATE";

const SIGNATURE_LEN: usize = 64;

/// What a state vote signs.
fn message(genesis: &Digest, height: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(72);
    m.extend_from_slice(&genesis.0);
    m.extend_from_slice(&height.to_be_bytes());
    m.extend_from_slice(hash);
    m
}

fn signature(bytes: &[u8]) -> Result<ed25519::Signature, LaneError> {
    ed25519::Signature::decode(bytes.to_vec()).map_err(|_| LaneError::Malformed("signature"))
}

/// One validator's signature on its executed block hash at `height`.
pub(crate) struct StateVote {
    pub(crate) height: u64,
    pub(crate) hash: [u8; 32],
    pub(crate) signature: ed25519::Signature,
}

impl StateVote {
    pub(crate) fn sign(
        key: &ed25519::PrivateKey,
        genesis: &Digest,
        height: u64,
        hash: [u8; 32],
    ) -> Self {
        Self {
            height,
            hash,
            signature: key.sign(STATE_NAMESPACE, &message(genesis, height, &hash)),
        }
    }

    pub(crate) fn verify(&self, genesis: &Digest, signer: &Identity) -> bool {
        signer.verify(
            STATE_NAMESPACE,
            &message(genesis, self.height, &self.hash),
            &self.signature,
        )
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 + 32 + SIGNATURE_LEN);
        out.push(STATE_VOTE);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.signature.encode());
        out
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<Self, LaneError> {
        let mut r = Reader(raw);
        if r.take(1)? != [STATE_VOTE] {
            return Err(LaneError::Malformed("not a state vote"));
        }
        let height = r.u64()?;
        let hash = r.digest()?.0;
        let signature = signature(r.take(SIGNATURE_LEN)?)?;
        r.finish()?;
        Ok(Self {
            height,
            hash,
            signature,
        })
    }
}

/// A quorum's signatures on the executed block hash at one height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCert {
    /// The block height.
    pub height: u64,
    /// The executed block's hash (commits to its state root).
    pub hash: [u8; 32],
    /// `(validator index, signature)`, ascending by index, no repeats.
    pub signatures: Vec<(u32, ed25519::Signature)>,
}

impl StateCert {
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&(self.signatures.len() as u32).to_be_bytes());
        for (signer, sig) in &self.signatures {
            out.extend_from_slice(&signer.to_be_bytes());
            out.extend_from_slice(&sig.encode());
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>, max_signers: usize) -> Result<Self, LaneError> {
        let height = r.u64()?;
        let hash = r.digest()?.0;
        let count = r.u32()? as usize;
        if count > max_signers {
            return Err(LaneError::Malformed("too many state signatures"));
        }
        let mut signatures = Vec::with_capacity(count);
        for _ in 0..count {
            let signer = r.u32()?;
            signatures.push((signer, signature(r.take(SIGNATURE_LEN)?)?));
        }
        Ok(Self {
            height,
            hash,
            signatures,
        })
    }

    /// At least `quorum` distinct validators of `members` signed this height and hash.
    pub fn check(&self, genesis: &Digest, members: &[Identity], quorum: usize) -> bool {
        if self.signatures.len() < quorum || self.signatures.windows(2).any(|w| w[0].0 >= w[1].0) {
            return false;
        }
        let m = message(genesis, self.height, &self.hash);
        self.signatures.iter().all(|(signer, sig)| {
            members
                .get(*signer as usize)
                .is_some_and(|id| id.verify(STATE_NAMESPACE, &m, sig))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ValidatorKey;

    #[test]
    fn certificates_need_a_quorum_on_the_same_hash() {
        let mut rng = rand::rng();
        let mut keys: Vec<ValidatorKey> =
            (0..4).map(|_| ValidatorKey::generate(&mut rng)).collect();
        keys.sort_by_key(|k| k.identity());
        let members: Vec<Identity> = keys.iter().map(ValidatorKey::identity).collect();
        let genesis = crate::app::genesis_digest(5);
        let vote =
            |i: usize, hash: [u8; 32]| StateVote::sign(keys[i].identity_key(), &genesis, 9, hash);
        let cert = StateCert {
            height: 9,
            hash: [7; 32],
            signatures: (0..3)
                .map(|i| (i as u32, vote(i, [7; 32]).signature))
                .collect(),
        };
        assert!(cert.check(&genesis, &members, 3));
        assert!(!cert.check(&genesis, &members, 4), "below the quorum");
        let mut mixed = cert.clone();
        mixed.signatures[2].1 = vote(2, [8; 32]).signature;
        assert!(
            !mixed.check(&genesis, &members, 3),
            "a signature on another hash"
        );
        let mut other = cert.clone();
        other.height = 10;
        assert!(!other.check(&genesis, &members, 3), "relabelled height");
        assert!(
            !cert.check(&crate::app::genesis_digest(6), &members, 3),
            "another chain"
        );
        // Votes round trip; bad bytes are refused.
        let v = vote(1, [7; 32]);
        let wire = v.encode();
        let back = StateVote::decode(&wire).expect("decodes");
        assert!(back.verify(&genesis, &members[1]));
        assert!(!back.verify(&genesis, &members[0]));
        assert!(StateVote::decode(&wire[..wire.len() - 1]).is_err());
        let mut out = Vec::new();
        cert.write(&mut out);
        assert_eq!(
            StateCert::read(&mut Reader(&out), 4).ok(),
            Some(cert.clone())
        );
        assert!(StateCert::read(&mut Reader(&out), 2).is_err());
    }
}
