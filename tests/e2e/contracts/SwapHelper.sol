// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

interface IPair {
    function getReserves() external view returns (uint112, uint112, uint32);
    function token0() external view returns (address);
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
}

interface ITokenFrom {
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// The minimal part of a Uniswap V2 router: pays the pair from the caller's allowance and swaps
/// exactly-in at the pair's current price (0.3% fee), in one transaction.
contract SwapHelper {
    function swapExactIn(address pair, address tokenIn, uint256 amountIn, uint256 minOut) external {
        (uint112 r0, uint112 r1, ) = IPair(pair).getReserves();
        bool zeroForOne = IPair(pair).token0() == tokenIn;
        (uint256 reserveIn, uint256 reserveOut) = zeroForOne ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
        uint256 inWithFee = amountIn * 997;
        uint256 out = (inWithFee * reserveOut) / (reserveIn * 1000 + inWithFee);
        require(out >= minOut, "slippage");
        require(ITokenFrom(tokenIn).transferFrom(msg.sender, pair, amountIn), "pay failed");
        (uint256 out0, uint256 out1) = zeroForOne ? (uint256(0), out) : (out, uint256(0));
        IPair(pair).swap(out0, out1, msg.sender, new bytes(0));
    }
}
