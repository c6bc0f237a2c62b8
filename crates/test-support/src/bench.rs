//! What the services' throughput benchmarks share: their parameters from the environment, a
//! bounded load of requests by a fixed number of concurrent workers, and the table of results
//! against the same-run baseline (the first workload).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// What a throughput benchmark measures, from the environment: `<SERVICE>_BENCH_REQUESTS`
/// (default 4000 per workload and round), `<SERVICE>_BENCH_CONCURRENCY` (32 workers) and
/// `<SERVICE>_BENCH_ROUNDS` (3).
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Requests per workload and round.
    pub requests: usize,
    /// Concurrent workers (HTTP/2 clients sharing one connection pool).
    pub concurrency: usize,
    /// Rounds; the table shows each workload's median.
    pub rounds: usize,
}

impl Params {
    /// Reads `<service>_BENCH_*`; a variable that is unset or not a number keeps its default.
    pub fn from_env(service: &str) -> Self {
        let read = |name: &str, default: usize| {
            std::env::var(format!("{service}_BENCH_{name}"))
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            requests: read("REQUESTS", 4000),
            concurrency: read("CONCURRENCY", 32),
            rounds: read("ROUNDS", 3),
        }
    }
}

/// Runs a benchmark's body on a multi-threaded runtime.
pub fn block_on<F: Future>(body: F) -> F::Output {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(body),
        Err(e) => panic!("cannot start the benchmark's runtime: {e}"),
    }
}

/// Sends `total` requests with `concurrency` workers, each request one call of `request` (which
/// checks its answer and panics on a wrong one, so an error cannot pass for speed); returns
/// requests per second.
pub async fn load<F, Fut>(total: usize, concurrency: usize, request: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (request, next) = (request.clone(), next.clone());
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                request().await;
            }
        });
    }
    while let Some(worker) = workers.join_next().await {
        if let Err(e) = worker {
            panic!("a load worker failed (its panic is printed above): the figures would be wrong: {e}");
        }
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Warms each named workload up with 200 requests, then measures `rounds` rounds of `requests`
/// each, the workloads alternating within a round; `run(workload, n)` sends `n` requests and
/// returns requests per second (see [`load`]). Per workload, its name and its rounds' figures.
pub async fn measure<'a, W>(
    workloads: &'a [(&'a str, W)],
    rounds: usize,
    requests: usize,
    run: impl AsyncFn(&'a W, usize) -> f64,
) -> Vec<(&'a str, Vec<f64>)> {
    for (_, workload) in workloads {
        run(workload, 200).await;
    }
    let mut results: Vec<(&str, Vec<f64>)> = workloads.iter().map(|(name, _)| (*name, Vec::new())).collect();
    for _ in 0..rounds {
        for ((_, workload), (_, figures)) in workloads.iter().zip(results.iter_mut()) {
            figures.push(run(workload, requests).await);
        }
    }
    results
}

/// Prints `title` and, per workload, the median, least and greatest requests per second of its
/// rounds and its median against the first workload's (the baseline).
pub fn report(title: &str, results: &[(&str, Vec<f64>)]) {
    println!("{title}");
    let width = results.iter().map(|(name, _)| name.len()).max().unwrap_or(0).max(8);
    println!("{:<width$} {:>12} {:>12} {:>12} {:>10}", "workload", "median req/s", "min", "max", "vs echo");
    let baseline = results.first().map_or(f64::NAN, |(_, rounds)| median(rounds));
    for (name, rounds) in results {
        let (min, max) = rounds.iter().fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let m = median(rounds);
        println!("{name:<width$} {m:>12.0} {min:>12.0} {max:>12.0} {:>9.0}%", 100.0 * m / baseline);
    }
}

/// Prints, for each pair `(a, b)` of workload names, `b`'s figure as a share of `a`'s taken
/// round by round (the two ran within seconds of each other, under the same load on a shared
/// machine, which the medians of whole columns do not guarantee): the median of those ratios
/// and their range. A pair naming an absent workload is skipped.
pub fn report_pairs(results: &[(&str, Vec<f64>)], pairs: &[(&str, &str)]) {
    let rounds_of = |name: &str| results.iter().find(|(n, _)| *n == name).map(|(_, rounds)| rounds);
    for (a, b) in pairs {
        let (Some(ra), Some(rb)) = (rounds_of(a), rounds_of(b)) else { continue };
        let ratios: Vec<f64> = ra.iter().zip(rb).map(|(x, y)| 100.0 * y / x).collect();
        let (min, max) = ratios.iter().fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        println!("{b} / {a}, paired by round: median {:.0}% ({min:.0}% - {max:.0}%)", median(&ratios));
    }
}

/// The median of `figures` (the upper one of an even count); NaN when there are none.
fn median(figures: &[f64]) -> f64 {
    let mut sorted = figures.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}
