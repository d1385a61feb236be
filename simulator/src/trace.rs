//! Chrome / Perfetto trace export of a run's timeline: one process per rank,
//! one thread per track (GPU compute, CPU compute, communication, memory),
//! complete ("X") events in microseconds. Open the file in ui.perfetto.dev or
//! chrome://tracing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;

use serde::Serialize;

use crate::report::{Span, SpanKind};

/// One complete ("X") event of the Chrome trace-event format; times in µs.
#[derive(Serialize)]
struct Complete<'a> {
    name: &'a str,
    cat: SpanKind,
    ph: &'static str,
    pid: u32,
    tid: u32,
    ts: f64,
    dur: f64,
    args: NodeArgs,
}

#[derive(Serialize)]
struct NodeArgs {
    node: u64,
}

/// One metadata ("M") event: process and thread names and sort order.
#[derive(Serialize)]
struct Meta<'a> {
    name: &'static str,
    ph: &'static str,
    pid: u32,
    tid: u32,
    args: MetaArgs<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum MetaArgs<'a> {
    Name { name: &'a str },
    Sort { sort_index: u32 },
}

/// Tracks of a rank, in display order; overlapping spans of one track go to extra lanes.
const TRACKS: [&str; 4] = ["GPU compute", "CPU compute", "communication", "memory"];

fn track(kind: SpanKind) -> usize {
    match kind {
        SpanKind::GpuCompute => 0,
        SpanKind::CpuCompute => 1,
        SpanKind::Collective | SpanKind::PointToPoint => 2,
        SpanKind::Memory => 3,
    }
}

/// Writes a Chrome/Perfetto trace-event document: `pid` = rank, `tid` =
/// 1000 × (track + 1) + lane, where spans that overlap on one track (several
/// collectives in flight) are spread over lanes so that no two events of one
/// thread overlap.
pub fn write_chrome_trace(w: &mut dyn Write, ranks: usize, spans: &[Span]) -> std::io::Result<()> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| (spans[i].rank, track(spans[i].kind), spans[i].start_ns, spans[i].end_ns, spans[i].node));
    // Lane per span, greedy over spans sorted by start: reuse the lane that frees first.
    let mut lane = vec![0u32; spans.len()];
    let mut lanes_used: Vec<[u32; 4]> = vec![[0; 4]; ranks];
    let mut group_start = 0;
    while group_start < order.len() {
        let key = |i: usize| (spans[order[i]].rank, track(spans[order[i]].kind));
        let g = key(group_start);
        let mut free: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
        let mut n = 0u32;
        let mut i = group_start;
        while i < order.len() && key(i) == g {
            let s = &spans[order[i]];
            lane[order[i]] = match free.peek() {
                Some(&Reverse((end, l))) if end <= s.start_ns => {
                    free.pop();
                    l
                }
                _ => {
                    n += 1;
                    n - 1
                }
            };
            free.push(Reverse((s.end_ns, lane[order[i]])));
            i += 1;
        }
        if let Some(used) = lanes_used.get_mut(g.0 as usize) {
            used[g.1] = n;
        }
        group_start = i;
    }
    let tid = |t: usize, l: u32| 1000 * (t as u32 + 1) + l;

    write!(w, "{{\"displayTimeUnit\":\"ns\",\"traceEvents\":[")?;
    let mut first = true;
    let mut emit = |w: &mut dyn Write, ev: &dyn erased::Ser| -> std::io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        first = false;
        w.write_all(b"\n")?;
        ev.write_to(w)
    };
    for (rank, used) in lanes_used.iter().enumerate() {
        let pid = rank as u32;
        let pname = format!("rank {rank}");
        emit(w, &Meta { name: "process_name", ph: "M", pid, tid: 0, args: MetaArgs::Name { name: &pname } })?;
        emit(w, &Meta { name: "process_sort_index", ph: "M", pid, tid: 0, args: MetaArgs::Sort { sort_index: pid } })?;
        for (t, &n) in used.iter().enumerate() {
            for l in 0..n {
                let tname = if l == 0 { TRACKS[t].to_string() } else { format!("{} ({})", TRACKS[t], l + 1) };
                let tid = tid(t, l);
                emit(w, &Meta { name: "thread_name", ph: "M", pid, tid, args: MetaArgs::Name { name: &tname } })?;
                emit(
                    w,
                    &Meta { name: "thread_sort_index", ph: "M", pid, tid, args: MetaArgs::Sort { sort_index: tid } },
                )?;
            }
        }
    }
    for &i in &order {
        let s = &spans[i];
        let ev = Complete {
            name: &s.name,
            cat: s.kind,
            ph: "X",
            pid: s.rank,
            tid: tid(track(s.kind), lane[i]),
            ts: s.start_ns as f64 / 1e3,
            dur: s.end_ns.saturating_sub(s.start_ns) as f64 / 1e3,
            args: NodeArgs { node: s.node },
        };
        emit(w, &ev)?;
    }
    writeln!(w, "\n]}}")
}

/// Writing differently typed events through one closure.
mod erased {
    pub trait Ser {
        fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
            serde_json::to_writer(w, self).map_err(std::io::Error::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_spans_get_lanes() {
        let span =
            |node, kind, start_ns, end_ns| Span { rank: 0, node, name: format!("n{node}"), kind, start_ns, end_ns };
        let spans = vec![
            span(1, SpanKind::Collective, 0, 100),
            span(2, SpanKind::Collective, 50, 150),
            span(3, SpanKind::PointToPoint, 100, 120),
            span(4, SpanKind::GpuCompute, 0, 10),
        ];
        let mut buf = Vec::new();
        write_chrome_trace(&mut buf, 1, &spans).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        let tid_of = |node: u64| {
            doc["traceEvents"].as_array().unwrap().iter().find(|e| e["args"]["node"] == node).unwrap()["tid"]
                .as_u64()
                .unwrap()
        };
        assert_eq!((tid_of(1), tid_of(2), tid_of(3), tid_of(4)), (3000, 3001, 3000, 1000));
    }
}
