package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
)

// structDepth is how deeply s nests objects and arrays, counted up to
// limit (deeper ones are not walked).
func structDepth(s *structpb.Struct, limit int) int {
	if limit <= 0 {
		return 1
	}
	deepest := 0
	for _, v := range s.GetFields() {
		deepest = max(deepest, valueDepth(v, limit-1))
	}
	return 1 + deepest
}

func valueDepth(v *structpb.Value, limit int) int {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StructValue:
		return structDepth(k.StructValue, limit)
	case *structpb.Value_ListValue:
		if limit <= 0 {
			return 1
		}
		deepest := 0
		for _, e := range k.ListValue.GetValues() {
			deepest = max(deepest, valueDepth(e, limit-1))
		}
		return 1 + deepest
	}
	return 0
}

// encodeTools is the stored form of a tool list: a JSON array of the tools
// in protojson.
func encodeTools(tools []*registryv1.Tool) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, t := range tools {
		if i > 0 {
			b.WriteByte(',')
		}
		j, err := protojson.Marshal(t)
		if err != nil {
			return nil, err
		}
		// Compact: protojson's spacing is deliberately unstable.
		if err := json.Compact(&b, j); err != nil {
			return nil, err
		}
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

func decodeTools(data []byte) ([]*registryv1.Tool, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, err
	}
	out := make([]*registryv1.Tool, len(raws))
	for i, r := range raws {
		out[i] = &registryv1.Tool{}
		if err := protojson.Unmarshal(r, out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// diffTools lists the tools added, removed and changed from base to target.
func diffTools(base, target []*registryv1.Tool) *registryv1.ToolDiff {
	d := &registryv1.ToolDiff{}
	byName := func(ts []*registryv1.Tool) map[string]*registryv1.Tool {
		m := map[string]*registryv1.Tool{}
		for _, t := range ts {
			m[t.GetName()] = t
		}
		return m
	}
	b, t := byName(base), byName(target)
	for _, x := range target {
		old, ok := b[x.GetName()]
		if !ok {
			d.Added = append(d.Added, x)
			continue
		}
		if changes := toolChanges(old, x); len(changes) > 0 {
			d.Changed = append(d.Changed, &registryv1.ToolChange{Name: x.GetName(), Changes: changes, Base: old, Target: x})
		}
	}
	for _, x := range base {
		if _, ok := t[x.GetName()]; !ok {
			d.Removed = append(d.Removed, x)
		}
	}
	sort.Slice(d.Added, func(i, j int) bool { return d.Added[i].GetName() < d.Added[j].GetName() })
	sort.Slice(d.Removed, func(i, j int) bool { return d.Removed[i].GetName() < d.Removed[j].GetName() })
	sort.Slice(d.Changed, func(i, j int) bool { return d.Changed[i].GetName() < d.Changed[j].GetName() })
	return d
}

func toolChanges(a, b *registryv1.Tool) []string {
	var out []string
	str := func(field, x, y string) {
		if x != y {
			out = append(out, fmt.Sprintf("%s changed", field))
		}
	}
	str("title", a.GetTitle(), b.GetTitle())
	str("description", a.GetDescription(), b.GetDescription())
	if !proto.Equal(a.GetInputSchema(), b.GetInputSchema()) {
		out = append(out, "inputSchema changed")
	}
	if !proto.Equal(a.GetOutputSchema(), b.GetOutputSchema()) {
		out = append(out, "outputSchema changed")
	}
	aa, ba := a.GetAnnotations(), b.GetAnnotations()
	str("annotations.title", aa.GetTitle(), ba.GetTitle())
	hint := func(name string, x, y *bool) {
		show := func(p *bool) string {
			if p == nil {
				return "unset"
			}
			return fmt.Sprint(*p)
		}
		if show(x) != show(y) {
			out = append(out, fmt.Sprintf("annotations.%s: %s -> %s", name, show(x), show(y)))
		}
	}
	hints := func(a *registryv1.ToolAnnotations) (r, d, i, o *bool) {
		if a == nil {
			return nil, nil, nil, nil
		}
		return a.ReadOnlyHint, a.DestructiveHint, a.IdempotentHint, a.OpenWorldHint
	}
	ar, ad, ai, ao := hints(aa)
	br, bd, bi, bo := hints(ba)
	hint("readOnlyHint", ar, br)
	hint("destructiveHint", ad, bd)
	hint("idempotentHint", ai, bi)
	hint("openWorldHint", ao, bo)
	return out
}
