-- The broker's store (`baton`, POSTGRES_DB) is created by the postgres image itself. The dev profile's
-- `baton dev` keeps its own keys, audit chains and revocations apart from the production broker's:
-- it gets a database of its own (docker-compose.yml, service baton-dev).
CREATE DATABASE baton_dev;
