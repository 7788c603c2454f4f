//! What a day costs: worker-hours turned into vCPU-hours and GB-hours, priced on each engine
//! from `[pricing]` (or example prices, labelled as such), and the number of workers a window
//! needs. `plan` prices the day it planned from the planner's estimate (each vendor's measured
//! seconds per byte with `--history`, and what the history's workers held per second of file
//! time, both read by the command from the ledgers); `report` prices the run that happened from what the
//! ledgers measured (each run's wall time times its threads).
//!
//! An engine bills what a worker holds, not what it uses: a Fargate task, a VM or a pod is
//! paid for its vCPUs and memory for as long as it runs. So a day's vCPU-hours are its
//! worker-hours times the worker's vCPUs, whatever share of them the work kept busy.

use std::fmt::Write as _;

use crate::config::{EnginePrices, PricingConfig};
use crate::plan::emit::{Engine, WorkerSize};

/// The worker batchwin's engine files ask for when `[pricing]` does not say.
pub const DEFAULT_WORKER_VCPUS: f64 = 2.0;
pub const DEFAULT_WORKER_MEMORY_GIB: f64 = 4.0;

/// How many workers the architecture batchwin replaces ran for its day (object storage and
/// stateless workers on Fargate Spot or AKS), for comparison with what a plan needs.
pub const REPLACED_ARCHITECTURE_WORKERS: (usize, usize) = (100, 200);

/// Example prices per engine, USD per hour, as docs/config.md shows them: round figures of the
/// order of public list prices in 2026 (Fargate and Fargate Spot in us-east-1; a general-purpose
/// 2-vCPU VM per vCPU, memory included, on Azure and on a Kubernetes node pool; a Slurm
/// cluster's internal charge). Not live prices: set `[pricing]` to yours.
pub fn example_prices(engine: Engine) -> EnginePrices {
    let (vcpu_hour, gb_hour, spot_vcpu_hour, spot_gb_hour) = match engine {
        Engine::AwsBatch => (0.04048, 0.004445, 0.01214, 0.001334),
        Engine::AzureBatch => (0.048, 0.0, 0.0096, 0.0),
        Engine::K8s => (0.048, 0.0, 0.0144, 0.0),
        Engine::Slurm => (0.03, 0.0, 0.03, 0.0),
    };
    EnginePrices {
        vcpu_hour,
        gb_hour,
        spot_vcpu_hour: Some(spot_vcpu_hour),
        spot_gb_hour: Some(spot_gb_hour),
    }
}

/// The engines priced, in the order they are printed.
pub const ENGINES: [Engine; 4] = [
    Engine::AwsBatch,
    Engine::AzureBatch,
    Engine::K8s,
    Engine::Slurm,
];

/// The engine's name as `--emit` and `[pricing]` spell it.
pub fn engine_name(e: Engine) -> &'static str {
    match e {
        Engine::Slurm => "slurm",
        Engine::AwsBatch => "aws-batch",
        Engine::AzureBatch => "azure-batch",
        Engine::K8s => "k8s",
    }
}

/// `[pricing]` resolved: the worker's size, the currency, each engine's prices and whether
/// they are the examples.
#[derive(Debug, Clone, PartialEq)]
pub struct Pricing {
    pub worker_vcpus: f64,
    pub worker_memory_gib: f64,
    pub currency: String,
    pub engines: Vec<(Engine, EnginePrices, bool)>,
}

impl Pricing {
    pub fn from_config(c: &PricingConfig) -> Pricing {
        let engines = ENGINES
            .iter()
            .map(|&e| {
                let configured = match e {
                    Engine::AwsBatch => c.aws_batch,
                    Engine::AzureBatch => c.azure_batch,
                    Engine::K8s => c.k8s,
                    Engine::Slurm => c.slurm,
                };
                match configured {
                    Some(p) => (e, p, false),
                    None => (e, example_prices(e), true),
                }
            })
            .collect();
        Pricing {
            worker_vcpus: c.worker_vcpus.unwrap_or(DEFAULT_WORKER_VCPUS),
            worker_memory_gib: c.worker_memory_gib.unwrap_or(DEFAULT_WORKER_MEMORY_GIB),
            currency: c.currency.clone().unwrap_or_else(|| "USD".into()),
            engines,
        }
    }

    /// The worker as engine files ask for it (memory in whole MiB).
    pub fn worker(&self) -> WorkerSize {
        WorkerSize {
            vcpus: self.worker_vcpus,
            memory_mib: (self.worker_memory_gib * 1024.0).round() as u64,
        }
    }
}

/// Resources held: vCPU-hours and GB-hours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub vcpu_hours: f64,
    pub gb_hours: f64,
}

impl Usage {
    /// Workers of `p`'s size held for `worker_seconds` in all.
    pub fn of_workers(worker_seconds: f64, p: &Pricing) -> Usage {
        let hours = worker_seconds / 3600.0;
        Usage {
            vcpu_hours: hours * p.worker_vcpus,
            gb_hours: hours * p.worker_memory_gib,
        }
    }

    /// `vcpu_seconds` measured, with the memory a worker of `p`'s size holds per vCPU.
    pub fn of_vcpu_seconds(vcpu_seconds: f64, p: &Pricing) -> Usage {
        let vcpu_hours = vcpu_seconds / 3600.0;
        Usage {
            vcpu_hours,
            gb_hours: vcpu_hours * p.worker_memory_gib / p.worker_vcpus,
        }
    }
}

/// What `usage` costs on one engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineCost {
    pub engine: Engine,
    pub on_demand: f64,
    pub spot: f64,
    /// Priced at the example rate, not one from `[pricing]`.
    pub example: bool,
}

/// `usage` priced on every engine of `p`.
pub fn price(usage: Usage, p: &Pricing) -> Vec<EngineCost> {
    p.engines
        .iter()
        .map(|(engine, e, example)| EngineCost {
            engine: *engine,
            on_demand: usage.vcpu_hours * e.vcpu_hour + usage.gb_hours * e.gb_hour,
            spot: usage.vcpu_hours * e.spot_vcpu_hour.unwrap_or(e.vcpu_hour)
                + usage.gb_hours * e.spot_gb_hour.unwrap_or(e.gb_hour),
            example: *example,
        })
        .collect()
}

/// A day's work priced, and the workers its window needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DayCost {
    /// The planner's estimate: seconds of file time.
    pub work_seconds: f64,
    /// vCPU-seconds held per second of file time, as measured (`None`: a worker's vCPUs, as
    /// if it worked on one file at a time).
    pub held_per_work_second: Option<f64>,
    /// Seconds of one worker's time the day's work takes, in all.
    pub worker_seconds: f64,
    pub usage: Usage,
    /// Workers busy for the whole window at the given utilization that the work needs.
    pub workers: usize,
    pub window_seconds: f64,
    pub utilization: f64,
    pub engines: Vec<EngineCost>,
}

/// Prices `work_seconds` of file time (the plan's estimate), at `held` vCPU-seconds per second
/// of it as measured in the history, and counts the workers that do it within
/// `window_seconds × utilization`.
pub fn day_cost(
    work_seconds: f64,
    held: Option<f64>,
    window_seconds: f64,
    utilization: f64,
    p: &Pricing,
) -> DayCost {
    let worker_seconds = match held {
        Some(h) => work_seconds * h / p.worker_vcpus,
        None => work_seconds,
    };
    let usage = Usage::of_workers(worker_seconds, p);
    let budget = window_seconds * utilization;
    let workers = if budget > 0.0 {
        ((worker_seconds / budget).ceil() as usize).max(1)
    } else {
        1
    };
    DayCost {
        work_seconds,
        held_per_work_second: held,
        worker_seconds,
        usage,
        workers,
        window_seconds,
        utilization,
        engines: price(usage, p),
    }
}

/// Money with enough digits to tell a small day's cost from zero.
fn money(v: f64, currency: &str) -> String {
    if v >= 100.0 {
        format!("{v:.0} {currency}")
    } else if v >= 1.0 {
        format!("{v:.2} {currency}")
    } else if v >= 0.01 {
        format!("{v:.4} {currency}")
    } else {
        format!("{v:.6} {currency}")
    }
}

/// Hours with enough digits to tell a small day from zero.
fn hours(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

/// The currency of the example prices.
pub const EXAMPLE_CURRENCY: &str = "USD";

fn engines_table(s: &mut String, engines: &[EngineCost], currency: &str) {
    let _ = writeln!(s, "  {:<12} {:>16} {:>16}", "engine", "on demand", "spot");
    for e in engines {
        let currency = if e.example {
            EXAMPLE_CURRENCY
        } else {
            currency
        };
        let _ = writeln!(
            s,
            "  {:<12} {:>16} {:>16}{}",
            engine_name(e.engine),
            money(e.on_demand, currency),
            money(e.spot, currency),
            if e.example { "   (example prices)" } else { "" }
        );
    }
}

/// The cost lines `plan` prints: the day, then the same for a day twice as large.
pub fn render_day(day: &DayCost, p: &Pricing) -> String {
    let mut s = match day.held_per_work_second {
        Some(h) => format!(
            "measured   workers held {h:.2} vCPU-seconds per second of file time in the history\n"
        ),
        None => format!(
            "measured   no history: a worker's {} vCPUs held for every second of file time\n",
            p.worker_vcpus
        ),
    };
    let (lo, hi) = REPLACED_ARCHITECTURE_WORKERS;
    for (label, d) in [
        ("cost", day),
        (
            "cost x2",
            &day_cost(
                day.work_seconds * 2.0,
                day.held_per_work_second,
                day.window_seconds,
                day.utilization,
                p,
            ),
        ),
    ] {
        let _ = writeln!(
            s,
            "{label:<10} {} vCPU-hours, {} GB-hours ({} hours of {} vCPU, {} GiB workers)",
            hours(d.usage.vcpu_hours),
            hours(d.usage.gb_hours),
            hours(d.worker_seconds / 3600.0),
            p.worker_vcpus,
            p.worker_memory_gib
        );
        let _ = writeln!(
            s,
            "workers    {} for a {} window at utilization {} (the architecture batchwin replaces ran {lo}-{hi} for its day)",
            d.workers,
            if d.window_seconds >= 3600.0 {
                format!("{:.1} h", d.window_seconds / 3600.0)
            } else {
                format!("{:.0} s", d.window_seconds)
            },
            d.utilization
        );
        engines_table(&mut s, &d.engines, &p.currency);
    }
    s
}

/// What a run measured, priced.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunCost {
    /// `process` runs counted.
    pub runs: u64,
    /// Sum over runs of wall time × threads: the vCPU-seconds the workers held.
    pub vcpu_seconds: f64,
    /// The CPU time the runs measured (user and system), and how many runs recorded it.
    pub cpu_seconds: f64,
    pub runs_with_cpu: u64,
    pub vcpu_hours: f64,
    pub gb_hours: f64,
    pub currency: String,
    /// Per engine: name, on demand, spot, example prices.
    pub engines: Vec<(String, f64, f64, bool)>,
}

/// Prices the vCPU-seconds the runs held (engines bill what a worker holds, busy or not), and
/// keeps the CPU time they measured beside it.
/// `cpu` is the CPU time measured and how many of the `runs` recorded it.
pub fn run_cost(runs: u64, vcpu_seconds: f64, cpu: (f64, u64), p: &Pricing) -> RunCost {
    let usage = Usage::of_vcpu_seconds(vcpu_seconds, p);
    RunCost {
        runs,
        vcpu_seconds,
        cpu_seconds: cpu.0,
        runs_with_cpu: cpu.1,
        vcpu_hours: usage.vcpu_hours,
        gb_hours: usage.gb_hours,
        currency: p.currency.clone(),
        engines: price(usage, p)
            .into_iter()
            .map(|e| (engine_name(e.engine).into(), e.on_demand, e.spot, e.example))
            .collect(),
    }
}

impl RunCost {
    /// The lines `report` prints.
    pub fn render(&self) -> String {
        let mut s = format!(
            "cost       {} vCPU-hours, {} GB-hours measured ({} runs, wall time x threads)\n",
            hours(self.vcpu_hours),
            hours(self.gb_hours),
            self.runs
        );
        if self.runs_with_cpu > 0 {
            let _ = writeln!(
                s,
                "cpu        {} vCPU-hours of CPU time measured ({} of {} runs){}",
                hours(self.cpu_seconds / 3600.0),
                self.runs_with_cpu,
                self.runs,
                if self.runs_with_cpu == self.runs && self.vcpu_seconds > 0.0 {
                    format!(
                        ", {:.0} % of the vCPUs held",
                        100.0 * self.cpu_seconds / self.vcpu_seconds
                    )
                } else {
                    String::new()
                }
            );
        }
        let engines: Vec<EngineCost> = self
            .engines
            .iter()
            .filter_map(|(name, on_demand, spot, example)| {
                ENGINES
                    .iter()
                    .find(|e| engine_name(**e) == name)
                    .map(|&engine| EngineCost {
                        engine,
                        on_demand: *on_demand,
                        spot: *spot,
                        example: *example,
                    })
            })
            .collect();
        engines_table(&mut s, &engines, &self.currency);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pricing() -> Pricing {
        Pricing::from_config(&PricingConfig::default())
    }

    #[test]
    fn a_day_of_ten_worker_hours_on_fargate() {
        let p = pricing();
        // 10 worker-hours of 2 vCPU, 4 GiB: 20 vCPU-h and 40 GB-h.
        let d = day_cost(36_000.0, None, 4.0 * 3600.0, 0.8, &p);
        assert_eq!(d.usage.vcpu_hours, 20.0);
        assert_eq!(d.usage.gb_hours, 40.0);
        // 10 h of work in 3.2 h per worker: 4 workers.
        assert_eq!(d.workers, 4);
        let aws = d.engines[0];
        assert_eq!(aws.engine, Engine::AwsBatch);
        assert!((aws.on_demand - (20.0 * 0.04048 + 40.0 * 0.004445)).abs() < 1e-9);
        assert!((aws.spot - (20.0 * 0.01214 + 40.0 * 0.001334)).abs() < 1e-9);
        assert!(aws.example);
    }

    #[test]
    fn configured_prices_replace_the_examples_and_spot_defaults_to_on_demand() {
        let c = PricingConfig {
            worker_vcpus: Some(4.0),
            worker_memory_gib: Some(8.0),
            slurm: Some(EnginePrices {
                vcpu_hour: 0.01,
                gb_hour: 0.0,
                spot_vcpu_hour: None,
                spot_gb_hour: None,
            }),
            ..PricingConfig::default()
        };
        let p = Pricing::from_config(&c);
        let d = day_cost(3600.0, None, 3600.0, 1.0, &p);
        let slurm = d
            .engines
            .iter()
            .find(|e| e.engine == Engine::Slurm)
            .unwrap();
        assert!(!slurm.example);
        assert!((slurm.on_demand - 0.04).abs() < 1e-12);
        assert_eq!(slurm.on_demand, slurm.spot);
        assert_eq!(p.worker().memory_mib, 8192);
        // Twice the work in the same window needs twice the workers.
        assert_eq!(day_cost(7200.0, None, 3600.0, 1.0, &p).workers, 2);
        // Files that overlapped: 1 vCPU-second held per second of file time is a quarter of
        // the 4-vCPU worker's time.
        let d = day_cost(7200.0, Some(1.0), 3600.0, 1.0, &p);
        assert_eq!((d.worker_seconds, d.workers), (1800.0, 1));
        assert!((d.usage.vcpu_hours - 2.0).abs() < 1e-12);
    }
}
