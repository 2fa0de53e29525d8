//! The store conformance suite on SQLite (a file in a temporary directory per check).

async fn fresh() -> provisio_store_conformance::Fresh {
    let dir = tempfile::tempdir().expect("a temporary directory");
    (format!("sqlite://{}", dir.path().join("store.db").display()), Box::new(dir))
}

provisio_store_conformance::suite!(open = provisio_store_sqlite::open, fresh = fresh);
