//! Validation of one trace: structure (duplicate ids, dangling dependencies,
//! cycles), node types, and the attributes each node type needs.
//!
//! Every [`Finding`] names the node's id and name; [`Findings`] adds the file.
//! Errors make a trace unusable for simulation (ASTRA-sim would hang, crash or
//! silently compute 0); warnings flag what is legal but suspicious.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::attr::{self, AttrError};
use super::codec::EtTrace;
use super::graph::{DepGraph, DepKind};
use super::schema::{CollectiveCommType, Node, NodeType};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Legal but suspicious.
    Warning,
    /// The trace cannot be simulated as it is.
    Error,
}

/// What kind of problem a finding reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// Two nodes share an id.
    DuplicateId,
    /// A dependency names an id that is not in the file.
    MissingDependency,
    /// The dependencies form a cycle.
    Cycle,
    /// The node type is not a schema value.
    UnknownNodeType,
    /// An INVALID_NODE (skipped by simulators).
    InvalidNode,
    /// A required attribute is absent.
    MissingAttribute,
    /// An attribute has the wrong kind or an impossible value.
    BadAttribute,
    /// The file has no GlobalMetadata (legacy form).
    NoMetadata,
}

/// One problem in a trace.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// What kind of problem.
    pub kind: FindingKind,
    /// The node's id, when the finding is about a node.
    pub node_id: Option<u64>,
    /// The node's name, when the finding is about a node.
    pub node_name: Option<String>,
    /// Human-readable description with what was expected.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match (self.node_id, &self.node_name) {
            (Some(id), Some(name)) => {
                write!(f, "{sev}: node {id} ({}): {}", super::schema::short_name(name), self.message)
            }
            (Some(id), None) => write!(f, "{sev}: node {id}: {}", self.message),
            _ => write!(f, "{sev}: {}", self.message),
        }
    }
}

/// The findings for one file.
#[derive(Clone, Debug, Serialize)]
pub struct Findings {
    /// The file validated.
    pub path: PathBuf,
    /// Number of nodes in it.
    pub nodes: usize,
    /// What was found, in node order.
    pub findings: Vec<Finding>,
}

impl Findings {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Error).count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Warning).count()
    }
}

impl fmt::Display for Findings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            writeln!(f, "{}: {finding}", self.path.display())?;
        }
        Ok(())
    }
}

/// Validates a trace read from `path`.
pub fn validate_trace(trace: &EtTrace, path: &Path) -> Findings {
    let mut out = Vec::new();
    let nodes = &trace.nodes;
    if trace.metadata.is_none() {
        out.push(Finding {
            severity: Severity::Warning,
            kind: FindingKind::NoMetadata,
            node_id: None,
            node_name: None,
            message: "no GlobalMetadata message: legacy (pre-1.0) file; Chakra's current tools cannot read it".into(),
        });
    }
    let graph = DepGraph::build(nodes);
    let at = |i: usize, severity, kind, message: String| Finding {
        severity,
        kind,
        node_id: Some(nodes[i].id),
        node_name: Some(nodes[i].name.clone()),
        message,
    };
    for &i in &graph.duplicates {
        let first = graph.index_of[&nodes[i].id];
        out.push(at(
            i,
            Severity::Error,
            FindingKind::DuplicateId,
            format!(
                "duplicate id: node #{i} in file order repeats the id of node #{first} ({})",
                super::schema::short_name(&nodes[first].name)
            ),
        ));
    }
    for m in &graph.missing {
        let list = match m.kind {
            DepKind::Data => "data_deps",
            DepKind::Ctrl => "ctrl_deps",
        };
        out.push(at(
            m.node,
            Severity::Error,
            FindingKind::MissingDependency,
            format!("{list} names node {} which is not in this file; the node could never be issued", m.dep),
        ));
    }
    if let Some(cycle) = graph.find_cycle() {
        let ids: Vec<String> = cycle.iter().map(|&i| nodes[i].id.to_string()).collect();
        let first = cycle[0];
        out.push(at(
            first,
            Severity::Error,
            FindingKind::Cycle,
            format!(
                "dependency cycle through nodes {} -> {} (each depends on the one before it); expected an acyclic graph",
                ids.join(" -> "),
                ids[0]
            ),
        ));
    }
    for (i, node) in nodes.iter().enumerate() {
        for (severity, kind, message) in check_node(node) {
            out.push(at(i, severity, kind, message));
        }
    }
    out.sort_by_key(|f| (f.node_id.is_some(), f.node_id));
    Findings { path: path.to_path_buf(), nodes: nodes.len(), findings: out }
}

type Issue = (Severity, FindingKind, String);

fn attr_issue<T>(out: &mut Vec<Issue>, r: Result<T, AttrError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            out.push((Severity::Error, FindingKind::BadAttribute, e.to_string()));
            None
        }
    }
}

/// Checks the node type and the attributes it requires.
fn check_node(node: &Node) -> Vec<Issue> {
    let mut out = Vec::new();
    // Attribute kinds, whatever the node type: a present value must be readable.
    attr_issue(&mut out, attr::get_bool(node, "is_cpu_op"));
    attr_issue(&mut out, attr::get_u64(node, "num_ops"));
    attr_issue(&mut out, attr::get_u64(node, "tensor_size"));
    attr_issue(&mut out, attr::get_u64(node, "comm_size"));
    attr_issue(&mut out, attr::get_i32(node, "comm_priority"));
    attr_issue(&mut out, attr::get_i32(node, "comm_tag"));
    attr_issue(&mut out, attr::get_str(node, "pg_name"));
    attr_issue(&mut out, attr::get_bool_list(node, "involved_dim"));
    if let Some(Some(v)) = attr_issue(&mut out, attr::get_i64(node, "comm_type")) {
        if i32::try_from(v).ok().and_then(|v| CollectiveCommType::try_from(v).ok()).is_none() {
            out.push((
                Severity::Error,
                FindingKind::BadAttribute,
                format!("comm_type {v} is not a CollectiveCommType (expected 0..=9, e.g. 0 ALL_REDUCE)"),
            ));
        }
    }
    for peer in ["comm_src", "comm_dst"] {
        if let Some(Some(v)) = attr_issue(&mut out, attr::get_i32(node, peer)) {
            if v < 0 {
                out.push((
                    Severity::Error,
                    FindingKind::BadAttribute,
                    format!("{peer} = {v}; expected a rank number >= 0"),
                ));
            }
        }
    }
    let Some(ty) = node.node_type() else {
        out.push((
            Severity::Error,
            FindingKind::UnknownNodeType,
            format!("node type {} is not a Chakra NodeType (expected 0..=7)", node.r#type),
        ));
        return out;
    };
    let required: &[(&str, &str)] = match ty {
        NodeType::CommCollNode => &[("comm_type", "a CollectiveCommType value"), ("comm_size", "bytes per rank")],
        NodeType::CommSendNode => {
            &[("comm_dst", "the receiving rank"), ("comm_tag", "the message tag"), ("comm_size", "bytes")]
        }
        NodeType::CommRecvNode => {
            &[("comm_src", "the sending rank"), ("comm_tag", "the message tag"), ("comm_size", "bytes")]
        }
        NodeType::MemLoadNode | NodeType::MemStoreNode => &[("tensor_size", "bytes")],
        NodeType::InvalidNode => {
            out.push((
                Severity::Warning,
                FindingKind::InvalidNode,
                "INVALID_NODE: simulators skip it and release its dependents at once".into(),
            ));
            &[]
        }
        NodeType::MetadataNode | NodeType::CompNode => &[],
    };
    for (name, what) in required {
        if node.attr(name).is_none() {
            out.push((
                Severity::Error,
                FindingKind::MissingAttribute,
                format!("{} needs attribute `{name}` ({what})", ty.proto_name()),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chakra::schema::{AttrValue, AttributeProto, GlobalMetadata};

    fn a(name: &str, v: AttrValue) -> AttributeProto {
        AttributeProto { name: name.into(), doc_string: String::new(), value: Some(v) }
    }

    fn trace(nodes: Vec<Node>) -> EtTrace {
        EtTrace { metadata: Some(GlobalMetadata { version: "1.0.0".into(), attr: vec![] }), nodes }
    }

    fn kinds(f: &Findings) -> Vec<(Option<u64>, FindingKind)> {
        f.findings.iter().map(|x| (x.node_id, x.kind)).collect()
    }

    #[test]
    fn clean_collective_passes() {
        let n = Node {
            id: 5,
            name: "ar".into(),
            r#type: NodeType::CommCollNode as i32,
            attr: vec![a("comm_type", AttrValue::Int64Val(0)), a("comm_size", AttrValue::Int64Val(1 << 20))],
            ..Default::default()
        };
        let f = validate_trace(&trace(vec![n]), Path::new("x.et"));
        assert!(f.findings.is_empty(), "{f}");
    }

    #[test]
    fn reports_each_problem_with_node_and_file() {
        let coll = Node { id: 1, name: "coll".into(), r#type: 7, ..Default::default() };
        let send = Node {
            id: 2,
            name: "send".into(),
            r#type: NodeType::CommSendNode as i32,
            data_deps: vec![1, 99],
            attr: vec![a("comm_dst", AttrValue::Int32Val(-3)), a("comm_tag", AttrValue::Int32Val(0))],
            ..Default::default()
        };
        let weird = Node {
            id: 3,
            name: "weird".into(),
            r#type: 42,
            attr: vec![a("comm_size", AttrValue::StringVal("big".into()))],
            ..Default::default()
        };
        let f = validate_trace(&trace(vec![coll, send, weird]), Path::new("rank0.et"));
        let k = kinds(&f);
        assert!(k.contains(&(Some(1), FindingKind::MissingAttribute)), "{f}");
        assert!(k.contains(&(Some(2), FindingKind::MissingDependency)));
        assert!(k.contains(&(Some(2), FindingKind::MissingAttribute)), "comm_size missing on send: {f}");
        assert!(k.contains(&(Some(2), FindingKind::BadAttribute)), "negative comm_dst: {f}");
        assert!(k.contains(&(Some(3), FindingKind::UnknownNodeType)));
        assert!(k.contains(&(Some(3), FindingKind::BadAttribute)), "string comm_size: {f}");
        let text = f.to_string();
        assert!(text.contains("rank0.et: error: node 2 (send): data_deps names node 99"), "{text}");
    }

    #[test]
    fn reports_one_cycle_by_ids() {
        let n =
            |id: u64, d: u64| Node { id, name: format!("n{id}"), r#type: 4, data_deps: vec![d], ..Default::default() };
        let f = validate_trace(&trace(vec![n(10, 30), n(20, 10), n(30, 20)]), Path::new("c.et"));
        let cyc = f.findings.iter().find(|x| x.kind == FindingKind::Cycle).expect("cycle found");
        assert!(cyc.message.contains("10 -> 20 -> 30 -> 10"), "{}", cyc.message);
    }

    /// A huge node name is cut short in the one-line findings.
    #[test]
    fn long_names_are_cut_in_messages() {
        let long = "x".repeat(200_000);
        let n = |name: &str| Node { id: 5, name: name.into(), r#type: 4, ..Default::default() };
        let f = validate_trace(&trace(vec![n(&long), n("second")]), Path::new("d.et"));
        let text = f.to_string();
        assert!(text.contains("duplicate id") && text.len() < 1_000, "{} bytes", text.len());
        assert!(text.contains(&format!("({}...)", "x".repeat(77))), "{text}");
    }
}
