//! Happy eyeballs for the control channel (RFC 8305, for QUIC handshakes): one attempt
//! per address of the agent, most likely reached first, each started
//! [`RACE_STAGGER`](lanreach_proto::defaults::RACE_STAGGER) after the one before or at
//! once when one fails. The first attempt that completes and is accepted (the expected
//! key) wins; every other is handed to `discard` as it completes, before anything was
//! sent on it, so the agent counts no pairing attempt for it.
//!
//! The rule is generic over what an attempt yields, so that tests run it on tokio's
//! paused clock without sockets; `connect` dials QUIC with it.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

/// An attempt that did not win, and why.
#[derive(Debug)]
pub struct Lost<E> {
    /// The index of its address.
    pub index: usize,
    /// Why it lost.
    pub error: E,
}

/// The winning attempt.
#[derive(Debug)]
pub struct Won<T, E> {
    /// The index of its address.
    pub index: usize,
    /// What it yielded.
    pub value: T,
    /// The attempts that failed or were refused before it won.
    pub lost: Vec<Lost<E>>,
}

/// Races `count` attempts made by `dial(index)`. `accept` decides whether a completed
/// attempt may win (a refused one is discarded and counts as lost); `discard` closes
/// attempts that completed but did not win, also those that complete after the race
/// (in a task of their own). Without a winner, every attempt's error, in the order they
/// failed. Cancelling the race drops the attempts still under way.
pub async fn race<T, E, F>(
    count: usize,
    stagger: Duration,
    mut dial: impl FnMut(usize) -> F,
    accept: impl Fn(usize, &T) -> Result<(), E>,
    discard: impl Fn(T) + Send + 'static,
) -> Result<Won<T, E>, Vec<Lost<E>>>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let mut attempts: JoinSet<(usize, Result<T, E>)> = JoinSet::new();
    let mut lost = Vec::new();
    let mut next = 0;
    let mut start_at = Instant::now();
    loop {
        if next >= count && attempts.is_empty() {
            return Err(lost);
        }
        tokio::select! {
            biased;
            Some(joined) = attempts.join_next(), if !attempts.is_empty() => {
                // An attempt cannot panic; a task that did is nothing to use.
                let Ok((index, result)) = joined else { continue };
                let refused = match result {
                    Ok(value) => match accept(index, &value) {
                        Ok(()) => {
                            // Late finishers are closed as they complete.
                            tokio::spawn(async move {
                                while let Some(joined) = attempts.join_next().await {
                                    if let Ok((_, Ok(late))) = joined {
                                        discard(late);
                                    }
                                }
                            });
                            return Ok(Won { index, value, lost });
                        }
                        Err(error) => {
                            discard(value);
                            error
                        }
                    },
                    Err(error) => error,
                };
                lost.push(Lost { index, error: refused });
                // The next address need not wait for the stagger.
                start_at = Instant::now();
            }
            _ = sleep_until(start_at), if next < count => {
                let index = next;
                let attempt = dial(index);
                attempts.spawn(async move { (index, attempt.await) });
                next += 1;
                start_at = Instant::now() + stagger;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const STAGGER: Duration = Duration::from_millis(250);

    /// An attempt that answers after `after` with `Ok(index)` or fails.
    #[derive(Clone, Copy)]
    enum Path {
        Answers(u64),
        Fails(u64),
        Silent,
    }

    struct Outcome {
        won: Result<(usize, Vec<usize>), Vec<usize>>,
        started: Vec<(usize, u128)>,
        discarded: Vec<usize>,
    }

    async fn run(paths: &[Path], accept_only: Option<usize>) -> Outcome {
        let began = Instant::now();
        let started = Arc::new(Mutex::new(Vec::new()));
        let discarded = Arc::new(Mutex::new(Vec::new()));
        let log = started.clone();
        let paths = paths.to_vec();
        let dropped = discarded.clone();
        let result = race(
            paths.len(),
            STAGGER,
            |i| {
                log.lock().expect("lock").push((i, began.elapsed().as_millis()));
                let path = paths[i];
                async move {
                    match path {
                        Path::Answers(ms) => {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            Ok(i)
                        }
                        Path::Fails(ms) => {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            Err(i)
                        }
                        Path::Silent => std::future::pending().await,
                    }
                }
            },
            |_, v: &usize| if accept_only.is_none_or(|a| a == *v) { Ok(()) } else { Err(*v) },
            move |v| dropped.lock().expect("lock").push(v),
        )
        .await;
        // Let late finishers complete and be discarded.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let won = match result {
            Ok(w) => Ok((w.index, w.lost.iter().map(|l| l.index).collect())),
            Err(lost) => Err(lost.iter().map(|l| l.index).collect()),
        };
        let started = started.lock().expect("lock").clone();
        let discarded = discarded.lock().expect("lock").clone();
        Outcome { won, started, discarded }
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_address_that_answers_within_the_stagger_is_the_only_attempt() {
        let out = run(&[Path::Answers(5), Path::Answers(5)], None).await;
        assert_eq!(out.won, Ok((0, vec![])));
        assert_eq!(out.started, [(0, 0)], "the second address was never dialled");
        assert!(out.discarded.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_first_address_costs_one_stagger() {
        let out = run(&[Path::Silent, Path::Answers(5)], None).await;
        assert_eq!(out.won, Ok((1, vec![])));
        assert_eq!(out.started, [(0, 0), (1, 250)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_starts_the_next_address_at_once() {
        let out = run(&[Path::Fails(10), Path::Answers(5)], None).await;
        assert_eq!(out.won, Ok((1, vec![0])));
        assert_eq!(out.started, [(0, 0), (1, 10)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_first_address_that_completes_after_the_winner_is_discarded() {
        // The first answers after 1 s (a lost Initial), the second wins at 255 ms.
        let out = run(&[Path::Answers(1000), Path::Answers(5)], None).await;
        assert_eq!(out.won, Ok((1, vec![])));
        assert_eq!(out.discarded, [0], "the loser is closed when it completes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_attempt_is_discarded_and_the_race_goes_on() {
        // Address 0 answers with another agent's key.
        let out = run(&[Path::Answers(5), Path::Answers(5)], Some(1)).await;
        assert_eq!(out.won, Ok((1, vec![0])));
        assert_eq!(out.discarded, [0]);
        assert_eq!(out.started, [(0, 0), (1, 5)]);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_winner_every_error_is_returned() {
        let out = run(&[Path::Fails(1), Path::Fails(1), Path::Fails(1)], None).await;
        assert_eq!(out.won, Err(vec![0, 1, 2]));
        assert!(run(&[], None).await.won.is_err());
    }
}
