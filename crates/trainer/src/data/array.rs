//! `Array<T>`: an n-dimensional array in C (row-major) order, as read from NPY and IDX files.

#[derive(Debug, Clone, PartialEq)]
pub struct Array<T> {
    pub shape: Vec<usize>,
    /// `shape.iter().product()` elements, last dimension fastest.
    pub data: Vec<T>,
}
