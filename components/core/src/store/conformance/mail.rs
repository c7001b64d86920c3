//! The conformance case of the mail outbox: claims that keep two
//! instances from sending a message at once, or again straight after a
//! failed attempt.

use super::*;
use crate::store::NewMail;

pub(super) fn outbox_claims(subject: &Subject<'_>) -> CaseResult {
    let outbox = subject.outbox;
    let now = clock::now();
    let to = format!("{}@conformance.example.com", &fresh_id()[..8]);
    let message = NewMail {
        to: &to,
        subject: "Subject",
        text: "text",
        html: "<p>html</p>",
    };
    let first = store(outbox.enqueue(&message, now - 1))?;
    let second = store(outbox.enqueue(&message, now))?;
    // The case's messages among those due, in the order `due` gave.
    let listed = |at: Timestamp| {
        store(outbox.due(at, 1_000)).map(|ids| {
            ids.into_iter()
                .filter(|id| *id == first || *id == second)
                .collect::<Vec<_>>()
        })
    };
    let both = listed(now)?;
    ensure(both == [first.clone(), second.clone()], || {
        format!("due, oldest first: {both:?}")
    })?;

    // Two instances listed the first message; one claims it.
    let claimed = store(outbox.claim(&first, now, now + 60))?;
    ensure(
        claimed.as_ref().is_some_and(|mail| {
            mail.id == first && mail.to == to && mail.text == "text" && mail.attempts == 1
        }),
        || format!("the first claim: {claimed:?}"),
    )?;
    let again = store(outbox.claim(&first, now, now + 60))?;
    ensure(again.is_none(), || {
        format!("claimed while leased: {again:?}")
    })?;
    ensure(listed(now)? == [second.clone()], || {
        "a leased message is not due".to_owned()
    })?;

    // Its attempt fails: the other instance, which listed it before, must
    // not take it until the retry time.
    let claimed = claimed.ok_or("the first claim")?;
    store(outbox.failed(&claimed, "refused", now + 30))?;
    let early = store(outbox.claim(&first, now, now + 60))?;
    ensure(early.is_none(), || {
        format!("claimed before its retry time: {early:?}")
    })?;
    ensure(listed(now + 29)? == [second.clone()], || {
        "due before its retry time".to_owned()
    })?;
    let retried = store(outbox.claim(&first, now + 30, now + 90))?;
    ensure(retried.is_some_and(|mail| mail.attempts == 2), || {
        "not claimed again at its retry time".to_owned()
    })?;

    // A lease that runs out (an instance that stalled mid-attempt) frees it,
    // and the stalled attempt's late failure does not free the new claim.
    let stalled = store(outbox.claim(&second, now, now + 60))?.ok_or("the second claim")?;
    let taken_over = store(outbox.claim(&second, now + 60, now + 120))?;
    ensure(taken_over.is_some_and(|mail| mail.attempts == 2), || {
        "not claimed after its lease ran out".to_owned()
    })?;
    store(outbox.failed(&stalled, "timed out", now + 61))?;
    let third = store(outbox.claim(&second, now + 61, now + 121))?;
    ensure(third.is_none(), || {
        format!("a stale failure freed the newer claim: {third:?}")
    })?;

    // A delivered message is never claimed or due again.
    store(outbox.delivered(&first, now + 31))?;
    let resent = store(outbox.claim(&first, now + 10_000, now + 10_060))?;
    ensure(resent.is_none(), || {
        format!("delivered, then claimed: {resent:?}")
    })?;
    ensure(listed(now + 10_000)? == [second], || {
        "a delivered message is due".to_owned()
    })
}
