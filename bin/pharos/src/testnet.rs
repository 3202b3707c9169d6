//! Local networks of validators: `pharos testnet init` writes everything a cluster needs into
//! one directory (keys, the shared validator list, the genesis, one config file per node);
//! `pharos testnet run` starts such a cluster on 127.0.0.1 as child processes; `pharos node
//! --config FILE` reads a node's config file.

use std::{
    net::{IpAddr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use clap::Args;
use pharos_primitives::ChainSpec;
use serde::{Deserialize, Serialize};

/// A node's config file (`node-<i>.toml`). Relative paths are relative to the file's
/// directory; a flag given on the command line overrides the file.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeFile {
    /// The chain database directory.
    pub datadir: Option<PathBuf>,
    /// The genesis file.
    pub genesis: Option<PathBuf>,
    /// This validator's key file.
    pub validator_key: Option<PathBuf>,
    /// The shared validator list.
    pub validators: Option<PathBuf>,
    /// Address of the JSON-RPC server.
    pub http_addr: Option<IpAddr>,
    /// Port of the JSON-RPC server.
    pub http_port: Option<u16>,
    /// Block time, e.g. "500ms".
    pub block_time: Option<String>,
    /// Consensus leader timeout, e.g. "2s".
    pub leader_timeout: Option<String>,
    /// Prometheus metrics address.
    pub metrics: Option<SocketAddr>,
    /// Execution threads.
    pub exec_threads: Option<usize>,
}

impl NodeFile {
    /// Reads and checks `path`; relative paths in it are resolved against its directory.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading config file {}: {e}", path.display()))?;
        let mut file: NodeFile =
            toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut file.datadir,
            &mut file.genesis,
            &mut file.validator_key,
            &mut file.validators,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for (name, value) in [
            ("block-time", &file.block_time),
            ("leader-timeout", &file.leader_timeout),
        ] {
            if let Some(v) = value {
                humantime::parse_duration(v)
                    .map_err(|e| format!("config file {}: {name} = {v:?}: {e}", path.display()))?;
            }
        }
        Ok(file)
    }
}

/// `pharos testnet init`.
#[derive(Args, Debug, Clone)]
pub struct InitArgs {
    /// Number of validators.
    #[arg(long)]
    pub validators: usize,
    /// Directory for the keys, the list, the genesis and the node configs (created; must not
    /// hold a testnet already) [required by `init`; `run` defaults to a new temporary
    /// directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// p2p port of validator 0; validator i listens on base + i.
    #[arg(long, default_value_t = 30300)]
    pub base_port: u16,
    /// JSON-RPC port of node 0; node i serves on rpc-base-port + i.
    #[arg(long, default_value_t = 8545)]
    pub rpc_base_port: u16,
    /// Prometheus metrics port of node 0; node i serves on metrics-base-port + i (0: none).
    #[arg(long, default_value_t = 0)]
    pub metrics_base_port: u16,
    /// Stake of every validator, in whole tokens.
    #[arg(long, default_value_t = 1_000_000)]
    pub stake: u64,
    /// Chain id of the testnet (its genesis funds the ten standard test accounts).
    #[arg(long, default_value_t = pharos_primitives::chain::DEV_CHAIN_ID)]
    pub chain_id: u64,
    /// Block time of every node.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub block_time: Duration,
    /// The compliance administrator written into the genesis [default: dev account 0].
    #[arg(long, value_name = "ADDRESS")]
    pub compliance_admin: Option<alloy_primitives::Address>,
    /// Leave the insecure development zkDID keys out of the genesis: the verifier then accepts
    /// only keys from a trusted setup (`pharos identity setup`), installed by the administrator.
    #[arg(long)]
    pub no_dev_zk_keys: bool,
}

/// The config file of node `i` in a testnet directory.
pub fn config_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("node-{i}.toml"))
}

/// Writes a testnet into `args.dir`; returns the number of validators.
pub fn init(args: &InitArgs) -> Result<usize, String> {
    let dir = args.dir.as_deref().ok_or("--dir DIR is required")?;
    let n = args.validators;
    if n == 0 {
        return Err("--validators must be at least 1".into());
    }
    for (name, base) in [
        ("--rpc-base-port", args.rpc_base_port),
        ("--metrics-base-port", args.metrics_base_port),
    ] {
        if base != 0 && base as usize + n - 1 > u16::MAX as usize {
            return Err(format!(
                "{name} {base}: {n} nodes do not fit the port range"
            ));
        }
    }
    let base = ChainSpec::dev(args.chain_id).map_err(|e| e.to_string())?;
    let spec = match (args.compliance_admin, args.no_dev_zk_keys) {
        (None, false) => crate::dev_spec_with_compliance(base)?,
        (admin, no_dev_keys) => {
            let admin = match admin {
                Some(admin) => admin,
                None => pharos_primitives::dev_accounts()
                    .map_err(|e| e.to_string())?
                    .first()
                    .map(|(address, _)| *address)
                    .ok_or("no development accounts")?,
            };
            let mut compliance = pharos_compliance::genesis::ComplianceGenesis::dev(admin);
            if no_dev_keys {
                compliance.allow_insecure_dev_keys = false;
                compliance.verifying_key = None;
            }
            compliance.install(&base).map_err(|e| e.to_string())?
        }
    };
    let list = pharos_consensus::init_testnet(
        dir,
        n,
        args.stake,
        args.base_port,
        &mut pharos_consensus::secure_rng(),
    )
    .map_err(|e| e.to_string())?;
    let infos = pharos_consensus::load_validators(&list).map_err(|e| e.to_string())?;
    let set = pharos_consensus::ValidatorSet::new(&infos).map_err(|e| e.to_string())?;
    let genesis = dir.join("genesis.json");
    let json = serde_json::to_string_pretty(spec.genesis()).map_err(|e| e.to_string())?;
    std::fs::write(&genesis, json).map_err(|e| format!("writing {}: {e}", genesis.display()))?;
    let block_time = humantime::format_duration(args.block_time).to_string();
    let leader_timeout =
        humantime::format_duration((args.block_time * 4).max(Duration::from_secs(2))).to_string();
    for i in 0..n {
        let file = NodeFile {
            datadir: Some(format!("node-{i}").into()),
            genesis: Some("genesis.json".into()),
            validator_key: Some(format!("validator-{i}.key.json").into()),
            validators: Some("validators.json".into()),
            http_addr: Some(IpAddr::from([127, 0, 0, 1])),
            http_port: Some(args.rpc_base_port + i as u16),
            block_time: Some(block_time.clone()),
            leader_timeout: Some(leader_timeout.clone()),
            metrics: (args.metrics_base_port != 0)
                .then(|| SocketAddr::from(([127, 0, 0, 1], args.metrics_base_port + i as u16))),
            exec_threads: None,
        };
        let text = toml::to_string(&file).map_err(|e| e.to_string())?;
        let path = config_path(dir, i);
        let text = format!(
            "# Validator node {i} of the testnet in this directory: pharos node --config {}\n{text}",
            path.display()
        );
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    println!(
        "{} validators (tolerates {} faulty), chain id {} in {}:",
        set.len(),
        set.max_faults(),
        args.chain_id,
        dir.display()
    );
    for (i, info) in infos.iter().enumerate() {
        println!(
            "  node-{i}.toml  JSON-RPC 127.0.0.1:{}  p2p {}  identity {}",
            args.rpc_base_port as usize + i,
            info.address,
            info.identity
        );
    }
    println!(
        "shared: {}, {}; start a node with: pharos node --config {}",
        list.display(),
        genesis.display(),
        config_path(dir, 0).display()
    );
    Ok(n)
}

/// `pharos testnet run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub init: InitArgs,
    /// Start the nodes of the testnet already in --dir instead of writing a new one.
    #[arg(long)]
    pub reuse: bool,
    /// Extra argument for every node (repeatable), e.g. --node-arg=--exec.threads=1.
    #[arg(long = "node-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub node_args: Vec<String>,
}

struct Node {
    child: Child,
    rpc: SocketAddr,
    log: PathBuf,
}

/// Asks a child to stop (SIGTERM), then kills it after `grace`.
fn stop(child: &mut Child, grace: Duration) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts the cluster and keeps it running until `shutdown` resolves or a node exits.
pub async fn run(
    mut args: RunArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    if args.init.dir.is_none() {
        if args.reuse {
            return Err("--reuse needs --dir DIR".into());
        }
        let fresh = std::env::temp_dir().join(format!(
            "pharos-testnet-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        ));
        args.init.dir = Some(fresh);
    }
    let dir = &args.init.dir.clone().unwrap_or_default();
    let n = if args.reuse {
        let mut n = 0;
        while config_path(dir, n).exists() {
            n += 1;
        }
        if n == 0 {
            return Err(format!("no node-0.toml in {}", dir.display()));
        }
        n
    } else {
        init(&args.init)?
    };
    let exe = std::env::current_exe().map_err(|e| format!("locating this binary: {e}"))?;
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for i in 0..n {
        let path = config_path(dir, i);
        let file = NodeFile::load(&path)?;
        let rpc = SocketAddr::new(
            file.http_addr.unwrap_or(IpAddr::from([127, 0, 0, 1])),
            file.http_port.unwrap_or(8545),
        );
        let log = dir.join(format!("node-{i}.log"));
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let started = Command::new(&exe)
            .arg("node")
            .arg("--config")
            .arg(&path)
            .args(&args.node_args)
            .stdout(out)
            .stderr(err)
            .spawn();
        match started {
            Ok(child) => nodes.push(Node { child, rpc, log }),
            Err(e) => {
                for node in &mut nodes {
                    stop(&mut node.child, Duration::from_secs(5));
                }
                return Err(format!("starting node {i}: {e}"));
            }
        }
    }
    // Wait for every RPC server.
    let until = Instant::now() + Duration::from_secs(60);
    for (i, node) in nodes.iter_mut().enumerate() {
        loop {
            if TcpStream::connect_timeout(&node.rpc, Duration::from_millis(200)).is_ok() {
                break;
            }
            let exited = node.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > until {
                let why = match exited {
                    Some(status) => format!("exited with {status}"),
                    None => "did not open its JSON-RPC port in 60 s".into(),
                };
                let log = node.log.clone();
                for node in &mut nodes {
                    stop(&mut node.child, Duration::from_secs(5));
                }
                return Err(format!("node {i} {why}; see {}", log.display()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    println!("testnet of {n} validators running (Ctrl-C stops it):");
    for (i, node) in nodes.iter().enumerate() {
        println!(
            "  node {i}: JSON-RPC http://{}  log {}",
            node.rpc,
            node.log.display()
        );
    }
    // A node that exits (crash, kill) is reported; the others go on (a network tolerates f
    // faulty validators). The cluster stops on Ctrl-C, or when no node is left.
    let watch = async {
        let mut gone = vec![false; nodes.len()];
        loop {
            for (i, node) in nodes.iter_mut().enumerate() {
                if !gone[i]
                    && let Ok(Some(status)) = node.child.try_wait()
                {
                    gone[i] = true;
                    println!("node {i} exited with {status}; see {}", node.log.display());
                }
            }
            if gone.iter().all(|g| *g) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let result = tokio::select! {
        _ = shutdown => Ok(()),
        _ = watch => Err("every node exited".to_string()),
    };
    println!("stopping the testnet");
    for node in &mut nodes {
        stop(&mut node.child, Duration::from_secs(10));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::B256;

    #[test]
    fn config_files_resolve_paths_and_refuse_unknown_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "datadir = \"data\"\ngenesis = \"/abs/genesis.json\"\nhttp-port = 9000\nblock-time = \"250ms\"\n",
        )
        .expect("write");
        let file = NodeFile::load(&path).expect("loads");
        assert_eq!(file.datadir, Some(dir.path().join("data")));
        assert_eq!(file.genesis, Some(PathBuf::from("/abs/genesis.json")));
        assert_eq!(file.http_port, Some(9000));

        std::fs::write(&path, "http-prot = 9000\n").expect("write");
        let err = NodeFile::load(&path).expect_err("unknown key");
        assert!(err.contains("http-prot"), "{err}");
        std::fs::write(&path, "block-time = \"soon\"\n").expect("write");
        let err = NodeFile::load(&path).expect_err("bad duration");
        assert!(err.contains("block-time"), "{err}");
        std::fs::write(&path, "http-port = \"x\n").expect("write");
        assert!(NodeFile::load(&path).is_err(), "broken toml");
        assert!(NodeFile::load(&dir.path().join("missing.toml")).is_err());
    }

    #[test]
    fn init_writes_configs_a_node_accepts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = InitArgs {
            validators: 4,
            dir: Some(dir.path().join("net")),
            base_port: 31000,
            rpc_base_port: 18545,
            metrics_base_port: 0,
            stake: 1_000,
            chain_id: 4242,
            block_time: Duration::from_millis(500),
            compliance_admin: Some(alloy_primitives::Address::repeat_byte(0xad)),
            no_dev_zk_keys: true,
        };
        assert_eq!(init(&args), Ok(4));
        for i in 0..4 {
            let file =
                NodeFile::load(&config_path(dir.path().join("net").as_path(), i)).expect("config");
            assert_eq!(file.http_port, Some(18545 + i as u16));
            let genesis = std::fs::read_to_string(file.genesis.expect("genesis")).expect("read");
            let spec = ChainSpec::from_genesis_json(&genesis).expect("genesis parses");
            assert_eq!(spec.chain_id(), 4242);
            // The compliance administrator is the one asked for; no development zkDID key.
            let alloc = &spec.genesis().alloc;
            let identity = &alloc[&pharos_compliance::IDENTITY_REGISTRY];
            let admin = identity.storage.as_ref().expect("storage")[&B256::ZERO];
            assert_eq!(
                admin,
                alloy_primitives::Address::repeat_byte(0xad).into_word()
            );
            let zk = &alloc[&pharos_compliance::ZK_VERIFIER];
            assert!(
                zk.storage
                    .as_ref()
                    .is_none_or(|s| !s.contains_key(&B256::ZERO))
            );
            assert!(
                zk.storage
                    .as_ref()
                    .is_none_or(|s| !s.contains_key(&B256::with_last_byte(1))),
                "no verifying key"
            );
            assert!(file.validator_key.expect("key").exists());
        }
        assert!(init(&args).is_err(), "never overwrites a testnet");
    }
}
