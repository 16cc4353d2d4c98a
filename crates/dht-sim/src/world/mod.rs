//! The world the nodes live in: the network between them, who comes and goes, and who is alive.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`network`] | the synthetic Internet: latency, jitter, loss, partitions |
//! | [`churn`] | session lengths and who takes a leaver's place |
//! | [`live`] | the membership index: alive flags, random live node, closest live nodes |

pub mod churn;
pub mod live;
pub mod network;
