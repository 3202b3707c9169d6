//! Errors: the crate's own, and the JSON-RPC error objects methods answer with.

use std::net::SocketAddr;

use alloy_primitives::Bytes;
use jsonrpsee::types::ErrorObjectOwned;
use pharos_evm::decode_revert_reason;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// Listening failed.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, String),
    /// A method was registered twice (a bug).
    #[error("registering RPC methods: {0}")]
    Register(#[from] jsonrpsee::core::RegisterMethodError),
}

/// Result of an RPC method.
pub type RpcResult<T> = Result<T, ErrorObjectOwned>;

/// geth's code for transaction and state errors.
pub const SERVER_ERROR: i32 = -32000;
/// Invalid method parameters.
pub const INVALID_PARAMS: i32 = -32602;
/// Internal error.
pub const INTERNAL_ERROR: i32 = -32603;
/// A request exceeded a configured limit.
pub const LIMIT_EXCEEDED: i32 = -32005;
/// geth's code for a reverted call, with the revert data.
pub const EXECUTION_REVERTED: i32 = 3;

/// `-32000` with `message`.
pub fn server_error(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(SERVER_ERROR, message.into(), None::<()>)
}

/// `-32602` with `message`.
pub fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INVALID_PARAMS, message.into(), None::<()>)
}

/// `-32603` with `message`.
pub fn internal(message: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INTERNAL_ERROR, message.to_string(), None::<()>)
}

/// `-32005` with `message`.
pub fn limit_exceeded(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(LIMIT_EXCEEDED, message.into(), None::<()>)
}

/// A revert, as geth reports it: code 3, `execution reverted: <reason>`, the raw data in `data`.
pub fn reverted(output: &Bytes) -> ErrorObjectOwned {
    let message = match decode_revert_reason(output) {
        Some(reason) => format!("execution reverted: {reason}"),
        None => "execution reverted".to_string(),
    };
    ErrorObjectOwned::owned(EXECUTION_REVERTED, message, Some(output.clone()))
}

/// "header not found", geth's answer for an unknown block.
pub fn header_not_found() -> ErrorObjectOwned {
    server_error("header not found")
}

/// Storage failures become internal errors.
pub fn storage(e: pharos_storage::StoreError) -> ErrorObjectOwned {
    tracing::error!(error = %e, "storage error while serving RPC");
    internal(e)
}
