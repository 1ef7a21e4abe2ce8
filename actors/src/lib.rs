//! floe-actors: actix actors that own sockets and timers and drive the floe core.
