//! Buffer bookkeeping shared by both backends: ids for live buffers, views into them, and a free
//! list per size so a repeated workload reuses memory instead of allocating.

use std::collections::HashMap;

use crate::backend::{BufferId, DType, Stats, VIEW_ALIGN};
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
    pub store: Store<R>,
}

/// What an id stands for: storage of its own, or elements of another buffer's.
pub(crate) enum Store<R> {
    /// A buffer with its own storage, and how many views of it are live.
    Own { raw: R, views: u32 },
    /// Elements `offset..offset + len` of buffer `parent` (which has storage of its own).
    View { parent: BufferId, offset: usize },
}

/// Where an id's elements live: the buffer that owns the storage, and the first element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Place {
    pub root: BufferId,
    pub offset: usize,
}

impl<R> Pool<R> {
    pub fn new() -> Self {
        Pool { live: Vec::new(), free_ids: Vec::new(), free: HashMap::new(), stats: Stats::default() }
    }

    fn insert(&mut self, entry: Entry<R>) -> BufferId {
        self.stats.buffers_live += 1;
        match self.free_ids.pop() {
            Some(i) => {
                self.live[i as usize] = Some(entry);
                BufferId(i)
            }
            None => {
                self.live.push(Some(entry));
                BufferId(self.live.len() as u32 - 1)
            }
        }
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
        Ok(self.insert(Entry { dtype, len, store: Store::Own { raw, views: 0 } }))
    }

    /// A view of elements `offset..offset + len` of `parent` (see [`crate::Backend::view`]).
    pub fn view(&mut self, parent: BufferId, offset: usize, len: usize) -> Result<BufferId> {
        let e = self.get(parent)?;
        let dtype = e.dtype;
        let bad = |why: String| Err(Error::View { parent: parent.0, offset, len, why });
        if !matches!(e.store, Store::Own { .. }) {
            return bad("the parent is itself a view".into());
        }
        if len == 0 || offset.checked_add(len).is_none_or(|end| end > e.len) {
            return bad(format!("the parent holds {} elements", e.len));
        }
        if !(offset * dtype.size()).is_multiple_of(VIEW_ALIGN) {
            return bad(format!("the offset is not a multiple of {VIEW_ALIGN} bytes"));
        }
        if let Some(Entry { store: Store::Own { views, .. }, .. }) = self.live[parent.0 as usize].as_mut() {
            *views += 1;
        }
        Ok(self.insert(Entry { dtype, len, store: Store::View { parent, offset } }))
    }

    pub fn release(&mut self, id: BufferId) -> Result<()> {
        match &self.get(id)?.store {
            Store::Own { views, .. } if *views > 0 => {
                return Err(Error::View {
                    parent: id.0,
                    offset: 0,
                    len: 0,
                    why: format!("released while {views} views of it are live (release them first)"),
                })
            }
            _ => {}
        }
        let entry = self.live[id.0 as usize].take().expect("checked above");
        self.free_ids.push(id.0);
        self.stats.buffers_live -= 1;
        match entry.store {
            Store::Own { raw, .. } => self.free.entry((entry.dtype, entry.len)).or_default().push(raw),
            Store::View { parent, .. } => {
                if let Some(Entry { store: Store::Own { views, .. }, .. }) =
                    self.live[parent.0 as usize].as_mut()
                {
                    *views -= 1;
                }
            }
        }
        Ok(())
    }

    pub fn get(&self, id: BufferId) -> Result<&Entry<R>> {
        self.live.get(id.0 as usize).and_then(Option::as_ref).ok_or(Error::UnknownBuffer(id.0))
    }

    pub fn describe(&self, id: BufferId) -> Result<(DType, usize)> {
        self.get(id).map(|e| (e.dtype, e.len))
    }

    /// Where `id`'s elements live.
    pub fn place(&self, id: BufferId) -> Result<Place> {
        Ok(match self.get(id)?.store {
            Store::Own { .. } => Place { root: id, offset: 0 },
            Store::View { parent, offset } => Place { root: parent, offset },
        })
    }

    /// The storage `id`'s elements live in, and the first of them.
    pub fn storage(&self, id: BufferId) -> Result<(&R, usize)> {
        let place = self.place(id)?;
        match &self.get(place.root)?.store {
            Store::Own { raw, .. } => Ok((raw, place.offset)),
            Store::View { .. } => unreachable!("a view's parent owns its storage"),
        }
    }

    /// [`Pool::storage`], mutably.
    pub fn storage_mut(&mut self, id: BufferId) -> Result<(&mut R, usize)> {
        let place = self.place(id)?;
        match self.live[place.root.0 as usize].as_mut().map(|e| &mut e.store) {
            Some(Store::Own { raw, .. }) => Ok((raw, place.offset)),
            _ => unreachable!("a view's parent owns its storage"),
        }
    }
}
