//! How hgpose's f32 convolutions cut their work, settings compared in one process.
//!
//! On a shared VM the time of one build moves by 30% from hour to hour, so two settings timed
//! in separate runs say nothing. Here each round times one inference per setting, in turn, on
//! the same loaded model; each setting's median over the rounds is given as a ratio to the
//! shipped setting's, measured in the same rounds. The settings: tasks per thread (how finely a
//! layer is shared between threads) and the input bytes of a 1x1 layer's tile of positions
//! (one kernel width per tile is the order before tiles: every block per 64 positions).
//!
//! `cargo bench --bench conv_tuning -- [MODEL] [ROUNDS] [THREADS]` (default: the bundled model,
//! 40 rounds, 2 threads; the first two rounds are warm-up). x86_64 only: elsewhere tract's
//! own convolutions run and every setting times the same.

use hgpose::model::{use_inference_threads, PoseModel};
use hgpose::pose::Heatmaps;
use hgpose_kernels::{with_conv_cuts, ConvCuts};
use std::path::PathBuf;

const WARM_UP_ROUNDS: usize = 2;

fn settings() -> Vec<(String, ConvCuts)> {
    let shipped = ConvCuts::SHIPPED;
    let mut settings = vec![(format!("shipped {shipped:?}"), shipped)];
    for tasks in [2, 4, 8] {
        let cuts = ConvCuts {
            tasks_per_thread: tasks,
            ..shipped
        };
        settings.push((format!("tasks per thread {tasks}"), cuts));
    }
    for (name, tile_bytes) in [
        ("1x1 tiles of one kernel width", 1),
        ("1x1 tiles of 128 KB", 128 << 10),
        ("1x1 tiles of 1 MB", 1 << 20),
    ] {
        let cuts = ConvCuts {
            tile_bytes,
            ..shipped
        };
        settings.push((name.to_string(), cuts));
    }
    settings
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let path = PathBuf::from(
        args.first()
            .map_or("models/default/hourglass.onnx", |s| s.as_str()),
    );
    let number = |i: usize, default: usize| -> anyhow::Result<usize> {
        Ok(match args.get(i) {
            Some(n) => n.parse()?,
            None => default,
        })
    };
    let (rounds, threads) = (number(1, 40)?, number(2, 2)?);
    anyhow::ensure!(
        rounds > WARM_UP_ROUNDS,
        "ROUNDS must be more than {WARM_UP_ROUNDS}"
    );
    let threads = use_inference_threads(threads);
    let mut model = PoseModel::load(&path, None)?;
    let mut heatmaps = Heatmaps::zeros(0, 0, 0);
    let settings = settings();
    let mut times = vec![Vec::with_capacity(rounds); settings.len()];
    for round in 0..rounds {
        for (setting, (_, cuts)) in settings.iter().enumerate() {
            let start = std::time::Instant::now();
            with_conv_cuts(*cuts, || model.run(&mut heatmaps))?;
            if round >= WARM_UP_ROUNDS {
                times[setting].push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    println!(
        "{}: {threads} thread(s), {} rounds alternating the settings",
        path.display(),
        rounds - WARM_UP_ROUNDS
    );
    let median = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let baseline = median(&mut times[0]);
    for ((name, _), t) in settings.iter().zip(&mut times) {
        let m = median(t);
        let p90 = t[(t.len() * 9 / 10).min(t.len() - 1)];
        println!(
            "{:.3}x  median {m:8.2} ms (min {:.2}, p90 {p90:.2})  {name}",
            m / baseline,
            t[0]
        );
    }
    Ok(())
}
