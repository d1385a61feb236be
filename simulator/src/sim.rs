//! The simulation: one event loop driving every rank's workload and system
//! layer over one network backend.
//!
//! Two levels of events reproduce ASTRA-sim's ordering exactly: the global
//! queue ([`crate::engine`]) and, per rank, a map from tick to a FIFO list of
//! system events. Registering a system event at a tick that has no list yet
//! creates the list and schedules one global `SysTick` for it; the tick runs
//! its list to the end, including events appended while it runs.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use crate::chakra::{CollectiveCommType, NodeType};
use crate::config::NetworkDim;
use crate::engine::{EventQueue, Time};
use crate::error::SimError;
use crate::network::matching::{Matcher, MsgKey, Ticket};
use crate::network::{Aware, AwareEvent, Unaware};
use crate::report::{intersection_len, merged, RankReport, Report};
use crate::symmetry::{Mirror, LOCAL};
use crate::system::algorithm::{Action, AlgoEvent, Algorithm, DoubleBinaryTree, HalvingDoubling, RingAlgo};
use crate::system::topology::{tree_node, Direction, Ring, TreeKind};
use crate::system::{CollKind, CollectiveImpl, SchedulingPolicy, SysParams};
use crate::workload::Workload;

/// Which network model to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// Closed-form delays, no contention.
    CongestionUnaware,
    /// Per-link FIFO queues (one-dimensional topologies only).
    CongestionAware,
}

impl BackendKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::CongestionUnaware => "congestion-unaware",
            BackendKind::CongestionAware => "congestion-aware",
        }
    }
}

/// Everything a run needs, loaded and validated.
pub struct SimSpec {
    /// One workload per rank, rank order.
    pub workloads: Vec<Workload>,
    /// Network dimensions.
    pub network: Vec<NetworkDim>,
    /// Network model.
    pub backend: BackendKind,
    /// System-layer parameters.
    pub params: SysParams,
    /// Communicator groups (`--comm-group`), if any.
    pub groups: Option<crate::config::CommGroups>,
    /// Record every node's span for a timeline (costs memory on big runs).
    pub record_timeline: bool,
    /// Custom collective implementations: per collective, one parsed ET per
    /// position in the communicator (rank order without a group).
    pub custom: HashMap<CollKind, Vec<Workload>>,
    /// `--rendezvous-protocol`: every send waits for the receiver's go-ahead.
    pub rendezvous: bool,
    /// Remote memory model for MEM_LOAD / MEM_STORE nodes.
    pub memory: Option<crate::config::MemoryConfig>,
    /// Hardware slots per rank (ASTRA-sim: one of each).
    pub slots: crate::workload::HardwareSlots,
    /// Correction of an ASTRA-sim behaviour: after a node is skipped (metadata,
    /// invalid, roofline with tensor_size 0), run the issue loop again so the
    /// nodes it freed are issued at once. ASTRA-sim does not, and a rank whose
    /// only progress was such a node never finishes. Off by default (parity).
    pub reissue_after_skip: bool,
    /// Every rank's trace file has the same bytes (set by the loader; the
    /// rank-symmetry check then need not compare the loaded traces).
    pub identical_ranks: bool,
    /// Simulate one representative rank when all ranks are symmetric (see
    /// the `symmetry` module); results are the same either way.
    pub symmetry: bool,
}

/// One remote-memory port: serves one access at a time, FIFO.
#[derive(Clone, Debug, Default)]
struct MemPort {
    busy: bool,
    pending: VecDeque<(u32, u32)>,
}

/// Who is told when a message event happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handler {
    Nop,
    Stream {
        stream: u32,
    },
    NodeDone {
        rank: u32,
        node: u32,
    },
    CustomDone {
        stream: u32,
        node: u32,
    },
    /// Rendezvous: the receiver's go-ahead reached the sender; send for real.
    RendezvousSend {
        op: u32,
    },
    /// Rendezvous: the go-ahead was delivered; post the real receive.
    RendezvousRecv {
        op: u32,
    },
}

/// A send or receive deferred by the rendezvous protocol.
#[derive(Clone, Copy, Debug)]
struct DeferredOp {
    rank: u32,
    peer: u32,
    size: u64,
    tag: u64,
    handler: Handler,
}

/// Size of the rendezvous control message (ASTRA-sim's constant).
const RENDEZVOUS_BYTES: u64 = 8192;
/// Tag offset of rendezvous control messages.
const RENDEZVOUS_TAG: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug)]
enum Event {
    SysTick { rank: u32 },
    Deliver { msg: u32 },
    Aware(AwareEvent),
    Late { handler: Handler },
}

#[derive(Clone, Copy, Debug)]
enum SysEvent {
    Bundle { stream: u32, processing: bool, size: u64 },
    NodeDone { node: u32 },
    CustomDone { stream: u32, node: u32 },
    MemPortFree { port: u32 },
}

/// A running custom collective on one rank: its own copy of the algorithm's
/// ET and the communicator members (algorithm rank -> real rank).
struct CustomRun {
    graph: Workload,
    members: Option<Rc<[u32]>>,
}

struct InFlight {
    ticket: Ticket,
    on_sent: Handler,
}

struct Phase {
    queue: usize,
    algo: Algorithm,
    /// Communicator-group rings use ASTRA-sim's "Local" transmission: bundles
    /// cost a fixed 10 ns instead of the endpoint delay.
    fast: bool,
}

struct Stream {
    rank: u32,
    dataset: u32,
    tag: u64,
    priority: i64,
    phases: VecDeque<Phase>,
    current: Option<Phase>,
    queue: Option<usize>,
    initialized: bool,
}

struct DataSet {
    rank: u32,
    node: u32,
    total: u32,
    finished: u32,
}

/// Queue cursors of one dimension (ASTRA-sim's QueueLevelHandler).
#[derive(Clone, Debug)]
struct QueueLevel {
    first_queue: usize,
    count: usize,
    next: usize,
    first: usize,
    last: usize,
}

impl QueueLevel {
    fn next_any(&mut self) -> (usize, Direction) {
        let dir =
            if self.count > 1 && self.next >= self.count / 2 { Direction::Anticlockwise } else { Direction::Clockwise };
        let q = self.first_queue + self.next;
        self.next += 1;
        if self.next == self.count {
            self.next = 0;
        }
        (q, dir)
    }
    fn next_first(&mut self) -> (usize, Direction) {
        let q = self.first_queue + self.first;
        self.first += 1;
        if self.first >= self.count / 2 {
            self.first = 0;
        }
        (q, Direction::Clockwise)
    }
    fn next_last(&mut self) -> (usize, Direction) {
        let q = self.first_queue + self.last;
        self.last += 1;
        if self.last >= self.count {
            self.last = self.count / 2;
        }
        (q, Direction::Anticlockwise)
    }
}

/// Per-rank event lists: tick -> (head, tail) of a linked list in a shared pool,
/// so registering an event allocates nothing once the pool has grown.
#[derive(Default)]
struct EventPool {
    items: Vec<(SysEvent, u32)>,
    free: Vec<u32>,
}

const NIL: u32 = u32::MAX;

impl EventPool {
    fn push(&mut self, ev: SysEvent) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = (ev, NIL);
                i
            }
            None => {
                self.items.push((ev, NIL));
                (self.items.len() - 1) as u32
            }
        }
    }
}

/// One rank's system-layer state.
struct RankSys {
    /// Pending ticks: (time, head, tail); few at a time, scanned linearly.
    events: Vec<(Time, u32, u32)>,
    active: Vec<Vec<u32>>,
    running: Vec<u32>,
    levels: Vec<QueueLevel>,
    priority_counter: i64,
    stream_counter: u64,
    group_stream_counters: HashMap<String, u64>,
    tree_toggle: HashMap<(String, CollKind, usize), bool>,
    /// Process groups declared by the trace's metadata nodes: members, first stream id.
    trace_groups: HashMap<String, (Rc<[u32]>, u64)>,
    gpu_intervals: Vec<(u64, u64)>,
    cpu_intervals: Vec<(u64, u64)>,
    comm_intervals: Vec<(u64, u64)>,
    nodes_done: u64,
}

enum Backend {
    Unaware(Unaware),
    Aware(Aware),
}

/// A simulation ready to run.
pub struct Simulation {
    q: EventQueue<Event>,
    params: SysParams,
    dims: Vec<u32>,
    total_nodes: u64,
    concurrent_streams: u32,
    backend: Backend,
    backend_kind: BackendKind,
    matcher: Matcher<Handler>,
    msgs: Vec<Option<InFlight>>,
    free_msgs: Vec<u32>,
    wl: Vec<Workload>,
    sys: Vec<RankSys>,
    streams: Vec<Option<Stream>>,
    free_streams: Vec<u32>,
    datasets: Vec<Option<DataSet>>,
    free_datasets: Vec<u32>,
    /// Comm-group file groups resolved so far, by pg_name: members, first stream id.
    file_groups: rustc_hash::FxHashMap<String, (Rc<[u32]>, u64)>,
    /// Whether the comm-group file defines a group "0" itself.
    explicit_zero: bool,
    /// Groups by pg_name: members and the first stream id of the group.
    groups: Option<crate::config::CommGroups>,
    action_pool: Vec<Vec<Action>>,
    aware_out: Vec<(Time, AwareEvent)>,
    pool: EventPool,
    custom_templates: HashMap<CollKind, Vec<Workload>>,
    rendezvous: bool,
    reissue_after_skip: bool,
    skipped: bool,
    memory: Option<crate::config::MemoryConfig>,
    mem_ports: Vec<MemPort>,
    deferred: Vec<Option<DeferredOp>>,
    free_deferred: Vec<u32>,
    customs: Vec<Option<CustomRun>>,
    free_customs: Vec<u32>,
    error: Option<SimError>,
    timeline: Option<Vec<crate::report::Span>>,
    /// The run qualifies for the rank-symmetry reduction.
    symmetric: bool,
    /// Set in a representative run (one rank standing for all).
    mirror: Option<Box<Mirror>>,
    /// The run qualifies for the replica reduction (see the `symmetry` module).
    replicas: Option<Rc<crate::symmetry::Replicas>>,
    /// The ranks simulated, when not all are (a replica run).
    active: Option<Rc<[u32]>>,
}

const COLL_TAG_BASE: u64 = 500_000_000;

fn dims_len_max(dims: &[(Ring, CollectiveImpl)]) -> usize {
    dims.len().max(10)
}

fn rank_sys(levels: &[QueueLevel]) -> RankSys {
    RankSys {
        events: Vec::new(),
        active: vec![Vec::new(); levels.iter().map(|l| l.count).sum()],
        running: vec![0; levels.iter().map(|l| l.count).sum()],
        levels: levels.to_vec(),
        priority_counter: 0,
        stream_counter: 0,
        group_stream_counters: HashMap::new(),
        tree_toggle: HashMap::new(),
        trace_groups: HashMap::new(),
        gpu_intervals: Vec::new(),
        cpu_intervals: Vec::new(),
        comm_intervals: Vec::new(),
        nodes_done: 0,
    }
}

fn alloc<T>(slab: &mut Vec<Option<T>>, free: &mut Vec<u32>, v: T) -> u32 {
    match free.pop() {
        Some(i) => {
            slab[i as usize] = Some(v);
            i
        }
        None => {
            slab.push(Some(v));
            (slab.len() - 1) as u32
        }
    }
}

impl Simulation {
    /// Checks the spec and prepares the run.
    pub fn new(spec: SimSpec) -> Result<Simulation, SimError> {
        let dims: Vec<u32> = spec.network.iter().map(|d| d.npus).collect();
        let total: u64 = dims.iter().map(|&d| d as u64).product();
        if spec.workloads.len() as u64 != total {
            return Err(SimError::Setup(format!(
                "the network has {total} NPUs ({}) but the workload has {} rank files; expected one trace per NPU",
                dims.iter().map(u32::to_string).collect::<Vec<_>>().join(" x "),
                spec.workloads.len()
            )));
        }
        // Every communicator group a node names must exist before anything runs.
        let explicit_zero = spec.groups.as_ref().is_some_and(|g| g.group("0").is_some());
        for w in &spec.workloads {
            let declared: Vec<&str> =
                w.nodes.iter().flat_map(|n| n.process_groups.iter().map(|(pg, _)| pg.as_str())).collect();
            for n in &w.nodes {
                let Some(pg) = n.comm.group.as_deref() else { continue };
                let stoi = crate::config::comm_group::stoi;
                if declared.iter().any(|d| *d == pg || (stoi(d).is_some() && stoi(d) == stoi(pg))) {
                    continue;
                }
                if n.kind != NodeType::CommCollNode || pg.is_empty() || (pg == "0" && !explicit_zero) {
                    continue;
                }
                if spec.groups.as_ref().and_then(|g| g.group(pg)).is_none() {
                    return Err(SimError::Node {
                        path: w.path.clone(),
                        node: n.id,
                        name: n.name.clone(),
                        what: match &spec.groups {
                            Some(_) => format!("pg_name \"{pg}\" names a communicator group the comm-group file does not define"),
                            None => format!("pg_name \"{pg}\" names a communicator group; give the comm-group file with --comm-group"),
                        },
                    });
                }
            }
        }
        let mut spec = spec;
        for w in &mut spec.workloads {
            w.slots = spec.slots;
        }
        let backend = match spec.backend {
            BackendKind::CongestionUnaware => Backend::Unaware(Unaware::new(&spec.network)),
            BackendKind::CongestionAware => Backend::Aware(Aware::new(&spec.network).ok_or_else(|| {
                SimError::Setup(format!(
                    "the congestion-aware backend supports one-dimensional topologies only (as ASTRA-sim's); this network has {} dimensions: use --backend congestion-unaware",
                    spec.network.len()
                ))
            })?),
        };
        let mut queues_per_dim = spec.params.queues_per_dim.clone();
        queues_per_dim.resize(dims.len().max(1), *queues_per_dim.last().unwrap_or(&1));
        let mut levels = Vec::new();
        let mut base = 0;
        for &count in &queues_per_dim {
            let count = count.max(1) as usize;
            levels.push(QueueLevel { first_queue: base, count, next: 0, first: 0, last: count / 2 });
            base += count;
        }
        let concurrent_streams = spec.params.active_chunks.div_ceil(queues_per_dim[0].max(1)).max(1);
        let sys = (0..total).map(|_| rank_sys(&levels)).collect();
        let symmetric = match crate::symmetry::ineligible(&spec) {
            None => true,
            Some(why) => {
                if spec.symmetry && spec.workloads.len() > 1 {
                    tracing::debug!("rank symmetry not used: {why}");
                }
                false
            }
        };
        let replicas = match &backend {
            Backend::Unaware(u) if !symmetric && spec.groups.is_some() && spec.symmetry => {
                match crate::symmetry::replicas(&spec, u) {
                    Ok(rp) => Some(Rc::new(rp)),
                    Err(why) => {
                        tracing::debug!("replica symmetry not used: {why}");
                        None
                    }
                }
            }
            _ => None,
        };
        Ok(Simulation {
            q: EventQueue::new(),
            params: spec.params,
            dims,
            total_nodes: total,
            concurrent_streams,
            backend,
            backend_kind: spec.backend,
            matcher: Matcher::default(),
            msgs: Vec::new(),
            free_msgs: Vec::new(),
            wl: spec.workloads,
            sys,
            streams: Vec::new(),
            free_streams: Vec::new(),
            datasets: Vec::new(),
            free_datasets: Vec::new(),
            file_groups: Default::default(),
            explicit_zero,
            groups: spec.groups,
            action_pool: Vec::new(),
            aware_out: Vec::new(),
            pool: EventPool::default(),
            custom_templates: spec.custom,
            rendezvous: spec.rendezvous,
            reissue_after_skip: spec.reissue_after_skip,
            skipped: false,
            memory: spec.memory,
            mem_ports: Vec::new(),
            deferred: Vec::new(),
            free_deferred: Vec::new(),
            customs: Vec::new(),
            free_customs: Vec::new(),
            error: None,
            timeline: spec.record_timeline.then(Vec::new),
            symmetric,
            mirror: None,
            replicas,
            active: None,
        })
    }

    /// Runs to completion. A run that ends with unfinished work is an error
    /// carrying a diagnosis and the partial report.
    ///
    /// When every rank is symmetric (see the `symmetry` module) one
    /// representative rank is simulated and its results given to every rank;
    /// if that run ends in anything but success, or meets a same-tick order
    /// that could differ between ranks, the full simulation runs instead (and
    /// gives the exact error or diagnosis).
    pub fn run(self) -> Result<Report, SimError> {
        if let Some(rp) = self.replicas.clone() {
            let ranks = self.wl.len();
            match self.replica_run(&rp).ok_or(SimError::Setup(String::new())).and_then(Simulation::run_events) {
                Ok(report) => {
                    tracing::info!(
                        "{ranks} ranks in {} symmetric replicas of {}: simulated one replica",
                        rp.count(),
                        rp.ranks.len()
                    );
                    return Ok(crate::symmetry::expand_replicas(report, &rp));
                }
                // Every replica would overflow the same way.
                Err(e @ SimError::TimeOverflow { .. }) => return Err(e),
                Err(e) => {
                    let why = match e {
                        SimError::Stalled { .. } => "the replica stalled".to_string(),
                        e => e.to_string().lines().next().unwrap_or_default().to_string(),
                    };
                    tracing::info!("replica symmetry abandoned ({why}); simulating all {ranks} ranks");
                }
            }
        }
        if let Some(rep) = self.representative() {
            let ranks = self.wl.len();
            match rep.run_events() {
                Ok(report) => {
                    tracing::info!("all {ranks} ranks symmetric: simulated one representative");
                    return Ok(crate::symmetry::expand(report, ranks));
                }
                // Every rank runs the representative's trace: all would overflow.
                Err(e @ SimError::TimeOverflow { .. }) => return Err(e),
                Err(e) => {
                    let why = match e {
                        SimError::Stalled { .. } => "the representative stalled".to_string(),
                        e => e.to_string().lines().next().unwrap_or_default().to_string(),
                    };
                    tracing::info!("rank symmetry abandoned ({why}); simulating all {ranks} ranks");
                }
            }
        }
        self.run_events()
    }

    /// A one-rank simulation standing for all ranks, when the run qualifies.
    fn representative(&self) -> Option<Simulation> {
        if !self.symmetric {
            return None;
        }
        let sys = vec![rank_sys(&self.sys[0].levels)];
        self.reduced(vec![self.wl[0].clone()], sys, false, None, Mirror::default(), None)
    }

    /// A simulation of replica 0's ranks standing for every replica.
    fn replica_run(&self, rp: &crate::symmetry::Replicas) -> Option<Simulation> {
        let mut wl: Vec<Workload> = Vec::with_capacity(self.wl.len());
        wl.resize_with(self.wl.len(), Workload::default);
        for &r in &rp.ranks {
            wl[r as usize] = self.wl[r as usize].clone();
        }
        let sys = self.sys.iter().map(|s| rank_sys(&s.levels)).collect();
        let mirror = Mirror::for_replicas(rp);
        self.reduced(wl, sys, self.explicit_zero, self.groups.clone(), mirror, Some(rp.ranks.clone().into()))
    }

    /// A fresh simulation over this one's configuration for a reduced run
    /// (congestion-unaware only): the given workloads and system state, the
    /// same-tick `mirror`, and the ranks it runs (`None`: all it holds).
    fn reduced(
        &self,
        wl: Vec<Workload>,
        sys: Vec<RankSys>,
        explicit_zero: bool,
        groups: Option<crate::config::CommGroups>,
        mirror: Mirror,
        active: Option<Rc<[u32]>>,
    ) -> Option<Simulation> {
        let Backend::Unaware(unaware) = &self.backend else { return None };
        Some(Simulation {
            q: EventQueue::new(),
            params: self.params.clone(),
            dims: self.dims.clone(),
            total_nodes: self.total_nodes,
            concurrent_streams: self.concurrent_streams,
            backend: Backend::Unaware(unaware.clone()),
            backend_kind: self.backend_kind,
            matcher: Matcher::default(),
            msgs: Vec::new(),
            free_msgs: Vec::new(),
            wl,
            sys,
            streams: Vec::new(),
            free_streams: Vec::new(),
            datasets: Vec::new(),
            free_datasets: Vec::new(),
            file_groups: Default::default(),
            explicit_zero,
            groups,
            action_pool: Vec::new(),
            aware_out: Vec::new(),
            pool: EventPool::default(),
            custom_templates: HashMap::new(),
            rendezvous: false,
            reissue_after_skip: self.reissue_after_skip,
            skipped: false,
            memory: self.memory.clone(),
            mem_ports: Vec::new(),
            deferred: Vec::new(),
            free_deferred: Vec::new(),
            customs: Vec::new(),
            free_customs: Vec::new(),
            error: None,
            timeline: None,
            symmetric: false,
            mirror: Some(Box::new(mirror)),
            replicas: None,
            active,
        })
    }

    fn run_events(mut self) -> Result<Report, SimError> {
        let ranks: Rc<[u32]> = match &self.active {
            Some(a) => a.clone(),
            None => (0..self.wl.len() as u32).collect(),
        };
        for &r in ranks.iter() {
            self.workload_call(r, None);
            if let Some(e) = self.error.take() {
                return Err(e);
            }
        }
        while let Some(ev) = self.q.pop() {
            if self.mirror.is_some() && !self.mirror_order_safe(ev) {
                return Err(SimError::Setup(format!(
                    "events at {} ns scheduled at the same tick by different ranks",
                    self.now()
                )));
            }
            self.handle(ev);
            // Test before taking: `take` would move the whole error slot per event.
            if self.error.is_some() {
                if let Some(e) = self.error.take() {
                    return Err(e);
                }
            }
        }
        let report = self.report();
        // The clock saturates: a time at the maximum overflowed on the way.
        if let Some(r) = report.ranks.iter().find(|r| r.finish_ns == Some(Time::MAX)) {
            let trace = self.wl.get(r.rank as usize).map(|w| w.path.clone()).unwrap_or_default();
            return Err(SimError::TimeOverflow { rank: r.rank, trace });
        }
        if report.ranks.iter().any(|r| r.finish_ns.is_none()) {
            let diagnosis = self.diagnose();
            return Err(SimError::Stalled { time_ns: self.q.now(), diagnosis, report: Box::new(report) });
        }
        Ok(report)
    }

    fn now(&self) -> Time {
        self.q.now()
    }

    /// Representative runs: whether `ev` (just popped) runs in the same order,
    /// relative to the previous event, on every rank of the full simulation.
    fn mirror_order_safe(&mut self, ev: Event) -> bool {
        let now = self.now();
        let Some(m) = self.mirror.as_deref_mut() else { return true };
        let (born, source) = match ev {
            Event::SysTick { rank } => (m.tick_fired(rank, now), LOCAL),
            Event::Deliver { msg } => m.msg(msg),
            Event::Late { .. } => (now, LOCAL),
            Event::Aware(_) => return false,
        };
        m.observe(now, born, source)
    }

    /// Representative runs: the representative sends `size` bytes to `dst`
    /// and, in the same step, receives from `src`; it gets `src`'s message
    /// (the mirror image of its own) with the delay of `src`'s real send.
    fn mirror_send(&mut self, rank: u32, dst: u32, src: u32, size: u64, tag: u64) {
        let Backend::Unaware(u) = &self.backend else {
            return self.fail(SimError::Setup("rank symmetry needs the congestion-unaware backend".into()));
        };
        let delay = u.delay(src, rank, size);
        if delay == 0 || delay != u.delay(rank, dst, size) {
            return self.fail(SimError::Setup(format!(
                "a message from rank {src} takes {delay} ns, not the delay of the send to rank {dst}"
            )));
        }
        let now = self.now();
        let ticket = self.matcher.send(MsgKey { tag, src, dst: rank, size });
        let msg = alloc(&mut self.msgs, &mut self.free_msgs, InFlight { ticket, on_sent: Handler::Nop });
        if let Some(m) = self.mirror.as_deref_mut() {
            let source = m.source(src);
            m.msg_sent(msg, now, source);
        }
        self.q.schedule(delay, Event::Deliver { msg });
    }

    fn fail(&mut self, e: SimError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    // ------------------------------------------------------------ events

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::SysTick { rank } => self.call_events(rank),
            Event::Deliver { msg } => self.deliver(msg),
            Event::Aware(a) => {
                let Backend::Aware(aware) = &mut self.backend else {
                    unreachable!("aware event without aware backend")
                };
                let mut out = std::mem::take(&mut self.aware_out);
                let delivered = aware.handle(a, &mut out);
                for (delay, e) in out.drain(..) {
                    self.q.schedule(delay, Event::Aware(e));
                }
                self.aware_out = out;
                if let Some(msg) = delivered {
                    self.deliver(msg);
                }
            }
            Event::Late { handler } => self.call_handler(handler),
        }
    }

    fn register(&mut self, rank: u32, delay: Time, ev: SysEvent) {
        let t = self.now().saturating_add(delay);
        let item = self.pool.push(ev);
        let events = &mut self.sys[rank as usize].events;
        match events.iter_mut().find(|e| e.0 == t) {
            Some((_, head, tail)) => {
                if *tail == NIL {
                    *head = item;
                } else {
                    self.pool.items[*tail as usize].1 = item;
                }
                *tail = item;
            }
            None => {
                events.push((t, item, item));
                self.q.schedule(delay, Event::SysTick { rank });
                if let Some(m) = self.mirror.as_deref_mut() {
                    m.tick_scheduled(rank, t, self.q.now());
                }
            }
        }
    }

    fn call_events(&mut self, rank: u32) {
        let t = self.now();
        // The tick's entry keeps its position while it runs: registering only
        // appends entries, and entries are removed only here, at the end.
        let Some(pos) = self.sys[rank as usize].events.iter().position(|e| e.0 == t) else { return };
        loop {
            // Pop the head; events appended while this tick runs are seen too.
            let (_, head, tail) = &mut self.sys[rank as usize].events[pos];
            if *head == NIL {
                break;
            }
            let i = *head;
            let (ev, next) = self.pool.items[i as usize];
            *head = next;
            if next == NIL {
                *tail = NIL;
            }
            self.pool.free.push(i);
            self.sys_event(rank, ev);
            if self.error.is_some() {
                return;
            }
        }
        self.sys[rank as usize].events.swap_remove(pos);
    }

    fn sys_event(&mut self, rank: u32, ev: SysEvent) {
        match ev {
            SysEvent::Bundle { stream, processing: true, size } => {
                if !self.params.local_mem_bw_gbps.is_some_and(|b| b > 0.0) {
                    let file = self
                        .params
                        .source
                        .as_ref()
                        .map_or("the system config".to_string(), |p| p.display().to_string());
                    return self.fail(SimError::Setup(format!(
                        "{file}: key `local-mem-bw` is missing or 0, but this collective's reduction steps need it (GB/s); ASTRA-sim would divide by zero here"
                    )));
                }
                let delay = self.params.reduction_delay(size);
                self.register(rank, delay, SysEvent::Bundle { stream, processing: false, size });
            }
            SysEvent::Bundle { stream, processing: false, .. } => self.stream_event(stream, AlgoEvent::General),
            SysEvent::NodeDone { node } => self.workload_call(rank, Some(node)),
            SysEvent::CustomDone { stream, node } => self.custom_done(stream, node),
            SysEvent::MemPortFree { port } => {
                let p = &mut self.mem_ports[port as usize];
                p.busy = false;
                if let Some((r, n)) = p.pending.pop_front() {
                    self.start_mem_access(port, r, n);
                }
            }
        }
    }

    // ------------------------------------------------------------ network

    fn net_send(&mut self, src: u32, dst: u32, size: u64, tag: u64, on_sent: Handler) {
        let key = MsgKey { tag, src, dst, size };
        let ticket = self.matcher.send(key);
        let msg = alloc(&mut self.msgs, &mut self.free_msgs, InFlight { ticket, on_sent });
        if let Some(m) = self.mirror.as_deref_mut() {
            m.msg_sent(msg, self.q.now(), LOCAL);
        }
        if src == dst {
            // A rank sending to itself crosses no link: delivered at once.
            self.q.schedule(0, Event::Deliver { msg });
            return;
        }
        match &mut self.backend {
            Backend::Unaware(u) => {
                let delay = u.delay(src, dst, size);
                self.q.schedule(delay, Event::Deliver { msg });
            }
            Backend::Aware(a) => {
                let mut out = std::mem::take(&mut self.aware_out);
                a.send(src, dst, size, msg, &mut out);
                for (delay, e) in out.drain(..) {
                    self.q.schedule(delay, Event::Aware(e));
                }
                self.aware_out = out;
            }
        }
    }

    fn net_recv(&mut self, rank: u32, src: u32, size: u64, tag: u64, handler: Handler) {
        let key = MsgKey { tag, src, dst: rank, size };
        if let Some(h) = self.matcher.recv(key, handler) {
            self.q.schedule(0, Event::Late { handler: h });
        }
    }

    fn deliver(&mut self, msg: u32) {
        let m = self.msgs[msg as usize].take().expect("message in flight");
        self.free_msgs.push(msg);
        let waiting = self.matcher.arrive(m.ticket);
        self.call_handler(m.on_sent);
        if let Some(h) = waiting {
            self.call_handler(h);
        }
    }

    fn call_handler(&mut self, h: Handler) {
        match h {
            Handler::Nop => {}
            Handler::Stream { stream } => self.stream_event(stream, AlgoEvent::PacketReceived),
            Handler::NodeDone { rank, node } => self.workload_call(rank, Some(node)),
            Handler::CustomDone { stream, node } => self.custom_done(stream, node),
            Handler::RendezvousSend { op } => {
                let o = self.deferred[op as usize].take().expect("deferred op");
                self.free_deferred.push(op);
                self.net_send(o.rank, o.peer, o.size, o.tag, o.handler);
            }
            Handler::RendezvousRecv { op } => {
                let o = self.deferred[op as usize].take().expect("deferred op");
                self.free_deferred.push(op);
                self.net_recv(o.rank, o.peer, o.size, o.tag, o.handler);
            }
        }
    }

    /// A send as the system layer issues it: directly, or under the rendezvous
    /// protocol by first waiting for the receiver's 8 KiB go-ahead.
    fn front_send(&mut self, rank: u32, dst: u32, size: u64, tag: u64, handler: Handler) {
        if !self.rendezvous {
            return self.net_send(rank, dst, size, tag, handler);
        }
        let op = alloc(&mut self.deferred, &mut self.free_deferred, DeferredOp { rank, peer: dst, size, tag, handler });
        self.net_recv(rank, dst, RENDEZVOUS_BYTES, tag + RENDEZVOUS_TAG, Handler::RendezvousSend { op });
    }

    /// A receive as the system layer posts it: directly, or under the
    /// rendezvous protocol by sending the go-ahead and posting the receive when
    /// it has arrived.
    fn front_recv(&mut self, rank: u32, src: u32, size: u64, tag: u64, handler: Handler) {
        if !self.rendezvous {
            return self.net_recv(rank, src, size, tag, handler);
        }
        let op = alloc(&mut self.deferred, &mut self.free_deferred, DeferredOp { rank, peer: src, size, tag, handler });
        self.net_send(rank, src, RENDEZVOUS_BYTES, tag + RENDEZVOUS_TAG, Handler::RendezvousRecv { op });
    }

    // ------------------------------------------------------------ workload

    fn workload_call(&mut self, rank: u32, finished: Option<u32>) {
        let r = rank as usize;
        if self.wl[r].finished_at.is_some() {
            return;
        }
        if let Some(i) = finished {
            self.finish_node(rank, i);
        }
        self.issue_free_nodes(rank);
        // Optional correction: keep issuing while skipped nodes free others.
        while self.reissue_after_skip && std::mem::take(&mut self.skipped) && self.error.is_none() {
            self.issue_free_nodes(rank);
        }
        self.skipped = false;
        if self.wl[r].is_complete() {
            self.wl[r].finished_at = Some(self.now());
        }
    }

    fn finish_node(&mut self, rank: u32, i: u32) {
        let r = rank as usize;
        let now = self.now();
        let start = self.wl[r].issued_at[i as usize];
        let n = &self.wl[r].nodes[i as usize];
        let interval = (start, now);
        if let Some(t) = self.timeline.as_mut() {
            use crate::report::SpanKind;
            let kind = match n.kind {
                NodeType::CompNode if n.is_cpu => Some(SpanKind::CpuCompute),
                NodeType::CompNode => Some(SpanKind::GpuCompute),
                NodeType::CommCollNode => Some(SpanKind::Collective),
                NodeType::CommSendNode | NodeType::CommRecvNode => Some(SpanKind::PointToPoint),
                NodeType::MemLoadNode | NodeType::MemStoreNode => Some(SpanKind::Memory),
                _ => None,
            };
            if let Some(kind) = kind {
                t.push(crate::report::Span {
                    rank,
                    node: n.id,
                    name: n.name.clone(),
                    kind,
                    start_ns: start,
                    end_ns: now,
                });
            }
        }
        match n.kind {
            NodeType::CompNode if n.is_cpu => self.sys[r].cpu_intervals.push(interval),
            NodeType::CompNode => self.sys[r].gpu_intervals.push(interval),
            NodeType::CommCollNode | NodeType::CommSendNode | NodeType::CommRecvNode => {
                self.sys[r].comm_intervals.push(interval)
            }
            _ => {}
        }
        self.sys[r].nodes_done += 1;
        self.wl[r].finish(i);
    }

    fn issue_free_nodes(&mut self, rank: u32) {
        let r = rank as usize;
        let mut round = self.wl[r].begin_issue();
        while let Some(i) = self.wl[r].next_issuable(&mut round) {
            self.issue(rank, i);
            if self.error.is_some() {
                break;
            }
        }
    }

    fn replay_time(&self, rank: u32, i: u32) -> u64 {
        let n = &self.wl[rank as usize].nodes[i as usize];
        if n.duration_us == 0 {
            1
        } else {
            n.duration_us.saturating_mul(1000)
        }
    }

    fn replay(&mut self, rank: u32, i: u32) {
        let runtime = self.replay_time(rank, i);
        let w = &mut self.wl[rank as usize];
        if w.nodes[i as usize].is_cpu {
            w.tics_cpu_ops = w.tics_cpu_ops.saturating_add(runtime);
        } else {
            w.tics_gpu_ops = w.tics_gpu_ops.saturating_add(runtime);
        }
        self.register(rank, runtime, SysEvent::NodeDone { node: i });
    }

    fn issue(&mut self, rank: u32, i: u32) {
        let r = rank as usize;
        let now = self.now();
        self.wl[r].take(i, now);
        if self.params.replay_only {
            self.replay(rank, i);
            return;
        }
        let kind = self.wl[r].nodes[i as usize].kind;
        match kind {
            NodeType::CompNode => {
                let n = &self.wl[r].nodes[i as usize];
                match self.params.roofline {
                    Some(roof) if !n.is_cpu => {
                        if n.tensor_size == 0 {
                            // ASTRA-sim skips it as invalid (and issues nothing more now).
                            self.finish_node(rank, i);
                            self.wl[r].skipped.push(i);
                            self.skipped = true;
                            return;
                        }
                        let num_ops = n.num_ops as f64;
                        let intensity = num_ops / n.tensor_size as f64;
                        let perf = (roof.mem_bw_bytes_per_s * intensity).min(roof.peak_flops);
                        let runtime = (num_ops / perf * 1e9) as u64;
                        self.wl[r].tics_gpu_ops = self.wl[r].tics_gpu_ops.saturating_add(runtime);
                        self.register(rank, runtime, SysEvent::NodeDone { node: i });
                    }
                    _ => self.replay(rank, i),
                }
            }
            NodeType::CommCollNode => self.issue_collective(rank, i),
            NodeType::CommSendNode => {
                let n = &self.wl[r].nodes[i as usize];
                let (dst, size, tag) = (n.comm.dst, n.comm.size, n.comm.tag as u64 % COLL_TAG_BASE);
                if let Some(src) = n.comm.src {
                    if src != rank {
                        let e = self.node_error(
                            rank,
                            i,
                            format!("send node says comm_src {src} but it is in rank {rank}'s trace"),
                        );
                        return self.fail(e);
                    }
                }
                let Some(dst) = dst.filter(|&d| (d as u64) < self.total_nodes) else {
                    let e = self.node_error(
                        rank,
                        i,
                        format!("send node needs comm_dst, a rank below {}", self.total_nodes),
                    );
                    return self.fail(e);
                };
                self.front_send(rank, dst, size, tag, Handler::NodeDone { rank, node: i });
            }
            NodeType::CommRecvNode => {
                let n = &self.wl[r].nodes[i as usize];
                let (src, size, tag) = (n.comm.src, n.comm.size, n.comm.tag as u64 % COLL_TAG_BASE);
                let Some(src) = src.filter(|&s| (s as u64) < self.total_nodes) else {
                    let e = self.node_error(
                        rank,
                        i,
                        format!("receive node needs comm_src, a rank below {}", self.total_nodes),
                    );
                    return self.fail(e);
                };
                self.front_recv(rank, src, size, tag, Handler::NodeDone { rank, node: i });
            }
            NodeType::MemLoadNode | NodeType::MemStoreNode => self.issue_mem(rank, i),
            NodeType::MetadataNode => {
                // PyTorch process groups: ASTRA-sim creates group `pg + 1` for
                // each, looked up by the integer value of pg_name.
                let groups = self.wl[r].nodes[i as usize].process_groups.clone();
                for (pg, ranks) in groups {
                    let ranks = if ranks.is_empty() { (0..self.total_nodes as u32).collect() } else { ranks };
                    let base = (crate::config::comm_group::stoi(&pg).unwrap_or(0).max(0) as u64 + 1) * 1_000_000;
                    self.sys[r].trace_groups.insert(pg, (ranks.into(), base));
                }
                self.finish_node(rank, i);
                self.wl[r].skipped.push(i);
                self.skipped = true;
            }
            NodeType::InvalidNode => {
                self.finish_node(rank, i);
                self.wl[r].skipped.push(i);
                self.skipped = true;
            }
        }
    }

    /// Remote memory access (ASTRA-sim's analytical remote memory): it takes
    /// `remote-mem-latency + tensor_size / remote-mem-bw`; per-node and pool
    /// memories serve one access at a time in FIFO order.
    fn issue_mem(&mut self, rank: u32, i: u32) {
        use crate::config::MemoryType;
        let Some(mem) = &self.memory else {
            let e = self.node_error(
                rank,
                i,
                "remote memory node, but no --memory configuration with memory expansion was given".into(),
            );
            return self.fail(e);
        };
        let port = match mem.memory_type {
            MemoryType::NoMemoryExpansion => {
                let e = self.node_error(
                    rank,
                    i,
                    format!(
                        "remote memory access is not supported with NO_MEMORY_EXPANSION ({})",
                        mem.origin().path.display()
                    ),
                );
                return self.fail(e);
            }
            MemoryType::PerNpuMemoryExpansion => {
                let runtime = self.mem_runtime(rank, i);
                return self.register(rank, runtime, SysEvent::NodeDone { node: i });
            }
            MemoryType::PerNodeMemoryExpansion => {
                let per = mem.per_node.map_or(1, |l| l.num_npus_per_node.max(1));
                rank / per
            }
            MemoryType::MemoryPool => 0,
        };
        if self.mem_ports.len() <= port as usize {
            self.mem_ports.resize(port as usize + 1, MemPort::default());
        }
        if self.mem_ports[port as usize].busy {
            self.mem_ports[port as usize].pending.push_back((rank, i));
        } else {
            self.start_mem_access(port, rank, i);
        }
    }

    fn mem_runtime(&self, rank: u32, i: u32) -> u64 {
        let mem = self.memory.as_ref().expect("memory model present");
        let size = self.wl[rank as usize].nodes[i as usize].tensor_size;
        let bw = mem.remote_mem_bw_bytes_per_s() as f64;
        mem.remote_mem_latency_ns.saturating_add((size as f64 / bw * 1e9) as u64)
    }

    fn start_mem_access(&mut self, port: u32, rank: u32, i: u32) {
        let runtime = self.mem_runtime(rank, i);
        self.mem_ports[port as usize].busy = true;
        self.register(rank, runtime, SysEvent::NodeDone { node: i });
        self.register(rank, runtime, SysEvent::MemPortFree { port });
    }

    fn node_error(&self, rank: u32, i: u32, what: String) -> SimError {
        let w = &self.wl[rank as usize];
        let n = &w.nodes[i as usize];
        SimError::Node { path: w.path.clone(), node: n.id, name: n.name.clone(), what }
    }

    // ------------------------------------------------------------ collectives

    fn issue_collective(&mut self, rank: u32, i: u32) {
        let n = &self.wl[rank as usize].nodes[i as usize];
        let coll = n.comm.coll.expect("validated at load");
        let kind = match coll {
            CollectiveCommType::AllReduce => CollKind::AllReduce,
            CollectiveCommType::AllGather => CollKind::AllGather,
            CollectiveCommType::ReduceScatter => CollKind::ReduceScatter,
            CollectiveCommType::AllToAll => CollKind::AllToAll,
            CollectiveCommType::Broadcast => {
                let runtime = self.replay_time(rank, i);
                self.register(rank, runtime, SysEvent::NodeDone { node: i });
                return;
            }
            other => {
                let e = self.node_error(
                    rank,
                    i,
                    format!("collective {} is not supported (ASTRA-sim simulates all-reduce, all-gather, reduce-scatter, all-to-all and replays broadcast)", other.proto_name()),
                );
                return self.fail(e);
            }
        };
        let size = n.comm.size;
        let priority = n.comm.priority;
        let involved = n.comm.involved_dims.clone();
        // "" and "0" mean all ranks (ASTRA-sim's rule), unless the comm-group
        // file defines a group "0" itself (ASTRA-sim aborts on such files).
        let explicit_zero = self.explicit_zero;
        let group = match n.comm.group.as_deref() {
            None | Some("") => None,
            Some("0") if !explicit_zero => None,
            Some(g) => Some(g.to_string()),
        };
        if let Err(what) = self.generate_collective(rank, i, kind, size, involved, group, priority) {
            let e = self.node_error(rank, i, what);
            self.fail(e);
        }
    }

    /// A communicator group's members and first stream id: groups the rank's
    /// trace declared in metadata nodes first (matched by the integer value of
    /// pg_name, as ASTRA-sim keys them), then the comm-group file. ASTRA-sim
    /// numbers a group's streams from id * 1,000,000; group 0 (which ASTRA-sim
    /// rejects) gets a base past every other group.
    fn resolve_group(&mut self, rank: u32, pg: &str) -> Option<(Rc<[u32]>, u64)> {
        use crate::config::comm_group::stoi;
        let declared = &self.sys[rank as usize].trace_groups;
        if let Some(g) = declared.get(pg) {
            return Some(g.clone());
        }
        if let Some(n) = stoi(pg) {
            if let Some((_, g)) = declared.iter().find(|(k, _)| stoi(k) == Some(n)) {
                return Some(g.clone());
            }
        }
        if let Some(g) = self.file_groups.get(pg) {
            return Some(g.clone());
        }
        let groups = self.groups.as_ref()?;
        let g = groups.group(pg)?;
        let max_id = groups.groups().iter().filter_map(|g| g.id).max().unwrap_or(0);
        let base = match g.id {
            Some(id) if id > 0 => id as u64 * 1_000_000,
            _ => (max_id.max(0) as u64 + 1) * 1_000_000,
        };
        let resolved: (Rc<[u32]>, u64) = (g.ranks.as_slice().into(), base);
        self.file_groups.insert(pg.to_string(), resolved.clone());
        Some(resolved)
    }

    fn next_priority(&mut self, rank: u32, explicit: i64) -> i64 {
        let s = &mut self.sys[rank as usize];
        match self.params.policy {
            SchedulingPolicy::Lifo => {
                s.priority_counter += 1;
                s.priority_counter - 1
            }
            SchedulingPolicy::Fifo => {
                s.priority_counter -= 1;
                s.priority_counter + 1
            }
            SchedulingPolicy::Explicit => explicit,
        }
    }

    /// The logical dimensions of a collective: (ring, algorithm) per entry.
    fn logical_dims(&self, rank: u32, algos: &[CollectiveImpl]) -> Result<Vec<(Ring, CollectiveImpl)>, String> {
        let mut out = Vec::new();
        let mut offset = 1u32;
        for (d, &alg) in algos.iter().enumerate() {
            if alg.spans_all_dims() {
                out.push((Ring::of(rank, self.total_nodes as u32, 1), alg));
                return Ok(out);
            }
            let Some(&size) = self.dims.get(d) else {
                return Err(format!(
                    "the system config lists {} algorithms for this collective but the network has {} dimensions",
                    algos.len(),
                    self.dims.len()
                ));
            };
            out.push((Ring::of(rank, size, offset), alg));
            offset *= size;
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn generate_collective(
        &mut self,
        rank: u32,
        node: u32,
        kind: CollKind,
        size: u64,
        involved: Option<Vec<bool>>,
        group: Option<String>,
        explicit_priority: i64,
    ) -> Result<(), String> {
        if self.custom_templates.contains_key(&kind) {
            let counter = match &group {
                None => None,
                Some(pg) => {
                    let (_, base) = self.resolve_group(rank, pg).ok_or_else(|| {
                        format!("communicator group {pg} (pg_name) is not defined; give the comm-group file with --comm-group")
                    })?;
                    Some((pg.clone(), base))
                }
            };
            return self.generate_custom(rank, node, kind, counter, explicit_priority);
        }
        // The plan: logical dimensions, the involved mask, whether bundles are
        // "fast" (partial groups), and the stream-id counter to draw from.
        let (dims, involved, fast, counter) = match group {
            None => {
                let algos = self.params.algorithms(kind).to_vec();
                if algos.is_empty() {
                    return Err(format!("the system config names no {}-implementation", kind.name()));
                }
                let dims = self.logical_dims(rank, &algos)?;
                let involved = involved.unwrap_or_else(|| vec![true; dims.len().max(4)]);
                if involved.len() < dims.len() {
                    return Err(format!(
                        "involved_dim has {} entries but the collective spans {} dimensions",
                        involved.len(),
                        dims.len()
                    ));
                }
                (dims, involved, false, None)
            }
            Some(pg) => {
                let (members, base) = self.resolve_group(rank, &pg).ok_or_else(|| {
                    format!(
                        "communicator group {pg} (pg_name) is not defined; give the comm-group file with --comm-group"
                    )
                })?;
                if members.len() as u64 == self.total_nodes {
                    // ASTRA-sim runs a whole-machine group on the system topology
                    // and algorithms, with every dimension involved.
                    let algos = self.params.algorithms(kind).to_vec();
                    if algos.is_empty() {
                        return Err(format!("the system config names no {}-implementation", kind.name()));
                    }
                    let dims = self.logical_dims(rank, &algos)?;
                    let involved = vec![true; dims_len_max(&dims)];
                    (dims, involved, false, Some((pg, base)))
                } else {
                    let ring = Ring::of_members(rank, &members).ok_or_else(|| {
                        format!("rank {rank} issues a collective on communicator group {pg} but is not one of its members {members:?}")
                    })?;
                    (vec![(ring, CollectiveImpl::Ring)], vec![true], true, Some((pg, base)))
                }
            }
        };
        for (ring, alg) in dims.iter() {
            let needs_pow2 = matches!(
                alg,
                CollectiveImpl::HalvingDoubling | CollectiveImpl::OneHalvingDoubling | CollectiveImpl::DoubleBinaryTree
            );
            if needs_pow2 && ring.size > 1 && !ring.size.is_power_of_two() {
                return Err(format!(
                    "{} needs a power-of-two number of NPUs per dimension, got {}",
                    alg.astra_name(),
                    ring.size
                ));
            }
            if kind == CollKind::AllToAll
                && matches!(alg, CollectiveImpl::HalvingDoubling | CollectiveImpl::OneHalvingDoubling)
            {
                return Err("halvingDoubling does not implement all-to-all (ASTRA-sim exits: unknown communication type for HalvingDoubling)".into());
            }
        }
        let splits = self.params.splits.max(1);
        let mut size = size;
        let mut chunk = size / splits;
        if kind != CollKind::AllGather && self.total_nodes > chunk {
            chunk = self.total_nodes;
            size = splits.saturating_mul(chunk);
        }
        if chunk == 0 {
            return Err(format!("{} of {size} bytes split {splits} ways gives empty chunks", kind.name()));
        }
        let streams = (size as f64 / chunk as f64).ceil() as u32;
        let dataset =
            alloc(&mut self.datasets, &mut self.free_datasets, DataSet { rank, node, total: streams, finished: 0 });
        let priority = self.next_priority(rank, explicit_priority);
        let mut count = 0;
        let mut remaining = size;
        while remaining > 0 {
            count += 1;
            remaining = remaining.saturating_sub(chunk);
            let phases = self.build_phases(rank, kind, chunk, &dims, &involved, fast);
            if phases.is_empty() {
                // ASTRA-sim marks the dataset inactive: the node never completes.
                self.datasets[dataset as usize] = Some(DataSet { rank, node, total: u32::MAX, finished: 0 });
                return Ok(());
            }
            let sid = match &counter {
                None => {
                    let c = &mut self.sys[rank as usize].stream_counter;
                    *c += 1;
                    *c - 1
                }
                Some((pg, base)) => {
                    let c = self.sys[rank as usize].group_stream_counters.entry(pg.clone()).or_insert(*base);
                    *c += 1;
                    *c - 1
                }
            };
            let stream = Stream {
                rank,
                dataset,
                tag: sid % COLL_TAG_BASE + COLL_TAG_BASE,
                priority,
                phases: phases.into(),
                current: None,
                queue: None,
                initialized: false,
            };
            let id = alloc(&mut self.streams, &mut self.free_streams, stream);
            self.proceed_to_next_phase(id);
        }
        if let Some(ds) = self.datasets[dataset as usize].as_mut() {
            ds.total = count;
        }
        Ok(())
    }

    fn build_phases(
        &mut self,
        rank: u32,
        kind: CollKind,
        chunk: u64,
        dims: &[(Ring, CollectiveImpl)],
        involved: &[bool],
        fast: bool,
    ) -> Vec<Phase> {
        let n = dims.len();
        let active = |d: usize| dims[d].0.size > 1 && involved[d];
        let mut phases = Vec::new();
        let mut remain = chunk;
        if kind != CollKind::AllReduce || !self.params.local_bw_aware {
            let order: Vec<usize> = if kind == CollKind::AllGather { (0..n).rev().collect() } else { (0..n).collect() };
            for d in order {
                if !active(d) {
                    continue;
                }
                let (q, dir) = self.sys[rank as usize].levels[d].next_any();
                let phase = self.make_phase(rank, kind, d, &dims[d], remain, q, dir, fast);
                remain = phase.algo.final_size();
                phases.push(phase);
            }
        } else {
            let Some(last) = (0..n).rev().find(|&d| active(d)) else { return phases };
            for (d, dim) in dims.iter().enumerate().take(last) {
                if !active(d) {
                    continue;
                }
                let (q, dir) = self.sys[rank as usize].levels[d].next_first();
                let phase = self.make_phase(rank, CollKind::ReduceScatter, d, dim, remain, q, dir, fast);
                remain = phase.algo.final_size();
                phases.push(phase);
            }
            let (q, dir) = self.sys[rank as usize].levels[last].next_first();
            let phase = self.make_phase(rank, CollKind::AllReduce, last, &dims[last], remain, q, dir, fast);
            remain = phase.algo.final_size();
            phases.push(phase);
            for d in (0..last).rev() {
                if !active(d) {
                    continue;
                }
                let (q, dir) = self.sys[rank as usize].levels[d].next_last();
                let phase = self.make_phase(rank, CollKind::AllGather, d, &dims[d], remain, q, dir, fast);
                remain = phase.algo.final_size();
                phases.push(phase);
            }
        }
        phases
    }

    #[allow(clippy::too_many_arguments)]
    fn make_phase(
        &mut self,
        rank: u32,
        kind: CollKind,
        d: usize,
        (ring, alg): &(Ring, CollectiveImpl),
        size: u64,
        queue: usize,
        dir: Direction,
        fast: bool,
    ) -> Phase {
        let (ring, alg) = (ring.clone(), *alg);
        let algo = match alg {
            CollectiveImpl::Ring | CollectiveImpl::OneRing => {
                Algorithm::Ring(RingAlgo::new(kind, rank, ring, size, dir, false, None))
            }
            CollectiveImpl::Direct { window: w } | CollectiveImpl::OneDirect { window: w } => {
                Algorithm::Ring(RingAlgo::new(kind, rank, ring, size, dir, true, w))
            }
            CollectiveImpl::HalvingDoubling | CollectiveImpl::OneHalvingDoubling => {
                Algorithm::HalvingDoubling(HalvingDoubling::new(kind, rank, ring, size))
            }
            CollectiveImpl::DoubleBinaryTree => {
                // The tree alternates on every use of this dimension's topology.
                let toggle = self.sys[rank as usize].tree_toggle.entry((String::new(), kind, d)).or_insert(false);
                let tree = if *toggle { TreeKind::RootMin } else { TreeKind::RootMax };
                *toggle = !*toggle;
                let node = tree_node(tree, ring.size, ring.base, ring.offset, rank);
                Algorithm::DoubleBinaryTree(DoubleBinaryTree::new(node, size))
            }
        };
        Phase { queue, algo, fast }
    }

    /// A custom collective: one stream, no chunking, in the first queue of
    /// dimension 0, running this rank's ET of the implementation.
    fn generate_custom(
        &mut self,
        rank: u32,
        node: u32,
        kind: CollKind,
        counter: Option<(String, u64)>,
        explicit_priority: i64,
    ) -> Result<(), String> {
        let members: Option<Rc<[u32]>> = match &counter {
            Some((pg, _)) => self.resolve_group(rank, pg).map(|(m, _)| m),
            None => None,
        };
        let pos = match &members {
            Some(m) => m
                .iter()
                .position(|&x| x == rank)
                .ok_or_else(|| format!("rank {rank} is not in the collective's group"))?,
            None => rank as usize,
        };
        let template = self.custom_templates[&kind]
            .get(pos)
            .cloned()
            .ok_or_else(|| format!("the custom {} implementation has no ET for position {pos}", kind.name()))?;
        let run = CustomRun { graph: template, members };
        let idx = alloc(&mut self.customs, &mut self.free_customs, run);
        let dataset = alloc(&mut self.datasets, &mut self.free_datasets, DataSet { rank, node, total: 1, finished: 0 });
        let priority = self.next_priority(rank, explicit_priority);
        let sid = match &counter {
            None => {
                let c = &mut self.sys[rank as usize].stream_counter;
                *c += 1;
                *c - 1
            }
            Some((pg, base)) => {
                let c = self.sys[rank as usize].group_stream_counters.entry(pg.clone()).or_insert(*base);
                *c += 1;
                *c - 1
            }
        };
        let queue = self.sys[rank as usize].levels[0].first_queue;
        let stream = Stream {
            rank,
            dataset,
            tag: sid % COLL_TAG_BASE + COLL_TAG_BASE,
            priority,
            phases: VecDeque::from([Phase { queue, algo: Algorithm::Custom(idx), fast: false }]),
            current: None,
            queue: None,
            initialized: false,
        };
        let id = alloc(&mut self.streams, &mut self.free_streams, stream);
        self.proceed_to_next_phase(id);
        Ok(())
    }

    fn custom_index(&self, sid: u32) -> Option<u32> {
        match self.streams.get(sid as usize)?.as_ref()?.current.as_ref()?.algo {
            Algorithm::Custom(i) => Some(i),
            _ => None,
        }
    }

    /// Issues every free node of a custom collective's ET (ascending id).
    fn custom_issue(&mut self, sid: u32) {
        let Some(idx) = self.custom_index(sid) else { return };
        let rank = self.streams[sid as usize].as_ref().expect("live stream").rank;
        let mut list = Vec::new();
        self.customs[idx as usize].as_ref().expect("live custom run").graph.free_snapshot(&mut list);
        let now = self.now();
        for i in list {
            let (kind, src, dst, size, tag, runtime) = {
                let run = self.customs[idx as usize].as_mut().expect("live custom run");
                run.graph.take(i, now);
                let n = &run.graph.nodes[i as usize];
                let real = |r: Option<u32>| -> Option<u32> {
                    let r = r?;
                    match &run.members {
                        Some(m) => m.get(r as usize).copied(),
                        None => Some(r),
                    }
                };
                let runtime = if n.duration_us == 0 { 1 } else { n.duration_us.saturating_mul(1000) };
                (n.kind, real(n.comm.src), real(n.comm.dst), n.comm.size, n.comm.tag as u64 % COLL_TAG_BASE, runtime)
            };
            let handler = Handler::CustomDone { stream: sid, node: i };
            match kind {
                NodeType::CommSendNode => match dst {
                    Some(d) if (d as u64) < self.total_nodes => self.front_send(rank, d, size, tag, handler),
                    _ => {
                        return self.fail(SimError::Setup(format!(
                            "custom collective on rank {rank}: a send node has no valid comm_dst"
                        )))
                    }
                },
                NodeType::CommRecvNode => match src {
                    Some(s) if (s as u64) < self.total_nodes => self.front_recv(rank, s, size, tag, handler),
                    _ => {
                        return self.fail(SimError::Setup(format!(
                            "custom collective on rank {rank}: a receive node has no valid comm_src"
                        )))
                    }
                },
                NodeType::CompNode => self.register(rank, runtime, SysEvent::CustomDone { stream: sid, node: i }),
                _ => self.custom_done(sid, i),
            }
        }
    }

    fn custom_done(&mut self, sid: u32, node: u32) {
        let Some(idx) = self.custom_index(sid) else { return };
        self.customs[idx as usize].as_mut().expect("live custom run").graph.finish(node);
        self.custom_issue(sid);
        let done = {
            let g = &self.customs[idx as usize].as_ref().expect("live custom run").graph;
            g.running == 0 && g.no_free()
        };
        if done && self.custom_index(sid) == Some(idx) {
            self.customs[idx as usize] = None;
            self.free_customs.push(idx);
            self.proceed_to_next_phase(sid);
        }
    }

    // ------------------------------------------------------------ streams

    fn stream_event(&mut self, sid: u32, ev: AlgoEvent) {
        let Some(stream) = self.streams.get_mut(sid as usize).and_then(Option::as_mut) else { return };
        let Some(phase) = stream.current.as_mut() else { return };
        if let Algorithm::Custom(_) = phase.algo {
            // Every event other than a node completion (re)issues free nodes.
            self.custom_issue(sid);
            return;
        }
        let mut actions = self.action_pool.pop().unwrap_or_default();
        phase.algo.run(ev, &mut actions);
        let (rank, tag) = (stream.rank, stream.tag);
        let bundle_delay = if phase.fast { 10 } else { self.params.endpoint_delay_ns };
        for (k, &a) in actions.iter().enumerate() {
            match a {
                Action::Send { dst, size } if self.mirror.as_ref().is_some_and(|m| m.crosses(dst)) => match actions
                    .get(k + 1)
                {
                    // Ring, direct and halving-doubling pair each send with a
                    // receive of the same size from the peer sending here.
                    Some(&Action::Recv { src, size: s }) if s == size => self.mirror_send(rank, dst, src, size, tag),
                    _ => self.fail(SimError::Setup("a send without its paired receive".into())),
                },
                Action::Send { dst, size } => self.front_send(rank, dst, size, tag, Handler::Nop),
                Action::Recv { src, size } => self.front_recv(rank, src, size, tag, Handler::Stream { stream: sid }),
                Action::Bundle { processed, size } => {
                    self.register(rank, bundle_delay, SysEvent::Bundle { stream: sid, processing: processed, size });
                }
                Action::Exit => self.proceed_to_next_phase(sid),
            }
        }
        actions.clear();
        self.action_pool.push(actions);
    }

    fn proceed_to_next_phase(&mut self, sid: u32) {
        let (rank, prev_q, done, dataset) = {
            let s = self.streams[sid as usize].as_ref().expect("live stream");
            (s.rank, s.queue, s.phases.is_empty(), s.dataset)
        };
        let r = rank as usize;
        if done {
            self.dataset_stream_finished(dataset);
        }
        if let Some(q) = prev_q {
            let list = &mut self.sys[r].active[q];
            if let Some(pos) = list.iter().position(|&x| x == sid) {
                list.remove(pos);
            }
        }
        if done {
            self.streams[sid as usize] = None;
            self.free_streams.push(sid);
            if let Some(q) = prev_q {
                self.notify_stream_removed(rank, q);
            }
            return;
        }
        let q = {
            let s = self.streams[sid as usize].as_mut().expect("live stream");
            let phase = s.phases.pop_front().expect("phases left");
            let q = phase.queue;
            s.current = Some(phase);
            s.queue = Some(q);
            s.initialized = false;
            q
        };
        self.insert_stream(rank, q, sid);
        if let Some(p) = prev_q {
            self.notify_stream_removed(rank, p);
        }
        self.notify_stream_added(rank, q);
    }

    fn insert_stream(&mut self, rank: u32, q: usize, sid: u32) {
        let prio = self.streams[sid as usize].as_ref().expect("live stream").priority;
        let streams = &self.streams;
        let list = &self.sys[rank as usize].active[q];
        let pos = list
            .iter()
            .position(|&x| {
                let s = streams[x as usize].as_ref().expect("queued stream");
                !(s.initialized || s.priority >= prio)
            })
            .unwrap_or(list.len());
        self.sys[rank as usize].active[q].insert(pos, sid);
    }

    fn start_waiting_streams(&mut self, rank: u32, q: usize) {
        let r = rank as usize;
        let mut pos = self.sys[r].running[q] as usize;
        while pos < self.sys[r].active[q].len() && self.sys[r].running[q] < self.concurrent_streams {
            let sid = self.sys[r].active[q][pos];
            self.sys[r].running[q] += 1;
            pos += 1;
            if let Some(s) = self.streams[sid as usize].as_mut() {
                s.initialized = true;
            }
            self.stream_event(sid, AlgoEvent::StreamInit);
        }
    }

    fn notify_stream_added(&mut self, rank: u32, q: usize) {
        self.start_waiting_streams(rank, q);
    }

    fn notify_stream_removed(&mut self, rank: u32, q: usize) {
        let r = rank as usize;
        self.sys[r].running[q] = self.sys[r].running[q].saturating_sub(1);
        self.start_waiting_streams(rank, q);
    }

    fn dataset_stream_finished(&mut self, ds: u32) {
        let d = self.datasets[ds as usize].as_mut().expect("live dataset");
        d.finished += 1;
        if d.finished == d.total {
            let (rank, node) = (d.rank, d.node);
            self.datasets[ds as usize] = None;
            self.free_datasets.push(ds);
            self.workload_call(rank, Some(node));
        }
    }

    // ------------------------------------------------------------ results

    fn report(&mut self) -> Report {
        let mut ranks = Vec::with_capacity(self.wl.len());
        for (r, (w, s)) in self.wl.iter().zip(self.sys.iter_mut()).enumerate() {
            if self.active.as_ref().is_some_and(|a| a.binary_search(&(r as u32)).is_err()) {
                continue;
            }
            let gpu = merged(&mut s.gpu_intervals);
            let comm = merged(&mut s.comm_intervals);
            let cpu = merged(&mut s.cpu_intervals);
            ranks.push(RankReport {
                rank: r as u32,
                finish_ns: w.finished_at,
                exposed_comm_ns: w.finished_at.map(|f| f.saturating_sub(w.tics_gpu_ops)),
                compute_ns: gpu.iter().map(|(a, b)| b - a).sum(),
                cpu_ns: cpu.iter().map(|(a, b)| b - a).sum(),
                comm_ns: comm.iter().map(|(a, b)| b - a).sum(),
                overlap_ns: intersection_len(&gpu, &comm),
                nodes_done: s.nodes_done,
            });
        }
        Report {
            makespan_ns: ranks.iter().filter_map(|r| r.finish_ns).max().unwrap_or(0),
            ranks,
            events: self.q.processed(),
            backend: self.backend_kind.name().to_string(),
            timeline: self.timeline.take(),
            reduced: false,
        }
    }

    fn diagnose(&self) -> String {
        use crate::diagnose::WaitKind;
        let kind = |h: &Handler| match h {
            Handler::Stream { .. } | Handler::Nop => WaitKind::CollectiveData,
            Handler::RendezvousSend { .. } | Handler::RendezvousRecv { .. } => WaitKind::RendezvousGoAhead,
            Handler::CustomDone { .. } => WaitKind::CustomRecv,
            Handler::NodeDone { .. } => WaitKind::NodeRecv,
        };
        crate::diagnose::diagnose(&self.wl, self.matcher.waiting().map(|(k, h)| (k, kind(h))), self.matcher.unclaimed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chakra::{AttrValue, AttributeProto, EtTrace, GlobalMetadata, Node};
    use crate::config::{MemoryConfig, NetworkConfig, SystemConfig};
    use std::path::Path;

    fn attr(name: &str, v: AttrValue) -> AttributeProto {
        AttributeProto { name: name.into(), doc_string: String::new(), value: Some(v) }
    }

    fn workload(nodes: Vec<Node>, name: &str) -> Workload {
        let t = EtTrace { metadata: Some(GlobalMetadata { version: "1.0.0".into(), attr: vec![] }), nodes };
        Workload::from_trace(&t, Path::new(name)).unwrap()
    }

    fn spec(workloads: Vec<Workload>, memory: Option<MemoryConfig>) -> SimSpec {
        let network = NetworkConfig::from_yaml_str(
            &format!("topology: [ Ring ]\nnpus_count: [ {} ]\nbandwidth: [ 50 ]\nlatency: [ 500 ]\n", workloads.len()),
            Path::new("net.yml"),
        )
        .unwrap();
        let system = SystemConfig::from_json_str(
            r#"{"preferred-dataset-splits": 1, "all-reduce-implementation": ["ring"], "local-mem-bw": 50}"#,
            Path::new("sys.json"),
        )
        .unwrap();
        SimSpec {
            workloads,
            network: network.dims.clone(),
            backend: BackendKind::CongestionUnaware,
            params: SysParams::from_config(&system, 1, 1.0, 1).unwrap(),
            groups: None,
            record_timeline: true,
            custom: HashMap::new(),
            rendezvous: false,
            memory,
            slots: Default::default(),
            reissue_after_skip: false,
            identical_ranks: false,
            symmetry: true,
        }
    }

    fn mem_load(id: u64, bytes: u64) -> Node {
        Node {
            id,
            name: format!("load{id}"),
            r#type: NodeType::MemLoadNode as i32,
            attr: vec![attr("tensor_size", AttrValue::Uint64Val(bytes))],
            ..Default::default()
        }
    }

    /// Per-node memory serves one access at a time: with latency 100 ns and
    /// 10 GB/s (10 bytes/ns), 1000 bytes take 100 + 100 = 200 ns; the second
    /// rank of the node waits for the first.
    #[test]
    fn per_node_remote_memory_serializes_accesses() {
        let mem = MemoryConfig::from_json_str(
            r#"{"memory-type": "PER_NODE_MEMORY_EXPANSION", "remote-mem-latency": 100, "remote-mem-bw": 10, "num-nodes": 1, "num-npus-per-node": 2}"#,
            Path::new("mem.json"),
        )
        .unwrap();
        let wls = vec![workload(vec![mem_load(1, 1000)], "r0.et"), workload(vec![mem_load(1, 1000)], "r1.et")];
        let r = Simulation::new(spec(wls, Some(mem))).unwrap().run().unwrap();
        assert_eq!(r.ranks.iter().map(|x| x.finish_ns).collect::<Vec<_>>(), vec![Some(200), Some(400)]);
        let per_npu = MemoryConfig::from_json_str(
            r#"{"memory-type": "PER_NPU_MEMORY_EXPANSION", "remote-mem-latency": 100, "remote-mem-bw": 10}"#,
            Path::new("mem.json"),
        )
        .unwrap();
        let wls = vec![workload(vec![mem_load(1, 1000)], "r0.et"), workload(vec![mem_load(1, 1000)], "r1.et")];
        let r = Simulation::new(spec(wls, Some(per_npu))).unwrap().run().unwrap();
        assert_eq!(r.ranks.iter().map(|x| x.finish_ns).collect::<Vec<_>>(), vec![Some(200), Some(200)]);
    }

    #[test]
    fn memory_node_without_expansion_is_an_error_naming_the_node() {
        let wls = vec![workload(vec![mem_load(7, 10)], "r0.et"), workload(vec![], "r1.et")];
        let err = Simulation::new(spec(wls, None)).unwrap().run().unwrap_err().to_string();
        assert!(err.contains("r0.et: node 7 (load7)") && err.contains("--memory"), "{err}");
    }

    /// A send with no matching receive stalls; the diagnosis names the rank,
    /// the node and the message key instead of hanging.
    #[test]
    fn unmatched_send_is_diagnosed() {
        let send = Node {
            id: 3,
            name: "send_grad".into(),
            r#type: NodeType::CommSendNode as i32,
            attr: vec![
                attr("comm_dst", AttrValue::Int32Val(1)),
                attr("comm_tag", AttrValue::Int32Val(42)),
                attr("comm_size", AttrValue::Int64Val(4096)),
            ],
            ..Default::default()
        };
        let recv = Node {
            id: 9,
            name: "recv_grad".into(),
            r#type: NodeType::CommRecvNode as i32,
            attr: vec![
                attr("comm_src", AttrValue::Int32Val(0)),
                attr("comm_tag", AttrValue::Int32Val(42)),
                attr("comm_size", AttrValue::Int64Val(2048)),
            ],
            ..Default::default()
        };
        let wls = vec![workload(vec![send], "r0.et"), workload(vec![recv], "r1.et")];
        let err = Simulation::new(spec(wls, None)).unwrap().run().unwrap_err();
        let SimError::Stalled { diagnosis, report, .. } = err else { panic!("expected a stall") };
        // The send completes when its message arrives (as in ASTRA-sim); the
        // receive never matches, and the diagnosis shows why.
        assert!(diagnosis.contains("rank 1 (r1.et)") && diagnosis.contains("node 9 (recv_grad"), "{diagnosis}");
        assert!(diagnosis.contains("tag 42, 2048 bytes"), "{diagnosis}");
        assert!(diagnosis.contains("arrived unclaimed with 4096 bytes (sizes must match)"), "{diagnosis}");
        assert!(report.ranks[0].finish_ns.is_some());
        assert_eq!(report.ranks[1].finish_ns, None);
    }

    /// A matched send/recv pair: the send completes when the message arrives
    /// (unaware Ring 2: 1 hop × 500 ns + 4096 B / (50·2^30/1e9 B/ns)).
    #[test]
    fn matched_point_to_point_completes_at_arrival() {
        let mk = |ty: NodeType, peer: &str, id: u64| Node {
            id,
            name: "p2p".into(),
            r#type: ty as i32,
            attr: vec![
                attr(peer, AttrValue::Int32Val(if ty == NodeType::CommSendNode { 1 } else { 0 })),
                attr("comm_tag", AttrValue::Int32Val(5)),
                attr("comm_size", AttrValue::Int64Val(4096)),
            ],
            ..Default::default()
        };
        let wls = vec![
            workload(vec![mk(NodeType::CommSendNode, "comm_dst", 1)], "r0.et"),
            workload(vec![mk(NodeType::CommRecvNode, "comm_src", 1)], "r1.et"),
        ];
        let r = Simulation::new(spec(wls, None)).unwrap().run().unwrap();
        let arrival = (500.0 + 4096.0 / (50.0 * (1u64 << 30) as f64 / 1e9)) as u64;
        assert_eq!(r.ranks[0].finish_ns, Some(arrival));
        assert_eq!(r.ranks[1].finish_ns, Some(arrival));
        assert_eq!(r.timeline.as_ref().map(Vec::len), Some(2));
    }

    /// A reduction without `local-mem-bw` is a clear error naming the file and
    /// key (ASTRA-sim divides by zero).
    #[test]
    fn reduction_without_local_mem_bw_names_the_key() {
        let ar = |id: u64| Node {
            id,
            name: "ar".into(),
            r#type: NodeType::CommCollNode as i32,
            attr: vec![attr("comm_type", AttrValue::Int64Val(0)), attr("comm_size", AttrValue::Int64Val(1 << 20))],
            ..Default::default()
        };
        let mut sp = spec(vec![workload(vec![ar(0)], "r0.et"), workload(vec![ar(1)], "r1.et")], None);
        let system = SystemConfig::from_json_str(
            r#"{"preferred-dataset-splits": 1, "all-reduce-implementation": ["ring"]}"#,
            Path::new("nobw.json"),
        )
        .unwrap();
        sp.params = SysParams::from_config(&system, 1, 1.0, 1).unwrap();
        let err = Simulation::new(sp).unwrap().run().unwrap_err().to_string();
        assert!(err.contains("nobw.json") && err.contains("`local-mem-bw`"), "{err}");
    }

    /// Groups declared by PyTorch metadata nodes work like the same groups
    /// given in a comm-group file.
    #[test]
    fn metadata_process_groups_equal_a_comm_group_file() {
        use crate::chakra::IoInfo;
        let ar = |pg: &str| Node {
            id: 2,
            name: "ar".into(),
            r#type: NodeType::CommCollNode as i32,
            data_deps: vec![1],
            attr: vec![
                attr("comm_type", AttrValue::Int64Val(0)),
                attr("comm_size", AttrValue::Int64Val(1 << 20)),
                attr("pg_name", AttrValue::StringVal(pg.into())),
            ],
            ..Default::default()
        };
        let meta = |decl: &str| Node {
            id: 1,
            name: "## process_group:init ##".into(),
            r#type: NodeType::MetadataNode as i32,
            inputs: Some(IoInfo { values: format!("['{decl}']"), shapes: String::new(), types: String::new() }),
            ..Default::default()
        };
        // A 1 ns compute root: a skipped metadata node does not re-run the issue
        // loop (ASTRA-sim's behaviour), the compute node's completion does.
        let comp = Node { id: 0, name: "c".into(), r#type: NodeType::CompNode as i32, ..Default::default() };
        let low = r#"[{"pg_name": "5", "ranks": [0, 1]}]"#;
        let high = r#"[{"pg_name": "6", "ranks": [2, 3]}]"#;
        let declared: Vec<Workload> = (0..4)
            .map(|r| {
                let (m, pg) = if r < 2 { (meta(low), "5") } else { (meta(high), "6") };
                workload(vec![comp.clone(), m, ar(pg)], &format!("r{r}.et"))
            })
            .collect();
        let a = Simulation::new(spec(declared, None)).unwrap().run().unwrap();
        let after_comp = |pg: &str| Node { data_deps: vec![0], ..ar(pg) };
        let plain: Vec<Workload> = (0..4)
            .map(|r| workload(vec![comp.clone(), after_comp(if r < 2 { "5" } else { "6" })], &format!("r{r}.et")))
            .collect();
        let mut sp = spec(plain, None);
        sp.groups = Some(
            crate::config::CommGroups::from_json_str(r#"{"5": [0, 1], "6": [2, 3]}"#, Path::new("g.json")).unwrap(),
        );
        let b = Simulation::new(sp).unwrap().run().unwrap();
        let finish = |r: &Report| r.ranks.iter().map(|x| x.finish_ns.unwrap()).collect::<Vec<_>>();
        assert_eq!(finish(&a), finish(&b));
        assert!(finish(&a)[0] > 10_000, "a 1 MiB all-reduce over two ranks takes time: {:?}", finish(&a));
    }

    /// Two GPU slots let independent compute nodes overlap; with ASTRA-sim's
    /// one slot they run back to back.
    #[test]
    fn gpu_slots_are_configurable() {
        let comp = |id: u64| Node {
            id,
            name: format!("c{id}"),
            r#type: NodeType::CompNode as i32,
            duration_micros: 5,
            ..Default::default()
        };
        let wls = || vec![workload(vec![comp(1), comp(2)], "r0.et"), workload(vec![], "r1.et")];
        let one = Simulation::new(spec(wls(), None)).unwrap().run().unwrap();
        assert_eq!(one.ranks[0].finish_ns, Some(10_000));
        let mut sp = spec(wls(), None);
        sp.slots.gpu = 2;
        let two = Simulation::new(sp).unwrap().run().unwrap();
        assert_eq!(two.ranks[0].finish_ns, Some(5_000));
    }

    /// ASTRA-sim never issues what a skipped metadata node freed unless another
    /// node completes; `reissue_after_skip` corrects that.
    #[test]
    fn reissue_after_skip_completes_what_astra_sim_leaves_stuck() {
        let meta = Node { id: 1, name: "meta".into(), r#type: NodeType::MetadataNode as i32, ..Default::default() };
        let comp = Node {
            id: 2,
            name: "after".into(),
            r#type: NodeType::CompNode as i32,
            data_deps: vec![1],
            duration_micros: 3,
            ..Default::default()
        };
        let wls = || vec![workload(vec![meta.clone(), comp.clone()], "r0.et"), workload(vec![], "r1.et")];
        let err = Simulation::new(spec(wls(), None)).unwrap().run().unwrap_err().to_string();
        assert!(err.contains("node 2 (after") && err.contains("ready but never issued"), "{err}");
        let mut sp = spec(wls(), None);
        sp.reissue_after_skip = true;
        let r = Simulation::new(sp).unwrap().run().unwrap();
        assert_eq!(r.ranks[0].finish_ns, Some(3_000));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn arb_node(id: u64) -> impl Strategy<Value = Node> {
            (
                0i32..9,
                proptest::collection::vec(0u64..8, 0..3),
                prop_oneof![Just(0u64), 1u64..1000, Just(u64::MAX / 2)],
                prop_oneof![Just(0i64), 1i64..(1 << 22), Just(i64::MAX)],
                0i64..12,
                -1i32..3,
                any::<bool>(),
            )
                .prop_map(move |(ty, deps, dur, size, coll, peer, cpu)| Node {
                    id,
                    name: format!("n{id}"),
                    r#type: ty,
                    data_deps: deps,
                    duration_micros: dur,
                    attr: vec![
                        attr("comm_type", AttrValue::Int64Val(coll)),
                        attr("comm_size", AttrValue::Int64Val(size)),
                        attr("comm_src", AttrValue::Int32Val(peer)),
                        attr("comm_dst", AttrValue::Int32Val(peer)),
                        attr("comm_tag", AttrValue::Int32Val(1)),
                        attr("tensor_size", AttrValue::Uint64Val(size.unsigned_abs())),
                        attr("num_ops", AttrValue::Int64Val(size)),
                        attr("is_cpu_op", AttrValue::BoolVal(cpu)),
                    ],
                    ..Default::default()
                })
        }

        fn arb_rank() -> impl Strategy<Value = Vec<Node>> {
            (0usize..6).prop_flat_map(|n| (0..n as u64).map(arb_node).collect::<Vec<_>>())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
            /// Arbitrary small workloads (cycles, missing deps, huge sizes and
            /// durations, bad peers, every node type) end in a report or an
            /// error, never a panic or an endless run.
            #[test]
            fn arbitrary_workloads_never_panic(r0 in arb_rank(), r1 in arb_rank(), aware in any::<bool>()) {
                let mut loaded = Vec::new();
                for (i, nodes) in [r0, r1].into_iter().enumerate() {
                    let t = EtTrace { metadata: None, nodes };
                    match Workload::from_trace(&t, Path::new(&format!("r{i}.et"))) {
                        Ok(w) => loaded.push(w),
                        Err(_) => return Ok(()),
                    }
                }
                let mut sp = spec(loaded, None);
                if aware {
                    sp.backend = BackendKind::CongestionAware;
                }
                if let Ok(sim) = Simulation::new(sp) {
                    let _ = sim.run();
                }
            }
        }
    }
}
