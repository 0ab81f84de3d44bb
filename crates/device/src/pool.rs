//! Buffer bookkeeping shared by both backends: ids for live buffers, and a free list per size so a
//! repeated workload reuses memory instead of allocating.

use std::collections::HashMap;

use crate::backend::{BufferId, DType, Stats};
use crate::error::{Error, Result};

pub(crate) struct Pool<R> {
    live: Vec<Option<Entry<R>>>,
    free_ids: Vec<u32>,
    free: HashMap<(DType, usize), Vec<R>>,
    pub(crate) stats: Stats,
}

pub(crate) struct Entry<R> {
    pub dtype: DType,
    pub len: usize,
    pub raw: R,
}

impl<R> Pool<R> {
    pub fn new() -> Self {
        Pool { live: Vec::new(), free_ids: Vec::new(), free: HashMap::new(), stats: Stats::default() }
    }

    /// Hands out a pooled buffer of this exact type and length, or one made by `create`.
    pub fn alloc(
        &mut self,
        dtype: DType,
        len: usize,
        create: impl FnOnce() -> Result<R>,
    ) -> Result<BufferId> {
        let raw = match self.free.get_mut(&(dtype, len)).and_then(Vec::pop) {
            Some(raw) => raw,
            None => {
                let raw = create()?;
                self.stats.buffers_created += 1;
                self.stats.bytes_held += dtype.bytes(len);
                raw
            }
        };
        let entry = Some(Entry { dtype, len, raw });
        self.stats.buffers_live += 1;
        Ok(match self.free_ids.pop() {
            Some(i) => {
                self.live[i as usize] = entry;
                BufferId(i)
            }
            None => {
                self.live.push(entry);
                BufferId(self.live.len() as u32 - 1)
            }
        })
    }

    pub fn release(&mut self, id: BufferId) -> Result<()> {
        let entry =
            self.live.get_mut(id.0 as usize).and_then(Option::take).ok_or(Error::UnknownBuffer(id.0))?;
        self.free_ids.push(id.0);
        self.stats.buffers_live -= 1;
        self.free.entry((entry.dtype, entry.len)).or_default().push(entry.raw);
        Ok(())
    }

    pub fn get(&self, id: BufferId) -> Result<&Entry<R>> {
        self.live.get(id.0 as usize).and_then(Option::as_ref).ok_or(Error::UnknownBuffer(id.0))
    }

    pub fn get_mut(&mut self, id: BufferId) -> Result<&mut Entry<R>> {
        self.live.get_mut(id.0 as usize).and_then(Option::as_mut).ok_or(Error::UnknownBuffer(id.0))
    }

    pub fn describe(&self, id: BufferId) -> Result<(DType, usize)> {
        self.get(id).map(|e| (e.dtype, e.len))
    }
}
