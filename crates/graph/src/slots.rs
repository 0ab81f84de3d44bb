//! Activation slots: which buffer each per-step tensor lives in. A tensor lives from the step
//! that writes it to its last reader (inclusive: a step never writes a buffer it reads); tensors
//! whose lifetimes do not overlap may share a slot of their type. Tensors are placed largest
//! first, each in the smallest slot it fits without overlapping the tensors already there, else
//! in a new slot sized for it ("greedy by size"): a slot never grows, and the slots add up to
//! little more than the most bytes alive at once, however the schedule interleaves tensors of
//! different sizes (as a backward with recomputed segments does).

use std::collections::BTreeMap;

use kiln_device::DType;

/// One tensor to place: its type, element count, and the positions (in the schedule) of the step
/// that writes it and of its last reader.
pub(crate) struct Lifetime {
    pub dtype: DType,
    pub len: usize,
    pub first: usize,
    pub last: usize,
}

/// The slot of each tensor (in `tensors` order) and each slot's type and length.
pub(crate) fn assign(tensors: &[Lifetime]) -> (Vec<usize>, Vec<(DType, usize)>) {
    let mut by_size: Vec<usize> = (0..tensors.len()).collect();
    by_size.sort_by_key(|&t| (std::cmp::Reverse(tensors[t].len), tensors[t].first));
    let mut slots: Vec<(DType, usize)> = Vec::new();
    // per slot, the lifetimes it holds: first -> last, disjoint
    let mut held: Vec<BTreeMap<usize, usize>> = Vec::new();
    let mut slot_of = vec![0; tensors.len()];
    for t in by_size {
        let x = &tensors[t];
        let free = |s: usize| {
            slots[s].0 == x.dtype
                && held[s].range(..=x.last).next_back().is_none_or(|(_, &end)| end < x.first)
        };
        // every slot is at least as large as x (placed largest first): take the tightest
        let slot = match (0..slots.len()).filter(|&s| free(s)).min_by_key(|&s| (slots[s].1, s)) {
            Some(s) => s,
            None => {
                slots.push((x.dtype, x.len));
                held.push(BTreeMap::new());
                slots.len() - 1
            }
        };
        held[slot].insert(x.first, x.last);
        slot_of[t] = slot;
    }
    (slot_of, slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(len: usize, first: usize, last: usize) -> Lifetime {
        Lifetime { dtype: DType::F32, len, first, last }
    }

    #[test]
    fn tensors_share_a_slot_only_when_their_lifetimes_are_apart() {
        // 0 and 1 overlap at step 3 (1 is written while 0 is still read): two slots; 2 follows 1
        // and fits in 0's slot; the u32 tensor gets a slot of its own type.
        let ts =
            [t(10, 0, 3), t(7, 3, 5), t(4, 6, 8), Lifetime { dtype: DType::U32, len: 3, first: 9, last: 9 }];
        let (slot_of, slots) = assign(&ts);
        assert_ne!(slot_of[0], slot_of[1]);
        assert_eq!(slots[slot_of[0]], (DType::F32, 10));
        assert_eq!(slots[slot_of[1]], (DType::F32, 7));
        // the tightest free slot: 1's (7), not 0's (10)
        assert_eq!(slot_of[2], slot_of[1]);
        assert_eq!(slots[slot_of[3]], (DType::U32, 3));
        assert_eq!(slots.len(), 3);
    }

    #[test]
    fn slots_add_up_to_the_peak_for_alternating_sizes() {
        // small tensors first, then a large one, repeatedly: slots must not grow to large * n
        let mut ts = Vec::new();
        for k in 0..5 {
            ts.push(t(3, 10 * k, 10 * k + 6));
            ts.push(t(50, 10 * k + 5, 10 * k + 9));
        }
        let (_, slots) = assign(&ts);
        assert_eq!(slots.iter().map(|s| s.1).sum::<usize>(), 50 + 3);
    }
}
