//! Spreading many streams' ends over a period evenly. Drawn independently,
//! 1,000 random points over 10 s bunch up (some 100 ms get twice their
//! share, and the replicas taking the streams get the bunches); drawn
//! stratified, the k-th of n falls in the k-th n-th of the period, at a
//! random place within it, so every slice of the period gets its share.

/// Where in [0, 1) the `k`-th of `n` points falls, `u` in [0, 1) placing it
/// within its slice. `k` beyond `n` wraps around (a stream that arrived
/// after `n` was counted shares a slice).
pub fn stratified(k: usize, n: usize, u: f64) -> f64 {
    let n = n.max(1);
    // The largest f64 below 1: rounding must not reach the period's end.
    let below_one = 1.0 - f64::EPSILON / 2.0;
    (((k % n) as f64 + u.clamp(0.0, 1.0)) / n as f64).min(below_one)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_point_falls_in_its_own_slice() {
        let n = 1000;
        let mut slices = vec![0; n];
        for k in 0..n {
            let x = stratified(k, n, (k * 7919 % 1000) as f64 / 1000.0);
            assert!((0.0..1.0).contains(&x), "{x}");
            slices[(x * n as f64) as usize] += 1;
        }
        assert!(slices.iter().all(|&c| c == 1), "one point per slice");
    }

    #[test]
    fn beyond_n_wraps_and_nothing_leaves_the_unit_interval() {
        assert_eq!(stratified(5, 4, 0.0), 0.25);
        assert!(stratified(3, 4, 1.0) < 1.0);
        assert_eq!(stratified(0, 0, 0.5), 0.5, "no count: one slice");
    }
}
