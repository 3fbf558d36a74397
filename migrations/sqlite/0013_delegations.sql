-- Delegations (`/access delegate <@user> until <date>`): while one lasts, every
-- step that asks `user_id` also asks `delegate`. One per person.
CREATE TABLE delegations (
    user_id  TEXT PRIMARY KEY,
    email    TEXT,
    delegate TEXT NOT NULL,
    until    INTEGER NOT NULL,
    created  INTEGER NOT NULL
);
CREATE INDEX delegations_email ON delegations (email);
