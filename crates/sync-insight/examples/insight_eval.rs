//! Runs the seeded evaluation and prints its report: `cargo run -p sync-insight --example
//! insight_eval -- [quick|full] [seed]` (what `cargo xtask insight-eval` is meant to wrap).

use sync_insight::eval::{EvalConfig, run};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let size = args.next().unwrap_or_else(|| "quick".to_owned());
    let seed = match args.next() {
        Some(s) => s.parse()?,
        None => 18,
    };
    let config = match size.as_str() {
        "full" => EvalConfig::full(seed),
        "quick" => EvalConfig::quick(seed),
        other => return Err(format!("unknown size `{other}` (quick or full)").into()),
    };
    let report = run(&config)?;
    print!("{}", report.render());
    Ok(())
}
