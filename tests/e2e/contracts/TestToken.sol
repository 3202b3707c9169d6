// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// An OpenZeppelin ERC-20 with the whole supply minted to the deployer.
contract TestToken is ERC20 {
    constructor(uint256 supply) ERC20("Test Token", "TST") {
        _mint(msg.sender, supply);
    }
}

/// Reverts with reasons, for checking how they reach clients.
contract Reverter {
    error Custom(uint256 code);

    uint256 public counter;

    /// Not view, so clients send it as a transaction; always reverts.
    function failWithState() external {
        counter += 1;
        require(counter == 0, "reverter says no");
    }

    function failWithReason() external pure {
        require(false, "reverter says no");
    }

    function failWithCustom() external pure {
        revert Custom(42);
    }

    function failWithPanic() external pure returns (uint256) {
        uint256[] memory a = new uint256[](1);
        return a[2];
    }
}
