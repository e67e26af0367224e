//! The dashboards this host created: `<state-dir>/dashboards.json`. Only a dashboard listed here
//! is ever deleted (when `--dashboard` is removed or renamed), so a dashboard made by a person or
//! another host is never deleted, even if it has the name this host once wanted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FORMAT_VERSION: u32 = 1;

/// Where a dashboard we created lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedDashboard {
    pub region: String,
}

/// dashboard name -> where it lives
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owned {
    pub version: u32,
    pub dashboards: BTreeMap<String, OwnedDashboard>,
}

/// The state file.
#[derive(Debug, Clone)]
pub struct OwnedFile {
    path: PathBuf,
}

impl OwnedFile {
    pub fn new(state_dir: &Path) -> OwnedFile {
        OwnedFile { path: state_dir.join("dashboards.json") }
    }

    /// The dashboards we created; an absent file means none. A file that cannot be understood is
    /// set aside and counts as none, which only means those dashboards are not deleted by us; a
    /// file that cannot be read at all is an error, since carrying on would overwrite it.
    pub fn load(&self) -> Result<Owned, String> {
        let text = match crate::statefile::read(&self.path) {
            Ok(Some(text)) => text,
            Ok(None) => return Ok(Owned { version: FORMAT_VERSION, ..Owned::default() }),
            Err(error) => {
                return Err(format!("{}: cannot be read ({error}); the dashboard is not reconciled until it can", self.path.display()));
            }
        };
        let parsed = text.and_then(|text| serde_json::from_str::<Owned>(&text).map_err(|error| error.to_string()));
        Ok(match parsed {
            Ok(owned) if owned.version == FORMAT_VERSION => owned,
            outcome => {
                let reason = match outcome {
                    Ok(owned) => format!("format version {} is not {FORMAT_VERSION}", owned.version),
                    Err(reason) => reason,
                };
                let aside = crate::statefile::set_aside(&self.path)
                    .map_or_else(|error| format!("nowhere: {error}"), |aside| aside.display().to_string());
                tracing::error!(path = %self.path.display(), moved_to = aside, "the list of dashboards this host created cannot be understood ({reason}); they are no longer deleted automatically");
                Owned { version: FORMAT_VERSION, ..Owned::default() }
            }
        })
    }

    /// Replaces the file atomically.
    pub fn save(&self, owned: &Owned) -> Result<(), String> {
        let text = serde_json::to_string_pretty(owned).expect("the owned list serializes");
        crate::statefile::replace(&self.path, &text).map_err(|error| format!("{}: cannot be written: {error}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_loads_and_sets_aside_what_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = OwnedFile::new(dir.path());
        let mut owned = file.load().unwrap();
        assert!(owned.dashboards.is_empty());
        owned.dashboards.insert("snowflake-web-1".into(), OwnedDashboard { region: "eu-west-1".into() });
        file.save(&owned).unwrap();
        assert_eq!(file.load().unwrap(), owned);
        std::fs::write(dir.path().join("dashboards.json"), "[").unwrap();
        assert!(file.load().unwrap().dashboards.is_empty());
        assert!(std::fs::read_dir(dir.path()).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains("unreadable")));
    }
}
