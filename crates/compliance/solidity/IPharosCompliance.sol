// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

// Pharos compliance system contracts. They are built into the protocol (native code at fixed
// addresses, state in the normal state trie); call them like any contract.
//
//   IIdentityRegistry        0x7068000000000000000000000000000000000001
//   ITrustedIssuersRegistry  0x7068000000000000000000000000000000000002
//   IZkCredentialVerifier    0x7068000000000000000000000000000000000003
//   IAssetCompliance         0x7068000000000000000000000000000000000004
//   ISanctionsList           0x7068000000000000000000000000000000000005
//
// Failures revert with Error(string) reasons that start with "compliance: " and name the rule.
// Gas: every function charges 700 + 2,100 per storage slot read + 20,000 per slot written from
// zero (2,900 otherwise) + the EVM's LOG cost per event; `submit` adds 250,000 for the proof.

/// Identities: wallet -> identity (DID `did:pharos:<first wallet>`), country (ISO 3166-1
/// numeric), claims by topic. An identity may hold several wallets; a lost wallet is recovered
/// to a new address that keeps the identity and its claims.
interface IIdentityRegistry {
    event AdminTransferred(address indexed previousAdmin, address indexed newAdmin);
    event AgentSet(address indexed agent, bool enabled);
    event IdentityRegistered(uint64 indexed identity, address indexed wallet, uint16 country);
    event WalletAdded(uint64 indexed identity, address indexed wallet);
    event WalletRemoved(uint64 indexed identity, address indexed wallet);
    event WalletRecovered(uint64 indexed identity, address indexed lostWallet, address indexed newWallet);
    event CountryUpdated(uint64 indexed identity, uint16 country);
    event ClaimAdded(uint64 indexed identity, uint256 indexed topic, address indexed issuer, uint64 expiry, bytes32 data);
    event ClaimRevoked(uint64 indexed identity, uint256 indexed topic, address indexed issuer);

    /// The compliance administrator (set in genesis): manages agents, issuers, topics, keys.
    function admin() external view returns (address);
    function transferAdmin(address newAdmin) external;
    /// Identity agents (KYC providers) register identities and manage wallets.
    function setAgent(address agent, bool enabled) external;
    function isAgent(address account) external view returns (bool);

    function registerIdentity(address wallet, uint16 country) external returns (uint64 identity);
    function addWallet(uint64 identity, address wallet) external;
    function removeWallet(address wallet) external;
    function recoverWallet(address lostWallet, address newWallet) external;
    function setCountry(uint64 identity, uint16 country) external;

    /// 0 when the wallet has no identity.
    function identityOf(address wallet) external view returns (uint64);
    function didOf(address wallet) external view returns (string memory);
    function countryOf(address wallet) external view returns (uint16);
    function walletCount(uint64 identity) external view returns (uint32);

    /// Issued by a trusted issuer for `topic` (msg.sender is the issuer); replaces an older claim
    /// of the same topic. `expiry` 0 means no expiry.
    function addClaim(uint64 identity, uint256 topic, uint64 expiry, bytes32 data) external;
    /// By the claim's issuer or the administrator.
    function revokeClaim(uint64 identity, uint256 topic) external;
    function getClaim(uint64 identity, uint256 topic)
        external view returns (address issuer, uint64 expiry, bytes32 data, bool revoked);
    /// The wallet's identity holds a claim of `topic` that is not revoked, not expired, and whose
    /// issuer is still trusted for the topic.
    function hasValidClaim(address wallet, uint256 topic) external view returns (bool);
}

/// Trusted claim issuers (per topic) and the claim-topic registry, managed by the administrator.
/// Genesis topics: 1 KYC, 2 ACCREDITED_INVESTOR, 3 AML_SCREENED, 4 JURISDICTION, 5 ZK_CREDENTIAL.
interface ITrustedIssuersRegistry {
    event TrustedIssuerAdded(address indexed issuer, uint256[] topics);
    event TrustedIssuerRemoved(address indexed issuer);
    event ClaimTopicAdded(uint256 indexed topic, string name);
    event ClaimTopicRemoved(uint256 indexed topic);

    /// Replaces the issuer's topics if it is already trusted. Every topic must be registered.
    function addTrustedIssuer(address issuer, uint256[] calldata topics) external;
    function removeTrustedIssuer(address issuer) external;
    function isTrustedIssuer(address issuer, uint256 topic) external view returns (bool);
    /// Names are 1 to 31 bytes.
    function addClaimTopic(uint256 topic, string calldata name) external;
    function removeClaimTopic(uint256 topic) external;
    /// "" for an unknown topic.
    function claimTopicName(uint256 topic) external view returns (string memory);
}

/// zkDID: accepts a Groth16 proof (BN254) that a credential signed by a trusted Baby Jubjub
/// issuer, not revoked, states age >= N, a country outside a blocked list and KYC >= k, bound to
/// msg.sender with a per-scope nullifier, and records a claim on the sender's identity
/// (creating one with country 0, "undisclosed", if it has none).
interface IZkCredentialVerifier {
    event VerifyingKeySet(bytes32 indexed keyHash, bool insecureDev);
    event PolicySet(uint8 minAgeYears, uint8 minKycLevel, uint16[] requiredBlockedCountries, bytes32 requiredScope,
        uint32 maxDateLagDays, uint256 claimTopic, uint64 claimValiditySeconds);
    event ZkIssuerSet(bytes32 indexed issuerId, address controller, bytes32 revocationRoot);
    event ZkIssuerRemoved(bytes32 indexed issuerId);
    event RevocationRootUpdated(bytes32 indexed issuerId, bytes32 revocationRoot);
    event CredentialProofAccepted(uint64 indexed identity, address indexed wallet, bytes32 indexed nullifier,
        bytes32 issuerId, uint8 minAgeYears, uint8 minKycLevel);

    /// Administrator. A key flagged insecure (dev setup) is refused unless the chain allows it.
    function setVerifyingKey(bytes calldata key) external;
    function setPolicy(uint8 minAgeYears, uint8 minKycLevel, uint16[] calldata requiredBlockedCountries,
        bytes32 requiredScope, uint32 maxDateLagDays, uint256 claimTopic, uint64 claimValiditySeconds) external;
    /// `issuerKey` is the 64-byte Baby Jubjub public key (x || y, big-endian); its id is its keccak256.
    function setIssuer(bytes calldata issuerKey, address controller, bytes32 revocationRoot) external;
    function removeIssuer(bytes calldata issuerKey) external;
    /// The issuer's controller publishes its revocation root (revoking invalidates older proofs).
    function setRevocationRoot(bytes calldata issuerKey, bytes32 revocationRoot) external;

    function submit(bytes calldata statement, bytes calldata proof) external returns (uint64 identity);

    function verifyingKeyHash() external view returns (bytes32);
    function revocationRoot(bytes calldata issuerKey) external view returns (bool trusted, bytes32 root);
    function isNullifierUsed(bytes32 scope, bytes32 nullifier) external view returns (bool);
}

/// Regulated assets: a token registered here has its rules enforced by the protocol on every
/// Transfer event it emits, whichever contract path moves it; a denied transfer reverts with a
/// reason naming the rule. The owner (registrant) and its agents manage rules and act.
interface IAssetCompliance {
    event AssetIssuerSet(address indexed account, bool enabled);
    event AssetRegistered(address indexed token, address indexed owner, uint256 balancesSlot);
    event AssetDeregistered(address indexed token, address indexed by);
    event AssetOwnerSet(address indexed token, address indexed previousOwner, address indexed newOwner);
    event AssetAgentSet(address indexed token, address indexed agent, bool enabled);
    event RequiredClaimsSet(address indexed token, uint256[] topics);
    event CountryRuleSet(address indexed token, uint16 indexed country, bool allowed, bool blocked);
    event LimitsSet(address indexed token, uint32 maxHolders, uint256 maxBalance, uint256 dailyLimit);
    event LockupSet(address indexed token, address indexed investor, uint64 until);
    event AddressFrozen(address indexed token, address indexed investor, bool frozen, address indexed agent);
    event TokensFrozen(address indexed token, address indexed investor, uint256 amount, address indexed agent);
    event Paused(address indexed token, bool paused, address indexed agent);
    event ForcedTransfer(address indexed token, address indexed from, address indexed to, uint256 amount, address agent);
    event Recovered(address indexed token, address indexed lostWallet, address indexed newWallet, uint256 amount, address agent);

    /// Administrator: who may register assets.
    function setAssetIssuer(address account, bool enabled) external;
    /// Registers `token`; the caller becomes its owner. Allowed for the token itself, for the
    /// administrator, and for an asset issuer that deployed it (token == CREATE address of the
    /// caller at `deployNonce`). `balancesSlot` is the storage slot of its
    /// `mapping(address => uint256)` of balances (0 for OpenZeppelin ERC20). Register before
    /// minting: holders are counted from registration on.
    function registerAsset(address token, uint256 balancesSlot, uint64 deployNonce) external;
    /// The owner or the administrator: the protocol stops enforcing rules on `token`.
    function deregisterAsset(address token) external;
    /// The owner or the administrator hands the asset to a new owner.
    function setAssetOwner(address token, address newOwner) external;
    function setAgent(address token, address agent, bool enabled) external;

    function setRequiredClaims(address token, uint256[] calldata topics) external;
    /// An allow list, when it has any country, admits only those; a blocked country is refused.
    function setCountryRule(address token, uint16 country, bool allowed, bool blocked) external;
    /// 0 means no limit. The daily limit caps what one wallet sends per UTC day.
    function setLimits(address token, uint32 maxHolders, uint256 maxBalance, uint256 dailyLimit) external;
    /// `investor` 0 sets the lock-up of the whole token (no transfers before `until`; mints allowed).
    function setLockup(address token, address investor, uint64 until) external;

    function setAddressFrozen(address token, address investor, bool frozen) external;
    /// The part of the balance that may not leave the wallet.
    function setFrozenTokens(address token, address investor, uint256 amount) external;
    function setPaused(address token, bool paused) external;
    /// Moves tokens without the holder: recipient checks apply, freezes and limits do not.
    function forcedTransfer(address token, address from, address to, uint256 amount) external;
    /// Moves the whole balance, frozen amount and lock-up of a lost wallet to a wallet of the same
    /// identity (recover the identity's wallet in the identity registry first).
    function recover(address token, address lostWallet, address newWallet) external;

    function assetInfo(address token) external view returns (bool registered, address owner, bool paused,
        uint256 balancesSlot, uint32 holders);
    function limits(address token) external view returns (uint32 maxHolders, uint256 maxBalance, uint256 dailyLimit);
    function requiredClaims(address token) external view returns (uint256[] memory);
    function isFrozen(address token, address investor) external view returns (bool);
    function frozenTokens(address token, address investor) external view returns (uint256);
    /// Would a transfer be allowed now (ignoring balances)? "" if yes, otherwise the reason.
    function canTransfer(address token, address from, address to, uint256 amount) external view returns (string memory);
}

/// The native sanctions list: value transfers (native coin, any call depth) and regulated-asset
/// transfers from or to a listed address are refused.
interface ISanctionsList {
    event OfficerSet(address indexed officer, bool enabled);
    event Sanctioned(address indexed account, bool listed, address indexed officer);

    /// Administrator: who may list and delist.
    function setOfficer(address officer, bool enabled) external;
    function setSanctioned(address[] calldata accounts, bool listed) external;
    function isSanctioned(address account) external view returns (bool);
    function listedCount() external view returns (uint64);
}
