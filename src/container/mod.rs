//! Flakes that bring their own image (SPEC 14): the container engine behind its unix socket
//! ([`engine`]), the image keeper that pulls and builds outside the runs ([`keeper`]), the
//! build context ([`build_context`]), and the removal of what a crashed predecessor left.
//! Starting a run's container is the runner's (`runner::container`): one more way to start a
//! command, not a second runner.

pub mod build_context;
pub mod engine;
pub mod keeper;

use std::collections::HashMap;
use std::sync::Arc;

use bollard::query_parameters::ListContainersOptions;

pub use engine::{Engine, daemon_owner, once_owner, resolve_socket};
pub use keeper::{ImageKeeper, NotReady};

/// Removes every container labelled with `engine`'s owner (this host's daemon with this state
/// directory): what a crashed predecessor left. Containers of anyone else are never touched.
/// Returns how many were removed; an engine that does not answer is no error (there is then
/// nothing to remove that we could reach; the next start tries again).
pub async fn remove_leftovers(engine: &Arc<Engine>) -> usize {
    let Ok(docker) = engine.client() else { return 0 };
    let filters = HashMap::from([("label".to_string(), vec![format!("{}={}", engine::LABEL_OWNER, engine.owner())])]);
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let listed = match tokio::time::timeout(engine::QUICK_CALL, docker.list_containers(Some(options))).await {
        Ok(Ok(listed)) => listed,
        Ok(Err(error)) => {
            tracing::warn!("{}", engine.explain("cannot list containers a previous daemon left", &error));
            return 0;
        }
        Err(_) => return 0,
    };
    let mut removed = 0;
    for container in listed {
        // The filter is the engine's; the label is checked here too, so nothing else is removed
        // even by an engine that ignored the filter.
        let ours =
            container.labels.as_ref().and_then(|labels| labels.get(engine::LABEL_OWNER)).is_some_and(|owner| owner == engine.owner());
        let Some(id) = container.id.filter(|_| ours) else { continue };
        let flake = container.labels.as_ref().and_then(|labels| labels.get(engine::LABEL_FLAKE)).cloned().unwrap_or_default();
        if crate::runner::remove_container(engine, &docker, &id).await {
            tracing::info!(container = id, flake, "removed a container a previous daemon on this host left");
            removed += 1;
        }
    }
    removed
}
