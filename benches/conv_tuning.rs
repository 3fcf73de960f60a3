//! How finely hgpose's f32 convolutions are cut for two threads, compared in one process.
//!
//! On a shared VM the time of one build moves by 30% from hour to hour, so two settings timed
//! in separate runs say nothing. Here each round times one inference per setting, in turn, on
//! the same loaded model; the medians over the rounds are compared with the shipped setting
//! (one task per thread), measured in the same rounds.
//!
//! `cargo bench --bench conv_tuning -- [MODEL] [ROUNDS]` (default: the bundled model, 40 rounds;
//! the first two rounds are warm-up). x86_64 only: elsewhere tract's own convolutions run.

use hgpose::model::{use_inference_threads, with_tasks_per_thread, PoseModel};
use hgpose::pose::Heatmaps;
use std::path::PathBuf;

const SETTINGS: [usize; 4] = [1, 2, 4, 8];
const WARM_UP_ROUNDS: usize = 2;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let path = PathBuf::from(
        args.first()
            .map_or("models/default/hourglass.onnx", |s| s.as_str()),
    );
    let rounds: usize = match args.get(1) {
        Some(n) => n.parse()?,
        None => 40,
    };
    anyhow::ensure!(
        rounds > WARM_UP_ROUNDS,
        "ROUNDS must be more than {WARM_UP_ROUNDS}"
    );
    let threads = use_inference_threads(2);
    let mut model = PoseModel::load(&path, None)?;
    let mut heatmaps = Heatmaps::zeros(0, 0, 0);
    let mut times = vec![Vec::with_capacity(rounds); SETTINGS.len()];
    for round in 0..rounds {
        for (setting, tasks) in SETTINGS.iter().enumerate() {
            let start = std::time::Instant::now();
            with_tasks_per_thread(*tasks, || model.run(&mut heatmaps))?;
            if round >= WARM_UP_ROUNDS {
                times[setting].push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    println!(
        "{}: {threads} threads, {} rounds alternating the settings",
        path.display(),
        rounds - WARM_UP_ROUNDS
    );
    let median = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let baseline = median(&mut times[0]);
    for (tasks, t) in SETTINGS.iter().zip(&mut times) {
        let m = median(t);
        let p90 = t[(t.len() * 9 / 10).min(t.len() - 1)];
        println!(
            "tasks per thread {tasks}: median {m:7.2} ms (min {:.2}, p90 {p90:.2})  {:.3}x the shipped setting's median",
            t[0],
            m / baseline
        );
    }
    Ok(())
}
