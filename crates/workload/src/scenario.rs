//! Ready-made worlds for tests and benchmarks: funded wallets, deployed contracts (an
//! OpenZeppelin ERC-20, the `Chaos` test contract, Uniswap V2 factory and pairs with liquidity),
//! and generators for the measured workloads.
//!
//! A [`Universe`] is built as a genesis allocation plus *setup blocks* (transactions that deploy
//! and fund everything); the caller executes those with whatever executor it tests. Addresses are
//! deterministic (`deployer.create(nonce)`), so the universe knows them before execution.

use std::path::{Path, PathBuf};

use alloy_primitives::{Address, Bytes, TxKind, U256, keccak256};
use alloy_sol_types::{SolCall, sol};

use crate::{TxBuilder, Wallet, erc20};
use pharos_primitives::RecoveredTx;

/// The compiled OpenZeppelin ERC-20 (`tests/e2e/contracts/TestToken.sol`).
pub const TEST_TOKEN: &str = include_str!("../../../tests/artifacts/TestToken.json");
/// The compiled `Chaos` contract (`tests/e2e/contracts/Chaos.sol`).
pub const CHAOS: &str = include_str!("../../../tests/artifacts/Chaos.json");
/// The compiled swap helper (`tests/e2e/contracts/SwapHelper.sol`).
pub const SWAP_HELPER: &str = include_str!("../../../tests/artifacts/SwapHelper.json");

sol! {
    function increment();
    function bump(uint256 key);
    function forward(address to);
    function nested(address[] targets);
    function tryNested(address target);
    function create(bytes32 salt, bool destroyNow);
    function createPlain();
    function destroyChild();
    function precompiles(bytes data);
    function revertIf(bool yes);
    function burn(uint256 rounds);
    function readCoinbase();
    function readBalance(address who);
    function payCoinbase();
    function moveToken(address token, address to, uint256 amount);
    function createPair(address tokenA, address tokenB) returns (address pair);
    function mint(address to) returns (uint256 liquidity);
    function swapExactIn(address pair, address tokenIn, uint256 amountIn, uint256 minOut);
}

/// Why a universe could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// An artifact is missing or malformed.
    #[error("artifact {0}: {1}")]
    Artifact(String, String),
}

/// Creation bytecode from a compiled artifact (`{"bytecode": "0x..."}` or solc's
/// `{"evm": {"bytecode": {"object": ...}}}` / `{"bytecode": "..."}` as Uniswap ships it).
pub fn bytecode(name: &str, json: &str) -> Result<Bytes, ScenarioError> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| ScenarioError::Artifact(name.into(), e.to_string()))?;
    let hex = v["bytecode"]
        .as_str()
        .or_else(|| v["bytecode"]["object"].as_str())
        .or_else(|| v["evm"]["bytecode"]["object"].as_str())
        .ok_or_else(|| ScenarioError::Artifact(name.into(), "no bytecode".into()))?;
    alloy_primitives::hex::decode(hex)
        .map(Bytes::from)
        .map_err(|e| ScenarioError::Artifact(name.into(), e.to_string()))
}

/// Uniswap V2 build artifacts (npm `@uniswap/v2-core`, GPL-3.0: read from disk, not shipped).
#[derive(Debug, Clone)]
pub struct UniswapArtifacts {
    /// `UniswapV2Factory` creation code.
    pub factory: Bytes,
}

impl UniswapArtifacts {
    /// The default location: `tests/e2e/node_modules/@uniswap/v2-core/build` of this
    /// repository, or `$PHAROS_UNISWAP_BUILD`.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("PHAROS_UNISWAP_BUILD")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../tests/e2e/node_modules/@uniswap/v2-core/build")
            })
    }

    /// Loads them from `dir` (`None` when the folder is absent: run `npm ci` in `tests/e2e`).
    pub fn load(dir: &Path) -> Option<Result<Self, ScenarioError>> {
        let path = dir.join("UniswapV2Factory.json");
        let json = std::fs::read_to_string(&path).ok()?;
        Some(bytecode("UniswapV2Factory", &json).map(|factory| Self { factory }))
    }

    /// Deployment input of the factory: its creation code with `feeToSetter = 0`.
    pub fn factory_deploy_code(&self) -> Bytes {
        let mut code = self.factory.to_vec();
        code.extend_from_slice(&[0u8; 32]); // feeToSetter = 0
        code.into()
    }
}

/// Calldata of `UniswapV2Factory.createPair(a, b)`.
pub fn create_pair(a: Address, b: Address) -> Bytes {
    createPairCall {
        tokenA: a,
        tokenB: b,
    }
    .abi_encode()
    .into()
}

/// Calldata of `UniswapV2Pair.mint(to)`: liquidity for the tokens sent to the pair beforehand.
pub fn mint(to: Address) -> Bytes {
    mintCall { to }.abi_encode().into()
}

/// Calldata of `SwapHelper.swapExactIn(pair, tokenIn, amountIn, minOut)`: pays the pair from the
/// caller's allowance to the helper and swaps at the pair's current price.
pub fn swap_exact_in(pair: Address, token_in: Address, amount_in: U256, min_out: U256) -> Bytes {
    swapExactInCall {
        pair,
        tokenIn: token_in,
        amountIn: amount_in,
        minOut: min_out,
    }
    .abi_encode()
    .into()
}

/// A pool and its two tokens.
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    /// The pair contract.
    pub pair: Address,
    /// Its tokens (as created, not sorted).
    pub tokens: [Address; 2],
}

/// What to build.
#[derive(Debug, Clone)]
pub struct UniverseConfig {
    /// Chain id signed over.
    pub chain_id: u64,
    /// Funded wallets (senders of the workloads).
    pub wallets: usize,
    /// ERC-20 tokens deployed.
    pub tokens: usize,
    /// `Chaos` instances deployed.
    pub chaos: usize,
    /// Uniswap pairs (needs the artifacts); tokens are paired round-robin.
    pub pairs: usize,
    /// Wei each wallet starts with.
    pub wallet_balance: U256,
}

impl UniverseConfig {
    /// A small universe on `chain_id`.
    pub fn new(chain_id: u64, wallets: usize) -> Self {
        Self {
            chain_id,
            wallets,
            tokens: 1,
            chaos: 0,
            pairs: 0,
            wallet_balance: U256::from(10u64).pow(U256::from(24)),
        }
    }
}

/// A world of wallets and contracts, ready once its setup blocks are executed.
#[derive(Debug, Clone)]
pub struct Universe {
    /// Transaction fields.
    pub builder: TxBuilder,
    /// Deploys everything; its nonce advances through setup.
    pub deployer: Wallet,
    /// Funded users.
    pub wallets: Vec<Wallet>,
    /// Next nonce of each wallet.
    pub nonces: Vec<u64>,
    /// ERC-20 tokens.
    pub tokens: Vec<Address>,
    /// `Chaos` instances.
    pub chaos: Vec<Address>,
    /// The swap helper.
    pub helper: Address,
    /// Uniswap factory, if deployed.
    pub factory: Option<Address>,
    /// Pools.
    pub pairs: Vec<Pair>,
    /// Genesis balances.
    pub genesis: Vec<(Address, U256)>,
    /// Setup blocks, to execute in order before any workload.
    pub setup: Vec<Vec<RecoveredTx>>,
}

/// Tokens each wallet receives of each token.
pub const WALLET_TOKENS: u128 = 1_000_000_000_000_000_000_000_000; // 1e24
/// Tokens each pool side receives as liquidity.
pub const POOL_TOKENS: u128 = 100_000_000_000_000_000_000_000_000; // 1e26

impl Universe {
    /// Builds the genesis and setup blocks of `config`. `uniswap` is needed when
    /// `config.pairs > 0`.
    pub fn build(
        config: &UniverseConfig,
        uniswap: Option<&UniswapArtifacts>,
    ) -> Result<Self, ScenarioError> {
        let builder = TxBuilder::new(config.chain_id);
        let deployer = Wallet::from_index(u64::MAX - 1);
        let wallets: Vec<Wallet> = (0..config.wallets as u64).map(Wallet::from_index).collect();
        let mut genesis = vec![(deployer.address(), U256::from(10u64).pow(U256::from(27)))];
        genesis.extend(wallets.iter().map(|w| (w.address(), config.wallet_balance)));
        let mut nonce = 0u64;
        let next = |tx: alloy_consensus::TypedTransaction, out: &mut Vec<RecoveredTx>| {
            out.push(deployer.sign_recovered(tx));
        };
        let deploy_gas = 6_000_000;

        // Block 1: contracts.
        let mut b1 = Vec::new();
        let token_code = bytecode("TestToken", TEST_TOKEN)?;
        let supply = U256::from(10u64).pow(U256::from(30));
        let mut tokens = Vec::new();
        for _ in 0..config.tokens {
            let mut code = token_code.to_vec();
            code.extend_from_slice(&supply.to_be_bytes::<32>());
            tokens.push(deployer.address().create(nonce));
            next(
                builder.eip1559(nonce, TxKind::Create, U256::ZERO, code.into(), deploy_gas),
                &mut b1,
            );
            nonce += 1;
        }
        let chaos_code = bytecode("Chaos", CHAOS)?;
        let mut chaos = Vec::new();
        for _ in 0..config.chaos {
            chaos.push(deployer.address().create(nonce));
            next(
                builder.eip1559(
                    nonce,
                    TxKind::Create,
                    U256::ZERO,
                    chaos_code.clone(),
                    deploy_gas,
                ),
                &mut b1,
            );
            nonce += 1;
        }
        let helper = deployer.address().create(nonce);
        next(
            builder.eip1559(
                nonce,
                TxKind::Create,
                U256::ZERO,
                bytecode("SwapHelper", SWAP_HELPER)?,
                deploy_gas,
            ),
            &mut b1,
        );
        nonce += 1;
        let factory = match (config.pairs, uniswap) {
            (0, _) => None,
            (_, None) => {
                return Err(ScenarioError::Artifact(
                    "UniswapV2Factory".into(),
                    "pairs requested but the Uniswap artifacts are not available".into(),
                ));
            }
            (_, Some(u)) => {
                let a = deployer.address().create(nonce);
                next(
                    builder.eip1559(
                        nonce,
                        TxKind::Create,
                        U256::ZERO,
                        u.factory_deploy_code(),
                        deploy_gas,
                    ),
                    &mut b1,
                );
                nonce += 1;
                Some(a)
            }
        };

        // Block 2: pairs, and tokens to every wallet.
        let mut b2 = Vec::new();
        let mut pairs = Vec::new();
        if let Some(factory) = factory {
            let n = tokens.len().max(2);
            for k in 0..config.pairs {
                let (a, b) = (
                    tokens[k % tokens.len()],
                    tokens[(k + 1 + k / n) % tokens.len()],
                );
                if a == b {
                    continue;
                }
                next(
                    builder.eip1559(
                        nonce,
                        TxKind::Call(factory),
                        U256::ZERO,
                        create_pair(a, b),
                        5_000_000,
                    ),
                    &mut b2,
                );
                nonce += 1;
                pairs.push(Pair {
                    pair: pair_address(factory, a, b),
                    tokens: [a, b],
                });
            }
        }
        for t in &tokens {
            for w in &wallets {
                next(
                    builder.eip1559(
                        nonce,
                        TxKind::Call(*t),
                        U256::ZERO,
                        erc20::transfer(w.address(), U256::from(WALLET_TOKENS)),
                        100_000,
                    ),
                    &mut b2,
                );
                nonce += 1;
            }
        }

        // Block 3: liquidity; every wallet lets the helper spend its tokens.
        let mut b3 = Vec::new();
        for p in &pairs {
            for t in p.tokens {
                next(
                    builder.eip1559(
                        nonce,
                        TxKind::Call(t),
                        U256::ZERO,
                        erc20::transfer(p.pair, U256::from(POOL_TOKENS)),
                        100_000,
                    ),
                    &mut b3,
                );
                nonce += 1;
            }
            next(
                builder.eip1559(
                    nonce,
                    TxKind::Call(p.pair),
                    U256::ZERO,
                    mint(deployer.address()),
                    500_000,
                ),
                &mut b3,
            );
            nonce += 1;
        }
        let mut nonces = vec![0u64; wallets.len()];
        if !pairs.is_empty() {
            for (i, w) in wallets.iter().enumerate() {
                for t in &tokens {
                    b3.push(w.sign_recovered(builder.eip1559(
                        nonces[i],
                        TxKind::Call(*t),
                        U256::ZERO,
                        erc20::approve(helper, U256::MAX),
                        100_000,
                    )));
                    nonces[i] += 1;
                }
            }
        }
        let setup = [b1, b2, b3].into_iter().filter(|b| !b.is_empty()).collect();
        Ok(Self {
            builder,
            deployer,
            wallets,
            nonces,
            tokens,
            chaos,
            helper,
            factory,
            pairs,
            genesis,
            setup,
        })
    }

    fn sign(
        &mut self,
        wallet: usize,
        to: TxKind,
        value: U256,
        input: Bytes,
        gas: u64,
    ) -> RecoveredTx {
        let nonce = self.nonces[wallet];
        self.nonces[wallet] += 1;
        self.wallets[wallet].sign_recovered(self.builder.eip1559(nonce, to, value, input, gas))
    }

    /// A transaction from wallet `w` calling `to` with `input`.
    pub fn call(
        &mut self,
        w: usize,
        to: Address,
        value: U256,
        input: Bytes,
        gas: u64,
    ) -> RecoveredTx {
        self.sign(w, TxKind::Call(to), value, input, gas)
    }

    /// `n` native transfers to fresh addresses, round-robin over the wallets.
    pub fn transfers(&mut self, n: usize) -> Vec<RecoveredTx> {
        (0..n)
            .map(|i| {
                let w = i % self.wallets.len();
                self.sign(
                    w,
                    TxKind::Call(fresh(i as u64)),
                    U256::from(1),
                    Bytes::new(),
                    21_000,
                )
            })
            .collect()
    }

    /// `n` ERC-20 transfers of the first token to fresh addresses, round-robin over the wallets.
    pub fn erc20_transfers(&mut self, n: usize) -> Vec<RecoveredTx> {
        self.erc20_transfers_with_gas(n, 80_000)
    }

    /// [`Universe::erc20_transfers`] with `gas_limit` per transaction (a regulated token's
    /// transfer runs the protocol's rules as well).
    pub fn erc20_transfers_with_gas(&mut self, n: usize, gas_limit: u64) -> Vec<RecoveredTx> {
        let token = self.tokens[0];
        (0..n)
            .map(|i| {
                let w = i % self.wallets.len();
                self.call(
                    w,
                    token,
                    U256::ZERO,
                    erc20::transfer(fresh(i as u64), U256::from(1)),
                    gas_limit,
                )
            })
            .collect()
    }

    /// `n` swaps spread over all pairs, except that `hot_percent` of them go to the first pair.
    pub fn swaps(&mut self, n: usize, hot_percent: usize) -> Vec<RecoveredTx> {
        let helper = self.helper;
        (0..n)
            .map(|i| {
                let w = i % self.wallets.len();
                let p = if (i * 7919) % 100 < hot_percent {
                    self.pairs[0]
                } else {
                    self.pairs[(i * 31 + w) % self.pairs.len()]
                };
                let token_in = p.tokens[i % 2];
                let call = swap_exact_in(
                    p.pair,
                    token_in,
                    U256::from(1_000_000_000_000_000u64 + i as u64),
                    U256::ZERO,
                );
                self.call(w, helper, U256::ZERO, call, 250_000)
            })
            .collect()
    }

    /// `n` ERC-20 transfers where `hot_percent` of them send to one hot account.
    pub fn erc20_hotspot(&mut self, n: usize, hot_percent: usize) -> Vec<RecoveredTx> {
        let token = self.tokens[0];
        let hot = fresh(u64::MAX);
        (0..n)
            .map(|i| {
                let w = i % self.wallets.len();
                let to = if (i * 7919) % 100 < hot_percent {
                    hot
                } else {
                    fresh(i as u64)
                };
                self.call(
                    w,
                    token,
                    U256::ZERO,
                    erc20::transfer(to, U256::from(1)),
                    80_000,
                )
            })
            .collect()
    }

    /// `n` transactions that each depend on the one before: all increment one counter.
    pub fn dependent_chain(&mut self, n: usize) -> Vec<RecoveredTx> {
        let chaos = self.chaos[0];
        (0..n)
            .map(|i| {
                let w = i % self.wallets.len();
                self.call(
                    w,
                    chaos,
                    U256::ZERO,
                    incrementCall {}.abi_encode().into(),
                    60_000,
                )
            })
            .collect()
    }
}

/// A fresh, deterministic recipient address.
pub fn fresh(i: u64) -> Address {
    let h = keccak256(i.to_be_bytes());
    Address::from_slice(&h[12..])
}

/// Address of the Uniswap V2 pair of `a` and `b` created by `factory` (CREATE2 over the sorted
/// tokens with the pair's init code hash).
pub fn pair_address(factory: Address, a: Address, b: Address) -> Address {
    const INIT_CODE_HASH: alloy_primitives::B256 =
        alloy_primitives::b256!("96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f");
    let (t0, t1) = if a < b { (a, b) } else { (b, a) };
    let mut salt_input = [0u8; 40];
    salt_input[..20].copy_from_slice(t0.as_slice());
    salt_input[20..].copy_from_slice(t1.as_slice());
    factory.create2(keccak256(salt_input), INIT_CODE_HASH)
}
