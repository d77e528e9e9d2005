//! A sink that counts its own failures: every store error, whichever caller met it (a
//! worker's upload, the readiness check, recovery at start), is counted once, by org and
//! operation, in `sink_errors_total`.

use super::{ObjectInfo, PutRequest, Sink, SinkError, Stored, UploadJournal};
use crate::download::ByteStream;
use crate::metrics::OrgMetrics;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub struct Counted {
    inner: Arc<dyn Sink>,
    metrics: OrgMetrics,
}

impl Counted {
    pub fn new(inner: Arc<dyn Sink>, metrics: OrgMetrics) -> Self {
        Self { inner, metrics }
    }

    /// Counts a store failure; other errors (the source failed, shutdown, the key is
    /// taken) are not the sink's.
    fn count<T>(&self, result: Result<T, SinkError>) -> Result<T, SinkError> {
        if let Err(SinkError::Store { operation, .. }) = &result {
            self.metrics.sink_error(operation);
        }
        result
    }
}

impl Sink for Counted {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn prefix(&self) -> &str {
        self.inner.prefix()
    }

    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<ObjectInfo>, SinkError>> {
        Box::pin(async move { self.count(self.inner.head(key).await) })
    }

    fn put_stream<'a>(
        &'a self,
        request: PutRequest<'a>,
        body: ByteStream,
        journal: &'a dyn UploadJournal,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Stored, SinkError>> {
        Box::pin(async move { self.count(self.inner.put_stream(request, body, journal, cancel).await) })
    }

    fn put_bytes<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
        content_type: &'a str,
        owner: Option<&'a str>,
        locked_from: Option<chrono::DateTime<chrono::Utc>>,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move { self.count(self.inner.put_bytes(key, body, content_type, owner, locked_from).await) })
    }

    fn read_checksum<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(u64, String), SinkError>> {
        Box::pin(async move { self.count(self.inner.read_checksum(key).await) })
    }

    fn get_bytes<'a>(&'a self, key: &'a str, max: u64) -> BoxFuture<'a, Result<Option<Bytes>, SinkError>> {
        Box::pin(async move { self.count(self.inner.get_bytes(key, max).await) })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<(String, u64)>, SinkError>> {
        Box::pin(async move { self.count(self.inner.list(prefix).await) })
    }

    fn abort_upload<'a>(&'a self, key: &'a str, upload_id: &'a str) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move { self.count(self.inner.abort_upload(key, upload_id).await) })
    }

    fn check(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move { self.count(self.inner.check().await) })
    }

    fn ensure_locked<'a>(
        &'a self,
        key: &'a str,
        from: Option<chrono::DateTime<chrono::Utc>>,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move { self.count(self.inner.ensure_locked(key, from).await) })
    }

    fn check_bucket(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move { self.count(self.inner.check_bucket().await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::sink::file::FileSink;

    #[tokio::test]
    async fn store_failures_are_counted_by_org_and_operation_and_others_are_not() {
        let dir = std::env::temp_dir().join(format!("counted-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let metrics = Metrics::new();
        let sink = Counted::new(Arc::new(FileSink::open(&dir).unwrap()), metrics.org("acme"));
        // Reading back an object that is not there: a store failure.
        assert!(sink.read_checksum("missing/object").await.is_err());
        // Nothing there is not a failure.
        assert!(sink.head("missing/object").await.unwrap().is_none());
        let text = metrics.render(&[]);
        let failures: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("genesys_archiver_sink_errors_total{"))
            .collect();
        assert_eq!(failures.len(), 1, "{text}");
        assert!(
            failures[0].contains("org=\"acme\"") && failures[0].ends_with(" 1"),
            "{text}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
