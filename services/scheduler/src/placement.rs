//! Placement check, run with the precheck: every role the task needs has a live instance (a
//! heartbeat in `ferry-members`) in the region where it must run. A region with no Ferry
//! instance at all is almost always a misspelled region name, so it fails the precheck; a
//! region that lacks one role only warns (the instance may be starting or restarting, and the
//! job waits for it).

use ferry_schemas::control::{Member, Role};
use ferry_schemas::status::{CheckOutcome, CheckResult};
use ferry_schemas::task::{Phase, TaskSpec};

/// The roles whose jobs the task's phases need.
pub fn needed_roles(spec: &TaskSpec) -> Vec<Role> {
    let has = |p: Phase| spec.phases.contains(&p);
    let mut roles = Vec::new();
    if has(Phase::Schema) || has(Phase::Full) || has(Phase::Incremental) {
        roles.extend([Role::FullMigrator, Role::Sink]);
    }
    if has(Phase::Incremental) {
        roles.extend([Role::Store, Role::Dispatcher]);
    }
    if has(Phase::Verify) {
        roles.push(Role::Checker);
    }
    roles
}

pub fn check(spec: &TaskSpec, default_region: &str, members: &[Member]) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let mut empty_regions_reported = Vec::new();
    for role in needed_roles(spec) {
        let region = spec.region_of(role, default_region);
        let in_region: Vec<&Member> = members.iter().filter(|m| m.region == region).collect();
        let side = if role.on_source_side() { "source" } else { "target" };
        if in_region.is_empty() {
            if !empty_regions_reported.contains(&region) {
                empty_regions_reported.push(region);
                let known: Vec<&str> = {
                    let mut r: Vec<&str> = members.iter().map(|m| m.region.as_str()).collect();
                    r.sort_unstable();
                    r.dedup();
                    r
                };
                out.push(CheckResult {
                    check: "placement".into(),
                    object: Some(format!("region {region}")),
                    outcome: CheckOutcome::Fail,
                    message: format!(
                        "no Ferry instance runs in region `{region}` (the task's {side} region); live regions: {}",
                        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                    ),
                    fix: Some(format!(
                        "set {side}.region to one of the live regions, or start Ferry services with FERRY_REGION={region} next to the {side} database"
                    )),
                });
            }
            continue;
        }
        if !in_region.iter().any(|m| m.service == role.as_str()) {
            out.push(CheckResult {
                check: "placement".into(),
                object: Some(format!("{} in region {region}", role.as_str())),
                outcome: CheckOutcome::Warn,
                message: format!(
                    "no live {} instance in region `{region}`; the task waits for one",
                    role.as_str()
                ),
                fix: Some(format!("start ferry-{} with FERRY_REGION={region}", role.as_str())),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn member(service: &str, region: &str) -> Member {
        Member {
            instance: format!("{service}-{region}"),
            service: service.into(),
            region: region.into(),
            version: "0".into(),
            started_at: Utc::now(),
            heartbeat_at: Utc::now(),
            jobs: vec![],
        }
    }

    fn spec(source_region: Option<&str>, target_region: Option<&str>) -> TaskSpec {
        let yaml = "name: t\nsource: {host: a, user: u}\ntarget: {host: b, user: u}\nobjects: {include: [d]}\nphases: [precheck, full, incremental]\n";
        let mut s: TaskSpec = serde_yaml::from_str(yaml).expect("spec");
        s.source.region = source_region.map(str::to_owned);
        s.target.region = target_region.map(str::to_owned);
        s
    }

    #[test]
    fn every_role_in_its_region_passes() {
        let members: Vec<Member> = ["store", "full-migrator"]
            .iter()
            .map(|s| member(s, "west"))
            .chain(["dispatcher", "sink"].iter().map(|s| member(s, "east")))
            .collect();
        assert!(check(&spec(Some("west"), Some("east")), "west", &members).is_empty());
    }

    #[test]
    fn an_unknown_region_fails_once_and_a_missing_role_warns() {
        let members = vec![member("store", "west"), member("full-migrator", "west"), member("sink", "west")];
        let r = check(&spec(None, Some("eats")), "west", &members);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].outcome, CheckOutcome::Fail);
        assert!(r[0].message.contains("`eats`") && r[0].message.contains("west"), "{}", r[0].message);
        let r = check(&spec(None, None), "west", &members);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].outcome, CheckOutcome::Warn);
        assert!(r[0].message.contains("dispatcher"), "{}", r[0].message);
    }
}
