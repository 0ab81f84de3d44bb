//! Shapes with a symbolic batch dimension, so one graph runs at any batch size without rebuilding.

use std::fmt;

/// One dimension: a fixed size, or `k` times the batch size (`Batch(1)` is the batch itself;
/// flattening `[B, 28, 28]` gives `[Batch(784)]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// `k` times the batch size.
    Batch(usize),
}

pub use Dim::{Batch, Fixed};

/// The batch dimension itself.
pub const B: Dim = Dim::Batch(1);

impl Dim {
    /// The size at batch size `batch`.
    pub fn resolve(self, batch: usize) -> usize {
        match self {
            Fixed(n) => n,
            Batch(k) => k * batch,
        }
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Dim {
        Fixed(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fixed(n) => write!(f, "{n}"),
            Batch(1) => write!(f, "B"),
            Batch(k) => write!(f, "{k}B"),
        }
    }
}

/// A row-major tensor shape. Rank 0 is a scalar (one element).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// A shape with no batch dimension.
    pub fn fixed(dims: &[usize]) -> Shape {
        Shape(dims.iter().map(|&d| Fixed(d)).collect())
    }

    /// `[B, rest...]`.
    pub fn batched(rest: &[usize]) -> Shape {
        let mut dims = vec![B];
        dims.extend(rest.iter().map(|&d| Fixed(d)));
        Shape(dims)
    }

    /// The scalar shape `[]` (rank 0, one element).
    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[Dim] {
        &self.0
    }

    /// The concrete dimensions at batch size `batch`.
    pub fn resolve(&self, batch: usize) -> Vec<usize> {
        self.0.iter().map(|d| d.resolve(batch)).collect()
    }

    /// Element count at batch size `batch`.
    pub fn numel(&self, batch: usize) -> usize {
        self.0.iter().map(|d| d.resolve(batch)).product()
    }

    /// The element count as `c * B^p`: `(c, p)`. Two shapes can be reshaped into each other
    /// exactly when these agree.
    pub fn symbolic_numel(&self) -> (usize, usize) {
        self.0.iter().fold((1, 0), |(c, p), d| match d {
            Fixed(n) => (c * n, p),
            Batch(k) => (c * k, p + 1),
        })
    }

    /// Whether any dimension depends on the batch size.
    pub fn has_batch(&self) -> bool {
        self.0.iter().any(|d| matches!(d, Batch(_)))
    }

    /// The same shape with `axis` set to 1 (what a reduction with `keep` gives).
    pub fn with_one(&self, axis: usize) -> Shape {
        let mut s = self.clone();
        s.0[axis] = Fixed(1);
        s
    }

    /// numpy broadcasting, with `Batch(k)` matching only itself or 1.
    pub fn broadcast(&self, other: &Shape) -> Option<Shape> {
        let rank = self.rank().max(other.rank());
        let pad = |s: &Shape| {
            let mut v = vec![Fixed(1); rank - s.rank()];
            v.extend_from_slice(&s.0);
            v
        };
        let (a, b) = (pad(self), pad(other));
        let dims = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| match (x, y) {
                _ if x == y => Some(x),
                (Fixed(1), y) => Some(y),
                (x, Fixed(1)) => Some(x),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Shape(dims))
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy_and_keeps_batch_symbolic() {
        let x = Shape::batched(&[3]);
        assert_eq!(x.broadcast(&Shape::fixed(&[3])), Some(Shape::batched(&[3])));
        assert_eq!(x.broadcast(&Shape::fixed(&[1, 1])), Some(Shape::batched(&[3])));
        assert_eq!(x.broadcast(&Shape::fixed(&[4])), None);
        assert_eq!(x.broadcast(&Shape::fixed(&[5, 3])), None);
        assert_eq!(x.to_string(), "[B, 3]");
        assert_eq!(Shape(vec![Batch(784)]).symbolic_numel(), Shape::batched(&[28, 28]).symbolic_numel());
    }
}
