//! The first step every group-commit writer shares (plans, approvals, standalone audit
//! appends): wait for one request, then take whatever else is already queued, without waiting,
//! up to a bound. Nothing waits to fill a batch, so a lone request commits at once and batches
//! grow only when requests really arrive together.

use tokio::sync::mpsc;

/// The next batch: the first request to arrive, then every request already queued while there
/// are fewer than `max` and `full` does not say the batch is big enough (a bound other than the
/// count, e.g. the steps of queued plans). `None` once every sender is gone.
pub(crate) async fn next_batch<T>(
    receiver: &mut mpsc::Receiver<T>,
    max: usize,
    full: impl Fn(&[T]) -> bool,
) -> Option<Vec<T>> {
    let first = receiver.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max && !full(&batch) {
        match receiver.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn takes_what_is_queued_up_to_the_bounds() {
        let (tx, mut rx) = mpsc::channel(16);
        for i in 0..10 {
            tx.send(i).await.unwrap();
        }
        assert_eq!(
            next_batch(&mut rx, 4, |_| false).await.unwrap(),
            vec![0, 1, 2, 3]
        );
        // `full` stops it early: once the sum reaches 9.
        assert_eq!(
            next_batch(&mut rx, 64, |b: &[i32]| b.iter().sum::<i32>() >= 9)
                .await
                .unwrap(),
            vec![4, 5]
        );
        assert_eq!(
            next_batch(&mut rx, 64, |_| false).await.unwrap(),
            vec![6, 7, 8, 9]
        );
        drop(tx);
        assert_eq!(next_batch(&mut rx, 64, |_| false).await, None);
    }
}
