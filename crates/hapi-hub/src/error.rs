//! API errors: one type, one JSON shape (`{"error":{"code","message"}}`), stable codes.
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hapi_protocol::{ErrorBody, ErrorCode, ErrorResponse};
use hapi_store::StoreError;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, message)
    }
}

impl ApiError {
    /// The wire form of this error (for embedding in another answer).
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code,
            message: self.message.clone(),
        }
    }

    /// A runner's refusal as an answer: directory problems are the request's
    /// fault (422), anything else is the runner's (502).
    pub fn from_runner(e: ErrorBody) -> Self {
        let status = match e.code {
            ErrorCode::DirectoryMissing
            | ErrorCode::DirectoryOutsideRoots
            | ErrorCode::DirectoryUnusable
            | ErrorCode::WorktreeFailed => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, e.code, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ErrorBody {
                code: self.code,
                message: self.message,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::AlreadyDecided(state) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::AlreadyDecided,
                format!("approval is already {state}; the first decision stands"),
            ),
            StoreError::SessionEnded => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::SessionEnded,
                "session has ended and takes no more prompts",
            ),
            StoreError::BudgetReached(reason) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::BudgetReached,
                format!("{reason}; raise or clear the session's budget, or stop the session"),
            ),
            full if full.is_disk_full() => {
                tracing::error!(error = %full, "store failure: the disk is full");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    ErrorCode::DiskFull,
                    "the disk holding the hub's database ($HAPI_HOME) is full: nothing of this request was \
                     stored, and everything stored before it is intact. Free some space, then retry \
                     (`hapi doctor` shows the free space)",
                )
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::internal(other.to_string())
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge, r.body_text());
        }
        ApiError::invalid(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::invalid(r.body_text())
    }
}

/// JSON body extractor whose rejections use the API error shape.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Query extractor whose rejections use the API error shape.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);
