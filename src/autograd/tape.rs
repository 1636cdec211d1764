//! The tape: an append-only list of the ops run while gradients are recorded.
//!
//! Ops are pushed in the order they execute, so every node's inputs were pushed before it.
//! Walking the list backwards therefore visits a node only after every node that used its
//! output: reverse order is a topological order, and no sort is needed.
//!
//! `backward` seeds the loss's gradient, walks the tape from the loss's node down to the first
//! node, calls each reached node's `Op::backward`, and adds the results into the inputs'
//! gradients (`+=`, because a tensor used twice receives two contributions: `b = a + a`).
//! It returns a fresh [`Gradients`] store, so calling it twice never double-counts, and it frees
//! the nodes it walked, like PyTorch without `retain_graph`. Gradients are first-order only:
//! backward runs with recording switched off.
//!
//! A graph that is built and then dropped without a backward (a metric computed outside
//! `no_grad`) must not stay on the tape forever. Each node holds a weak reference to its output,
//! and `sweep` frees every node whose output is gone and that no live later node consumes: one
//! pass in reverse order, the same order backward uses. It runs after each backward and when
//! the tape has grown by as many nodes as were live after the last sweep.

use super::grads::Gradients;
use super::node_ref::NodeRef;
use crate::error::{Error, Result};
use crate::profile::{self, Phase};
use crate::tensor::{GradMeta, Inner, Shape, Tensor, TensorId};
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// What the tape keeps of an op: its name and its backward. Every `Op` is one
/// (`op.rs`), so the tape needs nothing else from it.
pub(crate) trait Backward {
    fn name(&self) -> &'static str;
    fn backward(
        &self,
        saved: &[Tensor],
        grad_output: &Tensor,
        needs_grad: &[bool],
    ) -> Result<Vec<Option<Tensor>>>;
}

/// One input of a node, as seen by the backward walk.
struct Input {
    id: TensorId,
    shape: Shape,
    /// Leaf with requires_grad, or the output of another node.
    requires_grad: bool,
    node: Option<NodeRef>,
}

struct Node {
    op: Box<dyn Backward>,
    /// What the op's forward chose to keep for its backward, and nothing more.
    saved: Vec<Tensor>,
    inputs: SmallVec<[Input; 3]>,
    output: TensorId,
    /// Alive while the user still holds the output tensor (or a clone of it).
    output_alive: Weak<Inner>,
    retain_output_grad: bool,
}

struct Tape {
    /// Boxed, so that a freed slot (kept until the tape empties, since nodes are addressed by
    /// index) costs 8 bytes.
    nodes: Vec<Option<Box<Node>>>,
    epoch: u64,
    /// Sweep when the tape reaches this many entries.
    next_sweep: usize,
    /// Unique in the process: a node reference from another thread's tape is recognised as
    /// such instead of being read as an index into this one.
    id: u64,
}

impl Default for Tape {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Tape {
            nodes: Vec::new(),
            epoch: 0,
            next_sweep: 0,
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }
}

const MIN_SWEEP: usize = 1024;

thread_local! {
    static TAPE: RefCell<Tape> = RefCell::new(Tape::default());
    static RECORDING: Cell<bool> = const { Cell::new(true) };
    /// Backward walks in progress on this thread: an op's backward may run a forward and a
    /// backward of its own (reversible layers recompute), and no sweep may free the nodes the
    /// outer walk has still to visit.
    static WALKING: Cell<usize> = const { Cell::new(0) };
}

/// Whether ops run now are recorded (false inside `no_grad` and during backward).
pub fn is_recording() -> bool {
    RECORDING.with(|r| r.get())
}

/// Runs `f` without recording anything on the tape: inference, evaluation, optimizer steps.
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            RECORDING.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(RECORDING.with(|r| r.replace(false)));
    f()
}

/// Runs `f` recording again, inside `no_grad` or an op's backward (PyTorch's
/// `torch.enable_grad`): an op that recomputes part of its forward in its backward records
/// that part, differentiates it with its own `backward`, and hands the results on.
pub fn enable_grad<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            RECORDING.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(RECORDING.with(|r| r.replace(true)));
    f()
}

/// Number of live nodes on this thread's tape (tests check `no_grad` keeps it at 0).
pub fn tape_len() -> usize {
    TAPE.with(|t| t.borrow().nodes.iter().filter(|n| n.is_some()).count())
}

/// Drops every recorded node at once, including graphs whose tensors are still held.
pub fn clear_tape() {
    TAPE.with(|t| {
        let mut t = t.borrow_mut();
        t.nodes.clear();
        t.epoch += 1;
    });
}

/// Appends a node for `output = op(inputs)` and returns `output` marked as its result.
pub(crate) fn record(
    op: Box<dyn Backward>,
    inputs: &[&Tensor],
    saved: Vec<Tensor>,
    output: Tensor,
) -> Tensor {
    let inputs: SmallVec<[Input; 3]> = inputs
        .iter()
        .map(|t| Input {
            id: t.id(),
            shape: t.shape().clone(),
            requires_grad: t.requires_grad(),
            node: match t.grad_meta() {
                GradMeta::Node(r) => Some(*r),
                _ => None,
            },
        })
        .collect();
    let (index, epoch, tape) = TAPE.with(|t| {
        let t = t.borrow();
        (t.nodes.len(), t.epoch, t.id)
    });
    let output = output.with_grad_meta(GradMeta::Node(NodeRef { index, epoch, tape }));
    let node = Node {
        op,
        saved,
        inputs,
        output: output.id(),
        output_alive: Arc::downgrade(&output.0),
        retain_output_grad: false,
    };
    let due = TAPE.with(|t| {
        let mut t = t.borrow_mut();
        t.nodes.push(Some(Box::new(node)));
        t.nodes.len() >= t.next_sweep.max(MIN_SWEEP)
    });
    if due {
        sweep();
    }
    output
}

/// Frees the nodes no backward can reach any more (see the module comment), then empties the
/// tape if nothing is left on it.
fn sweep() {
    if WALKING.with(|w| w.get()) > 0 {
        return;
    }
    let n = TAPE.with(|t| t.borrow().nodes.len());
    // needed[i]: a live node later on the tape consumes node i's output.
    let mut needed = vec![false; n];
    for i in (0..n).rev() {
        let freed = TAPE.with(|t| {
            let mut t = t.borrow_mut();
            let (epoch, id) = (t.epoch, t.id);
            let node = t.nodes[i].as_ref()?;
            if node.output_alive.strong_count() == 0 && !needed[i] {
                return t.nodes[i].take();
            }
            for r in node.inputs.iter().filter_map(|inp| inp.node) {
                if r.tape == id && r.epoch == epoch && r.index < n {
                    needed[r.index] = true;
                }
            }
            None
        });
        // Dropped outside the borrow: its saved tensors may be the last holders of earlier
        // outputs, which then become free in this same pass.
        drop(freed);
    }
    TAPE.with(|t| {
        let mut t = t.borrow_mut();
        let live = t.nodes.iter().filter(|n| n.is_some()).count();
        if live == 0 {
            t.nodes.clear();
            t.epoch += 1;
        }
        // Next sweep after as many new nodes as are live now (at least MIN_SWEEP): garbage stays
        // bounded, and the sweep's cost is spread over the nodes recorded in between.
        t.next_sweep = t.nodes.len() + live.max(MIN_SWEEP);
    });
}

/// Asks `backward` to keep the gradient of the tensor produced by node `r`.
pub(crate) fn retain_output_grad(r: NodeRef) {
    TAPE.with(|t| {
        let mut t = t.borrow_mut();
        if r.tape == t.id && r.epoch == t.epoch {
            if let Some(Some(node)) = t.nodes.get_mut(r.index) {
                node.retain_output_grad = true;
            }
        }
    })
}

fn is_live(r: NodeRef) -> bool {
    TAPE.with(|t| {
        let t = t.borrow();
        r.tape == t.id && r.epoch == t.epoch && t.nodes.get(r.index).is_some_and(|n| n.is_some())
    })
}

/// Why node `r` cannot be walked: recorded on another thread's tape, or freed.
fn unreachable_error(r: NodeRef) -> Error {
    if TAPE.with(|t| t.borrow().id) != r.tape {
        return Error::Autograd(
            "this graph was recorded on another thread: the tape is per thread, so call \
             backward() on the thread that ran the forward pass, or detach() the tensor to use \
             it here as a constant"
                .into(),
        );
    }
    freed_error()
}

fn take_node(index: usize) -> Option<Box<Node>> {
    TAPE.with(|t| t.borrow_mut().nodes[index].take())
}

/// Reverse-mode differentiation of `root` with cotangent `seed` (same shape as `root`).
pub(crate) fn backward(root: &Tensor, seed: Tensor) -> Result<Gradients> {
    let mut grads = Gradients::default();
    if !root.requires_grad() {
        return Err(Error::Autograd(
            "the tensor does not require grad: no input of the computation was marked with \
             with_grad(), or it was computed inside no_grad"
                .into(),
        ));
    }
    if root.shape() != seed.shape() {
        return Err(Error::mismatch(
            "backward",
            root.shape(),
            seed.shape(),
            "the seed gradient must have the output's shape",
        ));
    }
    let start = match root.grad_meta() {
        GradMeta::Node(r) if is_live(*r) => r.index,
        GradMeta::Node(r) => return Err(unreachable_error(*r)),
        _ => {
            // A leaf differentiated with respect to itself.
            grads.accumulate(root.id(), seed)?;
            return Ok(grads);
        }
    };
    // Gradients of intermediate tensors still to be passed down, indexed by the node that
    // produced them: the walk reaches each node once, so no lookup by tensor id is needed.
    let mut pending: Vec<Option<Tensor>> = vec![None; start + 1];
    pending[start] = Some(seed);

    struct Walking;
    impl Drop for Walking {
        fn drop(&mut self) {
            WALKING.with(|w| w.set(w.get() - 1));
        }
    }
    let walking = Walking;
    WALKING.with(|w| w.set(w.get() + 1));
    // ANCHOR: backward_walk
    no_grad(|| -> Result<()> {
        for index in (0..=start).rev() {
            let Some(grad_out) = pending[index].take() else {
                continue; // not on a path from the root
            };
            let node = take_node(index).expect("a node reached by backward is live");
            if node.retain_output_grad {
                grads.accumulate(node.output, grad_out.clone())?;
            }
            let needs: SmallVec<[bool; 3]> = node.inputs.iter().map(|i| i.requires_grad).collect();
            let input_grads = profile::timed(node.op.name(), Phase::Backward, || {
                node.op.backward(&node.saved, &grad_out, &needs)
            })?;
            if input_grads.len() != node.inputs.len() {
                return Err(Error::Autograd(format!(
                    "{}: backward returned {} gradients for {} inputs",
                    node.op.name(),
                    input_grads.len(),
                    node.inputs.len()
                )));
            }
            for (input, g) in node.inputs.iter().zip(input_grads) {
                let Some(g) = g else { continue };
                if !input.requires_grad {
                    continue;
                }
                if g.shape() != &input.shape {
                    return Err(Error::Autograd(format!(
                        "{}: backward returned a gradient of shape {} for an input of shape {}",
                        node.op.name(),
                        g.shape(),
                        input.shape
                    )));
                }
                match input.node {
                    None => grads.accumulate(input.id, g)?,
                    Some(r) if is_live(r) => {
                        // A tensor used several times receives one contribution per use.
                        let slot = &mut pending[r.index];
                        *slot = Some(match slot.take() {
                            Some(prev) => prev.try_add(&g)?.detach(),
                            None => g.detach(),
                        });
                    }
                    Some(r) => return Err(unreachable_error(r)),
                }
            }
        }
        Ok(())
    })?;
    // ANCHOR_END: backward_walk
    drop(walking);
    sweep();
    Ok(grads)
}

fn freed_error() -> Error {
    Error::Autograd(
        "part of this graph was already freed by an earlier backward(); recompute the forward \
         pass, or detach() the tensor to use it as a constant"
            .into(),
    )
}
