//! Static access-list inference: symbolic execution of contract bytecode, once per (code hash,
//! function selector), yielding *templates* of the storage slots a call reads and writes and the
//! calls it makes — expressed over the caller, the calldata, constants and storage reads, so that
//! `keccak256(key . slot)` mapping slots keyed by `msg.sender` or an argument (ERC-20 balances and
//! allowances, AMM reserves and their tokens' balances) resolve to concrete slots per transaction.
//!
//! The interpreter is deliberately small: stack, word-addressed memory at constant offsets,
//! constant folding, both sides of every branch it cannot decide, and budgets on steps and loop
//! visits. Whatever it cannot follow makes the template *partial*; a partial template still
//! contributes what it found. Results only schedule execution; they are never trusted for
//! correctness.

use std::sync::Arc;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256, map::HashMap};
use parking_lot::RwLock;
use pharos_evm::revm::bytecode::opcode::{self, OpCode};

use super::{
    base::{BaseMemo, BaseState},
    types::Location,
};
use crate::StateError;

/// A symbolic 256-bit word.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// A constant.
    Const(U256),
    /// `CALLER`.
    Caller,
    /// `ADDRESS`.
    This,
    /// `CALLVALUE`.
    CallValue,
    /// `CALLDATASIZE`.
    CallDataSize,
    /// `CALLDATALOAD(offset)` at a constant offset.
    CallData(usize),
    /// `SLOAD(slot)` of this contract.
    Sload(Arc<Expr>),
    /// `KECCAK256` of 32-byte words.
    Keccak(Vec<Arc<Expr>>),
    /// An arithmetic or bitwise opcode applied to operands.
    Op(u8, Vec<Arc<Expr>>),
    /// Anything the analysis does not model.
    Unknown,
}

type E = Arc<Expr>;

/// Memory writes that filled a range: (offset relative to the range, width in bytes, value).
pub type MemoryWrites = Vec<(isize, usize, E)>;

type TemplateKey = (B256, [u8; 4]);

fn konst(v: U256) -> E {
    Arc::new(Expr::Const(v))
}

fn unknown() -> E {
    Arc::new(Expr::Unknown)
}

impl Expr {
    fn as_const(&self) -> Option<U256> {
        match self {
            Expr::Const(v) => Some(*v),
            _ => None,
        }
    }

    fn has_unknown(&self) -> bool {
        match self {
            Expr::Unknown => true,
            Expr::Sload(k) => k.has_unknown(),
            Expr::Keccak(ws) | Expr::Op(_, ws) => ws.iter().any(|w| w.has_unknown()),
            _ => false,
        }
    }
}

/// Evaluates an arithmetic/bitwise opcode on constants (`None` for opcodes not modelled).
fn fold(op: u8, a: &[U256]) -> Option<U256> {
    let b = |x: bool| if x { U256::from(1) } else { U256::ZERO };
    Some(match (op, a) {
        (opcode::ADD, [x, y]) => x.wrapping_add(*y),
        (opcode::MUL, [x, y]) => x.wrapping_mul(*y),
        (opcode::SUB, [x, y]) => x.wrapping_sub(*y),
        (opcode::DIV, [x, y]) => x.checked_div(*y).unwrap_or_default(),
        (opcode::MOD, [x, y]) => x.checked_rem(*y).unwrap_or_default(),
        (opcode::EXP, [x, y]) => x.pow(*y),
        (opcode::LT, [x, y]) => b(x < y),
        (opcode::GT, [x, y]) => b(x > y),
        (opcode::EQ, [x, y]) => b(x == y),
        (opcode::ISZERO, [x]) => b(x.is_zero()),
        (opcode::AND, [x, y]) => x & y,
        (opcode::OR, [x, y]) => x | y,
        (opcode::XOR, [x, y]) => x ^ y,
        (opcode::NOT, [x]) => !*x,
        (opcode::SHL, [s, x]) => {
            if *s >= U256::from(256) {
                U256::ZERO
            } else {
                *x << s.to::<usize>()
            }
        }
        (opcode::SHR, [s, x]) => {
            if *s >= U256::from(256) {
                U256::ZERO
            } else {
                *x >> s.to::<usize>()
            }
        }
        _ => return None,
    })
}

/// A call the function makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSite {
    /// `DELEGATECALL`: the callee's code runs on this contract's storage.
    pub delegate: bool,
    /// Callee address.
    pub target: E,
    /// Input: its length and the memory writes that filled it, in order, as (offset relative to
    /// the input, width in bytes, value); `None` when the input was not at constant offsets.
    pub input: Option<(usize, MemoryWrites)>,
}

/// What one function of one contract touches, symbolically.
#[derive(Debug, Clone, Default)]
pub struct Template {
    /// Slots read.
    pub reads: Vec<E>,
    /// Slots written.
    pub writes: Vec<E>,
    /// Calls made.
    pub calls: Vec<CallSite>,
    /// Every path was followed and every slot and call is expressible.
    pub complete: bool,
    /// `reads` and `writes` merged: each slot expression once, with whether it is written.
    pub slots: Vec<(E, bool)>,
}

/// Concrete accesses of one transaction.
#[derive(Debug, Clone, Default)]
pub struct Accesses {
    /// Locations read.
    pub reads: Vec<Location>,
    /// Locations written.
    pub writes: Vec<Location>,
    /// Mapping slots computed on the way, as (64-byte preimage, hash): execution reuses them
    /// instead of hashing again.
    pub preimages: Vec<Preimage>,
}

/// A 64-byte keccak input (`key . slot`, a Solidity mapping slot) and its hash.
pub type Preimage = ([u8; 64], B256);

/// Result of resolving templates for a transaction.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// Every access is known.
    Complete(Accesses),
    /// Some accesses could not be resolved; these are the ones that could.
    Partial(Accesses),
}

const MAX_STEPS: usize = 60_000;
const MAX_PATHS: usize = 2_000;
const MAX_VISITS_PER_PC: u32 = 24;
/// Calls followed from a transaction's callee when state reads are cheap: its own calls are
/// resolved (an AMM router's calls into the pair reach the reserves), theirs are not (the pair's
/// token transfers); what is not followed is left to the executor's check, which is cheaper
/// than resolving it for every transaction.
pub const SHALLOW_CALL_DEPTH: usize = 2;
/// Calls followed when state reads are slow: every unpredicted read would stall a worker, so
/// deeper resolution (and preloading what it finds) pays for itself.
pub const DEEP_CALL_DEPTH: usize = 4;

#[derive(Clone)]
struct Path {
    pc: usize,
    stack: Vec<E>,
    /// Memory writes at constant offsets, in order: (offset, width in bytes, value).
    memory: Vec<(usize, usize, E)>,
    /// Memory was written at a non-constant offset: anything may alias.
    memory_dirty: bool,
    /// Branch conditions decided on this path, with the side taken.
    facts: Vec<(E, bool)>,
    /// Output size the last call asked for: taken as `RETURNDATASIZE` (well-behaved callees
    /// return what the ABI promises; a wrong guess only costs a misprediction).
    last_out_len: Option<usize>,
}

const MAX_FACTS: usize = 64;

impl Path {
    /// Whether `cond` is already decided on this path (directly, or as `ISZERO` of a decided
    /// condition, or the other way round).
    fn known(&self, cond: &E) -> Option<bool> {
        // Unknown values are all alike to `==`: never reason about them.
        if cond.has_unknown() {
            return None;
        }
        for (c, b) in self.facts.iter().rev() {
            if c == cond {
                return Some(*b);
            }
            if let Expr::Op(opcode::ISZERO, a) = &**cond
                && a.first() == Some(c)
            {
                return Some(!*b);
            }
            if let Expr::Op(opcode::ISZERO, a) = &**c
                && a.first() == Some(cond)
            {
                return Some(!*b);
            }
        }
        None
    }

    fn learn(&mut self, cond: E, value: bool) {
        if self.facts.len() < MAX_FACTS && !cond.has_unknown() {
            self.facts.push((cond, value));
        }
    }
}

const MAX_MEMORY_WRITES: usize = 512;

impl Path {
    fn mem_write(&mut self, offset: usize, width: usize, value: E) {
        if width == 32 {
            self.memory
                .retain(|(o, w, _)| !(*o >= offset && o + w <= offset + 32));
        }
        self.memory.push((offset, width, value));
        if self.memory.len() > MAX_MEMORY_WRITES {
            self.memory_dirty = true;
            self.memory.clear();
        }
    }

    /// The word stored exactly at `offset` and not overwritten since.
    fn mem_word(&self, offset: usize) -> Option<E> {
        if self.memory_dirty {
            return None;
        }
        let (o, w, e) = self
            .memory
            .iter()
            .rev()
            .find(|(o, w, _)| *o < offset + 32 && offset < o + w)?;
        (*o == offset && *w == 32).then(|| e.clone())
    }

    /// The writes that make up `len` bytes at `offset`.
    fn mem_range(&self, offset: usize, len: usize) -> Option<(usize, MemoryWrites)> {
        if self.memory_dirty || len > 4096 {
            return None;
        }
        Some((
            len,
            self.memory
                .iter()
                .filter(|(o, w, _)| *o < offset + len && offset < o + w)
                .map(|(o, w, e)| (*o as isize - offset as isize, *w, e.clone()))
                .collect(),
        ))
    }
}

struct Interp<'c> {
    code: &'c [u8],
    jumpdests: Vec<bool>,
    selector: U256,
}

impl Interp<'_> {
    fn simplify(&self, op: u8, args: Vec<E>) -> E {
        if let Some(values) = args
            .iter()
            .map(|a| a.as_const())
            .collect::<Option<Vec<_>>>()
            && let Some(v) = fold(op, &values)
        {
            return konst(v);
        }
        // The caller is an address and never zero: masking it to 160 bits changes nothing, and
        // comparing it with zero is false (this prunes mint/burn paths of token transfers).
        let is_caller = |e: &E| matches!(**e, Expr::Caller);
        let is_mask = |e: &E| e.as_const() == Some((U256::from(1) << 160) - U256::from(1));
        match (op, args.as_slice()) {
            (opcode::AND, [a, b])
                if (is_caller(a) && is_mask(b)) || (is_mask(a) && is_caller(b)) =>
            {
                return Arc::new(Expr::Caller);
            }
            (opcode::ISZERO, [a]) if is_caller(a) => return konst(U256::ZERO),
            (opcode::EQ, [a, b])
                if (is_caller(a) && b.as_const() == Some(U256::ZERO))
                    || (is_caller(b) && a.as_const() == Some(U256::ZERO)) =>
            {
                return konst(U256::ZERO);
            }
            _ => {}
        }
        // The dispatcher: the selector is known for this template.
        if let [a, b] = args.as_slice()
            && matches!(**b, Expr::CallData(0))
            && let Some(k) = a.as_const()
            && op == opcode::SHR
            && k >= U256::from(224)
            && k < U256::from(256)
        {
            return konst(self.selector >> (k.to::<usize>() - 224));
        }
        if op == opcode::DIV
            && let [a, b] = args.as_slice()
            && matches!(**a, Expr::CallData(0))
            && b.as_const() == Some(U256::from(1) << 224)
        {
            return konst(self.selector);
        }
        Arc::new(Expr::Op(op, args))
    }

    fn run(&self) -> Template {
        let mut template = Template {
            complete: true,
            ..Default::default()
        };
        let mut visits = vec![0u32; self.code.len() + 1];
        let mut work = vec![Path {
            pc: 0,
            stack: Vec::new(),
            memory: Vec::new(),
            memory_dirty: false,
            facts: Vec::new(),
            last_out_len: None,
        }];
        let mut steps = 0usize;
        let mut paths = 1usize;
        while let Some(mut path) = work.pop() {
            loop {
                steps += 1;
                if steps > MAX_STEPS {
                    template.complete = false;
                    return template;
                }
                let pc = path.pc;
                let Some(&op) = self.code.get(pc) else { break };
                visits[pc] += 1;
                if visits[pc] > MAX_VISITS_PER_PC {
                    template.complete = false;
                    break;
                }
                match self.step(&mut path, op, &mut template) {
                    Step::Continue => {}
                    Step::End => break,
                    Step::Fork(other) => {
                        paths += 1;
                        if paths > MAX_PATHS {
                            template.complete = false;
                        } else {
                            work.push(*other);
                        }
                    }
                    Step::Lost => {
                        template.complete = false;
                        break;
                    }
                }
            }
        }
        template.reads.sort_by_key(|e| format!("{e:?}"));
        template.reads.dedup();
        template.writes.sort_by_key(|e| format!("{e:?}"));
        template.writes.dedup();
        let mut slots: Vec<(E, bool)> = template.writes.iter().map(|e| (e.clone(), true)).collect();
        for r in &template.reads {
            if !template.writes.contains(r) {
                slots.push((r.clone(), false));
            }
        }
        template.slots = slots;
        template
    }

    fn pop(path: &mut Path) -> Option<E> {
        path.stack.pop()
    }

    fn const_usize(e: &E, limit: usize) -> Option<usize> {
        e.as_const()
            .filter(|v| *v < U256::from(limit))
            .map(|v| v.to::<usize>())
    }

    fn step(&self, path: &mut Path, op: u8, t: &mut Template) -> Step {
        let pc = path.pc;
        macro_rules! pop {
            () => {
                match Self::pop(path) {
                    Some(v) => v,
                    None => return Step::End,
                }
            };
        }
        match op {
            opcode::STOP
            | opcode::RETURN
            | opcode::REVERT
            | opcode::INVALID
            | opcode::SELFDESTRUCT => {
                return Step::End;
            }
            opcode::PUSH0 => path.stack.push(konst(U256::ZERO)),
            opcode::PUSH1..=opcode::PUSH32 => {
                let n = (op - opcode::PUSH1 + 1) as usize;
                let end = (pc + 1 + n).min(self.code.len());
                let mut bytes = [0u8; 32];
                let slice = &self.code[pc + 1..end];
                bytes[32 - n..32 - n + slice.len()].copy_from_slice(slice);
                path.stack.push(konst(U256::from_be_bytes(bytes)));
                path.pc = pc + 1 + n;
                return Step::Continue;
            }
            opcode::DUP1..=opcode::DUP16 => {
                let n = (op - opcode::DUP1 + 1) as usize;
                if path.stack.len() < n {
                    return Step::End;
                }
                let v = path.stack[path.stack.len() - n].clone();
                path.stack.push(v);
            }
            opcode::SWAP1..=opcode::SWAP16 => {
                let n = (op - opcode::SWAP1 + 1) as usize;
                let len = path.stack.len();
                if len < n + 1 {
                    return Step::End;
                }
                path.stack.swap(len - 1, len - 1 - n);
            }
            opcode::POP => {
                pop!();
            }
            opcode::CALLER => path.stack.push(Arc::new(Expr::Caller)),
            opcode::ADDRESS => path.stack.push(Arc::new(Expr::This)),
            opcode::CALLVALUE => path.stack.push(Arc::new(Expr::CallValue)),
            opcode::CALLDATASIZE => path.stack.push(Arc::new(Expr::CallDataSize)),
            opcode::RETURNDATASIZE => path.stack.push(match path.last_out_len {
                Some(n) => konst(U256::from(n)),
                None => unknown(),
            }),
            opcode::CALLDATALOAD => {
                let off = pop!();
                path.stack.push(match off.as_const() {
                    Some(o) if o < U256::from(1 << 16) => Arc::new(Expr::CallData(o.to())),
                    _ => unknown(),
                });
            }
            opcode::CALLDATACOPY => {
                let (dest, off, len) = (pop!(), pop!(), pop!());
                match (
                    Self::const_usize(&dest, 1 << 20),
                    Self::const_usize(&off, 1 << 16),
                    Self::const_usize(&len, 4096),
                ) {
                    (Some(d), Some(o), Some(l)) => {
                        for i in 0..l.div_ceil(32) {
                            path.mem_write(d + 32 * i, 32, Arc::new(Expr::CallData(o + 32 * i)));
                        }
                    }
                    _ => path.memory_dirty = true,
                }
            }
            opcode::MSTORE | opcode::MSTORE8 => {
                let (off, v) = (pop!(), pop!());
                let width = if op == opcode::MSTORE { 32 } else { 1 };
                match Self::const_usize(&off, 1 << 20) {
                    Some(o) => path.mem_write(o, width, v),
                    None => path.memory_dirty = true,
                }
            }
            opcode::MLOAD => {
                let off = pop!();
                let v = Self::const_usize(&off, 1 << 20)
                    .and_then(|o| path.mem_word(o))
                    .unwrap_or_else(unknown);
                path.stack.push(v);
            }
            opcode::KECCAK256 => {
                let (off, len) = (pop!(), pop!());
                let words = match (
                    Self::const_usize(&off, 1 << 20),
                    Self::const_usize(&len, 257),
                ) {
                    (Some(o), Some(l)) if l % 32 == 0 => (0..l / 32)
                        .map(|i| path.mem_word(o + 32 * i))
                        .collect::<Option<Vec<E>>>(),
                    _ => None,
                };
                path.stack.push(match words {
                    Some(w) => Arc::new(Expr::Keccak(w)),
                    None => unknown(),
                });
            }
            opcode::SLOAD => {
                let k = pop!();
                if k.has_unknown() {
                    t.complete = false;
                } else {
                    t.reads.push(k.clone());
                }
                path.stack.push(Arc::new(Expr::Sload(k)));
            }
            opcode::SSTORE => {
                let (k, _) = (pop!(), pop!());
                if k.has_unknown() {
                    t.complete = false;
                } else {
                    t.writes.push(k);
                }
            }
            opcode::JUMP => {
                let dest = pop!();
                match dest.as_const() {
                    Some(d) if self.is_jumpdest(d) => {
                        path.pc = d.to();
                        return Step::Continue;
                    }
                    _ => return Step::Lost,
                }
            }
            opcode::JUMPI => {
                let (dest, cond) = (pop!(), pop!());
                let Some(d) = dest.as_const().filter(|d| self.is_jumpdest(*d)) else {
                    return Step::Lost;
                };
                let decided = match cond.as_const() {
                    Some(c) => Some(!c.is_zero()),
                    None => path.known(&cond),
                };
                match decided {
                    Some(false) => {}
                    Some(true) => {
                        path.pc = d.to();
                        return Step::Continue;
                    }
                    None => {
                        let mut taken = path.clone();
                        taken.pc = d.to();
                        taken.learn(cond.clone(), true);
                        path.learn(cond, false);
                        path.pc = pc + 1;
                        return Step::Fork(Box::new(taken));
                    }
                }
            }
            opcode::CALL | opcode::CALLCODE | opcode::DELEGATECALL | opcode::STATICCALL => {
                let _gas = pop!();
                let target = pop!();
                if matches!(op, opcode::CALL | opcode::CALLCODE) {
                    pop!();
                }
                let (in_off, in_len, out_off, out_len) = (pop!(), pop!(), pop!(), pop!());
                let input = match (
                    Self::const_usize(&in_off, 1 << 20),
                    Self::const_usize(&in_len, 4096),
                ) {
                    (Some(o), Some(l)) => path.mem_range(o, l),
                    _ => None,
                };
                if target.has_unknown() || input.is_none() {
                    t.complete = false;
                }
                let site = CallSite {
                    delegate: matches!(op, opcode::DELEGATECALL | opcode::CALLCODE),
                    target,
                    input,
                };
                if !t.calls.contains(&site) {
                    t.calls.push(site);
                }
                path.last_out_len = Self::const_usize(&out_len, 4096);
                // Return data lands in memory: those bytes are unknown now.
                match (
                    Self::const_usize(&out_off, 1 << 20),
                    Self::const_usize(&out_len, 4096),
                ) {
                    (Some(o), Some(l)) => {
                        for i in 0..l.div_ceil(32) {
                            path.mem_write(o + 32 * i, 32, unknown());
                        }
                    }
                    _ => path.memory_dirty = true,
                }
                path.stack.push(unknown());
            }
            opcode::CREATE | opcode::CREATE2 => {
                t.complete = false;
                let n = if op == opcode::CREATE { 3 } else { 4 };
                for _ in 0..n {
                    pop!();
                }
                path.stack.push(unknown());
            }
            opcode::RETURNDATACOPY | opcode::CODECOPY | opcode::EXTCODECOPY | opcode::MCOPY => {
                if op == opcode::EXTCODECOPY {
                    pop!();
                }
                let (dest, _src, len) = (pop!(), pop!(), pop!());
                match (
                    Self::const_usize(&dest, 1 << 20),
                    Self::const_usize(&len, 4096),
                ) {
                    (Some(d), Some(l)) => {
                        for i in 0..l.div_ceil(32) {
                            path.mem_write(d + 32 * i, 32, unknown());
                        }
                    }
                    _ => path.memory_dirty = true,
                }
            }
            opcode::ADD
            | opcode::MUL
            | opcode::SUB
            | opcode::DIV
            | opcode::MOD
            | opcode::EXP
            | opcode::LT
            | opcode::GT
            | opcode::EQ
            | opcode::AND
            | opcode::OR
            | opcode::XOR
            | opcode::SHL
            | opcode::SHR => {
                let (a, b) = (pop!(), pop!());
                let e = self.simplify(op, vec![a, b]);
                path.stack.push(e);
            }
            opcode::ISZERO | opcode::NOT => {
                let a = pop!();
                let e = self.simplify(op, vec![a]);
                path.stack.push(e);
            }
            opcode::JUMPDEST => {}
            _ => {
                let Some(info) = OpCode::new(op) else {
                    return Step::End;
                };
                for _ in 0..info.inputs() {
                    pop!();
                }
                for _ in 0..info.outputs() {
                    path.stack.push(unknown());
                }
            }
        }
        path.pc = pc + 1;
        if path.stack.len() > 1024 {
            return Step::End;
        }
        Step::Continue
    }

    fn is_jumpdest(&self, d: U256) -> bool {
        d < U256::from(self.jumpdests.len()) && self.jumpdests[d.to::<usize>()]
    }
}

enum Step {
    Continue,
    End,
    Fork(Box<Path>),
    Lost,
}

fn jumpdests(code: &[u8]) -> Vec<bool> {
    let mut out = vec![false; code.len()];
    let mut i = 0;
    while i < code.len() {
        let op = code[i];
        if op == opcode::JUMPDEST {
            out[i] = true;
        }
        i += 1;
        if (opcode::PUSH1..=opcode::PUSH32).contains(&op) {
            i += (op - opcode::PUSH1 + 1) as usize;
        }
    }
    out
}

/// Builds the template of `selector` in `code`.
pub fn analyze(code: &[u8], selector: [u8; 4]) -> Template {
    let interp = Interp {
        code,
        jumpdests: jumpdests(code),
        selector: U256::from(u32::from_be_bytes(selector)),
    };
    interp.run()
}

/// Values a template is instantiated with.
struct Frame<'a> {
    this: Address,
    caller: Address,
    calldata: &'a [u8],
}

fn calldata_word(data: &[u8], offset: usize) -> U256 {
    let mut word = [0u8; 32];
    if offset < data.len() {
        let end = (offset + 32).min(data.len());
        word[..end - offset].copy_from_slice(&data[offset..end]);
    }
    U256::from_be_bytes(word)
}

/// Hashes already computed while resolving one transaction, by expression node.
#[derive(Default)]
struct HashMemo(Vec<(*const Expr, U256)>);

/// What expression evaluation needs: the frame's values, the pre-state and the memos.
struct Eval<'a, 'b> {
    base: &'a BaseState<'b>,
    state: &'a mut BaseMemo,
    hashes: HashMemo,
    preimages: Vec<Preimage>,
}

fn eval(e: &Expr, f: &Frame<'_>, ev: &mut Eval<'_, '_>, reads: &mut Vec<Location>) -> Option<U256> {
    eval_memo(e, f, ev, reads)
}

fn eval_memo(
    e: &Expr,
    f: &Frame<'_>,
    ev: &mut Eval<'_, '_>,
    reads: &mut Vec<Location>,
) -> Option<U256> {
    Some(match e {
        Expr::Const(v) => *v,
        Expr::Caller => U256::from_be_slice(f.caller.as_slice()),
        Expr::This => U256::from_be_slice(f.this.as_slice()),
        Expr::CallValue | Expr::Unknown => return None,
        Expr::CallDataSize => U256::from(f.calldata.len()),
        Expr::CallData(o) => calldata_word(f.calldata, *o),
        Expr::Sload(k) => {
            let slot = eval_memo(k, f, ev, reads)?;
            reads.push(Location::Storage(f.this, slot));
            ev.state.storage(ev.base, f.this, slot).ok()?
        }
        Expr::Keccak(words) => {
            let key = e as *const Expr;
            if let Some((_, v)) = ev.hashes.0.iter().find(|(p, _)| *p == key) {
                return Some(*v);
            }
            let mut buf = [0u8; 32 * 8];
            if words.len() > 8 {
                return None;
            }
            for (i, w) in words.iter().enumerate() {
                buf[32 * i..32 * (i + 1)]
                    .copy_from_slice(&eval_memo(w, f, ev, reads)?.to_be_bytes::<32>());
            }
            let hash = keccak256(&buf[..32 * words.len()]);
            if words.len() == 2 {
                let mut preimage = [0u8; 64];
                preimage.copy_from_slice(&buf[..64]);
                ev.preimages.push((preimage, hash));
            }
            let v = U256::from_be_bytes(hash.0);
            ev.hashes.0.push((key, v));
            v
        }
        Expr::Op(op, args) => match args.as_slice() {
            [a] => fold(*op, &[eval_memo(a, f, ev, reads)?])?,
            [a, b] => fold(
                *op,
                &[eval_memo(a, f, ev, reads)?, eval_memo(b, f, ev, reads)?],
            )?,
            _ => return None,
        },
    })
}

/// Templates per (code hash, selector), analysed on first use.
#[derive(Default)]
pub struct Analyzer {
    templates: RwLock<HashMap<TemplateKey, Arc<Template>>>,
}

/// A worker's own handles on templates: after the first use, looking one up touches no shared
/// lock or reference count (which two cores would otherwise fight over on every transaction).
/// Also remembers, for the block at hand, what identical calls resolved to (a pool's
/// `getReserves()` is the same for every swap on it).
#[derive(Default)]
pub struct TemplateCache {
    /// How many levels of calls to follow (0 means [`SHALLOW_CALL_DEPTH`]).
    pub max_depth: usize,
    templates: HashMap<TemplateKey, Arc<Template>>,
    calls: HashMap<(B256, Address, Address, Bytes), (Accesses, bool)>,
    /// Pre-block state read while resolving.
    pub base: BaseMemo,
}

/// Most remembered calls per worker and block.
const MAX_REMEMBERED_CALLS: usize = 4096;

impl Analyzer {
    /// The template of `selector` in the code with hash `code_hash`.
    pub fn template(
        &self,
        base: &BaseState<'_>,
        code_hash: B256,
        selector: [u8; 4],
    ) -> Result<Arc<Template>, StateError> {
        if let Some(t) = self.templates.read().get(&(code_hash, selector)) {
            return Ok(t.clone());
        }
        let code: Bytes = base.view().code(code_hash)?.unwrap_or_default();
        let template = Arc::new(analyze(&code, selector));
        self.templates
            .write()
            .insert((code_hash, selector), template.clone());
        Ok(template)
    }

    /// Number of analysed (contract, function) pairs.
    pub fn len(&self) -> usize {
        self.templates.read().len()
    }

    /// Whether nothing was analysed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The concrete accesses of calling `address` (code `code_hash`) from `caller` with
    /// `calldata`, following the calls it makes.
    pub fn resolve(
        &self,
        base: &BaseState<'_>,
        code_hash: B256,
        address: Address,
        caller: Address,
        calldata: &[u8],
        cache: &mut TemplateCache,
    ) -> Result<Resolved, StateError> {
        let mut out = Accesses::default();
        let complete = self.resolve_into(
            cache,
            base,
            code_hash,
            Frame {
                this: address,
                caller,
                calldata,
            },
            address,
            0,
            &mut out,
        )?;
        Ok(if complete {
            Resolved::Complete(out)
        } else {
            Resolved::Partial(out)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve_into(
        &self,
        cache: &mut TemplateCache,
        base: &BaseState<'_>,
        code_hash: B256,
        frame: Frame<'_>,
        storage_of: Address,
        depth: usize,
        out: &mut Accesses,
    ) -> Result<bool, StateError> {
        let Some(selector) = frame
            .calldata
            .get(..4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
        else {
            return Ok(false);
        };
        let key = (code_hash, selector);
        if let std::collections::hash_map::Entry::Vacant(e) = cache.templates.entry(key) {
            // A copy of its own: the worker's reference counting stays on its own core.
            let t = self.template(base, code_hash, selector)?;
            e.insert(Arc::new((*t).clone()));
        }
        let Some(template) = cache.templates.get(&key).cloned() else {
            return Ok(false);
        };
        let mut complete = template.complete;
        let storage_frame = Frame {
            this: storage_of,
            caller: frame.caller,
            calldata: frame.calldata,
        };
        let mut ev = Eval {
            base,
            state: &mut cache.base,
            hashes: HashMemo::default(),
            preimages: Vec::new(),
        };
        for (slot, is_write) in &template.slots {
            match eval_memo(slot, &storage_frame, &mut ev, &mut out.reads) {
                Some(s) => {
                    let l = Location::Storage(storage_of, s);
                    if *is_write {
                        out.writes.push(l);
                    } else {
                        out.reads.push(l);
                    }
                }
                None => complete = false,
            }
        }
        out.preimages.append(&mut ev.preimages);
        for call in &template.calls {
            let mut ev = Eval {
                base,
                state: &mut cache.base,
                hashes: HashMemo::default(),
                preimages: Vec::new(),
            };
            let target = eval(&call.target, &storage_frame, &mut ev, &mut out.reads)
                .map(|v| Address::from_word(B256::from(v)));
            let input = call.input.as_ref().and_then(|(len, writes)| {
                // Unknown parts become zero: a prediction may be wrong, never unsafe.
                let mut buf = vec![0u8; *len];
                let mut selector_known = *len >= 4;
                for (rel, width, e) in writes {
                    let value = eval(e, &storage_frame, &mut ev, &mut out.reads);
                    if *rel <= 0 && (*rel + *width as isize) >= 4 && value.is_none() {
                        selector_known = false;
                    }
                    let bytes = value.unwrap_or_default().to_be_bytes::<32>();
                    let src = &bytes[32 - width..];
                    for (k, b) in src.iter().enumerate() {
                        let at = *rel + k as isize;
                        if at >= 0 && (at as usize) < *len {
                            buf[at as usize] = *b;
                        }
                    }
                }
                selector_known.then_some(buf)
            });
            out.preimages.append(&mut ev.preimages);
            let (Some(target), Some(input)) = (target, input) else {
                complete = false;
                continue;
            };
            out.reads.push(Location::Account(target));
            let max_depth = if cache.max_depth == 0 {
                SHALLOW_CALL_DEPTH
            } else {
                cache.max_depth
            };
            if depth + 1 >= max_depth {
                complete = false;
                continue;
            }
            let Some(callee) = cache.base.account(base, target)? else {
                continue;
            };
            if !callee.has_code() {
                continue;
            }
            let (this, storage) = if call.delegate {
                (storage_of, storage_of)
            } else {
                (target, target)
            };
            let caller = if call.delegate {
                frame.caller
            } else {
                storage_of
            };
            let input = Bytes::from(input);
            let key = (callee.code_hash, this, caller, input.clone());
            if let Some((accesses, done)) = cache.calls.get(&key) {
                out.reads.extend_from_slice(&accesses.reads);
                out.writes.extend_from_slice(&accesses.writes);
                out.preimages.extend_from_slice(&accesses.preimages);
                complete &= *done;
                continue;
            }
            let mut nested = Accesses::default();
            let done = self.resolve_into(
                cache,
                base,
                callee.code_hash,
                Frame {
                    this,
                    caller,
                    calldata: &input,
                },
                storage,
                depth + 1,
                &mut nested,
            )?;
            out.reads.extend_from_slice(&nested.reads);
            out.writes.extend_from_slice(&nested.writes);
            out.preimages.extend_from_slice(&nested.preimages);
            complete &= done;
            if cache.calls.len() < MAX_REMEMBERED_CALLS {
                cache.calls.insert(key, (nested, done));
            }
        }
        Ok(complete)
    }
}
