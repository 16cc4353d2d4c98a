//! SVG written by hand: one search as one picture, or every overlay's search side by side.
//!
//! Elements carry classes and data attributes that tests read: `g.panel[data-overlay]`,
//! `circle.node[data-idx]`, `circle.searcher`, `path.key`, `circle.responsible`,
//! `line.hop[data-step]`, `line.faint`, `line.answer`, `circle.revisit[data-visits]`. Numbers
//! are printed with one decimal, so the same trace gives the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Layout, MsgKind, Trace};
use crate::overlays::overlay::NodeIdx;

const FONT: &str = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";
const INK: &str = "#1e293b";
const MUTED: &str = "#64748b";
const NODE: &str = "#94a3b8";
const STRUCTURE: &str = "#cbd5e1";
const SEARCHER: &str = "#2563eb";
const KEY: &str = "#f59e0b";
const OWNER: &str = "#dc2626";
const HOP: &str = "#ea580c";
const FAINT: &str = "#2563eb";
const ANSWER: &str = "#16a34a";
const REVISIT: &str = "#9333ea";

/// Side of the drawing square of a single picture, in pixels.
const SINGLE_SIZE: f64 = 760.0;
/// Panels per row of the comparison.
const COLUMNS: usize = 4;
/// Width and height of one panel of the comparison, and the side of its drawing square.
const PANEL_W: f64 = 420.0;
const PANEL_H: f64 = 520.0;
const PANEL_SIZE: f64 = 360.0;

/// What the overlays are called in captions.
fn title_of(overlay: &str) -> &'static str {
    match overlay {
        "kademlia" => "Kademlia",
        "chord" => "Chord",
        "pastry" => "Pastry",
        "can" => "CAN",
        "onehop" => "One-hop ring",
        "flooding" => "Flooding",
        "randomwalk" => "Random walk",
        _ => "overlay",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn hex(id: &dht_proto::Id) -> String {
    id.0.iter().map(|b| format!("{b:02x}")).collect()
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The SVG header with the shared arrowheads.
fn open(out: &mut String, w: f64, h: f64, title: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"{FONT}\">\n<title>{}</title>\n",
        esc(title)
    );
    let _ = writeln!(out, "<defs>");
    for (id, colour) in [
        ("arrow-hop", HOP),
        ("arrow-answer", ANSWER),
        ("arrow-faint", FAINT),
    ] {
        let _ = writeln!(
            out,
            "<marker id=\"{id}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"4\" markerHeight=\"4\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"{colour}\"/></marker>"
        );
    }
    let _ = writeln!(out, "</defs>");
    let _ = writeln!(
        out,
        "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>"
    );
}

/// Maps the unit square of a trace onto a square of side `size` at (`x0`, `y0`).
#[derive(Clone, Copy)]
struct Frame {
    x0: f64,
    y0: f64,
    size: f64,
    /// Node radius.
    r: f64,
    /// Whether labels are drawn large (a single picture) or small (a panel).
    big: bool,
}

impl Frame {
    fn at(&self, x: f64, y: f64) -> (f64, f64) {
        (self.x0 + x * self.size, self.y0 + y * self.size)
    }
}

/// A segment from `a` to `b` shortened at both ends by `ra` and `rb`, so arrowheads stay
/// outside the circles they point at.
fn trim(a: (f64, f64), b: (f64, f64), ra: f64, rb: f64) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len = (dx * dx + dy * dy).sqrt();
    if len <= ra + rb + 0.5 {
        return None;
    }
    let (ux, uy) = (dx / len, dy / len);
    Some((
        (a.0 + ux * ra, a.1 + uy * ra),
        (b.0 - ux * rb, b.1 - uy * rb),
    ))
}

/// Segments from node `a` to node `b` in the unit square: one, or on the torus two when the
/// shorter way wraps around an edge.
fn segments(layout: Layout, a: (f64, f64), b: (f64, f64)) -> Vec<((f64, f64), (f64, f64))> {
    if layout != Layout::Torus {
        return vec![(a, b)];
    }
    let wrap = |d: f64| {
        if d > 0.5 {
            -1.0
        } else if d < -0.5 {
            1.0
        } else {
            0.0
        }
    };
    let (sx, sy) = (wrap(b.0 - a.0), wrap(b.1 - a.1));
    if sx == 0.0 && sy == 0.0 {
        return vec![(a, b)];
    }
    vec![(a, (b.0 + sx, b.1 + sy)), ((a.0 - sx, a.1 - sy), b)]
}

/// One trace drawn into `frame`; `prefix` keeps element ids unique in a comparison.
fn panel(out: &mut String, t: &Trace, f: Frame, prefix: &str) {
    let pos: BTreeMap<NodeIdx, (f64, f64)> = t.nodes.iter().map(|n| (n.idx, (n.x, n.y))).collect();
    let p = |i: NodeIdx| pos.get(&i).copied().unwrap_or((0.5, 0.5));
    let r = f.r;
    let _ = writeln!(
        out,
        "<g class=\"panel\" id=\"{prefix}panel\" data-overlay=\"{}\" data-nodes=\"{}\" data-hops=\"{}\" data-messages=\"{}\" data-revisits=\"{}\" data-searcher=\"{}\">",
        t.overlay,
        t.nodes.len(),
        t.reported_hops,
        t.reported_messages,
        t.revisits.len(),
        t.searcher
    );
    // Structure: the ring, CAN's zones, or the neighbour graph.
    match t.layout {
        Layout::Ring => {
            let (cx, cy) = f.at(0.5, 0.5);
            let _ = writeln!(
                out,
                "<circle class=\"ring\" cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"{:.1}\" fill=\"none\" stroke=\"{STRUCTURE}\" stroke-width=\"1.5\"/>",
                f.size / 2.0
            );
            let (tx, ty) = f.at(0.5, -0.035);
            let _ = writeln!(
                out,
                "<text x=\"{tx:.1}\" y=\"{ty:.1}\" font-size=\"{}\" fill=\"{MUTED}\" text-anchor=\"middle\">0 \u{2192} 2\u{b9}\u{2076}\u{2070}</text>",
                if f.big { 13 } else { 10 }
            );
        }
        Layout::Torus => {
            let _ = writeln!(
                out,
                "<clipPath id=\"{prefix}clip\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/></clipPath>",
                f.x0, f.y0, f.size, f.size
            );
            let on_path: Vec<NodeIdx> = t.hops.iter().map(|h| h.to).collect();
            for n in &t.nodes {
                let fill = if t.responsible.contains(&n.idx) {
                    "#fee2e2"
                } else if n.idx == t.searcher {
                    "#dbeafe"
                } else if on_path.contains(&n.idx) {
                    "#ffedd5"
                } else {
                    "none"
                };
                for z in &n.zones {
                    let (x0, y0) = f.at(z[0], z[1]);
                    let (x1, y1) = f.at(z[2], z[3]);
                    let _ = writeln!(
                        out,
                        "<rect class=\"zone\" data-idx=\"{}\" x=\"{x0:.1}\" y=\"{y0:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\" stroke=\"{STRUCTURE}\" stroke-width=\"0.8\"/>",
                        n.idx,
                        x1 - x0,
                        y1 - y0
                    );
                }
            }
            let _ = writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"{NODE}\" stroke-width=\"1.2\"/>",
                f.x0, f.y0, f.size, f.size
            );
        }
        Layout::Plane => {
            let _ = writeln!(
                out,
                "<g class=\"edges\" stroke=\"{STRUCTURE}\" stroke-width=\"0.6\" opacity=\"0.7\">"
            );
            for &(a, b) in &t.edges {
                let (a, b) = (f.at(p(a).0, p(a).1), f.at(p(b).0, p(b).1));
                let _ = writeln!(
                    out,
                    "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
                    a.0, a.1, b.0, b.1
                );
            }
            let _ = writeln!(out, "</g>");
        }
    }
    let clip = if t.layout == Layout::Torus {
        format!(" clip-path=\"url(#{prefix}clip)\"")
    } else {
        String::new()
    };
    // Messages that led nowhere: requests off the path, drawn faint.
    let _ = writeln!(
        out,
        "<g class=\"faint-messages\" stroke=\"{FAINT}\" stroke-width=\"{}\" opacity=\"0.22\"{clip}>",
        if f.big { 1.0 } else { 0.8 }
    );
    for m in &t.messages {
        if m.useful || m.kind != MsgKind::Request {
            continue;
        }
        for (a, b) in segments(t.layout, p(m.from), p(m.to)) {
            if let Some((a, b)) = trim(f.at(a.0, a.1), f.at(b.0, b.1), r, r + 1.0) {
                let _ = writeln!(
                    out,
                    "<line class=\"faint\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
                    a.0, a.1, b.0, b.1
                );
            }
        }
    }
    let _ = writeln!(out, "</g>");
    // Nodes.
    let _ = writeln!(out, "<g class=\"nodes\" fill=\"{NODE}\">");
    for n in &t.nodes {
        let (x, y) = f.at(n.x, n.y);
        let _ = writeln!(
            out,
            "<circle class=\"node\" data-idx=\"{}\" data-id=\"{}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r:.1}\"><title>node {} id {}</title></circle>",
            n.idx,
            hex(&n.id),
            n.idx,
            hex(&n.id)
        );
    }
    let _ = writeln!(out, "</g>");
    // Nodes reached more than once: the cycles.
    for &(i, v) in &t.revisits {
        let (x, y) = f.at(p(i).0, p(i).1);
        let _ = writeln!(
            out,
            "<circle class=\"revisit\" data-idx=\"{i}\" data-visits=\"{v}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{:.1}\" fill=\"none\" stroke=\"{REVISIT}\" stroke-width=\"{:.1}\" opacity=\"0.75\"><title>node {i} reached {v} times</title></circle>",
            r + 1.5 + (v.min(6) as f64 - 2.0).max(0.0) * 0.8,
            if f.big { 1.6 } else { 1.2 }
        );
    }
    // The answer back to the searcher.
    if let Some((a, b)) = t.answer {
        for (pa, pb) in segments(t.layout, p(a), p(b)) {
            if let Some((pa, pb)) = trim(f.at(pa.0, pa.1), f.at(pb.0, pb.1), r + 2.0, r + 3.0) {
                let _ = writeln!(
                    out,
                    "<line class=\"answer\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{ANSWER}\" stroke-width=\"{}\" stroke-dasharray=\"6 4\" marker-end=\"url(#arrow-answer)\"{clip}/>",
                    pa.0,
                    pa.1,
                    pb.0,
                    pb.1,
                    if f.big { 2.0 } else { 1.6 }
                );
            }
        }
    }
    // The numbered path.
    let width = if f.big { 2.6 } else { 2.0 };
    let lr = if f.big { 9.0 } else { 7.0 };
    let mut labels = Vec::new();
    // Hops too short to carry their number (neighbours on a crowded ring) are numbered beside
    // the path instead, stacked outwards so that consecutive ones stay apart.
    let mut stacked = 0.0;
    for h in &t.hops {
        let segs = segments(t.layout, p(h.from), p(h.to));
        for (k, (ua, ub)) in segs.iter().enumerate() {
            let (pa, pb) = (f.at(ua.0, ua.1), f.at(ub.0, ub.1));
            let trimmed = trim(pa, pb, r + 1.0, r + 2.5);
            let (a, b) = trimmed.unwrap_or((pa, pb));
            let long = trimmed.is_some_and(|(a, b)| (b.0 - a.0).hypot(b.1 - a.1) > 3.0 * lr);
            let class = match (h.step, k) {
                (0, _) => "hop-final".to_string(),
                (_, 0) => "hop".to_string(),
                _ => "hop-wrap".to_string(),
            };
            let step = if h.step > 0 && k == 0 {
                format!(" data-step=\"{}\"", h.step)
            } else {
                String::new()
            };
            let dash = if h.step == 0 {
                " stroke-dasharray=\"3 3\""
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "<line class=\"{class}\"{step} x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{HOP}\" stroke-width=\"{width}\" stroke-linecap=\"round\"{dash} marker-end=\"url(#arrow-hop)\"{clip}/>",
                a.0, a.1, b.0, b.1
            );
            let inside = |q: (f64, f64)| {
                (f.x0..=f.x0 + f.size).contains(&q.0) && (f.y0..=f.y0 + f.size).contains(&q.1)
            };
            let mut mid = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
            // A hop that wraps round the torus is labelled on the part whose middle shows.
            if h.step > 0
                && (segs.len() == 1 || inside(mid))
                && !labels.iter().any(|l: &(u32, _)| l.0 == h.step)
            {
                if long {
                    stacked = 0.0;
                } else {
                    stacked += 1.0;
                    let off = r + lr * (0.6 + 2.2 * stacked);
                    mid = if t.layout == Layout::Ring {
                        let (cx, cy) = f.at(0.5, 0.5);
                        let (dx, dy) = (mid.0 - cx, mid.1 - cy);
                        let d = dx.hypot(dy).max(1e-9);
                        (mid.0 + dx / d * off, mid.1 + dy / d * off)
                    } else {
                        // Beside the line, on its left.
                        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
                        let d = dx.hypot(dy);
                        if d > 1e-9 {
                            (mid.0 + dy / d * off, mid.1 - dx / d * off)
                        } else {
                            (mid.0, mid.1 - off)
                        }
                    };
                }
                labels.push((h.step, mid));
            }
        }
    }
    // The responsible nodes (owner first), the key, the searcher.
    for (k, &i) in t.responsible.iter().enumerate() {
        let (x, y) = f.at(p(i).0, p(i).1);
        let main = k == 0 || t.layout == Layout::Plane;
        let _ = writeln!(
            out,
            "<circle class=\"responsible\" data-idx=\"{i}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{:.1}\" fill=\"{}\" stroke=\"{OWNER}\" stroke-width=\"{}\"><title>{}</title></circle>",
            r + if main { 3.5 } else { 2.0 },
            if main { OWNER } else { "none" },
            if main { 2.0 } else { 1.2 },
            match (t.layout, k) {
                (Layout::Plane, _) => format!("node {i} holds the item"),
                (_, 0) => format!("node {i} owns the key"),
                _ => format!("node {i}: one of the {} closest to the key", t.responsible.len()),
            }
        );
    }
    if let Some((ox, oy)) = t.owner_token_at {
        let owner = t.responsible.first().copied().unwrap_or(t.searcher);
        let (x, y) = f.at(ox, oy);
        let (nx, ny) = f.at(p(owner).0, p(owner).1);
        let _ = writeln!(
            out,
            "<line class=\"owner-token-link\" x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{nx:.1}\" y2=\"{ny:.1}\" stroke=\"{OWNER}\" stroke-width=\"1\" stroke-dasharray=\"2 3\"/><rect class=\"owner-token\" x=\"{:.1}\" y=\"{:.1}\" width=\"6\" height=\"6\" fill=\"{OWNER}\"><title>the owner's token that covers the key</title></rect>",
            x - 3.0,
            y - 3.0
        );
    }
    if let Some((kx, ky)) = t.key_at {
        // On the ring the key sits just outside it, with a tick to its place.
        let (x, y) = if t.layout == Layout::Ring {
            let (dx, dy) = (kx - 0.5, ky - 0.5);
            let s = 1.09;
            let (a, b) = f.at(0.5 + dx * s, 0.5 + dy * s);
            let (c, d) = f.at(kx, ky);
            let _ = writeln!(
                out,
                "<line class=\"key-tick\" x1=\"{a:.1}\" y1=\"{b:.1}\" x2=\"{c:.1}\" y2=\"{d:.1}\" stroke=\"{KEY}\" stroke-width=\"2\"/>"
            );
            (a, b)
        } else {
            f.at(kx, ky)
        };
        let s = if f.big { 9.0 } else { 7.0 };
        let _ = writeln!(
            out,
            "<path class=\"key\" d=\"M{:.1},{:.1}L{:.1},{:.1}L{:.1},{:.1}L{:.1},{:.1}z\" fill=\"{KEY}\" stroke=\"#92400e\" stroke-width=\"1.2\"><title>key {}</title></path>",
            x,
            y - s,
            x + s,
            y,
            x,
            y + s,
            x - s,
            y,
            hex(&t.key)
        );
    }
    let (sx, sy) = f.at(p(t.searcher).0, p(t.searcher).1);
    let _ = writeln!(
        out,
        "<circle class=\"searcher\" data-idx=\"{}\" cx=\"{sx:.1}\" cy=\"{sy:.1}\" r=\"{:.1}\" fill=\"{SEARCHER}\" stroke=\"#ffffff\" stroke-width=\"1.5\"><title>searcher: node {}</title></circle>",
        t.searcher,
        r + 4.0,
        t.searcher
    );
    // Hop numbers last, on top of everything.
    for (step, (x, y)) in labels {
        let _ = writeln!(
            out,
            "<g class=\"hop-label\" data-step=\"{step}\"><circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{lr:.1}\" fill=\"#ffffff\" stroke=\"{HOP}\" stroke-width=\"1.5\"/><text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"{}\" font-weight=\"700\" fill=\"{HOP}\" text-anchor=\"middle\">{step}</text></g>",
            y + lr * 0.42,
            if f.big { 12.0 } else { 9.5 }
        );
    }
    let _ = writeln!(out, "</g>");
}

/// The figures under a drawing: hops, messages, and what the cycles cost.
fn figures(t: &Trace) -> (String, Option<String>) {
    let useful = t.messages.iter().filter(|m| m.useful).count();
    let mut main = format!(
        "{} \u{b7} {}",
        plural(t.reported_hops as usize, "hop", "hops"),
        plural(t.reported_messages as usize, "message", "messages")
    );
    if !t.ok {
        main.push_str(" \u{b7} not found");
    }
    let extra = if t.layout == Layout::Plane {
        Some(format!(
            "{} reached more than once \u{b7} {} of {} messages on the path",
            plural(t.revisits.len(), "node", "nodes"),
            useful,
            t.reported_messages
        ))
    } else {
        None
    };
    (main, extra)
}

fn radius(n: usize, size: f64) -> f64 {
    (size * 0.16 / (n.max(1) as f64).sqrt()).clamp(1.3, 5.0)
}

fn legend(out: &mut String, x: f64, y: f64, big: bool) {
    let fs = if big { 14 } else { 13 };
    let step = if big { 24.0 } else { 26.0 };
    let items: [(&str, &str); 8] = [
        ("searcher", "the searcher"),
        ("key", "the key (ring and torus)"),
        ("owner", "the key's owner / holders of the item"),
        ("hop", "a hop of the path, numbered"),
        ("faint", "a message that led nowhere"),
        ("answer", "the answer back to the searcher"),
        ("revisit", "a node reached more than once (cycle)"),
        ("node", "a node"),
    ];
    let _ = writeln!(
        out,
        "<g class=\"legend\" font-size=\"{fs}\" fill=\"{INK}\">"
    );
    for (k, (what, text)) in items.iter().enumerate() {
        let cy = y + k as f64 * step;
        let cx = x + 12.0;
        let mark = match *what {
            "searcher" => format!("<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"7\" fill=\"{SEARCHER}\"/>"),
            "key" => format!(
                "<path d=\"M{cx:.1},{:.1}L{:.1},{cy:.1}L{cx:.1},{:.1}L{:.1},{cy:.1}z\" fill=\"{KEY}\" stroke=\"#92400e\"/>",
                cy - 8.0,
                cx + 8.0,
                cy + 8.0,
                cx - 8.0
            ),
            "owner" => format!("<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"6\" fill=\"{OWNER}\" stroke=\"{OWNER}\" stroke-width=\"2\"/>"),
            "hop" => format!(
                "<line x1=\"{:.1}\" y1=\"{cy:.1}\" x2=\"{:.1}\" y2=\"{cy:.1}\" stroke=\"{HOP}\" stroke-width=\"2.6\" marker-end=\"url(#arrow-hop)\"/>",
                cx - 12.0,
                cx + 12.0
            ),
            "faint" => format!(
                "<line x1=\"{:.1}\" y1=\"{cy:.1}\" x2=\"{:.1}\" y2=\"{cy:.1}\" stroke=\"{FAINT}\" stroke-width=\"1.2\" opacity=\"0.35\"/>",
                cx - 12.0,
                cx + 12.0
            ),
            "answer" => format!(
                "<line x1=\"{:.1}\" y1=\"{cy:.1}\" x2=\"{:.1}\" y2=\"{cy:.1}\" stroke=\"{ANSWER}\" stroke-width=\"2\" stroke-dasharray=\"6 4\" marker-end=\"url(#arrow-answer)\"/>",
                cx - 12.0,
                cx + 12.0
            ),
            "revisit" => format!("<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"4\" fill=\"{NODE}\"/><circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"7\" fill=\"none\" stroke=\"{REVISIT}\" stroke-width=\"1.6\"/>"),
            _ => format!("<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"4\" fill=\"{NODE}\"/>"),
        };
        let _ = writeln!(
            out,
            "{mark}<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 34.0,
            cy + 5.0,
            esc(text)
        );
    }
    let _ = writeln!(out, "</g>");
}

/// One search as a picture: the drawing, a caption with overlay, N, seed, key, hops and
/// messages, and a legend.
pub fn render(t: &Trace) -> String {
    let margin = 60.0;
    let top = 92.0;
    let w = SINGLE_SIZE + 2.0 * margin + 320.0;
    let h = top + SINGLE_SIZE + 70.0;
    let mut out = String::new();
    let title = format!(
        "{}: one search, N = {}, seed {}",
        title_of(t.overlay),
        t.nodes.len(),
        t.seed
    );
    open(&mut out, w, h, &title);
    let (main, extra) = figures(t);
    let _ = writeln!(
        out,
        "<text class=\"caption\" x=\"{margin:.0}\" y=\"42\" font-size=\"26\" font-weight=\"700\" fill=\"{INK}\">{} \u{2014} {}</text>",
        esc(title_of(t.overlay)),
        esc(&main)
    );
    let _ = writeln!(
        out,
        "<text class=\"caption\" x=\"{margin:.0}\" y=\"70\" font-size=\"15\" fill=\"{MUTED}\">N = {} \u{b7} seed {} \u{b7} key {}</text>",
        t.nodes.len(),
        t.seed,
        hex(&t.key)
    );
    let f = Frame {
        x0: margin,
        y0: top + 20.0,
        size: SINGLE_SIZE - 40.0,
        r: radius(t.nodes.len(), SINGLE_SIZE),
        big: true,
    };
    panel(&mut out, t, f, "");
    let lx = margin + SINGLE_SIZE + 30.0;
    legend(&mut out, lx, top + 40.0, true);
    let mut notes = vec![t.settings.clone(), note(t)];
    if let Some(e) = extra {
        notes.push(e);
    }
    let mut y = top + 270.0;
    for line in &notes {
        let lines = wrap_text(&mut out, line, lx, y, 15, 36);
        y += lines as f64 * 15.0 * 1.35 + 16.0;
    }
    out.push_str("</svg>\n");
    out
}

/// What the picture shows, in a sentence.
fn note(t: &Trace) -> String {
    match t.overlay {
        "kademlia" => "The searcher asks the nodes it knows closest to the key; each answer names closer nodes, asked in the next round. The numbered arrows follow who named whom.".into(),
        "chord" => "Each node forwards to its finger closest before the key, halving the distance; the dashed last forward reaches the key's successor.".into(),
        "pastry" => "Each hop matches one more hex digit of the key; the leaf set makes the last step.".into(),
        "can" => "Each node forwards to the neighbouring zone closest to the key's point; hops grow as the square root of N.".into(),
        "onehop" => "Every node holds the whole membership, so the owner is one hop away; the cost is keeping that view fresh.".into(),
        "flooding" => "The query goes to every neighbour until its TTL runs out; most copies arrive where it has already been.".into(),
        _ => "Walkers step to random neighbours and ask the searcher every few steps whether to go on; they retrace their steps.".into(),
    }
}

/// Writes `text` as lines of at most `width` characters from (`x`, `y`); returns the lines.
fn wrap_text(out: &mut String, text: &str, x: f64, y: f64, fs: u32, width: usize) -> usize {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(l) if l.len() + 1 + word.len() <= width => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    let _ = write!(
        out,
        "<text class=\"note\" x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{fs}\" fill=\"{MUTED}\">"
    );
    for (k, l) in lines.iter().enumerate() {
        let _ = write!(
            out,
            "<tspan x=\"{x:.1}\" dy=\"{}\">{}</tspan>",
            if k == 0 { 0.0 } else { fs as f64 * 1.35 },
            esc(l)
        );
    }
    let _ = writeln!(out, "</text>");
    lines.len()
}

/// Every trace side by side, one panel each (same N, key and searcher index), with each one's
/// hops and messages under it, and the legend in the last cell.
pub fn render_compare(traces: &[Trace]) -> String {
    let cells = traces.len() + 1;
    let rows = cells.div_ceil(COLUMNS);
    let top = 96.0;
    let w = COLUMNS as f64 * PANEL_W + 40.0;
    let h = top + rows as f64 * PANEL_H + 10.0;
    let mut out = String::new();
    let (n, seed) = traces.first().map_or((0, 0), |t| (t.nodes.len(), t.seed));
    let title = format!("One search in every overlay: N = {n}, seed {seed}");
    open(&mut out, w, h, &title);
    let _ = writeln!(
        out,
        "<text class=\"caption\" x=\"20\" y=\"44\" font-size=\"28\" font-weight=\"700\" fill=\"{INK}\">One search, seven ways: {n} nodes, the same key from the same node</text>"
    );
    let key = traces.first().map(|t| hex(&t.key)).unwrap_or_default();
    let _ = writeln!(
        out,
        "<text class=\"caption\" x=\"20\" y=\"74\" font-size=\"16\" fill=\"{MUTED}\">seed {seed} \u{b7} key {key} \u{b7} structured overlays route to the key's owner in a few hops; flooding and random walk search blind and go round in cycles</text>"
    );
    for (k, t) in traces.iter().enumerate() {
        let (cx, cy) = (
            20.0 + (k % COLUMNS) as f64 * PANEL_W,
            top + (k / COLUMNS) as f64 * PANEL_H,
        );
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"10\" fill=\"#f8fafc\" stroke=\"#e2e8f0\"/>",
            cx + 4.0,
            cy + 4.0,
            PANEL_W - 8.0,
            PANEL_H - 8.0
        );
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"19\" font-weight=\"700\" fill=\"{INK}\">{}</text>",
            cx + 20.0,
            cy + 32.0,
            title_of(t.overlay)
        );
        let f = Frame {
            x0: cx + (PANEL_W - PANEL_SIZE) / 2.0,
            y0: cy + 52.0,
            size: PANEL_SIZE,
            r: radius(t.nodes.len(), PANEL_SIZE),
            big: false,
        };
        panel(&mut out, t, f, &format!("{}-", t.overlay));
        let (main, extra) = figures(t);
        let _ = writeln!(
            out,
            "<text class=\"figures\" data-overlay=\"{}\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"17\" font-weight=\"700\" fill=\"{HOP}\">{}</text>",
            t.overlay,
            cx + 20.0,
            cy + PANEL_H - 50.0,
            esc(&main)
        );
        let sub = extra.unwrap_or_else(|| t.settings.clone());
        let _ = wrap_text(&mut out, &sub, cx + 20.0, cy + PANEL_H - 28.0, 12, 62);
    }
    let k = traces.len();
    let (cx, cy) = (
        20.0 + (k % COLUMNS) as f64 * PANEL_W,
        top + (k / COLUMNS) as f64 * PANEL_H,
    );
    legend(&mut out, cx + 24.0, cy + 40.0, false);
    let ty = cy + 262.0;
    let _ = writeln!(
        out,
        "<g class=\"figures-table\" font-size=\"13\" fill=\"{INK}\"><text x=\"{:.1}\" y=\"{ty:.1}\" font-weight=\"700\">overlay</text><text x=\"{:.1}\" y=\"{ty:.1}\" font-weight=\"700\" text-anchor=\"end\">hops</text><text x=\"{:.1}\" y=\"{ty:.1}\" font-weight=\"700\" text-anchor=\"end\">messages</text>",
        cx + 30.0,
        cx + 250.0,
        cx + 350.0
    );
    for (k, t) in traces.iter().enumerate() {
        let y = ty + 20.0 * (k + 1) as f64;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{y:.1}\">{}</text><text x=\"{:.1}\" y=\"{y:.1}\" text-anchor=\"end\">{}</text><text x=\"{:.1}\" y=\"{y:.1}\" text-anchor=\"end\">{}</text>",
            cx + 30.0,
            title_of(t.overlay),
            cx + 250.0,
            t.reported_hops,
            cx + 350.0,
            t.reported_messages
        );
    }
    let _ = writeln!(out, "</g>");
    let _ = wrap_text(
        &mut out,
        "Hops count forwards (Kademlia: rounds); messages count every request and reply, acknowledgements included.",
        cx + 24.0,
        ty + 20.0 * (traces.len() + 1) as f64 + 10.0,
        12,
        58,
    );
    out.push_str("</svg>\n");
    out
}
