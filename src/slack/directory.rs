//! The core's [`Directory`] port on Slack: `users.info` says who a user id
//! is, `users.lookupByEmail` which user has an email, `usergroups.users.list`
//! who is in a user group.

use async_trait::async_trait;
use serde_json::Value;

use super::client::{ApiError, SlackClient};
use crate::workflow::ports::{Directory, DirectoryError, Identity};

#[derive(Clone)]
pub struct SlackDirectory {
    client: SlackClient,
}

impl SlackDirectory {
    pub fn new(client: SlackClient) -> SlackDirectory {
        SlackDirectory { client }
    }
}

fn directory_error(e: ApiError) -> DirectoryError {
    match e {
        ApiError::Transient { error, .. } => DirectoryError::Transient(error),
        ApiError::Permanent(error) => DirectoryError::Permanent(error),
    }
}

fn name_of(user: &Value) -> Option<String> {
    user["real_name"].as_str().or(user["name"].as_str()).map(str::to_string)
}

#[async_trait]
impl Directory for SlackDirectory {
    async fn user(&self, user_id: &str) -> Result<Identity, DirectoryError> {
        let res = self.client.call_form("users.info", &[("user", user_id)]).await.map_err(directory_error)?;
        let user = &res["user"];
        Ok(Identity {
            user_id: user_id.to_string(),
            email: user["profile"]["email"].as_str().map(str::to_ascii_lowercase),
            name: name_of(user),
            dm_channel: None,
            resolved: true,
            okta_id: None,
        })
    }

    async fn by_email(&self, email: &str) -> Result<Option<Identity>, DirectoryError> {
        let res = match self.client.call_form("users.lookupByEmail", &[("email", email)]).await {
            Err(ApiError::Permanent(e)) if e.contains("users_not_found") => return Ok(None),
            other => other.map_err(directory_error)?,
        };
        let user = &res["user"];
        let id =
            user["id"].as_str().ok_or_else(|| DirectoryError::Permanent("users.lookupByEmail: no user id".into()))?;
        Ok(Some(Identity {
            user_id: id.to_string(),
            email: Some(email.to_ascii_lowercase()),
            name: name_of(user),
            dm_channel: None,
            resolved: true,
            okta_id: None,
        }))
    }

    async fn usergroup_members(&self, usergroup: &str) -> Result<Vec<String>, DirectoryError> {
        let res = self
            .client
            .call_form("usergroups.users.list", &[("usergroup", usergroup)])
            .await
            .map_err(directory_error)?;
        // An answer without the list is not an empty group: the caller keeps the members it knew.
        let users = res["users"]
            .as_array()
            .ok_or_else(|| DirectoryError::Permanent("usergroups.users.list: no users in the answer".into()))?;
        users
            .iter()
            .map(|u| {
                u.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| DirectoryError::Permanent("usergroups.users.list: a user id is not a string".into()))
            })
            .collect()
    }
}
