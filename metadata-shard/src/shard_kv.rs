//! Adapts a Raft group's committed state ([`GroupView`]) to the data model's
//! key-value traits. The model reads through the view and hands its writes
//! over only when a command succeeds; they are collected here and committed
//! by the state machine in one batch with the applied log id.

use crate::command::Writes;
use crate::model::kv::{KvError, KvPairs, KvRead, KvWrite};
use crate::raft::state_machine::GroupView;

pub struct GroupKv<'a, 'v> {
    view: &'a GroupView<'v>,
    pub writes: Writes,
}

impl<'a, 'v> GroupKv<'a, 'v> {
    pub fn new(view: &'a GroupView<'v>) -> Self {
        Self { view, writes: Vec::new() }
    }
}

fn backend(e: rocksdb::Error) -> KvError {
    KvError::Backend(e.to_string())
}

impl KvRead for GroupKv<'_, '_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.view.get(key).map_err(backend)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<KvPairs, KvError> {
        self.view.scan(start, end, limit).map_err(backend)
    }
}

impl KvWrite for GroupKv<'_, '_> {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.writes.push((key.to_vec(), Some(value.to_vec())));
    }

    fn delete(&mut self, key: &[u8]) {
        self.writes.push((key.to_vec(), None));
    }
}

impl KvRead for GroupView<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        GroupView::get(self, key).map_err(backend)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<KvPairs, KvError> {
        GroupView::scan(self, start, end, limit).map_err(backend)
    }
}
