//! Keeping the dashboard as generated, one more reconciled resource beside the alarms: read it
//! (GetDashboard), compare as JSON, write it (PutDashboard) only when it differs, and delete a
//! dashboard this host created and no longer wants. Calls are retried like the alarm
//! reconciler's: throttling until they go through, other failures a few times.

use std::future::Future;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::body::{Account, Body, body, same_body, widget_count};
use super::input::DashboardInput;
use super::owned::{Owned, OwnedDashboard, OwnedFile};
use crate::alarms::{DesiredAlarm, ReconcileConfig};
use crate::cloudwatch::{CallError, CloudWatch};

/// The dashboard to keep: `--dashboard` after placeholders, in the default region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub region: String,
}

/// What happens to the wanted dashboard's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyChange {
    Create,
    /// `adopted`: it exists but this host did not create it; it is corrected, never deleted.
    Update {
        widgets_before: usize,
        adopted: bool,
    },
    Unchanged,
}

/// What a dashboard reconcile would do.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardPlan {
    pub target: Option<Target>,
    /// The generated body, when there is a target.
    pub body: Option<Body>,
    pub change: Option<BodyChange>,
    /// Dashboards this host created and no longer wants: (name, region).
    pub deletes: Vec<(String, String)>,
    /// Why nothing at all is done, when that is so.
    pub skipped: Option<String>,
}

impl DashboardPlan {
    /// Lines for `snowflake plan`; empty when there is no dashboard to keep or delete.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(reason) = &self.skipped {
            out.push_str(&format!("= dashboards are left as they are: {reason}\n"));
            return out;
        }
        if let (Some(target), Some(change), Some(body)) = (&self.target, &self.change, &self.body) {
            let widgets = body.widgets();
            let line = match change {
                BodyChange::Create => format!("+ create dashboard {} ({}): {widgets} widgets", target.name, target.region),
                BodyChange::Update { widgets_before, adopted } => format!(
                    "~ update dashboard {} ({}): body differs, widgets: {widgets_before} -> {widgets}{}",
                    target.name,
                    target.region,
                    if *adopted { "  [not created by this host: corrected, never deleted by it]" } else { "" }
                ),
                BodyChange::Unchanged => format!("= dashboard {} ({}) unchanged: {widgets} widgets", target.name, target.region),
            };
            out.push_str(&line);
            out.push('\n');
            if body.left_out > 0 {
                out.push_str(&format!(
                    "! dashboard {}: {} graphs do not fit in CloudWatch's 500 widgets; a text widget names them\n",
                    target.name, body.left_out
                ));
            }
        }
        for (name, region) in &self.deletes {
            let why = match &self.target {
                Some(target) => format!("--dashboard is now {}", target.name),
                None => "--dashboard is no longer set".to_string(),
            };
            out.push_str(&format!("- delete dashboard {name} ({region})  [this host created it; {why}]\n"));
        }
        out
    }
}

/// What a dashboard reconcile did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DashboardApplied {
    pub created: bool,
    pub updated: bool,
    pub deleted: usize,
    /// CloudWatch's validation messages for the body it accepted.
    pub validation_messages: Vec<String>,
    pub failures: Vec<String>,
}

impl DashboardApplied {
    pub fn writes(&self) -> usize {
        usize::from(self.created) + usize::from(self.updated) + self.deleted
    }
}

/// Keeps one host's dashboard through `C`, remembering what it created in the state directory.
pub struct DashboardReconciler<C> {
    cloudwatch: Arc<C>,
    owned: OwnedFile,
    target: Option<Target>,
    config: ReconcileConfig,
    /// Learnt from the first alarm ARN seen; alarm widgets list alarms by ARN.
    account: Mutex<Option<Account>>,
}

impl<C: CloudWatch> DashboardReconciler<C> {
    pub fn new(cloudwatch: Arc<C>, state_dir: &std::path::Path, target: Option<Target>, config: ReconcileConfig) -> Self {
        DashboardReconciler { cloudwatch, owned: OwnedFile::new(state_dir), target, config, account: Mutex::new(None) }
    }

    pub fn target(&self) -> Option<&Target> {
        self.target.as_ref()
    }

    /// The account of this host's alarms: known once one of them has been seen. One
    /// DescribeAlarms call until then, none after.
    pub async fn account(&self, alarms: &[DesiredAlarm]) -> Option<Account> {
        if let Some(account) = self.account.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone() {
            return Some(account);
        }
        let region = &alarms.first()?.region;
        let names: Vec<String> =
            alarms.iter().filter(|alarm| &alarm.region == region).take(100).map(|alarm| alarm.config.name.clone()).collect();
        let found = match self.call(|| self.cloudwatch.describe_alarms_named(region, &names)).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(region, "cannot read an alarm's ARN for the dashboard's alarm widget (it is left out until then): {error}");
                return None;
            }
        };
        let account = found.iter().find_map(|alarm| alarm.arn.as_deref().and_then(Account::of_arn))?;
        *self.account.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(account.clone());
        Some(account)
    }

    /// The body this host wants: alarms listed only once their account is known.
    pub async fn desired_body(&self, input: &DashboardInput, alarms: &[DesiredAlarm]) -> Body {
        let account = if input.alarms.is_empty() { None } else { self.account(alarms).await };
        body(input, account.as_ref())
    }

    /// Plans without changing anything. `allowed` is false while the flakes directory is missing
    /// or holds no valid flake: an empty dashboard would then replace a good one, and a rename
    /// cannot be told from a broken deploy, so nothing is written or deleted.
    pub async fn plan(&self, input: &DashboardInput, alarms: &[DesiredAlarm], allowed: bool) -> Result<DashboardPlan, String> {
        self.plan_with(input, alarms, allowed).await.map(|(plan, _)| plan)
    }

    async fn plan_with(&self, input: &DashboardInput, alarms: &[DesiredAlarm], allowed: bool) -> Result<(DashboardPlan, Owned), String> {
        let owned = self.load_owned().await?;
        let mut plan = DashboardPlan { target: self.target.clone(), body: None, change: None, deletes: Vec::new(), skipped: None };
        if self.target.is_none() && owned.dashboards.is_empty() {
            return Ok((plan, owned));
        }
        if !allowed {
            plan.skipped = Some("the flakes directory is missing or holds no valid flake".to_string());
            return Ok((plan, owned));
        }
        if let Some(target) = &self.target {
            let body = self.desired_body(input, alarms).await;
            let actual = self
                .call(|| self.cloudwatch.get_dashboard(&target.region, &target.name))
                .await
                .map_err(|error| format!("GetDashboard {} ({}) failed: {error}", target.name, target.region))?;
            plan.change = Some(match actual {
                None => BodyChange::Create,
                Some(text) => {
                    let actual: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if same_body(&actual, &body.json) {
                        BodyChange::Unchanged
                    } else {
                        BodyChange::Update { widgets_before: widget_count(&actual), adopted: !owned.dashboards.contains_key(&target.name) }
                    }
                }
            });
            plan.body = Some(body);
        }
        // Dashboards are one namespace per account whatever region a call names, so the wanted
        // name is never deleted, even if it was recorded in another region.
        let wanted = self.target.as_ref().map(|target| target.name.as_str());
        plan.deletes = owned
            .dashboards
            .iter()
            .filter(|(name, _)| Some(name.as_str()) != wanted)
            .map(|(name, owned)| (name.clone(), owned.region.clone()))
            .collect();
        Ok((plan, owned))
    }

    /// Plans and applies: deletes first, then the body, written only if it differs.
    pub async fn reconcile(&self, input: &DashboardInput, alarms: &[DesiredAlarm], allowed: bool) -> Result<DashboardApplied, String> {
        let (plan, mut owned) = self.plan_with(input, alarms, allowed).await?;
        let mut applied = DashboardApplied::default();
        if let Some(reason) = &plan.skipped {
            tracing::warn!("dashboards are left as they are: {reason}");
            return Ok(applied);
        }
        for (name, region) in &plan.deletes {
            match self.call(|| self.cloudwatch.delete_dashboards(region, std::slice::from_ref(name))).await {
                Ok(()) => {
                    applied.deleted += 1;
                    owned.dashboards.remove(name);
                    self.save_owned(&owned).await?;
                    tracing::info!(dashboard = name, region, "deleted the dashboard this host created and no longer keeps");
                }
                Err(error) => self.failed(&mut applied, name, "delete", &error),
            }
        }
        let (Some(target), Some(change), Some(body)) = (&plan.target, &plan.change, &plan.body) else { return Ok(applied) };
        if body.left_out > 0 {
            tracing::warn!(
                dashboard = target.name,
                left_out = body.left_out,
                "graphs do not fit in CloudWatch's 500 widgets; a text widget on the dashboard names the ones left out"
            );
        }
        match change {
            BodyChange::Unchanged => return Ok(applied),
            BodyChange::Create => {
                // Ownership first: a dashboard created just before a crash is still ours afterwards.
                owned.dashboards.insert(target.name.clone(), OwnedDashboard { region: target.region.clone() });
                self.save_owned(&owned).await?;
            }
            BodyChange::Update { adopted: true, .. } => tracing::warn!(
                dashboard = target.name,
                "this dashboard was not created by this host: its body is replaced by the generated one, and it is never deleted by this host"
            ),
            BodyChange::Update { .. } => {}
        }
        let text = body.text();
        match self.call(|| self.cloudwatch.put_dashboard(&target.region, &target.name, &text)).await {
            Ok(messages) => {
                for message in &messages {
                    tracing::warn!(dashboard = target.name, "CloudWatch accepted the dashboard with a validation message: {message}");
                }
                applied.validation_messages = messages;
                if *change == BodyChange::Create {
                    applied.created = true;
                    tracing::info!(dashboard = target.name, region = target.region, widgets = body.widgets(), "created dashboard");
                } else {
                    applied.updated = true;
                    tracing::info!(dashboard = target.name, region = target.region, widgets = body.widgets(), "corrected dashboard");
                }
            }
            Err(error) => self.failed(&mut applied, &target.name, "put", &error),
        }
        Ok(applied)
    }

    fn failed(&self, applied: &mut DashboardApplied, name: &str, action: &str, error: &CallError) {
        tracing::error!(dashboard = name, action, "dashboard change failed (tried again at the next reconcile): {error}");
        applied.failures.push(format!("dashboard {name}: {action}: {error}"));
    }

    async fn load_owned(&self) -> Result<Owned, String> {
        let file = self.owned.clone();
        tokio::task::spawn_blocking(move || file.load()).await.map_err(|error| format!("reading the dashboard list failed: {error}"))?
    }

    /// On the blocking pool: it fsyncs.
    async fn save_owned(&self, owned: &Owned) -> Result<(), String> {
        let (file, owned) = (self.owned.clone(), owned.clone());
        tokio::task::spawn_blocking(move || file.save(&owned))
            .await
            .map_err(|error| format!("saving the dashboard list failed: {error}"))?
    }

    /// One call, retried as [`ReconcileConfig::retried`] says.
    async fn call<T, F, Fut>(&self, operation: F) -> Result<T, CallError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        self.config.retried("dashboard", operation).await
    }
}
