//! The evaluation at the CI size: the targets, asserted.

use sync_insight::eval::{EvalConfig, run};

#[test]
fn quick_evaluation_meets_the_targets() {
    let report = run(&EvalConfig::quick(18)).unwrap();
    println!("{}", report.render());
    let a = &report.anomalies;
    // Guard against passing vacuously: incidents were planted and windows judged.
    assert!(a.incidents >= 15, "{a:?}");
    assert!(a.checks > 10_000);
    assert!(a.recall >= 0.9, "recall {}", a.recall);
    assert!(a.false_alarms_per_tenant_day <= 1.0, "false alarms {}", a.false_alarms_per_tenant_day);
    let r = &report.risk;
    assert!(r.holdout_auc >= 0.80, "auc {}", r.holdout_auc);
    assert!(r.holdout_auc > r.baseline_auc, "{r:?}");
    let w = &report.windows;
    // The queue saw the same syncs in both fleets, and a queue formed without the advice.
    let (before, after) = (&w.queue_without_advice, &w.queue_with_advice);
    assert_eq!(before.syncs, after.syncs, "{w:?}");
    assert!(before.syncs > 10_000 && before.wait_p99_s > 0.0 && before.depth_p99 > 0.0, "{w:?}");
    assert!(w.wait_p99_reduction >= 0.30, "{w:?}");
    // The peak hour's p99 is not flattered by a peak that moved: no hour of the advised fleet
    // waits as long as the unadvised peak hour.
    assert!(after.worst_hour_wait_p99_s < before.wait_p99_s, "{w:?}");
    assert!(w.basis_device_history > 0 && w.basis_fleet > 0, "{w:?}");
    assert!(report.targets().iter().all(|t| t.1));
}

#[test]
fn evaluation_is_deterministic_from_its_seed() {
    let small = EvalConfig { tenants: 1, judged_days: 1, records: 500, devices: 50, ..EvalConfig::quick(3) };
    assert_eq!(run(&small).unwrap(), run(&small).unwrap());
}
