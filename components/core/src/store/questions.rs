//! Topics, questions and answers in the SQL database.

use super::sql::{Row, SqlStore};
use super::{StoreError, StoreResult};
use crate::clock::Timestamp;

/// A topic with the caller's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSummary {
    /// UUID.
    pub id: String,
    /// URL name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Questions in the topic.
    pub question_count: i64,
    /// Distinct questions the caller answered.
    pub answered: i64,
    /// Of those, the ones whose latest answer is right.
    pub correct: i64,
}

/// A stored question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredQuestion {
    /// Position in its topic's order of creation (the cursor).
    pub seq: i64,
    /// UUID.
    pub id: String,
    /// Its topic's id.
    pub topic_id: String,
    /// The question.
    pub prompt: String,
    /// The choices.
    pub choices: Vec<String>,
    /// The right choice.
    pub answer_index: i64,
}

/// Topics, questions and answers.
pub trait QuestionStore {
    /// Every topic, by slug, with `user_id`'s progress, in one query.
    fn topics(&self, user_id: &str) -> StoreResult<Vec<TopicSummary>>;
    /// Creates a topic; `Ok(false)` when the slug is taken.
    fn insert_topic(
        &self,
        id: &str,
        slug: &str,
        name: &str,
        description: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// The id of the topic with `slug`.
    fn topic_id(&self, slug: &str) -> StoreResult<Option<String>>;
    /// Up to `limit` questions of a topic after position `after`.
    fn questions(&self, topic_id: &str, after: i64, limit: i64)
    -> StoreResult<Vec<StoredQuestion>>;
    /// Adds a question to a topic.
    fn insert_question(&self, question: &StoredQuestion, now: Timestamp) -> StoreResult<()>;
    /// The question with `id`.
    fn question(&self, id: &str) -> StoreResult<Option<StoredQuestion>>;
    /// Records `user_id`'s latest answer to a question.
    fn record_answer(
        &self,
        user_id: &str,
        question: &StoredQuestion,
        answer_index: i64,
        now: Timestamp,
    ) -> StoreResult<()>;
}

const QUESTION_COLUMNS: &str = "seq, id, topic_id, prompt, choices, answer_index";

fn question_from_row(row: &Row) -> anyhow::Result<StoredQuestion> {
    Ok(StoredQuestion {
        seq: row.int(0)?,
        id: row.text(1)?,
        topic_id: row.text(2)?,
        prompt: row.text(3)?,
        choices: serde_json::from_str(&row.text(4)?)?,
        answer_index: row.int(5)?,
    })
}

impl QuestionStore for SqlStore {
    fn topics(&self, user_id: &str) -> StoreResult<Vec<TopicSummary>> {
        // Counts come from grouped subqueries joined once, not a query per
        // topic.
        let rows = self.read(
            "SELECT t.id, t.slug, t.name, t.description, \
                    COALESCE(q.question_count, 0), COALESCE(a.answered, 0), COALESCE(a.correct, 0) \
             FROM topics t \
             LEFT JOIN (SELECT topic_id, COUNT(*) AS question_count FROM questions GROUP BY topic_id) q \
                    ON q.topic_id = t.id \
             LEFT JOIN (SELECT topic_id, COUNT(*) AS answered, \
                               CAST(SUM(correct) AS BIGINT) AS correct \
                        FROM answers WHERE user_id = $1 GROUP BY topic_id) a \
                    ON a.topic_id = t.id \
             ORDER BY t.slug",
            &[user_id.into()],
        )?;
        rows.iter()
            .map(|row| {
                Ok(TopicSummary {
                    id: row.text(0)?,
                    slug: row.text(1)?,
                    name: row.text(2)?,
                    description: row.optional_text(3)?,
                    question_count: row.int(4)?,
                    answered: row.int(5)?,
                    correct: row.int(6)?,
                })
            })
            .collect::<anyhow::Result<_>>()
            .map_err(StoreError::Other)
    }

    fn insert_topic(
        &self,
        id: &str,
        slug: &str,
        name: &str,
        description: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.insert_unique(
            "INSERT INTO topics (id, slug, name, description, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[id.into(), slug.into(), name.into(), description.into(), now.into()],
        )
    }

    fn topic_id(&self, slug: &str) -> StoreResult<Option<String>> {
        let rows = self.read("SELECT id FROM topics WHERE slug = $1", &[slug.into()])?;
        rows.first()
            .map(|row| row.text(0))
            .transpose()
            .map_err(StoreError::Other)
    }

    fn questions(
        &self,
        topic_id: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<StoredQuestion>> {
        let rows = self.read(
            &format!(
                "SELECT {QUESTION_COLUMNS} FROM questions WHERE topic_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            ),
            &[topic_id.into(), after.into(), limit.into()],
        )?;
        rows.iter()
            .map(question_from_row)
            .collect::<anyhow::Result<_>>()
            .map_err(StoreError::Other)
    }

    fn insert_question(&self, question: &StoredQuestion, now: Timestamp) -> StoreResult<()> {
        let choices =
            serde_json::to_string(&question.choices).map_err(|e| StoreError::Other(e.into()))?;
        self.execute(
            "INSERT INTO questions (id, topic_id, prompt, choices, answer_index, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                question.id.as_str().into(),
                question.topic_id.as_str().into(),
                question.prompt.as_str().into(),
                choices.as_str().into(),
                question.answer_index.into(),
                now.into(),
            ],
        )?;
        Ok(())
    }

    fn question(&self, id: &str) -> StoreResult<Option<StoredQuestion>> {
        let rows = self.read(
            &format!("SELECT {QUESTION_COLUMNS} FROM questions WHERE id = $1"),
            &[id.into()],
        )?;
        rows.first()
            .map(question_from_row)
            .transpose()
            .map_err(StoreError::Other)
    }

    fn record_answer(
        &self,
        user_id: &str,
        question: &StoredQuestion,
        answer_index: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        let correct = i64::from(answer_index == question.answer_index);
        // Only while the user is there (an answer racing the account's
        // deletion), without reading a foreign-key error SQLite does not name.
        let recorded = self.execute(
            "INSERT INTO answers (user_id, question_id, topic_id, answer_index, correct, answered_at) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1) \
             ON CONFLICT (user_id, question_id) DO UPDATE SET \
               answer_index = $4, correct = $5, answered_at = $6",
            &[
                user_id.into(),
                question.id.as_str().into(),
                question.topic_id.as_str().into(),
                answer_index.into(),
                correct.into(),
                now.into(),
            ],
        )?;
        if recorded == 0 {
            return Err(StoreError::Gone(format!("no user {user_id}")));
        }
        Ok(())
    }
}
