//! Running one job with ansible-runner: its private data dir ([`private_data`]), its
//! process ([`process`]) and the reading of its event stream ([`events`]).

pub mod events;
pub mod private_data;
pub mod process;
