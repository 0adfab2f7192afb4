//! Reading Prometheus metrics from a Bootes process's admin port.

use std::net::SocketAddr;

use anyhow::{Context, Result};

use super::http_get;

/// The value of the series `series` (exact: name and labels as printed,
/// e.g. `bootes_xds_pushes_total{type="EDS"}`) on `addr`'s `/metrics`.
pub async fn metric(addr: SocketAddr, series: &str) -> Result<f64> {
    let text = metrics_text(addr).await?;
    parse_metric(&text, series).with_context(|| format!("no series {series} on {addr}/metrics"))
}

/// The sum of every series of the family `name` (any labels) on `addr`.
pub async fn metric_sum(addr: SocketAddr, name: &str) -> Result<f64> {
    let text = metrics_text(addr).await?;
    Ok(sum_family(&text, name))
}

async fn metrics_text(addr: SocketAddr) -> Result<String> {
    let r = http_get(addr, "127.0.0.1", "/metrics").await?;
    anyhow::ensure!(r.status == 200, "{addr}/metrics: {}", r.status);
    Ok(r.text().to_string())
}

fn parse_metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

fn sum_family(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let family = series.split('{').next()?;
            (family == name).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x_total X.\n# TYPE x_total counter\n\
                        x_total{r=\"a\"} 2\nx_total{r=\"b\"} 3\nx_total_other 7\ny 1.5\n";

    #[test]
    fn reads_one_series_or_sums_a_family() {
        assert_eq!(parse_metric(TEXT, "x_total{r=\"b\"}"), Some(3.0));
        assert_eq!(parse_metric(TEXT, "y"), Some(1.5));
        assert_eq!(parse_metric(TEXT, "x_total"), None);
        assert_eq!(sum_family(TEXT, "x_total"), 5.0);
        assert_eq!(sum_family(TEXT, "missing"), 0.0);
    }
}
