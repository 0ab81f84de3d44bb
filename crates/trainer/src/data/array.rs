//! `Array<T>`: an n-dimensional array in C (row-major) order, as read from NPY and IDX files.

/// An n-dimensional array in row-major order (what `read_npy_*` and `read_idx_*` return).
#[derive(Debug, Clone, PartialEq)]
pub struct Array<T> {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` elements, last dimension fastest.
    pub data: Vec<T>,
}
