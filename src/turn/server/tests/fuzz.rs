//! The short run of the cargo-fuzz targets `turn_server_udp` and `turn_server_tcp`
//! (`fuzz/`): the same driver (`crate::fuzzing`), on random programs, in every test run.

use proptest::prelude::*;

use crate::fuzzing::{turn_server_tcp, turn_server_udp};

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn server_over_udp_keeps_its_invariants(program in proptest::collection::vec(any::<u8>(), 0..3000)) {
        turn_server_udp(&program);
    }

    #[test]
    fn server_over_tcp_keeps_its_invariants(program in proptest::collection::vec(any::<u8>(), 0..3000)) {
        turn_server_tcp(&program);
    }
}

/// Random programs get past authentication: the fuzzers reach allocations, permissions,
/// channels and relayed data, not just the 401 path.
#[test]
fn random_programs_reach_the_data_path() {
    for driver in [turn_server_udp, turn_server_tcp] {
        let r = crate::fuzzing::reached_by_random_programs(driver, 64, 3000);
        eprintln!("{r:?}");
        assert!(
            r.allocations > 0 && r.permissions > 0 && r.channels > 0 && r.data > 0,
            "{r:?}"
        );
    }
}
