-- A person's Okta user id (00u…), learned through Okta's Users API when the
-- Okta connector is on: the API names people by it, and takes it as input.
ALTER TABLE identities ADD COLUMN okta_id TEXT;
CREATE INDEX identities_okta_id ON identities (okta_id);
