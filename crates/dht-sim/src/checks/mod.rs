//! Checks: every result the overlays report is judged against a reference model.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`checker`] | the lookup and get checkers, the owner rules of Kademlia and Chord |
//! | [`oracles`] | the owner rules of the other overlays |
//! | [`toy`] | a deliberately simple overlay with planted faults, to test the engine and checkers |

pub mod checker;
pub mod oracles;
pub mod toy;
