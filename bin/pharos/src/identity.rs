//! `pharos identity`: zkDID credentials from the command line. An issuer makes a Baby Jubjub
//! key and signs credentials; a holder makes a secret, proves statements about a credential
//! with a Groth16 proof, and submits the proof to the chain's zkDID verifier
//! ([`pharos_compliance::ZK_VERIFIER`]), which records a claim on the holder's identity.
//!
//! Files are JSON. Secrets (issuer key, holder secret) are written with mode 0600 and never
//! overwritten; credentials and proofs may be shared (a proof file reveals only the public
//! statement, a credential file reveals the attributes).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256, Bytes, TxKind, U64, U256};
use alloy_sol_types::{SolCall, SolEvent};
use clap::{ArgGroup, Args, Subcommand};
use jsonrpsee_core::{ClientError, client::ClientT, params::ArrayParams};
use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use pharos_compliance::{IIdentityRegistry, IZkCredentialVerifier as Z, ZK_VERIFIER};
use pharos_workload::{TxBuilder, Wallet, raw};
use pharos_zkdid::{
    Address20, Credential, HolderSecret, IssuerKey, IssuerPublicKey, ProvingKey, PublicStatement,
    Requirements, RevocationTree, SignedCredential, Unprovable, ZkError, check_witness,
    date::civil_from_days,
    days_from_civil, decode_proof,
    eddsa::Signature,
    field::{fr_from_hex, fr_to_hex},
    insecure_dev_setup, prove, scope_from_label, verify,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// `pharos identity …`.
#[derive(Subcommand, Debug)]
pub enum IdentityCommand {
    /// Issuer: generate a Baby Jubjub signing key.
    ///
    /// Writes a new file (mode 0600, never overwritten) and prints the 64-byte public key and
    /// the empty revocation root: what the compliance administrator passes to
    /// setIssuer(issuerKey, controller, revocationRoot) on the zkDID verifier.
    IssuerKey(IssuerKeyArgs),
    /// Holder: generate the secret behind the holder's nullifiers.
    ///
    /// Writes a new file (mode 0600, never overwritten) and prints the secret's commitment,
    /// the only thing the issuer needs.
    Secret(SecretArgs),
    /// Issuer: sign a credential for a holder's wallet and secret commitment.
    Issue(IssueArgs),
    /// Compliance administrator: a single-party trusted setup of the zkDID circuit.
    ///
    /// Writes proving.key (for provers) and verifying.key into a new directory and prints the
    /// verifying key's hex, what setVerifyingKey(key) on the verifier takes. The randomness
    /// comes from the operating system and never leaves this process: the keys are sound if
    /// this machine is trusted. A public network should run a multi-party ceremony instead.
    Setup(SetupArgs),
    /// Print the root of an issuer's revocation tree with the given nonces revoked.
    ///
    /// The issuer's controller publishes it with setRevocationRoot(issuerKey, root); holders
    /// need the same list to prove (`prove --revoked`).
    RevocationRoot(RevocationRootArgs),
    /// Holder: prove in zero knowledge that a credential meets requirements.
    ///
    /// Proves age, KYC level, country not blocked and not revoked, bound to the credential's
    /// wallet, without revealing the attributes; writes the public statement and the proof.
    Prove(ProveArgs),
    /// Holder: send a proof to the chain's zkDID verifier.
    ///
    /// Calls submit(statement, proof) in an EIP-1559 transaction signed by the holder's wallet
    /// (a refused proof is reported before anything is sent) and waits for the receipt.
    Submit(SubmitArgs),
}

/// `pharos identity issuer-key`.
#[derive(Args, Debug)]
pub struct IssuerKeyArgs {
    /// The new key file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// `pharos identity secret`.
#[derive(Args, Debug)]
pub struct SecretArgs {
    /// The new secret file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// `pharos identity issue`.
#[derive(Args, Debug)]
pub struct IssueArgs {
    /// The issuer's key file (`pharos identity issuer-key`).
    #[arg(long, value_name = "FILE")]
    issuer_key: PathBuf,
    /// The holder's wallet: proofs from this credential only work for transactions it sends.
    #[arg(long, value_name = "0xADDRESS")]
    holder: Address,
    /// Birth date.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    birth_date: i32,
    /// Country of residence, ISO 3166-1 numeric (e.g. 276 for Germany).
    #[arg(long, value_name = "N")]
    country: u16,
    /// KYC level the issuer verified (higher is stronger).
    #[arg(long, value_name = "K")]
    kyc_level: u8,
    /// Last day the credential is valid.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    expiry: i32,
    /// Revocation nonce: the credential's slot in the issuer's revocation tree. Unique per
    /// issuer; revoking it invalidates the credential.
    #[arg(long, value_name = "N")]
    nonce: u32,
    /// The holder's secret commitment (`pharos identity secret` prints it).
    #[arg(long, value_name = "HEX")]
    commitment: String,
    /// The credential file to write (give it to the holder).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// `pharos identity setup`.
#[derive(Args, Debug)]
pub struct SetupArgs {
    /// Directory to create for proving.key and verifying.key (must not exist).
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
}

/// `pharos identity revocation-root`.
#[derive(Args, Debug)]
pub struct RevocationRootArgs {
    /// Revoked nonces (comma-separated); none gives the empty tree's root.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',')]
    revoked: Vec<u32>,
}

/// `pharos identity prove`.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("key").required(true).args(["proving_key", "insecure_dev"])))]
pub struct ProveArgs {
    /// The credential file (`pharos identity issue`).
    #[arg(long, value_name = "FILE")]
    credential: PathBuf,
    /// The holder's secret file (`pharos identity secret`).
    #[arg(long, value_name = "FILE")]
    secret: PathBuf,
    /// Nullifier scope label (e.g. the application's name): one claim per credential per
    /// scope. Must be the scope the chain's policy requires, if it requires one.
    #[arg(long, value_name = "LABEL")]
    scope: String,
    /// Prove the holder is at least this old on --date.
    #[arg(long, value_name = "YEARS", default_value_t = 18)]
    min_age: u8,
    /// Prove the credential's KYC level is at least this.
    #[arg(long, value_name = "K", default_value_t = 1)]
    min_kyc: u8,
    /// Prove the credential's country is none of these (ISO 3166-1 numeric, comma-separated,
    /// at most 8).
    #[arg(long, value_name = "N,N,...", value_delimiter = ',')]
    blocked: Vec<u16>,
    /// Nonces the issuer has revoked (comma-separated), to rebuild its revocation tree: the
    /// resulting root must be the one the issuer published on chain.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',')]
    revoked: Vec<u32>,
    /// The date the age and expiry checks refer to [default: today, UTC]; the chain accepts
    /// only recent dates.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    date: Option<i32>,
    /// Groth16 proving key file (from the chain's trusted setup).
    #[arg(long, value_name = "FILE")]
    proving_key: Option<PathBuf>,
    /// Derive the proving key from the public development seed. INSECURE: anyone can forge
    /// proofs for its verifying key; only development chains (`pharos node --dev`) use it.
    #[arg(long)]
    insecure_dev: bool,
    /// The proof file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// `pharos identity submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// The proof file (`pharos identity prove`).
    #[arg(long, value_name = "FILE")]
    proof: PathBuf,
    /// JSON-RPC URL of a node.
    #[arg(long, value_name = "URL")]
    rpc: String,
    /// Private key of the credential's holder wallet (hex), which signs and pays. Prefer the
    /// environment variable: command lines are visible to other users of the machine.
    #[arg(
        long,
        value_name = "PRIVATE_KEY_HEX",
        env = "PHAROS_PRIVATE_KEY",
        hide_env_values = true
    )]
    key: B256,
    /// How long to wait for the receipt.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

fn setup(args: &SetupArgs) -> Result<(), String> {
    if args.out_dir.exists() {
        return Err(format!(
            "{} already exists: give a new directory (keys are never overwritten)",
            args.out_dir.display()
        ));
    }
    std::fs::create_dir_all(&args.out_dir)
        .map_err(|e| format!("creating {}: {e}", args.out_dir.display()))?;
    let started = Instant::now();
    let (pk, vk) = pharos_zkdid::trusted_setup(&mut ark_std::rand::rngs::OsRng)
        .map_err(|e| format!("trusted setup: {e}"))?;
    let pk_file = args.out_dir.join("proving.key");
    let vk_file = args.out_dir.join("verifying.key");
    pk.save(&pk_file)
        .map_err(|e| format!("writing {}: {e}", pk_file.display()))?;
    vk.save(&vk_file)
        .map_err(|e| format!("writing {}: {e}", vk_file.display()))?;
    let bytes = vk
        .to_bytes()
        .map_err(|e| format!("encoding the verifying key: {e}"))?;
    eprintln!(
        "set up in {:.2} s: wrote {} (for provers: pharos identity prove --proving-key) and {}",
        started.elapsed().as_secs_f64(),
        pk_file.display(),
        vk_file.display()
    );
    eprintln!(
        "the compliance administrator installs it with setVerifyingKey(key) on {}",
        pharos_compliance::ZK_VERIFIER
    );
    println!("verifying key: {}", hex0x(&bytes));
    Ok(())
}

/// Runs an identity command.
pub async fn run(command: IdentityCommand) -> Result<(), String> {
    match command {
        IdentityCommand::IssuerKey(args) => issuer_key(&args),
        IdentityCommand::Secret(args) => secret(&args),
        IdentityCommand::Issue(args) => issue(&args),
        IdentityCommand::Setup(args) => setup(&args),
        IdentityCommand::RevocationRoot(args) => revocation_root(&args),
        IdentityCommand::Prove(args) => prove_command(&args),
        IdentityCommand::Submit(args) => submit(&args).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Files

const ISSUER_KEY_FORMAT: &str = "pharos-zkdid-issuer-key/1";
const HOLDER_SECRET_FORMAT: &str = "pharos-zkdid-holder-secret/1";
const CREDENTIAL_FORMAT: &str = "pharos-zkdid-credential/1";
const PROOF_FORMAT: &str = "pharos-zkdid-proof/1";
/// Every file format with the kind of file it names.
const FORMATS: [(&str, &str); 4] = [
    (ISSUER_KEY_FORMAT, "issuer key"),
    (HOLDER_SECRET_FORMAT, "holder secret"),
    (CREDENTIAL_FORMAT, "credential"),
    (PROOF_FORMAT, "proof"),
];

/// An issuer's key file. Secret.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerKeyFile {
    format: String,
    /// The secret scalar, 32 bytes little-endian (`IssuerKey::secret_bytes`).
    secret_key: String,
    /// The public key it derives (checked on load).
    public_key: IssuerPublicKey,
}

/// A holder's secret file. Secret.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HolderSecretFile {
    format: String,
    /// 32 bytes big-endian.
    secret: String,
    /// `Poseidon(secret)` (checked on load).
    commitment: String,
}

/// A signed credential.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialFile {
    format: String,
    /// Dates are days since 1970-01-01.
    credential: Credential,
    issuer: IssuerPublicKey,
    /// EdDSA signature: R8.x, R8.y, S (32 bytes big-endian each).
    signature: String,
}

/// A proof and its statement, ready for `submit`.
#[derive(Serialize, Deserialize)]
struct ProofFile {
    #[serde(default)]
    format: Option<String>,
    /// The canonical statement encoding (calldata of submit).
    statement: String,
    /// The compressed Groth16 proof.
    proof: String,
    /// For people; `submit` reads only `statement` and `proof`.
    #[serde(default, skip_deserializing)]
    summary: Option<ProofSummary>,
}

#[derive(Serialize)]
struct ProofSummary {
    wallet: Address20,
    issuer: IssuerPublicKey,
    revocation_root: String,
    date: String,
    min_age_years: u8,
    min_kyc_level: u8,
    blocked_countries: Vec<u16>,
    scope_label: String,
    scope: String,
    nullifier: String,
    insecure_dev_key: bool,
    proving_seconds: f64,
}

fn read_text(path: &Path, what: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {what} {}: {e}", path.display()))
}

/// Reads a JSON file of one of this module's kinds; a file of another kind is named as such.
fn read_json<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T, String> {
    let text = read_text(path, what)?;
    let invalid =
        |e: serde_json::Error| format!("{} is not a valid {what} file: {e}", path.display());
    let value: serde_json::Value = serde_json::from_str(&text).map_err(invalid)?;
    if let Some(format) = value.get("format").and_then(|f| f.as_str())
        && let Some((_, kind)) = FORMATS.iter().find(|(f, _)| *f == format)
        && *kind != what
    {
        return Err(format!(
            "{} is {} {kind} file, not {} {what} file",
            path.display(),
            article(kind),
            article(what)
        ));
    }
    serde_json::from_value(value).map_err(invalid)
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn check_format(path: &Path, what: &str, found: &str, expected: &str) -> Result<(), String> {
    if found == expected {
        Ok(())
    } else {
        Err(format!(
            "{} is not {} {what} file: its format is {found:?}, expected {expected:?}",
            path.display(),
            article(what)
        ))
    }
}

/// Writes a secret: a new file (never overwritten), mode 0600.
fn write_secret_file(path: &Path, value: &impl Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} already exists; a secret is never overwritten (choose another --out)",
                path.display()
            )
        } else {
            format!("creating {}: {e}", path.display())
        }
    })?;
    std::io::Write::write_all(&mut file, format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Writes a shareable file (via a temporary file and a rename).
fn write_json_file(path: &Path, value: &impl Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{text}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

fn decode_hex(text: &str, what: &str) -> Result<Vec<u8>, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    alloy_primitives::hex::decode(digits).map_err(|e| format!("{what} is not valid hex: {e}"))
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", alloy_primitives::hex::encode(bytes))
}

fn load_issuer_key(path: &Path) -> Result<IssuerKey, String> {
    let file: IssuerKeyFile = read_json(path, "issuer key")?;
    check_format(path, "issuer key", &file.format, ISSUER_KEY_FORMAT)?;
    let bytes = decode_hex(&file.secret_key, "secret_key")
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let key =
        IssuerKey::from_secret_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if key.public() != file.public_key {
        return Err(format!(
            "{}: the public key does not belong to the secret key (the file is corrupt)",
            path.display()
        ));
    }
    Ok(key)
}

fn load_holder_secret(path: &Path) -> Result<HolderSecret, String> {
    let file: HolderSecretFile = read_json(path, "holder secret")?;
    check_format(path, "holder secret", &file.format, HOLDER_SECRET_FORMAT)?;
    let bytes =
        decode_hex(&file.secret, "secret").map_err(|e| format!("{}: {e}", path.display()))?;
    let secret =
        HolderSecret::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let commitment = fr_from_hex(&file.commitment)
        .map_err(|e| format!("{}: commitment: {e}", path.display()))?;
    if secret.commitment() != commitment {
        return Err(format!(
            "{}: the commitment does not match the secret (the file is corrupt)",
            path.display()
        ));
    }
    Ok(secret)
}

fn load_credential(path: &Path) -> Result<SignedCredential, String> {
    let file: CredentialFile = read_json(path, "credential")?;
    check_format(path, "credential", &file.format, CREDENTIAL_FORMAT)?;
    let bytes =
        decode_hex(&file.signature, "signature").map_err(|e| format!("{}: {e}", path.display()))?;
    let signature =
        Signature::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let signed = SignedCredential {
        credential: file.credential,
        issuer: file.issuer,
        signature,
    };
    if !signed.verify() {
        return Err(format!(
            "{}: the issuer's signature does not verify for these attributes (the credential was altered or is corrupt)",
            path.display()
        ));
    }
    Ok(signed)
}

/// A proof file's statement and proof, decoded and checked (never trusted: the chain checks
/// them again).
fn load_proof(path: &Path) -> Result<(PublicStatement, Vec<u8>, Vec<u8>), String> {
    let file: ProofFile = read_json(path, "proof")?;
    if let Some(format) = &file.format {
        check_format(path, "proof", format, PROOF_FORMAT)?;
    }
    let at = |e: String| format!("{}: {e}", path.display());
    let statement_bytes = decode_hex(&file.statement, "statement").map_err(at)?;
    let proof_bytes = decode_hex(&file.proof, "proof").map_err(at)?;
    let statement = PublicStatement::from_bytes(&statement_bytes).map_err(|e| at(e.to_string()))?;
    decode_proof(&proof_bytes).map_err(|e| at(e.to_string()))?;
    Ok((statement, statement_bytes, proof_bytes))
}

// ---------------------------------------------------------------------------------------------
// Dates

/// Parses `YYYY-MM-DD` into days since 1970-01-01.
fn parse_date(text: &str) -> Result<i32, String> {
    let bad = || format!("{text:?} is not a date of the form YYYY-MM-DD");
    let mut parts = text.trim().splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let (year, month, day) = (
        y.parse::<i32>().map_err(|_| bad())?,
        m.parse::<u32>().map_err(|_| bad())?,
        d.parse::<u32>().map_err(|_| bad())?,
    );
    days_from_civil(year, month, day).ok_or_else(|| format!("{text} is not a calendar date"))
}

fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn today_utc() -> Result<i32, String> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_string())?
        .as_secs();
    i32::try_from(secs / 86_400).map_err(|_| "the system clock is out of range".to_string())
}

// ---------------------------------------------------------------------------------------------
// Commands

fn issuer_key(args: &IssuerKeyArgs) -> Result<(), String> {
    let key = IssuerKey::generate(&mut ark_std::rand::rngs::OsRng);
    write_secret_file(
        &args.out,
        &IssuerKeyFile {
            format: ISSUER_KEY_FORMAT.into(),
            secret_key: hex0x(&key.secret_bytes()),
            public_key: key.public(),
        },
    )?;
    let root = RevocationTree::new().root();
    println!("issuer public key: {}", key.public());
    println!("revocation root: {}", fr_to_hex(&root));
    eprintln!(
        "wrote the issuer's secret key to {} (mode 0600; keep it secret).\n\
         The compliance administrator trusts this issuer with\n  \
         setIssuer(<issuer public key>, <controller address>, <revocation root>)\n\
         on the zkDID verifier {ZK_VERIFIER}.",
        args.out.display()
    );
    Ok(())
}

fn secret(args: &SecretArgs) -> Result<(), String> {
    let secret = HolderSecret::generate(&mut ark_std::rand::rngs::OsRng);
    write_secret_file(
        &args.out,
        &HolderSecretFile {
            format: HOLDER_SECRET_FORMAT.into(),
            secret: hex0x(&secret.to_bytes()),
            commitment: fr_to_hex(&secret.commitment()),
        },
    )?;
    println!(
        "holder secret commitment: {}",
        fr_to_hex(&secret.commitment())
    );
    eprintln!(
        "wrote the holder secret to {} (mode 0600; keep it secret).\n\
         Give the issuer only the commitment.",
        args.out.display()
    );
    Ok(())
}

fn issue(args: &IssueArgs) -> Result<(), String> {
    let key = load_issuer_key(&args.issuer_key)?;
    let secret_commitment =
        fr_from_hex(&args.commitment).map_err(|e| format!("--commitment: {e}"))?;
    if args.country == 0 {
        return Err("--country: 0 is not a country (ISO 3166-1 numeric codes start at 4)".into());
    }
    if args.expiry < args.birth_date {
        return Err("--expiry is before --birth-date".into());
    }
    if args.holder.is_zero() {
        return Err("--holder: the zero address cannot send transactions".into());
    }
    let credential = Credential {
        holder: Address20(args.holder.0.0),
        birth_date: args.birth_date,
        country: args.country,
        kyc_level: args.kyc_level,
        expiry_date: args.expiry,
        revocation_nonce: args.nonce,
        secret_commitment,
    };
    let signed = SignedCredential::issue(&key, credential);
    write_json_file(
        &args.out,
        &CredentialFile {
            format: CREDENTIAL_FORMAT.into(),
            credential,
            issuer: signed.issuer,
            signature: hex0x(&signed.signature.to_bytes()),
        },
    )?;
    println!(
        "wrote a credential for {} to {}: born {}, country {}, KYC level {}, valid until {}, revocation nonce {}",
        args.holder,
        args.out.display(),
        format_date(args.birth_date),
        args.country,
        args.kyc_level,
        format_date(args.expiry),
        args.nonce
    );
    if let Ok(today) = today_utc()
        && args.expiry < today
    {
        eprintln!("warning: the credential has already expired");
    }
    Ok(())
}

fn revocation_tree(revoked: &[u32]) -> RevocationTree {
    let mut tree = RevocationTree::new();
    for nonce in revoked {
        tree.revoke(*nonce);
    }
    tree
}

fn revocation_root(args: &RevocationRootArgs) -> Result<(), String> {
    let tree = revocation_tree(&args.revoked);
    println!("{}", fr_to_hex(&tree.root()));
    eprintln!(
        "{} nonce(s) revoked; the issuer's controller publishes this root with setRevocationRoot(issuerKey, root) on {ZK_VERIFIER}",
        tree.revoked_count()
    );
    Ok(())
}

fn prove_command(args: &ProveArgs) -> Result<(), String> {
    let signed = load_credential(&args.credential)?;
    let secret = load_holder_secret(&args.secret)?;
    if args.scope.is_empty() {
        return Err("--scope: the label is empty".into());
    }
    let date = match args.date {
        Some(d) => d,
        None => today_utc()?,
    };
    let requirements = Requirements::new(args.min_age, args.min_kyc, &args.blocked)
        .map_err(|e| format!("--blocked: {e}"))?;
    let tree = revocation_tree(&args.revoked);
    let path = tree
        .non_revocation_path(signed.credential.revocation_nonce)
        .map_err(|e| format!("cannot prove: {e}"))?;
    let scope = scope_from_label(args.scope.as_bytes());
    let statement = PublicStatement {
        issuer: signed.issuer,
        revocation_root: tree.root(),
        wallet: signed.credential.holder,
        date,
        requirements,
        scope,
        nullifier: secret.nullifier(&scope),
    };
    statement.validate().map_err(|e| e.to_string())?;
    // The cheap native checks first, so a hopeless proof fails before the key is loaded.
    check_witness(&statement, &signed, &secret, &path).map_err(describe_unprovable)?;

    let started = Instant::now();
    let pk = if args.insecure_dev {
        eprintln!(
            "WARNING: --insecure-dev: the proving key is derived from the PUBLIC development seed.\n\
             WARNING: anyone can forge proofs for its verifying key; such proofs mean nothing\n\
             WARNING: outside development chains (pharos node --dev)."
        );
        insecure_dev_setup(pharos_compliance::genesis::DEV_ZK_SEED)
            .map_err(|e| format!("deriving the development proving key: {e}"))?
            .0
    } else {
        let file = args
            .proving_key
            .as_deref()
            .ok_or("--proving-key FILE or --insecure-dev is required")?;
        let pk =
            ProvingKey::load(file).map_err(|e| format!("--proving-key {}: {e}", file.display()))?;
        if pk.is_insecure_dev() {
            eprintln!(
                "WARNING: {} is an insecure development key: anyone can forge proofs for it",
                file.display()
            );
        }
        pk
    };
    let key_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let proof = prove(&pk, &signed, &secret, &path, &statement).map_err(|e| e.to_string())?;
    let proving_seconds = started.elapsed().as_secs_f64();
    verify(&pk.verifying_key(), &statement, proof.as_bytes())
        .map_err(|e| format!("the new proof does not verify against its own key: {e}"))?;

    let summary = ProofSummary {
        wallet: statement.wallet,
        issuer: statement.issuer,
        revocation_root: fr_to_hex(&statement.revocation_root),
        date: format_date(date),
        min_age_years: args.min_age,
        min_kyc_level: args.min_kyc,
        blocked_countries: args.blocked.clone(),
        scope_label: args.scope.clone(),
        scope: fr_to_hex(&scope),
        nullifier: fr_to_hex(&statement.nullifier),
        insecure_dev_key: pk.is_insecure_dev(),
        proving_seconds,
    };
    write_json_file(
        &args.out,
        &ProofFile {
            format: Some(PROOF_FORMAT.into()),
            statement: hex0x(&statement.to_bytes()),
            proof: hex0x(proof.as_bytes()),
            summary: Some(summary),
        },
    )?;
    let blocked = if args.blocked.is_empty() {
        String::new()
    } else {
        format!(
            ", country not in {}",
            args.blocked
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    println!(
        "proved in {proving_seconds:.2} s (proving key ready in {key_seconds:.2} s); wrote {}",
        args.out.display()
    );
    println!(
        "  statement: wallet {} has a credential from issuer {}, not revoked, valid on {}: age >= {}, KYC >= {}{}",
        Address::from(statement.wallet.0),
        statement.issuer,
        format_date(date),
        args.min_age,
        args.min_kyc,
        blocked
    );
    println!(
        "  scope {:?} ({}), nullifier {}",
        args.scope,
        fr_to_hex(&scope),
        fr_to_hex(&statement.nullifier)
    );
    Ok(())
}

/// A zkDID error, with day numbers shown as dates.
fn describe_unprovable(e: ZkError) -> String {
    match e {
        ZkError::Unprovable(Unprovable::Expired { expiry, today }) => format!(
            "cannot prove the statement: the credential expired on {}, before the statement date {}",
            format_date(expiry),
            format_date(today)
        ),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Submitting

/// JSON-RPC to one node.
struct Rpc {
    http: HttpClient,
    url: String,
}

impl Rpc {
    fn new(url: &str) -> Result<Self, String> {
        let http = HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(30))
            .build(url)
            .map_err(|e| format!("--rpc {url}: {e}"))?;
        Ok(Self {
            http,
            url: url.to_string(),
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: ArrayParams,
    ) -> Result<T, RpcError> {
        let value: serde_json::Value =
            self.http
                .request(method, params)
                .await
                .map_err(|e| match e {
                    ClientError::Call(obj) => RpcError::Refused(obj.message().to_string()),
                    other => RpcError::Transport(format!(
                        "cannot reach the node at {}: {other}",
                        self.url
                    )),
                })?;
        serde_json::from_value(value.clone()).map_err(|e| {
            RpcError::Transport(format!("unexpected answer to {method}: {e}: {value}"))
        })
    }
}

/// A failed JSON-RPC call.
enum RpcError {
    /// The node answered with an error (e.g. a revert).
    Refused(String),
    /// No usable answer.
    Transport(String),
}

impl RpcError {
    fn describe(self, doing: &str) -> String {
        match self {
            RpcError::Refused(m) => format!("{doing}: the node refused: {m}"),
            RpcError::Transport(m) => format!("{doing}: {m}"),
        }
    }
}

fn params(items: &[serde_json::Value]) -> ArrayParams {
    let mut p = ArrayParams::new();
    for item in items {
        // Inserting a JSON value cannot fail.
        let _ = p.insert(item);
    }
    p
}

/// "execution reverted: compliance: …" → "compliance: …".
fn revert_reason(message: &str) -> &str {
    message
        .strip_prefix("execution reverted: ")
        .unwrap_or(message)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Receipt {
    status: U64,
    gas_used: U64,
    block_number: U64,
    #[serde(default)]
    logs: Vec<Log>,
}

#[derive(Deserialize)]
struct Log {
    address: Address,
    topics: Vec<B256>,
}

async fn submit(args: &SubmitArgs) -> Result<(), String> {
    let (statement, statement_bytes, proof_bytes) = load_proof(&args.proof)?;
    let wallet = Wallet::from_key(args.key)
        .map_err(|_| "--key is not a valid secp256k1 private key".to_string())?;
    let holder = Address::from(statement.wallet.0);
    if wallet.address() != holder {
        return Err(format!(
            "--key belongs to {}, but the proof is bound to the credential's holder {holder}: the verifier only accepts it in a transaction sent by {holder}; sign with that wallet's key",
            wallet.address()
        ));
    }
    let rpc = Rpc::new(&args.rpc)?;
    let input: Bytes = Z::submitCall {
        statement: statement_bytes.into(),
        proof: proof_bytes.into(),
    }
    .abi_encode()
    .into();
    let call = serde_json::json!({
        "from": holder,
        "to": ZK_VERIFIER,
        "input": input,
    });

    let chain_id: U64 = rpc
        .call("eth_chainId", ArrayParams::new())
        .await
        .map_err(|e| e.describe("eth_chainId"))?;
    let nonce: U64 = rpc
        .call(
            "eth_getTransactionCount",
            params(&[serde_json::json!(holder), "pending".into()]),
        )
        .await
        .map_err(|e| e.describe("eth_getTransactionCount"))?;
    let (max_fee, tip) = fees(&rpc).await?;
    let gas: U64 = match rpc
        .call("eth_estimateGas", params(std::slice::from_ref(&call)))
        .await
    {
        Ok(gas) => gas,
        Err(RpcError::Refused(m)) => {
            return Err(format!(
                "the zkDID verifier refuses the proof: {}",
                revert_reason(&m)
            ));
        }
        Err(e) => return Err(e.describe("eth_estimateGas")),
    };
    // Headroom over the estimate: gas does not depend on state the proof could race with,
    // but a later block may price a cold slot differently.
    let gas_limit = gas.to::<u64>().saturating_mul(6) / 5;

    let mut builder = TxBuilder::new(chain_id.to());
    builder.max_fee_per_gas = max_fee;
    builder.max_priority_fee_per_gas = tip;
    let tx = wallet.sign(builder.eip1559(
        nonce.to(),
        TxKind::Call(ZK_VERIFIER),
        U256::ZERO,
        input,
        gas_limit,
    ));
    let hash: B256 = rpc
        .call(
            "eth_sendRawTransaction",
            params(&[serde_json::json!(raw(&tx))]),
        )
        .await
        .map_err(|e| e.describe("sending the transaction"))?;
    println!("sent transaction {hash} from {holder}, waiting for the receipt");

    let deadline = Instant::now() + args.timeout;
    let receipt: Receipt = loop {
        let receipt: Option<Receipt> = rpc
            .call(
                "eth_getTransactionReceipt",
                params(&[serde_json::json!(hash)]),
            )
            .await
            .map_err(|e| e.describe("eth_getTransactionReceipt"))?;
        if let Some(r) = receipt {
            break r;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "transaction {hash} was not included within {}",
                humantime::format_duration(args.timeout)
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if receipt.status.is_zero() {
        // Replay to learn why (state has moved on, which is usually the reason itself).
        let reason = match rpc
            .call::<Bytes>("eth_call", params(&[call, "latest".into()]))
            .await
        {
            Err(RpcError::Refused(m)) => revert_reason(&m).to_string(),
            _ => "no reason given".to_string(),
        };
        return Err(format!(
            "transaction {hash} reverted in block {} (gas used {}): {reason}",
            receipt.block_number, receipt.gas_used
        ));
    }
    let identity = receipt
        .logs
        .iter()
        .find(|log| {
            log.address == ZK_VERIFIER
                && log.topics.first() == Some(&Z::CredentialProofAccepted::SIGNATURE_HASH)
        })
        .and_then(|log| log.topics.get(1))
        .map(|t| U256::from_be_bytes(t.0));
    let identity = match identity {
        Some(id) => id,
        None => identity_of(&rpc, holder).await?,
    };
    println!(
        "accepted in block {}: identity {identity} of {holder} holds the zkDID claim; gas used {}",
        receipt.block_number, receipt.gas_used
    );
    Ok(())
}

/// EIP-1559 fees: twice the latest base fee plus the node's suggested tip.
async fn fees(rpc: &Rpc) -> Result<(u128, u128), String> {
    let tip: U256 = match rpc
        .call("eth_maxPriorityFeePerGas", ArrayParams::new())
        .await
    {
        Ok(tip) => tip,
        Err(_) => U256::from(1_000_000_000u64),
    };
    let block: serde_json::Value = rpc
        .call(
            "eth_getBlockByNumber",
            params(&["latest".into(), false.into()]),
        )
        .await
        .map_err(|e| e.describe("eth_getBlockByNumber"))?;
    let base: U256 = match block.get("baseFeePerGas") {
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| format!("eth_getBlockByNumber: baseFeePerGas: {e}"))?,
        None => rpc
            .call("eth_gasPrice", ArrayParams::new())
            .await
            .map_err(|e| e.describe("eth_gasPrice"))?,
    };
    let tip: u128 = tip.saturating_to();
    Ok((
        base.saturating_to::<u128>()
            .saturating_mul(2)
            .saturating_add(tip),
        tip,
    ))
}

async fn identity_of(rpc: &Rpc, wallet: Address) -> Result<U256, String> {
    let input: Bytes = IIdentityRegistry::identityOfCall { wallet }
        .abi_encode()
        .into();
    let out: Bytes = rpc
        .call(
            "eth_call",
            params(&[
                serde_json::json!({ "to": pharos_compliance::IDENTITY_REGISTRY, "input": input }),
                "latest".into(),
            ]),
        )
        .await
        .map_err(|e| e.describe("identityOf"))?;
    IIdentityRegistry::identityOfCall::abi_decode_returns(&out)
        .map(U256::from)
        .map_err(|e| format!("identityOf: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(format_date(parse_date("2024-02-29").unwrap()), "2024-02-29");
        for bad in [
            "2023-02-29",
            "2024-1-01",
            "20240101",
            "abcd-ef-gh",
            "",
            "2024-13-01",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn revert_prefix_is_stripped() {
        assert_eq!(
            revert_reason("execution reverted: compliance: zkDID: x"),
            "compliance: zkDID: x"
        );
        assert_eq!(revert_reason("other"), "other");
    }
}
