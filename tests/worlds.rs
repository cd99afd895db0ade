//! The `layer` and `agent` worlds load and run through the same runtime as scorers, with
//! the same kind checks.

mod common;

use common::*;
use strata::runtime::call::LayerInput;
use strata::runtime::CallError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_and_agent_plugins_run_and_kinds_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let h = host(&sqlite_url(tmp.path()), "").await;
    install(&h.plugins_dir, "testing/echo-layer", "echo-layer");
    install(&h.plugins_dir, "testing/echo-agent", "echo-agent");
    install(&h.plugins_dir, "bant", "bant");
    let r = h.manager.load_all().await;
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    let layer = h.manager.registry().get("echo-layer").unwrap();
    let agent = h.manager.registry().get("echo-agent").unwrap();
    let bant = h.manager.registry().get("bant").unwrap();
    blocking(move || {
        let input = LayerInput {
            run_id: "run-1".into(),
            container: "sales".into(),
            dry_run: true,
            topic: "lead.created".into(),
            payload: "{\"id\":\"L1\"}".into(),
        };
        let out = layer.run_layer(&input, None).unwrap();
        assert_eq!(
            out.output,
            "{\"run_id\":\"run-1\",\"container\":\"sales\",\"dry_run\":true}"
        );
        assert_eq!(
            out.events,
            vec![(
                "lead.created.done".to_string(),
                "{\"id\":\"L1\"}".to_string()
            )]
        );
        let e = layer
            .run_layer(
                &LayerInput {
                    payload: String::new(),
                    ..input.clone()
                },
                None,
            )
            .unwrap_err();
        assert!(matches!(e, CallError::InvalidInput { .. }), "{e}");

        assert_eq!(
            agent.run_agent("{\"lead\":\"L1\"}", None).unwrap(),
            "{\"echo\":{\"lead\":\"L1\"}}"
        );

        let e = layer.score(&hot_lead("x"), None).unwrap_err();
        assert!(matches!(e, CallError::WrongKind { .. }), "{e}");
        let e = bant.run_agent("{}", None).unwrap_err();
        assert!(
            e.to_string()
                .contains("is a scorer; this call needs an agent"),
            "{e}"
        );
    })
    .await;
}
