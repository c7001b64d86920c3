//! Ids of users, sessions and questions: random UUIDs, in the hyphenated
//! lower-case text form they are stored in.

/// An id as it came in a path, in the stored form; `None` when it is not
/// a UUID, and so cannot name anything (404, not a store round trip, and
/// no stray byte reaching a database that would refuse it).
pub fn parse_id(text: &str) -> Option<String> {
    uuid::Uuid::try_parse(text)
        .ok()
        .map(|id| id.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_id;

    #[test]
    fn ids_are_uuids_in_their_stored_form() {
        assert_eq!(
            parse_id("6F9619FF-8B86-D011-B42D-00CF4FC964FF").as_deref(),
            Some("6f9619ff-8b86-d011-b42d-00cf4fc964ff")
        );
        for junk in [
            "",
            "\0",
            "x",
            "6f9619ff-8b86-d011-b42d-00cf4fc964f\0",
            "../etc",
        ] {
            assert_eq!(parse_id(junk), None, "{junk:?}");
        }
    }
}
