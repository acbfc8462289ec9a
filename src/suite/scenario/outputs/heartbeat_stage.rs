//! The heartbeat stage of the outputs check: the status topic's beats around the run, judged by
//! [`crate::domain::outputs::heartbeat`], waiting for the next beat only when it is due within the
//! outputs' bound.

use super::*;

impl OutputsCheck {
    /// The heartbeat stage; when it is pending and the next heartbeat is due within the bound
    /// the outputs had (a short interval: the test stack's, or a beat about to come), waits
    /// for it, so that only a heartbeat far off is reported pending. With the stage, when its
    /// evidence was in hand: the arrival of the newest heartbeat judged, or the end of a wait
    /// for one that did not come.
    pub(super) async fn heartbeat_settled(
        &self,
        watch: &mut OutputWatch,
        read: &[OutputRecord],
        run: &OutputsRun<'_>,
    ) -> (StageReport, Option<OffsetDateTime>) {
        let deadline = tokio::time::Instant::now() + OUTPUTS_BOUND;
        // Only the status records are judged here: the records the outputs wait read already
        // are not copied again, and later ones are read as they arrive.
        let mut beats = Beats {
            status: read
                .iter()
                .filter(|r| r.output == Output::Status)
                .cloned()
                .collect(),
            seen: read.len(),
        };
        loop {
            beats.catch_up(watch);
            let arrived = beats
                .status
                .iter()
                .map(|r| OffsetDateTime::from(r.arrived))
                .max();
            let (stage, newest) = self.heartbeat_stage(&beats.status, run).await;
            let pending = stage.checks.iter().any(|c| c.pending);
            let due = newest.map(|t| t + self.target.status_interval + heartbeat::FROZEN_SLACK);
            let wait = due.and_then(|due| {
                let until_due = Duration::try_from(due - OffsetDateTime::now_utc()).ok()?;
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                (until_due <= left).then_some(until_due)
            });
            let Some(wait) = wait.filter(|_| pending) else {
                return (stage, arrived);
            };
            if !beats.next(watch, tokio::time::Instant::now() + wait).await {
                // None came when due: judged as it stands (stale or pending by the rules).
                let waited_out = OffsetDateTime::now_utc();
                let stage = self.heartbeat_stage(&beats.status, run).await.0;
                return (stage, Some(waited_out));
            }
        }
    }

    /// The heartbeat stage from the records so far, and the newest heartbeat's time.
    pub(super) async fn heartbeat_stage(
        &self,
        records: &[OutputRecord],
        run: &OutputsRun<'_>,
    ) -> (StageReport, Option<OffsetDateTime>) {
        let mut beats: Vec<(bool, Heartbeat)> = Vec::new();
        let mut errors = Vec::new();
        let mut unverified_ids = BTreeSet::new();
        for r in records.iter().filter(|r| r.output == Output::Status) {
            let Some(bytes) = &r.value else { continue };
            let decoded = match self.value(Output::Status, bytes).await {
                Ok((v, id)) => {
                    unverified_ids.extend(id);
                    decode::heartbeat(&v)
                }
                Err(e) => Err(e),
            };
            match decoded {
                Ok(h) => beats.push((r.before_run, h)),
                Err(e) => errors.push((Output::Status, e)),
            }
        }
        let baseline = beats
            .iter()
            .rev()
            .find(|(before, _)| *before)
            .map(|(_, h)| h);
        let during: Vec<Heartbeat> = beats
            .iter()
            .filter(|(before, _)| !before)
            .map(|(_, h)| h.clone())
            .collect();
        let mut last_bars: BTreeMap<String, OffsetDateTime> = BTreeMap::new();
        for b in run.expected_bars {
            let t = last_bars.entry(b.symbol.clone()).or_insert(b.event_ts);
            *t = (*t).max(b.event_ts);
        }
        let newest = during.last().or(baseline).map(|h| h.event_ts);
        let judged = HeartbeatRun {
            baseline,
            during: &during,
            last_bars: &last_bars,
            bars: run.expected_bars.len() as u64,
            signals: run.expected_signals.len() as u64,
            rows_visible_at: run.rows_visible_at,
            now: OffsetDateTime::now_utc(),
            interval: self.target.status_interval,
        };
        let verdict = heartbeat::judge(&judged);
        let degraded = heartbeat::status_warning(&judged);
        let mut observed = BTreeMap::new();
        observed.insert("baseline".into(), serde_json::json!(baseline));
        observed.insert("during_run".into(), serde_json::json!(during));
        observed.insert(
            "interval_ms".into(),
            serde_json::json!(self.target.status_interval.as_millis() as u64),
        );
        let mut findings = judge::decoding(&errors);
        findings.extend(unverified(&unverified_ids));
        findings.extend(degraded);
        let verdict = match verdict {
            // Heartbeats that are there but do not decode are not missing: the decoding
            // finding names the cause.
            HeartbeatVerdict::Fail(_) if beats.is_empty() && !errors.is_empty() => {
                HeartbeatVerdict::Fail(Vec::new())
            }
            v => v,
        };
        let check = match verdict {
            HeartbeatVerdict::Fail(found) if found.is_empty() => StageCheck {
                name: "status".into(),
                ok: false,
                detail: format!("{} heartbeats could not be read", errors.len()),
                ..StageCheck::default()
            },
            HeartbeatVerdict::Pass(detail) => StageCheck {
                name: "status".into(),
                ok: true,
                detail,
                ..StageCheck::default()
            },
            HeartbeatVerdict::Pending(detail) => StageCheck {
                name: "status".into(),
                ok: true,
                pending: true,
                detail,
                ..StageCheck::default()
            },
            HeartbeatVerdict::Fail(found) => {
                let detail = found.iter().map(|f| f.cause.clone()).collect::<Vec<_>>();
                findings.extend(found);
                StageCheck {
                    name: "status".into(),
                    ok: false,
                    detail: detail.join("; "),
                    ..StageCheck::default()
                }
            }
        };
        let stage = StageReport {
            stage: "heartbeat".into(),
            checks: vec![check],
            findings,
            observed,
            ..StageReport::default()
        }
        .conclude();
        (stage, newest)
    }
}

/// The status topic's records read so far, and how many records of every topic that was.
struct Beats {
    status: Vec<OutputRecord>,
    seen: usize,
}

impl Beats {
    /// Reads the records that arrived since the last look.
    fn catch_up(&mut self, watch: &OutputWatch) {
        let new = watch.records_from(self.seen);
        self.seen += new.len();
        self.status
            .extend(new.into_iter().filter(|r| r.output == Output::Status));
    }

    /// Waits for the next status record until `until`; whether one came.
    async fn next(&mut self, watch: &mut OutputWatch, until: tokio::time::Instant) -> bool {
        let before = self.status.len();
        while self.status.len() == before {
            if !watch.arrival(until).await {
                return false;
            }
            self.catch_up(watch);
        }
        true
    }
}
