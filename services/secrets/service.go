package secrets

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/broadcast"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
	"github.com/pyleeai/pylee/services/secrets/internal/store"
)

// Change types as stored.
const (
	changeSet     = "set"
	changeDeleted = "deleted"
)

// Registries tells the secrets service a registry's parents, nearest
// first (the registry service, asked as the secrets service's identity).
type Registries interface {
	Parents(ctx context.Context, registry string) ([]string, error)
}

// Service implements pylee.secrets.v1.SecretsService.
type Service struct {
	secretsv1.UnimplementedSecretsServiceServer
	store      *store.Store
	backend    backend.Backend
	tokens     *aip.PageTokens
	fpKey      []byte
	registries Registries
	authz      auth.Authorizer
	declared   Declared
	resolved   *resolutions
	changes    broadcast.Broadcast
	watchPoll  time.Duration
}

// New returns the service over st and b. pageTokens seal list page tokens;
// the key of value fingerprints is derived from the same installation key,
// so every replica computes the same fingerprint for a value.
func New(st *store.Store, b backend.Backend, pageTokens *aip.PageTokens) *Service {
	s := &Service{store: st, backend: b, tokens: pageTokens, fpKey: pageTokens.DeriveKey("secrets value fingerprint"),
		resolved: newResolutions(), watchPoll: 2 * time.Second, authz: auth.DenyAll{}}
	st.AfterCommit(s.changes.Notify)
	st.AfterCommit(s.resolved.changed)
	return s
}

// UseAuthorizer sets the source of access decisions ExplainResolution
// checks each scope with; without it, every scope is refused.
func (s *Service) UseAuthorizer(z auth.Authorizer) *Service {
	s.authz = z
	return s
}

// UseRegistries sets where registry parents are found; without it, a
// registry scope stands alone (no parent is searched).
func (s *Service) UseRegistries(r Registries) *Service {
	s.registries = r
	return s
}

// Register registers the service on srv.
func (s *Service) Register(srv *server.Server) {
	srv.RegisterService(&secretsv1.SecretsService_ServiceDesc, s, Validators())
}

// fingerprint is the keyed fingerprint of a version of key: HMAC-SHA-256
// of the key's name and the value under the installation's derived key,
// 16 hex digits. It tells whether two versions of one key hold the same
// value, and nothing more.
func (s *Service) fingerprint(key backend.Key, value []byte) string {
	m := hmac.New(sha256.New, s.fpKey)
	// Bound to the key: equal fingerprints tell equal versions of one
	// secret, and setting a guess elsewhere tells nothing of another's.
	m.Write([]byte(key.String()))
	m.Write([]byte{0})
	m.Write(value)
	return hex.EncodeToString(m.Sum(nil)[:8])
}

func principalOf(ctx context.Context) string {
	if p, ok := auth.FromContext(ctx); ok {
		return p.Name
	}
	return ""
}

// event is the audit event of a change of key: scope, name, version and
// fingerprint; never the value.
func event(ctx context.Context, action string, key backend.Key, m backend.Meta) *auditv1.Event {
	ev := outbox.NewEvent(ctx, key.Org, action, key.String())
	ev.Metadata = map[string]string{"scope": key.Scope, "name": key.Name, "kind": key.Kind.Collection()}
	if m.Version > 0 {
		ev.Metadata["version"] = strconv.FormatInt(m.Version, 10)
		ev.Metadata["fingerprint"] = m.Fingerprint
	}
	return ev
}

// set writes value as key's next version in one unit of work with its
// change record and audit event.
func (s *Service) set(ctx context.Context, action string, key backend.Key, value []byte, cas int64, extra map[string]string) (backend.Meta, error) {
	if len(value) > backend.MaxValueBytes {
		return backend.Meta{}, errs.Field("value", "is %d bytes; at most %d", len(value), backend.MaxValueBytes)
	}
	var m backend.Meta
	err := s.store.Tx(ctx, func(tx *store.Tx) error {
		if err := tx.LockOrganization(ctx, key.Org); err != nil {
			return err
		}
		var err error
		if m, err = s.backend.Put(ctx, tx, key, value, cas, backend.Write{Fingerprint: s.fingerprint(key, value), Creator: principalOf(ctx)}); err != nil {
			return err
		}
		if _, err := tx.AddChange(ctx, store.Change{Organization: key.Org, Key: key.String(), Version: m.Version, Type: changeSet, Time: tx.Now()}); err != nil {
			return err
		}
		ev := event(ctx, action, key, m)
		for k, v := range extra {
			ev.Metadata[k] = v
		}
		tx.Audit(ev)
		return nil
	})
	return m, err
}

func (s *Service) get(ctx context.Context, key backend.Key, version int64) ([]byte, backend.Meta, error) {
	return s.backend.Get(ctx, s.store.Read(), key, version)
}

func (s *Service) remove(ctx context.Context, action string, key backend.Key) error {
	return s.store.Tx(ctx, func(tx *store.Tx) error {
		if err := tx.LockOrganization(ctx, key.Org); err != nil {
			return err
		}
		if err := s.backend.Delete(ctx, tx, key); err != nil {
			return err
		}
		if _, err := tx.AddChange(ctx, store.Change{Organization: key.Org, Key: key.String(), Type: changeDeleted, Time: tx.Now()}); err != nil {
			return err
		}
		tx.Audit(event(ctx, action, key, backend.Meta{}))
		return nil
	})
}

// restore makes version's value current again, as a new version.
func (s *Service) restore(ctx context.Context, action string, key backend.Key, version int64) ([]byte, backend.Meta, error) {
	value, _, err := s.get(ctx, key, version)
	if err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return nil, backend.Meta{}, fmt.Errorf("version %d of %s: %w", version, key, errs.ErrNotFound)
		}
		return nil, backend.Meta{}, err
	}
	m, err := s.set(ctx, action, key, value, backend.Any, map[string]string{"restored_version": strconv.FormatInt(version, 10)})
	return value, m, err
}

// list returns a page of the keys of kind at scope.
func (s *Service) list(ctx context.Context, scope string, kind backend.Kind, req aip.PageRequest) ([]backend.Meta, string, error) {
	page, err := s.tokens.Start(ctx, paging, req, aip.Query("pylee.secrets.v1.List"+kind.Collection(), scope))
	if err != nil {
		return nil, "", err
	}
	rows, err := s.backend.List(ctx, s.store.Read(), scope, kind)
	if err != nil {
		return nil, "", err
	}
	rows = aip.Resume(page, rows, func(m backend.Meta) string { return m.Key.Name })
	if len(rows) > page.Limit() {
		rows = rows[:page.Limit()]
	}
	rows, next := aip.Finish(ctx, page, rows, func(m backend.Meta) string { return m.Key.Name })
	return rows, next, nil
}

var paging = aip.Paging{Default: 100, Max: 1000}

// --- secrets -----------------------------------------------------------------

func secretProto(m backend.Meta) *secretsv1.Secret {
	return &secretsv1.Secret{Name: m.Key.String(), Version: m.Version, Fingerprint: m.Fingerprint, Creator: m.Creator,
		UpdateTime: timestamppb.New(m.UpdateTime), CreateTime: timestamppb.New(m.CreateTime), Scope: m.Key.Scope}
}

func variableProto(m backend.Meta, value []byte) *secretsv1.Variable {
	return &secretsv1.Variable{Name: m.Key.String(), Value: string(value), Version: m.Version, Fingerprint: m.Fingerprint,
		Creator: m.Creator, UpdateTime: timestamppb.New(m.UpdateTime), CreateTime: timestamppb.New(m.CreateTime), Scope: m.Key.Scope}
}

func cas(p *int64) int64 {
	if p == nil {
		return backend.Any
	}
	return *p
}

// SetSecret implements SecretsService.
func (s *Service) SetSecret(ctx context.Context, req *secretsv1.SetSecretRequest) (*secretsv1.Secret, error) {
	key := mustKey(req.GetParent(), backend.Secret, req.GetSecretId())
	m, err := s.set(ctx, server.ActionFor(secretsv1.SecretsService_SetSecret_FullMethodName), key, []byte(req.GetSecret().GetValue()), cas(req.ExpectedVersion), nil)
	if err != nil {
		return nil, err
	}
	return secretProto(m), nil
}

// GetSecret implements SecretsService: metadata, never the value.
func (s *Service) GetSecret(ctx context.Context, req *secretsv1.GetSecretRequest) (*secretsv1.Secret, error) {
	_, m, err := s.get(ctx, mustParseKey(req.GetName()), 0)
	if err != nil {
		return nil, err
	}
	return secretProto(m), nil
}

// ListSecrets implements SecretsService.
func (s *Service) ListSecrets(ctx context.Context, req *secretsv1.ListSecretsRequest) (*secretsv1.ListSecretsResponse, error) {
	rows, next, err := s.list(ctx, req.GetParent(), backend.Secret, req)
	if err != nil {
		return nil, err
	}
	resp := &secretsv1.ListSecretsResponse{NextPageToken: next}
	for _, m := range rows {
		resp.Secrets = append(resp.Secrets, secretProto(m))
	}
	return resp, nil
}

// DeleteSecret implements SecretsService.
func (s *Service) DeleteSecret(ctx context.Context, req *secretsv1.DeleteSecretRequest) (*emptypb.Empty, error) {
	if err := s.remove(ctx, server.ActionFor(secretsv1.SecretsService_DeleteSecret_FullMethodName), mustParseKey(req.GetName())); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// ListSecretVersions implements SecretsService.
func (s *Service) ListSecretVersions(ctx context.Context, req *secretsv1.ListSecretVersionsRequest) (*secretsv1.ListSecretVersionsResponse, error) {
	vs, err := s.backend.Versions(ctx, s.store.Read(), mustParseKey(req.GetName()))
	if err != nil {
		return nil, err
	}
	resp := &secretsv1.ListSecretVersionsResponse{}
	for _, m := range vs {
		resp.Versions = append(resp.Versions, secretProto(m))
	}
	return resp, nil
}

// RestoreSecretVersion implements SecretsService.
func (s *Service) RestoreSecretVersion(ctx context.Context, req *secretsv1.RestoreSecretVersionRequest) (*secretsv1.Secret, error) {
	_, m, err := s.restore(ctx, server.ActionFor(secretsv1.SecretsService_RestoreSecretVersion_FullMethodName), mustParseKey(req.GetName()), req.GetVersion())
	if err != nil {
		return nil, err
	}
	return secretProto(m), nil
}

// --- variables ---------------------------------------------------------------

// SetVariable implements SecretsService.
func (s *Service) SetVariable(ctx context.Context, req *secretsv1.SetVariableRequest) (*secretsv1.Variable, error) {
	key := mustKey(req.GetParent(), backend.Variable, req.GetVariableId())
	value := []byte(req.GetVariable().GetValue())
	m, err := s.set(ctx, server.ActionFor(secretsv1.SecretsService_SetVariable_FullMethodName), key, value, cas(req.ExpectedVersion), nil)
	if err != nil {
		return nil, err
	}
	return variableProto(m, value), nil
}

// GetVariable implements SecretsService.
func (s *Service) GetVariable(ctx context.Context, req *secretsv1.GetVariableRequest) (*secretsv1.Variable, error) {
	v, m, err := s.get(ctx, mustParseKey(req.GetName()), 0)
	if err != nil {
		return nil, err
	}
	return variableProto(m, v), nil
}

// ListVariables implements SecretsService.
func (s *Service) ListVariables(ctx context.Context, req *secretsv1.ListVariablesRequest) (*secretsv1.ListVariablesResponse, error) {
	rows, next, err := s.list(ctx, req.GetParent(), backend.Variable, req)
	if err != nil {
		return nil, err
	}
	resp := &secretsv1.ListVariablesResponse{NextPageToken: next}
	for _, m := range rows {
		v, cur, err := s.get(ctx, m.Key, m.Version)
		if errors.Is(err, errs.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		resp.Variables = append(resp.Variables, variableProto(cur, v))
	}
	return resp, nil
}

// DeleteVariable implements SecretsService.
func (s *Service) DeleteVariable(ctx context.Context, req *secretsv1.DeleteVariableRequest) (*emptypb.Empty, error) {
	if err := s.remove(ctx, server.ActionFor(secretsv1.SecretsService_DeleteVariable_FullMethodName), mustParseKey(req.GetName())); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// ListVariableVersions implements SecretsService.
func (s *Service) ListVariableVersions(ctx context.Context, req *secretsv1.ListVariableVersionsRequest) (*secretsv1.ListVariableVersionsResponse, error) {
	key := mustParseKey(req.GetName())
	vs, err := s.backend.Versions(ctx, s.store.Read(), key)
	if err != nil {
		return nil, err
	}
	resp := &secretsv1.ListVariableVersionsResponse{}
	for _, m := range vs {
		v, _, err := s.get(ctx, key, m.Version)
		if err != nil {
			return nil, err
		}
		resp.Versions = append(resp.Versions, variableProto(m, v))
	}
	return resp, nil
}

// RestoreVariableVersion implements SecretsService.
func (s *Service) RestoreVariableVersion(ctx context.Context, req *secretsv1.RestoreVariableVersionRequest) (*secretsv1.Variable, error) {
	v, m, err := s.restore(ctx, server.ActionFor(secretsv1.SecretsService_RestoreVariableVersion_FullMethodName), mustParseKey(req.GetName()), req.GetVersion())
	if err != nil {
		return nil, err
	}
	return variableProto(m, v), nil
}

// --- purge -------------------------------------------------------------------

// PurgeScope implements SecretsService: an organization, registry or
// server is being deleted, and its values go with it (for an
// organization, every scope in it). The keys are found in the change log,
// so it works alike on every backend.
func (s *Service) PurgeScope(ctx context.Context, req *secretsv1.PurgeScopeRequest) (*secretsv1.PurgeScopeResponse, error) {
	scope := req.GetScope()
	org := orgOf(scope)
	var n int64
	err := s.store.Tx(ctx, func(tx *store.Tx) error {
		n = 0
		if err := tx.LockOrganization(ctx, org); err != nil {
			return err
		}
		live, err := liveKeys(ctx, tx, org)
		if err != nil {
			return err
		}
		for _, name := range live {
			if name != scope && !strings.HasPrefix(name, scope+"/") {
				continue
			}
			key, err := parseKey(name)
			if err != nil {
				continue
			}
			if err := s.backend.Delete(ctx, tx, key); err != nil && !errors.Is(err, errs.ErrNotFound) {
				return err
			}
			if _, err := tx.AddChange(ctx, store.Change{Organization: org, Key: name, Type: changeDeleted, Time: tx.Now()}); err != nil {
				return err
			}
			n++
		}
		// What the backend holds beyond the log (a value whose unit of work
		// failed after Vault took it) goes too.
		if tp, ok := s.backend.(backend.TreePurger); ok {
			extra, err := tp.PurgeTree(ctx, tx, scope)
			if err != nil {
				return err
			}
			n += int64(extra)
		}
		// An organization's change log goes with it: one made again under
		// its id starts with none of its predecessor's names.
		if scope == "orgs/"+org {
			if err := tx.DeleteChanges(ctx, org); err != nil {
				return err
			}
		}
		if n > 0 {
			ev := outbox.NewEvent(ctx, org, server.ActionFor(secretsv1.SecretsService_PurgeScope_FullMethodName), scope)
			ev.Metadata = map[string]string{"deleted": strconv.FormatInt(n, 10)}
			tx.Audit(ev)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &secretsv1.PurgeScopeResponse{Deleted: n}, nil
}

// liveKeys returns the names of the organization's keys whose last change
// set them, from the change log.
func liveKeys(ctx context.Context, tx *store.Tx, org string) ([]string, error) {
	state := map[string]bool{}
	var order []string
	for after := int64(0); ; {
		cs, err := tx.Changes(ctx, org, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if _, ok := state[c.Key]; !ok {
				order = append(order, c.Key)
			}
			state[c.Key] = c.Type == changeSet
			after = c.Revision
		}
		if len(cs) < 1000 {
			break
		}
	}
	var out []string
	for _, k := range order {
		if state[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

// --- watch -------------------------------------------------------------------

// watchLifetime ends a watch so its credential is verified again on
// reconnect; clients resume with since_revision.
const watchLifetime = 10 * time.Minute

// WatchValues implements SecretsService.
func (s *Service) WatchValues(req *secretsv1.WatchValuesRequest, stream secretsv1.SecretsService_WatchValuesServer) error {
	ctx := stream.Context()
	org := orgOf(req.GetParent())
	rev := req.GetSinceRevision()
	started := time.Now()
	for {
		if time.Since(started) >= watchLifetime {
			return nil
		}
		wake := s.changes.Wait()
		cs, err := s.store.Read().Changes(ctx, org, rev, 500)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if err := stream.Send(&secretsv1.ValueChange{Revision: c.Revision, Name: c.Key, Version: c.Version, Type: c.Type, Time: timestamppb.New(c.Time)}); err != nil {
				return err
			}
			rev = c.Revision
		}
		if len(cs) == 500 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(s.watchPoll): // another replica's change
		}
	}
}
