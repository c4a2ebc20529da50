-- Modify "versions" table
ALTER TABLE "versions" ADD COLUMN "observed_tools" text NOT NULL DEFAULT '[]', ADD COLUMN "tools_observed_time" timestamptz NULL;
