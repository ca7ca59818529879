//! The shared, atomically swappable reference to the current price book.

use std::sync::{Arc, RwLock};

use datafusion::common::Result;

use super::book::PriceBook;

/// Cheaply clonable handle to the current [`PriceBook`]. UDFs take one
/// [`snapshot`](Self::snapshot) per batch; [`replace`](Self::replace) swaps the book for
/// every later batch without blocking running ones.
#[derive(Debug, Clone)]
pub struct PriceBookHandle {
    inner: Arc<RwLock<Arc<PriceBook>>>,
}

impl PriceBookHandle {
    /// A handle holding `book`.
    pub fn new(book: PriceBook) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Arc::new(book))),
        }
    }

    /// A handle holding the bundled catalog.
    pub fn bundled() -> Result<Self> {
        Ok(Self::new(PriceBook::bundled()?))
    }

    /// The current book.
    pub fn snapshot(&self) -> Arc<PriceBook> {
        // A poisoned lock still holds a complete book (the swap is one pointer store).
        match self.inner.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Makes `book` the current book for every holder of this handle.
    pub fn replace(&self, book: PriceBook) {
        let book = Arc::new(book);
        match self.inner.write() {
            Ok(mut guard) => *guard = book,
            Err(poisoned) => *poisoned.into_inner() = book,
        }
    }

    /// Whether two handles share the same slot (used for UDF equality).
    pub fn same_slot(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Address of the shared slot (used for UDF hashing).
    pub fn slot_id(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }
}

impl From<PriceBook> for PriceBookHandle {
    fn from(book: PriceBook) -> Self {
        Self::new(book)
    }
}
