//! The native sanctions list (`ISanctionsList` at [`SANCTIONS_LIST`]).
//!
//! Storage: slot 0 the number of listed addresses; `officer(a)` → 1, `listed(a)` → 1.
//! Enforcement: [`value_transfer_denied`] for every call frame that moves native coin (the EVM
//! glue asks it before the frame runs), and the asset rules for regulated tokens.

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{SolCall, SolInterface};

use crate::env::{Cx, Env, Failure, Output, akey, deny, slot};
use crate::identity::{admin, require_admin};
use crate::{ISanctionsList as S, SANCTIONS_LIST};

/// Slot of the number of listed addresses.
pub const COUNT_SLOT: U256 = U256::ZERO;

/// Whether `account` is listed.
pub fn is_sanctioned<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    account: Address,
) -> Result<bool, Failure> {
    Ok(!cx
        .read(SANCTIONS_LIST, slot(b"listed", &[akey(account)]))?
        .is_zero())
}

/// The reason a native value transfer from `from` to `to` is refused, if it is: a protocol
/// check without gas ([`Cx::peek`]). Reads the list size first, so an empty list costs one read.
pub fn value_transfer_denied<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    from: Address,
    to: Address,
) -> Result<Option<String>, Failure> {
    if cx.peek(SANCTIONS_LIST, COUNT_SLOT)?.is_zero() {
        return Ok(None);
    }
    let listed = |cx: &mut Cx<'_, E>, a: Address| -> Result<bool, Failure> {
        Ok(!cx
            .peek(SANCTIONS_LIST, slot(b"listed", &[akey(a)]))?
            .is_zero())
    };
    if listed(cx, from)? {
        return Ok(Some(format!(
            "compliance: sanctions: sender {from} is on the sanctions list"
        )));
    }
    if listed(cx, to)? {
        return Ok(Some(format!(
            "compliance: sanctions: recipient {to} is on the sanctions list"
        )));
    }
    Ok(None)
}

/// Runs a call to the sanctions list.
pub fn call_sanctions<E: Env + ?Sized>(
    cx: &mut Cx<'_, E>,
    caller: Address,
    input: &[u8],
) -> Output {
    use S::ISanctionsListCalls as C;
    let Ok(call) = C::abi_decode(input) else {
        return deny("unknown function or malformed arguments for the sanctions list");
    };
    Ok(match call {
        C::setOfficer(c) => {
            require_admin(cx, caller)?;
            cx.write(
                SANCTIONS_LIST,
                slot(b"officer", &[akey(c.officer)]),
                U256::from(c.enabled as u8),
            )?;
            cx.emit(
                SANCTIONS_LIST,
                &S::OfficerSet {
                    officer: c.officer,
                    enabled: c.enabled,
                },
            )?;
            Bytes::new()
        }
        C::setSanctioned(c) => {
            let officer = !cx
                .read(SANCTIONS_LIST, slot(b"officer", &[akey(caller)]))?
                .is_zero();
            if !officer && (caller != admin(cx)? || caller.is_zero()) {
                return deny(format!(
                    "{caller} is not a sanctions officer (the administrator appoints officers)"
                ));
            }
            if c.accounts.is_empty() || c.accounts.len() > 256 {
                return deny("list 1 to 256 accounts at a time");
            }
            let mut count = cx.read(SANCTIONS_LIST, COUNT_SLOT)?;
            for account in c.accounts {
                let key = slot(b"listed", &[akey(account)]);
                let was = !cx.read(SANCTIONS_LIST, key)?.is_zero();
                if was == c.listed {
                    continue;
                }
                cx.write(SANCTIONS_LIST, key, U256::from(c.listed as u8))?;
                count = if c.listed {
                    count + U256::from(1)
                } else {
                    count.saturating_sub(U256::from(1))
                };
                cx.emit(
                    SANCTIONS_LIST,
                    &S::Sanctioned {
                        account,
                        listed: c.listed,
                        officer: caller,
                    },
                )?;
            }
            cx.write(SANCTIONS_LIST, COUNT_SLOT, count)?;
            Bytes::new()
        }
        C::isSanctioned(c) => {
            S::isSanctionedCall::abi_encode_returns(&is_sanctioned(cx, c.account)?).into()
        }
        C::listedCount(_) => {
            let count: u64 = cx.read(SANCTIONS_LIST, COUNT_SLOT)?.saturating_to();
            S::listedCountCall::abi_encode_returns(&count).into()
        }
    })
}
