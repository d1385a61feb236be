//! Network backends: how long a message takes from one NPU to another.
//!
//! * [`Unaware`] — ASTRA-sim's congestion-unaware analytical model: a message
//!   costs `hops × latency + size / bandwidth` on the first dimension where the
//!   two NPU coordinates differ (dimension 0 varies fastest); links are never
//!   shared, so concurrent messages do not slow each other down.
//! * [`Aware`] — the congestion-aware analytical model, one dimension only:
//!   every directed link serves one chunk at a time in FIFO order, store and
//!   forward per hop, routes fixed (ring: shortest direction with ties
//!   clockwise; switch: through the switch; fully connected: direct).
//!
//! Units: bandwidth in GB/s where GB is 2^30 bytes (converted to bytes/ns as
//! `GBps * 2^30 / 1e9`), latency in ns, delays truncated to integer ns at the
//! same points ASTRA-sim truncates them.

pub mod matching;

use crate::config::{NetworkDim, Topology};
use crate::engine::Time;

/// Bytes per nanosecond for a bandwidth in (binary) GB/s.
pub fn gbps_to_bytes_per_ns(gbps: f64) -> f64 {
    gbps * (1u64 << 30) as f64 / 1_000_000_000.0
}

/// Hops between two members of one dimension.
fn hops(topology: Topology, npus: u32, src: u32, dst: u32) -> u32 {
    match topology {
        Topology::Ring => {
            let cw = (dst + npus - src) % npus;
            cw.min(npus - cw)
        }
        Topology::FullyConnected => 1,
        Topology::Switch => 2,
    }
}

/// The congestion-unaware backend.
#[derive(Clone, Debug)]
pub struct Unaware {
    dims: Vec<(Topology, u32, f64, f64)>,
    /// Every rank's coordinate in each dimension (`rank * dims + d`), so a
    /// delay needs no integer division.
    coords: Vec<u32>,
}

/// Ranks up to which [`Unaware`] keeps a coordinate table.
const COORD_TABLE_RANKS: u64 = 1 << 20;

impl Unaware {
    /// A backend over the given dimensions.
    pub fn new(dims: &[NetworkDim]) -> Unaware {
        let dims: Vec<_> =
            dims.iter().map(|d| (d.topology, d.npus, gbps_to_bytes_per_ns(d.bandwidth_gbps), d.latency_ns)).collect();
        let total = dims.iter().try_fold(1u64, |acc, d| acc.checked_mul(d.1 as u64)).unwrap_or(u64::MAX);
        let mut coords = Vec::new();
        if total <= COORD_TABLE_RANKS && dims.iter().all(|d| d.1 > 0) {
            coords.reserve(total as usize * dims.len());
            for rank in 0..total as u32 {
                let mut r = rank;
                for d in &dims {
                    coords.push(r % d.1);
                    r /= d.1;
                }
            }
        }
        Unaware { dims, coords }
    }

    /// Delivery delay of `size` bytes from `src` to `dst`.
    #[inline]
    pub fn delay(&self, src: u32, dst: u32, size: u64) -> Time {
        let nd = self.dims.len();
        let (s, d) = (src as usize * nd, dst as usize * nd);
        let (Some(a), Some(b)) = (self.coords.get(s..s + nd), self.coords.get(d..d + nd)) else {
            return self.delay_uncached(src, dst, size);
        };
        for (k, &(topology, npus, bw, latency)) in self.dims.iter().enumerate() {
            let (ca, cb) = (a[k], b[k]);
            if ca != cb {
                let hops = match topology {
                    Topology::Ring => {
                        let cw = if cb >= ca { cb - ca } else { cb + npus - ca };
                        cw.min(npus - cw)
                    }
                    Topology::FullyConnected => 1,
                    Topology::Switch => 2,
                };
                return (hops as f64 * latency + size as f64 / bw) as Time;
            }
        }
        0
    }

    /// The route a message from `src` to `dst` takes: the first dimension
    /// where their coordinates differ and the hops on it (`None` for a rank
    /// and itself). Two messages of one size with the same route take the
    /// same time.
    pub fn route(&self, src: u32, dst: u32) -> Option<(usize, u32)> {
        let (mut a, mut b) = (src, dst);
        for (k, &(topology, npus, _, _)) in self.dims.iter().enumerate() {
            let (ca, cb) = (a % npus.max(1), b % npus.max(1));
            if ca != cb {
                return Some((k, hops(topology, npus, ca, cb)));
            }
            a /= npus.max(1);
            b /= npus.max(1);
        }
        None
    }

    /// [`Unaware::delay`] for ranks outside the coordinate table.
    fn delay_uncached(&self, src: u32, dst: u32, size: u64) -> Time {
        let (mut a, mut b) = (src, dst);
        for &(topology, npus, bw, latency) in &self.dims {
            let (ca, cb) = (a % npus, b % npus);
            if ca != cb {
                let link = hops(topology, npus, ca, cb) as f64 * latency;
                return (link + size as f64 / bw) as Time;
            }
            a /= npus;
            b /= npus;
        }
        0
    }
}

/// A directed link of the congestion-aware backend.
#[derive(Clone, Debug, Default)]
struct Link {
    busy: bool,
    pending: std::collections::VecDeque<u32>,
}

/// What the congestion-aware backend asks the caller to schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwareEvent {
    /// A chunk reaches the far end of its current link.
    Arrive {
        /// Chunk id.
        chunk: u32,
    },
    /// A link finishes serializing and may start its next chunk.
    LinkFree {
        /// Link id.
        link: u32,
    },
}

struct Chunk {
    route: Vec<u32>,
    /// Index of the link in `route` the chunk is on or waiting for.
    hop: usize,
    size: u64,
    msg: u32,
}

/// The congestion-aware backend (one dimension).
pub struct Aware {
    bw: f64,
    latency: f64,
    topology: Topology,
    npus: u32,
    links: Vec<Link>,
    link_of: std::collections::HashMap<(u32, u32), u32>,
    chunks: Vec<Option<Chunk>>,
    free_chunks: Vec<u32>,
}

impl Aware {
    /// A backend over one dimension; `None` for more than one dimension.
    pub fn new(dims: &[NetworkDim]) -> Option<Aware> {
        let [d] = dims else { return None };
        let mut aware = Aware {
            bw: gbps_to_bytes_per_ns(d.bandwidth_gbps),
            latency: d.latency_ns,
            topology: d.topology,
            npus: d.npus,
            links: Vec::new(),
            link_of: Default::default(),
            chunks: Vec::new(),
            free_chunks: Vec::new(),
        };
        let n = d.npus;
        let add = |a: u32, b: u32, aw: &mut Aware| {
            let id = aw.links.len() as u32;
            aw.links.push(Link::default());
            aw.link_of.insert((a, b), id);
        };
        match d.topology {
            Topology::Ring => {
                for i in 0..n {
                    let j = (i + 1) % n;
                    if !aware.link_of.contains_key(&(i, j)) {
                        add(i, j, &mut aware);
                    }
                    if !aware.link_of.contains_key(&(j, i)) {
                        add(j, i, &mut aware);
                    }
                }
            }
            Topology::Switch => {
                for i in 0..n {
                    add(i, n, &mut aware);
                    add(n, i, &mut aware);
                }
            }
            Topology::FullyConnected => {
                for i in 0..n {
                    for j in 0..n {
                        if i != j {
                            add(i, j, &mut aware);
                        }
                    }
                }
            }
        }
        Some(aware)
    }

    /// Link ids from `src` to `dst`.
    fn route(&self, src: u32, dst: u32) -> Vec<u32> {
        let n = self.npus;
        let devices: Vec<u32> = match self.topology {
            Topology::Ring => {
                let cw = (dst + n - src) % n;
                let acw = n - cw;
                let mut path = vec![src];
                let mut cur = src;
                if acw < cw {
                    while cur != dst {
                        cur = (cur + n - 1) % n;
                        path.push(cur);
                    }
                } else {
                    while cur != dst {
                        cur = (cur + 1) % n;
                        path.push(cur);
                    }
                }
                path
            }
            Topology::Switch => vec![src, n, dst],
            Topology::FullyConnected => vec![src, dst],
        };
        devices.windows(2).map(|w| self.link_of[&(w[0], w[1])]).collect()
    }

    /// Starts a message of `size` bytes; `msg` is handed back on delivery.
    /// Events to schedule (delay, event) are appended to `out`.
    pub fn send(&mut self, src: u32, dst: u32, size: u64, msg: u32, out: &mut Vec<(Time, AwareEvent)>) {
        let route = self.route(src, dst);
        let chunk = Chunk { route, hop: 0, size, msg };
        let id = match self.free_chunks.pop() {
            Some(id) => {
                self.chunks[id as usize] = Some(chunk);
                id
            }
            None => {
                self.chunks.push(Some(chunk));
                (self.chunks.len() - 1) as u32
            }
        };
        self.enter_link(id, out);
    }

    fn enter_link(&mut self, chunk: u32, out: &mut Vec<(Time, AwareEvent)>) {
        let c = self.chunks[chunk as usize].as_ref().expect("live chunk");
        let link = c.route[c.hop];
        let l = &mut self.links[link as usize];
        if l.busy {
            l.pending.push_back(chunk);
        } else {
            self.transmit(link, chunk, out);
        }
    }

    fn transmit(&mut self, link: u32, chunk: u32, out: &mut Vec<(Time, AwareEvent)>) {
        self.links[link as usize].busy = true;
        let size = self.chunks[chunk as usize].as_ref().expect("live chunk").size as f64;
        let serialization = size / self.bw;
        out.push(((self.latency + serialization) as Time, AwareEvent::Arrive { chunk }));
        out.push((serialization as Time, AwareEvent::LinkFree { link }));
    }

    /// Handles an event; returns the delivered message when a chunk reached its
    /// destination.
    pub fn handle(&mut self, ev: AwareEvent, out: &mut Vec<(Time, AwareEvent)>) -> Option<u32> {
        match ev {
            AwareEvent::LinkFree { link } => {
                match self.links[link as usize].pending.pop_front() {
                    Some(next) => self.transmit(link, next, out),
                    None => self.links[link as usize].busy = false,
                }
                None
            }
            AwareEvent::Arrive { chunk } => {
                let c = self.chunks[chunk as usize].as_mut().expect("live chunk");
                c.hop += 1;
                if c.hop == c.route.len() {
                    let msg = c.msg;
                    self.chunks[chunk as usize] = None;
                    self.free_chunks.push(chunk);
                    Some(msg)
                } else {
                    self.enter_link(chunk, out);
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dim(topology: Topology, npus: u32, bw: f64, lat: f64) -> NetworkDim {
        NetworkDim { topology, npus, bandwidth_gbps: bw, latency_ns: lat }
    }

    /// astra-sim-semantics.md §3: 32768 B on Ring 8 at 50 GB/s and 500 ns = 1110 ns.
    #[test]
    fn unaware_ring_message_matches_the_documented_value() {
        let u = Unaware::new(&[dim(Topology::Ring, 8, 50.0, 500.0)]);
        assert_eq!(u.delay(0, 1, 32768), 1110);
        assert_eq!(u.delay(0, 7, 32768), 1110);
        assert_eq!(u.delay(0, 4, 32768), (4.0 * 500.0 + 32768.0 / gbps_to_bytes_per_ns(50.0)) as u64);
    }

    #[test]
    fn unaware_uses_the_first_differing_dimension() {
        // FC2 x Switch4: 1 -> 2 differ in dimension 0 (1 vs 0) => one FC hop.
        let u = Unaware::new(&[dim(Topology::FullyConnected, 2, 200.0, 100.0), dim(Topology::Switch, 4, 50.0, 500.0)]);
        assert_eq!(u.delay(1, 2, 0), 100);
        assert_eq!(u.delay(0, 2, 0), 1000);
        for (a, b) in [(0, 7), (3, 5), (6, 1), (7, 7)] {
            assert_eq!(u.delay(a, b, 4096), u.delay_uncached(a, b, 4096));
        }
    }

    #[test]
    fn aware_link_serializes_two_chunks() {
        let mut a = Aware::new(&[dim(Topology::Ring, 4, 1.0, 10.0)]).unwrap();
        let mut out = Vec::new();
        a.send(0, 1, 1000, 7, &mut out);
        a.send(0, 1, 1000, 8, &mut out);
        // Only the first chunk is on the wire.
        assert_eq!(out.len(), 2);
        let ser = (1000.0 / gbps_to_bytes_per_ns(1.0)) as u64;
        assert_eq!(out[1], (ser, AwareEvent::LinkFree { link: 0 }));
        let mut out2 = Vec::new();
        assert_eq!(a.handle(AwareEvent::LinkFree { link: 0 }, &mut out2), None);
        assert_eq!(out2.len(), 2, "the second chunk starts when the link frees");
        assert_eq!(a.handle(AwareEvent::Arrive { chunk: 0 }, &mut Vec::new()), Some(7));
    }
}
