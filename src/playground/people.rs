//! The people of the playground: everyone the config names, by Slack id or
//! email, each given the other half (a synthetic email or Slack id), so the
//! fake Slack answers `users.info` and `users.lookupByEmail` consistently.

use serde::Serialize;

use crate::workflow::catalog::{Catalog, Person as ConfigPerson, StepDef, TaskAssignee};

/// Someone you can act as in the playground.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Person {
    pub id: String,
    pub email: String,
    pub name: String,
    /// What the config makes them (approver of …, admin), for the picker.
    pub roles: Vec<String>,
}

/// A requester the config does not name, so there is someone with no role at all.
pub const REQUESTER: &str = "U0RILEY";

/// Everyone the config names, in a stable order, plus [`REQUESTER`].
pub fn from_catalog(catalog: &Catalog) -> Vec<Person> {
    let named = named(catalog);
    // Synthetic ids and emails never take one the config uses for someone else.
    let mut taken: Vec<String> = named.iter().map(|(p, _)| p.key().to_ascii_lowercase()).collect();
    taken.push(REQUESTER.to_ascii_lowercase());
    let mut people: Vec<Person> = Vec::new();
    for (who, role) in named {
        let i = match people.iter().position(|p| is(p, &who)) {
            Some(i) => i,
            None => {
                people.push(make(&who, &mut taken));
                people.len() - 1
            }
        };
        if !people[i].roles.contains(&role) {
            people[i].roles.push(role);
        }
    }
    let riley = ConfigPerson::Slack(REQUESTER.into());
    if !people.iter().any(|p| is(p, &riley)) {
        let mut p = make(&riley, &mut taken);
        p.roles.push("requester, not in the config".into());
        people.push(p);
    }
    people
}

/// Every person of the config with what names them.
fn named(catalog: &Catalog) -> Vec<(ConfigPerson, String)> {
    let mut out = Vec::new();
    for p in &catalog.settings.admins {
        out.push((p.clone(), "super admin".to_string()));
    }
    if let Some(p) = &catalog.settings.technical_contact {
        out.push((p.clone(), "technical contact".to_string()));
    }
    for g in catalog.groups.values() {
        for p in &g.members {
            out.push((p.clone(), format!("{} member", g.name)));
        }
    }
    for a in catalog.apps.values() {
        for p in &a.admins {
            out.push((p.clone(), format!("{} admin", a.name)));
        }
        for s in &a.steps {
            if let StepDef::User(p) | StepDef::Task(TaskAssignee::User(p)) = &s.def {
                out.push((p.clone(), format!("{} approver", a.name)));
            }
        }
    }
    out
}

fn is(p: &Person, who: &ConfigPerson) -> bool {
    match who {
        ConfigPerson::Slack(id) => p.id == *id,
        ConfigPerson::Email(e) => p.email.eq_ignore_ascii_case(e),
    }
}

/// `U0BOB` → bob@example.com, "Bob"; `carol@example.com` → `U0CAROL`, "Carol".
fn make(who: &ConfigPerson, taken: &mut Vec<String>) -> Person {
    let (id, email, base) = match who {
        ConfigPerson::Slack(id) => {
            let base = id.strip_prefix("U0").or_else(|| id.get(1..)).unwrap_or(id).to_ascii_lowercase();
            let email = unique(&format!("{base}@example.com"), taken);
            (id.clone(), email, base)
        }
        ConfigPerson::Email(email) => {
            let local = email.split('@').next().unwrap_or(email);
            let base: String = local.chars().filter(char::is_ascii_alphanumeric).collect();
            let id = unique(&format!("U0{}", base.to_ascii_uppercase()), taken);
            (id, email.clone(), local.to_string())
        }
    };
    Person { id, email, name: title(&base), roles: Vec::new() }
}

/// `want`, or `want` with a number (before its `@`, if any) when it is taken; then taken.
fn unique(want: &str, taken: &mut Vec<String>) -> String {
    let mut candidate = want.to_string();
    let mut n = 2;
    while taken.iter().any(|t| t.eq_ignore_ascii_case(&candidate)) {
        candidate = match want.split_once('@') {
            Some((l, d)) => format!("{l}{n}@{d}"),
            None => format!("{want}{n}"),
        };
        n += 1;
    }
    taken.push(candidate.to_ascii_lowercase());
    candidate
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => "Someone".into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_has_one_person_per_id_and_email() {
        let catalog = crate::config::load_catalog(std::path::Path::new("accessbot.example.toml")).unwrap();
        let people = from_catalog(&catalog);
        let bob = people.iter().find(|p| p.id == "U0BOB").unwrap();
        assert_eq!((bob.email.as_str(), bob.name.as_str()), ("bob@example.com", "Bob"));
        let carol = people.iter().find(|p| p.email == "carol@example.com").unwrap();
        assert_eq!(carol.id, "U0CAROL");
        assert!(carol.roles.contains(&"Security Team member".to_string()));
        // U0DAVE's synthetic email would be dave@example.com, which the config gives someone else.
        let dave = people.iter().find(|p| p.id == "U0DAVE").unwrap();
        let dave_by_email = people.iter().find(|p| p.email == "dave@example.com").unwrap();
        assert_ne!(dave.id, dave_by_email.id);
        assert!(people.iter().any(|p| p.id == REQUESTER));
        let mut ids: Vec<&str> = people.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), people.len());
    }
}
