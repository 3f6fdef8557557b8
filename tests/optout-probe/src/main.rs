//! Two copies of one function, one annotated. Without agentprof's `enabled`
//! feature their machine code must be identical and the binary must hold no
//! agentprof symbol.

#[no_mangle]
#[inline(never)]
#[agentprof::profiled(agent = "probe", labels(n = n))]
pub fn probe_annotated(n: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..n {
        acc = acc
            .wrapping_mul(6364136223846793005)
            .wrapping_add(i ^ (acc >> 29));
    }
    acc
}

#[no_mangle]
#[inline(never)]
pub fn probe_plain(n: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..n {
        acc = acc
            .wrapping_mul(6364136223846793005)
            .wrapping_add(i ^ (acc >> 29));
    }
    acc
}

fn main() {
    let n = std::hint::black_box(1000);
    println!("{} {}", probe_annotated(n), probe_plain(n));
}
