//! The inquiry calls (`/v1/inquiries`, StackStorm's `st2api/controllers/v1/inquiries.py`)
//! and the execution lookups an inquiry needs (its start time, and the workflow above it).

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::client::St2Client;
use super::error::St2Error;
use crate::inquiry::{Inquiry, is_valid_id};
use crate::secret::Secret;

/// At most this many pending inquiries are listed.
pub const MAX_LISTED: usize = 20;

/// The parts of an execution document an inquiry needs.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct ExecutionLink {
    /// Execution id.
    #[serde(default)]
    pub id: String,
    /// Its status (`pending` for an inquiry awaiting an answer).
    #[serde(default)]
    pub status: Option<String>,
    /// ISO 8601 start time.
    #[serde(default)]
    pub start_timestamp: Option<String>,
    /// The parent execution's id (the workflow), if any.
    #[serde(default)]
    pub parent: Option<String>,
}

impl St2Client {
    fn checked_id(&self, id: &str) -> Result<(), St2Error> {
        if is_valid_id(id) {
            Ok(())
        } else {
            Err(St2Error::Protocol {
                url: self.spec().api_url.to_string(),
                reason: format!("`{}` is not an inquiry id", crate::dispatch::capped(id)),
            })
        }
    }

    /// `GET /v1/inquiries?limit=N`: the pending inquiries (at most [`MAX_LISTED`]).
    pub async fn inquiries(&self) -> Result<Vec<Inquiry>, St2Error> {
        self.call(
            "inquiries",
            Method::GET,
            format!("{}/v1/inquiries?limit={MAX_LISTED}", self.spec().api_url),
            None,
            None,
        )
        .await
    }

    /// `GET /v1/inquiries/<id>`: 400 when it timed out or was answered, 404 when unknown.
    pub async fn inquiry(&self, id: &str) -> Result<Inquiry, St2Error> {
        self.checked_id(id)?;
        self.call(
            "inquiry",
            Method::GET,
            format!("{}/v1/inquiries/{id}", self.spec().api_url),
            None,
            None,
        )
        .await
    }

    /// `PUT /v1/inquiries/<id>` `{"id", "response"}`, as `as_user` (a chat user's own
    /// token) or the service identity.
    pub async fn respond_inquiry(
        &self,
        id: &str,
        response: &Map<String, Value>,
        as_user: Option<&Secret>,
    ) -> Result<(), St2Error> {
        self.checked_id(id)?;
        let _: Value = self
            .call(
                "inquiry_respond",
                Method::PUT,
                format!("{}/v1/inquiries/{id}", self.spec().api_url),
                as_user,
                Some(json!({"id": id, "response": response})),
            )
            .await?;
        Ok(())
    }

    /// An execution's id, status, start time and parent
    /// (`GET /v1/executions/<id>?include_attributes=…`).
    pub async fn execution_link(&self, id: &str) -> Result<ExecutionLink, St2Error> {
        self.checked_id(id)?;
        self.call(
            "execution",
            Method::GET,
            format!(
                "{}/v1/executions/{id}?include_attributes=id,status,start_timestamp,parent",
                self.spec().api_url
            ),
            None,
            None,
        )
        .await
    }
}
