//! `pharos identity` end to end against a real `pharos node --dev`: the compliance administrator
//! (dev account 0) trusts a fresh issuer made by `identity issuer-key`; the holder, dev account
//! 1, makes a secret, gets a credential issued, proves with the development key and submits;
//! the identity registry then reports the zkDID claim. Replays, tampered proofs, revoked
//! credentials, wrong keys and malformed files fail with clear messages and exit code 1.

mod common;

use std::{
    path::Path,
    process::{Child, Command, Output, Stdio},
};

use alloy_primitives::{Address, B256, Bytes, TxKind, U256, hex};
use alloy_sol_types::SolCall;
use jsonrpsee_core::client::ClientT;
use pharos_compliance::{
    IDENTITY_REGISTRY, IIdentityRegistry, IZkCredentialVerifier, ZK_VERIFIER,
    identity::TOPIC_ZK_CREDENTIAL,
};
use pharos_loadgen::RpcClient;
use pharos_workload::{TxBuilder, Wallet, raw};

const BIN: &str = env!("CARGO_BIN_EXE_pharos");

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_node(datadir: &Path) -> (Node, String) {
    let (child, url) = common::spawn_node(
        Command::new(BIN)
            .args([
                "node",
                "--dev",
                "--http.port",
                "0",
                "--block-time",
                "100ms",
                "--datadir",
            ])
            .arg(datadir)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null()),
    );
    (Node(child), url)
}

/// Runs `pharos identity ARGS` (its output is shown with `--nocapture`).
fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(["identity"])
        .args(args)
        .output()
        .expect("run pharos identity");
    eprintln!(
        "$ pharos identity {} -> {}\n{}{}",
        args.first().copied().unwrap_or_default(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `pharos identity ARGS`, expecting success; returns stdout.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pharos identity {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// Runs `pharos identity ARGS`, expecting a clean failure (exit code 1, an `error:` line, no
/// panic) whose message contains `needle`; returns stderr.
fn fails(args: &[&str], needle: &str) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "pharos identity {args:?} should fail with exit code 1; stdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    assert!(
        stderr.contains("error: ") && stderr.contains(needle),
        "pharos identity {args:?}: expected {needle:?} in:\n{stderr}"
    );
    stderr
}

/// The value after `prefix` on the line that starts with it.
fn field(output: &str, prefix: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{output}"))
        .trim()
        .to_string()
}

fn as_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

async fn has_valid_claim(url: &str, wallet: Address) -> bool {
    let client = jsonrpsee_http_client::HttpClientBuilder::default()
        .build(url)
        .expect("client");
    let input: Bytes = IIdentityRegistry::hasValidClaimCall {
        wallet,
        topic: U256::from(TOPIC_ZK_CREDENTIAL),
    }
    .abi_encode()
    .into();
    let out: Bytes = client
        .request(
            "eth_call",
            jsonrpsee_core::rpc_params![
                serde_json::json!({ "to": IDENTITY_REGISTRY, "input": input }),
                "latest"
            ],
        )
        .await
        .expect("eth_call hasValidClaim");
    IIdentityRegistry::hasValidClaimCall::abi_decode_returns(&out).expect("decode bool")
}

/// Rewrites a JSON file's string field through `edit`.
fn edit_json(from: &Path, to: &Path, pointer: &str, edit: impl FnOnce(&str) -> serde_json::Value) {
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(from).expect("read")).expect("json");
    let slot = json.pointer_mut(pointer).expect("field");
    let current = match &*slot {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    *slot = edit(&current);
    std::fs::write(to, serde_json::to_string_pretty(&json).expect("encode")).expect("write");
}

/// XORs the byte at `index` of 0x-hex with `mask`.
fn flip_byte(hex_text: &str, index: usize, mask: u8) -> serde_json::Value {
    let mut bytes = hex::decode(hex_text.trim_start_matches("0x")).expect("hex");
    bytes[index] ^= mask;
    serde_json::Value::String(format!("0x{}", hex::encode(bytes)))
}

#[test]
fn issue_prove_and_submit_on_a_dev_chain() {
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str| dir.path().join(name);
    let (_node, url) = start_node(&file("node"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let accounts = pharos_primitives::dev_accounts().expect("dev accounts");
    let admin = Wallet::from_key(accounts[0].1).expect("admin key");
    let (holder, holder_key) = accounts[1];
    let holder_key = format!("{holder_key}");
    let other_key = format!("{}", accounts[2].1);

    // Issuer key: a 0600 file that is never overwritten.
    let issuer_file = file("issuer.json");
    let out = ok(&["issuer-key", "--out", path_str(&issuer_file)]);
    let issuer_key = field(&out, "issuer public key:");
    let empty_root = field(&out, "revocation root:");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&issuer_file)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "issuer key file mode");
    }
    fails(
        &["issuer-key", "--out", path_str(&issuer_file)],
        "already exists",
    );
    assert_eq!(ok(&["revocation-root"]).trim(), empty_root);
    assert_ne!(
        ok(&["revocation-root", "--revoked", "3,7"]).trim(),
        empty_root
    );

    // The administrator trusts the issuer, with itself as the revocation-root controller.
    let set_issuer: Bytes = IZkCredentialVerifier::setIssuerCall {
        issuerKey: hex::decode(issuer_key.trim_start_matches("0x"))
            .expect("key hex")
            .into(),
        controller: admin.address(),
        revocationRoot: empty_root.parse::<B256>().expect("root"),
    }
    .abi_encode()
    .into();
    let tx = admin.sign(TxBuilder::new(1337).eip1559(
        0,
        TxKind::Call(ZK_VERIFIER),
        U256::ZERO,
        set_issuer,
        1_000_000,
    ));
    let client = RpcClient::new(&url).expect("client");
    rt.block_on(client.submit_and_wait(&[raw(&tx)], 1))
        .expect("setIssuer is mined");

    // Holder secret and credential.
    let secret_file = file("holder.json");
    let commitment = field(
        &ok(&["secret", "--out", path_str(&secret_file)]),
        "holder secret commitment:",
    );
    let credential_file = file("credential.json");
    let holder_hex = format!("{holder}");
    ok(&[
        "issue",
        "--issuer-key",
        path_str(&issuer_file),
        "--holder",
        &holder_hex,
        "--birth-date",
        "1990-05-17",
        "--country",
        "276",
        "--kyc-level",
        "2",
        "--expiry",
        "2099-12-31",
        "--nonce",
        "7",
        "--commitment",
        &commitment,
        "--out",
        path_str(&credential_file),
    ]);

    // A revoked credential cannot be proven (and nothing is written).
    let proof_file = file("proof.json");
    let prove_args = |extra: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "prove",
            "--credential",
            path_str(&credential_file),
            "--secret",
            path_str(&secret_file),
            "--scope",
            "identity-test",
            "--insecure-dev",
            "--out",
            path_str(&proof_file),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    fails(
        &as_refs(&prove_args(&["--revoked", "3,7"])),
        "credential is revoked (revocation nonce 7)",
    );
    assert!(!proof_file.exists());
    fails(
        &as_refs(&prove_args(&["--min-kyc", "3"])),
        "KYC level 2 is below the required 3",
    );

    let proved = run(&as_refs(&prove_args(&[])));
    let stderr = String::from_utf8_lossy(&proved.stderr);
    assert!(proved.status.success(), "prove failed: {stderr}");
    assert!(
        stderr.contains("WARNING"),
        "no insecure-dev warning: {stderr}"
    );
    assert!(String::from_utf8_lossy(&proved.stdout).contains("proved in"));

    // Before submitting, the holder has no claim.
    assert!(!rt.block_on(has_valid_claim(&url, holder)));

    // Tampered proofs are refused before anything is sent.
    let tampered = file("tampered.json");
    edit_json(&proof_file, &tampered, "/proof", |p| flip_byte(p, 100, 1));
    let err = fails(
        &[
            "submit",
            "--proof",
            path_str(&tampered),
            "--rpc",
            &url,
            "--key",
            &holder_key,
        ],
        "proof",
    );
    assert!(
        err.contains("does not verify") || err.contains("not a valid compressed Groth16 proof"),
        "{err}"
    );
    // A statement edited to claim more (min KYC 1 -> 2) no longer matches the proof. The
    // min-KYC byte follows version(1), issuer(64), root(32), wallet(20), date(4), min age(1).
    edit_json(&proof_file, &tampered, "/statement", |s| {
        flip_byte(s, 122, 3)
    });
    fails(
        &[
            "submit",
            "--proof",
            path_str(&tampered),
            "--rpc",
            &url,
            "--key",
            &holder_key,
        ],
        "proof does not verify against the public statement",
    );
    edit_json(&proof_file, &tampered, "/statement", |s| {
        serde_json::Value::String(s[..s.len() - 2].to_string())
    });
    fails(
        &[
            "submit",
            "--proof",
            path_str(&tampered),
            "--rpc",
            &url,
            "--key",
            &holder_key,
        ],
        "public statement is malformed",
    );
    // Only the holder's wallet may submit.
    fails(
        &[
            "submit",
            "--proof",
            path_str(&proof_file),
            "--rpc",
            &url,
            "--key",
            &other_key,
        ],
        &format!("the proof is bound to the credential's holder {holder}"),
    );

    // Accepted.
    let out = ok(&[
        "submit",
        "--proof",
        path_str(&proof_file),
        "--rpc",
        &url,
        "--key",
        &holder_key,
    ]);
    assert!(out.contains("accepted in block"), "{out}");
    assert!(
        out.contains("identity ") && out.contains("gas used"),
        "{out}"
    );
    assert!(rt.block_on(has_valid_claim(&url, holder)));

    // The same proof again: its nullifier is spent.
    fails(
        &[
            "submit",
            "--proof",
            path_str(&proof_file),
            "--rpc",
            &url,
            "--key",
            &holder_key,
        ],
        "compliance: zkDID: nullifier already used for this scope",
    );

    // Malformed inputs.
    let garbage = file("garbage.json");
    std::fs::write(&garbage, "{ not json").expect("write");
    fails(
        &[
            "submit",
            "--proof",
            path_str(&garbage),
            "--rpc",
            &url,
            "--key",
            &holder_key,
        ],
        "is not a valid proof file",
    );
    let mut args = prove_args(&[]);
    args[2] = path_str(&garbage).to_string();
    fails(&as_refs(&args), "is not a valid credential file");
    // The holder secret given as the credential.
    args[2] = path_str(&secret_file).to_string();
    fails(
        &as_refs(&args),
        "is a holder secret file, not a credential file",
    );
    // A credential whose attributes were edited after signing.
    let edited = file("edited.json");
    edit_json(&credential_file, &edited, "/credential/kyc_level", |_| {
        serde_json::json!(5)
    });
    args[2] = path_str(&edited).to_string();
    fails(&as_refs(&args), "signature does not verify");
    args[2] = path_str(&file("missing.json")).to_string();
    fails(&as_refs(&args), "reading credential");
    fails(
        &[
            "issue",
            "--issuer-key",
            path_str(&credential_file),
            "--holder",
            &holder_hex,
            "--birth-date",
            "1990-05-17",
            "--country",
            "276",
            "--kyc-level",
            "2",
            "--expiry",
            "2099-12-31",
            "--nonce",
            "8",
            "--commitment",
            &commitment,
            "--out",
            path_str(&file("c2.json")),
        ],
        "is a credential file, not an issuer key file",
    );

    // Production keys: a trusted setup writes key files (never over an existing directory), the
    // administrator installs the verifying key, proofs made with the development key stop
    // verifying and proofs made with the proving key file are accepted.
    let keys = file("keys");
    let out = ok(&["setup", "--out-dir", path_str(&keys)]);
    let vk_hex = field(&out, "verifying key:");
    fails(&["setup", "--out-dir", path_str(&keys)], "already exists");
    let set_key: Bytes = IZkCredentialVerifier::setVerifyingKeyCall {
        key: hex::decode(vk_hex.trim_start_matches("0x"))
            .expect("key hex")
            .into(),
    }
    .abi_encode()
    .into();
    let tx = admin.sign(TxBuilder::new(1337).eip1559(
        1,
        TxKind::Call(ZK_VERIFIER),
        U256::ZERO,
        set_key,
        2_000_000,
    ));
    rt.block_on(client.submit_and_wait(&[raw(&tx)], 1))
        .expect("setVerifyingKey is mined");
    let dev_proof = file("dev-proof.json");
    let prod_proof = file("prod-proof.json");
    let scoped = |scope: &str, out: &Path, key: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec![
            "prove".into(),
            "--credential".into(),
            path_str(&credential_file).into(),
            "--secret".into(),
            path_str(&secret_file).into(),
            "--scope".into(),
            scope.into(),
            "--out".into(),
            path_str(out).into(),
        ];
        args.extend(key.iter().map(|s| s.to_string()));
        args
    };
    ok(&as_refs(&scoped(
        "second-scope",
        &dev_proof,
        &["--insecure-dev"],
    )));
    let submit = |proof: &Path| -> Vec<String> {
        [
            "submit",
            "--proof",
            path_str(proof),
            "--rpc",
            &url,
            "--key",
            &holder_key,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    fails(
        &as_refs(&submit(&dev_proof)),
        "proof does not verify against the public statement",
    );
    let pk_file = keys.join("proving.key");
    let proved = run(&as_refs(&scoped(
        "second-scope",
        &prod_proof,
        &["--proving-key", path_str(&pk_file)],
    )));
    let stderr = String::from_utf8_lossy(&proved.stderr);
    assert!(proved.status.success(), "{stderr}");
    assert!(
        !stderr.contains("WARNING"),
        "a ceremony key is not insecure: {stderr}"
    );
    let out = ok(&as_refs(&submit(&prod_proof)));
    assert!(out.contains("accepted in block"), "{out}");

    eprintln!(
        "identity flow took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
