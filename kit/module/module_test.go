package module

import (
	"strings"
	"testing"
)

func names(ms []Module) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return strings.Join(out, ",")
}

func TestOrder(t *testing.T) {
	all := []Module{
		{Name: "orgs", Needs: []string{"audit"}},
		{Name: "registry", Needs: []string{"audit", "orgs"}},
		{Name: "secrets"},
		{Name: "audit"},
		{Name: "gateway", Needs: []string{"orgs"}},
	}
	for _, c := range []struct {
		targets []string
		want    string
	}{
		{[]string{"orgs", "registry", "secrets", "audit", "gateway"}, "audit,orgs,registry,secrets,gateway"},
		// What runs elsewhere does not order anything here.
		{[]string{"registry", "gateway"}, "registry,gateway"},
		{[]string{"gateway", "orgs"}, "orgs,gateway"},
	} {
		got, err := Order(all, c.targets)
		if err != nil || names(got) != c.want {
			t.Errorf("Order(%v) = %s, %v; want %s", c.targets, names(got), err, c.want)
		}
	}
	if _, err := Order(all, []string{"nope"}); err == nil {
		t.Error("an unknown target was accepted")
	}
	cyclic := []Module{{Name: "a", Needs: []string{"b"}}, {Name: "b", Needs: []string{"a"}}}
	if _, err := Order(cyclic, []string{"a", "b"}); err == nil || !strings.Contains(err.Error(), "a -> b -> a") {
		t.Errorf("a cycle: %v", err)
	}
}
