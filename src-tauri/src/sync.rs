//! The one way this crate takes a `std::sync::Mutex`.
//!
//! The tray app runs all day: a panic on some task while it held a lock must not take the tray
//! and every later command down with it. The data behind these locks stays consistent on its own
//! (each is replaced whole, never left half-written), so a poisoned lock is simply taken over.

use std::sync::{Mutex, MutexGuard};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
