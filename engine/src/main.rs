//! Local stub so the package builds in the wip-nginx worktree; the lead keeps the real main.rs at merge.
fn main() {}
