//! The short run of the cargo-fuzz target `turn_client` (`fuzz/`): the same driver
//! (`crate::fuzzing`), on random programs, in every test run.

use proptest::prelude::*;

use crate::fuzzing::turn_client;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn client_keeps_its_invariants(program in proptest::collection::vec(any::<u8>(), 0..3000)) {
        turn_client(&program);
    }
}

/// Random programs get the client allocated, with permissions, channels and data.
#[test]
fn random_programs_reach_the_data_path() {
    let r = crate::fuzzing::reached_by_random_programs(turn_client, 64, 3000);
    eprintln!("{r:?}");
    assert!(
        r.allocations > 0 && r.permissions > 0 && r.channels > 0 && r.data > 0,
        "{r:?}"
    );
}
