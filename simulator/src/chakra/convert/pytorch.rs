//! PyTorch host execution trace JSON → Chakra ET.
