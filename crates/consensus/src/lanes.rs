//! Lanes: every validator proposes at once.
//!
//! Each validator owns one lane. It cuts the transactions routed to it into [`LaneBatch`]es
//! (numbered `(epoch, seq)`: the epoch is chosen when the validator starts, the sequence counts
//! from 1 within it) and sends each to every validator. A validator that holds the batch and
//! finds it valid signs an acknowledgement (ed25519, over the chain, lane, position, gas and
//! digest) and acknowledges at most one batch per position, so an owner cannot get two
//! different batches certified at one position. `quorum` (2f+1) acknowledgements make an
//! availability certificate ([`LaneRef`]): at least f+1 honest validators hold the batch and
//! answer requests for it.
//!
//! A consensus block carries no transactions, only a cut: for every lane, the certified
//! batches that extend the lane's tip in the parent block ([`Tip`], recorded in each block), in
//! order, so a lane's batches are executed in the order their owner cut them and never twice.
//! A lane whose owner stalls is simply not extended; the others go on. When an owner
//! restarts it picks a higher epoch; a block may move a lane to a higher epoch (starting at
//! sequence 1), which drops what the old epoch had not got certified.

use commonware_codec::{DecodeExt, Encode};
use commonware_cryptography::{Hasher, Sha256, Signer, Verifier, ed25519, sha256::Digest};

use crate::Identity;

/// First byte of a lane batch sent by its owner, or served on request.
pub(crate) const LANE_BATCH: u8 = 0xf2;
/// First byte of an acknowledgement (to the lane owner).
pub(crate) const LANE_ACK: u8 = 0xf3;
/// First byte of an availability certificate (to everyone).
pub(crate) const LANE_CERT: u8 = 0xf4;
/// First byte of a request for a lane batch by digest.
pub(crate) const LANE_REQUEST: u8 = 0xf5;

/// Domain of acknowledgement signatures.
pub const ACK_NAMESPACE: &[u8] = b"PHAROS_LANE_ACK";

const SIGNATURE_LEN: usize = 64;

/// A position in a lane: `(0, 0)` before its first batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tip {
    /// The owner's epoch (chosen at its start; higher after a restart).
    pub epoch: u64,
    /// The batch number within the epoch, from 1.
    pub seq: u64,
}

impl Tip {
    /// Whether a batch at `next` may directly follow a lane at `self`: the next number of
    /// the same epoch, or the first of a higher epoch.
    pub fn followed_by(&self, next: Tip) -> bool {
        (next.epoch == self.epoch && next.seq == self.seq + 1)
            || (next.epoch > self.epoch && next.seq == 1)
    }
}

/// Why received bytes are not a lane message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaneError {
    /// Ends early or has bytes left over.
    #[error("malformed lane message: {0}")]
    Malformed(&'static str),
    /// A batch over the size limit.
    #[error("lane batch of {0} bytes is over the limit")]
    TooLarge(usize),
}

/// A cursor over received bytes.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&[u8], LaneError> {
        if self.0.len() < n {
            return Err(LaneError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, LaneError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, LaneError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    pub(crate) fn digest(&mut self) -> Result<Digest, LaneError> {
        let mut d = [0u8; 32];
        d.copy_from_slice(self.take(32)?);
        Ok(Digest(d))
    }

    pub(crate) fn finish(&self) -> Result<(), LaneError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(LaneError::Malformed("trailing bytes"))
        }
    }
}

/// One batch of a lane: the owner's transactions, opaque to consensus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneBatch {
    /// The owner's index in the validator set.
    pub lane: u32,
    /// Its position in the lane.
    pub at: Tip,
    /// The sum of its transactions' gas limits, as the owner declares it (checked by every
    /// validator before acknowledging).
    pub gas: u64,
    /// The transactions.
    pub payload: Vec<u8>,
}

impl LaneBatch {
    /// Its digest: commits to the lane, position, gas and payload.
    pub fn digest(&self) -> Digest {
        Sha256::hash(&[
            b"PHAROS_LANE_BATCH",
            &self.lane.to_be_bytes(),
            &self.at.epoch.to_be_bytes(),
            &self.at.seq.to_be_bytes(),
            &self.gas.to_be_bytes(),
            &self.payload,
        ])
    }

    /// The wire message carrying it (also how a node archives it).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 4 + 24 + self.payload.len());
        out.push(LANE_BATCH);
        out.extend_from_slice(&self.lane.to_be_bytes());
        out.extend_from_slice(&self.at.epoch.to_be_bytes());
        out.extend_from_slice(&self.at.seq.to_be_bytes());
        out.extend_from_slice(&self.gas.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Decodes what [`Self::encode`] wrote, refusing payloads over `max_bytes`.
    pub fn decode(raw: &[u8], max_bytes: usize) -> Result<Self, LaneError> {
        if raw.len() > max_bytes + 29 {
            return Err(LaneError::TooLarge(raw.len()));
        }
        let mut r = Reader(raw);
        if r.take(1)? != [LANE_BATCH] {
            return Err(LaneError::Malformed("not a lane batch"));
        }
        let lane = r.u32()?;
        let epoch = r.u64()?;
        let seq = r.u64()?;
        let gas = r.u64()?;
        Ok(Self {
            lane,
            at: Tip { epoch, seq },
            gas,
            payload: r.0.to_vec(),
        })
    }
}

/// What an acknowledgement signs: the chain (its genesis digest) and every field of the
/// batch's reference, so a certificate cannot be relabelled.
pub(crate) fn ack_message(
    genesis: &Digest,
    lane: u32,
    at: Tip,
    gas: u64,
    digest: &Digest,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + 4 + 24 + 32);
    m.extend_from_slice(&genesis.0);
    m.extend_from_slice(&lane.to_be_bytes());
    m.extend_from_slice(&at.epoch.to_be_bytes());
    m.extend_from_slice(&at.seq.to_be_bytes());
    m.extend_from_slice(&gas.to_be_bytes());
    m.extend_from_slice(&digest.0);
    m
}

/// Signs an acknowledgement.
pub(crate) fn sign_ack(
    key: &ed25519::PrivateKey,
    genesis: &Digest,
    lane: u32,
    at: Tip,
    gas: u64,
    digest: &Digest,
) -> ed25519::Signature {
    key.sign(ACK_NAMESPACE, &ack_message(genesis, lane, at, gas, digest))
}

fn decode_signature(bytes: &[u8]) -> Result<ed25519::Signature, LaneError> {
    ed25519::Signature::decode(bytes.to_vec()).map_err(|_| LaneError::Malformed("signature"))
}

/// An acknowledgement on the wire: `[LANE_ACK] lane epoch seq gas digest signature`.
pub(crate) struct Ack {
    pub(crate) lane: u32,
    pub(crate) at: Tip,
    pub(crate) gas: u64,
    pub(crate) digest: Digest,
    pub(crate) signature: ed25519::Signature,
}

impl Ack {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 4 + 24 + 32 + SIGNATURE_LEN);
        out.push(LANE_ACK);
        out.extend_from_slice(&self.lane.to_be_bytes());
        out.extend_from_slice(&self.at.epoch.to_be_bytes());
        out.extend_from_slice(&self.at.seq.to_be_bytes());
        out.extend_from_slice(&self.gas.to_be_bytes());
        out.extend_from_slice(&self.digest.0);
        out.extend_from_slice(&self.signature.encode());
        out
    }

    pub(crate) fn decode(raw: &[u8]) -> Result<Self, LaneError> {
        let mut r = Reader(raw);
        if r.take(1)? != [LANE_ACK] {
            return Err(LaneError::Malformed("not an acknowledgement"));
        }
        let lane = r.u32()?;
        let at = Tip {
            epoch: r.u64()?,
            seq: r.u64()?,
        };
        let gas = r.u64()?;
        let digest = r.digest()?;
        let signature = decode_signature(r.take(SIGNATURE_LEN)?)?;
        r.finish()?;
        Ok(Self {
            lane,
            at,
            gas,
            digest,
            signature,
        })
    }
}

/// A certified lane batch as a block names it: the batch's reference and its availability
/// certificate (acknowledgements of a quorum of validators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneRef {
    /// The owner's index.
    pub lane: u32,
    /// The batch's position.
    pub at: Tip,
    /// Its declared gas.
    pub gas: u64,
    /// Its digest.
    pub digest: Digest,
    /// `(validator index, signature)`, ascending by index, no repeats.
    pub acks: Vec<(u32, ed25519::Signature)>,
}

/// Why a certificate is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Fewer acknowledgements than the quorum.
    #[error("lane {lane} batch {epoch}/{seq}: {got} acknowledgements, {quorum} needed")]
    TooFew {
        /// The lane.
        lane: u32,
        /// Epoch of the batch.
        epoch: u64,
        /// Number of the batch.
        seq: u64,
        /// Acknowledgements present.
        got: usize,
        /// The quorum.
        quorum: usize,
    },
    /// A signer out of range, repeated or out of order.
    #[error("lane {0}: acknowledgement signers out of range, repeated or unordered")]
    Signers(u32),
    /// A signature does not verify.
    #[error("lane {lane}: the acknowledgement of validator {signer} does not verify")]
    Signature {
        /// The lane.
        lane: u32,
        /// Who supposedly signed.
        signer: u32,
    },
    /// The lane is not a validator's.
    #[error("lane {0} does not exist")]
    NoLane(u32),
}

impl LaneRef {
    /// Appends its encoding.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.lane.to_be_bytes());
        out.extend_from_slice(&self.at.epoch.to_be_bytes());
        out.extend_from_slice(&self.at.seq.to_be_bytes());
        out.extend_from_slice(&self.gas.to_be_bytes());
        out.extend_from_slice(&self.digest.0);
        out.extend_from_slice(&(self.acks.len() as u32).to_be_bytes());
        for (signer, signature) in &self.acks {
            out.extend_from_slice(&signer.to_be_bytes());
            out.extend_from_slice(&signature.encode());
        }
    }

    /// Reads one, allowing at most `max_acks` acknowledgements.
    pub(crate) fn read(r: &mut Reader<'_>, max_acks: usize) -> Result<Self, LaneError> {
        let lane = r.u32()?;
        let at = Tip {
            epoch: r.u64()?,
            seq: r.u64()?,
        };
        let gas = r.u64()?;
        let digest = r.digest()?;
        let count = r.u32()? as usize;
        if count > max_acks {
            return Err(LaneError::Malformed("too many acknowledgements"));
        }
        let mut acks = Vec::with_capacity(count);
        for _ in 0..count {
            let signer = r.u32()?;
            acks.push((signer, decode_signature(r.take(SIGNATURE_LEN)?)?));
        }
        Ok(Self {
            lane,
            at,
            gas,
            digest,
            acks,
        })
    }

    /// The certificate message.
    pub(crate) fn encode_cert(&self) -> Vec<u8> {
        let mut out = vec![LANE_CERT];
        self.write(&mut out);
        out
    }

    /// Decodes a [`LANE_CERT`] message.
    pub(crate) fn decode_cert(raw: &[u8], max_acks: usize) -> Result<Self, LaneError> {
        let mut r = Reader(raw);
        if r.take(1)? != [LANE_CERT] {
            return Err(LaneError::Malformed("not a certificate"));
        }
        let cert = Self::read(&mut r, max_acks)?;
        r.finish()?;
        Ok(cert)
    }

    /// Checks the certificate against the validators (`members`, in set order): at least
    /// `quorum` distinct members signed this exact reference.
    pub fn check(
        &self,
        genesis: &Digest,
        members: &[Identity],
        quorum: usize,
    ) -> Result<(), CertError> {
        if self.lane as usize >= members.len() {
            return Err(CertError::NoLane(self.lane));
        }
        if self.acks.len() < quorum {
            return Err(CertError::TooFew {
                lane: self.lane,
                epoch: self.at.epoch,
                seq: self.at.seq,
                got: self.acks.len(),
                quorum,
            });
        }
        if self.acks.windows(2).any(|w| w[0].0 >= w[1].0)
            || self.acks.iter().any(|(s, _)| *s as usize >= members.len())
        {
            return Err(CertError::Signers(self.lane));
        }
        let message = ack_message(genesis, self.lane, self.at, self.gas, &self.digest);
        for (signer, signature) in &self.acks {
            if !members[*signer as usize].verify(ACK_NAMESPACE, &message, signature) {
                return Err(CertError::Signature {
                    lane: self.lane,
                    signer: *signer,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ValidatorKey;

    fn keys(n: usize) -> Vec<ValidatorKey> {
        let mut rng = rand::rng();
        let mut keys: Vec<_> = (0..n).map(|_| ValidatorKey::generate(&mut rng)).collect();
        keys.sort_by_key(|k| k.identity());
        keys
    }

    fn certified(keys: &[ValidatorKey], signers: &[u32], genesis: &Digest) -> LaneRef {
        let batch = LaneBatch {
            lane: 1,
            at: Tip { epoch: 9, seq: 3 },
            gas: 21_000,
            payload: b"transactions".to_vec(),
        };
        let digest = batch.digest();
        LaneRef {
            lane: 1,
            at: batch.at,
            gas: batch.gas,
            digest,
            acks: signers
                .iter()
                .map(|s| {
                    let key = keys[*s as usize].identity_key();
                    (*s, sign_ack(key, genesis, 1, batch.at, batch.gas, &digest))
                })
                .collect(),
        }
    }

    #[test]
    fn tips_follow_within_an_epoch_or_into_a_higher_one() {
        let tip = Tip { epoch: 5, seq: 2 };
        assert!(tip.followed_by(Tip { epoch: 5, seq: 3 }));
        assert!(tip.followed_by(Tip { epoch: 6, seq: 1 }));
        assert!(!tip.followed_by(Tip { epoch: 5, seq: 2 }), "no repeat");
        assert!(!tip.followed_by(Tip { epoch: 5, seq: 4 }), "no gap");
        assert!(
            !tip.followed_by(Tip { epoch: 6, seq: 2 }),
            "a new epoch starts at 1"
        );
        assert!(!tip.followed_by(Tip { epoch: 4, seq: 1 }), "no older epoch");
        assert!(Tip::default().followed_by(Tip { epoch: 1, seq: 1 }));
    }

    #[test]
    fn certificates_need_a_quorum_of_valid_distinct_signatures() {
        let keys = keys(4);
        let members: Vec<Identity> = keys.iter().map(ValidatorKey::identity).collect();
        let genesis = crate::app::genesis_digest(7);
        let good = certified(&keys, &[0, 2, 3], &genesis);
        assert_eq!(good.check(&genesis, &members, 3), Ok(()));
        // Round trip through the wire.
        let wire = good.encode_cert();
        assert_eq!(LaneRef::decode_cert(&wire, 4), Ok(good.clone()));
        for cut in 0..wire.len() {
            assert!(
                LaneRef::decode_cert(&wire[..cut], 4).is_err(),
                "prefix {cut}"
            );
        }
        assert!(
            LaneRef::decode_cert(&wire, 2).is_err(),
            "ack count over the limit"
        );

        let few = certified(&keys, &[0, 2], &genesis);
        assert!(matches!(
            few.check(&genesis, &members, 3),
            Err(CertError::TooFew { .. })
        ));
        let repeated = certified(&keys, &[0, 2, 2], &genesis);
        assert_eq!(
            repeated.check(&genesis, &members, 3),
            Err(CertError::Signers(1))
        );
        // Relabelled: the same signatures over another position do not verify.
        let mut moved = good.clone();
        moved.at.seq = 4;
        assert!(matches!(
            moved.check(&genesis, &members, 3),
            Err(CertError::Signature { .. })
        ));
        let mut heavier = good.clone();
        heavier.gas += 1;
        assert!(heavier.check(&genesis, &members, 3).is_err());
        // Another chain's certificate.
        let other_chain = crate::app::genesis_digest(8);
        assert!(good.check(&other_chain, &members, 3).is_err());
        // A signature by someone else than the named signer.
        let mut swapped = good.clone();
        swapped.acks[0].1 = swapped.acks[1].1.clone();
        assert!(matches!(
            swapped.check(&genesis, &members, 3),
            Err(CertError::Signature { .. })
        ));
        let mut nowhere = good;
        nowhere.lane = 4;
        assert_eq!(
            nowhere.check(&genesis, &members, 3),
            Err(CertError::NoLane(4))
        );
    }

    #[test]
    fn batches_and_acks_round_trip_and_refuse_bad_bytes() {
        let batch = LaneBatch {
            lane: 2,
            at: Tip { epoch: 1, seq: 1 },
            gas: 42,
            payload: vec![7; 100],
        };
        let wire = batch.encode();
        assert_eq!(LaneBatch::decode(&wire, 1_000), Ok(batch.clone()));
        assert_eq!(
            LaneBatch::decode(&wire, 10),
            Err(LaneError::TooLarge(wire.len()))
        );
        assert!(LaneBatch::decode(&wire[..20], 1_000).is_err());
        let key = &keys(1)[0];
        let genesis = crate::app::genesis_digest(1);
        let digest = batch.digest();
        let ack = Ack {
            lane: 2,
            at: batch.at,
            gas: 42,
            digest,
            signature: sign_ack(key.identity_key(), &genesis, 2, batch.at, 42, &digest),
        };
        let wire = ack.encode();
        let back = Ack::decode(&wire).expect("decodes");
        assert_eq!(back.digest, digest);
        assert!(Ack::decode(&wire[..wire.len() - 1]).is_err());
        assert!(Ack::decode(&[wire.clone(), vec![0]].concat()).is_err());
    }
}
