//! Pending one-time login links, in memory only (a restart invalidates them; users ask
//! again). Each link is bound to one chat user, lives `link_ttl`, allows a few failed
//! attempts, and is consumed by the first success.
//!
//! Only the SHA-256 digest of a link id is kept. A lookup compares the presented id's digest
//! with every pending link's digest in constant time and without stopping early, so neither
//! the position nor the length of a partial match shows in the timing.
//!
//! While a login attempt is talking to StackStorm the link is *claimed*: a concurrent
//! attempt on the same link is refused instead of racing it (two successes on one link are
//! impossible). A claim dropped without an outcome (the browser went away) counts as a
//! failed attempt.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use subtle::{Choice, ConditionallySelectable as _};

use super::crypto::{CryptoError, LinkDigest, LinkId};

/// Most pending links at once; the oldest is dropped beyond this.
const MAX_PENDING: usize = 10_000;

/// The chat user a link was issued to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LinkOwner {
    pub(crate) user_id: String,
    pub(crate) user_name: String,
}

/// Why a link cannot be used. Unknown, expired, used up and burnt look the same from outside
/// on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkRefusal {
    /// No pending link has this id (never issued, expired, consumed or burnt).
    Invalid,
    /// Another attempt with this link is in progress.
    Busy,
}

/// What a failed attempt left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// The link can be tried this many more times.
    Remaining(u32),
    /// The attempt limit is reached; the link is gone.
    Burnt,
}

struct PendingLink {
    digest: LinkDigest,
    owner: LinkOwner,
    expires: Instant,
    failures: u32,
    busy: bool,
}

/// The table of pending links.
pub(crate) struct PendingLinks {
    entries: Mutex<Vec<PendingLink>>,
    ttl: Duration,
    max_failures: u32,
}

impl PendingLinks {
    /// An empty table; links live `ttl` and burn after `max_failures` failed attempts.
    pub(crate) fn new(ttl: Duration, max_failures: u32) -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
            ttl,
            max_failures: max_failures.max(1),
        }
    }

    /// Issues a link for `owner`, replacing any link that user still had.
    pub(crate) fn issue(&self, owner: LinkOwner) -> Result<LinkId, CryptoError> {
        let id = LinkId::generate()?;
        let now = Instant::now();
        let mut entries = self.lock();
        entries.retain(|l| l.expires > now && l.owner.user_id != owner.user_id);
        if entries.len() >= MAX_PENDING {
            entries.remove(0);
        }
        entries.push(PendingLink {
            digest: id.digest(),
            owner,
            expires: now + self.ttl,
            failures: 0,
            busy: false,
        });
        Ok(id)
    }

    /// Who a link belongs to and how many attempts it has left, without claiming it.
    pub(crate) fn peek(&self, id: &LinkId) -> Result<(LinkOwner, u32), LinkRefusal> {
        let mut entries = self.lock();
        let index = self.find(&mut entries, id).ok_or(LinkRefusal::Invalid)?;
        let link = &entries[index];
        Ok((link.owner.clone(), self.max_failures - link.failures))
    }

    /// Claims a link for one attempt.
    pub(crate) fn claim(self: &Arc<Self>, id: &LinkId) -> Result<LinkClaim, LinkRefusal> {
        let mut entries = self.lock();
        let index = self.find(&mut entries, id).ok_or(LinkRefusal::Invalid)?;
        let link = &mut entries[index];
        if link.busy {
            return Err(LinkRefusal::Busy);
        }
        link.busy = true;
        Ok(LinkClaim {
            links: Arc::clone(self),
            digest: link.digest,
            owner: link.owner.clone(),
            settled: false,
        })
    }

    /// Drops the pending link of a user (logout, revoke).
    pub(crate) fn cancel_user(&self, user_id: &str) {
        self.lock().retain(|l| l.owner.user_id != user_id);
    }

    /// Drops expired links.
    pub(crate) fn purge_expired(&self) {
        let now = Instant::now();
        self.lock().retain(|l| l.expires > now);
    }

    /// How many links are pending.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Index of the live link whose digest matches, scanning all entries in constant time.
    /// Expired entries found on the way are removed afterwards.
    fn find(&self, entries: &mut Vec<PendingLink>, id: &LinkId) -> Option<usize> {
        let wanted = id.digest();
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, link) in entries.iter().enumerate() {
            let hit = link.digest.matches(&wanted);
            index.conditional_assign(&(i as u64), hit);
            found |= hit;
        }
        let now = Instant::now();
        let index = usize::try_from(index).ok()?;
        let hit = bool::from(found) && entries[index].expires > now;
        if bool::from(found) && !hit {
            entries.remove(index);
        }
        hit.then_some(index)
    }

    fn settle(&self, digest: &LinkDigest, success: bool) -> AfterFailure {
        let mut entries = self.lock();
        let Some(index) = entries
            .iter()
            .position(|l| bool::from(l.digest.matches(digest)))
        else {
            return AfterFailure::Burnt;
        };
        if success {
            entries.remove(index);
            return AfterFailure::Burnt;
        }
        let link = &mut entries[index];
        link.busy = false;
        link.failures += 1;
        if link.failures >= self.max_failures || link.expires <= Instant::now() {
            entries.remove(index);
            AfterFailure::Burnt
        } else {
            AfterFailure::Remaining(self.max_failures - link.failures)
        }
    }

    fn unclaim(&self, digest: &LinkDigest) {
        let mut entries = self.lock();
        if let Some(link) = entries
            .iter_mut()
            .find(|l| bool::from(l.digest.matches(digest)))
        {
            link.busy = false;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<PendingLink>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One attempt's hold on a link. Settle it with [`LinkClaim::succeeded`] or
/// [`LinkClaim::failed`]; dropping it unsettled counts as a failure.
pub(crate) struct LinkClaim {
    links: Arc<PendingLinks>,
    digest: LinkDigest,
    owner: LinkOwner,
    settled: bool,
}

impl LinkClaim {
    /// The chat user the link belongs to.
    pub(crate) fn owner(&self) -> &LinkOwner {
        &self.owner
    }

    /// The login worked: the link is consumed.
    pub(crate) fn succeeded(mut self) {
        self.settled = true;
        self.links.settle(&self.digest, true);
    }

    /// The attempt could not be judged (StackStorm unreachable): the link stays as it was.
    pub(crate) fn release(mut self) {
        self.settled = true;
        self.links.unclaim(&self.digest);
    }

    /// The attempt failed: one attempt fewer, or the link is burnt.
    pub(crate) fn failed(mut self) -> AfterFailure {
        self.settled = true;
        self.links.settle(&self.digest, false)
    }
}

impl Drop for LinkClaim {
    fn drop(&mut self) {
        if !self.settled {
            self.links.settle(&self.digest, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(id: &str) -> LinkOwner {
        LinkOwner {
            user_id: id.to_owned(),
            user_name: format!("{id}-name"),
        }
    }

    fn links(ttl: Duration, max: u32) -> Arc<PendingLinks> {
        Arc::new(PendingLinks::new(ttl, max))
    }

    #[test]
    fn a_link_is_consumed_by_its_first_success() {
        let table = links(Duration::from_secs(60), 3);
        let id = table.issue(owner("U1")).unwrap();
        assert_eq!(table.peek(&id).unwrap(), (owner("U1"), 3));
        let claim = table.claim(&id).unwrap();
        assert_eq!(claim.owner(), &owner("U1"));
        assert_eq!(table.claim(&id).err(), Some(LinkRefusal::Busy));
        claim.succeeded();
        assert_eq!(table.claim(&id).err(), Some(LinkRefusal::Invalid));
        assert_eq!(table.peek(&id).err(), Some(LinkRefusal::Invalid));
    }

    #[test]
    fn failures_count_down_then_burn_the_link() {
        let table = links(Duration::from_secs(60), 3);
        let id = table.issue(owner("U1")).unwrap();
        assert_eq!(
            table.claim(&id).unwrap().failed(),
            AfterFailure::Remaining(2)
        );
        // A released claim (StackStorm unreachable) does not count; a dropped one does.
        table.claim(&id).unwrap().release();
        assert_eq!(table.peek(&id).unwrap().1, 2);
        drop(table.claim(&id).unwrap());
        assert_eq!(table.peek(&id).unwrap().1, 1);
        assert_eq!(table.claim(&id).unwrap().failed(), AfterFailure::Burnt);
        assert_eq!(table.claim(&id).err(), Some(LinkRefusal::Invalid));
    }

    #[test]
    fn links_expire_and_a_new_link_replaces_the_old_one() {
        let table = links(Duration::from_millis(30), 3);
        let first = table.issue(owner("U1")).unwrap();
        let second = table.issue(owner("U1")).unwrap();
        let other = table.issue(owner("U2")).unwrap();
        assert_eq!(table.peek(&first).err(), Some(LinkRefusal::Invalid));
        assert!(table.peek(&second).is_ok());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(table.claim(&second).err(), Some(LinkRefusal::Invalid));
        table.purge_expired();
        assert_eq!(table.len(), 0);
        assert_eq!(table.peek(&other).err(), Some(LinkRefusal::Invalid));
    }

    #[test]
    fn unknown_ids_and_cancelled_users_are_refused() {
        let table = links(Duration::from_secs(60), 3);
        let id = table.issue(owner("U1")).unwrap();
        let stranger = LinkId::generate().unwrap();
        assert_eq!(table.peek(&stranger).err(), Some(LinkRefusal::Invalid));
        table.cancel_user("U1");
        assert_eq!(table.peek(&id).err(), Some(LinkRefusal::Invalid));
    }
}
