-- Create "audit_outbox" table
CREATE TABLE `audit_outbox` (`id` text NOT NULL, `organization` text NOT NULL, `payload` blob NOT NULL, `create_time` datetime NOT NULL, `delivered_time` datetime NULL, PRIMARY KEY (`id`));
-- Create index "audit_outbox_pending" to table: "audit_outbox"
CREATE INDEX `audit_outbox_pending` ON `audit_outbox` (`id`) WHERE delivered_time IS NULL;
-- Create "sealed_values" table
CREATE TABLE `sealed_values` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `organization` text NOT NULL, `key` text NOT NULL, `scope` text NOT NULL, `kind` integer NOT NULL, `name` text NOT NULL, `version` integer NOT NULL, `ciphertext` blob NOT NULL, `wrapped_key` blob NOT NULL, `kek_id` text NOT NULL, `fingerprint` text NOT NULL, `creator` text NOT NULL, `create_time` datetime NOT NULL);
-- Create index "sealedvalue_key_version" to table: "sealed_values"
CREATE UNIQUE INDEX `sealedvalue_key_version` ON `sealed_values` (`key`, `version`);
-- Create index "sealedvalue_scope_kind_name" to table: "sealed_values"
CREATE INDEX `sealedvalue_scope_kind_name` ON `sealed_values` (`scope`, `kind`, `name`);
-- Create index "sealedvalue_kek_id" to table: "sealed_values"
CREATE INDEX `sealedvalue_kek_id` ON `sealed_values` (`kek_id`);
-- Create "value_changes" table
CREATE TABLE `value_changes` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `organization` text NOT NULL, `revision` integer NOT NULL, `key` text NOT NULL, `version` integer NOT NULL, `type` text NOT NULL, `time` datetime NOT NULL);
-- Create index "valuechange_organization_revision" to table: "value_changes"
CREATE UNIQUE INDEX `valuechange_organization_revision` ON `value_changes` (`organization`, `revision`);
