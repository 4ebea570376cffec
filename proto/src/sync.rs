//! Locking shared state that stays consistent between calls.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, also after a panic elsewhere poisoned it: the state guarded in lanreach
/// (code books, listener registries) is consistent between calls, and one failed task
/// must not lock every other connection out.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
