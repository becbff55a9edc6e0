//! The simulated technicians only write what the server must accept: valid data of each
//! domain, and workflow steps that are legal one by one.

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use sync_domain::domains::DomainRegistry;
use sync_sim::workload::{DOMAINS, edit_data, new_data};
use time::OffsetDateTime;

proptest! {
    #[test]
    fn new_records_and_edits_are_valid(seed: u64, domain in 0..DOMAINS.len(), edits in 1..30_usize) {
        let domain = DOMAINS[domain];
        let registry = DomainRegistry::builtin();
        let service = registry.get(domain).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let now = OffsetDateTime::now_utc();
        let mut data = new_data(domain, "dev-1", now, &mut rng);
        prop_assert!(service.validate(data.as_object().unwrap()).is_ok(), "{data}");
        if let (Some(workflow), Some(status)) = (service.workflow(), data["status"].as_str()) {
            prop_assert!(workflow.check_start(status).is_ok());
        }
        for _ in 0..edits {
            let next = edit_data(domain, &data, "dev-2", now, &mut rng);
            prop_assert!(service.validate(next.as_object().unwrap()).is_ok(), "{next}");
            if let (Some(workflow), Some(from), Some(to)) =
                (service.workflow(), data["status"].as_str(), next["status"].as_str())
                && from != to
            {
                prop_assert!(workflow.check_step(from, to).is_ok(), "{from} -> {to}");
            }
            prop_assert_ne!(&next, &Value::Null);
            data = next;
        }
    }
}
