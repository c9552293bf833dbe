//! ripcord projects in temporary directories, for tests that run the real binary.

use std::path::{Path, PathBuf};

/// A project directory with `ripcord.toml` and `changes/`, removed on drop.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// A project whose default target is `url`.
    pub fn new(url: &str) -> Project {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(dir.path().join("changes")).expect("changes directory");
        let project = Project { dir };
        project.write_config(&format!(
            "[project]\nname = \"test\"\ndefault_target = \"test\"\n\n[targets.test]\nurl = \"{url}\"\n"
        ));
        project
    }

    /// A project on a fresh SQLite file inside the project directory.
    pub fn sqlite() -> Project {
        Project::new("sqlite://test.db")
    }

    /// The project directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The SQLite file of [`Project::sqlite`].
    pub fn sqlite_path(&self) -> PathBuf {
        self.path().join("test.db")
    }

    /// Replace `ripcord.toml`.
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.path().join("ripcord.toml"), text).expect("write ripcord.toml");
    }

    /// Write `changes/<name>.sql`.
    pub fn change(&self, name: &str, text: &str) -> &Project {
        std::fs::write(self.change_path(name), text).expect("write change file");
        self
    }

    /// Write a change from its three sections (empty revert/verify are left out).
    pub fn simple_change(&self, name: &str, deploy: &str, revert: &str, verify: &str) -> &Project {
        let mut text = format!("-- ripcord:deploy\n{deploy}\n");
        if !revert.is_empty() {
            text.push_str(&format!("-- ripcord:revert\n{revert}\n"));
        }
        if !verify.is_empty() {
            text.push_str(&format!("-- ripcord:verify\n{verify}\n"));
        }
        self.change(name, &text)
    }

    /// Path of `changes/<name>.sql`.
    pub fn change_path(&self, name: &str) -> PathBuf {
        self.path().join("changes").join(format!("{name}.sql"))
    }
}
