//! What a run hands back: the counters it fills, the report, and the plots.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`stats`] | bounded histograms and the time series the engine fills |
//! | [`report`] | the JSON report and its text summary |
//! | [`plots`] | SVG plots of a report, and `dht compare`'s line charts |

pub mod plots;
pub mod report;
pub mod stats;
