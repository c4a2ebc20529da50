-- Create "api_tokens" table
CREATE TABLE `api_tokens` (`id` text NOT NULL, `token_hash` blob NOT NULL, `principal` text NOT NULL, `display_name` text NOT NULL DEFAULT (''), `create_time` datetime NOT NULL, `expire_time` datetime NULL, `last_use_time` datetime NULL, PRIMARY KEY (`id`));
-- Create index "api_tokens_token_hash_key" to table: "api_tokens"
CREATE UNIQUE INDEX `api_tokens_token_hash_key` ON `api_tokens` (`token_hash`);
-- Create "bindings" table
CREATE TABLE `bindings` (`id` text NOT NULL, `resource` text NOT NULL, `organization` text NOT NULL, `role` text NOT NULL, `principal` text NOT NULL, `creator` text NOT NULL DEFAULT (''), `create_time` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "binding_resource_role_principal" to table: "bindings"
CREATE UNIQUE INDEX `binding_resource_role_principal` ON `bindings` (`resource`, `role`, `principal`);
-- Create index "binding_principal" to table: "bindings"
CREATE INDEX `binding_principal` ON `bindings` (`principal`);
-- Create index "binding_organization" to table: "bindings"
CREATE INDEX `binding_organization` ON `bindings` (`organization`);
-- Create "custom_roles" table
CREATE TABLE `custom_roles` (`id` text NOT NULL, `organization` text NOT NULL, `title` text NOT NULL DEFAULT (''), `description` text NOT NULL DEFAULT (''), `permissions` json NOT NULL, `create_time` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "customrole_organization" to table: "custom_roles"
CREATE INDEX `customrole_organization` ON `custom_roles` (`organization`);
-- Create "invitations" table
CREATE TABLE `invitations` (`id` text NOT NULL, `organization` text NOT NULL, `email` text NOT NULL, `role` text NOT NULL, `token_hash` blob NOT NULL, `expire_time` datetime NOT NULL, `state` text NOT NULL DEFAULT ('pending'), `inviter` text NOT NULL, `accepted_by` text NOT NULL DEFAULT (''), `create_time` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "invitations_token_hash_key" to table: "invitations"
CREATE UNIQUE INDEX `invitations_token_hash_key` ON `invitations` (`token_hash`);
-- Create index "invitation_organization" to table: "invitations"
CREATE INDEX `invitation_organization` ON `invitations` (`organization`);
-- Create "organizations" table
CREATE TABLE `organizations` (`id` text NOT NULL, `display_name` text NOT NULL DEFAULT (''), `description` text NOT NULL DEFAULT (''), `overview` text NOT NULL DEFAULT (''), `create_time` datetime NOT NULL, `update_time` datetime NOT NULL, `revision` integer NOT NULL DEFAULT (1), `oidc` json NULL, `oidc_issuer` text NOT NULL DEFAULT (''), `create_request_id` text NULL, PRIMARY KEY (`id`));
-- Create index "organization_create_request_id" to table: "organizations"
CREATE UNIQUE INDEX `organization_create_request_id` ON `organizations` (`create_request_id`);
-- Create index "organization_oidc_issuer" to table: "organizations"
CREATE INDEX `organization_oidc_issuer` ON `organizations` (`oidc_issuer`);
-- Create "audit_outbox" table
CREATE TABLE `audit_outbox` (`id` text NOT NULL, `organization` text NOT NULL, `payload` blob NOT NULL, `create_time` datetime NOT NULL, `delivered_time` datetime NULL, PRIMARY KEY (`id`));
-- Create index "audit_outbox_pending" to table: "audit_outbox"
CREATE INDEX `audit_outbox_pending` ON `audit_outbox` (`id`) WHERE delivered_time IS NULL;
-- Create "service_accounts" table
CREATE TABLE `service_accounts` (`id` text NOT NULL, `organization` text NOT NULL, `display_name` text NOT NULL DEFAULT (''), `description` text NOT NULL DEFAULT (''), `create_time` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "serviceaccount_organization" to table: "service_accounts"
CREATE INDEX `serviceaccount_organization` ON `service_accounts` (`organization`);
-- Create "teams" table
CREATE TABLE `teams` (`id` text NOT NULL, `organization` text NOT NULL, `display_name` text NOT NULL DEFAULT (''), `create_time` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "team_organization" to table: "teams"
CREATE INDEX `team_organization` ON `teams` (`organization`);
-- Create "team_members" table
CREATE TABLE `team_members` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `team` text NOT NULL, `member` text NOT NULL);
-- Create index "teammember_team_member" to table: "team_members"
CREATE UNIQUE INDEX `teammember_team_member` ON `team_members` (`team`, `member`);
-- Create index "teammember_member" to table: "team_members"
CREATE INDEX `teammember_member` ON `team_members` (`member`);
-- Create "users" table
CREATE TABLE `users` (`id` text NOT NULL, `email` text NULL, `display_name` text NOT NULL DEFAULT (''), `create_time` datetime NOT NULL, PRIMARY KEY (`id`));
-- Create index "users_email_key" to table: "users"
CREATE UNIQUE INDEX `users_email_key` ON `users` (`email`);
