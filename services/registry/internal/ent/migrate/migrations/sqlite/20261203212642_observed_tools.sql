-- Disable the enforcement of foreign-keys constraints
PRAGMA foreign_keys = off;
-- Create "new_versions" table
CREATE TABLE `new_versions` (`id` text NOT NULL, `organization` text NOT NULL, `server` text NOT NULL, `version` text NOT NULL, `precedence` text NOT NULL, `prerelease` bool NOT NULL, `server_json` text NOT NULL, `release_notes` text NOT NULL DEFAULT (''), `tools` text NOT NULL DEFAULT ('[]'), `digest` text NOT NULL, `creator` text NOT NULL, `status` text NOT NULL DEFAULT ('active'), `status_message` text NOT NULL DEFAULT (''), `create_time` datetime NOT NULL, `update_time` datetime NOT NULL, `observed_tools` text NOT NULL DEFAULT ('[]'), `tools_observed_time` datetime NULL, PRIMARY KEY (`id`));
-- Copy rows from old table "versions" to new temporary table "new_versions"
INSERT INTO `new_versions` (`id`, `organization`, `server`, `version`, `precedence`, `prerelease`, `server_json`, `release_notes`, `tools`, `digest`, `creator`, `status`, `status_message`, `create_time`, `update_time`) SELECT `id`, `organization`, `server`, `version`, `precedence`, `prerelease`, `server_json`, `release_notes`, `tools`, `digest`, `creator`, `status`, `status_message`, `create_time`, `update_time` FROM `versions`;
-- Drop "versions" table after copying rows
DROP TABLE `versions`;
-- Rename temporary table "new_versions" to "versions"
ALTER TABLE `new_versions` RENAME TO `versions`;
-- Create index "version_server_precedence" to table: "versions"
CREATE UNIQUE INDEX `version_server_precedence` ON `versions` (`server`, `precedence`);
-- Enable back the enforcement of foreign-keys constraints
PRAGMA foreign_keys = on;
