//! Leads on SQLite and PostgreSQL.

mod support;

use std::collections::BTreeMap;

use strata::db::LeadFilter;
use strata::domain::{Lead, LeadStatus};
use support::both_backends;

fn lead(id: &str) -> Lead {
    Lead {
        id: id.into(),
        name: Some(format!("Name {id}")),
        email: Some(format!("{id}@example.com")),
        company: Some("Acme".into()),
        employees: Some(250),
        annual_revenue: Some(12_500_000.5),
        budget: Some(40_000.0),
        timeline: Some("Q3".into()),
        source: Some("web".into()),
        ..Lead::default()
    }
}

#[tokio::test]
async fn lead_upsert_updates_instead_of_duplicating() {
    both_backends(|db| async move {
        let mut l = lead("L-1");
        db.upsert_lead(&l).await.unwrap();
        let first = db.get_lead_record("L-1").await.unwrap().unwrap();
        l.name = Some("Renamed".into());
        l.status = LeadStatus::Qualified;
        l.employees = None;
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        db.upsert_lead(&l).await.unwrap();
        assert_eq!(db.count_leads(&LeadFilter::default()).await.unwrap(), 1);
        let again = db.get_lead_record("L-1").await.unwrap().unwrap();
        assert_eq!(again.lead, l);
        assert_eq!(again.created_at, first.created_at, "created_at kept");
        assert!(again.updated_at > first.updated_at, "updated_at moved");
        assert_eq!(db.get_lead("missing").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn lead_attributes_round_trip_unicode_commas_quotes() {
    both_backends(|db| async move {
        let mut l = lead("L-ü");
        let mut attrs = BTreeMap::new();
        attrs.insert("City".into(), "Zürich, \"Oerlikon\"".into());
        attrs.insert(
            "Notes, with comma".into(),
            "it's 'quoted' — ünïcödé 🚀; 日本語".into(),
        );
        attrs.insert("Empty".into(), String::new());
        attrs.insert("Backslash".into(), "C:\\path\\n%_".into());
        l.attributes = attrs;
        l.notes = Some("line1\nline2\t\"x\"".into());
        db.upsert_lead(&l).await.unwrap();
        assert_eq!(db.get_lead("L-ü").await.unwrap().unwrap(), l);
    })
    .await;
}

#[tokio::test]
async fn batch_upsert_is_one_write_and_last_duplicate_wins() {
    both_backends(|db| async move {
        let mut leads: Vec<Lead> = (0..3000).map(|i| lead(&format!("B-{i:05}"))).collect();
        let mut dup = lead("B-00001");
        dup.company = Some("Later Inc".into());
        leads.push(dup);
        assert_eq!(db.upsert_leads(&leads).await.unwrap(), 3000);
        assert_eq!(db.count_leads(&LeadFilter::default()).await.unwrap(), 3000);
        assert_eq!(
            db.get_lead("B-00001")
                .await
                .unwrap()
                .unwrap()
                .company
                .as_deref(),
            Some("Later Inc")
        );
        // Empty id fails the whole batch and writes nothing.
        let bad = vec![lead("C-1"), Lead::default()];
        assert!(db.upsert_leads(&bad).await.is_err());
        assert_eq!(db.get_lead("C-1").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn list_leads_filters_by_status_source_and_search() {
    both_backends(|db| async move {
        let mut a = lead("A");
        a.company = Some("Globex 100%_Corp".into());
        a.status = LeadStatus::Qualified;
        let mut b = lead("B");
        b.source = Some("referral".into());
        b.name = Some("Zoë Quinn".into());
        let c = lead("C");
        db.upsert_leads(&[a, b, c]).await.unwrap();
        let ids = |v: Vec<Lead>| {
            let mut ids: Vec<String> = v.into_iter().map(|l| l.id).collect();
            ids.sort();
            ids
        };
        let f = |status, source: Option<&str>, search: Option<&str>| LeadFilter {
            status,
            source: source.map(Into::into),
            search: search.map(Into::into),
            ..LeadFilter::default()
        };
        assert_eq!(
            ids(db
                .list_leads(&f(Some(LeadStatus::Qualified), None, None))
                .await
                .unwrap()),
            ["A"]
        );
        assert_eq!(
            ids(db
                .list_leads(&f(None, Some("referral"), None))
                .await
                .unwrap()),
            ["B"]
        );
        assert_eq!(
            ids(db.list_leads(&f(None, None, Some("GLOBEX"))).await.unwrap()),
            ["A"]
        );
        assert_eq!(
            ids(db.list_leads(&f(None, None, Some("100%_c"))).await.unwrap()),
            ["A"]
        );
        assert_eq!(
            ids(db.list_leads(&f(None, None, Some("0%"))).await.unwrap()),
            ["A"]
        );
        assert!(
            db.list_leads(&f(None, None, Some("1_0")))
                .await
                .unwrap()
                .is_empty(),
            "_ is literal"
        );
        assert_eq!(
            ids(db
                .list_leads(&f(None, None, Some("c@example")))
                .await
                .unwrap()),
            ["C"]
        );
        assert_eq!(
            db.count_leads(&f(None, Some("web"), None)).await.unwrap(),
            2
        );
        let page = db
            .list_leads(&LeadFilter {
                limit: 2,
                offset: 2,
                ..LeadFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
        assert!(db.delete_lead("C").await.unwrap());
        assert!(!db.delete_lead("C").await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn update_lead_changes_only_the_given_fields_and_merges_attributes() {
    use strata::db::leads::LeadUpdate;
    both_backends(|db| async move {
        let mut l = lead("U-1");
        l.attributes.insert("keep".into(), "k".into());
        l.attributes.insert("drop".into(), "d".into());
        l.notes = Some("first".into());
        db.upsert_lead(&l).await.unwrap();
        let before = db.get_lead_record("U-1").await.unwrap().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;

        let mut attributes = BTreeMap::new();
        attributes.insert("new".to_string(), Some("n".to_string()));
        attributes.insert("drop".to_string(), None);
        let up = LeadUpdate {
            status: Some(LeadStatus::Contacted),
            notes: None,
            attributes,
        };
        let after = db.update_lead("U-1", &up).await.unwrap().unwrap();
        assert_eq!(after.lead.status, LeadStatus::Contacted);
        assert_eq!(
            after.lead.notes.as_deref(),
            Some("first"),
            "notes untouched"
        );
        assert_eq!(after.lead.name, l.name, "other fields untouched");
        let keys: Vec<&str> = after.lead.attributes.keys().map(String::as_str).collect();
        assert_eq!(keys, ["keep", "new"]);
        assert_eq!(after.created_at, before.created_at);
        assert!(after.updated_at > before.updated_at, "updated_at moved");
        assert_eq!(db.get_lead_record("U-1").await.unwrap().unwrap(), after);

        // Notes only (no attribute read), and an unknown lead either way.
        let notes = LeadUpdate {
            notes: Some("second".into()),
            ..LeadUpdate::default()
        };
        let again = db.update_lead("U-1", &notes).await.unwrap().unwrap();
        assert_eq!(again.lead.notes.as_deref(), Some("second"));
        assert_eq!(again.lead.status, LeadStatus::Contacted);
        assert_eq!(db.update_lead("missing", &notes).await.unwrap(), None);
        assert_eq!(db.update_lead("missing", &up).await.unwrap(), None);

        // Concurrent merges of different keys: none is lost.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut attributes = BTreeMap::new();
                attributes.insert(format!("k{i}"), Some(i.to_string()));
                let up = LeadUpdate {
                    attributes,
                    ..LeadUpdate::default()
                };
                db.update_lead("U-1", &up).await.unwrap().unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let last = db.get_lead("U-1").await.unwrap().unwrap();
        for i in 0..8 {
            assert_eq!(last.attributes.get(&format!("k{i}")), Some(&i.to_string()));
        }
    })
    .await;
}
