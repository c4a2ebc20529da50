package secrets

import (
	"google.golang.org/protobuf/proto"

	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/server"
)

// Field rules (required, lengths, the NAME pattern, the value's size) are
// declared in the proto and checked first; these check what needs code:
// scopes and resource names.

// Validators returns the hand-written validator of every RPC, keyed by full
// method name.
func Validators() map[string]server.Validator {
	return map[string]server.Validator{
		secretsv1.SecretsService_SetSecret_FullMethodName:              scopeOnly("parent", (*secretsv1.SetSecretRequest).GetParent),
		secretsv1.SecretsService_GetSecret_FullMethodName:              keyOnly("name", (*secretsv1.GetSecretRequest).GetName, "secrets"),
		secretsv1.SecretsService_ListSecrets_FullMethodName:            scopeOnly("parent", (*secretsv1.ListSecretsRequest).GetParent),
		secretsv1.SecretsService_DeleteSecret_FullMethodName:           keyOnly("name", (*secretsv1.DeleteSecretRequest).GetName, "secrets"),
		secretsv1.SecretsService_ListSecretVersions_FullMethodName:     keyOnly("name", (*secretsv1.ListSecretVersionsRequest).GetName, "secrets"),
		secretsv1.SecretsService_RestoreSecretVersion_FullMethodName:   keyOnly("name", (*secretsv1.RestoreSecretVersionRequest).GetName, "secrets"),
		secretsv1.SecretsService_SetVariable_FullMethodName:            scopeOnly("parent", (*secretsv1.SetVariableRequest).GetParent),
		secretsv1.SecretsService_GetVariable_FullMethodName:            keyOnly("name", (*secretsv1.GetVariableRequest).GetName, "variables"),
		secretsv1.SecretsService_ListVariables_FullMethodName:          scopeOnly("parent", (*secretsv1.ListVariablesRequest).GetParent),
		secretsv1.SecretsService_DeleteVariable_FullMethodName:         keyOnly("name", (*secretsv1.DeleteVariableRequest).GetName, "variables"),
		secretsv1.SecretsService_ListVariableVersions_FullMethodName:   keyOnly("name", (*secretsv1.ListVariableVersionsRequest).GetName, "variables"),
		secretsv1.SecretsService_RestoreVariableVersion_FullMethodName: keyOnly("name", (*secretsv1.RestoreVariableVersionRequest).GetName, "variables"),
		secretsv1.SecretsService_Resolve_FullMethodName:                server.ValidatorOf(validateResolve),
		secretsv1.SecretsService_ExplainResolution_FullMethodName:      server.ValidatorOf(validateExplain),
		secretsv1.SecretsService_WatchValues_FullMethodName:            server.NameOnly("parent", orgName, (*secretsv1.WatchValuesRequest).GetParent),
		secretsv1.SecretsService_PurgeScope_FullMethodName:             scopeOnly("scope", (*secretsv1.PurgeScopeRequest).GetScope),
	}
}

func scopeOnly[T proto.Message](field string, get func(T) string) server.Validator {
	return server.ValidatorOf(func(r T) error {
		if _, err := checkScope(get(r)); err != nil {
			return errs.Field(field, "%v", err)
		}
		return nil
	})
}

func keyOnly[T proto.Message](field string, get func(T) string, collection string) server.Validator {
	return server.ValidatorOf(func(r T) error {
		k, err := parseKey(get(r))
		if err != nil {
			return errs.Field(field, "%v", err)
		}
		if k.Kind.Collection() != collection {
			return errs.Field(field, "%q is not in %s", get(r), collection)
		}
		return nil
	})
}

func validateResolve(r *secretsv1.ResolveRequest) error {
	var v errs.Violations
	if _, err := registryName.Parse(r.GetRegistry()); err != nil {
		v.Add("registry", "%v", err)
	}
	if _, err := serverName.Parse(r.GetServer()); err != nil {
		v.Add("server", "%v", err)
	}
	if u := r.GetUser(); u != "" {
		if err := checkUser(u); err != nil {
			v.Add("user", "%v", err)
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	return checkResolveScope(r.GetRegistry(), r.GetServer())
}

func validateExplain(r *secretsv1.ExplainResolutionRequest) error {
	var v errs.Violations
	if _, err := registryName.Parse(r.GetRegistry()); err != nil {
		v.Add("registry", "%v", err)
	}
	if _, err := serverName.Parse("orgs/x/servers/" + r.GetServerId()); err != nil {
		v.Add("server_id", "%v", err)
	}
	if u := r.GetUser(); u != "" {
		if err := checkUser(u); err != nil {
			v.Add("user", "%v", err)
		}
	}
	return v.Err()
}
