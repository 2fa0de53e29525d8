//! The store conformance suite on PostgreSQL (a scratch database per check
//! on the server `PROVISIO_TEST_STORE_POSTGRES` names, or 127.0.0.1:5432).

provisio_store_conformance::suite!(
    open = provisio_store_postgres::open,
    fresh = provisio_store_postgres::testing::fresh
);
