//! The HTTP service's tables: API keys, the durable job queue and execution stats, on
//! SQLite and PostgreSQL; and the SQLite file's online backup and restore.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use strata::db::{
    hash_api_key_secret, ExecutionFinish, JobFilter, JobStatus, NewApiKey, NewExecution, NewJob,
    Role,
};
use support::both_backends;

fn key(name: &str, role: Role, secret: &str) -> NewApiKey {
    NewApiKey {
        name: name.into(),
        role,
        key_hash: hash_api_key_secret(secret),
        prefix: secret[..8].into(),
    }
}

#[tokio::test]
async fn api_key_is_found_by_hash_touched_and_revoked_by_its_id_only() {
    both_backends(|db| async move {
        let secret = "sk_live_abcdef0123456789";
        let rec = db
            .insert_api_key(&key("ci", Role::Operator, secret))
            .await
            .unwrap();
        assert_eq!(
            (rec.role, rec.prefix.as_str()),
            (Role::Operator, "sk_live_")
        );
        assert!(rec.is_active() && rec.last_used_at.is_none());

        let found = db
            .find_active_api_key(&hash_api_key_secret(secret))
            .await
            .unwrap()
            .expect("found by hash");
        assert_eq!(found, rec);
        let upper = hash_api_key_secret(secret).to_ascii_uppercase();
        assert!(db.find_active_api_key(&upper).await.unwrap().is_some());
        assert!(db
            .find_active_api_key(&hash_api_key_secret("wrong"))
            .await
            .unwrap()
            .is_none());
        assert!(db.find_active_api_key("not hex").await.unwrap().is_none());

        assert!(db.touch_api_key(&rec.id).await.unwrap());
        assert!(!db.touch_api_key("nope").await.unwrap());
        let touched = db
            .find_active_api_key(&hash_api_key_secret(secret))
            .await
            .unwrap()
            .unwrap();
        assert!(touched.last_used_at.unwrap() >= rec.created_at);

        assert!(
            !db.revoke_api_key("sk_live").await.unwrap(),
            "a prefix revokes nothing"
        );
        assert!(db
            .find_active_api_key(&hash_api_key_secret(secret))
            .await
            .unwrap()
            .is_some());
        assert!(db.revoke_api_key(&rec.id).await.unwrap(), "by id");
        assert!(db
            .find_active_api_key(&hash_api_key_secret(secret))
            .await
            .unwrap()
            .is_none());
        assert!(
            !db.revoke_api_key("sk_live").await.unwrap(),
            "already revoked"
        );
        assert!(
            !db.revoke_api_key(&rec.id).await.unwrap(),
            "already revoked"
        );
        let listed = db.list_api_keys().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].revoked_at.is_some() && !listed[0].is_active());
    })
    .await;
}

#[tokio::test]
async fn api_keys_list_oldest_first_and_refuse_duplicates_and_bad_input() {
    both_backends(|db| async move {
        let a = db
            .insert_api_key(&key("a", Role::Admin, "aaaa1111-secret"))
            .await
            .unwrap();
        let b = db
            .insert_api_key(&key("b", Role::Reader, "bbbb2222-secret"))
            .await
            .unwrap();
        let list = db.list_api_keys().await.unwrap();
        assert_eq!(list, vec![a.clone(), b.clone()]);

        let dup = db
            .insert_api_key(&key("again", Role::Reader, "aaaa1111-secret"))
            .await
            .unwrap_err();
        assert!(dup.is_constraint(), "{dup}");
        let bad = NewApiKey {
            key_hash: "xyz".into(),
            ..key("c", Role::Reader, "cccc3333-secret")
        };
        assert!(matches!(
            db.insert_api_key(&bad).await.unwrap_err(),
            strata::db::DbError::InvalidInput { .. }
        ));
        assert!(db.revoke_api_key("  ").await.is_err());
        assert!(!db.revoke_api_key("zzzz").await.unwrap(), "no match");
        assert!(db.revoke_api_key(&b.id).await.unwrap(), "by id");
        assert_eq!(db.list_api_keys().await.unwrap().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_key_prefix_shared_by_several_keys_revokes_none_of_them() {
    both_backends(|db| async move {
        let mut ids = Vec::new();
        for s in ["sk_same_1-secret", "sk_same_2-secret", "sk_same_3-secret"] {
            let mut k = key("k", Role::Reader, s);
            k.prefix = s[..9].into();
            ids.push(db.insert_api_key(&k).await.unwrap().id);
        }
        for needle in ["sk_same", "sk_same_2", "s", &ids[0][..ids[0].len() - 1]] {
            assert!(!db.revoke_api_key(needle).await.unwrap(), "{needle:?}");
        }
        assert!(db.revoke_api_key(&ids[1]).await.unwrap());
        let active: Vec<String> = db
            .list_api_keys()
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.is_active())
            .map(|k| k.id)
            .collect();
        assert_eq!(active, vec![ids[0].clone(), ids[2].clone()]);
    })
    .await;
}

#[test]
fn roles_are_ordered_reader_operator_admin() {
    assert!(Role::Reader < Role::Operator && Role::Operator < Role::Admin);
    assert!(Role::Admin.allows(Role::Reader) && Role::Admin.allows(Role::Admin));
    assert!(Role::Operator.allows(Role::Reader) && !Role::Operator.allows(Role::Admin));
    assert!(!Role::Reader.allows(Role::Operator));
    for r in Role::ALL {
        assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
    }
    assert_eq!(" Admin ".parse::<Role>().unwrap(), Role::Admin);
    assert!("root".parse::<Role>().is_err());
    assert_eq!(
        serde_json::to_value(Role::Operator).unwrap(),
        json!("operator")
    );
}

#[tokio::test]
async fn job_is_enqueued_claimed_and_completed() {
    both_backends(|db| async move {
        let mut new = NewJob::new("score_batch", json!({"leads": ["L-1", "L-2"]}));
        new.request_id = Some("req-1".into());
        let job = db.enqueue_job(&new).await.unwrap();
        assert_eq!(
            (job.status, job.attempts, job.max_attempts),
            (JobStatus::Queued, 0, 3)
        );
        assert_eq!(db.get_job(&job.id).await.unwrap().unwrap(), job);

        assert!(
            db.claim_job("w1", 30_000, &["other"])
                .await
                .unwrap()
                .is_none(),
            "kind filter"
        );
        let claimed = db
            .claim_job("w1", 30_000, &["other", "score_batch"])
            .await
            .unwrap()
            .expect("claimed");
        assert_eq!(claimed.id, job.id);
        assert_eq!(claimed.status, JobStatus::Running);
        assert_eq!(claimed.attempts, 1);
        assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
        assert!(claimed.lease_expires_at.unwrap() >= claimed.updated_at + 30_000);
        assert!(
            db.claim_job("w2", 30_000, &[]).await.unwrap().is_none(),
            "leased"
        );

        assert!(db.extend_lease(&job.id, "w1", 60_000).await.unwrap());
        assert!(!db.extend_lease(&job.id, "w2", 60_000).await.unwrap());
        assert!(
            !db.complete_job(&job.id, "w2", &json!(1)).await.unwrap(),
            "not the owner"
        );
        assert!(db
            .complete_job(&job.id, "w1", &json!({"scored": 2}))
            .await
            .unwrap());
        assert!(
            !db.complete_job(&job.id, "w1", &json!(2)).await.unwrap(),
            "done already"
        );
        let done = db.get_job(&job.id).await.unwrap().unwrap();
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(done.result, Some(json!({"scored": 2})));
        assert_eq!(done.payload, new.payload);
        assert_eq!(done.request_id.as_deref(), Some("req-1"));
        assert!(done.finished_at.is_some() && done.lease_expires_at.is_none());
        let v = serde_json::to_value(&done).unwrap();
        assert_eq!(v["status"], json!("succeeded"));

        assert!(db
            .enqueue_job(&NewJob {
                max_attempts: 0,
                ..new.clone()
            })
            .await
            .is_err());
        assert!(db
            .enqueue_job(&NewJob::new(" ", json!(null)))
            .await
            .is_err());
        assert!(db.claim_job("w1", 0, &[]).await.is_err());
        assert!(db.get_job("nope").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn job_due_later_is_not_claimed_before_run_at_and_oldest_run_at_goes_first() {
    both_backends(|db| async move {
        let now = strata::domain::now_ms();
        let later = db
            .enqueue_job(&NewJob {
                run_at: Some(now + 3_600_000),
                ..NewJob::new("k", json!("later"))
            })
            .await
            .unwrap();
        let second = db
            .enqueue_job(&NewJob {
                run_at: Some(now - 10),
                ..NewJob::new("k", json!("second"))
            })
            .await
            .unwrap();
        let first = db
            .enqueue_job(&NewJob {
                run_at: Some(now - 20),
                ..NewJob::new("k", json!("first"))
            })
            .await
            .unwrap();
        let a = db.claim_job("w", 10_000, &[]).await.unwrap().unwrap();
        let b = db.claim_job("w", 10_000, &[]).await.unwrap().unwrap();
        assert_eq!((a.id, b.id), (first.id, second.id));
        assert!(db.claim_job("w", 10_000, &[]).await.unwrap().is_none());
        assert_eq!(
            db.get_job(&later.id).await.unwrap().unwrap().status,
            JobStatus::Queued
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_claimers_never_get_the_same_job() {
    both_backends(|db| async move {
        const JOBS: usize = 200;
        const WORKERS: usize = 8;
        let mut ids = Vec::new();
        for i in 0..JOBS {
            ids.push(
                db.enqueue_job(&NewJob::new("k", json!(i)))
                    .await
                    .unwrap()
                    .id,
            );
        }
        let claims: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let mut tasks = Vec::new();
        for w in 0..WORKERS {
            let db = db.clone();
            let claims = claims.clone();
            tasks.push(tokio::spawn(async move {
                let owner = format!("worker-{w}");
                let mut done = 0usize;
                while let Some(job) = db.claim_job(&owner, 60_000, &["k"]).await.unwrap() {
                    assert_eq!(job.attempts, 1, "job {} handed out twice", job.id);
                    claims.lock().unwrap().push((job.id.clone(), owner.clone()));
                    tokio::task::yield_now().await;
                    assert!(
                        db.complete_job(&job.id, &owner, &json!({"by": owner}))
                            .await
                            .unwrap(),
                        "{owner} could not complete its own job {}",
                        job.id
                    );
                    done += 1;
                }
                done
            }));
        }
        let mut completed = 0;
        let mut busy_workers = 0;
        for t in tasks {
            let n = t.await.unwrap();
            completed += n;
            busy_workers += usize::from(n > 0);
        }
        assert_eq!(completed, JOBS);
        let claims = claims.lock().unwrap().clone();
        let mut per_job: HashMap<String, Vec<String>> = HashMap::new();
        for (id, owner) in claims {
            per_job.entry(id).or_default().push(owner);
        }
        assert_eq!(per_job.len(), JOBS, "every job claimed");
        for (id, owners) in &per_job {
            assert_eq!(owners.len(), 1, "job {id} claimed by {owners:?}");
        }
        for id in &ids {
            let j = db.get_job(id).await.unwrap().unwrap();
            assert_eq!((j.status, j.attempts), (JobStatus::Succeeded, 1));
            assert_eq!(j.result, Some(json!({"by": per_job[id][0]})));
        }
        let depth = db.queue_depth().await.unwrap();
        assert_eq!((depth.succeeded, depth.total()), (JOBS as i64, JOBS as i64));
        assert!(
            busy_workers > 1,
            "work was shared ({busy_workers} workers busy)"
        );
    })
    .await;
}

#[tokio::test]
async fn expired_lease_is_reclaimed_and_the_old_owner_is_fenced_off() {
    both_backends(|db| async move {
        let job = db.enqueue_job(&NewJob::new("k", json!(1))).await.unwrap();
        let first = db.claim_job("dead-worker", 1, &[]).await.unwrap().unwrap();
        assert_eq!(first.id, job.id);
        tokio::time::sleep(Duration::from_millis(20)).await;

        let again = db
            .claim_job("w2", 60_000, &[])
            .await
            .unwrap()
            .expect("reclaimed");
        assert_eq!((again.id.as_str(), again.attempts), (job.id.as_str(), 2));
        assert_eq!(again.lease_owner.as_deref(), Some("w2"));
        assert!(
            db.claim_job("w3", 60_000, &[]).await.unwrap().is_none(),
            "lease is valid"
        );

        assert!(!db
            .complete_job(&job.id, "dead-worker", &json!("stale"))
            .await
            .unwrap());
        assert!(db
            .fail_job(&job.id, "dead-worker", "x", 0)
            .await
            .unwrap()
            .is_none());
        assert!(!db.release_job(&job.id, "dead-worker").await.unwrap());
        assert!(!db
            .extend_lease(&job.id, "dead-worker", 1_000)
            .await
            .unwrap());
        assert!(db
            .complete_job(&job.id, "w2", &json!("fresh"))
            .await
            .unwrap());
        let j = db.get_job(&job.id).await.unwrap().unwrap();
        assert_eq!(
            (j.status, j.result),
            (JobStatus::Succeeded, Some(json!("fresh")))
        );
    })
    .await;
}

#[tokio::test]
async fn failed_job_is_retried_later_then_dead_after_max_attempts() {
    both_backends(|db| async move {
        let job = db
            .enqueue_job(&NewJob {
                max_attempts: 3,
                ..NewJob::new("k", json!({}))
            })
            .await
            .unwrap();
        let c = db.claim_job("w", 60_000, &[]).await.unwrap().unwrap();
        let before = strata::domain::now_ms();
        let f = db
            .fail_job(&c.id, "w", "boom 1", 300)
            .await
            .unwrap()
            .expect("owned");
        assert_eq!((f.status, f.attempts), (JobStatus::Queued, 1));
        assert!(f.run_at >= before + 300, "retry is delayed");
        assert_eq!((f.lease_owner, f.lease_expires_at), (None, None));
        assert_eq!(f.last_error.as_deref(), Some("boom 1"));
        assert!(
            db.claim_job("w", 60_000, &[]).await.unwrap().is_none(),
            "not due yet"
        );
        tokio::time::sleep(Duration::from_millis(350)).await;

        let c = db
            .claim_job("w", 60_000, &[])
            .await
            .unwrap()
            .expect("due again");
        assert_eq!(c.attempts, 2);
        let f = db.fail_job(&c.id, "w", "boom 2", 0).await.unwrap().unwrap();
        assert_eq!(f.status, JobStatus::Queued);
        let c = db.claim_job("w", 60_000, &[]).await.unwrap().unwrap();
        assert_eq!(c.attempts, 3);
        let f = db.fail_job(&c.id, "w", "boom 3", 0).await.unwrap().unwrap();
        assert_eq!((f.status, f.attempts), (JobStatus::Dead, 3));
        assert_eq!(f.last_error.as_deref(), Some("boom 3"));
        assert!(f.finished_at.is_some());
        assert!(
            db.claim_job("w", 60_000, &[]).await.unwrap().is_none(),
            "dead stays dead"
        );
        assert_eq!(db.get_job(&job.id).await.unwrap().unwrap(), f);

        let long = "é".repeat(10_000);
        let j = db.enqueue_job(&NewJob::new("k", json!(2))).await.unwrap();
        db.claim_job("w", 60_000, &[]).await.unwrap().unwrap();
        let f = db.fail_job(&j.id, "w", &long, 0).await.unwrap().unwrap();
        assert!(
            f.last_error.unwrap().len() <= 8 * 1024,
            "error text is capped"
        );
    })
    .await;
}

#[tokio::test]
async fn released_job_goes_back_to_the_queue_without_counting_the_attempt() {
    both_backends(|db| async move {
        let job = db.enqueue_job(&NewJob::new("k", json!(1))).await.unwrap();
        let c = db.claim_job("w1", 60_000, &[]).await.unwrap().unwrap();
        assert_eq!(c.attempts, 1);
        assert!(
            !db.release_job(&job.id, "w2").await.unwrap(),
            "not the owner"
        );
        assert!(db.release_job(&job.id, "w1").await.unwrap());
        let r = db.get_job(&job.id).await.unwrap().unwrap();
        assert_eq!(
            (r.status, r.attempts, r.lease_owner),
            (JobStatus::Queued, 0, None)
        );
        assert_eq!(r.run_at, job.run_at);
        assert!(
            !db.release_job(&job.id, "w1").await.unwrap(),
            "not running any more"
        );
        let c = db.claim_job("w2", 60_000, &[]).await.unwrap().unwrap();
        assert_eq!((c.id, c.attempts), (job.id, 1));
    })
    .await;
}

#[tokio::test]
async fn job_whose_worker_died_on_the_last_attempt_is_reaped_dead() {
    both_backends(|db| async move {
        let job = db
            .enqueue_job(&NewJob {
                max_attempts: 1,
                ..NewJob::new("k", json!(1))
            })
            .await
            .unwrap();
        db.claim_job("crashy", 1, &[]).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            db.claim_job("w", 60_000, &[]).await.unwrap().is_none(),
            "no attempts left"
        );
        let j = db.get_job(&job.id).await.unwrap().unwrap();
        assert_eq!((j.status, j.attempts), (JobStatus::Dead, 1));
        let err = j.last_error.unwrap();
        assert!(err.contains("crashy") && err.contains("expired"), "{err}");
        assert_eq!(db.reap_expired_jobs().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn queue_depth_and_list_jobs_count_by_status_and_kind() {
    both_backends(|db| async move {
        assert_eq!(db.queue_depth().await.unwrap().total(), 0);
        for i in 0..5 {
            db.enqueue_job(&NewJob::new(if i < 3 { "a" } else { "b" }, json!(i)))
                .await
                .unwrap();
        }
        let c1 = db.claim_job("w", 60_000, &["a"]).await.unwrap().unwrap();
        let c2 = db.claim_job("w", 60_000, &["a"]).await.unwrap().unwrap();
        db.complete_job(&c1.id, "w", &json!(null)).await.unwrap();
        let one = db
            .enqueue_job(&NewJob {
                max_attempts: 1,
                ..NewJob::new("b", json!(9))
            })
            .await
            .unwrap();
        // The two earlier "b" jobs come first (oldest run_at): complete them; fail `one`.
        loop {
            let c = db.claim_job("w", 60_000, &["b"]).await.unwrap().unwrap();
            if c.id == one.id {
                db.fail_job(&c.id, "w", "no", 0).await.unwrap().unwrap();
                break;
            }
            assert!(db.complete_job(&c.id, "w", &json!(null)).await.unwrap());
        }

        let d = db.queue_depth().await.unwrap();
        assert_eq!((d.queued, d.running, d.succeeded, d.dead), (1, 1, 3, 1));
        assert_eq!(d.get(JobStatus::Running), 1);
        assert_eq!(d.total(), 6);

        let running = db
            .list_jobs(&JobFilter {
                status: Some(JobStatus::Running),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(running.len(), 1);
        assert_eq!(running[0].id, c2.id);
        let b = db
            .list_jobs(&JobFilter {
                kind: Some("b".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(b.len(), 3);
        assert!(
            b.windows(2).all(|w| w[0].created_at >= w[1].created_at),
            "newest first"
        );
        let page = db
            .list_jobs(&JobFilter {
                limit: 2,
                offset: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.len(), 2);
        let all = db.list_jobs(&JobFilter::default()).await.unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(page[0].id, all[1].id);
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), *s);
        }
    })
    .await;
}

#[tokio::test]
async fn execution_stats_give_counts_percentiles_and_sums_per_agent_version() {
    both_backends(|db| async move {
        let base = 1_000_000;
        let run = |agent: &str, version: &str, at: i64| {
            let mut e = NewExecution::new(agent, version, json!(null));
            e.created_at = at;
            e
        };
        // researcher 1.0: durations 10, 20, …, 100 ms; every 4th run failed.
        for i in 1..=10i64 {
            let id = db
                .insert_execution(&run("researcher", "1.0", base + i))
                .await
                .unwrap();
            let fin = ExecutionFinish {
                status: if i % 4 == 0 { "failed" } else { "succeeded" }.into(),
                tokens_in: 100,
                tokens_out: 10 * i,
                cost: 0.25,
                duration_ms: Some(10 * i),
                finished_at: base + i + 10 * i,
                ..Default::default()
            };
            db.finish_execution(&id, &fin).await.unwrap();
        }
        // One still running: counted, not in latencies or the success rate.
        db.insert_execution(&run("researcher", "1.0", base + 50))
            .await
            .unwrap();
        // Another version and an old run outside the window.
        let id = db
            .insert_execution(&run("researcher", "2.0", base + 60))
            .await
            .unwrap();
        db.finish_execution(
            &id,
            &ExecutionFinish {
                status: "succeeded".into(),
                duration_ms: Some(7),
                tokens_in: 1,
                tokens_out: 2,
                cost: 0.5,
                finished_at: base + 67,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        db.insert_execution(&run("old", "0.1", 5)).await.unwrap();

        let all = db.execution_stats(None).await.unwrap();
        assert_eq!(
            all.iter()
                .map(|s| (s.agent.as_str(), s.agent_version.as_str()))
                .collect::<Vec<_>>(),
            [("old", "0.1"), ("researcher", "1.0"), ("researcher", "2.0")]
        );
        let old = &all[0];
        assert_eq!(
            (old.count, old.running, old.succeeded, old.failed),
            (1, 1, 0, 0)
        );
        assert_eq!(
            (old.success_rate, old.p50_ms, old.latency_samples),
            (None, None, 0)
        );

        let stats = db.execution_stats(Some(base)).await.unwrap();
        assert_eq!(stats.len(), 2);
        let r1 = &stats[0];
        assert_eq!(
            (r1.count, r1.running, r1.succeeded, r1.failed),
            (11, 1, 8, 2)
        );
        assert_eq!(r1.success_rate, Some(0.8));
        assert_eq!(
            (r1.p50_ms, r1.p95_ms, r1.p99_ms),
            (Some(50), Some(100), Some(100))
        );
        assert_eq!(r1.latency_samples, 10);
        assert_eq!((r1.tokens_in, r1.tokens_out), (1_000, 550));
        assert!((r1.cost - 2.5).abs() < 1e-9, "{}", r1.cost);
        let r2 = &stats[1];
        assert_eq!(
            (r2.agent_version.as_str(), r2.count, r2.success_rate),
            ("2.0", 1, Some(1.0))
        );
        assert_eq!((r2.p50_ms, r2.p99_ms), (Some(7), Some(7)));
        assert_eq!((r2.tokens_in, r2.tokens_out, r2.cost), (1, 2, 0.5));
        let v = serde_json::to_value(r1).unwrap();
        assert_eq!(v["p95_ms"], json!(100));

        assert!(db
            .execution_stats(Some(base * 10))
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}

/// A backup taken while several writers insert leads holds every lead committed before it
/// started (the writers go on committing while it copies); restored into a new file and
/// over the original once its writers are gone, it passes `integrity_check` and migrates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_write_load_restores_every_lead_committed_before_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use strata::db::backup::{self, CopyOptions};

    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    let (copy, restored) = (dir.path().join("copy.db"), dir.path().join("restored.db"));
    let url = |p: &std::path::Path| format!("sqlite://{}", p.display());
    let db = strata::db::Db::connect(&url(&live), &Default::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();

    let committed = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (db, committed, stop) = (db.clone(), committed.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let lead = strata::domain::Lead {
                        id: format!("w{w}-{n}"),
                        name: Some(format!("Writer {w}, lead {n}: {}", "x".repeat(200))),
                        ..Default::default()
                    };
                    db.upsert_lead(&lead).await.unwrap();
                    committed.lock().unwrap().push(lead.id);
                    n += 1;
                }
            })
        })
        .collect();
    while committed.lock().unwrap().len() < 400 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Small steps with pauses: the copy spans many steps while the writers commit.
    let before: Vec<String> = committed.lock().unwrap().clone();
    let opts = CopyOptions {
        pages_per_step: 4,
        pause: Duration::from_millis(3),
        ..CopyOptions::default()
    };
    let (src, dest) = (live.clone(), copy.clone());
    let report = tokio::task::spawn_blocking(move || backup::backup(&src, &dest, false, &opts))
        .await
        .unwrap()
        .unwrap();
    let during = committed.lock().unwrap().len() - before.len();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(report.steps > 10, "{report:?}");
    assert!(
        during > 0,
        "the writers were blocked during the backup: {report:?}"
    );
    assert_eq!(report.bytes, std::fs::metadata(&copy).unwrap().len());

    let expect_all = |url: String, ids: Vec<String>| async move {
        let stored: std::collections::HashSet<String> =
            support::strings(&url, "SELECT id FROM leads")
                .await
                .into_iter()
                .collect();
        let missing: Vec<&String> = ids.iter().filter(|id| !stored.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "{} leads missing: {missing:?}",
            missing.len()
        );
        let restored_db = strata::db::Db::connect(&url, &Default::default())
            .await
            .unwrap();
        restored_db.migrate().await.unwrap();
        restored_db.close().await;
    };

    let restore = |target: &std::path::Path| {
        let (from, target) = (copy.clone(), target.to_path_buf());
        tokio::task::spawn_blocking(move || {
            backup::restore(
                &target,
                &from,
                Duration::from_secs(5),
                &CopyOptions::default(),
            )
        })
    };
    let into_new = restore(&restored).await.unwrap().unwrap();
    assert!(into_new.kept.is_none() && into_new.migrations > 0);
    backup::integrity_check(&restored).unwrap();
    expect_all(url(&restored), before.clone()).await;

    // Over the original once its writers are gone: the replaced file is kept.
    let all_written = committed.lock().unwrap().len();
    db.close().await;
    drop(db);
    let over = restore(&live).await.unwrap().unwrap();
    let kept = over.kept.expect("the replaced database is kept");
    assert!(kept
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("live.db.before-restore-"));
    backup::integrity_check(&live).unwrap();
    expect_all(url(&live), before).await;
    let kept_leads = support::scalar_i64(&url(&kept), "SELECT count(*) FROM leads").await;
    assert_eq!(
        kept_leads as usize, all_written,
        "the kept database has every write"
    );
}

/// An execution row of `job` as an agent attempt opens it (`running`).
async fn open_execution(db: &strata::db::Db, job: &str, lead: &str) -> String {
    let mut e = NewExecution::new("qualify-agent", "1.0.0", json!({ "lead_id": lead }));
    e.lead_id = Some(lead.into());
    e.job_id = Some(job.into());
    db.insert_execution(&e).await.unwrap()
}

/// Executions of `job` by status, e.g. `{"abandoned": 1, "succeeded": 1}`.
async fn execution_statuses(db: &strata::db::Db, job: &str) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in db.executions_of_job(job).await.unwrap() {
        *m.entry(e.status).or_insert(0) += 1;
    }
    m
}

fn finished_ok() -> ExecutionFinish {
    ExecutionFinish {
        status: "succeeded".into(),
        output: Some(json!({"score": 80})),
        finished_at: strata::domain::now_ms(),
        ..Default::default()
    }
}

fn job_score(lead: &str, job: &str, value: f64) -> strata::db::NewScore {
    let mut s = strata::db::NewScore::new(
        lead,
        "qualify-agent@1.0.0",
        strata::domain::Score {
            value,
            priority: strata::domain::Priority::High,
            recommended_action: "call".into(),
            reasoning: "r".into(),
            confidence: 0.8,
            factors: vec![],
        },
    );
    s.job_id = Some(job.into());
    s
}

/// Issue 19 item 5: a job run again after its completion was lost finds its score; a
/// second attempt racing the first cannot store a second score; a new attempt closes
/// the earlier attempt's `running` execution. Counts: 1 score per job, 0 running rows.
#[tokio::test]
async fn a_jobs_score_is_stored_once_and_a_new_attempt_closes_the_earlier_running_execution() {
    both_backends(|db| async move {
        db.upsert_lead(&strata::domain::Lead {
            id: "L-j".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let job = db
            .enqueue_job(&NewJob::new("qualify", json!({"lead_id": "L-j"})))
            .await
            .unwrap();
        // Attempt 1 is killed mid-run: its execution stays `running`, no score.
        let e1 = open_execution(&db, &job.id, "L-j").await;
        // Attempt 2 opens its own execution: attempt 1's is closed first.
        let e2 = open_execution(&db, &job.id, "L-j").await;
        let first = db.get_execution(&e1).await.unwrap().unwrap();
        assert_eq!(first.status, "abandoned");
        assert!(first.error.unwrap().contains(&job.id));
        assert!(first.finished_at.is_some());
        assert_eq!(first.job_id.as_deref(), Some(job.id.as_str()));
        let stored = db
            .record_score_and_finish(
                &job_score("L-j", &job.id, 80.0),
                Some((&e2, &finished_ok())),
            )
            .await
            .unwrap();
        let strata::db::JobScore::Stored(score_id) = stored else {
            panic!("{stored:?}")
        };
        assert_eq!(
            db.score_of_job(&job.id).await.unwrap().unwrap().id,
            score_id
        );
        // Attempt 3 (its completion was lost, or a worker whose lease expired): its score
        // is not stored, its execution is closed naming the stored score.
        let e3 = open_execution(&db, &job.id, "L-j").await;
        let again = db
            .record_score_and_finish(
                &job_score("L-j", &job.id, 10.0),
                Some((&e3, &finished_ok())),
            )
            .await
            .unwrap();
        assert_eq!(again, strata::db::JobScore::AlreadyStored(score_id.clone()));
        assert_eq!(db.count_scores().await.unwrap(), 1, "one score per job");
        let third = db.get_execution(&e3).await.unwrap().unwrap();
        assert_eq!(third.status, "abandoned");
        assert!(third.error.unwrap().contains(&score_id));
        assert_eq!(
            execution_statuses(&db, &job.id).await,
            HashMap::from([("abandoned".to_string(), 2), ("succeeded".to_string(), 1)])
        );
        // Scores without a job are not limited.
        let mut free = job_score("L-j", "x", 50.0);
        free.job_id = None;
        db.insert_scores(&[free.clone(), free]).await.unwrap();
        assert_eq!(db.count_scores().await.unwrap(), 3);
    })
    .await;
}

/// Issue 19 item 5: no execution stays `running` once its job is released on shutdown,
/// failed, dead (by its last failure or by the reaper) or succeeded.
#[tokio::test]
async fn released_failed_dead_reaped_and_completed_jobs_leave_no_running_execution() {
    both_backends(|db| async move {
        let running = |db: strata::db::Db, job: String| async move {
            execution_statuses(&db, &job)
                .await
                .get("running")
                .copied()
                .unwrap_or(0)
        };
        // Released on shutdown.
        let job = db
            .enqueue_job(&NewJob {
                max_attempts: 2,
                ..NewJob::new("qualify", json!({}))
            })
            .await
            .unwrap();
        db.claim_job("w1", 60_000, &[]).await.unwrap().unwrap();
        let e = open_execution(&db, &job.id, "L").await;
        assert_eq!(running(db.clone(), job.id.clone()).await, 1);
        assert!(db.release_job(&job.id, "w1").await.unwrap());
        assert_eq!(running(db.clone(), job.id.clone()).await, 0, "released");
        let closed = db.get_execution(&e).await.unwrap().unwrap();
        assert_eq!(closed.status, "abandoned");
        assert!(closed.error.unwrap().contains("shutdown"));
        // Failed with attempts left, then dead on the last attempt.
        db.claim_job("w1", 60_000, &[]).await.unwrap().unwrap();
        open_execution(&db, &job.id, "L").await;
        let f = db
            .fail_job(&job.id, "w1", "boom", 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.status, JobStatus::Queued);
        assert_eq!(
            running(db.clone(), job.id.clone()).await,
            0,
            "failed, retry"
        );
        db.claim_job("w1", 60_000, &[]).await.unwrap().unwrap();
        open_execution(&db, &job.id, "L").await;
        let f = db
            .fail_job(&job.id, "w1", "boom", 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.status, JobStatus::Dead);
        assert_eq!(running(db.clone(), job.id.clone()).await, 0, "dead");
        // Reaped: the worker died on the last attempt.
        let job = db
            .enqueue_job(&NewJob {
                max_attempts: 1,
                ..NewJob::new("qualify", json!({}))
            })
            .await
            .unwrap();
        db.claim_job("crashy", 1, &[]).await.unwrap().unwrap();
        open_execution(&db, &job.id, "L").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(db.reap_expired_jobs().await.unwrap(), 1);
        assert_eq!(running(db.clone(), job.id.clone()).await, 0, "reaped");
        // Completed without the execution finished (e.g. the stored result replayed).
        let job = db
            .enqueue_job(&NewJob::new("qualify", json!({})))
            .await
            .unwrap();
        db.claim_job("w1", 60_000, &[]).await.unwrap().unwrap();
        open_execution(&db, &job.id, "L").await;
        assert!(db.complete_job(&job.id, "w1", &json!({})).await.unwrap());
        assert_eq!(running(db.clone(), job.id.clone()).await, 0, "completed");
        let all = db
            .list_executions(&strata::db::ExecutionFilter {
                status: Some("running".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(all.is_empty(), "{all:?}");
    })
    .await;
}

#[tokio::test]
async fn running_executions_of_no_job_are_closed_only_once_they_are_stale() {
    both_backends(|db| async move {
        let open = |at: i64, job: Option<&str>| {
            let mut e = NewExecution::new("qualify-agent", "1.0.0", json!(null));
            e.created_at = at;
            e.job_id = job.map(str::to_string);
            e
        };
        let old_cli = db.insert_execution(&open(1_000, None)).await.unwrap();
        let new_cli = db.insert_execution(&open(9_000, None)).await.unwrap();
        let old_job = db
            .insert_execution(&open(1_000, Some("j-1")))
            .await
            .unwrap();
        assert_eq!(db.close_stale_jobless_executions(5_000).await.unwrap(), 1);
        let status = |id: String| {
            let db = db.clone();
            async move { db.get_execution(&id).await.unwrap().unwrap() }
        };
        let closed = status(old_cli).await;
        assert_eq!(closed.status, "abandoned");
        assert!(closed.error.unwrap().contains("no job"));
        assert!(closed.finished_at.is_some());
        // Too young, or a job's (its job's retry, release or death closes it).
        assert_eq!(status(new_cli).await.status, "running");
        assert_eq!(status(old_job).await.status, "running");
    })
    .await;
}
