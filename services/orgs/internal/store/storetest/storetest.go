// Package storetest is the conformance suite every orgs Store must pass; it
// runs against SQLite and PostgreSQL.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"

	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
)

// Run runs the suite; newStore returns a store over an empty database.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateDuplicate", testCreateDuplicate},
		{"CreateRequestID", testCreateRequestID},
		{"GetMissing", testGetMissing},
		{"ListPagesAndFilters", testList},
		{"Update", testUpdate},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"Delete", testDelete},
		{"APITokens", testAPITokens},
		{"OutboxInTheSameTransaction", testOutbox},
		{"Bindings", testBindings},
		{"LastOwnerUnderConcurrency", testLastOwnerConcurrent},
		{"TeamsAndRoles", testTeamsAndRoles},
		{"ServiceAccountCascade", testServiceAccountCascade},
		{"CommitWakesTheRelay", testAfterCommit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tt.fn(t, s)
		})
	}
}

func mustCreate(t *testing.T, s store.Store, id, display string) store.Organization {
	t.Helper()
	o, err := s.CreateOrganization(context.Background(), store.Organization{ID: id, DisplayName: display}, "", nil)
	if err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	return o
}

func testCreateGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	in := store.Organization{ID: "acme", DisplayName: "Acme", Description: "d", Overview: "# Acme\n\nMarkdown."}
	got, err := s.CreateOrganization(ctx, in, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != 1 || got.CreateTime.Before(before) || !got.UpdateTime.Equal(got.CreateTime) {
		t.Fatalf("created = %+v", got)
	}
	again, err := s.GetOrganization(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, got) || again.Overview != in.Overview || again.Description != "d" {
		t.Fatalf("get = %+v, want %+v", again, got)
	}
}

func testCreateDuplicate(t *testing.T, s store.Store) {
	mustCreate(t, s, "acme", "Acme")
	_, err := s.CreateOrganization(context.Background(), store.Organization{ID: "acme", DisplayName: "Other"}, "", nil)
	if !errors.Is(err, errs.ErrAlreadyExists) {
		t.Fatalf("err = %v, want ErrAlreadyExists", err)
	}
	got, _ := s.GetOrganization(context.Background(), "acme")
	if got.DisplayName != "Acme" {
		t.Fatal("duplicate create changed the organization")
	}
}

func testCreateRequestID(t *testing.T, s store.Store) {
	ctx := context.Background()
	first, err := s.CreateOrganization(ctx, store.Organization{ID: "acme", DisplayName: "A"}, "req-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	retry, err := s.CreateOrganization(ctx, store.Organization{ID: "acme", DisplayName: "A"}, "req-1", nil)
	if err != nil || !reflect.DeepEqual(retry, first) {
		t.Fatalf("retry = %+v, %v; want the first", retry, err)
	}
	_, err = s.CreateOrganization(ctx, store.Organization{ID: "other", DisplayName: "O"}, "req-1", nil)
	if !errors.Is(err, errs.ErrRequestIDReused) {
		t.Fatalf("reuse = %v", err)
	}
	if _, err := s.GetOrganization(ctx, "other"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatal("reused request id created an organization")
	}
	// A new request id for a taken id is a plain duplicate.
	if _, err := s.CreateOrganization(ctx, store.Organization{ID: "acme"}, "req-2", nil); !errors.Is(err, errs.ErrAlreadyExists) {
		t.Fatalf("err = %v", err)
	}
}

func testGetMissing(t *testing.T, s store.Store) {
	if _, err := s.GetOrganization(context.Background(), "nope"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func testList(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i, name := range []string{"Delta Corp", "alpha inc", "Charlie", "Bravo ALPHA", "echo"} {
		mustCreate(t, s, fmt.Sprintf("org-%c", 'e'-i), name)
	}
	var ids []string
	after := ""
	for pages := 0; ; pages++ {
		page, err := s.ListOrganizations(ctx, store.OrganizationQuery{After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			if pages != 3 {
				t.Fatalf("pages = %d", pages)
			}
			break
		}
		for _, o := range page {
			ids = append(ids, o.ID)
		}
		after = page[len(page)-1].ID
	}
	if fmt.Sprint(ids) != "[org-a org-b org-c org-d org-e]" {
		t.Fatalf("ids = %v", ids)
	}
	contains, err := s.ListOrganizations(ctx, store.OrganizationQuery{Limit: 10, DisplayNameContains: "alpha"})
	if err != nil || len(contains) != 2 || contains[0].ID != "org-b" || contains[1].ID != "org-d" {
		t.Fatalf("contains = %+v, %v", contains, err)
	}
	exact := "Charlie"
	eq, err := s.ListOrganizations(ctx, store.OrganizationQuery{Limit: 10, DisplayNameEquals: &exact})
	if err != nil || len(eq) != 1 || eq[0].ID != "org-c" {
		t.Fatalf("equals = %+v, %v", eq, err)
	}
	if _, err := s.ListOrganizations(ctx, store.OrganizationQuery{}); err == nil {
		t.Fatal("zero limit accepted")
	}
}

func testUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	o, err := s.CreateOrganization(ctx, store.Organization{ID: "acme", DisplayName: "Acme", Description: "keep"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	up, err := s.UpdateOrganization(ctx, store.Organization{ID: "acme", DisplayName: "Acme Inc", Description: "ignored"},
		[]string{store.FieldDisplayName}, o.Revision, nil)
	if err != nil {
		t.Fatal(err)
	}
	if up.DisplayName != "Acme Inc" || up.Description != "keep" || up.Revision != 2 || !up.UpdateTime.After(o.UpdateTime) || !up.CreateTime.Equal(o.CreateTime) {
		t.Fatalf("updated = %+v", up)
	}
	// A stale revision changes nothing.
	_, err = s.UpdateOrganization(ctx, store.Organization{ID: "acme", DisplayName: "Stale"}, []string{store.FieldDisplayName}, o.Revision, nil)
	if !errors.Is(err, errs.ErrEtagMismatch) {
		t.Fatalf("stale = %v", err)
	}
	got, _ := s.GetOrganization(ctx, "acme")
	if got.DisplayName != "Acme Inc" || got.Revision != 2 {
		t.Fatalf("after stale update: %+v", got)
	}
	// Revision 0 means unconditional.
	if up, err := s.UpdateOrganization(ctx, store.Organization{ID: "acme", Overview: "x"}, []string{store.FieldOverview}, 0, nil); err != nil || up.Revision != 3 {
		t.Fatalf("unconditional = %+v, %v", up, err)
	}
	if _, err := s.UpdateOrganization(ctx, store.Organization{ID: "nope"}, []string{store.FieldOverview}, 0, nil); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("missing = %v", err)
	}
	if _, err := s.UpdateOrganization(ctx, store.Organization{ID: "acme"}, []string{"id"}, 0, nil); !errors.Is(err, errs.ErrInvalidArgument) {
		t.Fatalf("bad field = %v", err)
	}
}

func testUpdateConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	o := mustCreate(t, s, "acme", "Acme")
	const n = 8
	var wg sync.WaitGroup
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.UpdateOrganization(ctx, store.Organization{ID: "acme", DisplayName: fmt.Sprint(i)}, []string{store.FieldDisplayName}, o.Revision, nil)
			results <- err
		}(i)
	}
	wg.Wait()
	close(results)
	var ok, mismatch int
	for err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, errs.ErrEtagMismatch):
			mismatch++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || mismatch != n-1 {
		t.Fatalf("ok=%d mismatch=%d, want exactly one winner", ok, mismatch)
	}
	if got, _ := s.GetOrganization(ctx, "acme"); got.Revision != 2 {
		t.Fatalf("revision = %d, want 2", got.Revision)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	o := mustCreate(t, s, "acme", "Acme")
	if err := s.DeleteOrganization(ctx, "acme", o.Revision+1, nil); !errors.Is(err, errs.ErrEtagMismatch) {
		t.Fatalf("stale delete = %v", err)
	}
	if err := s.DeleteOrganization(ctx, "acme", o.Revision, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOrganization(ctx, "acme"); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := s.DeleteOrganization(ctx, "acme", 0, nil); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("second delete = %v", err)
	}
	// The id is free again.
	mustCreate(t, s, "acme", "Again")
}

func testAPITokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	if n, err := s.CountAPITokens(ctx); err != nil || n != 0 {
		t.Fatalf("count = %d, %v", n, err)
	}
	created := time.Now().UTC().Truncate(time.Millisecond)
	tok := store.APIToken{ID: "t1", Hash: []byte("0123456789abcdef0123456789abcdef"), Principal: "users/admin", DisplayName: "bootstrap", CreateTime: created}
	if err := s.CreateAPIToken(ctx, tok, nil); err != nil {
		t.Fatal(err)
	}
	dup := tok
	dup.ID = "t2"
	if err := s.CreateAPIToken(ctx, dup, nil); !errors.Is(err, errs.ErrAlreadyExists) {
		t.Fatalf("duplicate hash = %v", err)
	}
	got, err := s.APITokenByHash(ctx, tok.Hash)
	if err != nil || got.ID != "t1" || got.Principal != "users/admin" || !got.CreateTime.Equal(created) || got.LastUseTime != nil {
		t.Fatalf("by hash = %+v, %v", got, err)
	}
	if _, err := s.APITokenByHash(ctx, []byte("other")); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("unknown hash = %v", err)
	}
	used := created.Add(time.Minute)
	if err := s.TouchAPIToken(ctx, "t1", used); err != nil {
		t.Fatal(err)
	}
	got, _ = s.APITokenByHash(ctx, tok.Hash)
	if got.LastUseTime == nil || !got.LastUseTime.Equal(used) {
		t.Fatalf("last use = %v", got.LastUseTime)
	}
	if n, _ := s.CountAPITokens(ctx); n != 1 {
		t.Fatalf("count = %d", n)
	}
}

// outboxEvents reads the events waiting in the store's outbox, in order.
func outboxEvents(t *testing.T, s store.Store) []*auditv1.Event {
	t.Helper()
	db, _ := s.OutboxDB()
	rows, err := db.Query("SELECT payload FROM audit_outbox ORDER BY create_time, id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []*auditv1.Event
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		ev := &auditv1.Event{}
		if err := proto.Unmarshal(b, ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func newEvent(id, action string) *auditv1.Event {
	return &auditv1.Event{Id: id, Organization: "acme", Action: action, Resource: "orgs/acme", Outcome: "ok"}
}

func testOutbox(t *testing.T, s store.Store) {
	ctx := context.Background()
	o, err := s.CreateOrganization(ctx, store.Organization{ID: "acme", DisplayName: "Acme"}, "req", newEvent("e1", "orgs.organization.create"))
	if err != nil {
		t.Fatal(err)
	}
	// Failed or idempotent operations record nothing.
	if _, err := s.CreateOrganization(ctx, store.Organization{ID: "acme"}, "req", newEvent("e-retry", "orgs.organization.create")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateOrganization(ctx, store.Organization{ID: "acme"}, "", newEvent("e-dup", "orgs.organization.create")); !errors.Is(err, errs.ErrAlreadyExists) {
		t.Fatal(err)
	}
	if _, err := s.UpdateOrganization(ctx, store.Organization{ID: "acme", DisplayName: "X"}, []string{store.FieldDisplayName}, o.Revision+5, newEvent("e-stale", "orgs.organization.update")); !errors.Is(err, errs.ErrEtagMismatch) {
		t.Fatal(err)
	}
	if _, err := s.UpdateOrganization(ctx, store.Organization{ID: "acme", DisplayName: "Acme Inc", Description: "same"}, []string{store.FieldDisplayName, store.FieldDescription}, 0, newEvent("e2", "orgs.organization.update")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOrganization(ctx, "acme", 0, newEvent("e3", "orgs.organization.delete")); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordEvent(ctx, &auditv1.Event{Id: "e4", Organization: "-", Action: "orgs.organization.list", Outcome: "denied"}); err != nil {
		t.Fatal(err)
	}
	evs := outboxEvents(t, s)
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.Id)
	}
	if fmt.Sprint(ids) != "[e1 e2 e3 e4]" {
		t.Fatalf("outbox = %v, want [e1 e2 e3 e4]", ids)
	}
	changes := func(ev *auditv1.Event) string {
		var parts []string
		for _, c := range ev.Changes {
			parts = append(parts, fmt.Sprintf("%s:%q->%q", c.Field, c.OldValue, c.NewValue))
		}
		return fmt.Sprint(parts)
	}
	if got := changes(evs[0]); got != `[display_name:""->"Acme"]` {
		t.Errorf("create changes = %s", got)
	}
	if got := changes(evs[1]); got != `[display_name:"Acme"->"Acme Inc" description:""->"same"]` {
		t.Errorf("update changes = %s", got)
	}
	if got := changes(evs[2]); got != `[display_name:"Acme Inc"->"" description:"same"->""]` {
		t.Errorf("delete changes = %s", got)
	}
}

func bind(t *testing.T, s store.Store, res, role, principal string) store.Binding {
	t.Helper()
	b, err := s.CreateBinding(context.Background(), store.Binding{Name: fmt.Sprintf("%s/bindings/%s-%s", res, role[6:], principal[len(principal)-2:]),
		Resource: res, Organization: "acme", Role: role, Principal: principal}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testBindings(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, "acme", "Acme")
	owner := bind(t, s, "orgs/acme", "roles/owner", "users/u1")
	bind(t, s, "orgs/acme/servers/gh", "roles/user", "users/u2")
	bind(t, s, "orgs/acme/servers/gh/tools/t1", "roles/developer", "orgs/acme/teams/dev")
	if _, err := s.CreateBinding(ctx, store.Binding{Name: "orgs/acme/bindings/again", Resource: "orgs/acme", Organization: "acme",
		Role: "roles/owner", Principal: "users/u1"}, nil); !errors.Is(err, errs.ErrAlreadyExists) {
		t.Fatalf("duplicate binding = %v", err)
	}
	got, err := s.BindingsFor(ctx, []string{"users/u2", "orgs/acme/teams/dev"}, []string{"orgs/acme/servers/gh/tools/t1", "orgs/acme/servers/gh", "orgs/acme", ""})
	if err != nil || len(got) != 2 {
		t.Fatalf("BindingsFor = %v, %v", got, err)
	}
	if in, _ := s.HasBindingIn(ctx, []string{"users/u2"}, "acme"); !in {
		t.Fatal("u2 is a member of acme")
	}
	if in, _ := s.HasBindingIn(ctx, []string{"users/u3"}, "acme"); in {
		t.Fatal("u3 is not a member of acme")
	}
	if l, _ := s.ListBindings(ctx, "orgs/acme"); len(l) != 1 || l[0].Name != owner.Name {
		t.Fatalf("ListBindings = %v", l)
	}
	// The last owner stays.
	if err := s.DeleteBinding(ctx, owner.Name, nil); !errors.Is(err, errs.ErrFailedPrecondition) {
		t.Fatalf("delete last owner = %v", err)
	}
	second := bind(t, s, "orgs/acme", "roles/owner", "users/u9")
	if err := s.DeleteBinding(ctx, owner.Name, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBinding(ctx, second.Name, nil); !errors.Is(err, errs.ErrFailedPrecondition) {
		t.Fatalf("delete the new last owner = %v", err)
	}
	if err := s.DeleteBinding(ctx, "orgs/acme/bindings/nope", nil); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("delete missing = %v", err)
	}
	// Purging a server's bindings takes its tools' too, and nothing of a
	// server whose id merely starts the same.
	bind(t, s, "orgs/acme/servers/gh2", "roles/user", "users/u2")
	if n, err := s.PurgeBindings(ctx, "orgs/acme/servers/gh", nil); err != nil || n != 2 {
		t.Fatalf("PurgeBindings = %d, %v; want 2", n, err)
	}
	if l, _ := s.ListBindings(ctx, "orgs/acme/servers/gh/tools/t1"); len(l) != 0 {
		t.Fatalf("tool bindings after the purge: %v", l)
	}
	if l, _ := s.ListBindings(ctx, "orgs/acme/servers/gh2"); len(l) != 1 {
		t.Fatalf("gh2 lost its binding: %v", l)
	}
	if n, err := s.PurgeBindings(ctx, "orgs/acme/servers/gh", nil); err != nil || n != 0 {
		t.Fatalf("second PurgeBindings = %d, %v", n, err)
	}
}

// testLastOwnerConcurrent removes every owner at once, several times: all
// but one removal may succeed, so the organization keeps an owner.
func testLastOwnerConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	for round := 0; round < 5; round++ {
		org := fmt.Sprintf("org-%d", round)
		if _, err := s.CreateOrganization(ctx, store.Organization{ID: org}, "", nil); err != nil {
			t.Fatal(err)
		}
		orgName := names.Org{Org: org}.String()
		var owners []string
		for i := 0; i < 4; i++ {
			b, err := s.CreateBinding(ctx, store.Binding{Name: names.Binding{Resource: orgName, Binding: fmt.Sprintf("o%d", i)}.String(), Resource: orgName,
				Organization: org, Role: "roles/owner", Principal: fmt.Sprintf("users/o%d", i)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			owners = append(owners, b.Name)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, name := range owners {
			wg.Add(1)
			go func(name string) {
				defer wg.Done()
				<-start
				_ = s.DeleteBinding(ctx, name, nil)
			}(name)
		}
		close(start)
		wg.Wait()
		if left, _ := s.ListBindings(ctx, orgName); len(left) != 1 {
			t.Fatalf("round %d: owners left = %d, want exactly 1", round, len(left))
		}
	}
}

func testTeamsAndRoles(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, "acme", "Acme")
	if _, err := s.CreateTeam(ctx, store.Team{Name: "orgs/acme/teams/dev", Organization: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTeam(ctx, store.Team{Name: "orgs/acme/teams/dev", Organization: "acme"}, nil); !errors.Is(err, errs.ErrAlreadyExists) {
		t.Fatalf("duplicate team = %v", err)
	}
	if _, err := s.CreateTeam(ctx, store.Team{Name: "orgs/nope/teams/dev", Organization: "nope"}, nil); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("team in missing org = %v", err)
	}
	for i := 0; i < 2; i++ { // adding twice is idempotent
		if tm, err := s.AddTeamMember(ctx, "orgs/acme/teams/dev", "users/u1", nil); err != nil || len(tm.Members) != 1 {
			t.Fatalf("add = %v, %v", tm, err)
		}
	}
	if teams, _ := s.TeamsOf(ctx, "users/u1"); len(teams) != 1 || teams[0] != "orgs/acme/teams/dev" {
		t.Fatalf("TeamsOf = %v", teams)
	}
	bind(t, s, "orgs/acme", "roles/user", "orgs/acme/teams/dev")
	if _, err := s.CreateRole(ctx, store.CustomRole{Name: "orgs/acme/roles/reader", Organization: "acme", Permissions: []string{"orgs.get"}}, nil); err != nil {
		t.Fatal(err)
	}
	bind(t, s, "orgs/acme", "orgs/acme/roles/reader", "users/u7")
	if err := s.DeleteRole(ctx, "orgs/acme/roles/reader", nil); !errors.Is(err, errs.ErrFailedPrecondition) {
		t.Fatalf("delete bound role = %v", err)
	}
	if r, err := s.GetRole(ctx, "orgs/acme/roles/reader"); err != nil || len(r.Permissions) != 1 {
		t.Fatalf("GetRole = %v, %v", r, err)
	}
	if _, err := s.RemoveTeamMember(ctx, "orgs/acme/teams/dev", "users/zz", nil); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("remove non-member = %v", err)
	}
	// Deleting the team takes its memberships and bindings with it.
	if err := s.DeleteTeam(ctx, "orgs/acme/teams/dev", nil); err != nil {
		t.Fatal(err)
	}
	if teams, _ := s.TeamsOf(ctx, "users/u1"); len(teams) != 0 {
		t.Fatalf("memberships left: %v", teams)
	}
	if got, _ := s.BindingsFor(ctx, []string{"orgs/acme/teams/dev"}, []string{"orgs/acme"}); len(got) != 0 {
		t.Fatalf("bindings left: %v", got)
	}
}

func testServiceAccountCascade(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, "acme", "Acme")
	sa := "orgs/acme/serviceAccounts/ci"
	if _, err := s.CreateServiceAccount(ctx, store.ServiceAccount{Name: sa, Organization: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateServiceAccount(ctx, store.ServiceAccount{Name: sa, Organization: "acme"}, nil); !errors.Is(err, errs.ErrAlreadyExists) {
		t.Fatalf("duplicate = %v", err)
	}
	if err := s.CreateAPIToken(ctx, store.APIToken{ID: "t1", Hash: []byte("h1-0123456789abcdef0123456789abcd"), Principal: sa, CreateTime: time.Now().UTC()}, nil); err != nil {
		t.Fatal(err)
	}
	bind(t, s, "orgs/acme", "roles/user", sa)
	if list, _ := s.ListServiceAccounts(ctx, "acme", "", 10); len(list) != 1 {
		t.Fatalf("list = %v", list)
	}
	if err := s.DeleteServiceAccount(ctx, sa, nil); err != nil {
		t.Fatal(err)
	}
	if toks, _ := s.ListAPITokens(ctx, sa); len(toks) != 0 {
		t.Fatalf("tokens left: %v", toks)
	}
	if in, _ := s.HasBindingIn(ctx, []string{sa}, "acme"); in {
		t.Fatal("bindings left")
	}
	if err := s.DeleteServiceAccount(ctx, sa, nil); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("second delete = %v", err)
	}
}

// testAfterCommit: the hooks of AfterCommit run after each committed
// change and not after a refused one, so the relay is woken by commits.
func testAfterCommit(t *testing.T, s store.Store) {
	woken := 0
	s.AfterCommit(func() { woken++ })
	mustCreate(t, s, "acme", "Acme")
	if woken != 1 {
		t.Fatalf("after a commit the hook ran %d times", woken)
	}
	if _, err := s.CreateOrganization(context.Background(), store.Organization{ID: "acme"}, "", nil); !errors.Is(err, errs.ErrAlreadyExists) {
		t.Fatalf("duplicate = %v", err)
	}
	if woken != 1 {
		t.Fatalf("after a refused change the hook ran %d times in all", woken)
	}
}
