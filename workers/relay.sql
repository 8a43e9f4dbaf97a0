-- The Kafka relay's progress (workers/relay.py), one row per topic.
-- Invariant: every event with position <= published_position was acknowledged
-- by the broker (acks=all) into the topic incarnation named by topic_id.  The
-- row is written only after the acknowledgement, so a crash can re-send the
-- un-acknowledged tail but never skip an event.  When the broker reports a
-- different topic_id (the topic was created anew, e.g. an embedded memory
-- broker restarted empty) the relay starts again from 0 and counts a reset.
CREATE TABLE IF NOT EXISTS relay_position (
    topic              text PRIMARY KEY,
    published_position bigint NOT NULL DEFAULT 0 CHECK (published_position >= 0),
    topic_id           text,
    resets             integer NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
