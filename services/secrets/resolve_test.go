package secrets

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	secretsv1 "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/dbtest"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
	"github.com/pyleeai/pylee/services/secrets/internal/keyring"
	"github.com/pyleeai/pylee/services/secrets/internal/store"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// parents is a Registries of fixed parent chains.
type parents map[string][]string

func (p parents) Parents(_ context.Context, registry string) ([]string, error) {
	return p[registry], nil
}

func newBenchService(b *testing.B) *Service { return newTestService(b, parents{}) }

func newTestService(t testing.TB, regs Registries) *Service {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dbtest.MigratedSQLiteURL(t, store.Migrate))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := keyring.ParseKEK("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	if err != nil {
		t.Fatal(err)
	}
	return New(st, keyring.New(st, kek), aip.NewPageTokens([]byte("resolve-test-key"))).UseRegistries(regs)
}

// model is the naive resolution: for each NAME, the first scope in order
// that sets it; at one scope a secret before a variable.
type model map[string]map[backend.Kind]map[string]string // scope -> kind -> NAME -> value

func (m model) resolve(scopes []string) map[string]string {
	out := map[string]string{}
	for _, scope := range scopes {
		for _, kind := range []backend.Kind{backend.Secret, backend.Variable} {
			for name, v := range m[scope][kind] {
				if _, ok := out[name]; !ok {
					out[name] = scope + "=" + v
				}
			}
		}
	}
	return out
}

// TestResolveProperty: random values at every scope, random registry
// parent chains, and Resolve against the naive model, for every registry,
// server and user.
func TestResolveProperty(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 42))
			ctx := context.Background()
			const org = "orgs/acme"
			regs := make([]string, 5)
			chains := parents{}
			parentOf := map[string]string{}
			for i := range regs {
				regs[i] = fmt.Sprintf("%s/registries/r%d", org, i)
				if i > 0 && r.IntN(3) > 0 {
					parentOf[regs[i]] = regs[r.IntN(i)]
				}
			}
			for _, reg := range regs {
				for p := parentOf[reg]; p != ""; p = parentOf[p] {
					chains[reg] = append(chains[reg], p)
				}
			}
			s := newTestService(t, chains)
			servers := []string{org + "/servers/s0", org + "/servers/s1"}
			users := []string{"", "users/u0", "users/u1"}
			scopes := append(append([]string{org, org + "/users/u0", org + "/users/u1"}, servers...), regs...)
			names := []string{"A", "B", "C", "D"}
			m := model{}
			for op := 0; op < 60; op++ {
				scope := scopes[r.IntN(len(scopes))]
				kind := backend.Kind(1 + r.IntN(2))
				key := backend.Key{Org: "acme", Scope: scope, Kind: kind, Name: names[r.IntN(len(names))]}
				if m[scope] == nil {
					m[scope] = map[backend.Kind]map[string]string{}
				}
				if m[scope][kind] == nil {
					m[scope][kind] = map[string]string{}
				}
				if _, set := m[scope][kind][key.Name]; set && r.IntN(4) == 0 {
					if err := s.remove(ctx, "test.delete", key); err != nil {
						t.Fatal(err)
					}
					delete(m[scope][kind], key.Name)
					continue
				}
				v := fmt.Sprintf("v%d", op)
				if _, err := s.set(ctx, "test.set", key, []byte(v), backend.Any, nil); err != nil {
					t.Fatal(err)
				}
				m[scope][kind][key.Name] = v
			}
			checked := 0
			for _, reg := range regs {
				for _, srv := range servers {
					for _, u := range users {
						order := []string{}
						if u != "" {
							order = append(order, org+"/users/"+strings.TrimPrefix(u, "users/"))
						}
						order = append(append(append(order, srv, reg), chains[reg]...), org)
						want := m.resolve(order)
						resp, err := s.Resolve(ctx, &secretsv1.ResolveRequest{Registry: reg, Server: srv, User: u})
						if err != nil {
							t.Fatal(err)
						}
						got := map[string]string{}
						for _, v := range resp.GetValues() {
							got[v.GetName()] = v.GetScope() + "=" + v.GetValue()
						}
						if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(want)) {
							t.Fatalf("Resolve(%s, %s, %q) = %v, the model says %v (parents %v)", reg, srv, u, sorted(got), sorted(want), chains[reg])
						}
						checked++
					}
				}
			}
			t.Logf("%d resolutions as the model says", checked)
		})
	}
}

func sorted(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+":"+v)
	}
	sort.Strings(out)
	return out
}

// TestRotationSeenByEveryResolver: while resolvers run, a value is rotated
// again and again; every resolve that starts after a rotation was
// acknowledged returns the new value (no resolver keeps an old one).
func TestRotationSeenByEveryResolver(t *testing.T) {
	ctx := context.Background()
	s := newTestService(t, parents{})
	key := backend.Key{Org: "acme", Scope: "orgs/acme/servers/gh", Kind: backend.Secret, Name: "TOKEN"}
	var acked atomic.Int64 // the last rotation acknowledged
	if _, err := s.set(ctx, "test.set", key, []byte("v0"), backend.Any, nil); err != nil {
		t.Fatal(err)
	}
	req := &secretsv1.ResolveRequest{Registry: "orgs/acme/registries/prod", Server: "orgs/acme/servers/gh"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var resolves atomic.Int64
	errc := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				want := acked.Load()
				resp, err := s.Resolve(ctx, req)
				if err != nil {
					errc <- err
					return
				}
				var got int64
				if _, err := fmt.Sscanf(resp.GetValues()[0].GetValue(), "v%d", &got); err != nil || got < want {
					errc <- fmt.Errorf("a resolve begun after rotation %d was acknowledged returned %q", want, resp.GetValues()[0].GetValue())
					return
				}
				resolves.Add(1)
			}
		}()
	}
	for i := int64(1); i <= 30; i++ {
		if _, err := s.set(ctx, "test.set", key, fmt.Appendf(nil, "v%d", i), backend.Any, nil); err != nil {
			t.Fatal(err)
		}
		acked.Store(i)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	t.Logf("30 rotations under %d concurrent resolves, none stale", resolves.Load())
}
