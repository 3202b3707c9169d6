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

use super::{base::BaseState, types::Location};
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
#[derive(Debug, Clone)]
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
}

/// Concrete accesses of one transaction.
#[derive(Debug, Clone, Default)]
pub struct Accesses {
    /// Locations read.
    pub reads: Vec<Location>,
    /// Locations written.
    pub writes: Vec<Location>,
}

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
const MAX_CALL_DEPTH: usize = 4;

#[derive(Clone)]
struct Path {
    pc: usize,
    stack: Vec<E>,
    /// Memory writes at constant offsets, in order: (offset, width in bytes, value).
    memory: Vec<(usize, usize, E)>,
    /// Memory was written at a non-constant offset: anything may alias.
    memory_dirty: bool,
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
                match cond.as_const() {
                    Some(c) if c.is_zero() => {}
                    Some(_) => {
                        path.pc = d.to();
                        return Step::Continue;
                    }
                    None => {
                        let mut taken = path.clone();
                        taken.pc = d.to();
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
                t.calls.push(CallSite {
                    delegate: matches!(op, opcode::DELEGATECALL | opcode::CALLCODE),
                    target,
                    input,
                });
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

fn eval(e: &Expr, f: &Frame<'_>, base: &BaseState<'_>, reads: &mut Vec<Location>) -> Option<U256> {
    Some(match e {
        Expr::Const(v) => *v,
        Expr::Caller => U256::from_be_slice(f.caller.as_slice()),
        Expr::This => U256::from_be_slice(f.this.as_slice()),
        Expr::CallValue | Expr::Unknown => return None,
        Expr::CallDataSize => U256::from(f.calldata.len()),
        Expr::CallData(o) => calldata_word(f.calldata, *o),
        Expr::Sload(k) => {
            let slot = eval(k, f, base, reads)?;
            reads.push(Location::Storage(f.this, slot));
            base.storage(f.this, slot).ok()?
        }
        Expr::Keccak(words) => {
            let mut buf = Vec::with_capacity(32 * words.len());
            for w in words {
                buf.extend_from_slice(&eval(w, f, base, reads)?.to_be_bytes::<32>());
            }
            U256::from_be_bytes(keccak256(&buf).0)
        }
        Expr::Op(op, args) => {
            let values = args
                .iter()
                .map(|a| eval(a, f, base, reads))
                .collect::<Option<Vec<_>>>()?;
            fold(*op, &values)?
        }
    })
}

/// Templates per (code hash, selector), analysed on first use.
#[derive(Default)]
pub struct Analyzer {
    templates: RwLock<HashMap<TemplateKey, Arc<Template>>>,
}

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
    ) -> Result<Resolved, StateError> {
        let mut out = Accesses::default();
        let complete = self.resolve_into(
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
        let template = self.template(base, code_hash, selector)?;
        let mut complete = template.complete;
        let storage_frame = Frame {
            this: storage_of,
            caller: frame.caller,
            calldata: frame.calldata,
        };
        for (list, is_write) in [(&template.reads, false), (&template.writes, true)] {
            for slot in list {
                match eval(slot, &storage_frame, base, &mut out.reads) {
                    Some(s) => {
                        let l = Location::Storage(storage_of, s);
                        if is_write {
                            out.writes.push(l);
                        } else {
                            out.reads.push(l);
                        }
                    }
                    None => complete = false,
                }
            }
        }
        for call in &template.calls {
            let target = eval(&call.target, &storage_frame, base, &mut out.reads)
                .map(|v| Address::from_word(B256::from(v)));
            let input = call.input.as_ref().and_then(|(len, writes)| {
                // Unknown parts become zero: a prediction may be wrong, never unsafe.
                let mut buf = vec![0u8; *len];
                let mut selector_known = *len >= 4;
                for (rel, width, e) in writes {
                    let value = eval(e, &storage_frame, base, &mut out.reads);
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
            let (Some(target), Some(input)) = (target, input) else {
                complete = false;
                continue;
            };
            out.reads.push(Location::Account(target));
            if depth + 1 >= MAX_CALL_DEPTH {
                complete = false;
                continue;
            }
            let Some(callee) = base.account(target)? else {
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
            complete &= self.resolve_into(
                base,
                callee.code_hash,
                Frame {
                    this,
                    caller: if call.delegate {
                        frame.caller
                    } else {
                        storage_of
                    },
                    calldata: &input,
                },
                storage,
                depth + 1,
                out,
            )?;
        }
        Ok(complete)
    }
}
