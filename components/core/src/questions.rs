//! The question use cases: any user reads and answers, admins write.

use crate::api_types::{AnswerBody, CreatedQuestionBody, QuestionBody, QuestionPage, TopicBody};
use crate::clock;
use crate::domain::{Role, TopicSlug};
use crate::error::{ApiError, FieldError};
use crate::http::{Request, Response};
use crate::service::{Service, authenticate};
use crate::store::{QuestionStore, StoredQuestion};
use crate::tokens::AccessClaims;

/// Questions per page when the client does not say.
const DEFAULT_PAGE: i64 = 20;
/// Most questions per page.
const MAX_PAGE: i64 = 100;
/// Longest topic name, description, prompt and choice.
const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2000;
const MAX_PROMPT: usize = 4000;
const MAX_CHOICE: usize = 1000;
/// Choices per question.
const CHOICES: std::ops::RangeInclusive<usize> = 2..=10;

fn require_admin(claims: &AccessClaims) -> Result<(), ApiError> {
    if claims.has_role(Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// A topic's id from its slug in the path; a slug that cannot exist is as
/// unknown as one that does not.
fn topic_id(service: &Service, slug: &str) -> Result<String, ApiError> {
    let slug = TopicSlug::parse(slug).map_err(|_| ApiError::NotFound("not_found"))?;
    service
        .stores
        .database
        .topic_id(slug.as_str())?
        .ok_or(ApiError::NotFound("not_found"))
}

/// Whether `text` has something besides spaces, tabs and line breaks; the
/// OpenAPI document states this rule as the pattern `[^ \t\r\n]`.
fn has_content(text: &str) -> bool {
    text.chars().any(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// Text with content, at most `max` characters as sent; stored trimmed.
fn bounded_text(
    value: Option<String>,
    field: &str,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = value?;
    if !has_content(&value) {
        errors.push(FieldError::new(field, "must not be empty"));
        return None;
    }
    if value.chars().count() > max {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
        return None;
    }
    Some(value.trim().to_owned())
}

/// `GET /questions/topics`.
pub fn list_topics(service: &Service, request: &Request) -> Result<Response, ApiError> {
    let claims = authenticate(service, request)?;
    let topics: Vec<TopicBody> = service
        .stores
        .database
        .topics(&claims.user_id)?
        .into_iter()
        .map(|topic| TopicBody {
            id: topic.id,
            slug: topic.slug,
            name: topic.name,
            description: topic.description,
            question_count: topic.question_count,
            answered: topic.answered,
            correct: topic.correct,
        })
        .collect();
    Ok(Response::json(200, &topics))
}

/// `POST /questions/topics` (admin).
pub fn create_topic(service: &Service, request: &Request) -> Result<Response, ApiError> {
    let claims = authenticate(service, request)?;
    require_admin(&claims)?;
    let mut fields = request.json_object()?;
    let slug = fields.string("slug");
    let name = fields.string("name");
    let description = fields.optional_string("description");
    let mut errors = Vec::new();
    let slug = slug.and_then(|slug| match TopicSlug::parse(&slug) {
        Ok(slug) => Some(slug),
        Err(reason) => {
            errors.push(FieldError::new("slug", reason));
            None
        }
    });
    let name = bounded_text(name, "name", MAX_NAME, &mut errors);
    let description = match description {
        Some(text) if text.chars().count() > MAX_DESCRIPTION => {
            errors.push(FieldError::new(
                "description",
                "must be at most 2000 characters",
            ));
            None
        }
        Some(text) if !has_content(&text) => None,
        other => other.map(|text| text.trim().to_owned()),
    };
    errors.into_iter().for_each(|error| fields.reject(error));
    fields.finish()?;
    let (Some(slug), Some(name)) = (slug, name) else {
        return Err(ApiError::invalid("slug", "is required"));
    };
    let id = crate::random::uuid().to_string();
    let created = service.stores.database.insert_topic(
        &id,
        slug.as_str(),
        &name,
        description.as_deref(),
        clock::now(),
    )?;
    if !created {
        return Err(ApiError::Conflict("slug_taken"));
    }
    let body = TopicBody {
        id,
        slug: slug.as_str().to_owned(),
        name,
        description,
        question_count: 0,
        answered: 0,
        correct: 0,
    };
    Ok(Response::json(201, &body)
        .header("location", &format!("/questions/topics/{slug}/questions")))
}

/// A cursor is the position of the last question of the previous page, in
/// decimal: any such number is a valid place to continue from.
fn encode_cursor(seq: i64) -> String {
    seq.to_string()
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    if cursor.is_empty() || cursor.len() > 18 || !cursor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    cursor.parse().ok()
}

/// `GET /questions/topics/{slug}/questions?limit=&cursor=`: a page, oldest
/// first. Every question that existed when paging began appears exactly
/// once; questions added meanwhile appear on later pages (on PostgreSQL,
/// one committed out of order with a concurrent insert can be passed by).
pub fn list_questions(
    service: &Service,
    request: &Request,
    slug: &str,
) -> Result<Response, ApiError> {
    authenticate(service, request)?;
    let limit = match request.query_param("limit")? {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", "must be a whole number from 1 to 100"))?,
    };
    let after = match request.query_param("cursor")? {
        None => 0,
        Some(cursor) => decode_cursor(&cursor)
            .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this service issued"))?,
    };
    let topic = topic_id(service, slug)?;
    let mut questions = service
        .stores
        .database
        .questions(&topic, after, limit + 1)?;
    let next_cursor = if questions.len() as i64 > limit {
        questions.truncate(limit as usize);
        questions.last().map(|q| encode_cursor(q.seq))
    } else {
        None
    };
    let page = QuestionPage {
        items: questions
            .into_iter()
            .map(|q| QuestionBody {
                id: q.id,
                prompt: q.prompt,
                choices: q.choices,
            })
            .collect(),
        next_cursor,
    };
    Ok(Response::json(200, &page))
}

/// `POST /questions/topics/{slug}/questions` (admin).
pub fn create_question(
    service: &Service,
    request: &Request,
    slug: &str,
) -> Result<Response, ApiError> {
    let claims = authenticate(service, request)?;
    require_admin(&claims)?;
    let mut fields = request.json_object()?;
    let prompt = fields.string("prompt");
    let choices = fields.strings("choices");
    let answer_index = fields.integer("answer_index");
    let mut errors = Vec::new();
    let prompt = bounded_text(prompt, "prompt", MAX_PROMPT, &mut errors);
    let choices = choices.and_then(|choices| {
        if !CHOICES.contains(&choices.len()) {
            errors.push(FieldError::new("choices", "must have 2 to 10 choices"));
            return None;
        }
        if !choices.iter().all(|c| has_content(c)) {
            errors.push(FieldError::new("choices", "must not contain empty choices"));
            return None;
        }
        if choices.iter().any(|c| c.chars().count() > MAX_CHOICE) {
            errors.push(FieldError::new(
                "choices",
                "must be at most 1000 characters each",
            ));
            return None;
        }
        Some(
            choices
                .iter()
                .map(|c| c.trim().to_owned())
                .collect::<Vec<_>>(),
        )
    });
    if let (Some(index), Some(choices)) = (answer_index, &choices)
        && (index < 0 || index as usize >= choices.len())
    {
        errors.push(FieldError::new(
            "answer_index",
            "must be the index of one of the choices",
        ));
    }
    errors.into_iter().for_each(|error| fields.reject(error));
    fields.finish()?;
    let (Some(prompt), Some(choices), Some(answer_index)) = (prompt, choices, answer_index) else {
        return Err(ApiError::invalid("prompt", "is required"));
    };
    let topic = topic_id(service, slug)?;
    let question = StoredQuestion {
        seq: 0,
        id: crate::random::uuid().to_string(),
        topic_id: topic,
        prompt,
        choices,
        answer_index,
    };
    service
        .stores
        .database
        .insert_question(&question, clock::now())?;
    let body = CreatedQuestionBody {
        id: question.id,
        prompt: question.prompt,
        choices: question.choices,
        answer_index: question.answer_index,
    };
    Ok(Response::json(201, &body))
}

/// `POST /questions/{id}/answer`: records the caller's latest answer.
pub fn answer(
    service: &Service,
    request: &Request,
    question_id: &str,
) -> Result<Response, ApiError> {
    let claims = authenticate(service, request)?;
    let mut fields = request.json_object()?;
    let answer_index = fields.integer("answer_index");
    fields.finish()?;
    let Some(answer_index) = answer_index else {
        return Err(ApiError::invalid("answer_index", "is required"));
    };
    let question = crate::domain::parse_id(question_id)
        .map(|id| service.stores.database.question(&id))
        .transpose()?
        .flatten()
        .ok_or(ApiError::NotFound("not_found"))?;
    if answer_index < 0 || answer_index as usize >= question.choices.len() {
        return Err(ApiError::invalid(
            "answer_index",
            "must be the index of one of the choices",
        ));
    }
    service.stores.database.record_answer(
        &claims.user_id,
        &question,
        answer_index,
        clock::now(),
    )?;
    Ok(Response::json(
        200,
        &AnswerBody {
            correct: answer_index == question.answer_index,
            answer_index: question.answer_index,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        for junk in ["", "!!", "-1", "1e3", " 1", &"9".repeat(19)] {
            assert_eq!(decode_cursor(junk), None, "{junk:?}");
        }
    }
}
