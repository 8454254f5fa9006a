//! `dsma weights --real ... --synthetic ... [--set beta=..] [--json]` and `--plot out.png` (paper Fig. 4).

use std::path::PathBuf;
use std::process::ExitCode;

use dsma_mas::{plot_weight_function, Mas, MasParams, WeightFunction};
use dsma_plugin::registry::Plugin;
use dsma_plugin::{parse_params, EpochScores, SampleWeighter};

use super::args::set_values;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scores (Dice in [0, 1]) of the real training cases, comma-separated: give η (eq. 7) and θ (eq. 8).
    #[arg(long, value_delimiter = ',')]
    real: Vec<f64>,
    /// Scores of the synthetic cases, comma-separated: one weight each.
    #[arg(long, value_delimiter = ',')]
    synthetic: Vec<f64>,
    /// MAS parameter `key=value` (beta, c), repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print `{"eta":..,"theta":..,"weights":[..]}`.
    #[arg(long)]
    json: bool,
    /// Draw the weight function (paper Fig. 4) to this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// η for the plot (instead of computing it from --real).
    #[arg(long)]
    eta: Option<f64>,
    /// θ for the plot (instead of computing it from --real).
    #[arg(long)]
    theta: Option<f64>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    for (flag, scores) in [("--real", &args.real), ("--synthetic", &args.synthetic)] {
        if let Some(bad) = scores.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            anyhow::bail!(
                "{flag}: score {bad} is not a Dice value; expected every score in [0, 1]"
            );
        }
    }
    let params: MasParams = parse_params("mas", &set_values(&args.set)?)?;
    let beta = params.beta;
    let mut mas = Mas::new(params)?;
    let mut function = (!args.real.is_empty()).then(|| mas.function(&args.real));
    let weights = if args.synthetic.is_empty() {
        vec![]
    } else if args.real.is_empty() {
        anyhow::bail!(
            "--synthetic needs --real: η and θ come from the real-case scores (eqs. 7–8)"
        );
    } else {
        mas.weights(&EpochScores {
            epoch: 0,
            real: &args.real,
            synthetic: &args.synthetic,
        })?
    };
    if args.eta.is_some() || args.theta.is_some() {
        let base = function.unwrap_or(WeightFunction {
            eta: 0.5,
            theta: 0.1,
            beta,
        });
        function = Some(WeightFunction {
            eta: args.eta.unwrap_or(base.eta),
            theta: args.theta.unwrap_or(base.theta),
            beta,
        });
    }
    let Some(f) = function else {
        anyhow::bail!("give --real (scores of the real cases), or --eta and --theta for a plot");
    };
    if let Some(path) = &args.plot {
        let samples: Vec<(f64, f64)> = args.synthetic.iter().map(|&l| (l, f.weight(l))).collect();
        plot_weight_function(path, &f, &samples)?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "eta": f.eta, "theta": f.theta, "beta": f.beta, "weights": weights })
        );
    } else {
        println!("eta   {:.6}   (eq. 7: mean real score)", f.eta);
        println!("theta {:.6}   (eq. 8: (max - min)/2 + c)", f.theta);
        println!("beta  {:.6}", f.beta);
        println!(
            "plateau [u1, u2] = [{:.4}, {:.4}], zeros q1 = {:.4}, q2 = {:.4}",
            f.u1(),
            f.u2(),
            f.q1(),
            f.q2()
        );
        for (l, w) in args.synthetic.iter().zip(&weights) {
            println!("  L = {l:.4}  ->  w = {w:.6}");
        }
        if let Some(path) = &args.plot {
            println!("weight function drawn to {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
