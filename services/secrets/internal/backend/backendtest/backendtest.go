// Package backendtest is the conformance suite of backend.Backend: every
// backend (the keyring on SQLite and PostgreSQL, Vault) runs the same
// tests, so the secrets service can rely on the contract, not on one
// implementation.
package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
)

// Run runs the suite. open returns a fresh, empty backend and a function
// that runs fn in one unit of work (for the keyring a database
// transaction; a backend outside the database may just call fn(nil)).
// Every call of the suite goes through that function.
func Run(t *testing.T, open func(t *testing.T) (backend.Backend, func(ctx context.Context, fn func(tx backend.Tx) error) error)) {
	tests := []struct {
		name string
		fn   func(*testing.T, *suite)
	}{
		{"versions", testVersions},
		{"check-and-set", testCheckAndSet},
		{"restore", testRestore},
		{"delete", testDelete},
		{"list", testList},
		{"delete-scope", testDeleteScope},
		{"concurrent-any", testConcurrentAny},
		{"concurrent-cas", testConcurrentCAS},
		{"large-and-binary-values", testValues},
		{"names", testNames},
		{"organizations", testOrganizations},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, run := open(t)
			tc.fn(t, &suite{t: t, b: b, run: run})
		})
	}
}

// suite wraps a backend with helpers that run each call in a unit of work.
// The must* helpers call t.Fatal and so belong to the test's goroutine.
type suite struct {
	t   *testing.T
	b   backend.Backend
	run func(ctx context.Context, fn func(tx backend.Tx) error) error
}

func key(org, under string, kind backend.Kind, name string) backend.Key {
	return backend.Key{Org: org, Scope: "orgs/" + org + under, Kind: kind, Name: name}
}

func write(n int) backend.Write {
	return backend.Write{Fingerprint: fmt.Sprintf("fp-%d", n), Creator: fmt.Sprintf("users/u%d", n)}
}

func (s *suite) put(k backend.Key, value string, cas int64, w backend.Write) (backend.Meta, error) {
	var m backend.Meta
	err := s.run(s.t.Context(), func(tx backend.Tx) (err error) {
		m, err = s.b.Put(s.t.Context(), tx, k, []byte(value), cas, w)
		return err
	})
	return m, err
}

func (s *suite) mustPut(k backend.Key, value string, cas int64, w backend.Write) backend.Meta {
	s.t.Helper()
	m, err := s.put(k, value, cas, w)
	if err != nil {
		s.t.Fatalf("Put(%s, cas %d): %v", k, cas, err)
	}
	return m
}

func (s *suite) get(k backend.Key, version int64) ([]byte, backend.Meta, error) {
	var v []byte
	var m backend.Meta
	err := s.run(s.t.Context(), func(tx backend.Tx) (err error) {
		v, m, err = s.b.Get(s.t.Context(), tx, k, version)
		return err
	})
	return v, m, err
}

func (s *suite) mustGet(k backend.Key, version int64) (string, backend.Meta) {
	s.t.Helper()
	v, m, err := s.get(k, version)
	if err != nil {
		s.t.Fatalf("Get(%s, %d): %v", k, version, err)
	}
	return string(v), m
}

func (s *suite) mustList(scope string, kind backend.Kind) []backend.Meta {
	s.t.Helper()
	var out []backend.Meta
	err := s.run(s.t.Context(), func(tx backend.Tx) (err error) {
		out, err = s.b.List(s.t.Context(), tx, scope, kind)
		return err
	})
	if err != nil {
		s.t.Fatalf("List(%s, %s): %v", scope, kind.Collection(), err)
	}
	return out
}

func (s *suite) versions(k backend.Key) ([]backend.Meta, error) {
	var out []backend.Meta
	err := s.run(s.t.Context(), func(tx backend.Tx) (err error) {
		out, err = s.b.Versions(s.t.Context(), tx, k)
		return err
	})
	return out, err
}

func (s *suite) delete(k backend.Key) error {
	return s.run(s.t.Context(), func(tx backend.Tx) error { return s.b.Delete(s.t.Context(), tx, k) })
}

func (s *suite) mustDeleteScope(scope string) int {
	s.t.Helper()
	var n int
	err := s.run(s.t.Context(), func(tx backend.Tx) (err error) {
		n, err = s.b.DeleteScope(s.t.Context(), tx, scope)
		return err
	})
	if err != nil {
		s.t.Fatalf("DeleteScope(%s): %v", scope, err)
	}
	return n
}

// wantErr fails unless err wraps want.
func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want one wrapping %q", what, err, want)
	}
}

// sameMeta fails unless got describes the same version as want.
func sameMeta(t *testing.T, what string, got, want backend.Meta) {
	t.Helper()
	if got.Key != want.Key || got.Version != want.Version || got.Fingerprint != want.Fingerprint || got.Creator != want.Creator ||
		!got.UpdateTime.Equal(want.UpdateTime) || !got.CreateTime.Equal(want.CreateTime) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func names(metas []backend.Meta) []string {
	out := make([]string, len(metas))
	for i, m := range metas {
		out[i] = m.Key.Name
	}
	return out
}

func versionNumbers(metas []backend.Meta) []int64 {
	out := make([]int64, len(metas))
	for i, m := range metas {
		out[i] = m.Version
	}
	return out
}

func testVersions(t *testing.T, s *suite) {
	k := key("acme", "/registries/prod", backend.Secret, "GITHUB_TOKEN")
	if _, _, err := s.get(k, 0); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("Get of a key never set: got %v, want ErrNotFound", err)
	}
	if _, err := s.versions(k); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("Versions of a key never set: got %v, want ErrNotFound", err)
	}
	values := []string{"one", "two", "three"}
	cas := []int64{0, 1, backend.Any}
	var puts []backend.Meta
	for i, v := range values {
		m := s.mustPut(k, v, cas[i], write(i+1))
		if m.Version != int64(i+1) || m.Key != k || m.Fingerprint != write(i+1).Fingerprint || m.Creator != write(i+1).Creator {
			t.Fatalf("Put #%d returned %+v", i+1, m)
		}
		if m.UpdateTime.IsZero() || m.CreateTime.After(m.UpdateTime) {
			t.Fatalf("Put #%d: times out of order: created %v, updated %v", i+1, m.CreateTime, m.UpdateTime)
		}
		puts = append(puts, m)
	}
	if !puts[0].CreateTime.Equal(puts[0].UpdateTime) {
		t.Errorf("version 1: CreateTime %v, want its UpdateTime %v", puts[0].CreateTime, puts[0].UpdateTime)
	}
	for i, m := range puts {
		if !m.CreateTime.Equal(puts[0].UpdateTime) {
			t.Errorf("version %d: CreateTime %v, want version 1's UpdateTime %v", i+1, m.CreateTime, puts[0].UpdateTime)
		}
		v, got := s.mustGet(k, int64(i+1))
		if v != values[i] {
			t.Errorf("Get version %d = %q, want %q", i+1, v, values[i])
		}
		sameMeta(t, fmt.Sprintf("Get version %d", i+1), got, m)
	}
	v, cur := s.mustGet(k, 0)
	if v != "three" {
		t.Errorf("Get 0 = %q, want the current value %q", v, "three")
	}
	sameMeta(t, "Get 0", cur, puts[2])
	if _, _, err := s.get(k, 4); !errors.Is(err, errs.ErrNotFound) {
		t.Errorf("Get of a version not set yet: got %v, want ErrNotFound", err)
	}
	vs, err := s.versions(k)
	if err != nil {
		t.Fatalf("Versions: %v", err)
	}
	if got := versionNumbers(vs); !slices.Equal(got, []int64{3, 2, 1}) {
		t.Fatalf("Versions = %v, want newest first [3 2 1]", got)
	}
	for i, m := range vs {
		sameMeta(t, fmt.Sprintf("Versions[%d]", i), m, puts[2-i])
	}
}

func testCheckAndSet(t *testing.T, s *suite) {
	k := key("acme", "", backend.Variable, "REGION")
	if _, err := s.put(k, "eu", 3, write(9)); !errors.Is(err, errs.ErrEtagMismatch) {
		t.Fatalf("Put of a key never set expecting version 3: got %v, want ErrEtagMismatch", err)
	}
	if _, _, err := s.get(k, 0); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("after a refused Put the key is set: %v", err)
	}
	first := s.mustPut(k, "eu-west", 0, write(1))
	if first.Version != 1 {
		t.Fatalf("Put with cas 0 on a new key: version %d, want 1", first.Version)
	}
	for _, tc := range []struct {
		name string
		cas  int64
	}{{"cas 0 on a set key", 0}, {"cas ahead of the current version", 5}} {
		_, err := s.put(k, "us-east", tc.cas, write(2))
		wantErr(t, tc.name, err, errs.ErrEtagMismatch)
	}
	v, m := s.mustGet(k, 0)
	if v != "eu-west" {
		t.Fatalf("a refused Put changed the value to %q", v)
	}
	sameMeta(t, "after refused Puts", m, first)
	second := s.mustPut(k, "us-east", 1, write(2))
	if second.Version != 2 {
		t.Fatalf("Put with the current version: version %d, want 2", second.Version)
	}
	_, err := s.put(k, "ap-south", 1, write(3))
	wantErr(t, "stale cas", err, errs.ErrEtagMismatch)
	if vs, err := s.versions(k); err != nil || !slices.Equal(versionNumbers(vs), []int64{2, 1}) {
		t.Fatalf("after a stale Put, Versions = %v, %v; want [2 1]", versionNumbers(vs), err)
	}
	if m := s.mustPut(k, "ap-south", 2, write(3)); m.Version != 3 {
		t.Fatalf("Put with the current version: version %d, want 3", m.Version)
	}
}

// testRestore restores an old version the way the service does: read it,
// write it back as the next version.
func testRestore(t *testing.T, s *suite) {
	k := key("acme", "/servers/github", backend.Secret, "API_KEY")
	for i, v := range []string{"a", "b", "c"} {
		s.mustPut(k, v, backend.Any, write(i+1))
	}
	old, m := s.mustGet(k, 1)
	restored := s.mustPut(k, old, 3, backend.Write{Fingerprint: m.Fingerprint, Creator: "users/restorer"})
	if restored.Version != 4 {
		t.Fatalf("restore wrote version %d, want 4", restored.Version)
	}
	v, cur := s.mustGet(k, 0)
	if v != "a" || cur.Version != 4 || cur.Fingerprint != m.Fingerprint || cur.Creator != "users/restorer" {
		t.Fatalf("after restore: %q %+v", v, cur)
	}
	if v, _ := s.mustGet(k, 3); v != "c" {
		t.Fatalf("restore changed version 3 to %q", v)
	}
}

func testDelete(t *testing.T, s *suite) {
	k := key("acme", "/users/alice", backend.Secret, "TOKEN")
	wantErr(t, "Delete of a key never set", s.delete(k), errs.ErrNotFound)
	s.mustPut(k, "x", 0, write(1))
	s.mustPut(k, "y", 1, write(2))
	other := key("acme", "/users/alice", backend.Secret, "OTHER")
	s.mustPut(other, "kept", 0, write(3))
	if err := s.delete(k); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, version := range []int64{0, 1, 2} {
		_, _, err := s.get(k, version)
		wantErr(t, fmt.Sprintf("Get version %d after Delete", version), err, errs.ErrNotFound)
	}
	_, err := s.versions(k)
	wantErr(t, "Versions after Delete", err, errs.ErrNotFound)
	wantErr(t, "second Delete", s.delete(k), errs.ErrNotFound)
	if got := names(s.mustList(k.Scope, k.Kind)); !slices.Equal(got, []string{"OTHER"}) {
		t.Fatalf("List after Delete = %v, want [OTHER]", got)
	}
	if v, _ := s.mustGet(other, 0); v != "kept" {
		t.Fatalf("Delete changed another key: %q", v)
	}
	m := s.mustPut(k, "z", 0, write(4))
	if m.Version != 1 || !m.CreateTime.Equal(m.UpdateTime) {
		t.Fatalf("Put after Delete: %+v, want version 1 created anew", m)
	}
	if vs, err := s.versions(k); err != nil || !slices.Equal(versionNumbers(vs), []int64{1}) {
		t.Fatalf("Versions after Delete and Put = %v, %v; want [1]", versionNumbers(vs), err)
	}
}

func testList(t *testing.T, s *suite) {
	const reg = "/registries/prod"
	alpha := key("acme", reg, backend.Secret, "ALPHA")
	for _, name := range []string{"ZETA", "ALPHA", "MIDDLE"} {
		s.mustPut(key("acme", reg, backend.Secret, name), "secret "+name, 0, write(1))
	}
	alpha2 := s.mustPut(alpha, "secret ALPHA again", 1, write(2))
	alphaVar := s.mustPut(key("acme", reg, backend.Variable, "ALPHA"), "variable ALPHA", 0, write(3))
	s.mustPut(key("acme", "", backend.Secret, "ORG_ONLY"), "org", 0, write(4))
	s.mustPut(key("acme", "/servers/s1", backend.Secret, "ALPHA"), "server", 0, write(5))
	s.mustPut(key("acme", "/registries/prod2", backend.Secret, "ALPHA"), "another registry", 0, write(6))

	secrets := s.mustList("orgs/acme"+reg, backend.Secret)
	if got := names(secrets); !slices.Equal(got, []string{"ALPHA", "MIDDLE", "ZETA"}) {
		t.Fatalf("List secrets = %v, want [ALPHA MIDDLE ZETA]", got)
	}
	_, cur := s.mustGet(alpha, 0)
	sameMeta(t, "List ALPHA (the current version)", secrets[0], cur)
	sameMeta(t, "List ALPHA (as Put returned it)", secrets[0], alpha2)
	for _, m := range secrets {
		if m.Key.Org != "acme" || m.Key.Scope != "orgs/acme"+reg || m.Key.Kind != backend.Secret {
			t.Fatalf("List returned key %+v", m.Key)
		}
	}
	vars := s.mustList("orgs/acme"+reg, backend.Variable)
	if len(vars) != 1 {
		t.Fatalf("List variables = %v, want [ALPHA]", names(vars))
	}
	sameMeta(t, "List variable ALPHA", vars[0], alphaVar)
	if v, _ := s.mustGet(alphaVar.Key, 0); v != "variable ALPHA" {
		t.Fatalf("a variable and a secret of one NAME share the value: %q", v)
	}
	if got := names(s.mustList("orgs/acme", backend.Secret)); !slices.Equal(got, []string{"ORG_ONLY"}) {
		t.Fatalf("List at the organization = %v, want only its own [ORG_ONLY]", got)
	}
	if got := s.mustList("orgs/acme", backend.Variable); len(got) != 0 {
		t.Fatalf("List of variables at the organization = %v, want none", names(got))
	}
	if got := s.mustList("orgs/other/registries/prod", backend.Secret); len(got) != 0 {
		t.Fatalf("List of an empty scope = %v, want none", names(got))
	}
	if err := s.delete(alphaVar.Key); err != nil {
		t.Fatalf("Delete variable: %v", err)
	}
	if v, _ := s.mustGet(alpha, 0); v != "secret ALPHA again" {
		t.Fatalf("deleting the variable changed the secret of the same NAME: %q", v)
	}
}

func testDeleteScope(t *testing.T, s *suite) {
	type set struct {
		under string
		kind  backend.Kind
		name  string
	}
	all := []set{
		{"/registries/prod", backend.Secret, "A"}, {"/registries/prod", backend.Secret, "B"},
		{"/registries/prod", backend.Variable, "A"},
		{"", backend.Secret, "ORG"}, {"", backend.Variable, "ORG"},
		{"/servers/s1", backend.Secret, "A"}, {"/registries/staging", backend.Secret, "A"},
		{"/users/u1", backend.Variable, "A"},
	}
	for i, x := range all {
		s.mustPut(key("acme", x.under, x.kind, x.name), "v", 0, write(i))
	}
	s.mustPut(key("beta", "/registries/prod", backend.Secret, "A"), "v", 0, write(99))
	count := func(org, under string) int {
		return len(s.mustList("orgs/"+org+under, backend.Secret)) + len(s.mustList("orgs/"+org+under, backend.Variable))
	}
	if n := s.mustDeleteScope("orgs/acme/registries/prod"); n != 3 {
		t.Fatalf("DeleteScope(registry prod) = %d, want 3", n)
	}
	if n := count("acme", "/registries/prod"); n != 0 {
		t.Fatalf("after DeleteScope the scope still has %d keys", n)
	}
	_, _, err := s.get(key("acme", "/registries/prod", backend.Secret, "A"), 0)
	wantErr(t, "Get after DeleteScope", err, errs.ErrNotFound)
	for _, c := range []struct {
		org, under string
		want       int
	}{{"acme", "", 2}, {"acme", "/servers/s1", 1}, {"acme", "/registries/staging", 1}, {"acme", "/users/u1", 1}, {"beta", "/registries/prod", 1}} {
		if n := count(c.org, c.under); n != c.want {
			t.Fatalf("DeleteScope touched orgs/%s%s: %d keys left, want %d", c.org, c.under, n, c.want)
		}
	}
	if n := s.mustDeleteScope("orgs/acme/registries/prod"); n != 0 {
		t.Fatalf("DeleteScope of an empty scope = %d, want 0", n)
	}
	if n := s.mustDeleteScope("orgs/acme"); n != 2 {
		t.Fatalf("DeleteScope(organization) = %d, want its own 2 keys", n)
	}
	if n := count("acme", "/registries/staging"); n != 1 {
		t.Fatalf("DeleteScope of the organization removed its registry's keys: %d left, want 1", n)
	}
	if m := s.mustPut(key("acme", "/registries/prod", backend.Secret, "A"), "again", 0, write(7)); m.Version != 1 {
		t.Fatalf("Put after DeleteScope: version %d, want 1", m.Version)
	}
}

func testConcurrentAny(t *testing.T, s *suite) {
	const writers, puts = 8, 10
	k := key("acme", "", backend.Secret, "HOT")
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range puts {
				m, err := s.put(k, fmt.Sprintf("w%d-%d", w, i), backend.Any, write(w))
				if err != nil {
					t.Errorf("writer %d, Put %d: %v", w, i, err)
					return
				}
				mu.Lock()
				if seen[m.Version] {
					t.Errorf("version %d returned twice", m.Version)
				}
				seen[m.Version] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for v := int64(1); v <= writers*puts; v++ {
		if !seen[v] {
			t.Fatalf("no Put returned version %d (got %d versions)", v, len(seen))
		}
	}
	if _, m := s.mustGet(k, 0); m.Version != writers*puts {
		t.Fatalf("current version %d, want %d", m.Version, writers*puts)
	}
}

func testConcurrentCAS(t *testing.T, s *suite) {
	const writers = 8
	k := key("acme", "", backend.Secret, "RACE")
	s.mustPut(k, "start", 0, write(0))
	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]error, writers)
	metas := make([]backend.Meta, writers)
	for w := range writers {
		wg.Go(func() {
			<-start
			metas[w], results[w] = s.put(k, fmt.Sprintf("winner %d", w), 1, write(w))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for w, err := range results {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both won with cas 1", winner, w)
		case err == nil:
			winner = w
		case !errors.Is(err, errs.ErrEtagMismatch):
			t.Fatalf("writer %d lost with %v, want ErrEtagMismatch", w, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	v, m := s.mustGet(k, 0)
	if m.Version != 2 || v != fmt.Sprintf("winner %d", winner) || metas[winner].Version != 2 {
		t.Fatalf("current is %q version %d; winner %d wrote version %d", v, m.Version, winner, metas[winner].Version)
	}
}

func testValues(t *testing.T, s *suite) {
	large := make([]byte, backend.MaxValueBytes)
	for i := range large {
		large[i] = byte(i*7 + i/256) // every byte value, in no simple period
	}
	binary := []byte{0x00, 'a', 0x00, 0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82, 0x80, 0xed, 0xa0, 0x80, '\n', 0x00}
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{"max size", large},
		{"binary and invalid UTF-8", binary},
		{"empty", []byte{}},
		{"every byte", func() []byte {
			b := make([]byte, 256)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}()},
	} {
		k := key("acme", "", backend.Secret, strings.ToUpper(strings.NewReplacer(" ", "_", "-", "_").Replace(tc.name)))
		if m := s.mustPut(k, string(tc.value), 0, write(1)); m.Version != 1 {
			t.Fatalf("%s: version %d", tc.name, m.Version)
		}
		got, _ := s.mustGet(k, 0)
		if !bytes.Equal([]byte(got), tc.value) {
			t.Fatalf("%s: %d bytes came back differently (%d bytes)", tc.name, len(tc.value), len(got))
		}
	}
	k := key("acme", "", backend.Secret, "TOO_LARGE")
	_, err := s.put(k, string(append(large, 'x')), 0, write(1))
	wantErr(t, "a value over MaxValueBytes", err, backend.ErrTooLarge)
	_, _, err = s.get(k, 0)
	wantErr(t, "Get of a value refused as too large", err, errs.ErrNotFound)
}

func testNames(t *testing.T, s *suite) {
	long := "A" + strings.Repeat("b_9", 42) + "Z" // 128 characters
	if len(long) != 128 {
		t.Fatalf("the long NAME has %d characters", len(long))
	}
	want := []string{long, "_", "A1_b"}
	for i, name := range want {
		k := key("acme", "/registries/prod", backend.Variable, name)
		s.mustPut(k, "value of "+name, 0, write(i))
		if v, m := s.mustGet(k, 0); v != "value of "+name || m.Key != k {
			t.Fatalf("NAME %q: got %q for %+v", name, v, m.Key)
		}
	}
	got := names(s.mustList("orgs/acme/registries/prod", backend.Variable))
	slices.Sort(got) // the order of "_" against letters depends on collation
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
}

func testOrganizations(t *testing.T, s *suite) {
	const under = "/registries/prod"
	ka, kb := key("a", under, backend.Secret, "TOKEN"), key("b", under, backend.Secret, "TOKEN")
	s.mustPut(ka, "a's", 0, write(1))
	if m := s.mustPut(kb, "b's", 0, write(2)); m.Version != 1 {
		t.Fatalf("organization b's first version is %d: it sees a's", m.Version)
	}
	s.mustPut(ka, "a's second", 1, write(3))
	for _, c := range []struct {
		k       backend.Key
		want    string
		version int64
	}{{ka, "a's second", 2}, {kb, "b's", 1}} {
		v, m := s.mustGet(c.k, 0)
		if v != c.want || m.Version != c.version {
			t.Fatalf("%s: %q version %d, want %q version %d", c.k, v, m.Version, c.want, c.version)
		}
		list := s.mustList(c.k.Scope, backend.Secret)
		if len(list) != 1 || list[0].Key != c.k {
			t.Fatalf("List(%s) = %+v, want only %s", c.k.Scope, list, c.k)
		}
	}
	if err := s.delete(ka); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if v, _ := s.mustGet(kb, 0); v != "b's" {
		t.Fatalf("deleting a's key changed b's: %q", v)
	}
	s.mustPut(ka, "a's again", 0, write(4))
	if n := s.mustDeleteScope(ka.Scope); n != 1 {
		t.Fatalf("DeleteScope(%s) = %d, want 1", ka.Scope, n)
	}
	if v, _ := s.mustGet(kb, 0); v != "b's" {
		t.Fatalf("DeleteScope of a's registry changed b's: %q", v)
	}
}
