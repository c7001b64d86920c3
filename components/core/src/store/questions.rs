//! Topics, questions and answers in the SQL database.

use super::sql::{Row, SqlStore};
use super::{QuestionStore, StoreError, StoreResult, StoredQuestion, TopicSummary};
use crate::clock::Timestamp;

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
        let rows = self.query(
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
        let rows = self.query("SELECT id FROM topics WHERE slug = $1", &[slug.into()])?;
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
        let rows = self.query(
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
        let rows = self.query(
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
        self.execute(
            "INSERT INTO answers (user_id, question_id, topic_id, answer_index, correct, answered_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
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
        Ok(())
    }
}
