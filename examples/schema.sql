-- Example schema for `pgseal dev`. Encrypted columns are bytea.
CREATE TABLE customers (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    email      bytea UNIQUE,
    ssn        bytea,
    birth_date bytea,
    api_token  bytea,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE payments (
    id          bigserial PRIMARY KEY,
    customer_id bigint REFERENCES customers (id),
    amount      bytea,
    paid_at     timestamptz NOT NULL DEFAULT now()
);
