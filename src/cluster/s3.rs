//! The cluster's store on S3: the only user of `aws-sdk-s3`. Credentials, region and endpoint come
//! from the SDK's standard chains (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`); with an endpoint
//! set (LocalStack, MinIO) addressing is path-style. The SDK does not retry: the member loop
//! does, and must know when each attempt was sent.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};

use super::records::Location;
use super::store::{Condition, Listed, Object, Put, Store, StoreError};

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    location: Location,
}

impl S3Store {
    pub async fn from_env(location: Location) -> S3Store {
        // An answer later than this is useless anyway: the lease it renews would not be trusted.
        let timeouts =
            TimeoutConfig::builder().connect_timeout(Duration::from_secs(3)).operation_attempt_timeout(Duration::from_secs(10)).build();
        let config =
            aws_config::defaults(BehaviorVersion::latest()).retry_config(RetryConfig::disabled()).timeout_config(timeouts).load().await;
        let custom_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].iter().any(|name| std::env::var_os(name).is_some());
        let s3_config = aws_sdk_s3::config::Builder::from(&config).force_path_style(custom_endpoint).build();
        S3Store { client: Client::from_conf(s3_config), location }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.location.prefix)
    }
}

fn failed<E: std::error::Error + 'static, R: std::fmt::Debug>(what: &str, error: SdkError<E, R>) -> StoreError {
    StoreError(format!("S3 {what}: {}", DisplayErrorContext(&error)))
}

/// 412 Precondition Failed, or 409 when a concurrent conditional write is in flight.
fn condition_lost<E>(error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    error.raw_response().is_some_and(|response| matches!(response.status().as_u16(), 409 | 412))
}

impl Store for S3Store {
    async fn put(&self, key: &str, body: Vec<u8>, condition: Condition) -> Result<Put, StoreError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.location.bucket)
            .key(self.key(key))
            .content_type("application/json")
            .body(ByteStream::from(body));
        request = match condition {
            Condition::None => request,
            Condition::Absent => request.if_none_match("*"),
            Condition::Matches(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(output) => Ok(Put::Written(output.e_tag().unwrap_or_default().to_string())),
            Err(error) if condition_lost(&error) => Ok(Put::Lost),
            Err(error) => Err(failed("PutObject", error)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        match self.client.get_object().bucket(&self.location.bucket).key(self.key(key)).send().await {
            Ok(output) => {
                let etag = output.e_tag().unwrap_or_default().to_string();
                let body = output.body.collect().await.map_err(|error| StoreError(format!("S3 GetObject body: {error}")))?;
                Ok(Some(Object { etag, body: body.into_bytes().to_vec() }))
            }
            Err(error) if error.as_service_error().is_some_and(|service| service.is_no_such_key()) => Ok(None),
            Err(error) => Err(failed("GetObject", error)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let full_prefix = self.key(prefix);
        let mut listed = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.location.bucket).prefix(&full_prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| failed("ListObjectsV2", error))?;
            for object in page.contents() {
                let (Some(key), Some(modified)) = (object.key(), object.last_modified()) else { continue };
                let Some(key) = key.strip_prefix(&self.location.prefix) else { continue };
                let last_modified = DateTime::<Utc>::from_timestamp(modified.secs(), modified.subsec_nanos()).unwrap_or_default();
                listed.push(Listed { key: key.to_string(), etag: object.e_tag().unwrap_or_default().to_string(), last_modified });
            }
        }
        Ok(listed)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.location.bucket)
            .key(self.key(key))
            .send()
            .await
            .map_err(|error| failed("DeleteObject", error))?;
        Ok(())
    }
}
