-- Create "approvals" table
CREATE TABLE `approvals` (`id` text NOT NULL, `organization` text NOT NULL, `registry` text NOT NULL, `state` text NOT NULL, `body` text NOT NULL, `create_time` datetime NOT NULL, `update_time` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "approval_registry_create_time" to table: "approvals"
CREATE INDEX `approval_registry_create_time` ON `approvals` (`registry`, `create_time`);
-- Create "entries" table
CREATE TABLE `entries` (`id` text NOT NULL, `organization` text NOT NULL, `registry` text NOT NULL, `server` text NOT NULL, `server_name` text NOT NULL, `version` text NOT NULL, `version_range` text NOT NULL DEFAULT (''), `revision` integer NOT NULL, `pinned_by` text NOT NULL, `create_time` datetime NOT NULL, `update_time` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "entry_registry_server_name" to table: "entries"
CREATE INDEX `entry_registry_server_name` ON `entries` (`registry`, `server_name`);
-- Create index "entry_server" to table: "entries"
CREATE INDEX `entry_server` ON `entries` (`server`);
-- Create "entry_changes" table
CREATE TABLE `entry_changes` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `registry` text NOT NULL, `revision` integer NOT NULL, `type` text NOT NULL, `entry` text NOT NULL, `time` datetime NOT NULL);
-- Create index "entrychange_registry_revision" to table: "entry_changes"
CREATE UNIQUE INDEX `entrychange_registry_revision` ON `entry_changes` (`registry`, `revision`);
-- Create "audit_outbox" table
CREATE TABLE `audit_outbox` (`id` text NOT NULL, `organization` text NOT NULL, `payload` blob NOT NULL, `create_time` datetime NOT NULL, `delivered_time` datetime NULL, PRIMARY KEY (`id`));
-- Create index "audit_outbox_pending" to table: "audit_outbox"
CREATE INDEX `audit_outbox_pending` ON `audit_outbox` (`id`) WHERE delivered_time IS NULL;
-- Create "registries" table
CREATE TABLE `registries` (`id` text NOT NULL, `organization` text NOT NULL, `description` text NOT NULL DEFAULT (''), `parent` text NOT NULL DEFAULT (''), `settings` text NOT NULL DEFAULT ('{}'), `entry_revision` integer NOT NULL DEFAULT (0), `create_time` datetime NOT NULL, `update_time` datetime NOT NULL, `revision` integer NOT NULL DEFAULT (1), `create_request_id` text NULL, PRIMARY KEY (`id`));
-- Create index "registry_organization_id" to table: "registries"
CREATE INDEX `registry_organization_id` ON `registries` (`organization`, `id`);
-- Create index "registry_parent" to table: "registries"
CREATE INDEX `registry_parent` ON `registries` (`parent`);
-- Create index "registry_create_request_id" to table: "registries"
CREATE UNIQUE INDEX `registry_create_request_id` ON `registries` (`create_request_id`);
-- Create "servers" table
CREATE TABLE `servers` (`id` text NOT NULL, `organization` text NOT NULL, `server_name` text NOT NULL, `title` text NOT NULL DEFAULT (''), `description` text NOT NULL DEFAULT (''), `repository` json NULL, `website_url` text NOT NULL DEFAULT (''), `icons` json NULL, `create_time` datetime NOT NULL, `update_time` datetime NOT NULL, `revision` integer NOT NULL DEFAULT (1), `create_request_id` text NULL, PRIMARY KEY (`id`));
-- Create index "server_organization_server_name" to table: "servers"
CREATE UNIQUE INDEX `server_organization_server_name` ON `servers` (`organization`, `server_name`);
-- Create index "server_create_request_id" to table: "servers"
CREATE UNIQUE INDEX `server_create_request_id` ON `servers` (`create_request_id`);
-- Create "versions" table
CREATE TABLE `versions` (`id` text NOT NULL, `organization` text NOT NULL, `server` text NOT NULL, `version` text NOT NULL, `precedence` text NOT NULL, `prerelease` bool NOT NULL, `server_json` text NOT NULL, `release_notes` text NOT NULL DEFAULT (''), `tools` text NOT NULL DEFAULT ('[]'), `digest` text NOT NULL, `creator` text NOT NULL, `status` text NOT NULL DEFAULT ('active'), `status_message` text NOT NULL DEFAULT (''), `create_time` datetime NOT NULL, `update_time` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "version_server_precedence" to table: "versions"
CREATE UNIQUE INDEX `version_server_precedence` ON `versions` (`server`, `precedence`);
