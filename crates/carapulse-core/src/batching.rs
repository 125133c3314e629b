//! The first step every group-commit writer shares (plans, approvals, standalone audit
//! appends): wait for one request, then take whatever else is already queued, without waiting,
//! up to a bound. Nothing waits to fill a batch, so a lone request commits at once and batches
//! grow only when requests really arrive together. (The one exception, `next_batch_lingering`,
//! is for work nobody waits on.)

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

/// Like [`next_batch`], but after the first request it waits up to `linger` for more (stopping
/// early at `max`): for work that does not hold anyone up, where fewer, larger batches are worth
/// a short delay. `None` once every sender is gone and the queue is drained.
pub(crate) async fn next_batch_lingering<T>(
    receiver: &mut mpsc::Receiver<T>,
    max: usize,
    linger: std::time::Duration,
) -> Option<Vec<T>> {
    let first = receiver.recv().await?;
    let mut batch = vec![first];
    let until = tokio::time::Instant::now() + linger;
    while batch.len() < max {
        match tokio::time::timeout_at(until, receiver.recv()).await {
            Ok(Some(next)) => batch.push(next),
            // The senders are gone (what is held goes now; the next call ends) or time is up.
            Ok(None) | Err(_) => break,
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

    #[tokio::test(start_paused = true)]
    async fn lingering_waits_for_more_up_to_the_bounds() {
        let (tx, mut rx) = mpsc::channel(16);
        let linger = std::time::Duration::from_millis(20);
        let sender = tx.clone();
        tokio::spawn(async move {
            sender.send(1).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            sender.send(2).await.unwrap();
            // Arrives after the linger: the next batch's.
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            sender.send(3).await.unwrap();
        });
        let started = tokio::time::Instant::now();
        assert_eq!(
            next_batch_lingering(&mut rx, 64, linger).await.unwrap(),
            vec![1, 2]
        );
        assert_eq!(started.elapsed(), linger, "held for the linger, no longer");
        assert_eq!(
            next_batch_lingering(&mut rx, 64, linger).await.unwrap(),
            vec![3]
        );
        // `max` ends the wait early.
        for i in 4..8 {
            tx.send(i).await.unwrap();
        }
        let started = tokio::time::Instant::now();
        assert_eq!(
            next_batch_lingering(&mut rx, 2, linger).await.unwrap(),
            vec![4, 5]
        );
        assert_eq!(started.elapsed(), std::time::Duration::ZERO);
        drop(tx);
        assert_eq!(
            next_batch_lingering(&mut rx, 64, linger).await.unwrap(),
            vec![6, 7]
        );
        assert_eq!(next_batch_lingering(&mut rx, 64, linger).await, None);
    }
}
