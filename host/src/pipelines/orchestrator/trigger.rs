//! Creating a run: from a request on a pipeline's start topic ([`Orchestrator::create_run`])
//! or from a verified webhook delivery ([`Orchestrator::create_webhook_run`]), stored with
//! its trigger event and deliveries (and the job that will execute it) in one transaction.

use super::{Orchestrator, PipelineError, API_PRODUCER, PIPELINE_JOB};
use crate::db::{CreatedRun, NewEvent, NewJob, NewRun, Subscriber, WebhookOutcome};
use serde_json::{json, Value};

impl Orchestrator {
    fn new_run(
        &self,
        pipeline: &str,
        topic: &str,
        subscribers: Vec<Subscriber>,
        payload: Value,
        producer: String,
        dry_run: bool,
        request_id: Option<String>,
        as_job: bool,
    ) -> Result<NewRun, PipelineError> {
        if !payload.is_object() {
            return Err(PipelineError::BadTrigger(
                "the trigger payload must be a JSON object".into(),
            ));
        }
        let dry_run = dry_run || self.settings.dry_run;
        let container = subscribers
            .first()
            .map(|s| s.container.clone())
            .unwrap_or_default();
        let job = as_job.then(|| {
            let mut job = NewJob::new(PIPELINE_JOB, json!({ "pipeline": pipeline }));
            job.request_id = request_id.clone();
            job.max_attempts = 3;
            job
        });
        Ok(NewRun {
            pipeline: pipeline.to_string(),
            dry_run,
            trigger: NewEvent {
                container,
                topic: topic.to_string(),
                payload,
                producer,
                run_id: None,
                dry_run,
                causation_id: None,
                id: None,
                payload_json: None,
            },
            subscribers,
            request_id,
            job,
        })
    }

    /// Stores a new run of `pipeline` started by `payload` on its start topic; with
    /// `as_job` a durable job runs it (a worker calls [`Self::execute`]).
    pub async fn create_run(
        &self,
        pipeline: &str,
        payload: Value,
        dry_run: bool,
        request_id: Option<String>,
        as_job: bool,
    ) -> Result<CreatedRun, PipelineError> {
        let def = self.pipeline(pipeline)?;
        let subscribers = def
            .subscribers(&def.start_topic)
            .into_iter()
            .map(|b| b.subscriber())
            .collect();
        let run = self.new_run(
            pipeline,
            &def.start_topic,
            subscribers,
            payload,
            API_PRODUCER.into(),
            dry_run,
            request_id,
            as_job,
        )?;
        Ok(self.db.create_run(&run).await?)
    }

    /// Stores a verified webhook delivery as a run whose trigger goes to the webhook's
    /// layer only, unless this delivery id was seen before (then nothing is written).
    pub async fn create_webhook_run(
        &self,
        webhook: &str,
        delivery_id: &str,
        body_sha256: &str,
        payload: Value,
        request_id: Option<String>,
    ) -> Result<WebhookOutcome, PipelineError> {
        let w = self
            .webhooks
            .get(webhook)
            .ok_or_else(|| PipelineError::UnknownWebhook(webhook.to_string()))?;
        let def = self.pipeline(&w.pipeline)?;
        let binding = def.binding(&w.layer).ok_or_else(|| {
            PipelineError::BadTrigger(format!(
                "layer {:?} is not in pipeline {:?}",
                w.layer, w.pipeline
            ))
        })?;
        let run = self.new_run(
            &w.pipeline,
            &w.topic,
            vec![binding.subscriber()],
            payload,
            format!("webhook:{webhook}"),
            false,
            request_id,
            true,
        )?;
        Ok(self
            .db
            .create_webhook_run(webhook, delivery_id, body_sha256, &run)
            .await?)
    }
}
