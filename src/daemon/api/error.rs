//! Errors as OpenAI's API shapes them — `{"error": {"message", "type", "param", "code"}}` —
//! so its client libraries raise them with the message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
    /// Asking again gives the same answer: clients are told not to retry (OpenAI's clients
    /// retry 409 and 5xx on their own, which would upload the file again).
    pub final_answer: bool,
}

impl ApiError {
    /// A field the client must change (400).
    pub fn invalid(param: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param),
            code: None,
            final_answer: false,
        }
    }

    /// A request the client must change, not tied to one field (400).
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: None,
            code: None,
            final_answer: false,
        }
    }

    pub fn status(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        let kind = if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        };
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: Some(code),
            final_answer: false,
        }
    }

    /// As `status`, for an outcome that will not change (a job that failed, was cancelled).
    pub fn final_status(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            final_answer: true,
            ..ApiError::status(status, code, message)
        }
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::status(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// The daemon's own trouble (the journal, a disk): 500 or 503, with the reason.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.final_answer {
            response.headers_mut().insert(
                "x-should-retry",
                axum::http::HeaderValue::from_static("false"),
            );
        }
        response
    }
}

impl From<crate::journal::JournalError> for ApiError {
    fn from(e: crate::journal::JournalError) -> ApiError {
        ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "journal_unavailable",
            e.to_string(),
        )
    }
}
