//! The store conformance suite: what every store backend must guarantee,
//! proven through the boundary only (`provisio-store`'s family functions
//! on a [`Store`]).
//!
//! A backend runs it with [`suite!`], naming how to open its store and how
//! to make a fresh, empty database:
//!
//! ```ignore
//! provisio_store_conformance::suite!(open = my_backend::open, fresh = my_backend::testing::fresh);
//! ```
//!
//! `fresh` answers a URL and a guard that keeps (and at last drops) the
//! database; `open` opens a store at a URL and may be called twice on one
//! (durability is checked by reopening).

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use provisio_store::configurations::ConfigurationRow;
use provisio_store::events::NewEvent;
use provisio_store::jobs::{NewAttempt, NewJob};
use provisio_store::products::ProductRow;
use provisio_store::services::{NewService, ServiceChange};
use provisio_store::{
    Conn, Store, StoreError, clients, configurations, events, invariants, jobs, now_ms, products, reports, services,
    webhooks,
};
use serde_json::json;

/// A fresh database: its URL and what keeps it alive (dropping it may
/// drop the database).
pub type Fresh = (String, Box<dyn Any + Send>);

/// Runs every check of the suite as its own test.
#[macro_export]
macro_rules! suite {
    (open = $open:path, fresh = $fresh:path) => {
        $crate::suite!(@checks $open, $fresh;
            writes_commit_or_roll_back_alone,
            unique_violations_are_typed_and_change_nothing,
            one_live_service_per_configuration_and_identifier,
            event_ids_are_idempotent,
            one_running_job_per_service_in_order,
            claims_never_judge_a_limit_from_the_same_snapshot,
            leases_are_extended_taken_back_and_released,
            lists_and_json_arrays_read_the_same,
            live_service_counts_follow_every_change,
            reports_bucket_by_utc_day_and_hour,
            reads_are_one_snapshot,
        );
    };
    (@checks $open:path, $fresh:path; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (url, _guard) = $fresh().await;
                let store = $open(provisio_store::StoreOptions::new(url)).await.expect("the store opens");
                $crate::$check(store).await;
            }
        )*

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn commits_survive_reopening() {
            let (url, _guard) = $fresh().await;
            $crate::commits_survive_reopening(&url, |url: String| async move {
                $open(provisio_store::StoreOptions::new(url)).await.expect("the store opens")
            })
            .await;
        }
    };
}

/// A configuration, a static product on it and a client: what services need.
struct Fixture {
    configuration: i64,
    product: i64,
    client: i64,
}

async fn fixture(store: &Store, max_concurrency: i64) -> Fixture {
    store
        .write(move |conn| {
            Box::pin(async move {
                let configuration = configurations::insert(
                    conn,
                    &ConfigurationRow {
                        blueprint: "databases".into(),
                        provider: "demo".into(),
                        name: format!("db-{}", now_ms()),
                        config_values: json!({}),
                        attributes: json!({"location": "eu"}),
                        max_services: Some(100),
                        max_concurrency,
                        rate_per_minute: None,
                        enabled: true,
                    },
                )
                .await?;
                let product = products::insert(
                    conn,
                    &ProductRow {
                        slug: format!("p-{configuration}"),
                        name: "A database".into(),
                        blueprint: "databases".into(),
                        provider: None,
                        deployment: "static".into(),
                        configuration_id: Some(configuration),
                        strategy: None,
                        attribute_filters: json!({}),
                        setup_function: "create".into(),
                        provision_fields: json!({}),
                        rules: json!([]),
                        drift_response: "report".into(),
                    },
                )
                .await?;
                let client = clients::insert(conn, None, "Ann", "ann@example.com").await?.id;
                Ok::<_, StoreError>(Fixture { configuration, product, client })
            })
        })
        .await
        .expect("the fixture is written")
}

async fn new_service(conn: &mut Conn, f: &Fixture, external: &str) -> Result<i64, StoreError> {
    let data = json!({});
    let service = services::insert(
        conn,
        &NewService {
            external_id: Some(external),
            client_id: f.client,
            product_id: f.product,
            projected_status: "active",
            provision_data: &data,
            owner_mark: &format!("mark-{external}"),
        },
    )
    .await?;
    services::set_configuration(conn, service.id, f.configuration).await?;
    Ok(service.id)
}

async fn new_job(conn: &mut Conn, service: i64, key: &str) -> Result<i64, StoreError> {
    let args = json!({});
    Ok(jobs::insert(
        conn,
        &NewJob {
            service_id: service,
            event_id: None,
            function: "create",
            args: &args,
            origin: "event",
            max_attempts: 3,
            idempotency_key: key,
            secrets: None,
        },
    )
    .await?
    .id)
}

/// Many concurrent writes: each commits whole or, when it fails part way,
/// not at all, and never takes another write down with it.
pub async fn writes_commit_or_roll_back_alone(store: Store) {
    let mut handles = Vec::new();
    for i in 0..60 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store
                .write(move |conn| {
                    Box::pin(async move {
                        let client = clients::insert(conn, Some(&format!("c{i}")), "Ann", "a@example.com").await?;
                        if i % 10 == 0 {
                            // Fails after its first statement: the insert above must vanish too.
                            clients::insert(conn, Some(&format!("c{i}")), "Dup", "d@example.com").await?;
                        }
                        Ok::<_, StoreError>(client.id)
                    })
                })
                .await
        }));
    }
    let mut failed = 0;
    for handle in handles {
        if let Err(err) = handle.await.expect("the write task ends") {
            assert!(err.is_unique_violation(), "{err}");
            failed += 1;
        }
    }
    assert_eq!(failed, 6);
    let stored = store.read(|conn| Box::pin(async move { clients::list(conn, 1000, None).await })).await.unwrap();
    assert_eq!(stored.len(), 54);
    assert!(stored.iter().all(|c| c.name == "Ann"));
    store.check().await.expect("the store is healthy after refused writes");
}

/// A UNIQUE violation is told apart from other failures, and the write
/// it happened in leaves nothing behind.
pub async fn unique_violations_are_typed_and_change_nothing(store: Store) {
    store
        .write(|conn| Box::pin(async move { clients::insert(conn, Some("x"), "Ann", "a@example.com").await }))
        .await
        .unwrap();
    let before = store.read(|conn| Box::pin(invariants::row_counts(conn))).await.unwrap();
    let err = store
        .write(|conn| {
            Box::pin(async move {
                clients::insert(conn, None, "Bob", "b@example.com").await?;
                clients::insert(conn, Some("x"), "Eve", "e@example.com").await
            })
        })
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    assert_eq!(store.read(|conn| Box::pin(invariants::row_counts(conn))).await.unwrap(), before);
    // A broken statement is a database error, not a unique violation.
    let err = store
        .read(|conn| {
            Box::pin(async move { clients::get(conn, 1).await.and(Err::<(), _>(StoreError::Corrupt("x".into()))) })
        })
        .await
        .unwrap_err();
    assert!(!err.is_unique_violation());
}

/// One live service per configuration and identifier: a second reserve is
/// refused, the write goes on after the refusal, and the name is free
/// again once its holder is terminated.
pub async fn one_live_service_per_configuration_and_identifier(store: Store) {
    let f = Arc::new(fixture(&store, 8).await);
    let configuration = f.configuration;
    let (first, second) = store
        .write(move |conn| {
            Box::pin(async move {
                let first = new_service(conn, &f, "s1").await?;
                let second = new_service(conn, &f, "s2").await?;
                services::reserve(conn, first, configuration, "shop").await?;
                let refused = services::reserve(conn, second, configuration, "shop").await.unwrap_err();
                assert!(refused.is_unique_violation(), "{refused}");
                // The transaction is still usable after the refusal.
                services::add_history(conn, second, None, "pending", None, "the name was taken").await?;
                Ok::<_, StoreError>((first, second))
            })
        })
        .await
        .expect("the write commits despite the refused reserve");
    let (holder, refused, history) = store
        .read(move |conn| {
            Box::pin(async move {
                let holder = services::holder(conn, configuration, "shop", 0).await?;
                let refused = services::get(conn, second).await?.expect("the second service");
                let history = services::history_page(conn, second, None, 10).await?;
                Ok::<_, StoreError>((holder, refused, history))
            })
        })
        .await
        .unwrap();
    assert_eq!(holder.map(|s| s.id), Some(first));
    assert_eq!(refused.identifier, None);
    assert_eq!(history.len(), 1);
    store
        .write(move |conn| {
            Box::pin(async move {
                let data = json!({});
                let terminated = ServiceChange {
                    status: "terminated",
                    identifier: None,
                    provision_data: &data,
                    secrets: None,
                    last_error: None,
                };
                services::apply(conn, first, &terminated).await?;
                services::reserve(conn, second, configuration, "shop").await
            })
        })
        .await
        .expect("a terminated service's name is free again");
    let violations = store.read(|conn| Box::pin(async move { invariants::violations(conn, &[]).await })).await;
    assert_eq!(violations.unwrap(), Vec::<String>::new());
}

/// An event's id is recorded once: a second insert of it is a unique
/// violation, whichever writer comes second, and the first stays.
pub async fn event_ids_are_idempotent(store: Store) {
    let f = Arc::new(fixture(&store, 8).await);
    let fx = f.clone();
    let service = store.write(move |conn| Box::pin(async move { new_service(conn, &fx, "s1").await })).await.unwrap();
    let mut handles = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store
                .write(move |conn| {
                    Box::pin(async move {
                        let payload = json!({"copy": i});
                        events::insert(
                            conn,
                            &NewEvent {
                                external_id: "evt-1",
                                event_type: "order.paid",
                                service_id: service,
                                payload: &payload,
                                occurred_at: None,
                                body_digest: "d",
                            },
                        )
                        .await
                    })
                })
                .await
        }));
    }
    let mut stored = Vec::new();
    for handle in handles {
        match handle.await.expect("the write task ends") {
            Ok(id) => stored.push(id),
            Err(err) => assert!(err.is_unique_violation(), "{err}"),
        }
    }
    assert_eq!(stored.len(), 1, "exactly one copy is recorded");
    let found = store
        .read(|conn| Box::pin(async move { events::get_by_external(conn, "evt-1").await }))
        .await
        .unwrap()
        .expect("the event");
    assert_eq!(found.id, stored[0]);
}

/// A service's jobs run one at a time, oldest first; a configuration left
/// out of the query hides none of the others' work.
pub async fn one_running_job_per_service_in_order(store: Store) {
    let f = Arc::new(fixture(&store, 8).await);
    let configuration = f.configuration;
    let (first, second) = store
        .write(move |conn| {
            Box::pin(async move {
                let service = new_service(conn, &f, "s1").await?;
                Ok::<_, StoreError>((new_job(conn, service, "a").await?, new_job(conn, service, "b").await?))
            })
        })
        .await
        .unwrap();
    let ready = |blocked: Vec<i64>| {
        let store = store.clone();
        async move {
            store
                .read(move |conn| Box::pin(async move { jobs::ready(conn, now_ms() + 1, &blocked, 10).await }))
                .await
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ready(vec![]).await, [first]);
    assert_eq!(ready(vec![configuration]).await, Vec::<i64>::new());
    assert_eq!(ready(vec![configuration + 1000]).await, [first]);
    let claimed = store
        .write(move |conn| {
            Box::pin(async move { jobs::claim(conn, first, "w1", now_ms() + 60_000, Some(configuration)).await })
        })
        .await
        .unwrap();
    assert!(claimed);
    let again = store
        .write(move |conn| {
            Box::pin(async move { jobs::claim(conn, first, "w2", now_ms() + 60_000, Some(configuration)).await })
        })
        .await
        .unwrap();
    assert!(!again, "a running job is not claimed twice");
    assert_eq!(ready(vec![]).await, Vec::<i64>::new(), "nothing beside a running job of the service");
    store.write(move |conn| Box::pin(async move { jobs::finish(conn, first, "succeeded", None).await })).await.unwrap();
    assert_eq!(ready(vec![]).await, [second]);
    // What a woken worker reads before it claims, and the count of unfinished jobs.
    let (due, due_before, open) = store
        .read(|conn| {
            Box::pin(async move {
                Ok::<_, StoreError>((
                    jobs::any_due(conn, now_ms() + 1).await?,
                    jobs::any_due(conn, 0).await?,
                    jobs::open_count(conn).await?,
                ))
            })
        })
        .await
        .unwrap();
    assert!(due, "the second job is due");
    assert!(!due_before, "nothing was due before it was made");
    assert_eq!(open, 1);
}

/// Claims of many writers at once never exceed a configuration's
/// concurrency: each claim reads what every earlier one committed.
pub async fn claims_never_judge_a_limit_from_the_same_snapshot(store: Store) {
    let f = Arc::new(fixture(&store, 2).await);
    let configuration = f.configuration;
    store
        .write(move |conn| {
            Box::pin(async move {
                for i in 0..12 {
                    let service = new_service(conn, &f, &format!("s{i}")).await?;
                    new_job(conn, service, "k").await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .await
        .unwrap();
    let claimed = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for worker in 0..12 {
        let (store, claimed) = (store.clone(), claimed.clone());
        handles.push(tokio::spawn(async move {
            store
                .write(move |conn| {
                    Box::pin(async move {
                        conn.lock_admissions().await?;
                        if jobs::running_on(conn, configuration).await? >= 2 {
                            return Ok::<_, StoreError>(());
                        }
                        // Hold the decision open a while: a second claim
                        // reading the same snapshot would now see room too.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        if let Some(job) = jobs::ready(conn, now_ms() + 1, &[], 1).await?.first() {
                            let lease = now_ms() + 60_000;
                            if jobs::claim(conn, job.id, &format!("w{worker}"), lease, Some(configuration)).await? {
                                claimed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Ok(())
                    })
                })
                .await
        }));
    }
    for handle in handles {
        handle.await.expect("the claim task ends").expect("the claim commits");
    }
    let running = store.read(move |conn| Box::pin(jobs::running_on(conn, configuration))).await.unwrap();
    assert_eq!(running, 2, "the configuration's concurrency holds");
    assert_eq!(claimed.load(Ordering::SeqCst), 2);
}

/// A worker extends the leases it holds; an expired lease is taken back
/// for a reconcile; a stopping worker releases what it holds.
pub async fn leases_are_extended_taken_back_and_released(store: Store) {
    let f = Arc::new(fixture(&store, 8).await);
    let configuration = f.configuration;
    let (a, b) = store
        .write(move |conn| {
            Box::pin(async move {
                let s1 = new_service(conn, &f, "s1").await?;
                let s2 = new_service(conn, &f, "s2").await?;
                let (a, b) = (new_job(conn, s1, "a").await?, new_job(conn, s2, "b").await?);
                let past = now_ms() - 1;
                assert!(jobs::claim(conn, a, "dead", past, Some(configuration)).await?);
                assert!(jobs::claim(conn, b, "alive", past, Some(configuration)).await?);
                Ok::<_, StoreError>((a, b))
            })
        })
        .await
        .unwrap();
    let extended = store
        .write(move |conn| {
            Box::pin(async move {
                // Only the holder's own ids are extended.
                assert_eq!(jobs::extend_leases(conn, "alive", &[a], now_ms() + 60_000).await?, 0);
                jobs::extend_leases(conn, "alive", &[b], now_ms() + 60_000).await
            })
        })
        .await
        .unwrap();
    assert_eq!(extended, 1);
    let taken = store.write(|conn| Box::pin(async move { jobs::take_back_expired(conn, now_ms()).await })).await;
    assert_eq!(taken.unwrap(), [a]);
    let job = store.read(move |conn| Box::pin(jobs::get(conn, a))).await.unwrap().expect("job a");
    assert_eq!((job.state.as_str(), job.reconcile, job.locked_by), ("retrying", true, None));
    let released =
        store.write(move |conn| Box::pin(async move { jobs::release(conn, "alive", &[b], now_ms()).await })).await;
    assert_eq!(released.unwrap(), [b]);
    let job = store.read(move |conn| Box::pin(jobs::get(conn, b))).await.unwrap().expect("job b");
    assert_eq!((job.state.as_str(), job.reconcile), ("retrying", true));
    let attempt = store
        .write(move |conn| {
            Box::pin(async move {
                let (envelope, log) = (json!({}), json!([]));
                jobs::insert_attempt(
                    conn,
                    &NewAttempt {
                        job_id: a,
                        number: 1,
                        function: "create",
                        configuration_id: Some(configuration),
                        started_at: now_ms() - 5,
                        duration_ms: 5,
                        outcome: "outcome_unknown",
                        envelope: &envelope,
                        http_log: &log,
                    },
                )
                .await?;
                jobs::attempts(conn, a).await
            })
        })
        .await
        .unwrap();
    assert_eq!(attempt.len(), 1);
}

/// Lists bound value by value (`IN`, `NOT IN`, empty lists), JSON arrays
/// and suffix matches answer the same on every backend.
pub async fn lists_and_json_arrays_read_the_same(store: Store) {
    let f = Arc::new(fixture(&store, 8).await);
    let configuration = f.configuration;
    let fx = f.clone();
    let other_client = store
        .write(move |conn| {
            Box::pin(async move {
                let other = clients::insert(conn, None, "Eve", "eve@example.com").await?.id;
                let theirs = new_service(conn, &fx, "victim").await?;
                services::reserve(conn, theirs, configuration, "victim.example").await?;
                let event_types = json!(["service.activated", "service.failed"]);
                let id = webhooks::next_id(conn).await?;
                webhooks::insert(
                    conn,
                    id,
                    &webhooks::NewSubscriber {
                        name: "crm",
                        url: "https://crm.example/hook",
                        secrets: b"sealed",
                        event_types: &event_types,
                        include_credentials: false,
                        allow_private: false,
                    },
                )
                .await?;
                Ok::<_, StoreError>(other)
            })
        })
        .await
        .unwrap();
    // A name and the names it lies inside, as the engine's ownership check passes them.
    let nested = |name: &'static str, parents: &[&str]| {
        let (store, parents) = (store.clone(), parents.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        async move {
            store
                .read(move |conn| {
                    Box::pin(async move {
                        services::nested_of_other_client(conn, configuration, name, &parents, other_client).await
                    })
                })
                .await
                .unwrap()
                .and_then(|s| s.identifier)
        }
    };
    assert_eq!(nested("www.victim.example", &["victim.example", "example"]).await.as_deref(), Some("victim.example"));
    assert_eq!(nested("example", &[]).await.as_deref(), Some("victim.example"));
    assert_eq!(nested("other.example", &["example"]).await, None);
    assert_eq!(nested("ctim.example", &["example"]).await, None);
    let (wanted, unwanted, due, none_due) = store
        .read(|conn| {
            Box::pin(async move {
                Ok::<_, StoreError>((
                    webhooks::wanted(conn, "service.failed").await?,
                    webhooks::wanted(conn, "service.suspended").await?,
                    reports::due_for_sampling(conn, &["databases", "dns-hosting"], 10).await?,
                    reports::due_for_sampling(conn, &[], 10).await?,
                ))
            })
        })
        .await
        .unwrap();
    assert!(wanted);
    assert!(!unwanted);
    assert!(due.is_empty(), "a pending service is not sampled: {due:?}");
    assert!(none_due.is_empty());
    let enqueued = store
        .write(|conn| {
            Box::pin(async move { webhooks::enqueue(conn, "service.activated", None, &json!({"a": 1})).await })
        })
        .await
        .unwrap();
    assert_eq!(enqueued, 1);
    // Many rows by id at once (a claim's round): every one asked for that
    // exists, none other, and an empty list is no statement's error.
    let fx = f.clone();
    let (services, clients, no_services, no_clients) = store
        .write(move |conn| {
            Box::pin(async move {
                let second = new_service(conn, &fx, "second").await?;
                let third = new_service(conn, &fx, "third").await?;
                Ok::<_, StoreError>((
                    services::get_locked_many(conn, &[third, second, third + 1_000]).await?,
                    clients::get_many(conn, &[fx.client, other_client, fx.client]).await?,
                    services::get_locked_many(conn, &[]).await?,
                    clients::get_many(conn, &[]).await?,
                ))
            })
        })
        .await
        .unwrap();
    let mut ids: Vec<i64> = services.keys().copied().collect();
    ids.sort_unstable();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(services.values().all(|s| s.client_id == f.client));
    assert_eq!(clients.len(), 2);
    assert_eq!(clients[&other_client].name, "Eve");
    assert!(no_services.is_empty() && no_clients.is_empty());
}

/// Each configuration's count of live services (what capacity is judged by)
/// follows every change of a service: made on it, reserved on another,
/// terminated, brought back, moved; and a write rolled back changes no count.
pub async fn live_service_counts_follow_every_change(store: Store) {
    let f = Arc::new(fixture(&store, 8).await);
    let a = f.configuration;
    let counts = |store: Store| async move {
        store
            .read(|conn| {
                Box::pin(async move {
                    let counts = configurations::service_counts(conn).await?;
                    Ok::<_, StoreError>((counts, invariants::violations(conn, &[]).await?))
                })
            })
            .await
            .unwrap()
    };
    let of = |counts: &std::collections::HashMap<i64, i64>, id: i64| counts.get(&id).copied().unwrap_or(0);
    let fx = f.clone();
    let (b, one, two) = store
        .write(move |conn| {
            Box::pin(async move {
                let b = configurations::insert(
                    conn,
                    &ConfigurationRow {
                        blueprint: "databases".into(),
                        provider: "demo".into(),
                        name: format!("db-b-{}", now_ms()),
                        config_values: json!({}),
                        attributes: json!({}),
                        max_services: None,
                        max_concurrency: 8,
                        rate_per_minute: None,
                        enabled: true,
                    },
                )
                .await?;
                let one = new_service(conn, &fx, "one").await?;
                let two = new_service(conn, &fx, "two").await?;
                services::reserve(conn, two, b, "two.example").await?;
                Ok::<_, StoreError>((b, one, two))
            })
        })
        .await
        .unwrap();
    let (made, violations) = counts(store.clone()).await;
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!((of(&made, a), of(&made, b)), (1, 1), "{made:?}");
    let status = |status: &'static str| ServiceChange {
        status,
        identifier: None,
        provision_data: &serde_json::Value::Null,
        secrets: None,
        last_error: None,
    };
    store
        .write(move |conn| Box::pin(async move { services::apply(conn, one, &status("terminated")).await }))
        .await
        .unwrap();
    let (terminated, violations) = counts(store.clone()).await;
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!((of(&terminated, a), of(&terminated, b)), (0, 1), "{terminated:?}");
    let refused = store
        .write(move |conn| {
            Box::pin(async move {
                services::apply(conn, one, &status("active")).await?;
                services::set_configuration(conn, two, a).await?;
                Err::<(), _>(StoreError::Database("rolled back on purpose".into()))
            })
        })
        .await;
    assert!(refused.is_err());
    let (unchanged, violations) = counts(store.clone()).await;
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(unchanged, terminated);
    store
        .write(move |conn| {
            Box::pin(async move {
                services::apply(conn, one, &status("active")).await?;
                services::set_configuration(conn, two, a).await
            })
        })
        .await
        .unwrap();
    let (moved, violations) = counts(store.clone()).await;
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!((of(&moved, a), of(&moved, b)), (2, 0), "{moved:?}");
}

/// Reports bucket times by UTC day and hour, spelt the same on every backend.
pub async fn reports_bucket_by_utc_day_and_hour(store: Store) {
    let f = Arc::new(fixture(&store, 8).await);
    let before = chrono::Utc::now();
    store
        .write(move |conn| {
            Box::pin(async move {
                let service = new_service(conn, &f, "s1").await?;
                let (ok, bad) = (new_job(conn, service, "a").await?, new_job(conn, service, "b").await?);
                jobs::finish(conn, ok, "succeeded", None).await?;
                jobs::finish(conn, bad, "failed", Some("no")).await
            })
        })
        .await
        .unwrap();
    let after = chrono::Utc::now();
    let (days, hours) = store
        .read(|conn| {
            Box::pin(async move {
                let to = now_ms() + 1;
                Ok::<_, StoreError>((
                    reports::jobs_per_day(conn, 0, to).await?,
                    reports::jobs_per_hour(conn, 0, to).await?,
                ))
            })
        })
        .await
        .unwrap();
    // Either side of the write, should it straddle a midnight or an hour.
    let days_around = [before, after].map(|t| t.format("%Y-%m-%d").to_string());
    let hours_around = [before, after].map(|t| t.format("%Y-%m-%d %H:00").to_string());
    assert_eq!(days.len(), 1, "{days:?}");
    let (day, blueprint, configuration, succeeded, failed) = &days[0];
    assert!(days_around.contains(day), "{days:?}");
    // The jobs never ran on a configuration.
    assert_eq!((blueprint.as_str(), configuration.as_str(), *succeeded, *failed), ("databases", "(none)", 1, 1));
    assert_eq!(hours.len(), 1, "{hours:?}");
    assert!(hours_around.contains(&hours[0].0), "{hours:?}");
    assert_eq!((hours[0].1, hours[0].2), (1, 1));
}

/// A read is one snapshot: a write committed while it runs is not half seen.
pub async fn reads_are_one_snapshot(store: Store) {
    let writer = store.clone();
    let (first, second) = store
        .read(move |conn| {
            Box::pin(async move {
                let first = clients::list(conn, 100, None).await?.len();
                writer
                    .write(|conn| Box::pin(async move { clients::insert(conn, None, "Ann", "a@example.com").await }))
                    .await?;
                let second = clients::list(conn, 100, None).await?.len();
                Ok::<_, StoreError>((first, second))
            })
        })
        .await
        .unwrap();
    assert_eq!((first, second), (0, 0), "the read's snapshot does not move");
    let after = store.read(|conn| Box::pin(async move { clients::list(conn, 100, None).await })).await.unwrap();
    assert_eq!(after.len(), 1);
}

/// What a write answered as committed is there after the store is opened again.
pub async fn commits_survive_reopening<O, F>(url: &str, open: O)
where
    O: Fn(String) -> F,
    F: Future<Output = Store>,
{
    {
        let store = open(url.to_owned()).await;
        store
            .write(|conn| Box::pin(async move { clients::insert(conn, Some("kept"), "Ann", "a@example.com").await }))
            .await
            .unwrap();
    }
    let store = open(url.to_owned()).await;
    let client =
        store.read(|conn| Box::pin(async move { clients::get_by_external(conn, "kept").await })).await.unwrap();
    assert_eq!(client.map(|c| c.name).as_deref(), Some("Ann"));
}
