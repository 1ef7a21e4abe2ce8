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
