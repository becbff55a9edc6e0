//! The simulator's own parts: scenario names and parameters, durations, percentiles and the
//! network's choices.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use sync_sim::network::{Delivery, NetworkProfile};
use sync_sim::scenario::parse_duration;
use sync_sim::stats::Latency;
use sync_sim::{Scenario, ScenarioKind};

#[test]
fn scenario_names_round_trip_and_presets_are_valid() {
    for kind in ScenarioKind::ALL {
        assert_eq!(kind.as_str().parse::<ScenarioKind>().unwrap(), kind);
        Scenario::preset(kind).validate().unwrap();
    }
    let err = "chaos".parse::<ScenarioKind>().unwrap_err().to_string();
    assert!(err.contains("basic_sync") && err.contains("initial_sync"), "{err}");
}

#[test]
fn bad_parameters_are_refused() {
    let mut scenario = Scenario::preset(ScenarioKind::BasicSync);
    scenario.conflict_probability = 1.5;
    assert!(scenario.validate().unwrap_err().to_string().contains("conflict_probability"));
    let mut scenario = Scenario::preset(ScenarioKind::BasicSync);
    scenario.domains = vec!["invoice".into()];
    assert!(scenario.validate().unwrap_err().to_string().contains("invoice"));
    let mut scenario = Scenario::preset(ScenarioKind::BasicSync);
    scenario.devices = 0;
    assert!(scenario.validate().is_err());
    let mut scenario = Scenario::preset(ScenarioKind::NetworkIssues);
    scenario.network.drop_rate = -0.1;
    assert!(scenario.validate().unwrap_err().to_string().contains("drop_rate"));
}

#[test]
fn units_split_the_fleet() {
    let mut scenario = Scenario::preset(ScenarioKind::BasicSync);
    scenario.devices = 1000;
    scenario.devices_per_unit = 20;
    assert_eq!(scenario.units(), 50);
    scenario.devices = 21;
    assert_eq!(scenario.units(), 2);
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
    for bad in ["", "soon", "-3s", "NaN"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn percentiles_are_nearest_rank() {
    let samples: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
    let l = Latency::of(&samples);
    assert_eq!((l.count, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms), (100, 50.0, 95.0, 99.0, 100.0));
    assert_eq!(Latency::of(&[]).count, 0);
    assert_eq!(Latency::of(&[7000]).p99_ms, 7.0);
}

#[test]
fn the_network_does_what_its_rates_say() {
    let mut rng = StdRng::seed_from_u64(3);
    let perfect = NetworkProfile::perfect();
    assert!((0..1000).all(|_| perfect.delivery(&mut rng) == Delivery::Once));
    assert_eq!(perfect.delay(&mut rng), Duration::ZERO);
    assert!(perfect.offline_period(&mut rng).is_none());

    let lossy = NetworkProfile { drop_rate: 1.0, ..NetworkProfile::perfect() };
    let outcomes: Vec<Delivery> = (0..1000).map(|_| lossy.delivery(&mut rng)).collect();
    assert!(outcomes.iter().all(|d| matches!(d, Delivery::LostRequest | Delivery::LostResponse)));
    assert!(outcomes.contains(&Delivery::LostRequest) && outcomes.contains(&Delivery::LostResponse));

    let flaky = NetworkProfile::flaky();
    for _ in 0..1000 {
        let delay = flaky.delay(&mut rng);
        assert!(delay >= flaky.latency - flaky.jitter && delay <= flaky.latency + flaky.jitter, "{delay:?}");
    }
    let drops = (0..10_000).filter(|_| flaky.delivery(&mut rng) != Delivery::Once).count();
    // drop 15 % + duplicate 5 % of the rest: about 19 % not delivered exactly once.
    assert!((1500..2300).contains(&drops), "{drops}");
}
