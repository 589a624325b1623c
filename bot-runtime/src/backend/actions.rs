//! Buttons under a message: the [`Action`]s the dispatcher attaches to an outgoing message
//! ([`Outgoing::actions`](super::Outgoing::actions)), and [`ActionIds`], the map each
//! backend with buttons keeps from the opaque id it sends to the service to the command the
//! button stands for.
//!
//! A press comes back from the service with the id only; the backend looks the command up
//! and hands it to the dispatcher as an ordinary [`super::Incoming`] from the user who
//! pressed, so the access rules, the inquiry's `users`/`roles` and the audit trail apply as
//! if they had typed it. The service never sees the command and nothing it sends back is
//! executed: an id the backend did not hand out (forged, or forgotten after
//! [`ACTION_IDS`] newer ones) is refused.

use super::RememberedMessages;

/// How a button looks; each backend maps it to its service's styles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionStyle {
    /// The expected choice (Slack `primary`, Discord success, Mattermost `good`).
    Primary,
    /// A destructive or negative choice (Slack/Mattermost `danger`, Discord danger).
    Danger,
    /// Neither.
    Default,
}

/// One button: what it says and the command it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// The button's label.
    pub label: String,
    /// How it looks.
    pub style: ActionStyle,
    /// The full text the bot receives when it is pressed, as if the presser had typed it
    /// (prefix included, e.g. `!approve 5f3…`).
    pub command: String,
}

/// Approve (primary, `<prefix>approve ID`) and Reject (danger, `<prefix>reject ID`): the
/// buttons of a yes/no inquiry and of a confirmation.
pub fn approval_actions(prefix: &str, id: &str) -> Vec<Action> {
    vec![
        Action {
            label: "Approve".into(),
            style: ActionStyle::Primary,
            command: format!("{prefix}approve {id}"),
        },
        Action {
            label: "Reject".into(),
            style: ActionStyle::Danger,
            command: format!("{prefix}reject {id}"),
        },
    ]
}

/// How many button ids a backend remembers; older ones are forgotten first (a press on a
/// button that old is refused as unknown).
pub const ACTION_IDS: usize = super::REMEMBERED_MESSAGES;

/// Prefix of every id [`ActionIds`] hands out.
pub const ID_PREFIX: &str = "st2bot-";

/// Longest id [`ActionIds::issue`] makes (`st2bot-` and 32 hex digits): within Slack's
/// 255-character `action_id` and Discord's 100-character `custom_id`.
pub const ID_LEN: usize = ID_PREFIX.len() + 32;

/// The commands of the buttons a backend rendered, by the random id sent to the service:
/// at most [`ACTION_IDS`], the oldest forgotten first.
#[derive(Debug, Default)]
pub struct ActionIds {
    ids: RememberedMessages<String>,
}

impl ActionIds {
    /// A fresh, unguessable id for a button that stands for `command`.
    pub fn issue(&self, command: &str) -> String {
        let id = format!("{ID_PREFIX}{:032x}", rand::random::<u128>());
        self.ids.remember(&id, command.to_owned());
        id
    }

    /// The command of the button `id`, when this backend rendered it (and still remembers
    /// it). Anything else (forged, too long, forgotten) is `None`.
    pub fn command(&self, id: &str) -> Option<String> {
        if id.len() != ID_LEN || !id.starts_with(ID_PREFIX) {
            return None;
        }
        self.ids.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_actions_carry_the_prefix_and_the_id() {
        let a = approval_actions("!", "5f00000000000000000000a1");
        assert_eq!(a.len(), 2);
        assert_eq!(
            (a[0].label.as_str(), a[0].style, a[0].command.as_str()),
            (
                "Approve",
                ActionStyle::Primary,
                "!approve 5f00000000000000000000a1"
            )
        );
        assert_eq!(
            (a[1].label.as_str(), a[1].style, a[1].command.as_str()),
            (
                "Reject",
                ActionStyle::Danger,
                "!reject 5f00000000000000000000a1"
            )
        );
    }

    #[test]
    fn ids_are_random_opaque_and_map_back_to_their_command() {
        let ids = ActionIds::default();
        let a = ids.issue("!approve 1");
        let b = ids.issue("!approve 1");
        assert_ne!(a, b, "every button gets its own id");
        assert_eq!(a.len(), ID_LEN);
        assert!(
            !a.contains("approve"),
            "the command never goes to the service"
        );
        assert_eq!(ids.command(&a).as_deref(), Some("!approve 1"));
        assert_eq!(ids.command(&b).as_deref(), Some("!approve 1"));
        // A press may come back any number of times (another approver, a second click).
        assert_eq!(ids.command(&a).as_deref(), Some("!approve 1"));
    }

    #[test]
    fn unknown_and_forged_ids_are_refused() {
        let ids = ActionIds::default();
        let real = ids.issue("!reject 2");
        assert_eq!(ids.command("!reject 2"), None, "a command is not an id");
        assert_eq!(ids.command(""), None);
        let mut forged = real.clone();
        forged.replace_range(ID_PREFIX.len().., &"0".repeat(32));
        assert_eq!(ids.command(&forged), None);
        assert_eq!(ids.command(&format!("{real}0")), None);
        assert_eq!(ids.command(&"x".repeat(10_000)), None);
    }

    #[test]
    fn the_map_is_bounded_oldest_first() {
        let ids = ActionIds::default();
        let first = ids.issue("!approve first");
        let second = ids.issue("!approve second");
        for i in 0..ACTION_IDS - 1 {
            ids.issue(&format!("!approve {i}"));
        }
        assert_eq!(ids.command(&first), None, "the oldest is forgotten");
        assert_eq!(ids.command(&second).as_deref(), Some("!approve second"));
    }
}
