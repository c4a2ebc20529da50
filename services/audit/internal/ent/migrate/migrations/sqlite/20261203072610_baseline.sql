-- Create "audit_chain_heads" table
CREATE TABLE `audit_chain_heads` (`id` text NOT NULL, `sequence` integer NOT NULL, `hash` text NOT NULL, `checkpoint_sequence` integer NOT NULL DEFAULT (0), `epoch_sequence` integer NOT NULL DEFAULT (0), `epoch_time` datetime NULL, PRIMARY KEY (`id`));
-- Create "audit_checkpoints" table
CREATE TABLE `audit_checkpoints` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `organization` text NOT NULL, `sequence` integer NOT NULL, `hash` text NOT NULL, `create_time` datetime NOT NULL, `signature` text NOT NULL, `public_key` text NOT NULL);
-- Create index "checkpoint_organization_sequence" to table: "audit_checkpoints"
CREATE UNIQUE INDEX `checkpoint_organization_sequence` ON `audit_checkpoints` (`organization`, `sequence`);
-- Create "audit_events" table
CREATE TABLE `audit_events` (`id` text NOT NULL, `organization` text NOT NULL, `sequence` integer NOT NULL, `event_time` datetime NOT NULL, `actor_principal` text NOT NULL DEFAULT (''), `actor_kind` text NOT NULL DEFAULT (''), `actor_display_name` text NOT NULL DEFAULT (''), `action` text NOT NULL, `resource` text NOT NULL DEFAULT (''), `outcome` text NOT NULL, `request_id` text NOT NULL DEFAULT (''), `client_address` text NOT NULL DEFAULT (''), `user_agent` text NOT NULL DEFAULT (''), `changes` json NULL, `metadata` json NULL, `previous_hash` text NOT NULL, `hash` text NOT NULL, `receive_time` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "event_organization_sequence" to table: "audit_events"
CREATE UNIQUE INDEX `event_organization_sequence` ON `audit_events` (`organization`, `sequence`);
-- Create index "event_organization_event_time" to table: "audit_events"
CREATE INDEX `event_organization_event_time` ON `audit_events` (`organization`, `event_time`);
