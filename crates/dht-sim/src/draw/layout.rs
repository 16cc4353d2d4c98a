//! Where the nodes go: the ring of the key space, and a force-directed layout of a neighbour
//! graph for the unstructured overlays.

use std::f64::consts::TAU;

use dht_proto::Id;

use crate::overlays::overlay::NodeIdx;
use crate::overlays::ring::ring_pos;
use crate::rng::SimRng;

/// Relaxation rounds of the plane layout at most; fewer for large graphs (see [`plane_layout`]).
const RELAX_ROUNDS_MAX: usize = 300;
/// Pair interactions the plane layout computes at most over all its rounds, so a 2,000-node
/// drawing still takes about a second.
const RELAX_WORK_MAX: usize = 400_000_000;
/// Margin kept free around the plane layout, in units of the square.
const MARGIN: f64 = 0.03;

/// The point of the unit square where `id` lies on the ring of radius 0.5 around the centre:
/// 0 at the top, growing clockwise.
pub fn ring_point(id: &Id) -> (f64, f64) {
    let f = ring_pos(id) as f64 / 2f64.powi(128);
    let a = TAU * f;
    (0.5 + 0.5 * a.sin(), 0.5 - 0.5 * a.cos())
}

/// Positions in the unit square for `n` nodes joined by `edges`: drawn at random from `seed`,
/// then relaxed in the manner of Fruchterman and Reingold (neighbours pull, every pair pushes,
/// the step cools), so a walk along edges stays local in the picture instead of crossing it at
/// every step. Deterministic: a fixed order of floating-point operations.
pub fn plane_layout(n: usize, edges: &[(NodeIdx, NodeIdx)], seed: u64) -> Vec<(f64, f64)> {
    let mut rng = SimRng::new(seed ^ 0x0050_4c41_4e45);
    let mut p: Vec<(f64, f64)> = (0..n).map(|_| (rng.unit(), rng.unit())).collect();
    if n < 2 {
        return p.into_iter().map(|_| (0.5, 0.5)).collect();
    }
    let k = (1.0 / n as f64).sqrt();
    let rounds = RELAX_ROUNDS_MAX.min(RELAX_WORK_MAX / (n * n)).max(20);
    let mut t = 0.1;
    let mut d = vec![(0.0f64, 0.0f64); n];
    for _ in 0..rounds {
        d.iter_mut().for_each(|v| *v = (0.0, 0.0));
        for i in 0..n {
            for j in i + 1..n {
                let (dx, dy) = (p[i].0 - p[j].0, p[i].1 - p[j].1);
                let dist2 = (dx * dx + dy * dy).max(1e-9);
                let f = k * k / dist2;
                d[i].0 += dx * f;
                d[i].1 += dy * f;
                d[j].0 -= dx * f;
                d[j].1 -= dy * f;
            }
        }
        for &(a, b) in edges {
            let (a, b) = (a as usize, b as usize);
            if a >= n || b >= n {
                continue;
            }
            let (dx, dy) = (p[a].0 - p[b].0, p[a].1 - p[b].1);
            let dist = (dx * dx + dy * dy).sqrt().max(1e-9);
            let f = dist / k;
            d[a].0 -= dx * f;
            d[a].1 -= dy * f;
            d[b].0 += dx * f;
            d[b].1 += dy * f;
        }
        for i in 0..n {
            let len = (d[i].0 * d[i].0 + d[i].1 * d[i].1).sqrt().max(1e-9);
            let step = len.min(t);
            p[i].0 += d[i].0 / len * step;
            p[i].1 += d[i].1 / len * step;
            // A weak pull to the centre keeps loosely joined nodes from drifting off.
            p[i].0 += (0.5 - p[i].0) * 0.01;
            p[i].1 += (0.5 - p[i].1) * 0.01;
        }
        t *= 0.97;
    }
    // Fit into the square with a margin, keeping the aspect.
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for &(x, y) in &p {
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    let span = (x1 - x0).max(y1 - y0).max(1e-9);
    let scale = (1.0 - 2.0 * MARGIN) / span;
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    p.into_iter()
        .map(|(x, y)| (0.5 + (x - cx) * scale, 0.5 + (y - cy) * scale))
        .collect()
}
