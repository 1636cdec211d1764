//! Where a recorded tensor's node sits on its thread's tape. A tensor that is the output of a
//! recorded op carries one; the tape (`tape.rs`) resolves it.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRef {
    pub(crate) index: usize,
    /// Bumped each time the tape is emptied, so old references are recognised as freed.
    pub(crate) epoch: u64,
    /// Which thread's tape recorded it: tapes are per thread, and an index means nothing on
    /// another thread's tape.
    pub(crate) tape: u64,
}
