//! Lead scores on SQLite and PostgreSQL.

mod support;

use std::time::Instant;

use strata::db::{DbError, NewScore, OverrideTarget, ScoreFilter, ScoreSort};
use strata::domain::{Factor, Lead, Priority, Score, ScoreOverride};
use support::{both_backends, both_backends_with_url, scalar_i64};

fn lead(id: &str) -> Lead {
    Lead {
        id: id.into(),
        name: Some(format!("Lead {id}")),
        ..Lead::default()
    }
}

fn score(value: f64, priority: Priority) -> Score {
    Score {
        value,
        priority,
        recommended_action: "call within 24h".into(),
        reasoning: "budget confirmed, \"urgent\" timeline".into(),
        confidence: 0.8,
        factors: vec![
            Factor {
                name: "budget".into(),
                score: value,
            },
            Factor {
                name: "Timeline".into(),
                score: 70.0,
            },
            Factor {
                name: "complexity".into(),
                score: 40.0,
            },
            Factor {
                name: "authority".into(),
                score: 55.5,
            },
            Factor {
                name: "fit".into(),
                score: 90.0,
            },
            Factor {
                name: "engagement".into(),
                score: 12.0,
            },
        ],
    }
}

fn priority_for(v: f64) -> Priority {
    match v {
        v if v >= 85.0 => Priority::Immediate,
        v if v >= 65.0 => Priority::High,
        v if v >= 40.0 => Priority::Medium,
        _ => Priority::Low,
    }
}

#[tokio::test]
async fn bulk_scores_insert_and_read_back_with_factor_columns() {
    both_backends_with_url(|db, url| async move {
        let n = 9_240;
        let leads: Vec<Lead> = (0..n).map(|i| lead(&format!("X-{i:05}"))).collect();
        let t = Instant::now();
        db.upsert_leads(&leads).await.unwrap();
        let leads_ms = t.elapsed().as_secs_f64() * 1e3;
        let scores: Vec<NewScore> = (0..n)
            .map(|i| {
                let v = (i % 101) as f64;
                let mut s = NewScore::new(
                    format!("X-{i:05}"),
                    "rules@1.0.0",
                    score(v, priority_for(v)),
                );
                s.request_id = Some("bulk-1".into());
                s.fallback_used = i % 7 == 0;
                s
            })
            .collect();
        let t = Instant::now();
        let ids = db.insert_scores(&scores).await.unwrap();
        let scores_ms = t.elapsed().as_secs_f64() * 1e3;
        eprintln!(
            "TIMING {}: upsert {n} leads {leads_ms:.1} ms; insert {n} scores {scores_ms:.1} ms",
            db.backend()
        );
        assert_eq!(ids.len(), n);
        assert_eq!(db.count_scores().await.unwrap(), n as i64);
        for col in [
            "budget_score",
            "timeline_score",
            "complexity_score",
            "authority_score",
            "fit_score",
        ] {
            let filled = scalar_i64(
                &url,
                &format!("SELECT COUNT(*) FROM lead_scores WHERE {col} IS NOT NULL"),
            )
            .await;
            assert_eq!(filled, n as i64, "{col} populated");
        }
        assert_eq!(
            scalar_i64(
                &url,
                "SELECT COUNT(*) FROM lead_scores WHERE authority_score = 55.5"
            )
            .await,
            n as i64
        );
        assert_eq!(
            scalar_i64(
                &url,
                "SELECT COUNT(*) FROM lead_scores WHERE timeline_score = 70"
            )
            .await,
            n as i64
        );

        let got = db.latest_scores("X-00042", 10).await.unwrap();
        assert_eq!(got.len(), 1);
        let s = &got[0];
        assert_eq!(s.id, ids[42]);
        assert_eq!(s.score, scores[42].score, "factors and text round-trip");
        assert_eq!(s.strategy, "rules@1.0.0");
        assert_eq!(s.fallback_used, scores[42].fallback_used);
        assert_eq!(s.request_id.as_deref(), Some("bulk-1"));
        assert_eq!(s.created_at, scores[42].created_at);
        assert_eq!(s.human_override, None);
    })
    .await;
}

#[tokio::test]
async fn override_is_kept_beside_the_machine_score() {
    both_backends(|db| async move {
        db.upsert_lead(&lead("O-1")).await.unwrap();
        let mut older = NewScore::new("O-1", "rules@1.0.0", score(30.0, Priority::Low));
        older.created_at -= 1000;
        let older_id = db.insert_score(&older).await.unwrap();
        let newest = NewScore::new("O-1", "rules@1.0.0", score(45.0, Priority::Medium));
        let newest_id = db.insert_score(&newest).await.unwrap();

        let ov = ScoreOverride {
            value: Some(95.0),
            priority: Some(Priority::Immediate),
            by: "maria@sales".into(),
            reason: "CEO asked for a demo".into(),
            at: 1_700_000_000_123,
        };
        let id = db
            .set_override(&OverrideTarget::LatestOfLead("O-1".into()), &ov)
            .await
            .unwrap();
        assert_eq!(id, newest_id);
        let s = db.get_score(&newest_id).await.unwrap().unwrap();
        assert_eq!(s.score, newest.score, "machine score unchanged");
        assert_eq!(s.human_override, Some(ov.clone()));
        assert_eq!(
            db.get_score(&older_id)
                .await
                .unwrap()
                .unwrap()
                .human_override,
            None
        );

        // Priority-only override on a specific score.
        let ov2 = ScoreOverride {
            value: None,
            priority: Some(Priority::High),
            by: "bo".into(),
            reason: String::new(),
            at: 5,
        };
        db.set_override(&OverrideTarget::Score(older_id.clone()), &ov2)
            .await
            .unwrap();
        let s = db.get_score(&older_id).await.unwrap().unwrap();
        assert_eq!((s.score.value, s.score.priority), (30.0, Priority::Low));
        assert_eq!(s.human_override, Some(ov2));

        // Filters see machine values.
        let high = db
            .list_scores(&ScoreFilter {
                priority: Some(Priority::Immediate),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(high.is_empty());

        let e = db
            .set_override(&OverrideTarget::LatestOfLead("nobody".into()), &ov)
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        let bad = ScoreOverride {
            value: Some(101.0),
            ..ov.clone()
        };
        assert!(matches!(
            db.set_override(&OverrideTarget::Score(older_id.clone()), &bad)
                .await,
            Err(DbError::InvalidInput { .. })
        ));
        assert!(db.clear_override(&newest_id).await.unwrap());
        assert_eq!(
            db.get_score(&newest_id)
                .await
                .unwrap()
                .unwrap()
                .human_override,
            None
        );
        assert_eq!(
            db.get_score(&newest_id).await.unwrap().unwrap().score,
            newest.score
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_overrides_all_succeed() {
    // set_override reads (the lead's latest score) then writes: on SQLite a deferred
    // transaction doing that failed at once with "database is locked" when another writer
    // committed in between; write transactions begin IMMEDIATE and wait their turn.
    both_backends(|db| async move {
        db.upsert_lead(&lead("C-1")).await.unwrap();
        let id = db
            .insert_score(&NewScore::new(
                "C-1",
                "rules@1.0.0",
                score(50.0, Priority::Medium),
            ))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut failed = Vec::new();
                    for i in 0..10 {
                        let ov = ScoreOverride {
                            value: Some(f64::from(t * 10 + i)),
                            priority: None,
                            by: format!("writer-{t}"),
                            reason: format!("override {i}"),
                            at: i64::from(t * 10 + i),
                        };
                        if let Err(e) = db
                            .set_override(&OverrideTarget::LatestOfLead("C-1".into()), &ov)
                            .await
                        {
                            failed.push(format!("writer {t}, override {i}: {e}"));
                        }
                    }
                    failed
                })
            })
            .collect();
        let mut failed = Vec::new();
        for t in tasks {
            failed.extend(t.await.unwrap());
        }
        assert!(
            failed.is_empty(),
            "{} of 80 failed: {failed:#?}",
            failed.len()
        );
        let s = db.get_score(&id).await.unwrap().unwrap();
        assert!(s.human_override.is_some());
    })
    .await;
}

#[tokio::test]
async fn score_for_unknown_lead_is_refused_and_record_scores_stores_both() {
    both_backends(|db| async move {
        let s = NewScore::new("ghost", "rules@1.0.0", score(50.0, Priority::Medium));
        let e = db.insert_score(&s).await.unwrap_err();
        assert!(e.is_constraint(), "{e}");
        assert!(e.to_string().contains("insert_score"), "{e}");
        let ids = db
            .record_scores(&[lead("ghost")], std::slice::from_ref(&s))
            .await
            .unwrap();
        assert_eq!(
            db.get_score(&ids[0]).await.unwrap().unwrap().lead_id,
            "ghost"
        );
        assert!(db.get_lead("ghost").await.unwrap().is_some());
        // Deleting the lead deletes its scores.
        assert!(db.delete_lead("ghost").await.unwrap());
        assert_eq!(db.count_scores().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn invalid_scores_are_rejected_before_writing() {
    both_backends(|db| async move {
        db.upsert_lead(&lead("V")).await.unwrap();
        let good = NewScore::new("V", "s@1", score(50.0, Priority::Medium));
        for bad_value in [f64::NAN, -1.0, 100.5] {
            let bad = NewScore::new("V", "s@1", score(bad_value, Priority::Medium));
            let e = db.insert_scores(&[good.clone(), bad]).await.unwrap_err();
            assert!(matches!(e, DbError::InvalidInput { .. }), "{e}");
        }
        let mut bad = good.clone();
        bad.score.confidence = 1.5;
        assert!(db.insert_score(&bad).await.is_err());
        assert_eq!(db.count_scores().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn list_scores_filters_and_sorts() {
    both_backends(|db| async move {
        db.upsert_leads(&[lead("a"), lead("b")]).await.unwrap();
        let mut batch = Vec::new();
        for (i, v) in [10.0, 95.0, 70.0, 50.0].into_iter().enumerate() {
            let mut s = NewScore::new(
                if i % 2 == 0 { "a" } else { "b" },
                if i < 2 { "v1@1" } else { "v2@2" },
                score(v, priority_for(v)),
            );
            s.created_at = 1_000 + i as i64;
            batch.push(s);
        }
        db.insert_scores(&batch).await.unwrap();
        let vals = |v: Vec<strata::domain::StoredScore>| {
            v.into_iter().map(|s| s.score.value).collect::<Vec<_>>()
        };
        assert_eq!(
            vals(db.list_scores(&ScoreFilter::default()).await.unwrap()),
            [50.0, 70.0, 95.0, 10.0]
        );
        let f = ScoreFilter {
            sort: ScoreSort::HighestScore,
            min_score: Some(50.0),
            ..Default::default()
        };
        assert_eq!(vals(db.list_scores(&f).await.unwrap()), [95.0, 70.0, 50.0]);
        let f = ScoreFilter {
            strategy: Some("v1@1".into()),
            sort: ScoreSort::OldestFirst,
            ..Default::default()
        };
        assert_eq!(vals(db.list_scores(&f).await.unwrap()), [10.0, 95.0]);
        let f = ScoreFilter {
            priority: Some(Priority::High),
            ..Default::default()
        };
        assert_eq!(vals(db.list_scores(&f).await.unwrap()), [70.0]);
        let f = ScoreFilter {
            lead_id: Some("b".into()),
            since_ms: Some(1_002),
            ..Default::default()
        };
        assert_eq!(vals(db.list_scores(&f).await.unwrap()), [50.0]);
        let f = ScoreFilter {
            sort: ScoreSort::LowestScore,
            limit: 2,
            offset: 1,
            ..Default::default()
        };
        assert_eq!(vals(db.list_scores(&f).await.unwrap()), [50.0, 70.0]);
        assert_eq!(vals(db.latest_scores("a", 1).await.unwrap()), [70.0]);
    })
    .await;
}
