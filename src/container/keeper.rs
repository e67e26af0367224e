//! The image keeper: makes sure each container flake's image exists before its runs, outside
//! their time limits (SPEC 14). `flakeImage` is pulled by its policy (`missing`: once, when the
//! engine lacks it; `always`: before every run; `never`: not at all); `flakeBuild` is built
//! when its directory's contents hash to a tag the engine does not have, and a failed build
//! keeps the last built image in use. Progress and errors go to the flake's log. Until an image
//! exists, runs are skipped with the reason; where the engine does not answer, they fail with
//! its socket path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::query_parameters::{BuildImageOptions, CreateImageOptions};
use futures_util::StreamExt;

use super::build_context::{hash_directory, image_tag, tar_directory};
use super::engine::{Engine, QUICK_CALL, one_line};
use crate::flake::{Flake, ImageSource, PullPolicy};
use crate::flakelog::{Event, FlakeLogs};
use crate::metrics::{ContainerLabels, Metrics};

/// Longest a pull or a build may take.
const PREPARE_LIMIT: Duration = Duration::from_secs(3600);
/// A failed pull or build is tried again at a run at most this often (a broken build is not
/// retried until its directory changes).
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Build output lines kept for the log when a build fails.
const BUILD_LINES_KEPT: usize = 20;

/// Why a run cannot have its image now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// No image yet (being pulled or built, or that failed): skip the run, saying why.
    Skip(String),
    /// The engine does not answer: the run fails, naming the socket.
    Engine(String),
}

/// What the keeper knows of one flake's image.
#[derive(Default)]
struct State {
    /// The image runs use; kept through a failed rebuild.
    ready: Option<String>,
    /// What `ready` was made for (a reference, or a build tag): a changed flake starts over.
    wanted: Option<String>,
    /// The last failure, and when, for skips and retries.
    failure: Option<(String, Instant)>,
    /// A pull or build is going on.
    busy: bool,
}

pub struct ImageKeeper {
    engine: Arc<Engine>,
    logs: Arc<FlakeLogs>,
    metrics: Arc<Metrics>,
    states: Mutex<HashMap<String, State>>,
}

impl ImageKeeper {
    pub fn new(engine: Arc<Engine>, logs: Arc<FlakeLogs>, metrics: Arc<Metrics>) -> ImageKeeper {
        ImageKeeper { engine, logs, metrics, states: Mutex::new(HashMap::new()) }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.states.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A flake was loaded or changed: prepare its image in the background.
    pub fn flake_loaded(self: &Arc<Self>, flake: &Arc<Flake>) {
        if flake.container.is_none() || !flake.enabled {
            return;
        }
        let (keeper, flake) = (self.clone(), flake.clone());
        tokio::spawn(async move {
            let _ = keeper.prepare(&flake).await;
        });
    }

    /// The image a run of `flake` uses, pulling or building first where that is due (outside
    /// the run's time limit). A run that finds a pull or build going on is skipped.
    pub async fn image_for_run(&self, flake: &Flake) -> Result<String, NotReady> {
        let Some(container) = &flake.container else { return Err(NotReady::Skip("the flake has no image".to_string())) };
        {
            let states = self.states();
            if let Some(state) = states.get(&flake.name) {
                let same_reference =
                    matches!(&container.image, ImageSource::Reference(image) if state.wanted.as_deref() == Some(image.as_str()));
                if state.busy {
                    return match (&state.ready, same_reference || matches!(container.image, ImageSource::Build(_))) {
                        (Some(ready), true) => Ok(ready.clone()),
                        _ => Err(NotReady::Skip(format!("its image is being {}", verb(&container.image)))),
                    };
                }
                if let (Some(ready), true, false) = (&state.ready, same_reference, container.pull == PullPolicy::Always) {
                    return Ok(ready.clone());
                }
                if let (None, Some((reason, at))) = (&state.ready, &state.failure)
                    && at.elapsed() < RETRY_AFTER
                    && !matches!(container.image, ImageSource::Build(_))
                {
                    return Err(NotReady::Skip(reason.clone()));
                }
            }
        }
        self.prepare(flake).await
    }

    /// Makes sure `flake`'s image exists (pull or build as due) and returns it.
    pub async fn prepare(&self, flake: &Flake) -> Result<String, NotReady> {
        let Some(container) = &flake.container else { return Err(NotReady::Skip("the flake has no image".to_string())) };
        {
            let mut states = self.states();
            let state = states.entry(flake.name.clone()).or_default();
            if state.busy {
                return state.ready.clone().ok_or_else(|| NotReady::Skip(format!("its image is being {}", verb(&container.image))));
            }
            state.busy = true;
        }
        let result = match &container.image {
            ImageSource::Reference(image) => self.pull_as_due(flake, image, container.pull).await.map(|()| (image.clone(), image.clone())),
            ImageSource::Build(dir) => self.build_as_due(flake, dir).await,
        };
        let mut states = self.states();
        let state = states.entry(flake.name.clone()).or_default();
        state.busy = false;
        match result {
            Ok((wanted, image)) => {
                state.wanted = Some(wanted);
                state.ready = Some(image.clone());
                state.failure = None;
                Ok(image)
            }
            Err(NotReady::Skip(reason)) => {
                state.failure = Some((reason.clone(), Instant::now()));
                // A failed build keeps the last built image in use.
                match (&state.ready, &container.image) {
                    (Some(ready), ImageSource::Build(_)) => Ok(ready.clone()),
                    _ => {
                        state.ready = None;
                        Err(NotReady::Skip(reason))
                    }
                }
            }
            Err(engine) => Err(engine),
        }
    }

    /// The engine no longer has the image a run was given (removed by hand, pruned): the next
    /// run looks again, and pulls or builds as due.
    pub fn forget(&self, flake: &str) {
        if let Some(state) = self.states().get_mut(flake) {
            state.ready = None;
            state.wanted = None;
        }
    }

    async fn log(&self, flake: &str, message: &str) {
        self.logs.record(flake, Event::Image { message }).await;
    }

    /// Whether the engine has `image`.
    async fn has_image(&self, image: &str) -> Result<bool, NotReady> {
        let docker = self.engine.client().map_err(NotReady::Engine)?;
        match tokio::time::timeout(QUICK_CALL, docker.inspect_image(image)).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })) => Ok(false),
            Ok(Err(error)) => match error {
                bollard::errors::Error::DockerResponseServerError { .. } => {
                    Err(NotReady::Skip(self.engine.explain(&format!("cannot inspect {image}"), &error)))
                }
                _ => Err(NotReady::Engine(self.engine.explain(&format!("cannot inspect {image}"), &error))),
            },
            Err(_) => Err(NotReady::Engine(self.engine.unreachable(&format!("inspecting {image} took over {QUICK_CALL:?}")))),
        }
    }

    async fn pull_as_due(&self, flake: &Flake, image: &str, policy: PullPolicy) -> Result<(), NotReady> {
        let present = self.has_image(image).await?;
        match policy {
            PullPolicy::Never if present => Ok(()),
            PullPolicy::Never => {
                let reason = format!(
                    "the engine has no image {image} and flakeImagePull is \"never\": pull or load it on this host, or set flakeImagePull to \"missing\""
                );
                self.log(&flake.name, &reason).await;
                Err(NotReady::Skip(reason))
            }
            PullPolicy::Missing if present => Ok(()),
            PullPolicy::Missing | PullPolicy::Always => match self.pull(flake, image).await {
                Ok(()) => Ok(()),
                // A failed `always` pull runs the image the engine already has.
                Err(NotReady::Skip(reason)) if present => {
                    self.log(&flake.name, &format!("{reason}; running the image already present")).await;
                    Ok(())
                }
                Err(error) => Err(error),
            },
        }
    }

    async fn pull(&self, flake: &Flake, image: &str) -> Result<(), NotReady> {
        let docker = self.engine.client().map_err(NotReady::Engine)?;
        self.log(&flake.name, &format!("pulling {image}")).await;
        let started = Instant::now();
        let options = CreateImageOptions { from_image: Some(image.to_string()), ..Default::default() };
        let mut progress = Box::pin(docker.create_image(Some(options), None, None));
        let pulled = tokio::time::timeout(PREPARE_LIMIT, async {
            while let Some(item) = progress.next().await {
                match item {
                    Ok(info) => {
                        if let Some(error) = info.error_detail.and_then(|detail| detail.message) {
                            return Err(error);
                        }
                    }
                    Err(error) => return Err(self.engine.explain("the pull failed", &error)),
                }
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|_| Err(format!("the pull took over {PREPARE_LIMIT:?}")));
        let outcome = if pulled.is_ok() { "ok" } else { "failed" };
        self.metrics.image_pulls.get_or_create(&ContainerLabels { outcome }).inc();
        match pulled {
            Ok(()) => {
                self.log(&flake.name, &format!("pulled {image} in {} ms", started.elapsed().as_millis())).await;
                Ok(())
            }
            Err(reason) => {
                let reason = format!("could not pull {image}: {}", one_line(&reason));
                self.log(&flake.name, &reason).await;
                Err(NotReady::Skip(reason))
            }
        }
    }

    /// Builds `dir` unless the engine already has the tag of its current contents. Returns the
    /// tag as both what was wanted and the image.
    async fn build_as_due(&self, flake: &Flake, dir: &std::path::Path) -> Result<(String, String), NotReady> {
        let hashed = {
            let dir = dir.to_path_buf();
            tokio::task::spawn_blocking(move || hash_directory(&dir)).await.unwrap_or_else(|error| Err(error.to_string()))
        };
        let hash = match hashed {
            Ok(hash) => hash,
            Err(reason) => {
                self.log(&flake.name, &reason).await;
                return Err(NotReady::Skip(reason));
            }
        };
        let tag = image_tag(&flake.name, &hash);
        if self.has_image(&tag).await? {
            return Ok((tag.clone(), tag));
        }
        {
            // Already failed for these very contents: wait for a change rather than rebuild.
            let states = self.states();
            if let Some(State { failure: Some((reason, _)), wanted: _, .. }) = states.get(&flake.name)
                && reason.contains(&tag)
            {
                return Err(NotReady::Skip(reason.clone()));
            }
        }
        self.build(flake, dir, &tag).await.map(|()| (tag.clone(), tag))
    }

    async fn build(&self, flake: &Flake, dir: &std::path::Path, tag: &str) -> Result<(), NotReady> {
        let docker = self.engine.client().map_err(NotReady::Engine)?;
        let packed = {
            let dir = dir.to_path_buf();
            tokio::task::spawn_blocking(move || tar_directory(&dir)).await.unwrap_or_else(|error| Err(error.to_string()))
        };
        let context = match packed {
            Ok(context) => context,
            Err(reason) => {
                self.log(&flake.name, &reason).await;
                return Err(NotReady::Skip(format!("{reason} (building {tag})")));
            }
        };
        self.log(&flake.name, &format!("building {tag} from {}", dir.display())).await;
        let started = Instant::now();
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".to_string(),
            t: Some(tag.to_string()),
            rm: true,
            forcerm: true,
            labels: Some(HashMap::from([(super::engine::LABEL_FLAKE.to_string(), flake.name.clone())])),
            ..Default::default()
        };
        let mut lines: Vec<String> = Vec::new();
        let built = {
            let mut progress = Box::pin(docker.build_image(options, None, Some(bollard::body_full(context.into()))));
            tokio::time::timeout(PREPARE_LIMIT, async {
                while let Some(item) = progress.next().await {
                    match item {
                        Ok(info) => {
                            if let Some(error) = info.error_detail.and_then(|detail| detail.message) {
                                return Err(error);
                            }
                            if let Some(text) = info.stream {
                                lines.extend(text.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_string));
                                if lines.len() > BUILD_LINES_KEPT {
                                    lines.drain(..lines.len() - BUILD_LINES_KEPT);
                                }
                            }
                        }
                        Err(error) => return Err(self.engine.explain("the build failed", &error)),
                    }
                }
                Ok(())
            })
            .await
            .unwrap_or_else(|_| Err(format!("the build took over {PREPARE_LIMIT:?}")))
        };
        // Some engines end a failed build's stream without an error item: the tag tells.
        let built = match built {
            Ok(()) if !self.has_image(tag).await? => {
                Err(format!("the engine finished without an image; last output: {}", lines.join(" / ")))
            }
            other => other,
        };
        let outcome = if built.is_ok() { "ok" } else { "failed" };
        self.metrics.image_builds.get_or_create(&ContainerLabels { outcome }).inc();
        match built {
            Ok(()) => {
                self.log(&flake.name, &format!("built {tag} in {} ms", started.elapsed().as_millis())).await;
                Ok(())
            }
            Err(reason) => {
                let reason = format!("could not build {tag}: {}", one_line(&reason));
                self.log(&flake.name, &reason).await;
                if !lines.is_empty() {
                    self.log(&flake.name, &format!("build output (last lines): {}", lines.join(" / "))).await;
                }
                Err(NotReady::Skip(reason))
            }
        }
    }
}

fn verb(source: &ImageSource) -> &'static str {
    match source {
        ImageSource::Reference(_) => "pulled",
        ImageSource::Build(_) => "built",
    }
}
