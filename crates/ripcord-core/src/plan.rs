//! The plan: every change of a project in deploy order, with `requires` checked.
//!
//! Deploy order is ID order. A change may only require changes that come before it, so
//! ID order is always a valid topological order; what this module refuses is a name
//! that does not exist, a cycle, or a requirement on a later change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::change::{Change, ChangeFileError, ChangeId, parse_file_name, read_change};
use crate::location::SourceLocation;
use crate::suggest::did_you_mean;

/// All changes of a project in deploy order, and the files of its changes directory
/// that could not be read as changes.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    changes: Vec<Change>,
    invalid: Vec<InvalidFile>,
}

/// A file of the changes directory that is not a valid change: the other changes stay
/// usable (status shows them, revert works), while commands that would deploy past it
/// refuse.
#[derive(Debug, Clone)]
pub struct InvalidFile {
    /// Its ID, when the file name has one.
    pub id: Option<ChangeId>,
    /// Its change name, when the file name has one.
    pub name: Option<String>,
    /// Why it cannot be read.
    pub error: Arc<ChangeFileError>,
}

/// Why the set of changes does not form a valid plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The changes directory could not be listed.
    #[error("cannot read the changes directory {}: {source}", dir.display())]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// One change file is malformed.
    #[error(transparent)]
    File(#[from] ChangeFileError),
    /// Two files share an ID.
    #[error("changes {first} and {second} share the ID {id}")]
    DuplicateId {
        /// The ID.
        id: String,
        /// The first change with it.
        first: String,
        /// The second one.
        second: String,
    },
    /// `requires:` names a change that does not exist.
    #[error("{change} requires {required}, which is not a change of this project")]
    UnknownRequirement {
        /// The requiring change.
        change: String,
        /// The missing name.
        required: String,
        /// A close existing name.
        suggestion: Option<String>,
        /// Where it is written.
        location: SourceLocation,
    },
    /// Requirements form a cycle.
    #[error("changes require each other in a cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// The cycle, first name repeated at the end.
        cycle: Vec<String>,
        /// Where the first requirement of the cycle is written.
        location: SourceLocation,
    },
    /// A change requires one that deploys after it.
    #[error("{change} requires {required}, which deploys after it")]
    RequiresLater {
        /// The requiring change.
        change: String,
        /// The later change.
        required: String,
        /// Where it is written.
        location: SourceLocation,
    },
}

impl Plan {
    /// Order `changes` by ID and validate their requirements.
    pub fn new(changes: Vec<Change>) -> Result<Plan, PlanError> {
        Plan::with_invalid(changes, Vec::new())
    }

    /// [`Plan::new`] for a directory where some files are invalid: a requirement on an
    /// invalid file's change is not an unknown name.
    fn with_invalid(
        mut changes: Vec<Change>,
        invalid: Vec<InvalidFile>,
    ) -> Result<Plan, PlanError> {
        changes.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.name.cmp(&b.name)));
        for pair in changes.windows(2) {
            if pair[0].id == pair[1].id {
                return Err(PlanError::DuplicateId {
                    id: pair[1].id.as_str().to_string(),
                    first: pair[0].name.clone(),
                    second: pair[1].name.clone(),
                });
            }
        }
        let index: HashMap<&str, usize> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), i))
            .collect();
        let invalid_names: Vec<&str> = invalid.iter().filter_map(|f| f.name.as_deref()).collect();
        for change in &changes {
            for requirement in &change.requires {
                if !index.contains_key(requirement.name.as_str())
                    && !invalid_names.contains(&requirement.name.as_str())
                {
                    return Err(PlanError::UnknownRequirement {
                        change: change.name.clone(),
                        required: requirement.name.clone(),
                        suggestion: did_you_mean(
                            &requirement.name,
                            changes.iter().map(|c| c.name.as_str()),
                        )
                        .map(String::from),
                        location: change.location(requirement.span.clone()),
                    });
                }
            }
        }
        if let Some((cycle, location)) = find_cycle(&changes, &index) {
            return Err(PlanError::Cycle { cycle, location });
        }
        for (position, change) in changes.iter().enumerate() {
            for requirement in &change.requires {
                let Some(&required) = index.get(requirement.name.as_str()) else {
                    continue; // an invalid file's change
                };
                if required > position {
                    return Err(PlanError::RequiresLater {
                        change: change.name.clone(),
                        required: requirement.name.clone(),
                        location: change.location(requirement.span.clone()),
                    });
                }
            }
        }
        Ok(Plan { changes, invalid })
    }

    /// Read every `*.sql` file of `dir` (not recursing) and build the plan.
    pub fn load(dir: &Path) -> Result<Plan, PlanError> {
        let entries = std::fs::read_dir(dir).map_err(|source| PlanError::Io {
            dir: dir.to_path_buf(),
            source,
        })?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| PlanError::Io {
                dir: dir.to_path_buf(),
                source,
            })?;
            let path = entry.path();
            if path.is_file()
                && path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("sql"))
            {
                paths.push(path);
            }
        }
        paths.sort();
        let mut changes = Vec::new();
        let mut invalid = Vec::new();
        for path in &paths {
            match read_change(path) {
                Ok(change) => changes.push(change),
                Err(error) => {
                    let named = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .and_then(parse_file_name);
                    invalid.push(InvalidFile {
                        id: named.as_ref().map(|(id, _)| id.clone()),
                        name: named.map(|(_, name)| name),
                        error: Arc::new(error),
                    });
                }
            }
        }
        Plan::with_invalid(changes, invalid)
    }

    /// Files of the changes directory that are not valid changes.
    pub fn invalid(&self) -> &[InvalidFile] {
        &self.invalid
    }

    /// The invalid files that a run deploying up to `last` (everything when `None`)
    /// would step over: those with an ID up to `last`, and those without an ID.
    pub fn invalid_through(&self, last: Option<&ChangeId>) -> Vec<&InvalidFile> {
        self.invalid
            .iter()
            .filter(|f| match (&f.id, last) {
                (Some(id), Some(last)) => id <= last,
                _ => true,
            })
            .collect()
    }

    /// The changes in deploy order.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The change called `name`.
    pub fn get(&self, name: &str) -> Option<&Change> {
        self.changes.iter().find(|c| c.name == name)
    }

    /// The change called `name_or_id`, or whose ID is `name_or_id`.
    pub fn resolve(&self, name_or_id: &str) -> Option<&Change> {
        self.get(name_or_id).or_else(|| {
            let id = crate::change::ChangeId::parse(name_or_id)?;
            self.changes.iter().find(|c| c.id == id)
        })
    }

    /// The next free ID in this project's style: a 14-digit timestamp when the project
    /// uses timestamps, else the highest ID plus one, zero-padded to at least 4 digits.
    pub fn next_id(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        next_id_after(self.changes.last().map(|c| &c.id), now)
    }
}

/// The ID that follows `last` (see [`Plan::next_id`]); usable on file names alone, so a
/// new change can be created while another one is still an unfinished template.
pub fn next_id_after(
    last: Option<&crate::change::ChangeId>,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    match last.map(|id| id.as_str()) {
        Some(id) if id.len() >= 14 => {
            let stamp = now.format("%Y%m%d%H%M%S").to_string();
            if stamp.as_str() > id {
                stamp
            } else {
                increment(id)
            }
        }
        Some(id) => {
            let next = increment(id);
            format!("{next:0>4}")
        }
        None => "0001".to_string(),
    }
}

fn increment(digits: &str) -> String {
    let mut bytes = digits.as_bytes().to_vec();
    for b in bytes.iter_mut().rev() {
        if *b == b'9' {
            *b = b'0';
        } else {
            *b += 1;
            return String::from_utf8(bytes).expect("ascii digits");
        }
    }
    format!("1{}", String::from_utf8(bytes).expect("ascii digits"))
}

/// The first cycle found by depth-first search, with where its first edge is written.
fn find_cycle(
    changes: &[Change],
    index: &HashMap<&str, usize>,
) -> Option<(Vec<String>, SourceLocation)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        node: usize,
        changes: &[Change],
        index: &HashMap<&str, usize>,
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[node] = Mark::Active;
        stack.push(node);
        for requirement in &changes[node].requires {
            let next = index[requirement.name.as_str()];
            match marks[next] {
                Mark::Active => {
                    let from = stack
                        .iter()
                        .position(|n| *n == next)
                        .expect("active node is on the stack");
                    return Some(stack[from..].to_vec());
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, changes, index, marks, stack) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[node] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; changes.len()];
    for start in 0..changes.len() {
        if marks[start] == Mark::New {
            let mut stack = Vec::new();
            if let Some(cycle) = visit(start, changes, index, &mut marks, &mut stack) {
                let first = &changes[cycle[0]];
                let second = &changes[cycle.get(1).copied().unwrap_or(cycle[0])];
                let span = first
                    .requires
                    .iter()
                    .find(|r| r.name == second.name)
                    .map_or(0..0, |r| r.span.clone());
                let mut names: Vec<String> =
                    cycle.iter().map(|i| changes[*i].name.clone()).collect();
                names.push(first.name.clone());
                return Some((names, first.location(span)));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::parse_change;
    use proptest::prelude::*;

    fn change(name: &str, requires: &[&str]) -> Change {
        let header = if requires.is_empty() {
            String::new()
        } else {
            format!("-- requires: {}\n", requires.join(", "))
        };
        parse_change(
            Path::new(&format!("changes/{name}.sql")),
            &format!("{header}-- ripcord:deploy\nselect 1;\n"),
        )
        .unwrap()
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.changes().iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn orders_by_numeric_id() {
        let plan = Plan::new(vec![
            change("10_c", &[]),
            change("0002_b", &[]),
            change("1_a", &[]),
        ])
        .unwrap();
        assert_eq!(names(&plan), ["1_a", "0002_b", "10_c"]);
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let err = Plan::new(vec![change("0002_b", &[]), change("2_c", &[])]).unwrap_err();
        assert_eq!(err.to_string(), "changes 0002_b and 2_c share the ID 2");
    }

    #[test]
    fn unknown_requirement_names_the_file_and_a_suggestion() {
        let err = Plan::new(vec![
            change("0001_users", &[]),
            change("0002_orders", &["0001_user"]),
        ])
        .unwrap_err();
        match err {
            PlanError::UnknownRequirement {
                suggestion,
                location,
                ..
            } => {
                assert_eq!(suggestion.as_deref(), Some("0001_users"));
                assert_eq!(location.display_short(), "changes/0002_orders.sql:1:14");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cycles_are_reported_as_cycles() {
        let err = Plan::new(vec![
            change("0001_a", &["0002_b"]),
            change("0002_b", &["0001_a"]),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "changes require each other in a cycle: 0001_a -> 0002_b -> 0001_a"
        );
        let err = Plan::new(vec![change("0001_a", &["0001_a"])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "changes require each other in a cycle: 0001_a -> 0001_a"
        );
    }

    #[test]
    fn requiring_a_later_change_is_refused() {
        let err =
            Plan::new(vec![change("0001_a", &["0002_b"]), change("0002_b", &[])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0001_a requires 0002_b, which deploys after it"
        );
    }

    #[test]
    fn next_id_follows_the_project_style() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-24T09:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(Plan::default().next_id(now), "0001");
        let plan = Plan::new(vec![change("0009_a", &[])]).unwrap();
        assert_eq!(plan.next_id(now), "0010");
        let plan = Plan::new(vec![change("20261124093000_a", &[])]).unwrap();
        assert_eq!(plan.next_id(now), "20261124093001");
        let plan = Plan::new(vec![change("20261101000000_a", &[])]).unwrap();
        assert_eq!(plan.next_id(now), "20261124093000");
    }

    #[test]
    fn resolve_accepts_names_and_ids() {
        let plan = Plan::new(vec![change("0001_a", &[]), change("0002_b", &[])]).unwrap();
        assert_eq!(plan.resolve("0002").unwrap().name, "0002_b");
        assert_eq!(plan.resolve("2").unwrap().name, "0002_b");
        assert_eq!(plan.resolve("0001_a").unwrap().name, "0001_a");
        assert!(plan.resolve("0003").is_none());
    }

    proptest! {
        /// Any requirement graph whose edges point backwards is accepted, and the order
        /// puts every requirement before the change that needs it.
        #[test]
        fn backward_edges_always_plan(edges in proptest::collection::vec((1usize..12, 0usize..12), 0..30)) {
            let n = 12;
            let mut requires: Vec<Vec<String>> = vec![Vec::new(); n];
            for (from, to) in edges {
                if to < from && !requires[from].contains(&format!("{to:04}_c")) {
                    requires[from].push(format!("{to:04}_c"));
                }
            }
            let changes: Vec<Change> = (0..n).rev().map(|i| {
                let req: Vec<&str> = requires[i].iter().map(String::as_str).collect();
                change(&format!("{i:04}_c"), &req)
            }).collect();
            let plan = Plan::new(changes).unwrap();
            for (pos, c) in plan.changes().iter().enumerate() {
                for r in &c.requires {
                    let rpos = plan.changes().iter().position(|x| x.name == r.name).unwrap();
                    prop_assert!(rpos < pos);
                }
            }
        }

        /// Any graph with at least one forward edge is refused (as a cycle or a later requirement).
        #[test]
        fn forward_edges_never_plan(from in 0usize..8, to in 0usize..8, extra in proptest::collection::vec((0usize..8, 0usize..8), 0..10)) {
            prop_assume!(from <= to);
            let n = 8;
            let mut requires: Vec<Vec<String>> = vec![Vec::new(); n];
            requires[from].push(format!("{to:04}_c"));
            for (a, b) in extra {
                if !requires[a].contains(&format!("{b:04}_c")) {
                    requires[a].push(format!("{b:04}_c"));
                }
            }
            let changes: Vec<Change> = (0..n).map(|i| {
                let req: Vec<&str> = requires[i].iter().map(String::as_str).collect();
                change(&format!("{i:04}_c"), &req)
            }).collect();
            let refused = matches!(Plan::new(changes), Err(PlanError::Cycle { .. } | PlanError::RequiresLater { .. }));
            prop_assert!(refused);
        }
    }
}
