//! `ApiError`: every failure as JSON `{"code", "message"}` with a stable code and
//! status; faults of the machine (`fault_status`) answered 503/507 with `Retry-After`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use linksnap_store::{Fault, StoreError};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// An API error: an HTTP status, a stable code, a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (faults that pass).
    pub retry_after: Option<u64>,
}

/// How a fault of the machine is answered over HTTP: its status, stable code and the
/// seconds after which trying again makes sense. Never 500: the request was fine.
pub fn fault_status(fault: Fault) -> (StatusCode, &'static str, u64) {
    match fault {
        Fault::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy", 2),
        Fault::DiskFull => (StatusCode::INSUFFICIENT_STORAGE, "disk_full", 60),
        Fault::ReadOnly => (StatusCode::SERVICE_UNAVAILABLE, "read_only", 60),
    }
}

/// Errors of the store and its account layer, which may stand for a fault of the machine.
pub trait MaybeFault: std::fmt::Display {
    /// The fault behind the error, when it is one.
    fn fault(&self) -> Option<Fault>;
}

impl MaybeFault for StoreError {
    fn fault(&self) -> Option<Fault> {
        StoreError::fault(self)
    }
}

impl MaybeFault for linksnap_store::UserError {
    fn fault(&self) -> Option<Fault> {
        match self {
            Self::Store(e) => e.fault(),
            _ => None,
        }
    }
}

impl MaybeFault for linksnap_store::TokenError {
    fn fault(&self) -> Option<Fault> {
        match self {
            Self::Store(e) => e.fault(),
            _ => None,
        }
    }
}

impl MaybeFault for linksnap_store::LibraryError {
    fn fault(&self) -> Option<Fault> {
        match self {
            Self::Store(e) => e.fault(),
            _ => None,
        }
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The answer to a fault of the machine (logged once here).
    pub fn fault(fault: Fault, cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "request not served: {}", fault.explain());
        let (status, code, retry) = fault_status(fault);
        Self {
            retry_after: Some(retry),
            ..Self::new(status, code, fault.explain())
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(json!({"code": self.code, "message": self.message})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.code == "insufficient_scope" {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"insufficient_scope\""),
            );
        }
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let Some(fault) = e.fault() {
            return Self::fault(fault, &e);
        }
        match &e {
            StoreError::NoLink(_) | StoreError::NoVersion { .. } | StoreError::NoTag(_) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            StoreError::TagExists(_) => Self::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            StoreError::OverLimit { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "too_large", e.to_string())
            }
            _ => {
                tracing::error!(error = %e, "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server failed; see its log",
                )
            }
        }
    }
}

/// An error: a stable code for programs, a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorJson {
    pub code: String,
    pub message: String,
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    body.map(|Json(b)| b).map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the body is larger than the server's body limit",
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the body is not the JSON expected: {}", e.body_text()),
            )
        }
    })
}
