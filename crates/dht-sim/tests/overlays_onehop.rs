//! The one-hop ring on the overlays' own driver: one hop without churn, RF 3 copies, gossip that
//! spreads joins and failures.

use std::time::Duration;

use dht_proto::Id;
use dht_sim::overlays::driver::{run_lookups, MiniNet};
use dht_sim::overlays::onehop::OneHop;
use dht_sim::overlays::overlay::{NodeIdx, OverlayEvent};
use dht_sim::rng::SimRng;

const LATENCY: Duration = Duration::from_millis(10);

fn owner_in_view_of(
    net: &MiniNet<OneHop>,
    viewer: NodeIdx,
) -> impl Fn(&Id) -> Option<NodeIdx> + '_ {
    move |k: &Id| {
        net.node(viewer)
            .and_then(|n| n.replicas_of(k).first().copied())
    }
}

#[test]
fn converged_ring_answers_in_one_hop() {
    let mut net = MiniNet::new(OneHop::default(), 4096, 1, LATENCY);
    assert!(net.converge(&|_, _| LATENCY));
    let snapshot: Vec<(Id, Option<NodeIdx>)> = (0..2000u64)
        .map(|i| {
            let k = Id::random(&mut SimRng::new(i));
            (k, owner_in_view_of(&net, 0)(&k))
        })
        .collect();
    let oracle = move |k: &Id| snapshot.iter().find(|(x, _)| x == k).and_then(|x| x.1);
    let s = run_lookups(
        &mut net,
        1000,
        3,
        Duration::from_millis(1),
        Duration::from_secs(5),
        &|_| None,
    );
    eprintln!("onehop N=4096: {s:?}");
    assert_eq!(s.ok, s.issued);
    assert!(s.one_hop_fraction >= 0.99, "{s:?}");
    assert!(s.max_hops <= 1);
    // Every node's view agrees on the owner.
    let a = oracle(&Id::random(&mut SimRng::new(5)));
    assert_eq!(
        a,
        owner_in_view_of(&net, 77)(&Id::random(&mut SimRng::new(5)))
    );
}

#[test]
fn puts_store_three_copies() {
    let mut net = MiniNet::new(OneHop::default(), 256, 2, LATENCY);
    net.converge(&|_, _| LATENCY);
    let key = Id::random(&mut SimRng::new(9));
    let now = net.now;
    net.with(10, |n| {
        dht_sim::overlays::overlay::OverlayNode::put(n, now, key, b"v".to_vec(), 0)
    });
    net.run_for(Duration::from_secs(1));
    let acked = net.take_finished().iter().find_map(|f| match f.event {
        OverlayEvent::PutDone { acked, .. } => Some(acked),
        _ => None,
    });
    assert_eq!(acked, Some(3));
}

#[test]
fn gossip_spreads_failures_and_joins() {
    let mut net = MiniNet::new(OneHop::default(), 1024, 3, LATENCY);
    net.converge(&|_, _| LATENCY);
    let mut rng = SimRng::new(4);
    let mut dead = Vec::new();
    while dead.len() < 1024 / 5 {
        let i = rng.below(1024) as NodeIdx;
        if net.alive(i) {
            net.kill(i);
            dead.push(i);
        }
    }
    let joiner = net.join(0);
    net.run_for(Duration::from_secs(120));
    // Lookups succeed after the news spread.
    let s = run_lookups(
        &mut net,
        1000,
        5,
        Duration::from_millis(5),
        Duration::from_secs(40),
        &|_| None,
    );
    eprintln!("onehop after failures: {s:?}");
    assert!(s.ok as f64 >= 0.99 * s.issued as f64, "{s:?}");
    // Most live nodes know of the joiner and of most failures.
    let live = net.live();
    let knows_joiner = live
        .iter()
        .filter(|&&i| net.node(i).unwrap().believes_up(joiner))
        .count();
    assert!(
        knows_joiner as f64 >= 0.95 * live.len() as f64,
        "{knows_joiner} of {}",
        live.len()
    );
    let sample = live[7];
    let convicted = dead
        .iter()
        .filter(|&&d| !net.node(sample).unwrap().believes_up(d))
        .count();
    assert!(
        convicted as f64 >= 0.9 * dead.len() as f64,
        "{convicted} of {}",
        dead.len()
    );
}
