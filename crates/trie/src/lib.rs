//! The Ethereum Merkle-Patricia trie, kept in memory across blocks.
//!
//! A [`Trie`] holds the part of one trie (the account trie, or one account's storage trie) that
//! recent blocks touched. Everything else stays *blinded*: a child known only by its hash, read
//! from a [`NodeSource`] (the node store on disk) the first time an update or a proof walks
//! through it, and checked against that hash. So:
//!
//! * **Sparse.** Opening a trie reads nothing; a block reveals only the paths it changes.
//! * **Incremental.** Every node caches its RLP reference. A change clears the cache on the path
//!   from the root to the changed leaf and nowhere else, so [`Trie::root`] rehashes only dirty
//!   paths. The top of a large dirty trie is hashed in parallel (rayon), and a large batch of
//!   updates is applied to the sixteen subtries of a branch in parallel.
//! * **Path-addressed persistence.** [`Trie::take_changes`] lists the nodes written since the
//!   last call, keyed by their nibble path, and the paths whose node disappeared, so the caller
//!   can store exactly one node per path (no garbage from old versions). Leaves, extensions and
//!   branches are stored as their standard RLP encoding; nodes shorter than 32 bytes live inside
//!   their parent, as in Ethereum.
//! * **Proofs.** [`Trie::proof`] returns the EIP-1186 proof of a key: the RLP of every hashed node
//!   from the root along the key's path.
//!
//! Keys are fixed-length (64 nibbles: a keccak-256 hash), so no key is a prefix of another and
//! branch nodes never carry values.
//!
//! This crate knows nothing about accounts, databases or blocks; `pharos-storage` builds the
//! state commitment on it.
#![warn(missing_docs)]

use alloy_primitives::{B256, Bytes, keccak256};
use alloy_rlp::{Decodable, EMPTY_STRING_CODE, Encodable};
use alloy_trie::{
    EMPTY_ROOT_HASH, Nibbles, TrieMask,
    nodes::{BranchNodeRef, ExtensionNodeRef, LeafNodeRef, RlpNode, TrieNode},
};
use parking_lot::Mutex;
use rayon::prelude::*;

/// Where blinded nodes are read from.
pub trait NodeSource: Sync {
    /// The RLP encoding of the node stored at `path`, if any.
    fn node(&self, path: &Nibbles) -> Result<Option<Vec<u8>>, TrieError>;
}

/// A source with no nodes: for tries built entirely in memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNodes;

impl NodeSource for NoNodes {
    fn node(&self, _path: &Nibbles) -> Result<Option<Vec<u8>>, TrieError> {
        Ok(None)
    }
}

/// What can go wrong while revealing nodes.
#[derive(Debug, thiserror::Error)]
pub enum TrieError {
    /// A node the trie refers to is not in the store.
    #[error("trie node {hash} at path {path:?} is missing from the node store")]
    MissingNode {
        /// Path of the node.
        path: Nibbles,
        /// Hash its parent records.
        hash: B256,
    },
    /// The stored node does not hash to what its parent records.
    #[error("trie node at path {path:?} hashes to {found}, its parent records {expected}")]
    HashMismatch {
        /// Path of the node.
        path: Nibbles,
        /// Hash of the stored bytes.
        found: B256,
        /// Hash the parent records.
        expected: B256,
    },
    /// The stored node is not a valid trie node.
    #[error("trie node at path {path:?} does not decode: {error}")]
    Decode {
        /// Path of the node.
        path: Nibbles,
        /// Decoder message.
        error: String,
    },
    /// The node store failed.
    #[error("node store: {0}")]
    Source(String),
}

/// Length in nibbles of every key.
pub const KEY_NIBBLES: usize = 64;

/// Updates in one batch at or above which a branch applies them to its children in parallel.
const PARALLEL_UPDATES: usize = 128;
/// Branches at depth below this are hashed child-parallel when dirty.
const PARALLEL_HASH_DEPTH: usize = 2;

#[derive(Debug, Clone, Default)]
struct Meta {
    /// Cached reference (`rlp(node)` if shorter than 32 bytes, else `rlp(keccak(rlp(node)))`);
    /// `None` when the node changed since it was last hashed.
    rlp: Option<RlpNode>,
    /// The node store holds this node at its path, as it is now.
    saved: bool,
}

impl Meta {
    fn fresh() -> Self {
        Self::default()
    }

    fn stored(rlp: RlpNode) -> Self {
        Self {
            rlp: Some(rlp),
            saved: true,
        }
    }

    fn touch(&mut self) {
        self.rlp = None;
        self.saved = false;
    }
}

#[derive(Debug, Clone)]
struct Leaf {
    key: Nibbles,
    value: Vec<u8>,
    meta: Meta,
}

#[derive(Debug, Clone)]
struct Extension {
    key: Nibbles,
    child: Node,
    meta: Meta,
}

#[derive(Debug, Clone)]
struct Branch {
    children: [Node; 16],
    meta: Meta,
}

#[derive(Debug, Clone, Default)]
enum Node {
    #[default]
    Empty,
    /// Blinded: stored at this path in the node source, known by hash.
    Hash(B256),
    Leaf(Box<Leaf>),
    Extension(Box<Extension>),
    Branch(Box<Branch>),
}

fn empty_rlp() -> RlpNode {
    RlpNode::from_raw(&[EMPTY_STRING_CODE]).expect("one byte fits")
}

impl Node {
    fn leaf(key: Nibbles, value: Vec<u8>) -> Self {
        Node::Leaf(Box::new(Leaf {
            key,
            value,
            meta: Meta::fresh(),
        }))
    }

    fn extension(key: Nibbles, child: Node) -> Self {
        if key.is_empty() {
            return child;
        }
        Node::Extension(Box::new(Extension {
            key,
            child,
            meta: Meta::fresh(),
        }))
    }

    fn meta(&self) -> Option<&Meta> {
        match self {
            Node::Empty | Node::Hash(_) => None,
            Node::Leaf(l) => Some(&l.meta),
            Node::Extension(e) => Some(&e.meta),
            Node::Branch(b) => Some(&b.meta),
        }
    }

    fn meta_mut(&mut self) -> Option<&mut Meta> {
        match self {
            Node::Empty | Node::Hash(_) => None,
            Node::Leaf(l) => Some(&mut l.meta),
            Node::Extension(e) => Some(&mut e.meta),
            Node::Branch(b) => Some(&mut b.meta),
        }
    }

    /// The cached reference of a hashed (or blinded, or empty) node.
    fn cached_rlp(&self) -> Option<RlpNode> {
        match self {
            Node::Empty => Some(empty_rlp()),
            Node::Hash(h) => Some(RlpNode::word_rlp(h)),
            _ => self.meta().and_then(|m| m.rlp.clone()),
        }
    }

    /// Encodes the node (children must be hashed) into `buf`.
    fn encode(&self, buf: &mut Vec<u8>) {
        buf.clear();
        match self {
            Node::Empty | Node::Hash(_) => buf.push(EMPTY_STRING_CODE),
            Node::Leaf(l) => LeafNodeRef::new(&l.key, &l.value).encode(buf),
            Node::Extension(e) => {
                let child = e
                    .child
                    .cached_rlp()
                    .expect("children hashed before encoding");
                ExtensionNodeRef::new(&e.key, &child).encode(buf)
            }
            Node::Branch(b) => {
                let (stack, mask) = branch_stack(&b.children);
                BranchNodeRef::new(&stack, mask).encode(buf)
            }
        }
    }
}

fn branch_stack(children: &[Node; 16]) -> (Vec<RlpNode>, TrieMask) {
    let mut stack = Vec::with_capacity(16);
    let mut mask = TrieMask::default();
    for (i, child) in children.iter().enumerate() {
        if matches!(child, Node::Empty) {
            continue;
        }
        stack.push(child.cached_rlp().expect("children hashed before encoding"));
        mask.set_bit(i as u8);
    }
    (stack, mask)
}

fn new_branch() -> Box<Branch> {
    Box::new(Branch {
        children: Default::default(),
        meta: Meta::fresh(),
    })
}

/// One nibble as a path.
fn nibble_path(n: u8) -> Nibbles {
    Nibbles::from_nibbles_unchecked([n])
}

fn child_path(path: &Nibbles, n: u8) -> Nibbles {
    let mut p = *path;
    p.push_unchecked(n);
    p
}

struct Ctx<'a> {
    source: &'a dyn NodeSource,
    removed: &'a Mutex<Vec<Nibbles>>,
}

impl Ctx<'_> {
    fn removed(&self, path: Nibbles) {
        self.removed.lock().push(path);
    }
}

/// Decodes a stored node into an in-memory node whose children are blinded (or inline).
fn from_trie_node(node: TrieNode, meta: Meta, path: &Nibbles) -> Result<Node, TrieError> {
    Ok(match node {
        TrieNode::EmptyRoot => Node::Empty,
        TrieNode::Leaf(l) => Node::Leaf(Box::new(Leaf {
            key: l.key,
            value: l.value,
            meta,
        })),
        TrieNode::Extension(e) => {
            let child_at = path.join(&e.key);
            Node::Extension(Box::new(Extension {
                child: child_ref(&e.child, &child_at)?,
                key: e.key,
                meta,
            }))
        }
        TrieNode::Branch(b) => {
            let mut children: [Node; 16] = Default::default();
            for (i, child) in b.as_ref().children() {
                if let Some(child) = child {
                    children[i as usize] = child_ref(child, &child_path(path, i))?;
                }
            }
            Node::Branch(Box::new(Branch { children, meta }))
        }
    })
}

/// A child reference: blinded when hashed, decoded in place when inline.
fn child_ref(rlp: &RlpNode, path: &Nibbles) -> Result<Node, TrieError> {
    if let Some(hash) = rlp.as_hash() {
        return Ok(Node::Hash(hash));
    }
    let decoded = TrieNode::decode(&mut rlp.as_slice()).map_err(|e| TrieError::Decode {
        path: *path,
        error: e.to_string(),
    })?;
    from_trie_node(decoded, Meta::stored(rlp.clone()), path)
}

fn reveal(node: &mut Node, path: &Nibbles, ctx: &Ctx<'_>) -> Result<(), TrieError> {
    let Node::Hash(hash) = *node else {
        return Ok(());
    };
    let bytes = ctx
        .source
        .node(path)?
        .ok_or(TrieError::MissingNode { path: *path, hash })?;
    let found = keccak256(&bytes);
    if found != hash {
        return Err(TrieError::HashMismatch {
            path: *path,
            found,
            expected: hash,
        });
    }
    let decoded = TrieNode::decode(&mut bytes.as_slice()).map_err(|e| TrieError::Decode {
        path: *path,
        error: e.to_string(),
    })?;
    *node = from_trie_node(decoded, Meta::stored(RlpNode::word_rlp(&hash)), path)?;
    Ok(())
}

/// A node whose key `old_key` and a new leaf at `rest` diverge after `i` shared nibbles: an
/// extension of the shared prefix (none when `i` is 0) to a branch holding the old node (rebuilt
/// by `old` from its remaining key) and the new leaf.
fn split(
    i: usize,
    old_key: Nibbles,
    old: impl FnOnce(Nibbles) -> Node,
    rest: &Nibbles,
    value: Vec<u8>,
) -> Node {
    let mut branch = new_branch();
    branch.children[old_key.get_unchecked(i) as usize] = old(old_key.slice(i + 1..));
    branch.children[rest.get_unchecked(i) as usize] = Node::leaf(rest.slice(i + 1..), value);
    Node::extension(rest.slice(..i), Node::Branch(branch))
}

/// Sets `key` to `value` under `node` (at `depth` nibbles). Returns whether anything changed.
fn insert(
    node: &mut Node,
    depth: usize,
    key: &Nibbles,
    value: Vec<u8>,
    ctx: &Ctx<'_>,
) -> Result<bool, TrieError> {
    if let Node::Hash(_) = node {
        reveal(node, &key.slice(..depth), ctx)?;
    }
    match node {
        Node::Empty => {
            *node = Node::leaf(key.slice(depth..), value);
            Ok(true)
        }
        Node::Hash(_) => unreachable!("revealed above"),
        Node::Leaf(leaf) => {
            let rest = key.slice(depth..);
            if leaf.key == rest {
                if leaf.value == value {
                    return Ok(false);
                }
                leaf.value = value;
                leaf.meta.touch();
                return Ok(true);
            }
            let i = leaf.key.common_prefix_length(&rest);
            let Node::Leaf(old) = std::mem::take(node) else {
                unreachable!()
            };
            let old = *old;
            *node = split(i, old.key, |k| Node::leaf(k, old.value), &rest, value);
            Ok(true)
        }
        Node::Extension(ext) => {
            let rest = key.slice(depth..);
            let i = ext.key.common_prefix_length(&rest);
            if i == ext.key.len() {
                let changed = insert(&mut ext.child, depth + i, key, value, ctx)?;
                if changed {
                    ext.meta.touch();
                }
                return Ok(changed);
            }
            let Node::Extension(old) = std::mem::take(node) else {
                unreachable!()
            };
            let old = *old;
            *node = split(i, old.key, |k| Node::extension(k, old.child), &rest, value);
            Ok(true)
        }
        Node::Branch(branch) => {
            let n = key.get_unchecked(depth) as usize;
            let changed = insert(&mut branch.children[n], depth + 1, key, value, ctx)?;
            if changed {
                branch.meta.touch();
            }
            Ok(changed)
        }
    }
}

/// Removes `key` under `node`. Returns whether it was there.
fn remove(node: &mut Node, depth: usize, key: &Nibbles, ctx: &Ctx<'_>) -> Result<bool, TrieError> {
    if let Node::Hash(_) = node {
        reveal(node, &key.slice(..depth), ctx)?;
    }
    match node {
        Node::Empty => Ok(false),
        Node::Hash(_) => unreachable!("revealed above"),
        Node::Leaf(leaf) => {
            if leaf.key != key.slice(depth..) {
                return Ok(false);
            }
            ctx.removed(key.slice(..depth));
            *node = Node::Empty;
            Ok(true)
        }
        Node::Extension(ext) => {
            if !key.slice(depth..).starts_with(&ext.key) {
                return Ok(false);
            }
            let len = ext.key.len();
            if !remove(&mut ext.child, depth + len, key, ctx)? {
                return Ok(false);
            }
            normalize_extension(node, &key.slice(..depth), ctx)?;
            Ok(true)
        }
        Node::Branch(branch) => {
            let n = key.get_unchecked(depth) as usize;
            if !remove(&mut branch.children[n], depth + 1, key, ctx)? {
                return Ok(false);
            }
            normalize_branch(node, &key.slice(..depth), ctx)?;
            Ok(true)
        }
    }
}

/// Restores the extension invariant (its child is a branch) after the child changed.
fn normalize_extension(node: &mut Node, path: &Nibbles, ctx: &Ctx<'_>) -> Result<(), TrieError> {
    let Node::Extension(ext) = node else {
        return Ok(());
    };
    ext.meta.touch();
    let child_at = path.join(&ext.key);
    reveal(&mut ext.child, &child_at, ctx)?;
    match &ext.child {
        Node::Branch(_) => {}
        Node::Empty => {
            ctx.removed(*path);
            *node = Node::Empty;
        }
        Node::Leaf(_) | Node::Extension(_) => {
            ctx.removed(child_at);
            let Node::Extension(old) = std::mem::take(node) else {
                unreachable!()
            };
            *node = match old.child {
                Node::Leaf(l) => Node::leaf(old.key.join(&l.key), l.value),
                Node::Extension(e) => Node::extension(old.key.join(&e.key), e.child),
                _ => unreachable!(),
            };
        }
        Node::Hash(_) => unreachable!("revealed above"),
    }
    Ok(())
}

/// Restores the branch invariant (at least two children) after children changed.
fn normalize_branch(node: &mut Node, path: &Nibbles, ctx: &Ctx<'_>) -> Result<(), TrieError> {
    let Node::Branch(branch) = node else {
        return Ok(());
    };
    branch.meta.touch();
    let mut live = branch
        .children
        .iter()
        .enumerate()
        .filter(|(_, c)| !matches!(c, Node::Empty))
        .map(|(i, _)| i);
    let (Some(only), None) = (live.next(), live.next()) else {
        if branch.children.iter().all(|c| matches!(c, Node::Empty)) {
            ctx.removed(*path);
            *node = Node::Empty;
        }
        return Ok(());
    };
    let at = child_path(path, only as u8);
    reveal(&mut branch.children[only], &at, ctx)?;
    let child = std::mem::take(&mut branch.children[only]);
    let prefix = nibble_path(only as u8);
    *node = match child {
        Node::Leaf(l) => {
            ctx.removed(at);
            Node::leaf(prefix.join(&l.key), l.value)
        }
        Node::Extension(e) => {
            ctx.removed(at);
            Node::extension(prefix.join(&e.key), e.child)
        }
        branch @ Node::Branch(_) => Node::extension(prefix, branch),
        Node::Empty | Node::Hash(_) => unreachable!("live and revealed"),
    };
    Ok(())
}

type Update = (Nibbles, Option<Vec<u8>>);

fn apply_one(
    node: &mut Node,
    depth: usize,
    (key, value): &Update,
    ctx: &Ctx<'_>,
) -> Result<bool, TrieError> {
    match value {
        Some(v) => insert(node, depth, key, v.clone(), ctx),
        None => remove(node, depth, key, ctx),
    }
}

/// Applies sorted `updates` (all under `node`, which sits at `depth`).
fn update_batch(
    node: &mut Node,
    depth: usize,
    updates: &[Update],
    ctx: &Ctx<'_>,
) -> Result<(), TrieError> {
    if updates.is_empty() {
        return Ok(());
    }
    if updates.len() > 1 {
        let path = updates[0].0.slice(..depth);
        reveal(node, &path, ctx)?;
        match node {
            Node::Branch(branch) => {
                let mut groups: [&[Update]; 16] = [&[]; 16];
                let mut rest = updates;
                while let Some((key, _)) = rest.first() {
                    let n = key.get_unchecked(depth);
                    let end = rest
                        .iter()
                        .position(|(k, _)| k.get_unchecked(depth) != n)
                        .unwrap_or(rest.len());
                    groups[n as usize] = &rest[..end];
                    rest = &rest[end..];
                }
                if updates.len() >= PARALLEL_UPDATES {
                    branch
                        .children
                        .par_iter_mut()
                        .zip(groups.par_iter())
                        .try_for_each(|(child, group)| {
                            update_batch(child, depth + 1, group, ctx)
                        })?;
                } else {
                    for (child, group) in branch.children.iter_mut().zip(groups) {
                        update_batch(child, depth + 1, group, ctx)?;
                    }
                }
                normalize_branch(node, &path, ctx)?;
                return Ok(());
            }
            Node::Extension(ext)
                if updates
                    .iter()
                    .all(|(k, _)| k.slice(depth..depth + ext.key.len()) == ext.key) =>
            {
                let below = depth + ext.key.len();
                update_batch(&mut ext.child, below, updates, ctx)?;
                normalize_extension(node, &path, ctx)?;
                return Ok(());
            }
            _ => {}
        }
    }
    // A leaf, an empty slot, a diverging extension or a single update: one key at a time.
    for (i, update) in updates.iter().enumerate() {
        apply_one(node, depth, update, ctx)?;
        if i + 1 < updates.len() && matches!(node, Node::Branch(_)) {
            return update_batch(node, depth, &updates[i + 1..], ctx);
        }
    }
    Ok(())
}

/// Hashes `node` (at `depth`), caching references on the way, and returns its reference.
fn hash_node(node: &mut Node, depth: usize, buf: &mut Vec<u8>) -> RlpNode {
    if let Some(rlp) = node.cached_rlp() {
        return rlp;
    }
    let rlp = match node {
        Node::Empty | Node::Hash(_) => unreachable!("always cached"),
        Node::Leaf(l) => {
            buf.clear();
            LeafNodeRef::new(&l.key, &l.value).rlp(buf)
        }
        Node::Extension(e) => {
            let child = hash_node(&mut e.child, depth + e.key.len(), buf);
            buf.clear();
            ExtensionNodeRef::new(&e.key, &child).rlp(buf)
        }
        Node::Branch(b) => {
            if depth < PARALLEL_HASH_DEPTH {
                b.children.par_iter_mut().for_each_init(
                    || Vec::with_capacity(600),
                    |buf, child| {
                        hash_node(child, depth + 1, buf);
                    },
                );
            } else {
                for child in b.children.iter_mut() {
                    hash_node(child, depth + 1, buf);
                }
            }
            let (stack, mask) = branch_stack(&b.children);
            buf.clear();
            BranchNodeRef::new(&stack, mask).rlp(buf)
        }
    };
    if let Some(meta) = node.meta_mut() {
        meta.rlp = Some(rlp.clone());
    }
    rlp
}

/// Nodes to write and paths to clear, produced by [`Trie::take_changes`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TrieChanges {
    /// Paths whose stored node no longer exists. Apply before `nodes`: a path may be in both.
    pub removed: Vec<Nibbles>,
    /// Path → RLP encoding of the node now there.
    pub nodes: Vec<(Nibbles, Vec<u8>)>,
}

impl TrieChanges {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.nodes.is_empty()
    }
}

fn collect(
    node: &mut Node,
    path: Nibbles,
    is_root: bool,
    buf: &mut Vec<u8>,
    out: &mut TrieChanges,
) {
    let Some(meta) = node.meta() else {
        return;
    };
    if meta.saved {
        return;
    }
    node.encode(buf);
    if is_root || buf.len() >= 32 {
        out.nodes.push((path, buf.clone()));
    } else {
        // Lives inside its parent now; anything stored at the path is stale.
        out.removed.push(path);
    }
    if let Some(meta) = node.meta_mut() {
        meta.saved = true;
    }
    match node {
        Node::Extension(e) => {
            let below = path.join(&e.key);
            collect(&mut e.child, below, false, buf, out);
        }
        Node::Branch(b) => {
            for (i, child) in b.children.iter_mut().enumerate() {
                collect(child, child_path(&path, i as u8), false, buf, out);
            }
        }
        _ => {}
    }
}

fn evict(node: &mut Node, depth: usize, keep_depth: usize) {
    let Some(meta) = node.meta() else {
        return;
    };
    if depth >= keep_depth
        && meta.saved
        && let Some(hash) = meta.rlp.as_ref().and_then(|r| r.as_hash())
    {
        *node = Node::Hash(hash);
        return;
    }
    match node {
        Node::Extension(e) => evict(&mut e.child, depth + e.key.len(), keep_depth),
        Node::Branch(b) => {
            for child in b.children.iter_mut() {
                evict(child, depth + 1, keep_depth);
            }
        }
        _ => {}
    }
}

fn count(node: &Node, stats: &mut TrieStats) {
    match node {
        Node::Empty => {}
        Node::Hash(_) => stats.blinded += 1,
        Node::Leaf(_) => stats.leaves += 1,
        Node::Extension(e) => {
            stats.extensions += 1;
            count(&e.child, stats);
        }
        Node::Branch(b) => {
            stats.branches += 1;
            for child in b.children.iter() {
                count(child, stats);
            }
        }
    }
}

/// How many nodes of each kind a trie holds in memory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrieStats {
    /// Branch nodes.
    pub branches: usize,
    /// Extension nodes.
    pub extensions: usize,
    /// Leaves.
    pub leaves: usize,
    /// Children known only by hash.
    pub blinded: usize,
}

/// An Ethereum Merkle-Patricia trie over 32-byte keys. See the crate documentation.
#[derive(Debug, Clone, Default)]
pub struct Trie {
    root: Node,
    removed: Vec<Nibbles>,
}

fn walk_path(
    node: &mut Node,
    depth: usize,
    key: &Nibbles,
    ctx: &Ctx<'_>,
    buf: &mut Vec<u8>,
    proof: &mut Option<&mut Vec<Bytes>>,
) -> Result<Option<Vec<u8>>, TrieError> {
    reveal(node, &key.slice(..depth), ctx)?;
    if let Some(proof) = proof.as_deref_mut()
        && !matches!(node, Node::Empty)
    {
        node.encode(buf);
        if depth == 0 || buf.len() >= 32 {
            proof.push(Bytes::copy_from_slice(buf));
        }
    }
    match node {
        Node::Empty | Node::Hash(_) => Ok(None),
        Node::Leaf(l) => Ok((l.key == key.slice(depth..)).then(|| l.value.clone())),
        Node::Extension(e) => {
            if key.slice(depth..).starts_with(&e.key) {
                let below = depth + e.key.len();
                walk_path(&mut e.child, below, key, ctx, buf, proof)
            } else {
                Ok(None)
            }
        }
        Node::Branch(b) => {
            let n = key.get_unchecked(depth) as usize;
            walk_path(&mut b.children[n], depth + 1, key, ctx, buf, proof)
        }
    }
}

/// Reveals every node on the paths of sorted `keys` under `node` (at `depth`).
fn reveal_batch(
    node: &mut Node,
    depth: usize,
    keys: &[Nibbles],
    ctx: &Ctx<'_>,
) -> Result<(), TrieError> {
    let Some(first) = keys.first() else {
        return Ok(());
    };
    reveal(node, &first.slice(..depth), ctx)?;
    match node {
        Node::Branch(branch) => {
            let mut groups: [&[Nibbles]; 16] = [&[]; 16];
            let mut rest = keys;
            while let Some(key) = rest.first() {
                let n = key.get_unchecked(depth);
                let end = rest
                    .iter()
                    .position(|k| k.get_unchecked(depth) != n)
                    .unwrap_or(rest.len());
                groups[n as usize] = &rest[..end];
                rest = &rest[end..];
            }
            if keys.len() >= PARALLEL_UPDATES {
                branch
                    .children
                    .par_iter_mut()
                    .zip(groups.par_iter())
                    .try_for_each(|(child, group)| reveal_batch(child, depth + 1, group, ctx))
            } else {
                for (child, group) in branch.children.iter_mut().zip(groups) {
                    reveal_batch(child, depth + 1, group, ctx)?;
                }
                Ok(())
            }
        }
        Node::Extension(ext) => {
            let below = depth + ext.key.len();
            let under: Vec<Nibbles> = keys
                .iter()
                .filter(|k| k.slice(depth..below) == ext.key)
                .copied()
                .collect();
            reveal_batch(&mut ext.child, below, &under, ctx)
        }
        _ => Ok(()),
    }
}

/// Reads `key` under a node whose path to the key is revealed.
fn lookup<'a>(node: &'a Node, depth: usize, key: &Nibbles) -> Result<Option<&'a [u8]>, TrieError> {
    match node {
        Node::Empty => Ok(None),
        Node::Hash(hash) => Err(TrieError::MissingNode {
            path: key.slice(..depth),
            hash: *hash,
        }),
        Node::Leaf(l) => Ok((l.key == key.slice(depth..)).then_some(l.value.as_slice())),
        Node::Extension(e) => {
            if key.slice(depth..).starts_with(&e.key) {
                lookup(&e.child, depth + e.key.len(), key)
            } else {
                Ok(None)
            }
        }
        Node::Branch(b) => lookup(
            &b.children[key.get_unchecked(depth) as usize],
            depth + 1,
            key,
        ),
    }
}

impl Trie {
    /// An empty trie.
    pub fn new() -> Self {
        Self::default()
    }

    /// The trie whose root hash is `root`, every node blinded until needed.
    pub fn from_root(root: B256) -> Self {
        Self {
            root: if root == EMPTY_ROOT_HASH {
                Node::Empty
            } else {
                Node::Hash(root)
            },
            removed: Vec::new(),
        }
    }

    /// Whether the trie has no keys.
    pub fn is_empty(&self) -> bool {
        matches!(self.root, Node::Empty)
    }

    /// Applies `updates` (key → new value, `None` to delete). Keys are 32-byte hashes unpacked
    /// to nibbles; when a key appears twice the later update wins.
    pub fn update(
        &mut self,
        mut updates: Vec<(Nibbles, Option<Vec<u8>>)>,
        source: &dyn NodeSource,
    ) -> Result<(), TrieError> {
        debug_assert!(updates.iter().all(|(k, _)| k.len() == KEY_NIBBLES));
        // Stable sort keeps the order of duplicates; keep the last of each run.
        updates.sort_by_key(|a| a.0);
        let mut deduped: Vec<Update> = Vec::with_capacity(updates.len());
        for update in updates {
            match deduped.last_mut() {
                Some(last) if last.0 == update.0 => *last = update,
                _ => deduped.push(update),
            }
        }
        let removed = Mutex::new(std::mem::take(&mut self.removed));
        let ctx = Ctx {
            source,
            removed: &removed,
        };
        let result = update_batch(&mut self.root, 0, &deduped, &ctx);
        self.removed = removed.into_inner();
        result
    }

    /// Sets one key.
    pub fn insert(
        &mut self,
        key: Nibbles,
        value: Vec<u8>,
        source: &dyn NodeSource,
    ) -> Result<(), TrieError> {
        self.update(vec![(key, Some(value))], source)
    }

    /// Deletes one key.
    pub fn remove(&mut self, key: Nibbles, source: &dyn NodeSource) -> Result<(), TrieError> {
        self.update(vec![(key, None)], source)
    }

    /// The value stored under `key`.
    pub fn get(
        &mut self,
        key: &Nibbles,
        source: &dyn NodeSource,
    ) -> Result<Option<Vec<u8>>, TrieError> {
        let removed = Mutex::new(Vec::new());
        let ctx = Ctx {
            source,
            removed: &removed,
        };
        walk_path(&mut self.root, 0, key, &ctx, &mut Vec::new(), &mut None)
    }

    /// The values under many keys at once, revealing their paths in parallel.
    pub fn get_many(
        &mut self,
        keys: &[Nibbles],
        source: &dyn NodeSource,
    ) -> Result<Vec<Option<Vec<u8>>>, TrieError> {
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let removed = Mutex::new(Vec::new());
        let ctx = Ctx {
            source,
            removed: &removed,
        };
        reveal_batch(&mut self.root, 0, &sorted, &ctx)?;
        let root = &self.root;
        keys.par_iter()
            .map(|key| lookup(root, 0, key).map(|v| v.map(<[u8]>::to_vec)))
            .collect()
    }

    /// Whether the whole trie is a single blinded root (nothing of it in memory).
    pub fn is_blinded(&self) -> bool {
        matches!(self.root, Node::Hash(_))
    }

    /// The root hash, rehashing what changed since the last call.
    pub fn root(&mut self) -> B256 {
        match &self.root {
            Node::Empty => EMPTY_ROOT_HASH,
            Node::Hash(h) => *h,
            _ => {
                let mut buf = Vec::with_capacity(600);
                let rlp = hash_node(&mut self.root, 0, &mut buf);
                rlp.as_hash().unwrap_or_else(|| keccak256(rlp.as_slice()))
            }
        }
    }

    /// The EIP-1186 proof for `key`: every hashed node from the root along the key's path (the
    /// root always), RLP-encoded; and the value, if the key is present.
    pub fn proof(
        &mut self,
        key: &Nibbles,
        source: &dyn NodeSource,
    ) -> Result<(Vec<Bytes>, Option<Vec<u8>>), TrieError> {
        self.root();
        let removed = Mutex::new(Vec::new());
        let ctx = Ctx {
            source,
            removed: &removed,
        };
        let mut nodes = Vec::new();
        let value = walk_path(
            &mut self.root,
            0,
            key,
            &ctx,
            &mut Vec::with_capacity(600),
            &mut Some(&mut nodes),
        )?;
        Ok((nodes, value))
    }

    /// The nodes changed since the last call (hashing first), and the paths whose node went
    /// away. Afterwards every node in memory counts as stored.
    pub fn take_changes(&mut self) -> TrieChanges {
        self.root();
        let mut out = TrieChanges {
            removed: std::mem::take(&mut self.removed),
            nodes: Vec::new(),
        };
        let mut buf = Vec::with_capacity(600);
        collect(&mut self.root, Nibbles::new(), true, &mut buf, &mut out);
        out.removed.sort_unstable();
        out.removed.dedup();
        out
    }

    /// Forgets stored nodes deeper than `keep_depth` nibbles (they are read back when needed).
    /// Only call once the changes from [`Trie::take_changes`] are durable in the source.
    pub fn evict(&mut self, keep_depth: usize) {
        evict(&mut self.root, 0, keep_depth);
    }

    /// Node counts in memory.
    pub fn stats(&self) -> TrieStats {
        let mut stats = TrieStats::default();
        count(&self.root, &mut stats);
        stats
    }
}

#[cfg(test)]
mod tests;
