//! Running one job with ansible-runner: its private data dir ([`private_data`]), its
//! process ([`process`]), the agent's [`reaper`] that kills every job's processes if the
//! agent dies, and the reading of its event stream ([`events`]).

pub mod events;
pub mod private_data;
pub mod process;
pub mod reaper;
