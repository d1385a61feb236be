//! The binary `.et` codec: a streaming reader and a writer for the
//! length-delimited message stream, plain or gzip-compressed.
//!
//! A stream is `varint(len) message` repeated to end of file: GlobalMetadata first,
//! then Nodes. Two rules go beyond what Chakra's own reader does:
//!
//! * **Legacy files** with no GlobalMetadata (ASTRA-sim's 2023 ResNet-50 traces) are
//!   accepted. The first message is taken as GlobalMetadata only when every top-level
//!   field in it is one GlobalMetadata can hold (fields 1 and 2, length-delimited) and
//!   it decodes as one; otherwise it is the first Node. [`EtTrace::metadata`] is then
//!   `None`, and writing the trace back writes no metadata.
//! * **A zero-length message** (a lone `00` byte) is an empty message, as ASTRA-sim
//!   reads it, not end of file as Chakra's Python reader has it: as the first message
//!   it is an empty GlobalMetadata, later a Node whose fields are all default (id 0).
//!   Encoding such a message gives `00` back, so the round trip stays byte-exact.
//!
//! Gzip is recognised by its magic bytes `1f 8b`, whatever the file is called.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use prost::Message;

use super::error::{ChakraError, Result};
use super::schema::{GlobalMetadata, Node};

/// A whole trace in memory: optional metadata plus nodes in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EtTrace {
    /// `None` for legacy files that start directly with a Node.
    pub metadata: Option<GlobalMetadata>,
    /// Nodes in file order.
    pub nodes: Vec<Node>,
}

/// Streaming reader of a binary ET: yields nodes one at a time with one reused buffer.
pub struct EtReader<R> {
    input: R,
    path: PathBuf,
    buf: Vec<u8>,
    /// Decompressed bytes consumed so far.
    offset: u64,
    /// Index of the next message in the stream.
    index: u64,
    metadata: Option<GlobalMetadata>,
    /// The first message when it turned out to be a Node (legacy files).
    pending: Option<Node>,
    failed: bool,
    /// When set, node attributes whose name it rejects are dropped before decoding.
    keep_attr: Option<fn(&[u8]) -> bool>,
    /// Scratch buffer for a node with attributes dropped.
    stripped: Vec<u8>,
}

impl EtReader<Box<dyn BufRead>> {
    /// Opens `path`, detects gzip by its magic bytes, and reads the metadata.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| ChakraError::io(path, "cannot open", e))?;
        if meta.is_dir() {
            return Err(ChakraError::IsDirectory { path: path.to_path_buf() });
        }
        let file = File::open(path).map_err(|e| ChakraError::io(path, "cannot open", e))?;
        let input = open_maybe_gzip(file, path)?;
        EtReader::new(input, path)
    }
}

/// Wraps a file in a gzip decoder when it starts with the gzip magic.
pub(crate) fn open_maybe_gzip(file: File, path: &Path) -> Result<Box<dyn BufRead>> {
    let mut raw = BufReader::with_capacity(1 << 16, file);
    let head = raw.fill_buf().map_err(|e| ChakraError::io(path, "cannot read", e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(1 << 16, flate2::bufread::MultiGzDecoder::new(raw))))
    } else {
        Ok(Box::new(raw))
    }
}

impl<R: BufRead> EtReader<R> {
    /// Starts reading a stream; `path` is only used in error messages.
    /// Reads the first message to tell metadata from a legacy first node.
    pub fn new(input: R, path: impl Into<PathBuf>) -> Result<Self> {
        let mut reader = EtReader {
            input,
            path: path.into(),
            buf: Vec::with_capacity(4096),
            offset: 0,
            index: 0,
            metadata: None,
            pending: None,
            failed: false,
            keep_attr: None,
            stripped: Vec::new(),
        };
        let start = reader.offset;
        if !reader.read_frame()? {
            return Err(ChakraError::Empty { path: reader.path.clone() });
        }
        if could_be_metadata(&reader.buf) {
            if let Ok(meta) = GlobalMetadata::decode(reader.buf.as_slice()) {
                reader.metadata = Some(meta);
                reader.index += 1;
                return Ok(reader);
            }
        }
        let node = Node::decode(reader.buf.as_slice())
            .map_err(|e| reader.corrupt(start, format!("neither a GlobalMetadata nor a Node message: {e}")))?;
        reader.pending = Some(node);
        Ok(reader)
    }

    /// Drops every node attribute whose name (as bytes) `keep` rejects before
    /// decoding the node (from the next node read on), so a consumer that reads
    /// only a few attributes does not pay for the rest. A dropped attribute is
    /// still checked to be well-formed protobuf, so a structurally corrupt file
    /// is reported as before; only the contents of dropped attributes (value
    /// kinds, UTF-8 of strings) go unchecked.
    pub fn keep_attrs(mut self, keep: fn(&[u8]) -> bool) -> Self {
        self.keep_attr = Some(keep);
        self
    }

    /// The GlobalMetadata, or `None` for a legacy file.
    pub fn metadata(&self) -> Option<&GlobalMetadata> {
        self.metadata.as_ref()
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the next node, `Ok(None)` at a clean end of stream.
    pub fn next_node(&mut self) -> Result<Option<Node>> {
        if let Some(node) = self.pending.take() {
            self.index += 1;
            return Ok(Some(node));
        }
        if self.failed {
            return Ok(None);
        }
        let start = self.offset;
        match self.read_frame() {
            Ok(false) => Ok(None),
            Ok(true) => match self.decode_node() {
                Ok(node) => {
                    self.index += 1;
                    Ok(Some(node))
                }
                Err(e) => {
                    self.failed = true;
                    Err(self.corrupt(start, format!("not a valid Node message: {e}")))
                }
            },
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Reads all remaining nodes into an [`EtTrace`].
    pub fn read_all(mut self) -> Result<EtTrace> {
        let mut nodes = Vec::new();
        while let Some(node) = self.next_node()? {
            nodes.push(node);
        }
        Ok(EtTrace { metadata: self.metadata, nodes })
    }

    /// Decodes the node in `self.buf`, dropping attributes `keep_attr` rejects.
    fn decode_node(&mut self) -> std::result::Result<Node, prost::DecodeError> {
        if let Some(keep) = self.keep_attr {
            self.stripped.clear();
            if strip_attrs(&self.buf, keep, &mut self.stripped) {
                return Node::decode(self.stripped.as_slice());
            }
        }
        Node::decode(self.buf.as_slice())
    }

    fn corrupt(&self, offset: u64, what: String) -> ChakraError {
        ChakraError::Corrupt { path: self.path.clone(), index: self.index, offset, what }
    }

    /// Reads one length-prefixed frame into `self.buf`; `false` at a clean end of stream.
    fn read_frame(&mut self) -> Result<bool> {
        let start = self.offset;
        let len = match self.read_varint(start)? {
            None => return Ok(false),
            Some(len) => len,
        };
        if len > u32::MAX as u64 {
            return Err(self.corrupt(start, format!("length prefix {len} exceeds the 4 GiB message limit")));
        }
        self.buf.clear();
        // `take` + `read_to_end` grows the buffer only as bytes arrive, so a corrupt
        // length prefix cannot make us allocate gigabytes up front.
        let got = (&mut self.input).take(len).read_to_end(&mut self.buf).map_err(|e| self.read_error(start, e))? as u64;
        self.offset += got;
        if got < len {
            return Err(self.corrupt(
                start,
                format!("length prefix says {len} bytes but the stream ends after {got} (truncated file?)"),
            ));
        }
        Ok(true)
    }

    /// Reads a base-128 varint; `None` when the stream ends before its first byte.
    fn read_varint(&mut self, start: u64) -> Result<Option<u64>> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = {
                let avail = loop {
                    match self.input.fill_buf() {
                        Ok(b) => break b,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(self.read_error(start, e)),
                    }
                };
                if avail.is_empty() {
                    if i == 0 {
                        return Ok(None);
                    }
                    return Err(self.corrupt(start, "the stream ends inside a length prefix (truncated file?)".into()));
                }
                avail[0]
            };
            self.input.consume(1);
            self.offset += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Err(self.corrupt(start, "malformed length prefix: varint longer than 10 bytes".into()))
    }

    fn read_error(&self, start: u64, e: io::Error) -> ChakraError {
        // Gzip decoders report corrupt data as InvalidInput/InvalidData/UnexpectedEof.
        match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof => {
                self.corrupt(start, format!("corrupt or truncated gzip data: {e}"))
            }
            _ => ChakraError::io(&self.path, "cannot read", e),
        }
    }
}

impl<R: BufRead> Iterator for EtReader<R> {
    type Item = Result<Node>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_node().transpose()
    }
}

/// Whether every top-level field of `bytes` could belong to a GlobalMetadata
/// (fields 1 `version` and 2 `attr`, both length-delimited).
fn could_be_metadata(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        let Ok(key) = prost::encoding::decode_varint(&mut rest) else { return false };
        let (field, wire) = (key >> 3, key & 7);
        if wire != 2 || !(field == 1 || field == 2) {
            return false;
        }
        let Ok(len) = prost::encoding::decode_varint(&mut rest) else { return false };
        if len > rest.len() as u64 {
            return false;
        }
        rest = &rest[len as usize..];
    }
    true
}

/// Copies a Node message from `node` to `out` without the attributes (field
/// 10) whose name `keep` rejects. Returns `false`, leaving the decision to the
/// full decoder, when the message is not well-formed (so errors stay the same).
fn strip_attrs(node: &[u8], keep: fn(&[u8]) -> bool, out: &mut Vec<u8>) -> bool {
    let mut rest = node;
    while !rest.is_empty() {
        let field_start = rest;
        let Some((field, wire)) = skip_field(&mut rest) else { return false };
        let field_bytes = &field_start[..field_start.len() - rest.len()];
        if field == 10 && wire == 2 {
            match attr_name(field_bytes) {
                Some(name) if !keep(name) => continue,
                Some(_) => {}
                None => return false,
            }
        }
        out.extend_from_slice(field_bytes);
    }
    true
}

/// Skips one field (key and value); returns its number and wire type.
fn skip_field(rest: &mut &[u8]) -> Option<(u64, u64)> {
    let key = prost::encoding::decode_varint(rest).ok()?;
    let (field, wire) = (key >> 3, key & 7);
    if field == 0 {
        return None;
    }
    match wire {
        0 => {
            prost::encoding::decode_varint(rest).ok()?;
        }
        1 | 5 => {
            let n = if wire == 1 { 8 } else { 4 };
            *rest = rest.get(n..)?;
        }
        2 => {
            let len = prost::encoding::decode_varint(rest).ok()?;
            *rest = rest.get(usize::try_from(len).ok()?..)?;
        }
        _ => return None,
    }
    Some((field, wire))
}

/// The name of an attribute field (key, length, AttributeProto), when the
/// attribute is well-formed and names itself once; `None` otherwise.
fn attr_name(field_bytes: &[u8]) -> Option<&[u8]> {
    let mut rest = field_bytes;
    prost::encoding::decode_varint(&mut rest).ok()?;
    prost::encoding::decode_varint(&mut rest).ok()?;
    let mut name = None;
    while !rest.is_empty() {
        let start = rest;
        let (field, wire) = skip_field(&mut rest)?;
        if field == 1 {
            let mut value = &start[..start.len() - rest.len()];
            if wire != 2 || name.is_some() {
                return None;
            }
            prost::encoding::decode_varint(&mut value).ok()?;
            prost::encoding::decode_varint(&mut value).ok()?;
            name = Some(value);
        }
    }
    name
}

/// Reads a whole binary `.et` / `.et.gz` file.
pub fn read_et_file(path: impl AsRef<Path>) -> Result<EtTrace> {
    EtReader::open(path)?.read_all()
}

/// Decodes a whole binary ET held in memory (not gzip).
pub fn decode_et_bytes(bytes: &[u8], path: impl Into<PathBuf>) -> Result<EtTrace> {
    EtReader::new(bytes, path)?.read_all()
}

/// Streaming writer of a binary ET.
pub struct EtWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> EtWriter<W> {
    /// Wraps an output stream.
    pub fn new(out: W) -> Self {
        EtWriter { out, buf: Vec::with_capacity(4096) }
    }

    /// Writes one length-delimited message.
    pub fn write_message<M: Message>(&mut self, msg: &M) -> io::Result<()> {
        self.buf.clear();
        msg.encode_length_delimited(&mut self.buf).expect("Vec<u8> grows as needed");
        self.out.write_all(&self.buf)
    }

    /// Writes the GlobalMetadata (call once, first).
    pub fn write_metadata(&mut self, meta: &GlobalMetadata) -> io::Result<()> {
        self.write_message(meta)
    }

    /// Writes one node.
    pub fn write_node(&mut self, node: &Node) -> io::Result<()> {
        self.write_message(node)
    }

    /// Flushes and returns the inner stream.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Encodes a trace into the binary stream form.
pub fn encode_et(trace: &EtTrace) -> Vec<u8> {
    let mut w = EtWriter::new(Vec::new());
    if let Some(meta) = &trace.metadata {
        w.write_metadata(meta).expect("writing to a Vec cannot fail");
    }
    for node in &trace.nodes {
        w.write_node(node).expect("writing to a Vec cannot fail");
    }
    w.finish().expect("writing to a Vec cannot fail")
}

/// Writes a trace to `path`, gzip-compressed when the name ends in `.gz`.
/// The file appears only once completely written (temporary file + rename).
pub fn write_et_file(path: impl AsRef<Path>, trace: &EtTrace) -> Result<()> {
    stage_et_file(path, trace)?.commit()
}

/// Writes what [`write_et_file`] writes, staged: it appears at `path` on
/// [`StagedFile::commit`](crate::util::StagedFile::commit).
pub fn stage_et_file(path: impl AsRef<Path>, trace: &EtTrace) -> Result<crate::util::StagedFile> {
    let path = path.as_ref();
    let bytes = encode_et(trace);
    let gz = path.extension().is_some_and(|e| e == "gz");
    crate::util::stage_file(path, |w| {
        if gz {
            let mut enc = flate2::write::GzEncoder::new(w, flate2::Compression::default());
            enc.write_all(&bytes)?;
            enc.finish()?;
        } else {
            w.write_all(&bytes)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary bytes give a trace or an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_et_bytes(&bytes, "fuzz.et");
        }

        /// Valid streams stay decodable after any single-byte change, or fail cleanly.
        #[test]
        fn mutated_real_trace_never_panics(pos in 0usize..10_000, byte in any::<u8>()) {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/public-traces/astra-sim__astra-sim/examples/system/custom_collectives/custom_ring_allreduce_8npus_1MB/custom_allreduce.0.et");
            let mut bytes = std::fs::read(path).unwrap();
            let i = pos % bytes.len();
            bytes[i] = byte;
            if let Ok(trace) = decode_et_bytes(&bytes, "mutated.et") {
                // Whatever decodes re-encodes without panicking.
                let _ = encode_et(&trace);
            }
        }
    }

    #[test]
    fn zero_length_messages_are_empty_messages() {
        // metadata "1.0.0", then a lone 00 (a Node with every field default), then node id 5.
        let bytes = [0x07, 0x0a, 0x05, b'1', b'.', b'0', b'.', b'0', 0x00, 0x02, 0x08, 0x05];
        let t = decode_et_bytes(&bytes, "z.et").unwrap();
        assert_eq!(t.nodes.len(), 2);
        assert_eq!(t.nodes[0], Node::default());
        assert_eq!(t.nodes[1].id, 5);
        assert_eq!(encode_et(&t), bytes);
        // As the first message, a lone 00 is an empty GlobalMetadata.
        let t = decode_et_bytes(&[0x00, 0x02, 0x08, 0x05], "z.et").unwrap();
        assert_eq!(t.metadata, Some(GlobalMetadata::default()));
        assert_eq!(t.nodes.len(), 1);
    }

    #[test]
    fn legacy_first_node_is_not_taken_for_metadata() {
        // A node with id 3 and type COMP (fields 1 and 3, varints) and no metadata before it.
        let bytes = [0x04, 0x08, 0x03, 0x18, 0x04];
        let t = decode_et_bytes(&bytes, "legacy.et").unwrap();
        assert_eq!(t.metadata, None);
        assert_eq!((t.nodes[0].id, t.nodes[0].r#type), (3, 4));
        assert_eq!(encode_et(&t), bytes);
    }
}
