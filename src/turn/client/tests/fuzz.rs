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
