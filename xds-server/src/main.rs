mod protocol;
mod snapshots;
fn main() {}
