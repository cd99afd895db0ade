//! Pipeline runs, durable events with per-subscriber deliveries, layer runs and webhook
//! idempotency, on SQLite and PostgreSQL.

mod common;
mod support;

use common::pipeline_runs::{
    commit, committed, counts, degraded_run, failed, intake_commit, intake_run, new_run, ok,
    state_entry, sub,
};
use serde_json::json;
use strata::db::{
    CommitOutcome, ContainerSummary, CreatedRun, DeliveryStatus, LayerRunStatus, NewEvent, NewJob,
    RunStatus, WebhookOutcome,
};
use support::{both_backends, both_backends_with_url, scalar_i64};

#[tokio::test]
async fn run_trigger_deliveries_and_job_are_created_atomically() {
    both_backends_with_url(|db, url| async move {
        let mut new = new_run(
            "golden",
            "sales",
            "lead.received",
            vec![sub("intake", "sales"), sub("audit", "finance")],
        );
        let mut job = NewJob::new("pipeline_run", json!({"pipeline": "golden"}));
        job.max_attempts = 2;
        new.job = Some(job);
        let created = db.create_run(&new).await.unwrap();

        let run = &created.run;
        assert_eq!(run.status, RunStatus::Queued);
        assert_eq!(run.trigger_event_id, created.trigger.id);
        assert_eq!(run.request_id.as_deref(), Some("req-1"));
        assert!(!run.dry_run && run.started_at.is_none() && run.finished_at.is_none());
        let trigger = &created.trigger;
        assert_eq!(trigger.run_id.as_deref(), Some(run.id.as_str()));
        assert!(trigger.seq > 0);
        assert_eq!(trigger.topic, "lead.received");

        let job = created.job.clone().expect("job created");
        assert_eq!(run.job_id.as_deref(), Some(job.id.as_str()));
        assert_eq!(job.payload, json!({"pipeline": "golden", "run_id": run.id}));
        assert_eq!(job.request_id.as_deref(), Some("req-1"));
        let stored_job = db.get_job(&job.id).await.unwrap().expect("job stored");
        assert_eq!(stored_job, job);

        let detail = db.get_run(&run.id).await.unwrap().expect("run stored");
        assert_eq!(&detail.run, run);
        assert!(detail.layer_runs.is_empty());
        assert_eq!(detail.events.len(), 1);
        assert_eq!(&detail.events[0].event, trigger);
        let subs: Vec<(&str, &str, DeliveryStatus, i64)> = detail.events[0]
            .deliveries
            .iter()
            .map(|d| {
                (
                    d.subscriber.as_str(),
                    d.container.as_str(),
                    d.status,
                    d.attempts,
                )
            })
            .collect();
        assert_eq!(
            subs,
            vec![
                ("audit", "finance", DeliveryStatus::Pending, 0),
                ("intake", "sales", DeliveryStatus::Pending, 0),
            ]
        );
        assert!(detail.events[0]
            .deliveries
            .iter()
            .all(|d| d.run_id.as_deref() == Some(run.id.as_str())));

        // A second run whose trigger id is taken fails as a whole: no run, no event, no
        // delivery, no job is left behind.
        let mut clash = new.clone();
        clash.trigger.id = Some(trigger.id.clone());
        let err = db.create_run(&clash).await.unwrap_err();
        assert!(err.is_constraint(), "{err}");
        for (table, n) in [
            ("pipeline_runs", 1),
            ("events", 1),
            ("event_deliveries", 2),
            ("jobs", 1),
        ] {
            let got = scalar_i64(&url, &format!("SELECT COUNT(*) FROM {table}")).await;
            assert_eq!(got, n, "{table}");
        }
    })
    .await;
}

#[tokio::test]
async fn dry_run_marks_trigger_and_null_job_payload_gets_run_id() {
    both_backends(|db| async move {
        let mut new = new_run("golden", "sales", "lead.received", vec![]);
        new.dry_run = true;
        new.trigger.id = Some("0190aaaa-0000-7000-8000-000000000001".into());
        new.job = Some(NewJob::new("pipeline_run", serde_json::Value::Null));
        let created = db.create_run(&new).await.unwrap();
        assert!(created.run.dry_run && created.trigger.dry_run);
        assert_eq!(created.trigger.id, "0190aaaa-0000-7000-8000-000000000001");
        assert_eq!(
            created.job.unwrap().payload,
            json!({"run_id": created.run.id})
        );
    })
    .await;
}

#[tokio::test]
async fn invalid_runs_and_commits_are_refused() {
    both_backends(|db| async move {
        let invalid = |e: strata::db::DbError| {
            assert!(matches!(e, strata::db::DbError::InvalidInput { .. }), "{e}")
        };
        invalid(
            db.create_run(&new_run(" ", "sales", "t", vec![]))
                .await
                .unwrap_err(),
        );
        invalid(
            db.create_run(&new_run("p", "", "t", vec![]))
                .await
                .unwrap_err(),
        );
        invalid(
            db.create_run(&new_run("p", "sales", "t", vec![sub("", "sales")]))
                .await
                .unwrap_err(),
        );
        let mut bad_job = new_run("p", "sales", "t", vec![]);
        bad_job.job = Some(NewJob::new("pipeline_run", json!([1, 2])));
        invalid(db.create_run(&bad_job).await.unwrap_err());
        assert!(db.list_runs(None, 0).await.unwrap().is_empty());

        let created = intake_run(&db, "p", "t").await;
        let run_id = created.run.id.as_str();
        invalid(
            db.finish_run(run_id, RunStatus::Running, None, None)
                .await
                .unwrap_err(),
        );
        invalid(
            db.finish_run(run_id, RunStatus::Succeeded, Some(1.5), None)
                .await
                .unwrap_err(),
        );
        let mut c = intake_commit(&created, ok(json!({}), vec![]));
        c.attempt = 0;
        invalid(db.commit_layer_run(&c).await.unwrap_err());
        let c = commit(
            "no-such-run",
            "intake",
            "sales",
            &created.trigger.id,
            "t",
            ok(json!({}), vec![]),
        );
        assert!(db.commit_layer_run(&c).await.unwrap_err().is_not_found());
        // Refused commits leave the delivery pending and store no layer run.
        let pending = db.pending_deliveries(run_id, 0).await.unwrap();
        assert_eq!((pending.len(), pending[0].attempts), (1, 0));
        assert!(db
            .get_run(run_id)
            .await
            .unwrap()
            .unwrap()
            .layer_runs
            .is_empty());
    })
    .await;
}

#[tokio::test]
async fn commit_acks_once_and_a_second_commit_of_the_same_delivery_is_a_duplicate_that_writes_nothing(
) {
    both_backends_with_url(|db, url| async move {
        let created = intake_run(&db, "golden", "lead.received").await;
        let run_id = created.run.id.clone();
        let c = intake_commit(
            &created,
            ok(
                json!({"normalized": true}),
                vec![(
                    NewEvent::new("sales", "lead.normalized", json!({}), "intake@1.0.0"),
                    vec![sub("enrichment", "sales")],
                )],
            ),
        );
        let (lr, emitted) = committed(db.commit_layer_run(&c).await.unwrap());
        assert_eq!(
            (lr.seq, lr.status, lr.attempt),
            (1, LayerRunStatus::Succeeded, 1)
        );
        assert_eq!(lr.output, Some(json!({"normalized": true})));
        assert_eq!(lr.plugin.as_deref(), Some("intake@1.0.0"));
        assert_eq!(emitted.len(), 1);

        let ev = db.get_event(&created.trigger.id).await.unwrap().unwrap();
        let d = &ev.deliveries[0];
        assert_eq!((d.status, d.attempts), (DeliveryStatus::Acked, 1));
        assert!(d.acked_at.is_some());

        // The same delivery again (a retried worker): nothing is written.
        let before: Vec<i64> = [
            scalar_i64(&url, "SELECT COUNT(*) FROM layer_runs").await,
            scalar_i64(&url, "SELECT COUNT(*) FROM events").await,
            scalar_i64(&url, "SELECT COUNT(*) FROM event_deliveries").await,
        ]
        .to_vec();
        assert_eq!(before, vec![1, 2, 2]);
        assert_eq!(
            db.commit_layer_run(&c).await.unwrap(),
            CommitOutcome::Duplicate
        );
        let failed_again = intake_commit(&created, failed("late failure", true));
        assert_eq!(
            db.commit_layer_run(&failed_again).await.unwrap(),
            CommitOutcome::Duplicate
        );
        // A subscriber that never had a delivery is a duplicate too.
        let stranger = commit(
            &run_id,
            "stranger",
            "sales",
            &created.trigger.id,
            "lead.received",
            ok(json!({}), vec![]),
        );
        assert_eq!(
            db.commit_layer_run(&stranger).await.unwrap(),
            CommitOutcome::Duplicate
        );
        let after = vec![
            scalar_i64(&url, "SELECT COUNT(*) FROM layer_runs").await,
            scalar_i64(&url, "SELECT COUNT(*) FROM events").await,
            scalar_i64(&url, "SELECT COUNT(*) FROM event_deliveries").await,
        ];
        assert_eq!(after, before);
        let ev = db.get_event(&created.trigger.id).await.unwrap().unwrap();
        assert_eq!(ev.deliveries[0].attempts, 1);
        assert!(ev.deliveries[0].last_error.is_none());
    })
    .await;
}

#[tokio::test]
async fn concurrent_commits_of_one_delivery_store_it_once() {
    both_backends(|db| async move {
        let created = intake_run(&db, "p", "t").await;
        let c = intake_commit(&created, ok(json!({}), vec![]));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (db, c) = (db.clone(), c.clone());
                tokio::spawn(async move { db.commit_layer_run(&c).await.unwrap() })
            })
            .collect();
        let mut committed_n = 0;
        for t in tasks {
            if let CommitOutcome::Committed { .. } = t.await.unwrap() {
                committed_n += 1;
            }
        }
        assert_eq!(committed_n, 1);
        let detail = db.get_run(&created.run.id).await.unwrap().unwrap();
        assert_eq!(detail.layer_runs.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn failed_attempt_keeps_the_delivery_pending_until_the_final_attempt_marks_it_failed() {
    both_backends(|db| async move {
        let created = intake_run(&db, "golden", "lead.received").await;
        let run_id = created.run.id.clone();
        let mut c = intake_commit(&created, failed("trap: unreachable", false));
        let (lr, emitted) = committed(db.commit_layer_run(&c).await.unwrap());
        assert_eq!(
            (lr.seq, lr.status, lr.error.as_deref()),
            (1, LayerRunStatus::Failed, Some("trap: unreachable"))
        );
        assert!(lr.output.is_none() && emitted.is_empty());
        let pending = db.pending_deliveries(&run_id, 10).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (pending[0].subscriber.as_str(), pending[0].attempts),
            ("intake", 1)
        );
        let d = &db
            .get_event(&created.trigger.id)
            .await
            .unwrap()
            .unwrap()
            .deliveries[0];
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(d.last_error.as_deref(), Some("trap: unreachable"));

        c.attempt = 2;
        c.result = failed("trap again", true);
        let (lr, _) = committed(db.commit_layer_run(&c).await.unwrap());
        assert_eq!((lr.seq, lr.attempt), (2, 2));
        assert!(db.pending_deliveries(&run_id, 10).await.unwrap().is_empty());
        let d = &db
            .get_event(&created.trigger.id)
            .await
            .unwrap()
            .unwrap()
            .deliveries[0];
        assert_eq!(
            (d.status, d.attempts, d.last_error.as_deref()),
            (DeliveryStatus::Failed, 2, Some("trap again"))
        );
        assert!(d.acked_at.is_none());

        // A failed delivery takes no more attempts.
        c.attempt = 3;
        c.result = ok(json!({}), vec![]);
        assert_eq!(
            db.commit_layer_run(&c).await.unwrap(),
            CommitOutcome::Duplicate
        );
    })
    .await;
}

#[tokio::test]
async fn emitted_events_get_deliveries_run_and_causation() {
    both_backends(|db| async move {
        let created = intake_run(&db, "golden", "lead.received").await;
        let run_id = created.run.id.clone();
        let explicit = NewEvent {
            causation_id: Some("external-cause".into()),
            id: Some("0190aaaa-0000-7000-8000-0000000000e2".into()),
            dry_run: true,
            ..NewEvent::new(
                "finance",
                "deal.opened",
                json!({"amount": 12000}),
                "intake@1.0.0",
            )
        };
        let (lr, emitted) = committed(
            db.commit_layer_run(&intake_commit(
                &created,
                ok(
                    json!({}),
                    vec![
                        (
                            NewEvent::new(
                                "sales",
                                "lead.normalized",
                                json!({"email": "a@b.c"}),
                                "intake@1.0.0",
                            ),
                            // The same layer twice gets one delivery.
                            vec![
                                sub("enrichment", "sales"),
                                sub("booking", "operations"),
                                sub("enrichment", "sales"),
                            ],
                        ),
                        (explicit, vec![sub("pricing", "finance")]),
                    ],
                ),
            ))
            .await
            .unwrap(),
        );
        assert_eq!(emitted.len(), 2);
        let (e1, e2) = (&emitted[0], &emitted[1]);
        assert!(created.trigger.seq < e1.seq && e1.seq < e2.seq);
        assert_eq!(e1.run_id.as_deref(), Some(run_id.as_str()));
        assert_eq!(
            e1.causation_id.as_deref(),
            Some(created.trigger.id.as_str())
        );
        assert!(!e1.dry_run);
        assert_eq!(e1.producer, "intake@1.0.0");
        assert_eq!(e2.id, "0190aaaa-0000-7000-8000-0000000000e2");
        assert_eq!(e2.causation_id.as_deref(), Some("external-cause"));
        assert!(e2.dry_run);

        let stored = db.get_event(&e1.id).await.unwrap().unwrap();
        assert_eq!(&stored.event, e1);
        let subs: Vec<(&str, &str, DeliveryStatus)> = stored
            .deliveries
            .iter()
            .map(|d| (d.subscriber.as_str(), d.container.as_str(), d.status))
            .collect();
        assert_eq!(
            subs,
            vec![
                ("booking", "operations", DeliveryStatus::Pending),
                ("enrichment", "sales", DeliveryStatus::Pending),
            ]
        );

        // The run's pending work, by event seq then subscriber.
        let pending = db.pending_deliveries(&run_id, 0).await.unwrap();
        let order: Vec<(&str, &str)> = pending
            .iter()
            .map(|p| (p.event.id.as_str(), p.subscriber.as_str()))
            .collect();
        assert_eq!(
            order,
            vec![
                (e1.id.as_str(), "booking"),
                (e1.id.as_str(), "enrichment"),
                (e2.id.as_str(), "pricing"),
            ]
        );
        assert_eq!(pending[0].container, "operations");
        assert_eq!(&pending[0].event, e1);
        assert_eq!(db.pending_deliveries(&run_id, 1).await.unwrap().len(), 1);

        // An emitted id that is already stored rolls the whole commit back.
        let dup = NewEvent {
            id: Some(e2.id.clone()),
            ..NewEvent::new("sales", "x", json!({}), "booking@1.0.0")
        };
        let err = db
            .commit_layer_run(&commit(
                &run_id,
                "booking",
                "operations",
                &e1.id,
                "lead.normalized",
                ok(json!({}), vec![(dup, vec![])]),
            ))
            .await
            .unwrap_err();
        assert!(err.is_constraint(), "{err}");
        let detail = db.get_run(&run_id).await.unwrap().unwrap();
        assert_eq!(detail.layer_runs.len(), 1);
        assert_eq!(detail.layer_runs[0], lr);
        assert_eq!(detail.events.len(), 3);
        assert_eq!(db.pending_deliveries(&run_id, 0).await.unwrap().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn container_counts_follow_the_definition() {
    both_backends(|db| async move {
        let created = degraded_run(&db).await;
        // Another run in the same containers must not be counted.
        let other = degraded_run(&db).await;
        assert_ne!(other.run.id, created.run.id);

        let got = db.run_container_counts(&created.run.id).await.unwrap();
        assert_eq!(
            got,
            vec![
                counts("finance", 0, 0, 1, 1),
                counts("operations", 1, 1, 1, 0),
                counts("sales", 2, 1, 3, 2),
            ]
        );
        assert!(db
            .run_container_counts("no-such-run")
            .await
            .unwrap()
            .is_empty());

        // Acknowledging the pending `meeting.booked` makes its event fully acked.
        let pending = db.pending_deliveries(&created.run.id, 0).await.unwrap();
        assert_eq!(pending.len(), 1);
        let p = &pending[0];
        committed(
            db.commit_layer_run(&commit(
                &created.run.id,
                &p.subscriber,
                &p.container,
                &p.event.id,
                &p.event.topic,
                ok(json!({"quote": 1}), vec![]),
            ))
            .await
            .unwrap(),
        );
        let got = db.run_container_counts(&created.run.id).await.unwrap();
        assert_eq!(got[1], counts("operations", 2, 2, 1, 1));

        let detail = db.get_run(&created.run.id).await.unwrap().unwrap();
        let seqs: Vec<i64> = detail.layer_runs.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        let layers: Vec<&str> = detail.layer_runs.iter().map(|l| l.layer.as_str()).collect();
        assert_eq!(layers, vec!["intake", "enrichment", "booking", "proposal"]);
        assert_eq!(detail.events.len(), 5);
        assert!(detail
            .events
            .windows(2)
            .all(|w| w[0].event.seq < w[1].event.seq));
    })
    .await;
}

#[tokio::test]
async fn runs_start_and_finish_once_and_recent_phi_is_newest_first() {
    both_backends(|db| async move {
        let mut ids = Vec::new();
        for _ in 0..3 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            ids.push(
                db.create_run(&new_run("golden", "sales", "t", vec![]))
                    .await
                    .unwrap()
                    .run
                    .id,
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let lone = db
            .create_run(&new_run("other", "sales", "t", vec![]))
            .await
            .unwrap();

        assert!(db.start_run(&ids[0]).await.unwrap());
        let started = db.get_run(&ids[0]).await.unwrap().unwrap().run;
        assert_eq!(started.status, RunStatus::Running);
        let at = started.started_at.expect("started_at set");
        assert!(db.start_run(&ids[0]).await.unwrap());
        assert_eq!(
            db.get_run(&ids[0]).await.unwrap().unwrap().run.started_at,
            Some(at)
        );
        assert!(!db.start_run("no-such-run").await.unwrap());

        assert!(db
            .finish_run(&ids[0], RunStatus::Succeeded, Some(0.9), None)
            .await
            .unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(db
            .finish_run(
                &ids[1],
                RunStatus::Incomplete,
                Some(0.5),
                Some("enrichment failed")
            )
            .await
            .unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert!(db
            .finish_run(&ids[2], RunStatus::Failed, None, Some("no layers"))
            .await
            .unwrap());
        // Finished runs stay finished.
        assert!(!db
            .finish_run(&ids[0], RunStatus::Failed, Some(0.1), None)
            .await
            .unwrap());
        assert!(!db.start_run(&ids[0]).await.unwrap());

        let run1 = db.get_run(&ids[1]).await.unwrap().unwrap().run;
        assert_eq!(run1.status, RunStatus::Incomplete);
        assert_eq!(run1.phi_sync, Some(0.5));
        assert_eq!(run1.error.as_deref(), Some("enrichment failed"));
        assert!(run1.finished_at.is_some());
        let run0 = db.get_run(&ids[0]).await.unwrap().unwrap().run;
        assert_eq!(
            (run0.status, run0.phi_sync),
            (RunStatus::Succeeded, Some(0.9))
        );

        assert_eq!(db.recent_phi("golden", 10).await.unwrap(), vec![0.5, 0.9]);
        assert_eq!(db.recent_phi("golden", 1).await.unwrap(), vec![0.5]);
        assert!(db.recent_phi("other", 10).await.unwrap().is_empty());

        let golden: Vec<String> = db
            .list_runs(Some("golden"), 0)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(golden, ids.iter().rev().cloned().collect::<Vec<_>>());
        let all = db.list_runs(None, 2).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].id, lone.run.id);
        assert!(db.get_run("no-such-run").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn webhook_delivery_id_is_idempotent() {
    both_backends_with_url(|db, url| async move {
        let run = new_run(
            "booking",
            "operations",
            "booking.created",
            vec![sub("booking", "operations")],
        );
        let first = db
            .create_webhook_run("calendly", "dlv-1", "abc123", &run)
            .await
            .unwrap();
        let WebhookOutcome::Created(created) = first else {
            panic!("first delivery must create a run: {first:?}");
        };
        let again = db
            .create_webhook_run("calendly", "dlv-1", "abc123", &run)
            .await
            .unwrap();
        match again {
            WebhookOutcome::Duplicate {
                run_id,
                event_id,
                received_at,
            } => {
                assert_eq!(run_id, created.run.id);
                assert_eq!(event_id, created.trigger.id);
                assert_eq!(received_at, created.run.created_at);
            }
            other => panic!("expected Duplicate, got {other:?}"),
        }
        for (table, n) in [
            ("pipeline_runs", 1),
            ("events", 1),
            ("event_deliveries", 1),
            ("webhook_deliveries", 1),
        ] {
            let got = scalar_i64(&url, &format!("SELECT COUNT(*) FROM {table}")).await;
            assert_eq!(got, n, "{table}");
        }
        // Another delivery id, or the same id on another webhook, is a new run.
        for (hook, id) in [("calendly", "dlv-2"), ("cal-com", "dlv-1")] {
            let out = db
                .create_webhook_run(hook, id, "abc123", &run)
                .await
                .unwrap();
            assert!(matches!(out, WebhookOutcome::Created(_)), "{hook}/{id}");
        }
        assert_eq!(db.list_runs(Some("booking"), 0).await.unwrap().len(), 3);

        // Concurrent deliveries of one id: exactly one creates the run.
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (db, run) = (db.clone(), run.clone());
                tokio::spawn(async move {
                    db.create_webhook_run("calendly", "dlv-race", "abc123", &run)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut created_ids = Vec::new();
        let mut duplicate_ids = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                WebhookOutcome::Created(c) => created_ids.push(c.run.id),
                WebhookOutcome::Duplicate { run_id, .. } => duplicate_ids.push(run_id),
            }
        }
        assert_eq!(created_ids.len(), 1, "exactly one Created");
        assert!(duplicate_ids.iter().all(|id| *id == created_ids[0]));
        assert_eq!(db.list_runs(Some("booking"), 0).await.unwrap().len(), 4);
        assert_eq!(
            scalar_i64(&url, "SELECT COUNT(*) FROM events").await,
            4,
            "no trigger event of a duplicate is left"
        );

        let err = db
            .create_webhook_run("calendly", " ", "abc123", &run)
            .await
            .unwrap_err();
        assert!(
            matches!(err, strata::db::DbError::InvalidInput { .. }),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn read_events_pages_by_id() {
    both_backends(|db| async move {
        let mut ids = Vec::new();
        for i in 0..5 {
            let mut run = new_run("p", "sales", "lead.received", vec![]);
            run.trigger.payload = json!({"i": i});
            ids.push(db.create_run(&run).await.unwrap().trigger.id);
            db.create_run(&new_run("p", "sales", "other.topic", vec![]))
                .await
                .unwrap();
        }
        let page1 = db.read_events("lead.received", None, 2).await.unwrap();
        let got: Vec<&str> = page1.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(got, vec![ids[0].as_str(), ids[1].as_str()]);
        assert_eq!(page1[1].payload, json!({"i": 1}));
        let page2 = db
            .read_events("lead.received", Some(&page1[1].id), 2)
            .await
            .unwrap();
        let got: Vec<&str> = page2.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(got, vec![ids[2].as_str(), ids[3].as_str()]);
        let page3 = db
            .read_events("lead.received", Some(&page2[1].id), 0)
            .await
            .unwrap();
        assert_eq!(page3.len(), 1);
        assert_eq!(page3[0].id, ids[4]);
        assert!(db
            .read_events("lead.received", Some(&page3[0].id), 10)
            .await
            .unwrap()
            .is_empty());
        assert!(db
            .read_events("nobody.publishes", None, 10)
            .await
            .unwrap()
            .is_empty());

        let err = db
            .read_events("lead.received", Some("no-such-event"), 10)
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
        let err = db.read_events("", None, 10).await.unwrap_err();
        assert!(
            matches!(err, strata::db::DbError::InvalidInput { .. }),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn container_events_filter_by_topic_and_page_by_seq_with_deliveries() {
    both_backends(|db| async move {
        let created = degraded_run(&db).await;
        let sales = db.container_events("sales", None, None, 0).await.unwrap();
        let topics: Vec<&str> = sales.iter().map(|e| e.event.topic.as_str()).collect();
        assert_eq!(
            topics,
            vec!["lead.received", "lead.normalized", "lead.audit"]
        );
        assert_eq!(sales[0].event.id, created.trigger.id);
        let normalized = &sales[1];
        let deliveries: Vec<(&str, DeliveryStatus)> = normalized
            .deliveries
            .iter()
            .map(|d| (d.subscriber.as_str(), d.status))
            .collect();
        assert_eq!(
            deliveries,
            vec![
                ("booking", DeliveryStatus::Acked),
                ("enrichment", DeliveryStatus::Failed)
            ]
        );
        assert!(sales[2].deliveries.is_empty());

        let after = db
            .container_events("sales", None, Some(sales[0].event.seq), 1)
            .await
            .unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0], sales[1]);
        let by_topic = db
            .container_events("sales", Some("lead.audit"), None, 10)
            .await
            .unwrap();
        assert_eq!(by_topic, vec![sales[2].clone()]);
        assert!(db
            .container_events("nowhere", None, None, 10)
            .await
            .unwrap()
            .is_empty());

        let json = serde_json::to_value(&sales[1]).unwrap();
        assert_eq!(json["topic"], "lead.normalized");
        assert_eq!(json["deliveries"][0]["status"], "acked");
    })
    .await;
}

#[tokio::test]
async fn container_summaries_count_events_deliveries_and_layer_runs() {
    both_backends(|db| async move {
        assert!(db.containers_summary().await.unwrap().is_empty());
        degraded_run(&db).await;
        let summary = db.containers_summary().await.unwrap();
        let strip = |mut s: Vec<ContainerSummary>| {
            for c in &mut s {
                assert!(c.events == 0 || c.last_event_at.is_some(), "{c:?}");
                c.last_event_at = None;
            }
            s
        };
        let row = |container: &str, events, pending, failed, lr, lr_failed| ContainerSummary {
            container: container.into(),
            events,
            pending_deliveries: pending,
            failed_deliveries: failed,
            last_event_at: None,
            layer_runs: lr,
            layer_runs_failed: lr_failed,
        };
        // finance: E4; operations: E3, pending delivery to proposal, the booking run;
        // sales: E0, E1, E2, failed delivery to enrichment, intake and enrichment runs.
        assert_eq!(
            strip(summary),
            vec![
                row("finance", 1, 0, 0, 0, 0),
                row("operations", 1, 1, 0, 1, 0),
                row("sales", 3, 0, 1, 2, 1),
            ]
        );
        degraded_run(&db).await;
        let summary = db.containers_summary().await.unwrap();
        assert_eq!(summary[2].events, 6);
        assert_eq!(summary[1].pending_deliveries, 2);
        let newest = db.container_events("sales", None, None, 10).await.unwrap();
        assert_eq!(
            summary[2].last_event_at,
            newest.iter().map(|e| e.event.emitted_at).max()
        );
    })
    .await;
}

#[tokio::test]
async fn records_serialize_flat_with_lowercase_statuses() {
    both_backends(|db| async move {
        let created = degraded_run(&db).await;
        let detail = db.get_run(&created.run.id).await.unwrap().unwrap();
        let v = serde_json::to_value(&detail).unwrap();
        assert_eq!(v["id"], json!(created.run.id));
        assert_eq!(v["status"], "running");
        assert_eq!(v["layer_runs"][1]["status"], "failed");
        assert_eq!(v["events"][0]["deliveries"][0]["status"], "acked");
        assert_eq!(
            "Incomplete".parse::<RunStatus>().unwrap(),
            RunStatus::Incomplete
        );
        assert!("done".parse::<DeliveryStatus>().is_err());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_stores_its_state_writes_and_returns_its_new_deliveries() {
    both_backends(|db| async move {
        let write = |key: &str, value: Option<&str>| state_entry("intake", key, value);
        db.state_set("intake", "old", b"1").await.unwrap();
        db.state_set("intake", "gone", b"2").await.unwrap();
        let created = db
            .create_run(&new_run(
                "golden",
                "sales",
                "lead.received",
                vec![sub("intake", "sales"), sub("audit", "sales")],
            ))
            .await
            .unwrap();
        let run_id = created.run.id.clone();

        // A failed attempt stores none of its writes.
        let mut c = intake_commit(&created, failed("boom", false));
        c.state_writes = vec![write("new", Some("x")), write("gone", None)];
        committed(db.commit_layer_run(&c).await.unwrap());
        assert_eq!(
            db.state_keys("intake").await.unwrap(),
            vec!["gone".to_string(), "old".to_string()]
        );

        // A succeeded one stores them (the last write of a key wins), and returns the
        // deliveries it created, as pending_deliveries would list them.
        let mut c = intake_commit(
            &created,
            ok(
                json!({}),
                vec![
                    (
                        NewEvent::new("sales", "lead.accepted", json!({"n": 1}), "intake@1.0.0"),
                        vec![sub("qualification", "sales"), sub("enrichment", "sales")],
                    ),
                    (
                        NewEvent::new("sales", "lead.audit", json!({}), "intake@1.0.0"),
                        vec![],
                    ),
                ],
            ),
        );
        c.attempt = 2;
        c.state_writes = vec![
            write("new", Some("x")),
            write("old", Some("changed")),
            write("new", Some("y")),
            write("gone", None),
            write("never", Some("z")),
            write("never", None),
        ];
        let outcome = db.commit_layer_run(&c).await.unwrap();
        let CommitOutcome::Committed {
            emitted,
            deliveries,
            ..
        } = outcome
        else {
            panic!("expected a commit, got {outcome:?}");
        };
        assert_eq!(
            db.state_keys("intake").await.unwrap(),
            vec!["new".to_string(), "old".to_string()]
        );
        assert_eq!(
            db.state_get("intake", "new").await.unwrap(),
            Some(b"y".to_vec())
        );
        assert_eq!(
            db.state_get("intake", "old").await.unwrap(),
            Some(b"changed".to_vec())
        );
        let got: Vec<(String, String, i64)> = deliveries
            .iter()
            .map(|d| (d.event.id.clone(), d.subscriber.clone(), d.attempts))
            .collect();
        assert_eq!(
            got,
            vec![
                (emitted[0].id.clone(), "enrichment".to_string(), 0),
                (emitted[0].id.clone(), "qualification".to_string(), 0),
            ]
        );
        let mut pending = db.pending_deliveries(&run_id, 0).await.unwrap();
        // The trigger's delivery to `audit` is still pending too.
        pending.retain(|d| d.event.id != created.trigger.id);
        assert_eq!(pending, deliveries);

        // A duplicate commit stores nothing.
        let mut dup = c.clone();
        dup.state_writes = vec![write("dup", Some("no"))];
        assert_eq!(
            db.commit_layer_run(&dup).await.unwrap(),
            CommitOutcome::Duplicate
        );
        assert_eq!(db.state_get("intake", "dup").await.unwrap(), None);

        // A run's progress: its layer runs and the failed ones.
        let progress = db.run_progress(&run_id).await.unwrap().unwrap();
        assert_eq!((progress.layer_runs, progress.failed_layer_runs), (2, 1));
        assert_eq!(progress.run, created.run);
        assert!(db.run_progress("no-such-run").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_state_reads_are_stale_stores_a_failed_layer_run_and_keeps_its_delivery_pending(
) {
    both_backends(|db| async move {
        let entry = |key: &str, value: Option<&str>| state_entry("booking", key, value);
        db.state_set("booking", "day:1", b"[]").await.unwrap();
        let mut runs = Vec::new();
        for _ in 0..3 {
            let created = db
                .create_run(&new_run(
                    "golden",
                    "operations",
                    "lead.qualified",
                    vec![sub("booking", "operations")],
                ))
                .await
                .unwrap();
            runs.push(created);
        }
        // Each run's booking layer saw the day empty and booking `slot-1` absent, and books it.
        let booking = |created: &CreatedRun, id: &str| {
            let mut c = commit(
                &created.run.id,
                "booking",
                "operations",
                &created.trigger.id,
                "lead.qualified",
                ok(
                    json!({"booking": id}),
                    vec![(
                        NewEvent::new("operations", "meeting.booked", json!({}), "booking@1.0.0"),
                        vec![sub("proposal", "operations")],
                    )],
                ),
            );
            c.state_reads = vec![entry("day:1", Some("[]")), entry(id, None)];
            c.state_writes = vec![
                entry("day:1", Some(&format!("[\"{id}\"]"))),
                entry(id, Some("10:00")),
            ];
            c
        };

        // The first commit finds its reads current and stores everything.
        let (first, emitted) = committed(
            db.commit_layer_run(&booking(&runs[0], "slot-1"))
                .await
                .unwrap(),
        );
        assert_eq!(first.status, LayerRunStatus::Succeeded);
        assert_eq!(emitted.len(), 1);
        assert_eq!(
            db.state_get("booking", "day:1").await.unwrap(),
            Some(br#"["slot-1"]"#.to_vec())
        );

        // The second read the day before the first stored it: a failed layer run naming
        // the key, nothing of its writes or events stored, its delivery pending.
        let outcome = db
            .commit_layer_run(&booking(&runs[1], "slot-1b"))
            .await
            .unwrap();
        let CommitOutcome::Committed {
            layer_run,
            emitted,
            deliveries,
        } = outcome
        else {
            panic!("expected a stored layer run, got {outcome:?}");
        };
        assert_eq!(layer_run.status, LayerRunStatus::Failed);
        let error = layer_run.error.clone().unwrap_or_default();
        assert!(
            error.contains("state conflict") && error.contains("\"day:1\""),
            "{error}"
        );
        assert_eq!(layer_run.output, None);
        assert!(emitted.is_empty() && deliveries.is_empty());
        assert_eq!(
            db.state_get("booking", "day:1").await.unwrap(),
            Some(br#"["slot-1"]"#.to_vec())
        );
        assert_eq!(db.state_get("booking", "slot-1b").await.unwrap(), None);
        let pending = db.pending_deliveries(&runs[1].run.id, 0).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (pending[0].subscriber.as_str(), pending[0].attempts),
            ("booking", 1)
        );
        let detail = db.get_run(&runs[1].run.id).await.unwrap().unwrap();
        assert_eq!(detail.layer_runs.len(), 1);
        assert_eq!(detail.layer_runs[0].status, LayerRunStatus::Failed);

        // A key read as absent that exists now is stale too.
        let mut c = booking(&runs[2], "slot-1");
        c.state_reads = vec![entry("slot-1", None)];
        let (lr, _) = committed(db.commit_layer_run(&c).await.unwrap());
        assert_eq!(lr.status, LayerRunStatus::Failed);
        assert!(lr.error.unwrap_or_default().contains("\"slot-1\""));

        // Run again on fresh reads, the second run's booking is stored.
        let mut retry = booking(&runs[1], "slot-2");
        retry.attempt = 2;
        retry.state_reads = vec![entry("day:1", Some(r#"["slot-1"]"#)), entry("slot-2", None)];
        retry.state_writes[0].value = Some(br#"["slot-1","slot-2"]"#.to_vec());
        let (lr, emitted) = committed(db.commit_layer_run(&retry).await.unwrap());
        assert_eq!(
            (lr.status, lr.seq, emitted.len()),
            (LayerRunStatus::Succeeded, 2, 1)
        );
        assert_eq!(
            db.state_get("booking", "day:1").await.unwrap(),
            Some(br#"["slot-1","slot-2"]"#.to_vec())
        );
        assert!(db
            .pending_deliveries(&runs[1].run.id, 0)
            .await
            .unwrap()
            .iter()
            .all(|d| d.subscriber != "booking"));
    })
    .await;
}

/// The enrichment layer's company facts (`get_company` of Strata's MCP server): an
/// indexed aggregate, the same on both engines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn company_facts_aggregate_a_companys_leads_case_and_space_insensitively() {
    both_backends_with_url(|db, url| async move {
        let lead = |id: &str, company: &str, industry: Option<&str>| strata::domain::Lead {
            id: id.into(),
            company: Some(company.into()),
            industry: industry.map(str::to_string),
            ..Default::default()
        };
        let mut a = lead("A", "Acme Robotics", Some("Robotics"));
        a.employees = Some(900);
        a.status = strata::domain::LeadStatus::Qualified;
        let mut b = lead("B", "  acme robotics ", Some("robotics "));
        b.employees = Some(50);
        b.annual_revenue = Some(1_250_000.5);
        let c = lead("C", "ACME ROBOTICS", Some("Manufacturing"));
        let d = lead("D", "Acme Robotics Inc", Some("Software"));
        let e = lead("E", "Other", None);
        for l in [&a, &b, &c, &d, &e] {
            db.upsert_lead(l).await.unwrap();
        }
        let facts = db.company_facts(" acme ROBOTICS", 20, 2_000).await.unwrap();
        assert_eq!(facts.lead_count, 3, "{facts:?}");
        assert_eq!(facts.employees, Some(900));
        assert_eq!(facts.annual_revenue, Some(1_250_000.5));
        assert_eq!(facts.qualified_count, 1);
        let mut ids = facts.lead_ids.clone();
        ids.sort();
        assert_eq!(ids, vec!["A", "B", "C"]);
        let mut industries = facts.industries.clone();
        industries.sort_by_key(|i| i.to_lowercase());
        assert_eq!(industries.len(), 2, "{facts:?}");
        assert_eq!(industries[0], "Manufacturing");
        assert!(industries[1].eq_ignore_ascii_case("robotics"));
        assert_eq!(
            db.company_facts("acme robotics", 2, 2_000)
                .await
                .unwrap()
                .lead_ids
                .len(),
            2
        );
        let none = db.company_facts("Nobody", 20, 2_000).await.unwrap();
        assert_eq!(
            (
                none.lead_count,
                none.lead_ids.len(),
                none.employees,
                none.qualified_count
            ),
            (0, 0, None, 0)
        );
        // The lookup is served by the expression index on both engines.
        let sql = if url.starts_with("postgres") {
            "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'leads_company_idx'"
        } else {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'leads_company_idx'"
        };
        assert_eq!(scalar_i64(&url, sql).await, 1);
    })
    .await;
}
