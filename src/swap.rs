//! A shared value swapped atomically: the in-memory indexes the FinOps functions read
//! (attribution rules, price adjustments) are rebuilt after each change of their table and
//! swapped in; a batch keeps the snapshot it started with.

use std::sync::{Arc, RwLock};

/// Cheaply clonable handle to the current `T`.
#[derive(Debug)]
pub struct Swap<T> {
    inner: Arc<RwLock<Arc<T>>>,
}

impl<T> Clone for Swap<T> {
    fn clone(&self) -> Self {
        Swap {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Default> Default for Swap<T> {
    fn default() -> Self {
        Swap {
            inner: Arc::new(RwLock::new(Arc::new(T::default()))),
        }
    }
}

impl<T> Swap<T> {
    /// The current value.
    pub fn snapshot(&self) -> Arc<T> {
        // A poisoned lock still holds a whole value (the swap is one pointer store).
        match self.inner.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Make `value` current for every later reader.
    pub fn replace(&self, value: T) {
        let value = Arc::new(value);
        match self.inner.write() {
            Ok(mut guard) => *guard = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }

    /// Whether two handles share one slot (for UDF equality).
    pub fn same_slot(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Address of the shared slot (for UDF hashing).
    pub fn slot_id(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }
}
