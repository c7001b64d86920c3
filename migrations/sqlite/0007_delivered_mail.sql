-- spin-auth schema, version 7: a delivered message keeps no body. Its
-- links carry tokens the database otherwise holds only as digests, and
-- once the mail API has taken the message nothing needs them again.

UPDATE outbox SET text_body = '', html_body = '' WHERE delivered_at IS NOT NULL;
