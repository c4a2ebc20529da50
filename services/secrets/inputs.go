package secrets

import (
	"regexp"
	"sort"
)

// secretRef is a `${secret:NAME}` reference in a server.json string.
var secretRef = regexp.MustCompile(`\$\{secret:([A-Za-z_][A-Za-z0-9_]*)\}`)

// declaredInputs lists what a server.json asks of its environment: each
// package's environmentVariables, each remote's headers, and every
// ${secret:NAME} reference anywhere in it.
func declaredInputs(doc map[string]any) []Input {
	seen := map[[2]string]bool{}
	var out []Input
	add := func(in Input) {
		k := [2]string{in.Name, in.Kind}
		if in.Name == "" || seen[k] {
			return
		}
		seen[k] = true
		out = append(out, in)
	}
	fields := func(list any, kind string) {
		items, _ := list.([]any)
		for _, it := range items {
			m, _ := it.(map[string]any)
			name, _ := m["name"].(string)
			req, _ := m["isRequired"].(bool)
			sec, _ := m["isSecret"].(bool)
			add(Input{Name: name, Kind: kind, IsRequired: req, IsSecret: sec})
		}
	}
	for _, key := range []string{"packages", "remotes"} {
		items, _ := doc[key].([]any)
		for _, it := range items {
			m, _ := it.(map[string]any)
			fields(m["environmentVariables"], "environment_variable")
			fields(m["headers"], "header")
		}
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			for _, m := range secretRef.FindAllStringSubmatch(x, -1) {
				add(Input{Name: m[1], Kind: "secret_reference", IsRequired: true, IsSecret: true})
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}
