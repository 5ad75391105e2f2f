//! Operator chaining: the tasks of a chain (see [`PhysicalPlan::chains`]) run on one thread,
//! each operator handing its output batches to the next by a call instead of a channel.
//!
//! A chained operator is still a task of its own: it keeps its uid, its counters, its
//! snapshot context (so it acknowledges checkpoints and writes snapshots under its own uid and
//! index, exactly as it would unchained) and its injected faults. Only the thread and the
//! channel are gone, which is why a checkpoint taken with chaining restores without it and
//! the reverse.
//!
//! [`PhysicalPlan::chains`]: crate::runtime::physical::PhysicalPlan::chains

use crate::error::TaskError;
use crate::operator::TaskInfo;
use crate::runtime::chained::ChainCursor;
use crate::runtime::factory::{AnyEnd, NodeFactory, TaskWiring};
use crate::runtime::task::{Task, TaskEnv};
use std::collections::HashMap;
use std::sync::Arc;

/// The placeholder `connect` puts among a task's output ends for a chained edge: the task at
/// this plan position, built on the chain's thread as the edge's far end.
pub(crate) struct ChainedTo(pub usize);

/// One task of a chain before its thread builds it.
pub(crate) struct ChainMember {
    pub factory: Arc<dyn NodeFactory>,
    pub info: TaskInfo,
    pub wiring: TaskWiring,
    pub env: TaskEnv,
    /// Its place in the chain: 0 for the head.
    pub member: usize,
}

/// Builds the chain headed by `head` (a plan position) from its members, keyed by plan
/// position: the members after the head first, as the far ends of the head's chained edges.
///
/// # Errors
/// A member's operator failed to restore or open.
pub(crate) fn build(
    head: usize,
    mut members: HashMap<usize, ChainMember>,
    cursor: &ChainCursor,
) -> Result<Box<dyn Task>, TaskError> {
    let mut member = members
        .remove(&head)
        .expect("a chain has its head (engine bug otherwise)");
    member.wiring.outputs = resolve(member.wiring.outputs, &mut members, cursor)?;
    member
        .factory
        .create_task(member.info, member.wiring, member.env)
}

/// Replaces each [`ChainedTo`] placeholder among `outputs` with the built chain link.
fn resolve(
    outputs: Vec<AnyEnd>,
    members: &mut HashMap<usize, ChainMember>,
    cursor: &ChainCursor,
) -> Result<Vec<AnyEnd>, TaskError> {
    outputs
        .into_iter()
        .map(|end| match end.downcast::<ChainedTo>() {
            Err(channel) => Ok(channel),
            Ok(to) => {
                let mut member = members
                    .remove(&to.0)
                    .expect("a chained edge leads to a member (engine bug otherwise)");
                let place = member.member;
                let parent = cursor.enter(place);
                member.wiring.outputs = resolve(member.wiring.outputs, members, cursor)?;
                let link = member.factory.create_link(
                    member.info,
                    member.wiring,
                    member.env,
                    place,
                    cursor.clone(),
                )?;
                cursor.leave(parent);
                Ok(link)
            }
        })
        .collect()
}
