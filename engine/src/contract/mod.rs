//! The engine's contract with user code: the types that operators, sinks and job owners see
//! (restored state, restart strategies, checkpoint statistics and events). They sit at the
//! bottom of the engine, depending on nothing in it but errors, so that the runtime and the
//! coordinator both point down at them.

pub(crate) mod restart;
pub(crate) mod restored;
pub(crate) mod stats;
