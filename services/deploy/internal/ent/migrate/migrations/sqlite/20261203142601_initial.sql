-- Create "deployments" table
CREATE TABLE `deployments` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `name` text NOT NULL, `organization` text NOT NULL, `registry` text NOT NULL, `record` blob NOT NULL, `update_time` datetime NOT NULL);
-- Create index "deployments_name_key" to table: "deployments"
CREATE UNIQUE INDEX `deployments_name_key` ON `deployments` (`name`);
-- Create index "deployment_registry" to table: "deployments"
CREATE INDEX `deployment_registry` ON `deployments` (`registry`);
-- Create index "deployment_organization" to table: "deployments"
CREATE INDEX `deployment_organization` ON `deployments` (`organization`);
-- Create "audit_outbox" table
CREATE TABLE `audit_outbox` (`id` text NOT NULL, `organization` text NOT NULL, `payload` blob NOT NULL, `create_time` datetime NOT NULL, `delivered_time` datetime NULL, PRIMARY KEY (`id`));
-- Create index "audit_outbox_pending" to table: "audit_outbox"
CREATE INDEX `audit_outbox_pending` ON `audit_outbox` (`id`) WHERE delivered_time IS NULL;
-- Create "registry_cursors" table
CREATE TABLE `registry_cursors` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `registry` text NOT NULL, `organization` text NOT NULL, `revision` integer NOT NULL);
-- Create index "registry_cursors_registry_key" to table: "registry_cursors"
CREATE UNIQUE INDEX `registry_cursors_registry_key` ON `registry_cursors` (`registry`);
