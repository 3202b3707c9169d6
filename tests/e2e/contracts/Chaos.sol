// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// A child that can destroy itself (in its constructor, or later when asked).
contract Child {
    uint256 public value;

    constructor(bool destroyNow) payable {
        value = 1;
        if (destroyNow) {
            selfdestruct(payable(msg.sender));
        }
    }

    function destroy() external {
        selfdestruct(payable(msg.sender));
    }
}

interface IERC20Like {
    function transfer(address to, uint256 amount) external returns (bool);
}

/// Exercises what makes parallel execution hard: hot slots, nested calls, value flows, contract
/// creation and self-destruction, precompiles, reverts, running out of gas, and reading the
/// block's beneficiary. Used by the executor's property tests.
contract Chaos {
    uint256 public counter;
    mapping(uint256 => uint256) public cells;
    uint256 public lastCoinbaseBalance;
    uint256 public lastBalance;
    address public lastChild;

    event Bumped(uint256 indexed key, uint256 value);

    receive() external payable {}

    function increment() external {
        counter += 1;
    }

    function bump(uint256 key) external {
        cells[key] += 1;
        emit Bumped(key, cells[key]);
    }

    function forward(address payable to) external payable {
        (bool ok, ) = to.call{value: msg.value}("");
        require(ok, "forward failed");
    }

    function nested(address[] calldata targets) external {
        counter += 1;
        for (uint256 i = 0; i < targets.length; i++) {
            Chaos(payable(targets[i])).increment();
        }
    }

    function tryNested(address target) external {
        counter += 1;
        // The inner call may fail; its effects are rolled back, ours stay.
        (bool ok, ) = target.call(abi.encodeWithSignature("revertIf(bool)", true));
        if (!ok) {
            cells[0] += 1;
        }
    }

    function create(bytes32 salt, bool destroyNow) external payable {
        Child c = new Child{salt: salt, value: msg.value}(destroyNow);
        lastChild = address(c);
    }

    function createPlain() external {
        lastChild = address(new Child(false));
    }

    function destroyChild() external {
        Child(lastChild).destroy();
    }

    function precompiles(bytes calldata data) external {
        bytes32 h = sha256(data);
        address signer = ecrecover(h, 27, h, h);
        (bool ok, bytes memory copy) = address(4).staticcall(data);
        require(ok, "identity failed");
        cells[uint256(h) % 7] = uint256(uint160(signer)) + copy.length;
    }

    function revertIf(bool yes) external {
        counter += 1;
        require(!yes, "asked to revert");
    }

    function burn(uint256 rounds) external {
        uint256 x = counter;
        for (uint256 i = 0; i < rounds; i++) {
            x = uint256(keccak256(abi.encode(x, i)));
        }
        cells[rounds] = x;
    }

    function readCoinbase() external {
        lastCoinbaseBalance = block.coinbase.balance;
    }

    /// Reads another account's balance (a plain transfer earlier in the block may have credited it).
    function readBalance(address who) external {
        lastBalance = who.balance;
    }

    function payCoinbase() external payable {
        (bool ok, ) = block.coinbase.call{value: msg.value}("");
        require(ok, "coinbase refused");
    }

    function moveToken(address token, address to, uint256 amount) external {
        require(IERC20Like(token).transfer(to, amount), "token transfer failed");
    }
}
