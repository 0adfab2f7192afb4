mod convert;
mod index;
mod model;
fn main() {}
