-- Personal API keys: "Authorization: Bearer loom_sk_..." authenticates as the key's user on
-- every surface. Only a SHA-256 of the key is stored (keys are 256-bit random strings).
CREATE TABLE api_key (
    key_id       uuid PRIMARY KEY,
    user_id      text NOT NULL,
    name         text NOT NULL,
    hint         text NOT NULL,          -- the key's first and last characters, for lists
    key_hash     text NOT NULL UNIQUE,   -- hex SHA-256 of the whole key
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX api_key_user_idx ON api_key (user_id, created_at);
