fn main() {
    let mut bad = 0; let mut n = 0;
    for p in std::env::args().skip(1) {
        n += 1;
        let bytes = std::fs::read(&p).unwrap();
        match simulator::chakra::decode_et_bytes(&bytes, &p) {
            Ok(t) => { let out = simulator::chakra::encode_et(&t); if out != bytes { bad += 1; println!("MISMATCH {p} {} vs {} meta={}", out.len(), bytes.len(), t.metadata.is_some()); } }
            Err(e) => { bad += 1; println!("ERR {e}"); }
        }
    }
    println!("{n} files, {bad} bad");
}
